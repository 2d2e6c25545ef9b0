"""Analyses: paper-specific studies that are not training runs, run after a sweep.

An analysis is declared in ``experiments.toml`` as ``[[analysis]]`` with a ``kind`` from
:data:`ANALYSES`, the ``presets`` it runs at, and its parameters. It writes ``<kind>.parquet`` into the
run directory (computed once: ``nodebench report`` and resumed runs read the stored table), draws its
figures, and returns a Markdown section for the report. Claims can then check its table
(``table_threshold`` in :mod:`nodebench.claims`).

Kinds:

- ``taylor``: :func:`nodebench.gradients.gradient_taylor_table` (E0/E1 against h) and its fitted
  slopes, stored as ``taylor.parquet`` and ``taylor_slopes.parquet``;
- ``gradient_error``: :func:`nodebench.gradients.gradient_error_vs_reference`;
- ``rediscretisation``: figures of the per-case ``rediscretisation`` table the density tasks write
  (test NLL and inverse error against the RK4 test step size);
- ``density``: the learned 2-D densities from the per-case ``density_grid`` table;
- ``toy_gradient`` (GQ paper, toy problem): dz/dt = a·z, z0 = ``z0`` (10), a = ``a`` (0.2), L = z(T)²
  with the end time T learnable, solved by each of ``methods`` (default gq, gq_batched, adjoint,
  seminorm, direct) at ``rtol`` (1e-6), ``atol`` (1e-7), ``gtol`` (0.4) in ``dtype`` ("float64"), for T
  in ``T_values`` or ``T_start``:``T_stop`` (inclusive) step ``T_step`` (default 19.0:29.0 step 0.5; the
  paper: 19.00:29.04 step 0.02). Stores ``toy_gradient.parquet`` (method, T, wrt ∈ {z0, a, T}, value,
  analytic, rel_error, status; a failed solve is a row with NaN values and its error as status), draws
  the relative error against T and reports its median and max per method and wrt;
- ``scaling``: from the run's records (successful rows), for each experiment (``experiments``, default
  all) with more than one value of hyper-parameter ``param`` (e.g. "width", read from the records'
  ``hparams`` JSON): figures of training time (log–log), final ``metric`` (default the experiment's
  headline metric: the first of test_mse, test_nll, test_kl, test_accuracy present) and peak memory
  against ``param``, and ``metric`` against training time; a table per experiment of param × method
  with medians over seeds and the speed-up t(``reference``)/t(method) (``reference`` default "adjoint");
- ``pareto`` (TayNODE): from the records of ``experiments`` (default all), per experiment and method, test NFE
  and training forward NFE per iteration against the task metric (``metric``, default the headline one) over
  λ, one series per K of R_K, RNODE and λ = 0, with the (test NFE, metric) Pareto front; stores
  ``pareto.parquet`` (:func:`pareto_table`);
- ``order_matching`` (TayNODE): test NFE relative to the same solver's λ = 0 run against K, per solver, with
  the solver's order (``orders``, default :data:`SOLVER_ORDERS`) marked; stores ``order_matching.parquet``;
- ``taylor_cost`` (TayNODE): :func:`nodebench.taylor.cost.measure_cost` (``dims``, ``orders``, ``rounds``,
  ``cap``, ``batch``, ``hidden``, ``dtype``, ``device``, ``seed``), Taylor mode against nested jvp; stores
  ``taylor_cost_samples.parquet`` and ``taylor_cost.parquet`` (one row per dim and K, with the speed-ups).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from nodebench import gradients, plots
from nodebench.records import expand_hparams, load_table
from nodebench.report import markdown_table

PARAMS = ("task", "methods", "tolerances", "step_sizes", "seed", "hparams")


def _stored(run_dir: Path, name: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    table = load_table(run_dir, name)
    if table.empty:
        table = compute()
        table.to_parquet(run_dir / f"{name}.parquet", index=False)
    return table


def _gradient_args(spec: dict[str, Any]) -> dict[str, Any]:
    args = {k: spec[k] for k in PARAMS if k in spec}
    args["task_name"] = args.pop("task", "cubic_spiral")
    if "step_sizes" in args:
        args["step_sizes"] = [None if s == "grid" else s for s in args["step_sizes"]]
    return args


def _fmt(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3g}"


def _step_text(row) -> str:
    return "data grid" if pd.isna(row.step_size) and row.family == "DO" else _fmt(row.step_size)


def taylor(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = _stored(run_dir, "taylor", lambda: gradients.gradient_taylor_table(**_gradient_args(spec)))
    slopes = _stored(run_dir, "taylor_slopes", lambda: gradients.taylor_summary(table))
    rows = [[r.method, r.family, _fmt(r.tol), _step_text(r), f"{r.E0_slope:.2f}", f"{r.E1_slope:.2f}",
             f"{r.E1_min:.2g}"] for r in slopes.itertuples()]
    section = "\n".join([
        f"## Gradient consistency: Taylor test ({spec.get('task', 'cubic_spiral')}, float64)", "",
        ("E0 = |J(θ+h·dθ) − J(θ)|, E1 = |J(θ+h·dθ) − J(θ) − h·∇Jᵀdθ| for h = 2^−1…2^−20 along one random unit "
         "direction, ∇J from the method's own backward pass. E1 falls with slope 2 only when ∇J is the "
         "gradient of the J being evaluated. Slopes are least-squares fits over the points above round-off."), "",
        markdown_table(["method", "family", "tol", "step", "E0 slope", "E1 slope", "min E1"], rows), ""])
    return section, plots.plot_taylor(table, run_dir / "figures")


def gradient_error(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = _stored(run_dir, "gradient_error", lambda: gradients.gradient_error_vs_reference(**_gradient_args(spec)))
    rows = [[r.method, r.family, _fmt(r.tol), _step_text(r), f"{r.grad_rel_error:.2g}", f"{r.loss_error:.2g}",
             f"{r.nfe_forward}/{r.nfe_backward}"] for r in table.itertuples()]
    section = "\n".join([
        "## Gradient error against a tight reference", "",
        ("Relative error of each method's gradient against backprop through dopri5 at rtol = atol = 1e-12 "
         "(float64). For DO this is the discretisation error of the discrete model, not a gradient error."), "",
        markdown_table(["method", "family", "tol", "step", "‖g−g_ref‖/‖g_ref‖", "|J−J_ref|", "NFE fwd/bwd"], rows), ""])
    return section, plots.plot_gradient_error(table, run_dir / "figures")


def _case_table(run_dir: Path, name: str, records: pd.DataFrame) -> pd.DataFrame:
    """A per-case table joined with each case's task, method and seed (empty when there is none)."""
    table = load_table(run_dir, name)
    if table.empty or records.empty:
        return pd.DataFrame()
    return table.merge(records[["case_id", "task", "method", "seed"]], on="case_id")


def rediscretisation(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = _case_table(run_dir, "rediscretisation", records)
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
    return section, plots.plot_rediscretisation(table, run_dir / "figures")


def density(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    table = _case_table(run_dir, "density_grid", records)
    if table.empty:
        return "", []
    figures = plots.plot_density_grid(table, run_dir / "figures")
    section = "\n".join(["## Learned densities (2-D)", "",
                         "Log-density of each trained CNF on a grid over the test data (reference solver, exact "
                         "trace); first seed of each method: "
                         + ", ".join(f"`figures/{p.name}`" for p in figures) + "."]) + "\n"
    return section, figures


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


def toy_T_values(spec: dict[str, Any]) -> list[float]:
    """The end times of the toy study: ``T_values``, else ``T_start``…``T_stop`` (inclusive) by ``T_step``."""
    if "T_values" in spec:
        return [float(T) for T in spec["T_values"]]
    start, stop = float(spec.get("T_start", 19.0)), float(spec.get("T_stop", 29.0))
    step = float(spec.get("T_step", 0.5))
    count = math.floor((stop - start) / step + 1e-9) + 1
    return [round(start + i * step, 10) for i in range(count)]


def toy_gradient_table(methods=TOY_METHODS, T_values=(19.0, 24.0, 29.0), *, z0: float = 10.0, a: float = 0.2,
                       rtol: float = 1e-6, atol: float = 1e-7, gtol: float = 0.4,
                       dtype: str = "float64") -> pd.DataFrame:
    """Gradients of the toy problem (GQ paper): dz/dt = a·z, L = z(T)², t = [0, T] with T learnable, by
    each method's backward pass, against the analytic values. One row per (method, T, wrt); a solve that
    raises gives NaN values and ``status`` = the error."""
    from nodebench.methods import get_method

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


def toy_gradient(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    methods = list(spec.get("methods", TOY_METHODS))
    settings = {k: spec[k] for k in ("z0", "a", "rtol", "atol", "gtol", "dtype") if k in spec}
    table = _stored(run_dir, "toy_gradient", lambda: toy_gradient_table(methods, toy_T_values(spec), **settings))
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
         "Relative error |g − g*|/|g*| of each method's backward pass against the analytic gradients "
         "dL/dz0 = 2·z0·e^{2aT}, dL/da = 2T·z0²·e^{2aT}, dL/dT = 2a·z0²·e^{2aT}. The paper also runs MALI and "
         "ACA (TorchDiffEqPack), which nodebench does not have."), "",
        markdown_table(["method", "gradient", "median rel. error", "max rel. error", "ok/T values"], rows) + note, ""])
    return section, plots.plot_toy_gradient(table, run_dir / "figures")


HEADLINE_METRICS = ("test_mse", "test_nll", "test_kl", "test_accuracy")


def _median(rows: pd.DataFrame, column: str) -> float:
    return float(rows[column].median()) if column in rows and rows[column].notna().any() else math.nan


def _fmt4(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.4g}"


def _fmt_value(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def scaling_table(records: pd.DataFrame, param_col: str, metric: str | None,
                  reference: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (param value × method) of the scaling table of one experiment's records (all
    statuses; medians over the successful seeds)."""
    header = [param_col.removeprefix("hp_"), "method", "ok/runs", "train time [s]", "time/iter [ms]",
              f"speed-up vs {reference}", "peak mem [MiB]", "NFE fwd/iter", "NFE bwd/iter", metric or "metric"]
    ok = records[records["status"] == "ok"] if "status" in records else records
    x, _ = plots._param_axis(records[param_col])
    rows = []
    for value in sorted(records[param_col].unique(), key=lambda v: x[records[param_col] == v].iloc[0]):
        at_value = records[records[param_col] == value]
        ok_value = ok[ok[param_col] == value]
        t_ref = _median(ok_value[ok_value["method"] == reference], "train_wall_s")
        for method in [m for m in dict.fromkeys(records["method"]) if m in set(at_value["method"])]:
            runs, good = at_value[at_value["method"] == method], ok_value[ok_value["method"] == method]
            t = _median(good, "train_wall_s")
            speedup = t_ref / t if t > 0 and not math.isnan(t_ref) else math.nan
            rows.append([_fmt_value(value), method, f"{len(good)}/{len(runs)}", _fmt4(t),
                         _fmt4(_median(good, "time_per_iter_s") * 1e3),
                         "–" if math.isnan(speedup) else f"{speedup:.3g}×",
                         _fmt4(_median(good, "peak_mem_bytes") / 2**20), _fmt4(_median(good, "nfe_forward_per_iter")),
                         _fmt4(_median(good, "nfe_backward_per_iter")),
                         "–" if metric is None else _fmt4(_median(good, metric))])
    return header, rows


def scaling(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    param, reference = spec["param"], spec.get("reference", "adjoint")
    title = f"## Scaling with {param}"
    param_col = f"hp_{param}"
    records = expand_hparams(records)
    if not records.empty and param_col not in records and param in records:
        param_col = param
    if records.empty or param_col not in records:
        return f"{title}\n\nNo case of this run records the hyper-parameter `{param}`.\n", []
    if spec.get("experiments"):
        records = records[records["experiment"].isin(spec["experiments"])]
    records = records[records[param_col].notna()]
    lines = [title, "",
             (f"Per experiment with more than one value of `{param}`: medians over successful seeds; speed-up = "
             f"t({reference}) / t(method) at the same `{param}` (above 1: faster than {reference}). Figures: training "
             f"time, final metric and peak memory against `{param}` (median, min–max whiskers over seeds), and the "
             "metric against training time (marker size grows with the parameter)."), ""]
    figures: list[Path] = []
    for experiment, group in records.groupby("experiment", sort=False):
        if group[param_col].astype(str).nunique() < 2:
            continue
        ok = group[group["status"] == "ok"] if "status" in group else group
        metric = spec.get("metric") or next((m for m in HEADLINE_METRICS if m in ok and ok[m].notna().any()), None)
        header, rows = scaling_table(group, param_col, metric, reference)
        lines += [f"### {experiment}: {param}", "", markdown_table(header, rows), ""]
        if not ok.empty:
            figures += plots.plot_scaling(ok, param, metric, run_dir / "figures", name=str(experiment),
                                          param_col=param_col)
    if len(lines) == 5:
        lines += [f"No experiment of this run has more than one value of `{param}`.", ""]
    return "\n".join(lines), figures


ANALYSES: dict[str, Callable] = {"taylor": taylor, "gradient_error": gradient_error,
                                 "rediscretisation": rediscretisation, "density": density,
                                 "toy_gradient": toy_gradient, "scaling": scaling}


def run_analyses(spec, run_dir: Path, records: pd.DataFrame, *, preset: str) -> tuple[list[str], list[Path]]:
    """Run the paper's analyses declared for ``preset``; returns report sections and figure paths."""
    sections: list[str] = []
    figures: list[Path] = []
    for analysis in spec.analyses:
        if preset not in analysis.get("presets", []):
            continue
        section, figs = ANALYSES[analysis["kind"]](analysis, Path(run_dir), records)
        sections.append(section)
        figures += figs
    return sections, figures


# -- TayNODE (Kelly et al. 2020): NFE–metric trade-off over λ and K, K against solver order, derivative cost ----

#: Order of each training method's adaptive solver (the order of its propagated solution: its error estimate's
#: leading term involves d^p z/dt^p, so K = p is "K matching the order").
SOLVER_ORDERS = {"adaptive_heun": 2, "heun": 2, "bosh3": 3, "rk4": 4, "direct": 5, "adjoint": 5, "seminorm": 5,
                 "gq": 5, "gq_batched": 5}
BASELINE_SERIES = "λ = 0"


def higher_is_better(metric: str) -> bool:
    return "accuracy" in metric or "logprob" in metric


def reg_columns(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` (hyper-parameters expanded) with ``reg`` (none/speed/rnode), ``reg_lambda`` (0 for none),
    ``K`` (R_K's order; NaN otherwise) and ``series`` ("K = 3", "RNODE" or "λ = 0")."""
    frame = expand_hparams(records)
    if frame.empty:
        return frame.assign(reg=[], reg_lambda=[], K=[], series=[])
    kind = frame["hp_reg"] if "hp_reg" in frame else pd.Series("none", index=frame.index)
    kind = kind.fillna("none").astype(str)
    lam = pd.to_numeric(frame["hp_reg_lambda"], errors="coerce") if "hp_reg_lambda" in frame else \
        pd.Series(0.0, index=frame.index)
    lam = lam.fillna(0.0)
    kind = kind.where(lam > 0, "none")
    lam = lam.where(kind != "none", 0.0)
    order = pd.to_numeric(frame["hp_reg_order"], errors="coerce") if "hp_reg_order" in frame else \
        pd.Series(math.nan, index=frame.index)
    order = order.where(kind == "speed", math.nan)
    order = order.where(order.notna() | (kind != "speed"), 2.0)  # the regulariser's default K
    series = [BASELINE_SERIES if k == "none" else "RNODE" if k == "rnode" else f"K = {int(o)}"
              for k, o in zip(kind, order)]
    return frame.assign(reg=kind.values, reg_lambda=lam.values, K=order.values, series=series)


PARETO_COLUMNS = ("test_nfe", "nfe_forward_per_iter", "nfe_backward_per_iter", "train_wall_s", "time_per_iter_s")


def pareto_table(records: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """One row per (experiment, method, series, λ) of the records: runs, medians over successful seeds of
    :data:`PARETO_COLUMNS` and ``metric`` (default: the headline metric of each experiment), the test-NFE
    reduction NFE(λ = 0)/NFE of the same experiment and method, the metric's change against λ = 0, and
    whether the point is on the (test NFE, metric) Pareto front of its experiment and method."""
    frame = reg_columns(records)
    out = []
    for experiment, group in frame.groupby("experiment", sort=False):
        ok = group[group["status"] == "ok"] if "status" in group else group
        name = metric or next((m for m in HEADLINE_METRICS if m in ok and ok[m].notna().any()), None)
        for method, rows in group.groupby("method", sort=False):
            good = ok[ok["method"] == method]
            base = good[good["series"] == BASELINE_SERIES]
            base_nfe, base_metric = _median(base, "test_nfe"), (_median(base, name) if name else math.nan)
            block = []
            for (serie, lam), runs in rows.groupby(["series", "reg_lambda"], sort=False):
                done = good[(good["series"] == serie) & (good["reg_lambda"] == lam)]
                row = {"experiment": experiment, "method": method, "series": serie, "reg": runs["reg"].iloc[0],
                       "K": runs["K"].iloc[0], "reg_lambda": float(lam), "ok": len(done), "runs": len(runs),
                       "metric": name or ""}
                row |= {c: _median(done, c) for c in PARETO_COLUMNS}
                row["metric_value"] = _median(done, name) if name else math.nan
                row["nfe_reduction"] = base_nfe / row["test_nfe"] if row["test_nfe"] > 0 else math.nan
                row["metric_change"] = row["metric_value"] - base_metric
                block.append(row)
            table = pd.DataFrame(block)
            sign = 1.0 if name and higher_is_better(name) else -1.0
            table["on_front"] = plots.pareto_front(table["test_nfe"].to_numpy(),
                                                   sign * table["metric_value"].to_numpy())
            out.append(table)
    if not out:
        return pd.DataFrame()
    table = pd.concat(out, ignore_index=True)
    return table.sort_values(["experiment", "method", "series", "reg_lambda"], kind="stable", ignore_index=True)


def _experiments_of(spec, records: pd.DataFrame) -> pd.DataFrame:
    if spec.get("experiments") and not records.empty:
        return records[records["experiment"].isin(spec["experiments"])]
    return records


def pareto(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    title = "## NFE against the task metric over λ and K (Pareto front)"
    records = _experiments_of(spec, records)
    table = pareto_table(records, spec.get("metric")) if not records.empty else pd.DataFrame()
    if table.empty:
        return f"{title}\n\nNo case of the selected experiments was recorded.\n", []
    table.to_parquet(run_dir / "pareto.parquet", index=False)
    lines = [title, "",
             ("Per experiment and training method, one row per regulariser setting: medians over successful seeds. "
              "test NFE = 2 + 6 × attempted steps of a dopri5 solve of the unregularised dynamics on the test "
              "batches (official convention); NFE fwd/bwd = the training solves' evaluations per iteration; "
              "reduction = test NFE(λ = 0) / test NFE; Δmetric = metric − metric(λ = 0); front = on the Pareto "
              "front of (test NFE ↓, metric) within the experiment and method."), ""]
    figures: list[Path] = []
    for experiment, rows in table.groupby("experiment", sort=False):
        metric = rows["metric"].iloc[0] or "metric"
        body = [[r.method, r.series, _fmt_value(r.reg_lambda), f"{r.ok}/{r.runs}", _fmt4(r.test_nfe),
                 _fmt4(r.nfe_forward_per_iter), _fmt4(r.nfe_backward_per_iter), _fmt4(r.train_wall_s),
                 _fmt4(r.metric_value), "–" if pd.isna(r.nfe_reduction) else f"{r.nfe_reduction:.3g}×",
                 "–" if pd.isna(r.metric_change) else f"{r.metric_change:+.3g}", "✓" if r.on_front else ""]
                for r in rows.itertuples()]
        lines += [f"### {experiment}", "", markdown_table(
            ["method", "regulariser", "λ", "ok/runs", "test NFE", "NFE fwd/iter", "NFE bwd/iter", "train time [s]",
             metric, "NFE reduction", f"Δ{metric}", "front"], body), ""]
        best = rows[(rows["series"] != BASELINE_SERIES) & rows["nfe_reduction"].notna()]
        if not best.empty:
            top = best.loc[best["nfe_reduction"].idxmax()]
            lines += [f"Largest test-NFE reduction: {top['nfe_reduction']:.3g}× ({top['method']}, {top['series']}, "
                      f"λ {top['reg_lambda']:g}; Δ{metric} {top['metric_change']:+.3g}).", ""]
        figures += plots.plot_pareto(rows.rename(columns={"metric_value": metric}), metric,
                                     run_dir / "figures", name=str(experiment))
    return "\n".join(lines), figures


def order_matching_table(records: pd.DataFrame, orders: dict[str, float] | None = None,
                         column: str = "test_nfe") -> pd.DataFrame:
    """Per (experiment, method, K) of R_K runs: the median ``column`` relative to the same experiment and
    method's λ = 0 run (all λ > 0 of that K pooled; an experiment meant for this study fixes λ), the solver's
    order (``orders``, default :data:`SOLVER_ORDERS`), and whether K minimises the relative NFE (``best``)."""
    orders = SOLVER_ORDERS | dict(orders or {})
    frame = reg_columns(records)
    if frame.empty:
        return pd.DataFrame()
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    rows = []
    for (experiment, method), group in ok.groupby(["experiment", "method"], sort=False):
        base = _median(group[group["series"] == BASELINE_SERIES], column)
        speed = group[group["reg"] == "speed"]
        for K, at_k in speed.groupby("K", sort=True):
            value = _median(at_k, column)
            rows.append({"experiment": experiment, "method": method, "solver_order": orders.get(method, math.nan),
                         "K": int(K), "reg_lambda": float(at_k["reg_lambda"].median()), "runs": len(at_k),
                         column: value, f"{column}_baseline": base,
                         "relative_nfe": value / base if base and base > 0 else math.nan})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    best = table.groupby(["experiment", "method"])["relative_nfe"].transform("min")
    table["best"] = table["relative_nfe"].notna() & (table["relative_nfe"] <= best)
    return table


def order_matching(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    title = "## K against the solver's order"
    records = _experiments_of(spec, records)
    column = spec.get("column", "test_nfe")
    table = order_matching_table(records, spec.get("orders"), column) if not records.empty else pd.DataFrame()
    if table.empty:
        return f"{title}\n\nNo R_K run of the selected experiments finished.\n", []
    table.to_parquet(run_dir / "order_matching.parquet", index=False)
    lines = [title, "",
             ("Test NFE of each solver's R_K runs relative to the same solver's λ = 0 run (below 1: fewer NFE), "
              "against K. The solver order p is that of the propagated solution (adaptive_heun 2, bosh3 3, "
              "dopri5 5): its error estimate's leading term involves d^p z/dt^p, so K = p is \"K matching the "
              "order\". Test NFE are always counted with dopri5 on the unregularised dynamics."), ""]
    figures: list[Path] = []
    for experiment, rows in table.groupby("experiment", sort=False):
        body, verdicts = [], []
        for method, at in rows.groupby("method", sort=False):
            order = at["solver_order"].iloc[0]
            for r in at.itertuples():
                body.append([method, _fmt_value(order), r.K, _fmt_value(r.reg_lambda), _fmt4(getattr(r, column)),
                             _fmt4(getattr(r, f"{column}_baseline")), _fmt4(r.relative_nfe), "✓" if r.best else ""])
            best_k = at.loc[at["relative_nfe"].idxmin(), "K"] if at["relative_nfe"].notna().any() else None
            measured = pd.notna(order) and int(order) in set(at["K"])
            verdicts.append(f"{method} (order {_fmt_value(order)}): best K = {best_k}"
                            + ("" if measured else f" (K = {_fmt_value(order)} not run)"))
        lines += [f"### {experiment}", "", markdown_table(
            ["solver", "order", "K", "λ", column, f"{column} at λ = 0", "relative", "best K"], body), "",
            "; ".join(verdicts) + ".", ""]
        figures += plots.plot_order_matching(rows, run_dir / "figures", name=str(experiment))
    return "\n".join(lines), figures


COST_SETTINGS = ("dims", "orders", "hidden", "batch", "rounds", "cap", "dtype", "device", "seed")


def taylor_cost(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    """The derivative-cost measurement (:func:`nodebench.taylor.cost.measure_cost`), stored as
    ``taylor_cost_samples.parquet`` (raw rounds) and ``taylor_cost.parquet`` (one row per dim and K)."""
    from nodebench.taylor.cost import cost_table, measure_cost

    settings = {k: spec[k] for k in COST_SETTINGS if k in spec}
    agreement: dict = {}

    def compute() -> pd.DataFrame:
        samples, found = measure_cost(**settings)
        agreement.update(found)
        return samples

    samples = _stored(run_dir, "taylor_cost_samples", compute)
    table = _stored(run_dir, "taylor_cost", lambda: cost_table(samples, agreement))
    body = [[int(r.dim), int(r.K), _ms(r.taylor_forward_s), _ms(r.taylor_backward_s),
             "skipped" if r.jvp_skipped else _ms(r.jvp_forward_s),
             "skipped" if r.jvp_skipped else _ms(r.jvp_backward_s),
             _x(r.speedup_forward), _x(r.speedup_total), "–" if pd.isna(r.agreement) else f"{r.agreement:.1e}"]
            for r in table.itertuples()]
    rounds = int(samples["round"].max()) + 1 if len(samples) else 0
    section = "\n".join([
        "## Cost of d^K z/dt^K: Taylor mode against nested jvp", "",
        (f"z' = f(z), f an MLP D → {spec.get('hidden', 64)} → {spec.get('hidden', 64)} → D with tanh, batch "
         f"{spec.get('batch', 256)}, {spec.get('dtype', 'float32')}, {torch.get_num_threads()} torch thread(s); "
         f"medians of {rounds} interleaved rounds in ms. forward = z', …, d^K z; backward = gradient of "
         "mean((d^K z)²) to the parameters; speed-up = t_jvp / t_taylor (median of per-round ratios); nested jvp "
         f"is skipped once one call exceeds {spec.get('cap', 2.0):g} s; agreement = max |Δ| / max |d^K z|."), "",
        markdown_table(["D", "K", "taylor fwd", "taylor bwd", "jvp fwd", "jvp bwd", "speed-up fwd",
                        "speed-up fwd+bwd", "agreement"], body), ""])
    return section, plots.plot_taylor_cost(samples, run_dir / "figures", name="taylor_cost_vs_k")


def _ms(seconds: float) -> str:
    return "–" if pd.isna(seconds) else f"{seconds * 1e3:.3g}"


def _x(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3g}×"


ANALYSES |= {"pareto": pareto, "order_matching": order_matching, "taylor_cost": taylor_cost}


# -- SNODE (Quaglino et al. 2020): time to a common target, test MSE per regime, spectral convergence ---------

def time_to_target(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    """Time to the common target of the monitored training quality (:mod:`nodebench.target`) per experiment
    (``experiments``, default all) and setting, against ``reference`` (default "direct"); ``target`` fixes
    the level. Stores ``time_to_target.parquet``; draws the monitored quality against wall time with the
    target, and the test metric per method and experiment."""
    from nodebench.records import CURVES
    from nodebench.target import time_to_target_table

    reference = spec.get("reference", "direct")
    if spec.get("experiments"):
        records = records[records["experiment"].isin(spec["experiments"])]
    curves = load_table(run_dir, CURVES.removesuffix(".parquet"))
    pair_with = spec.get("pair_with")
    table = time_to_target_table(records, curves, target=spec.get("target"), pair_with=pair_with)
    table.to_parquet(Path(run_dir) / "time_to_target.parquet", index=False)
    rule = (f"for each pair of {pair_with} and another method, the larger of the two methods' best values"
            if pair_with else "the largest of the methods' best values") + " (median over seeds)"
    lines = ["## Time to a common target", "",
             ("The target is a training simulation MSE (the `monitor` column, measured untimed every "
              f"`monitor_every` iterations with the reference solver) that the compared methods all reach: {rule}. "
              "Time is the summed step time until the first monitored iteration at or below it. Speed-up = "
              f"time({reference}) / time(method) at the same target."), ""]
    if table.empty:
        return "\n".join(lines + ["No monitored curves in this run.", ""]), []
    header = ["experiment", "setting", "pair", "method", "reached", "target", "time to target [s]", "iterations",
              f"speed-up vs {reference}", "best monitor"]
    rows = []
    for (exp, config, versus), group in table.groupby(["experiment", "config", "versus"], sort=False):
        ref = group.loc[group["method"] == reference, "time_to_target_s"].median()
        for method, runs in group.groupby("method", sort=False):
            t = runs["time_to_target_s"].median()
            rows.append([exp, config or "–", f"{pair_with} vs {versus}" if versus else "all", method,
                         f"{int(runs['reached'].sum())}/{len(runs)}",
                         f"{runs['target'].iloc[0]:.3g}", _fmt4(t), _fmt4(runs["iters_to_target"].median()),
                         "–" if math.isnan(t) or math.isnan(ref) else f"{ref / t:.3g}×",
                         f"{runs['best_monitor'].median():.3g}"])
    lines += [markdown_table(header, rows), ""]
    figures = plots.plot_monitor(records, curves, table, run_dir / "figures")
    figures += plots.plot_metric_by_experiment(records, run_dir / "figures", name="test_mse_by_regime")
    return "\n".join(lines), figures


def spectral_convergence_table(degrees=range(2, 31, 2), horizon: float = 5.0, seed: int = 0) -> pd.DataFrame:
    """Max error of a least-squares Legendre fit (one element on [0, ``horizon``], 501 clean samples) against
    the degree, on a trajectory of each SNODE stand-in system, measured on 1001 points (claim S6)."""
    from nodebench.snode import LegendreSeries
    from nodebench.tasks.systems import swarm_data, vehicle_data

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


def spectral_convergence(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    degrees = spec.get("degrees", list(range(2, 31, 2)))
    table = _stored(run_dir, "spectral_convergence", lambda: spectral_convergence_table(degrees))
    rate = spectral_rate_table(table)
    rate.to_parquet(Path(run_dir) / "spectral_rate.parquet", index=False)
    rows = [[r.system, f"{r.decades_per_degree:.3g}", f"{r.r2:.3f}", r.degrees_used] for r in rate.itertuples()]
    lines = ["## Spectral convergence of the Legendre fit", "",
             ("Max error of a one-element least-squares Legendre fit of one clean trajectory (501 samples on "
              "[0, 5], error on 1001 points) against the degree, and the slope of −log10(error) against the degree "
              "(a straight semi-log line, high R²: exponential convergence). The rate depends on the trajectory's "
              "smoothness: the vehicle's inputs are piecewise linear between samples, which sets a floor; close "
              "encounters of the multi-agent system (repulsion with ε = 0.1) make its trajectory nearly singular, "
              "which slows convergence."), "",
             markdown_table(["system", "decades per degree", "R² of the semi-log line", "degrees used"], rows), ""]
    return "\n".join(lines), plots.plot_spectral_convergence(table, run_dir / "figures")


ANALYSES |= {"time_to_target": time_to_target, "spectral_convergence": spectral_convergence}
