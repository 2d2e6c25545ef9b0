"""The leaderboard shows the statistic that ranks (median, or olympic mean from 5 seeds) by name with its
interval, and never pools seeds from different devices or machines; on hand-made records and curves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.axes
import pandas as pd

from nodebench.benchmarking import leaderboard, leaderboard_page


def board(configs):
    """Records and curves of task ``toy``: per configuration (family, seconds to reach the quality 0.1 per
    seed, device, CPU model, GPU model), one case per seed; the quality falls from 1.0 to 0.1."""
    rows, curves = [], []
    for family, times, device, cpu, gpu in configs:
        for seed, t in enumerate(times):
            case = f"{family}-{device}-{cpu}-{seed}"
            rows.append({"case_id": case, "run_id": "r", "task": "toy", "method": family, "seed": seed,
                         "status": "ok", "device": device, "cpu_model": cpu, "gpu_model": gpu, "hostname": "h",
                         "hparams": json.dumps({"lr": 0.01}), "test_mse": 0.1, "peak_mem_bytes": 1.0,
                         "nfe_forward_per_iter": 10.0, "nfe_backward_per_iter": 0.0})
            curves += [{"case_id": case, "iteration": 1, "elapsed_s": t / 2, "monitor": 1.0, "loss": 1.0},
                       {"case_id": case, "iteration": 2, "elapsed_s": t, "monitor": 0.1, "loss": 0.1}]
    return pd.DataFrame(rows), pd.DataFrame(curves)


CPU = "Xeon"
SPREAD = [("famA", [1, 1, 1, 10, 10], "cpu", CPU, None), ("famB", [3, 3, 3, 3, 3], "cpu", CPU, None),
          ("famD", [2, 2, 9], "cpu", CPU, None), ("famE", [7], "cpu", CPU, None)]


def test_the_time_shown_is_the_time_that_ranks_with_its_name():
    table, _ = leaderboard.task_table(*board(SPREAD), target=0.5)
    shown = {row.family: leaderboard.time_text(row) for row in table.itertuples()}
    assert table["family"].tolist() == ["famD", "famB", "famA", "famE"]  # 2 < 3 < 4 < 7
    assert shown["famA"].startswith("4 [") and "(olympic mean, 5 seeds, 95%)" in shown["famA"]  # was "1 [1, 10]"
    assert shown["famB"] == "3 (olympic mean, 5 seeds)"
    assert shown["famD"] == "2 [2, 9] (median, 3 seeds, 75%)"
    assert shown["famE"] == "7 (1 seed)"  # one seed's time is no statistic


def test_the_plot_draws_the_ranked_statistic_with_its_interval(monkeypatch, tmp_path):
    drawn, labels = [], []
    barh, text = matplotlib.axes.Axes.barh, matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "barh", lambda ax, y, width, **kw: drawn.append(
        (list(y), list(width), kw["xerr"])) or barh(ax, y, width, **kw))
    monkeypatch.setattr(matplotlib.axes.Axes, "text",
                        lambda ax, x, y, s, **kw: labels.append(s) or text(ax, x, y, s, **kw))
    table, _ = leaderboard.task_table(*board(SPREAD), target=0.5)
    leaderboard.plot_times({"toy": table}, tmp_path / "times.png")
    (families, widths, (low, high)), = drawn
    a = families.index("famA (cpu · Xeon)")
    interval = table.set_index("family").loc["famA", "time_interval"]
    assert widths[a] == 4.0 and (4.0 - low[a], 4.0 + high[a]) == (interval.low, interval.high)
    assert any("olympic mean, 5 seeds" in s for s in labels)


MIXED = [("famC", [2, 2, 2], "cpu", CPU, None), ("famC", [0.2, 0.2], "cuda", CPU, "H200"),
         ("famB", [3, 3, 3], "cpu", CPU, None)]


def test_seeds_from_a_cpu_and_a_gpu_are_separate_configurations():
    table, _ = leaderboard.task_table(*board(MIXED), target=0.5)
    rows = {(r.family, r.device, r.machine): (r.seeds, r.time_to_target_s) for r in table.itertuples()}
    assert rows == {("famC", "cuda", "H200"): (2, 0.2), ("famC", "cpu", CPU): (3, 2.0), ("famB", "cpu", CPU): (3, 3.0)}
    assert "2 machines (cpu · Xeon; cuda · H200)" in leaderboard.machines_note({"toy": table})


def test_seeds_from_two_cpu_models_are_separate_configurations():
    table, _ = leaderboard.task_table(*board([("famC", [2, 2], "cpu", "Xeon", None),
                                              ("famC", [4, 4], "cpu", "EPYC", None)]), target=0.5)
    assert sorted(table["machine"]) == ["EPYC", "Xeon"] and table["seeds"].tolist() == [2, 2]


def _write_run(folder: Path, records: pd.DataFrame, curves: pd.DataFrame) -> Path:
    folder.mkdir(parents=True)
    records.to_parquet(folder / "records.parquet", index=False)
    curves.to_parquet(folder / "curves.parquet", index=False)
    return folder


def test_a_leaderboard_over_several_machines_says_so_at_the_top(tmp_path):
    mixed = _write_run(tmp_path / "mixed", *board(MIXED))
    md, html = leaderboard_page.write([mixed], tmp_path / "board", targets={"toy": 0.5})
    head = md.read_text().split("## Method families")[0]
    assert "Records from 2 machines (cpu · Xeon; cuda · H200)" in head
    assert "Records from 2 machines" in html.read_text()
    one = _write_run(tmp_path / "one", *board(SPREAD))
    md, _ = leaderboard_page.write([one], tmp_path / "board1")
    assert "machines" not in md.read_text().split("## Method families")[0]


def test_overall_scores_compare_times_on_one_hardware_only(tmp_path):
    """A family's best time across devices entered the scores: famB's 3 s on the CPU was scored against famC's
    0.2 s on a GPU (r = 15, score 0) instead of famC's 2 s on the same CPU (r = 1.5)."""
    table, _ = leaderboard.task_table(*board(MIXED), target=0.5)
    scores = leaderboard.overall({"toy": table}, "famC")
    rows = {(r.hardware, r.family): round(r.score, 4) for r in scores.itertuples()}
    assert rows == {("cpu · Xeon", "famC"): 1.0, ("cpu · Xeon", "famB"): round(2.5 / 3, 4),
                    ("cuda · H200", "famC"): 1.0}
    assert leaderboard.score_ranks(scores) == [1, 2, 1]  # ranked within each hardware
    shown = leaderboard.display_overall(scores, "famC")
    assert shown[["#", "family", "hardware"]].values.tolist() == [
        [1, "famC", "cpu · Xeon"], [2, "famB", "cpu · Xeon"], [1, "famC", "cuda · H200"]]
    md, html = leaderboard_page.write([_write_run(tmp_path / "mixed", *board(MIXED))], tmp_path / "board",
                                      targets={"toy": 0.5})
    assert re.search(r"\| +2 \| famB +\| 1/1 +\| +0\.833 \|.*\| cpu · Xeon +\|", md.read_text())
    assert "<td>cuda · H200</td>" in html.read_text()
    one = leaderboard.overall({"toy": leaderboard.task_table(*board(SPREAD), target=0.5)[0]}, "famA")
    assert "hardware" not in leaderboard.display_overall(one, "famA")  # one hardware: no column for it


def test_the_family_task_table_the_fastest_marks_and_the_time_plot_are_per_hardware(monkeypatch, tmp_path):
    """The summary showed each family's best configuration pooled across hardware: famC's 0.2 s on a GPU beside
    famB's 3 s on the CPU, famC's 2 s on that CPU hidden, and the GPU time marked fastest; the time plot and
    the task table's ranks and fastest mark pooled them alike."""
    table, info = leaderboard.task_table(*board(MIXED), target=0.5)
    tasks = {"toy": table}
    assert leaderboard.summary(tasks).values.tolist() == [
        ["famB", "cpu · Xeon", "3 (median, 3 seeds)"], ["famC", "cpu · Xeon", "2 (median, 3 seeds)"],
        ["famC", "cuda · H200", "0.2 (median, 2 seeds)"]]
    assert leaderboard.display_task(table, info)[["#", "family", "device"]].values.tolist() == [
        [1, "famC", "cpu"], [2, "famB", "cpu"], [1, "famC", "cuda"]]  # ranked within each hardware
    drawn = []
    barh = matplotlib.axes.Axes.barh
    monkeypatch.setattr(matplotlib.axes.Axes, "barh", lambda ax, y, width, **kw: drawn.append(
        dict(zip(y, width))) or barh(ax, y, width, **kw))
    md, html = leaderboard_page.write([_write_run(tmp_path / "mixed", *board(MIXED))], tmp_path / "board",
                                      targets={"toy": 0.5})
    assert drawn == [{"famC (cpu · Xeon)": 2.0, "famB (cpu · Xeon)": 3.0, "famC (cuda · H200)": 0.2}]
    summary = md.read_text().split("## Method families × tasks")[1].split("## Overall")[0]
    assert re.search(r"\| famC +\| cpu · Xeon +\| 2 \(median, 3 seeds\) +\|", summary), summary
    page = html.read_text()
    rows = re.findall(r"<tr data-device='(\w+)'><td><b>(\w+)</b></td><td>([^<]*)</td><td data-v='([\d.]+)' "
                      r"class='([^']*)'", page.split("id='summary'")[1].split("</table>")[0])
    assert rows == [("cpu", "famB", "cpu · Xeon", "3.0", "num"), ("cpu", "famC", "cpu · Xeon", "2.0", "num best"),
                    ("cuda", "famC", "cuda · H200", "0.2", "num best")]  # the fastest on each hardware
    section = page.split("id='task-toy'")[1].split("</table>")[0]
    assert re.findall(r"<td data-v='([\d.]+)' class='num best'", section) == ["2.0", "0.2"]
    assert "more</summary>" not in section  # famC's CPU and GPU rows are two bests, neither folded under the other


def test_a_task_whose_every_case_failed_on_one_hardware_is_not_scored_there():
    """Task t2 ran out of memory on every GPU case: it entered the GPU's scores as r = ∞ for every family,
    halving them all (famA 0.5 where it was the fastest on every task it could run), while a task failed on
    every hardware is left out of the scores."""
    both = [("famA", [2, 2, 2], "cpu", CPU, None), ("famB", [3, 3, 3], "cpu", CPU, None),
            ("famA", [1, 1], "cuda", CPU, "H200"), ("famB", [1.5, 1.5], "cuda", CPU, "H200")]
    records, curves = board(both)
    oom = records.assign(task="t2", case_id="t2-" + records["case_id"])
    oom.loc[oom["device"] == "cuda", "status"] = "oom"
    records, curves = pd.concat([records, oom]), pd.concat([curves, curves.assign(case_id="t2-" + curves["case_id"])])
    tasks = {t: leaderboard.task_table(records[records["task"] == t], curves, target=0.5)[0] for t in ("toy", "t2")}
    scores = leaderboard.overall(tasks, "famA")
    rows = {(r.hardware, r.family): (r.tasks_run, round(r.score, 4)) for r in scores.itertuples()}
    assert rows == {("cpu · Xeon", "famA"): (2, 1.0), ("cpu · Xeon", "famB"): (2, round(2.5 / 3, 4)),
                    ("cuda · H200", "famA"): (1, 1.0), ("cuda · H200", "famB"): (1, round(2.5 / 3, 4))}
    assert leaderboard.unscored_note(tasks) == " Not scored on cuda · H200, no case finished ok there: t2."


def test_repeats_of_one_seed_are_one_seed_not_two():
    """g1d width=3000 ran in two experiments with seed 0 and read "median, 2 seeds, 50%": its two runs of one
    seed are pooled (their median) and counted as one seed, with the runs named."""
    records, curves = board([("famA", [1, 3], "cpu", CPU, None), ("famB", [5, 5, 6], "cpu", CPU, None)])
    records["seed"] = records["seed"].where(records["method"] != "famA", 0)  # famA: seed 0 twice
    table, _ = leaderboard.task_table(records, curves, target=0.5)
    rows = {row.family: row for row in table.itertuples()}
    assert leaderboard.time_text(rows["famA"]) == "2 (2 runs of 1 seed)"  # was "2 [1, 3] (median, 2 seeds, 50%)"
    assert leaderboard.ok_text(rows["famA"]) == "2/2 runs of 1 seed" and rows["famA"].reached == 1
    assert rows["famA"].metric_interval.text() == "0.1 (2 runs of 1 seed)"
    assert leaderboard.time_text(rows["famB"]) == "5 [5, 6] (median, 3 seeds, 75%)"  # distinct seeds: as before
    assert leaderboard.ok_text(rows["famB"]) == "3/3"
    assert leaderboard.overall({"toy": table}, "famB").set_index("family").loc["famA", "seeds"] == "1 seed"



def test_repeats_from_options_the_method_ignores_are_named_above_the_task():
    """rk4 cases of seed 0 recorded with gq's gtol 0.1 and 0.2 (which rk4 ignores) are one configuration: the
    leaderboard pooled them as "2 runs of 1 seed" without saying the runs came from those options, so they read as
    repeats of distinct settings. The note above the task names the configuration and the options; true repeats
    (same recorded hparams) and distinct seeds are not named."""
    records, curves = board([("rk4", [1, 3], "cpu", CPU, None), ("famB", [5, 5, 5], "cpu", CPU, None)])
    records["seed"] = records["seed"].where(records["method"] != "rk4", 0)
    records.loc[records["method"] == "rk4", "hparams"] = [json.dumps({"lr": 0.01, "gtol": g}) for g in (0.1, 0.2)]
    records.loc[records["case_id"].str.startswith("famB-") & (records["seed"] == 2), "seed"] = 1  # famB: true repeat
    table, info = leaderboard.task_table(records, curves, target=0.5)
    assert leaderboard.ok_text(table.set_index("family").loc["rk4"]) == "2/2 runs of 1 seed"  # one configuration
    note = leaderboard.target_note("toy", info, declared=False)
    assert note.endswith("differ only in options their method ignores, so one configuration measured more than "
                         "once (pooled as that seed's runs), not runs of distinct settings: rk4 (gtol 0.1, 0.2).")
    assert info["repeats"] == ["rk4 (gtol 0.1, 0.2)"]  # famB's runs of seed 1 are recorded alike: not named
    _, info = leaderboard.task_table(*board(SPREAD), target=0.5)
    assert info["repeats"] == [] and "ignores" not in leaderboard.target_note("toy", info, declared=False)

def test_families_with_equal_profiles_stay_visible_and_the_legend_says_they_tie(monkeypatch, tmp_path):
    """Two families equal on every task drew the same line in the same width, the later over the earlier, so one
    family disappeared from the performance profile. Each line now differs in width, and the legend names the tie."""
    drawn = []
    step = matplotlib.axes.Axes.step
    monkeypatch.setattr(matplotlib.axes.Axes, "step", lambda ax, x, y, *args, **kw: drawn.append(
        (list(y), kw)) or step(ax, x, y, *args, **kw))
    table, _ = leaderboard.task_table(*board([("famA", [2, 2], "cpu", CPU, None), ("famB", [2, 2], "cpu", CPU, None),
                                              ("famC", [5, 5], "cpu", CPU, None)]), target=0.5)
    scores = leaderboard.overall({"toy": table}, "famA")
    leaderboard.plot_profile(scores, tmp_path / "profile.png")
    labels = [kw["label"] for _, kw in drawn]
    assert labels == ["famA (2 seeds)", "famB (2 seeds, same profile as famA)", "famC (2 seeds)"]
    assert drawn[0][0] == drawn[1][0]  # the same profile...
    under, over = (drawn[0][1], drawn[1][1])
    assert under["lw"] > over["lw"] and under["color"] != over["color"]  # ...drawn wider beneath, another colour
    assert under["markevery"] != over["markevery"]  # markers at other τ


def test_hosts_and_commits_pooled_on_one_hardware_are_named_at_the_top():
    """Two hosts with the same CPU model, at two commits, were compared as one machine with no word above
    the tables (only the environment table at the bottom listed them)."""
    records, curves = board([("famA", [1, 1], "cpu", CPU, None), ("famB", [2, 2], "cpu", CPU, None)])
    records = records.assign(hostname=["h1", "h1", "h2", "h2"], git_sha=["a" * 40] * 2 + ["b" * 40] * 2)
    note = leaderboard.machines_note({"toy": leaderboard.task_table(records, curves, target=0.5)[0]})
    assert "several hosts of one hardware (cpu · Xeon: h1, h2)" in note
    assert f"2 commits ({'a' * 12}, {'b' * 12})" in note and "2 machines" not in note
    one = records.assign(hostname="h1", git_sha="a" * 40)
    assert leaderboard.machines_note({"toy": leaderboard.task_table(one, curves, target=0.5)[0]}) == ""
