"""Figures of the GQ adjoint paper (Norcliffe & Deisenroth 2023): the toy problem's gradient error against T."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nodebench.figure_style import method_style, styled, subplots
from nodebench.plots import save_figure


@styled()
def plot_toy_gradient(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Toy problem (GQ paper): relative gradient error against the end time T, log y, one panel per
    gradient (``wrt``: z0, a, T), one line per method; failed solves leave gaps."""
    wrts = [w for w in ("z0", "a", "T") if w in set(table["wrt"])] or sorted(table["wrt"].unique())
    fig, axes = subplots(1, len(wrts), figsize=(4.2 * len(wrts), 3.8), sharey=True, squeeze=False)
    for ax, wrt in zip(axes[0], wrts):
        rows = table[table["wrt"] == wrt]
        for method, group in rows.groupby("method", sort=True):
            group = group.sort_values("T")
            # round-off can make an error exactly 0: floor it so the log axis keeps the point
            err = group["rel_error"].where(group["rel_error"].isna(), group["rel_error"].clip(lower=1e-17))
            style = method_style(method)
            ax.plot(group["T"], err, color=style["color"], marker=style["marker"], ls=style["ls"], ms=3, lw=1,
                    label=method)
        ax.set_yscale("log")
        ax.set(xlabel="end time T", title=f"dL/d{wrt}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("relative error vs analytic")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("toy gradient: dz/dt = a·z, L = z(T)²")
    return save_figure(fig, Path(out_dir), "toy_gradient")[:1]
