"""Per-iteration gradient cost of the GQ adjoint against the adjoint, seminorm and direct backprop, over
hidden widths: the regime Norcliffe & Deisenroth (TMLR 2023) target, a small state and many parameters.

Every method computes the loss gradient of the same initial model of a task (``g1d`` by default: the
ANODE toy augmented to dimension 4, f an MLP with two hidden layers of width w, full batch), with dopri5
at rtol = atol = 1e-3 and gtol 0.1 as in the official notebook. One gradient is forward + backward,
no optimiser step, so all methods see identical parameters. Rounds interleave the methods (rotating the
order every round) so that machine noise hits all of them alike; each round times one gradient per
method, synchronised (CUDA events too on a GPU), with the peak memory reset before it and read after.
Ratios are taken per round and their median reported, with the interquartile range. After the rounds, one
untimed gradient per method measures its allocated-bytes peak above what was held before it
(:class:`~nodebench.harness.memory.AllocatedPeak`: the profiler's allocation events on the CPU, the caching
allocator's count on CUDA), a figure that does not depend on which pages the process already holds: the
CPU's resident-set peak of an in-process gradient often reads 0 ("not measured").

    python benchmarks/gq_gradient_cost.py --widths 5 20 100 500 1000 2000 3000 --rounds 7
    GQ_OFFICIAL_PATH=/tmp/torch_gq_adjoint python benchmarks/gq_gradient_cost.py --threads 1 \
        --widths 100 1000 3000 --methods gq gq_batched direct official --rounds 15

``official`` (the paper's code, a-norcliffe/torch_gq_adjoint, a checkout of it at ``GQ_OFFICIAL_PATH``; never
part of nodebench) runs the same field with the same tolerances and gtol; it is a column only when that
variable is set and is left out of the default methods otherwise.
    python benchmarks/gq_gradient_cost.py --device cuda --out results/benchmarks/gq_gradient_cost-cuda

Writes ``samples.parquet`` (one row per width, method and round; rewritten after each width, with the run's
settings in ``settings.json``; ``alloc_peak_bytes`` the same in every round of a method), ``summary.md`` and the
figures ``time_vs_width``, ``memory_vs_width`` and ``allocated_vs_width`` (PNG and PDF) into ``--out``. A run
stopped part-way keeps its finished widths: the same command resumes after them
(:mod:`nodebench.benchmarking.checkpoint`); other settings with the same ``--out`` are refused, and so is
a run measured in another environment (commit, CPU or GPU model, threads, versions) or one that recorded none
(unless ``--assume-same-environment``); ``summary.md`` names the environment recorded there. A width or
method given twice is refused; ``--threads`` is at most 1,024, as on the CLI, and ``--widths`` at most 16,384.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

from nodebench.argtypes import ScriptParser, device, positive_float, positive_int, positive_int_up_to
from nodebench.benchmarking.checkpoint import Checkpoint
from nodebench.api_checks import MAX_THREADS
from nodebench.errors import UserError
from nodebench.paths import nonempty_path
from nodebench.harness import PeakMemory, Stopwatch, count_nfe, environment
from nodebench.harness.memory import AllocatedPeak
from nodebench.methods import get_method

from nodebench.records import measured_memory
from nodebench.figure_style import styled, subplots
from nodebench.plots import method_colors, save_figure
from nodebench.markdown import markdown_table
from nodebench.api import get_task  # registers every installed paper's tasks (g1d is the GQ paper's)
from script_checks import refuse_repeats

METHODS = ("gq", "gq_batched", "adjoint", "seminorm", "direct")
OFFICIAL = "official"
#: The largest --widths: far above the paper's 3000, below what fails to allocate (a width × width layer of 1 GiB)
MAX_WIDTH = 16_384
RATIOS = (("adjoint", "gq"), ("seminorm", "gq"), ("direct", "gq"), ("gq", "gq_batched"), ("adjoint", "gq_batched"),
          ("direct", "gq_batched"), (OFFICIAL, "gq"), (OFFICIAL, "gq_batched"), (OFFICIAL, "direct"))


def official_module():
    """The official GQ code's package from the checkout at ``GQ_OFFICIAL_PATH``, or None when unset."""
    path = os.environ.get("GQ_OFFICIAL_PATH")
    if not path:
        return None
    if not (Path(path) / "torch_gq_adjoint").is_dir():
        raise UserError(f"GQ_OFFICIAL_PATH={path} has no torch_gq_adjoint package; "
                        "point it at a checkout of a-norcliffe/torch_gq_adjoint")
    sys.path.insert(0, path)
    module = importlib.import_module("torch_gq_adjoint")
    if not hasattr(module, "odeint_adjoint_gq"):
        raise UserError(f"GQ_OFFICIAL_PATH={path}: its torch_gq_adjoint has no odeint_adjoint_gq; point it at the "
                        "root of a checkout of a-norcliffe/torch_gq_adjoint")
    return module


class _OfficialField(torch.nn.Module):
    """The field as the official code needs it: an ``nfe`` attribute it resets and reads for its node rule."""

    def __init__(self, field):
        super().__init__()
        self.field, self.nfe = field, 0

    def forward(self, t, y):
        self.nfe += 1
        return self.field(t, y)


class _OfficialSolve:
    """``solve(func, y0, t)`` through the official ``odeint_adjoint_gq`` (dopri5, same tolerances and gtol)."""

    def __init__(self, module, params, options: dict):
        self.module, self.params, self.options, self.stats = module, tuple(params), options, {}

    def __call__(self, func, y0, t):
        return self.module.odeint_adjoint_gq(_OfficialField(func), y0, t, method="dopri5", adjoint_params=self.params,
                                             **self.options)


def gradient_runner(task: str, method: str, width: int, device: torch.device, options: dict):
    """A zero-argument function computing one loss gradient, its counting field, and its solve."""
    problem = get_task(task).build(seed=0, device=device, hparams={"width": width})
    counter = count_nfe(problem.field)
    problem.field = counter
    params = [p for p in problem.model.parameters() if p.requires_grad]
    if method == OFFICIAL:
        solve = _OfficialSolve(official_module(), params, options)
    else:
        solve = get_method(method).make_solve(params, **options)

    def gradient() -> None:
        counter.reset()
        counter.phase = "forward"
        loss = problem.loss(solve)
        counter.phase = "backward"
        grads = torch.autograd.grad(loss, params)
        del grads
    return gradient, counter, solve


def run(args, checkpoint: Checkpoint) -> pd.DataFrame:
    """The samples of every width of ``args.widths``: widths already in ``checkpoint`` are kept, the others
    measured and added to it one width at a time."""
    device = torch.device(args.device)
    options = dict(rtol=args.tol, atol=args.tol, gtol=args.gtol)
    clock, memory = Stopwatch(device), PeakMemory(device)
    for width in args.widths:
        if (width,) in checkpoint.done():
            print(f"width {width:>5}: already measured in {args.out}, kept", flush=True)
            continue
        rows = []
        runners = {m: gradient_runner(args.task, m, width, device, options) for m in args.methods}
        for gradient, _, _ in runners.values():
            gradient()  # warm-up: lazy initialisation, allocator growth
        for round_ in range(args.rounds):
            order = list(args.methods[round_ % len(args.methods):]) + list(args.methods[:round_ % len(args.methods)])
            for method in order:
                gradient, counter, solve = runners[method]
                memory.reset()
                clock.start()
                gradient()
                wall, event = clock.stop()
                rows.append(dict(width=width, method=method, round=round_, time_s=wall, event_s=event,
                                 peak_mem_bytes=memory.peak_bytes(), mem_source=memory.source,
                                 nfe_forward=counter.nfe["forward"],
                                 nfe_backward=counter.nfe["backward"], nodes=solve.stats.get("nodes")))
        allocated = {}
        for method, (gradient, _, _) in runners.items():  # after the timed rounds: the pass is slow on the CPU
            with AllocatedPeak(device) as peak:
                gradient()
            allocated[method] = peak.bytes
        rows = [row | {"alloc_peak_bytes": allocated[row["method"]]} for row in rows]
        checkpoint.add(samples=pd.DataFrame(rows))
        done = pd.DataFrame(rows).groupby("method")["time_s"].median()
        print(f"width {width:>5}: " + "  ".join(f"{m} {done[m] * 1e3:.1f} ms" for m in args.methods), flush=True)
        del runners
    samples = checkpoint.table("samples")
    return samples[samples.width.isin(args.widths)].reset_index(drop=True)


def ratio_stats(samples: pd.DataFrame, width: int, slow: str, fast: str) -> tuple[float, float, float] | None:
    rows = samples[samples.width == width].pivot(index="round", columns="method", values="time_s")
    if slow not in rows or fast not in rows:
        return None
    ratios = list(rows[slow] / rows[fast])
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    return statistics.median(ratios), q[0], q[2]


def summary(samples: pd.DataFrame, env: dict, args) -> str:
    """The Markdown summary of ``samples``, measured in ``env`` (:attr:`Checkpoint.environment`)."""
    samples = samples.assign(peak_mem_bytes=measured_memory(samples))
    if "alloc_peak_bytes" not in samples:  # a run recorded before the allocated-bytes pass
        samples = samples.assign(alloc_peak_bytes=float("nan"))
    med = samples.groupby(["width", "method"]).median(numeric_only=True)
    rows = []
    for (width, method), r in med.iterrows():
        nodes = "–" if pd.isna(r.get("nodes")) else f"{r.nodes:.0f}"  # none without a GQ method
        rows.append([width, method, f"{r.time_s * 1e3:.1f}",
                     "not measured" if pd.isna(r.peak_mem_bytes) else f"{r.peak_mem_bytes / 2**20:.1f}",
                     "–" if pd.isna(r.alloc_peak_bytes) else f"{r.alloc_peak_bytes / 2**20:.2f}",
                     f"{r.nfe_forward:.0f}/{r.nfe_backward:.0f}", nodes])
    ratio_rows = []
    for width in sorted(samples.width.unique()):
        cells = []
        for slow, fast in RATIOS:
            stats = ratio_stats(samples, width, slow, fast)
            cells.append("–" if stats is None else f"{stats[0]:.2f} ({stats[1]:.2f}–{stats[2]:.2f})")
        ratio_rows.append([width] + cells)
    return "\n".join([
        f"# GQ gradient cost: task {args.task}, dopri5 rtol = atol = {args.tol:g}, gtol {args.gtol:g}", "",
        f"Device {env.get('gpu_model') or env.get('cpu_model')} ({args.device}), {env.get('num_threads')} torch "
        f"thread(s), torch {env.get('version_torch')}, git `{env.get('git_sha')}`; {args.rounds} interleaved rounds.",
        "", "Median over rounds of one gradient (forward + backward):", "",
        markdown_table(["width", "method", "time [ms]", "peak mem [MiB]", "allocated [MiB]", "NFE fwd/bwd",
                        "GQ nodes"], rows), "",
        "peak mem: the timed gradients' peak (CUDA: allocated bytes; CPU: the resident set, not measured where it "
        "read 0); allocated: one untimed gradient's allocated-bytes peak above what was held before it.", "",
        "Speed-up ratios t(slow)/t(fast), median of per-round ratios (IQR):", "",
        markdown_table(["width"] + [f"{s}/{f}" for s, f in RATIOS], ratio_rows), ""])


@styled()
def plot(samples: pd.DataFrame, out: Path) -> None:
    """Time, peak memory (where measurable: not an in-process ``ru_maxrss`` reading or a resident set of 0) and
    the allocated peak against width."""
    samples = samples.assign(peak_mem_bytes=measured_memory(samples))
    med = samples.groupby(["method", "width"]).median(numeric_only=True).reset_index()
    colors = method_colors(med.method.unique())
    for column, label, name, scale in (("time_s", "gradient time [s]", "time_vs_width", 1.0),
                                       ("peak_mem_bytes", "peak memory [MiB]", "memory_vs_width", 2.0**-20),
                                       ("alloc_peak_bytes", "allocated peak [MiB]", "allocated_vs_width", 2.0**-20)):
        if column not in med or med[column].isna().all():
            print(f"{name}: not drawn, not measured in this run")
            continue
        fig, ax = subplots(figsize=(6, 4))
        for method, rows in med.groupby("method"):
            ax.plot(rows.width, rows[column] * scale, "o-", color=colors[method], label=method)
        ax.set(xscale="log", yscale="log", xlabel="hidden width", ylabel=label, title=name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save_figure(fig, out, name)


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="g1d", help="a task with a hidden width (default g1d)")
    parser.add_argument("--widths", type=positive_int_up_to(MAX_WIDTH), nargs="+",
                        default=[5, 20, 100, 500, 1000, 2000, 3000])
    parser.add_argument("--methods", nargs="+", default=None, choices=(*METHODS, OFFICIAL),
                        help=f"default: {' '.join(METHODS)}, and {OFFICIAL} when GQ_OFFICIAL_PATH is set")
    parser.add_argument("--rounds", type=positive_int, default=7)
    parser.add_argument("--tol", type=positive_float, default=1e-3)
    parser.add_argument("--gtol", type=positive_float, default=0.1)
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=positive_int_up_to(MAX_THREADS), default=None,
                        help="torch threads (default: torch's)")
    parser.add_argument("--out", type=nonempty_path, default=Path("results/benchmarks/gq_gradient_cost-cpu"))
    parser.add_argument("--assume-same-environment", action="store_true",
                        help="resume an --out that recorded no environment (written before it was recorded) as "
                             "measured on this machine at this commit")
    args = parser.parse_args()
    refuse_repeats(parser, widths=args.widths, methods=args.methods or [])
    try:
        task = get_task(args.task)
        for width in args.widths:
            task.hparams({"width": width})
        official = official_module()
    except UserError as err:
        parser.error(str(err))
    if args.methods is None:
        args.methods = list(METHODS) + ([OFFICIAL] if official is not None else [])
    elif OFFICIAL in args.methods and official is None:
        parser.error(f"method {OFFICIAL} needs GQ_OFFICIAL_PATH (a checkout of a-norcliffe/torch_gq_adjoint)")
    if args.threads:  # before the environment is recorded: it holds the threads
        torch.set_num_threads(args.threads)
    settings = {key: value for key, value in vars(args).items()
                if key not in ("widths", "out", "assume_same_environment")}
    try:
        checkpoint = Checkpoint(args.out, settings | {"official_path": os.environ.get("GQ_OFFICIAL_PATH")},
                                key=["width"], environment=environment(torch.device(args.device)),
                                assume_same_environment=args.assume_same_environment)
    except UserError as err:
        parser.error(str(err))
    samples = run(args, checkpoint)
    text = summary(samples, checkpoint.environment, args)
    (args.out / "summary.md").write_text(text)
    plot(samples, args.out)
    print(text)


if __name__ == "__main__":
    main()
