"""``report.md``: what was run, what was measured, and each published claim beside our figure."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from nodebench.claims import NOT_MEASURED, check_claims
from nodebench.figure_style import measured_memory
from nodebench.markdown import markdown_table
from nodebench.metrics import headline_metric
from nodebench.records import config_labels, expand_hparams
from nodebench.run_settings import settings_section

SUMMARY_COLUMNS = [
    ("train_wall_s", "train time [s]", "{:.3g}"),
    ("time_per_iter_s", "time/iter [ms]", "ms"),
    ("iters", "iters", "{:.0f}"),
    ("nfe_forward_per_iter", "NFE fwd/iter", "{:.1f}"),
    ("nfe_backward_per_iter", "NFE bwd/iter", "{:.1f}"),
    ("peak_mem_bytes", "peak mem [MiB]", "mib"),
]


def _fmt(value, style: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if style == "ms":
        return f"{value * 1e3:.3g}"
    if style == "mib":
        return f"{value / 2**20:.3g}"
    return style.format(value)


METRICS = ("test_mse", "extrap_mse", "test_nll", "inverse_error", "test_accuracy", "test_kl", "test_logprob")


def summary_table(records: pd.DataFrame) -> str:
    """Per method (and per value of each hyper-parameter that varies, e.g. ``gq width=500``): medians over
    successful seeds of time, NFE, memory ("–" where it was not measurable) and the metrics."""
    metrics = [c for c in METRICS if c in records and records[c].notna().any()]
    header = ["method", "ok/seeds"] + [label for _, label, _ in SUMMARY_COLUMNS] + metrics
    rows = []
    records = _by_method_then_hparams(records)
    records = records.assign(peak_mem_bytes=measured_memory(records))  # "–" where not measurable, never 0
    for method, group in records.groupby(config_labels(records), sort=False):
        ok = group[group["status"] == "ok"]
        row = [method, f"{len(ok)}/{len(group)}"]
        row += [_fmt(ok[col].median() if col in ok and len(ok) else None, style) for col, _, style in SUMMARY_COLUMNS]
        row += [_fmt(ok[m].median() if len(ok) else None, "{:.4g}") for m in metrics]
        rows.append(row)
    return markdown_table(header, rows)


def _by_method_then_hparams(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with methods in their order of first appearance, then by hyper-parameter values."""
    expanded = expand_hparams(records)
    first = {m: i for i, m in enumerate(dict.fromkeys(records["method"]))}
    keys = expanded.assign(_method=expanded["method"].map(first))
    columns = ["_method"] + [c for c in keys if c.startswith("hp_")]
    for column in columns[1:]:
        keys[column] = pd.to_numeric(keys[column], errors="coerce")
    return records.loc[keys.sort_values(columns, kind="stable").index]


def failures_table(records: pd.DataFrame) -> str:
    failed = records[records["status"] != "ok"]
    if failed.empty:
        return ""
    rows = [[r.task, r.method, r.seed, r.status, r.reason] for r in failed.itertuples()]
    return "\n\n**Failed cases** (recorded, not retried):\n\n" + markdown_table(
        ["task", "method", "seed", "status", "reason"], rows)


def environment_line(records: pd.DataFrame) -> str:
    first = records.iloc[0]
    gpu = first.get("gpu_model") or "none"
    return (f"git `{first.get('git_sha')}` · torch {first.get('version_torch')} · torchdiffeq "
            f"{first.get('version_torchdiffeq')} · CPU {first.get('cpu_model')} ({first.get('cpu_count')} cores, "
            f"{first.get('num_threads')} torch thread(s) per case) · GPU {gpu} · started {first.get('started_at')}")


NOT_IN_RUN = "not in this preset"


def _outside_the_run(verdicts, records: pd.DataFrame):
    """Verdicts on experiments that did not run at all (outside the preset or the ``--experiment`` selection)
    say so, instead of "no successful run", which is kept for experiments whose cases all failed."""
    ran = set(records["experiment"]) if "experiment" in records else set()
    for verdict in verdicts:
        experiment = verdict.scope.split(",")[0].strip()
        if verdict.verdict == NOT_MEASURED and verdict.scope != "all" and experiment not in ran:
            verdict.measured, verdict.verdict = f"experiment {experiment} was not run", NOT_IN_RUN
    return verdicts


def _verdict_cell(verdict: str, preset: str) -> str:
    """Bold for a verdict at a measuring preset; plainly labelled indicative for the smoke preset."""
    if verdict in (NOT_MEASURED, NOT_IN_RUN):
        return verdict
    return f"indicative (smoke preset): {verdict}" if preset == "smoke" else f"**{verdict}**"


def write_report(run_dir: str | Path, records: pd.DataFrame, figures: list[Path], *, spec=None,
                 tables: dict[str, pd.DataFrame] | None = None, preset: str = "", sections: list[str] = (),
                 info: dict | None = None) -> Path:
    """Write ``run_dir/report.md`` and return its path; ``info`` (the run's ``run.json``) gives the Settings
    section: command, environment, preset, per-experiment limits, seeds and hyper-parameters, warnings."""
    run_dir = Path(run_dir)
    title = f"{spec.title} — nodebench reproduction" if spec else "nodebench run"
    lines = [f"# {title}", ""]
    if spec:
        lines += [f"Paper: {spec.reference}. Preset: **{preset or '–'}**.", ""]
        if spec.notes:
            lines += [spec.notes.strip(), ""]
    lines += settings_section(info or {})
    if records.empty:
        lines += ["No cases were recorded."]
    else:
        lines += [f"Environment: {environment_line(records)}", "",
                  "Times are the sum of synchronised per-iteration step times (warm-up excluded, clock paused "
                  "for evaluation); memory is the peak added above what was held before each step; medians over "
                  "successful seeds.", ""]
        if spec:
            order = {exp.name: i for i, exp in enumerate(spec.experiments)}
            methods = {m: i for exp in reversed(spec.experiments) for i, m in enumerate(exp.methods)}
            records = records.sort_values(["experiment", "method"], key=lambda col: col.map(
                order if col.name == "experiment" else methods).fillna(len(order) + len(methods)))
        for experiment, group in records.groupby("experiment", sort=False):
            name = experiment or group["task"].iloc[0]
            lines += [f"## {name}", "", f"Task `{group['task'].iloc[0]}`. Headline metric: "
                      f"`{headline_metric(group) or 'none'}`.", "", summary_table(group) + failures_table(group), ""]
    lines += list(sections)
    if spec and spec.claims:
        verdicts = _outside_the_run(check_claims(spec.claims, records, tables), records)
        lines += ["## Claims", ""]
        if preset == "smoke":
            lines += ["*Smoke preset: every run lasts seconds to a minute on a CPU. The verdicts describe these "
                      "short runs (early training, before adaptive solvers' NFE grows), not converged training; "
                      "use `--preset quick` or `--preset paper` to judge the claims.*", ""]
        lines += [ markdown_table(
            ["id", "claim", "source", "scope", "our measurement", "verdict"],
            [[v.claim_id, v.claim, v.source, v.scope, v.measured, _verdict_cell(v.verdict, preset)]
             for v in verdicts]), ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figures if p.suffix == ".png"]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
