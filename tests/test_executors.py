"""Sweeps through the cluster engines: a local dask.distributed cluster and submitit's local executor."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nodebench.cli import main
from nodebench.errors import UserError
from nodebench.records import load_run, write_case
from nodebench.runner import sweep
from nodebench.runner.case import Case, expand_grid
from nodebench.runner.executors import check_executor, open_engine, run_remote
from nodebench.runner.sweep import record_failure, run_case_process, run_cases

CASES = expand_grid(tasks=["cubic_spiral"], methods=["rk4"], seeds=range(2), iters=2)


def assert_recorded(run_dir):
    records, curves = load_run(run_dir)
    assert sorted(records["case_id"]) == sorted(c.case_id for c in CASES)
    assert (records["status"] == "ok").all(), records[["status", "reason"]]
    assert sorted(curves.groupby("case_id").size().tolist()) == [2, 2]  # two iterations per case, merged
    assert len(list((run_dir / "cases").glob("*.json"))) == 2  # one file per case in the shared folder


@pytest.mark.slow
def test_sweep_on_a_local_dask_distributed_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_cases(CASES, tmp_path / "dask", executor="dask", scheduler=cluster.scheduler_address, progress=False)
    assert_recorded(tmp_path / "dask")


@pytest.mark.slow
def test_sweep_through_submitits_local_executor(tmp_path):
    submitit = pytest.importorskip("submitit")
    assert submitit.AutoExecutor(folder=tmp_path / "probe").cluster == "local"  # no SLURM here: the fallback
    run_cases(CASES, tmp_path / "submitit", executor="submitit", jobs=2, progress=False)
    assert_recorded(tmp_path / "submitit")
    assert list((tmp_path / "submitit" / "submitit").glob("*_result.pkl"))  # the jobs really went through submitit


def _processes_naming(text: str) -> list[int]:
    """PIDs of the live processes whose command line names ``text`` (zombies excluded)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if text in (proc / "cmdline").read_bytes().decode(errors="replace") and state not in ("Z", "X"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _wait_until_training(sweep: subprocess.Popen, out: Path, case: Case) -> None:
    """Until the sweep's worker trains ``case`` (its progress note is there), the sweep still running."""
    deadline = time.monotonic() + 120
    while not (out / "cases" / f"{case.case_id}.progress").is_file():
        assert sweep.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)


def _none_left(out: Path, within_s: float) -> bool:
    """Whether every process naming ``out`` (a job, a worker) is gone within ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while _processes_naming(str(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _processes_naming(str(out))


def _kill_leftovers(out: Path) -> None:
    for pid in _processes_naming(str(out)):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to find the sweep's jobs")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["terminated", "killed"])
def test_a_stopped_submitit_sweep_stops_its_jobs(tmp_path, signum):
    """SIGTERM stops a sweep on submitit's local executor as it stops a local one, and a sweep killed outright
    (SIGKILL: it cancels nothing) takes its jobs along too: none of its jobs or workers goes on computing (and
    writing into the run folder) a few seconds later."""
    pytest.importorskip("submitit")
    out = tmp_path / "run"
    # bounded in time as well: a sweep left behind by a killed test run ends by itself
    long_case = Case(task="cubic_spiral", method="euler", iters=10**6, budget_s=120)
    script = textwrap.dedent("""
        import json, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the jobs must not inherit an ignored SIGINT
        from nodebench.runner.case import Case
        from nodebench.runner.sweep import run_cases
        run_cases([Case.from_dict(json.loads(sys.argv[1]))], sys.argv[2], executor="submitit", progress=False)
    """)
    sweep = subprocess.Popen([sys.executable, "-c", script, json.dumps(long_case.to_dict()), str(out)],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_training(sweep, out, long_case)
        sweep.send_signal(signum)
        sweep.wait(timeout=30)
        assert _none_left(out, within_s=5), "a submitit job or its worker outlived the sweep by 5 s"
    finally:
        _kill_leftovers(out)
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()


@pytest.mark.parametrize("argv, fragment", [
    (["--executor", "dask"], "executor 'dask' (--executor dask) needs scheduler (--scheduler ADDRESS)"),
    (["--executor", "submitit", "--scheduler", "tcp://x:1"],
     "scheduler (--scheduler) applies to executor 'dask' (--executor dask) only, not 'submitit'"),
    (["--executor", "dask", "--scheduler", "notaurl"],
     "scheduler (--scheduler) 'notaurl' is not a dask scheduler address"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:99999"],
     "scheduler (--scheduler) 'tcp://127.0.0.1:99999': port 99999 is not a TCP port (1 to 65535)"),
    (["--executor", "dask", "--scheduler", "tcp://nosuchhost.invalid:8786"],
     "scheduler (--scheduler) 'tcp://nosuchhost.invalid:8786': host 'nosuchhost.invalid' is not known"),
    (["--executor", "ray"], "invalid choice"),
])
def test_bad_engine_options_are_one_line_and_write_nothing(capsys, tmp_path, argv, fragment):
    out = tmp_path / "run"
    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--out", str(out), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert not out.exists()


def test_a_missing_engine_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)  # as if not installed
    with pytest.raises(UserError, match=r"^executor 'submitit' \(--executor submitit\) needs submitit: pip install "
                                        r"'nodebench\[slurm\]'$"):
        check_executor("submitit", None)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to find the sweep's workers")
def test_an_interrupted_dask_sweep_kills_the_workers_of_its_running_tasks(tmp_path):
    """Cancelling a dask future does not stop its running task: the task itself kills its worker once its
    sweep is interrupted (a stand-in worker that sleeps here)."""
    distributed = pytest.importorskip("distributed")
    started = tmp_path / "worker.pid"
    sleeper = [sys.executable, "-c", f"import os, time; open({str(started)!r}, 'w').write(str(os.getpid())); "
                                     "time.sleep(60)"]

    def interrupt_once_started(signum, frame):
        if started.is_file() and started.read_text():
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt_once_started)
    try:  # worker processes: a task asks the scheduler through its worker's own client, as on a cluster
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
            with pytest.raises(KeyboardInterrupt), open_engine("dask", cluster.scheduler_address) as engine:
                run_remote(CASES[:1], tmp_path, engine=engine, run_case=functools.partial(run_case_process,
                           python=sleeper), record_failure=record_failure, jobs=1, threads=1, timeout_s=60,
                           progress=False)
            assert _none_left(started, within_s=2), "a dask task's worker outlived its interrupted sweep by 2 s"
            assert not list((tmp_path / "cases").glob("*.json"))  # the stopped case is not recorded: it reruns
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _kill_leftovers(started)


@pytest.mark.parametrize("wrote_row", [False, True], ids=["lost-before-its-row", "lost-after-its-row"])
def test_a_retried_case_whose_dask_task_is_lost(tmp_path, monkeypatch, wrote_row):
    """With retry_failed, a task the engine loses replaces the old attempt's failure row with the loss, and
    keeps a row that its own attempt wrote before it was lost (the local runner's rule)."""
    distributed = pytest.importorskip("distributed")
    case = CASES[0]
    write_case(tmp_path / "cases", case.case_id, case.identity() | {"status": "timeout", "reason": "earlier"}, {})

    def lost(case_dict, run_dir, **engine):
        if wrote_row:
            write_case(Path(run_dir) / "cases", case.case_id, case.identity() | {"status": "ok", "reason": ""}, {})
        raise RuntimeError("worker lost")

    monkeypatch.setattr(sweep, "run_case_process", lost)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=None) as cluster:
        records, _ = run_cases([case], tmp_path, retry_failed=True, executor="dask",
                               scheduler=cluster.scheduler_address, progress=False)
    row = records.set_index("case_id").loc[case.case_id]
    assert (row["status"], "worker lost" in row["reason"]) == (("ok", False) if wrote_row else ("error", True))


def _fake_slurm(tmp_path, monkeypatch, sbatch: str, **commands: str) -> None:
    """Put a SLURM whose ``sbatch`` (and each of ``commands``) runs the given shell line first on PATH (submitit
    picks SLURM when ``srun`` is there)."""
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    for name, line in {"srun": "exit 0", "sbatch": sbatch, **commands}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{line}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "case(s) into" not in line]
    assert len(lines) == 1, lines
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes | None] | None:
    """Each path below ``folder`` with its bytes (a folder: ``None``); ``None`` where ``folder`` does not exist."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("existing", [False, True])
def test_a_job_array_that_slurm_refuses_is_one_line_and_leaves_the_folder_as_it_was(capsys, tmp_path, monkeypatch,
                                                                                     existing):
    """An invalid partition or time limit makes sbatch refuse the array: that was a FailedJobError traceback
    (exit 1); it is sbatch's message in one line, exit 2. Nothing ran, yet the refused sweep left run.json
    (an existing run's replaced by this command's), cases/, logs/ and submitit/ behind: a new folder is now
    removed, an existing run left byte for byte as it was."""
    submitit = pytest.importorskip("submitit")
    _fake_slurm(tmp_path, monkeypatch, "echo 'sbatch: error: invalid partition name specified' >&2; exit 1")
    assert submitit.AutoExecutor(folder=tmp_path / "probe").cluster == "slurm"
    out = tmp_path / "run"
    if existing:
        (out / "notes").mkdir(parents=True)
        (out / "notes" / "mine.txt").write_text("kept")
        (out / "run.json").write_text('{"run_id": "20240101-000000-abcdef", "command": "run"}')
    before = _tree(out)
    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--out", str(out),
                 "--executor", "submitit", "--no-progress"])
    line = _one_error_line(capsys)
    assert code == 2 and "SLURM refused" in line and "invalid partition name specified" in line, line
    assert _tree(out) == before
    assert line.endswith("left as it was" if existing else "not created"), line


def test_a_bench_whose_job_array_slurm_refuses_adds_no_run_to_the_history(capsys, tmp_path, monkeypatch):
    """``bench`` makes its history run folder before the sweep: a refused array left it behind, holding a
    ``run.json`` (and the sweep's folders), with an error line saying the folder was "left as it was"."""
    pytest.importorskip("submitit")
    _fake_slurm(tmp_path, monkeypatch, "echo 'sbatch: error: invalid partition name specified' >&2; exit 1")
    (tmp_path / "tiny.toml").write_text('suite = "tiny"\nseeds = 1\n[[entry]]\nname = "spiral"\npaper = "do_vs_od"\n'
                                        'task = "cubic_spiral"\nmethods = ["rk4"]\niters = 2\ntarget = 0.5\n')
    monkeypatch.setenv("NODEBENCH_SUITES", str(tmp_path))
    store = tmp_path / "store"
    code = main(["bench", "--suite", "tiny", "--out", str(store), "--machine", "m", "--executor", "submitit",
                 "--no-progress"])
    line = _one_error_line(capsys)
    assert code == 2 and "invalid partition name specified" in line, line
    assert line.endswith("nothing ran, no run is added to the history store"), line
    assert not list((store / "m" / "tiny").iterdir())


def test_a_tls_scheduler_without_tls_settings_is_one_line(capsys, tmp_path):
    """``tls://`` without dask's TLS settings was a TypeError traceback (exit 1); now one line, exit 2."""
    pytest.importorskip("distributed")
    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--out", str(tmp_path / "run"),
                 "--executor", "dask", "--scheduler", "tls://127.0.0.1:1", "--no-progress"])
    line = _one_error_line(capsys)
    assert code == 2 and "cannot reach the dask scheduler at 'tls://127.0.0.1:1'" in line and "TLS" in line, line


def test_submitits_local_executor_starts_a_job_as_soon_as_one_ends(tmp_path):
    """With ``jobs=2``, a third case starts when the second one ends, not when the slower first one does (the
    cases were run in batches of ``jobs``, each waiting for its slowest). Stand-in workers: the first one waits
    (up to a minute) for the third one to start."""
    pytest.importorskip("submitit")
    marks = tmp_path / "marks"
    marks.mkdir()
    sleeper = [sys.executable, "-c", textwrap.dedent(f"""
        import json, pathlib, sys, time
        marks, seed = pathlib.Path({str(marks)!r}), json.loads(open(sys.argv[3]).read())["seed"]
        (marks / f"{{seed}}.start").write_text(str(time.time()))
        deadline = time.time() + 60
        while seed == 0 and not (marks / "2.start").is_file() and time.time() < deadline:
            time.sleep(0.1)
        (marks / f"{{seed}}.end").write_text(str(time.time()))
    """)]
    cases = expand_grid(tasks=["cubic_spiral"], methods=["rk4"], seeds=range(3), iters=2)
    with open_engine("submitit", None) as engine:
        run_remote(cases, tmp_path, engine=engine, run_case=functools.partial(run_case_process, python=sleeper),
                   record_failure=record_failure, jobs=2, threads=1, timeout_s=120, progress=False)
    mark = {name.name: float(name.read_text()) for name in marks.iterdir()}
    assert mark["2.start"] < mark["0.end"], "the third case waited for the first one"
    assert len(list((tmp_path / "cases").glob("*.json"))) == 3  # every case has its row


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to find the sweep's workers")
def test_a_killed_dask_sweep_takes_its_workers_along(tmp_path):
    """A sweep killed outright cancels nothing: the scheduler drops its tasks when its client vanishes, and
    each running task, seeing that, kills its worker."""
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "run"
    # bounded in time as well: a sweep left behind by a killed test run ends by itself
    long_case = Case(task="cubic_spiral", method="euler", iters=10**6, budget_s=120)
    script = textwrap.dedent("""
        import json, sys
        from nodebench.runner.case import Case
        from nodebench.runner.sweep import run_cases
        run_cases([Case.from_dict(json.loads(sys.argv[1]))], sys.argv[2], executor="dask", scheduler=sys.argv[3],
                  progress=False)
    """)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        sweep = subprocess.Popen([sys.executable, "-c", script, json.dumps(long_case.to_dict()), str(out),
                                  cluster.scheduler_address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_until_training(sweep, out, long_case)
            sweep.kill()
            sweep.wait()
            assert _none_left(out, within_s=3), "a dask task's worker outlived its killed sweep by 3 s"
        finally:
            _kill_leftovers(out)
            if sweep.poll() is None:
                sweep.kill()
                sweep.wait()


def test_an_unreachable_dask_scheduler_is_one_line_and_writes_nothing(capsys, tmp_path):
    """A valid address where no scheduler listens (a closed port) failed only after the 30 s connect timeout and
    after run.json, cases/ and logs/ were written into --out; the sweep now connects first (within dask's
    connect timeout, 1 s here): one line, exit 2, no run folder."""
    pytest.importorskip("distributed")
    import dask

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "run"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--out", str(out),
                     "--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}", "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines  # and no "running 1 case(s) into …": nothing ran
    assert code == 2 and f"cannot reach the dask scheduler at 'tcp://127.0.0.1:{port}'" in lines[0], lines
    assert not out.exists(), sorted(path.name for path in out.iterdir())


def test_dask_tasks_watch_for_cancellation_without_asking_the_scheduler(tmp_path):
    """A running task looked twice a second whether it was cancelled by asking the scheduler
    (``Client.processing``): one request per running task every half second, a load on the scheduler that
    grows with the cluster. It reads its worker's own state now: the scheduler gets no such request."""
    distributed = pytest.importorskip("distributed")
    sleeper = [sys.executable, "-c", "import time; time.sleep(1)"]
    cases = expand_grid(tasks=["cubic_spiral"], methods=["rk4"], seeds=range(4), iters=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=None) as cluster:
        handlers, asked = cluster.scheduler.handlers, []
        processing = handlers["processing"]
        handlers["processing"] = lambda *args, **kwargs: asked.append(1) or processing(*args, **kwargs)
        with open_engine("dask", cluster.scheduler_address) as engine:
            run_remote(cases, tmp_path, engine=engine, run_case=functools.partial(run_case_process, python=sleeper),
                       record_failure=record_failure, jobs=2, threads=1, timeout_s=60, progress=False)
    assert len(list((tmp_path / "cases").glob("*.json"))) == 4  # the cases ran
    assert not asked, f"the tasks asked the scheduler {len(asked)} times whether they were cancelled"


def test_an_interrupted_slurm_sweep_cancels_its_array_with_one_scancel(capsys, tmp_path, monkeypatch):
    """submitit cancels job by job: an interrupted sweep ran one ``scancel`` per case (a large array's worth of
    calls to SLURM's controller, which a second signal cuts short). It is one ``scancel`` of the array now, whose
    id the sweep printed when it submitted it (what to run after a ``kill -9``, which nothing can catch)."""
    submitit = pytest.importorskip("submitit")
    calls = tmp_path / "scancel.calls"
    _fake_slurm(tmp_path, monkeypatch, "echo 'Submitted batch job 4242'", sacct="exit 0",
                scancel=f'echo "$@" >> {calls}')
    assert submitit.AutoExecutor(folder=tmp_path / "probe").cluster == "slurm"
    cases = expand_grid(tasks=["cubic_spiral"], methods=["rk4"], seeds=range(3), iters=2)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt), open_engine("submitit", None) as engine:
            run_remote(cases, tmp_path, engine=engine, run_case=run_case_process, record_failure=record_failure,
                       jobs=3, threads=1, timeout_s=60, progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert calls.read_text().splitlines() == ["4242"]
    assert "submitted 3 case(s) to SLURM as job 4242; if this sweep is killed outright, stop them with: scancel 4242" \
        in capsys.readouterr().err


def _on_local_engine(executor: str, run) -> None:
    """``run(engine=...)`` on ``executor``'s local engine: submitit's local executor, or an in-process dask cluster
    of one worker thread."""
    if executor == "submitit":
        with open_engine("submitit", None) as engine:
            run(engine=engine)
        return
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=None) as cluster, \
            open_engine("dask", cluster.scheduler_address) as engine:
        run(engine=engine)


@pytest.mark.parametrize("executor", ["submitit", "dask"])
def test_remote_progress_into_a_log_is_a_line_per_case_without_redraws(tmp_path, capsys, executor):
    """A cluster sweep logging to a file (stderr no terminal) drew tqdm's carriage-return redraws and named no
    finished case; it prints the local sweep's line per case now, with its status and the time its task took.
    Stand-in workers that exit at once (no row: recorded as ``error``)."""
    pytest.importorskip({"submitit": "submitit", "dask": "distributed"}[executor])
    quick = [sys.executable, "-c", "pass"]
    run = functools.partial(run_remote, CASES, tmp_path, run_case=functools.partial(run_case_process, python=quick),
                            record_failure=record_failure, jobs=1, threads=1, timeout_s=60, progress=True)
    _on_local_engine(executor, run)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [re.fullmatch(r"\[(\d)/2\] cubic_spiral/rk4/s(\d): error in [0-9.]+ s(, about \S+ left)?", line)
             for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and all(lines), err
    assert [(m[1], m[3] is not None) for m in lines] == [("1", True), ("2", False)], err  # time left while some run
    assert {m[2] for m in lines} == {"0", "1"}, err


@pytest.mark.parametrize("executor", ["submitit", "dask"])
def test_remote_progress_into_a_log_names_the_running_cases_while_they_run(tmp_path, capsys, monkeypatch, executor):
    """A cluster sweep logging to a file said nothing while its cases ran (the local sweep prints a ``still
    running:`` line every ALIVE_EVERY_S): a long case was silent until it ended. It names the cases whose workers
    run, from their progress notes, and how many wait. Stand-in workers write a note and sleep, one at a time."""
    pytest.importorskip({"submitit": "submitit", "dask": "distributed"}[executor])
    from nodebench.runner import progress

    monkeypatch.setattr(progress, "ALIVE_EVERY_S", 0.2)
    slow = [sys.executable, "-c", textwrap.dedent("""
        import pathlib, sys, time
        case_id = pathlib.Path(sys.argv[3]).name.removesuffix(".case.json")
        (pathlib.Path(sys.argv[4]) / f"{case_id}.progress").write_text("iter 1/2 loss 0.5")
        time.sleep(2)
    """)]
    run = functools.partial(run_remote, CASES, tmp_path, run_case=functools.partial(run_case_process, python=slow),
                            record_failure=record_failure, jobs=1, threads=1, timeout_s=60, progress=True)
    _on_local_engine(executor, run)
    alive = [line for line in capsys.readouterr().err.splitlines() if "still running" in line]
    assert any(re.fullmatch(r"  still running: cubic_spiral/rk4/s[01]: iter 1/2 loss 0\.5; 1 case\(s\) queued or "
                            r"starting", line) for line in alive), alive
    assert all(line.startswith("  still running: ") for line in alive), alive
