"""Figures of the Disc-Opt vs Opt-Disc studies (Onken & Ruthotto 2020): Taylor-test errors, gradient error against
a tight reference, re-discretisation of trained CNFs, and learned 2-D densities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nodebench.figure_style import (REFERENCE_STYLES, VARIANT_MARKERS, band, method_style, reference_line, shades,
                                    styled, subplots)
from nodebench.plots import save_figure, slug


@styled()
def plot_taylor(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Taylor test: E0 and E1 against h (log–log), one panel per method family, one line per config."""
    fig, axes = subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (family, rows) in zip(axes, table.groupby("family", sort=True)):
        configs = list(rows.groupby(["method", "tol", "step_size"], dropna=False, sort=False))
        counts = pd.Series([key[0] for key, _ in configs]).value_counts()
        seen: dict[str, int] = {}
        for k, (key, group) in enumerate(configs):
            method, tol, step = key
            step_text = "grid" if pd.isna(step) else f"{step:g}"
            label = f"{method} tol {tol:g}" if pd.notna(tol) else f"{method} h={step_text}"
            variant = seen[method] = seen.get(method, -1) + 1  # the variants of one method: shades and markers
            colour = shades(method_style(method)["color"], int(counts[method]))[variant]
            marker = VARIANT_MARKERS[variant % len(VARIANT_MARKERS)]
            ax.loglog(group["h"], group["E1"], marker=marker, ms=6 - 1.5 * (k % 2), mfc="none" if k % 2 else colour,
                      color=colour, lw=2.2 - 0.8 * (k % 2), label=f"E1 {label}")
            ax.loglog(group["h"], group["E0"], ls=":", color=colour, lw=0.8)
        h = rows["h"].to_numpy()
        colour, dash = REFERENCE_STYLES[0]
        ax.loglog(h, h**2 * rows["E1"].max() / h.max() ** 2, color=colour, ls=dash, lw=1.3, label="slope 2 (reference)")
        ax.set(xlabel="h", title=f"{family}: E1 (solid), E0 (dotted)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("error")
    return save_figure(fig, Path(out_dir), "taylor_test")[:1]


@styled()
def plot_gradient_error(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Relative gradient error against a tight reference, per tolerance (OD) and step size (DO)."""
    fig, ax = subplots(figsize=(6, 4))
    od = table[table["family"] == "OD"]
    for method, rows in od.groupby("method"):
        style = method_style(method)
        ax.loglog(rows["tol"], rows["grad_rel_error"], marker=style["marker"], color=style["color"], label=method)
    for i, row in enumerate(table[table["family"] == "DO"].itertuples()):
        step = "data grid" if pd.isna(row.step_size) else f"h={row.step_size:g}"
        reference_line(ax, row.grad_rel_error, f"{row.method} ({step}, no tolerance)", i)
    ax.set(xlabel="solver tolerance (rtol = atol)", ylabel="‖g − g_ref‖ / ‖g_ref‖",
           title="gradient error vs a dopri5 1e-12 reference")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, Path(out_dir), "gradient_error")[:1]


@styled()
def plot_rediscretisation(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Test NLL and inverse error against the RK4 test step size, per task and method; the reference
    solver's value is a horizontal line."""
    written = []
    for task, rows in table.groupby("task", sort=True):
        fig, axes = subplots(1, 2, figsize=(10, 4))
        seeds = rows["seed"].nunique()
        spread = f" (median, min–max of {seeds} seeds)" if seeds > 1 else ""
        for i, (method, group) in enumerate(rows.groupby("method", sort=True)):
            fixed = group[group["step_size"].notna()]
            ref = group[group["step_size"].isna()]
            colour = method_style(method)["color"]
            for ax, column in zip(axes, ("test_nll", "inverse_error")):
                stats = fixed.groupby("step_size")[column].agg(["median", "min", "max"]).reset_index()
                band(ax, stats["step_size"], stats["median"], stats["min"], stats["max"], method=method,
                     label=f"{method} trained, tested with RK4 at h{spread}")
                if not ref.empty:
                    ax.axhline(float(ref[column].median()), color=colour, ls=REFERENCE_STYLES[i % 4][1], lw=1.3,
                               label=f"{method} tested with dopri5 (reference)")
        axes[0].set(xscale="log", xlabel="test step size h", ylabel="test NLL [nats]",
                    title=f"{task}: re-discretisation")
        axes[1].set(xscale="log", yscale="log", xlabel="test step size h",
                    ylabel="inverse error, mean ‖x̂ − x‖₂", title=f"{task}: invertibility")
        for ax in axes:
            ax.legend(fontsize=7)
        written += save_figure(fig, Path(out_dir), f"{slug(task)}_rediscretisation")[:1]
    return written


@styled()
def plot_density_grid(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Learned 2-D densities, one panel per method (first seed), one figure per task."""
    written = []
    for task, rows in table.groupby("task", sort=True):
        first_seed = rows[rows["seed"] == rows["seed"].min()]
        methods = sorted(first_seed["method"].unique())
        fig, axes = subplots(1, len(methods), figsize=(4 * len(methods), 4), squeeze=False)
        for ax, method in zip(axes[0], methods):
            grid = first_seed[first_seed["method"] == method].pivot(index="y", columns="x", values="log_prob")
            image = ax.imshow(np.exp(grid.to_numpy()), origin="lower", cmap="magma", interpolation="nearest",
                              extent=(grid.columns.min(), grid.columns.max(), grid.index.min(), grid.index.max()))
            ax.set(title=f"{method}: learned density p(x)", xlabel="x₁", ylabel="x₂")
            fig.colorbar(image, ax=ax, label="p(x)", shrink=0.85)
        fig.suptitle(f"{task} (reference solver, exact trace)")
        written += save_figure(fig, Path(out_dir), f"{slug(task)}_density")[:1]
    return written
