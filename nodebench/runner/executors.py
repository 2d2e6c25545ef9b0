"""Cluster engines for a sweep: SLURM job arrays through submitit, and dask.distributed.

Every case is one remote task running :func:`nodebench.runner.sweep.run_case_process`: a pure function of
the case's config that starts the usual fresh worker process and writes the case's files into the shared
run directory. The sweep then merges those files, exactly as after a local run, so a run can be resumed
with any engine. A task the engine loses (a job killed by SLURM, a dask worker that died) is recorded as
an ``error`` row with the engine's message.

- ``submitit``: ``submitit.AutoExecutor`` submits one job array per sweep to SLURM (``jobs`` is the array's
  ``slurm_array_parallelism``; the time limit is 1.5 × the case time limit, as benchopt does) and, where
  there is no SLURM, runs the same tasks with submitit's local executor, ``jobs`` at a time. Its pickles
  and logs go to ``RUN_DIR/submitit/``. An interrupted sweep cancels its jobs (``scancel``; the local
  executor's jobs are stopped with SIGINT, which kills their workers).
- ``dask``: the tasks are submitted to the dask.distributed scheduler at ``scheduler`` (``tcp://host:8786``;
  start workers with ``--nthreads 1`` for clean timings); ``dask_jobqueue`` can provide one on a cluster.
  A task whose future is cancelled (an interrupted sweep cancels them; the scheduler does when a sweep's
  client vanishes) kills its worker at once: it looks ten times a second.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from nodebench.errors import UserError, one_line
from nodebench.runner.case import Case

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
        from distributed.comm import get_address_host_port

        try:  # a network address, checked before anything is written
            get_address_host_port(scheduler)
        except ValueError as err:
            raise UserError(f"--scheduler {scheduler!r} is not a dask scheduler address ({err}); give "
                            "PROTOCOL://HOST:PORT, e.g. tcp://10.0.0.1:8786") from None


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
    batch = len(cases) if pool.cluster == "slurm" else jobs  # the local executor has no concurrency cap
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        submitted = pool.map_array(task, [c.to_dict() for c in chunk])
        try:
            for case, job in zip(chunk, submitted):
                try:
                    job.result()
                except Exception as err:  # noqa: BLE001 - a lost job is a recorded failure, the sweep goes on
                    record_failure(case, run_dir, "error", f"submitit job {job.job_id}: {one_line(err)}")
                done()
        except BaseException:  # interrupted: no job keeps computing and writing after the sweep
            for job in submitted:
                job.cancel(check=False)
            raise


def _dask(cases, run_dir, task, *, jobs, threads, timeout_s, scheduler, done, record_failure) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout=30)
    except (OSError, TimeoutError) as err:
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
    away (a sweep killed outright). Cancelling a future does not stop a running task; this lets it stop."""
    from distributed import get_worker

    worker = get_worker()
    state = worker.state.tasks.get(worker.get_current_task())
    return state is None or state.state == "cancelled"
