"""Runs one case in its own process: ``python -m nodebench.runner.worker CASE.json OUT_DIR``.

Writes ``OUT_DIR/<case_id>.json`` (the record row) and ``OUT_DIR/<case_id>.curves.parquet`` atomically
when the case ends, whatever its status: ``ok``, ``diverged`` (non-finite loss or metric), ``oom`` (the
CPU or CUDA allocator could not allocate) or ``error`` (with a one-line reason). While training it
rewrites ``<case_id>.progress`` about once a second with the iteration and loss, which the sweep shows in
its progress bar (and removes at the end).

The parent-death signal is armed first, before the imports that take seconds (torch), and checked against
the sweep's PID (``NODEBENCH_PARENT_PID``): a worker whose sweep died while it started exits at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from nodebench.runner.guard import PARENT_PID  # standard library only: milliseconds


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the sweep that started it dies (``PR_SET_PDEATHSIG``), then exit
    if that sweep is already gone (this process was re-parented before the request took effect)."""
    expected = os.environ.get(PARENT_PID)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: an interrupted sweep still kills its workers itself
    if expected is not None and os.getppid() != int(expected):
        os._exit(1)


if __name__ == "__main__":
    _die_with_parent()

import json  # noqa: E402 - after the parent-death signal
import platform  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from nodebench.devices import unavailable  # noqa: E402
from nodebench.errors import UserError, one_line  # noqa: E402
from nodebench.harness import environment  # noqa: E402
from nodebench.methods import get_method  # noqa: E402
from nodebench.papers import load_papers  # noqa: E402
from nodebench.records import provenance_columns, write_case  # noqa: E402
from nodebench.runner.case import Case  # noqa: E402
from nodebench.runner.lockstep import Lockstep  # noqa: E402
from nodebench.runner.settings import case_settings  # noqa: E402
from nodebench.tasks import get_task  # noqa: E402
from nodebench.training import Diverged, TrainResult, train  # noqa: E402

#: what torch's allocators say when memory runs out (as RuntimeError on the CPU).
OUT_OF_MEMORY = ("DefaultCPUAllocator: can't allocate memory", "CUDA out of memory",
                 "Storage size calculation overflowed")  # a tensor past 2**63 bytes (hidden=2**62): none could hold it


def run_case(case: Case, out_dir: Path) -> dict:
    """Run ``case`` in this process and write its row and curves into ``out_dir``; return the row."""
    device = torch.device(case.device)
    missing = unavailable(device)  # a SLURM node or dask worker without the device: a failed case that says so
    row = case.identity() | environment(torch.device("cpu") if missing else device) | provenance_columns()
    progress = out_dir / f"{case.case_id}.progress"
    last = [0.0]

    def report(iteration: int, loss: float) -> None:
        now = time.monotonic()
        if now - last[0] > 1.0:
            last[0] = now
            tmp = progress.with_suffix(".progress-tmp")
            tmp.write_text(f"iter {iteration} loss {loss:.4g}")
            tmp.replace(progress)

    result = TrainResult()
    status, reason = "ok", ""
    lockstep = Lockstep.from_env()
    try:
        if missing:
            raise UserError(f"{missing} ({platform.node()})")
        torch.manual_seed(case.seed)
        load_papers()
        task = get_task(case.task)
        row["headline_metric"] = task.metrics[0] if task.metrics else None
        method = get_method(case.method)
        method.check_task(task)
        settings = case_settings(case.hparams, method, case.seed)
        problem = task.build(seed=case.seed, device=device, hparams=settings.task_hparams)
        row |= provenance_columns(problem.provenance)
        result = train(problem, method, device=device, iters=case.iters, budget_s=case.budget_s,
                       warmup=case.warmup, solver_options=settings.solver_options, on_iteration=report,
                       regularizer=settings.regularizer, spectral=settings.spectral,
                       monitor_every=settings.monitor_every,
                       before_step=lockstep.wait if lockstep is not None else None)
    except Diverged as err:
        status, reason, result = "diverged", str(err), err.result
    except Exception as err:  # noqa: BLE001 - a failed case is a recorded row, and the sweep goes on
        typed_oom = isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError))
        oom = typed_oom or any(text in str(err) for text in OUT_OF_MEMORY)
        status, reason = ("oom" if oom else "error"), one_line(err)
        if isinstance(getattr(err, "result", None), TrainResult):  # the training done before it failed
            result = err.result
        if not typed_oom:
            traceback.print_exc()
    finally:
        if lockstep is not None:  # the partner's remaining barriers go on alone
            lockstep.close()
            print(f"lockstep: {lockstep.barriers} barrier(s) passed with the partner")
    row |= {"status": status, "reason": reason} | result.summary() | result.metrics
    curves = dict(result.curves)
    write_case(out_dir, case.case_id, row, curves, result.tables)
    return row


def main(argv: list[str]) -> int:
    case = Case.from_dict(json.loads(Path(argv[0]).read_text()))
    threads = int(argv[2]) if len(argv) > 2 else 1
    torch.set_num_threads(threads)
    run_case(case, Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
