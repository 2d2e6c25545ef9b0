"""The regression gate on recorded nightly runs: A/A passes, a planted slowdown fails, bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodebench.benchmarking import compare as compare_module
from nodebench.benchmarking.compare import (RULES, compare, judge, load_records, markdown, regressed, rules_with, table,
                                            warning)
from nodebench.benchmarking.history import list_runs
from nodebench.cli import main

STORE = Path(__file__).resolve().parents[1] / "results" / "history"
AA_RUNS = list_runs(STORE, "dev-2core-cpu1", "nightly")["run_dir"].tolist()


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def plant_slowdown(source: Path, target: Path, factor: float) -> str:
    """Copy a run and multiply every step time of one configuration (all its seeds) by ``factor``;
    return the slowed configuration's experiment and method."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("cases", "logs"))
    records = pd.read_parquet(target / "records.parquet")
    curves = pd.read_parquet(target / "curves.parquet")
    victim = records[(records["experiment"] == "g1d") & (records["method"] == "gq")]
    slowed = curves["case_id"].isin(victim["case_id"])
    curves.loc[slowed, "time_s"] *= factor
    records.loc[victim.index, "time_per_iter_s"] *= factor
    curves.to_parquet(target / "curves.parquet", index=False)
    records.to_parquet(target / "records.parquet", index=False)
    return "g1d: gq"


needs_runs = pytest.mark.skipif(len(AA_RUNS) < 2, reason="the recorded A/A nightly runs are not in results/history")


@needs_runs
def test_aa_comparison_of_recorded_runs_reports_no_regression(capsys, tmp_path):
    code, out, err = run_cli(capsys, "compare", AA_RUNS[0], AA_RUNS[1], "--out", tmp_path / "aa.md")
    assert code == 0, out + err
    assert "no regression" in out
    text = (tmp_path / "aa.md").read_text()
    assert "No regression." in text and "| case" in text
    for run in AA_RUNS[:2]:  # each run is named with the commit it ran, not only its folder
        sha = pd.read_parquet(Path(run) / "records.parquet")["git_sha"].iloc[0][:12]
        assert f"`{run}` (commit {sha})" in text, text[:400]
    result = compare(load_records(AA_RUNS[0]), load_records(AA_RUNS[1]))
    nfe = result[result["metric"] == "nfe"]
    assert len(nfe) == 6 and (nfe["ratio"] == 1.0).all()  # NFE is deterministic for a fixed seed and code


@needs_runs
def test_a_run_of_uncommitted_changes_is_not_named_as_its_commit(capsys, tmp_path):
    """Records of a checkout with uncommitted changes (``git_sha`` ``…-dirty``) are named so in ``compare.md``: the
    gate must not say that the code it compared was that commit's."""
    shutil.copytree(AA_RUNS[0], tmp_path / "edited", ignore=shutil.ignore_patterns("cases", "logs"))
    records = pd.read_parquet(tmp_path / "edited" / "records.parquet")
    sha = records["git_sha"].iloc[0]
    records.assign(git_sha=f"{sha}-dirty").to_parquet(tmp_path / "edited" / "records.parquet", index=False)
    code, out, err = run_cli(capsys, "compare", AA_RUNS[0], tmp_path / "edited", "--out", tmp_path / "gate.md")
    assert code == 0, out + err
    text = (tmp_path / "gate.md").read_text()
    assert f"`{tmp_path / 'edited'}` (commit {sha[:12]}-dirty)" in text, text[:400]
    assert f"`{AA_RUNS[0]}` (commit {sha[:12]})" in text and f"`{AA_RUNS[0]}` (commit {sha[:12]})" in out


@needs_runs
def test_planted_20_percent_slowdown_is_flagged_with_exit_code_1(capsys, tmp_path):
    victim = plant_slowdown(Path(AA_RUNS[0]), tmp_path / "slow", 1.2)
    code, out, err = run_cli(capsys, "compare", AA_RUNS[0], tmp_path / "slow")
    assert code == 1, out
    assert "REGRESSION" in out
    result = compare(load_records(AA_RUNS[0]), load_records(tmp_path / "slow"))
    flagged = result[result["verdict"] == "regression"]
    assert flagged[["case", "metric"]].values.tolist() == [[victim, "time"]]
    assert flagged["ratio"].iloc[0] == pytest.approx(1.2) and flagged["p"].iloc[0] <= RULES["time"].alpha
    assert set(result["verdict"]) == {"same", "regression"}  # nothing else moved
    [written] = (tmp_path / "slow").glob("compare-*.md")  # named after the baseline: a gate record is kept
    assert written.name == f"compare-{Path(AA_RUNS[0]).name}.md" and "**regression**" in written.read_text()


def test_a_change_beyond_the_threshold_without_significance_is_noise():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.3, size=4)
    verdict = judge(base, base * 1.15 + rng.normal(0, 0.3, size=4), RULES["time"])
    assert verdict["verdict"] in ("noise", "same")  # 4 noisy samples cannot give p <= 0.002
    clear = judge(np.full(60, 1.0) + rng.normal(0, 0.01, 60), np.full(60, 1.3) + rng.normal(0, 0.01, 60),
                  RULES["time"])
    assert clear["verdict"] == "regression" and clear["ratio"] == pytest.approx(1.3, rel=0.02)
    faster = judge(np.full(60, 1.3) + rng.normal(0, 0.01, 60), np.full(60, 1.0) + rng.normal(0, 0.01, 60),
                   RULES["time"])
    assert faster["verdict"] == "improved"


def test_accuracy_is_gated_on_an_absolute_tolerance_in_its_own_direction():
    rule = RULES["test_accuracy"]
    worse = judge(np.array([0.90, 0.91, 0.92]), np.array([0.80, 0.81, 0.82]), rule)
    assert worse["verdict"] == "regression" and worse["change"] == pytest.approx(-0.1)
    better = judge(np.array([0.80, 0.81, 0.82]), np.array([0.90, 0.91, 0.92]), rule)
    assert better["verdict"] == "improved"
    within = judge(np.array([0.90, 0.91, 0.92]), np.array([0.89, 0.90, 0.91]), rule)
    assert within["verdict"] == "same"


def _records(status="ok", time=0.01, mem=8 * 2.0**20, seeds=3):
    rows = [{"case_id": f"c{s}", "experiment": "e", "task": "t", "method": "m", "hparams": "{}", "seed": s,
             "status": status, "time_per_iter_s": time, "peak_mem_bytes": mem * (1 + 0.01 * s),
             "nfe_forward_per_iter": 10.0, "nfe_backward_per_iter": 0.0, "test_mse": 0.5} for s in range(seeds)]
    return pd.DataFrame(rows), pd.DataFrame()


def test_memory_growth_is_flagged_from_per_seed_samples_without_curves():
    result = compare(_records(), _records(mem=1.6 * 8 * 2**20))  # +4.8 MiB
    memory = result[result["metric"] == "memory"].iloc[0]
    assert memory["verdict"] == "regression" and memory["n_current"] == 3
    assert regressed(result)
    assert result[result["metric"] == "time"]["verdict"].iloc[0] == "same"
    small = compare(_records(mem=4 * 2**20), _records(mem=1.8 * 4 * 2**20))  # +80 %, but 3.2 MiB: under the floor
    assert small[small["metric"] == "memory"]["verdict"].tolist() == ["same"] and not regressed(small)


def test_allocated_memory_growth_under_the_resident_set_floor_is_flagged():
    """A step that allocates 1 MiB more (+25 %) stays under the resident-set floor of 4 MiB, but the allocated
    peak is deterministic: it is gated from 256 KiB. Runs without the column are not compared on it."""
    def allocating(nbytes):
        records, curves = _records()
        return records.assign(alloc_peak_bytes=nbytes), curves

    result = compare(allocating(4 * 2.0**20), allocating(5 * 2.0**20))
    verdicts = dict(zip(result["metric"], result["verdict"]))
    assert verdicts["allocated"] == "regression" and verdicts["memory"] == "same" and regressed(result)
    small = compare(allocating(4 * 2.0**20), allocating(4 * 2.0**20 + 2.0**17))  # +128 KiB: under the floor
    assert dict(zip(small["metric"], small["verdict"]))["allocated"] == "same"
    older = compare(_records(), allocating(5 * 2.0**20))
    assert "allocated" not in set(older["metric"]) and not regressed(older)


def test_a_newly_failing_case_is_a_regression_and_new_or_missing_cases_are_listed():
    result = compare(_records(), _records(status="error"))
    assert result[result["metric"] == "status"]["verdict"].tolist() == ["failed"]
    assert regressed(result)
    other, _ = _records()
    other["experiment"] = "other"
    result = compare(_records(), (other, pd.DataFrame()))
    assert sorted(result["verdict"]) == ["missing", "new"] and not regressed(result)


def _curves(records: pd.DataFrame, time=0.01) -> pd.DataFrame:
    """Three timed steps per ok case of ``records``."""
    ok = records[records["status"] == "ok"]
    return pd.DataFrame([{"case_id": c, "iteration": i, "time_s": time * (1 + 0.01 * i), "cpu_s": time,
                          "nfe_forward": 10.0, "nfe_backward": 0.0} for c in ok["case_id"] for i in range(3)])


def test_a_metric_the_current_run_lost_is_missing_and_fails_the_gate():
    """A NaN final metric, NaN step times and absent curves were dropped silently ("no regression")."""
    base, _ = _records()
    base_curves = _curves(base)
    nan_metric = base.assign(test_mse=np.nan)
    result = compare((base, base_curves), (nan_metric, _curves(nan_metric)))
    [row] = result[result["verdict"] == "missing"].itertuples()
    assert row.metric == "test_mse" and row.baseline == 0.5 and "seeds 0, 1, 2" in row.note
    assert regressed(result)
    nan_steps = _curves(base).assign(time_s=np.nan, cpu_s=np.nan)
    result = compare((base, base_curves), (base, nan_steps))
    assert sorted(result.loc[result["verdict"] == "missing", "metric"]) == ["cpu", "time"] and regressed(result)
    result = compare((base, base_curves), (base, pd.DataFrame()))  # curves.parquet gone
    missing = result[result["verdict"] == "missing"]
    assert sorted(missing["metric"]) == ["cpu", "curves"] and regressed(result)
    assert "no per-step curves in the current run" in missing.loc[missing["metric"] == "curves", "note"].iloc[0]
    one_seed = base.assign(test_mse=[0.5, np.nan, 0.5])  # one seed ok without its metric is enough
    assert regressed(compare((base, base_curves), (one_seed, base_curves)))
    assert not regressed(compare((base, base_curves), (base, base_curves)))
    failed = compare((base, base_curves), _records(status="error"))  # a failed case: failed, not also missing
    assert failed["verdict"].tolist() == ["failed"]


def test_a_lost_metric_reads_not_measured_and_a_row_of_no_metric_has_no_values():
    """The current cell of a metric the current run lost was empty; the other tables show – for not measured."""
    base, _ = _records()
    curves = _curves(base)
    lost = table(compare((base, curves), (base.assign(test_mse=np.nan), curves)))
    assert lost.loc[lost["metric"] == "test_mse", ["baseline", "current"]].values.tolist() == [["0.5", "–"]]
    failed = table(compare((base, curves), _records(status="error")))
    assert failed[["metric", "baseline", "current"]].values.tolist() == [["status", "", ""]]


def test_a_lost_metric_is_shown_and_named_by_the_cli(capsys, tmp_path):
    base, current = tmp_path / "base", tmp_path / "current"
    for folder, mse in ((base, 0.5), (current, np.nan)):
        folder.mkdir()
        records, _ = _records()
        records.assign(test_mse=mse).to_parquet(folder / "records.parquet")
        _curves(records).to_parquet(folder / "curves.parquet")
    code, out, err = run_cli(capsys, "compare", base, current)
    assert code == 1 and "REGRESSION" in out, out + err
    assert "not measured (no value or NaN) in the current run for seeds 0, 1, 2" in out
    text = (current / "compare-base.md").read_text()
    assert "- MISSING: e: m: test_mse not measured" in text


def test_threshold_overrides_are_checked():
    assert rules_with({"time": 0.25})["time"].threshold == 0.25
    assert rules_with({"time": 1})["time"].threshold == 1 and rules_with({"test_nll": 2})["test_nll"].threshold == 2
    with pytest.raises(Exception, match="fraction of the baseline"):
        rules_with({"memory": 5})
    with pytest.raises(Exception, match="unknown metric 'speed'"):
        rules_with({"speed": 0.1})


BAD = [
    (["compare", "nope_a", "nope_b"], ["does not exist"]),
    (["compare", "BASE", "BASE", "--threshold", "time"], ["NAME=POSITIVE_NUMBER"]),
    (["compare", "BASE", "BASE", "--threshold", "time=nan"], ["POSITIVE"]),
    (["compare", "BASE", "BASE", "--threshold", "time=-1"], ["POSITIVE"]),
    (["compare", "BASE", "BASE", "--threshold", "wallclock=0.1"], ["unknown metric", "time"]),
    # time=10 meant 10 % and gated only an elevenfold slowdown; an absolute threshold may exceed 1
    (["compare", "BASE", "BASE", "--threshold", "time=10"],
     ["threshold for time is a fraction", "at most 1", "got 10"]),
    (["compare", "BASE", "BASE", "--threshold", "memory=0.05", "--threshold", "memory=0.1"],
     ["argument --threshold: memory given twice"]),
    (["compare", "GARBAGE", "BASE"], ["cannot read"]),
    (["compare", "EMPTYDIR", "BASE"], ["holds no records.parquet"]),
]


@pytest.mark.parametrize("argv, fragments", BAD)
def test_bad_compare_input_is_one_line_with_exit_code_2(capsys, tmp_path, argv, fragments):
    base = tmp_path / "base"
    base.mkdir()
    records, _ = _records()
    records.to_parquet(base / "records.parquet")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet")
    (tmp_path / "empty").mkdir()
    paths = {"BASE": base, "GARBAGE": garbage, "EMPTYDIR": tmp_path / "empty"}
    code, out, err = run_cli(capsys, *[paths.get(a, a) for a in argv])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nodebench: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]
    assert not list(base.glob("compare*.md"))  # nothing written on bad input


@needs_runs
def test_a_run_holding_one_configuration_twice_for_a_seed_is_refused(capsys, tmp_path):
    """A folder that merged runs of different --iters holds two cases of one configuration and seed: their
    samples would pair ambiguously (a traceback before), so the comparison is refused in one line."""
    merged = tmp_path / "merged"
    shutil.copytree(AA_RUNS[0], merged, ignore=shutil.ignore_patterns("cases", "logs"))
    records = pd.read_parquet(merged / "records.parquet")
    extra = records.iloc[[0]].assign(case_id="another-case", iters=records["iters"].iloc[0] + 1)
    pd.concat([records, extra], ignore_index=True).to_parquet(merged / "records.parquet", index=False)
    code, out, err = run_cli(capsys, "compare", AA_RUNS[1], merged, "--out", tmp_path / "c.md")
    assert code == 2 and err.count("\n") == 1, err
    assert "the current run holds" in err and "2 times for seed" in err and "(iters " in err
    assert not (tmp_path / "c.md").exists()


def test_cases_differing_only_in_options_their_method_ignores_are_refused_naming_the_options(capsys, tmp_path):
    """rk4 ignores gq's gtol, so rk4 cases recorded with gtol=0.1 and gtol=0.2 (runs built by hand, or recorded
    before nodebench run left ignored options out) are one configuration measured twice: the refusal said only
    "holds ... 2 times for seed 0"; it names the options, says the method ignores them and what to do."""
    base, current = tmp_path / "base", tmp_path / "current"
    records = _records(seeds=1)[0].assign(method="rk4")
    twice = pd.concat([records.assign(case_id=f"c-{gtol}", hparams=json.dumps({"gtol": gtol})) for gtol in (0.1, 0.2)],
                      ignore_index=True)
    for folder, frame in ((base, records), (current, twice)):
        folder.mkdir()
        frame.to_parquet(folder / "records.parquet")
    code, out, err = run_cli(capsys, "compare", base, current, "--out", tmp_path / "c.md")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "2 times for seed 0" in lines[0] and (
        "differ only in options that change nothing in a run of rk4 (gtol 0.1, 0.2)") in lines[0]
    assert "keep one of them" in lines[0] and not (tmp_path / "c.md").exists()


def _nfe_plant(delta: float):
    """The standard records and curves, and a copy whose NFE is ``delta`` higher on one step of seed 1."""
    records, _ = _records()
    curves = _curves(records)
    planted = curves.copy()
    planted.loc[(planted["case_id"] == "c1") & (planted["iteration"] == 2), "nfe_forward"] += delta
    return (records, curves), (records, planted)


@pytest.mark.parametrize("delta, verdict", [(1, "regression"), (-1, "improved"), (0, "same")])
def test_nfe_is_gated_exactly_per_matched_step(delta, verdict):
    """NFE is deterministic for a fixed seed: one evaluation more on one step of one seed is a regression
    (it read "same" under the 5 % threshold and the rank test before), one fewer an improvement."""
    base, current = _nfe_plant(delta)
    result = compare(base, current)
    [row] = result[result["metric"] == "nfe"].itertuples()
    assert row.verdict == verdict and row.change == delta and row.ratio == (90 + delta) / 90
    assert np.isnan(row.p) and np.isnan(row.ci_low)  # no test, no interval
    assert regressed(result) == (delta > 0)
    shown = table(result).set_index("metric").loc["NFE/iter"]
    assert shown["p"] == "" and shown["change"].startswith(f"×{(90 + delta) / 90:.5g} exact")
    if delta:
        assert f"{'1 more, 0' if delta > 0 else '0 more, 1'} fewer of 9 matched steps" in shown["change"]


def test_nfe_per_seed_values_are_gated_exactly_without_curves():
    base, _ = _records()
    one_more = base.assign(nfe_forward_per_iter=[10.0, 10.0, 10.5])
    [row] = compare((base, pd.DataFrame()), (one_more, pd.DataFrame())).query("metric == 'nfe'").itertuples()
    assert row.verdict == "regression" and "1 more, 0 fewer of 3 matched seeds" in row.note
    with pytest.raises(Exception, match="nfe is gated exactly"):
        rules_with({"nfe": 0.05})


def test_test_nfe_is_gated_exactly_per_seed():
    """The evaluation's NFE is as deterministic as training's: one more evaluation on one seed is a regression
    (a 1 % change that no threshold-and-test rule would flag), fewer an improvement."""
    base, _ = _records()
    base = base.assign(test_nfe=[100.0, 104.0, 98.0])
    for values, verdict in (([100.0, 105.0, 98.0], "regression"), ([100.0, 104.0, 96.0], "improved"),
                            ([100.0, 104.0, 98.0], "same")):
        [row] = compare((base, pd.DataFrame()), (base.assign(test_nfe=values), pd.DataFrame())).query(
            "metric == 'test_nfe'").itertuples()
        assert row.verdict == verdict, (values, row)
    assert "test_nfe" not in set(compare(_records(), _records())["metric"])  # not recorded: not compared


def _on(records: pd.DataFrame, device="cpu", hostname="laptop", cpu_model="EPYC") -> pd.DataFrame:
    return records.assign(device=device, hostname=hostname, cpu_model=cpu_model, gpu_model="")


def test_a_cpu_case_and_a_cuda_case_are_listed_apart_not_compared():
    base, _ = _records()
    result = compare((_on(base), pd.DataFrame()), (_on(base, "cuda", "laptop"), pd.DataFrame()))
    assert result[["case", "verdict"]].values.tolist() == [["e: m [cpu]", "missing"], ["e: m [cuda]", "new"]]
    assert not regressed(result) and warning(result) == ""  # one machine
    same = compare((_on(base), pd.DataFrame()), (_on(base), pd.DataFrame()))
    assert set(same["case"]) == {"e: m"} and set(same["verdict"]) == {"same"}


def test_runs_from_different_machines_start_with_a_warning(capsys, tmp_path):
    base, current = tmp_path / "base", tmp_path / "current"
    for folder, host, cpu in ((base, "laptop", "EPYC"), (current, "gpu-node-7", "Xeon")):
        folder.mkdir()
        records, _ = _records()
        _on(records, hostname=host, cpu_model=cpu).to_parquet(folder / "records.parquet")
    line = ("WARNING: time and memory are compared across different machines: baseline laptop (cpu_model EPYC), "
            "current gpu-node-7 (cpu_model Xeon)")
    code, out, err = run_cli(capsys, "compare", base, current)
    assert code == 0, out + err
    assert out.startswith(line + "\n"), out[:300]
    assert (current / "compare-base.md").read_text().startswith(f"**{line}**\n")
    result = compare(load_records(base), load_records(current))
    assert warning(result) == line and markdown(result, "a", "b").startswith(f"**{line}**")


def test_a_resident_set_of_zero_is_not_compared_as_zero_bytes():
    """A baseline whose seeds reused resident pages read 0 B: against 20 MiB that was a 'regression'."""
    zero, grown = _records(mem=0.0), _records(mem=20 * 2.0**20)
    zero, grown = (records.assign(mem_source="vmhwm") for records in (zero[0], grown[0]))
    memory = compare((zero, pd.DataFrame()), (grown, pd.DataFrame()))
    verdicts = memory.loc[memory["metric"] == "memory", "verdict"].tolist()
    assert "regression" not in verdicts and not regressed(memory)


def _step_samples(factors: dict[int, float], rng) -> tuple[pd.Series, pd.Series]:
    """Per-step samples of the seeds in ``factors`` (40 steps each), and the same steps times each seed's factor."""
    index = pd.MultiIndex.from_product([list(factors), range(40)], names=["seed", "iteration"])
    base = pd.Series(rng.uniform(0.9, 1.1, len(index)), index=index)
    return base, base * np.repeat(list(factors.values()), 40)


def test_a_step_time_change_of_one_pair_of_processes_is_noise_not_a_regression():
    """With one seed the interval rested on one pair of processes: seed 0 alone of the committed sequential
    A/A nights read 2 of 11 nights as time regressions (×1.28 [1.23, 1.44], p < 0.002)."""
    rng = np.random.default_rng(3)
    one = judge(*_step_samples({0: 1.3}, rng), RULES["time"])
    assert one["p"] <= RULES["time"].alpha and one["ci_low"] > 1.2 and one["verdict"] == "noise"
    three = judge(*_step_samples({0: 1.3, 1: 1.3, 2: 1.3}, rng), RULES["time"])
    assert three["verdict"] == "regression"  # a planted 30 % on three seeds is still caught


def test_runs_with_other_thread_counts_or_torch_versions_start_with_a_warning():
    """A step on 4 threads, or on another torch, was compared with the baseline without a word."""
    base, _ = _records()
    base = _on(base).assign(num_threads=1, version_torch="2.13.0")
    result = compare((base, pd.DataFrame()), (base.assign(num_threads=4, version_torch="2.14.0"), pd.DataFrame()))
    line = ("WARNING: time and memory are compared across different settings: num_threads baseline 1, current 4; "
            "version_torch baseline 2.13.0, current 2.14.0")
    assert warning(result) == line and markdown(result, "a", "b").startswith(f"**{line}**\n")
    both = compare((base, pd.DataFrame()), (_on(base, hostname="other").assign(num_threads=4), pd.DataFrame()))
    assert [w[:40] for w in warning(both).splitlines()] == [
        "WARNING: time and memory are compared ac"] * 2 and markdown(both, "a", "b").count("**WARNING") == 2
    assert warning(compare((base, pd.DataFrame()), (base, pd.DataFrame()))) == ""


@needs_runs
def test_the_gate_s_exit_code_survives_a_reader_that_leaves_early(tmp_path):
    """`nodebench compare A B | head -1` exited 0 on a regression: the closed pipe ended the command as a success."""
    import subprocess
    import sys

    plant_slowdown(Path(AA_RUNS[0]), tmp_path / "slow", 1.3)
    command = [sys.executable, "-m", "nodebench.cli", "compare", AA_RUNS[0], tmp_path / "slow",
               "--out", tmp_path / "g.md"]
    child = subprocess.Popen([str(a) for a in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # the reader is gone before the first line
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 1, err
    assert "Traceback" not in err and "**regression**" in (tmp_path / "g.md").read_text()


def test_configurations_trained_for_other_iteration_counts_start_with_a_warning(capsys, tmp_path):
    """A configuration run for 20 iterations in one run and 40 in the other was gated silently: its final
    metrics compared training lengths, not code."""
    base, _ = _records()
    base = base.assign(iters=20)
    longer = base.assign(iters=40)
    longer.loc[longer["seed"] == 2, "status"] = "diverged"  # a failed seed's count is not a training length
    line = "WARNING: final metrics are compared across different iteration counts (iters): e: m baseline 20, current 40"
    result = compare((base, pd.DataFrame()), (longer, pd.DataFrame()))
    assert warning(result) == line and markdown(result, "a", "b").startswith(f"**{line}**\n")
    assert warning(compare((base, pd.DataFrame()), (base.assign(iters=[20, 20, 7]).assign(
        status=["ok", "ok", "diverged"]), pd.DataFrame()))) == ""
    assert warning(compare(_records(), (longer, pd.DataFrame()))) == ""  # not recorded in one run: not compared
    for name, records in (("base", base), ("current", longer)):
        (tmp_path / name).mkdir()
        records.to_parquet(tmp_path / name / "records.parquet")
    code, out, err = run_cli(capsys, "compare", tmp_path / "base", tmp_path / "current")
    assert out.startswith(line + "\n"), out[:300]


def test_a_seed_that_newly_fails_is_a_regression_even_where_another_seed_failed_before():
    """The gate compared counts of failed cases: seed 0 failing before and seed 1 diverging now read "same"."""
    base, current = _records()[0], _records()[0]
    base.loc[base["seed"] == 0, "status"] = "error"
    current.loc[current["seed"] == 1, "status"] = "diverged"
    result = compare((base, pd.DataFrame()), (current, pd.DataFrame()))
    assert result.loc[result["metric"] == "status", ["verdict", "note"]].values.tolist() == [["failed", "diverged"]]
    assert regressed(result)
    assert not regressed(compare((base, pd.DataFrame()), (base, pd.DataFrame())))  # the same seed failing: no news


def test_a_resident_set_that_read_zero_in_the_current_run_is_not_a_lost_measurement():
    """An A/A `bench --suite gate_study` failed its gate: one g1d seed's resident set read 0 B (the step reused
    resident pages) in the second run, and the gate called its memory "not measured", a lost measurement."""
    base = _records()[0].assign(mem_source="vmhwm")
    zero = base.assign(peak_mem_bytes=[0.0, base["peak_mem_bytes"].iloc[1], base["peak_mem_bytes"].iloc[2]])
    result = compare((base, pd.DataFrame()), (zero, pd.DataFrame()))
    [row] = result[result["metric"] == "memory"].itertuples()
    assert row.verdict == "same" and row.n_current == 2 and not regressed(result)
    lost = base.assign(peak_mem_bytes=[np.nan, *base["peak_mem_bytes"].iloc[1:]])  # no reading at all: lost
    assert compare((base, pd.DataFrame()), (lost, pd.DataFrame())).query("metric == 'memory'")["verdict"].tolist() == [
        "missing"]


def test_step_times_on_one_side_only_are_compared_per_seed():
    """A baseline without curves against a current run with them: 60 steps were rank-tested against 3 per-seed
    medians as if independent (p = 0.0019), and a drift of all three processes by 30 % read as a regression
    with no interval. Both sides are compared per seed then: 3 seeds cannot confirm a time change at α = 0.002."""
    base = _records()[0]
    slower = base.assign(time_per_iter_s=0.013)
    steps = pd.DataFrame([{"case_id": c, "iteration": i, "time_s": 0.013 * (1 + 0.01 * np.sin(i + s))}
                          for s, c in enumerate(slower["case_id"]) for i in range(20)])
    result = compare((base, pd.DataFrame()), (slower, steps))
    [row] = result[result["metric"] == "time"].itertuples()
    assert (row.n_baseline, row.n_current) == (3, 3) and row.verdict == "noise", row
    assert not regressed(result)


BAD_RUNS = [  # (what the current run's records and curves hold, the error's fragments)
    ({"seed": [0, np.nan, 2]}, None, ["column seed holds nan (row 1)", "whole numbers"]),
    ({"seed": [0, 1.5, 2]}, None, ["column seed holds 1.5"]),
    ({"status": [None, "ok", "ok"]}, None, ["column status holds", "(row 0)", "ok, diverged, oom"]),
    ({"hparams": ["{}", "lr=0.1", "{}"]}, None, ["column hparams holds 'lr=0.1' (row 1)", "JSON object"]),
    ({}, "iteration", ["curves have no iteration column", "case_id and iteration"]),
    ({}, "case_id", ["curves have no case_id column"]),
]


@pytest.mark.parametrize("columns, dropped, fragments", BAD_RUNS)
def test_records_the_gate_cannot_pair_are_one_line_with_exit_code_2(capsys, tmp_path, columns, dropped, fragments):
    """Each of these ended `nodebench compare` in a traceback (a null status, curves without their keys, hparams
    that are no JSON) or compared nothing and passed (a NaN seed)."""
    base, current = tmp_path / "base", tmp_path / "current"
    records = _records()[0]
    for folder, frame in ((base, records), (current, records.assign(**columns))):
        folder.mkdir()
        frame.to_parquet(folder / "records.parquet")
        curves = _curves(records)
        curves.drop(columns=[dropped] if dropped and folder == current else []).to_parquet(folder / "curves.parquet")
    code, out, err = run_cli(capsys, "compare", base, current)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nodebench: error: "), err
    assert str(current) in lines[0] and all(fragment in lines[0] for fragment in fragments), lines[0]
    assert not list(current.glob("compare*.md"))


def test_seeds_written_as_text_pair_with_integer_seeds_and_records_without_hparams_are_read(tmp_path):
    records = _records()[0]
    base, current = tmp_path / "base.parquet", tmp_path / "other" / "records.parquet"
    current.parent.mkdir()
    records.to_parquet(base)
    records.assign(seed=records["seed"].astype(str)).drop(columns="hparams").to_parquet(current)
    result = compare(load_records(base), load_records(current))
    nfe = result.query("metric == 'nfe'")
    assert nfe["verdict"].tolist() == ["same"] and nfe["note"].tolist() == [""]  # paired seed by seed


def test_a_metric_a_paper_registers_after_import_is_gated(monkeypatch):
    """RULES was built when the gate was imported, so a metric a paper package registered afterwards (the metric
    registry's documented way) was never gated: a 0.2 drop of its AUC passed."""
    from nodebench.metrics import METRICS, Metric

    monkeypatch.setitem(METRICS, "test_auc", Metric("test_auc", "max", gate_tolerance=0.02, absolute=True))
    before, _ = _records()
    after = before.assign(test_auc=0.7)
    result = compare((before.assign(test_auc=0.9), pd.DataFrame()), (after, pd.DataFrame()))
    auc = result[result["metric"] == "test_auc"]
    assert auc["verdict"].tolist() == ["regression"] and regressed(result)
    assert RULES["test_auc"].higher_is_better and "test_auc" in rules_with({"test_auc": 0.5})


def _timed_runs(factor: float) -> tuple[tuple[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]:
    """Three seeds of 20 timed steps, and the same run with every step (wall and CPU) ``factor`` × slower."""
    records = _records()[0]
    steps = pd.DataFrame([{"case_id": c, "iteration": i, "time_s": 0.01 * (1 + 0.01 * np.sin(i + s)),
                           "cpu_s": 0.01 * (1 + 0.01 * np.cos(i + s)), "nfe_forward": 10.0, "nfe_backward": 0.0}
                          for s, c in enumerate(records["case_id"]) for i in range(20)])
    slower = steps.assign(time_s=steps["time_s"] * factor, cpu_s=steps["cpu_s"] * factor)
    return (records, steps), (records.assign(time_per_iter_s=records["time_per_iter_s"] * factor), slower)


def test_a_change_and_the_same_runs_swapped_get_mirrored_verdicts():
    """The band is symmetric in log ratio: ×1.105 is a regression, and the same two runs swapped (×1/1.105 = ×0.905)
    an improvement. An improvement needed a ratio below 0.9 before, so the reverse of a flagged slowdown read same."""
    fast, slow = _timed_runs(1.105)
    forward, backward = compare(fast, slow), compare(slow, fast)
    for metric in ("time", "cpu"):
        ahead = forward.set_index("metric").loc[metric]
        behind = backward.set_index("metric").loc[metric]
        assert ahead["verdict"] == "regression" and behind["verdict"] == "improved", (ahead, behind)
        assert ahead["ratio"] * behind["ratio"] == pytest.approx(1.0)
    inside = compare(*_timed_runs(1.095))  # within the band both ways
    assert set(inside.query("metric in ['time', 'cpu']")["verdict"]) == {"same"}
    assert set(compare(*_timed_runs(1.095)[::-1]).query("metric in ['time', 'cpu']")["verdict"]) == {"same"}


def _without_gtol(records: pd.DataFrame, method: str) -> pd.DataFrame:
    """``records`` with ``gtol`` left out of ``method``'s hparams, as ``nodebench run`` now records a method that
    ignores it (runner.settings.without_ignored)."""
    stripped = records["hparams"].map(lambda h: json.dumps({k: v for k, v in json.loads(h).items() if k != "gtol"},
                                                           sort_keys=True))
    return records.assign(hparams=stripped.where(records["method"] == method, records["hparams"]))


@needs_runs
def test_a_case_recorded_with_an_option_its_method_ignores_is_compared_with_the_case_without_it():
    """adjoint ignores gq's gtol: a run recorded with it (before nodebench run left it out, or from a suite) listed
    the case as missing and its twin recorded without it as new, never comparing them."""
    (base, base_curves), (cur, cur_curves) = load_records(AA_RUNS[0]), load_records(AA_RUNS[1])
    assert '"gtol": 0.1' in base.loc[(base["experiment"] == "g1d") & (base["method"] == "adjoint"), "hparams"].iloc[0]
    for baseline, current in (((base, base_curves), (_without_gtol(cur, "adjoint"), cur_curves)),
                              ((_without_gtol(base, "adjoint"), base_curves), (cur, cur_curves))):
        result = compare(baseline, current)
        assert not result["verdict"].isin(["new", "missing"]).any(), result[result["verdict"].isin(["new", "missing"])]
        assert {"time", "nfe"} <= set(result.loc[result["case"] == "g1d: adjoint", "metric"])
    changed = _without_gtol(cur, "gq")  # an option the method uses still makes another configuration
    assert set(compare((base, base_curves), (changed, cur_curves))["verdict"]) >= {"new", "missing"}


@needs_runs
def test_committed_nightly_runs_compare_with_the_same_verdicts_ignoring_options_the_method_ignores(monkeypatch):
    """Keying cases without ignored options merges no two configurations of the committed history."""
    runs = [load_records(run) for run in AA_RUNS[:3]]
    now = [compare(a, b) for a, b in zip(runs, runs[1:])]
    monkeypatch.setattr(compare_module, "effective_hparams", lambda records: records["hparams"])  # the old keys
    before = [compare(a, b) for a, b in zip(runs, runs[1:])]
    for old, new in zip(before, now):
        assert not new["verdict"].isin(["new", "missing"]).any()
        pd.testing.assert_frame_equal(old[["case", "metric", "verdict"]], new[["case", "metric", "verdict"]])


@pytest.mark.parametrize("column", ["cuda_version", "gpu_driver_version", "python_version", "version_torchdiffeq",
                                    "version_scikit-learn"])
def test_runs_with_other_cuda_driver_python_or_library_versions_start_with_a_warning(column):
    """Only thread counts and torch's version were named: runs on another CUDA toolkit or NVIDIA driver, Python,
    solver library or data library (all recorded on every row) were compared without a word."""
    base = _on(_records()[0], device="cuda").assign(**{column: "1.0"})
    result = compare((base, pd.DataFrame()), (base.assign(**{column: "2.0"}), pd.DataFrame()))
    assert warning(result) == f"WARNING: time and memory are compared across different settings: {column} baseline " \
                              "1.0, current 2.0"


@pytest.mark.parametrize("column, metric", [("nfe_forward", "nfe"), ("time_s", "time")])
def test_a_step_the_current_run_lost_is_missing_and_fails_the_gate(column, metric):
    """A step whose NFE (or time) was NaN in the current run, measured in the baseline, was left out of the
    matching: the other steps matched and the gate passed. It is a lost measurement now, as a lost seed is; a
    step the current run did not take at all (fewer iterations) is no loss."""
    records, _ = _records()
    curves = _curves(records)
    lost = curves.copy()
    lost.loc[(lost["case_id"] == "c1") & (lost["iteration"] == 2), column] = np.nan
    result = compare((records, curves), (records, lost))
    [row] = result[result["verdict"] == "missing"].itertuples()
    assert row.metric == metric and row.note == "not measured (no value or NaN) in the current run for 1 step of seed 1"
    assert regressed(result)
    shorter = curves[~((curves["case_id"] == "c1") & (curves["iteration"] == 2))]
    assert not regressed(compare((records, curves), (records, shorter)))
