"""Bad arguments to the user-facing scripts of ``benchmarks/`` without a test module of their own (the Taylor
and GQ cost scripts are checked in ``test_taylor.py`` and ``test_gq.py``): one line, exit code 2, nothing
written."""

from __future__ import annotations

import pytest
from benchmark_scripts import assert_exits_2_in_one_line, assert_refused_in_one_line, run_script


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
