"""Time to target over seeds (a seed that never reaches the target or failed counts as ∞) in the report's
analysis, and the training-quality column (``task_loss`` before ``loss``), on hand-made records and curves."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from nodebench import target
from nodebench.analyses import time_to_target as time_to_target_analysis
from nodebench.benchmarking import leaderboard
from nodebench.target import quality_column, reached_text, seed_aggregate, seed_interval, time_to_target_table


def survivor_run(failed_direct: bool = False):
    """Method ``fast`` reaches 0.1 on seed 0 only (1 s), its seeds 1 and 2 stay at 0.9; ``direct`` reaches 0.1
    on all three seeds at 5 s (``failed_direct``: its seed 2 diverged instead)."""
    records, curves = [], []
    for method, bests, time in (("fast", [0.1, 0.9, 0.9], 1.0), ("direct", [0.1, 0.1, 0.1], 5.0)):
        for seed, best in enumerate(bests):
            case = f"{method}{seed}"
            status = "diverged" if failed_direct and method == "direct" and seed == 2 else "ok"
            records.append({"case_id": case, "experiment": "e", "method": method, "seed": seed, "status": status,
                            "hparams": json.dumps({}), "test_mse": best})
            curves += [{"case_id": case, "iteration": 5, "elapsed_s": time / 2, "monitor": 1.0},
                       {"case_id": case, "iteration": 10, "elapsed_s": time, "monitor": best}]
    return pd.DataFrame(records), pd.DataFrame(curves)


def test_seeds_that_never_reach_the_target_count_as_infinitely_slow():
    assert seed_aggregate([1.0, math.nan, math.nan]) == math.inf  # the median of 1, ∞, ∞
    assert seed_aggregate([1.0, 2.0, math.nan]) == 2.0
    assert seed_aggregate([1.0, 2.0, 3.0, 4.0, math.nan]) == 3.0  # olympic mean: the ∞ seed is the dropped one
    assert math.isnan(seed_aggregate([]))
    assert reached_text([1.0, math.nan, math.nan]) == "reached in 1 of 3 seeds"
    assert reached_text([2.0]) == "reached in 1 of 1 seed"


def test_seed_interval_is_around_the_statistic_that_ranks():
    three = seed_interval([3.0, 1.0, 2.0])
    assert (three.value, three.low, three.high, three.n) == (2.0, 1.0, 3.0, 3)  # the median's order statistics
    five = seed_interval([1.0, 1.0, 1.0, 10.0, 10.0])
    assert five.value == seed_aggregate([1.0, 1.0, 1.0, 10.0, 10.0]) == 4.0  # the olympic mean, not the median 1
    assert five.low <= five.value <= five.high and five.n == 5 and five.coverage == 0.95
    assert seed_interval([1.0, 1.0, 1.0, 10.0, 10.0]) == five  # a fixed generator: the same interval every time
    assert seed_interval([1.0, 2.0, 3.0, 4.0, math.nan]).high == math.inf  # resamples with two ∞ are ∞


def test_time_to_target_table_keeps_failed_cases_as_not_reached():
    records, curves = survivor_run(failed_direct=True)
    table = time_to_target_table(records, curves, target=0.5).set_index("case_id")
    assert table.loc["direct2", "status"] == "diverged" and not table.loc["direct2", "reached"]
    assert math.isnan(table.loc["direct2", "time_to_target_s"])  # its curve reached 0.1, but it failed
    assert table.loc["direct0", "time_to_target_s"] == 5.0 and table.loc["fast0", "time_to_target_s"] == 1.0


def test_the_report_counts_non_reaching_and_failed_seeds_before_the_median(tmp_path):
    records, curves = survivor_run(failed_direct=True)
    curves.to_parquet(tmp_path / "curves.parquet", index=False)
    text, _ = time_to_target_analysis({"reference": "direct", "target": 0.5}, tmp_path, records)
    rows = {line.split("|")[4].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in text.splitlines() if line.startswith("| e ")}
    assert rows["fast"][4:7] == ["reached in 1 of 3 seeds", "0.5", "not reached"]  # was 1 s: the one survivor
    assert rows["fast"][8] == "–"  # no speed-up against a time of ∞
    assert rows["direct"][4:7] == ["reached in 2 of 3 seeds", "0.5", "5"]  # median of 5, 5 and ∞ (diverged)
    assert "infinitely slow" in text


def test_quality_column_prefers_the_task_loss_to_the_penalised_loss():
    both = pd.DataFrame({"loss": [3.0, 2.0], "task_loss": [1.0, 0.5]})
    assert quality_column(both) == "task_loss"
    assert quality_column(both.assign(monitor=[0.7, math.nan])) == "monitor"
    assert quality_column(both.assign(task_loss=math.nan)) == "loss"  # a column without values is not used
    assert quality_column(both.drop(columns="task_loss")) == "loss"


def test_the_leaderboard_reads_the_task_loss_and_says_so():
    """A regularised method's ``loss`` holds λ·R: with it, the target and times would be the penalised ones."""
    records = pd.DataFrame([{"case_id": f"{m}{s}", "run_id": "r", "task": "t", "method": m, "seed": s,
                             "hparams": "{}", "status": "ok", "test_mse": 0.1} for m in ("a", "b") for s in range(2)])
    curves = pd.DataFrame([{"case_id": f"{m}{s}", "iteration": i, "elapsed_s": float(i + 1),
                            "task_loss": task_loss, "loss": task_loss + (1.0 if m == "b" else 0.0)}
                           for m in ("a", "b") for s in range(2) for i, task_loss in enumerate([1.0, 0.5, 0.2])])
    table, info = leaderboard.task_table(records, curves)
    assert info["column"] == "task_loss" and info["target"] == pytest.approx(0.2)  # with loss: b's best 1.2
    assert np.allclose(table["time_to_target_s"], 3.0)  # a and b reach task_loss 0.2 at the 3rd step
    assert "Target: task_loss ≤ 0.2" in leaderboard.target_note("t", info, declared=False)
    older = curves.assign(task_loss=[math.nan if c.startswith("b") else v for c, v in zip(curves["case_id"],
                                                                                       curves["task_loss"])])
    table, info = leaderboard.task_table(records, older)  # b ran before task_loss was recorded: its loss is used
    assert info["column"] == "task_loss (loss where not recorded)", info
    assert dict(zip(table["family"], table["reached"])) == {"a": 2, "b": 2}, table  # not "never reached"


def test_a_time_to_target_figure_outside_any_experiment_is_named_by_its_task(tmp_path):
    """``nodebench run`` cases have no experiment: the figure was written as ``_time_to_target.png``, untitled."""
    from nodebench.plots import plot_monitor

    records = pd.DataFrame({"case_id": ["a", "b"], "method": ["snode", "rk4"], "seed": [0, 0], "task": "vehicle",
                            "experiment": "", "status": "ok", "hparams": "{}"})
    curves = pd.DataFrame({"case_id": ["a", "a", "b", "b"], "iteration": [1, 2, 1, 2],
                           "elapsed_s": [0.1, 0.2, 0.1, 0.4], "monitor": [1.0, 0.1, 1.0, 0.2]})
    written = plot_monitor(records, curves, time_to_target_table(records, curves), tmp_path)
    assert [p.name for p in written] == ["vehicle_time_to_target.png"]


def test_repeats_of_one_seed_are_pooled_before_the_statistic_over_seeds():
    """Two runs of seed 0 and one of seed 1 are two seeds: seed 0's runs (1 s and 3 s) pooled by their median."""
    seeds = [0, 0, 1]
    assert seed_aggregate([1.0, 3.0, 10.0], seeds) == 6.0  # the median of 2 and 10, not of 1, 3 and 10
    interval = seed_interval([1.0, 3.0, 10.0], seeds=seeds)
    assert (interval.low, interval.high, interval.n) == (2.0, 10.0, 2) and interval.seeds == "3 runs of 2 seeds"
    assert reached_text([1.0, math.nan, 10.0], seeds) == "reached in 1 of 2 seeds (3 runs)"  # seed 0: 1 s and ∞
    assert seed_interval([1.0, 3.0, 10.0]).seeds == "3 seeds"  # without seeds: each value is a seed


def test_the_report_analysis_counts_distinct_seeds(tmp_path):
    """A run folder holding two runs of one case (two iteration limits) read "reached in 2 of 4 seeds": fast's
    seed 0 ran twice; its runs are one seed, so fast is reached in 1 of 3 seeds (4 runs), median ∞ as before."""
    records, curves = survivor_run()
    again = {"fast0": "fast0b"}
    records = pd.concat([records, records[records["case_id"] == "fast0"].replace(again)], ignore_index=True)
    curves = pd.concat([curves, curves[curves["case_id"] == "fast0"].replace(again)], ignore_index=True)
    curves.to_parquet(tmp_path / "curves.parquet", index=False)
    text, _ = time_to_target_analysis({"reference": "direct", "target": 0.5}, tmp_path, records)
    rows = {line.split("|")[4].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in text.splitlines() if line.startswith("| e ")}
    assert rows["fast"][4:7] == ["reached in 1 of 3 seeds (4 runs)", "0.5", "not reached"]  # median of 1, ∞, ∞


def test_a_members_reachable_level_is_where_its_time_over_seeds_turns_finite():
    """The k-th lowest seed best: k = 2 of 3 and 3 of 4 (the median), 4 of 5 (the olympic mean drops one ∞);
    a failed seed (NaN) never reaches; a seed's two repeats both must (their median time)."""
    assert target.reachable_level([0.3, 0.1, 0.2]) == 0.2
    assert target.reachable_level([0.1, 0.2, 0.3, 0.4]) == 0.3
    assert target.reachable_level([0.5, 0.4, 0.3, 0.2, 0.1]) == 0.4
    assert target.reachable_level([0.1, math.nan, 0.2, 0.3, 0.4]) == 0.4
    assert math.isnan(target.reachable_level([0.1, math.nan, math.nan, 0.3, 0.4]))
    assert target.reachable_level([0.1, 0.5, 0.2], seeds=[0, 0, 1]) == 0.5
    assert math.isnan(target.reachable_level([]))


def test_the_slower_method_of_a_pair_reaches_the_pairs_target_with_five_seeds():
    """With the paper preset's 5 seeds, the pair's target was the slower method's median best (0.3 of 0.1..0.5),
    which only 3 of its seeds reach: its olympic mean was ∞, so a claim "snode ≥ 10× faster than direct" held
    with ∞×. The target is now its reachable level 0.4 (4 seeds reach, the 5th is the dropped one)."""
    records, curves = [], []
    for method, bests, time in (("snode", [0.05] * 5, 1.0), ("direct", [0.1, 0.2, 0.3, 0.4, 0.5], 5.0)):
        for seed, best in enumerate(bests):
            case = f"{method}{seed}"
            records.append({"case_id": case, "experiment": "e", "method": method, "seed": seed, "status": "ok",
                            "hparams": json.dumps({}), "test_mse": best})
            curves += [{"case_id": case, "iteration": 5, "elapsed_s": time / 2, "monitor": 1.0},
                       {"case_id": case, "iteration": 10, "elapsed_s": time, "monitor": best}]
    table = time_to_target_table(pd.DataFrame(records), pd.DataFrame(curves), pair_with="snode")
    assert table["target"].unique().tolist() == [0.4]
    times = {m: seed_aggregate(rows["time_to_target_s"], rows["seed"]) for m, rows in table.groupby("method")}
    assert times == {"direct": 5.0, "snode": 1.0}
