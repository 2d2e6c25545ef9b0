"""Cost of the total time derivatives d^K z/dt^K behind TayNODE's R_K (Kelly et al., NeurIPS 2020, arXiv
2007.04504): Taylor mode (:func:`nodebench.taylor.ode_derivatives`, ``method="taylor"``) against nested
``torch.func.jvp`` (``method="jvp"``), K = 1..8 (shared/papers/taynode.md §10, claim T4).

The field is §10's: autonomous z' = f(z), an MLP D → 64 → 64 → D with tanh, batch 256, for D = 2 and 64.
Per dimension, order and method, each round times

- forward: ``ode_derivatives(f, t, z, K)``, i.e. z', …, d^K z/dt^K;
- backward: ``torch.autograd.grad(mean((d^K z)²), f.parameters())``, the R_K integrand's gradient,

with :class:`nodebench.harness.Stopwatch` (synchronised on CUDA). Rounds interleave the two methods,
alternating which runs first, after one untimed warm-up call each; ratios are medians of per-round ratios.
Nested jvp grows about 3× per order, so once its warm-up call (forward + backward) exceeds ``--cap``
seconds it is skipped at that and every higher order, and reported as skipped.

    python benchmarks/taylor_cost.py --threads 1                  # the issue's setting
    python benchmarks/taylor_cost.py --dims 2 --orders 1 2 3 4 --rounds 3

Writes ``samples.parquet`` (one row per dim, K, method and round; skipped cells as rows with
``skipped=True``), ``summary.md`` and the figure ``cost_vs_k`` (PNG and PDF, log-y) into ``--out``.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from nodebench.harness import Stopwatch, environment
from nodebench.plots import _colors, _save, plt
from nodebench.report import markdown_table
from nodebench.taylor import ode_derivatives

METHODS = ("taylor", "jvp")


def make_field(dim: int, hidden: int, device: torch.device, dtype: torch.dtype, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                        nn.Linear(hidden, dim)).to(device=device, dtype=dtype)
    return net


def one_call(net: nn.Module, t: torch.Tensor, z: torch.Tensor, order: int, method: str, clock: Stopwatch):
    """(forward s, backward s, d^K z) of one call."""
    params = list(net.parameters())
    clock.start()
    derivatives = ode_derivatives(lambda t_, z_: net(z_), t, z, order, method=method)
    forward, _ = clock.stop()
    clock.start()
    grads = torch.autograd.grad(derivatives[-1].pow(2).mean(), params)
    backward, _ = clock.stop()
    del grads
    return forward, backward, derivatives[-1].detach()


def run(args) -> tuple[pd.DataFrame, dict]:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    clock = Stopwatch(device)
    rows, agreement = [], {}
    tiny = torch.zeros(1, 1, device=device, dtype=dtype)  # torch.func.jvp's first call loads its decompositions
    ode_derivatives(lambda t_, z_: torch.tanh(z_), tiny[0, 0], tiny, 2, method="jvp")
    for dim in args.dims:
        net = make_field(dim, args.hidden, device, dtype, args.seed)
        z = torch.randn(args.batch, dim, device=device, dtype=dtype)
        t = torch.zeros((), device=device, dtype=dtype)
        active = list(args.methods)
        for order in args.orders:
            values = {}
            for method in list(active):  # untimed warm-up; the cap check
                forward, backward, values[method] = one_call(net, t, z, order, method, clock)
                if method != "taylor" and forward + backward > args.cap:
                    active.remove(method)
                    print(f"dim {dim:>3} K {order}: {method} took {forward + backward:.2f} s > cap {args.cap:g} s; "
                          f"skipped from here on", flush=True)
            if len(values) == 2:
                a, b = values.values()
                agreement[(dim, order)] = float((a - b).abs().max() / b.abs().max())
            for method in args.methods:
                if method not in active:
                    rows.append(dict(dim=dim, K=order, method=method, round=-1, forward_s=math.nan,
                                     backward_s=math.nan, skipped=True))
            for round_ in range(args.rounds):
                order_of_methods = active if round_ % 2 == 0 else active[::-1]
                for method in order_of_methods:
                    forward, backward, _ = one_call(net, t, z, order, method, clock)
                    rows.append(dict(dim=dim, K=order, method=method, round=round_, forward_s=forward,
                                     backward_s=backward, skipped=False))
            done = pd.DataFrame([r for r in rows if r["dim"] == dim and r["K"] == order and not r["skipped"]])
            med = done.groupby("method")[["forward_s", "backward_s"]].median()
            print(f"dim {dim:>3} K {order}: " + "  ".join(
                f"{m} {med.loc[m, 'forward_s'] * 1e3:.2f}+{med.loc[m, 'backward_s'] * 1e3:.2f} ms" for m in med.index),
                flush=True)
    samples = pd.DataFrame(rows)
    samples["total_s"] = samples.forward_s + samples.backward_s
    return samples, agreement


def ratio(samples: pd.DataFrame, dim: int, order: int, column: str) -> tuple[float, float, float] | None:
    """Median and IQR over rounds of t_jvp / t_taylor."""
    rows = samples[(samples.dim == dim) & (samples.K == order) & ~samples.skipped]
    table = rows.pivot(index="round", columns="method", values=column)
    if "jvp" not in table or "taylor" not in table:
        return None
    ratios = list((table["jvp"] / table["taylor"]).dropna())
    if not ratios:
        return None
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return statistics.median(ratios), q[0], q[2]


def growth(samples: pd.DataFrame, dim: int, method: str, column: str) -> tuple[float, float] | None:
    """(exponent p of t ∝ K^p, factor r of t ∝ r^K), least-squares fits of the medians over K ≥ 2."""
    med = samples[(samples.dim == dim) & (samples.method == method) & ~samples.skipped & (samples.K >= 2)]
    med = med.groupby("K")[column].median()
    if len(med) < 3:
        return None
    ks, ts = np.asarray(med.index, dtype=float), np.log(med.to_numpy())
    power = np.polyfit(np.log(ks), ts, 1)[0]
    factor = math.exp(np.polyfit(ks, ts, 1)[0])
    return float(power), float(factor)


def _fmt(seconds: float) -> str:
    return "skipped" if math.isnan(seconds) else f"{seconds * 1e3:.2f}"


def _fmt_ratio(stats) -> str:
    return "–" if stats is None else f"{stats[0]:.1f} ({stats[1]:.1f}–{stats[2]:.1f})"


def summary(samples: pd.DataFrame, agreement: dict, env: dict, args) -> str:
    lines = [
        f"# Cost of d^K z/dt^K: Taylor mode vs nested jvp (MLP D-{args.hidden}-{args.hidden}-D tanh, "
        f"batch {args.batch}, {args.dtype})", "",
        f"Device {env.get('gpu_model') or env.get('cpu_model')} ({args.device}), {torch.get_num_threads()} torch "
        f"thread(s), torch {env.get('version_torch')}, git `{env.get('git_sha')}`; {args.rounds} interleaved "
        f"rounds, medians in ms; nested jvp skipped once one call exceeds {args.cap:g} s.", "",
        "forward = computing z', …, d^K z; backward = gradient of mean((d^K z)²) to the field's parameters; "
        "speed-up = t_jvp / t_taylor, median of per-round ratios (IQR); agreement = max |Δ| / max |d^K z| "
        "between the methods.", ""]
    medians = samples[~samples.skipped].groupby(["dim", "K", "method"])[["forward_s", "backward_s"]].median()
    for dim in args.dims:
        rows = []
        for order in args.orders:
            cells = [order]
            for method in METHODS:
                for column in ("forward_s", "backward_s"):
                    key = (dim, order, method)
                    cells.append(_fmt(medians.loc[key, column]) if key in medians.index
                                 else "skipped" if method in args.methods else "–")
            cells += [_fmt_ratio(ratio(samples, dim, order, "forward_s")),
                      _fmt_ratio(ratio(samples, dim, order, "total_s"))]
            cells.append(f"{agreement[(dim, order)]:.1e}" if (dim, order) in agreement else "–")
            rows.append(cells)
        lines += [f"## D = {dim}", "", markdown_table(
            ["K", "taylor fwd", "taylor bwd", "jvp fwd", "jvp bwd", "speed-up fwd", "speed-up fwd+bwd",
             "agreement"], rows), ""]
        for method in METHODS:
            fits = [growth(samples, dim, method, c) for c in ("forward_s", "total_s")]
            if all(f is not None for f in fits):
                lines.append(f"- {method}: forward t ∝ K^{fits[0][0]:.2f} (or {fits[0][1]:.2f}^K); forward+backward "
                             f"t ∝ K^{fits[1][0]:.2f} (or {fits[1][1]:.2f}^K), fits over K ≥ 2")
        at6 = ratio(samples, dim, 6, "forward_s")
        if at6 is not None:
            lines.append(f"- K = 6: Taylor mode forward is {at6[0]:.1f}× faster than nested jvp (goal ≥ 10×: "
                         f"{'met' if at6[0] >= 10 else 'NOT met'}); forward+backward "
                         f"{_fmt_ratio(ratio(samples, dim, 6, 'total_s'))}×")
        lines.append("")
    return "\n".join(lines)


def plot(samples: pd.DataFrame, out: Path, dims) -> None:
    med = samples[~samples.skipped].groupby(["dim", "method", "K"])[["forward_s", "backward_s"]].median()
    med = med.reset_index()
    colors = _colors(METHODS)
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
    for ax, dim in zip(axes[0], dims):
        for method in METHODS:
            rows = med[(med.dim == dim) & (med.method == method)]
            ax.plot(rows.K, rows.forward_s * 1e3, "o-", color=colors[method], label=f"{method} forward")
            ax.plot(rows.K, rows.backward_s * 1e3, "s--", color=colors[method], label=f"{method} backward")
        ax.set(yscale="log", xlabel="order K", ylabel="time [ms]", title=f"d^K z/dt^K, MLP, D = {dim}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    _save(fig, out, "cost_vs_k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 64])
    parser.add_argument("--orders", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cap", type=float, default=2.0, help="skip nested jvp once a call takes longer [s]")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/taylor_cost"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    samples, agreement = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    samples.to_parquet(args.out / "samples.parquet", index=False)
    text = summary(samples, agreement, environment(torch.device(args.device)), args)
    (args.out / "summary.md").write_text(text)
    plot(samples, args.out, args.dims)
    print(text)


if __name__ == "__main__":
    main()
