"""The leaderboard's outputs: ``leaderboard.md`` and ``leaderboard.html``, one self-contained HTML page: the
summary first (performance profiles per method family and the family × task table), then the overall scores,
one section per task with each family's best configuration per hardware (the others folded), the figures and
the environment. Filters by paper, task and device; every table sorts by a click on its header; every number's
tooltip says where it was measured.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from nodebench.benchmarking.leaderboard import (
    R_MAX,
    TASK_ORDER,
    _fmt,
    build,
    display_overall,
    display_task,
    environment_table,
    family_best,
    fastest_times,
    hardware_names,
    hardware_ranks,
    machines_note,
    ok_text,
    overall,
    plot_profile,
    plot_times,
    score_ranks,
    summary,
    summary_cells,
    summary_rows,
    target_note,
    time_text,
    unscored_note,
    with_hardware,
)
from nodebench.errors import UserError
from nodebench.html_page import cell, document, esc, image, plain_table, select, table
from nodebench.records import atomic_write
from nodebench.registry import nearest


def _time_cell(row, best_time: float, attrs: str = "", compact: bool = False) -> str:
    """A time to target; ``compact``: the interval and seed count on a second, small line."""
    missed = math.isinf(row.time_to_target_s)
    text = esc(time_text(row))
    if compact and " " in text:
        text = text.replace(" ", "<br><small>", 1) + "</small>"
    css = "num miss" if missed else ("num best" if row.time_to_target_s == best_time else "num")
    return cell(text, value=row.time_to_target_s, css=css,
                title=f"{row.family} {row.settings} — {row.environment}", attrs=attrs)


def _summary_table(tasks: dict[str, pd.DataFrame], papers: dict[str, str]) -> str:
    """The family × task table: a row per family and hardware (:func:`summary_rows`), the fastest time of each
    task on each hardware marked."""
    bests = summary_cells(tasks)
    fastest = {task: fastest_times(table) for task, table in tasks.items()}
    several = len(hardware_names(tasks)) > 1
    head = "<th>family</th>" + ("<th>hardware</th>" if several else "") + "".join(
        f"<th data-task='{esc(t)}' data-paper='{esc(papers[t])}'>{esc(t)}</th>" for t in tasks)
    rows = []
    for hardware, family in summary_rows(tasks):
        key = (hardware, family)
        device = next(best[key].device for best in bests.values() if key in best)
        cells = [f"<td><b>{esc(family)}</b></td>"] + ([cell(esc(hardware or "unknown"))] if several else [])
        for task, best in bests.items():
            attrs = f" data-task='{esc(task)}' data-paper='{esc(papers[task])}'"
            cells.append(_time_cell(best[key], fastest[task][hardware], attrs, compact=True) if key in best
                         else cell("", attrs=attrs))
        rows.append(f"<tr data-device='{esc(device)}'>{''.join(cells)}</tr>")
    return (f"<table class='sortable' id='summary'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _config_row(row, fastest: float, rank: int, others: str = "") -> str:
    return (f"<tr data-device='{esc(row.device)}'>" + cell(str(rank), value=rank, css="num")
            + cell(f"<b>{esc(row.family)}</b>") + cell(esc(row.settings)) + cell(esc(row.device))
            + cell(esc(row.machine))
            + cell(esc(ok_text(row))) + cell(f"{row.reached}/{row.seeds}") + _time_cell(row, fastest)
            + cell(esc(_fmt(row.peak_mem_bytes, "mib")), value=row.peak_mem_bytes, css="num", title=row.environment)
            + cell(esc(_fmt(row.nfe_per_iter)), value=row.nfe_per_iter, css="num", title=row.environment)
            + cell(esc(row.metric_interval.text("{:.4g}")), value=row.metric, css="num", title=row.environment)
            + (cell(others) if others is not None else "") + "</tr>")


def _task_section(task: str, frame: pd.DataFrame, info: dict, declared: bool, paper: str) -> str:
    """A task's table: each family's best configuration per hardware, ranked and marked fastest within its
    hardware, the family's other configurations on that hardware folded."""
    fastest = fastest_times(frame)
    header = ["#", "family", "best settings", "device", "machine", "ok", "reached", "time to target [s]",
              "peak mem [MiB]",
              "NFE/iter", info["metric"] or "metric", "other settings"]
    rows = []
    bests = family_best(frame)
    for rank, best in zip(hardware_ranks(bests, TASK_ORDER), bests.itertuples()):
        rest = frame[(frame["family"] == best.family) & (frame["hardware"] == best.hardware)
                     & (frame["config"] != best.config)]
        folded = ""
        if len(rest):
            inner = [_config_row(r, fastest[r.hardware], i, None) for i, r in enumerate(rest.itertuples(), start=2)]
            folded = (f"<details><summary>{len(rest)} more</summary>"
                      + table(header[:-1], inner, sortable=False) + "</details>")
        rows.append(_config_row(best, fastest[best.hardware], rank, folded))
    devices = " ".join(sorted(set(frame["device"])))
    return (f"<section data-task='{esc(task)}' data-paper='{esc(paper)}' data-device='{esc(devices)}'>"
            f"<h3>Task {esc(task)} <small>({esc(paper)})</small></h3>"
            f"<p class='note'>{esc(target_note(task, info, declared))}</p>"
            + table(header, rows, attrs=f" id='task-{esc(task)}'") + "</section>")


def page(*, run_dirs: list[Path], tasks: dict[str, pd.DataFrame], infos: dict[str, dict], scores: pd.DataFrame,
         reference: str, score_note: str, declared: set[str], environment: pd.DataFrame,
         figures: tuple[Path, Path]) -> str:
    """The whole page as a string."""
    papers = {task: " ".join(sorted({p for p in frame["paper"] if p})) for task, frame in tasks.items()}
    devices = {d for frame in tasks.values() for d in frame["device"]}
    machines = machines_note(tasks)
    profile, times = figures
    body = [
        "<h1>nodebench leaderboard</h1>",
        f"<p class='note'>{len(run_dirs)} run(s): {esc(', '.join(map(str, run_dirs)))}. Hover a number for the "
        "configuration and environment it was measured in; click a column header to sort.</p>",
        *([f"<p class='note'><b>{esc(machines)}</b></p>"] if machines else []),
        "<div class='filters'>" + select("paper", "paper", {p for ps in papers.values() for p in ps.split()})
        + select("task", "task", tasks) + select("device", "device", devices) + "</div>",
        "<div id='summary-figure'>" + image(profile, "performance profiles per method family",
                                            "max-height:290px") + "</div>",
        "<p class='note'>Method families × tasks: each family's best configuration on each hardware, time to "
        "target [s] as the median over seeds, or the olympic mean with ≥ 5 seeds [interval] (statistic, seeds, "
        "coverage); ✗: not reached; – no curve: not measured; green: fastest on its hardware; empty: not run.</p>",
        "<div class='scroll'>" + _summary_table(tasks, papers) + "</div>",
        "<h2>Overall</h2>", f"<p class='note'>{esc(score_note)}</p>",
        plain_table(scores_frame(scores, reference)).replace("<table", "<table id='overall'", 1),
        "<h2>Per task</h2>",
    ]
    body += [_task_section(task, frame, infos[task], task in declared, papers[task]) for task, frame in tasks.items()]
    body += ["<h2>Figures</h2>", image(times, "time to target per task"),
             "<h2>Environment</h2><p class='note'>Every run that contributed a record.</p>",
             plain_table(environment)]
    return document("nodebench leaderboard", "".join(body))


def scores_frame(scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The overall scores with numbers kept numeric, so that they sort as numbers, ranked and rounded as
    ``leaderboard.md`` shows them (:func:`display_overall`: the shared rank, the score to three decimals, the
    speed-up to three significant digits; it read 21.976 beside the Markdown's 22×); the hardware of each row
    where there are several (each ranked on its own)."""
    frame = pd.DataFrame({"#": score_ranks(scores), "family": scores["family"],
                          "tasks reached": scores["tasks_reached"],
                          "tasks run": scores["tasks_run"], "score (AlgoPerf, r_max 4)": scores["score"].round(3),
                          f"speed-up vs {reference}": scores["speedup"].map(lambda v: float(f"{v:.3g}")),
                          "speed-up tasks": scores["speedup_tasks"], "seeds": scores["seeds"]})
    return with_hardware(frame, scores)


DEFAULT_REFERENCE = "adjoint"


def write(run_dirs: list[Path], out: str | Path, *, reference: str | None = None,
          targets: dict[str, float] | None = None) -> tuple[Path, Path]:
    """Write ``out/leaderboard.md`` (figures in ``out/figures/``) and a self-contained ``leaderboard.html``.
    ``reference``: the method of the speed-up column, which must be in the runs (default ``adjoint``, when
    present or not)."""
    out = Path(out)
    records, tasks, infos = build(run_dirs, targets)  # bad input is refused before anything is written
    methods = sorted(records["method"].astype(str).unique())
    if reference is not None and reference not in methods:
        raise UserError(f"reference (--reference) {reference!r} is not a method of the runs"
                        f"{nearest(reference, methods)}; valid: {', '.join(methods)}")
    reference = reference or DEFAULT_REFERENCE
    (out / "figures").mkdir(parents=True, exist_ok=True)
    scores = overall(tasks, reference)
    profile = plot_profile(scores, out / "figures" / "performance_profile.png")
    times = plot_times(tasks, out / "figures" / "time_to_target.png")
    score_note = (f"Score: AlgoPerf's area under the performance profile up to r = {R_MAX:g}, in [0, 1] (a task not "
                  f"run or not reached counts as r = ∞). Speed-up: geometric mean of t({reference}) ÷ t(family) over "
                  "the tasks both reached." + unscored_note(tasks))
    machines = machines_note(tasks)
    md = ["# nodebench leaderboard", "", f"{len(run_dirs)} run(s): " + ", ".join(f"`{p}`" for p in run_dirs), "",
          *([f"**{machines}**", ""] if machines else []),
          f"![performance profile](figures/{profile.name})", "", "## Method families × tasks", "",
          "Each family's best configuration on each hardware: time to target [s], median over seeds (olympic "
          "mean with ≥ 5) with its interval; ✗: not reached; – no curve: not measured; empty: not run.", "",
          summary(tasks).to_markdown(index=False), "",
          "## Overall", "", score_note, "", display_overall(scores, reference).to_markdown(index=False), ""]
    for task, frame in tasks.items():
        md += [f"## Task `{task}`", "", target_note(task, infos[task], task in (targets or {})), "",
               display_task(frame, infos[task]).to_markdown(index=False), ""]
    md += ["## Environment", "", "Every run that contributed a record.", "",
           environment_table(records).to_markdown(index=False), "", "## Figures", "",
           f"![time to target](figures/{times.name})"]
    md_path = out / "leaderboard.md"
    atomic_write(md_path, lambda tmp: tmp.write_text("\n".join(md) + "\n"))
    html_path = out / "leaderboard.html"
    html = page(run_dirs=run_dirs, tasks=tasks, infos=infos, scores=scores, reference=reference,
                score_note=score_note, declared=set(targets or {}), environment=environment_table(records),
                figures=(profile, times))
    atomic_write(html_path, lambda tmp: tmp.write_text(html))
    return md_path, html_path
