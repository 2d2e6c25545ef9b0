"""Analyses of the SNODE paper (Quaglino, Gallieri, Masci, Koutník, ICLR 2020, arXiv 1906.07038).

- ``spectral_convergence`` (claim S6, from the paper's introduction: "the approximation error decreases exponentially
  with the Legendre order"; the representation is §4): max error of a one-element least-squares Legendre fit of one
  clean trajectory of each system against the degree (``degrees``), and its semi-log slope
  (``spectral_rate.parquet``).

Time to a common target, the paper's headline comparison, is the framework's ``time_to_target`` analysis.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from nodebench.analyses import register_analysis, stored_table
from nodebench.config import Param
from nodebench.markdown import markdown_table
from nodebench.papers.snode import figures as paper_figures
from nodebench.papers.snode.systems import swarm_data, vehicle_data
from nodebench.snode import LegendreSeries


def spectral_convergence_table(degrees=range(2, 31, 2), horizon: float = 5.0, seed: int = 0) -> pd.DataFrame:
    """Max error of a least-squares Legendre fit (one element on [0, ``horizon``], 501 clean samples) against
    the degree, on a trajectory of each SNODE stand-in system, measured on 1001 points (claim S6)."""

    t = torch.linspace(0.0, horizon, 1001, dtype=torch.float64)
    rows = []
    for system in ("multi_agent", "vehicle"):
        generator = torch.Generator().manual_seed(seed)
        y = swarm_data(1, 6, t, generator) if system == "multi_agent" else vehicle_data(1, t, generator)[0]
        for degree in degrees:
            series = LegendreSeries.fit(t[::2], y[:, ::2], int(degree), 0.0, horizon)
            rows.append({"system": system, "degree": int(degree), "max_error": float((series(t) - y).abs().max()),
                         "scale": float(y.abs().max())})
    return pd.DataFrame(rows)


def spectral_rate_table(table: pd.DataFrame, floor: float = 1e-11) -> pd.DataFrame:
    """Per system, the least-squares slope of −log10(max error) against degree over the errors above ``floor``
    (decades gained per degree: a straight line on a semi-log plot means exponential convergence) and R²."""
    rows = []
    for system, group in table.groupby("system", sort=False):
        group = group[group["max_error"] > floor]
        x, y = group["degree"].astype(float), -group["max_error"].map(math.log10)
        slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
        resid = y - (y.mean() + slope * (x - x.mean()))
        r2 = 1.0 - float((resid ** 2).sum() / ((y - y.mean()) ** 2).sum())
        rows.append({"system": system, "decades_per_degree": slope, "r2": r2, "degrees_used": len(group)})
    return pd.DataFrame(rows)


@register_analysis("spectral_convergence", params=(Param("degrees", "ints", low=1),),
                   tables=("spectral_convergence", "spectral_rate"))
def spectral_convergence(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    degrees = spec.get("degrees", list(range(2, 31, 2)))
    table = stored_table(run_dir, "spectral_convergence", lambda: spectral_convergence_table(degrees))
    rate = spectral_rate_table(table)
    rate.to_parquet(Path(run_dir) / "spectral_rate.parquet", index=False)
    rows = [[r.system, f"{r.decades_per_degree:.3g}", f"{r.r2:.3f}", r.degrees_used] for r in rate.itertuples()]
    lines = ["## Spectral convergence of the Legendre fit", "",
             ("Max error of a one-element least-squares Legendre fit of one clean trajectory (501 samples on "
              "[0, 5], error on 1001 points) against the degree, and the slope of −log10(error) against the degree "
              "(a straight semi-log line, high R²: exponential convergence). The rate depends on the trajectory's "
              "smoothness: the vehicle's inputs are piecewise linear between samples, which sets a floor; the "
              "multi-agent system's short-range pull between agents (the k_r term, ε = 0.1) makes close encounters "
              "sharp, which slows convergence."), "",
             markdown_table(["system", "decades per degree", "R² of the semi-log line", "degrees used"], rows), ""]
    return "\n".join(lines), paper_figures.plot_spectral_convergence(table, run_dir / "figures")
