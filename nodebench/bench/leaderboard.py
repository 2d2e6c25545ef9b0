"""The leaderboard: training methods ranked per task and scored across tasks, from recorded runs.

**Per task**, every configuration (a method with its hyper-parameters) gets:

- **time to target**: the training time (the curves' ``elapsed_s``: synchronised step time, the clock
  paused for evaluation) at the first iteration whose training quality reaches the task's target. The
  quality is the curves' ``monitor`` column (a method-independent measure, e.g. simulation MSE on the
  training data) where the task's curves have one with values, else the training ``loss``. Aggregated
  over seeds by the median, or with 5 or more seeds by MLPerf's olympic mean (drop the fastest and the
  slowest, average the rest); a seed that never reaches the target counts as infinitely slow, so with
  two or more such seeds the configuration has "not reached".
- **peak memory** (median over seeds), **NFE per iteration** (forward + backward, median) and the
  **final metric** (the task's headline metric, median).

**The target** of a task is common to all its configurations: the value declared by a suite entry
(``target = ...``) when there is one, else the *largest of the configurations' best values* (each
configuration's best is the median over seeds of the lowest quality it reached), so every configuration
reaches it at least at its median seed, and the slowest decides how loose the target is.

**Across tasks**, methods are entrants: the method id plus its regulariser settings (``reg*``), the
task-specific settings (tolerances, widths) left out; an entrant's time on a task is its best
configuration's. Scores follow AlgoPerf:

- performance ratio r = t / (best t on the task); a task the entrant did not run or did not reach has
  r = ∞;
- performance profile ρ(τ) = fraction of tasks with r ≤ τ; **score** = ∫₁^4 ρ(τ) dτ / 3, in [0, 1];
- geometric-mean **speed-up** against a reference method (default ``adjoint``; its plainest
  configuration) over the tasks both reached.

All runs must be measured the same way: the environment table lists every contributing run.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import gmean

from nodebench.bench.compare import RULES, load_records
from nodebench.errors import UserError
from nodebench.plots import headline_metric
from nodebench.records import config_labels

matplotlib.use("Agg")

R_MAX = 4.0
OLYMPIC_MIN_SEEDS = 5
ENV_COLUMNS = [("run_id", "run"), ("hostname", "machine"), ("git_sha", "git"), ("started_at", "started"),
               ("cpu_model", "CPU"), ("cpu_count", "cores"), ("num_threads", "threads"), ("gpu_model", "GPU"),
               ("version_torch", "torch"), ("version_torchdiffeq", "torchdiffeq")]


def seed_aggregate(values) -> float:
    """The median, or with ≥ 5 values the olympic mean (drop the best and the worst, average the rest)."""
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) == 0:
        return math.nan
    if len(values) >= OLYMPIC_MIN_SEEDS:
        return float(np.mean(values[1:-1]))
    return float(np.median(values))


def quality_column(curves: pd.DataFrame) -> str:
    """``monitor`` where the curves have one with values, else ``loss``."""
    return "monitor" if "monitor" in curves and curves["monitor"].notna().any() else "loss"


def time_to_target(curve: pd.DataFrame, column: str, target: float) -> float:
    """``elapsed_s`` at the first iteration whose ``column`` is ≤ ``target``; ∞ if none is."""
    curve = curve.sort_values("iteration")
    reached = curve[curve[column] <= target]
    return float(reached["elapsed_s"].iloc[0]) if len(reached) else math.inf


def entrant(method: str, hparams: str | dict | None) -> str:
    """The cross-task name of a configuration: the method plus its regulariser settings, if any."""
    params = json.loads(hparams) if isinstance(hparams, str) else dict(hparams or {})
    if params.get("reg", "none") == "none" or params.get("reg_lambda", 1.0) == 0:
        return method
    reg = " ".join(f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}"
                   for k in sorted(params) if k.startswith("reg"))
    return f"{method} {reg}"


def task_table(records: pd.DataFrame, curves: pd.DataFrame, target: float | None = None) -> tuple[pd.DataFrame, dict]:
    """One task's configurations with their time to target, memory, NFE and final metric.

    Returns:
        ``(table, info)``: the table sorted by time to target, and ``{"target", "column", "metric"}``.
    """
    records = records.assign(config=config_labels(records).values, entrant=[
        entrant(m, h) for m, h in zip(records["method"], records.get("hparams", [None] * len(records)))])
    ok = records[records["status"] == "ok"]
    steps = curves[curves["case_id"].isin(ok["case_id"])] if not curves.empty else curves
    column = quality_column(steps) if not steps.empty else "loss"
    best = {case: group[column].min() for case, group in steps.groupby("case_id")} if not steps.empty else {}
    if target is None:
        config_best = ok.assign(best=ok["case_id"].map(best)).groupby("config")["best"].median()
        target = float(config_best.max()) if config_best.notna().any() else math.nan
    metric = headline_metric(ok) if not ok.empty else None
    rows = []
    for config, group in records.groupby("config", sort=False):
        good = group[group["status"] == "ok"]
        times = [time_to_target(steps[steps["case_id"] == case], column, target) if case in best else math.inf
                 for case in group["case_id"]]  # a failed seed never reaches the target
        nfe = good.get("nfe_forward_per_iter", pd.Series(dtype=float)) + good.get(
            "nfe_backward_per_iter", pd.Series(dtype=float))
        rows.append({"config": config, "entrant": group["entrant"].iloc[0], "method": group["method"].iloc[0],
                     "seeds": len(group), "ok": len(good), "reached": int(np.isfinite(times).sum()),
                     "time_to_target_s": seed_aggregate(times), "peak_mem_bytes": good["peak_mem_bytes"].median(),
                     "nfe_per_iter": nfe.median(), "metric": good[metric].median() if metric else math.nan})
    table = pd.DataFrame(rows)
    higher = bool(metric and RULES.get(metric) and RULES[metric].higher_is_better)
    for col, ascending in (("time_to_target_s", True), ("peak_mem_bytes", True), ("nfe_per_iter", True),
                           ("metric", not higher)):
        table[f"rank_{col}"] = table[col].rank(method="min", ascending=ascending, na_option="bottom")
    table = table.sort_values(["time_to_target_s", "metric"], ascending=[True, not higher], kind="stable")
    return table.reset_index(drop=True), {"target": target, "column": column, "metric": metric}


def overall(tasks: dict[str, pd.DataFrame], reference: str) -> pd.DataFrame:
    """Per entrant: tasks run and reached, the AlgoPerf score and the geometric-mean speed-up over ``reference``."""
    best = {task: table.groupby("entrant")["time_to_target_s"].min() for task, table in tasks.items()}
    entrants = sorted({e for times in best.values() for e in times.index})
    rows = []
    for name in entrants:
        ratios, speedups = [], []
        for task, times in best.items():
            t = times.get(name, math.inf)
            fastest = times.min()
            ratios.append(t / fastest if math.isfinite(t) and fastest > 0 else (1.0 if t == fastest == 0 else math.inf))
            ref = _reference_time(tasks[task], reference)
            if math.isfinite(t) and t > 0 and ref is not None and math.isfinite(ref):
                speedups.append(ref / t)
        ratios = np.array(ratios)
        rows.append({"entrant": name, "tasks_run": int(sum(name in times.index for times in best.values())),
                     "tasks_reached": int(np.isfinite(ratios).sum()), "score": profile_score(ratios),
                     "speedup": float(gmean(speedups)) if speedups else math.nan, "speedup_tasks": len(speedups),
                     "ratios": ratios})
    frame = pd.DataFrame(rows)
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def profile_score(ratios: np.ndarray, r_max: float = R_MAX) -> float:
    """AlgoPerf's score ∫₁^r_max ρ(τ) dτ / (r_max − 1), computed exactly: each task adds r_max − r if r ≤ r_max."""
    ratios = np.asarray(ratios, dtype=float)
    return float(np.mean(np.clip(r_max - ratios, 0.0, r_max - 1.0)) / (r_max - 1.0)) if len(ratios) else math.nan


def _reference_time(table: pd.DataFrame, reference: str) -> float | None:
    """The time of the reference method's plainest configuration (the shortest label) on a task."""
    rows = table[table["entrant"] == reference]
    if rows.empty:
        return None
    return float(rows.loc[rows["config"].str.len().idxmin(), "time_to_target_s"])


def plot_profile(scores: pd.DataFrame, path: Path) -> Path:
    """The performance profiles ρ(τ) for τ in [1, R_MAX]."""
    taus = np.linspace(1.0, R_MAX, 301)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in scores.itertuples():
        ax.step(taus, [(row.ratios <= tau).mean() for tau in taus], where="post", label=row.entrant)
    ax.set(xlabel="τ (time to target ÷ the task's best)", ylabel="ρ(τ): fraction of tasks within τ",
           title="performance profiles", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_times(tasks: dict[str, pd.DataFrame], path: Path) -> Path:
    """Per task, horizontal bars of time to target (not reached: no bar, labelled)."""
    fig, axes = plt.subplots(len(tasks), 1, figsize=(7, 0.5 + sum(1.2 + 0.3 * len(t) for t in tasks.values())),
                             squeeze=False)
    for ax, (task, table) in zip(axes[:, 0], tasks.items()):
        times = table["time_to_target_s"].where(np.isfinite(table["time_to_target_s"]), 0.0)
        ax.barh(table["config"], times, color="tab:blue")
        for y, t in enumerate(table["time_to_target_s"]):
            ax.text(times.iloc[y], y, f" {t:.3g} s" if math.isfinite(t) else " not reached", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{task}: time to target [s]", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _fmt(value: float, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "not reached"
    if kind == "mib":
        return f"{value / 2**20:.3g}"
    return f"{value:.3g}"


def _ranked(value: float, rank: float, kind: str = "") -> str:
    text = _fmt(value, kind)
    return text if text in ("–", "not reached") else f"{text} ({rank:.0f})"


def display_task(table: pd.DataFrame, info: dict) -> pd.DataFrame:
    """A task table as display strings: each value with its rank among the task's configurations."""
    rows = [[i + 1, r.config, f"{r.ok}/{r.seeds}", f"{r.reached}/{r.seeds}",
             _ranked(r.time_to_target_s, r.rank_time_to_target_s),
             _ranked(r.peak_mem_bytes, r.rank_peak_mem_bytes, "mib"),
             _ranked(r.nfe_per_iter, r.rank_nfe_per_iter), _ranked(r.metric, r.rank_metric)]
            for i, r in enumerate(table.itertuples())]
    return pd.DataFrame(rows, columns=["#", "method", "ok", "reached", "time to target [s]", "peak mem [MiB]",
                                       "NFE/iter", info["metric"] or "metric"])


def display_overall(scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The overall scores as display strings, best first."""
    rows = [[i + 1, r.entrant, f"{r.tasks_reached}/{r.tasks_run}", f"{r.score:.3f}",
             f"{_fmt(r.speedup)}× ({r.speedup_tasks})" if r.speedup_tasks else "–"]
            for i, r in enumerate(scores.itertuples())]
    return pd.DataFrame(rows, columns=["#", "method", "tasks reached/run", "score (AlgoPerf, r_max 4)",
                                       f"speed-up vs {reference} (tasks)"])


def environment_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per contributing run: machine, commit, start, hardware, threads and versions."""
    present = [(c, label) for c, label in ENV_COLUMNS if c in records]
    rows = []
    for run_id, group in records.groupby("run_id", sort=True):
        first = group.sort_values("started_at").iloc[0] if "started_at" in group else group.iloc[0]
        rows.append([str(first[c])[:12] if c == "git_sha" else first[c] for c, _ in present] + [len(group)])
    return pd.DataFrame(rows, columns=[label for _, label in present] + ["cases"])


DEFAULT_REFERENCE = "adjoint"


def build(run_dirs: list[Path], targets: dict[str, float] | None = None):
    """``(records, tasks, infos)`` from ``run_dirs``: all records, and per task its table and target info.

    Case ids are prefixed with the run's position, so the same case in two runs stays two cases."""
    frames, curve_frames = [], []
    for index, path in enumerate(run_dirs):
        records, curves = load_records(path)
        records = records.assign(case_id=f"{index}:" + records["case_id"].astype(str),
                                 run_id=records["run_id"] if "run_id" in records else str(path))
        frames.append(records)
        if not curves.empty:
            curve_frames.append(curves.assign(case_id=f"{index}:" + curves["case_id"].astype(str)))
    records = pd.concat(frames, ignore_index=True)
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    unknown = sorted(set(targets or {}) - set(records["task"].astype(str)))
    if unknown:
        raise UserError(f"target for task(s) {', '.join(unknown)} not in the runs; tasks in the runs: "
                        f"{', '.join(sorted(records['task'].astype(str).unique()))}")
    tasks, infos = {}, {}
    for task, group in records.groupby("task", sort=True):
        tasks[task], infos[task] = task_table(group, curves, (targets or {}).get(task))
    return records, tasks, infos


def write(run_dirs: list[Path], out: str | Path, *, reference: str | None = None,
          targets: dict[str, float] | None = None) -> tuple[Path, Path]:
    """Write ``out/leaderboard.md`` (figures in ``out/figures/``) and a self-contained ``leaderboard.html``.
    ``reference``: the method of the speed-up column, which must be in the runs (default ``adjoint``, when
    present or not)."""
    out = Path(out)
    records, tasks, infos = build(run_dirs, targets)  # bad input is refused before anything is written
    methods = sorted(records["method"].astype(str).unique())
    if reference is not None and reference not in methods:
        raise UserError(f"--reference {reference!r} is not a method of the runs; valid: {', '.join(methods)}")
    reference = reference or DEFAULT_REFERENCE
    (out / "figures").mkdir(parents=True, exist_ok=True)
    scores = overall(tasks, reference)
    figures = [plot_profile(scores, out / "figures" / "performance_profile.png"),
               plot_times(tasks, out / "figures" / "time_to_target.png")]
    sections = [("Overall", display_overall(scores, reference),
                 f"Score: AlgoPerf's area under the performance profile up to r = {R_MAX:g}, in [0, 1] (a task not "
                 f"run or not reached counts as r = ∞). Speed-up: geometric mean of t({reference}) ÷ t(method) over "
                 "the tasks both reached.")]
    for task, table in tasks.items():
        info = infos[task]
        rule = "declared" if task in (targets or {}) else "the largest of the configurations' best values"
        sections.append((f"Task `{task}`", display_task(table, info),
                         f"Target: {info['column']} ≤ {_fmt(info['target'])} ({rule}). "
                         "Values with their rank in parentheses; time to target is the median over seeds (olympic "
                         "mean with ≥ 5 seeds)."))
    sections.append(("Environment", environment_table(records), "Every run that contributed a record."))
    md = ["# nodebench leaderboard", "", f"{len(run_dirs)} run(s): " + ", ".join(f"`{p}`" for p in run_dirs), ""]
    for title, frame, note in sections:
        md += [f"## {title}", "", note, "", frame.to_markdown(index=False), ""]
    md += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figures]
    md_path = out / "leaderboard.md"
    md_path.write_text("\n".join(md) + "\n")
    html_path = out / "leaderboard.html"
    html_path.write_text(_html(sections, figures, run_dirs))
    return md_path, html_path


def _html(sections, figures: list[Path], run_dirs: list[Path]) -> str:
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}"
             "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f0f0f0}"
             "img{max-width:100%;margin:1em 0}p.note{color:#555;font-size:13px}")
    body = [f"<h1>nodebench leaderboard</h1><p class='note'>{len(run_dirs)} run(s): "
            + ", ".join(html.escape(str(p)) for p in run_dirs) + "</p>"]
    for title, frame, note in sections:
        body += [f"<h2>{html.escape(title.replace('`', ''))}</h2>", f"<p class='note'>{html.escape(note)}</p>",
                 frame.to_html(index=False, border=0)]
    body.append("<h2>Figures</h2>")
    for path in figures:
        data = base64.b64encode(path.read_bytes()).decode()
        body.append(f"<img alt='{html.escape(path.stem)}' src='data:image/png;base64,{data}'>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>nodebench leaderboard</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
