"""Time to a target training quality, read from the curves' ``monitor`` column.

Training losses are not comparable across methods (SNODE's is measured on its polynomial trajectories, a
solver's on its own discretisation). The harness therefore records, untimed, a
method-independent quality every ``monitor_every`` iterations (:meth:`Problem.monitor`: for trajectory
tasks the simulation MSE on the training trajectories, by the same reference solver for every method).

* The **target** of a group of cases (one experiment at one setting) is ``target`` when given, else the
  largest over methods of the method's best monitored value (median over seeds): the best quality that
  every method reaches, i.e. "a comparable value of the loss". With ``pair_with`` (a method), the target
  is set per pair instead: for each other method m, the larger of the two methods' best values, and the
  rows of that pair carry ``versus = m`` (so a slow third method does not lower the bar of the others).
* A case's **time to target** is the summed timed step time (``elapsed_s``) at the first monitored
  iteration whose value is at or below the target; NaN ("not reached") otherwise. Its resolution is
  ``monitor_every`` iterations.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from nodebench.runner.settings import is_method_key

COLUMNS = ["experiment", "config", "versus", "method", "seed", "case_id", "target", "best_monitor",
           "time_to_target_s", "iters_to_target", "reached"]


def quality_column(curves: pd.DataFrame) -> str:
    """The training-quality column of ``curves``: ``monitor`` where it has values, else ``loss``."""
    return "monitor" if "monitor" in curves and curves["monitor"].notna().any() else "loss"


def common_level(best: pd.Series) -> float:
    """The common target of a group: the largest of its members' best values (each a median over seeds),
    i.e. the best quality every member reaches; NaN when none has a value."""
    return float(best.max()) if best.notna().any() else math.nan


def first_reach(curve: pd.DataFrame, target: float, column: str = "monitor") -> tuple[float, float]:
    """(elapsed_s, iteration) of the first row (by iteration) with ``column <= target``; NaNs if none.
    This is the one definition of "time to target" that reports, benchmarks and the leaderboard use."""
    hit = curve[curve[column] <= target]
    if hit.empty:
        return math.nan, math.nan
    row = hit.sort_values("iteration").iloc[0]
    return float(row["elapsed_s"]), float(row["iteration"])


def time_to_target_table(records: pd.DataFrame, curves: pd.DataFrame, *, target: float | None = None,
                         pair_with: str | None = None, group_by: str = "experiment") -> pd.DataFrame:
    """One row per successful case with monitored curves (see the module docstring for the rules).

    Args:
        records: a run's records (``case_id``, ``method``, ``seed``, ``status``, ``hparams``...).
        curves: the run's curves with a ``monitor`` column.
        target: a fixed target for every group; default: each group's common reachable level.
        pair_with: set targets per pair of this method and each other one (``versus`` column); else one
            target per group (``versus`` empty).
        group_by: the records column naming a group besides its hyper-parameters (cases of one group that
            differ in task hyper-parameters, e.g. a horizon sweep, form separate groups).
    """
    if curves.empty or "monitor" not in curves or records.empty:
        return pd.DataFrame(columns=COLUMNS)
    ok = records[records["status"] == "ok"] if "status" in records else records
    monitored = curves.dropna(subset=["monitor"])
    ok = ok[ok["case_id"].isin(set(monitored["case_id"]))]
    if ok.empty:
        return pd.DataFrame(columns=COLUMNS)
    ok = ok.assign(config=ok["hparams"].map(_task_config) if "hparams" in ok else "")
    rows = []
    for (group, config), cases in ok.groupby([group_by, "config"], sort=False):
        best = {cid: float(c["monitor"].min()) for cid, c in monitored[monitored["case_id"].isin(cases["case_id"])]
                .groupby("case_id")}
        cases = cases.assign(best=cases["case_id"].map(best))
        if pair_with is None:
            comparisons = [("", cases)]
        else:
            comparisons = [(other, cases[cases["method"].isin([pair_with, other])])
                           for other in dict.fromkeys(cases["method"]) if other != pair_with]
        for versus, compared in comparisons:
            level = target if target is not None else common_level(compared.groupby("method")["best"].median())
            for case in compared.itertuples():
                elapsed, iteration = first_reach(monitored[monitored["case_id"] == case.case_id], level)
                rows.append({"experiment": group, "config": config, "versus": versus, "method": case.method,
                             "seed": case.seed, "case_id": case.case_id, "target": level, "best_monitor": case.best,
                             "time_to_target_s": elapsed, "iters_to_target": iteration,
                             "reached": not math.isnan(elapsed)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _task_config(hparams_json: str) -> str:
    """The task hyper-parameters of a case as text: method options (solver, ``snode_*``, ``monitor_every``)
    differ between methods of one comparison and are left out."""
    hp = {k: v for k, v in json.loads(hparams_json or "{}").items() if not is_method_key(k)}
    return " ".join(f"{k}={hp[k]}" for k in sorted(hp))
