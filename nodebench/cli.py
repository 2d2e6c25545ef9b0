"""The ``nodebench`` command line: list, run, reproduce, report.

Bad input (unknown names, invalid values, missing or malformed files) prints one line,
``nodebench: error: ...``, naming what is wrong and what is valid, and exits with code 2 before
anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from nodebench.errors import UserError

EXAMPLES = """examples:
  nodebench list
  nodebench run --task cubic_spiral --method rk4,adjoint --seeds 2 --iters 100 --out results/spiral
  nodebench run --task trajectories:my_data.npz --method rk4,direct --budget-s 60
  nodebench reproduce do_vs_od --preset smoke --out results/do_vs_od-smoke
  nodebench report results/do_vs_od-smoke
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        raise UserError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _hparam(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _threshold(text: str) -> tuple[str, float]:
    key, sep, raw = text.partition("=")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not sep or not key or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected NAME=POSITIVE_NUMBER (e.g. time=0.2), got {text!r}")
    return key, value


def _device(text: str) -> str:
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserError(f"unknown device {text!r}; valid: cpu, cuda, cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {text!r}; valid: cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {text!r} requested but CUDA is not available on this machine; use --device cpu")
    return str(device)


def _add_sweep_options(p: argparse.ArgumentParser, device: str | None = "cpu") -> None:
    p.add_argument("--device", default=device, help=f"cpu, cuda or cuda:N (default {device or 'the suite device'})")
    p.add_argument("--jobs", type=_positive_int, default=1, help="cases run at once (default 1: clean timings)")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch threads per case (default 1)")
    p.add_argument("--timeout-s", type=_positive_float, default=3600.0, help="per-case time limit (default 3600)")
    p.add_argument("--retry-failed", action="store_true",
                   help="on resume, rerun cases recorded as diverged, oom, timeout or error")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--executor", default="local", choices=("local", "submitit", "dask"),
                   help="local: worker processes here (default); submitit: SLURM job arrays (submitit's local "
                        "executor without SLURM); dask: a dask.distributed scheduler (--scheduler)")
    p.add_argument("--scheduler", metavar="ADDR", help="dask scheduler address, e.g. tcp://10.0.0.1:8786")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nodebench", description="Benchmark and reproduce methods that make neural ODEs "
                     "cheaper to train.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="papers, experiments, tasks and methods")

    run = sub.add_parser("run", help="run a grid of tasks × methods × seeds")
    run.add_argument("--task", required=True, help="a task id, or trajectories:PATH.npz / density:PATH.npy")
    run.add_argument("--method", required=True, help="comma-separated method ids, e.g. rk4,adjoint")
    run.add_argument("--seeds", type=_positive_int, default=1, help="seeds 0..N-1 (default 1)")
    limit = run.add_mutually_exclusive_group()
    limit.add_argument("--iters", type=_positive_int, help="training iterations per case (default 100)")
    limit.add_argument("--budget-s", type=_positive_float, help="training-time budget per case, in seconds")
    run.add_argument("--hparam", type=_hparam, action="append", default=[], metavar="KEY=VALUE",
                     help="task hyper-parameter or solver option (rtol, atol, step_size...), repeatable")
    run.add_argument("--out", type=Path, help="output directory (default results/runs/<time>); reuse it to resume")
    _add_sweep_options(run)

    rep = sub.add_parser("reproduce", help="run a paper package and write its report")
    rep.add_argument("paper", help="paper id (see `nodebench list`)")
    rep.add_argument("--preset", default="smoke", help="smoke (default, minutes on CPU), quick or paper")
    rep.add_argument("--out", type=Path, help="output directory (default results/<paper>-<preset>)")
    _add_sweep_options(rep)

    report = sub.add_parser("report", help="rebuild figures and report.md from a run directory")
    report.add_argument("run_dir", type=Path)

    bench = sub.add_parser("bench", help="run a benchmark suite, append it to the history store, gate it")
    bench.add_argument("--suite", required=True, help="suite name (benchmarks/suites/NAME.toml), e.g. nightly")
    bench.add_argument("--out", type=Path, help="history store (default results/history)")
    bench.add_argument("--machine", help="machine key in the store (default $NODEBENCH_MACHINE or the host name)")
    bench.add_argument("--baseline", metavar="REV", help="gate against git revision REV run interleaved with "
                       "the current code on this machine (e.g. main, HEAD~1), not against the previous run")
    _add_sweep_options(bench, device=None)

    compare = sub.add_parser("compare", help="gate CURRENT against BASELINE: ratios and noise-aware verdicts")
    compare.add_argument("baseline", type=Path, help="run directory or records .parquet file")
    compare.add_argument("current", type=Path, help="run directory or records .parquet file")
    compare.add_argument("--threshold", type=_threshold, action="append", default=[], metavar="METRIC=VALUE",
                         help="replace a threshold: time=0.2 (relative), test_nll=0.1 (absolute)...; repeatable")
    compare.add_argument("--out", type=Path, help="Markdown file (default compare.md beside CURRENT's records)")

    history = sub.add_parser("history", help="plot each metric over the runs in the history store")
    history.add_argument("--store", type=Path, help="history store (default results/history)")
    history.add_argument("--machine", help="machine key (default $NODEBENCH_MACHINE or the host name)")
    history.add_argument("--suite", default="nightly", help="suite name (default nightly)")
    history.add_argument("--out", type=Path, help="output folder (default STORE/MACHINE/SUITE/)")

    board = sub.add_parser("leaderboard", help="rank methods per task and across tasks: leaderboard.md and .html")
    board.add_argument("run_dirs", type=Path, nargs="*",
                       help="run directories or records files (default: this machine's latest nightly run)")
    board.add_argument("--out", type=Path, required=True, help="output folder")
    board.add_argument("--reference", default="adjoint", help="method of the speed-up column (default adjoint)")
    board.add_argument("--target", type=_threshold, action="append", default=[], metavar="TASK=VALUE",
                       help="time-to-target value of a task (default: a suite's declared target, else the "
                            "largest of the methods' best values); repeatable")
    return parser


def cmd_list(args) -> int:
    from nodebench.experiments import available_papers, load_paper
    from nodebench.methods import METHODS
    from nodebench.tasks import FILE_TASKS, TASKS

    print("papers (nodebench reproduce PAPER):")
    for name in available_papers():
        spec = load_paper(name)
        print(f"  {name:<12} {spec.title}")
        for exp in spec.experiments:
            print(f"    - {exp.name:<22} task {exp.task}; methods {', '.join(exp.methods)}; presets "
                  f"{', '.join(exp.presets)}")
    print("tasks (--task):")
    for name, cls in sorted(TASKS.items()):
        print(f"  {name:<26} {cls.description}")
    for prefix in FILE_TASKS:
        print(f"  {prefix + ':PATH':<26} {FILE_TASKS[prefix].description}")
    print("methods (--method):")
    width = max(map(len, METHODS))
    for name, method in METHODS.items():
        print(f"  {name:<{width}} [{method.family}] {method.description}")
    return 0


def _validate(cases) -> None:
    """Check every name and hyper-parameter before anything runs or is written."""
    from nodebench.methods import get_method
    from nodebench.runner.settings import case_settings
    from nodebench.tasks import get_task
    from nodebench.tasks.base import MONITOR_TASKS

    tasks = {}
    for case in cases:
        task = tasks.setdefault(case.task, get_task(case.task))
        method = get_method(case.method)
        method.check_task(task)
        settings = case_settings(case.hparams, method)
        task.hparams(settings.task_hparams)
        if settings.monitor_every and not task.full_state:
            raise UserError(f"task {task.name!r} has no training monitor; {MONITOR_TASKS}")


def _engine(args) -> dict:
    """The sweep's engine options, checked before anything is written."""
    from nodebench.runner.executors import check_executor

    check_executor(args.executor, args.scheduler)
    return {"executor": args.executor, "scheduler": args.scheduler}


def _finish(run_dir: Path, records, curves, *, spec=None, preset: str = "", rebuilt: bool = False) -> Path:
    from nodebench.analyses import run_analyses
    from nodebench.plots import plot_run
    from nodebench.records import CURVES, RECORDS, load_table
    from nodebench.report import write_report

    figures = plot_run(records, curves, run_dir / "figures") if not records.empty else []
    sections, tables = [], {}
    if spec is not None:
        sections, more = run_analyses(spec, run_dir, records, preset=preset)
        figures += more
        tables = {p.stem: load_table(run_dir, p.stem) for p in run_dir.glob("*.parquet")
                  if p.name not in (RECORDS, CURVES)}
    report = write_report(run_dir, records, figures, spec=spec, tables=tables, preset=preset, sections=sections)
    wrote = "" if rebuilt else f"{run_dir}/records.parquet, curves.parquet, "
    print(f"wrote {wrote}{run_dir}/figures/ and {report}")
    return report


def cmd_run(args) -> int:
    from nodebench.runner.case import expand_grid
    from nodebench.runner.sweep import run_cases, write_run_info

    device = _device(args.device)
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    if not methods:
        raise UserError("--method names no method; give e.g. --method rk4,adjoint")
    iters = args.iters if args.iters or args.budget_s else 100
    cases = expand_grid(tasks=[args.task], methods=methods, seeds=range(args.seeds), hparams=dict(args.hparam),
                        device=device, iters=iters, budget_s=args.budget_s)
    _validate(cases)
    engine = _engine(args)
    out = args.out or Path("results") / "runs" / time.strftime("%Y%m%d-%H%M%S")
    write_run_info(out, command="run")
    print(f"running {len(cases)} case(s) into {out} (rerun with --out {out} to resume)", file=sys.stderr)
    records, curves = run_cases(cases, out, jobs=args.jobs, timeout_s=args.timeout_s, threads=args.threads,
                                progress=not args.no_progress, retry_failed=args.retry_failed, **engine)
    _finish(out, records, curves)
    return 0


def cmd_reproduce(args) -> int:
    from nodebench.experiments import load_paper
    from nodebench.runner.sweep import run_cases, write_run_info

    spec = load_paper(args.paper)
    device = _device(args.device)
    cases = spec.cases(args.preset, device)
    _validate(cases)
    engine = _engine(args)
    out = args.out or Path("results") / f"{args.paper}-{args.preset}"
    write_run_info(out, command="reproduce", paper=args.paper, preset=args.preset, device=device)
    print(f"reproducing {args.paper} at preset {args.preset}: {len(cases)} case(s) into {out}", file=sys.stderr)
    records, curves = run_cases(cases, out, jobs=args.jobs, timeout_s=args.timeout_s, threads=args.threads,
                                progress=not args.no_progress, retry_failed=args.retry_failed, **engine)
    _finish(out, records, curves, spec=spec, preset=args.preset)
    return 0


def cmd_report(args) -> int:
    from nodebench.experiments import load_paper
    from nodebench.records import load_run
    from nodebench.runner.sweep import read_run_info

    records, curves = load_run(args.run_dir)
    info = read_run_info(args.run_dir)
    spec = load_paper(info["paper"]) if info.get("paper") else None
    _finish(args.run_dir, records, curves, spec=spec, preset=info.get("preset", ""), rebuilt=True)
    return 0


def cmd_bench(args) -> int:
    from nodebench.bench.history import DEFAULT_STORE, machine_name, new_run, previous_run
    from nodebench.bench.suites import load_suite
    from nodebench.runner.sweep import run_cases

    suite = load_suite(args.suite)
    device = _device(args.device or suite.device)
    if args.baseline:
        from nodebench.bench.ab import bench_ab, report

        if args.executor != "local" or args.jobs != 1:
            raise UserError("--baseline runs the cases one at a time on this machine; drop --executor and --jobs")

        run = bench_ab(suite, args.baseline, store=args.out or DEFAULT_STORE, machine=args.machine, device=device,
                       threads=args.threads, timeout_s=args.timeout_s, progress=not args.no_progress,
                       validate=_validate, log=lambda line: print(line, file=sys.stderr))
        print(report(run))
        _draw_history(args.out or DEFAULT_STORE, run.run_dir.parent.parent.name, suite.name, run.run_dir.parent)
        return run.exit_code
    cases = suite.cases(device)
    _validate(cases)
    engine = _engine(args)
    store = args.out or DEFAULT_STORE
    run_dir = new_run(store, machine_name(args.machine), suite.name, device=device)
    print(f"bench {suite.name}: {len(cases)} case(s) into {run_dir}", file=sys.stderr)
    run_cases(cases, run_dir, jobs=args.jobs, timeout_s=args.timeout_s, threads=args.threads,
              progress=not args.no_progress, retry_failed=args.retry_failed, **engine)
    print(f"wrote {run_dir}/records.parquet, curves.parquet")
    baseline = previous_run(store, run_dir)
    if baseline is None:
        print("first run of this suite on this machine: nothing to compare against")
        return 0
    code = _gate(baseline, run_dir, run_dir / "compare.md")
    _draw_history(store, run_dir.parent.parent.name, suite.name, run_dir.parent)
    return code


def _gate(baseline: Path, current: Path, out: Path, thresholds: dict | None = None) -> int:
    """Compare two runs, print the table, write the Markdown; 1 on a regression, else 0."""
    from nodebench.bench import compare as gate

    rules = gate.rules_with(thresholds)
    result = gate.compare(gate.load_records(baseline), gate.load_records(current), rules)
    print(gate.table(result, rules).to_markdown(index=False, tablefmt="simple"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(gate.markdown(result, str(baseline), str(current), rules))
    failed = gate.regressed(result)
    print(f"{'REGRESSION' if failed else 'no regression'} against {baseline}; wrote {out}")
    return 1 if failed else 0


def _draw_history(store: Path, machine: str, suite: str, out: Path) -> None:
    from nodebench.bench.history import list_runs
    from nodebench.bench.history_plots import history_markdown, history_table, plot_history

    runs = list_runs(store, machine, suite)
    if runs.empty:
        raise UserError(f"no finished run of suite {suite!r} on machine {machine!r} in {str(store)!r}")
    table = history_table(runs)
    figures = plot_history(table, out / "figures")
    (out / "history.md").write_text(history_markdown(table, figures, out))
    print(f"wrote {out}/history.md and {len(figures)} figure(s) in {out}/figures/")


def cmd_compare(args) -> int:
    out = args.out or (args.current if args.current.is_dir() else args.current.parent) / "compare.md"
    return _gate(args.baseline, args.current, out, dict(args.threshold))


def cmd_history(args) -> int:
    from nodebench.bench.history import DEFAULT_STORE, machine_name

    store, machine = args.store or DEFAULT_STORE, machine_name(args.machine)
    _draw_history(store, machine, args.suite, args.out or store / machine / args.suite)
    return 0


def cmd_leaderboard(args) -> int:
    from nodebench.bench import leaderboard
    from nodebench.bench.history import DEFAULT_STORE, list_runs, machine_name
    from nodebench.bench.suites import available_suites, load_suite
    from nodebench.runner.sweep import read_run_info

    run_dirs = list(args.run_dirs)
    if not run_dirs:
        runs = list_runs(DEFAULT_STORE, machine_name(), "nightly")
        if runs.empty:
            raise UserError(f"no nightly run of this machine in {DEFAULT_STORE}; give run directories")
        run_dirs = [Path(runs["run_dir"].iloc[-1])]
    targets = {}
    for path in run_dirs:
        suite = read_run_info(path if path.is_dir() else path.parent).get("suite")
        if suite in available_suites():
            targets |= load_suite(suite).targets()
    targets |= dict(args.target)
    md, page = leaderboard.write(run_dirs, args.out, reference=args.reference, targets=targets)
    print(f"wrote {md} and {page}")
    return 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "reproduce": cmd_reproduce, "report": cmd_report,
            "bench": cmd_bench, "compare": cmd_compare, "history": cmd_history,
            "leaderboard": cmd_leaderboard}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"nodebench: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("nodebench: interrupted; finished cases are kept, rerun with the same --out to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
