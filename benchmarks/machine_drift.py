"""How much one training step's speed drifts on this machine: within one process, window by window.

The A/B gate (``nodebench bench --baseline``) pairs a baseline process with a current process that run
seconds apart; its power depends on how much the machine's speed moves over seconds. This script trains
the same problem in ``--processes`` fresh processes, one after another, and prints, for each, the median
CPU time of a step in consecutive windows of ``--window`` seconds. Spread across the windows of one
process is drift of the machine over time (other tenants of the host, a busy sibling hyper-thread);
spread between processes that is absent within them would be a per-process effect (memory layout)::

    python benchmarks/machine_drift.py                      # 4 processes × 8 windows of 1.5 s, Euler steps
    python benchmarks/machine_drift.py --method rk4 --window 3
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from script_checks import check_stepped_method

from nodebench.argtypes import ScriptParser, positive_float, positive_int


def windows(task_name: str, method_name: str, count: int, seconds: float) -> list[float]:
    """Median step CPU time (ms) in each of ``count`` consecutive windows of ``seconds``, each holding at least
    one step (a window shorter than a step had no median: NaN)."""
    from nodebench.api import get_method, get_task

    torch.set_num_threads(1)
    problem = get_task(task_name).build(seed=0, device=torch.device("cpu"), hparams={})
    params = [p for p in problem.model.parameters() if p.requires_grad]
    solve = get_method(method_name).make_solve(params)
    optimizer = torch.optim.Adam(params, lr=problem.lr, weight_decay=problem.weight_decay)
    medians = []
    for _ in range(count):
        steps, end = [], time.perf_counter() + seconds
        while not steps or time.perf_counter() < end:
            start = time.process_time()
            loss = problem.loss(solve)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            del loss
            steps.append(time.process_time() - start)
        medians.append(float(np.median(steps)) * 1e3)
    return medians


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cubic_spiral")
    parser.add_argument("--method", default="euler")
    parser.add_argument("--processes", type=positive_int, default=4, help="at least 2 for the spread between them")
    parser.add_argument("--windows", type=positive_int, default=8, help="at least 2 for the spread within one")
    parser.add_argument("--window", type=positive_float, default=1.5, help="seconds per window (default 1.5)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(" ".join(f"{m:.3f}" for m in windows(args.task, args.method, args.windows, args.window)))
        return
    if args.processes < 2 or args.windows < 2:
        parser.error("--processes and --windows must be at least 2: the script measures the spread between them")
    parser.check_case(args.task, args.method)
    check_stepped_method(parser, args.method)
    rows = []
    for _ in range(args.processes):
        out = parser.run_worker([sys.executable, __file__, "--worker", "--task", args.task, "--method", args.method,
                                 "--windows", str(args.windows), "--window", str(args.window)])
        rows.append([float(x) for x in out.split()])
    print(f"median step CPU time (ms) of {args.task}/{args.method} per {args.window:g}-s window, 1 thread:")
    for k, row in enumerate(rows):
        print(f"process {k + 1}: " + " ".join(f"{m:6.2f}" for m in row)
              + f"   (max/min {max(row) / min(row):.2f})")
    within = np.median([np.std(np.log(row), ddof=1) for row in rows])
    between = np.std(np.log([np.median(row) for row in rows]), ddof=1)
    print(f"σ of log step time: between windows of one process {within:.3f} (median over processes), "
          f"between process medians {between:.3f}")


if __name__ == "__main__":
    main()
