"""Analyses of the Gauss–Legendre quadrature adjoint paper (Norcliffe & Deisenroth 2023, arXiv 2308.10644).

- ``toy_gradient`` (the paper's toy gradient problem, ``experiments/toy_gradient.py`` of the official code): dz/dt =
  a·z, z0 = ``z0`` (10), a = ``a`` (0.2), L = z(T)² with the end time T learnable, solved by each of ``methods``
  (default gq, gq_batched, adjoint, seminorm, direct) at ``rtol`` (1e-6), ``atol`` (1e-7), ``gtol`` (0.4) in ``dtype``
  ("float64"; the official script runs float32, analytic values included, whose rounding, ~1e-7 relative, is not
  far below the errors measured at rtol 1e-6), for T in ``T_values`` or ``T_start``:``T_stop`` (inclusive) step
  ``T_step`` (default 19.0:29.0 step 0.5; the official code: 19.00:29.04 step 0.02). Stores ``toy_gradient.parquet``
  (method, T, wrt ∈ {z0, a, T}, value, analytic, rel_error, status; a failed solve is a row with NaN values and its
  error as status), draws the relative error against T and reports its median and max per method and wrt.
  :func:`toy_rules` refuses a block that cannot run when the paper loads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from nodebench.analyses import register_analysis, stored_table
from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.markdown import markdown_table
from nodebench.methods import get_method
from nodebench.papers.gq_adjoint import figures as paper_figures
from nodebench.tasks.base import check_dtype_range

TOY_METHODS = ("gq", "gq_batched", "adjoint", "seminorm", "direct")
TOY_WRT = ("z0", "a", "T")


class _Growth(nn.Module):
    """dz/dt = a·z with a learnable scalar a."""

    def __init__(self, a: float, dtype: torch.dtype):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=dtype))

    def forward(self, t, z):
        return self.a * z


def toy_analytic(z0: float, a: float, T: float) -> dict[str, float]:
    """Exact gradients of L = z(T)² = (z0·e^{aT})² with respect to z0, a and T."""
    growth = math.exp(2 * a * T)
    return {"z0": 2 * z0 * growth, "a": 2 * T * z0**2 * growth, "T": 2 * a * z0**2 * growth}


#: The most end times one toy study solves (the paper's grid has 503).
MAX_TOY_T = 10_000
#: The largest exponent 2·a·T of the analytic gradients, which are finite in float64 up to about e^709.
MAX_TOY_EXPONENT = 700.0
TOY_RANGE = ("T_start", "T_stop", "T_step")


def _toy_grid(spec: dict[str, Any]) -> tuple[float, float, float, int]:
    """``T_start``, ``T_stop``, ``T_step`` (defaults 19, 29, 0.5) and the number of end times they give."""
    start, stop = float(spec.get("T_start", 19.0)), float(spec.get("T_stop", 29.0))
    step = float(spec.get("T_step", 0.5))
    return start, stop, step, math.floor((stop - start) / step + 1e-9) + 1


#: The ``toy_gradient`` block's parameters.
TOY_PARAMS = {p.name: p for p in (
    Param("methods", "strs"), *(Param(name, "float", positive=True) for name in ("rtol", "atol", "gtol")),
    Param("dtype", "str", choices=("float32", "float64")), Param("z0", "float"), Param("a", "float"),
    Param("T_values", "floats", positive=True), Param("T_start", "float", positive=True),
    Param("T_stop", "float", positive=True), Param("T_step", "float", positive=True))}


def toy_T_values(spec: dict[str, Any]) -> list[float]:
    """The end times of the toy study: ``T_values``, else ``T_start``…``T_stop`` (inclusive) by ``T_step``."""
    if "T_values" in spec:
        return [float(T) for T in spec["T_values"]]
    start, _, step, count = _toy_grid(spec)
    return [round(start + i * step, 10) for i in range(count)]


def toy_rules(spec: dict[str, Any]) -> str | None:
    """What makes a ``toy_gradient`` block unusable, or ``None``: ``T_values`` given with a range, an empty or
    oversized range, ``z0`` or ``a`` zero (the relative error to a zero gradient is undefined), analytic
    gradients that overflow float64, or a value ``dtype`` cannot hold (:func:`~nodebench.tasks.base.check_dtype_range`:
    ``rtol = 1e-300`` is 0 in float32)."""
    if "T_values" in spec and any(key in spec for key in TOY_RANGE):
        return "give T_values or T_start/T_stop/T_step, not both"
    if "T_values" in spec:
        largest = max(spec["T_values"])
    else:
        start, stop, _, count = _toy_grid(spec)
        if start > stop:
            return f"T_start {start:g} is above T_stop {stop:g}"
        if count > MAX_TOY_T:
            return f"T_start..T_stop by T_step gives {count:,} end times; at most {MAX_TOY_T:,} (raise T_step)"
        largest = stop
    z0, a = float(spec.get("z0", 10.0)), float(spec.get("a", 0.2))
    if z0 == 0 or a == 0:
        return f"z0 and a must be non-zero (got z0 = {z0:g}, a = {a:g}): the relative error to a zero gradient " \
               "is undefined"
    if 2 * abs(a) * largest > MAX_TOY_EXPONENT:
        return f"the analytic gradients e^(2·a·T) overflow float64 at T = {largest:g} with a = {a:g}; need " \
               f"2·|a|·T ≤ {MAX_TOY_EXPONENT:g}"
    try:  # in float32, rtol = 1e-300 was 0 (another tolerance), z0 = 1e300 inf; gtol is a node count's Python float
        check_dtype_range({k: v for k, v in spec.items() if k in TOY_PARAMS and k != "gtol"}, TOY_PARAMS,
                          spec.get("dtype", "float64"), "parameter", set_dtype='dtype = "float64"')
    except UserError as err:
        return str(err)
    return None


def toy_gradient_table(methods=TOY_METHODS, T_values=(19.0, 24.0, 29.0), *, z0: float = 10.0, a: float = 0.2,
                       rtol: float = 1e-6, atol: float = 1e-7, gtol: float = 0.4,
                       dtype: str = "float64") -> pd.DataFrame:
    """Gradients of the toy problem (GQ paper): dz/dt = a·z, L = z(T)², t = [0, T] with T learnable, by
    each method's backward pass, against the analytic values. One row per (method, T, wrt); a solve that
    raises gives NaN values and ``status`` = the error."""

    torch_dtype = getattr(torch, dtype)
    rows = []
    for method in methods:
        for T in T_values:
            analytic = toy_analytic(z0, a, T)
            try:
                field = _Growth(a, torch_dtype)
                y0 = torch.tensor([z0], dtype=torch_dtype, requires_grad=True)
                end = torch.tensor(T, dtype=torch_dtype, requires_grad=True)
                t = torch.stack([torch.zeros((), dtype=torch_dtype), end])
                solve = get_method(method).make_solve(list(field.parameters()), rtol=rtol, atol=atol, gtol=gtol)
                loss = solve(field, y0, t)[-1].pow(2).sum()
                grads = torch.autograd.grad(loss, [y0, field.a, end], allow_unused=True)
                values = {w: math.nan if g is None else float(g.sum()) for w, g in zip(TOY_WRT, grads)}
                status = "ok" if all(math.isfinite(v) for v in values.values()) else "non-finite"
            except Exception as err:  # noqa: BLE001 - a failing method is a result, not a crash
                values = dict.fromkeys(TOY_WRT, math.nan)
                status = f"error: {type(err).__name__}: {' '.join(str(err).split())[:160]}"
            for wrt in TOY_WRT:
                exact = analytic[wrt]
                rows.append({"method": method, "T": float(T), "wrt": wrt, "value": values[wrt], "analytic": exact,
                             "rel_error": abs(values[wrt] - exact) / abs(exact), "status": status})
    return pd.DataFrame(rows)


@register_analysis("toy_gradient", params=tuple(TOY_PARAMS.values()), rules=toy_rules, tables=("toy_gradient",))
def toy_gradient(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    methods = list(spec.get("methods", TOY_METHODS))
    settings = {k: spec[k] for k in ("z0", "a", "rtol", "atol", "gtol", "dtype") if k in spec}
    table = stored_table(run_dir, "toy_gradient", lambda: toy_gradient_table(methods, toy_T_values(spec), **settings))
    rows = []
    for method in dict.fromkeys(table["method"]):
        for wrt in TOY_WRT:
            group = table[(table["method"] == method) & (table["wrt"] == wrt)]
            ok = group[group["status"] == "ok"]
            rows.append([method, f"dL/d{wrt}", f"{ok['rel_error'].median():.2g}" if len(ok) else "–",
                         f"{ok['rel_error'].max():.2g}" if len(ok) else "–", f"{len(ok)}/{len(group)}"])
    T = table["T"]
    failed = table[table["status"] != "ok"].drop_duplicates(["method", "T"])
    note = "" if failed.empty else "\n\nFailed solves: " + "; ".join(
        f"{r.method} at T = {r.T:g} ({r.status})" for r in failed.head(10).itertuples()) + (
        f"; … {len(failed) - 10} more" if len(failed) > 10 else "")
    section = "\n".join([
        "## Toy gradient accuracy (dz/dt = a·z, L = z(T)²)", "",
        (f"z0 = {spec.get('z0', 10.0):g}, a = {spec.get('a', 0.2):g}, t = [0, T] with T learnable, "
         f"{len(T.unique())} end times T ∈ [{T.min():g}, {T.max():g}]; rtol {spec.get('rtol', 1e-6):g}, "
         f"atol {spec.get('atol', 1e-7):g}, gtol {spec.get('gtol', 0.4):g}, {spec.get('dtype', 'float64')}. "
         "Relative error `|g − g*|/|g*|` of each method's backward pass against the analytic gradients "
         "dL/dz0 = 2·z0·e^{2aT}, dL/da = 2T·z0²·e^{2aT}, dL/dT = 2a·z0²·e^{2aT}. The paper also runs MALI and "
         "ACA (TorchDiffEqPack), which nodebench does not have."), "",
        markdown_table(["method", "gradient", "median rel. error", "max rel. error", "ok/T values"], rows) + note, ""])
    return section, paper_figures.plot_toy_gradient(table, run_dir / "figures")
