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
  experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

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


CHECKS: dict[str, Callable[[pd.DataFrame, dict, dict], list[tuple[str, str, str]]]] = {
    "time_reduction": time_reduction, "wins": wins, "metric_parity": metric_parity,
    "table_threshold": table_threshold,
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
