"""Runs a list of cases, each in a fresh process, with a time limit, resume and a progress bar.

Every case runs as ``python -m nodebench.runner.worker`` so that its memory figure starts clean (the
CPU high-water mark and the CUDA allocator are per process) and a crash stays isolated. Up to ``jobs``
cases run at once (state it when comparing times: parallel cases share the machine). A case that
passes ``timeout_s`` is killed and recorded with status ``timeout``; a worker that dies without writing
its result is recorded as ``killed`` with the signal's name (SIGKILL: the kernel's out-of-memory killer
or a user; SIGSEGV...) or ``error``. With ``executor="submitit"`` or ``"dask"`` the cases go to a cluster engine instead
(:mod:`nodebench.runner.executors`); each remote task runs :func:`run_case_process`, which is the same fresh
worker process, waited for. Cases already in ``RUN_DIR/cases`` are skipped, so rerunning a killed sweep with the same
output directory resumes it; ``retry_failed`` reruns the cases recorded with a failure status. A resume
reruns exactly the cases without a valid finished row: those that were running when the sweep stopped
(their ``.progress`` notes are removed) and those whose files fail :func:`~nodebench.records.valid_cases`.
Each worker's output (tracebacks included) is kept in ``RUN_DIR/logs/<case_id>.log``. Workers die with
the sweep: SIGINT, SIGTERM and SIGHUP stop the sweep, which kills them at once, and a sweep killed outright
takes them along (Linux parent-death signal). The sweep holds ``RUN_DIR/.lock`` while it runs and refuses a
directory holding cases of another git commit unless ``allow_mixed_commits`` (:mod:`nodebench.runner.guard`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from nodebench.errors import UserError, clip
from nodebench.harness import environment
from nodebench.harness.environment import git_sha
from nodebench.records import CASES, atomic_write, merge, valid_cases, write_case
from nodebench.run_settings import invocation
from nodebench.runner.case import Case
from nodebench.runner.executors import SubmissionRefused, open_engine, run_remote
from nodebench.runner.guard import (PARENT_PID, SweepLock, check_commit, deferred_signals, read_json_object,
                                    stop_on_signals)
from nodebench.runner.progress import Progress, running_notes

LOGS = "logs"
RUN_INFO = "run.json"
#: What ``run.json`` keeps of an earlier invocation on the same folder (:func:`write_run_info`).
EARLIER_KEYS = ("command_line", "cwd", "settings")
#: The keys of ``run.json`` that name what made the run (commands read them back): strings where present.
RUN_KINDS = ("command", "paper", "preset", "suite")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: How often a remote case looks whether its sweep is gone.
STOPPED_EVERY_S = 0.5


@dataclass
class _Running:
    case: Case
    process: subprocess.Popen
    started: float
    started_at: str
    log: Path
    threads: int
    previous_row: tuple[int, int] | None  # the row left by an earlier attempt (a failure being retried)


def read_run_info(run_dir: str | Path) -> dict:
    """``run_dir/run.json``: the run id and what produced the run (command, paper, preset); may be empty."""
    info = Path(run_dir) / RUN_INFO
    if not info.is_file():
        return {}
    value = read_json_object(info)
    if value is None or not all(isinstance(value.get(key, ""), str) for key in ("run_id", *RUN_KINDS)):
        raise UserError(f"{str(info)!r} is corrupt (not a JSON object whose run_id, {', '.join(RUN_KINDS)} are "
                        "strings); move it away or mend it (a sweep there then starts a new run id)")
    return value


def write_run_info(run_dir: str | Path, **meta) -> dict:
    """Create or update ``run_dir/run.json``; the run id is made once and kept when a run resumes. It holds the
    command line and environment of the latest invocation (:func:`nodebench.run_settings.invocation`) and, under
    ``earlier``, the command line, folder and settings of each earlier one that differed (a resume that added
    methods or seeds), whose cases the folder's records hold too."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        info = read_run_info(run_dir)
    except UserError:
        aside = run_dir / f"{RUN_INFO}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
        os.replace(run_dir / RUN_INFO, aside)
        print(f"nodebench: {run_dir / RUN_INFO} was corrupt: moved to {aside.name}, a new run id starts",
              file=sys.stderr)
        info = {}
    current = invocation() | meta
    prior = info.pop("earlier", [])
    earlier = [entry for entry in [*(prior if isinstance(prior, list) else []),
                                   {key: info[key] for key in EARLIER_KEYS if key in info}]
               if isinstance(entry, dict) and entry.get("command_line")
               and entry != {key: current.get(key) for key in entry}]
    earlier = [entry for i, entry in enumerate(earlier) if entry not in earlier[:i]]
    info = {"run_id": time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]} | info | current
    if earlier:
        info["earlier"] = earlier
    atomic_write(run_dir / RUN_INFO, lambda path: path.write_text(json.dumps(info, indent=1)))
    return info


def run_cases(cases: list[Case], run_dir: str | Path, *, jobs: int = 1, timeout_s: float = 3600.0,
              threads: int = 1, progress: bool = True, retry_failed: bool = False, executor: str = "local",
              scheduler: str | None = None, allow_mixed_commits: bool = False,
              info: dict | None = None, announce: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the cases not yet finished in ``run_dir`` and merge all results there.

    Args:
        cases: the grid (see :func:`~nodebench.runner.case.expand_grid`).
        run_dir: output directory; finished cases in it are kept and skipped.
        jobs: cases run at once.
        timeout_s: per-case wall-clock limit, process start-up included.
        threads: torch threads per case (also exported as OMP/MKL/OpenBLAS thread counts).
        progress: show progress on stderr (below).
        retry_failed: rerun cases recorded as ``diverged``, ``oom``, ``killed``, ``timeout`` or ``error``.
        executor: ``local`` (worker processes on this machine), ``submitit`` (SLURM job arrays, or submitit's
            local executor without SLURM) or ``dask`` (a dask.distributed scheduler at ``scheduler``).
            ``run_dir`` must be on storage that the cluster's workers share. The engine is checked and its
            scheduler connected to before anything is written (:func:`~nodebench.runner.executors.open_engine`).
        allow_mixed_commits: add cases to a directory holding cases of another git commit.
        info: entries for ``run.json`` (:func:`write_run_info`), written once the sweep holds the directory's
            lock, so a sweep refused there changes nothing.
        announce: a line for stderr once the engine is open and the directory is the sweep's (a sweep refused
            before, by an unreachable scheduler or a folder in use, does not claim to be running).

    Progress goes to stderr (:class:`~nodebench.runner.progress.Progress`): a line per finished case (``[n/N]
    NAME: status in T s, about T left``) and, on a terminal, a bar naming each running case's
    iteration and loss; elsewhere (a log file) a plain ``still running`` line once a minute instead. A sweep
    stopped by a signal re-raises its :class:`KeyboardInterrupt` with ``kept``: (cases of ``cases`` finished in
    ``run_dir``, their number, ``run_dir``).

    Returns:
        ``(records, curves)`` DataFrames of every case in ``run_dir``.
    """
    run_dir = Path(run_dir)
    with open_engine(executor, scheduler) as engine:
        before = _contents(run_dir)
        with SweepLock(run_dir), stop_on_signals():
            if announce:
                print(announce, file=sys.stderr, flush=True)
            try:
                return _run_locked(cases, run_dir, jobs=jobs, timeout_s=timeout_s, threads=threads,
                                   progress=progress, retry_failed=retry_failed, engine=engine,
                                   allow_mixed_commits=allow_mixed_commits, info=info or {})
            except SubmissionRefused as err:  # no case ran: the folder is put back as it was
                _put_back(run_dir, before)
                kept = "left as it was" if before is not None else "not created"
                raise SubmissionRefused(err.reason, f"nothing ran, {str(run_dir)!r} is {kept}") from None
            except KeyboardInterrupt as err:  # what the command's last line says was kept
                ids = {case.case_id for case in cases}
                err.kept = (sum((run_dir / CASES / f"{i}.json").is_file() for i in ids), len(ids), run_dir)
                raise


def _contents(run_dir: Path) -> dict[Path, bytes | None] | None:
    """What ``run_dir`` holds (each path below it; ``run.json`` with its bytes), ``None`` where it does not exist:
    what :func:`_put_back` restores."""
    if not run_dir.is_dir():
        return None
    info = run_dir / RUN_INFO
    return {path: info.read_bytes() if path == info else None for path in run_dir.rglob("*")}


def _put_back(run_dir: Path, before: dict[Path, bytes | None] | None) -> None:
    """Undo a sweep that started nothing: remove ``run_dir`` if it did not exist (``before`` is ``None``), else
    what the sweep added there, and put its earlier ``run.json`` back."""
    if before is None:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for path in sorted(run_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # a folder after its files
        if path not in before:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    info = run_dir / RUN_INFO
    if before.get(info) is not None and info.read_bytes() != before[info]:
        atomic_write(info, lambda tmp: tmp.write_bytes(before[info]))


def _run_locked(cases, run_dir: Path, *, jobs, timeout_s, threads, progress, retry_failed, engine,
                allow_mixed_commits, info) -> tuple[pd.DataFrame, pd.DataFrame]:
    cases_dir, logs_dir = run_dir / CASES, run_dir / LOGS
    finished = valid_cases(run_dir)
    check_commit(list(finished.values()), git_sha(), run_dir, allow_mixed=allow_mixed_commits)
    run_id = write_run_info(run_dir, **info)["run_id"]
    cases_dir.mkdir(parents=True, exist_ok=True)
    logs_dir.mkdir(exist_ok=True)
    _remove_stale_notes(run_dir)
    done = {case_id for case_id, row in finished.items() if not retry_failed or row.get("status") == "ok"}
    todo = list({c.case_id: c for c in cases if c.case_id not in done}.values())
    total = len({c.case_id for c in cases})
    if len(todo) < total:
        print(f"resuming: {total - len(todo)} of {total} case(s) finished before, {len(todo)} to run",
              file=sys.stderr, flush=True)
    if engine is not None:  # a cluster engine, connected before anything was written
        run_remote(todo, run_dir, engine=engine, run_case=run_case_process,
                   record_failure=_failure_recorder(todo, cases_dir), jobs=jobs, threads=threads, timeout_s=timeout_s,
                   progress=progress, sweep=cases)
        return merge(run_dir, run_id)
    env = _worker_env(threads)
    shown = Progress(len(todo), enabled=progress, cases=cases)
    running: list[_Running] = []
    try:
        while todo or running:
            while todo and len(running) < jobs:
                _start(todo.pop(0), cases_dir, logs_dir, env, threads, register=running.append)
            time.sleep(0.05)
            for job in list(running):
                code = job.process.poll()
                if code is None and time.monotonic() - job.started <= timeout_s:
                    continue
                status = _settle(job, cases_dir, code, timeout_s)
                running.remove(job)
                shown.finished(job.case, status, time.monotonic() - job.started)
            if running:
                shown.running(lambda: running_notes([job.case for job in running], cases_dir, shown.name))
    finally:
        with deferred_signals():  # interrupted: no orphan keeps computing and writing, even on a second Ctrl-C
            for job in running:
                _kill(job.process)
                (cases_dir / f"{job.case.case_id}.progress").unlink(missing_ok=True)
            shown.close()
    return merge(run_dir, run_id)


def _remove_stale_notes(run_dir: Path) -> None:
    """Progress notes and temporary files left by a sweep that was killed outright: its workers' in
    ``cases/``, its merge's in the run folder."""
    cases_dir, temporary = run_dir / CASES, ".*.tmp[0-9]*"  # records.atomic_write's temporary names
    for path in [*cases_dir.glob("*.progress"), *cases_dir.glob("*.progress-tmp"), *cases_dir.glob(temporary),
                 *run_dir.glob(temporary)]:
        path.unlink(missing_ok=True)


def run_case_process(case: Case | dict, run_dir: str | Path, *, threads: int = 1, timeout_s: float = 3600.0,
                     python: list[str] | None = None, env: dict | None = None, pass_fds: tuple[int, ...] = (),
                     stopped: Callable[[], bool] | None = None) -> str:
    """Run one case in a fresh worker process, wait for it, and record it in ``run_dir/cases``; return its
    status. The unit of work that cluster engines run: a pure function of the case's config, whose only
    effect is the case's own files in the shared ``run_dir``. ``python`` (default: this interpreter) and
    ``env`` (default: this environment) start the worker of another installation, e.g. a baseline commit's.
    ``pass_fds`` are handed over to the worker: it inherits them and this process closes its copies once
    the worker has started (or failed to start), e.g. the ends of an A/B pair's lockstep pipes.
    ``stopped()``, asked twice a second while the worker runs, says when the sweep that wants the case
    is gone (a cluster engine's task cancelled): the worker is then killed, nothing is recorded, and
    :class:`CaseStopped` is raised."""
    case = case if isinstance(case, Case) else Case.from_dict(case)
    cases_dir, logs_dir = Path(run_dir) / CASES, Path(run_dir) / LOGS
    started: list[_Running] = []
    try:
        try:  # a folder that cannot be made (its parent a file) fails the case with the pipe ends closed too
            cases_dir.mkdir(parents=True, exist_ok=True)
            logs_dir.mkdir(exist_ok=True)
            _start(case, cases_dir, logs_dir, _worker_env(threads, env), threads, python, pass_fds,
                   register=started.append)
        finally:
            for fd in pass_fds:
                os.close(fd)
        code = _wait(started[0].process, timeout_s, stopped)
    except BaseException:  # interrupted or stopped: no orphan keeps computing, even on a second Ctrl-C
        with deferred_signals():
            for job in started:
                _kill(job.process)
                (cases_dir / f"{case.case_id}.progress").unlink(missing_ok=True)
        raise
    return _settle(started[0], cases_dir, code, timeout_s)


class CaseStopped(Exception):
    """A case whose worker :func:`run_case_process` killed because its sweep is gone."""


def _wait(process: subprocess.Popen, timeout_s: float, stopped: Callable[[], bool] | None) -> int | None:
    """The worker's exit code, or None when it is still running after ``timeout_s``; :class:`CaseStopped` as
    soon as ``stopped()`` says so (asked every :data:`STOPPED_EVERY_S`)."""
    if stopped is None:
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
    next_ask = time.monotonic()
    deadline = next_ask + timeout_s
    while (code := process.poll()) is None and (now := time.monotonic()) < deadline:
        if now >= next_ask:
            if stopped():
                raise CaseStopped("the sweep that wanted the case is gone; its worker was killed")
            next_ask = now + STOPPED_EVERY_S
        time.sleep(0.1)
    return code


def record_failure(case: Case, run_dir: str | Path, status: str, reason: str, started_at: str = "",
                   previous_row: tuple[int, int] | None = None) -> None:
    """Record ``case`` as failed in ``run_dir`` (when a cluster engine lost its task) unless its attempt wrote
    a row; the row of an earlier attempt (``previous_row``: its :func:`_row_stamp` before this one) is replaced."""
    cases_dir = Path(run_dir) / CASES
    if not _wrote_row(cases_dir, case, previous_row):
        started_at = started_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        _record_failure(case, cases_dir, status, reason, started_at, threads=None)


def _failure_recorder(cases: list[Case], cases_dir: Path) -> Callable[..., None]:
    """:func:`record_failure` for a cluster engine about to run ``cases``, which knows the rows they have now."""
    previous = {case.case_id: _row_stamp(cases_dir / f"{case.case_id}.json") for case in cases}

    def record(case: Case, run_dir: str | Path, status: str, reason: str) -> None:
        record_failure(case, run_dir, status, reason, previous_row=previous[case.case_id])
    return record


def _worker_env(threads: int, base: dict | None = None) -> dict:
    return ((os.environ if base is None else base) | {var: str(threads) for var in THREAD_VARS}
            | {"PYTHONUNBUFFERED": "1", PARENT_PID: str(os.getpid())})


def _settle(job: _Running, cases_dir: Path, code: int | None, timeout_s: float) -> str:
    """After a worker ended (``code``) or ran out of time (``None``): record what it did not, and return the
    case's status. A row the worker wrote is kept (even if it then ran out of time while exiting); a row of an
    earlier attempt is replaced."""
    if code is None:
        _kill(job.process)
    if not _wrote_row(cases_dir, job.case, job.previous_row):
        timeout = ("timeout", f"exceeded the {timeout_s:g} s case time limit")
        status, reason = timeout if code is None else _failure_of(code, job.log)
        _record_failure(job.case, cases_dir, status, reason, job.started_at, job.threads)
    (cases_dir / f"{job.case.case_id}.progress").unlink(missing_ok=True)
    row = read_json_object(cases_dir / f"{job.case.case_id}.json") or {}
    return str(row.get("status", "error"))


def _wrote_row(cases_dir: Path, case: Case, previous_row: tuple[int, int] | None) -> bool:
    """Whether an attempt at ``case`` wrote its row: there is one, and not the one it found (``previous_row``).
    No row at all means that the attempt died: a row being replaced is removed before the new one is written
    (:func:`~nodebench.records.write_case`)."""
    return _row_stamp(cases_dir / f"{case.case_id}.json") not in (None, previous_row)


def _row_stamp(row: Path) -> tuple[int, int] | None:
    """The inode and modification time of a case's row file (None without one): a row written anew (atomically,
    so under a new inode) changes it."""
    try:
        stat = row.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _start(case: Case, cases_dir: Path, logs_dir: Path, env: dict, threads: int,
           python: list[str] | None = None, pass_fds: tuple[int, ...] = (), *,
           register: Callable[[_Running], None]) -> None:
    """Start the worker of ``case`` and hand its job to ``register`` (the caller's list of what it must stop). An
    interrupt (Ctrl-C, SIGTERM, SIGHUP) that arrives meanwhile, even inside ``Popen`` after the fork, is held
    until ``register`` returned (:func:`~nodebench.runner.guard.deferred_signals`), and an exception raised after
    the worker started and before ``register`` returned kills the worker before it propagates: no worker runs
    that its sweep does not know of."""
    spec = logs_dir / f"{case.case_id}.case.json"
    spec.write_text(json.dumps(case.to_dict()))
    log = logs_dir / f"{case.case_id}.log"
    previous_row = _row_stamp(cases_dir / f"{case.case_id}.json")
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    process = None
    with deferred_signals():
        try:
            with log.open("w") as handle:
                process = subprocess.Popen(
                    [*(python or [sys.executable]), "-m", "nodebench.runner.worker", str(spec), str(cases_dir),
                     str(threads)], stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                    pass_fds=pass_fds)
            register(_Running(case, process, time.monotonic(), started_at, log, threads, previous_row))
        except BaseException:
            if process is not None:
                _kill(process)
            raise


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _failure_of(code: int, log: Path) -> tuple[str, str]:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        why = " (the kernel's out-of-memory killer or a user)" if code == -signal.SIGKILL else ""
        return "killed", f"worker killed by {name}{why}"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return "error", clip(f"worker exited with code {code}: {lines[-1] if lines else 'no output'}")


def _record_failure(case: Case, cases_dir: Path, status: str, reason: str, started_at: str,
                    threads: int | None) -> None:
    """Row for a worker that wrote none; the environment is read here, in the parent, for the case's device
    (the parent sees the same machine), except the worker's torch ``threads`` (``None``: unknown, a cluster
    job), and ``started_at`` is when the worker was started."""
    row = case.identity() | environment(case.device) | {"num_threads": threads, "status": status, "reason": reason,
                                                         "started_at": started_at}
    write_case(cases_dir, case.case_id, row, {})

