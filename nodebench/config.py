"""Typed configuration: every value a case, a paper file or a suite file sets is checked before anything runs.

A case is four blocks, each a dataclass or a parameter table that knows its keys, types, ranges and defaults:

- **task parameters** (:meth:`nodebench.tasks.base.Task.params`): each task's ``defaults`` typed by their
  default values and the task's own ``param_rules`` (``n_points ≥ 2``...), plus cross-field checks;
- **method options** (:class:`nodebench.methods.SolverOptions`): tolerances, step size, the GQ constant;
- **regulariser** (:mod:`nodebench.regularizers`) and **SNODE options** (:class:`nodebench.snode.SnodeOptions`);
- **training settings** (:class:`TrainingOptions`): the harness's untimed monitor.

:func:`nodebench.runner.settings.case_settings` routes a flat ``KEY=VALUE`` map (the CLI's ``--hparam``, an
experiment's ``hparams``) to its block; an unknown key gets one line naming the nearest valid key.
:class:`Param` is the one value checker behind all of them.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

from nodebench.errors import UserError
from nodebench.registry import nearest


@dataclass(frozen=True)
class Param:
    """One typed value.

    Attributes:
        name: the key.
        kind: ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"any"``, ``"table"`` (a mapping, e.g. a TOML
            table), ``"strs"`` (a non-empty list of distinct strings), or a list of numbers, ``"ints"`` or
            ``"floats"`` (a tuple or list; returned as a list), its items bounded as one number (``low``,
            ``high``, ``positive``).
        low, high: inclusive bounds (``None``: unbounded, but an integer is at most :data:`MAX_INT`);
            ``positive`` demands ``> 0``.
        choices: the valid values of a ``str`` parameter (``None``: any string); for a number list, strings
            also valid as items (``step_sizes = ["grid", 0.1]``).
        optional: ``None`` is a valid value (e.g. "all the data").
        empty: an empty list is a valid value of a number list kind (e.g. "no step sizes").
        required: a block (a ``[[claim]]``, an ``[[analysis]]``) must set it.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    positive: bool = False
    choices: tuple | None = None
    optional: bool = False
    empty: bool = False
    required: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:  # a plug-in's declaration: refused where it is written, not at every check
            raise ValueError(f"Param {self.name!r}: unknown kind {self.kind!r}{nearest(self.kind, KINDS)}; "
                             f"valid: {', '.join(KINDS)}")

    def describe(self) -> str:
        """What a valid value is, in words."""
        if self.kind in LISTS:
            items = self._item().describe() + "".join(f" or {c!r}" for c in self.choices or ())
            return "null or " * self.optional + "a " + "non-empty " * (not self.empty) + f"list, each item {items}"
        if self.choices:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.kind in ("int", "float"):
            text = "an integer" if self.kind == "int" else "a finite number"
            if self.positive:
                text = "a positive integer" if self.kind == "int" else "a positive finite number"
            low, high = (None if x is None else "2**63 - 1" if x == MAX_INT else f"{x:g}"
                         for x in (self.low, self.high))
            if low is not None and high is not None:
                text += f" from {low} to {high}"
            elif low is not None:
                text += f" >= {low}"
            elif high is not None:
                text += f" <= {high}"
        else:
            text = {"bool": "true or false", "str": "a string", "any": "any value", "table": "a table (name = value)",
                    "strs": "a non-empty list of distinct strings"}[self.kind]
        return text + (" or null" if self.optional else "")

    def check(self, value: Any, where: str = "hyper-parameter") -> Any:
        """``value`` converted to the parameter's type; anything invalid is a one-line :class:`UserError`."""
        if value is None and self.optional:
            return None
        bad = UserError(f"{where} {self.name} must be {self.describe()}, got {value!r}")
        if self.kind == "any":
            return value
        if self.kind == "table":
            if not isinstance(value, Mapping):
                raise bad
            return value
        if self.kind == "strs":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value) \
                    or len(set(value)) != len(value):
                raise bad
            return value
        if self.kind in LISTS:
            if not isinstance(value, (list, tuple)) or not (value or self.empty):
                raise bad
            item, words = self._item(), self.choices or ()
            try:
                return [v if isinstance(v, str) and v in words else item.check(v, where) for v in value]
            except UserError:
                past = item.kind == "int" and any(_past_int64(v) for v in value) and self.high is None
                raise (self._past_int64_error(value, where) if past else bad) from None
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind == "str":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise bad
        given = value
        if self.kind == "int":
            if value != int(value):
                raise bad
            value = int(value)
        else:
            value = float(value)
        if (self.positive and not value > 0) or (self.low is not None and value < self.low) \
                or (self.high is not None and value > self.high):
            raise bad
        if self.kind == "int" and _past_int64(value):  # torch reads a size or a seed as an int64: it overflowed there
            raise self._past_int64_error(given, where)
        return value

    def _past_int64_error(self, value: Any, where: str) -> UserError:
        """The error of a whole number above :data:`MAX_INT`, naming that bound."""
        return UserError(f"{where} {self.name} must be {dataclasses.replace(self, high=MAX_INT).describe()}, "
                         f"got {value!r}")

    def _item(self) -> "Param":
        """The parameter of one item of a number list kind."""
        return dataclasses.replace(self, kind=LISTS[self.kind], choices=None, optional=False)


#: The list kinds of :class:`Param` and the kind of their items.
LISTS = {"ints": "int", "floats": "float"}
#: Every kind of :class:`Param`.
KINDS = ("int", "float", "bool", "str", "any", "table", "strs", *LISTS)

#: The largest integer any integer :class:`Param` takes (when its own ``high`` is not lower): int64's, the type
#: torch reads a size or a seed as (``hidden = 1e30`` failed inside the case, "Overflow when unpacking long long").
MAX_INT = 2**63 - 1


def _past_int64(value: Any) -> bool:
    """Whether ``value`` is a finite number above :data:`MAX_INT`."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > MAX_INT


#: The most training iterations a case may ask for: far above any real use, low enough that a typo (10^20) is
#: an error, not a sweep that runs until its time limit.
MAX_ITERS = 10**9
#: The most cases one sweep may build (seeds × methods × grid): a typo (``seeds = 1e9``) must not hang the
#: dry run that builds them.
MAX_CASES = 1_000_000
#: A case's training limits (:class:`nodebench.runner.case.Case`): iterations or seconds of training time.
CASE_LIMITS = (Param("iters", "int", low=1, high=MAX_ITERS), Param("budget_s", "float", positive=True))
#: How many seeds a sweep, a paper preset or a suite runs (seeds 0..N−1).
SEEDS = Param("seeds", "int", low=1)

#: Float hyper-parameters for which 0 is a valid choice whatever their default (no decay, no noise).
NON_NEGATIVE = ("weight_decay", "noise")
#: Counts for which ``None`` means "all" (the whole data set, a full batch) where a task's default is ``None``;
#: a given count is then at least 1. A task whose default is a number and that also takes ``None`` says so in
#: its ``param_rules`` (most cannot: ``int(None)`` inside the run).
OPTIONAL_COUNTS = ("batch_size", "n_train", "n_val", "n_test", "n_records", "test_batch_size", "eval_size")


def infer_param(name: str, default: Any) -> Param:
    """A :class:`Param` typed by a default value: an int default → an integer (≥ 1 when the default is,
    else ≥ 0); a float → a finite number (> 0 when the default is, else ≥ 0 when it is 0); a bool, a
    string (``dtype``: float32 or float64); ``None`` → an optional non-negative integer (a count or a seed).
    Tasks override what this cannot know in ``Task.param_rules``."""
    if isinstance(default, bool):
        return Param(name, "bool")
    if isinstance(default, numbers.Integral):
        return Param(name, "int", low=1 if default >= 1 else 0)
    if isinstance(default, numbers.Real):
        if name in NON_NEGATIVE:
            return Param(name, "float", low=0.0)
        return Param(name, "float", positive=default > 0, low=0.0 if default == 0 else None)
    if name == "dtype":
        return Param(name, "str", choices=("float32", "float64"))
    if isinstance(default, str):
        return Param(name, "str")
    if default is None:
        return Param(name, "int", low=1 if name in OPTIONAL_COUNTS else 0, optional=True)
    return Param(name, "any", optional=True)


def check_keys(given: Mapping[str, Any], valid: list[str] | tuple[str, ...], where: str) -> None:
    """A one-line :class:`UserError` for the first key of ``given`` not in ``valid``, naming the nearest."""
    for key in given:
        if key not in valid:
            raise UserError(f"{where}: unknown key {key!r}{nearest(key, valid)}; valid: {', '.join(sorted(valid))}")


def from_mapping(cls, data: Mapping[str, Any], where: str):
    """``cls(**data)`` for a dataclass ``cls``, with unknown and missing keys as one-line errors."""
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a table, got {data!r}")
    check_keys(data, fields, where)
    required = [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in data]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**data)


@dataclass(frozen=True)
class TrainingOptions:
    """Settings the harness's training loop reads itself.

    Attributes:
        monitor_every: record the task's method-independent training quality (``Problem.monitor``,
            untimed) every this many iterations; ``None``: never (time to target needs it).
    """

    monitor_every: int | None = None

    PARAMS = (Param("monitor_every", "int", low=1, optional=True),)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(p.name for p in cls.PARAMS)

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> "TrainingOptions":
        return cls(**{p.name: p.check(hparams[p.name]) for p in cls.PARAMS if p.name in hparams})
