"""Bad arguments to the user-facing scripts of ``benchmarks/`` without a test module of their own (the Taylor
and GQ cost scripts are checked in ``test_taylor.py`` and ``test_gq.py``): one line, exit code 2, nothing
written."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import BENCHMARKS, assert_exits_2_in_one_line, assert_refused_in_one_line, run_script


@pytest.mark.parametrize("arguments, message", [
    (["--task", "nope"], "unknown task 'nope'; valid: "),
    (["--methods", "snode", "foo"], "unknown method 'foo'; valid: "),
    (["--methods", "direct"], "--methods must include snode"),
    (["--seeds", "0"], "--seeds: expected a positive integer, got '0'"),
    (["--budget-s", "-1"], "--budget-s: expected a positive finite number, got '-1'"),
    (["--hparam", "x"], "--hparam: expected KEY=VALUE, got 'x'"),
    (["--hparam", "bogus=1"], "unknown hyper-parameter 'bogus' for task 'vehicle' with method 'snode'; valid: "),
    (["--device", "gpu0"], "unknown device 'gpu0'; valid: cpu, cuda, cuda:N"),
])
def test_snode_time_to_target_refuses_bad_arguments(tmp_path, capsys, monkeypatch, arguments, message):
    assert_refused_in_one_line("snode_time_to_target.py", arguments, message, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("arguments, message", [
    (["--problems", "cnf_toy_8gaussians,nope"], "unknown problem 'nope'; valid: cnf_toy_8gaussians, "),
    (["--iters", "0"], "--iters: expected a positive integer, got '0'"),
    (["--seeds", "two"], "--seeds: expected a positive integer, got 'two'"),
])
def test_do_vs_od_cnf_refuses_bad_arguments(tmp_path, capsys, monkeypatch, arguments, message):
    assert_refused_in_one_line("do_vs_od_cnf.py", arguments, message, tmp_path, capsys, monkeypatch)


def test_do_vs_od_cnf_keeps_a_published_run_s_records(tmp_path, capsys, monkeypatch):
    """A folder holding records but no per-case files (a copied or published run) is refused, untouched: a sweep
    there would replace its records."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "records.parquet").write_bytes(b"published")
    assert_refused_in_one_line("do_vs_od_cnf.py", ["--iters", "1"], "a sweep there would replace its records",
                               tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("script", ["do_vs_od_cnf.py", "snode_time_to_target.py", "taylor_cost.py",
                                    "gq_gradient_cost.py"])
def test_benchmark_scripts_refuse_an_empty_out(capsys, monkeypatch, script):
    """``--out ""`` would write into the current folder."""
    assert_exits_2_in_one_line(script, ["--out", ""], "expected a path, got an empty string", capsys, monkeypatch)


def test_memory_spread_runs_a_paper_s_task(capsys, monkeypatch):
    """A paper package's task (digits_ode, taynode's) is found in the fresh process too."""
    run_script("memory_spread.py", ["--runs", "1", "--task", "digits_ode", "--method", "rk4",
                                    "--hparams", '{"n_train": 20, "n_test": 10}'], monkeypatch)
    out = capsys.readouterr().out
    assert "digits_ode/rk4 tensor storage peak (TensorPeak): min" in out and "over 1 runs" in out


@pytest.mark.parametrize("arguments, message", [
    (["--plant", "abc"], "--plant: expected FACTOR=RUNS with a factor > 1, e.g. 1.2=10, got 'abc'"),
    (["--plant", "1.2"], "--plant: expected FACTOR=RUNS"),
    (["--plant", "1.2=x"], "--plant: expected a positive integer, got 'x'"),
    (["--plant", "0.9=3"], "with a factor > 1"),
    (["--aa", "-1"], "--aa: expected an integer ≥ 0, got '-1'"),
    (["--suite", "nosuch", "--summary-only"], "unknown suite 'nosuch'; valid suites: "),
    (["--summary-only"], "no run of suite 'gate_study' in "),
    (["--planted-task", "G1DProblme"], "unknown problem class 'G1DProblme' (did you mean 'G1DProblem'?); valid: "),
    # a label the suite lacks started the whole study, whose summary then read "detected 0 of 0"
    (["--planted-case", "g1d:gq"], "unknown configuration of suite 'gate_study' (--planted-case) 'g1d:gq' "
                                   "(did you mean 'g1d: gq'?); valid: g1d: gq, spiral: rk4"),
    (["--planted-case", ""], "(--planted-case) ''"),
])
def test_gate_false_alarms_refuses_bad_arguments_before_writing(tmp_path, capsys, monkeypatch, arguments, message):
    """Checked before any worktree is made: a summary of an empty store used to write an empty verdicts.csv over
    the old one, then fail with a traceback."""
    assert_refused_in_one_line("gate_false_alarms.py", arguments, message, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("script, arguments, message", [
    ("memory_spread.py", ["--task", "nope"], "unknown task 'nope'; valid: cubic_spiral, "),
    ("memory_spread.py", ["--method", "foo"], "unknown method 'foo'; valid: "),
    ("memory_spread.py", ["--runs", "0"], "--runs: expected a positive integer, got '0'"),
    ("memory_spread.py", ["--hparams", "{"], "--hparams: not JSON"),
    ("memory_spread.py", ["--hparams", "[1]"], "--hparams: expected a JSON object, got '[1]'"),
    ("memory_spread.py", ["--task", "digits_ode", "--hparams", '{"lr": -1}'], "lr must be a positive finite number"),
    ("harness_overhead.py", ["--task", "nope"], "unknown task 'nope'; valid: "),
    ("harness_overhead.py", ["--processes", "0"], "--processes: expected a positive integer, got '0'"),
    ("harness_overhead.py", ["--steps", "-3"], "--steps: expected a positive integer, got '-3'"),
    ("machine_drift.py", ["--method", "nope"], "unknown method 'nope'"),
    ("machine_drift.py", ["--windows", "1"], "--processes and --windows must be at least 2"),
    ("machine_drift.py", ["--window", "nan"], "--window: expected a positive finite number, got 'nan'"),
    ("between_steps.py", ["--task", "nope"], "unknown task 'nope'; valid: "),
    ("between_steps.py", ["--iters", "5", "--skip", "10"], "--skip 10 leaves no iteration of --iters 5"),
])
def test_worker_scripts_refuse_bad_arguments_before_any_worker(capsys, monkeypatch, script, arguments, message):
    """Scripts that start worker processes check names and numbers first: a worker's error came back as a
    CalledProcessError traceback hiding its message, and zero counts ran to NaN results."""
    assert_exits_2_in_one_line(script, arguments, message, capsys, monkeypatch)


def test_a_failing_worker_is_reported_in_one_line(capsys):
    """A worker that fails after the checks: exit 1, its exit code and last error line, no traceback."""
    import sys

    from nodebench.argtypes import ScriptParser
    parser = ScriptParser(prog="script.py")
    with pytest.raises(SystemExit) as exited:
        parser.run_worker([sys.executable, "-c", "import sys; print('partial'); sys.exit('boom: the last line')"])
    assert exited.value.code == "script.py: a worker process failed (exit 1): boom: the last line"
    assert parser.run_worker([sys.executable, "-c", "print('fine')"]) == "fine\n"


@pytest.mark.parametrize("script, arguments, message", [
    ("taylor_cost.py", ["--methods", "taylor", "taylor"], "--methods repeats 'taylor'; give each value once"),
    ("taylor_cost.py", ["--dims", "2", "2"], "--dims repeats 2; give each value once"),
    ("taylor_cost.py", ["--orders", "1", "2", "1"], "--orders repeats 1; give each value once"),
    ("gq_gradient_cost.py", ["--methods", "gq", "gq"], "--methods repeats 'gq'; give each value once"),
    ("gq_gradient_cost.py", ["--widths", "5", "5"], "--widths repeats 5; give each value once"),
    ("snode_time_to_target.py", ["--methods", "snode", "snode"], "--methods repeats 'snode'"),
    ("snode_time_to_target.py", ["--hparam", "n_train=4", "--hparam", "n_train=5"], "--hparam repeats 'n_train'"),
    ("do_vs_od_cnf.py", ["--problems", "cnf_toy_8gaussians,cnf_toy_8gaussians"],
     "--problems repeats 'cnf_toy_8gaussians'"),
    ("gate_false_alarms.py", ["--plant", "1.2=3", "--plant", "1.2=4"], "--plant repeats 1.2; give each value once"),
])
def test_list_options_refuse_a_repeated_value_before_measuring(tmp_path, capsys, monkeypatch, script, arguments,
                                                               message):
    """A method or size given twice was measured twice under one key: pandas' "Index contains duplicate entries"
    after measuring, and a checkpoint that refused the corrected rerun."""
    assert_refused_in_one_line(script, arguments, message, tmp_path, capsys, monkeypatch)


THREADS = "--threads: expected a positive integer ≤ 1,024, got '100000'"


@pytest.mark.parametrize("script, arguments, message", [
    ("taylor_cost.py", ["--threads", "100000"], THREADS),
    ("gq_gradient_cost.py", ["--threads", "100000"], THREADS),
    ("gq_gradient_cost.py", ["--widths", "5", "1000000000000"], "--widths: expected a positive integer ≤ 16,384"),
    ("snode_time_to_target.py", ["--threads", "100000"], THREADS),
    ("taylor_cost.py", ["--hidden", "1000000000000"], "--hidden: expected a positive integer ≤ 65,536"),
    ("taylor_cost.py", ["--batch", "65537"], "--batch: expected a positive integer ≤ 65,536, got '65537'"),
    ("taylor_cost.py", ["--dims", "2", "100000"], "--dims: expected a positive integer ≤ 65,536, got '100000'"),
    ("taylor_cost.py", ["--methods", "jax_jet"], "--methods jax_jet is reported against taylor"),
    ("taylor_cost.py", ["--methods", "jvp", "taylor_compiled"], "--methods taylor_compiled is reported against taylor"),
    ("snode_time_to_target.py", ["--methods", "snode", "--hparam", "snode_gamma=-1"],
     "snode_gamma must be a finite number > 0, got -1"),
])
def test_cost_scripts_refuse_out_of_range_settings(tmp_path, capsys, monkeypatch, script, arguments, message):
    """--threads 100000 segfaulted, --hidden 10^12 failed in the allocator with a traceback, --methods jax_jet alone
    wrote a summary of dashes, and --hparam snode_gamma=-1 ran silently with the script's own 0.1."""
    assert_refused_in_one_line(script, arguments, message, tmp_path, capsys, monkeypatch)


def test_harness_overhead_caps_threads(capsys, monkeypatch):
    assert_exits_2_in_one_line("harness_overhead.py", ["--threads", "100000"], THREADS, capsys, monkeypatch)


@pytest.mark.parametrize("script", ["between_steps.py", "harness_overhead.py", "machine_drift.py"])
def test_step_scripts_refuse_a_method_without_a_solver_step(capsys, monkeypatch, script):
    """SNODE trains by coordinate descent: its step time against a bare solver step, or over time, means nothing."""
    assert_exits_2_in_one_line(script, ["--method", "snode", "--task", "vehicle"],
                               "method 'snode' has no solver step to time (it trains by coordinate descent); valid: ",
                               capsys, monkeypatch)


def test_taylor_cost_reports_a_failed_allocation_in_one_line(tmp_path, capsys, monkeypatch):
    """A field too large for the memory (within the bounds) is one line, exit 2, nothing written."""
    from nodebench.papers.taynode import cost

    def measure_cost(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 17179869184 bytes.\nmore")
    monkeypatch.setattr(cost, "measure_cost", measure_cost)
    assert_refused_in_one_line("taylor_cost.py", ["--methods", "taylor", "--hidden", "65536"],
                               "does not fit in cpu's memory", tmp_path, capsys, monkeypatch)


def test_snode_time_to_target_hparam_overrides_the_script_s_settings(tmp_path, capsys, monkeypatch):
    """A user's --hparam replaces the script's per-method value (snode_gamma 0.1, rtol 1e-4) for every method."""
    import nodebench
    from nodebench.errors import UserError

    real_run, seen = nodebench.run, {}

    def dry_run(*args, **kwargs):
        seen["cases"] = real_run(*args, **kwargs, dry_run=True).cases
        raise UserError("stopped after the dry run")
    monkeypatch.setattr(nodebench, "run", dry_run)
    with pytest.raises(SystemExit) as exited:  # after the warnings that snode takes no rtol, direct no snode_gamma
        run_script("snode_time_to_target.py", ["--methods", "snode", "direct", "--hparam", "snode_gamma=0.2",
                                               "--hparam", "rtol=1e-5", "--out", str(tmp_path / "out")], monkeypatch)
    assert exited.value.code == 2 and "stopped after the dry run" in capsys.readouterr().err
    hparams = {case.method: case.hparams for case in seen["cases"]}
    assert hparams["snode"]["snode_gamma"] == 0.2 and hparams["snode"]["snode_weight_steps"] == 10
    assert hparams["direct"]["rtol"] == 1e-5 and hparams["direct"]["atol"] == 1e-6


def test_do_vs_od_cnf_reports_only_this_run_s_cases(tmp_path, capsys, monkeypatch):
    """--out keeps an earlier run's cases (other --iters): its table used to pool them with this run's."""
    import pandas as pd

    from nodebench.runner import sweep

    def run_cases(cases, out, **kwargs):
        rows = [{"case_id": case.case_id, "task": case.task, "method": case.method, "seed": case.seed,
                 "status": "ok", "reason": "", "train_wall_s": 1.0 if case.method == "rk4" else 2.0, "test_nll": 1.0,
                 "nfe_forward_per_iter": 4.0, "nfe_backward_per_iter": 0.0} for case in cases]
        earlier = [{**row, "case_id": f"earlier-{row['case_id']}", "train_wall_s": 100.0} for row in rows]
        return pd.DataFrame(rows + earlier), pd.DataFrame()
    monkeypatch.setattr(sweep, "run_cases", run_cases)
    run_script("do_vs_od_cnf.py", ["--problems", "cnf_toy_8gaussians", "--iters", "2", "--out",
                                   str(tmp_path / "out")], monkeypatch)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("cnf_toy_8gaussians"))
    assert line.split()[1:4] == ["1.0", "2.0", "50.0%"], line


def test_do_vs_od_cnf_interleaves_the_methods(tmp_path, monkeypatch):
    """All DO seeds of a problem ran before all its OD seeds, so a drift of the machine between them went into
    the time reduction; the cases now run in rounds (seed 0 of every configuration, then seed 1)."""
    import pandas as pd

    from nodebench.runner import sweep

    seen = []

    def run_cases(cases, out, **kwargs):
        seen.extend(cases)
        return pd.DataFrame(columns=["case_id", "task", "method", "seed", "status"]), pd.DataFrame()
    monkeypatch.setattr(sweep, "run_cases", run_cases)
    run_script("do_vs_od_cnf.py", ["--problems", "cnf_toy_8gaussians", "--iters", "2", "--seeds", "2", "--out",
                                   str(tmp_path / "out")], monkeypatch)
    assert [case.seed for case in seen] == [0, 0, 1, 1]
    assert {case.method for case in seen[:2]} == {case.method for case in seen[2:]} == {"rk4", "adjoint"}


def test_snode_time_to_target_summary_counts_a_seed_that_never_reached_the_target(tmp_path, capsys, monkeypatch):
    """The committed run: dopri5 reached the target in 2 of 3 seeds. The summary's per-seed ratios over the
    seeds where both reached it read 14.8×; under the rule of reports, claims and the leaderboard (the third
    seed infinitely slow, then the median) it is 6.81×."""
    import shutil
    from pathlib import Path

    out = tmp_path / "run"
    shutil.copytree(Path(__file__).resolve().parents[1] / "results" / "baselines" / "snode_time_to_target-cpu", out)
    run_script("snode_time_to_target.py", ["--summary-only", "--out", str(out)], monkeypatch)
    text = (out / "summary.md").read_text()
    assert "| direct | 0.0111 | 6.81× (60.1 s / 8.82 s; direct reached in 2 of 3 seeds, snode reached in 3 of 3" \
        in text, text
    assert "| adjoint | 0.492 | 122× (59.3 s / 0.488 s; adjoint reached in 2 of 3 seeds" in text, text
    assert_refused_in_one_line("snode_time_to_target.py", ["--summary-only"], "--summary-only: no records.parquet",
                               tmp_path, capsys, monkeypatch)


def test_machine_drift_times_at_least_one_step_per_window(monkeypatch):
    """A window shorter than a step (--window 1e-300) held no step: its median was NaN, printed with exit 0."""
    import math
    import runpy
    import sys

    import torch
    from benchmark_scripts import BENCHMARKS

    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    windows = runpy.run_path(str(BENCHMARKS / "machine_drift.py"))["windows"]
    threads = torch.get_num_threads()
    try:
        medians = windows("cubic_spiral", "euler", 2, 1e-300)
    finally:
        torch.set_num_threads(threads)
    assert len(medians) == 2 and all(math.isfinite(m) and m > 0 for m in medians), medians


def test_every_committed_baseline_names_its_command_and_commit():
    """results/baselines/README.md has a row per folder saying what produced it: a command and the commit it ran
    at (four folders had no row, and three rows no commit, though their records or summaries name one)."""
    import re
    from pathlib import Path

    baselines = Path(__file__).resolve().parents[1] / "results" / "baselines"
    rows = dict(re.findall(r"^\| `([^`/]+)/` \| (.+)$", (baselines / "README.md").read_text(), re.MULTILINE))
    folders = sorted(path.name for path in baselines.iterdir() if path.is_dir())
    assert [name for name in folders if name not in rows] == []
    assert [name for name in folders if not re.search(r"\b[0-9a-f]{7,40}\b", rows[name])] == []
    # a nodebench or benchmarks/ command, a script committed in the folder, or the row above's
    command = r"`[^`]*(nodebench |benchmarks/|results/baselines/[^`]+\.py)|preset's|^the same |`[^`]+/`'s command"
    assert [name for name in folders if not re.search(command, rows[name])] == []


@pytest.mark.parametrize("arguments, message", [
    (["--methods", "snode", "direct"], "hold --methods adjoint direct snode; give the run's own options"),
    (["--seeds", "2"], "hold --seeds 3; give the run's own options"),
])
def test_snode_time_to_target_summary_only_refuses_options_other_than_the_run_s(tmp_path, capsys, monkeypatch,
                                                                                  arguments, message):
    """--summary-only takes the summary's rows from --methods and its header from --seeds: on the committed run
    (3 seeds of snode, direct, adjoint) --methods snode direct wrote a summary without the adjoint's row, and
    --seeds 2 one that said 2 seeds, each over the run's own summary, with exit code 0."""
    import shutil
    from pathlib import Path

    shutil.copytree(Path(__file__).resolve().parents[1] / "results" / "baselines" / "snode_time_to_target-cpu",
                    tmp_path / "out")
    assert_refused_in_one_line("snode_time_to_target.py", ["--summary-only", *arguments], message, tmp_path, capsys,
                               monkeypatch)


def _one_aa_run(study: str, index: int, store: Path) -> bool:
    """Copy the ``index``-th committed A/A run of ``results/STUDY`` into the history store ``store``."""
    runs = sorted((BENCHMARKS.parent / "results" / study / "history" / "gate-aa" / "gate_study").glob("2*"))
    if len(runs) <= index:
        return False
    shutil.copytree(runs[index], store / "gate-aa" / "gate_study" / runs[index].name,
                    ignore=shutil.ignore_patterns("cases", "logs"))
    return True


def test_the_permutation_null_counts_a_false_alarm_that_a_holm_correction_would_keep(tmp_path, monkeypatch):
    """Re-gating every pattern of seeds swapped between the sides of an A/A run: a run of sides one after the other
    flags spiral RK4 in exactly one pattern of 8 (all three process pairs slow on one side), with a p far below
    α ÷ comparisons, so Holm–Bonferroni would keep it; a lockstep run flags none."""
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    from gate_false_alarms import swap_null

    from nodebench.benchmarking.compare import RULES
    if not (_one_aa_run("gate_study_quiet", 1, tmp_path / "quiet") and _one_aa_run("gate_study_lockstep", 0,
                                                                                    tmp_path / "lockstep")):
        pytest.skip("the committed gate studies are not in results/")
    [quiet] = swap_null(tmp_path / "quiet", "gate_study").to_dict("records")
    assert quiet["comparisons"] == 11 and quiet["family-wise false alarms"] == 1 / 8
    assert quiet["largest p flagged"] < RULES["time"].alpha / quiet["comparisons"]
    [lockstep] = swap_null(tmp_path / "lockstep", "gate_study").to_dict("records")
    assert lockstep["family-wise false alarms"] == 0 and np.isnan(lockstep["largest p flagged"])
