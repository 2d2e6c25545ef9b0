"""Cluster engines for a sweep: SLURM job arrays through submitit, and dask.distributed.

Every case is one remote task running :func:`nodebench.runner.sweep.run_case_process`: a pure function of
the case's config that starts the usual fresh worker process and writes the case's files into the shared
run directory. The sweep then merges those files, exactly as after a local run, so a run can be resumed
with any engine. A task the engine loses (a job killed by SLURM, a dask worker that died) is recorded as
an ``error`` row with the engine's message.

- ``submitit``: ``submitit.AutoExecutor`` submits one job array per sweep to SLURM (``jobs`` is the array's
  ``slurm_array_parallelism``; the time limit is 1.5 × the case time limit, as benchopt does) and, where
  there is no SLURM, runs the same tasks with submitit's local executor, ``jobs`` at a time (a new job starts
  as soon as one ends). Its pickles and logs go to ``RUN_DIR/submitit/``. An interrupted sweep cancels its
  jobs (``scancel``; the local executor's jobs are stopped with SIGINT, which kills their workers); a local
  job whose sweep was killed outright kills its worker (it looks twice a second). A job array that SLURM
  refuses (an invalid partition or time limit) stops the sweep with sbatch's message.
- ``dask``: the tasks are submitted to the dask.distributed scheduler at ``scheduler`` (``tcp://host:8786``;
  start workers with ``--nthreads 1`` for clean timings); ``dask_jobqueue`` can provide one on a cluster.
  A task whose future is cancelled (an interrupted sweep cancels them; the scheduler does when a sweep's
  client vanishes) kills its worker: twice a second it asks the scheduler, through the public
  ``Client.processing``, whether its worker is still processing it (dask has no public flag for a running
  task's cancellation, and cancelling a future does not stop a running task).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from nodebench.errors import UserError, one_line
from nodebench.runner.case import Case
from nodebench.runner.guard import pid_alive

EXECUTORS = ("local", "submitit", "dask")
EXTRAS = {"submitit": "slurm", "dask": "dask"}


def check_executor(executor: str, scheduler: str | None) -> None:
    """Refuse an unknown engine, a dask run without a scheduler and an engine that is not installed."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if executor == "dask" and not scheduler:
        raise UserError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.1:8786)")
    if executor != "dask" and scheduler:
        raise UserError(f"--scheduler applies to --executor dask only, not {executor!r}")
    module = {"submitit": "submitit", "dask": "distributed"}.get(executor)
    if module:
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"--executor {executor} needs {module}: pip install 'nodebench[{EXTRAS[executor]}]'"
                            ) from None
    if executor == "dask":
        _check_scheduler_address(scheduler)


def _check_scheduler_address(scheduler: str) -> None:
    """A dask scheduler address whose port is a port and whose host this machine can resolve (connecting is
    left to the sweep: a scheduler may still be starting)."""
    from distributed.comm import get_address_host_port

    try:  # a network address, checked before anything is written
        host, port = get_address_host_port(scheduler)
    except ValueError as err:
        raise UserError(f"--scheduler {scheduler!r} is not a dask scheduler address ({err}); give "
                        "PROTOCOL://HOST:PORT, e.g. tcp://10.0.0.1:8786") from None
    if not 0 < port < 65536:
        raise UserError(f"--scheduler {scheduler!r}: port {port} is not a TCP port (1 to 65535)")
    try:
        socket.getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError) as err:
        raise UserError(f"--scheduler {scheduler!r}: host {host!r} is not known here ({err}); give a host "
                        "name or IP address of the scheduler's machine") from None


def run_remote(cases: list[Case], run_dir: Path, *, run_case: Callable[..., str],
               record_failure: Callable[..., None], executor: str, scheduler: str | None, jobs: int, threads: int,
               timeout_s: float, progress: bool) -> None:
    """Run ``cases`` on ``executor``, each case's files landing in ``run_dir``; returns when all have ended.

    ``run_case(case_dict, run_dir=..., threads=..., timeout_s=...)`` runs one case remotely (the sweep's
    :func:`~nodebench.runner.sweep.run_case_process`); ``record_failure(case, run_dir, status, reason)``
    records a lost job. The sweep passes both, so this module does not import it back."""
    check_executor(executor, scheduler)
    task = functools.partial(run_case, run_dir=str(Path(run_dir).resolve()), threads=threads, timeout_s=timeout_s)
    bar = tqdm(total=len(cases), desc=f"cases ({executor})", unit="case", disable=not progress or not cases,
               file=sys.stderr)
    try:
        engine = _submitit if executor == "submitit" else _dask
        engine(cases, run_dir, task, jobs=jobs, threads=threads, timeout_s=timeout_s, scheduler=scheduler,
               done=lambda: bar.update(1), record_failure=record_failure)
    finally:
        bar.close()


def _submitit(cases, run_dir, task, *, jobs, threads, timeout_s, scheduler, done, record_failure) -> None:
    import submitit

    pool = submitit.AutoExecutor(folder=Path(run_dir) / "submitit")
    pool.update_parameters(timeout_min=math.ceil(1.5 * timeout_s / 60), cpus_per_task=threads,
                           slurm_array_parallelism=jobs, name="nodebench")
    if pool.cluster == "local":  # its jobs are this machine's processes: they can see the sweep die
        task = functools.partial(task, stopped=functools.partial(_process_gone, os.getpid()))
    window = len(cases) if pool.cluster == "slurm" else jobs  # the local executor has no concurrency cap
    waiting, running = list(cases), {}
    try:
        while waiting or running:
            if waiting and (free := window - len(running)):
                chunk, waiting = waiting[:free], waiting[free:]
                running |= _submit_array(pool, task, chunk)
            for job in [job for job in running if job.done()]:
                case = running.pop(job)
                try:
                    job.result()
                except Exception as err:  # noqa: BLE001 - a lost job is a recorded failure, the sweep goes on
                    record_failure(case, run_dir, "error", f"submitit job {job.job_id}: {one_line(err)}")
                done()
            time.sleep(1 if running else 0)  # as submitit's own Job.wait: a done() may stat shared files
    except BaseException:  # interrupted: no job keeps computing and writing after the sweep
        for job in running:
            job.cancel(check=False)
        raise


def _submit_array(pool, task, cases: list[Case]) -> dict:
    """``{job: case}`` for ``cases`` submitted as one job array. sbatch's refusal (an invalid partition or time
    limit), which submitit prints as well, is a one-line :class:`UserError`."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return dict(zip(pool.map_array(task, [case.to_dict() for case in cases]), cases))
    except (FailedJobError, FailedSubmissionError) as err:
        raise UserError(f"SLURM refused the sweep's job array: {one_line(err)}") from None


def _process_gone(pid: int) -> bool:
    """In a job of submitit's local executor: whether the sweep that submitted it (process ``pid``) is gone,
    killed outright before it could cancel its jobs."""
    return not pid_alive(pid)


def _dask(cases, run_dir, task, *, jobs, threads, timeout_s, scheduler, done, record_failure) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout=30)
    except (OSError, TimeoutError, TypeError, ValueError) as err:  # TypeError: tls:// without dask's TLS config
        raise UserError(f"cannot reach the dask scheduler at {scheduler!r}: {one_line(err)}") from None
    with client:
        task = functools.partial(task, stopped=_dask_task_cancelled)
        futures = {client.submit(task, c.to_dict(), pure=False): c for c in cases}
        try:
            for future in as_completed(futures):
                try:
                    future.result()
                except Exception as err:  # noqa: BLE001 - a lost task is a recorded failure, the sweep goes on
                    record_failure(futures[future], run_dir, "error", f"dask task: {one_line(err)}")
                done()
        except BaseException:  # interrupted: the running tasks see it and kill their workers
            client.cancel(list(futures))
            raise


def _dask_task_cancelled() -> bool:
    """In a dask task: whether it was cancelled, by its sweep or by the scheduler when the sweep's client went
    away (a sweep killed outright), i.e. whether the scheduler no longer has this worker processing it.
    Cancelling a future does not stop a running task; this lets it stop."""
    from distributed import get_client, get_worker

    worker = get_worker()
    processing = get_client().processing([worker.address]).get(worker.address, ())
    return worker.get_current_task() not in processing
