"""Spread of the CPU peak-memory figures of one training step over identical runs, each in a fresh process.

For each run: build the task, one warm-up pass, then one training step measured by the harness's timed
meter (:class:`~nodebench.harness.memory.PeakMemory`, the resident-set high-water mark) and the next
identical step by :class:`~nodebench.harness.memory.TensorPeak` (bytes of tensor storage allocated). Prints
min, median and max of each over the runs.

    python benchmarks/memory_spread.py --runs 10 --task cubic_spiral --method rk4
"""

from __future__ import annotations

import json
import statistics
import sys

from nodebench.argtypes import ScriptParser, positive_int

ONE_RUN = """
import json, sys, torch
from nodebench.harness.memory import PeakMemory, TensorPeak
from nodebench.api import get_method, get_task
from nodebench.runner.settings import case_settings
from nodebench.training import GradientStep
torch.set_num_threads(1)
torch.manual_seed(0)
task, method = sys.argv[1], get_method(sys.argv[2])
settings = case_settings(json.loads(sys.argv[3]), method)
problem = get_task(task).build(seed=0, device=torch.device("cpu"), hparams=settings.task_hparams)
params = [p for p in problem.model.parameters() if p.requires_grad]
stepper = GradientStep(problem, method.make_solve(params, **settings.solver_options), params)
stepper.warmup()
meter = PeakMemory("cpu")
meter.reset()
stepper.step(lambda: None)
rss = meter.peak_bytes()
with TensorPeak("cpu") as tensors:
    stepper.step(lambda: None)
print(json.dumps({"rss": rss, "tensor": tensors.bytes}))
"""


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=10)
    parser.add_argument("--task", default="cubic_spiral", help="any task, a paper's included (nodebench list)")
    parser.add_argument("--method", default="rk4")
    parser.add_argument("--hparams", default="{}", help="task hyper-parameters as a JSON object")
    args = parser.parse_args()
    try:
        hparams = json.loads(args.hparams)
    except json.JSONDecodeError as err:
        parser.error(f"--hparams: not JSON ({err}); give an object, e.g. '{{\"lr\": 0.01}}'")
    if not isinstance(hparams, dict):
        parser.error(f"--hparams: expected a JSON object, got {args.hparams!r}")
    parser.check_case(args.task, args.method, hparams)  # before a process is started
    rows = []
    for run in range(1, args.runs + 1):
        out = parser.run_worker([sys.executable, "-c", ONE_RUN, args.task, args.method, json.dumps(hparams)])
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"run {run}/{args.runs}: resident-set peak {rows[-1]['rss'] / 2**20:.3f} MiB, tensor storage "
              f"{rows[-1]['tensor'] / 2**20:.3f} MiB", file=sys.stderr)
    for key, label in (("rss", "resident-set peak (PeakMemory)"), ("tensor", "tensor storage peak (TensorPeak)")):
        values = [r[key] / 2**20 for r in rows]
        print(f"{args.task}/{args.method} {label}: min {min(values):.3f} MiB, median "
              f"{statistics.median(values):.3f} MiB, max {max(values):.3f} MiB over {len(values)} runs")


if __name__ == "__main__":
    main()
