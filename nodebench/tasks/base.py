"""Tasks: the learning problems that training methods are compared on.

A :class:`Task` is a named, seedable recipe. ``task.build(seed=..., device=..., hparams=...)`` returns
a :class:`Problem`: a model, the vector field its solves call, a loss for one training iteration given a
method's ``solve``, and an untimed evaluation returning named metrics. The harness wraps
``problem.field`` in a :class:`~nodebench.harness.CountingField` before training, so problems must call
``self.field`` for every evaluation of the dynamics.
"""

from __future__ import annotations

import abc
import math
import numbers
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from nodebench.config import Param, infer_param
from nodebench.errors import UserError
from nodebench.registry import nearest

MONITOR_TASKS = "monitor_every applies to trajectory tasks (cubic_spiral, vehicle, multi_agent, trajectories:PATH)"


class Problem(abc.ABC):
    """A built task instance.

    Attributes:
        model: the module whose parameters are trained (it contains ``field``).
        field: the vector field ``f(t, y)`` that every solve evaluates.
        lr: learning rate for Adam, the harness's optimiser.
    """

    model: nn.Module
    field: nn.Module
    lr: float = 1e-3
    weight_decay: float = 0.0

    @abc.abstractmethod
    def loss(self, solve: Callable) -> torch.Tensor:
        """The training loss of one iteration (one mini-batch), solving with ``solve(func, y0, t)``."""

    @abc.abstractmethod
    def evaluate(self, solve: Callable) -> dict[str, float]:
        """Test metrics, computed outside the timed region.

        ``solve`` is the training method's own solve, for metrics of the training discretisation
        (re-discretisation studies); headline metrics should use a reference solver so that methods are
        compared on the learned model. A problem may also fill :attr:`tables` with extra tidy rows.
        """

    def monitor(self) -> float:
        """A method-independent training quality measured during training, untimed (``monitor_every``);
        lower is better. Problems that support time-to-target measurement override it."""
        raise UserError(f"{type(self).__name__} has no training monitor; {MONITOR_TASKS}")

    #: Where the data came from, recorded in every row (:data:`nodebench.records.PROVENANCE`): ``dataset``,
    #: ``n_train``, ``n_val``, ``n_test``, ``data_verified``. Tasks reading data files fill it
    #: (:func:`nodebench.datasets.catalog.provenance`); the empty default records none.
    provenance: Mapping[str, Any] = MappingProxyType({})

    #: Extra per-case tables (name → list of row dicts), stored as ``<name>.parquet`` in the run directory.
    #: Read-only empty default; a problem that fills tables assigns its own dict.
    tables: Mapping[str, list[dict]] = MappingProxyType({})


class Task(abc.ABC):
    """A learning problem with named metrics and default hyper-parameters.

    Attributes:
        name: registry id used on the command line.
        paper: the paper package it comes from, or ``None`` for generic tasks.
        metrics: names of the metrics :meth:`Problem.evaluate` returns; the first is the headline.
        defaults: default hyper-parameters (learning rate, solver tolerances, sizes...).
        description: one line for ``nodebench list``.
        dynamics: ``"ode"``, or ``"sde"`` for a task whose model is a neural SDE (SDE methods need one).
        full_state: the task fits fully observed trajectories (a :class:`TrajectoryProblem`), which SNODE
            needs.
    """

    name: ClassVar[str]
    paper: ClassVar[str | None] = None
    dynamics: ClassVar[str] = "ode"
    full_state: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]]
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: Typed rules for hyper-parameters whose default value does not say enough (``n_points ≥ 2``).
    param_rules: ClassVar[Mapping[str, Param]] = {}
    description: ClassVar[str] = ""

    def params(self) -> dict[str, Param]:
        """The typed hyper-parameters (:mod:`nodebench.config`): each default typed by its value
        (:func:`~nodebench.config.infer_param`), overridden by :attr:`param_rules`."""
        return {key: self.param_rules.get(key) or infer_param(key, value) for key, value in self.defaults.items()}

    def hparams(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``, each value checked against :meth:`params` and the task's
        cross-field rules (:meth:`check_hparams`); anything invalid is a one-line :class:`UserError`."""
        params = self.params()
        merged = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in params:
                raise UserError(f"task {self.name!r} has no hyper-parameter {key!r}{nearest(key, params)}; "
                                f"valid: {', '.join(sorted(params)) or 'none'}")
            merged[key] = params[key].check(value, f"task {self.name}: hyper-parameter")
        self.check_hparams(merged)
        check_dtype_range(merged, params, merged.get("dtype"), f"task {self.name}: hyper-parameter")
        return merged

    def check_hparams(self, hp: Mapping[str, Any]) -> None:
        """Rules that tie several hyper-parameters together; a violation is a :class:`UserError`."""

    def time_span(self, hp: Mapping[str, Any]) -> float | None:
        """The length of the interval the training solves integrate over, for checked hyper-parameters ``hp``,
        or ``None`` where only the data tell it. A fixed ``step_size`` is checked against it before anything
        runs (:func:`nodebench.methods.check_step_size`); every solve also checks the span of its first call
        (:class:`nodebench.methods.Solve`), which is what catches a bad step where this returns ``None``."""
        return None

    @abc.abstractmethod
    def build(self, *, seed: int, device: torch.device, hparams: Mapping[str, Any]) -> Problem:
        """A fresh problem: data, model initialised from ``seed``, on ``device``."""


def dtype_from_name(name: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` to the torch dtype; anything else is a :class:`UserError`."""
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    try:
        return dtypes[name]
    except KeyError:
        raise UserError(f"unknown dtype {name!r}; valid: {', '.join(dtypes)}") from None


# -- hyper-parameter checks shared by the tasks ------------------------------------------------------------

def check_dtype_range(values: Mapping[str, Any], params: Mapping[str, Param], dtype: Any, where: str,
                      set_dtype: str = "--hparam dtype=float64") -> None:
    """A :class:`UserError` for a float value of ``values`` (typed by ``params``; ``where`` names them, e.g.
    ``"task g1d: hyper-parameter"``; ``set_dtype`` says how to ask for float64) that the model's ``dtype`` cannot
    hold: beyond its range, or, for a value that must be positive, below its smallest normal number (0 or a
    subnormal in it). In float32,
    ``t_end = 1e300`` made the time grid infinite ("t must be finite") and ``lr = 1e300`` failed in Adam's update
    ("value cannot be converted to type float without overflow"), each an error row after the data were built;
    ``eval_tol = 1e-300`` or ``rtol = 1e-300`` became 0, another tolerance (dopri5 stopped, "underflow in dt",
    or read ``rtol = 0``), and ``lr = 1e-300`` an update of 0. A large value that fits (``lr = 1e30``) runs: it
    diverges; a value that may be 0 (``weight_decay``) may also be one that rounds to 0. A ``dtype`` other than
    float32 or float64 (a task without one) checks nothing."""
    if dtype not in ("float32", "float64"):
        return
    info = torch.finfo(dtype_from_name(dtype))
    wider = f" or dtype float64 ({set_dtype})" if dtype != "float64" else ""
    for key, value in values.items():
        if params[key].kind != "float" or value is None:
            continue
        if abs(value) > info.max:
            raise UserError(f"{where} {key} {value:g} is beyond the range of {dtype}, the model's dtype (magnitude "
                            f"at most {info.max:.3g}); give a smaller {key}{wider}")
        if params[key].positive and value < info.tiny:
            raise UserError(f"{where} {key} {value:g} is below {info.tiny:.3g}, the smallest normal number of "
                            f"{dtype}, the model's dtype (there it is 0 or a subnormal); give {key} >= "
                            f"{info.tiny:.3g}{wider}")


def int_hparam(hp: Mapping[str, Any], key: str, minimum: int) -> int:
    """``hp[key]`` as an int ≥ ``minimum``; a bool, a non-integral number or a smaller value is a UserError."""
    value = hp[key]
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != int(value) or value < minimum):
        raise UserError(f"hyper-parameter {key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def positive_hparam(hp: Mapping[str, Any], key: str) -> float:
    """``hp[key]`` as a float > 0 (finite); anything else is a UserError."""
    value = hp[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise UserError(f"hyper-parameter {key} must be a positive number, got {value!r}")
    return float(value)


def data_seed(hp: Mapping[str, Any], seed: int) -> int:
    """The seed of the data generator: ``hp["data_seed"]``, or the run's ``seed`` when it is None."""
    value = hp.get("data_seed")
    if value is None:
        return int(seed)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise UserError(f"hyper-parameter data_seed must be None or a non-negative integer, got {value!r}")
    return int(value)


def optional_count(hp: Mapping[str, Any], key: str) -> int | None:
    """``hp[key]`` as a positive int, or ``None`` (meaning "all"); anything else is a UserError."""
    value = hp[key]
    if value is None:
        return None
    return int_hparam(hp, key, 1)
