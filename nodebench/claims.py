"""Published claims checked against measured records, each with a verdict.

A claim in ``reproduce/<paper>/experiments.toml`` names a ``check`` from :data:`CHECKS` and its
parameters; the check returns one :class:`Verdict` per experiment (or one for the whole paper). Verdicts
are ``holds``, ``does not hold`` or ``not measured at this preset``; the measured figure always comes
with it, so a reader can disagree with the threshold.

Checks:

- ``time_reduction``: per experiment, reduction = 1 − t(method)/t(baseline) of the median training
  time over seeds; holds when it is at least ``min`` (a reduction above ``max`` still holds and is noted).
- ``wins``: the number of experiments where ``method`` trains faster than ``baseline``; holds when
  the fraction is at least ``fraction``.
- ``metric_parity``: per experiment, the median ``metric`` of ``method`` is no worse than the
  baseline's by more than ``rel_tol`` (relative) or ``abs_tol`` (absolute); lower is better.
- ``table_threshold``: a value read from an extra table (``table``, ``column``, rows selected by
  ``where`` and, for per-case tables, ``experiments``) is compared with ``max`` or ``min``, per
  experiment;
- ``ratio``: per experiment, ratio = median(baseline ``column``)/median(method ``column``) over seeds
  (``column`` default ``train_wall_s``, so above 1 means ``method`` is faster), on the rows selected by
  ``hparams`` (name → value; the value ``"max"``/``"min"`` means the largest/smallest value of that
  hyper-parameter among the experiment's successful rows of method and baseline). Holds when the ratio is
  at least ``min`` and at most ``max`` (whichever are given; neither: ``min`` = 1). ``published`` (a
  ratio) and ``published_text`` are shown beside our figure. Not measured, naming the values that were
  measured, when either method has no successful row there;
- ``ratio_trend``: per experiment, the same ratio at the smallest and at the largest value of ``param``
  where both methods have successful rows (after the ``hparams`` filter); holds when the ratio at the
  largest value is at least the ratio at the smallest ("especially for large models").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nodebench.records import expand_hparams

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured at this preset"


@dataclass
class Verdict:
    claim_id: str
    claim: str
    source: str
    scope: str
    measured: str
    verdict: str


def _ok(records: pd.DataFrame) -> pd.DataFrame:
    return records[records["status"] == "ok"] if not records.empty else records


def _median(records: pd.DataFrame, experiment: str, method: str, column: str) -> float | None:
    rows = records[(records["experiment"] == experiment) & (records["method"] == method)]
    if rows.empty or column not in rows or rows[column].isna().all():
        return None
    return float(rows[column].median())


def _experiments(records: pd.DataFrame, claim: dict) -> list[str]:
    if claim.get("experiments"):
        return list(claim["experiments"])
    return sorted(records["experiment"].unique()) if not records.empty else []


def time_reduction(records, tables, claim) -> list[tuple[str, str, str]]:
    out = []
    method, base = claim["method"], claim["baseline"]
    for exp in _experiments(records, claim):
        t_m, t_b = _median(records, exp, method, "train_wall_s"), _median(records, exp, base, "train_wall_s")
        if t_m is None or t_b is None:
            out.append((exp, f"{method} or {base} has no successful run", NOT_MEASURED))
            continue
        reduction = 1.0 - t_m / t_b
        text = f"{method} {t_m:.3g} s vs {base} {t_b:.3g} s: reduction {reduction:.1%}"
        if "max" in claim and reduction > claim["max"]:
            text += f" (above the published range's top, {claim['max']:.0%})"
        out.append((exp, text, HOLDS if reduction >= claim["min"] else FAILS))
    return out


def wins(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base = claim["method"], claim["baseline"]
    measured = []
    for exp in _experiments(records, claim):
        t_m, t_b = _median(records, exp, method, "train_wall_s"), _median(records, exp, base, "train_wall_s")
        if t_m is not None and t_b is not None:
            measured.append((exp, t_m < t_b))
    if not measured:
        return [("all", "no experiment ran both methods", NOT_MEASURED)]
    won = [exp for exp, faster in measured if faster]
    fraction = len(won) / len(measured)
    text = f"{method} faster in {len(won)} of {len(measured)} experiments measured ({', '.join(won) or 'none'})"
    return [("all", text, HOLDS if fraction >= claim["fraction"] else FAILS)]


def metric_parity(records, tables, claim) -> list[tuple[str, str, str]]:
    out = []
    method, base, metric = claim["method"], claim["baseline"], claim["metric"]
    for exp in _experiments(records, claim):
        m, b = _median(records, exp, method, metric), _median(records, exp, base, metric)
        if m is None or b is None:
            out.append((exp, f"{metric} missing for {method} or {base}", NOT_MEASURED))
            continue
        allowed = claim.get("abs_tol", 0.0) + claim.get("rel_tol", 0.0) * abs(b)
        text = f"{metric}: {method} {m:.4g} vs {base} {b:.4g} (allowed excess {allowed:.3g})"
        out.append((exp, text, HOLDS if m - b <= allowed else FAILS))
    return out


def table_threshold(records, tables, claim) -> list[tuple[str, str, str]]:
    table = tables.get(claim["table"], pd.DataFrame())
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
        value = float(rows[claim["column"]].agg(claim.get("agg", "median")))
        if "max" in claim:
            ok, bound = value <= claim["max"], f"≤ {claim['max']:g}"
        else:
            ok, bound = value >= claim["min"], f"≥ {claim['min']:g}"
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
            values = [v for v in _values(compared, column) if _number(v) is not None]
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


def _unit(column: str) -> str:
    return " s" if column.endswith("_s") else ""


def ratio(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base, column = claim["method"], claim["baseline"], claim.get("column", "train_wall_s")
    label = f"{base}/{method}" + ("" if column == "train_wall_s" else f" {column}")
    low, high = _bounds(claim)
    records = expand_hparams(records)
    out = []
    for exp in _experiments(records, claim):
        exp_rows = records[records["experiment"] == exp]
        filters = dict(claim.get("hparams", {}))
        rows, chosen, problem = _select(exp_rows, filters, (method, base))
        where = f" at {', '.join(chosen)}" if chosen else ""
        published = _published(claim)
        if problem is None:
            b, m, value = _ratio(rows, method, base, column)
            if value is None:
                missing = method if m is None else base
                own = exp_rows[exp_rows["method"] == missing]
                measured = "; ".join(_values_text(own, _hp_column(own, name), name) for name in filters)
                problem = f"no successful {missing} run{where}" + (f" ({missing} measured at {measured})"
                                                                  if filters and not own.empty else "")
        if problem is not None:
            out.append((exp, f"{label}{where}: {problem}" + (f" ({published})" if published else ""), NOT_MEASURED))
            continue
        unit = _unit(column)
        needs = " and ".join(f"{op} {bound:g}" for op, bound in (("≥", low), ("≤", high)) if bound is not None)
        medians = f"{base} {b:.3g}{unit}, {method} {m:.3g}{unit}"
        notes = "; ".join(x for x in (medians, f"needs {needs}", published) if x)
        ok = (low is None or value >= low) and (high is None or value <= high)
        out.append((exp, f"{label}{where}: {value:.3g}× ({notes})", HOLDS if ok else FAILS))
    return out or [("all", f"no successful run of {method} or {base}", NOT_MEASURED)]


def ratio_trend(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base, param = claim["method"], claim["baseline"], claim["param"]
    column = claim.get("column", "train_wall_s")
    label = f"{base}/{method}" + ("" if column == "train_wall_s" else f" {column}")
    records = expand_hparams(records)
    out = []
    for exp in _experiments(records, claim):
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
        ratios = {v: _ratio(rows[_equals(rows[param_col], v)], method, base, column)[2] for v in (both[0], both[-1])}
        small, large = ratios[both[0]], ratios[both[-1]]
        if small is None or large is None:
            out.append((exp, f"{label}{where}: {column} missing at {param} {_show(both[0])} or {_show(both[-1])}",
                        NOT_MEASURED))
            continue
        published = _published(claim)
        text = (f"{label}{where}: {small:.3g}× at {param} {_show(both[0])} → {large:.3g}× at {param} {_show(both[-1])}"
                f" (needs the second ≥ the first" + (f"; {published}" if published else "") + ")")
        out.append((exp, text, HOLDS if large >= small else FAILS))
    return out or [("all", f"no successful run of {method} or {base}", NOT_MEASURED)]


CHECKS: dict[str, Callable[[pd.DataFrame, dict, dict], list[tuple[str, str, str]]]] = {
    "time_reduction": time_reduction, "wins": wins, "metric_parity": metric_parity,
    "table_threshold": table_threshold, "ratio": ratio, "ratio_trend": ratio_trend,
}


def check_claims(claims: list[dict[str, Any]], records: pd.DataFrame,
                 tables: dict[str, pd.DataFrame] | None = None) -> list[Verdict]:
    """Verdicts for every claim; a claim whose check is not computable here is reported as such."""
    verdicts = []
    ok = _ok(records)
    for claim in claims:
        check = claim.get("check")
        if check not in CHECKS:
            results = [("all", claim.get("why_not_measured", "no automatic check"), NOT_MEASURED)]
        else:
            results = CHECKS[check](ok, tables or {}, claim)
        verdicts += [Verdict(claim["id"], claim["text"], claim.get("source", ""), scope, measured, verdict)
                     for scope, measured, verdict in results]
    return verdicts
