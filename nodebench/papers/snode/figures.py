"""Figures of the SNODE paper (Quaglino et al. 2020): spectral convergence of the Legendre fit (introduction, §4)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nodebench.figure_style import styled, subplots
from nodebench.plots import save_figure


@styled()
def plot_spectral_convergence(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Max Legendre-fit error against degree per system, semi-log (a straight line: exponential convergence)."""
    fig, ax = subplots(figsize=(6, 4))
    for marker, (system, group) in zip("osD^v<>ph", table.groupby("system", sort=False)):
        ax.semilogy(group["degree"], group["max_error"], marker=marker, label=system)
    ax.set(xlabel="Legendre degree p (one element)", ylabel="max |fit − trajectory|",
           title="spectral convergence of the Legendre fit")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, Path(out_dir), "spectral_convergence")[:1]
