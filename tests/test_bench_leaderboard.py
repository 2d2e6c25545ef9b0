"""The leaderboard: time to target, seed aggregation, the AlgoPerf score, and the Markdown and HTML forms."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodebench.benchmarking import leaderboard, leaderboard_page
from nodebench.cli import main

BASELINES = Path(__file__).resolve().parents[1] / "results" / "baselines"
RUNS = [BASELINES / name for name in ("do_vs_od-quick-cpu", "gq_adjoint-quick-cpu", "taynode-quick-cpu")]


def test_seed_aggregate_is_the_median_below_five_seeds_and_the_olympic_mean_from_five():
    assert leaderboard.seed_aggregate([3.0, 1.0, 2.0]) == 2.0
    assert leaderboard.seed_aggregate([1.0, 2.0, 3.0, 4.0, 100.0]) == 3.0  # drops 1 and 100
    assert leaderboard.seed_aggregate([1.0, math.inf, 2.0, 3.0, 4.0]) == 3.0  # one non-converging run is dropped
    assert leaderboard.seed_aggregate([1.0, math.inf, math.inf, 3.0, 4.0]) == math.inf  # two are not


def test_profile_score_is_algoperfs_area_under_the_profile():
    assert leaderboard.profile_score(np.array([1.0, 2.0, math.inf])) == pytest.approx((3 + 2 + 0) / 3 / 3)
    assert leaderboard.profile_score(np.array([1.0, 1.0])) == 1.0
    assert leaderboard.profile_score(np.array([5.0])) == 0.0
    taus = np.linspace(1, 4, 30001)  # the exact formula against a numerical integral of rho(tau)
    ratios = np.array([1.0, 1.7, 3.2, 9.0])
    rho = [(ratios <= tau).mean() for tau in taus]
    assert leaderboard.profile_score(ratios) == pytest.approx(np.trapezoid(rho, taus) / 3, abs=1e-3)


def _synthetic(monitor: bool):
    """Two tasks; on each, methods a (slow to improve) and adjoint, two seeds, with known curves."""
    rows, curves = [], []
    for task, speed in (("t1", 1.0), ("t2", 2.0)):
        for method, losses in (("a", [1.0, 0.8, 0.6]), ("adjoint", [1.0, 0.5, 0.3])):
            for seed in range(2):
                case = f"{task}-{method}-{seed}"
                rows.append({"case_id": case, "run_id": "r", "task": task, "method": method, "seed": seed,
                             "hparams": "{}", "status": "ok", "peak_mem_bytes": 2.0**20, "nfe_forward_per_iter": 8.0,
                             "nfe_backward_per_iter": 4.0, "test_mse": losses[-1]})
                for i, loss in enumerate(losses):
                    curves.append({"case_id": case, "task": task, "method": method, "seed": seed,
                                   "iteration": i, "elapsed_s": speed * (i + 1) * (2 if method == "a" else 1),
                                   "loss": 10 * loss, "monitor": loss if monitor else math.nan})
    return pd.DataFrame(rows), pd.DataFrame(curves)


@pytest.mark.parametrize("monitor", [True, False])
def test_time_to_target_uses_the_monitor_where_recorded_and_the_common_largest_best(monitor):
    records, curves = _synthetic(monitor)
    table, info = leaderboard.task_table(records[records.task == "t1"], curves)
    assert info["column"] == ("monitor" if monitor else "loss")
    assert info["target"] == pytest.approx(0.6 if monitor else 6.0)  # the larger of the two methods' bests
    times = dict(zip(table["config"], table["time_to_target_s"]))
    assert times == {"adjoint": 2.0, "a": 6.0}  # adjoint reaches 0.5 <= 0.6 at its 2nd step; a at its 3rd
    assert table["config"].tolist() == ["adjoint", "a"]  # ranked by time to target
    declared, _ = leaderboard.task_table(records[records.task == "t1"], curves, target=0.1 if monitor else 1.0)
    assert np.isinf(declared["time_to_target_s"]).all()  # nobody reaches a declared target of 0.1: "not reached"


def test_overall_score_and_speedup_against_the_reference():
    records, curves = _synthetic(True)
    tasks = {t: leaderboard.task_table(records[records.task == t], curves)[0] for t in ("t1", "t2")}
    scores = leaderboard.overall(tasks, "adjoint").set_index("family")
    assert scores.loc["adjoint", "score"] == 1.0  # fastest on every task
    assert scores.loc["a", "score"] == pytest.approx((4 - 3) / 3)  # r = 3 on both tasks
    assert scores.loc["a", "speedup"] == pytest.approx(1 / 3) and scores.loc["a", "speedup_tasks"] == 2


def test_leaderboard_of_recorded_runs_writes_markdown_and_self_contained_html(capsys, tmp_path):
    code = main(["leaderboard", *map(str, RUNS), "--out", str(tmp_path / "board")])
    assert code == 0, capsys.readouterr().err
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    for task in ("cubic_spiral", "g1d", "digits_ode", "## Overall", "## Environment"):
        assert task in md
    # every Markdown table is aligned: all its lines have the same width, so it reads well in a terminal
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, flags=re.M):
        assert len({len(line) for line in block.splitlines()}) == 1, block[:300]
    environment = md.split("## Environment")[1]
    assert sum(line.startswith("| ") for line in environment.splitlines()) == 1 + 3  # header + one row per run
    page = (tmp_path / "board" / "leaderboard.html").read_text()
    assert page.count("<img") == 2 and page.count("data:image/png;base64,") == 2
    assert not re.search(r"src=['\"](?!data:)", page)  # nothing outside the file is needed


def _write_run(folder: Path, records: pd.DataFrame, curves: pd.DataFrame) -> Path:
    folder.mkdir(parents=True)
    records.to_parquet(folder / "records.parquet", index=False)
    if not curves.empty:
        curves.to_parquet(folder / "curves.parquet", index=False)
    return folder


def _failed_task(task: str, statuses: list[str]) -> pd.DataFrame:
    """A task whose every case failed: no curves, no measurements (as a worker records a failure)."""
    return pd.DataFrame([{"case_id": f"{task}-{i}", "run_id": "f", "task": task, "method": "adjoint", "seed": i,
                          "hparams": "{}", "status": status} for i, status in enumerate(statuses)])


def test_a_task_without_a_successful_case_is_listed_with_its_failures_and_not_scored(capsys, tmp_path):
    """A task whose cases all failed (oom, diverged...) was a traceback; it is listed, the others are ranked."""
    records, curves = _synthetic(True)
    good = _write_run(tmp_path / "good", records, curves)
    failed = _write_run(tmp_path / "failed", _failed_task("t3", ["oom", "diverged", "oom"]), pd.DataFrame())
    code = main(["leaderboard", str(good), str(failed), "--out", str(tmp_path / "board")])
    assert code == 0, capsys.readouterr().err
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "## Task `t3`" in md and "| 0/3 (diverged, oom ×2) |" in md and "✗ diverged, oom ×2 (3 seeds)" in md
    assert "Not scored, no case finished ok (statuses in the task's table): t3." in md
    overall = md.split("## Overall")[1].split("## Task")[0]
    assert re.search(r"\| adjoint +\| 2/2 +\| +1 +\|", overall), overall  # t3 does not lower the scores
    assert "0/3 (diverged, oom ×2)" in (tmp_path / "board" / "leaderboard.html").read_text()


def test_runs_without_any_successful_case_are_refused_in_one_line(capsys, tmp_path):
    run = _write_run(tmp_path / "failed", pd.concat([_failed_task("t3", ["oom"]), _failed_task("t4", ["timeout"])]),
                     pd.DataFrame())
    code = main(["leaderboard", str(run), "--out", str(tmp_path / "board")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "nothing to rank: no case in the runs finished ok (t3: oom; t4: timeout)" in lines[0]
    assert not (tmp_path / "board").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["leaderboard", "no/such/run", "--out", "OUT"], "does not exist"),
    (["leaderboard", str(RUNS[0]), "--out", "OUT", "--target", "cubic_spiral=zero"], "POSITIVE_NUMBER"),
    (["leaderboard", str(RUNS[0]), "--out", "OUT", "--target", "cubic_spiral=0.5", "--target", "cubic_spiral=0.7"],
     "argument --target: cubic_spiral given twice"),
    # a misspelt name had no suggestion
    (["leaderboard", str(RUNS[0]), "--out", "OUT", "--reference", "adjont"],
     "reference (--reference) 'adjont' is not a method of the runs (did you mean 'adjoint'?); valid: "),
    (["leaderboard", str(RUNS[0]), "--out", "OUT", "--target", "cubic_spirl=0.1"],
     "target for task(s) cubic_spirl (did you mean 'cubic_spiral'?) not in the runs; tasks in the runs: "),
])
def test_bad_leaderboard_input_is_one_line(capsys, tmp_path, argv, fragment):
    code = main([tmp_path.joinpath("out").as_posix() if a == "OUT" else a for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert not (tmp_path / "out").exists()


def test_a_resident_set_of_zero_is_unmeasured_memory_not_the_smallest():
    """A phase that reused resident pages reads 0 bytes; it ranked first on memory."""
    records, curves = _synthetic(True)
    records = records.assign(mem_source="vmhwm")
    records.loc[records.method == "a", "peak_mem_bytes"] = 0.0
    table, _ = leaderboard.task_table(records[records.task == "t1"], curves)
    memory = table.set_index("config")
    assert math.isnan(memory.loc["a", "peak_mem_bytes"]) and memory.loc["adjoint", "peak_mem_bytes"] == 2.0**20
    assert memory.loc["adjoint", "rank_peak_mem_bytes"] < memory.loc["a", "rank_peak_mem_bytes"]


def test_html_tables_show_a_missing_value_as_a_dash_not_none_or_nan():
    """The leaderboard's overall table printed "nan" for a family with no speed-up, and its environment table
    (and the history site's) "None" for a CPU run's GPU, where the Markdown shows "–" and nothing."""
    from nodebench.html_page import plain_table

    html = plain_table(pd.DataFrame({"family": ["sde_adjoint"], "speed-up": [math.nan], "GPU": [None],
                                     "score": [0.5]}))
    assert ">nan<" not in html and ">None<" not in html and html.count(">–</td>") == 2
    assert "data-v='0.5'" in html


def test_tied_families_share_their_rank():
    """Equal scores, or an equal time to target and metric, read as a tie (1, 2, 2, 4), never as an order."""
    from nodebench.benchmarking.leaderboard import TASK_ORDER, display_overall, shared_ranks

    scores = pd.DataFrame({"family": ["a", "b", "c", "d"], "tasks_reached": 1, "tasks_run": 1,
                           "score": [0.9, 0.5, 0.5, 0.2], "speedup": 1.0, "speedup_tasks": 1, "seeds": "1 seed"})
    assert list(display_overall(scores, "a")["#"]) == [1, 2, 2, 4]
    task = pd.DataFrame({"time_to_target_s": [1.0, 2.0, 2.0, 2.0, math.inf, math.inf],
                         "metric": [0.9, 0.8, 0.8, 0.7, math.nan, math.nan]})
    assert shared_ranks(task, TASK_ORDER) == [1, 2, 2, 4, 5, 5]


def test_the_markdown_environment_shows_a_missing_value_as_blank_not_nan(tmp_path):
    """A CPU case's GPU read "nan" in leaderboard.md's environment table (the HTML showed "–") where other cases
    of the records have one (a string column then holds NaN)."""
    from test_leaderboard_fairness import MIXED, board

    run = _write_run(tmp_path / "mixed", *board(MIXED))  # its first case ran on the CPU
    md, _ = leaderboard_page.write([run], tmp_path / "board", targets={"toy": 0.5})
    environment = md.read_text().split("## Environment")[1].split("## Figures")[0]
    assert "| GPU " in environment and "nan" not in environment, environment


def test_the_html_overall_table_ranks_and_rounds_as_the_markdown_does():
    """leaderboard.html's overall table read a speed-up of 21.976 where leaderboard.md says 22×, and had no rank
    column (the Markdown's "#", ties shared)."""
    from nodebench.benchmarking.leaderboard import display_overall

    scores = pd.DataFrame({"family": ["a", "b", "c"], "tasks_reached": 1, "tasks_run": 1, "score": [0.9, 0.5, 0.5],
                           "speedup": [21.976, 5.4249, math.nan], "speedup_tasks": [2, 2, 0], "seeds": "1 seed"})
    page, md = leaderboard_page.scores_frame(scores, "a"), display_overall(scores, "a")
    assert list(page["#"]) == list(md["#"]) == [1, 2, 2]
    shown = page["speed-up vs a"].tolist()
    assert shown[:2] == [22.0, 5.42] and math.isnan(shown[2])
    assert [f"{v:g}×" for v in shown[:2]] == [text.split(" ")[0] for text in md["speed-up vs a (tasks)"][:2]]


def _workloads(tasks: dict[str, dict[str, list]]):
    """Records and curves on one CPU: per task and family, one case per seed that reaches the quality 0.1 at
    the given time (the quality 1.0 at half of it), or never (``None``: it stays at 1.0)."""
    rows, curves = [], []
    for task, families in tasks.items():
        for family, times in families.items():
            for seed, t in enumerate(times):
                case = f"{task}-{family}-{seed}"
                rows.append({"case_id": case, "run_id": "r", "task": task, "method": family, "seed": seed,
                             "status": "ok", "device": "cpu", "cpu_model": "Xeon", "hostname": "h", "hparams": "{}",
                             "test_mse": 0.1})
                curves += [{"case_id": case, "iteration": 1, "elapsed_s": (t or 10.0) / 2, "monitor": 1.0},
                           {"case_id": case, "iteration": 2, "elapsed_s": t or 10.0, "monitor": 1.0 if t is None
                            else 0.1}]
    return pd.DataFrame(rows), pd.DataFrame(curves)


def test_scores_of_three_families_on_two_tasks_match_a_hand_computation():
    """t1: adjoint 2 (median), b 4, c ∞ (olympic mean of five seeds, two never reach, although its other seeds
    are the fastest of all); t2: adjoint 3 (olympic mean, the one seed that never reaches is dropped), b 3 (a
    tie), c 7 (olympic mean of 5..9). Ratios adjoint (1, 1), b (2, 1), c (∞, 7/3); score = Σ (4 − r)⁺ / 2 / 3."""
    records, curves = _workloads({
        "t1": {"adjoint": [2, 2, 2], "b": [4, 4, 4], "c": [1, 1, 1, None, None]},
        "t2": {"adjoint": [1, 2, 3, 4, None], "b": [3, 3, 3], "c": [5, 6, 7, 8, 9]}})
    tasks = {t: leaderboard.task_table(records[records.task == t], curves, target=0.5)[0] for t in ("t1", "t2")}
    times = {t: dict(zip(table["family"], table["time_to_target_s"])) for t, table in tasks.items()}
    assert times == {"t1": {"adjoint": 2.0, "b": 4.0, "c": math.inf}, "t2": {"adjoint": 3.0, "b": 3.0, "c": 7.0}}
    assert leaderboard.display_task(tasks["t2"], {"metric": "test_mse"})["#"].tolist() == [1, 1, 3]  # a tie
    scores = leaderboard.overall(tasks, "adjoint").set_index("family")
    assert scores["score"].to_dict() == pytest.approx({"adjoint": 1.0, "b": (2 + 3) / 6, "c": (0 + 4 - 7 / 3) / 6})
    assert scores["ratios"]["c"].tolist() == [math.inf, pytest.approx(7 / 3)]
    assert scores["tasks_reached"].to_dict() == {"adjoint": 2, "b": 2, "c": 1}
    assert scores["speedup"].to_dict() == pytest.approx({"adjoint": 1.0, "b": 0.5 ** 0.5, "c": 3 / 7})
    assert scores["speedup_tasks"].to_dict() == {"adjoint": 2, "b": 2, "c": 1}


@pytest.mark.parametrize("bests, target, reached", [([0.1, 0.2, 0.3, 0.4], 0.3, 3),
                                                    ([0.1, 0.2, 0.3, 0.4, 0.5], 0.4, 4)])
def test_the_configuration_that_sets_the_default_target_reaches_it(bests, target, reached):
    """The target was the largest median of the configurations' best values, which the configuration setting
    it did not reach by its own statistic: with 4 seeds (median of 0.1..0.4 = 0.25: 2 seeds reach, the median
    time is ∞) or 5 (0.3: 3 reach, the olympic mean with two ∞ is ∞), it read ✗ on its own target."""
    records, curves = _workloads({"toy": {"slow": [1.0] * len(bests), "fast": [2.0] * len(bests)}})
    curves.loc[(curves.iteration == 2) & curves.case_id.str.contains("slow"), "monitor"] = bests
    table, info = leaderboard.task_table(records, curves)
    assert info["target"] == target
    times = dict(zip(table["family"], table["time_to_target_s"]))
    assert times == {"slow": 1.0, "fast": 2.0}, times
    assert dict(zip(table["family"], table["reached"])) == {"slow": reached, "fast": len(bests)}


@pytest.mark.parametrize("elapsed, shown", [(math.nan, "elapsed_s nan"), (-1.0, "elapsed_s -1.0")])
def test_a_nan_or_negative_training_time_is_refused_in_one_line(capsys, tmp_path, elapsed, shown):
    """A NaN time read as "never reached" (✗) and a negative one ranked first; both are a damaged curves file."""
    records, curves = _workloads({"toy": {"adjoint": [2, 2], "gq": [1, 1]}})
    curves.loc[curves.case_id == "toy-gq-1", "elapsed_s"] = elapsed
    run = _write_run(tmp_path / "run", records, curves)
    code = main(["leaderboard", str(run), "--out", str(tmp_path / "board")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert f"case toy-gq-1 (status ok) has {shown} at iteration 1 of its curves" in lines[0]
    assert "a finite number of seconds ≥ 0" in lines[0] and not (tmp_path / "board").exists()


def test_records_without_curves_are_refused_in_one_line(capsys, tmp_path):
    """Records without their curves.parquet gave a leaderboard of ✗ everywhere, "Target: loss ≤ –" and every
    family tied at score 0."""
    records, _ = _workloads({"toy": {"adjoint": [2, 2], "gq": [1, 1]}})
    run = _write_run(tmp_path / "run", records, pd.DataFrame())
    code = main(["leaderboard", str(run), "--out", str(tmp_path / "board")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "nothing to rank: no successful case has a training curve with a quality value" in lines[0]
    assert not (tmp_path / "board").exists()


def _task_section(md: str, task: str) -> str:
    return md.split(f"## Task `{task}`")[1].split("## ")[0]


def test_runs_with_and_without_the_monitor_are_compared_on_the_quality_all_have(capsys, tmp_path):
    """adjoint's run recorded no monitor: its cases read ✗ (not reached) beside a's monitor target, unexplained."""
    records, curves = _synthetic(True)
    with_monitor = _write_run(tmp_path / "a", records[records.method == "a"], curves[curves.method == "a"])
    without = _write_run(tmp_path / "b", records[records.method == "adjoint"],
                         curves[curves.method == "adjoint"].drop(columns="monitor"))
    assert main(["leaderboard", str(with_monitor), str(without), "--out", str(tmp_path / "board")]) == 0
    task = _task_section((tmp_path / "board" / "leaderboard.md").read_text(), "t1")
    assert "Target: loss ≤ 6 (" in task  # the loss every run recorded: 10 × the monitor here
    assert "Not every run recorded monitor (none for adjoint), so all are compared on loss." in task
    assert re.search(r"\| adjoint +\|.*\| 2/2 +\| 2 \(median, 2 seeds\) +\|", task), task
    assert re.search(r"\| a +\|.*\| 2/2 +\| 6 \(median, 2 seeds\) +\|", task), task


def test_a_task_without_curves_is_named_and_left_out_of_the_scores(capsys, tmp_path):
    """t2's run kept no curves: it was scored with every family ✗ and "Target: loss ≤ –"."""
    records, curves = _synthetic(True)
    run = _write_run(tmp_path / "run", records, curves[curves.task == "t1"])
    assert main(["leaderboard", str(run), "--out", str(tmp_path / "board")]) == 0
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert ("Not scored, no successful case has a training curve with a quality value (monitor, task_loss, loss): "
            "t2.") in md
    overall = md.split("## Overall")[1].split("## Task")[0]
    assert re.search(r"\| adjoint +\| 1/1 +\| +1 +\|", overall), overall  # t2 does not lower the scores
    task = _task_section(md, "t2")
    assert "not scored" in task and "≤ –" not in task and "✗" not in task and "– no curve (2 seeds)" in task


def test_options_a_method_ignores_do_not_split_its_configuration():
    """adjoint ignores gq's gtol: a seed recorded with it and one without were two configurations."""
    records, curves = _synthetic(True)
    records.loc[(records.method == "adjoint") & (records.seed == 0), "hparams"] = '{"gtol": 0.1}'
    table, _ = leaderboard.task_table(records[records.task == "t1"], curves)
    assert table["config"].tolist() == ["adjoint", "a"] and table["seeds"].tolist() == [2, 2]


@pytest.mark.parametrize("drop, empty", [(True, None), (False, None), (False, "")])
def test_records_without_hparams_are_ranked(capsys, tmp_path, drop, empty):
    """hparams is an optional records column: a run without it, or with a null or "" in it (none set, as the gate
    accepts), is ranked, not a traceback from the options a method ignores (compare.effective_hparams) or from
    reading the hparams (records.hparams_dict)."""
    records, curves = _synthetic(True)
    records = records.drop(columns="hparams") if drop else records.assign(hparams=[empty] + ["{}"] * (len(records) - 1))
    run = _write_run(tmp_path / "run", records, curves)
    assert main(["leaderboard", str(run), "--out", str(tmp_path / "board")]) == 0
    assert (tmp_path / "board" / "leaderboard.md").is_file()


def test_repeats_differing_in_an_ignored_option_from_an_empty_hparams_are_named():
    """A seed recorded once with ``""`` (no option set) and once with gq's gtol, which adjoint ignores: one
    configuration measured twice, named (compare.ignored_differences reads ``""`` as no option set)."""
    records, curves = _synthetic(True)
    records.loc[records.method == "adjoint", "hparams"] = ""
    again = records[(records.method == "adjoint") & (records.seed == 0)].assign(hparams='{"gtol": 0.1}')
    records = pd.concat([records, again.assign(case_id=again["case_id"] + "-again")], ignore_index=True)
    curves = pd.concat([curves, curves[curves.case_id.isin(again["case_id"])].assign(
        case_id=lambda c: c["case_id"] + "-again")], ignore_index=True)
    table, _ = leaderboard.task_table(records[records.task == "t1"], curves)
    assert table.set_index("config").loc["adjoint", "ignored"] == "gtol 0.1, unset"


def test_records_that_kept_options_changing_nothing_pool_with_the_unregularised_configuration():
    """Older records kept reg* options where no regulariser ran ({"reg": "none", "reg_lambda": 0.0}; a
    ``nodebench run`` case with reg_order but no reg): the leaderboard pools them with the run that has none, as one
    configuration, and keeps the regularised one apart, with no empty label and no "reg=none" left in it."""
    from nodebench.benchmarking.compare import effective_hparams

    kept = ['{"reg": "none", "reg_lambda": 0.0}', '{}', '{"reg_order": 3}']
    regularised = '{"reg": "speed", "reg_lambda": 0.1, "reg_order": 2}'
    rows, curves = [], []
    for i, (hparams, seed) in enumerate([*((h, 0) for h in kept), (regularised, 0), (regularised, 1)]):
        rows.append({"case_id": f"c{i}", "run_id": "r", "task": "t", "method": "direct", "seed": seed,
                     "hparams": hparams, "status": "ok", "peak_mem_bytes": 2.0**20, "nfe_forward_per_iter": 8.0,
                     "nfe_backward_per_iter": 4.0, "test_mse": 0.3})
        curves += [{"case_id": f"c{i}", "task": "t", "method": "direct", "seed": seed, "iteration": it,
                    "elapsed_s": it + 1.0, "loss": 10 * loss, "monitor": loss}
                   for it, loss in enumerate([1.0, 0.5, 0.3])]
    records = pd.DataFrame(rows)
    assert list(effective_hparams(records)) == ["{}", "{}", "{}", regularised, regularised]
    table, info = leaderboard.task_table(records, pd.DataFrame(curves))
    assert dict(zip(table["config"], table["runs"])) == {"direct": 3, "direct reg=speed reg_lambda=0.1 reg_order=2": 2}
    assert info["repeats"] == ['direct (reg "none", unset; reg_lambda 0.0, unset; reg_order 3, unset)']
