"""Tests for cases, the worker, records and the sweep runner: grids, statuses (ok, diverged, timeout,
error), the Parquet records, and resuming a killed sweep."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodebench.errors import UserError
from nodebench.records import finished_case_ids, load_run, merge, write_case
from nodebench.runner.case import Case, expand_grid
from nodebench.runner.sweep import run_cases
from nodebench.runner.worker import run_case

REQUIRED = ["run_id", "paper", "experiment", "task", "method", "seed", "device", "preset", "status", "reason",
            "train_wall_s", "iters", "time_per_iter_s", "peak_mem_bytes", "nfe_forward", "nfe_backward",
            "test_mse", "git_sha", "version_torch", "cpu_model", "num_threads", "started_at"]
CURVE_REQUIRED = ["case_id", "task", "method", "seed", "experiment", "iteration", "elapsed_s", "time_s",
                  "forward_s", "loss", "nfe_forward", "nfe_backward"]
# A short extrapolation keeps the spiral's build and evaluation cheap in the workers.
SPIRAL_FAST = {"extrap_t_end": 2.0, "extrap_points": 20}


def diverging_file(tmp_path: Path) -> Path:
    """Valid, finite data whose squared error overflows float32 (the task's default dtype) at once."""
    y = np.zeros((4, 10, 2))
    y[:, 1:] = 1e30
    path = tmp_path / "diverge.npz"
    np.savez(path, t=np.linspace(0.0, 1.0, 10), y=y)
    return path


# ------------------------------------------------------------------------------------------- cases


def test_expand_grid_products_and_precedence():
    cases = expand_grid(tasks=["cubic_spiral", "other"], methods=["rk4", "direct"], seeds=[0, 1, 2],
                        grid={"lr": [0.1, 0.01]}, method_hparams={"direct": {"rtol": 1e-5, "lr": 9.0}},
                        hparams={"hidden": 8, "rtol": 1e-3}, iters=5, device="cpu", paper="p", experiment="e")
    assert len(cases) == 2 * 2 * 2 * 3
    assert len({c.case_id for c in cases}) == len(cases)
    assert all(c.iters == 5 and c.paper == "p" and c.experiment == "e" for c in cases)
    direct = [c for c in cases if c.method == "direct"]
    rk4 = [c for c in cases if c.method == "rk4"]
    # precedence: common hparams < per-method hparams < grid values
    assert {c.hparams["rtol"] for c in direct} == {1e-5} and {c.hparams["rtol"] for c in rk4} == {1e-3}
    assert {c.hparams["lr"] for c in direct} == {0.1, 0.01}
    assert all(c.hparams["hidden"] == 8 for c in cases)
    assert sorted(c.seed for c in cases if c.task == "other" and c.method == "rk4" and c.hparams["lr"] == 0.1) \
        == [0, 1, 2]


def test_case_id_is_a_stable_hash_of_the_config():
    case = Case(task="cubic_spiral", method="rk4", seed=3, hparams={"b": 1, "a": 2}, iters=4)
    same = Case(task="cubic_spiral", method="rk4", seed=3, hparams={"a": 2, "b": 1}, iters=4)
    assert case.case_id == same.case_id
    assert Case.from_dict(json.loads(json.dumps(case.to_dict()))).case_id == case.case_id
    for change in [dict(seed=4), dict(iters=5), dict(hparams={"a": 2}), dict(device="cuda"), dict(warmup=0)]:
        assert Case(**(case.to_dict() | change)).case_id != case.case_id, change
    identity = case.identity()
    assert identity["case_id"] == case.case_id and json.loads(identity["hparams"]) == {"a": 2, "b": 1}


# ------------------------------------------------------------------------------------------ records


def test_write_case_merge_and_load_run(tmp_path):
    cases_dir = tmp_path / "cases"
    for i in range(2):
        case = Case(task="t", method="m", seed=i)
        row = case.identity() | {"status": "ok", "final_loss": float("nan"), "iters": 2}
        write_case(cases_dir, case.case_id, row, {"iteration": [1, 2], "loss": [1.0, 0.5]},
                   {"extra": [{"x": i}]})
    assert len(finished_case_ids(tmp_path)) == 2
    assert not [p for p in cases_dir.iterdir() if ".tmp" in p.name]  # atomic writes leave no temporaries
    records, curves = merge(tmp_path, "run-1")
    assert list(records["run_id"]) == ["run-1", "run-1"] and records["final_loss"].isna().all()
    assert len(curves) == 4 and set(curves["seed"]) == {0, 1}
    loaded, loaded_curves = load_run(tmp_path)
    pd.testing.assert_frame_equal(loaded, records)
    pd.testing.assert_frame_equal(loaded_curves, curves)
    assert sorted(pd.read_parquet(tmp_path / "extra.parquet")["x"]) == [0, 1]
    with pytest.raises(UserError, match="'nowhere' does not exist"):
        load_run("nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no records.parquet"):
        load_run(tmp_path / "empty")
    with pytest.raises(UserError, match="is a file, not a run folder"):
        load_run(tmp_path / "extra.parquet")


def test_worker_records_diverged_and_error_in_process(tmp_path):
    out = tmp_path / "cases"
    diverged = run_case(Case(task=f"trajectories:{diverging_file(tmp_path)}", method="euler", iters=5), out)
    assert diverged["status"] == "diverged" and "iteration 1" in diverged["reason"]
    assert diverged["iters"] == 1 and not math.isfinite(diverged["final_loss"])
    error = run_case(Case(task="cubic_spiral", method="nope", iters=1), out)
    assert error["status"] == "error" and "unknown method 'nope'" in error["reason"]
    assert "\n" not in error["reason"]
    assert finished_case_ids(tmp_path) == {diverged["case_id"], error["case_id"]}


def test_an_error_after_training_keeps_the_iterations_and_curves(tmp_path, monkeypatch):
    """An evaluation that raises (a bug, not divergence) gave an ``error`` row with 0 iterations, 0 s of
    training and no curves, although 3 iterations had run; the row now keeps what was trained."""
    import pandas as pd

    from nodebench.tasks.trajectory import TrajectoryProblem

    monkeypatch.setattr(TrajectoryProblem, "evaluate", lambda self, solve: (_ for _ in ()).throw(ValueError("a bug")))
    out = tmp_path / "cases"
    out.mkdir()  # the sweep makes it before any worker
    row = run_case(Case(task="cubic_spiral", method="rk4", iters=3, hparams={"extrap_t_end": 2.0}), out)
    assert row["status"] == "error" and row["reason"] == "ValueError: a bug"
    assert row["iters"] == 3 and row["train_wall_s"] > 0
    assert len(pd.read_parquet(out / f"{row['case_id']}.curves.parquet")) == 3


# -------------------------------------------------------------------------------------------- sweep


@pytest.mark.slow
def test_sweep_records_ok_diverged_and_timeout(tmp_path, capsys):
    out = tmp_path / "run"
    ok = Case(task="cubic_spiral", method="euler", iters=2, hparams=SPIRAL_FAST, paper="pp", experiment="ee")
    bad = Case(task=f"trajectories:{diverging_file(tmp_path)}", method="euler", iters=3)
    records, curves = run_cases([ok, bad], out, jobs=2, timeout_s=300, progress=False)

    status = dict(zip(records["case_id"], records["status"]))
    assert status == {ok.case_id: "ok", bad.case_id: "diverged"}
    for frame in (records, pd.read_parquet(out / "records.parquet")):
        assert not set(REQUIRED) - set(frame.columns), set(REQUIRED) - set(frame.columns)
    row = records.set_index("case_id").loc[ok.case_id]
    assert (row["paper"], row["experiment"], row["task"], row["method"]) == ("pp", "ee", "cubic_spiral", "euler")
    assert row["iters"] == 2 and row["nfe_forward"] == 2 * 29 and row["nfe_backward"] == 0
    assert row["num_threads"] == 1 and row["test_mse"] > 0 and row["train_wall_s"] > 0
    assert "inf" in records.set_index("case_id").loc[bad.case_id, "reason"]

    stored_curves = pd.read_parquet(out / "curves.parquet")
    assert not set(CURVE_REQUIRED) - set(stored_curves.columns)
    assert stored_curves.groupby("case_id").size().to_dict() == {ok.case_id: 2, bad.case_id: 1}
    pd.testing.assert_frame_equal(stored_curves, curves)

    # same directory, one more case with a time limit shorter than a worker's start-up: the finished
    # cases are kept as they are, the new one is recorded as a timeout
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cases").glob("*.json")}
    slow = Case(task="cubic_spiral", method="euler", iters=2, seed=1, hparams=SPIRAL_FAST)
    t0 = time.monotonic()
    records, curves = run_cases([ok, bad, slow], out, timeout_s=0.5, progress=False)
    assert time.monotonic() - t0 < 10
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cases").glob("*.json") if p.name in before} == before
    row = records.set_index("case_id").loc[slow.case_id]
    assert row["status"] == "timeout" and "0.5 s" in row["reason"]
    assert row["num_threads"] == 1  # the worker's, not the parent's (torch's default: every core)
    assert len(records) == 3 and records["run_id"].nunique() == 1
    assert slow.case_id not in set(curves["case_id"])
    assert row["started_at"] and (out / "logs" / f"{slow.case_id}.case.json").is_file()

    # a plain resume keeps the timeout row, and says that nothing is left to run; retry_failed reruns the
    # failed cases only
    capsys.readouterr()
    records, _ = run_cases([ok, bad, slow], out, timeout_s=0.5, progress=False)
    assert "resuming: 3 of 3 case(s) finished before, 0 to run" in capsys.readouterr().err
    assert records.set_index("case_id").loc[slow.case_id, "status"] == "timeout"
    records, _ = run_cases([ok, bad, slow], out, timeout_s=300, progress=False, retry_failed=True)
    status = dict(zip(records["case_id"], records["status"]))
    assert status == {ok.case_id: "ok", bad.case_id: "diverged", slow.case_id: "ok"}
    assert (out / "cases" / f"{ok.case_id}.json").stat().st_mtime_ns == before[f"{ok.case_id}.json"]


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    """Running or sleeping, not gone and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to find the sweep's workers")
def test_resume_after_a_killed_sweep(tmp_path):
    out = tmp_path / "run"
    cases = [Case(task="cubic_spiral", method="euler", iters=1, seed=s, hparams=SPIRAL_FAST) for s in range(3)]
    # A shell that starts the test run in the background sets SIGINT to "ignore", and children inherit it;
    # the sweep under test must see Ctrl-C, so it restores Python's default handler first.
    script = textwrap.dedent("""
        import json, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from nodebench.runner.case import Case
        from nodebench.runner.sweep import run_cases
        run_cases([Case.from_dict(d) for d in json.loads(sys.argv[1])], sys.argv[2], jobs=1, progress=False)
    """)
    sweep = subprocess.Popen([sys.executable, "-c", script, json.dumps([c.to_dict() for c in cases]), str(out)],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "cases").glob("*.json")):
            assert sweep.poll() is None, "the sweep ended before its first case did"
            assert time.monotonic() < deadline, "no case finished in time"
            time.sleep(0.05)
        # freeze the sweep so it starts no new worker, then kill it: its running worker must die with it
        os.kill(sweep.pid, signal.SIGSTOP)
        workers = _children(sweep.pid)
        os.killpg(sweep.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphans = [w for w in workers if _alive(w)]
        for worker in orphans:
            os.killpg(worker, signal.SIGKILL)
        assert not orphans, "a worker outlived its killed sweep"
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()

    finished = {p.name: (p.stat().st_mtime_ns, json.loads(p.read_text())["started_at"])
                for p in (out / "cases").glob("*.json")}
    assert 1 <= len(finished) < len(cases)
    run_id = json.loads((out / "run.json").read_text())["run_id"]

    records, curves = run_cases(cases, out, jobs=2, timeout_s=300, progress=False)
    assert sorted(records["case_id"]) == sorted(c.case_id for c in cases)  # each case exactly once
    assert set(records["status"]) == {"ok"}
    assert set(records["run_id"]) == {run_id}
    for name, (mtime, started_at) in finished.items():  # finished before the kill: not redone
        assert (out / "cases" / name).stat().st_mtime_ns == mtime
        assert records.set_index("case_id").loc[name[: -len(".json")], "started_at"] == started_at
    assert curves.groupby("case_id").size().to_dict() == {c.case_id: 1 for c in cases}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=["interrupted", "terminated", "hung-up", "killed"])
def test_workers_die_with_their_sweep(tmp_path, signum):
    """An interrupted (SIGINT), terminated (SIGTERM, as SLURM sends) or hung-up sweep kills its worker itself
    and keeps its finished cases; a killed one takes it along (parent-death signal). Either way no
    worker is alive 2 s after the signal."""
    out = tmp_path / "run"
    # bounded in time as well: a sweep left behind by a killed test run ends by itself
    long_case = Case(task="cubic_spiral", method="euler", iters=10**6, hparams=SPIRAL_FAST, budget_s=120)
    # A shell that starts the test run in the background sets SIGINT to "ignore", and children inherit it;
    # the sweep under test must see Ctrl-C, so it restores Python's default handler first.
    script = textwrap.dedent("""
        import json, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from nodebench.runner.case import Case
        from nodebench.runner.sweep import run_cases
        run_cases([Case.from_dict(json.loads(sys.argv[1]))], sys.argv[2], progress=False)
    """)
    sweep = subprocess.Popen([sys.executable, "-c", script, json.dumps(long_case.to_dict()), str(out)],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.monotonic() + 120
        while not (out / "cases" / f"{long_case.case_id}.progress").is_file():  # the worker is training
            assert sweep.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        workers = _children(sweep.pid)
        assert workers
        os.kill(sweep.pid, signum)
        deadline = time.monotonic() + 2
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "the worker outlived its sweep by 2 s"
        sweep.wait(timeout=30)
    finally:
        for pid in [sweep.pid] + workers:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        sweep.wait()


@pytest.mark.slow
def test_progress_into_a_log_is_a_line_per_case_without_redraws(tmp_path, capsys):
    """stderr that is not a terminal (``nodebench run ... 2> log``) got the bar's carriage-return redraws, a
    garbled log with each case's status nowhere: now a plain line per finished case, with its status and time,
    and the time left while cases remain."""
    cases = [Case(task="cubic_spiral", method="euler", iters=1, seed=s, hparams=SPIRAL_FAST) for s in range(2)]
    run_cases(cases, tmp_path / "run", timeout_s=300, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 2, err
    assert lines[0].startswith("[1/2] cubic_spiral/euler/s0: ok in ") and lines[0].endswith(" left"), lines
    assert lines[1].startswith("[2/2] cubic_spiral/euler/s1: ok in ") and lines[1].endswith(" s"), lines


def test_a_papers_progress_line_names_the_experiment_of_its_case():
    """A paper's sweep runs one method on one task in several experiments (snode's smoke preset: vehicle/snode/s0 in
    three), so its progress line names the experiment first; a case of ``nodebench run`` has none."""
    from nodebench.runner.case import Case
    from nodebench.runner.progress import case_line

    paper_case = Case("vehicle", "snode", experiment="vehicle_horizon", paper="snode")
    assert case_line(paper_case, "ok", 5.9, 7, 10, 70.0) == "[7/10] vehicle_horizon/vehicle/snode/s0: ok in 5.9 s, " \
                                                            "about 00:30 left"
    assert case_line(Case("vehicle", "snode", seed=2), "oom", None, 1, 1, 1.0) == "[1/1] vehicle/snode/s2: oom"


def test_progress_names_the_cases_of_a_sweep_apart_by_the_settings_they_differ_in(capsys, tmp_path):
    """The name of a case in a progress line left out its hyper-parameters, so the cases of a swept one
    (taynode's smoke preset: digits_lambda/digits_ode/adjoint/s0 for each of six λ) had one name: the lines
    of a sweep now add what tells its cases apart, and only that (not what the method already says)."""
    from nodebench.runner.progress import Progress, case_names, running_notes

    cases = expand_grid(tasks=["cubic_spiral"], methods=["rk4", "adjoint"], seeds=[0, 1],
                        grid={"lr": [0.1, 0.01], "hidden": [4]}, method_hparams={"adjoint": {"rtol": 1e-5}})
    names = case_names(cases)
    assert len(set(names.values())) == len(cases) == 8
    assert names[cases[0].case_id] == "cubic_spiral/rk4/lr=0.1/s0"
    assert sorted(names.values())[:2] == ["cubic_spiral/adjoint/lr=0.01/s0", "cubic_spiral/adjoint/lr=0.01/s1"]
    same = [Case("vehicle", "snode", experiment="vehicle_horizon"), Case("vehicle", "snode", experiment="other")]
    assert list(case_names(same).values()) == [case.name for case in same]  # nothing to tell apart: nothing added
    iters = [Case("vehicle", "snode", iters=10), Case("vehicle", "snode", iters=20)]
    assert list(case_names(iters).values()) == ["vehicle/snode/iters=10/s0", "vehicle/snode/iters=20/s0"]
    shown = Progress(2, cases=cases)  # stderr is no terminal here: plain lines
    for case in cases[:2]:
        shown.finished(case, "ok", 1.0)
    notes = running_notes(cases[2:4], tmp_path, shown.name)
    shown.close()
    assert [line.split(":")[0] for line in capsys.readouterr().err.splitlines()] == [
        "[1/2] cubic_spiral/rk4/lr=0.1/s0", "[2/2] cubic_spiral/rk4/lr=0.1/s1"]
    assert notes == "cubic_spiral/rk4/lr=0.01/s0: starting; cubic_spiral/rk4/lr=0.01/s1: starting"


def test_progress_names_a_configuration_alike_for_every_seed_of_an_irregular_grid():
    """The settings in a name were chosen among the cases of one seed, so where seed 1 had one lr of seed 0's two
    its case lost the lr (g1d/adjoint/lr=0.1/s0 but g1d/adjoint/s1): they are now chosen over the seeds."""
    from nodebench.runner.progress import case_names

    cases = [Case("g1d", "adjoint", seed=0, hparams={"lr": 0.1}), Case("g1d", "adjoint", seed=0, hparams={"lr": 0.2}),
             Case("g1d", "adjoint", seed=1, hparams={"lr": 0.1}), Case("g1d", "rk4", seed=1)]
    assert list(case_names(cases).values()) == ["g1d/adjoint/lr=0.1/s0", "g1d/adjoint/lr=0.2/s0",
                                                "g1d/adjoint/lr=0.1/s1", "g1d/rk4/s1"]


@pytest.mark.slow
def test_the_progress_lines_of_a_small_sweep_are_distinct(tmp_path, capsys):
    """Two values of one option, one seed: each case's line names its value (it named both cubic_spiral/euler/s0)."""
    cases = expand_grid(tasks=["cubic_spiral"], methods=["euler"], seeds=[0], grid={"lr": [0.1, 0.01]},
                        hparams=SPIRAL_FAST, iters=1)
    run_cases(cases, tmp_path / "run", timeout_s=300, progress=True)
    lines = sorted(line.split(": ")[0][6:] for line in capsys.readouterr().err.splitlines() if line.startswith("["))
    assert lines == ["cubic_spiral/euler/lr=0.01/s0", "cubic_spiral/euler/lr=0.1/s0"], lines
