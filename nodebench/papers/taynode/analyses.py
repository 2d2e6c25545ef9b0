"""Analyses of the TayNODE paper (Kelly, Bettencourt, Johnson, Duvenaud, "Learning Differential Equations that are
Easy to Solve", NeurIPS 2020).

- ``pareto`` (the paper's speed–accuracy trade-off over λ; figure numbers not confirmed): from the records of
  ``experiments`` (default all), per experiment and method, test NFE and training forward NFE per iteration against
  the task metric (``metric``, default the headline one) over λ, one series per K of R_K, RNODE and λ = 0, with the
  (test NFE, metric) Pareto front; stores ``pareto.parquet`` (:func:`pareto_table`);
- ``order_matching`` (claim T6, "matching K to the solver's order", unconfirmed against the paper text): an NFE
  ``column`` (default ``test_nfe``; the T6 specs compare ``test_nfe_train_solver``, each solver's own)
  relative to the same solver's λ = 0 run against K, per solver, with the solver's order (``orders``, default
  :data:`SOLVER_ORDERS`) marked; stores ``order_matching.parquet``;
- ``taylor_cost`` (Taylor-mode AD, the paper's App. A.2 recursion; Griewank & Walther, ch. 13):
  :func:`nodebench.papers.taynode.cost.measure_cost` (``dims``, ``orders``, ``rounds``, ``cap``, ``batch``,
  ``hidden``, ``dtype``, ``device``, ``seed``), Taylor mode against nested jvp; stores ``taylor_cost_samples.parquet``
  and ``taylor_cost.parquet`` (one row per dim and K, with the speed-ups).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from nodebench.analyses import column_median, register_analysis, stored_table
from nodebench.config import Param
from nodebench.markdown import fmt4, fmt_ms, fmt_times, fmt_value, markdown_table
from nodebench.metrics import headline_metric, higher_is_better
from nodebench.papers.taynode import figures as paper_figures
from nodebench.papers.taynode.cost import WITHIN_NOISE, cost_table, measure_cost, timing_cells
from nodebench.records import expand_hparams

#: Order of each training method's adaptive solver (the order of its propagated solution: its error estimate's
#: leading term involves d^p z/dt^p, so K = p is "K matching the order").
SOLVER_ORDERS = {"adaptive_heun": 2, "heun": 2, "bosh3": 3, "rk4": 4, "direct": 5, "adjoint": 5, "seminorm": 5,
                 "gq": 5, "gq_batched": 5}
BASELINE_SERIES = "λ = 0"


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
        name = metric or headline_metric(ok)
        for method, rows in group.groupby("method", sort=False):
            good = ok[ok["method"] == method]
            base = good[good["series"] == BASELINE_SERIES]
            base_nfe, base_metric = column_median(base, "test_nfe"), (column_median(base, name) if name else math.nan)
            block = []
            for (serie, lam), runs in rows.groupby(["series", "reg_lambda"], sort=False):
                done = good[(good["series"] == serie) & (good["reg_lambda"] == lam)]
                row = {"experiment": experiment, "method": method, "series": serie, "reg": runs["reg"].iloc[0],
                       "K": runs["K"].iloc[0], "reg_lambda": float(lam), "ok": len(done), "runs": len(runs),
                       "metric": name or ""}
                row |= {c: column_median(done, c) for c in PARETO_COLUMNS}
                row["metric_value"] = column_median(done, name) if name else math.nan
                row["nfe_reduction"] = base_nfe / row["test_nfe"] if row["test_nfe"] > 0 else math.nan
                row["metric_change"] = row["metric_value"] - base_metric
                block.append(row)
            table = pd.DataFrame(block)
            sign = 1.0 if name and higher_is_better(name) else -1.0
            table["on_front"] = paper_figures.pareto_front(table["test_nfe"].to_numpy(),
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


@register_analysis("pareto", params=(Param("experiments", "strs"), Param("metric", "str")), tables=("pareto",))
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
        body = [[r.method, r.series, fmt_value(r.reg_lambda), f"{r.ok}/{r.runs}", fmt4(r.test_nfe),
                 fmt4(r.nfe_forward_per_iter), fmt4(r.nfe_backward_per_iter), fmt4(r.train_wall_s),
                 fmt4(r.metric_value), "–" if pd.isna(r.nfe_reduction) else f"{r.nfe_reduction:.3g}×",
                 "–" if pd.isna(r.metric_change) else f"{r.metric_change:+.3g}", "✓" if r.on_front else ""]
                for r in rows.itertuples()]
        lines += [f"### {experiment}", "", markdown_table(
            ["method", "regulariser", "λ", "ok/runs", "test NFE", "NFE fwd/iter", "NFE bwd/iter", "train time [s]",
             metric, "NFE reduction", f"Δ{metric}", "front"], body), ""]
        best = rows[(rows["series"] != BASELINE_SERIES) & rows["nfe_reduction"].notna()]
        if not best.empty:
            top = best.loc[best["nfe_reduction"].idxmax()]
            lines += [f"Largest test-NFE reduction: {top['nfe_reduction']:.3g}× ({top['method']}, {top['series']}, "
                      f"λ {top['reg_lambda']:g}; Δ{metric} {top['metric_change']:+.3g}), the best of {len(best)} "
                      "settings read on the figures it was picked on, so biased upwards (the tradeoff claims pick "
                      "on other data where the records allow).", ""]
        figures += paper_figures.plot_pareto(rows.rename(columns={"metric_value": metric}), metric,
                                     run_dir / "figures", name=str(experiment))
    return "\n".join(lines), figures


def missing_column(records: pd.DataFrame, column: str) -> str:
    """``""`` where ``records`` hold ``column``, else why the order study cannot be read from them: records
    written before the column was (``test_nfe_train_solver`` came after the first committed quick runs) count
    other NFE, which would read as the same study."""
    if column in records:
        return ""
    return (f"these records hold no `{column}` (written before it was recorded); rerun the experiment to measure "
            "it")


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
        base = column_median(group[group["series"] == BASELINE_SERIES], column)
        speed = group[group["reg"] == "speed"]
        for K, at_k in speed.groupby("K", sort=True):
            value = column_median(at_k, column)
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


@register_analysis("order_matching", params=(Param("experiments", "strs"), Param("column", "str"),
                                             Param("orders", "table")), tables=("order_matching",))
def order_matching(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    title = "## K against the solver's order"
    records = _experiments_of(spec, records)
    column = spec.get("column", "test_nfe")
    if not records.empty and (why := missing_column(records, column)):
        return f"{title}\n\nNot measured: {why}.\n", []
    table = order_matching_table(records, spec.get("orders"), column) if not records.empty else pd.DataFrame()
    if table.empty:
        return f"{title}\n\nNo R_K run of the selected experiments finished.\n", []
    table.to_parquet(run_dir / "order_matching.parquet", index=False)
    measure = paper_figures.nfe_label(column)
    lines = [title, "",
             (f"{measure[0].upper() + measure[1:]} of each solver's R_K runs relative to the same solver's λ = 0 "
              "run (below 1: fewer NFE), against K. The solver order p is that of the propagated solution "
              "(adaptive_heun 2, bosh3 3, dopri5 5): its error estimate's leading term involves d^p z/dt^p, so "
              "K = p is \"K matching the order\". `test_nfe` is counted with dopri5 for every model, "
              "`test_nfe_train_solver` with each model's training solver and tolerances (both on the "
              "unregularised dynamics), the training NFE with each solver's own."), ""]
    figures: list[Path] = []
    for experiment, rows in table.groupby("experiment", sort=False):
        body, verdicts = [], []
        for method, at in rows.groupby("method", sort=False):
            order = at["solver_order"].iloc[0]
            for r in at.itertuples():
                body.append([method, fmt_value(order), r.K, fmt_value(r.reg_lambda), fmt4(getattr(r, column)),
                             fmt4(getattr(r, f"{column}_baseline")), fmt4(r.relative_nfe), "✓" if r.best else ""])
            best_k = at.loc[at["relative_nfe"].idxmin(), "K"] if at["relative_nfe"].notna().any() else None
            measured = pd.notna(order) and int(order) in set(at["K"])
            verdicts.append(f"{method} (order {fmt_value(order)}): best K = {best_k}"
                            + ("" if measured else f" (K = {fmt_value(order)} not run)"))
        lines += [f"### {experiment}", "", markdown_table(
            ["solver", "order", "K", "λ", column, f"{column} at λ = 0", "relative", "best K"], body), "",
            "; ".join(verdicts) + ".", ""]
        figures += paper_figures.plot_order_matching(rows, run_dir / "figures", name=str(experiment), column=column)
    return "\n".join(lines), figures


COST_SETTINGS = ("dims", "orders", "hidden", "batch", "rounds", "cap", "dtype", "device", "seed")
COST_FIELDS = (Param("dims", "ints", low=1), Param("orders", "ints", low=1),
               *(Param(name, "int", low=1) for name in ("hidden", "batch", "rounds")),
               Param("cap", "float", positive=True), Param("dtype", "str", choices=("float32", "float64")),
               Param("device", "str"), Param("seed", "int", low=0))


@register_analysis("taylor_cost", params=COST_FIELDS, tables=("taylor_cost_samples", "taylor_cost"))
def taylor_cost(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    """The derivative-cost measurement (:func:`nodebench.papers.taynode.cost.measure_cost`), stored as
    ``taylor_cost_samples.parquet`` (raw rounds) and ``taylor_cost.parquet`` (one row per dim and K)."""

    settings = {k: spec[k] for k in COST_SETTINGS if k in spec}
    agreement: dict = {}

    def compute() -> pd.DataFrame:
        samples, found = measure_cost(**settings)
        agreement.update(found)
        return samples.assign(threads=torch.get_num_threads())  # the measurement's, not a later report's

    samples = stored_table(run_dir, "taylor_cost_samples", compute)
    table = stored_table(run_dir, "taylor_cost", lambda: cost_table(samples, agreement))
    if "taylor_total_s" not in table:  # stored before the timed forward+backward had columns: from the samples
        table = cost_table(samples, {(r.dim, r.K): r.agreement for r in table.itertuples()})
    body = [[int(r.dim), int(r.K), *timing_cells(r, "taylor", fmt_ms),
             *(["skipped"] * 3 if r.jvp_skipped else timing_cells(r, "jvp", fmt_ms)),
             fmt_times(r.speedup_forward), fmt_times(r.speedup_total),
             "–" if pd.isna(r.agreement) else f"{r.agreement:.1e}"]
            for r in table.itertuples()]
    rounds = int(samples["round"].max()) + 1 if len(samples) else 0
    threads = (f"{', '.join(map(str, sorted(samples['threads'].unique())))} torch thread(s)"
               if "threads" in samples else "torch threads not recorded")
    section = "\n".join([
        "## Cost of d^K z/dt^K: Taylor mode against nested jvp", "",
        (f"z' = f(z), f an MLP D → {spec.get('hidden', 64)} → {spec.get('hidden', 64)} → D with tanh, batch "
         f"{spec.get('batch', 256)}, {spec.get('dtype', 'float32')}, {threads}; "
         f"medians of {rounds} interleaved rounds in ms. fwd = z', …, d^K z; fwd+bwd = that and the gradient of "
         "mean((d^K z)²) to the parameters, both timed; bwd = fwd+bwd − fwd per round, two blocks timed apart "
         f"(\"{WITHIN_NOISE}\" where it does not stand out of their timing noise: its lower quartile over rounds "
         "≤ 0); speed-up = t_jvp / t_taylor (median of per-round ratios); nested jvp "
         f"is skipped once one call exceeds {spec.get('cap', 2.0):g} s; agreement = max |Δ| / max |d^K z|."), "",
        markdown_table(["D", "K", "taylor fwd", "taylor fwd+bwd", "taylor bwd", "jvp fwd", "jvp fwd+bwd",
                        "jvp bwd", "speed-up fwd", "speed-up fwd+bwd", "agreement"], body), ""])
    return section, paper_figures.plot_taylor_cost(samples, run_dir / "figures", name="taylor_cost_vs_k")
