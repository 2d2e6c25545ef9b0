"""Harness overhead against a bare training loop, measured side by side in one process, with an interval.

The same problem and method are trained in short blocks of ``--iters`` iterations, alternately by a bare
loop (loss, backward, Adam step; one clock around the block) and by ``nodebench.training.train``
(per-step synchronised clock and CPU clock, per-phase memory reset and reads, NFE and step counting,
curves), ``--rounds`` times each, alternating which side goes first. Both clocks are read around every
block: wall (``perf_counter``) and the process's CPU time (``process_time``), which does not count the
time spent waiting for a core, so it is the quieter figure on a shared machine. Evaluation is excluded
from both sides. Reported, for each clock:

- the **paired estimate**: the median over rounds of the per-round ratio harness ÷ bare, with a 95 %
  percentile-bootstrap interval over rounds (rounds are independent, the two blocks of a round share
  the machine's state);
- the **fastest-block** ratio (timeit's estimator: the fastest block of each side, robust to bursts of load).

Target: below 2 % for steps of 4 ms and more::

    python benchmarks/harness_overhead.py --method euler        # 4 ms steps on the 2-core Xeon
    python benchmarks/harness_overhead.py --method rk4          # 15 ms steps
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from nodebench.methods import get_method
from nodebench.tasks import get_task
from nodebench.training import train


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def elapsed(start: tuple[float, float]) -> np.ndarray:
    wall, cpu = clocks()
    return np.array([wall - start[0], cpu - start[1]])


def bare_loop(problem, method, iters: int) -> np.ndarray:
    """``iters`` plain training steps; ``[wall, cpu]`` seconds."""
    params = [p for p in problem.model.parameters() if p.requires_grad]
    solve = method.make_solve(params)
    optimizer = torch.optim.Adam(params, lr=problem.lr, weight_decay=problem.weight_decay)
    start = clocks()
    for _ in range(iters):
        loss = problem.loss(solve)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        float(loss.detach())
    return elapsed(start)


def harness_loop(problem, method, iters: int) -> np.ndarray:
    """``iters`` measured training steps through the harness; ``[wall, cpu]`` seconds."""
    problem.evaluate = lambda solve: {}
    start = clocks()
    train(problem, method, device=torch.device("cpu"), iters=iters, warmup=0)
    return elapsed(start)


def paired(ratios: np.ndarray, resamples: int = 10_000) -> tuple[float, float, float]:
    """Median of the per-round ratios and its 95 % percentile-bootstrap interval over rounds."""
    rng = np.random.default_rng(0)
    boot = np.median(ratios[rng.integers(0, len(ratios), (resamples, len(ratios)))], axis=1)
    low, high = np.quantile(boot, [0.025, 0.975])
    return float(np.median(ratios)), float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cubic_spiral")
    parser.add_argument("--method", default="rk4")
    parser.add_argument("--iters", type=int, default=25, help="iterations per block (default 25)")
    parser.add_argument("--rounds", type=int, default=60, help="rounds of one block per side (default 60)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task, method = get_task(args.task), get_method(args.method)
    build = lambda: task.build(seed=0, device=torch.device("cpu"), hparams={})  # noqa: E731
    bare_problem, harness_problem = build(), build()
    bare_loop(bare_problem, method, 5)
    harness_loop(harness_problem, method, 5)
    bare, harnessed = [], []
    for round_ in range(args.rounds):  # alternate which side goes first, against order effects
        if round_ % 2:
            harnessed.append(harness_loop(harness_problem, method, args.iters))
            bare.append(bare_loop(bare_problem, method, args.iters))
        else:
            bare.append(bare_loop(bare_problem, method, args.iters))
            harnessed.append(harness_loop(harness_problem, method, args.iters))
    bare, harnessed = np.array(bare), np.array(harnessed)
    print(f"task {args.task}, method {args.method}, {args.rounds} rounds of one block of {args.iters} iterations "
          f"per side, alternating; {args.threads} thread(s); bare step {bare[:, 0].min() / args.iters * 1e3:.3f} ms "
          f"wall, {bare[:, 1].min() / args.iters * 1e3:.3f} ms CPU (fastest block)")
    for column, clock in enumerate(("CPU time", "wall time")):
        column = 1 - column
        estimate, low, high = paired(harnessed[:, column] / bare[:, column])
        fastest = harnessed[:, column].min() / bare[:, column].min()
        print(f"{clock}: overhead {estimate - 1:+.2%} (95 % CI {low - 1:+.2%} to {high - 1:+.2%}; median of "
              f"{args.rounds} paired rounds), fastest block {fastest - 1:+.2%}")


if __name__ == "__main__":
    main()
