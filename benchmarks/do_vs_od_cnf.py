"""Disc-Opt vs Opt-Disc training time at comparable test NLL, on CNFs (Onken & Ruthotto, arXiv 2005.13420).

Runs ``rk4`` (DO: classic RK4, fixed step) and ``adjoint`` (OD: dopri5 + continuous adjoint) on a 2-D
toy and an offline tabular set through the harness (each case in its own process, one at a time, one
thread; DO and OD interleaved in rounds, seed 0 of every configuration then seed 1 and so on, so that the
machine's drift or a burst of load hits both methods alike), then prints per problem the median training
time, the reduction 1 − t_DO/t_OD, test NLL of both (reference solver, exact trace) and their difference.
The paper reports reductions of 39–97 %. The cases run in ``--out``, which keeps (and resumes) every case
run there; the table holds only this invocation's cases, so a rerun with other ``--iters``, ``--seeds`` or
``--problems`` is not pooled with it.

    python benchmarks/do_vs_od_cnf.py --iters 500 --seeds 1 --out results/bench-do-vs-od
"""

from __future__ import annotations

from pathlib import Path

from script_checks import refuse_repeats

from nodebench.argtypes import ScriptParser, positive_int
from nodebench.errors import UserError
from nodebench.paths import nonempty_path, sweep_dir
from nodebench.runner.case import expand_grid, in_rounds
from nodebench.runner.settings import check_cases
from nodebench.runner.sweep import run_cases

PROBLEMS = {
    "cnf_toy_8gaussians": {"rk4": {"step_size": 0.05}, "adjoint": {"rtol": 1e-5, "atol": 1e-5}},
    "cnf_sklearn_breast_cancer": {"rk4": {"step_size": 0.25}, "adjoint": {"rtol": 1e-6, "atol": 1e-8}},
}
EVAL = {"eval_size": 1000, "test_step_sizes": [0.1]}


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=positive_int, default=500)
    parser.add_argument("--seeds", type=positive_int, default=1)
    parser.add_argument("--out", type=nonempty_path, default=Path("results/bench-do-vs-od"),
                        help="output folder; reuse it to resume (default results/bench-do-vs-od)")
    parser.add_argument("--allow-mixed-commits", action="store_true",
                        help="resume a folder whose finished cases ran at another git commit")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated, of: {', '.join(PROBLEMS)}")
    args = parser.parse_args()
    problems = args.problems.split(",")
    unknown = [task for task in problems if task not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem {unknown[0]!r}; valid: {', '.join(PROBLEMS)}")
    refuse_repeats(parser, problems=problems)
    cases = []
    for task in problems:
        cases += expand_grid(tasks=[task], methods=["rk4", "adjoint"], seeds=range(args.seeds), hparams=EVAL,
                             method_hparams=PROBLEMS[task], iters=args.iters, experiment=task)
    cases = in_rounds(cases)
    try:  # names, values and the output folder checked before anything runs or is written
        check_cases(cases)
        sweep_dir(args.out, allow_mixed_commits=args.allow_mixed_commits)
    except UserError as err:
        parser.error(str(err))
    records, _ = run_cases(cases, args.out, allow_mixed_commits=args.allow_mixed_commits)
    records = records[records["case_id"].isin({case.case_id for case in cases})]  # not earlier runs' cases
    ok = records[records["status"] == "ok"]
    print(f"{'problem':<28} {'t_DO [s]':>9} {'t_OD [s]':>9} {'reduction':>9} {'NLL DO':>8} {'NLL OD':>8} "
          f"{'ΔNLL':>7} {'NFE DO':>7} {'NFE OD f+b':>10}")
    for task, rows in ok.groupby("task"):
        do, od = rows[rows.method == "rk4"], rows[rows.method == "adjoint"]
        if do.empty or od.empty:
            print(f"{task:<28} missing a method: {sorted(rows.method)}")
            continue
        t_do, t_od = do.train_wall_s.median(), od.train_wall_s.median()
        nll_do, nll_od = do.test_nll.median(), od.test_nll.median()
        nfe_od = od.nfe_forward_per_iter.median() + od.nfe_backward_per_iter.median()
        print(f"{task:<28} {t_do:9.1f} {t_od:9.1f} {1 - t_do / t_od:9.1%} {nll_do:8.3f} {nll_od:8.3f} "
              f"{nll_do - nll_od:+7.3f} {do.nfe_forward_per_iter.median():7.0f} {nfe_od:10.1f}")
    failed = records[records["status"] != "ok"]
    for row in failed.itertuples():
        print(f"FAILED {row.task}/{row.method}/seed {row.seed}: {row.status}: {row.reason}")


if __name__ == "__main__":
    main()
