"""``report.md``: what was run, what was measured, and each published claim beside our figure; and the
same as the self-contained page ``report.html`` (:mod:`nodebench.report_page`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from nodebench.claims import CHECKS, FAILS, HOLDS, NOT_CHECKED, NOT_MEASURED, check_claims
from nodebench.intervals import median_interval, ok_count_text
from nodebench.markdown import INFINITE, fmt_mib, fmt_ms, fmt_number, markdown_table
from nodebench.metrics import headline_metric
from nodebench.records import atomic_write, config_labels, expand_hparams, measured_memory
from nodebench.report_page import write_report_html
from nodebench.run_settings import settings_section

SUMMARY_COLUMNS = [
    ("train_wall_s", "train time [s]", ".3g"),
    ("time_per_iter_s", "time/iter [ms]", "ms"),
    ("iters", "iters", ".0f"),
    ("nfe_forward_per_iter", "NFE fwd/iter", ".1f"),
    ("nfe_backward_per_iter", "NFE bwd/iter", ".1f"),
    ("peak_mem_bytes", "peak mem [MiB]", "mib"),
]
#: Shown where a run recorded it (runs before the column existed did not): the allocated-bytes peak of
#: forward + backward from an untimed pass, which does not depend on the pages an allocator keeps.
ALLOCATED = ("alloc_peak_bytes", "allocated fwd+bwd [MiB]", "mib")


def _fmt(value, style: str) -> str:
    """``value`` in ``style``: a format spec, or "ms" (seconds as milliseconds, :func:`~nodebench.markdown.fmt_ms`)
    or "mib" (bytes as MiB, :func:`~nodebench.markdown.fmt_mib`); "–" where it is missing."""
    styled = {"ms": fmt_ms, "mib": fmt_mib}.get(style)
    return fmt_number(value, style) if styled is None else styled(value)


def _median_text(values, style: str, seeds=None) -> str:
    """The median over seeds; with two or more, its interval [low, high] (:mod:`nodebench.intervals`; with the
    cases' ``seeds``, a seed's repeats pooled first)."""
    interval = median_interval(values, seeds=seeds)
    if interval.n < 2 or interval.low == interval.high:
        return _fmt(interval.value if interval.n else None, style)
    return f"{_fmt(interval.value, style)} [{_fmt(interval.low, style)}, {_fmt(interval.high, style)}]"


def scope_experiment(scope: str, experiments) -> str | None:
    """The experiment a verdict's scope names: the scope itself, or its start before a setting
    (``"vehicle_high n_train=32"``, ``"digits_lambda, reg_order 2"``); ``None`` for ``"all"`` or a scope
    naming none of ``experiments``."""
    named = [e for e in map(str, experiments) if scope == e or scope.startswith((f"{e} ", f"{e},"))]
    return max(named, key=len) if named and scope != "all" else None


def claim_seeds(verdict, records: pd.DataFrame) -> int:
    """The fewest successful seeds behind a claim's verdict: over the methods of the experiment its scope
    names (0 where it has no successful case, or did not run), else of all experiments (scope "all"); 0 for a
    row with no verdict (not measured, not in the run, its check failed), which no seed is behind (a method with
    no successful seed left out of the count showed the others', "1" beside "adjoint has no successful run")."""
    if verdict.verdict not in (HOLDS, FAILS):
        return 0
    ok = records[records["status"] == "ok"] if "status" in records else records
    experiment = scope_experiment(verdict.scope, set(records.get("experiment", [])))
    scoped = ok if experiment is None else ok[ok["experiment"] == experiment]
    counts = scoped.groupby(["experiment", "method"])["seed"].nunique() if len(scoped) else pd.Series(dtype=int)
    return int(counts.min()) if len(counts) else 0


METRICS = ("test_mse", "extrap_mse", "test_nll", "inverse_error", "test_accuracy", "test_kl", "test_logprob")


def summary_table(records: pd.DataFrame) -> str:
    """Per method (and per value of each hyper-parameter that varies, e.g. ``gq width=500``): medians over
    successful seeds of time, NFE, memory ("–" where it was not measurable; the allocated peak where
    recorded) and the metrics, with their
    interval over seeds when there are two or more (:func:`nodebench.intervals.median_interval`). Seeds are
    distinct seeds: a seed run twice (a folder holding two runs of one case) is pooled, and ``ok/seeds`` says
    ``"2/2 runs of 1 seed"``."""
    metrics = [c for c in METRICS if c in records and records[c].notna().any()]
    columns = SUMMARY_COLUMNS + ([ALLOCATED] if ALLOCATED[0] in records and records[ALLOCATED[0]].notna().any()
                                 else [])
    header = ["method", "ok/seeds"] + [label for _, label, _ in columns] + metrics
    rows = []
    records = _by_method_then_hparams(records)
    records = records.assign(peak_mem_bytes=measured_memory(records))  # "–" where not measurable, never 0
    for method, group in records.groupby(config_labels(records), sort=False):
        ok = group[group["status"] == "ok"]
        row = [method, ok_count_text(len(ok), len(group), group["seed"].nunique())]
        row += [_median_text(ok[col], style, ok["seed"]) if col in ok else "–" for col, _, style in columns]
        row += [_median_text(ok[m], ".4g", ok["seed"]) for m in metrics]
        rows.append(row)
    table = markdown_table(header, rows)
    if any(INFINITE[1] in cell for row in rows for cell in row[2:]):
        table += ("\n\n∞: an infinite value (a metric that overflowed), not a missing one (–); a median of ∞ means "
                  "half the seeds or more.")
    return table


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


def _distinct(records: pd.DataFrame, column: str, most: int = 4) -> str:
    """The distinct values of ``column`` in first-seen order, "a, b"; beyond ``most``, the count with the first
    and last ("19 values: a … z"); "not recorded" when the column is absent or empty."""
    values = [str(v) for v in dict.fromkeys(records[column]) if pd.notna(v) and str(v)] if column in records else []
    if not values:
        return "not recorded"
    return ", ".join(values) if len(values) <= most else f"{len(values)} values: {values[0]} … {values[-1]}"


def environment_line(records: pd.DataFrame) -> str:
    """Where and with what the cases ran, over every record (a run resumed or extended at several commits,
    or on several machines, says so): commits, versions, CPU, threads, GPU and the span of start times."""
    started = records["started_at"].dropna().astype(str) if "started_at" in records else pd.Series(dtype=str)
    span = "not recorded" if started.empty else (
        started.min() if started.min() == started.max() else f"{started.min()} to {started.max()}")
    gpus = _distinct(records, "gpu_model")
    return (f"git {_distinct(records, 'git_sha')} · torch {_distinct(records, 'version_torch')} · torchdiffeq "
            f"{_distinct(records, 'version_torchdiffeq')} · CPU {_distinct(records, 'cpu_model')} "
            f"({_distinct(records, 'cpu_count')} core(s), {_distinct(records, 'num_threads')} torch thread(s) per case)"
            f" · GPU {'none' if gpus == 'not recorded' else gpus} · started {span}")


def data_line(records: pd.DataFrame) -> str:
    """The data sets of the cases, with their split sizes and whether their files verified (the provenance
    columns of :data:`nodebench.records.PROVENANCE`); "generated by the tasks" when none reads files."""
    if "dataset" not in records:
        return "not recorded"
    parts = []
    columns = ["dataset", "n_train", "n_val", "n_test", "data_verified"]
    for row in records[columns].drop_duplicates().itertuples(index=False):
        if not row.dataset or (isinstance(row.dataset, float) and math.isnan(row.dataset)):
            continue
        sizes = "/".join("–" if pd.isna(n) else str(int(n)) for n in (row.n_train, row.n_val, row.n_test))
        verified = "checksums verified" if pd.notna(row.data_verified) and bool(row.data_verified) else "not verified"
        parts.append(f"{row.dataset} (train/val/test {sizes}; {verified})")
    return "; ".join(dict.fromkeys(parts)) or "generated by the tasks (no data files)"


NOT_IN_RUN = "not in this preset"
#: an experiment of the preset that a ``--experiment`` selection left out
NOT_SELECTED = "not run (not selected)"


def _unseeded(claim: dict, tables: dict[str, pd.DataFrame]) -> bool:
    """Whether ``claim`` is judged on analysis tables alone, none of which has a ``seed`` or ``case_id`` column
    (S6's Legendre fit, T4's Taylor-mode timings): a seed count would describe runs the verdict does not use."""
    if claim.get("check") is None:
        return False
    read = CHECKS.lookup(claim["check"]).tables_read(claim)
    return bool(read) and all(name in tables and not {"seed", "case_id"} & set(tables[name].columns) for name in read)


def _outside_the_run(verdicts, records: pd.DataFrame, at_preset: set[str] = frozenset(), preset: str = ""):
    """Verdicts on experiments that did not run at all say so, instead of "no successful run", which is kept for
    experiments whose cases all failed: :data:`NOT_SELECTED` for an experiment of the preset (``at_preset``)
    that an ``--experiment`` selection left out, :data:`NOT_IN_RUN` for one the preset does not run."""
    ran = set(records["experiment"]) if "experiment" in records else set()
    for verdict in verdicts:
        experiment = verdict.scope.split(",")[0].strip()
        if verdict.verdict == NOT_MEASURED and verdict.scope != "all" and experiment not in ran:
            if experiment in at_preset:
                verdict.measured = (f"experiment {experiment} was not run: it is in preset {preset}, but not in "
                                    "the --experiment selection")
                verdict.verdict = NOT_SELECTED
            else:
                verdict.measured, verdict.verdict = f"experiment {experiment} was not run", NOT_IN_RUN
    return verdicts


def _verdict_cell(verdict: str, preset: str) -> str:
    """Bold for a verdict at a measuring preset; plainly labelled indicative for the smoke preset."""
    if verdict in (NOT_MEASURED, NOT_IN_RUN, NOT_SELECTED, NOT_CHECKED):
        return verdict
    return f"indicative (smoke preset): {verdict}" if preset == "smoke" else f"**{verdict}**"


def memory_note(records: pd.DataFrame) -> str:
    """What the peak mem column of ``records`` measures, by how each was read (``mem_source``,
    :class:`~nodebench.harness.memory.PeakMemory`): on CUDA the allocator's peak, on the CPU the resident set's,
    whose "–" (:func:`~nodebench.records.measured_memory`) needs saying."""
    sources = set(records["mem_source"].dropna()) if "mem_source" in records else set()
    cuda = "the CUDA allocator's peak added above what it held before each step"
    cpu = ("the resident-set peak added above what was held before each step (– where the resident set did not grow: "
           "the step reused pages already resident, which says nothing of what it allocated; the allocated fwd+bwd "
           "column, where recorded, the allocator's peak in an untimed pass, shows that)")
    if sources == {"cuda_allocated"}:
        return f"peak mem is {cuda}"
    return f"peak mem is{f', on CUDA, {cuda}; on the CPU,' if 'cuda_allocated' in sources else ''} {cpu}"


def write_report(run_dir: str | Path, records: pd.DataFrame, figures: list[Path], *, spec=None,
                 tables: dict[str, pd.DataFrame] | None = None, preset: str = "", sections: list[str] = (),
                 info: dict | None = None, link_figures: bool = False) -> Path:
    """Write ``run_dir/report.md`` and ``report.html`` (figures inlined, or linked with ``link_figures``; each
    whole or not at all) and return the report's path; ``info`` (the run's ``run.json``) gives the Settings
    section: command, environment, preset, per-experiment limits, seeds and hyper-parameters, warnings."""
    run_dir = Path(run_dir)
    title = f"{spec.title} — nodebench reproduction" if spec else "nodebench run"
    lines = [f"# {title}", ""]
    if spec:
        lines += [f"Paper: {spec.reference}. Preset: **{preset or '–'}**.", ""]
        if spec.notes:
            lines += [spec.notes.strip(), ""]
    shown = dict(info or {})
    if spec and preset != "smoke" and shown.get("preset") == preset:
        shown.pop("preset")  # the paper line above says it (smoke's line carries its caveat: kept)
    lines += settings_section(shown)
    if records.empty:
        lines += ["No cases were recorded."]
    else:
        lines += [f"Environment: {environment_line(records)}", "", f"Data: {data_line(records)}", "",
                  "Times are the sum of synchronised per-iteration step times (warm-up excluded, clock paused "
                  f"for evaluation); {memory_note(records)}; medians over successful seeds.", ""]
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
        at_preset = {exp.name for exp in spec.experiments if preset in exp.presets}
        verdicts = _outside_the_run(check_claims(spec.claims, records, tables), records, at_preset, preset)
        lines += ["## Claims", ""]
        if preset == "smoke":
            lines += ["*Smoke preset: every run lasts seconds to a minute on a CPU. The verdicts describe these "
                      "short runs (early training, before adaptive solvers' NFE grows), not converged training; "
                      "use `--preset quick` or `--preset paper` to judge the claims.*", ""]
        claims = {claim["id"]: claim for claim in spec.claims}
        seeds = ["–" if _unseeded(claims[v.claim_id], tables or {}) else claim_seeds(v, records) for v in verdicts]
        lines += ["Seeds: the fewest successful seeds behind the verdict; a verdict on one seed says so; – where it "
                  "rests on analysis tables that no seed varies (a deterministic fit, a timing sweep).", "",
                  markdown_table(["id", "claim", "source", "scope", "our measurement", "seeds", "verdict"],
                                 [[v.claim_id, v.claim, v.source, v.scope, v.measured, n,
                                   _verdict_cell(v.verdict, preset)
                                   + (" (1 seed)" if n == 1 and v.verdict in (HOLDS, FAILS) else "")]
                                  for v, n in zip(verdicts, seeds)]), ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figures if p.suffix == ".png"]
    path = run_dir / "report.md"
    text = "\n".join(lines) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))  # whole or not at all: a kill keeps the last report
    write_report_html(path, link_figures=link_figures)
    return path
