"""Comparison figures from records and curves, written as PNG and PDF.

Every figure is drawn per task (one file per task and figure kind) in the shared style of
:mod:`nodebench.figure_style`: one fixed colour and marker per method, spread over seeds shown, log axes only
over a decade, memory that was not measured marked so. Loss-against-time curves use the method's own summed
step time: the clock is paused for evaluation and logging (benchopt's convention), so the x-axis is training
time only.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nodebench.figure_style import (band, finish, label_styles, mark_not_measured, method_colors, method_style,
                                    reference_line, styled, subplots)
from nodebench.metrics import headline_metric
from nodebench.paper_code import PaperCodeFailed, call
from nodebench.records import atomic_write, config_labels, measured_memory
from nodebench.registry import Registry

__all__ = ["method_colors", "method_style", "save_figure", "slug", "plot_run", "plot_monitor", "plot_scaling",
           "plot_metric_by_experiment", "RUN_FIGURES"]


def slug(text: str) -> str:
    """A file-name-safe form of ``text``; a file-based task (``trajectories:/data/my_system.npz``) is named by
    its file stem, never by its path."""
    kind, sep, path = str(text).partition(":")
    if sep and ("/" in path or "." in Path(path).name):
        text = f"{kind}_{Path(path).stem}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80]


@styled()
def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """Apply :func:`nodebench.figure_style.finish` and write ``name`` as PNG and PDF; returns both paths. Each
    file is written whole or not at all (:func:`~nodebench.records.atomic_write`): a killed redraw keeps the
    last one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in ("png", "pdf")]
    finish(fig)
    for path in paths:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:], dpi=120))
    return paths


def _curve_figure(curves: pd.DataFrame, x: str, y: str, *, xlabel: str, ylabel: str, title: str,
                  logy: bool = True, logx: bool = False):
    """One curve per method: over iterations the median over seeds with a min–max band; over time (where
    seeds do not share x values) one thin line per seed in the method's style."""
    fig, ax = subplots(figsize=(6, 4))
    groups = list(curves.groupby("method", sort=True))
    styles = label_styles(curves["method"].unique())
    for k, (method, rows) in enumerate(groups):
        style = styles[method]
        lw = 1.2 + 1.3 * (len(groups) - 1 - k) / max(len(groups) - 1, 1)  # earlier lines wider: none hidden
        if x == "iteration":
            stats = rows.groupby(x)[y].agg(["median", "min", "max"]).reset_index()
            seeds = rows["seed"].nunique()
            band(ax, stats[x], stats["median"], stats["min"], stats["max"], lw=lw, **style,
                 label=method if seeds == 1 else f"{method} (median, min–max of {seeds} seeds)")
            continue
        for i, (_, group) in enumerate(rows.groupby("seed", sort=True)):
            ax.plot(group[x], group[y], color=style["color"], ls=style["ls"], alpha=0.85, lw=lw,
                    marker=style["marker"], markevery=max(1, len(group) // 8), ms=4, label=None if i else method)
    if logy and (curves[y] > 0).all():
        ax.set_yscale("log")
    if logx and (curves[x] > 0).all():
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    return fig


def _loss_label(curves: pd.DataFrame) -> str:
    """The loss axis label; SNODE's training loss is its relaxed objective, not the simulation loss of the
    other methods, so a figure holding both says so (compare the monitor figure instead)."""
    mixed = curves["method"].astype(str).str.startswith("snode").any() and curves["method"].nunique() > 1
    return "training loss (each method's own objective; SNODE: relaxed)" if mixed else "training loss"


#: Figures drawn for every experiment of a run (every task for ``nodebench run``): name → function
#: ``draw(title, records, curves) -> Figure | None`` over one experiment's successful records (``method``
#: relabelled per configuration) and their curves (``None``: nothing to draw). Papers may register more.
RUN_FIGURES: Registry = Registry("run figure")


@RUN_FIGURES.register("loss_vs_time")
def _loss_vs_time(title: str, records: pd.DataFrame, curves: pd.DataFrame):
    if curves.empty:
        return None
    return _curve_figure(curves, "elapsed_s", "loss", xlabel="training time [s] (clock paused for evaluation)",
                         ylabel=_loss_label(curves), title=f"{title}: loss vs wall time")


@RUN_FIGURES.register("monitor_vs_time")
def _monitor_vs_time(title: str, records: pd.DataFrame, curves: pd.DataFrame):
    monitored = curves.dropna(subset=["monitor"]) if "monitor" in curves else curves[:0]
    return None if monitored.empty else _monitor_figure(monitored, title)


@RUN_FIGURES.register("loss_vs_iteration")
def _loss_vs_iteration(title: str, records: pd.DataFrame, curves: pd.DataFrame):
    if curves.empty:
        return None
    return _curve_figure(curves, "iteration", "loss", xlabel="iteration", ylabel=_loss_label(curves),
                         title=f"{title}: loss vs iteration")


@RUN_FIGURES.register("nfe_per_iteration")
def _nfe_per_iteration(title: str, records: pd.DataFrame, curves: pd.DataFrame):
    if curves.empty:
        return None
    nfe = curves.assign(nfe_total=curves["nfe_forward"] + curves["nfe_backward"])
    return _curve_figure(nfe, "iteration", "nfe_total", xlabel="iteration",
                         ylabel="NFE per iteration (forward + backward)", title=f"{title}: NFE per iteration",
                         logy=False)


@RUN_FIGURES.register("time_memory_bars")
def _time_memory_bars(title: str, records: pd.DataFrame, curves: pd.DataFrame):
    return _bars(records, title)


@RUN_FIGURES.register("work_precision")
def _work_precision_figure(title: str, records: pd.DataFrame, curves: pd.DataFrame):
    metric = headline_metric(records)
    return None if metric is None else _work_precision(records, title, metric)


@styled()
def plot_run(records: pd.DataFrame, curves: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Draw every :data:`RUN_FIGURES` kind for every experiment of a run (every task for ``nodebench
    run``) into ``out_dir``; returns the written PNG paths. Within an experiment, configurations that
    differ in a hyper-parameter (a width sweep) are told apart: each line or bar is labelled
    ``method name=value``."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    ok = records[records["status"] == "ok"] if "status" in records else records
    by = "experiment" if "experiment" in ok and (ok["experiment"].fillna("") != "").all() else "task"
    for name, group in ok.groupby(by, sort=True):
        group = group.assign(method=config_labels(group).values)
        label_of = dict(zip(group["case_id"], group["method"]))
        group_curves = curves[curves["case_id"].isin(label_of)] if not curves.empty else curves
        if not group_curves.empty:
            group_curves = group_curves.assign(method=group_curves["case_id"].map(label_of))
        for kind, draw in RUN_FIGURES.items():
            try:  # a paper's figure that fails is left out, the others drawn (nodebench.paper_code)
                fig = call(f"run figure {kind!r} ({name})", draw, str(name), group, group_curves, returns=_figure)
            except PaperCodeFailed:
                continue
            if fig is not None:
                written += save_figure(fig, out_dir, f"{slug(str(name))}_{kind}")[:1]
    return written


def _figure(fig) -> str | None:
    """What is wrong with a run figure's result (a matplotlib Figure, or None: nothing to draw)."""
    return None if fig is None or isinstance(fig, Figure) else f"{type(fig).__name__}, not a matplotlib Figure or None"


def _monitor_figure(curves: pd.DataFrame, name: str):
    """The monitored training quality (simulation MSE on the training data) against wall time, log–log."""
    return _curve_figure(curves, "elapsed_s", "monitor", xlabel="training time [s] (clock paused for evaluation)",
                         ylabel="training simulation MSE (monitor)", title=f"{name}: monitor vs wall time", logx=True)


@styled()
def plot_monitor(records: pd.DataFrame, curves: pd.DataFrame, table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Per experiment and setting of a time-to-target ``table`` (:mod:`nodebench.target`): the monitored
    quality of every case against wall time, with the common target drawn. A group outside any experiment
    (``nodebench run``'s cases) is named by its task."""
    written: list[Path] = []
    methods, seeds = (dict(zip(records["case_id"], records[c])) for c in ("method", "seed"))
    tasks = dict(zip(records["case_id"], records["task"])) if "task" in records else {}
    for (exp, config), group in table.groupby(["experiment", "config"], sort=False):
        part = curves[curves["case_id"].isin(group["case_id"])].dropna(subset=["monitor"])
        part = part.assign(method=part["case_id"].map(methods), seed=part["case_id"].map(seeds))
        name = f"{exp or tasks.get(group['case_id'].iloc[0], '')} {config}".strip()
        fig = _monitor_figure(part, name)
        targets = group.groupby("versus", sort=False)["target"].first()
        for i, (target, against) in enumerate(targets.groupby(targets, sort=False)):  # one line per target level
            names = [v for v in against.index if v]
            reference_line(fig.axes[0], float(target), f"target vs {', '.join(names)}" if names else "target", i)
        fig.axes[0].legend(fontsize=7)
        written += save_figure(fig, Path(out_dir), f"{slug(name)}_time_to_target")[:1]
    return written


@styled()
def plot_metric_by_experiment(records: pd.DataFrame, out_dir: str | Path, *, name: str,
                              metric: str = "test_mse") -> list[Path]:
    """Grouped bars: the median ``metric`` of each method in each experiment (e.g. data regimes), log scale,
    min–max over seeds as whiskers."""
    ok = records[(records["status"] == "ok") & records[metric].notna()] if metric in records else records[:0]
    if ok.empty:
        return []
    stats = ok.groupby(["experiment", "method"], sort=False)[metric].agg(["median", "min", "max"]).reset_index()
    experiments, methods = list(dict.fromkeys(stats["experiment"])), list(dict.fromkeys(stats["method"]))
    width = 0.8 / len(methods)
    fig, ax = subplots(figsize=(max(6.0, 1.2 * len(experiments) * max(1, len(methods) / 3)), 4.2))
    for j, method in enumerate(methods):
        rows = stats[stats["method"] == method].set_index("experiment").reindex(experiments)
        x = np.arange(len(experiments)) + (j - (len(methods) - 1) / 2) * width
        err = [rows["median"] - rows["min"], rows["max"] - rows["median"]]
        ax.bar(x, rows["median"], width, color=method_style(method)["color"], label=method, yerr=err, capsize=2)
    ax.set_xticks(np.arange(len(experiments)), experiments, fontsize=8)
    if (stats["median"] > 0).all():
        ax.set_yscale("log")
    ax.set(ylabel=f"{metric} (median, min–max over seeds)", title=f"{metric} per method and experiment")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, ncol=2)
    return save_figure(fig, Path(out_dir), name)[:1]


def _bars(records: pd.DataFrame, task: str):
    """Training time and peak memory per method: median bar, min–max over seeds as whiskers; memory that was
    not measurable (in-process CPU readings) is marked "not measured", not drawn as 0."""
    frame = records.assign(mem=measured_memory(records) / 2**20)
    stats = {column: frame.groupby("method")[column].agg(["median", "min", "max"])
             for column in ("train_wall_s", "mem")}
    methods = list(stats["train_wall_s"].index)
    longest = max((len(str(m)) for m in methods), default=0)  # sweep labels stand up: room below the bars
    height = 4.0 + (0.05 * longest if longest > 14 else 0.0)
    fig, axes = subplots(1, 2, figsize=(max(8.0, 0.6 * len(methods)), height))
    colours = [label_styles(methods)[m]["color"] for m in methods]
    positions = np.arange(len(methods))
    labels = {"train_wall_s": ("training time [s]", "time"), "mem": ("peak memory added [MiB]", "memory")}
    for ax, (column, table) in zip(axes, stats.items()):
        err = [table["median"] - table["min"], table["max"] - table["median"]]
        ax.bar(positions, table["median"].fillna(0), color=colours, yerr=np.nan_to_num(err), capsize=3)
        ylabel, short = labels[column]
        ax.set(ylabel=ylabel, title=f"{task}: {short} (median, min–max over seeds)")
        ax.set_xticks(positions, methods, rotation=0 if len(methods) <= 5 else 90, fontsize=8)
        mark_not_measured(ax, positions[table["median"].isna().to_numpy()])
    return fig


def _work_precision(records: pd.DataFrame, task: str, metric: str):
    """The metric against training time and against total NFE, one point per seed in the method's style
    (log axes only where the data span a decade: :func:`nodebench.figure_style.finish`)."""
    fig, axes = subplots(1, 2, figsize=(9, 3.8))
    nfe = records["nfe_forward"] + records["nfe_backward"]
    styles = label_styles(records["method"].unique())
    for method, group in records.groupby("method"):
        style = styles[method]
        for ax, x in zip(axes, (group["train_wall_s"], nfe[group.index])):
            ax.scatter(x, group[metric], color=style["color"], marker=style["marker"], s=36, label=method)
    axes[0].set(xlabel="training time [s]", ylabel=metric, title=f"{task}: {metric} vs time")
    axes[1].set(xlabel="total NFE (forward + backward)", ylabel=metric, title=f"{task}: {metric} vs NFE")
    for ax in axes:
        if (records[metric] > 0).all():
            ax.set_yscale("log")
        if (records["train_wall_s"] > 0).all() and (nfe > 0).all():
            ax.set_xscale("log")
        ax.legend()
    return fig


def param_axis(values: pd.Series) -> tuple[pd.Series, bool]:
    """Numeric x positions for a hyper-parameter's values and whether a log axis fits them."""
    numeric = values.map(lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan)
    if numeric.notna().all():
        return numeric, bool((numeric > 0).all())
    order = {v: i for i, v in enumerate(sorted(values.astype(str).unique()))}
    return values.astype(str).map(order).astype(float), False


def _scaling_summary(records: pd.DataFrame, param_col: str, column: str) -> pd.DataFrame:
    """Per (method, param value): median, min and max of ``column`` over seeds, sorted by x."""
    frame = records.assign(_x=param_axis(records[param_col])[0])
    frame = frame[frame[column].notna()] if column in frame else frame.iloc[0:0]
    if frame.empty:
        return pd.DataFrame(columns=["method", "_x", "median", "min", "max"])
    summary = frame.groupby(["method", "_x"])[column].agg(["median", "min", "max"]).reset_index()
    return summary.sort_values(["method", "_x"])


def _scaling_lines(ax, records: pd.DataFrame, param_col: str, column: str, scale: float = 1.0) -> bool:
    """Median over seeds with min–max whiskers, one line per method; returns whether all values are > 0."""
    summary = _scaling_summary(records, param_col, column)
    styles = label_styles(summary["method"].unique())
    for method, group in summary.groupby("method", sort=True):
        med, lo, hi = group["median"] * scale, group["min"] * scale, group["max"] * scale
        style = styles[method]
        ax.errorbar(group["_x"], med, yerr=[med - lo, hi - med], color=style["color"], marker=style["marker"],
                    ls=style["ls"], ms=4, capsize=3, lw=1.2, label=method)
    return bool(len(summary)) and bool((summary["min"] > 0).all())


#: The most swept values a scaling figure marks one by one on its log axis (more would crowd it: decades then).
MAX_TICKS = 12


def log_tick_labels(values: list[float]) -> list[str]:
    """Labels of ticks at ``values`` (sorted, positive) on a log axis: each value with ``g``, but one closer than
    a tenth of the axis's span to the next labelled one (from the largest down) is left blank, so that widths
    2000 and 3000 do not print over each other ("20003000")."""
    gap = np.log10(values[-1] / values[0]) / 10
    labels, kept = [], None
    for value in reversed(values):
        shown = kept is None or np.log10(kept / value) >= gap
        labels.append(f"{value:g}" if shown else "")
        kept = value if shown else kept
    return labels[::-1]


@styled()
def plot_scaling(records: pd.DataFrame, param: str, metric: str | None, out_dir: str | Path, *,
                 name: str, param_col: str | None = None) -> list[Path]:
    """Scaling figures of one experiment's successful records against hyper-parameter ``param`` (the
    values in column ``param_col``, default ``hp_<param>``): training time (log–log), final ``metric``,
    peak memory (log y), each the median over seeds with min–max whiskers, and ``metric`` against training
    time (one colour per method, marker size growing with ``param``). Returns the PNG paths."""
    out_dir, stem = Path(out_dir), slug(name)
    param_col = param_col or f"hp_{param}"
    records = records.reset_index(drop=True)
    records = records.assign(peak_mem_bytes=measured_memory(records))  # NaN where not measurable: no panel
    _, logx = param_axis(records[param_col])
    written: list[Path] = []
    panels = [("train_wall_s", "training time [s]", 1.0, True, "time"),
              ("time_per_iter_s", "time per iteration [ms]", 1e3, True, "time_per_iter"),
              (metric, metric or "", 1.0, metric != "test_accuracy", "metric"),
              ("peak_mem_bytes", "peak memory added [MiB]", 1 / 2**20, True, "memory")]
    for column, ylabel, scale, logy, kind in panels:
        if column is None or column not in records or records[column].isna().all():
            continue
        fig, ax = subplots(figsize=(6, 4))
        positive = _scaling_lines(ax, records, param_col, column, scale)
        if logx:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            values = sorted(param_axis(records[param_col])[0].unique())
            if len(values) <= MAX_TICKS:  # each value swept marked: horizons 2.5 … 40 read "10¹" only
                ax.set_xticks(values, log_tick_labels(values))
        if positive and logy:
            ax.set_yscale("log")
        ax.set(xlabel=param, ylabel=f"{ylabel} (median, min–max over seeds)", title=f"{name}: {ylabel} vs {param}")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        written += save_figure(fig, out_dir, f"{stem}_scaling_{kind}")[:1]
    if metric and metric in records and records[metric].notna().any() and records["train_wall_s"].notna().any():
        fig, ax = subplots(figsize=(6, 4))
        x, _ = param_axis(records[param_col])
        ranks = x.rank(method="dense")
        sizes = 20 + 180 * (ranks - 1) / max(float(ranks.max()) - 1, 1)
        for method, group in records.groupby("method", sort=True):
            style = method_style(method)
            ax.scatter(group["train_wall_s"], group[metric], s=sizes[group.index], color=style["color"],
                       marker=style["marker"], alpha=0.75, edgecolor="k", lw=0.4, label=method)
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
        written += save_figure(fig, out_dir, f"{stem}_scaling_{metric}_vs_time")[:1]
    return written
