"""Harness overhead against a bare training loop: step-interleaved pairs in one process, over several processes.

Each worker process builds one problem and trains it through the harness (``nodebench.training.train``:
per-step clocks, per-phase memory reset and readings, NFE and step counting, curves, the progress
callback). From inside the progress callback it runs one **bare** training step (``bare_step.py``: the
same problem, model, data and parameters; loss through the raw field, backward, its own Adam step; the
previous step's graph freed when the new loss is bound, as in a bare loop and in the harness).
The harness step is the time from the end of one callback to the start of the next, so it holds everything
the harness does per iteration. Steps therefore alternate harness, bare, harness, bare..., and each pair
shares the machine's state of that moment: drift and bursts of load hit both sides alike, and the two
sides share one memory layout. Evaluation is excluded.

Both clocks are read: wall (``perf_counter``) and the process's CPU time (``process_time``). Reported for
each: the overhead, i.e. the median over all pairs of log(harness ÷ bare), back-transformed, with a 95 %
two-stage bootstrap interval (processes with replacement, then pairs within each process: a process's
pairs share its conditions, so the processes are the unit of independent evidence), and each process's
own estimate. Target: below 2 % for steps of 4 ms and more::

    python benchmarks/harness_overhead.py --method euler        # 4–8 ms steps on the 2-core CPU
    python benchmarks/harness_overhead.py --method rk4          # 4 evaluations a step
    python benchmarks/harness_overhead.py --null-meter          # the same without the step meter's readings

``--method`` is a method with a solver step (not ``snode``, which trains by coordinate descent: a bare solver
step is no baseline for it); ``--threads`` is at most 1,024, as on the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from bare_step import BareStep
from script_checks import check_stepped_method

from nodebench.argtypes import ScriptParser, positive_int, positive_int_up_to
from nodebench.api_checks import MAX_THREADS


class NullMeter:
    """A step meter that reads nothing (``--null-meter``: the harness's overhead without its meter)."""

    source = "none"

    def __init__(self, device):
        from nodebench.harness import StepReading
        self._reading = StepReading(0.0, None, 0.0, 0, None)

    def start(self) -> None:
        pass

    def lap(self) -> tuple[float, int]:
        return 0.0, 0

    def stop(self):
        return self._reading


def worker(task_name: str, method_name: str, steps: int, threads: int, null_meter: bool) -> dict[str, list[float]]:
    """One process's pairs: harness and bare step times, wall and CPU, in seconds."""
    from nodebench import training
    from nodebench.api import get_method, get_task
    from nodebench.training import train

    if null_meter:
        training.StepMeter = NullMeter

    torch.set_num_threads(threads)
    task, method = get_task(task_name), get_method(method_name)
    problem = task.build(seed=0, device=torch.device("cpu"), hparams={})
    problem.evaluate = lambda solve: {}
    params = [p for p in problem.model.parameters() if p.requires_grad]
    solve = method.make_solve(params)
    bare = BareStep(problem, solve, params, problem.field)
    pairs = {"harness_wall": [], "harness_cpu": [], "bare_wall": [], "bare_cpu": []}
    last = {}

    def between_steps(iteration: int, loss: float) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        if last:
            pairs["harness_wall"].append(wall - last["wall"])
            pairs["harness_cpu"].append(cpu - last["cpu"])
            bare_wall, bare_cpu = bare.step()
            pairs["bare_wall"].append(bare_wall)
            pairs["bare_cpu"].append(bare_cpu)
        last["wall"], last["cpu"] = time.perf_counter(), time.process_time()

    train(problem, method, device=torch.device("cpu"), iters=steps + 1, warmup=2, on_iteration=between_steps)
    return pairs


def estimate(logs: list[np.ndarray], resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Median log ratio over all pairs and its two-stage bootstrap 95 % interval, back-transformed."""
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    for b in range(resamples):
        chosen = rng.integers(0, len(logs), len(logs))
        boot[b] = np.median(np.concatenate([logs[i][rng.integers(0, len(logs[i]), len(logs[i]))] for i in chosen]))
    low, high = np.quantile(boot, [0.025, 0.975])
    return tuple(float(np.exp(x) - 1) for x in (np.median(np.concatenate(logs)), low, high))


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cubic_spiral")
    parser.add_argument("--method", default="euler")
    parser.add_argument("--steps", type=positive_int, default=1000, help="pairs per process (default 1000)")
    parser.add_argument("--processes", type=positive_int, default=4,
                        help="worker processes, one after another (default 4)")
    parser.add_argument("--threads", type=positive_int_up_to(MAX_THREADS), default=1)
    parser.add_argument("--null-meter", action="store_true",
                        help="replace the harness's step meter by one that reads nothing (what the meter costs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.task, args.method, args.steps, args.threads, args.null_meter)))
        return
    parser.check_case(args.task, args.method)
    check_stepped_method(parser, args.method)
    runs = []
    for k in range(args.processes):
        out = parser.run_worker([sys.executable, __file__, "--worker", "--task", args.task, "--method", args.method,
                                 "--steps", str(args.steps), "--threads", str(args.threads),
                                 *(["--null-meter"] if args.null_meter else [])])
        runs.append({key: np.array(v) for key, v in json.loads(out.splitlines()[-1]).items()})
        print(f"process {k + 1}/{args.processes}: bare step {np.median(runs[-1]['bare_cpu']) * 1e3:.3f} ms CPU",
              file=sys.stderr, flush=True)
    bare_ms = np.median(np.concatenate([r["bare_cpu"] for r in runs])) * 1e3
    label = f"{args.task}, method {args.method}{' (null meter)' if args.null_meter else ''}"
    print(f"task {label}: {args.processes} processes × {args.steps} step-interleaved pairs "
          f"(harness, bare, harness...), {args.threads} thread(s); bare step {bare_ms:.3f} ms CPU (median)")
    for clock in ("cpu", "wall"):
        logs = [np.log(r[f"harness_{clock}"] / r[f"bare_{clock}"]) for r in runs]
        overhead, low, high = estimate(logs)
        each = ", ".join(f"{np.exp(np.median(x)) - 1:+.2%}" for x in logs)
        print(f"{'CPU time' if clock == 'cpu' else 'wall time'}: overhead {overhead:+.2%} (95 % CI {low:+.2%} to "
              f"{high:+.2%}; width {high - low:.2%}); per process {each}")


if __name__ == "__main__":
    main()
