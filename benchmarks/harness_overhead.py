"""Harness overhead against a bare training loop, measured side by side in one process.

The same problem and method are trained in short blocks of ``--iters`` iterations, alternately by a bare
loop (loss, backward, Adam step; one ``perf_counter`` around the block) and by
``nodebench.training.train`` (per-step synchronised clock, per-phase memory reset and reads, NFE
counting wrapper, curves), ``--rounds`` times each. Alternating short blocks keeps both sides exposed
to the same machine noise. Reported: the ratio of the fastest blocks (timeit's estimator, robust to
bursts of load from other processes) and the median of the per-round ratios. Evaluation is excluded
from both. Target: below 2 %.

    python benchmarks/harness_overhead.py --iters 20 --rounds 40
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nodebench.methods import get_method
from nodebench.tasks import get_task
from nodebench.training import train


def bare_loop(problem, method, iters: int) -> float:
    params = [p for p in problem.model.parameters() if p.requires_grad]
    solve = method.make_solve(params)
    optimizer = torch.optim.Adam(params, lr=problem.lr)
    start = time.perf_counter()
    for _ in range(iters):
        loss = problem.loss(solve)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        float(loss.detach())
    return time.perf_counter() - start


def harness_loop(problem, method, iters: int) -> float:
    problem.evaluate = lambda solve: {}
    start = time.perf_counter()
    train(problem, method, device=torch.device("cpu"), iters=iters, warmup=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cubic_spiral")
    parser.add_argument("--method", default="rk4")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task, method = get_task(args.task), get_method(args.method)
    build = lambda: task.build(seed=0, device=torch.device("cpu"), hparams={})  # noqa: E731
    bare_problem, harness_problem = build(), build()
    bare_loop(bare_problem, method, 5)
    harness_loop(harness_problem, method, 5)
    ratios, bare_times, harness_times = [], [], []
    for round_ in range(args.rounds):  # alternate which side goes first, against order effects
        if round_ % 2:
            harnessed = harness_loop(harness_problem, method, args.iters)
            bare = bare_loop(bare_problem, method, args.iters)
        else:
            bare = bare_loop(bare_problem, method, args.iters)
            harnessed = harness_loop(harness_problem, method, args.iters)
        bare_times.append(bare)
        harness_times.append(harnessed)
        ratios.append(harnessed / bare)
    print(f"task {args.task}, method {args.method}, {args.rounds} alternating blocks of {args.iters} iterations, "
          f"{args.threads} thread(s); bare step {min(bare_times) / args.iters * 1e3:.3f} ms (fastest block)")
    print(f"fastest block: bare {min(bare_times):.4f} s, harness {min(harness_times):.4f} s, "
          f"overhead {min(harness_times) / min(bare_times) - 1:+.2%}")
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"per-round ratio: median overhead {statistics.median(ratios) - 1:+.2%} "
          f"(IQR {quartiles[0] - 1:+.2%} to {quartiles[2] - 1:+.2%})")


if __name__ == "__main__":
    main()
