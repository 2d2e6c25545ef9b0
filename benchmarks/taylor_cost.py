"""Cost of the total time derivatives d^K z/dt^K behind TayNODE's R_K (Kelly et al., NeurIPS 2020, arXiv
2007.04504): Taylor mode (:func:`nodebench.taylor.ode_derivatives`, ``method="taylor"``) against nested
``torch.func.jvp`` (``method="jvp"``), K = 1..8 (the taynode claims T4/T5, nodebench/papers/taynode/README.md).

The field is TayNODE's cost setting: autonomous z' = f(z), an MLP D → 64 → 64 → D with tanh, batch 256, for D = 2
and 64.
Per dimension, order and method, each round times

- forward: ``ode_derivatives(f, t, z, K)``, i.e. z', …, d^K z/dt^K, once under ``torch.no_grad()`` (what
  JAX's jitted forward computes) and once recording the autograd graph;
- backward: ``torch.autograd.grad(mean((d^K z)²), f.parameters())``, the R_K integrand's gradient,

with :class:`nodebench.harness.Stopwatch` (synchronised on CUDA). Each phase is timed as a block of consecutive
calls lasting at least ``--min-block`` seconds (20 ms; sized from one warm call's forward without a recorded graph,
the shortest phase, per method and K; the ``number`` column), the usual practice for sub-millisecond
micro-benchmarks: one call of a few hundred µs, timed alone after another method's turn, runs with cold caches and
near the clock's resolution; ``--min-block 0`` times single calls. Rounds interleave the methods, alternating which
runs first, after one untimed warm-up call each; ratios are medians of per-round ratios.
The backward is not timed alone: it is the forward+backward block less the forward block, two blocks timed
apart, so on a busy machine a round's can be negative; the tables show forward and forward+backward (both timed)
and the backward only where it stands out of that noise, else "within noise"
(:func:`nodebench.papers.taynode.cost.backward_median`).
Nested jvp grows about 3× per order, so once its warm-up call (forward + backward) exceeds ``--cap``
seconds it is skipped at that and every higher order, and reported as skipped. The measurement itself is
:func:`nodebench.papers.taynode.cost.measure_cost` (also run by the ``taylor_cost`` analysis of
``nodebench reproduce taynode``); this script adds the Markdown summary.

    python benchmarks/taylor_cost.py --threads 1                  # the issue's setting (JAX too when importable)
    python benchmarks/taylor_cost.py --dims 2 --orders 1 2 3 4 --rounds 3
    python benchmarks/taylor_cost.py --threads 1 --cpu-time   # on a loaded shared machine

Where ``jax`` is importable and has a device of ``--device``'s kind (its CPU, or its GPU for ``--device
cuda``), JAX's jet on the same weights is a third column (:mod:`nodebench.taylor.jax_jet`: jitted, TayNODE's
recursion; compile time reported apart, ``--threads 1`` also restricts XLA to one thread); ``--methods taylor
jvp`` leaves it out. ``--methods … taylor_compiled`` adds :func:`nodebench.taylor.compile_derivatives` (its
backward through the autograd engine) and ``taylor_fused`` :func:`nodebench.taylor.compile_grad_and_value`
(forward and backward one compiled graph, as JAX's jitted ``value_and_grad``), compile times reported apart,
with ``torch.compile``'s ``--compile-mode`` when given (``reduce-overhead``: CUDA graphs on a GPU). These
three are reported against eager Taylor mode (their tables compare them with it, or JAX jet with it), so
``--methods`` must then include ``taylor`` (refused otherwise, before anything runs: a summary without it had
no column to show them in):

    python benchmarks/taylor_cost.py --threads 1 --dims 2 --orders 3 6 \
        --methods taylor jax_jet taylor_compiled taylor_fused
    python benchmarks/taylor_cost.py --device cuda --orders 3 4 6 8 --methods taylor jax_jet taylor_fused \
        --compile-mode reduce-overhead --out results/benchmarks/taylor_cost-cuda-graphs

Writes ``samples.parquet`` (one row per dim, K, method and round; skipped cells as rows with
``skipped=True``) and ``agreement.parquet``, both rewritten after each (dim, K) with the run's settings in
``settings.json``, then ``summary.md`` and the figure ``cost_vs_k`` (PNG and PDF, log-y) into ``--out``. A run
stopped part-way keeps its finished cells: the same command resumes after them
(:mod:`nodebench.benchmarking.checkpoint`); other settings with the same ``--out`` are refused, and so is
a run measured in another environment (commit, CPU or GPU model, threads, versions) or one that recorded none
(unless ``--assume-same-environment``); ``summary.md`` names the environment recorded there. A value
given twice to ``--dims``, ``--orders`` or ``--methods`` is refused; ``--dims``, ``--hidden`` and ``--batch``
are at most 65,536 and ``--threads`` at most 1,024 (as on the CLI); a field that still does not fit in memory
is reported in one line (exit 2), keeping the cells finished before it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import torch

from nodebench.argtypes import ScriptParser, device, positive_float, positive_int, positive_int_up_to, seconds
from nodebench.benchmarking.checkpoint import Checkpoint
from nodebench.api_checks import MAX_THREADS
from nodebench.errors import UserError
from nodebench.paths import nonempty_path
from nodebench.harness import environment
from nodebench.papers.taynode.figures import plot_taylor_cost
from nodebench.markdown import markdown_table
from nodebench.papers.taynode.cost import (COMPILED, FUSED, JAX, METHODS, WITHIN_NOISE, cost_table, growth,
                                           measure_cost, ratio, timing_cells)
from nodebench.taylor import jax_jet

#: torch.compile's modes
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: the columns of the comparison tables and their labels
COMPARED = {"unrecorded_s": "fwd", "forward_s": "fwd rec.", "total_s": "fwd+bwd"}
#: the largest --dims, --hidden and --batch: far above TayNODE's setting, below what fails to allocate
MAX_SIZE = 65_536


def run(args, checkpoint: Checkpoint) -> tuple[pd.DataFrame, dict]:
    """Samples and agreement of every (dim, K) of ``args``: cells already in ``checkpoint`` are kept, the others
    measured and added to it one cell at a time."""
    earlier = checkpoint.table("samples")
    measure_cost(args.dims, args.orders, methods=args.methods, hidden=args.hidden, batch=args.batch,
                 rounds=args.rounds, cap=args.cap, dtype=args.dtype, device=args.device, seed=args.seed,
                 cpu_time=args.cpu_time, min_block=args.min_block, compile_mode=args.compile_mode,
                 resume=None if earlier.empty else earlier,
                 on_cell=lambda rows, agreement: checkpoint.add(samples=rows, agreement=agreement_rows(agreement)),
                 log=lambda line: print(line, flush=True))
    samples = checkpoint.table("samples")
    samples = samples[samples.dim.isin(args.dims) & samples.K.isin(args.orders)].reset_index(drop=True)
    return samples, agreement_dict(checkpoint.table("agreement"))


def agreement_rows(agreement: dict) -> pd.DataFrame:
    """:func:`measure_cost`'s agreement, keyed (dim, K) for Taylor mode against nested jvp and (dim, K, method)
    for another method against Taylor mode, as a table (method "jvp" for the first)."""
    return pd.DataFrame([{"dim": key[0], "K": key[1], "method": key[2] if len(key) > 2 else "jvp",
                          "agreement": value} for key, value in agreement.items()])


def agreement_dict(table: pd.DataFrame) -> dict:
    """The inverse of :func:`agreement_rows`."""
    return {(int(r.dim), int(r.K)) + (() if r.method == "jvp" else (r.method,)): float(r.agreement)
            for r in table.itertuples()}


def _numbers(samples: pd.DataFrame) -> str:
    """The range of calls per block over the timed samples, e.g. "1–240"."""
    timed = samples[~samples.skipped].number
    return f"{timed.min()}–{timed.max()}" if timed.min() != timed.max() else f"{timed.min()}"


def _fmt(seconds: float) -> str:
    """Milliseconds to three significant digits, so that calls of a few microseconds keep theirs."""
    return "skipped" if math.isnan(seconds) else f"{seconds * 1e3:.3g}"


def _fmt_ratio(stats, digits: int = 1) -> str:
    return "–" if stats is None else f"{stats[0]:.{digits}f} ({stats[1]:.{digits}f}–{stats[2]:.{digits}f})"


def summary(samples: pd.DataFrame, agreement: dict, env: dict, args) -> str:
    """The Markdown summary of ``samples``, measured in ``env`` (:attr:`Checkpoint.environment`)."""
    lines = [
        f"# Cost of d^K z/dt^K: Taylor mode vs nested jvp (MLP D-{args.hidden}-{args.hidden}-D tanh, "
        f"batch {args.batch}, {args.dtype})", "",
        f"Device {env.get('gpu_model') or env.get('cpu_model')} ({args.device}), {env.get('num_threads')} torch "
        f"thread(s), torch {env.get('version_torch')}, git `{env.get('git_sha')}`; {args.rounds} interleaved "
        f"rounds, medians in ms per call of {'process CPU time' if args.cpu_time else 'wall time'}; "
        + (f"each phase timed as a block of consecutive calls lasting ≥ {args.min_block * 1e3:g} ms "
           f"({_numbers(samples)} calls); " if args.min_block > 0 else "one call per timed phase; ")
        + f"nested jvp skipped once one call exceeds {args.cap:g} s."
        + (f" {COMPILED} and {FUSED}: torch.compile mode `{args.compile_mode}`." if args.compile_mode else ""),
        "",
        "fwd = computing z', …, d^K z; fwd+bwd = that and the gradient of mean((d^K z)²) to the field's "
        "parameters, both timed; bwd = fwd+bwd − fwd per round, two blocks timed apart, shown where it stands out "
        f"of their timing noise (its lower quartile over rounds > 0), else \"{WITHIN_NOISE}\"; "
        "speed-up = t_jvp / t_taylor, median of per-round ratios (IQR); agreement = max |Δ| / max |d^K z| "
        "between the methods.", ""]
    table = {(r.dim, r.K): r for r in cost_table(samples).itertuples()}
    for dim in args.dims:
        rows = []
        for order in args.orders:
            cells = [order]
            for method in METHODS:
                cells += (timing_cells(table[dim, order], method, _fmt)
                          if (dim, order) in table and method in args.methods else ["–"] * 3)
            cells += [_fmt_ratio(ratio(samples, dim, order, "forward_s")),
                      _fmt_ratio(ratio(samples, dim, order, "total_s"))]
            cells.append(f"{agreement[(dim, order)]:.1e}" if (dim, order) in agreement else "–")
            rows.append(cells)
        lines += [f"## D = {dim}", "", markdown_table(
            ["K", "taylor fwd", "taylor fwd+bwd", "taylor bwd", "jvp fwd", "jvp fwd+bwd", "jvp bwd",
             "speed-up fwd", "speed-up fwd+bwd", "agreement"], rows), ""]
        for method in METHODS:
            fits = [growth(samples, dim, method, c) for c in ("forward_s", "total_s")]
            if all(f is not None for f in fits):
                lines.append(f"- {method}: forward t ∝ K^{fits[0][0]:.2f} (or {fits[0][1]:.2f}^K); forward+backward "
                             f"t ∝ K^{fits[1][0]:.2f} (or {fits[1][1]:.2f}^K), fits over K ≥ 2")
        at6 = ratio(samples, dim, 6, "forward_s")
        if at6 is not None:
            lines.append(f"- K = 6: Taylor mode forward is {at6[0]:.1f}× faster than nested jvp (goal ≥ 20×: "
                         f"{'met' if at6[0] >= 20 else 'NOT met'}); forward+backward "
                         f"{_fmt_ratio(ratio(samples, dim, 6, 'total_s'))}×")
        reference = JAX if JAX in args.methods else None
        for ours in ("taylor", COMPILED, FUSED):
            ref = reference if ours == "taylor" else (reference or "taylor")
            if ours in args.methods and ref in args.methods:
                lines += ["", compare_table(samples, agreement, dim, args.orders, ours, ref)]
        lines.append("")
    return "\n".join(lines)


def compare_table(samples: pd.DataFrame, agreement: dict, dim: int, orders, ours: str, ref: str) -> str:
    """``ours`` against ``ref`` (JAX jet, or eager Taylor mode): medians, t_ours / t_ref (≤ 1: ours is faster)
    and the compile times, which are not in the timings."""
    ok = samples[(samples.dim == dim) & ~samples.skipped]
    medians = ok.groupby(["K", "method"])[list(COMPARED)].median()
    compile_s = ok.groupby(["K", "method"])["compile_s"].first()
    rows = []
    for order in orders:
        if (order, ref) not in medians.index or (order, ours) not in medians.index:
            continue
        cells = [order]
        for column in COMPARED:
            cells += [_fmt(medians.loc[(order, ours), column]), _fmt(medians.loc[(order, ref), column]),
                      _fmt_ratio(ratio(samples, dim, order, column, slow=ours, fast=ref), 2)]
        cells += [" / ".join("–" if math.isnan(compile_s[(order, m)]) else f"{compile_s[(order, m)]:.1f}"
                             for m in (ours, ref))]
        key = (dim, order, ref if ours == "taylor" else ours)
        cells.append(f"{agreement[key]:.1e}" if key in agreement else "–")
        rows.append(cells)
    headers = ["K"]
    for label in COMPARED.values():
        headers += [f"{ours} {label}", f"{ref} {label}", f"ratio {label}"]
    return "\n".join([
        f"{ours} vs {ref}, D = {dim}: ratio = t_{ours} / t_{ref}, median of per-round ratios (IQR); ≤ 1 means "
        f"{ours} is faster. fwd: the derivatives alone (torch under no_grad; JAX's jitted forward, which keeps "
        "no residuals); fwd rec.: torch's forward recording the autograd graph (JAX: the same forward); "
        "fwd+bwd: that forward and the gradient (JAX: one jitted value_and_grad call).", "",
        markdown_table(headers + ["compile [s] (ours / ref)", "agreement"], rows)])


def plot(samples: pd.DataFrame, out: Path, dims) -> None:
    plot_taylor_cost(samples, out, dims)


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=positive_int_up_to(MAX_SIZE), nargs="+", default=[2, 64])
    parser.add_argument("--orders", type=positive_int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--methods", nargs="+", default=None, choices=(*METHODS, JAX, COMPILED, FUSED),
                        help=f"default: {' '.join(METHODS)}, and {JAX} when jax is importable and has a device "
                             "of --device's kind")
    parser.add_argument("--hidden", type=positive_int_up_to(MAX_SIZE), default=64)
    parser.add_argument("--batch", type=positive_int_up_to(MAX_SIZE), default=256)
    parser.add_argument("--rounds", type=positive_int, default=7)
    parser.add_argument("--cap", type=positive_float, default=2.0, help="skip nested jvp once a call takes longer [s]")
    parser.add_argument("--min-block", type=seconds, default=0.02,
                        help="time each phase as a block of consecutive calls lasting at least this long [s], "
                             "sized from a warm call's unrecorded forward, the shortest phase (0: one call per block)")
    parser.add_argument("--compile-mode", default=None, choices=COMPILE_MODES,
                        help=f"torch.compile's mode for {COMPILED} and {FUSED} "
                             "(default: compile_derivatives' settings)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time the process's CPU seconds (all threads) instead of wall time: on a shared "
                             "machine waiting for a core is then not counted (CPU only)")
    parser.add_argument("--threads", type=positive_int_up_to(MAX_THREADS), default=None,
                        help="torch threads (default: torch's)")
    parser.add_argument("--out", type=nonempty_path, default=Path("results/benchmarks/taylor_cost"))
    parser.add_argument("--assume-same-environment", action="store_true",
                        help="resume an --out that recorded no environment (written before it was recorded) as "
                             "measured on this machine at this commit")
    args = parser.parse_args()
    # a sibling module, imported here so that this module loads without benchmarks/ on sys.path
    from script_checks import refuse_repeats

    refuse_repeats(parser, dims=args.dims, orders=args.orders, methods=args.methods or [])
    compared = [method for method in args.methods or [] if method in (JAX, COMPILED, FUSED)]
    if compared and "taylor" not in args.methods:
        parser.error(f"--methods {compared[0]} is reported against taylor (eager Taylor mode): add taylor")
    device_type = torch.device(args.device).type
    if args.cpu_time and device_type != "cpu":
        parser.error(f"--cpu-time times the CPU; with --device {args.device} leave it out (wall time, synchronised)")
    if args.threads:
        torch.set_num_threads(args.threads)
        if args.threads == 1:  # before jax is imported
            os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    if args.methods is None:
        args.methods = list(METHODS) + ([JAX] if jax_jet.available(device_type) else [])
    elif JAX in args.methods and not jax_jet.available(device_type):
        parser.error(f"method {JAX} needs jax installed with a device for --device {args.device} "
                     "(JAX jet runs on: cpu, cuda)")
    settings = {key: value for key, value in vars(args).items()
                if key not in ("dims", "orders", "out", "assume_same_environment")}
    try:
        checkpoint = Checkpoint(args.out, settings, key=["dim", "K"],
                                environment=environment(torch.device(args.device)),
                                assume_same_environment=args.assume_same_environment)
    except UserError as err:
        parser.error(str(err))
    try:
        samples, agreement = run(args, checkpoint)
    except RuntimeError as err:  # torch.OutOfMemoryError among them: the cells finished so far are kept
        if "alloc" not in str(err) and "out of memory" not in str(err):
            raise
        parser.error(f"the field (--dims {max(args.dims)}, --hidden {args.hidden}, --batch {args.batch}) does not "
                     f"fit in {args.device}'s memory ({str(err).splitlines()[0]}); give smaller sizes")
    text = summary(samples, agreement, checkpoint.environment, args)
    (args.out / "summary.md").write_text(text)
    plot(samples, args.out, args.dims)
    print(text)


if __name__ == "__main__":
    main()
