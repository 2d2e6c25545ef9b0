"""The history store as a static site: ``index.html`` with one graph per configuration and metric over
the runs (commits), the gate's verdicts marked, each point a link to its run's records; the list of
regressions; the list of cases that newly failed and measurements lost (which fail the gate too, with no
value to draw); and the machine, environment and gate decision of every run. A filter by metric shows one
metric's graphs, regressions and lost measurements. One self-contained page (inline SVG, CSS and JS) and the
records it links to, copied beside it, so the site opens from disk or any static host, wherever it is moved.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd

from nodebench.benchmarking.compare import REGRESSION, RULES, Rule, _value, load_records
from nodebench.benchmarking.history_plots import GATE_NOTE, drawn, gate_failure_text, run_gates
from nodebench.html_page import cell, document, esc, plain_table, select, table
from nodebench.records import RECORDS, atomic_write, short_commit

VERDICT_COLOURS = {REGRESSION: "#c00", "improved": "#080", "noise": "#c80"}
WIDTH, HEIGHT, PAD = 380, 150, 34


#: The folder of the site that holds each run's records, one subfolder per run (named as the run's folder).
SITE_RECORDS = "records"


def _link(run_dir: str, out: Path) -> str:
    """The page-relative link to a run's records: their copy inside the site (:func:`write_site`), so that a
    site written elsewhere than the store (``--out``) and moved or published later keeps its links."""
    return f"{SITE_RECORDS}/{Path(run_dir).name}/{RECORDS}"


def shown_label(rule: Rule) -> str:
    """A metric's name with the unit its values are shown in (``"time/iter [ms]"``, ``"NFE/iter"``)."""
    return f"{rule.label} [{rule.unit}]" if rule.unit else rule.label


def graph(line: pd.DataFrame, runs: int, label: str, out: Path, rule: Rule) -> str:
    """An SVG line of one configuration's metric over the runs, in the unit the gate shows it in (``rule``'s
    scale: milliseconds, MiB, as ``nodebench compare`` and ``history.md``, never raw seconds or bytes); points
    link to the run's records."""
    line = line.sort_values("run")
    values = line["value"].astype(float) * rule.scale
    finite = values[values.map(math.isfinite)]
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    span = (high - low) or (abs(high) or 1.0)
    low, high = low - 0.1 * span, high + 0.1 * span

    def xy(run, value):
        x = PAD + (WIDTH - PAD - 8) * (run / max(runs - 1, 1))
        return x, HEIGHT - 18 - (HEIGHT - 28) * (value - low) / (high - low)

    points = [xy(r, v) for r, v in zip(line["run"], values) if math.isfinite(v)]
    parts = [f"<svg class='graph' width='{WIDTH}' height='{HEIGHT}' role='img' aria-label='{esc(label)}'>",
             f"<line x1='{PAD}' y1='{HEIGHT - 18}' x2='{WIDTH - 8}' y2='{HEIGHT - 18}' stroke='#999'/>",
             f"<text x='2' y='14' font-size='10'>{esc(f'{high:.3g}')}</text>",
             f"<text x='2' y='{HEIGHT - 20}' font-size='10'>{esc(f'{low:.3g}')}</text>",
             f"<text x='{PAD}' y='{HEIGHT - 4}' font-size='10'>runs (commits) →</text>",
             "<polyline fill='none' stroke='#36c' stroke-width='1.5' points='"
             + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + "'/>"]
    for row, value in zip(line.itertuples(), values):
        if not math.isfinite(value):
            continue
        x, y = xy(row.run, value)
        colour = VERDICT_COLOURS.get(row.verdict, "#36c")
        radius = 5 if row.verdict == REGRESSION else 3
        tip = f"{row.date} {row.git_sha}: {_value(row.value, rule)} ({row.verdict or 'first run'})"
        parts.append(f"<a href='{esc(_link(row.run_dir, out))}'>"
                     f"<circle class='point verdict-{esc(row.verdict or 'first')}' cx='{x:.1f}' cy='{y:.1f}'"
                     f" r='{radius}' fill='{colour}'><title>{esc(tip)}</title></circle></a>")
    return "".join(parts) + "</svg>"


def metric_attr(metric: str) -> str:
    """The ``data-metric`` attribute of a failure's row where it concerns one gated metric (a lost measurement),
    so the metric filter shows it with that metric; none for a failed case or lost curves (every metric's)."""
    return f" data-metric='{esc(metric)}'" if metric in RULES else ""


def environment(runs: pd.DataFrame, gates: pd.DataFrame) -> pd.DataFrame:
    """Per run: date, commit, machine, its gate's decision (:func:`run_gates`; "–" for a run with no gated
    row), CPU, cores, threads, GPU and versions (from its records)."""
    columns = [("hostname", "host"), ("cpu_model", "CPU"), ("cpu_count", "cores"), ("num_threads", "threads"),
               ("gpu_model", "GPU"), ("device", "device"), ("version_torch", "torch"),
               ("version_torchdiffeq", "torchdiffeq")]
    gate = dict(zip(gates["run"], gates["gate"]))
    rows = []
    for index, run in enumerate(runs.itertuples()):
        records, _ = load_records(Path(run.run_dir))
        first = records.iloc[0] if len(records) else pd.Series(dtype=object)
        rows.append([index, str(run.date), short_commit(run.git_sha), run.machine, gate.get(index, "–")]
                    + [first.get(c, "") for c, _ in columns] + [len(records)])
    return pd.DataFrame(rows, columns=["run", "date", "git", "machine", "gate"] + [label for _, label in columns]
                        + ["cases"])


def write_site(history: pd.DataFrame, runs: pd.DataFrame, out: str | Path) -> Path:
    """Write ``out/index.html`` from :func:`history_table`'s ``history`` and the store's ``runs``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for run_dir in runs["run_dir"]:  # the records every link points to, copied next to the page
        copy = out / _link(run_dir, out)
        copy.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(copy, lambda tmp, source=Path(run_dir) / RECORDS: shutil.copyfile(source, tmp))
    machine, suite = runs["machine"].iloc[0], runs["suite"].iloc[0]
    regressions = history[history["verdict"] == REGRESSION].sort_values("run")
    failures = history[history["fails"] & (history["verdict"] != REGRESSION)].sort_values("run")
    fail_rows = [f"<tr{metric_attr(r.metric)}>{cell(str(r.run), value=r.run)}{cell(esc(r.date))}"
                 f"{cell(esc(r.git_sha))}{cell(esc(gate_failure_text(r)))}"
                 f"{cell(f'<a href={chr(39)}{esc(_link(r.run_dir, out))}{chr(39)}>records</a>')}</tr>"
                 for r in failures.itertuples()]
    reg_rows = [f"<tr data-metric='{esc(r.metric)}'>{cell(str(r.run), value=r.run)}{cell(esc(r.date))}"
                f"{cell(esc(r.git_sha))}{cell(esc(r.case))}"
                f"{cell(esc(RULES[r.metric].label))}"
                f"{cell(esc(_value(r.value, RULES[r.metric])), value=r.value, css='num')}"
                f"{cell(f'<a href={chr(39)}{esc(_link(r.run_dir, out))}{chr(39)}>records</a>')}</tr>"
                for r in regressions.itertuples()]
    graphs = []
    for (case, metric), line in drawn(history).groupby(["case", "metric"], sort=True):
        label = shown_label(RULES[metric])
        flagged = int((line["verdict"] == REGRESSION).sum())
        graphs.append(f"<figure class='history' data-metric='{esc(metric)}'><figcaption><b>{esc(case)}</b> · "
                      f"{esc(label)}{f' · {flagged} regression(s)' if flagged else ''}</figcaption>"
                      + graph(line, len(runs), f"{case} {label}", out, RULES[metric]) + "</figure>")
    body = [f"<h1>nodebench history: {esc(suite)} on {esc(machine)}</h1>",
            f"<p class='note'>{len(runs)} run(s) from {esc(runs['date'].iloc[0])} to {esc(runs['date'].iloc[-1])}. "
            "Each run is gated against the one before it; points: blue same, orange noise, green improved, "
            "red (large) regression. Hover a point for its commit and value; click it for the run's records.</p>",
            "<div class='filters'>" + select("metric", "metric", drawn(history)["metric"]) + "</div>",
            f"<h2>Regressions ({len(regressions)})</h2>",
            table(["run", "date", "git", "configuration", "metric", "value", "records"], reg_rows,
                  attrs=" id='regressions'")
            if reg_rows else "<p id='regressions'>None.</p>",
            f"<h2>Newly failing cases and lost measurements ({len(failures)})</h2>",
            f"<p class='note'>{esc(GATE_NOTE)} A case that newly failed has no value to draw.</p>",
            table(["run", "date", "git", "what", "records"], fail_rows, attrs=" id='failures'")
            if fail_rows else "<p id='failures'>None.</p>",
            "<h2>Graphs</h2>",
            "<div id='graphs' style='display:flex;flex-wrap:wrap;gap:8px'>" + "".join(graphs) + "</div>",
            "<h2>Runs</h2><p class='note'>The machine and environment of each run, and its gate's decision.</p>",
            plain_table(environment(runs, run_gates(history))).replace("<table", "<table id='runs'", 1)]
    path = out / "index.html"
    text = document(f"nodebench history: {suite}", "".join(body))
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path
