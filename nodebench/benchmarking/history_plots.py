"""History plots: each gated metric over the runs of one machine and suite, with regressions marked.

Every run is gated against the run before it on its device (:mod:`nodebench.benchmarking.compare`); a point
where that gate found a regression is drawn as a red cross. The gate also fails a run for a case that newly failed (oom,
diverged, error...) or a measurement it lost, which have no value to draw: ``history.md`` counts and names them
beside the regressions, and says whether each run passed its gate. Values are medians of the run's repeat
samples (the gate's centre), each run's from its own records, whatever the run before it measured; shown
relative to the case's first run for ratio-gated metrics and as raw values for absolute-gated ones
(``test_nll``, ``test_accuracy``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nodebench.benchmarking.compare import (
    FAILED,
    MISSING,
    REGRESSION,
    RULES,
    centre,
    compare,
    failing,
    keyed,
    load_records,
    samples,
)
from nodebench.benchmarking.history import same_device
from nodebench.figure_style import styled, subplots
from nodebench.records import atomic_write, short_commit


def run_values(loaded: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """Every gated metric of every configuration of one run (``case, metric, value``): the centre of its own
    samples, as the gate reads a run (:func:`~nodebench.benchmarking.compare.centre`)."""
    records, curves = loaded
    several_devices = records.get("device", pd.Series([""])).fillna("").astype(str).nunique() > 1
    rows = [{"case": cur["case"].iloc[0], "metric": metric, "value": centre(values)}
            for _, cur in keyed(records, show_device=several_devices).groupby("key", sort=False)
            for metric in RULES if len(values := samples(cur, curves, metric))]
    return pd.DataFrame(rows, columns=["case", "metric", "value"])


GATE_NOTE = ("Each run is gated against the run before it on its device: it fails for a regression, a case that "
             "newly failed (oom, diverged, error...) or a measurement it lost.")
HISTORY_COLUMNS = ["case", "metric", "value", "verdict", "fails", "note", "run", "date", "git_sha", "run_dir"]


def history_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run, configuration and metric: the run's value (:func:`run_values`), the verdict against the
    previous run ("" where the gate gave none: the first run, a configuration or metric new in this run),
    whether that row fails the gate (``fails``: :func:`~nodebench.benchmarking.compare.failing`) and the
    gate's note. A failing row without a value (a case that newly failed, ``metric`` ``status``, with its
    statuses in ``note``; a lost measurement or lost curves) is a row too, its value NaN, so the history
    fails a run where its gate did.

    Args:
        runs: rows of :func:`nodebench.benchmarking.history.list_runs` for one machine and suite, oldest first.
    """
    frames, latest = [], {}  # device → the latest run on it: each run is gated against the one before it there
    for index, run in enumerate(runs.itertuples()):
        loaded = load_records(run.run_dir)
        result = run_values(loaded).assign(verdict="", fails=False, note="")
        device = getattr(run, "device", "")
        previous = next((latest[d] for d in reversed(list(latest)) if same_device(d, device)), None)
        if previous is not None:
            gate = compare(previous, loaded)
            gate = gate.assign(fails=failing(gate), note=gate["note"].fillna(""))
            merged = result[["case", "metric", "value"]].merge(gate[["case", "metric", "verdict", "fails", "note"]],
                                                                on=["case", "metric"], how="outer", indicator=True)
            result = merged[(merged.pop("_merge") != "right_only") | merged["fails"].fillna(False).astype(bool)]
            result = result.fillna({"verdict": "", "note": "", "fails": False}).astype({"fails": bool})
        frames.append(result.assign(run=index, date=run.date, git_sha=short_commit(run.git_sha),
                                    run_dir=str(run.run_dir)))
        latest.pop(device, None)
        latest[device] = loaded
    return pd.concat(frames, ignore_index=True)[HISTORY_COLUMNS] if frames else pd.DataFrame(columns=HISTORY_COLUMNS)


def drawn(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`history_table` with a value to draw (a gated metric's); a failing row without one
    (a newly failed case, a lost measurement) is listed by :func:`gate_failure_text`, not drawn."""
    return table[table["metric"].isin(list(RULES)) & table["value"].notna()]


def gate_failure_text(row) -> str:
    """A failing row of :func:`history_table` for a list: ``"e: m (time/iter)"`` (a regression), ``"e: m (now
    fails: oom)"``, ``"e: m (peak memory not measured)"``, ``"e: m (curves missing)"``."""
    if row.verdict == FAILED:
        return f"{row.case} (now fails: {row.note})"
    if row.verdict == MISSING:
        return f"{row.case} ({RULES[row.metric].label + ' not measured' if row.metric in RULES else 'curves missing'})"
    return f"{row.case} ({RULES[row.metric].label})"


@styled()
def plot_history(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One PNG per metric in ``out_dir``: every configuration's value over the runs; returns the paths. Each is
    written whole or not at all (:func:`~nodebench.records.atomic_write`): a killed redraw keeps the last one."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    table = drawn(table)
    ticks = table.drop_duplicates("run").sort_values("run")
    labels = [f"{str(d)[:16].replace('T', ' ')}\n{sha}" for d, sha in zip(ticks["date"], ticks["git_sha"])]
    for metric, group in table.groupby("metric", sort=False):
        rule = RULES[metric]
        fig, ax = subplots(figsize=(max(6.0, 0.6 * len(ticks) + 3), 4.2))
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
        paths.append(path)
    return paths


def run_gates(table: pd.DataFrame) -> pd.DataFrame:
    """Per run of :func:`history_table`: its gate's decision (``fails`` as ``nodebench compare`` of that run
    against the one before, or ``passes``; ``–`` for the first run, gated against nothing), its regressions,
    newly failing cases and lost measurements (counts), and which (:func:`gate_failure_text`)."""
    rows = []
    for run, group in table.groupby("run", sort=True):
        flagged = group[group["fails"]]
        counts = [int((flagged["verdict"] == verdict).sum()) for verdict in (REGRESSION, FAILED, MISSING)]
        rows.append([run, group["date"].iloc[0], group["git_sha"].iloc[0],
                     "–" if run == 0 else "fails" if len(flagged) else "passes", *counts,
                     ", ".join(gate_failure_text(row) for row in flagged.itertuples())])
    return pd.DataFrame(rows, columns=["run", "date", "git", "gate", "regressions", "newly failing cases",
                                       "lost measurements", "which"])


def history_markdown(table: pd.DataFrame, figures: list[Path], out_dir: Path) -> str:
    """``history.md``: the runs with their gates' decisions and failures (:func:`run_gates`), then the figures."""
    runs = run_gates(table)
    lines = ["# nodebench history", "", GATE_NOTE, "",
             runs.to_markdown(index=False), ""]
    lines += [f"![{p.stem}]({p.relative_to(out_dir)})" for p in figures]
    return "\n".join(lines) + "\n"
