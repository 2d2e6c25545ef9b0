"""Sweep robustness: the output lock, resume's checks of case files, commits, data hashes, statuses, the
worker's parent check and the evaluation's time limit."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nodebench import records
from nodebench.cli import main
from nodebench.errors import UserError
from nodebench.records import CASES, REJECTED, merge, short_commit, valid_cases, write_case
from nodebench.runner import guard, sweep
from nodebench.runner.case import Case
from nodebench.runner.guard import LOCK, PARENT_PID, SweepLock
from nodebench.runner.sweep import read_run_info, run_cases, write_run_info

SPIRAL = {"n_points": 6, "hidden": 4}


def _finished(run_dir: Path, case: Case, **extra) -> None:
    """Write ``case`` as a finished ``ok`` case, as a worker would."""
    row = case.identity() | {"status": "ok", "reason": "", "test_mse": 0.5} | extra
    write_case(run_dir / CASES, case.case_id, row, {"iteration": [1], "loss": [1.0]})


def _holder(path: Path) -> subprocess.Popen:
    """A process that holds ``path``'s sweep lock until killed (prints 'held' once it has it)."""
    code = ("import sys, time; from nodebench.runner.guard import SweepLock; lock = SweepLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_sweep_on_a_locked_directory_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        with pytest.raises(UserError, match=f"in use by another sweep \\(PID {holder.pid}\\).*"
                                            r"give another out \(--out\)"):
            SweepLock(out).acquire()
        before = sorted(p.name for p in out.iterdir())
        code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and f"PID {holder.pid}" in err
        assert sorted(p.name for p in out.iterdir()) == before  # nothing written
    finally:
        holder.kill()
        holder.wait()
    with SweepLock(out):  # the holder died: its lock is taken over
        assert (out / LOCK).read_text() == str(os.getpid())


def test_a_stale_lock_file_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK).write_text(str(dead.pid))
    with SweepLock(tmp_path):
        assert (tmp_path / LOCK).read_text() == str(os.getpid())


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.ENOSYS], ids=["ENOLCK", "ENOSYS"])
def test_a_file_system_without_locks_runs_the_sweep_unlocked_with_a_warning(tmp_path, capsys, monkeypatch, code):
    """NFS without its lock daemon, Lustre mounted without flock: flock fails there, and every sweep with an
    --out on it stopped with a traceback. It runs, and says once that a second sweep is not refused."""
    def no_locks(handle, operation):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(guard.fcntl, "flock", no_locks)
    (tmp_path / LOCK).write_text("")
    guard.check_not_locked(tmp_path)
    with SweepLock(tmp_path):
        assert (tmp_path / LOCK).read_text() == str(os.getpid())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without file locks" in err and "not refused" in err
    assert (tmp_path / LOCK).read_text() == ""


def test_resume_reruns_corrupt_cases_and_ignores_copies(tmp_path, capsys):
    cases = [Case(task="cubic_spiral", method="rk4", seed=s, iters=1) for s in range(5)]
    for case in cases:
        _finished(tmp_path, case)
    folder = tmp_path / CASES
    good, truncated, empty, no_curves, corrupt_curves = (c.case_id for c in cases)
    text = (folder / f"{truncated}.json").read_text()
    (folder / f"{truncated}.json").write_text(text[: len(text) // 2])
    (folder / f"{empty}.json").write_text("")
    (folder / f"{no_curves}.curves.parquet").unlink()
    (folder / f"{corrupt_curves}.curves.parquet").write_bytes(b"PAR1 not parquet")
    (folder / f"{good} copy.json").write_text((folder / f"{good}.json").read_text())
    (folder / f"{good}.progress").write_text("iter 3 loss 1")  # left by a sweep killed outright

    assert set(valid_cases(tmp_path)) == {good}
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and all(line.startswith("nodebench: case file") for line in err)
    assert sum("runs again" in line for line in err) == 4 and "copy" in "".join(err)
    assert len(list((folder / REJECTED).iterdir())) == 5 + 3  # rows, and the curves that were there
    records, curves = merge(tmp_path, "r")
    assert list(records["case_id"]) == [good] and list(curves["case_id"]) == [good]

    (tmp_path / ".records.parquet.tmp123").write_bytes(b"PAR1")  # a merge killed outright
    run_cases([cases[0]], tmp_path, progress=False)  # nothing to run: the good case is kept
    assert not (folder / f"{good}.progress").exists() and not (tmp_path / ".records.parquet.tmp123").exists()


def test_a_case_with_an_unreadable_table_runs_again_and_the_merge_goes_on(tmp_path, capsys):
    """A case's extra tables are merged like its curves: a corrupt one set the case aside, not crashed every
    merge of the folder (and so every resume) with pyarrow's traceback."""
    cases = [Case(task="cubic_spiral", method="rk4", seed=s, iters=1) for s in range(2)]
    for case in cases:
        row, curves = case.identity() | {"status": "ok", "reason": ""}, {"iteration": [1], "loss": [1.0]}
        write_case(tmp_path / CASES, case.case_id, row, curves, {"extra": [{"x": case.seed}]})
    good, corrupt = (c.case_id for c in cases)
    (tmp_path / CASES / f"{corrupt}.extra.table.parquet").write_bytes(b"PAR1 not parquet")
    merged, _ = merge(tmp_path, "r")
    assert list(merged["case_id"]) == [good] and list(records.load_table(tmp_path, "extra")["x"]) == [0]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cases/{corrupt}.json has an unreadable extra table" in err
    assert "runs again" in err and not list((tmp_path / CASES).glob(f"{corrupt}.*"))


def test_merged_columns_keep_their_types_when_a_case_failed(tmp_path):
    """A worker the sweep lost (its row written by the sweep, without curves) beside a finished case: the
    curves' integer columns stay integers, ``data_verified`` stays a bool column one can filter with, NumPy
    metrics stay numbers, and the files read back equal what the sweep returned."""
    done, lost = (Case(task="cubic_spiral", method="rk4", seed=s, iters=2) for s in range(2))
    provenance = {"dataset": "power", "n_train": 5, "n_val": 1, "n_test": 2, "data_verified": True}
    row = done.identity() | provenance | {"status": "ok", "reason": "", "test_mse": np.float32(0.5),
                                          "nfe_forward": np.int64(12)}
    write_case(tmp_path / CASES, done.case_id, row, {"iteration": [1, 2], "nfe_forward": [6, 6], "loss": [1.0, 0.5]})
    sweep._record_failure(lost, tmp_path / CASES, "killed", "worker killed by SIGKILL", "2025-01-01T00:00:00", 1)
    merged, curves = merge(tmp_path, "r")
    assert str(curves["iteration"].dtype) == "int64" and str(curves["nfe_forward"].dtype) == "int64"
    assert str(merged["data_verified"].dtype) == "bool"
    assert list(merged.loc[merged["data_verified"], "case_id"]) == [done.case_id]
    assert sorted(merged["dataset"]) == ["", "power"]
    assert str(merged["test_mse"].dtype) == "float64" and merged["nfe_forward"].max() == 12
    loaded, loaded_curves = records.load_run(tmp_path)
    pd.testing.assert_frame_equal(loaded, merged)
    pd.testing.assert_frame_equal(loaded_curves, curves)


@pytest.mark.parametrize("folder", [CASES, "logs"])
def test_a_read_only_cases_or_logs_folder_is_refused_before_any_worker_runs(tmp_path, capsys, monkeypatch, folder):
    """The workers write into ``cases/`` and ``logs/``: one that is not writable inside a writable --out is
    refused at the start (one line, exit 2, nothing written), not found by the first worker. Root may write
    anywhere, so the folder is made to look read-only."""
    out = tmp_path / "run"
    (out / folder).mkdir(parents=True)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not (
        Path(path) == out / folder and mode & os.W_OK))
    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--hparam", "n_points=6",
                 "--no-progress", "--out", str(out)])
    assert code == 2 and f"the folder in out (--out) {str(out / folder)!r} is not writable" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [folder]


def test_a_directory_of_another_commit_is_refused_unless_asked(tmp_path, capsys):
    case = Case(task="cubic_spiral", method="rk4", iters=1)
    _finished(tmp_path, case, git_sha="0" * 40)
    with pytest.raises(UserError, match=r"holds cases of commit 000000000000.*give another out \(--out\), or "
                                        r"allow_mixed_commits=True \(--allow-mixed-commits\)"):
        run_cases([case], tmp_path, progress=False)
    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--out", str(tmp_path)])
    assert code == 2 and "--allow-mixed-commits" in capsys.readouterr().err
    records, _ = run_cases([case], tmp_path, progress=False, allow_mixed_commits=True)
    assert len(records) == 1


def _at_commit(monkeypatch, sha: str) -> None:
    """This checkout's ``git_sha`` is ``sha``, for the folder's check (:func:`nodebench.paths.sweep_dir`) and the
    sweep's."""
    for module in (sys.modules["nodebench.harness.environment"], sweep):
        monkeypatch.setattr(module, "git_sha", lambda: sha)


@pytest.mark.parametrize("recorded, current", [("a" * 40, "a" * 40 + "-dirty"), ("a" * 40 + "-dirty", "a" * 40)])
def test_a_directory_of_the_same_commit_with_uncommitted_changes_or_without_is_refused(recorded, current, tmp_path,
                                                                                      capsys, monkeypatch):
    """``SHA-dirty`` and ``SHA`` counted as one commit: a resumed run mixed a clean commit's cases with those of
    uncommitted changes, silently. Refused as another commit is (the cost checkpoint's policy), unless asked."""
    _at_commit(monkeypatch, current)
    case = Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL)
    _finished(tmp_path, case, git_sha=recorded)
    before = sorted(path.name for path in (tmp_path / CASES).iterdir())
    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--hparam", "n_points=6",
                 "--hparam", "hidden=4", "--no-progress", "--out", str(tmp_path)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and lines == [f"nodebench: error: {str(tmp_path)!r} holds cases of commit "
                                   f"{short_commit(recorded)}, this checkout is {short_commit(current)} (-dirty: with "
                                   "uncommitted changes); give another out (--out), or allow_mixed_commits=True "
                                   "(--allow-mixed-commits) to mix them"], lines
    assert sorted(path.name for path in (tmp_path / CASES).iterdir()) == before
    records, _ = run_cases([case], tmp_path, progress=False, allow_mixed_commits=True)
    assert len(records) == 1 and "warning" not in capsys.readouterr().err


def test_a_directory_of_the_same_uncommitted_changes_resumes_with_a_warning(tmp_path, capsys, monkeypatch):
    """Uncommitted changes cannot be compared: a checkout with them resumes a run of the same ``SHA-dirty``, and
    says that whether the changes are the same is not checked (once, though the folder is checked twice)."""
    from nodebench.paths import sweep_dir

    _at_commit(monkeypatch, "a" * 40 + "-dirty")
    case = Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL)
    _finished(tmp_path, case, git_sha="a" * 40 + "-dirty")
    assert sweep_dir(tmp_path) == tmp_path  # the check before a run warns not: the run does, as it adds cases
    records, _ = run_cases([case], tmp_path, progress=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nodebench:")]
    assert len(records) == 1 and lines == [f"nodebench: warning: {str(tmp_path)!r} holds cases run with uncommitted "
                                           f"changes to commit {'a' * 12}, as this checkout has; whether they are the "
                                           "same changes is not checked"], lines


def test_the_case_id_follows_the_data_file_content(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, t=np.linspace(0, 1, 5), y=np.zeros((2, 5, 1)))
    case = Case(task=f"trajectories:{path}", method="rk4")
    first = case.case_id
    assert Case(task=f"trajectories:{path}", method="rk4").case_id == first
    np.savez(path, t=np.linspace(0, 1, 5), y=np.ones((2, 5, 1)))
    assert case.case_id != first


def test_a_corrupt_run_json(tmp_path, capsys):
    (tmp_path / "run.json").write_text('{"run_id": "x"')
    with pytest.raises(UserError, match="run.json.*corrupt"):
        read_run_info(tmp_path)
    info = write_run_info(tmp_path, command="run")  # a sweep moves it aside and starts a new run id
    assert info["run_id"] != "x" and "was corrupt" in capsys.readouterr().err
    assert len(list(tmp_path.glob("run.json.corrupt-*"))) == 1


@pytest.mark.parametrize("run_id", [None, 5, {"a": [1]}], ids=["null", "number", "object"])
def test_a_run_json_whose_run_id_is_not_a_string_is_corrupt(tmp_path, capsys, run_id):
    (tmp_path / "run.json").write_text(json.dumps({"run_id": run_id, "command": "run"}))
    with pytest.raises(UserError, match="run.json.*corrupt"):
        read_run_info(tmp_path)
    info = write_run_info(tmp_path, command="run")  # moved aside, never copied into the records' run_id column
    assert isinstance(info["run_id"], str) and "was corrupt" in capsys.readouterr().err


def test_an_interrupted_write_of_run_json_keeps_the_previous_one(tmp_path, monkeypatch):
    run_id = write_run_info(tmp_path, command="run")["run_id"]

    def interrupted(path, text, *args, **kwargs):  # the signal arrives half-way through the write
        with open(path, "w") as handle:
            handle.write(text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_run_info(tmp_path, command="run")
    monkeypatch.undo()
    assert read_run_info(tmp_path)["run_id"] == run_id


def test_a_sweep_refused_by_the_lock_leaves_run_json_as_it_was(tmp_path, monkeypatch, capsys):
    """Two sweeps started at once both pass the read-only check of the folder; the one that then finds the
    lock taken must not have written over the holder's run.json (its command, settings, run id)."""
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        (out / "run.json").write_text(json.dumps({"run_id": "holder", "command": "run"}))
        monkeypatch.setattr(guard, "check_not_locked", lambda run_dir: None)  # checked before the holder locked
        code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--out", str(out)])
        assert code == 2 and f"in use by another sweep (PID {holder.pid})" in capsys.readouterr().err
        assert json.loads((out / "run.json").read_text()) == {"run_id": "holder", "command": "run"}
    finally:
        holder.kill()
        holder.wait()


def test_a_retried_failure_gets_the_row_of_its_new_attempt(tmp_path):
    """--retry-failed reruns a failed case whose old row is still there: a worker that then dies without a
    row is recorded as that death, not left with the old attempt's status and reason."""
    case = Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL)
    write_case(tmp_path / CASES, case.case_id, case.identity() | {"status": "timeout", "reason": "earlier"}, {})
    crash = [sys.executable, "-c", "import sys; print('worker crashed'); sys.exit(3)"]
    assert sweep.run_case_process(case, tmp_path, python=crash) == "error"
    row = valid_cases(tmp_path)[case.case_id]
    assert row["reason"] == "worker exited with code 3: worker crashed"


def test_a_rewrite_cut_short_never_pairs_the_old_row_with_the_new_curves(tmp_path, monkeypatch):
    """A retried worker killed between writing its curves and its row leaves no row (the case runs again),
    not the old attempt's row, which would be merged with the new attempt's curves."""
    case = Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL)
    write_case(tmp_path / CASES, case.case_id, case.identity() | {"status": "timeout", "reason": "earlier"}, {})
    write = records.atomic_write

    def killed_before_the_row(path, writer):
        if path.suffix == ".json":
            raise KeyboardInterrupt
        write(path, writer)

    monkeypatch.setattr(records, "atomic_write", killed_before_the_row)
    with pytest.raises(KeyboardInterrupt):
        write_case(tmp_path / CASES, case.case_id, case.identity() | {"status": "ok", "reason": ""},
                   {"iteration": [1], "loss": [0.5]})
    assert case.case_id not in valid_cases(tmp_path)


def test_a_row_written_before_the_time_limit_is_kept(tmp_path):
    """A worker that wrote its row and then outlives the case time limit (exiting takes torch a while) is
    killed, and its row is kept rather than replaced by a timeout."""
    case = Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL)
    row = tmp_path / CASES / f"{case.case_id}.json"
    code = f"import json, sys, time; open({str(row)!r}, 'w').write(json.dumps({{'status': 'ok'}})); time.sleep(60)"
    t0 = time.monotonic()
    assert sweep.run_case_process(case, tmp_path, timeout_s=2, python=[sys.executable, "-c", code]) == "ok"
    assert time.monotonic() - t0 < 30


def test_failure_statuses(tmp_path, monkeypatch):
    log = tmp_path / "log"
    log.write_text("")
    assert sweep._failure_of(-signal.SIGKILL, log) == (
        "killed", "worker killed by SIGKILL (the kernel's out-of-memory killer or a user)")
    assert sweep._failure_of(-signal.SIGSEGV, log) == ("killed", "worker killed by SIGSEGV")
    from nodebench.runner import worker

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1099511627776 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(worker, "train", out_of_memory)
    row = worker.run_case(Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL), tmp_path)
    assert row["status"] == "oom" and "DefaultCPUAllocator" in row["reason"]
    monkeypatch.undo()  # a size below the hparams' 2**63 - 1 bound whose bytes are past it: an error row before
    row = worker.run_case(Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL | {"hidden": 2**61}),
                          tmp_path)
    assert row["status"] == "oom" and "Storage size calculation overflowed" in row["reason"], row["reason"]


def test_a_worker_whose_sweep_is_gone_exits_before_its_imports(tmp_path):
    spec = tmp_path / "case.json"
    spec.write_text(json.dumps(Case(task="cubic_spiral", method="rk4", iters=1).to_dict()))
    code = ("import runpy, sys; sys.argv = ['worker'] + sys.argv[1:]; "
            "runpy.run_module('nodebench.runner.worker', run_name='__main__')")
    env = os.environ | {PARENT_PID: "1"}  # not this worker's parent
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code, str(spec), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and not list(tmp_path.glob("*.curves.parquet"))
    assert "| torch" not in done.stderr  # it left before importing torch


def test_the_evaluation_solve_is_capped(monkeypatch):
    import nodebench.training as training
    from nodebench.methods import get_method
    from nodebench.tasks import get_task

    monkeypatch.setattr(training, "EVALUATION_MIN_S", 0.01)
    monkeypatch.setattr(training, "EVALUATION_FACTOR", 0.0)
    problem = get_task("cubic_spiral").build(seed=0, device=torch.device("cpu"), hparams=SPIRAL)
    started = time.monotonic()
    with pytest.raises(training.Diverged, match="evaluation after 1 iterations: the solve ran past") as err:
        training.train(problem, get_method("rk4"), device=torch.device("cpu"), iters=1, warmup=0)
    assert "0.01 s and 0 × the training time" in str(err.value) and "--hparam n_test=N" in str(err.value)
    assert time.monotonic() - started < 60


def test_tensor_peak_counts_tensor_storage_exactly():
    from nodebench.harness.memory import TensorPeak

    held = torch.zeros(1000)  # held before the block: not counted

    def phase():
        a = torch.ones(256, 1024)  # 1 MiB
        b = a * 2  # another MiB while a lives
        del a
        return float(b.sum()) + float(held.sum())

    figures = []
    for _ in range(3):
        with TensorPeak("cpu") as meter:
            phase()
        figures.append(meter.bytes)
    assert figures[0] >= 2 * 2**20 and len(set(figures)) == 1  # identical runs, identical figures
    assert figures[0] < 2 * 2**20 + 4096


def _run_argv(out: Path, *extra: str) -> list[str]:
    return ["run", "--task", "cubic_spiral", "--method", "euler", "--hparam", "n_points=6", "--hparam", "hidden=4",
            "--out", str(out), "--no-progress", *extra]


@pytest.mark.parametrize("limit", [["--iters", "3"], ["--budget-s", "5"]], ids=["iters", "budget"])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_a_case_run_with_another_limit_is_not_pooled_with_this_commands(tmp_path, capsys, limit, dry):
    """Resuming with another --iters/--budget-s would add rows the report pools with the old ones (same task,
    method, seed and hyper-parameters): refused before anything runs or is written."""
    out = tmp_path / "run"
    _finished(out, Case("cubic_spiral", "euler", 0, hparams=dict(SPIRAL), iters=2))
    before = sorted(p.name for p in out.rglob("*"))
    code = main(_run_argv(out, *limit, *(["--dry-run"] if dry else [])))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "holds case cubic_spiral/euler/s0 run with another limit" in err and "give another out (--out)" in err
    assert sorted(p.name for p in out.rglob("*")) == before


@pytest.mark.parametrize("earlier, now", [("cpu", "cuda"), ("cuda", "cuda:0")])
def test_a_case_run_on_another_device_is_not_pooled_with_this_commands(tmp_path, earlier, now):
    """Resuming a folder with another --device (or the same GPU named otherwise) added rows under new case ids
    that every report pooled with the old ones: no report, figure or claim tells the devices apart."""
    from nodebench.api import _check_same_limits

    out = tmp_path / "run"
    _finished(out, Case("cubic_spiral", "euler", 0, device=earlier, hparams=dict(SPIRAL), iters=2))
    with pytest.raises(UserError, match=f"cubic_spiral/euler/s0 run on device '{earlier}', this command's is '{now}'"):
        _check_same_limits(out, [Case("cubic_spiral", "euler", s, device=now, hparams=dict(SPIRAL), iters=2)
                                 for s in range(2)])
    _check_same_limits(out, [Case("cubic_spiral", "euler", 0, device=earlier, hparams=dict(SPIRAL), iters=2)])


def test_the_same_limit_with_more_seeds_and_methods_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    _finished(out, Case("cubic_spiral", "euler", 0, hparams=dict(SPIRAL), iters=2))
    assert main(_run_argv(out, "--iters", "2", "--seeds", "2", "--method", "euler,rk4", "--dry-run")) == 0


def test_an_interrupted_atomic_write_keeps_the_file_and_leaves_no_temporary(tmp_path):
    """Ctrl-C during a write kept the old file but left ``.NAME.tmpPID`` beside it, one per interruption."""
    target = tmp_path / "compare.md"
    target.write_text("old\n")

    def interrupted(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        records.atomic_write(target, interrupted)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["compare.md"]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors in /proc")
def test_a_case_folder_that_cannot_be_made_closes_the_handed_pipe_ends(tmp_path):
    """run_case_process made its folders before the block that closes ``pass_fds`` (an A/B pair's lockstep pipe
    ends): an out folder under a file failed with both ends left open in the bench process, which never closed
    them (the side had started, so its future could not be cancelled)."""
    (tmp_path / "file").write_text("")
    case = Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL)
    before = _open_fds()
    with pytest.raises(OSError):
        sweep.run_case_process(case, tmp_path / "file" / "run", pass_fds=os.pipe())
    assert _open_fds() == before


#: A stand-in worker that outlives any test unless something kills it.
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt for the test, as in an interactive session: a shell that starts the test run
    in the background sets SIGINT to "ignore", where ``signal.raise_signal(SIGINT)`` would do nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _assert_one_worker_killed(entry: str, tmp_path, started: list) -> None:
    """Start one rk4 case through ``entry`` (the local sweep, or ``run_case_process`` with the sleeping stand-in),
    whose start the test has rigged to be interrupted, and check that the one worker ``started`` holds was killed."""
    case = Case(task="cubic_spiral", method="rk4", iters=1, hparams=SPIRAL)
    try:
        with pytest.raises(KeyboardInterrupt):
            if entry == "sweep":
                run_cases([case], tmp_path, progress=False)
            else:
                sweep.run_case_process(case, tmp_path, python=SLEEPER)
        assert len(started) == 1 and started[0].poll() is not None, "the worker outlived the interrupt"
    finally:
        _kill_left(started)


def _kill_left(processes) -> None:
    """Kill what a failed interrupt test left running (each worker in its own session)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("entry", ["sweep", "run_case_process"])
def test_a_ctrl_c_inside_popen_after_the_fork_leaves_no_worker_running(tmp_path, monkeypatch, entry, ctrl_c_raises):
    """A SIGINT that lands inside ``subprocess.Popen`` once the worker has forked (Popen then raises without
    returning it) left that worker, in its own session, running after the sweep had stopped."""
    spawned, popen = [], subprocess.Popen

    def interrupted_popen(args, **kwargs):
        process = popen(args, **kwargs)
        if "nodebench.runner.worker" in args:
            spawned.append(process)
            signal.raise_signal(signal.SIGINT)  # Ctrl-C after the fork, before Popen returns
        return process

    monkeypatch.setattr(subprocess, "Popen", interrupted_popen)
    _assert_one_worker_killed(entry, tmp_path, spawned)


@pytest.mark.parametrize("entry", ["sweep", "run_case_process"])
def test_an_interrupt_before_a_started_worker_is_registered_kills_it(tmp_path, monkeypatch, entry):
    """A KeyboardInterrupt between a worker's start and its entry in the sweep's list of running jobs left that
    worker running (and writing into the run folder) after the sweep had returned."""
    started = []

    def interrupted(case, process, *args):
        started.append(process)
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "_Running", interrupted)
    _assert_one_worker_killed(entry, tmp_path, started)


@pytest.mark.parametrize("entry", ["sweep", "run_case_process"])
def test_a_second_ctrl_c_while_the_workers_are_killed_leaves_none_running(tmp_path, monkeypatch, entry, ctrl_c_raises):
    """A second Ctrl-C landing while an interrupted sweep killed its workers stopped the kill loop: the workers
    not yet killed (each in its own session) went on computing and writing into the run folder."""
    spawned, popen, kill = [], subprocess.Popen, sweep._kill

    def sleeping_worker(args, **kwargs):
        if "nodebench.runner.worker" not in args:  # git, for the run's commit
            return popen(args, **kwargs)
        spawned.append(popen(SLEEPER, **kwargs))
        return spawned[-1]

    def first_kill_interrupted(process):
        if not hasattr(first_kill_interrupted, "done"):
            first_kill_interrupted.done = True
            signal.raise_signal(signal.SIGINT)  # the second Ctrl-C, as the first worker is being killed
        kill(process)

    def first_ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", sleeping_worker)
    monkeypatch.setattr(sweep, "_kill", first_kill_interrupted)
    monkeypatch.setattr(sweep.Progress, "running", first_ctrl_c)  # once the workers run
    cases = [Case(task="cubic_spiral", method="rk4", iters=1, seed=seed, hparams=SPIRAL) for seed in (0, 1)]
    try:
        with pytest.raises(KeyboardInterrupt):
            if entry == "sweep":
                run_cases(cases, tmp_path, jobs=2, progress=False)
            else:
                sweep.run_case_process(cases[0], tmp_path, stopped=first_ctrl_c)
        assert len(spawned) == (2 if entry == "sweep" else 1), spawned
        assert all(process.poll() is not None for process in spawned), "a worker outlived the interrupts"
    finally:
        _kill_left(spawned)
