"""The regression gate's false-alarm rate over A/A runs: the same code run several times on one machine.

Every pair of runs in one machine's suite folder of the history store is compared with
``nodebench.benchmarking.compare`` (each run against every later one, and each against the next, the pairs a
nightly gate sees). Any ``regression`` or ``failed`` verdict between runs of the same code is a false alarm.
With ``--plant F`` it also measures the gate's power: for every consecutive pair and every configuration,
the later run's step times of that configuration are multiplied by F, and the share of these planted
slowdowns that the gate flags is reported. Writes ``summary.md`` (per metric: comparisons, false alarms,
rate; gated runs that would fail) into the folder, or ``--out``::

    .venv/bin/python benchmarks/gate_false_alarms.py results/history/dev-2core-cpu1/nightly --plant 1.2
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pandas as pd

from nodebench.benchmarking.compare import FAILED, REGRESSION, RULES, compare, keyed, load_records
from nodebench.benchmarking.history import list_runs


def detection(loaded: list, factor: float) -> pd.DataFrame:
    """For each consecutive pair and configuration: the time verdict with the later run's steps × ``factor``."""
    rows = []
    for i in range(len(loaded) - 1):
        (records, curves), keys = loaded[i + 1], keyed(loaded[i + 1][0])
        for case, group in keys.groupby("case"):
            slowed = curves.assign(time_s=curves["time_s"].where(~curves["case_id"].isin(group["case_id"]),
                                                                  curves["time_s"] * factor))
            result = compare(loaded[i], (records, slowed))
            verdict = result[(result["case"] == case) & (result["metric"] == "time")]["verdict"].iloc[0]
            rows.append({"baseline": i, "case": case, "verdict": verdict})
    return pd.DataFrame(rows)


def pair_verdicts(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """``(rows, runs, loaded)``: every (pair, configuration, metric) verdict, the runs and their records."""
    runs = list_runs(folder.parent.parent, folder.parent.name, folder.name)
    loaded = [load_records(path) for path in runs["run_dir"]]
    shas = {str(sha).removesuffix("-dirty") for sha in runs["git_sha"]}
    if len(shas) > 1:
        raise SystemExit(f"not an A/A set: the runs come from {len(shas)} commits ({', '.join(sorted(shas))})")
    frames = []
    for i, j in itertools.combinations(range(len(loaded)), 2):
        result = compare(loaded[i], loaded[j])
        frames.append(result.assign(baseline=i, current=j, consecutive=j == i + 1))
    return pd.concat(frames, ignore_index=True), runs, loaded


def summary(rows: pd.DataFrame, runs: pd.DataFrame) -> str:
    """The Markdown summary: per metric and overall, for consecutive pairs and for all pairs."""
    flagged = rows["verdict"].isin([REGRESSION, FAILED])
    lines = [f"# Gate false alarms over {len(runs)} A/A runs", "",
             f"Runs of commit `{str(runs['git_sha'].iloc[0])[:12]}` on machine `{runs['machine'].iloc[0]}`, "
             f"suite `{runs['suite'].iloc[0]}`, {runs['date'].iloc[0]} to {runs['date'].iloc[-1]}.", ""]
    table = []
    for metric in [*RULES, "status"]:
        for scope, mask in (("consecutive", rows["consecutive"]), ("all pairs", rows["metric"].notna())):
            part = rows[mask & (rows["metric"] == metric)]
            if len(part):
                alarms = int(flagged[part.index].sum())
                past = int(part["verdict"].isin([REGRESSION, "noise", "improved"]).sum())
                table.append([metric, scope, len(part), past, alarms, f"{alarms / len(part):.1%}"])
    lines += [pd.DataFrame(table, columns=["metric", "pairs", "comparisons (configuration × pair)",
                                           "past the threshold", "false alarms", "rate"]).to_markdown(index=False),
              "", "*Past the threshold*: the ratio alone would have flagged it; the rank test decides.", ""]
    for scope, mask in (("consecutive", rows["consecutive"]), ("all pairs", rows["metric"].notna())):
        pairs = rows[mask].assign(flagged=flagged[mask]).groupby(["baseline", "current"])["flagged"].any()
        lines.append(f"- {scope}: {int(pairs.sum())} of {len(pairs)} gated runs exit with code 1 "
                     f"({pairs.mean():.1%}).")
    bad = rows[flagged]
    if len(bad):
        lines += ["", "False alarms:", "",
                  bad[["baseline", "current", "case", "metric", "ratio", "p"]].to_markdown(index=False)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="STORE/MACHINE/SUITE folder of A/A runs")
    parser.add_argument("--out", type=Path, help="summary file (default FOLDER/summary.md)")
    parser.add_argument("--plant", type=float, help="also measure the detection of a planted slowdown by this factor")
    args = parser.parse_args()
    rows, runs, loaded = pair_verdicts(args.folder)
    text = summary(rows, runs)
    if args.plant:
        found = detection(loaded, args.plant)
        flagged = (found["verdict"] == REGRESSION)
        per_case = found.assign(flagged=flagged).groupby("case")["flagged"].agg(["sum", "count"])
        text += (f"\n## Planted slowdown × {args.plant:g}\n\nFlagged in {int(flagged.sum())} of {len(found)} "
                 f"(configuration × consecutive pair) cases ({flagged.mean():.1%}):\n\n"
                 + per_case.rename(columns={"sum": "flagged", "count": "pairs"}).to_markdown() + "\n")
    out = args.out or args.folder / "summary.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
