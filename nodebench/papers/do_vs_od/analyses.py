"""Analyses of the Disc-Opt vs Opt-Disc paper (Onken & Ruthotto 2020, arXiv 2005.13420).

- ``taylor`` (the Taylor test of gradient consistency, after the official ``checkDerivative*.jl`` scripts):
  :func:`gradients.gradient_taylor_table`, E0/E1 against h and their fitted slopes, stored as ``taylor.parquet`` and
  ``taylor_slopes.parquet``;
- ``gradient_error``: :func:`gradients.gradient_error_vs_reference`, each method's gradient against
  backprop through dopri5 at 1e-12;
- ``rediscretisation`` (the paper's CNF experiments: DO models re-discretised at test time): figures of the per-case
  ``rediscretisation`` table the density tasks write (test NLL and inverse error against the RK4 test step size);
- ``density``: the learned 2-D densities from the per-case ``density_grid`` table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nodebench.analyses import case_table, register_analysis, stored_table
from nodebench.config import Param
from nodebench.markdown import fmt3, markdown_table
from nodebench.papers.do_vs_od import figures as paper_figures
from nodebench.papers.do_vs_od import gradients

#: The gradient studies' parameters (step size "grid": the data grid, DO only).
PARAMS = (Param("task", "str"), Param("methods", "strs"), Param("tolerances", "floats", positive=True),
          Param("step_sizes", "floats", positive=True, choices=("grid",)), Param("seed", "int", low=0),
          Param("hparams", "table"))


def _gradient_args(spec: dict[str, Any]) -> dict[str, Any]:
    args = {p.name: spec[p.name] for p in PARAMS if p.name in spec}
    args["task_name"] = args.pop("task", "cubic_spiral")
    if "step_sizes" in args:
        args["step_sizes"] = [None if s == "grid" else s for s in args["step_sizes"]]
    return args


def _step_text(row) -> str:
    return "data grid" if pd.isna(row.step_size) and row.family == "DO" else fmt3(row.step_size)


@register_analysis("taylor", params=PARAMS, tables=("taylor", "taylor_slopes"))
def taylor(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = stored_table(run_dir, "taylor", lambda: gradients.gradient_taylor_table(**_gradient_args(spec)))
    slopes = stored_table(run_dir, "taylor_slopes", lambda: gradients.taylor_summary(table))
    rows = [[r.method, r.family, fmt3(r.tol), _step_text(r), f"{r.E0_slope:.2f}", f"{r.E1_slope:.2f}",
             f"{r.E1_min:.2g}"] for r in slopes.itertuples()]
    section = "\n".join([
        f"## Gradient consistency: Taylor test ({spec.get('task', 'cubic_spiral')}, float64)", "",
        ("E0 = |J(θ+h·dθ) − J(θ)|, E1 = |J(θ+h·dθ) − J(θ) − h·∇Jᵀdθ| for h = 2^−1…2^−20 along one random unit "
         "direction, ∇J from the method's own backward pass. E1 falls with slope 2 only when ∇J is the "
         "gradient of the J being evaluated. Slopes are least-squares fits over the points above round-off."), "",
        markdown_table(["method", "family", "tol", "step", "E0 slope", "E1 slope", "min E1"], rows), ""])
    return section, paper_figures.plot_taylor(table, run_dir / "figures")


@register_analysis("gradient_error", params=PARAMS, tables=("gradient_error",))
def gradient_error(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = stored_table(run_dir, "gradient_error", lambda: gradients.gradient_error_vs_reference(**_gradient_args(spec)))
    rows = [[r.method, r.family, fmt3(r.tol), _step_text(r), f"{r.grad_rel_error:.2g}", f"{r.loss_error:.2g}",
             f"{r.nfe_forward}/{r.nfe_backward}"] for r in table.itertuples()]
    section = "\n".join([
        "## Gradient error against a tight reference", "",
        ("Relative error of each method's gradient against backprop through dopri5 at rtol = atol = 1e-12 "
         "(float64). For DO this is the discretisation error of the discrete model, not a gradient error."), "",
        markdown_table(["method", "family", "tol", "step", "‖g−g_ref‖/‖g_ref‖", "|J−J_ref|", "NFE fwd/bwd"], rows), ""])
    return section, paper_figures.plot_gradient_error(table, run_dir / "figures")


@register_analysis("rediscretisation")
def rediscretisation(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = case_table(run_dir, "rediscretisation", records)
    if table.empty:
        return "## Re-discretisation and invertibility\n\nNo density case finished at this preset.\n", []
    rows = []
    for (task, method, step), group in table.groupby(["task", "method", "step_size"], dropna=False, sort=True):
        rows.append([task, method, "dopri5 reference" if pd.isna(step) else f"RK4 h={step:g}",
                     f"{group['test_nll'].median():.4g}", f"{group['inverse_error'].median():.2g}",
                     f"{group['inverse_error_frob'].median():.2g}"])
    section = "\n".join([
        "## Re-discretisation and invertibility", "",
        ("Each trained CNF is evaluated again with classic RK4 at several test step sizes, and with the dopri5 "
         "reference. Inverse error: on the first test batch, x̂ = f⁻¹(f(x)) with the same solver both ways; "
         "`inverse_error` is the mean per-sample ‖x̂ᵢ − xᵢ‖₂ (OT-Flow's corrected definition), "
         "`inverse_error_frob` is ‖X̂ − X‖_F / n (the DOvsOD code's formula, about √n smaller)."), "",
        markdown_table(["task", "method", "evaluated with", "test NLL", "inverse error", "inverse error (Frob/n)"],
                       rows),
        ""])
    return section, paper_figures.plot_rediscretisation(table, run_dir / "figures")


@register_analysis("density")
def density(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = case_table(run_dir, "density_grid", records)
    if table.empty:
        return "", []
    drawn = paper_figures.plot_density_grid(table, run_dir / "figures")
    section = "\n".join(["## Learned densities (2-D)", "",
                         "Log-density of each trained CNF on a grid over the test data (reference solver, exact "
                         "trace); first seed of each method: "
                         + ", ".join(f"`figures/{p.name}`" for p in drawn) + "."]) + "\n"
    return section, drawn
