"""The interleaved A/B gate's false-alarm rate and power, measured with real runs on this machine.

From the committed ``HEAD`` (the *base*), in temporary git worktrees that are removed at the end:

- **A/A**: ``nodebench bench --suite SUITE --baseline BASE`` run by BASE itself, ``--aa`` times; any
  ``regression`` or ``failed`` verdict is a false alarm.
- **Planted slowdowns**: for each ``--plant FACTOR=RUNS``, a scratch commit on top of BASE (detached, on no
  branch) whose training step for one task (``--planted-task``, default the g1d problem) burns
  ``FACTOR - 1`` times the step's own CPU time in a busy loop before returning, i.e. repeats work (a sleep
  would leave the CPU time alone); that commit, as the current code, is gated against BASE ``RUNS`` times.
  Detection: the planted configuration's verdict is ``regression``; any other flagged configuration is a
  false alarm of that run.

Runs of the chains are interleaved (A/A, then each factor, round after round), so machine drift over the
study touches all of them alike. Every run is kept in the history store under ``OUT/history/`` (machine
keys ``gate-aa`` and ``gate-plant-FACTOR``); rerunning with the same ``--out`` counts the finished runs and
only adds the missing ones. ``OUT/summary.md`` and ``OUT/verdicts.csv`` hold the figures::

    .venv/bin/python benchmarks/gate_false_alarms.py --aa 10 --plant 1.1=5 --plant 1.2=10 --plant 1.5=5 \\
        --suite gate_study --out results/gate_study
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodebench.argtypes import ScriptParser, non_negative_int, positive_float, positive_int
from nodebench.benchmarking.ab import BASELINE_DIR
from nodebench.benchmarking.compare import FAILED, REGRESSION, RULES, compare, keyed, load_records
from nodebench.benchmarking.history import list_runs
from nodebench.benchmarking.suites import load_suite
from nodebench.errors import UserError
from nodebench.paths import nonempty_path, output_dir
from nodebench.registry import unknown
from nodebench.tasks import Problem
from script_checks import refuse_repeats

#: The planted code: appended to ``GradientStep.step`` of the scratch commit (nodebench/training.py).
STEP_HEAD = '''        """Forward, ``boundary()``, backward, optimiser step; returns the loss."""
'''
PLANT = '''        planted_start = time.process_time()  # PLANTED SLOWDOWN (scratch commit of the gate study)
'''
PLANT_END = '''        if type(self.problem).__name__ == {problem!r}:  # PLANTED SLOWDOWN: {extra:.0%} more CPU work
            spent = time.process_time() - planted_start
            until = time.process_time() + {extra:.6g} * spent
            while time.process_time() < until:
                pass
        return loss
'''
STEP_TAIL = '''        self.optimizer.step()
        return loss
'''


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def plant_slowdown(checkout: Path, factor: float, problem: str = "G1DProblem") -> None:
    """Edit ``checkout``'s training step so that problems of class ``problem`` cost ``factor`` × CPU time."""
    path = checkout / "nodebench" / "training.py"
    text = path.read_text()
    if STEP_HEAD not in text or STEP_TAIL not in text:
        raise SystemExit(f"cannot plant: GradientStep.step in {path} no longer has the expected shape")
    text = text.replace(STEP_HEAD, STEP_HEAD + PLANT, 1)
    text = text.replace(STEP_TAIL, "        self.optimizer.step()\n"
                        + PLANT_END.format(problem=problem, extra=factor - 1.0), 1)
    if "\nimport time\n" not in text:
        text = text.replace("\nimport torch\n", "\nimport time\n\nimport torch\n", 1)
    path.write_text(text)


@contextmanager
def worktree(sha: str, factor: float | None, problem: str):
    """A temporary detached worktree at ``sha``; with ``factor``, a scratch commit of the planted slowdown."""
    with tempfile.TemporaryDirectory(prefix="nodebench-gate-study-") as tmp:
        path = Path(tmp) / "src"
        git("worktree", "add", "--detach", str(path), sha)
        try:
            if factor is not None:
                plant_slowdown(path, factor, problem)
                git("-c", "user.name=gate study", "-c", "user.email=gate-study@localhost", "commit", "-q", "-am",
                    f"scratch: planted ×{factor:g} slowdown in {problem} (gate study, never merged)", cwd=path)
            yield path
        finally:
            git("worktree", "remove", "--force", str(path))


def bench(checkout: Path, base: str, suite: str, store: Path, machine: str) -> int:
    """One interleaved A/B run of ``checkout`` (the current code) against ``base``; its exit code."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    done = subprocess.run([sys.executable, "-m", "nodebench.cli", "bench", "--suite", suite, "--baseline", base,
                           "--out", str(store), "--machine", machine, "--no-progress"], cwd=checkout, env=env,
                          capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"bench failed with code {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.returncode


def verdicts(store: Path, suite: str) -> pd.DataFrame:
    """Every (run, configuration, metric) verdict of the study's runs, re-read from their files."""
    rows = []
    for run in list_runs(store, suite=suite).itertuples():
        current, baseline = load_records(run.run_dir), load_records(Path(run.run_dir) / BASELINE_DIR)
        result = compare(baseline, current)
        rows.append(result.assign(machine=run.machine, run=Path(run.run_dir).name, git_sha=run.git_sha))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def synthetic_power(store: Path, suite: str, factor: float) -> pd.DataFrame:
    """On the A/A runs: each configuration's current-side step times (wall and CPU) × ``factor``, re-gated."""
    rows = []
    for run in list_runs(store, machine="gate-aa", suite=suite).itertuples():
        records, curves = load_records(run.run_dir)
        baseline = load_records(Path(run.run_dir) / BASELINE_DIR)
        for case, group in keyed(records).groupby("case"):
            mask = curves["case_id"].isin(group["case_id"])
            slowed = curves.assign(time_s=curves["time_s"].where(~mask, curves["time_s"] * factor),
                                   cpu_s=curves["cpu_s"].where(~mask, curves["cpu_s"] * factor))
            result = compare(baseline, (records, slowed))
            for metric in ("time", "cpu"):
                verdict = result[(result["case"] == case) & (result["metric"] == metric)]["verdict"].iloc[0]
                rows.append({"factor": factor, "run": Path(run.run_dir).name, "case": case, "metric": metric,
                             "verdict": verdict})
    return pd.DataFrame(rows)


def swap_seeds(baseline: tuple, current: tuple, seeds: list) -> tuple[tuple, tuple]:
    """The two ``(records, curves)`` runs with the cases of ``seeds`` (and their curves) exchanged between them."""
    (base, base_curves), (cur, cur_curves) = baseline, current
    moved_base, moved_cur = base["seed"].isin(seeds), cur["seed"].isin(seeds)

    def steps(curves: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
        return curves[curves["case_id"].isin(records["case_id"])] if not curves.empty else curves
    new_base, new_cur = pd.concat([base[~moved_base], cur[moved_cur]]), pd.concat([cur[~moved_cur], base[moved_base]])
    return ((new_base, pd.concat([steps(base_curves, base[~moved_base]), steps(cur_curves, cur[moved_cur])])),
            (new_cur, pd.concat([steps(cur_curves, cur[~moved_cur]), steps(base_curves, base[moved_base])])))


def swap_null(store: Path, suite: str) -> pd.DataFrame:
    """The gate's family-wise false-alarm rate under the permutation null, per A/A run: every pattern of its
    seeds' sides swapped (2^3 with three seeds) is re-gated. A seed is one process pair, the unit of independent
    evidence, so an identical-code run is exchangeable seed by seed. Per configuration the share of patterns it
    is flagged in; per run one minus the product of the configurations' shares not flagged (each configuration's
    pattern drawn independently). Also the comparisons a run makes and the largest p of a flagged swap, against
    which a Holm–Bonferroni correction would set α / comparisons."""
    rows = []
    for run in list_runs(store, machine="gate-aa", suite=suite).itertuples():
        baseline, current = load_records(Path(run.run_dir) / BASELINE_DIR), load_records(run.run_dir)
        seeds = sorted(set(baseline[0]["seed"]) & set(current[0]["seed"]))
        results = [compare(*swap_seeds(baseline, current, [s for s, swap in zip(seeds, pattern) if swap]))
                   for pattern in itertools.product((False, True), repeat=len(seeds))]
        flagged = pd.concat([result[result["verdict"] == REGRESSION].assign(pattern=k)
                             for k, result in enumerate(results)])
        share = flagged.groupby("case")["pattern"].nunique() / len(results)
        rows.append({"run": Path(run.run_dir).name, "comparisons": int(results[0]["metric"].isin(RULES).sum()),
                     "family-wise false alarms": float(1 - (1 - share).prod()),
                     "largest p flagged": float(flagged["p"].max()) if len(flagged) else math.nan})
    return pd.DataFrame(rows)


def pair_noise(store: Path, suite: str) -> pd.DataFrame:
    """The spread between processes on the A/A runs: per metric, the standard deviation over (run,
    configuration, seed) of log(current ÷ baseline) of the seed's median step, and the rounds of seeds
    that a 95 % interval of ±10 % would need at that spread ((1.96 σ / ln 1.1)², normal approximation)."""
    logs = {"time_s": [], "cpu_s": []}
    for run in list_runs(store, machine="gate-aa", suite=suite).itertuples():
        cur = load_records(run.run_dir)[1].groupby(["task", "method", "seed"])[list(logs)].median()
        base = load_records(Path(run.run_dir) / BASELINE_DIR)[1]
        base = base.groupby(["task", "method", "seed"])[list(logs)].median()
        for column in logs:
            logs[column] += list(np.log(cur[column] / base[column]).dropna())
    rows = []
    for column, values in logs.items():
        sigma = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        rows.append({"metric": {"time_s": "wall time/iter", "cpu_s": "CPU time/iter"}[column],
                     "process pairs": len(values), "σ of log ratio": round(sigma, 3),
                     "seeds for ±10 % at 95 %": math.ceil((1.96 * sigma / math.log(1.1)) ** 2)
                     if math.isfinite(sigma) else None})
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame, planted_case: str, synthetic: pd.DataFrame, noise: pd.DataFrame, suite: str,
            base: str, null: pd.DataFrame) -> str:
    """The Markdown summary: false alarms of the A/A runs, detection of each planted factor."""
    flagged = rows["verdict"].isin([REGRESSION, FAILED])
    lines = [f"# Interleaved A/B gate: false alarms and power on suite `{suite}`", "",
             f"Every run is `nodebench bench --suite {suite} --baseline BASE` as the code of its time ran it "
             "(case by case in rounds of seeds; see `nodebench/benchmarking/ab.py`); BASE is the study's HEAD when the "
             f"run was made ({', '.join(sorted({str(sha)[:12] for sha in rows['git_sha']}))} as current code; "
             f"the planted runs' current code is a scratch commit on top of BASE). This summary: `{base[:12]}`. "
             f"The planted slowdown burns extra CPU work in the training step of `{planted_case}` only.", ""]
    table = []
    for machine, part in rows.groupby("machine", sort=True):
        runs = part["run"].nunique()
        is_planted = part["case"] == planted_case
        other_alarm = part[~is_planted | (machine == "gate-aa")]
        alarm_runs = other_alarm[flagged[other_alarm.index]]["run"].nunique()
        row = {"chain": machine, "runs": runs, "runs with a false alarm": f"{alarm_runs} of {runs}"}
        for metric in ("cpu", "time"):
            sel = part[is_planted & (part["metric"] == metric)]
            hits = int((sel["verdict"] == REGRESSION).sum())
            ratios = sel["ratio"]
            row[f"{metric}: detected"] = "—" if machine == "gate-aa" else f"{hits} of {len(sel)}"
            row[f"{metric}: median ratio [min, max]"] = (f"{ratios.median():.3f} [{ratios.min():.3f}, "
                                                        f"{ratios.max():.3f}]")
        table.append(row)
    lines += ["## Real runs", "", "Ratios are those of the planted configuration "
              f"(`{planted_case}`): CPU time/iter and wall time/iter, current ÷ baseline.", "",
              pd.DataFrame(table).to_markdown(index=False), ""]
    metric_alarms = rows[flagged].groupby(["machine", "metric"]).size()
    if len(metric_alarms):
        lines += ["Flagged (configuration, metric) comparisons per chain:", "",
                  metric_alarms.rename("count").to_frame().to_markdown(), ""]
    lines += ["## Noise between processes (A/A runs)", "",
              "Each seed of a configuration is one worker process per side; the gate's unit of independent "
              "evidence is that pair of processes.", "", noise.to_markdown(index=False), ""]
    if not null.empty:
        lines += ["## Permutation null (A/A runs, sides swapped seed by seed)", "",
                  "Every pattern of an A/A run's seeds swapped between the sides, re-gated: the family-wise "
                  "false-alarm rate of a run's comparisons under the null (`swap_null`). A Holm–Bonferroni "
                  "correction would test the smallest p at α ÷ comparisons; the largest p of a flagged swap "
                  "says whether it would matter.",
                  "", null.to_markdown(index=False), ""]
    if not synthetic.empty:
        lines += ["## Synthetic slowdowns on the A/A runs", "",
                  "Each configuration of each A/A run, its current side's step times multiplied by the factor "
                  "and re-gated: the gate's power on this machine's real noise, for a slowdown that is "
                  "exactly uniform.", "",
                  synthetic.assign(detected=synthetic["verdict"] == REGRESSION)
                  .groupby(["factor", "metric"])["detected"].agg(["sum", "count"])
                  .rename(columns={"sum": "detected", "count": "trials"}).to_markdown(), ""]
    return "\n".join(lines)


def problem_classes() -> list[str]:
    """The names of the installed tasks' problem classes, the values ``--planted-task`` may take (a name no
    problem has would plant a slowdown that never runs)."""
    found, todo = set(), [Problem]
    while todo:
        subclasses = todo.pop().__subclasses__()
        found |= {cls.__name__ for cls in subclasses}
        todo += subclasses
    return sorted(found)


def case_labels(suite) -> list[str]:
    """The configurations of ``suite`` as the gate's reports label them (``g1d: gq``), the values
    ``--planted-case`` may take."""
    return sorted(set(keyed(pd.DataFrame([case.identity() for case in suite.cases()]))["case"]))


def plant(text: str) -> tuple[float, int]:
    """``argparse`` type of ``--plant FACTOR=RUNS``: a slowdown factor > 1 and a positive number of runs."""
    factor, sep, runs = text.partition("=")
    if not sep or positive_float(factor) <= 1:
        raise argparse.ArgumentTypeError(f"expected FACTOR=RUNS with a factor > 1, e.g. 1.2=10, got {text!r}")
    return float(factor), positive_int(runs)


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=non_negative_int, default=10, help="interleaved A/A runs (default 10)")
    parser.add_argument("--plant", type=plant, action="append", default=[], metavar="FACTOR=RUNS",
                        help="planted slowdown factor and its number of runs, e.g. 1.2=10; repeatable, "
                             "one factor once")
    parser.add_argument("--suite", default="gate_study", help="suite (default gate_study)")
    parser.add_argument("--planted-task", default="G1DProblem", help="problem class slowed (default G1DProblem)")
    parser.add_argument("--planted-case", default="g1d: gq", help="its configuration's label in the reports")
    parser.add_argument("--out", type=nonempty_path, default=ROOT / "results" / "gate_study")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite the summary from the store")
    args = parser.parse_args()
    refuse_repeats(parser, plant=[factor for factor, _ in args.plant])  # one chain per factor
    try:  # before any worktree is made or any file written
        suite = load_suite(args.suite)  # imports the installed papers, and so their problem classes
        if args.planted_task not in problem_classes():
            raise unknown("problem class", args.planted_task, problem_classes())
        if args.planted_case not in case_labels(suite):  # else the summary reads "detected 0 of 0"
            raise unknown(f"configuration of suite {args.suite!r} (--planted-case)", args.planted_case,
                          case_labels(suite))
        output_dir(args.out)
    except UserError as err:
        parser.error(str(err))
    base = git("rev-parse", "HEAD")
    if not args.summary_only and git("status", "--porcelain", "--untracked-files=no"):
        print("note: uncommitted changes are not part of the study; it runs the committed HEAD", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated study still removes its worktrees
    store = args.out.resolve() / "history"
    plants = dict(args.plant)
    chains = {"gate-aa": (None, args.aa)} | {f"gate-plant-{f:g}": (f, n) for f, n in plants.items()}
    if not args.summary_only:
        done = list_runs(store, suite=args.suite)["machine"].value_counts().to_dict() if store.exists() else {}
        with ExitStack() as stack:
            paths = {machine: stack.enter_context(worktree(base, factor, args.planted_task))
                     for machine, (factor, _) in chains.items()}
            for round_ in range(max(n for _, n in chains.values())):
                for machine, (_, runs) in chains.items():
                    if done.get(machine, 0) <= round_ < runs:
                        code = bench(paths[machine], base, args.suite, store, machine)
                        print(f"round {round_ + 1}: {machine}: exit {code}", flush=True)
    rows = verdicts(store, args.suite)
    if rows.empty:
        parser.error(f"no run of suite {args.suite!r} in {str(store)!r}; run the study (without --summary-only) "
                     "or give the --out of one")
    synthetic = pd.concat([synthetic_power(store, args.suite, f) for f in (1.1, 1.2, 1.5)], ignore_index=True)
    text = summary(rows, args.planted_case, synthetic, pair_noise(store, args.suite), args.suite, base,
                   swap_null(store, args.suite))
    rows.to_csv(args.out / "verdicts.csv", index=False)  # both written once both are made
    (args.out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {args.out / 'summary.md'} and {args.out / 'verdicts.csv'}")


if __name__ == "__main__":
    main()
