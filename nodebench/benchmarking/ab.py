"""Interleaved A/B benchmark runs: a suite run by a baseline commit and by the current code, side by side.

``bench_ab("nightly", "main")`` installs the baseline revision once into its own cached environment
(:mod:`nodebench.benchmarking.baseline_env`) and runs every case of the suite twice, once by each side, each in
a fresh worker process, **case by case, in rounds** (every configuration's seed 0, then seed 1, ...).

On the CPU the two sides of a case run **at the same time, on one core**: both workers are started
together (which one first alternates from case to case and round to round) with the same one-core
affinity, so the kernel time-shares that core between them millisecond by millisecond. Whatever the
machine does meanwhile (another tenant of the host, a busy sibling hyper-thread) then hits both sides
alike. The two workers also step in **lockstep** (:mod:`nodebench.runner.lockstep`): a barrier before
every timed step, so step *i* of one side shares the core with step *i* of the other, not with its
start-up. Run one after the other, the two sides of a pair were seconds apart, and on a shared virtual
machine the speed of a step drifts by 20–40 % over seconds (``benchmarks/machine_drift.py``); the
one-after-the-other interleaving of asv's ``continuous`` and pyperf's ``compare_to`` removes slow drift
only. The gated CPU time of each side counts its own work only; its wall time includes the other side's
turns, so in lockstep a wall-time ratio is pulled towards 1 and CPU time is the timing to read. On CUDA the
sides run one after the other (alternating which goes first), since sharing one device would mix their memory
peaks.

The gate (:func:`nodebench.benchmarking.compare.compare`) then compares paired samples: the same case, seed and
iteration in both. The run lands in the history store as a usual run of the suite (the current code's
``records.parquet`` and ``curves.parquet``, so history plots continue), with the baseline's files in
``baseline/`` and the gate's report in ``compare.md``. Rerunning an interrupted run into the same folder
(``run_dir``) resumes it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from nodebench.benchmarking import compare as gate
from nodebench.benchmarking.baseline_env import BaselineEnv, prepare_baseline, resolve
from nodebench.benchmarking.history import DEFAULT_STORE, machine_name, new_run
from nodebench.benchmarking.suites import Suite, load_suite
from nodebench.errors import UserError
from nodebench.harness.environment import git_sha
from nodebench.records import CASES, RECORDS, atomic_write, finished_case_ids, load_run, merge, valid_cases
from nodebench.runner import lockstep
from nodebench.runner.case import Case
from nodebench.runner.guard import check_commit
from nodebench.runner.progress import Progress, running_notes
from nodebench.runner.sweep import read_run_info, run_case_process, write_run_info

BASELINE_DIR = "baseline"
SIDES = ("baseline", "current")


@dataclass
class ABRun:
    """The outcome of :func:`bench_ab`: where it was written, the two revisions and the gate's table."""

    run_dir: Path
    baseline: BaselineEnv
    current_sha: str
    result: pd.DataFrame
    regressed: bool

    @property
    def exit_code(self) -> int:
        """1 on a regression or a newly failing case, else 0 (the CLI's exit code)."""
        return 1 if self.regressed else 0


def interleaved(cases: list[Case]) -> list[tuple[Case, str]]:
    """``(case, side)`` in running order: rounds of seeds; within a round, configuration by configuration,
    both sides back to back, the first side alternating from one configuration to the next and from one
    round to the next (so each side goes first equally often, and never twice in a row for a configuration)."""
    rounds = sorted({case.seed for case in cases})
    order = []
    for r, seed in enumerate(rounds):
        for k, case in enumerate(c for c in cases if c.seed == seed):
            first = (r + k) % 2
            order += [(case, SIDES[first]), (case, SIDES[1 - first])]
    return order


def bench_ab(suite: str | Suite, baseline_rev: str, *, store: str | Path = DEFAULT_STORE,
             machine: str | None = None, device: str | None = None, threads: int = 1, timeout_s: float = 3600.0,
             thresholds: dict[str, float] | None = None, progress: bool = True, run_dir: str | Path | None = None,
             validate: Callable[[list[Case]], None] | None = None, log=print) -> ABRun:
    """Run ``suite`` interleaved by the baseline revision ``baseline_rev`` and the current code; gate.

    Args:
        suite: a suite name (``nodebench/benchmarking/suites/NAME.toml``) or a loaded :class:`Suite`.
        baseline_rev: a git revision of the nodebench checkout (``HEAD``, ``main``, a sha...).
        store, machine: the history store and its machine key (see :mod:`nodebench.benchmarking.history`).
        device: where the cases run (default: the suite's device).
        threads: torch threads per case; timeout_s: per-case time limit.
        thresholds: gate thresholds replacing the defaults (``{"time": 0.2}``).
        progress: show progress on stderr as a sweep does (:class:`~nodebench.runner.progress.Progress`): a
            line per finished pair, ``[n/N] NAME: baseline ok, current ok in T s, about T left``,
            and a bar only where stderr is a terminal; in a log, a ``still running:`` line once a minute names the
            running sides' iteration and loss.
        run_dir: an existing A/B run folder to resume (default: a new folder in the store).
        validate: checks the cases before anything runs or is written (the CLI's name and value checks).
        log: where progress lines go.

    Returns:
        The :class:`ABRun`; its ``compare.md`` names each regression with its configuration, metric, ratio
        and 95 % confidence interval, p-value and both commits.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    machine = machine_name(machine)  # a bad name refused before the baseline is installed
    rules = gate.rules_with(thresholds)
    device = device or suite.device
    cases = suite.cases(device)
    if validate is not None:
        validate(cases)
    current_sha = git_sha()
    if run_dir is not None:
        run_dir = Path(run_dir)
        _check_resume(run_dir, baseline_rev, current_sha)  # before the baseline is installed
    baseline = prepare_baseline(baseline_rev, log=log)
    if run_dir is None:
        run_dir = new_run(store, machine, suite.name, device=device, baseline_rev=baseline_rev,
                          baseline_sha=baseline.sha, baseline_subject=baseline.subject)
    base_dir = run_dir / BASELINE_DIR
    write_run_info(base_dir, command="bench --baseline", role="baseline", git_sha=baseline.sha, suite=suite.name)
    dirs = {"baseline": base_dir, "current": run_dir}
    done = {side: finished_case_ids(folder) for side, folder in dirs.items()}
    todo = [(case, side) for case, side in interleaved(cases) if case.case_id not in done[side]]
    pairs: dict[str, list[tuple[Case, str]]] = {}
    for case, side in todo:
        pairs.setdefault(case.case_id, []).append((case, side))
    together = torch.device(device).type == "cpu"
    in_lockstep = together and baseline.has_module(lockstep.__name__)
    mode = ("both sides of a case together, in lockstep" if in_lockstep else
            f"both sides of a case together, unsynchronised (baseline {baseline.sha[:12]} predates lockstep)"
            if together else "the sides of a case one after the other")
    log(f"bench {suite.name} A/B: {len(cases)} case(s) × 2, {mode}; baseline "
        f"{baseline.sha[:12]} ({baseline_rev}), current {current_sha[:12]}; into {run_dir}")
    with _one_core() if together else contextlib.nullcontext(), \
            Progress(len(pairs), enabled=progress, desc="A/B cases", cases=cases) as shown:
        for pair in pairs.values():
            started = time.monotonic()
            jobs = [dict(case=case, run_dir=dirs[side], threads=threads, timeout_s=timeout_s,
                         python=baseline.command() if side == "baseline" else None) for case, side in pair]
            if in_lockstep and len(jobs) == 2:
                for job, fds in zip(jobs, lockstep.pipes()):
                    job.update(env=os.environ | {lockstep.ENV: lockstep.env_value(fds)}, pass_fds=fds)
            statuses = _run_pair(pair, jobs, dirs, together, shown)
            shown.finished(pair[0][0], ", ".join(f"{side} {status}" for (_, side), status in zip(pair, statuses)),
                           time.monotonic() - started)
    merge(run_dir, read_run_info(run_dir)["run_id"])
    base_records, _ = merge(base_dir, read_run_info(base_dir)["run_id"])
    if not base_records.empty:  # the installed copy is no git checkout; the commit is known here
        stamped = base_records.assign(git_sha=baseline.sha)
        atomic_write(base_dir / RECORDS, lambda tmp: stamped.to_parquet(tmp, index=False))
    result = gate.compare(load_run(base_dir), load_run(run_dir), rules)
    labels = (f"`{baseline.sha[:12]}` ({baseline_rev}: {baseline.subject})", f"`{current_sha[:12]}` (current code)")
    text = gate.markdown(result, *labels, rules)
    atomic_write(run_dir / "compare.md", lambda tmp: tmp.write_text(text))
    return ABRun(run_dir, baseline, current_sha, result, gate.regressed(result))


def _run_pair(pair: list[tuple[Case, str]], jobs: list[dict], dirs: dict[str, Path], together: bool,
              shown: Progress) -> list[str]:
    """The statuses of a pair's ``jobs`` (:func:`run_case_process`'s arguments), run at the same time when
    ``together``, else one after the other, each in its own thread (started in the pair's order). This thread
    waits for them, showing the running sides' progress notes (:meth:`Progress.running`). An interrupt here, also
    between two starts, or a side that raises (its worker could not start) stops the other side's worker
    (``stopped``) before it is raised; a side that never started has its lockstep pipe ends closed here."""
    stop, futures = threading.Event(), []
    with ThreadPoolExecutor(max_workers=len(jobs) if together else 1) as pool:
        try:
            for job in jobs:  # one at a time: an interrupt between two submissions stops the first
                futures.append(pool.submit(run_case_process, **job, stopped=stop.is_set))
            while (state := wait(futures, timeout=1.0, return_when=FIRST_EXCEPTION)).not_done:
                for future in state.done:  # a side that raised: its error now, not after the other side's case
                    future.result()
                shown.running(lambda: "; ".join(f"{side} {running_notes([case], dirs[side] / CASES, shown.name)}"
                                                for (case, side), future in zip(pair, futures) if future.running()))
        except BaseException:  # interrupted or failed: no worker keeps computing after the bench
            stop.set()
            for job, future in itertools.zip_longest(jobs, futures):
                if future is None or future.cancel():  # never started: its pipe ends are still this process's
                    for fd in job.get("pass_fds", ()):
                        os.close(fd)
            raise
    return [future.result() for future in futures]


def _check_resume(run_dir: Path, baseline_rev: str, current_sha: str) -> None:
    """A :class:`UserError` unless ``run_dir`` is an A/B run that this resume continues with the same two
    commits: one whose ``baseline_rev`` now names another commit (a branch that moved), or whose finished cases
    ran other current code, would pair the cases of three commits under two names."""
    info = read_run_info(run_dir)
    started = info.get("baseline_sha")
    if not started:
        raise UserError(f"{str(run_dir)!r} is no A/B run to resume (its run.json names no baseline commit); leave "
                        "run_dir out to start a new run in the history store")
    sha = resolve(baseline_rev)[0]
    if sha != started:
        raise UserError(f"{str(run_dir)!r} ran baseline {started[:12]}, but {baseline_rev!r} is now {sha[:12]}; "
                        f"resume with baseline_rev={started[:12]!r}, or start a new run")
    check_commit(list(valid_cases(run_dir).values()), current_sha, run_dir, allow_mixed=False)


@contextlib.contextmanager
def _one_core():
    """Within the block, this process (and the workers it starts) may run on one CPU core only: the lowest
    of those it may use now. A no-op where the OS has no affinity call."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def report(run: ABRun, rules: dict | None = None) -> str:
    """What ``nodebench bench --baseline`` prints: the machine, settings and iteration-count warnings of
    ``compare.md`` (:func:`~nodebench.benchmarking.compare.warning`) when there are any, the gate's table and one
    line per finding."""
    labels = (run.baseline.sha[:12], run.current_sha[:12])
    lines = [*gate.warning(run.result).splitlines(),
             gate.table(run.result, rules).to_markdown(index=False, tablefmt="simple"),
             *gate.findings(run.result, *labels, rules),
             f"gate {'FAILED' if run.regressed else 'passed'}: current {labels[1]} against baseline {labels[0]}; "
             f"wrote {run.run_dir / 'compare.md'}"]
    return "\n".join(lines)
