"""Time to a target training quality, read from the curves' ``monitor`` column.

Training losses are not comparable across methods (SNODE's is measured on its polynomial trajectories, a
solver's on its own discretisation). The harness therefore records, untimed, a
method-independent quality every ``monitor_every`` iterations (:meth:`Problem.monitor`: for trajectory
tasks the simulation MSE on the training trajectories, by the same reference solver for every method).

* The **target** of a group of cases (one experiment at one setting) is ``target`` when given, else the
  largest over methods of the method's reachable level (:func:`reachable_level`: the lowest monitored value
  at which its time over seeds is finite): the best quality that every method reaches, i.e. "a comparable
  value of the loss". With ``pair_with`` (a method), the target is set per pair instead: for each other
  method m, the larger of the two methods' levels, and the rows of that pair carry ``versus = m`` (so a
  slow third method does not lower the bar of the others).
* A case's **time to target** is the summed timed step time (``elapsed_s``) at the first monitored
  iteration whose value is at or below the target; NaN ("not reached") otherwise. Its resolution is
  ``monitor_every`` iterations. A case that did not finish ok has a row too, not reached.
* **Over seeds** (:func:`seed_aggregate`, the one rule of reports, claims and the leaderboard): a seed that
  never reaches the target, or failed, counts as infinitely slow; the time is the median over seeds, or
  with 5 or more seeds MLPerf's olympic mean (drop the fastest and the slowest, average the rest). A time
  of ∞ is "not reached". Given the cases' seeds (``seeds=``), repeats of one seed (the same case in two
  experiments or runs) are one seed: their times are pooled by their median first, a repeat that did not
  reach counting as ∞ (:mod:`nodebench.intervals` says why).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd

from nodebench.intervals import BOOTSTRAP_SAMPLES, LEVEL, Interval, median_interval, per_seed
from nodebench.runner.settings import is_method_key

COLUMNS = ["experiment", "config", "versus", "method", "seed", "case_id", "status", "target", "best_monitor",
           "time_to_target_s", "iters_to_target", "reached"]
OLYMPIC_MIN_SEEDS = 5
QUALITY_COLUMNS = ("monitor", "task_loss", "loss")


def quality_column(curves: pd.DataFrame) -> str:
    """The training-quality column of ``curves``: ``monitor`` where it has values, else ``task_loss`` (the
    training loss without a regulariser's penalty λ·R) where it has values, else ``loss``."""
    return next(c for c in QUALITY_COLUMNS if c == "loss" or (c in curves and curves[c].notna().any()))


def quality_values(curves: pd.DataFrame) -> tuple[str, pd.Series]:
    """The training-quality column of ``curves`` (:func:`quality_column`) and its values per step. Read from
    ``task_loss``, a step without one (a run recorded before that column existed) takes its ``loss``, so
    older runs are read as before rather than as never reaching the target; the name then says so."""
    column = quality_column(curves)
    if column != "task_loss" or curves["task_loss"].notna().all():
        return column, curves[column]
    return "task_loss (loss where not recorded)", curves["task_loss"].fillna(curves["loss"])


def seed_times(times, seeds=None) -> np.ndarray:
    """Times to target over seeds, sorted, a seed that never reached the target or failed (NaN) as ∞; with
    the cases' ``seeds``, one time per distinct seed (its repeats' median: :func:`~nodebench.intervals.per_seed`)."""
    times = np.asarray(times, dtype=float).ravel()
    return np.sort(per_seed(np.where(np.isnan(times), math.inf, times), seeds)[0])


def seed_statistic(n: int) -> str:
    """The name of the statistic of :func:`seed_aggregate` over ``n`` seeds."""
    return "olympic mean" if n >= OLYMPIC_MIN_SEEDS else "median"


def _olympic(sorted_times: np.ndarray) -> np.ndarray:
    """The olympic mean of each row of sorted times: the fastest and the slowest dropped, the rest averaged."""
    return sorted_times[..., 1:-1].mean(axis=-1)


def seed_aggregate(times, seeds=None) -> float:
    """The time to target over seeds (NaN: not reached, counted as ∞): the median, or with ≥ 5 seeds the
    olympic mean, so one non-reaching seed of five may be the dropped one and two make it ∞ (the measuring
    guide's §8, leaderboard scoring); NaN without seeds. With the cases' ``seeds``, over distinct seeds
    (:func:`seed_times`)."""
    times = seed_times(times, seeds)
    if len(times) == 0:
        return math.nan
    return float(_olympic(times) if len(times) >= OLYMPIC_MIN_SEEDS else np.median(times))


def reached_text(times, seeds=None) -> str:
    """How many seeds reached the target (a finite time): ``"reached in 1 of 3 seeds"``; with the cases'
    ``seeds``, of the distinct seeds (:func:`seed_times`), naming the runs where a seed repeats
    (``"reached in 1 of 1 seed (2 runs)"``)."""
    pooled = seed_times(times, seeds)
    runs = len(np.asarray(times, dtype=float).ravel())
    return (f"reached in {int(np.isfinite(pooled).sum())} of {len(pooled)} seed{'' if len(pooled) == 1 else 's'}"
            + (f" ({runs} runs)" if runs > len(pooled) else ""))


def seed_interval(times, level: float = LEVEL, rng_seed: int = 0, *, seeds=None) -> Interval:
    """:func:`seed_aggregate` (the interval's ``value``) with its interval over seeds: the
    median's order-statistic interval (:func:`~nodebench.intervals.median_interval`), or for the olympic
    mean a percentile bootstrap (seeds resampled, a generator seeded by ``rng_seed``; ``coverage`` is the
    nominal level). With the cases' ``seeds``, over distinct seeds (:func:`seed_times`), ``runs`` counting the
    cases."""
    runs = len(np.asarray(times, dtype=float).ravel())
    times = seed_times(times, seeds)
    if len(times) < OLYMPIC_MIN_SEEDS:
        return replace(median_interval(times, level), runs=runs)
    rng = np.random.default_rng(rng_seed)
    means = _olympic(np.sort(rng.choice(times, (BOOTSTRAP_SAMPLES, len(times))), axis=1))
    low = np.quantile(means, (1 - level) / 2, method="lower")  # order statistics: no ∞ − ∞ interpolation
    high = np.quantile(means, (1 + level) / 2, method="higher")
    return Interval(seed_aggregate(times), float(low), float(high), len(times), level, runs)


def seeds_needed(n: int) -> int:
    """How many of ``n`` seeds must reach a target for :func:`seed_aggregate` to be finite: all but one from 5
    seeds (the olympic mean drops one ∞), else more than half (the median of an even count averages the two
    middle values, so both must be finite)."""
    return n - 1 if n >= OLYMPIC_MIN_SEEDS else n // 2 + 1


def reachable_level(bests, seeds=None) -> float:
    """The lowest target at which a member's time over seeds (:func:`seed_aggregate`) is finite, from its
    cases' best values (NaN: failed or never monitored, never reaching): the :func:`seeds_needed`-th lowest
    seed best, each seed's repeats (given ``seeds``) pooled as their times are, by the median. A plain median
    of the bests would not do: with 4 seeds, or 5 under the olympic mean, the member setting the target
    would not reach it (the measuring guide's §8, leaderboard scoring). NaN when too few seeds have a value."""
    values = np.asarray(bests, dtype=float).ravel()
    values = pd.Series(np.where(np.isnan(values), math.inf, values))
    if seeds is not None:  # a seed's median time is finite once more than half its repeats reach
        values = values.groupby(np.asarray(seeds).ravel()).agg(lambda v: np.sort(v)[len(v) // 2])
    ordered = np.sort(values.to_numpy())
    if len(ordered) == 0 or not math.isfinite(level := ordered[seeds_needed(len(ordered)) - 1]):
        return math.nan
    return float(level)


def common_level(best: pd.Series) -> float:
    """The common target of a group: the largest of its members' reachable levels (:func:`reachable_level`),
    i.e. the best quality every member reaches over its seeds; NaN when none has a value."""
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
    """One row per successful case with monitored curves, and per case that did not finish ok (not reached;
    its curves are not read); see the module docstring for the rules.

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
    status = records["status"] if "status" in records else pd.Series("ok", index=records.index)
    monitored = curves.dropna(subset=["monitor"])
    ok = (status == "ok") & records["case_id"].isin(set(monitored["case_id"]))
    if not ok.any():
        return pd.DataFrame(columns=COLUMNS)
    monitored = monitored[monitored["case_id"].isin(set(records.loc[ok, "case_id"]))]
    kept = records[ok | (status != "ok")]
    kept = kept.assign(status=status, config=kept["hparams"].map(_task_config) if "hparams" in kept else "")
    rows = []
    for (group, config), cases in kept.groupby([group_by, "config"], sort=False):
        best = {cid: float(c["monitor"].min()) for cid, c in monitored[monitored["case_id"].isin(cases["case_id"])]
                .groupby("case_id")}
        cases = cases.assign(best=cases["case_id"].map(best))
        if pair_with is None:
            comparisons = [("", cases)]
        else:
            comparisons = [(other, cases[cases["method"].isin([pair_with, other])])
                           for other in dict.fromkeys(cases["method"]) if other != pair_with]
        for versus, compared in comparisons:
            level = target if target is not None else common_level(pd.Series(
                {method: reachable_level(rows["best"], rows["seed"]) for method, rows in compared.groupby("method")},
                dtype=float))
            for case in compared.itertuples():
                elapsed, iteration = first_reach(monitored[monitored["case_id"] == case.case_id], level)
                rows.append({"experiment": group, "config": config, "versus": versus, "method": case.method,
                             "seed": case.seed, "case_id": case.case_id, "status": case.status, "target": level,
                             "best_monitor": case.best, "time_to_target_s": elapsed, "iters_to_target": iteration,
                             "reached": not math.isnan(elapsed)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _task_config(hparams_json: str) -> str:
    """The task hyper-parameters of a case as text: method options (solver, ``snode_*``, ``monitor_every``)
    differ between methods of one comparison and are left out."""
    hp = {k: v for k, v in json.loads(hparams_json or "{}").items() if not is_method_key(k)}
    return " ".join(f"{k}={hp[k]}" for k in sorted(hp))
