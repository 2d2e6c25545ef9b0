"""The ``nodebench`` command line: a thin layer over the Python API (:mod:`nodebench.api`).

Bad input (unknown names, invalid values, missing or malformed files) prints one line,
``nodebench: error: ...``, naming what is wrong and what is valid, and exits with code 2 before
anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys

from nodebench.api_checks import MAX_CASE_TIMEOUT_S, MAX_JOBS, MAX_THREADS
from nodebench.argtypes import positive_float, positive_float_up_to, positive_int, positive_int_up_to
from nodebench.benchmarking.arguments import revision, store_key
from nodebench.config import MAX_ITERS
from nodebench.errors import UserError
from nodebench.paths import nonempty_path
from nodebench.runner.guard import stop_on_signals

EXAMPLES = """examples:
  nodebench list
  nodebench run --task cubic_spiral --method rk4,adjoint --seeds 2 --iters 100 --out results/spiral
  nodebench run --task trajectories:my_data.npz --method rk4,direct --budget-s 60
  nodebench reproduce do_vs_od --preset smoke --out results/do_vs_od-smoke
  nodebench reproduce snode --preset quick --dry-run
  nodebench report results/do_vs_od-smoke
"""


#: What reads as a (bad) number, not an option, after an option that takes a value: ``--budget-s -1e3`` and
#: ``--iters -inf`` get the option's own one-line error; argparse's pattern admits only ``-1`` and ``-1.5``.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str):  # one line, exit code 2, no usage dump
        raise UserError(message)


class _AppendKeyValue(argparse.Action):
    """``action="append"`` for ``KEY=VALUE`` options whose type returns ``(key, value)``: a key given twice is an
    error instead of the last value silently winning."""

    def __call__(self, parser, namespace, pair, option_string=None):
        pairs = list(getattr(namespace, self.dest) or [])
        earlier = dict(pairs)
        if pair[0] in earlier:
            raise argparse.ArgumentError(self, f"{pair[0]} given twice ({earlier[pair[0]]!r} and {pair[1]!r}); "
                                               "give each key once")
        setattr(namespace, self.dest, pairs + [pair])


def parse_hparam(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with the value parsed as JSON (a plain string when it is not JSON)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _named_positive(example: str):
    """``argparse`` type of ``NAME=POSITIVE_NUMBER`` (``--threshold``, ``--target``), ``example`` in its error."""

    def parse(text: str) -> tuple[str, float]:
        key, sep, raw = text.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not sep or not key or not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected NAME=POSITIVE_NUMBER (e.g. {example}), got {text!r}")
        return key, value
    return parse


def _add_sweep_options(p: argparse.ArgumentParser, device: str | None = "cpu") -> None:
    p.add_argument("--device", default=device, help=f"cpu, cuda or cuda:N (default {device or 'the suite device'})")
    p.add_argument("--jobs", type=positive_int_up_to(MAX_JOBS), default=1,
                   help="cases run at once (default 1: clean timings)")
    p.add_argument("--threads", type=positive_int_up_to(MAX_THREADS), default=1,
                   help="torch threads per case (default 1)")
    p.add_argument("--timeout-s", type=positive_float_up_to(MAX_CASE_TIMEOUT_S), default=3600.0,
                   help="per-case time limit (default 3600)")
    p.add_argument("--retry-failed", action="store_true",
                   help="on resume, rerun cases recorded as diverged, oom, killed, timeout or error")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--executor", default="local", choices=("local", "submitit", "dask"),
                   help="local: worker processes here (default); submitit: SLURM job arrays (submitit's local "
                        "executor without SLURM); dask: a dask.distributed scheduler (--scheduler)")
    p.add_argument("--scheduler", metavar="ADDR", help="dask scheduler address, e.g. tcp://10.0.0.1:8786")
    p.add_argument("--allow-mixed-commits", action="store_true",
                   help="add cases to an output directory holding cases of another git commit, or of this one "
                        "with uncommitted changes where this checkout has none or the reverse")
    p.add_argument("--trust-unverified", action="store_true",
                   help="unpickle data files whose sha256 the data manifest does not pin (your own copies)")
    p.add_argument("--no-verify", action="store_true", help="run on data files that do not match their checksums")


def build_parser() -> argparse.ArgumentParser:
    from nodebench.datasets import cli as data_cli  # seconds (scikit-learn): imported under main's signal handling

    parser = _Parser(prog="nodebench", description="Benchmark and reproduce methods that make neural ODEs "
                     "cheaper to train.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="papers, experiments, tasks and methods")
    data_cli.add_parser(sub)

    run = sub.add_parser("run", help="run a grid of tasks × methods × seeds")
    run.add_argument("--task", required=True, help="a task id, or trajectories:PATH.npz / density:PATH.npy")
    run.add_argument("--method", required=True, help="comma-separated method ids, e.g. rk4,adjoint")
    run.add_argument("--seeds", type=positive_int, default=1, help="seeds 0..N-1 (default 1)")
    limit = run.add_mutually_exclusive_group()
    limit.add_argument("--iters", type=positive_int_up_to(MAX_ITERS), help="training iterations per case (default 100)")
    limit.add_argument("--budget-s", type=positive_float, help="training-time budget per case, in seconds")
    run.add_argument("--hparam", type=parse_hparam, action=_AppendKeyValue, default=[], metavar="KEY=VALUE",
                     help="task hyper-parameter or method option (rtol, atol, step_size...), repeatable; "
                          "see `nodebench list` for each task's")
    run.add_argument("--out", type=nonempty_path,
                     help="output directory (default a new results/runs/<time>); reuse it to resume")
    run.add_argument("--dry-run", action="store_true", help="print the cases with their settings and exit")
    _add_sweep_options(run)

    rep = sub.add_parser("reproduce", help="run a paper package and write its report")
    rep.add_argument("paper", help="paper id (see `nodebench list`)")
    rep.add_argument("--preset", default="smoke", help="smoke (default, minutes on CPU), quick or paper")
    rep.add_argument("--out", type=nonempty_path, help="output directory (default results/<paper>-<preset>)")
    rep.add_argument("--experiment", action="append", default=[], metavar="NAME",
                     help="run only this experiment of the paper (repeatable; default: all at the preset)")
    rep.add_argument("--dry-run", action="store_true", help="print the cases with their settings and exit")
    _add_sweep_options(rep)

    report = sub.add_parser("report", help="rebuild figures and report.md from a run directory")
    report.add_argument("run_dir", type=nonempty_path, help="run directory or its records.parquet")
    for parser_of_report in (rep, report):
        parser_of_report.add_argument("--link-figures", action="store_true",
                                      help="report.html references figures/*.png instead of inlining them "
                                           "(a page ~60x smaller that needs its figures/ folder)")

    bench = sub.add_parser("bench", help="run a benchmark suite, append it to the history store, gate it")
    bench.add_argument("--suite", required=True,
                       help="suite name (nodebench/benchmarking/suites/NAME.toml or $NODEBENCH_SUITES), e.g. nightly")
    bench.add_argument("--out", type=nonempty_path, help="history store (default results/history)")
    bench.add_argument("--machine", type=store_key("ci-cpu"),
                       help="machine key in the store (default $NODEBENCH_MACHINE or the host name)")
    bench.add_argument("--dry-run", action="store_true", help="print the cases with their settings and exit")
    bench.add_argument("--baseline", metavar="REV", type=revision,
                       help="gate against git revision REV run interleaved with the current code on this machine "
                            "(e.g. main, HEAD~1), not against the previous run")
    _add_sweep_options(bench, device=None)

    compare = sub.add_parser("compare", help="gate CURRENT against BASELINE: ratios and noise-aware verdicts")
    compare.add_argument("baseline", type=nonempty_path, help="run directory or records .parquet file")
    compare.add_argument("current", type=nonempty_path, help="run directory or records .parquet file")
    compare.add_argument("--threshold", type=_named_positive("time=0.2"), action=_AppendKeyValue, default=[],
                         metavar="METRIC=VALUE",
                         help="replace a threshold: time=0.2 (relative), test_nll=0.1 (absolute)...; repeatable")
    compare.add_argument("--out", type=nonempty_path,
                         help="Markdown file (default compare-BASELINE.md beside CURRENT's records, BASELINE "
                              "named by its folder)")

    history = sub.add_parser("history", help="plot each metric over the runs in the history store")
    history.add_argument("--store", type=nonempty_path, help="history store (default results/history)")
    history.add_argument("--machine", type=store_key("ci-cpu"),
                         help="machine key (default $NODEBENCH_MACHINE or the host name; the store's "
                              "only machine when it has one and this host has no runs)")
    history.add_argument("--suite", type=store_key("nightly"), default="nightly", help="suite name (default nightly)")
    history.add_argument("--out", type=nonempty_path, help="output folder (default STORE/MACHINE/SUITE/)")
    history.add_argument("--html", action="store_true",
                         help="also write a static site (index.html): a graph per configuration and metric, "
                              "regressions, environments")

    board = sub.add_parser("leaderboard", help="rank methods per task and across tasks: leaderboard.md and .html")
    board.add_argument("run_dirs", type=nonempty_path, nargs="*",
                       help="run directories or records files (default: this machine's latest nightly run)")
    board.add_argument("--out", type=nonempty_path, required=True, help="output folder")
    board.add_argument("--reference", help="method of the speed-up column, one of the runs' (default adjoint)")
    board.add_argument("--target", type=_named_positive("cubic_spiral=0.5"), action=_AppendKeyValue, default=[],
                       metavar="TASK=VALUE",
                       help="time-to-target value of a task (default: a suite's declared target, else the "
                            "largest of the configurations' reachable levels, the lowest value each reaches "
                            "over its seeds); repeatable")
    return parser


def _engine(args) -> dict:
    from nodebench.datasets.tabular import TRUST_ENV

    if args.trust_unverified:
        os.environ[TRUST_ENV] = "1"  # inherited by the workers
    return dict(jobs=args.jobs, timeout_s=args.timeout_s, threads=args.threads, progress=not args.no_progress,
                retry_failed=args.retry_failed, executor=args.executor, scheduler=args.scheduler,
                allow_mixed_commits=args.allow_mixed_commits, verify_data=not args.no_verify)


def _print_cases(result, retry_failed: bool = False, *, fresh: bool = False) -> int:
    """The dry run's cases, and where they would go: ``fresh``, a new folder named by the time (``run`` without
    ``--out``), which the next run does not reuse. Data the cases need that is missing or unusable follows as
    one error line naming every such data set and how to fetch it, exit code 2: the real run would refuse."""
    from nodebench.api import describe_cases

    table = describe_cases(result.cases)
    print(table.to_markdown(index=False, tablefmt="simple"))
    where = "" if result.out is None else (
        f" into a new folder such as {result.out} (each run without --out makes its own; give --out to resume)"
        if fresh else f" into {result.out}{_finished_before(result, retry_failed)}")
    print(f"{len(result.cases)} case(s){where}; nothing was run (--dry-run)", flush=True)
    if result.missing_data:
        print(f"nodebench: error: {result.missing_data}", file=sys.stderr)
    return result.exit_code


def _finished_before(result, retry_failed: bool) -> str:
    """``: 1 finished before (skipped), 3 to run`` for the cases of ``result`` whose rows its folder holds (the
    ``ok`` ones with ``retry_failed``); empty when none. Reads only: a broken row counts as to run."""
    from nodebench.records import CASES
    from nodebench.runner.guard import read_json_object

    ids = {case.case_id for case in result.cases}
    rows = [read_json_object(result.out / CASES / f"{case_id}.json") or {} for case_id in ids]
    done = sum(row.get("status") == "ok" or (not retry_failed and "status" in row) for row in rows)
    return f": {done} finished before (skipped), {len(ids) - done} to run" if done else ""


def _wrote(result) -> int:
    print(f"wrote {result.out}/records.parquet, curves.parquet, {result.out}/figures/, {result.report} and "
          f"{result.report.with_suffix('.html')}")
    print(_statuses(result))
    return 0


#: The order of the statuses in a run's summary line (those of :mod:`nodebench.runner.sweep`); others follow.
STATUS_ORDER = ("ok", "diverged", "oom", "timeout", "killed", "error")


def _statuses(result) -> str:
    """``4 case(s): 3 ok, 1 diverged`` and, where a case failed, where its reason and its worker's output are."""
    counts = result.records["status"].value_counts() if "status" in result.records else {}
    names = [*(s for s in STATUS_ORDER if s in counts), *sorted(set(counts.keys()) - set(STATUS_ORDER))]
    line = f"{len(result.records)} case(s): " + ", ".join(f"{counts[s]} {s}" for s in names)
    if set(names) - {"ok"}:
        line += (f"; the reasons: the failed-cases tables of {result.report} (the records' reason column), "
                 f"each worker's output: {result.out}/logs/CASE_ID.log")
    return line


def cmd_list(args) -> int:
    from nodebench.api import list_papers
    from nodebench.methods import METHODS
    from nodebench.papers import broken_papers
    from nodebench.tasks import FILE_TASKS, TASKS

    papers = list_papers()
    broken = broken_papers()  # a plug-in that cannot be loaded is listed as such, the others as usual
    width = max(map(len, [*papers, *broken]), default=0)
    experiments = max((len(e.name) for spec in papers.values() for e in spec.experiments), default=0)
    print("papers (nodebench reproduce PAPER --preset smoke|quick|paper):")
    for name, reason in sorted(broken.items()):
        print(f"  {name:<{width}} BROKEN, not loaded: {reason}")
    for name, spec in papers.items():
        print(f"  {name:<{width}} {spec.title} (presets: {', '.join(spec.presets())})")
        for exp in dict.fromkeys(e.name for e in spec.experiments):
            blocks = [e for e in spec.experiments if e.name == exp]
            methods = list(dict.fromkeys(m for e in blocks for m in e.methods))
            presets = list(dict.fromkeys(p for e in blocks for p in e.presets))
            print(f"    - {exp:<{experiments}} task {blocks[0].task}; methods {', '.join(methods)}; "
                  f"presets {', '.join(presets)}")
    print("tasks (--task; --hparam KEY=VALUE sets a hyper-parameter):")
    for name, cls in sorted(TASKS.items()):
        print(f"  {name:<26} {cls.description}")
        print(f"  {'':<26}   hyper-parameters: {', '.join(f'{k}={v}' for k, v in cls.defaults.items())}")
    for prefix in FILE_TASKS:
        print(f"  {prefix + ':PATH':<26} {FILE_TASKS[prefix].description}")
    print("methods (--method):")
    width = max(map(len, METHODS))
    for name, method in METHODS.items():
        print(f"  {name:<{width}} [{method.family}] {method.description}")
    return 0


def cmd_run(args) -> int:
    from nodebench import api

    result = api.run(args.task, args.method, seeds=args.seeds, iters=args.iters, budget_s=args.budget_s,
                     hparams=dict(args.hparam), out=args.out, device=args.device, dry_run=args.dry_run,
                     **_engine(args))
    return _print_cases(result, args.retry_failed, fresh=args.out is None) if args.dry_run else _wrote(result)


def cmd_reproduce(args) -> int:
    from nodebench import api

    result = api.reproduce(args.paper, args.preset, out=args.out, experiments=args.experiment, device=args.device,
                           dry_run=args.dry_run, link_figures=args.link_figures, **_engine(args))
    return _print_cases(result, args.retry_failed) if args.dry_run else _wrote(result)


def cmd_report(args) -> int:
    from nodebench import api

    report = api.report(args.run_dir, link_figures=args.link_figures)
    print(f"wrote {report.parent}/figures/, {report} and {report.with_suffix('.html')}")
    return 0


def cmd_bench(args) -> int:
    from nodebench import api

    result = api.bench(args.suite, out=args.out, machine=args.machine, device=args.device, dry_run=args.dry_run,
                       baseline=args.baseline, **_engine(args))
    return _print_cases(result) if args.dry_run else result.exit_code


def cmd_compare(args) -> int:
    from nodebench import api

    return api.compare(args.baseline, args.current, thresholds=dict(args.threshold), out=args.out)


def cmd_history(args) -> int:
    from nodebench import api

    api.history(args.store, args.machine, args.suite, args.out, html=args.html)
    return 0


def cmd_leaderboard(args) -> int:
    from nodebench import api

    md, page = api.leaderboard(list(args.run_dirs) or None, args.out, reference=args.reference,
                               targets=dict(args.target))
    print(f"wrote {md} and {page}")
    return 0


def cmd_data(args) -> int:
    from nodebench.datasets import cli as data_cli

    return data_cli.run(args)


COMMANDS = {"list": cmd_list, "run": cmd_run, "reproduce": cmd_reproduce, "report": cmd_report,
            "bench": cmd_bench, "compare": cmd_compare, "history": cmd_history,
            "leaderboard": cmd_leaderboard, "data": cmd_data}


#: What an interrupted command leaves, and what to do (files are written whole, so none is half-written).
AFTER_INTERRUPT = {
    "run": "finished cases are kept, rerun with the same --out to resume",
    "reproduce": "finished cases are kept, rerun with the same --out to resume",
    "bench": "the unfinished run is neither gated nor in the history; rerun the command",
    "data": "a partial download is kept as FILE.part; rerun the same command to resume",
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGTERM and SIGHUP stop it as Ctrl-C does, from start-up to the last report file
    (:func:`~nodebench.runner.guard.stop_on_signals`): one line saying what was kept
    (:data:`AFTER_INTERRUPT`; for ``run`` and ``reproduce``, how many cases finished and the command that resumes
    them), exit code 128 + the signal's number."""
    command = args = None
    try:
        with stop_on_signals():
            args = build_parser().parse_args(argv)
            command = args.command
            return COMMANDS[command](args)
    except UserError as err:
        print(f"nodebench: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as err:  # a path the system refuses (name too long, a read-only or virtual file system)
        if err.filename is None:
            raise
        print(f"nodebench: error: {err.strerror or err}: {str(err.filename)!r}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        name, signum = getattr(err, "signal_name", "SIGINT"), getattr(err, "signum", 2)
        after = AFTER_INTERRUPT.get(command, "what it wrote before is intact; rerun the command")
        if command in ("run", "reproduce") and hasattr(err, "kept"):  # the sweep's count, and its folder
            done, total, out = err.kept
            again = ["nodebench", *(sys.argv[1:] if argv is None else map(str, argv))]
            again += [] if args.out is not None else ["--out", str(out)]
            after = f"{done} of {total} case(s) finished, kept in {out}; resume with: {shlex.join(again)}"
        print(f"nodebench: interrupted by {name}; {after}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
