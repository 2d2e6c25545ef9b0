"""Cluster engines for a sweep: SLURM job arrays through submitit, and dask.distributed.

Every case is one remote task running :func:`nodebench.runner.sweep.run_case_process`: a pure function of
the case's config that starts the usual fresh worker process and writes the case's files into the shared
run directory. The sweep then merges those files, exactly as after a local run, so a run can be resumed
with any engine. A task the engine loses (a job killed by SLURM, a dask worker that died) is recorded as
an ``error`` row with the engine's message.

- ``submitit``: ``submitit.AutoExecutor`` submits one job array per sweep to SLURM (``jobs`` is the array's
  ``slurm_array_parallelism``; the time limit is 1.5 × the case time limit, as benchopt does) and, where
  there is no SLURM, runs the same tasks with submitit's local executor, ``jobs`` at a time (a new job starts
  as soon as one ends). Its pickles and logs go to ``RUN_DIR/submitit/``. The sweep prints the id of each
  SLURM array it submits. An interrupted sweep (SIGINT, SIGTERM, SIGHUP) cancels its jobs: one ``scancel``
  of its arrays (submitit cancels job by job, one ``scancel`` each), and the local executor's jobs are
  stopped with SIGINT, which kills their workers; a local job whose sweep was killed outright kills its
  worker (it looks twice a second). SLURM jobs cannot see a sweep on another machine die: after a
  ``kill -9``, ``scancel`` the printed array id. A job array that SLURM refuses (an invalid partition or
  time limit) stops the sweep with sbatch's message.
- ``dask``: the tasks are submitted to the dask.distributed scheduler at ``scheduler`` (``tcp://host:8786``;
  start workers with ``--nthreads 1`` for clean timings); ``dask_jobqueue`` can provide one on a cluster.
  The sweep connects before it writes anything (within dask's ``distributed.comm.timeouts.connect``, 30 s by
  default), so an unreachable scheduler leaves no run folder. A task whose future is cancelled (an interrupted
  sweep cancels them; the scheduler does when a sweep's client vanishes) kills its worker: twice a second it
  looks whether its dask worker's state has it ``cancelled`` (dask's worker state machine: the state of an
  executing task that the scheduler released). Cancelling a future does not stop a running task, and the
  check asks the scheduler nothing, however many tasks run.

Progress is the local sweep's (:class:`~nodebench.runner.progress.Progress`): a line on stderr per finished case,
with its status and how long its task ran on its node, and a bar only where stderr is a terminal; in a log, a
``still running:`` line once a minute names the cases whose workers run (from their progress notes in the shared
run folder) and how many are queued or starting.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import queue
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from nodebench.devices import parse_device
from nodebench.errors import UserError, one_line
from nodebench.records import CASES
from nodebench.runner.case import Case
from nodebench.runner.guard import pid_alive, read_json_object
from nodebench.runner.progress import Progress, running_notes

EXECUTORS = ("local", "submitit", "dask")
EXTRAS = {"submitit": "slurm", "dask": "dask"}
#: How often a sweep on a cluster engine looks at its jobs (as submitit's own ``Job.wait``) and shows their progress.
POLL_S = 1.0


def check_executor(executor: str, scheduler: str | None) -> None:
    """Refuse an unknown engine, a dask run without a scheduler and an engine that is not installed."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if executor == "dask" and not scheduler:
        raise UserError("executor 'dask' (--executor dask) needs scheduler (--scheduler ADDRESS), e.g. "
                        "tcp://10.0.0.1:8786")
    if executor != "dask" and scheduler:
        raise UserError(f"scheduler (--scheduler) applies to executor 'dask' (--executor dask) only, not {executor!r}")
    module = {"submitit": "submitit", "dask": "distributed"}.get(executor)
    if module:
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"executor {executor!r} (--executor {executor}) needs {module}: pip install "
                            f"'nodebench[{EXTRAS[executor]}]'") from None
    if executor == "dask":
        _check_scheduler_address(scheduler)


def _check_scheduler_address(scheduler: str) -> None:
    """A dask scheduler address whose port is a port and whose host this machine can resolve (a dry run checks
    this too; connecting is left to :func:`open_engine`: a scheduler may not be started yet)."""
    from distributed.comm import get_address_host_port

    try:  # a network address, checked before anything is written
        host, port = get_address_host_port(scheduler)
    except ValueError as err:
        raise UserError(f"scheduler (--scheduler) {scheduler!r} is not a dask scheduler address ({err}); give "
                        "PROTOCOL://HOST:PORT, e.g. tcp://10.0.0.1:8786") from None
    if not 0 < port < 65536:
        raise UserError(f"scheduler (--scheduler) {scheduler!r}: port {port} is not a TCP port (1 to 65535)")
    try:
        socket.getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError) as err:
        raise UserError(f"scheduler (--scheduler) {scheduler!r}: host {host!r} is not known here ({err}); give a host "
                        "name or IP address of the scheduler's machine") from None


def runs_here(executor: str) -> bool:
    """Whether a sweep on ``executor`` runs its cases on this machine: ``local``, and ``submitit`` where it finds
    no SLURM (its local executor). SLURM nodes and dask workers check their own devices (a login node needs no
    GPU to submit a CUDA sweep)."""
    if executor == "submitit":
        try:
            import submitit
        except ImportError:  # refused with its install hint by check_executor
            return True
        return submitit.AutoExecutor.which() != "slurm"
    return executor == "local"


@contextlib.contextmanager
def open_engine(executor: str, scheduler: str | None) -> Iterator[Callable[..., None] | None]:
    """The engine for :func:`run_remote` (``None`` for ``local``), checked, and for dask connected to the
    scheduler within dask's ``distributed.comm.timeouts.connect`` (30 s by default): a sweep opens it before it
    writes anything, so an unreachable scheduler is one :class:`UserError` and leaves no run folder."""
    check_executor(executor, scheduler)
    if executor == "local":
        yield None
    elif executor == "submitit":
        yield _submitit
    else:
        from distributed import Client

        try:
            client = Client(scheduler)
        except (OSError, TimeoutError, TypeError, ValueError) as err:  # TypeError: tls:// without dask's TLS config
            raise UserError(f"cannot reach the dask scheduler at {scheduler!r}: {one_line(err)}") from None
        with client:
            yield functools.partial(_dask, client)


def run_remote(cases: list[Case], run_dir: Path, *, engine: Callable[..., None], run_case: Callable[..., str],
               record_failure: Callable[..., None], jobs: int, threads: int, timeout_s: float,
               progress: bool, sweep: list[Case] | None = None) -> None:
    """Run ``cases`` on ``engine`` (from :func:`open_engine`), each case's files landing in ``run_dir``; returns
    when all have ended.

    ``run_case(case_dict, run_dir=..., threads=..., timeout_s=...)`` runs one case remotely (the sweep's
    :func:`~nodebench.runner.sweep.run_case_process`); ``record_failure(case, run_dir, status, reason)``
    records a lost job. The sweep passes both, so this module does not import it back. ``progress``: a line per
    finished case on stderr (:class:`~nodebench.runner.progress.Progress`), and the running cases while they run,
    each named uniquely among ``sweep`` (the sweep's cases, those finished before included; default ``cases``)."""
    task = functools.partial(_timed, functools.partial(run_case, run_dir=str(Path(run_dir).resolve()),
                                                       threads=threads, timeout_s=timeout_s))
    with Progress(len(cases), enabled=progress, cases=cases if sweep is None else sweep) as shown:
        def done(case: Case, outcome: tuple[str, float] | None) -> None:
            if outcome is None:  # a job the engine lost: what record_failure left (or the attempt's own row)
                row = read_json_object(Path(run_dir) / CASES / f"{case.case_id}.json") or {}
                outcome = (str(row.get("status", "error")), None)
            shown.finished(case, *outcome)

        def running(pending: list[Case]) -> None:
            shown.running(lambda: _in_flight(pending, Path(run_dir) / CASES, shown.name))

        engine(cases, run_dir, task, jobs=jobs, threads=threads, timeout_s=timeout_s, done=done, running=running,
               record_failure=record_failure)


def _in_flight(cases: list[Case], cases_dir: Path, name: Callable[[Case], str]) -> str:
    """What a cluster engine's unfinished ``cases`` are doing: those whose workers left a progress note
    (:func:`~nodebench.runner.progress.running_notes`), then how many are queued or starting (a SLURM array or
    a dask scheduler may hold thousands), each case named by ``name``."""
    started = [case for case in cases if (cases_dir / f"{case.case_id}.progress").exists()]
    waiting = len(cases) - len(started)
    return "; ".join([running_notes(started, cases_dir, name)] * bool(started)
                     + [f"{waiting} case(s) queued or starting"] * bool(waiting))


def _timed(run_case: Callable[..., str], *args, **kwargs) -> tuple[str, float]:
    """A remote task: ``run_case(*args, **kwargs)``'s status and the seconds it took on its node."""
    started = time.monotonic()
    status = run_case(*args, **kwargs)
    return status, time.monotonic() - started


def _submitit(cases, run_dir, task, *, jobs, threads, timeout_s, done, running, record_failure) -> None:
    import submitit

    pool = submitit.AutoExecutor(folder=Path(run_dir) / "submitit")
    pool.update_parameters(timeout_min=math.ceil(1.5 * timeout_s / 60), cpus_per_task=threads,
                           slurm_array_parallelism=jobs, name="nodebench")
    gpus = gpus_needed(cases)
    if gpus and pool.cluster == "slurm":  # each job asks for the GPUs its case's device names
        pool.update_parameters(gpus_per_node=gpus)
    if pool.cluster == "local":  # its jobs are this machine's processes: they can see the sweep die
        task = functools.partial(task, stopped=functools.partial(_process_gone, os.getpid()))
    window = len(cases) if pool.cluster == "slurm" else jobs  # the local executor has no concurrency cap
    waiting, submitted = list(cases), {}
    try:
        while waiting or submitted:
            if waiting and (free := window - len(submitted)):
                chunk, waiting = waiting[:free], waiting[free:]
                submitted |= _submit_array(pool, task, chunk)
            for job in [job for job in submitted if job.done()]:
                case, outcome = submitted.pop(job), None
                try:
                    outcome = job.result()
                except Exception as err:  # noqa: BLE001 - a lost job is a recorded failure, the sweep goes on
                    record_failure(case, run_dir, "error", f"submitit job {job.job_id}: {one_line(err)}")
                done(case, outcome)
            if submitted:
                running([*submitted.values(), *waiting])
                time.sleep(POLL_S)  # as submitit's own Job.wait: a done() may stat shared files
    except BaseException:  # interrupted: no job keeps computing and writing after the sweep
        _cancel(pool.cluster, list(submitted))
        raise


def gpus_needed(cases: list[Case]) -> int:
    """The GPUs a node must have for every case of ``cases``: N + 1 for ``cuda:N``, 1 for ``cuda``, 0 on CPU."""
    indices = [device.index or 0 for device in map(parse_device, (case.device for case in cases))
               if device.type == "cuda"]
    return max(indices) + 1 if indices else 0


class SubmissionRefused(UserError):
    """SLURM's ``sbatch`` refused a sweep's job array: nothing of it runs (the sweep undoes what it wrote).
    ``reason`` is the refusal alone, for callers that say in their own words what they undid."""

    def __init__(self, reason: str, undone: str = ""):
        super().__init__(f"SLURM refused the sweep's job array: {reason}" + (f"; {undone}" if undone else ""))
        self.reason = reason


def _submit_array(pool, task, cases: list[Case]) -> dict:
    """``{job: case}`` for ``cases`` submitted as one job array, whose SLURM id is printed (``scancel ID`` stops
    it when the sweep cannot). sbatch's refusal (an invalid partition or time limit), which submitit prints as
    well, is a one-line :class:`UserError`."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            jobs = dict(zip(pool.map_array(task, [case.to_dict() for case in cases]), cases))
    except (FailedJobError, FailedSubmissionError) as err:
        raise SubmissionRefused(one_line(err)) from None
    if pool.cluster == "slurm":
        array = " ".join(_arrays(jobs))
        print(f"nodebench: submitted {len(jobs)} case(s) to SLURM as job {array}; if this sweep is killed "
              f"outright, stop them with: scancel {array}", file=sys.stderr, flush=True)
    return jobs


def _arrays(jobs) -> list[str]:
    """The SLURM array ids of ``jobs`` (a task of array ``A`` is job ``A_i``)."""
    return sorted({str(job.job_id).split("_")[0] for job in jobs})


def _cancel(cluster: str, jobs: list) -> None:
    """Cancel an interrupted sweep's ``jobs``. On SLURM one ``scancel`` of their arrays, at once: submitit's
    ``Job.cancel`` runs one ``scancel`` per job, a minute or more of calls to SLURM's controller for a large
    array, which a second signal may cut short. The local executor's jobs are stopped one by one (SIGINT)."""
    if cluster != "slurm":
        for job in jobs:
            job.cancel(check=False)
    elif jobs:
        subprocess.call(["scancel", *_arrays(jobs)])


def _process_gone(pid: int) -> bool:
    """In a job of submitit's local executor: whether the sweep that submitted it (process ``pid``) is gone,
    killed outright before it could cancel its jobs."""
    return not pid_alive(pid)


def _dask(client, cases, run_dir, task, *, jobs, threads, timeout_s, done, running, record_failure) -> None:
    task = functools.partial(task, stopped=_dask_task_cancelled)
    futures = {client.submit(task, c.to_dict(), pure=False): c for c in cases}
    pending, ended = dict(futures), queue.SimpleQueue()
    for future in futures:  # called however a task ends: done, failed or cancelled
        future.add_done_callback(ended.put)
    try:
        while pending:
            try:
                future = ended.get(timeout=POLL_S)
            except queue.Empty:  # none ended: the running cases' progress
                running(list(pending.values()))
                continue
            del pending[future]
            outcome = None
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - a lost task is a recorded failure, the sweep goes on
                record_failure(futures[future], run_dir, "error", f"dask task: {one_line(err)}")
            done(futures[future], outcome)
    except BaseException:  # interrupted: the running tasks see it and kill their workers
        client.cancel(list(futures))
        raise


def _dask_task_cancelled() -> bool:
    """In a dask task: whether it was cancelled, by its sweep or by the scheduler when the sweep's client went
    away (a sweep killed outright). The scheduler then tells the worker to release the task, and the worker's
    state machine puts the still-executing task in state ``cancelled``; reading that state is free, where asking
    the scheduler (``Client.processing``) cost it a request per running task every half second. Cancelling a
    future does not stop a running task; this lets it stop."""
    from distributed import get_worker

    worker = get_worker()
    state = worker.state.tasks.get(worker.get_current_task())
    return state is None or state.state == "cancelled"
