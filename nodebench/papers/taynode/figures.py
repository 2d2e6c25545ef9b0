"""Figures of the TayNODE paper (Kelly et al. 2020): derivative cost against K, the NFE–metric Pareto front over λ,
and test NFE against K per solver order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import matplotlib
import pandas as pd

from nodebench.figure_style import method_colors, method_style, reference_line, styled, subplots
from nodebench.plots import save_figure, slug


@styled()
def plot_taylor_cost(samples: pd.DataFrame, out_dir: str | Path, dims=None, name: str = "cost_vs_k") -> list[Path]:
    """Cost of d^K z/dt^K against K (log y), one panel per state dimension, one colour per measured method
    (Taylor mode, nested jvp, and where measured JAX jet and the compiled Taylor-mode methods): forward (solid)
    and forward + backward (dashed), medians over rounds (``samples`` from
    :func:`nodebench.papers.taynode.cost.measure_cost`). The forward is the one that records no autograd graph
    (``unrecorded_s``, what JAX's jitted forward and the fused method's forward are) where the samples have it,
    so that every method's solid line times the same work."""
    timed = samples[~samples.skipped]
    methods = [m for m in ("taylor", "jvp", "jax_jet", "taylor_compiled", "taylor_fused") if m in set(timed.method)]
    forward = "unrecorded_s" if "unrecorded_s" in timed and timed.unrecorded_s.notna().all() else "forward_s"
    forward_label = "forward, no graph recorded" if forward == "unrecorded_s" else "forward"
    med = timed.groupby(["dim", "method", "K"])[[forward, "total_s"]].median().reset_index()
    dims = list(dims) if dims is not None else sorted(samples["dim"].unique())
    colors = method_colors(methods)
    fig, axes = subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
    for ax, dim in zip(axes[0], dims):
        for method in methods:
            rows = med[(med.dim == dim) & (med.method == method)]
            if rows.empty:
                continue
            ax.plot(rows.K, rows[forward] * 1e3, "o-", color=colors[method], label=f"{method} {forward_label}")
            ax.plot(rows.K, rows.total_s * 1e3, "s--", color=colors[method], label=f"{method} forward+backward")
        ax.set_yscale("log")
        ax.set(xlabel="order K", ylabel="time per call [ms]", title=f"d^K z/dt^K, MLP, D = {dim}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return save_figure(fig, Path(out_dir), name)[:1]


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Mask of the points not dominated by another: lower ``cost`` and higher ``quality`` are better
    (negate a lower-is-better metric first); NaN points are never on the front."""
    cost, quality = np.asarray(cost, dtype=float), np.asarray(quality, dtype=float)
    valid = np.isfinite(cost) & np.isfinite(quality)
    front = valid.copy()
    for i in np.flatnonzero(valid):
        others = valid & (cost <= cost[i]) & (quality >= quality[i]) & ((cost < cost[i]) | (quality > quality[i]))
        front[i] = not others.any()
    return front


@styled()
def plot_pareto(table: pd.DataFrame, metric: str, out_dir: str | Path, *, name: str) -> list[Path]:
    """NFE against the task metric over λ, one panel per NFE measure (test NFE; training forward NFE per
    iteration), one series per K (and RNODE), the λ = 0 baseline as a black star, each method's Pareto front
    (by test NFE) as a dashed grey line. ``table``: the ``pareto`` analysis rows of one experiment."""
    panels = [("test_nfe", "test NFE (dopri5, unregularised dynamics)"),
              ("nfe_forward_per_iter", "training NFE forward / iteration")]
    panels = [p for p in panels if p[0] in table and table[p[0]].notna().any()]
    if table.empty or not panels or metric not in table:
        return []
    fig, axes = subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    series = [s for s in dict.fromkeys(table["series"]) if s != "λ = 0"]
    viridis = matplotlib.colormaps["viridis"]
    colors = dict(zip(series, viridis(np.linspace(0.0, 0.85, max(len(series), 1)))))  # ordered by K
    markers = {m: method_style(m)["marker"] for m in table["method"].unique()}
    multi = table["method"].nunique() > 1
    for ax, (column, label) in zip(axes[0], panels):
        for (method, serie), rows in table.groupby(["method", "series"], sort=True):
            rows = rows.sort_values("reg_lambda")
            tag = f"{method} {serie}" if multi else serie
            if serie == "λ = 0":
                ax.scatter(rows[column], rows[metric], marker="*", s=160, color="k", zorder=5, label=f"{tag}")
                continue
            ax.plot(rows[column], rows[metric], marker=markers[method], color=colors[serie], lw=1, ms=5, label=tag)
            for r in rows.itertuples():
                ax.annotate(f"{r.reg_lambda:g}", (getattr(r, column), getattr(r, metric)), fontsize=6,
                            xytext=(3, 3), textcoords="offset points", color=colors[serie])
        if column == "test_nfe":
            for method, rows in table[table["on_front"]].groupby("method"):
                rows = rows.sort_values(column)
                ax.plot(rows[column], rows[metric], ls="--", color="0.5", lw=1.5, zorder=1,
                        label="Pareto front" if method == sorted(table["method"].unique())[0] else None)
        ax.set(xlabel=label, ylabel=metric, title=f"{name}: {metric} vs {column} (labels: λ)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, Path(out_dir), f"{slug(name)}_pareto")[:1]


#: Words for the NFE columns an analysis may compare (:func:`nfe_label`).
NFE_LABELS = {"test_nfe": "test NFE", "test_nfe_train_solver": "test NFE with the training solver",
              "nfe_forward_per_iter": "training forward NFE per iteration",
              "nfe_backward_per_iter": "training backward NFE per iteration"}


def nfe_label(column: str) -> str:
    """The words for an NFE ``column`` of the records (the column's name where there are none)."""
    return NFE_LABELS.get(column, column)


@styled()
def plot_order_matching(table: pd.DataFrame, out_dir: str | Path, *, name: str,
                        column: str = "test_nfe") -> list[Path]:
    """``column`` (test NFE by default) relative to the same solver's λ = 0 run against K, one line per
    solver; a dotted vertical line at each solver's order (where K matches it)."""
    if table.empty:
        return []
    fig, ax = subplots(figsize=(6, 4))
    for method, rows in table.groupby("method", sort=True):
        rows = rows.sort_values("K")
        order = rows["solver_order"].iloc[0]
        label = f"{method} (order {order:g})" if pd.notna(order) else method
        style = method_style(method)
        ax.plot(rows["K"], rows["relative_nfe"], marker=style["marker"], color=style["color"], label=label)
        if pd.notna(order):
            ax.axvline(order, color=style["color"], ls=":", lw=1, label=f"{method}: K = its order")
    reference_line(ax, 1.0, "λ = 0 (no regularisation)")
    measure = nfe_label(column)
    ax.set(xlabel="K (order of the regularised derivative)", ylabel=f"{measure} / {measure} at λ = 0",
           title=f"{name}: NFE reduction against K per solver")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, Path(out_dir), f"{slug(name)}_order_matching")[:1]
