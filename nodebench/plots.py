"""Comparison figures from records and curves, written as PNG and PDF.

Every figure is drawn per task (one file per task and figure kind), one colour per method, one line per
seed. Loss-against-time curves use the method's own summed step time: the clock is paused for
evaluation and logging (benchopt's convention), so the x-axis is training time only.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nodebench.records import config_labels

matplotlib.use("Agg")  # pyplot picks its backend lazily, so selecting it after the import still applies

FIGURE_KINDS = ("loss_vs_time", "loss_vs_iteration", "nfe_per_iteration", "time_memory_bars", "work_precision")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80]


def _colors(methods) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {m: cycle[i % len(cycle)] for i, m in enumerate(sorted(methods))}


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in ("png", "pdf")]
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def _curve_figure(curves: pd.DataFrame, x: str, y: str, *, xlabel: str, ylabel: str, title: str,
                  logy: bool = True, logx: bool = False):
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = _colors(curves["method"].unique())
    for (method, seed), group in curves.groupby(["method", "seed"], sort=True):
        ax.plot(group[x], group[y], color=colors[method], alpha=0.85, lw=1.2,
                label=method if seed == curves[curves.method == method].seed.min() else None)
    if logy and (curves[y] > 0).all():
        ax.set_yscale("log")
    if logx and (curves[x] > 0).all():
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_run(records: pd.DataFrame, curves: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Draw every figure kind for every experiment of a run (every task for ``nodebench run``) into
    ``out_dir``; returns the written PNG paths. Within an experiment, configurations that differ in a
    hyper-parameter (a width sweep) are told apart: each line or bar is labelled ``method name=value``."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    ok = records[records["status"] == "ok"] if "status" in records else records
    by = "experiment" if "experiment" in ok and (ok["experiment"].fillna("") != "").all() else "task"
    for name, group in ok.groupby(by, sort=True):
        slug, group = _slug(name), group.assign(method=config_labels(group).values)
        label_of = dict(zip(group["case_id"], group["method"]))
        group_curves = curves[curves["case_id"].isin(label_of)] if not curves.empty else curves
        if not group_curves.empty:
            group_curves = group_curves.assign(method=group_curves["case_id"].map(label_of))
            written += _save(_curve_figure(group_curves, "elapsed_s", "loss",
                                           xlabel="training time [s] (clock paused for evaluation)",
                                           ylabel="training loss", title=f"{name}: loss vs wall time"),
                             out_dir, f"{slug}_loss_vs_time")[:1]
            monitored = group_curves.dropna(subset=["monitor"]) if "monitor" in group_curves else group_curves[:0]
            if not monitored.empty:
                written += _save(_monitor_figure(monitored, name), out_dir, f"{slug}_monitor_vs_time")[:1]
            written += _save(_curve_figure(group_curves, "iteration", "loss", xlabel="iteration",
                                           ylabel="training loss", title=f"{name}: loss vs iteration"),
                             out_dir, f"{slug}_loss_vs_iteration")[:1]
            nfe = group_curves.assign(nfe_total=group_curves["nfe_forward"] + group_curves["nfe_backward"])
            written += _save(_curve_figure(nfe, "iteration", "nfe_total", xlabel="iteration",
                                           ylabel="NFE per iteration (forward + backward)",
                                           title=f"{name}: NFE per iteration", logy=False),
                             out_dir, f"{slug}_nfe_per_iteration")[:1]
        written += _save(_bars(group, name), out_dir, f"{slug}_time_memory_bars")[:1]
        metric = headline_metric(group)
        if metric is not None:
            written += _save(_work_precision(group, name, metric), out_dir, f"{slug}_work_precision")[:1]
    return written


def _monitor_figure(curves: pd.DataFrame, name: str):
    """The monitored training quality (simulation MSE on the training data) against wall time, log–log."""
    return _curve_figure(curves, "elapsed_s", "monitor", xlabel="training time [s] (clock paused for evaluation)",
                         ylabel="training simulation MSE (monitor)", title=f"{name}: monitor vs wall time", logx=True)


def plot_monitor(records: pd.DataFrame, curves: pd.DataFrame, table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Per experiment and setting of a time-to-target ``table`` (:mod:`nodebench.target`): the monitored
    quality of every case against wall time, with the common target drawn."""
    written: list[Path] = []
    methods, seeds = (dict(zip(records["case_id"], records[c])) for c in ("method", "seed"))
    for (exp, config), group in table.groupby(["experiment", "config"], sort=False):
        part = curves[curves["case_id"].isin(group["case_id"])].dropna(subset=["monitor"])
        part = part.assign(method=part["case_id"].map(methods), seed=part["case_id"].map(seeds))
        name = f"{exp} {config}".strip()
        fig = _monitor_figure(part, name)
        for versus, rows in group.groupby("versus", sort=False):
            fig.axes[0].axhline(float(rows["target"].iloc[0]), color=_colors(part["method"].unique()).get(versus, "k"),
                                ls="--", lw=1, label=f"target vs {versus}" if versus else "target")
        fig.axes[0].legend(fontsize=7)
        written += _save(fig, Path(out_dir), f"{_slug(name)}_time_to_target")[:1]
    return written


def plot_metric_by_experiment(records: pd.DataFrame, out_dir: str | Path, *, name: str,
                              metric: str = "test_mse") -> list[Path]:
    """Grouped bars: the median ``metric`` of each method in each experiment (e.g. data regimes), log scale,
    min–max over seeds as whiskers."""
    ok = records[(records["status"] == "ok") & records[metric].notna()] if metric in records else records[:0]
    if ok.empty:
        return []
    stats = ok.groupby(["experiment", "method"], sort=False)[metric].agg(["median", "min", "max"]).reset_index()
    experiments, methods = list(dict.fromkeys(stats["experiment"])), list(dict.fromkeys(stats["method"]))
    colors, width = _colors(methods), 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(experiments) * max(1, len(methods) / 3)), 4.2))
    for j, method in enumerate(methods):
        rows = stats[stats["method"] == method].set_index("experiment").reindex(experiments)
        x = np.arange(len(experiments)) + (j - (len(methods) - 1) / 2) * width
        err = [rows["median"] - rows["min"], rows["max"] - rows["median"]]
        ax.bar(x, rows["median"], width, color=colors[method], label=method, yerr=err, capsize=2)
    ax.set_xticks(np.arange(len(experiments)), experiments, rotation=20, fontsize=8)
    if (stats["median"] > 0).all():
        ax.set_yscale("log")
    ax.set(ylabel=f"{metric} (median, min–max over seeds)", title=f"{metric} per method and experiment")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, Path(out_dir), name)[:1]


def plot_spectral_convergence(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Max Legendre-fit error against degree per system, semi-log (a straight line: exponential convergence)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for system, group in table.groupby("system", sort=False):
        ax.semilogy(group["degree"], group["max_error"], "o-", label=system)
    ax.set(xlabel="Legendre degree p (one element)", ylabel="max |fit − trajectory|",
           title="spectral convergence of the Legendre fit")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, Path(out_dir), "spectral_convergence")[:1]


def headline_metric(records: pd.DataFrame) -> str | None:
    """The task's headline metric column present in ``records`` (``test_mse``, ``test_nll``...)."""
    for name in ("test_mse", "test_nll", "test_kl", "test_accuracy"):
        if name in records and records[name].notna().any():
            return name
    return None


def _bars(records: pd.DataFrame, task: str):
    summary = records.groupby("method").agg(time=("train_wall_s", "median"), mem=("peak_mem_bytes", "median"))
    longest = max((len(str(m)) for m in summary.index), default=0)  # sweep labels ("gq width=3000") need room
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 0.45 * len(summary)), 3.5 + 0.07 * longest))
    colors = _colors(summary.index)
    bar_colors = [colors[m] for m in summary.index]
    axes[0].bar(summary.index, summary["time"], color=bar_colors)
    axes[0].set(ylabel="training time [s] (median over seeds)", title=f"{task}: time")
    axes[1].bar(summary.index, summary["mem"] / 2**20, color=bar_colors)
    axes[1].set(ylabel="peak memory added [MiB] (median)", title=f"{task}: memory")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30 if len(summary) <= 8 else 90, labelsize=8 if len(summary) > 8 else 10)
        ax.grid(alpha=0.3, axis="y")
    return fig


def _work_precision(records: pd.DataFrame, task: str, metric: str):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    colors = _colors(records["method"].unique())
    nfe = records["nfe_forward"] + records["nfe_backward"]
    for method, group in records.groupby("method"):
        axes[0].scatter(group["train_wall_s"], group[metric], color=colors[method], label=method)
        axes[1].scatter(nfe[group.index], group[metric], color=colors[method], label=method)
    axes[0].set(xlabel="training time [s]", ylabel=metric, title=f"{task}: {metric} vs time")
    axes[1].set(xlabel="total NFE (forward + backward)", ylabel=metric, title=f"{task}: {metric} vs NFE")
    for ax in axes:
        if (records[metric] > 0).all():
            ax.set_yscale("log")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


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
    return _save(fig, Path(out_dir), "taylor_test")[:1]


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
    return _save(fig, Path(out_dir), "gradient_error")[:1]


def plot_rediscretisation(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Test NLL and inverse error against the RK4 test step size, per task and method; the reference
    solver's value is a horizontal line."""
    written = []
    for task, rows in table.groupby("task", sort=True):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        colors = _colors(rows["method"].unique())
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
        written += _save(fig, Path(out_dir), f"{_slug(task)}_rediscretisation")[:1]
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
        written += _save(fig, Path(out_dir), f"{_slug(task)}_density")[:1]
    return written


def plot_toy_gradient(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Toy problem (GQ paper): relative gradient error against the end time T, log y, one panel per
    gradient (``wrt``: z0, a, T), one line per method; failed solves leave gaps."""
    wrts = [w for w in ("z0", "a", "T") if w in set(table["wrt"])] or sorted(table["wrt"].unique())
    fig, axes = plt.subplots(1, len(wrts), figsize=(4.2 * len(wrts), 3.8), sharey=True, squeeze=False)
    colors = _colors(table["method"].unique())
    for ax, wrt in zip(axes[0], wrts):
        rows = table[table["wrt"] == wrt]
        for method, group in rows.groupby("method", sort=True):
            group = group.sort_values("T")
            # round-off can make an error exactly 0: floor it so the log axis keeps the point
            err = group["rel_error"].where(group["rel_error"].isna(), group["rel_error"].clip(lower=1e-17))
            ax.plot(group["T"], err, color=colors[method], marker=".", ms=3, lw=1, label=method)
        ax.set_yscale("log")
        ax.set(xlabel="end time T", title=f"dL/d{wrt}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("relative error vs analytic")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("toy gradient: dz/dt = a·z, L = z(T)²")
    return _save(fig, Path(out_dir), "toy_gradient")[:1]


def _param_axis(values: pd.Series) -> tuple[pd.Series, bool]:
    """Numeric x positions for a hyper-parameter's values and whether a log axis fits them."""
    numeric = values.map(lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan)
    if numeric.notna().all():
        return numeric, bool((numeric > 0).all())
    order = {v: i for i, v in enumerate(sorted(values.astype(str).unique()))}
    return values.astype(str).map(order).astype(float), False


def _scaling_summary(records: pd.DataFrame, param_col: str, column: str) -> pd.DataFrame:
    """Per (method, param value): median, min and max of ``column`` over seeds, sorted by x."""
    frame = records.assign(_x=_param_axis(records[param_col])[0])
    frame = frame[frame[column].notna()] if column in frame else frame.iloc[0:0]
    if frame.empty:
        return pd.DataFrame(columns=["method", "_x", "median", "min", "max"])
    summary = frame.groupby(["method", "_x"])[column].agg(["median", "min", "max"]).reset_index()
    return summary.sort_values(["method", "_x"])


def _scaling_lines(ax, records: pd.DataFrame, param_col: str, column: str, scale: float = 1.0) -> bool:
    """Median over seeds with min–max whiskers, one line per method; returns whether all values are > 0."""
    summary = _scaling_summary(records, param_col, column)
    colors = _colors(records["method"].unique())
    for method, group in summary.groupby("method", sort=True):
        med, lo, hi = group["median"] * scale, group["min"] * scale, group["max"] * scale
        ax.errorbar(group["_x"], med, yerr=[med - lo, hi - med], color=colors[method], marker="o", ms=4,
                    capsize=3, lw=1.2, label=method)
    return bool(len(summary)) and bool((summary["min"] > 0).all())


def plot_scaling(records: pd.DataFrame, param: str, metric: str | None, out_dir: str | Path, *,
                 name: str, param_col: str | None = None) -> list[Path]:
    """Scaling figures of one experiment's successful records against hyper-parameter ``param`` (the
    values in column ``param_col``, default ``hp_<param>``): training time (log–log), final ``metric``,
    peak memory (log y), each the median over seeds with min–max whiskers, and ``metric`` against training
    time (one colour per method, marker size growing with ``param``). Returns the PNG paths."""
    out_dir, slug = Path(out_dir), _slug(name)
    param_col = param_col or f"hp_{param}"
    records = records.reset_index(drop=True)
    _, logx = _param_axis(records[param_col])
    written: list[Path] = []
    panels = [("train_wall_s", "training time [s]", 1.0, True, "time"),
              ("time_per_iter_s", "time per iteration [ms]", 1e3, True, "time_per_iter"),
              (metric, metric or "", 1.0, metric != "test_accuracy", "metric"),
              ("peak_mem_bytes", "peak memory added [MiB]", 1 / 2**20, True, "memory")]
    for column, ylabel, scale, logy, kind in panels:
        if column is None or column not in records or records[column].isna().all():
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        positive = _scaling_lines(ax, records, param_col, column, scale)
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # label the decades only
        if positive and logy:
            ax.set_yscale("log")
        ax.set(xlabel=param, ylabel=f"{ylabel} (median, min–max over seeds)", title=f"{name}: {ylabel} vs {param}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        written += _save(fig, out_dir, f"{slug}_scaling_{kind}")[:1]
    if metric and metric in records and records[metric].notna().any() and records["train_wall_s"].notna().any():
        fig, ax = plt.subplots(figsize=(6, 4))
        colors = _colors(records["method"].unique())
        x, _ = _param_axis(records[param_col])
        ranks = x.rank(method="dense")
        sizes = 20 + 180 * (ranks - 1) / max(float(ranks.max()) - 1, 1)
        for method, group in records.groupby("method", sort=True):
            ax.scatter(group["train_wall_s"], group[metric], s=sizes[group.index], color=colors[method], alpha=0.75,
                       edgecolor="k", lw=0.4, label=method)
        if (records["train_wall_s"] > 0).all():
            ax.set_xscale("log")
        if metric != "test_accuracy" and (records[metric].dropna() > 0).all():
            ax.set_yscale("log")
        labels = records[param_col].astype(str)
        values = sorted(labels.unique(), key=lambda v: x[labels == v].iloc[0])
        ax.set(xlabel="training time [s]", ylabel=metric,
               title=f"{name}: {metric} vs time (marker size: {param} {values[0]} … {values[-1]})")
        ax.grid(alpha=0.3, which="both")
        for handle in ax.legend(fontsize=8).legend_handles:
            handle.set_sizes([40])
        written += _save(fig, out_dir, f"{slug}_scaling_{metric}_vs_time")[:1]
    return written


# -- TayNODE (Kelly et al. 2020): trade-off, order matching, derivative cost ------------------------------------

def plot_taylor_cost(samples: pd.DataFrame, out_dir: str | Path, dims=None, name: str = "cost_vs_k") -> list[Path]:
    """Cost of d^K z/dt^K against K (log y), one panel per state dimension: Taylor mode against nested jvp,
    forward (solid) and backward (dashed), medians over rounds (``samples`` from
    :func:`nodebench.taylor.cost.measure_cost`)."""
    methods = ("taylor", "jvp")
    med = samples[~samples.skipped].groupby(["dim", "method", "K"])[["forward_s", "backward_s"]].median()
    med = med.reset_index()
    dims = list(dims) if dims is not None else sorted(samples["dim"].unique())
    colors = _colors(methods)
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
    for ax, dim in zip(axes[0], dims):
        for method in methods:
            rows = med[(med.dim == dim) & (med.method == method)]
            if rows.empty:
                continue
            ax.plot(rows.K, rows.forward_s * 1e3, "o-", color=colors[method], label=f"{method} forward")
            ax.plot(rows.K, rows.backward_s * 1e3, "s--", color=colors[method], label=f"{method} backward")
        ax.set(yscale="log", xlabel="order K", ylabel="time [ms]", title=f"d^K z/dt^K, MLP, D = {dim}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _save(fig, Path(out_dir), name)[:1]


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


def plot_pareto(table: pd.DataFrame, metric: str, out_dir: str | Path, *, name: str) -> list[Path]:
    """NFE against the task metric over λ, one panel per NFE measure (test NFE; training forward NFE per
    iteration), one series per K (and RNODE), the λ = 0 baseline as a black star, each method's Pareto front
    (by test NFE) as a dashed grey line. ``table``: the ``pareto`` analysis rows of one experiment."""
    panels = [("test_nfe", "test NFE (dopri5, unregularised dynamics)"),
              ("nfe_forward_per_iter", "training NFE forward / iteration")]
    panels = [p for p in panels if p[0] in table and table[p[0]].notna().any()]
    if table.empty or not panels or metric not in table:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    series = [s for s in dict.fromkeys(table["series"]) if s != "λ = 0"]
    colors = _colors(series)
    markers = dict(zip(sorted(table["method"].unique()), "osD^v<>"))
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
    return _save(fig, Path(out_dir), f"{_slug(name)}_pareto")[:1]


def plot_order_matching(table: pd.DataFrame, out_dir: str | Path, *, name: str) -> list[Path]:
    """Test NFE relative to the same solver's λ = 0 run against K, one line per solver; a dotted vertical
    line at each solver's order (where K matches it)."""
    if table.empty:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = _colors(table["method"].unique())
    for method, rows in table.groupby("method", sort=True):
        rows = rows.sort_values("K")
        order = rows["solver_order"].iloc[0]
        label = f"{method} (order {order:g})" if pd.notna(order) else method
        ax.plot(rows["K"], rows["relative_nfe"], "o-", color=colors[method], label=label)
        if pd.notna(order):
            ax.axvline(order, color=colors[method], ls=":", lw=1)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="λ = 0")
    ax.set(xlabel="K (order of the regularised derivative)", ylabel="test NFE / test NFE at λ = 0",
           title=f"{name}: NFE reduction against K per solver")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(out_dir), f"{_slug(name)}_order_matching")[:1]
