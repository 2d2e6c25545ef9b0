"""Time to a common target training quality: SNODE against backprop through dopri5 and the adjoint, on
the 6-state vehicle stand-in (Quaglino et al., ICLR 2020, claims S1–S3).

Every method trains the same model (the task's MLP field, same initial weights per seed) on the same data
for the same wall-clock budget of timed steps. Seeds are rounds; the method order rotates every round so
machine noise hits all methods alike; each case is a worker process of the harness (:func:`nodebench.run`),
with the task's and method's checks. The training quality is the simulation MSE on the
training trajectories (the harness's untimed ``monitor``), the same quantity for every method; the target
is the best level every method reaches (:mod:`nodebench.target`) unless ``--target`` fixes it. The time to
target of each method over seeds follows the product's one rule (:func:`nodebench.target.seed_aggregate`: a
seed that never reaches the target, or failed, counts as infinitely slow; the median, or the olympic mean from
5 seeds), and the benchmark reports their ratio baseline/snode with how many seeds of each reached it. Per
seed it takes the ratios test MSE(baseline)/test MSE(snode) and time-per-iteration(baseline)/time-per-iteration
(snode), and reports their medians and ranges over seeds. ``--summary-only`` rewrites ``summary.md`` from the
records in ``--out`` (give the run's own options: other methods, seed counts or tasks than its records hold are
refused) without training.

    python benchmarks/snode_time_to_target.py --budget-s 60 --seeds 3 --threads 1
    python benchmarks/snode_time_to_target.py --methods snode rk4 --hparam n_train=4 --budget-s 10
    python benchmarks/snode_time_to_target.py --device cuda --out results/benchmarks/snode_time_to_target-cuda

``--hparam KEY=VALUE`` applies to every method and overrides the script's per-method settings
(:data:`HPARAMS`: SNODE's ``snode_gamma`` 0.1, the adaptive methods' tolerances, the monitor intervals); a bad
value is refused before anything runs. Each method and each ``--hparam`` key may be given once.

Writes ``records.parquet``, ``curves.parquet``, ``time_to_target.parquet``, ``summary.md`` and the
figure of the monitored quality against wall time into ``--out``.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd

from script_checks import refuse_repeats

import nodebench
from nodebench.argtypes import ScriptParser, device, positive_float, positive_int, positive_int_up_to
from nodebench.api_checks import MAX_THREADS
from nodebench.cli import parse_hparam
from nodebench.errors import UserError
from nodebench.paths import nonempty_path
from nodebench.markdown import markdown_table
from nodebench.plots import plot_monitor
from nodebench.target import reached_text, seed_aggregate, time_to_target_table

#: Per-method hyper-parameters: the snode paper package's settings.
HPARAMS = {
    "snode": {"snode_gamma": 0.1, "snode_weight_steps": 10, "monitor_every": 25},
    "direct": {"rtol": 1e-4, "atol": 1e-6, "monitor_every": 5},
    "adjoint": {"rtol": 1e-4, "atol": 1e-6, "monitor_every": 2},
    "gq": {"rtol": 1e-4, "atol": 1e-6, "gtol": 0.1, "monitor_every": 2},
    "rk4": {"monitor_every": 5}, "midpoint": {"monitor_every": 5}, "euler": {"monitor_every": 5},
}


def run(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep through the Python API: one case per method and seed, in rounds (seed 0 of every method,
    then seed 1...), each in a fresh worker process with the task's and the regulariser's checks. Only this
    invocation's cases are returned: ``OUT/run`` keeps (and resumes) every case run there, other tasks' too.
    The user's ``--hparam`` values override :data:`HPARAMS`."""
    hparams = dict(args.hparam)
    method_hparams = {method: {key: value for key, value in HPARAMS[method].items() if key not in hparams}
                      for method in args.methods if method in HPARAMS}
    result = nodebench.run(args.task, args.methods, seeds=args.seeds, budget_s=args.budget_s,
                           hparams=hparams, method_hparams=method_hparams, out=args.out / "run", device=args.device,
                           threads=args.threads)
    ids = {case.case_id for case in result.cases}
    return (result.records[result.records["case_id"].isin(ids)].reset_index(drop=True),
            result.curves[result.curves["case_id"].isin(ids)].reset_index(drop=True))


def _ratios(per_seed: pd.DataFrame, column: str, base: str, method: str = "snode") -> list[float]:
    table = per_seed.pivot_table(index="seed", columns="method", values=column)
    if base not in table or method not in table:
        return []
    return [b / m for b, m in zip(table[base], table[method]) if pd.notna(b) and pd.notna(m) and m > 0]


def _time_ratio(pair: pd.DataFrame, base: str, method: str = "snode") -> str:
    """Time to target of ``base`` over that of ``method``, each over seeds by the product's rule."""
    times = {name: pair.loc[pair["method"] == name, "time_to_target_s"] for name in (base, method)}
    if any(t.empty for t in times.values()):
        return "not measured"
    b, m = seed_aggregate(times[base]), seed_aggregate(times[method])
    seeds = f"{base} {reached_text(times[base])}, {method} {reached_text(times[method])}"
    if math.isinf(b) and math.isinf(m):
        return f"neither reached it ({seeds})"
    return f"{'∞' if math.isinf(b) else format(b / m, '.3g')}× ({b:.3g} s / {m:.3g} s; {seeds})"


def _show(values: list[float]) -> str:
    if not values:
        return "not measured"
    return f"{statistics.median(values):.3g}× (range {min(values):.3g}–{max(values):.3g}, {len(values)} seeds)"


def summary(records: pd.DataFrame, table: pd.DataFrame, env: dict, args) -> str:
    per_seed = records[["seed", "method", "test_mse", "time_per_iter_s"]]
    header = ["baseline", "target", "time to target: baseline/snode", "test MSE: baseline/snode",
              "time per iter: baseline/snode"]
    rows = []
    for base in [m for m in args.methods if m != "snode"]:
        pair = table[table["versus"] == base]
        rows.append([base, ", ".join(f"{v:.3g}" for v in sorted(set(pair["target"]))),
                     _time_ratio(pair, base), _show(_ratios(per_seed, "test_mse", base)),
                     _show(_ratios(per_seed, "time_per_iter_s", base))])
    methods = records.groupby("method", sort=False).agg(
        iters=("iters", "median"), ms_per_iter=("time_per_iter_s", lambda s: 1e3 * s.median()),
        test_mse=("test_mse", "median"), train_mse=("train_mse", "median"),
        peak_mem_mib=("peak_mem_bytes", lambda s: s.median() / 2**20)).reset_index()
    return "\n".join([
        f"# SNODE time to target on {args.task}", "",
        f"Budget {args.budget_s:g} s of timed steps per method and seed, {args.seeds} seeds, device {args.device} "
        f"({env.get('gpu_model') or env.get('cpu_model', 'machine not recorded')}), torch "
        f"{env.get('version_torch', 'not recorded')}, threads {env.get('num_threads', 'not recorded')}, "
        f"git {str(env.get('git_sha', 'not recorded'))[:12]}. The target of each pair is the training simulation "
        "MSE both methods reach (the larger of their levels, each the lowest at which the method's time over "
        "seeds is finite). Ratios above 1 favour "
        "SNODE.", "",
        markdown_table(header, rows), "",
        markdown_table(list(methods.columns), [[_fmt(v) for v in r] for r in methods.itertuples(index=False)]), ""])


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def check_run_options(parser: ScriptParser, records: pd.DataFrame, args) -> None:
    """Refuse ``--summary-only`` options other than the run's where its records hold them (methods, seeds, task): the
    summary's rows come from ``--methods`` and its header from ``--seeds`` and ``--task``, so another value wrote a
    summary without a method's row, or with another seed count or task, over the run's own."""
    held = {"methods": sorted(records["method"].unique()), "seeds": records["seed"].nunique(),
            "task": records["task"].iloc[0] if "task" in records else args.task}
    given = {"methods": sorted(args.methods), "seeds": args.seeds, "task": args.task}
    wrong = [name for name in held if held[name] != given[name]]
    if wrong:
        parser.error(f"--summary-only: the records in {args.out} hold " + ", ".join(
            f"--{name} {' '.join(held[name]) if name == 'methods' else held[name]}" for name in wrong)
            + "; give the run's own options")


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="vehicle")
    parser.add_argument("--methods", nargs="+", default=["snode", "direct", "adjoint"])
    parser.add_argument("--budget-s", type=positive_float, default=60.0,
                        help="timed training seconds per method and seed")
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--target", type=positive_float, default=None,
                        help="fixed target (default: the common level)")
    parser.add_argument("--hparam", action="append", default=[], type=parse_hparam, metavar="KEY=VALUE",
                        help="extra hyper-parameter for every method, as on the CLI (value parsed as JSON); "
                             "overrides the script's per-method settings")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=positive_int_up_to(MAX_THREADS), default=1,
                        help="torch threads per case (default 1)")
    parser.add_argument("--out", type=nonempty_path, default=Path("results/benchmarks/snode_time_to_target-cpu"))
    parser.add_argument("--summary-only", action="store_true",
                        help="rewrite summary.md from the records in --out; trains nothing")
    args = parser.parse_args()
    refuse_repeats(parser, methods=args.methods, hparam=[key for key, _ in args.hparam])
    if "snode" not in args.methods:
        parser.error("--methods must include snode")
    if args.summary_only:
        if not (args.out / "records.parquet").is_file():
            parser.error(f"--summary-only: no records.parquet in {args.out}")
        records, curves = (pd.read_parquet(args.out / name) for name in ("records.parquet", "curves.parquet"))
        check_run_options(parser, records, args)
    else:
        try:  # nodebench.run checks the task, methods and hyper-parameters before it writes anything
            records, curves = run(args)
        except UserError as err:
            parser.error(str(err))
    table = time_to_target_table(records, curves, target=args.target, pair_with="snode")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        records.to_parquet(args.out / "records.parquet", index=False)
        curves.to_parquet(args.out / "curves.parquet", index=False)
    table.to_parquet(args.out / "time_to_target.parquet", index=False)
    text = summary(records, table, records.iloc[0].to_dict(), args)
    (args.out / "summary.md").write_text(text)
    plot_monitor(records, curves, table, args.out)
    print(text)


if __name__ == "__main__":
    main()
