"""History plots: each gated metric over the runs of one machine and suite, with regressions marked.

Every run is gated against the run before it (:mod:`nodebench.benchmarking.compare`); a point where that gate
found a regression is drawn as a red cross. Values are medians of the run's repeat samples (the gate's
centre), each run's from its own records, whatever the run before it measured; shown
relative to the case's first run for ratio-gated metrics and as raw values for absolute-gated ones
(``test_nll``, ``test_accuracy``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from nodebench.benchmarking.compare import REGRESSION, RULES, centre, compare, keyed, load_records, samples
from nodebench.records import atomic_write

matplotlib.use("Agg")


def run_values(loaded: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """Every gated metric of every configuration of one run (``case, metric, value``): the centre of its own
    samples, as the gate reads a run (:func:`~nodebench.benchmarking.compare.centre`)."""
    records, curves = loaded
    several_devices = records.get("device", pd.Series([""])).fillna("").astype(str).nunique() > 1
    rows = [{"case": cur["case"].iloc[0], "metric": metric, "value": centre(values)}
            for _, cur in keyed(records, show_device=several_devices).groupby("key", sort=False)
            for metric in RULES if len(values := samples(cur, curves, metric))]
    return pd.DataFrame(rows, columns=["case", "metric", "value"])


def history_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run, configuration and metric: the run's value (:func:`run_values`) and the verdict against the
    previous run ("" where the gate gave none: the first run, a configuration or metric new in this run).

    Args:
        runs: rows of :func:`nodebench.benchmarking.history.list_runs` for one machine and suite, oldest first.
    """
    frames, previous = [], None
    for index, run in enumerate(runs.itertuples()):
        loaded = load_records(run.run_dir)
        result = run_values(loaded).assign(verdict="")
        if previous is not None:
            verdicts = compare(previous, loaded)[["case", "metric", "verdict"]]
            result = result.drop(columns="verdict").merge(verdicts, on=["case", "metric"], how="left")
            result["verdict"] = result["verdict"].fillna("")
        frames.append(result.assign(run=index, date=run.date, git_sha=str(run.git_sha)[:7], run_dir=str(run.run_dir)))
        previous = loaded
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["case", "metric", "value", "verdict", "run", "date", "git_sha", "run_dir"])


def plot_history(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One PNG per metric in ``out_dir``: every configuration's value over the runs; returns the paths. Each is
    written whole or not at all (:func:`~nodebench.records.atomic_write`): a killed redraw keeps the last one."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    ticks = table.drop_duplicates("run").sort_values("run")
    labels = [f"{str(d)[:16].replace('T', ' ')}\n{sha}" for d, sha in zip(ticks["date"], ticks["git_sha"])]
    for metric, group in table.groupby("metric", sort=False):
        rule = RULES[metric]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(ticks) + 3), 4.2))
        for case, line in group.groupby("case", sort=True):
            line = line.sort_values("run")
            first = line["value"].iloc[0]
            y = line["value"] if rule.absolute or not first else line["value"] / first
            ax.plot(line["run"], y, marker="o", ms=3, lw=1, label=case)
            bad = line["verdict"] == REGRESSION
            ax.scatter(line["run"][bad], y[bad], marker="x", s=80, color="red", zorder=3)
        ax.set_xticks(ticks["run"], labels, fontsize=7, rotation=45 if len(ticks) > 8 else 0)
        ax.set(ylabel=rule.label if rule.absolute else f"{rule.label} relative to the first run",
               title=f"{rule.label} over runs (red ×: gated as a regression against the previous run)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
        path = out_dir / f"history_{metric}.png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        paths.append(path)
    return paths


def history_markdown(table: pd.DataFrame, figures: list[Path], out_dir: Path) -> str:
    """``history.md``: the runs with their regression counts, then the figures."""
    rows = []
    for run, group in table.groupby("run", sort=True):
        flagged = group[group["verdict"] == REGRESSION]
        rows.append([run, group["date"].iloc[0], group["git_sha"].iloc[0], len(flagged),
                     ", ".join(f"{c} ({RULES[m].label})" for c, m in zip(flagged["case"], flagged["metric"]))])
    runs = pd.DataFrame(rows, columns=["run", "date", "git", "regressions", "which"])
    lines = ["# nodebench history", "", runs.to_markdown(index=False), ""]
    lines += [f"![{p.stem}]({p.relative_to(out_dir)})" for p in figures]
    return "\n".join(lines) + "\n"
