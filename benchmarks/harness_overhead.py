"""Harness overhead against a bare training loop, measured side by side in one process.

The same problem and method are trained for ``--iters`` iterations twice per round: once by a bare loop
(loss, backward, Adam step; one ``perf_counter`` around the loop) and once by ``nodebench.training.train``
(per-step synchronised clock, per-phase memory reset and reads, NFE counting wrapper, curves). Rounds
interleave the two; the overhead is the median over rounds of harness/bare − 1. Evaluation is excluded
from both. Target: below 2 %.

    python benchmarks/harness_overhead.py --iters 200 --rounds 7
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
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task, method = get_task(args.task), get_method(args.method)
    build = lambda: task.build(seed=0, device=torch.device("cpu"), hparams={})  # noqa: E731
    bare_loop(build(), method, 5)
    harness_loop(build(), method, 5)
    ratios, bare_times, harness_times = [], [], []
    for _ in range(args.rounds):
        bare = bare_loop(build(), method, args.iters)
        harnessed = harness_loop(build(), method, args.iters)
        bare_times.append(bare)
        harness_times.append(harnessed)
        ratios.append(harnessed / bare)
    per_iter = statistics.median(bare_times) / args.iters
    print(f"task {args.task}, method {args.method}, {args.iters} iters x {args.rounds} rounds, "
          f"{args.threads} thread(s); bare step {per_iter * 1e3:.3f} ms")
    print(f"bare    median {statistics.median(bare_times):.4f} s")
    print(f"harness median {statistics.median(harness_times):.4f} s")
    print(f"overhead median {statistics.median(ratios) - 1:+.2%} (rounds: "
          + ", ".join(f"{r - 1:+.1%}" for r in ratios) + ")")


if __name__ == "__main__":
    main()
