"""Where the harness's per-step cost goes: the time of each part of a training iteration, in one process.

``benchmarks/harness_overhead.py`` says how much the harness adds to a step; this script says where. It
trains one problem through ``nodebench.training.train`` with the step meter wrapped in a probe that
reads ``perf_counter`` around its calls, and from the progress callback runs one bare step on the same
problem (``bare_step.py``, as ``harness_overhead.py`` does). Per iteration it reports the median wall time of:

- ``before``: from the end of the callback to the meter's start (loop test, NFE counter reset, phase);
- ``start`` and ``stop``: the step meter's two boundary calls;
- ``step``: from the meter's start to its stop (forward, the lap, backward, the optimiser step);
- ``after``: from the meter's stop to the callback (loss read-out, curves, peaks, divergence check);
- ``bare``: the bare step.

It also times the same ``getrusage`` call in a tight loop, which shows what running cold costs: a step
evicts the caches, so the first system calls and Python frames after it cost several times more::

    python benchmarks/between_steps.py                 # cubic spiral, Euler, 1500 iterations
    python benchmarks/between_steps.py --method rk4 --iters 800

The probe's own ``perf_counter`` reads (about 0.1 µs each) are inside the figures. ``--method`` is a method
with a solver step: ``snode`` (coordinate descent, no solve while training) is refused.
"""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from bare_step import BareStep
from script_checks import check_stepped_method

from nodebench import training
from nodebench.argtypes import ScriptParser, positive_int
from nodebench.api import get_method, get_task
from nodebench.harness import StepMeter


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cubic_spiral")
    parser.add_argument("--method", default="euler")
    parser.add_argument("--iters", type=positive_int, default=1500)
    parser.add_argument("--skip", type=positive_int, default=100, help="first iterations left out (default 100)")
    args = parser.parse_args()
    if args.skip >= args.iters:
        parser.error(f"--skip {args.skip} leaves no iteration of --iters {args.iters}; give --skip < --iters")
    parser.check_case(args.task, args.method)
    check_stepped_method(parser, args.method)
    torch.set_num_threads(1)
    clock = time.perf_counter
    marks: dict[str, list[float]] = {k: [] for k in ("start0", "start1", "stop0", "stop1", "cb0", "cb1", "bare")}

    class Probe(StepMeter):
        def start(self):
            marks["start0"].append(clock())
            super().start()
            marks["start1"].append(clock())

        def stop(self):
            marks["stop0"].append(clock())
            reading = super().stop()
            marks["stop1"].append(clock())
            return reading

    training.StepMeter = Probe
    task, method = get_task(args.task), get_method(args.method)
    problem = task.build(seed=0, device=torch.device("cpu"), hparams={})
    problem.evaluate = lambda solve: {}
    params = [p for p in problem.model.parameters() if p.requires_grad]
    bare = BareStep(problem, method.make_solve(params), params, problem.field)

    def callback(iteration: int, loss: float) -> None:
        marks["cb0"].append(clock())
        marks["bare"].append(bare.step()[0])
        marks["cb1"].append(clock())

    training.train(problem, method, device=torch.device("cpu"), iters=args.iters, warmup=2, on_iteration=callback)
    m = {k: np.array(v) for k, v in marks.items()}
    # the warm-up's start/stop come first: the iterations' marks are the rest
    start0, start1, stop0, stop1 = m["start0"][1:], m["start1"][1:], m["stop0"][1:], m["stop1"][1:]
    parts = {"before": start0[1:] - m["cb1"][:-1], "start": start1 - start0, "step": stop0 - start1,
             "stop": stop1 - stop0, "after": m["cb0"] - stop1, "bare": m["bare"]}
    print(f"{args.task}, {args.method}: {args.iters} iterations, median µs per iteration (first {args.skip} left out)")
    for name, values in parts.items():
        print(f"  {name:7s} {np.median(values[args.skip:]) * 1e6:9.1f}")
    step, bare = parts["step"][args.skip:], parts["bare"][args.skip:len(parts["step"])]
    print(f"  step ÷ bare: {np.exp(np.median(np.log(step / bare))):.4f} (median of the per-iteration ratios)")
    harness = sum(np.median(parts[k][args.skip:]) for k in ("before", "start", "stop", "after"))
    print(f"  outside the step: {harness * 1e6:.1f} µs = {harness / np.median(bare):.2%} of a bare step")
    tight = []
    for _ in range(20000):
        t = clock()
        resource.getrusage(resource.RUSAGE_SELF)
        tight.append(clock() - t)
    print(f"  getrusage in a tight loop: {np.median(tight) * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
