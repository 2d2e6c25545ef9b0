"""Published claims checked against measured records, each with a verdict.

A claim in a paper's ``experiments.toml`` names a ``check`` registered in :data:`CHECKS` and its
parameters; the check returns one :class:`Verdict` per experiment (or one for the whole paper). Verdicts
are ``holds``, ``does not hold`` or ``not measured at this preset``; the measured figure always comes
with it, so a reader can disagree with the threshold.

Checks:

- ``time_reduction``: per experiment, reduction = 1 − t(method)/t(baseline) of the median training
  time over seeds; holds when it is at least ``min`` (a reduction above ``max`` still holds and is noted).
- ``wins``: the number of experiments where ``method`` trains faster than ``baseline``; holds when
  the fraction is at least ``fraction``.
- ``metric_parity``: per experiment, the median ``metric`` of ``method`` is no worse than the
  baseline's by more than ``rel_tol`` (relative) or ``abs_tol`` (absolute), in the metric's direction
  (:mod:`nodebench.metrics`), on the rows selected by ``hparams`` (as ``ratio``'s).

Every check compares one configuration per method: where a method ran several in one experiment (a grid
of widths) and the claim does not select one (``hparams``), the verdict is "not measured" and names the
varied hyper-parameters, rather than a median that pools configurations as if they were seeds.
- ``table_threshold``: a value read from an extra table (``table``, ``column``, rows selected by
  ``where`` and, for per-case tables, ``experiments``; ``table = "records"`` reads the successful
  records) is compared with ``max`` or ``min``, per experiment;
- ``time_to_target``: per experiment and setting, ratio = the baseline's time to the target / the
  method's, each over seeds by :func:`nodebench.target.seed_aggregate` (the median, or the olympic mean
  with ≥ 5 seeds; a seed that never reaches the target or failed counts as ∞), from the ``time_to_target``
  table (:mod:`nodebench.target`; with pairwise targets, the pair's); holds when at least ``min`` (default
  1). Fails when the method's time is ∞ ("not reached") and the baseline's finite; not measured when both
  are ∞ or either has no row.
- ``ratio``: per experiment, ratio = median(baseline ``column``)/median(method ``column``) over seeds
  (``column`` default ``train_wall_s``, so above 1 means ``method`` is faster), on the rows selected by
  ``hparams`` (name → value; the value ``"max"``/``"min"`` means the largest/smallest value of that
  hyper-parameter among the experiment's successful rows of method and baseline). Holds when the ratio is
  at least ``min`` and at most ``max`` (whichever are given; neither: ``min`` = 1). ``published`` (a
  ratio) and ``published_text`` are shown beside our figure. Not measured, naming the values that were
  measured, when either method has no successful row there;
- ``ratio_trend``: per experiment, the same ratio at the smallest and at the largest value of ``param``
  where both methods have successful rows (after the ``hparams`` filter); holds when the ratio at the
  largest value is at least the ratio at the smallest ("especially for large models"). With
  ``monotone = true``, the ratio at every such value, in order; holds when it never falls from one value to
  the next ("grows with the horizon": a rise then a fall does not).
- ``hparam_ratio``: per experiment (and per value of hyper-parameter ``by``, e.g. "reg_order", if given),
  ratio = median ``column`` (default ``test_nfe``) at the ``reference`` hyper-parameters / median at the
  ``at`` hyper-parameters, for ``method`` (default: each method of the experiment). Both are name → value
  maps as ``ratio``'s ``hparams`` ("max"/"min" pick the extreme value among the method's successful rows);
  a hyper-parameter missing from a row's record counts as unset (None), so ``reg = "none"`` also matches a
  run without ``reg``. Holds when the ratio is within ``min``/``max`` (neither: ``min`` = 1); with ``metric``
  also when the metric at ``at`` is no worse than at ``reference`` by more than ``abs_tol`` + ``rel_tol``·|ref|
  (higher is better for accuracies, lower otherwise);
- ``tradeoff``: per experiment and method, among the runs matching ``where`` (e.g. every R_K setting), the
  best ratio ``column``(reference)/``column``(setting) of the settings whose ``metric`` is within
  ``abs_tol``/``rel_tol`` of the reference's ("fewer NFE while nearly as accurate"); holds when it is at
  least ``min``. Settings are told apart by their hyper-parameters; medians over seeds. A ``reference`` that
  matches several settings (RNODE over λ) gets one verdict per setting, never a median pooling them. That best
  of N, read on the figures it was picked on, is biased upwards (winner's curse), so it is labelled "the best of
  N settings" and the verdict reads, where the records allow, a figure picked on other data: with two seeds or
  more, cross-fitted over seeds (picked on every other seed, read on the rest, both ways; the geometric mean of
  the two held-out reductions, each setting's metric within the allowed loss on its held-out seeds); with one
  seed, the reported figures of the setting picked on ``choose_column`` and ``choose_metric`` (training-side
  figures such as ``nfe_forward_per_iter`` and ``train_accuracy``) where the claim names them. Not measured where
  the setting picked on one half has no figures on the other (its runs there failed). ``column`` and
  ``choose_column`` must name a records column (:func:`record_columns`), or the paper is refused when it loads;

Paper packages register checks of their own with :func:`register_check` (e.g. TayNODE's
``order_matching``). Each check declares the parameters it reads, so a misspelled parameter is refused
when the paper is loaded, before any case runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nodebench.config import Param
from nodebench.errors import UserError, clip
from nodebench.intervals import ratio_interval
from nodebench.markdown import fmt_mib, seeds_text
from nodebench.metrics import METRICS
from nodebench.metrics import metric as metric_info
from nodebench.paper_code import REPORT_LOG, PaperCodeFailed, call
from nodebench.records import expand_hparams, measured_memory
from nodebench.registry import Registry, nearest
from nodebench.schema import COLUMNS as RECORD_SCHEMA
from nodebench.target import reached_text, seed_aggregate

#: Keys every ``[[claim]]`` may have besides its check's parameters.
COMMON_KEYS = ("id", "text", "source", "check", "published_text", "why_not_measured", "note")

CheckFn = Callable[[pd.DataFrame, dict, dict], "list[tuple[str, str, str]]"]


def fields_of(params) -> tuple[Param, ...]:
    """Declared parameters as :class:`~nodebench.config.Param`: a plain name is an optional parameter of any
    value. Names with a meaning across the project are checked by the loader (:mod:`nodebench.experiments`):
    ``method``/``baseline``/``methods`` (methods), ``metric`` (a metric), ``task`` (a task), ``experiments``
    (the paper's experiments)."""
    return tuple(p if isinstance(p, Param) else Param(p, "any") for p in params)


def check_fields(block: dict, fields: tuple[Param, ...], at: str, one_of: tuple[tuple[str, ...], ...] = ()) -> None:
    """Check a ``[[claim]]``/``[[analysis]]`` block's values against its declared ``fields``: each given
    value's type and range, each required one present, at least one of each group in ``one_of``, and
    ``min`` ≤ ``max`` when both are given. A problem is a one-line :class:`UserError` naming the parameter."""
    for f in fields:
        if block.get(f.name) is None:  # not given (a claim built in Python may spell that None)
            if f.required:
                raise UserError(f"{at}: needs {f.name!r} ({f.describe()})")
            continue
        f.check(block[f.name], f"{at}:")
    for group in one_of:
        if all(block.get(name) is None for name in group):
            raise UserError(f"{at}: needs {' or '.join(repr(n) for n in group)}")
    low, high = block.get("min"), block.get("max")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        raise UserError(f"{at}: min {low!r} is above max {high!r}; no value could hold")


@dataclass(frozen=True)
class Check:
    """A registered claim check: ``fn(records, tables, claim) -> [(scope, measured, verdict)]``, the
    parameters a claim using it may set (names) and their declarations (:class:`~nodebench.config.Param`: type, range,
    required), groups of parameters of which a claim must set at least one (``one_of``), and the analysis
    tables it reads whatever the claim says (``tables``; a claim's own ``table`` parameter names one too), and the
    parameters that name a records column (``columns``: the check reads them from the records, never a table)."""

    name: str
    fn: CheckFn
    params: tuple[str, ...] = ()
    fields: tuple[Param, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()

    def validate(self, claim: dict, at: str) -> None:
        """Refuse a claim's missing, mistyped or out-of-range parameters, and a ``columns`` parameter naming no
        column a records file can hold (:func:`record_columns`), before any case runs."""
        check_fields(claim, self.fields, at, self.one_of)
        valid = record_columns()
        for name in self.columns:
            if isinstance(claim.get(name), str) and claim[name] not in valid:
                raise UserError(f"{at}: {name} {claim[name]!r} is not a records column{nearest(claim[name], valid)}; "
                                f"valid: {', '.join(valid)}")

    def tables_read(self, claim: dict) -> tuple[str, ...]:
        """The analysis tables (not the records) the check reads for ``claim``."""
        named = (claim["table"],) if claim.get("table") else self.tables
        return tuple(name for name in named if name != "records")


CHECKS: Registry[Check] = Registry("claim check")


def record_columns() -> list[str]:
    """The numeric columns a records file can hold, known before any case runs: the schema's
    (:data:`nodebench.schema.COLUMNS`) and the registered metrics (:data:`nodebench.metrics.METRICS`, with those
    paper packages register for their tasks). Columns only a run reveals (SNODE's ``snode_*``, a task's
    unregistered extras) are not among them."""
    return sorted({c.name for c in RECORD_SCHEMA if c.kind in ("int", "float")} | set(METRICS))


def register_check(name: str, params=(), one_of: tuple[tuple[str, ...], ...] = (),
                   tables: tuple[str, ...] = (), columns: tuple[str, ...] = ()) -> Callable[[CheckFn], CheckFn]:
    """Decorator registering ``fn`` as claim check ``name`` accepting ``params``: names (any value,
    optional) or :class:`~nodebench.config.Param` declarations (typed, ranged, possibly required); ``one_of``: groups of
    parameters of which a claim must give at least one; ``tables``: the analysis tables it always reads;
    ``columns``: the parameters naming a records column (:func:`record_columns`)."""
    def add(fn: CheckFn) -> CheckFn:
        fields = fields_of(params)
        CHECKS.register(name, Check(name, fn, tuple(f.name for f in fields), fields, tuple(one_of), tuple(tables),
                                    tuple(columns)))
        return fn
    return add


# Declarations shared by the checks below.
METHOD = Param("method", "str", required=True)
BASELINE = Param("baseline", "str", required=True)
EXPERIMENTS = Param("experiments", "strs")
BOUND = {name: Param(name, "float") for name in ("min", "max")}
TOLS = (Param("abs_tol", "float", low=0.0), Param("rel_tol", "float", low=0.0))
COLUMN = Param("column", "str")
PUBLISHED = Param("published", "float", positive=True)
HPARAMS = Param("hparams", "table")


HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured at this preset"
#: The verdict of a claim whose check failed while the report was built (:mod:`nodebench.paper_code`).
NOT_CHECKED = "not checked: its check failed"


@dataclass
class Verdict:
    claim_id: str
    claim: str
    source: str
    scope: str
    measured: str
    verdict: str


#: Slack of a threshold comparison, relative to the numbers compared: a figure equal to its bound up to
#: floating-point rounding (3.3 / 1.1 against 3; accuracies 0.9164 − 0.8964 against 0.02 points) is at the
#: bound, not past it.
SLACK = 1e-9


def at_least(value: float, bound: float, scale: float = 0.0) -> bool:
    """``value ≥ bound`` up to rounding (:data:`SLACK` relative to ``value``, ``bound`` and ``scale``, the size
    of the numbers ``value`` was computed from)."""
    return value >= bound - SLACK * max(abs(value), abs(bound), abs(scale))


def at_most(value: float, bound: float, scale: float = 0.0) -> bool:
    """``value ≤ bound`` up to rounding (see :func:`at_least`)."""
    return value <= bound + SLACK * max(abs(value), abs(bound), abs(scale))


def within(value: float, low: float | None, high: float | None) -> bool:
    """``low ≤ value ≤ high`` up to rounding, a missing bound not checked."""
    return (low is None or at_least(value, low)) and (high is None or at_most(value, high))


def no_worse(metric: str, value: float, reference: float, allowed: float) -> bool:
    """``value`` is worse than ``reference`` by at most ``allowed`` in ``metric``'s direction, up to rounding
    of the difference (relative to the values)."""
    return at_most(metric_info(metric).worse_by(value, reference), allowed, max(abs(value), abs(reference)))


def _ok(records: pd.DataFrame) -> pd.DataFrame:
    return records[records["status"] == "ok"] if not records.empty else records


def _median(records: pd.DataFrame, experiment: str, method: str, column: str) -> float | None:
    rows = records[(records["experiment"] == experiment) & (records["method"] == method)]
    if rows.empty or column not in rows or rows[column].isna().all():
        return None
    return float(rows[column].median())


def _pooled(rows: pd.DataFrame, methods, hint: str = "") -> str | None:
    """Why ``rows`` are not the seeds of one configuration per method, or ``None``: a median over one method's
    rows that differ in a hyper-parameter (``width`` 5 and 20 in one experiment) would pool configurations as
    if they were seeds. The reason names the varied hyper-parameters and their values, then ``hint``."""
    for name in methods:
        own = expand_hparams(rows[rows["method"] == name].drop(
            columns=[c for c in rows if str(c).startswith("hp_")]))
        varied = [c for c in own if str(c).startswith("hp_") and own[c].map(repr).nunique() > 1]
        if varied:
            values = "; ".join(_values_text(own, c, c[3:]) for c in varied)
            return f"{name} ran several configurations here ({values}), not one to compare{hint}"
    return None


def experiments_of(records: pd.DataFrame, claim: dict) -> list[str]:
    if claim.get("experiments"):
        return list(claim["experiments"])
    return sorted(records["experiment"].unique()) if not records.empty else []


@register_check("time_reduction", params=(BASELINE, EXPERIMENTS, BOUND["max"], METHOD,
                                           Param("min", "float", required=True)))
def time_reduction(records, tables, claim) -> list[tuple[str, str, str]]:
    out = []
    method, base = claim["method"], claim["baseline"]
    for exp in experiments_of(records, claim):
        pooled = _pooled(records[records["experiment"] == exp], (method, base))
        if pooled:
            out.append((exp, pooled, NOT_MEASURED))
            continue
        t_m, t_b = _median(records, exp, method, "train_wall_s"), _median(records, exp, base, "train_wall_s")
        if t_m is None or t_b is None:
            out.append((exp, f"{method} or {base} has no successful run", NOT_MEASURED))
            continue
        if t_b == 0:
            out.append((exp, f"{base}'s median train_wall_s is 0: no reduction", NOT_MEASURED))
            continue
        reduction = 1.0 - t_m / t_b
        text = f"{method} {t_m:.3g} s vs {base} {t_b:.3g} s: reduction {reduction:.1%}"
        if "max" in claim and not at_most(reduction, claim["max"], 1.0):
            text += f" (above the published range's top, {claim['max']:.0%})"
        out.append((exp, text, HOLDS if at_least(reduction, claim["min"], 1.0) else FAILS))
    return out


@register_check("wins", params=(BASELINE, EXPERIMENTS, Param("fraction", "float", low=0.0, high=1.0, required=True),
                                 METHOD))
def wins(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base = claim["method"], claim["baseline"]
    measured, pooled = [], []
    for exp in experiments_of(records, claim):
        if _pooled(records[records["experiment"] == exp], (method, base)):
            pooled.append(exp)
            continue
        t_m, t_b = _median(records, exp, method, "train_wall_s"), _median(records, exp, base, "train_wall_s")
        if t_m is not None and t_b is not None:
            measured.append((exp, t_m < t_b))
    if not measured:
        why = f"; {', '.join(pooled)} ran several configurations of a method" if pooled else ""
        return [("all", f"no experiment ran both methods in one configuration{why}", NOT_MEASURED)]
    won = [exp for exp, faster in measured if faster]
    fraction = len(won) / len(measured)
    text = f"{method} faster in {len(won)} of {len(measured)} experiments measured ({', '.join(won) or 'none'})" + (
        f"; left out, several configurations of a method: {', '.join(pooled)}" if pooled else "")
    return [("all", text, HOLDS if at_least(fraction, claim["fraction"], 1.0) else FAILS)]


@register_check("metric_parity", params=(*TOLS, BASELINE, EXPERIMENTS, HPARAMS, METHOD,
                                         Param("metric", "str", required=True)))
def metric_parity(records, tables, claim) -> list[tuple[str, str, str]]:
    out = []
    method, base, metric = claim["method"], claim["baseline"], claim["metric"]
    records = expand_hparams(records)
    for exp in experiments_of(records, claim):
        rows, chosen, problem = _select(records[records["experiment"] == exp], dict(claim.get("hparams", {})),
                                        (method, base))
        where = f" at {', '.join(chosen)}" if chosen else ""
        problem = problem or _pooled(rows, (method, base), "; select one with hparams")
        if problem:
            out.append((exp, f"{metric}{where}: {problem}", NOT_MEASURED))
            continue
        m, b = _median(rows, exp, method, metric), _median(rows, exp, base, metric)
        if m is None or b is None:
            out.append((exp, f"{metric}{where} missing for {method} or {base}", NOT_MEASURED))
            continue
        allowed = claim.get("abs_tol", 0.0) + claim.get("rel_tol", 0.0) * abs(b)
        text = f"{metric}{where}: {method} {m:.4g} vs {base} {b:.4g} (allowed excess {allowed:.3g})"
        out.append((exp, text, HOLDS if no_worse(metric, m, b, allowed) else FAILS))
    return out


@register_check("table_threshold", params=(Param("agg", "str"), Param("column", "str", required=True), EXPERIMENTS,
                                            BOUND["max"], BOUND["min"], Param("table", "str", required=True),
                                            Param("where", "table")), one_of=(("min", "max"),))
def table_threshold(records, tables, claim) -> list[tuple[str, str, str]]:
    table = records if claim["table"] == "records" else tables.get(claim["table"], pd.DataFrame())
    if table.empty:
        return [("all", f"no {claim['table']} table in this run", NOT_MEASURED)]
    if "experiment" not in table and "case_id" in table and not records.empty:
        table = table.merge(records[["case_id", "experiment", "method"]], on="case_id", how="left")
    for key, value in claim.get("where", {}).items():
        table = table[table[key] == value]
    if claim.get("experiments") and "experiment" in table:
        table = table[table["experiment"].isin(claim["experiments"])]
    out = []
    groups = table.groupby("experiment") if "experiment" in table else [("all", table)]
    for exp, rows in groups:
        values = rows[claim["column"]]
        missing = int(values.isna().sum())
        if missing:  # pandas would aggregate the other rows: the claim would hold on whichever were measured
            out.append((str(exp), f"{claim['column']} not measured (NaN) in {missing} of {len(values)} row(s)",
                        NOT_MEASURED))
            continue
        value = float(values.agg(claim.get("agg", "median")))
        if "max" in claim:
            ok, bound = at_most(value, claim["max"]), f"≤ {claim['max']:g}"
        else:
            ok, bound = at_least(value, claim["min"]), f"≥ {claim['min']:g}"
        out.append((str(exp), f"{claim['column']} = {value:.3g} (needs {bound})", HOLDS if ok else FAILS))
    return out or [("all", "no matching rows", NOT_MEASURED)]


SELECTORS = ("max", "min")


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _show(value) -> str:
    number = _number(value)
    return f"{number:g}" if number is not None else str(value)


def _hp_column(records: pd.DataFrame, name: str) -> str | None:
    """The records' column holding hyper-parameter ``name`` (``hp_<name>``, else a plain column)."""
    return next((c for c in (f"hp_{name}", name) if c in records), None)


def _equals(series: pd.Series, value) -> pd.Series:
    number = _number(value)
    if number is None:
        return series.map(lambda v: v == value)
    return series.map(lambda v: _number(v) is not None and abs(_number(v) - number) <= 1e-9 * max(abs(number), 1e-300))


def _values(rows: pd.DataFrame, column: str) -> list:
    """The distinct values of ``column`` in ``rows``, numbers sorted first."""
    distinct = list(dict.fromkeys(v for v in rows[column]
                                  if v is not None and not (isinstance(v, float) and pd.isna(v))))
    return sorted(distinct, key=lambda v: (_number(v) is None, _number(v) or 0.0, str(v)))


def _values_text(rows: pd.DataFrame, column: str, name: str) -> str:
    values = _values(rows, column) if column in rows else []
    return f"{name} {', '.join(_show(v) for v in values)}" if values else f"no {name} value"


def _select(rows: pd.DataFrame, filters: dict, methods: tuple[str, str]) -> tuple[pd.DataFrame, list[str], str | None]:
    """Rows matching ``filters`` (fixed values first, then the ``max``/``min`` selectors over the rows of
    ``methods``), the chosen settings as text ("width 3000"), and why nothing matched (or None)."""
    chosen: list[str] = []
    ordered = sorted(filters.items(), key=lambda item: item[1] in SELECTORS)
    for name, value in ordered:
        column = _hp_column(rows, name)
        compared = rows[rows["method"].isin(methods)]
        if value in SELECTORS and (column is None or compared[column].isna().all()):
            chosen.append(f"the task's default {name}")  # not varied here: the single measured setting
            continue
        if column is None:
            return rows.iloc[0:0], chosen, f"hyper-parameter {name!r} not recorded"
        if value in SELECTORS:
            shared = [set(_values(compared[compared["method"] == m], column)) for m in methods]
            both = set.intersection(*shared) if all(shared) else set()
            # the largest (smallest) value both methods ran; else any, so that the reason names what is missing
            candidates = [v for v in _values(compared, column) if _number(v) is not None and (not both or v in both)]
            values = sorted(candidates, key=_number)
            if not values:
                return rows.iloc[0:0], chosen, f"no successful run of {' or '.join(methods)} with a numeric {name}"
            value = values[-1] if value == "max" else values[0]
        matched = rows[_equals(rows[column], value)]
        chosen.append(f"{name} {_show(value)}")
        if matched.empty:
            return matched, chosen, f"{name} {_show(value)} not measured (measured: {_values_text(rows, column, name)})"
        rows = matched
    return rows, chosen, None


def _ratio(rows: pd.DataFrame, method: str, base: str, column: str) -> tuple[float | None, float | None, float | None]:
    """(median baseline, median method, baseline/method) of ``column`` over the successful seeds."""
    values = []
    for name in (base, method):
        picked = rows[rows["method"] == name]
        values.append(float(picked[column].median()) if column in picked and picked[column].notna().any() else None)
    b, m = values
    return b, m, (b / m if b is not None and m not in (None, 0.0) else None)


def _published(claim: dict) -> str:
    number, text = claim.get("published"), claim.get("published_text")
    if number is not None:
        return f"published: {number:.3g}×" + (f"; {text}" if text else "")
    return f"published: {text}" if text else ""


def _bounds(claim: dict) -> tuple[float | None, float | None]:
    low, high = claim.get("min"), claim.get("max")
    return (1.0 if low is None and high is None else low), high


def _quantity(value: float, column: str) -> str:
    """A median of ``column`` with its unit, three significant digits: seconds for ``*_s``, MiB for ``*_bytes``
    (a byte count read "1.12e+07" with no unit), else the bare number."""
    if column.endswith("_bytes"):
        return f"{fmt_mib(value)} MiB"
    return f"{value:.3g}" + (" s" if column.endswith("_s") else "")


@register_check("ratio", params=(BASELINE, COLUMN, EXPERIMENTS, HPARAMS, BOUND["max"], METHOD, BOUND["min"], PUBLISHED))
def ratio(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base, column = claim["method"], claim["baseline"], claim.get("column", "train_wall_s")
    label = f"{base}/{method}" + ("" if column == "train_wall_s" else f" {column}")
    low, high = _bounds(claim)
    records = expand_hparams(records)
    out = []
    for exp in experiments_of(records, claim):
        exp_rows = records[records["experiment"] == exp]
        filters = dict(claim.get("hparams", {}))
        rows, chosen, problem = _select(exp_rows, filters, (method, base))
        where = f" at {', '.join(chosen)}" if chosen else ""
        published = _published(claim)
        problem = problem or _pooled(rows, (method, base), "; select one with hparams")
        if problem is None:
            b, m, value = _ratio(rows, method, base, column)
            if value is None:
                missing = method if m in (None, 0.0) else base
                own = exp_rows[exp_rows["method"] == missing]
                measured = "; ".join(_values_text(own, _hp_column(own, name), name) for name in filters)
                ran = rows.loc[rows["method"] == missing, column] if column in rows else pd.Series(dtype=float)
                if len(ran) and ran.isna().all():  # it ran, but the column holds no reading
                    problem = f"{column} not measured for {missing}{where}"
                elif len(ran):
                    problem = f"{missing}'s median {column} is 0{where}: no ratio"
                else:
                    problem = f"no successful {missing} run{where}" + (f" ({missing} measured at {measured})"
                                                                      if filters and not own.empty else "")
        if problem is not None:
            out.append((exp, f"{label}{where}: {problem}" + (f" ({published})" if published else ""), NOT_MEASURED))
            continue
        needs = " and ".join(f"{op} {bound:g}" for op, bound in (("≥", low), ("≤", high)) if bound is not None)
        medians = f"{base} {_quantity(b, column)}, {method} {_quantity(m, column)}"
        notes = "; ".join(x for x in (medians, f"needs {needs}", published) if x)
        ok = within(value, low, high)
        spread = ratio_interval(*(rows.loc[rows["method"] == name, column] for name in (base, method)))
        shown = f"{value:.3g}× [{spread.low:.3g}, {spread.high:.3g}] ({spread.seeds})" if spread.n > 1 else \
            f"{value:.3g}× ({spread.seeds})"
        out.append((exp, f"{label}{where}: {shown} ({notes})", HOLDS if ok else FAILS))
    return out or [("all", f"no successful run of {method} or {base}", NOT_MEASURED)]


@register_check("ratio_trend", params=(BASELINE, COLUMN, EXPERIMENTS, HPARAMS, METHOD, Param("monotone", "bool"),
                                        Param("param", "str", required=True), PUBLISHED))
def ratio_trend(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base, param = claim["method"], claim["baseline"], claim["param"]
    column = claim.get("column", "train_wall_s")
    label = f"{base}/{method}" + ("" if column == "train_wall_s" else f" {column}")
    records = expand_hparams(records)
    out = []
    for exp in experiments_of(records, claim):
        rows, chosen, problem = _select(records[records["experiment"] == exp], dict(claim.get("hparams", {})),
                                        (method, base))
        where = f" at {', '.join(chosen)}" if chosen else ""
        param_col = _hp_column(rows, param)
        if problem is None and param_col is None:
            problem = f"hyper-parameter {param!r} not recorded"
        if problem is None:
            both = [v for v in _values(rows[rows["method"] == method], param_col)
                    if v in _values(rows[rows["method"] == base], param_col)]
            if len(both) < 2:
                measured = "; ".join(f"{name}: {_values_text(rows[rows['method'] == name], param_col, param)}"
                                     for name in (method, base))
                problem = f"needs two {param} values run by both methods ({measured})"
        if problem is not None:
            out.append((exp, f"{label}{where}: {problem}", NOT_MEASURED))
            continue
        values = both if claim.get("monotone") else [both[0], both[-1]]
        parts = {v: rows[_equals(rows[param_col], v)] for v in values}
        pooled = next(filter(None, (_pooled(part, (method, base), "; fix the others with hparams")
                                    for part in parts.values())), None)
        if pooled:
            out.append((exp, f"{label}{where}: {pooled}", NOT_MEASURED))
            continue
        ratios = [_ratio(part, method, base, column)[2] for part in parts.values()]
        if None in ratios:
            out.append((exp, f"{label}{where}: {column} missing at {param} "
                        f"{' or '.join(_show(v) for v, r in zip(values, ratios) if r is None)}", NOT_MEASURED))
            continue
        needs = "no fall from one value to the next" if claim.get("monotone") else "the second ≥ the first"
        published = _published(claim)
        text = (f"{label}{where}: " + " → ".join(f"{r:.3g}× at {param} {_show(v)}" for v, r in zip(values, ratios))
                + f" (needs {needs}" + (f"; {published}" if published else "") + ")")
        rises = all(at_least(later, earlier) for earlier, later in zip(ratios, ratios[1:]))
        out.append((exp, text, HOLDS if rises else FAILS))
    return out or [("all", f"no successful run of {method} or {base}", NOT_MEASURED)]


def _unset(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _select_hparams(rows: pd.DataFrame, filters: dict) -> tuple[pd.DataFrame, list[str], str | None]:
    """Rows matching ``filters`` (hyper-parameter name → value; "max"/"min" pick the extreme numeric value
    among ``rows`` after the fixed filters; the value "none" also matches an unset hyper-parameter), the
    chosen settings as text, and why nothing matched (or None)."""
    chosen: list[str] = []
    for name, value in sorted(filters.items(), key=lambda item: item[1] in SELECTORS):
        column = _hp_column(rows, name)
        if column is None:
            if value == "none":
                chosen.append(f"{name} none")
                continue
            return rows.iloc[0:0], chosen, f"hyper-parameter {name!r} not recorded"
        if value in SELECTORS:
            values = [v for v in _values(rows, column) if _number(v) is not None]
            if not values:
                return rows.iloc[0:0], chosen, f"no run with a numeric {name}"
            value = values[-1] if value == "max" else values[0]
        mask = _equals(rows[column], value)
        if value == "none":
            mask = mask | rows[column].map(_unset)
        chosen.append(f"{name} {_show(value)}")
        if not mask.any():
            measured = _values_text(rows, column, name)
            return rows.iloc[0:0], chosen, f"{name} {_show(value)} not measured (measured: {measured})"
        rows = rows[mask]
    return rows, chosen, None


def _col_median(rows: pd.DataFrame, column: str) -> float | None:
    if rows.empty or column not in rows or rows[column].isna().all():
        return None
    return float(rows[column].median())


def _methods_of(rows: pd.DataFrame, claim: dict) -> list[str]:
    return [claim["method"]] if claim.get("method") else list(dict.fromkeys(rows["method"]))


def _per_method(records: pd.DataFrame, claim: dict, out: list):
    """(scope, rows) per experiment and method of a claim, with hyper-parameter columns; an experiment with
    no successful run is reported in ``out`` as not measured. The scope names the method only when the
    claim does not fix it and the experiment ran several."""
    records = expand_hparams(records)
    for exp in experiments_of(records, claim):
        exp_rows = records[records["experiment"] == exp]
        if exp_rows.empty:
            out.append((exp, "no successful run", NOT_MEASURED))
            continue
        for method in _methods_of(exp_rows, claim):
            named = claim.get("method") or exp_rows["method"].nunique() == 1
            yield (exp if named else f"{exp}, {method}"), exp_rows[exp_rows["method"] == method]


@register_check("hparam_ratio", params=(*TOLS, Param("at", "table"), Param("by", "str"), COLUMN, EXPERIMENTS,
                                         BOUND["max"], Param("method", "str"), Param("metric", "str"), BOUND["min"],
                                         PUBLISHED, Param("reference", "table")))
def hparam_ratio(records, tables, claim) -> list[tuple[str, str, str]]:
    column = claim.get("column", "test_nfe")
    low, high = _bounds(claim)
    metric = claim.get("metric")
    out = []
    for base_scope, rows in _per_method(records, claim, out):
        by = claim.get("by")
        by_col = _hp_column(rows, by) if by else None
        groups = [(None, rows)] if by_col is None else [
            (v, rows[_equals(rows[by_col], v) | rows[by_col].map(_unset)]) for v in _values(rows, by_col)]
        for value, group in groups:
            scope = base_scope + ("" if value is None else f", {by} {_show(value)}")
            at, at_text, problem = _select_hparams(group, dict(claim.get("at", {})))
            ref, ref_text, problem_ref = _select_hparams(group, dict(claim.get("reference", {})))
            label = f"{column} ({', '.join(ref_text)}) / ({', '.join(at_text)})"
            problem = problem or problem_ref or next(filter(None, (
                _pooled(part, part["method"].unique(), "; narrow 'at'/'reference'") for part in (at, ref))), None)
            a, r = _col_median(at, column), _col_median(ref, column)
            if problem is None and (a is None or r is None):
                problem = f"{column} missing"
            if problem is None and a == 0:
                problem = f"the median {column} at ({', '.join(at_text)}) is 0: no ratio"
            if problem is not None:
                out.append((scope, f"{label}: {problem}", NOT_MEASURED))
                continue
            value_ = r / a
            ok = within(value_, low, high)
            needs = " and ".join(f"{op} {bound:g}" for op, bound in (("≥", low), ("≤", high)) if bound is not None)
            parts = [f"{r:.4g} vs {a:.4g}", f"needs {needs}"]
            if metric:
                ma, mr = _col_median(at, metric), _col_median(ref, metric)
                if ma is None or mr is None:
                    out.append((scope, f"{label}: {value_:.3g}×; {metric} missing", NOT_MEASURED))
                    continue
                allowed = claim.get("abs_tol", 0.0) + claim.get("rel_tol", 0.0) * abs(mr)
                parts.append(f"{metric} {ma:.4g} vs {mr:.4g} (allowed loss {allowed:.3g})")
                ok = ok and no_worse(metric, ma, mr, allowed)
            published = _published(claim)
            if published:
                parts.append(published)
            out.append((scope, f"{label}: {value_:.3g}× ({'; '.join(parts)})", HOLDS if ok else FAILS))
    return out or [("all", "no experiment measured", NOT_MEASURED)]


def _setting_text(row: pd.Series, names: list[str]) -> str:
    return ", ".join(f"{n[3:]} {_show(row[n])}" for n in names if not _unset(row[n])) or "default"


def _varied(rows: pd.DataFrame) -> list[str]:
    """The hyper-parameter columns whose value differs among ``rows``."""
    return [c for c in rows if str(c).startswith("hp_") and rows[c].map(str).nunique() > 1]


def _settings(rows: pd.DataFrame, names: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """``rows`` split into the settings the hyper-parameter columns ``names`` tell apart (the seeds of one
    setting stay together), each named by its values."""
    keys = rows[names].map(str).agg("|".join, axis=1) if names else pd.Series("", index=rows.index)
    return [(_setting_text(group.iloc[0], names), group) for _, group in rows.groupby(keys, sort=False)]


def _tradeoff_pick(ref: pd.DataFrame, settings: list[tuple[str, pd.DataFrame]], column: str, metric: str,
                   claim: dict) -> dict | None:
    """The setting :func:`tradeoff` picks among ``settings`` ((name, rows) pairs) against ``ref``, on these rows'
    medians of ``column`` and ``metric``: the largest reduction median(ref)/median(setting) among the settings whose
    metric is within the allowed loss of the reference's (ties: the better metric, then the first). A dict with the
    reference's medians (``ref``), the allowed loss, ``best`` and ``any`` (the largest reduction whatever the
    metric) as (reduction, metric, name, position in ``settings``) or None, and ``n`` the settings compared; None
    where the reference lacks either median. The position, not the name, tells the setting's rows: two settings may
    display alike (reg_lambda 0.1 and 0.1000001 both read "0.1")."""
    r, mr = _col_median(ref, column), _col_median(ref, metric)
    if r is None or mr is None:
        return None
    allowed = claim.get("abs_tol", 0.0) + claim.get("rel_tol", 0.0) * abs(mr)
    pick = {"ref": (r, mr), "allowed": allowed, "best": None, "any": None, "n": 0}
    best_key = any_key = None
    for i, (setting, group) in enumerate(settings):
        c, mc = _col_median(group, column), _col_median(group, metric)
        if c is None or mc is None or c == 0:
            continue
        pick["n"] += 1
        key = (r / c, -metric_info(metric).worse_by(mc, mr))
        if any_key is None or key > any_key:
            any_key, pick["any"] = key, (r / c, mc, setting, i)
        if no_worse(metric, mc, mr, allowed) and (best_key is None or key > best_key):
            best_key, pick["best"] = key, (r / c, mc, setting, i)
    return pick


def _reported(ref: pd.DataFrame, rows: pd.DataFrame, setting: str, claim: dict) -> tuple[str, bool, float | None]:
    """(text, within, reduction) of the claim's ``column`` and ``metric`` at one ``setting`` (``rows``, picked on
    other figures) against ``ref``: ``within`` when the metric is within the allowed loss (the caller compares the
    reduction, or the figure it makes of several, with ``min``)."""
    column, metric = claim.get("column", "test_nfe"), claim["metric"]
    pick = _tradeoff_pick(ref, [(setting, rows)], column, metric, claim)
    if pick is None or pick["any"] is None:
        return f"{setting}: {column} or {metric} not measured there", False, None
    value, mc = pick["any"][:2]
    within_loss = pick["best"] is not None
    text = (f"{value:.3g}× at {setting} ({metric} {mc:.4g} vs {pick['ref'][1]:.4g}, "
            f"{'within' if within_loss else 'beyond'} the allowed loss {pick['allowed']:.3g})")
    return text, within_loss, value


def _cross_fitted(ref: pd.DataFrame, settings: list[tuple[str, pd.DataFrame]], seeds: list, choose: tuple[str, str],
                  claim: dict) -> tuple[str, str]:
    """(text, verdict) of :func:`tradeoff` cross-fitted over ``seeds`` (those of the reference and the candidates):
    the setting is picked on every other seed (on ``choose``: a column and a metric), its reduction and metric are
    read on the remaining seeds, then the halves swap; the figure is the geometric mean of the two held-out
    reductions. Holds when that is at least ``min`` and the held-out metric is within the allowed loss both ways;
    not measured where a half read nothing (the picked setting has no figures on the held-out seeds) and no other
    half already fails."""
    parts, values, holds, unmeasured = [], [], True, False
    halves = (seeds[0::2], seeds[1::2])
    for chosen_on, held in (halves, halves[::-1]):
        pick = _tradeoff_pick(ref[ref["seed"].isin(chosen_on)],
                              [(s, rows[rows["seed"].isin(chosen_on)]) for s, rows in settings], *choose, claim)
        if pick is None or pick["best"] is None:
            parts.append(f"no setting within the allowed loss on {seeds_text(chosen_on)}")
            holds = False
            continue
        setting, rows = settings[pick["best"][3]]
        text, within, value = _reported(ref[ref["seed"].isin(held)], rows[rows["seed"].isin(held)], setting, claim)
        unmeasured = unmeasured or value is None
        holds = holds and (within or value is None)  # the reductions are judged by their geometric mean, below
        values += [] if value is None else [value]
        parts.append(f"{text}, picked on {seeds_text(chosen_on)}, read on {seeds_text(held)}")
    if len(values) < 2:
        return "cross-fitted over seeds: " + "; ".join(parts), NOT_MEASURED if holds and unmeasured else FAILS
    mean = math.exp(sum(math.log(v) for v in values) / len(values))
    return (f"cross-fitted over {len(seeds)} seeds (the setting picked on half of them, its figures read on the "
            f"other half, both ways): {mean:.3g}× (geometric mean of {'; '.join(parts)})"), \
        HOLDS if holds and at_least(mean, claim.get("min", 1.0)) else FAILS


def _best_tradeoff(ref: pd.DataFrame, ref_text: str, cand: pd.DataFrame, claim: dict) -> tuple[str, str]:
    """(measured, verdict) of :func:`tradeoff` against one reference setting ``ref``. The best ``column`` reduction
    among N candidate settings within the allowed ``metric`` loss, read on the figures it was picked on, is biased
    upwards (winner's curse: with many settings, noise alone clears a threshold); it is always shown, labelled as
    the best of N. The verdict reads a figure picked on other data where the records allow: cross-fitted over
    seeds (:func:`_cross_fitted`) where the reference has two seeds or more, else, where the claim names
    ``choose_column`` / ``choose_metric`` (e.g. ``nfe_forward_per_iter``, ``train_accuracy``) and they are recorded,
    the reported figures of the setting picked on those; else the best of N, so labelled."""
    column, metric = claim.get("column", "test_nfe"), claim["metric"]
    low = claim.get("min", 1.0)
    names = _varied(cand) or [c for c in cand if c.startswith("hp_reg")]
    settings = _settings(cand, names)
    same = _tradeoff_pick(ref, settings, column, metric, claim)
    if same is None:
        return f"reference {ref_text}: {column} or {metric} missing at the reference", NOT_MEASURED
    if same["any"] is None:
        return f"{column} or {metric} missing for every candidate", NOT_MEASURED
    (r, mr), allowed, best, n = same["ref"], same["allowed"], same["best"], same["n"]
    published = _published(claim)
    tail = f"; reference ({ref_text}): {column} {r:.4g}, {metric} {mr:.4g}; needs ≥ {low:g}" + (
        f"; {published}" if published else "")
    if best is None:
        text = (f"no setting within the allowed {metric} loss {allowed:.3g}; largest {column} reduction "
                f"{same['any'][0]:.3g}× at {same['any'][2]} with {metric} {same['any'][1]:.4g}")
        return text + tail, FAILS
    in_sample = (f"{best[0]:.3g}× at {best[2]} ({metric} {best[1]:.4g}), the best of {n} settings picked on the "
                 "figures it reports")
    choose = (claim.get("choose_column", column), claim.get("choose_metric", metric))
    missing = [c for c in dict.fromkeys(choose) if any(c not in rows or rows[c].isna().all() for rows in (ref, cand))]
    seeds = sorted(set(ref["seed"].dropna()) & set(cand["seed"].dropna())) if "seed" in ref and "seed" in cand else []
    if len(seeds) >= 2:
        text, verdict = _cross_fitted(ref, settings, seeds, (column, metric) if missing else choose, claim)
    elif choose != (column, metric) and not missing:
        pick = _tradeoff_pick(ref, settings, *choose, claim)
        if pick["best"] is None:
            text, verdict = f"no setting within the allowed {choose[1]} loss {pick['allowed']:.3g}", FAILS
        else:
            text, within, value = _reported(ref, settings[pick["best"][3]][1], pick["best"][2], claim)
            verdict = HOLDS if within and at_least(value, low) else FAILS
            text = f"{column} reduction of the setting picked on {choose[0]} and {choose[1]}: {text}"
    else:
        note = f"{', '.join(missing)} not recorded; " if missing and choose != (column, metric) else ""
        text = (f"best {column} reduction within the allowed {metric} loss {allowed:.3g}: {in_sample} ({note}one seed "
                f"and no other figure to pick on: noise alone can raise a best of {n})")
        return text + tail, HOLDS if at_least(best[0], low) else FAILS
    return f"{text}; picked on the reported figures instead: {in_sample}" + tail, verdict


@register_check("tradeoff", params=(*TOLS, COLUMN, EXPERIMENTS, Param("method", "str"),
                                     Param("metric", "str", required=True), BOUND["min"], PUBLISHED,
                                     Param("reference", "table"), Param("where", "table"),
                                     Param("choose_column", "str"), Param("choose_metric", "str")),
                columns=("column", "choose_column"))
def tradeoff(records, tables, claim) -> list[tuple[str, str, str]]:
    out = []
    for scope, rows in _per_method(records, claim, out):
        ref, ref_text, problem = _select_hparams(rows, dict(claim.get("reference", {})))
        cand, _, problem_c = _select_hparams(rows, dict(claim.get("where", {})))
        problem = problem or problem_c or ("no candidate setting" if cand.empty else None)
        if problem is not None:
            out.append((scope, f"reference {', '.join(ref_text)}: {problem}", NOT_MEASURED))
            continue
        varied = _varied(ref)  # a reference swept over λ (RNODE): one verdict per setting, never their median
        in_order = ref.sort_values(varied, key=lambda values: values.map(lambda v: _number(v) or 0.0))
        for setting, rows_at in _settings(in_order, varied):
            text = ", ".join(ref_text + ([setting] if varied else []))
            scope_at = f"{scope}, against {setting}" if varied else scope
            out.append((scope_at, *_best_tradeoff(rows_at, text, cand, claim)))
    return out or [("all", "no experiment measured", NOT_MEASURED)]


@register_check("time_to_target", params=(BASELINE, EXPERIMENTS, METHOD, BOUND["min"], PUBLISHED),
                tables=("time_to_target",))
def time_to_target(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base = claim["method"], claim["baseline"]
    table = tables.get("time_to_target", pd.DataFrame())
    if table.empty:
        return [("all", "no time_to_target table in this run: its analysis did not run at this preset (none of "
                 "its experiments ran) or found no monitored curves", NOT_MEASURED)]
    if claim.get("experiments"):
        table = table[table["experiment"].isin(claim["experiments"])]
    if (table["versus"] != "").any():  # pairwise targets: the rows of this pair
        table = table[table["versus"].isin([base, method])]
    out = []
    for (exp, config), rows in table.groupby(["experiment", "config"], sort=False):
        scope = f"{exp} {config}".strip()
        times = {m: rows.loc[rows["method"] == m, "time_to_target_s"] for m in (method, base)}
        target = float(rows["target"].iloc[0])
        missing = [m for m, t in times.items() if t.empty]
        if missing:
            out.append((scope, f"no time_to_target rows for {', '.join(missing)}", NOT_MEASURED))
            continue
        t_method, t_base = seed_aggregate(times[method]), seed_aggregate(times[base])
        shown = [f"{t:.3g} s" if math.isfinite(t) else "not reached" for t in (t_base, t_method)]
        seeds = f"{base} {reached_text(times[base])}, {method} {reached_text(times[method])}"
        text = f"{base}/{method} time to target {target:.3g}: {shown[0]} / {shown[1]}"
        if math.isinf(t_base) and math.isinf(t_method):
            out.append((scope, f"{text} ({seeds})", NOT_MEASURED))
            continue
        value = t_base / t_method if t_method > 0 else math.inf
        low = claim.get("min", 1.0)
        published = _published(claim)
        text += f" = {value:.3g}× ({seeds}; needs ≥ {low:g}" + (f"; {published}" if published else "") + ")"
        out.append((scope, text, HOLDS if at_least(value, low) else FAILS))
    return out or [("all", f"no time_to_target rows for {method} or {base}", NOT_MEASURED)]


def _every_experiment(results: list[tuple[str, str, str]], experiments) -> list[tuple[str, str, str]]:
    """``results`` of a check reporting per experiment, with a "not measured" row for each of ``experiments``
    (the claim's, else the run's experiments without a successful case) that it left out: the checks see the
    successful records only, so an experiment whose cases all failed had no row in the claims table, nor had
    an experiment a claim names but its table lacks. A check that gave no row at all (a run whose cases all
    failed) gets one, rather than vanish from the table."""
    if results and all(scope == "all" for scope, _, _ in results):
        return results
    covered = {scope.split(",")[0].split(" ")[0] for scope, _, _ in results}
    results = results + [(str(exp), "no successful run", NOT_MEASURED) for exp in experiments
                         if str(exp) not in covered]
    return results or [("all", "no verdict: the check found nothing to judge", NOT_MEASURED)]


def _check_result(rows) -> str | None:
    """What is wrong with a check's result, which must be a list of ``(scope, measured, verdict)`` rows: two
    strings and :data:`HOLDS`, :data:`FAILS` or :data:`NOT_MEASURED`; ``None`` when nothing is."""
    if not isinstance(rows, list):
        return f"{type(rows).__name__} {clip(repr(rows), 80)}, not a list of (scope, measured, verdict) rows"
    verdicts = (HOLDS, FAILS, NOT_MEASURED)
    for row in rows:
        if (not isinstance(row, (tuple, list)) or len(row) != 3 or not all(isinstance(v, str) for v in row[:2])
                or row[2] not in verdicts):
            return (f"the row {clip(repr(row), 80)}, not (scope, measured, verdict): two strings and one of "
                    f"{', '.join(map(repr, verdicts))}")
    return None


def check_claims(claims: list[dict[str, Any]], records: pd.DataFrame,
                 tables: dict[str, pd.DataFrame] | None = None) -> list[Verdict]:
    """Verdicts for every claim; a claim whose check is not computable here is reported as such."""
    verdicts = []
    ok = _ok(records)
    measured = set(ok["experiment"]) if "experiment" in ok else set()
    failed = [] if records.empty or "experiment" not in records else list(  # experiments without an ok case
        dict.fromkeys(e for e in records["experiment"] if e not in measured))
    if "peak_mem_bytes" in ok:  # a resident set that read 0 is not measured, as in the report, never a 0
        ok = ok.assign(peak_mem_bytes=measured_memory(ok))
    for claim in claims:
        check = claim.get("check")
        if check is None:
            results = [("all", claim.get("why_not_measured", "no automatic check"), NOT_MEASURED)]
        else:
            found = CHECKS.lookup(check)
            found.validate(claim, f"claim {claim.get('id')!r}")  # the loader did; a hand-made claim may not
            try:
                results = call(f"claim check {check!r} (claim {claim.get('id')!r})", found.fn, ok, tables or {},
                               claim, returns=_check_result)
            except PaperCodeFailed as err:
                results = [("all", f"{err}; the traceback is in {REPORT_LOG}", NOT_CHECKED)]
            results = _every_experiment(results, claim.get("experiments") or failed)
        verdicts += [Verdict(claim["id"], claim["text"], claim.get("source", ""), scope, measured, verdict)
                     for scope, measured, verdict in results]
    return verdicts
