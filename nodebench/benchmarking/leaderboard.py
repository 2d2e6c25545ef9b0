"""The leaderboard: training methods ranked per task and scored across tasks, from recorded runs.

**Per task**, every configuration (a method with its hyper-parameters, on one device of one machine: the
hardware is part of a fair comparison, so seeds from a CPU and a GPU, or from two machines, are never
pooled) gets:

- **time to target**: the training time (the curves' ``elapsed_s``: synchronised step time, the clock
  paused for evaluation) at the first iteration whose training quality reaches the task's target. The
  quality is the curves' ``monitor`` column (a method-independent measure, e.g. simulation MSE on the
  training data) where every successful case of the task has one with values (:func:`task_quality`), else
  the training loss without a regulariser's penalty (``task_loss``), else the training ``loss``. Aggregated
  over seeds by the median, or with 5 or more seeds by MLPerf's olympic mean (drop the fastest and the
  slowest, average the rest): :func:`~nodebench.target.seed_aggregate`; a seed that never reaches the
  target, or failed, counts as infinitely slow, so with two or more such seeds of five the configuration has
  "not reached". The statistic that ranks is the one shown, by name, with its interval over seeds.
- **Seeds are distinct seeds**: a configuration run twice with one seed (in two experiments of a run, or in
  two runs) has one seed with two runs, whose values are pooled by their median before the statistic over
  seeds (:mod:`nodebench.intervals` says why); it reads "2 runs of 1 seed", never "2 seeds". Where those runs
  differ in options their method ignores (gq's ``gtol`` given to ``rk4``, below), the note above the task's table
  names them: they are one configuration measured twice, not runs of two settings (:func:`ignored_repeats`).
- **peak memory** (median over seeds), **NFE per iteration** (forward + backward, median) and the
  **final metric** (the task's headline metric, median).

**The target** of a task is common to all its configurations: the value declared by a suite entry
(``target = ...``) when there is one, else the *largest of the configurations' reachable levels* (each
configuration's is the lowest quality at which its time over seeds is finite, a failed seed never reaching:
:func:`~nodebench.target.reachable_level`), so every configuration reaches it by the statistic that ranks
it, and the slowest decides how loose the target is.

**Across tasks**, methods compete as *families* (the method id: ``adjoint``, ``gq``, ``taynode``...);
every other setting (regulariser, tolerances, widths; not an option the method ignores, such as gq's ``gtol``
given to ``rk4``: :func:`~nodebench.benchmarking.compare.effective_hparams`) is a configuration of its family,
and a family's time on a task is its best configuration's **on one hardware** (device and machine): records from several
get one ranking per hardware, never a CPU time against a GPU time (so do the family × task table, its fastest
marks, each task's ranks and the time-to-target figure: a row, mark or bar per family and hardware). Scores
follow AlgoPerf:

- performance ratio r = t / (best t on the task); a task the family did not run or did not reach has
  r = ∞;
- performance profile ρ(τ) = fraction of tasks with r ≤ τ; **score** = ∫₁^4 ρ(τ) dτ / 3, in [0, 1];
- geometric-mean **speed-up** against a reference method (default ``adjoint``; its plainest
  configuration) over the tasks both reached.

A task where no case finished ``ok`` (all diverged, ran out of memory, timed out or failed) is listed
with its configurations' failure statuses but not scored: no family reached anything there, so it would
only lower every score alike; likewise a task where no case finished ``ok`` on one hardware is left out of
that hardware's scores. So is a task whose successful cases have no curves with a quality value: no time to
target was measured there (:func:`unscored_reason`). With no successful case in any task there is nothing
to rank, and the leaderboard is refused (:class:`~nodebench.errors.UserError`).

All runs must be measured the same way: the environment table lists every contributing run, and a
leaderboard over records from several machines says so at the top.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import gmean

from nodebench.benchmarking.compare import effective_hparams, ignored_differences, load_records
from nodebench.errors import UserError
from nodebench.figure_style import label_styles, styled, subplots
from nodebench.intervals import median_interval, ok_count_text
from nodebench.markdown import fmt_mib
from nodebench.metrics import headline_metric, higher_is_better
from nodebench.records import atomic_write, config_labels, measured_memory, short_commit
from nodebench.registry import nearest
from nodebench.target import (
    QUALITY_COLUMNS,
    common_level,
    first_reach,
    quality_values,
    reachable_level,
    seed_aggregate,
    seed_interval,
    seed_statistic,
    seed_times,
)

R_MAX = 4.0
ENV_COLUMNS = [("run_id", "run"), ("hostname", "machine"), ("git_sha", "git"), ("started_at", "started"),
               ("cpu_model", "CPU"), ("cpu_count", "cores"), ("num_threads", "threads"), ("gpu_model", "GPU"),
               ("version_torch", "torch"), ("version_torchdiffeq", "torchdiffeq")]


NO_OK = "no case finished ok"
"""Why a task whose every case failed is not scored (:func:`unscored_reason`)."""
TASK_ORDER = ["time_to_target_s", "metric"]
"""What a task's table is sorted by: the time to target, then the metric (:func:`task_table`)."""


def settings_text(config: str, method: str) -> str:
    """A configuration's settings: its label without the method (``"reg=speed reg_lambda=0.01"``; ``"–"``)."""
    rest = config[len(method):].strip() if config.startswith(method) else config
    return rest or "–"


def _count(value):
    """``value``, or the count a missing value elsewhere in its column made a float (``2``, not ``2.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _text(value) -> str:
    """A record's field as text (:func:`_count`), ``""`` where it is missing."""
    return "" if value is None or str(value) in ("", "nan", "None") else str(_count(value))


def machine_text(row: pd.Series) -> str:
    """The hardware a case ran on: the GPU model on a GPU device, else the CPU model; the host name where the
    record has no model; ``""`` where it has none of them."""
    gpu = _text(row.get("device")) not in ("", "cpu")
    return (_text(row.get("gpu_model")) if gpu else _text(row.get("cpu_model"))) or _text(row.get("hostname"))


def hardware_text(device: str, machine: str) -> str:
    """A configuration's device and machine, ``"cuda · NVIDIA H200"``; ``""`` where neither is known."""
    return " · ".join(part for part in (device, machine) if part)


def hardware_names(tasks: dict[str, pd.DataFrame]) -> list[str]:
    """The hardware (:func:`hardware_text`) of the tasks' configurations, sorted."""
    return sorted({hardware for table in tasks.values() for hardware in table["hardware"]})


def machines_note(tasks: dict[str, pd.DataFrame]) -> str:
    """The line at the top of a leaderboard over records from several machines (devices or hardware),
    naming them, since a fair comparison fixes the hardware (the measuring guide's §8), and over records from
    several hosts of one hardware (pooled: same model) or from several commits, naming those, since their
    times may differ by host or code; ``""`` when all records come from one of each."""
    notes = []
    machines = [hardware or "unknown" for hardware in hardware_names(tasks)]
    if len(machines) > 1:
        notes.append(f"Records from {len(machines)} machines ({'; '.join(machines)}): a fair comparison fixes the "
                     "hardware, so each configuration is listed per device and machine, times from different "
                     "machines are not comparable, and the family × task table, the fastest marks, the ranks and the "
                     "overall scores are per device and machine.")
    rows = pd.concat(list(tasks.values()), ignore_index=True)
    pooled = {hardware or "unknown": sorted({h for hosts in group["hosts"] for h in hosts})
              for hardware, group in rows.groupby("hardware")}
    pooled = {hardware: hosts for hardware, hosts in pooled.items() if len(hosts) > 1}
    if pooled:
        named = "; ".join(f"{hardware}: {', '.join(hosts)}" for hardware, hosts in pooled.items())
        notes.append(f"Records from several hosts of one hardware ({named}) are compared and their seeds pooled "
                     "as one machine: check in the environment table that they ran alike (cores, threads).")
    commits = sorted({c for shas in rows["commits"] for c in shas})
    if len(commits) > 1:
        notes.append(f"Records from {len(commits)} commits ({', '.join(commits)}): times measured on different code "
                     "are compared; the environment table gives each run's.")
    return " ".join(notes)


def _texts(group: pd.DataFrame, column: str, form=str) -> tuple[str, ...]:
    """The distinct non-empty values of ``column`` in ``group`` (:func:`_text`, then ``form``), sorted."""
    values = group[column] if column in group else ()
    return tuple(sorted({form(_text(v)) for v in values} - {""}))


def environment_text(row: pd.Series) -> str:
    """One line for a tooltip: where and with what a number was measured."""
    parts = [f"{label} {_text(row[c])}" for c, label in ENV_COLUMNS + [("device", "device")]
             if c in row and _text(row[c])]
    return " · ".join(parts)


def failure_text(statuses) -> str:
    """The statuses of the failed seeds with their counts, ``"oom ×2, timeout"``; ``""`` when every seed is ok."""
    counts = Counter(str(s) for s in statuses if s != "ok")
    return ", ".join(f"{status} ×{n}" if n > 1 else status for status, n in sorted(counts.items()))


def task_table(records: pd.DataFrame, curves: pd.DataFrame, target: float | None = None) -> tuple[pd.DataFrame, dict]:
    """One task's configurations with their time to target (its statistic's name, and its interval over
    seeds), memory, NFE, final metric and the statuses of failed seeds; the method is the configuration's
    *family*, its other settings a separate column. A configuration is a label on one device of one machine
    (:func:`machine_text`; both in column ``hardware``, :func:`hardware_text`): seeds on other hardware are
    another row, ranked among their own hardware only. A task without an ``ok`` case gets a row per
    configuration all the same.

    Returns:
        ``(table, info)``: the table grouped by hardware (sorted by name; one group without several), each
        group sorted by time to target, and ``{"target", "column", "metric", "ok", "monitored", "repeats"}``
        (``ok``: how many cases of the task finished ok; ``monitored``: how many of those have a quality value;
        ``repeats``: the configurations whose runs of one seed differ in options their method ignores, with
        those options, :func:`ignored_repeats`).
    """
    records = records.assign(recorded=records.get("hparams"), hparams=effective_hparams(records))
    records = records.assign(config=config_labels(records).values,
                             device=[_text(d) for d in records.get("device", pd.Series("", index=records.index))],
                             machine=records.apply(machine_text, axis=1) if len(records) else "")
    ok = records[records["status"] == "ok"]
    steps = curves[curves["case_id"].isin(ok["case_id"])] if not curves.empty else curves
    column, unmonitored = "loss", []
    if not steps.empty:
        column, values, unmonitored = task_quality(steps)
        steps = steps.assign(quality=values)
    best = {case: group["quality"].min() for case, group in steps.groupby("case_id")} if not steps.empty else {}
    measured = ok["case_id"].map(best).notna()  # a successful case whose curves have a quality value
    if target is None:  # the level every row (configuration on its hardware) reaches over its seeds
        target = common_level(pd.Series([reachable_level(group["case_id"].map(best), group["seed"]) for _, group
                                         in records.groupby(["config", "device", "machine"])], dtype=float))
    metric = headline_metric(ok) if not ok.empty else None
    rows = []
    for (config, device, machine), group in records.groupby(["config", "device", "machine"], sort=False):
        good = group[group["status"] == "ok"]
        method = str(group["method"].iloc[0])
        # a failed seed, or one that never reaches the target, counts as infinitely slow
        raw = [first_reach(steps[steps["case_id"] == case], target, "quality")[0] if case in best
               else math.nan for case in group["case_id"]]
        times = seed_times(raw, group["seed"])  # one per distinct seed
        unrecorded = pd.Series(math.nan, index=good.index)
        memory = pd.Series(measured_memory(good), index=good.index, dtype=float)  # NaN where unmeasured, never 0
        nfe = good.get("nfe_forward_per_iter", unrecorded) + good.get("nfe_backward_per_iter", unrecorded)
        metric_interval = median_interval(good[metric], seeds=good["seed"]) if metric else median_interval([])
        first = group.iloc[0]
        rows.append({"config": config, "family": method,
                     "settings": settings_text(config, method),
                     "paper": _text(first.get("paper")), "device": device, "machine": machine,
                     "hardware": hardware_text(device, machine),
                     "seeds": group["seed"].nunique(), "runs": len(group), "ok": len(good),
                     "measured": int(measured[good.index].sum()),
                     "failures": failure_text(group["status"]),
                     "reached": int(np.isfinite(times).sum()), "statistic": seed_statistic(len(times)),
                     "time_to_target_s": seed_aggregate(times),
                     "time_interval": seed_interval(raw, seeds=group["seed"]),
                     "peak_mem_bytes": median_interval(memory, seeds=good["seed"]).value,
                     "nfe_per_iter": median_interval(nfe, seeds=good["seed"]).value,
                     "metric": metric_interval.value, "metric_interval": metric_interval,
                     "environment": environment_text(first), "hosts": _texts(group, "hostname"),
                     "commits": _texts(group, "git_sha", short_commit), "ignored": ignored_repeats(group)})
    table = pd.DataFrame(rows)
    higher = bool(metric and higher_is_better(metric))
    for col, ascending in (("time_to_target_s", True), ("peak_mem_bytes", True), ("nfe_per_iter", True),
                           ("metric", not higher)):
        table[f"rank_{col}"] = table.groupby("hardware")[col].rank(method="min", ascending=ascending,
                                                                   na_option="bottom")
    table = table.sort_values(["hardware"] + TASK_ORDER, ascending=[True, True, not higher], kind="stable")
    unmeasured = table[table["measured"] < table["ok"]]
    return table.reset_index(drop=True), {
        "target": target, "column": column, "metric": metric, "ok": len(ok), "monitored": int(measured.sum()),
        "unmonitored": sorted(set(records.loc[records["case_id"].isin(unmonitored), "config"])),
        "unmeasured": [f"{row.config} ({row.ok - row.measured} of {row.ok})" for row in unmeasured.itertuples()],
        "repeats": sorted({f"{row.config} ({row.ignored})" for row in table.itertuples() if row.ignored})}


def ignored_repeats(group: pd.DataFrame) -> str:
    """The options in which one configuration's runs of one seed differ (their ``recorded`` hparams; ``gtol
    0.1, 0.2``, :func:`~nodebench.benchmarking.compare.ignored_differences`), ``""`` where none do: options its
    method ignores (:func:`effective_hparams`), so the runs pooled as that seed's repeats are one setting measured
    again, not runs of distinct settings."""
    twice = group[group.duplicated("seed", keep=False)]
    found = {ignored_differences(same.assign(hparams=same["recorded"]))
             for _, same in twice.groupby("seed") if same["recorded"].nunique(dropna=False) > 1}
    return "; ".join(sorted(found - {""}))


def task_quality(steps: pd.DataFrame) -> tuple[str, pd.Series, list]:
    """A task's training-quality column and its values (:func:`~nodebench.target.quality_values`) on the steps
    of its successful cases, chosen from what all of them have: ``monitor`` only where every case with curves
    recorded it (runs with and without ``monitor_every``), since a case without it could never reach a
    monitor target; and the cases that lack it, so that the note above the task's table names them."""
    has = steps.groupby("case_id")["monitor"].agg(lambda v: v.notna().any()) if "monitor" in steps else None
    lacking = sorted(has.index[~has]) if has is not None and has.any() else []
    column, values = quality_values(steps.drop(columns="monitor") if lacking else steps)
    return column, values, lacking


def scored(tasks: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tasks that enter the overall scores: those with a case that finished ok and whose curves have a
    quality value (``measured``), so that a time to target was measured; a task with none would only lower
    every score alike (:func:`unscored_reason`)."""
    return {task: table for task, table in tasks.items() if table["measured"].sum() > 0}


def unscored_reason(table: pd.DataFrame) -> str:
    """Why a task (or its configurations on one hardware) is not scored (:func:`scored`)."""
    if table["ok"].sum() == 0:
        return NO_OK
    return f"no successful case has a training curve with a quality value ({', '.join(QUALITY_COLUMNS)})"


def family_best(table: pd.DataFrame) -> pd.DataFrame:
    """Each family's best configuration on a task **per hardware** (:func:`task_table`'s order: grouped by
    hardware, best first), with ``others``: how many more configurations of the family ran there on that
    hardware."""
    counts = table.groupby(["hardware", "family"])["config"].count()
    best = table.drop_duplicates(["hardware", "family"]).copy()
    best["others"] = [int(counts[(r.hardware, r.family)]) - 1 for r in best.itertuples()]
    return best.reset_index(drop=True)


def fastest_times(table: pd.DataFrame) -> pd.Series:
    """A task's fastest time to target on each hardware (the one marked fastest), by hardware."""
    return table.groupby("hardware")["time_to_target_s"].min()


def hardware_tasks(tasks: dict[str, pd.DataFrame], hardware: str) -> dict[str, pd.DataFrame]:
    """The tasks' configurations on one hardware, in the tasks that hardware scores: those with a case that
    finished ok there (:func:`scored`; a task whose every case failed on it would lower its scores alike)."""
    return scored({task: table[table["hardware"] == hardware] for task, table in tasks.items()})


def overall(tasks: dict[str, pd.DataFrame], reference: str) -> pd.DataFrame:
    """Per hardware (a device and machine, :func:`hardware_text`, in column ``hardware``) and method family:
    tasks run and reached, the AlgoPerf score and the geometric-mean speed-up over ``reference``, each from
    that hardware's configurations only (a time is never compared with one from other hardware) in the tasks
    it scores (:func:`hardware_tasks`); best first within each hardware."""
    mine = {hardware: hardware_tasks(tasks, hardware) for hardware in hardware_names(tasks)}
    return pd.concat([_scores(scored_tasks, reference).assign(hardware=hardware)
                      for hardware, scored_tasks in mine.items() if scored_tasks], ignore_index=True)


def _scores(tasks: dict[str, pd.DataFrame], reference: str) -> pd.DataFrame:
    """:func:`overall` on the tasks' configurations of one hardware."""
    best = {task: table.groupby("family")["time_to_target_s"].min() for task, table in tasks.items()}
    families = sorted({e for times in best.values() for e in times.index})
    rows = []
    for name in families:
        ratios, speedups = [], []
        for task, times in best.items():
            t = times.get(name, math.inf)
            fastest = times.min()
            ratios.append(t / fastest if math.isfinite(t) and fastest > 0 else (1.0 if t == fastest == 0 else math.inf))
            ref = _reference_time(tasks[task], reference)
            if math.isfinite(t) and t > 0 and ref is not None and math.isfinite(ref):
                speedups.append(ref / t)
        ratios = np.array(ratios)
        bests = [family_best(table) for table in tasks.values()]
        seeds = [int(n) for best in bests for n in best.loc[best["family"] == name, "seeds"]]
        rows.append({"family": name, "seeds": seeds_text(seeds),
                     "tasks_run": int(sum(name in times.index for times in best.values())),
                     "tasks_reached": int(np.isfinite(ratios).sum()), "score": profile_score(ratios),
                     "speedup": float(gmean(speedups)) if speedups else math.nan, "speedup_tasks": len(speedups),
                     "ratios": ratios})
    frame = pd.DataFrame(rows)
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def hardware_ranks(frame: pd.DataFrame, columns: list[str]) -> list[int]:
    """The shared ranks (:func:`shared_ranks`) of ``frame``'s rows (sorted best first within each hardware),
    counted within each hardware (column ``hardware``; all one where there is none)."""
    if "hardware" not in frame:
        return shared_ranks(frame, columns)
    ranks = pd.Series(0, index=frame.index)
    for _, group in frame.groupby("hardware", sort=False):
        ranks[group.index] = shared_ranks(group, columns)
    return ranks.tolist()


def score_ranks(scores: pd.DataFrame) -> list[int]:
    """The shared ranks of :func:`overall`'s rows by score, counted within each hardware."""
    return hardware_ranks(scores, ["score"])


def several_hardware(frame: pd.DataFrame) -> bool:
    """Whether the rows of ``frame`` (:func:`overall`'s scores, a task table) come from more than one hardware
    (then each row names its own)."""
    return "hardware" in frame and frame["hardware"].nunique() > 1


def with_hardware(frame: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (a display of :func:`overall`'s rows) with a last column naming each row's hardware where the
    scores come from several (:func:`several_hardware`), else as it is."""
    return frame.assign(hardware=scores["hardware"].replace("", "unknown")) if several_hardware(scores) else frame


def shared_ranks(frame: pd.DataFrame, columns: list[str]) -> list[int]:
    """The ranks of ``frame``'s rows, sorted best first: rows equal in every column of ``columns`` share the
    rank of the first of them and the next rank skips (1, 2, 2, 4), so a tie never reads as an order."""
    ranks, previous = [], None
    for position, key in enumerate(frame[columns].itertuples(index=False, name=None), start=1):
        key = tuple(None if isinstance(v, float) and math.isnan(v) else v for v in key)  # NaN ties NaN
        ranks.append(ranks[-1] if key == previous else position)
        previous = key
    return ranks


def seeds_text(counts) -> str:
    """``"1 seed"``, ``"3 seeds"``, ``"1–5 seeds"`` for the seed counts behind a family's numbers."""
    counts = sorted(set(counts))
    if not counts:
        return "0 seeds"
    span = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{span} seed" if counts == [1] else f"{span} seeds"


def profile_score(ratios: np.ndarray, r_max: float = R_MAX) -> float:
    """AlgoPerf's score ∫₁^r_max ρ(τ) dτ / (r_max − 1), computed exactly: each task adds r_max − r if r ≤ r_max."""
    ratios = np.asarray(ratios, dtype=float)
    return float(np.mean(np.clip(r_max - ratios, 0.0, r_max - 1.0)) / (r_max - 1.0)) if len(ratios) else math.nan


def _reference_time(table: pd.DataFrame, reference: str) -> float | None:
    """The time of the reference method's plainest configuration (the shortest label) on a task."""
    rows = table[table["family"] == reference]
    if rows.empty:
        return None
    return float(rows.loc[rows["config"].str.len().idxmin(), "time_to_target_s"])


def profile_labels(scores: pd.DataFrame) -> list[str]:
    """The legend entry of each row of :func:`overall`'s scores: its family (and hardware, where there are
    several), its seeds, and where an earlier family on the same hardware has the same ratio on every task
    (its line then lies exactly under this one), ``"same profile as gq"``."""
    labels, seen = [], {}
    for row in scores.itertuples():
        on = f" on {row.hardware or 'unknown hardware'}" if several_hardware(scores) else ""
        key = (row.hardware, tuple(np.asarray(row.ratios, dtype=float)))
        tie = f", same profile as {seen[key]}" if key in seen else ""
        seen.setdefault(key, row.family)
        labels.append(f"{row.family}{on} ({row.seeds}{tie})")
    return labels


@styled()
def plot_profile(scores: pd.DataFrame, path: Path) -> Path:
    """The performance profiles ρ(τ) of the families for τ in [1, R_MAX]; each legend entry names its seeds
    and the family whose profile it repeats (:func:`profile_labels`). Each line has its family's colour and
    marker (:func:`~nodebench.figure_style.label_styles`), earlier lines are wider and markers sit at
    staggered τ, so a line drawn over an equal one leaves the one beneath visible."""
    taus = np.linspace(1.0, R_MAX, 301)
    fig, ax = subplots(figsize=(7.5, 3.3))
    keys = [f"{row.family} {row.hardware}" for row in scores.itertuples()]
    styles = label_styles(keys)
    last = max(len(scores) - 1, 1)
    for k, (row, key, label) in enumerate(zip(scores.itertuples(), keys, profile_labels(scores))):
        ax.step(taus, [(row.ratios <= tau).mean() for tau in taus], where="post", label=label, **styles[key],
                lw=1.0 + 2.5 * (len(scores) - 1 - k) / last, ms=4, markevery=(3 + 7 * k % 30, 30))
    ax.set(xlabel="τ (time to target ÷ the task's best)", ylabel="ρ(τ): fraction of tasks",
           title="performance profiles per method family (higher is better)", ylim=(-0.02, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    return path


@styled()
def plot_times(tasks: dict[str, pd.DataFrame], path: Path) -> Path:
    """Per task, each family's best time to target on each hardware (the statistic that ranks it; grouped by
    hardware) as a bar with its interval over seeds, labelled with the statistic's name and seed count (not
    reached: no bar, labelled)."""
    bests = {task: family_best(table) for task, table in tasks.items()}
    fig, axes = subplots(len(bests), 1, squeeze=False,
                         figsize=(7, 0.5 + sum(1.0 + 0.3 * len(t) for t in bests.values())))
    for ax, (task, best) in zip(axes[:, 0], bests.items()):
        finite = np.isfinite(best["time_to_target_s"])
        times = best["time_to_target_s"].where(finite, 0.0)
        low = [t - iv.low if f and np.isfinite(iv.low) else 0.0
               for t, iv, f in zip(times, best["time_interval"], finite)]
        high = [iv.high - t if f and np.isfinite(iv.high) else 0.0
                for t, iv, f in zip(times, best["time_interval"], finite)]
        labels = [f"{r.family} ({r.hardware})" if r.hardware else r.family for r in best.itertuples()]
        ax.barh(labels, times, xerr=[low, high], color="tab:blue", ecolor="black", capsize=2)
        for y, row in enumerate(best.itertuples()):
            ax.text(times.iloc[y], y, f"  {time_text(row)}" if finite.iloc[y] or (row.ok and not row.measured)
                    else f"  not reached ({row.time_interval.seeds})", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{task}: time to target [s] (median, or olympic mean with ≥ 5 seeds), best configuration "
                     "per family and hardware, interval over seeds", fontsize=8)
        ax.tick_params(labelsize=7)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    return path


def _fmt(value: float, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "✗"
    if kind == "mib":
        return fmt_mib(value)
    return f"{value:.3g}"


def time_text(row) -> str:
    """A time to target with its interval, the statistic's name and the seed count (``"4 [1, 10] (olympic
    mean, 5 seeds, 95%)"``; one seed's time is no statistic: ``"2 (1 seed)"``), or ✗ (not reached) with its
    seed count, and the failure statuses where no seed finished ok (``"✗ oom (3 seeds)"``); ``"– no curve (2
    seeds)"`` where seeds finished ok but none has a curve with a quality value (nothing measured, nothing missed)."""
    interval = row.time_interval
    if row.ok and not row.measured:
        return f"– no curve ({interval.seeds})"
    if not math.isinf(row.time_to_target_s):
        if interval.n == 1:
            return interval.text()
        return interval.text().replace(" (", f" ({row.statistic}, ", 1)  # the text's one "(" opens its seeds
    return f"✗ {row.failures} ({interval.seeds})" if row.ok == 0 and row.failures else f"✗ ({interval.seeds})"


def ok_text(row) -> str:
    """Seeds that finished ok out of all, with the failed ones' statuses: ``"1/3 (oom ×2)"``; where a seed ran
    more than once, runs out of runs and the seed count: ``"2/2 runs of 1 seed"``."""
    return ok_count_text(row.ok, row.runs, row.seeds) + (f" ({row.failures})" if row.failures else "")


def summary_rows(tasks: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """The rows of the family × task table: ``(hardware, family)`` for every family that ran on a hardware,
    grouped by hardware (a family's times on two hardware are two rows, never one best of both)."""
    return sorted({(r.hardware, r.family) for table in tasks.values() for r in table.itertuples()})


def summary_cells(tasks: dict[str, pd.DataFrame]) -> dict[str, dict[tuple[str, str], tuple]]:
    """Per task, each :func:`summary_rows` key's best configuration (:func:`family_best`)."""
    return {task: {(r.hardware, r.family): r for r in family_best(table).itertuples()}
            for task, table in tasks.items()}


def summary(tasks: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Method families × tasks: each family's best time to target on each task ("" where it did not run), per
    hardware (named in a second column where there are several)."""
    cells = summary_cells(tasks)
    rows = [[family, hardware or "unknown"] + [time_text(cells[task][(hardware, family)])
                                               if (hardware, family) in cells[task] else "" for task in tasks]
            for hardware, family in summary_rows(tasks)]
    frame = pd.DataFrame(rows, columns=["family", "hardware"] + list(tasks))
    return frame if len(hardware_names(tasks)) > 1 else frame.drop(columns="hardware")


def display_task(table: pd.DataFrame, info: dict) -> pd.DataFrame:
    """A task table as display strings, one row per configuration, best first and ranked within each hardware."""
    rows = [[rank, r.family, r.settings, r.device, r.machine, ok_text(r), f"{r.reached}/{r.seeds}", time_text(r),
             _fmt(r.peak_mem_bytes, "mib"), _fmt(r.nfe_per_iter), r.metric_interval.text("{:.4g}")]
            for rank, r in zip(hardware_ranks(table, TASK_ORDER), table.itertuples())]
    return pd.DataFrame(rows, columns=["#", "family", "settings", "device", "machine", "ok", "reached",
                                       "time to target [s]", "peak mem [MiB]", "NFE/iter", info["metric"] or "metric"])


def display_overall(scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The overall scores as display strings, best first (within each hardware, named in a last column where
    there are several)."""
    rows = [[rank, r.family, f"{r.tasks_reached}/{r.tasks_run}", f"{r.score:.3f}",
             f"{_fmt(r.speedup)}× ({r.speedup_tasks})" if r.speedup_tasks else "–", r.seeds]
            for rank, r in zip(score_ranks(scores), scores.itertuples())]
    frame = pd.DataFrame(rows, columns=["#", "family", "tasks reached/run", "score (AlgoPerf, r_max 4)",
                                        f"speed-up vs {reference} (tasks)", "seeds"])
    return with_hardware(frame, scores)


def environment_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per contributing run: machine, commit, start, hardware, threads and versions."""
    present = [(c, label) for c, label in ENV_COLUMNS if c in records]
    rows = []
    for run_id, group in records.groupby("run_id", sort=True):
        first = group.sort_values("started_at").iloc[0] if "started_at" in group else group.iloc[0]
        rows.append([None if not _text(first[c]) else short_commit(first[c]) if c == "git_sha" else _count(first[c])
                     for c, _ in present] + [len(group)])  # None: blank in Markdown, "–" in HTML, never "nan"
    return pd.DataFrame(rows, columns=[label for _, label in present] + ["cases"], dtype=object)  # 2, not 2.0



def build(run_dirs: list[Path], targets: dict[str, float] | None = None):
    """``(records, tasks, infos)`` from ``run_dirs``: all records, and per task its table and target info.

    Case ids are prefixed with the run's position, so the same case in two runs stays two cases."""
    frames, curve_frames = [], []
    for index, path in enumerate(run_dirs):
        records, curves = load_records(path)
        check_times(records, curves, str(path))
        records = records.assign(case_id=f"{index}:" + records["case_id"].astype(str),
                                 run_id=records["run_id"] if "run_id" in records else str(path))
        frames.append(records)
        if not curves.empty:
            curve_frames.append(curves.assign(case_id=f"{index}:" + curves["case_id"].astype(str)))
    records = pd.concat(frames, ignore_index=True)
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    known = sorted(records["task"].astype(str).unique())
    unknown = sorted(set(targets or {}) - set(known))
    if unknown:
        named = ", ".join(f"{task}{nearest(task, known)}" for task in unknown)
        raise UserError(f"target for task(s) {named} not in the runs; tasks in the runs: {', '.join(known)}")
    tasks, infos = {}, {}
    for task, group in records.groupby("task", sort=True):
        tasks[task], infos[task] = task_table(group, curves, (targets or {}).get(task))
    if not (records["status"] == "ok").any():
        failed = "; ".join(f"{task}: {failure_text(group['status'])}" for task, group in records.groupby("task"))
        raise UserError(f"nothing to rank: no case in the runs finished ok ({failed}); give runs with at least "
                        "one successful case (each failure's reason is in its run's records and report)")
    if not scored(tasks):
        columns = f"{', '.join(QUALITY_COLUMNS[:-1])} or {QUALITY_COLUMNS[-1]}"
        raise UserError(f"nothing to rank: no successful case has a training curve with a quality value (its {columns} "
                        "column in curves.parquet), so no time to target can be measured; give run folders, or "
                        "records files with the curves.parquet nodebench wrote beside them")
    return records, tasks, infos


def check_times(records: pd.DataFrame, curves: pd.DataFrame, where: str) -> None:
    """A :class:`UserError` naming the first step of a successful case whose training time (the curves'
    ``elapsed_s``) is missing, NaN, infinite or negative: read as it is, such a case would silently count as
    never reaching the target, or rank first with a negative time."""
    done = curves[curves["case_id"].isin(records.loc[records["status"] == "ok", "case_id"])] if len(curves) else curves
    if done.empty:
        return
    if "elapsed_s" not in done:
        raise UserError(f"{where!r}: its curves have no elapsed_s column (the training time of each step); give the "
                        "curves.parquet nodebench wrote beside the records")
    elapsed = pd.to_numeric(done["elapsed_s"], errors="coerce").astype(float)
    bad = done[~(np.isfinite(elapsed) & (elapsed >= 0))]
    if len(bad):
        step = bad.iloc[0]
        raise UserError(f"{where!r}: case {step['case_id']} (status ok) has elapsed_s {step['elapsed_s']} at "
                        f"iteration {step['iteration']} of its curves; a training time is a finite number of "
                        "seconds ≥ 0 (the run's curves.parquet is damaged: rerun that case)")


def unscored_note(tasks: dict[str, pd.DataFrame]) -> str:
    """The sentences naming the tasks left out of the overall scores (:func:`scored`) and why
    (:func:`unscored_reason`), and where there are several hardware, those left out of one hardware's
    (:func:`hardware_tasks`); ``""`` when none is."""
    def by_reason(tables: dict[str, pd.DataFrame]) -> dict[str, str]:  # reason → the tasks it names
        named: dict[str, list[str]] = {}
        for task, table in tables.items():
            named.setdefault(unscored_reason(table), []).append(task)
        return {reason: ", ".join(names) for reason, names in named.items()}
    hint = {NO_OK: " (statuses in the task's table)"}
    notes = [f" Not scored, {reason}{hint.get(reason, '')}: {names}."
             for reason, names in by_reason({t: tasks[t] for t in tasks if t not in scored(tasks)}).items()]
    for hardware in hardware_names(tasks) if len(hardware_names(tasks)) > 1 else []:
        mine = {task: table[table["hardware"] == hardware] for task, table in scored(tasks).items()}
        left_out = {task: table for task, table in mine.items()
                    if len(table) and task not in hardware_tasks(tasks, hardware)}
        notes += [f" Not scored on {hardware or 'unknown'}, {reason} there: {names}."
                  for reason, names in by_reason(left_out).items()]
    return "".join(notes)


def target_note(task: str, info: dict, declared: bool) -> str:
    """The sentences above a task's table: its target and how times are aggregated, and the configurations whose
    runs of one seed differ only in options their method ignores (:func:`ignored_repeats`)."""
    repeats = ([f"Runs of one seed that differ only in options their method ignores, so one configuration measured "
                f"more than once (pooled as that seed's runs), not runs of distinct settings: "
                f"{'; '.join(info['repeats'])}."] if info["repeats"] else [])
    if not info["ok"]:
        return " ".join(["No case of this task finished ok (their statuses in the ok column): no time to target, "
                         "not scored.", *repeats])
    if not info["monitored"]:
        return " ".join(["No successful case of this task has a training curve with a quality value "
                         f"({', '.join(QUALITY_COLUMNS)} in curves.parquet): no time to target, not scored.", *repeats])
    rule = "declared" if declared else "the largest of the configurations' reachable levels"
    notes = [f"Target: {info['column']} ≤ {_fmt(info['target'])} ({rule}). Time to target: median over seeds "
             "(olympic mean with ≥ 5), named in each cell, with its interval (order statistics for the median, a "
             "bootstrap for the olympic mean); ✗: not reached."]
    if info["unmonitored"]:
        notes.append(f"Not every run recorded {QUALITY_COLUMNS[0]} (none for {', '.join(info['unmonitored'])}), so "
                     f"all are compared on {info['column']}.")
    if info["unmeasured"]:
        notes.append(f"No training curve with a quality value for ok cases of {', '.join(info['unmeasured'])}: "
                     "counted as not reached.")
    return " ".join(notes + repeats)
