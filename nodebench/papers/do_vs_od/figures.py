"""Figures of the Disc-Opt vs Opt-Disc studies (Onken & Ruthotto 2020): Taylor-test errors, gradient error against
a tight reference, re-discretisation of trained CNFs, and learned 2-D densities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import pandas as pd

from nodebench.plots import method_colors, save_figure, slug


def plot_taylor(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Taylor test: E0 and E1 against h (log–log), one panel per method family, one line per config."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (family, rows) in zip(axes, table.groupby("family", sort=True)):
        for key, group in rows.groupby(["method", "tol", "step_size"], dropna=False, sort=False):
            method, tol, step = key
            step_text = "grid" if pd.isna(step) else f"{step:g}"
            label = f"{method} tol {tol:g}" if pd.notna(tol) else f"{method} h={step_text}"
            line, = ax.loglog(group["h"], group["E1"], marker=".", label=f"E1 {label}")
            ax.loglog(group["h"], group["E0"], ls=":", color=line.get_color(), lw=0.8)
        h = rows["h"].to_numpy()
        ax.loglog(h, h**2 * rows["E1"].max() / h.max() ** 2, "k--", lw=0.8, label="slope 2")
        ax.set(xlabel="h", title=f"{family}: E1 (solid), E0 (dotted)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("error")
    return save_figure(fig, Path(out_dir), "taylor_test")[:1]


def plot_gradient_error(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Relative gradient error against a tight reference, per tolerance (OD) and step size (DO)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    od = table[table["family"] == "OD"]
    for method, rows in od.groupby("method"):
        ax.loglog(rows["tol"], rows["grad_rel_error"], marker="o", label=method)
    for row in table[table["family"] == "DO"].itertuples():
        step = "data grid" if pd.isna(row.step_size) else f"h={row.step_size:g}"
        ax.axhline(row.grad_rel_error, ls="--", lw=0.8, label=f"{row.method} ({step})")
    ax.set(xlabel="solver tolerance (rtol = atol)", ylabel="‖g − g_ref‖ / ‖g_ref‖",
           title="gradient error vs a dopri5 1e-12 reference")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, Path(out_dir), "gradient_error")[:1]


def plot_rediscretisation(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Test NLL and inverse error against the RK4 test step size, per task and method; the reference
    solver's value is a horizontal line."""
    written = []
    for task, rows in table.groupby("task", sort=True):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        colors = method_colors(rows["method"].unique())
        for (method, seed), group in rows.groupby(["method", "seed"], sort=True):
            fixed = group[group["step_size"].notna()].sort_values("step_size")
            ref = group[group["step_size"].isna()]
            for ax, column in zip(axes, ("test_nll", "inverse_error")):
                ax.plot(fixed["step_size"], fixed[column], marker="o", color=colors[method],
                        label=f"{method} (RK4 at h)" if seed == rows.seed.min() else None)
                if not ref.empty:
                    ax.axhline(float(ref[column].iloc[0]), color=colors[method], ls=":", lw=1,
                               label=f"{method} (dopri5 reference)" if seed == rows.seed.min() else None)
        axes[0].set(xscale="log", xlabel="test step size h", ylabel="test NLL [nats]",
                    title=f"{task}: re-discretisation")
        axes[1].set(xscale="log", yscale="log", xlabel="test step size h",
                    ylabel="inverse error, mean ‖x̂ − x‖₂", title=f"{task}: invertibility")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        written += save_figure(fig, Path(out_dir), f"{slug(task)}_rediscretisation")[:1]
    return written


def plot_density_grid(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Learned 2-D densities, one panel per method (first seed), one figure per task."""
    written = []
    for task, rows in table.groupby("task", sort=True):
        first_seed = rows[rows["seed"] == rows["seed"].min()]
        methods = sorted(first_seed["method"].unique())
        fig, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 4), squeeze=False)
        for ax, method in zip(axes[0], methods):
            grid = first_seed[first_seed["method"] == method].pivot(index="y", columns="x", values="log_prob")
            ax.imshow(np.exp(grid.to_numpy()), origin="lower", cmap="magma", interpolation="nearest",
                      extent=(grid.columns.min(), grid.columns.max(), grid.index.min(), grid.index.max()))
            ax.set(title=f"{method}: learned density p(x)", xticks=[], yticks=[])
        fig.suptitle(f"{task} (reference solver, exact trace)")
        written += save_figure(fig, Path(out_dir), f"{slug(task)}_density")[:1]
    return written
