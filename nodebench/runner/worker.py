"""Runs one case in its own process: ``python -m nodebench.runner.worker CASE.json OUT_DIR``.

Writes ``OUT_DIR/<case_id>.json`` (the record row) and ``OUT_DIR/<case_id>.curves.parquet`` atomically
when the case ends, whatever its status: ``ok``, ``diverged`` (non-finite loss or metric), ``oom`` or
``error`` (with a one-line reason). While training it rewrites ``<case_id>.progress`` about once a
second with the iteration and loss, which the sweep shows in its progress bar (and removes at the end).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import torch

from nodebench.harness import environment
from nodebench.methods import get_method
from nodebench.records import provenance_columns, write_case
from nodebench.runner.case import Case
from nodebench.runner.settings import case_settings
from nodebench.tasks import get_task
from nodebench.training import Diverged, TrainResult, train


def run_case(case: Case, out_dir: Path) -> dict:
    """Run ``case`` in this process and write its row and curves into ``out_dir``; return the row."""
    device = torch.device(case.device)
    row = case.identity() | environment(device) | provenance_columns()
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
    try:
        torch.manual_seed(case.seed)
        task = get_task(case.task)
        method = get_method(case.method)
        method.check_task(task)
        settings = case_settings(case.hparams, method, case.seed)
        problem = task.build(seed=case.seed, device=device, hparams=settings.task_hparams)
        row |= provenance_columns(problem.provenance)
        result = train(problem, method, device=device, iters=case.iters, budget_s=case.budget_s,
                       warmup=case.warmup, solver_options=settings.solver_options, on_iteration=report,
                       regularizer=settings.regularizer, spectral=settings.spectral,
                       monitor_every=settings.monitor_every)
    except Diverged as err:
        status, reason, result = "diverged", str(err), err.result
    except (torch.cuda.OutOfMemoryError, MemoryError) as err:
        status, reason = "oom", _one_line(err)
    except Exception as err:  # noqa: BLE001 - a failed case is a recorded row, and the sweep goes on
        status, reason = "error", _one_line(err)
        traceback.print_exc()
    row |= {"status": status, "reason": reason} | result.summary() | result.metrics
    curves = dict(result.curves)
    write_case(out_dir, case.case_id, row, curves, result.tables)
    return row


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:300]


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the sweep that started it dies (``PR_SET_PDEATHSIG``)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: an interrupted sweep still kills its workers itself
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    _die_with_parent()
    case = Case.from_dict(json.loads(Path(argv[0]).read_text()))
    threads = int(argv[2]) if len(argv) > 2 else 1
    torch.set_num_threads(threads)
    run_case(case, Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
