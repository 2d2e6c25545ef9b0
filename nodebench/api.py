"""The Python API and composition root: every command of the ``nodebench`` CLI is a function here.

The framework's registries (:mod:`nodebench.registry`) are filled by the paper packages when
:func:`nodebench.papers.load_papers` imports them; every function below does that first, so a user never
has to. Examples::

    import nodebench

    result = nodebench.run("cubic_spiral", ["rk4", "adjoint"], iters=50, out="results/spiral")
    print(result.records[["method", "train_wall_s", "test_mse"]])

    nodebench.reproduce("do_vs_od", preset="smoke", out="results/do_vs_od-smoke")
    cases = nodebench.reproduce("snode", preset="quick", dry_run=True).cases   # what would run

Bad input raises :class:`nodebench.errors.UserError` (one line, before anything is written).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from nodebench import api_checks, paths
from nodebench.config import CASE_LIMITS, MAX_CASES, SEEDS
from nodebench.errors import UserError
from nodebench.papers import check_loaded, load_papers
from nodebench.records import atomic_write
from nodebench.runner.case import Case, expand_grid, in_rounds


@dataclass
class RunResult:
    """What :func:`run`, :func:`reproduce` and :func:`bench` return.

    Attributes:
        out: the run directory (for a dry run of :func:`run` or :func:`reproduce`: the one it would use,
            whose finished cases a run skips; ``None`` for a dry run of :func:`bench`: a new folder).
        cases: the cases of the sweep (all of them, finished before or now).
        records, curves: the merged records (one row per case; for an A/B bench, the current code's) and
            per-iteration curves; empty for a dry run.
        report: ``report.md`` (``None`` for a dry run and for a bench run, whose gate writes ``compare.md``).
        missing_data: for a dry run, the one line naming every data set the cases need that is missing or
            unusable (what a real run refuses with, before writing anything), else ``""``.
        exit_code: 0, 1 when a bench run's gate found a regression, or 2 for a dry run with ``missing_data``
            (the CLI's exit code: a dry run says whether the real run would start, as ``nodebench data verify``
            exits non-zero for a data set that is missing).
    """

    out: Path | None
    cases: list[Case]
    records: pd.DataFrame = field(default_factory=pd.DataFrame)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    report: Path | None = None
    missing_data: str = ""
    exit_code: int = 0


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _say(text: str) -> None:
    """Print ``text`` on stdout. A reader that left early (`| head`) ends the output, not the command: stdout
    then goes to the null device (nothing left to flush at exit), so a suite runs on, its history is redrawn
    and the exit code stays the gate's verdict."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def get_task(name: str):
    """The task ``name`` (or ``trajectories:PATH`` / ``density:PATH``), any installed paper's included."""
    from nodebench.tasks import get_task as lookup

    load_papers()
    return lookup(name)


def get_method(name: str):
    """The training method ``name`` (:mod:`nodebench.methods`)."""
    from nodebench.methods import get_method as lookup

    return lookup(name)


def list_tasks() -> dict[str, Any]:
    """Task id → its task class (``description``, ``defaults``), any installed paper's included: what
    ``nodebench list`` shows (``nodebench.tasks.TASKS`` alone lacks the papers' tasks until one is loaded)."""
    from nodebench.tasks import TASKS

    load_papers()
    return dict(sorted(TASKS.items()))


def list_methods() -> dict[str, Any]:
    """Method id → its training method (``family``, ``description``, ``make_solve``)."""
    from nodebench.methods import METHODS

    load_papers()
    return dict(METHODS)


def list_papers() -> dict[str, Any]:
    """Paper id → its validated :class:`~nodebench.experiments.PaperSpec`, for every installed paper. A plug-in
    that cannot be loaded, its ``experiments.toml`` included, is left out with one warning line on stderr
    (:func:`nodebench.papers.broken_papers` says why)."""
    from nodebench.experiments import load_paper
    from nodebench.papers import BUILTIN, left_out

    specs = {}
    for name in sorted(load_papers()):
        try:
            specs[name] = load_paper(name)
        except UserError as err:
            if name in BUILTIN:
                raise
            left_out(name, str(err))
    return specs


def _device(device: str, engine: Mapping[str, Any]) -> str:
    """``device`` normalised, and available on this machine where the engine runs the cases here
    (:func:`nodebench.devices.check_device`)."""
    from nodebench.devices import check_device
    from nodebench.runner.executors import EXECUTORS, runs_here

    executor = engine.get("executor", "local")
    return check_device(device, here=executor not in EXECUTORS or runs_here(executor))


def _check(cases: list[Case], engine: dict, warn: bool = False) -> list[str]:
    """Every case's names and values and the engine (executor and scheduler); one-line errors before anything
    is written, the same for a dry run as for a real one (the cases' data: :func:`_check_data`). With ``warn``,
    options given to a method that does not use them are reported (for options a user typed; a paper or suite
    file sets shared options on purpose); returns the warnings shown."""
    from nodebench.runner.executors import check_executor
    from nodebench.runner.settings import check_cases

    load_papers()
    engine.update(api_checks.check_engine(engine))
    warnings = check_cases(cases)
    budget_s, timeout_s = max((c.budget_s or 0.0 for c in cases), default=0.0), engine.get("timeout_s", 3600.0)
    if budget_s >= timeout_s:  # the training alone would outlast the case's wall-clock limit
        raise UserError(f"a training budget of {budget_s:g} s is not below the case time limit of {timeout_s:g} s "
                        "(timeout_s, --timeout-s): every such case would be killed as timeout; give a longer limit")
    shown = warnings if warn else []
    for warning in shown:
        _log(f"nodebench: warning: {warning}")
    check_executor(engine.get("executor", "local"), engine.get("scheduler"))
    return shown


def _check_data(cases: list[Case], engine: dict, dry_run: bool) -> str:
    """The cases' data: present, and verified against the pinned checksums unless ``verify_data=False``
    (:func:`~nodebench.datasets.catalog.check_case_data`, every data set at once). A real run is refused with
    the one line naming them all; a dry run gets that line back (``""`` when all is there), so that it still
    lists the cases a user would run once the data is fetched."""
    from nodebench.datasets.catalog import DataUnavailable, check_case_data

    try:
        check_case_data(cases, verify=engine.pop("verify_data", True))
    except DataUnavailable as err:
        if not dry_run:
            raise
        return str(err)
    return ""


def _dry_run(out: Path | None, cases: list[Case], missing_data: str) -> RunResult:
    """A dry run's result: exit code 2 where ``missing_data`` names data the real run would refuse to start without."""
    return RunResult(out, cases, missing_data=missing_data, exit_code=2 if missing_data else 0)


def describe_cases(cases: list[Case]) -> pd.DataFrame:
    """One row per case with its settings: what ``--dry-run`` prints. ``cases``: a :class:`RunResult`'s
    ``cases`` (a list of :class:`~nodebench.runner.case.Case`)."""
    if not isinstance(cases, (list, tuple)) or not all(isinstance(case, Case) for case in cases):
        hint = "; pass its .cases" if isinstance(cases, RunResult) else ""
        raise UserError(f"cases must be a list of cases, e.g. nodebench.run(..., dry_run=True).cases, got "
                        f"{type(cases).__name__}{hint}")
    rows = []
    for case in cases:
        limit = f"{case.iters} iters" if case.iters else f"{case.budget_s:g} s" if case.budget_s else "100 iters"
        rows.append({"experiment": case.experiment or "–", "task": case.task, "method": case.method,
                     "seed": case.seed, "limit": limit, "device": case.device,
                     "hparams": " ".join(f"{k}={v}" for k, v in sorted(case.hparams.items())) or "–"})
    return pd.DataFrame(rows)


def _check_out(out: Path, engine: Mapping[str, Any], info: Mapping[str, Any], cases: list[Case]) -> None:
    """The output folder of a sweep (:func:`nodebench.paths.sweep_dir`), holding no run of another kind and
    no case that ``cases`` would be pooled with; reads only, so a dry run checks it too."""
    paths.sweep_dir(out, allow_mixed_commits=engine.get("allow_mixed_commits", False))
    _check_same_kind_of_run(out, info)
    _check_same_limits(out, cases)


def _check_same_limits(out: Path, cases: list[Case]) -> None:
    """A :class:`UserError` when ``out`` holds a case with the same task, method, seed and hyper-parameters as
    one of ``cases`` but another case id: another iteration or time limit (or warm-up, or data file), or another
    device (``cuda`` and ``cuda:0`` included). Its row would be pooled with this command's in every report and
    figure, which cannot tell them apart."""
    from nodebench.records import CASES

    def key(row: Mapping[str, Any]) -> tuple:
        return tuple(str(row.get(k)) for k in ("paper", "experiment", "task", "method", "seed", "preset", "hparams"))

    planned = {key(case.identity()): case for case in cases}
    for path in sorted((out / CASES).glob("*.json")) if (out / CASES).is_dir() else []:
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a broken row is set aside when the sweep starts
        case = planned.get(key(row)) if isinstance(row, dict) else None
        _check_ignored_in_row(out, row, planned, key)
        if case is not None and row.get("device") != case.device:
            raise UserError(f"{str(out)!r} holds case {case.task}/{case.method}/s{case.seed} run on device "
                            f"{row.get('device')!r}, this command's is {case.device!r}: the report would pool the two; "
                            "give another out (--out)")
        if case is not None and row.get("case_id") != case.case_id:
            limit = (f"{case.iters} iterations" if case.iters is not None else
                     f"a {case.budget_s:g} s budget" if case.budget_s is not None else "no limit")
            raise UserError(f"{str(out)!r} holds case {case.task}/{case.method}/s{case.seed} run with another limit "
                            f"(iterations, time budget or warm-up) or data file than this command's ({limit}): "
                            "the report would pool the two; give another out (--out)")


def _check_ignored_in_row(out: Path, row: Any, planned: Mapping[tuple, Case], key) -> None:
    """A :class:`UserError` when ``row``, written before ``nodebench run`` left out the options a method ignores
    (:func:`~nodebench.runner.settings.without_ignored`), is one of the ``planned`` cases but for such options: its
    case id differs, so the sweep would run the case again beside it and the report show the two apart."""
    from nodebench.methods import METHODS
    from nodebench.runner.settings import ignored_by, ignored_options

    try:
        hparams = json.loads(row.get("hparams") or "{}")
        ignored = ignored_options(METHODS[row["method"]], hparams)
    except (AttributeError, KeyError, TypeError, ValueError, UserError):
        return  # not a row of a known method with readable options: the sweep's own checks see to it
    case = planned.get(key(row | {"hparams": json.dumps({k: v for k, v in hparams.items() if k not in ignored},
                                                       sort_keys=True)})) if ignored else None
    if case is not None:
        who = "; ".join(f"{by} does not use {', '.join(keys)}"
                        for by, keys in ignored_by(METHODS[row["method"]], hparams, ignored).items())
        raise UserError(f"{str(out)!r} holds case {case.task}/{case.method}/s{case.seed} recorded with "
                        f"{', '.join(ignored)}, which change nothing in its run{f' ({who})' if who else ''} (an "
                        "earlier nodebench kept such options in a case's settings and id): this command would run "
                        "it again beside that row; give another out (--out)")


def _sweep(cases: list[Case], out: Path, engine: Mapping[str, Any], message: str,
           **info) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check the output folder, then run the cases (announced by ``message``); ``run.json`` gets ``info``
    (with the settings warnings) and the cases' settings."""
    from nodebench.run_settings import case_settings

    from nodebench.runner.sweep import run_cases

    engine = dict(engine)
    _check_out(out, engine, info, cases)
    return run_cases(cases, out, info=info | {"settings": case_settings(cases)}, announce=message, **engine)


def _check_same_kind_of_run(out: Path, info: Mapping[str, Any]) -> None:
    """A :class:`UserError` when ``out`` holds a run made otherwise (another command, paper, preset or suite):
    resuming it would mix the two and replace its provenance in ``run.json``."""
    from nodebench.runner.sweep import RUN_KINDS, read_run_info

    try:
        existing = read_run_info(out) if out.is_dir() else {}
    except UserError:
        return  # a corrupt run.json is moved aside when the sweep starts
    if any(existing.get(k) != info.get(k) for k in RUN_KINDS if k in existing):
        was, now = (" ".join(str(i[k]) for k in RUN_KINDS if i.get(k)) for i in (existing, info))
        raise UserError(f"{str(out)!r} holds a `nodebench {was}` run; this `nodebench {now}` there would mix the "
                        "two: give another out (--out)")


def _finish(run_dir: Path, records: pd.DataFrame, curves: pd.DataFrame, *, spec=None, preset: str = "",
            link_figures: bool = False) -> Path:
    from nodebench.analyses import run_analyses
    from nodebench.paper_code import collecting
    from nodebench.plots import plot_run
    from nodebench.reporting import write_report
    from nodebench.runner.sweep import read_run_info

    with collecting(run_dir):  # a paper's analysis, check or figure that fails is left out, the rest written
        figures = plot_run(records, curves, run_dir / "figures") if not records.empty else []
        sections, tables = [], {}
        if spec is not None:
            sections, more, tables = run_analyses(spec, run_dir, records, preset=preset)
            figures += more
        return write_report(run_dir, records, figures, spec=spec, tables=tables, preset=preset, sections=sections,
                            info=read_run_info(run_dir), link_figures=link_figures)


def run(task: str, methods: str | Iterable[str], *, seeds: int = 1, iters: int | None = None,
        budget_s: float | None = None, hparams: Mapping[str, Any] | None = None,
        method_hparams: Mapping[str, Mapping[str, Any]] | None = None, out: str | Path | None = None,
        device: str = "cpu", dry_run: bool = False, **engine) -> RunResult:
    """Train ``task`` with each of ``methods`` for ``seeds`` seeds and write records, figures and a report.

    Args:
        task: a task id, or ``trajectories:PATH.npz`` / ``density:PATH.npy`` (:func:`list_tasks`).
        methods: method ids (a list, or a comma-separated string; :func:`list_methods`).
        seeds: run seeds 0..seeds-1 of each method.
        iters, budget_s: stop each case after this many iterations or this much training time, whichever
            comes first when both are given (default 100 iterations; the CLI takes one of the two).
        hparams: task hyper-parameters and method options, e.g. ``{"lr": 0.1, "rtol": 1e-5}``; an option a
            method does not use is warned about and left out of its cases (rk4's ``rtol``: the case of no ``rtol``).
        method_hparams: per-method options, e.g. ``{"adjoint": {"rtol": 1e-5}}``.
        out: the run directory (default a new ``results/runs/<time>``, ``<time>-2`` where that exists); an
            existing one given here is resumed.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        dry_run: only build and check the cases (returned in ``cases``); nothing runs or is written. Data the
            cases need that is missing or unusable does not raise: it is named, every data set at once, in the
            result's ``missing_data`` (``exit_code`` 2).
        **engine: ``jobs``, ``threads``, ``timeout_s``, ``progress``, ``retry_failed``, ``executor``,
            ``scheduler``, ``allow_mixed_commits`` (:func:`nodebench.runner.sweep.run_cases`), and
            ``verify_data`` (default True: refuse data files that do not match their pinned checksums).

    Returns:
        A :class:`RunResult`: ``out``, ``cases``, ``records`` (one row per case), ``curves`` and ``report``.
    """
    if not isinstance(task, str):
        raise UserError(f"task must be a task id (a string), got {task!r}")
    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else api_checks.names(methods,
                                                                                                     "methods"))]
    if not any(names):
        raise UserError("no method given; name one or more, e.g. rk4,adjoint")
    if "" in names:
        raise UserError(f"methods {','.join(names)!r} hold an empty name; give names separated by single commas, "
                        "e.g. rk4,adjoint")
    api_checks.distinct(names, "methods")
    if iters is None and budget_s is None:
        iters = 100
    # as Python numbers: a NumPy iters=np.int64(2) would hash to another case id than 2 (refused on resume)
    iters, budget_s = (None if value is None else limit.check(value, "case")
                       for limit, value in zip(CASE_LIMITS, (iters, budget_s)))
    dry_run = api_checks.flag(dry_run, "dry_run")
    seeds = SEEDS.check(seeds, "run:")
    hparams = api_checks.table(hparams, "hparams")
    method_hparams = api_checks.method_tables(method_hparams, names)
    if seeds * len(names) > MAX_CASES:  # checked before the grid is built: a typo must not hang the dry run
        raise UserError(f"{seeds} seed(s) × {len(names)} method(s) is {seeds * len(names)} cases, more than "
                        f"{MAX_CASES}; give fewer seeds")
    cases = in_rounds(expand_grid(tasks=[task], methods=names, seeds=range(seeds), hparams=hparams,
                                  method_hparams=method_hparams, device=_device(device, engine), iters=iters,
                                  budget_s=budget_s))
    warnings = _check(cases, engine, warn=True)
    missing_data = _check_data(cases, engine, dry_run)
    from nodebench.runner.settings import check_shared_hparams, without_ignored
    cases = [without_ignored(case) for case in cases]  # rk4 given gtol is rk4's case: its id, its record
    if method_hparams:  # a value every method overrides is checked too, not silently unused
        check_shared_hparams(task, names, hparams)
    out = api_checks.path(out, "out") if out is not None else _new_run_dir()
    if dry_run:
        _check_out(out, engine, {"command": "run"}, cases)
        return _dry_run(out, cases, missing_data)
    records, curves = _sweep(cases, out, engine, f"running {len(cases)} case(s) into {out} (rerun with "
                             f"out={str(out)!r} (--out {out}) to resume)", command="run", warnings=warnings)
    return RunResult(out, cases, records, curves, _finish(out, records, curves))


def _new_run_dir(root: Path = Path("results") / "runs") -> Path:
    """``root/<time>``, or ``<time>-2``, ``-3``, … where that exists: a run given no ``out`` is a new run, never
    a resume of another one started in the same second (a script's second ``run`` merged the first's cases)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return next(path for path in (root / (stamp if i == 1 else f"{stamp}-{i}") for i in itertools.count(1))
                if not path.exists())


def reproduce(paper: str, preset: str = "smoke", *, out: str | Path | None = None,
              experiments: Iterable[str] | None = None, device: str = "cpu", dry_run: bool = False,
              link_figures: bool = False, **engine) -> RunResult:
    """Run a paper package at ``preset`` (``smoke``, ``quick`` or ``paper``) and write its report: every
    claim beside our figure, with a verdict.

    Args:
        paper: a paper id (:func:`list_papers`).
        out: the run directory (default ``results/<paper>-<preset>``); an existing one is resumed.
        experiments: only these experiments of the paper (a name or a list; default ``None`` or ``[]``: all at
            the preset).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        dry_run: only build and check the cases; nothing runs or is written (missing data: as :func:`run`'s).
        link_figures: ``report.html`` references ``figures/*.png`` instead of inlining them (a small page that
            needs its ``figures/`` folder beside it).
        **engine: as :func:`run`.

    Returns:
        A :class:`RunResult`, as :func:`run`'s; ``report`` holds every claim with its verdict.
    """
    from nodebench.experiments import load_paper

    dry_run, link_figures = api_checks.flag(dry_run, "dry_run"), api_checks.flag(link_figures, "link_figures")
    spec = load_paper(paper)
    experiments = [] if experiments is None else api_checks.names(experiments, "experiments")  # '' names none
    api_checks.distinct(experiments, "experiments")
    cases = spec.cases(preset, _device(device, engine), experiments=experiments)
    warnings = _check(cases, engine)
    missing_data = _check_data(cases, engine, dry_run)
    out = api_checks.path(out, "out") if out is not None else Path("results") / f"{paper}-{preset}"
    kind = {"command": "reproduce", "paper": paper, "preset": preset}
    if dry_run:
        _check_out(out, engine, kind, cases)
        return _dry_run(out, cases, missing_data)
    records, curves = _sweep(cases, out, engine, f"reproducing {paper} at preset {preset}: {len(cases)} case(s) into "
                             f"{out}", **kind, device=device, warnings=warnings)
    return RunResult(out, cases, records, curves, _finish(out, records, curves, spec=spec, preset=preset,
                                                          link_figures=link_figures))


def report(run_dir: str | Path, *, link_figures: bool = False) -> Path:
    """Rebuild the figures, ``report.md`` and ``report.html`` of a run directory from its records; returns the
    report. ``link_figures``: the page references ``figures/*.png`` instead of inlining them."""
    from nodebench.experiments import load_paper
    from nodebench.records import RECORDS, load_run
    from nodebench.runner.sweep import read_run_info

    run_dir, link_figures = api_checks.path(run_dir, "run_dir"), api_checks.flag(link_figures, "link_figures")
    if run_dir.name == RECORDS and run_dir.is_file():  # the run's records file names its run, as in compare
        run_dir = run_dir.parent
    records, curves = load_run(run_dir)
    check_loaded(records.get("paper", ()), repr(str(run_dir)))
    paths.output_dir(run_dir, "run_dir")  # the argument's name on the command line too
    paths.writable_entries(run_dir, files=("report.md",), folders=("figures",))
    info = read_run_info(run_dir)
    spec = load_paper(info["paper"]) if info.get("paper") else None
    return _finish(run_dir, records, curves, spec=spec, preset=info.get("preset", ""), link_figures=link_figures)


def compare(baseline: str | Path, current: str | Path, *, thresholds: Mapping[str, float] | None = None,
            out: str | Path | None = None) -> int:
    """Gate ``current`` against ``baseline`` (run directories or records files): print the table, write the
    Markdown (default ``compare-<baseline name>.md`` beside the current records, so that the gate record
    ``compare.md`` a bench run wrote there is kept); 1 on a regression, else 0. ``thresholds``: metric →
    threshold replacing the default, as ``--threshold``: ``{"time": 0.2}`` (relative), ``{"test_nll": 0.1}``
    (absolute)."""
    from nodebench.benchmarking import compare as gate
    from nodebench.plots import slug

    load_papers()  # the metrics a paper package registers are gated too
    current, baseline_path = api_checks.path(current, "current"), api_checks.path(baseline, "baseline")
    baseline_name = slug(baseline_path.name if baseline_path.is_dir() else baseline_path.parent.name) or "baseline"
    out = paths.output_file(api_checks.path(out, "out") if out is not None else
                            (current if current.is_dir() else current.parent) / f"compare-{baseline_name}.md")
    rules = gate.rules_with(api_checks.positive_numbers(thresholds, "thresholds"))
    base_run, current_run = gate.load_records(baseline_path), gate.load_records(current)
    result = gate.compare(base_run, current_run, rules)
    labels = gate.run_label(base_run[0], baseline_path), gate.run_label(current_run[0], current)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = gate.markdown(result, *labels, rules)
    atomic_write(out, lambda tmp: tmp.write_text(text))
    failed = gate.regressed(result)
    if gate.warning(result):
        _say(gate.warning(result))
    _say(gate.table(result, rules).to_markdown(index=False, tablefmt="simple"))
    _say(f"{'REGRESSION' if failed else 'no regression'} against {labels[0]}; wrote {out}")
    return 1 if failed else 0


def history(store: str | Path | None = None, machine: str | None = None, suite: str = "nightly",
            out: str | Path | None = None, *, html: bool = False) -> Path:
    """Plot each metric of ``suite`` over the runs of ``machine`` in the history store; returns the folder.
    ``html``: also write the static site ``index.html`` (:mod:`nodebench.benchmarking.history_site`). Without
    ``machine``, a store whose runs of ``suite`` all come from one other machine is read as that machine's."""
    from nodebench.benchmarking.history import DEFAULT_STORE, list_runs, machine_name
    from nodebench.benchmarking.history_plots import history_markdown, history_table, plot_history

    load_papers()  # the metrics a paper package registers are gated too
    html = api_checks.flag(html, "html")
    store = api_checks.path(store, "store") if store is not None else Path(DEFAULT_STORE)
    if not store.exists():
        raise UserError(f"history store not found: {str(store)!r}; `nodebench bench` writes one (default "
                        f"{DEFAULT_STORE}), or give store (--store)")
    machines = sorted(set(list_runs(store, suite=suite)["machine"]))
    given = machine is not None
    machine = machine_name(machine)
    if not given and len(machines) == 1 and machine not in machines:
        machine = machines[0]
    out = paths.output_dir(api_checks.path(out, "out") if out is not None else
                           store / machine / paths.plain_name(suite, "suite"))
    paths.writable_entries(out, files=("history.md", "index.html"), folders=("figures",))
    runs = list_runs(store, machine, suite)
    if runs.empty:
        others = (f"; machines with one: {', '.join(machines)} (choose with --machine)" if machines else
                  "; the store has none of this suite")
        raise UserError(f"no finished run of suite {suite!r} on machine {machine!r} in {str(store)!r}{others}")
    table = history_table(runs)
    figures = plot_history(table, out / "figures")
    text = history_markdown(table, figures, out)
    atomic_write(out / "history.md", lambda tmp: tmp.write_text(text))
    _say(f"wrote {out}/history.md and {len(figures)} figure(s) in {out}/figures/")
    if html:
        from nodebench.benchmarking.history_site import write_site

        _say(f"wrote {write_site(table, runs, out)} (the history site: open it in a browser)")
    return out


def bench(suite: str, *, out: str | Path | None = None, machine: str | None = None, device: str | None = None,
          baseline: str | None = None, dry_run: bool = False, **engine) -> RunResult:
    """Run a benchmark suite into the history store and gate it; ``exit_code`` is 1 on a regression.

    Without ``baseline`` the run is gated against the previous run of this machine and device. With
    ``baseline`` (a git revision, e.g. ``"main"`` or ``"HEAD~1"``) that revision is installed into a cached
    environment and run interleaved with the current code, case by case in rounds, and the gate compares the paired
    samples (:func:`nodebench.benchmarking.ab.bench_ab`).

    Args:
        suite: a suite name (``nodebench/benchmarking/suites/NAME.toml``), e.g. ``"nightly"``.
        out: the history store (default ``results/history``).
        machine: the store's machine key (a plain name; default ``$NODEBENCH_MACHINE``, else the host name).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (default the suite's).
        dry_run: only build and check the cases; nothing runs or is written (missing data: as :func:`run`'s).
        **engine: as :func:`run` (with ``baseline``: ``threads``, ``timeout_s`` and ``progress`` only).

    Returns:
        A :class:`RunResult` (``report`` is ``None``: the gate writes ``compare.md`` in ``out``).
    """
    from nodebench.benchmarking.compare import load_records
    from nodebench.benchmarking.history import DEFAULT_STORE, list_runs, machine_name, new_run, previous_run
    from nodebench.benchmarking.suites import load_suite
    from nodebench.runner.executors import SubmissionRefused

    dry_run = api_checks.flag(dry_run, "dry_run")
    spec = load_suite(suite)
    cases = spec.cases(_device(spec.device if device is None else device, engine))  # '' is refused, not the default
    warnings = _check(cases, engine)
    missing_data = _check_data(cases, engine, dry_run)
    if baseline is not None:  # an empty revision is refused, not read as "no baseline"
        _check_ab(baseline, engine)
    store = paths.output_dir(api_checks.path(out, "out") if out is not None else Path(DEFAULT_STORE))
    key = machine_name(machine)  # a plain name, checked for a dry run too
    if dry_run:
        return _dry_run(None, cases, missing_data)
    for earlier in list_runs(store, key, spec.name)["run_dir"]:  # what the gate and the history redraw will read,
        load_records(earlier)                                     # checked before the suite runs, not after
    if baseline is not None:
        return _bench_ab(spec, baseline, store, machine, cases, engine)
    run_dir = new_run(store, key, spec.name, device=cases[0].device)
    try:
        records, curves = _sweep(cases, run_dir, engine, f"bench {spec.name}: {len(cases)} case(s) into {run_dir}",
                                 command="bench", suite=spec.name, warnings=warnings)
    except SubmissionRefused as err:  # the run folder was made for this sweep alone, and nothing ran in it
        shutil.rmtree(run_dir, ignore_errors=True)
        raise SubmissionRefused(err.reason, "nothing ran, no run is added to the history store") from None
    _say(f"wrote {run_dir}/records.parquet, curves.parquet")
    previous = previous_run(store, run_dir)
    code = 0
    if previous is None:
        _say("first run of this suite on this machine: nothing to compare against")
    else:
        code = compare(previous, run_dir, out=run_dir / "compare.md")
    history(store, run_dir.parent.parent.name, spec.name, run_dir.parent)
    return RunResult(run_dir, cases, records, curves, exit_code=code)


def _check_ab(baseline: str, engine: dict) -> None:
    """A :class:`UserError` for an A/B run that cannot run: an unknown revision or a parallel engine (dry runs too)."""
    from nodebench.benchmarking.baseline_env import resolve

    alone = {"executor": "local", "scheduler": None, "jobs": 1}  # only what was given is named: a default is no fault
    given = [f"{name} {engine[name]!r} (--{name} {engine[name]})" for name, value in alone.items()
             if engine.get(name, value) != value]
    if given:
        raise UserError(f"baseline (--baseline) runs the cases one at a time on this machine; drop {', '.join(given)}")
    resolve(baseline)


def _bench_ab(spec, baseline: str, store: Path, machine: str | None, cases: list[Case], engine: dict) -> RunResult:
    from nodebench.benchmarking.ab import bench_ab, report as ab_report
    from nodebench.records import load_run

    run = bench_ab(spec, baseline, store=store, machine=machine, device=cases[0].device,
                   threads=engine.get("threads", 1), timeout_s=engine.get("timeout_s", 3600.0),
                   progress=engine.get("progress", True), log=_log)
    _say(ab_report(run))
    history(store, run.run_dir.parent.parent.name, spec.name, run.run_dir.parent)
    return RunResult(run.run_dir, cases, *load_run(run.run_dir), exit_code=run.exit_code)  # the current code's


def leaderboard(run_dirs: Iterable[str | Path] | None = None, out: str | Path | None = None, *,
                reference: str | None = None, targets: Mapping[str, float] | None = None) -> tuple[Path, Path]:
    """Rank methods per task and across tasks over ``run_dirs`` (run folders or records files; a run named twice
    counts once; default: this machine's latest nightly run in the history store, as ``nodebench leaderboard``
    without run folders): returns ``leaderboard.md`` and ``leaderboard.html`` in ``out`` (required).
    ``reference``: the method of the speed-up column (default ``adjoint``). ``targets``: task → its time-to-target
    value, as ``--target``; they default to a suite's declared ones, then to each task's common reachable level."""
    from nodebench.benchmarking import leaderboard_page as board
    from nodebench.benchmarking.suites import available_suites, load_suite
    from nodebench.runner.sweep import read_run_info

    out = paths.output_dir(api_checks.path(out, "out"))  # before the history store is read
    if run_dirs is None:
        run_dirs = [_latest_nightly()]
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]  # one run, not the characters of its path
    if not isinstance(run_dirs, (list, tuple)):
        raise UserError(f"run_dirs must be a list of run folders or records files, got {run_dirs!r}")
    run_dirs = paths.unique_paths([api_checks.path(p, "a run_dirs entry") for p in run_dirs])  # one run counted once
    if not run_dirs:
        raise UserError("run_dirs names no run; give one or more run folders or records files")
    paths.writable_entries(out, files=("leaderboard.md", "leaderboard.html"), folders=("figures",))
    declared: dict[str, float] = {}
    for path in run_dirs:
        name = read_run_info(path if path.is_dir() else path.parent).get("suite")
        if name in available_suites():
            declared |= load_suite(name).targets()
    return board.write(run_dirs, out, reference=reference,
                       targets=declared | api_checks.positive_numbers(targets, "targets"))


def _latest_nightly() -> Path:
    """This machine's latest nightly run in the history store: :func:`leaderboard`'s default."""
    from nodebench.benchmarking.history import DEFAULT_STORE, list_runs, machine_name

    runs = list_runs(DEFAULT_STORE, machine_name(), "nightly")
    if runs.empty:
        others = sorted(set(list_runs(DEFAULT_STORE, suite="nightly")["machine"]))
        hint = f" (machines with one: {', '.join(others)}; set NODEBENCH_MACHINE to read one)" if others else ""
        raise UserError(f"no nightly run of this machine ({machine_name()!r}) in {DEFAULT_STORE}{hint}; "
                        "give run folders (run_dirs)")
    return Path(runs["run_dir"].iloc[-1])
