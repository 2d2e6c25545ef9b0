"""Analyses: studies run after a sweep, declared in a paper's ``experiments.toml``.

An analysis is declared as ``[[analysis]]`` with a ``kind`` registered in :data:`ANALYSES`, the
``presets`` it runs at, and its parameters (each kind declares which it accepts, so a misspelled one is
refused when the paper is loaded). It may write ``<name>.parquet`` tables into the run directory
(declared as its ``tables``; computed once with :func:`stored_table`: ``nodebench report`` and resumed runs
read the stored table), draws its figures, and returns a Markdown section for the report. Claims can then
check its tables (``table_threshold`` in :mod:`nodebench.claims`), but only those of analyses that ran for this
report: a table left from an earlier build, whose analysis is now skipped, is stale.

The framework registers the generic kinds below; paper packages (:mod:`nodebench.papers`) register their
own with :func:`register_analysis`.

- ``scaling``: from the run's records (successful rows), for each experiment (``experiments``, default
  all) with more than one value of hyper-parameter ``param`` (e.g. "width"): figures of training time
  (log–log), final ``metric`` (default the records' headline metric, :func:`nodebench.metrics.headline_metric`)
  and peak memory against ``param``, and ``metric`` against training time; a table per experiment of
  param × method with medians over seeds and the speed-up t(``reference``)/t(method) (``reference``
  default "adjoint");
- ``time_to_target``: time to a common target of the monitored training quality
  (:mod:`nodebench.target`) per experiment and setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nodebench import plots
from nodebench.claims import check_fields, fields_of
from nodebench.config import Param
from nodebench.errors import UserError, clip
from nodebench.markdown import fmt4, fmt_mib, fmt_times, fmt_value, markdown_table
from nodebench.metrics import headline_metric
from nodebench.paper_code import REPORT_LOG, PaperCodeFailed, call
from nodebench.records import CURVES, RECORDS, expand_hparams, load_table, measured_memory
from nodebench.registry import Registry
from nodebench.target import reached_text, seed_aggregate, time_to_target_table

#: Keys every ``[[analysis]]`` block may have besides its kind's parameters.
COMMON_KEYS = ("kind", "presets", "description")

AnalysisFn = Callable[[dict, Path, pd.DataFrame], "tuple[str, list[Path]]"]


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: its function ``fn(spec, run_dir, records) -> (section, figures)``, the
    parameters its ``[[analysis]]`` block may set (names) and their declarations (:class:`nodebench.config.Param`:
    type, range, required), and ``rules``: a function of the block returning what is wrong across its
    parameters (``T_start`` above ``T_stop``), or ``None``; all checked when the paper is loaded. ``tables``:
    the names of the ``<name>.parquet`` tables it writes into the run directory."""

    name: str
    fn: AnalysisFn
    params: tuple[str, ...] = ()
    fields: tuple[Param, ...] = ()
    rules: Callable[[dict], str | None] | None = None
    tables: tuple[str, ...] = ()

    def validate(self, block: dict, at: str) -> None:
        """Refuse a block's missing, mistyped, out-of-range or inconsistent parameters (before any case runs)."""
        check_fields(block, self.fields, at)
        problem = call(f"{at}: rules", self.rules, block, returns=_rules_result) if self.rules else None
        if problem:
            raise UserError(f"{at}: {problem}")


def _rules_result(problem) -> str | None:
    return None if problem is None or isinstance(problem, str) else f"{problem!r}, not what is wrong (a string) or None"


def _analysis_result(result, run_dir: Path) -> str | None:
    """What is wrong with an analysis's result, which must be its section and the figures it drew into
    ``run_dir/figures`` (:func:`nodebench.plots.save_figure`), or ``None``."""
    if not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[0], str):
        return f"{type(result).__name__} {clip(repr(result), 80)}, not (section, figures): a Markdown string and a list"
    figures = result[1]
    if not isinstance(figures, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) for p in figures):
        return f"figures that are not a list of paths: {clip(repr(figures), 80)}"
    home = (Path(run_dir) / "figures").resolve()
    outside = [str(p) for p in map(Path, figures) if p.resolve().parent != home or not p.is_file()]
    if outside:
        return f"figure {outside[0]!r}, not a file it wrote into {str(home)!r} (nodebench.plots.save_figure)"
    return None


ANALYSES: Registry[Analysis] = Registry("analysis kind")


def register_analysis(name: str, params=(), rules: Callable[[dict], str | None] | None = None,
                      tables: tuple[str, ...] = ()) -> Callable[[AnalysisFn], AnalysisFn]:
    """Decorator registering ``fn`` as analysis kind ``name`` accepting ``params``: names (any value,
    optional) or :class:`nodebench.config.Param` declarations (typed, ranged, possibly required); ``rules``:
    the block's cross-parameter check; ``tables``: the tables it writes (see :class:`Analysis`)."""
    def add(fn: AnalysisFn) -> AnalysisFn:
        fields = fields_of(params)
        ANALYSES.register(name, Analysis(name, fn, tuple(f.name for f in fields), fields, rules, tuple(tables)))
        return fn
    return add


def stored_table(run_dir: Path, name: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``<name>.parquet`` of the run, computed by ``compute`` and stored the first time."""
    table = load_table(run_dir, name)
    if table.empty:
        table = compute()
        table.to_parquet(Path(run_dir) / f"{name}.parquet", index=False)
    return table


def case_table(run_dir: Path, name: str, records: pd.DataFrame) -> pd.DataFrame:
    """A per-case table joined with each case's task, method and seed (empty when there is none)."""
    table = load_table(run_dir, name)
    if table.empty or records.empty:
        return pd.DataFrame()
    return table.merge(records[["case_id", "task", "method", "seed"]], on="case_id")


def column_median(rows: pd.DataFrame, column: str) -> float:
    """The median of ``column`` over ``rows``; NaN when the column is absent or empty."""
    return float(rows[column].median()) if column in rows and rows[column].notna().any() else math.nan


def scaling_table(records: pd.DataFrame, param_col: str, metric: str | None,
                  reference: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (param value × method) of the scaling table of one experiment's records (all
    statuses; medians over the successful seeds; peak memory "–" where it was not measurable, as in the report's
    summary: :func:`~nodebench.records.measured_memory`)."""
    header = [param_col.removeprefix("hp_"), "method", "ok/runs", "train time [s]", "time/iter [ms]",
              f"speed-up vs {reference}", "peak mem [MiB]", "NFE fwd/iter", "NFE bwd/iter", metric or "metric"]
    ok = records[records["status"] == "ok"] if "status" in records else records
    ok = ok.assign(peak_mem_bytes=measured_memory(ok))  # a resident set that read 0 is not measured, not 0 bytes
    x, _ = plots.param_axis(records[param_col])
    rows = []
    for value in sorted(records[param_col].unique(), key=lambda v: x[records[param_col] == v].iloc[0]):
        at_value = records[records[param_col] == value]
        ok_value = ok[ok[param_col] == value]
        t_ref = column_median(ok_value[ok_value["method"] == reference], "train_wall_s")
        for method in [m for m in dict.fromkeys(records["method"]) if m in set(at_value["method"])]:
            runs, good = at_value[at_value["method"] == method], ok_value[ok_value["method"] == method]
            t = column_median(good, "train_wall_s")
            speedup = t_ref / t if t > 0 and not math.isnan(t_ref) else math.nan
            rows.append([fmt_value(value), method, f"{len(good)}/{len(runs)}", fmt4(t),
                         fmt4(column_median(good, "time_per_iter_s") * 1e3),
                         fmt_times(speedup),
                         fmt_mib(column_median(good, "peak_mem_bytes")),
                         fmt4(column_median(good, "nfe_forward_per_iter")),
                         fmt4(column_median(good, "nfe_backward_per_iter")),
                         "–" if metric is None else fmt4(column_median(good, metric))])
    return header, rows


@register_analysis("scaling", params=(Param("param", "str", required=True), Param("metric", "str"),
                                      Param("reference", "str"), Param("experiments", "strs")))
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
        metric = spec.get("metric") or headline_metric(ok)
        header, rows = scaling_table(group, param_col, metric, reference)
        lines += [f"### {experiment}: {param}", "", markdown_table(header, rows), ""]
        if not ok.empty:
            figures += plots.plot_scaling(ok, param, metric, run_dir / "figures", name=str(experiment),
                                          param_col=param_col)
    if len(lines) == 4:
        lines += [f"No experiment of this run has more than one value of `{param}`.", ""]
    return "\n".join(lines), figures


@register_analysis("time_to_target", params=(Param("experiments", "strs"), Param("reference", "str"),
                                             Param("pair_with", "str"), Param("target", "float", positive=True)),
                   tables=("time_to_target",))
def time_to_target(spec, run_dir: Path, records: pd.DataFrame) -> tuple[str, list[Path]]:
    """Time to the common target of the monitored training quality (:mod:`nodebench.target`) per experiment
    (``experiments``, default all) and setting, against ``reference`` (default "direct"); ``target`` fixes
    the level. Stores ``time_to_target.parquet``; draws the monitored quality against wall time with the
    target, and the test metric per method and experiment."""
    reference = spec.get("reference", "direct")
    if spec.get("experiments"):
        records = records[records["experiment"].isin(spec["experiments"])]
    curves = load_table(run_dir, CURVES.removesuffix(".parquet"))
    pair_with = spec.get("pair_with")
    table = time_to_target_table(records, curves, target=spec.get("target"), pair_with=pair_with)
    table.to_parquet(Path(run_dir) / "time_to_target.parquet", index=False)
    rule = (f"for each pair of {pair_with} and another method, the larger of the two methods' levels"
            if pair_with else "the largest of the methods' levels") + (
        ", a method's level being the lowest value at which its median (or olympic mean) over seeds is finite")
    lines = ["## Time to a common target", "",
             ("The target is a training simulation MSE (the `monitor` column, measured untimed every "
              f"`monitor_every` iterations with the reference solver) that the compared methods all reach: {rule}. "
              "Time is the summed step time until the first monitored iteration at or below it; over seeds, the "
              "median (the olympic mean with 5 or more seeds), a seed that never reaches the target or failed "
              "counting as infinitely slow (\"not reached\": that time is infinite). Speed-up = "
              f"time({reference}) / time(method) at the same target."), ""]
    if table.empty:
        return "\n".join(lines + ["No monitored curves in this run.", ""]), []
    header = ["experiment", "setting", "pair", "method", "seeds", "target", "time to target [s]", "iterations",
              f"speed-up vs {reference}", "best monitor"]
    rows = []
    for (exp, config, versus), group in table.groupby(["experiment", "config", "versus"], sort=False):
        reference_rows = group[group["method"] == reference]
        ref = seed_aggregate(reference_rows["time_to_target_s"], reference_rows["seed"])
        for method, runs in group.groupby("method", sort=False):
            t = seed_aggregate(runs["time_to_target_s"], runs["seed"])  # a seed's repeats pooled
            rows.append([exp, config or "–", f"{pair_with} vs {versus}" if versus else "all", method,
                         reached_text(runs["time_to_target_s"], runs["seed"]), f"{runs['target'].iloc[0]:.3g}",
                         *(fmt4(v) if math.isfinite(v) else "not reached"
                           for v in (t, seed_aggregate(runs["iters_to_target"], runs["seed"]))),
                         f"{ref / t:.3g}×" if math.isfinite(t) and math.isfinite(ref) else "–",
                         f"{runs['best_monitor'].median():.3g}"])
    lines += [markdown_table(header, rows), ""]
    figures = plots.plot_monitor(records, curves, table[table["status"] == "ok"], run_dir / "figures")
    figures += plots.plot_metric_by_experiment(records, run_dir / "figures", name="test_mse_by_regime")
    return "\n".join(lines), figures


def run_analyses(spec, run_dir: Path, records: pd.DataFrame, *,
                 preset: str) -> tuple[list[str], list[Path], dict[str, pd.DataFrame]]:
    """Run the paper's analyses declared for ``preset``, but not one whose ``experiments`` are all outside the
    run (its section would only say that no case was recorded); returns report sections, figure paths and
    the run's tables for the claims: each ``<name>.parquet`` of ``run_dir`` but the records and curves, less
    the tables of analyses that did not run now (left from an earlier build of another set of records, they
    would judge claims on experiments this run does not have)."""
    sections: list[str] = []
    figures: list[Path] = []
    fresh: set[str] = set()
    for declared in spec.analyses:
        if preset not in declared.get("presets", []):
            continue
        ran = set(records["experiment"]) if "experiment" in records else set()
        if declared.get("experiments") and ran and not ran & set(declared["experiments"]):
            continue  # none of its experiments is in this run (the preset's other --experiment selection)
        analysis = ANALYSES.lookup(declared["kind"])
        try:
            analysis.validate(declared, f"analysis {analysis.name!r}")  # the loader did; a hand-made spec may not
            section, figs = call(f"analysis {analysis.name!r}", analysis.fn, declared, Path(run_dir), records,
                                 returns=lambda result: _analysis_result(result, run_dir))
        except PaperCodeFailed as err:  # its section says so; its tables are not read
            sections.append(f"## Analysis `{analysis.name}`: not computed\n\n{err}; the traceback is in "
                            f"`{REPORT_LOG}`.\n")
            continue
        sections.append(section)
        figures += map(Path, figs)
        fresh.update(analysis.tables)
    stale = {name for analysis in ANALYSES.values() for name in analysis.tables} - fresh
    tables = {path.stem: load_table(run_dir, path.stem) for path in sorted(Path(run_dir).glob("*.parquet"))
              if path.name not in (RECORDS, CURVES) and path.stem not in stale}
    return sections, figures, tables
