"""Claim checks, paper spec parsing and the report, on hand-made records."""

from __future__ import annotations

import re

import pandas as pd

from nodebench.claims import FAILS, HOLDS, NOT_MEASURED, check_claims
from nodebench.experiments import load_paper
from nodebench.reporting import write_report


def records_of(rows):
    base = {"status": "ok", "seed": 0, "task": "t", "case_id": None}
    frame = pd.DataFrame([base | row for row in rows])
    frame["case_id"] = [f"c{i}" for i in range(len(frame))]
    return frame


RECORDS = records_of([
    {"experiment": "fast", "method": "rk4", "train_wall_s": 1.0, "test_nll": 3.00},
    {"experiment": "fast", "method": "adjoint", "train_wall_s": 10.0, "test_nll": 2.95},
    {"experiment": "slow", "method": "rk4", "train_wall_s": 8.0, "test_nll": 3.50},
    {"experiment": "slow", "method": "adjoint", "train_wall_s": 10.0, "test_nll": 3.00},
    {"experiment": "slow", "method": "adjoint", "train_wall_s": 99.0, "test_nll": 0.0, "status": "error", "seed": 1},
])


def verdicts(claim, records=RECORDS, tables=None):
    claim = {"id": "X", "text": "claim"} | claim
    return {v.scope: (v.verdict, v.measured) for v in check_claims([claim], records, tables)}


def test_time_reduction_per_experiment_and_failed_rows_ignored():
    out = verdicts({"check": "time_reduction", "method": "rk4", "baseline": "adjoint", "min": 0.39, "max": 0.97})
    assert out["fast"][0] == HOLDS and "90.0%" in out["fast"][1]
    assert out["slow"][0] == FAILS and "20.0%" in out["slow"][1]  # the error row (99 s) is not a baseline time


def test_wins_and_metric_parity():
    out = verdicts({"check": "wins", "method": "rk4", "baseline": "adjoint", "fraction": 0.857})
    assert out["all"][0] == HOLDS and "2 of 2" in out["all"][1]
    out = verdicts({"check": "metric_parity", "method": "rk4", "baseline": "adjoint", "metric": "test_nll",
                    "abs_tol": 0.1})
    assert out == {"fast": (HOLDS, out["fast"][1]), "slow": (FAILS, out["slow"][1])}
    out = verdicts({"check": "metric_parity", "method": "rk4", "baseline": "adjoint", "metric": "test_mse",
                    "rel_tol": 0.5})
    assert {v for v, _ in out.values()} == {NOT_MEASURED}


GRID = records_of([  # one seed of each method at two widths: four configurations, not two methods × two seeds
    {"experiment": "e", "method": m, "hparams": f'{{"width": {w}}}', "train_wall_s": t, "test_nll": nll}
    for m, w, t, nll in [("gq", 5, 1.0, 2.0), ("gq", 20, 9.0, 1.0), ("direct", 5, 2.0, 2.0), ("direct", 20, 3.0, 1.1)]])


def test_no_check_pools_configurations_as_if_they_were_seeds():
    """At width 20 gq is 3× slower than direct; pooling widths 5 and 20 as two seeds said gq is faster."""
    pair = {"method": "gq", "baseline": "direct"}
    claims = [{"check": "ratio"} | pair, {"check": "time_reduction", "min": 0.1} | pair,
              {"check": "metric_parity", "metric": "test_nll", "abs_tol": 0.5} | pair]
    for claim in claims:
        verdict, measured = verdicts(claim, GRID)["e"]
        assert verdict == NOT_MEASURED and "gq ran several configurations here (width 5, 20)" in measured, measured
    assert verdicts({"check": "wins", "fraction": 0.5} | pair, GRID)["all"][0] == NOT_MEASURED
    verdict, measured = verdicts({"check": "ratio", "hparams": {"width": "max"}} | pair, GRID)["e"]
    assert verdict == FAILS and "at width 20: 0.333×" in measured, measured
    verdict, measured = verdicts({"check": "metric_parity", "metric": "test_nll", "abs_tol": 0.05,
                                  "hparams": {"width": 20}} | pair, GRID)["e"]
    assert verdict == HOLDS and "test_nll at width 20: gq 1 vs direct 1.1" in measured, measured
    two_rates = pd.concat([GRID.assign(hparams=GRID["hparams"].str.replace("}", f', "lr": {lr}}}'))
                           for lr in (0.1, 0.01)], ignore_index=True)
    verdict, measured = verdicts({"check": "ratio_trend", "param": "width"} | pair, two_rates)["e"]
    assert verdict == NOT_MEASURED and "gq ran several configurations here (lr 0.01, 0.1)" in measured, measured
    assert verdicts({"check": "ratio_trend", "param": "width", "hparams": {"lr": 0.1}} | pair,
                    two_rates)["e"][0] == FAILS  # 2× at width 5 → 0.33× at width 20


def test_ratio_trend_monotone_needs_a_rise_at_every_step():
    """gq/direct 1× at width 5, 4× at 20, 2× at 80: the endpoints rise (the default reading) but the ratio fell
    after width 20, so with ``monotone`` it does not grow with the width; every step is shown."""
    rows = records_of([{"experiment": "e", "method": m, "hparams": f'{{"width": {w}}}', "train_wall_s": t}
                       for w, slow in ((5, 1.0), (20, 4.0), (80, 2.0)) for m, t in (("gq", 1.0), ("direct", slow))])
    claim = {"check": "ratio_trend", "method": "gq", "baseline": "direct", "param": "width"}
    assert verdicts(claim, rows)["e"] == (HOLDS, "direct/gq: 1× at width 5 → 2× at width 80 (needs the second ≥ "
                                                 "the first)")
    verdict, measured = verdicts(claim | {"monotone": True}, rows)["e"]
    assert verdict == FAILS and "1× at width 5 → 4× at width 20 → 2× at width 80 (needs no fall" in measured


def test_table_threshold_selects_rows_and_experiments():
    table = pd.DataFrame({"case_id": ["c0", "c0", "c2", "c2"], "step_size": [0.1, 0.25, 0.1, 0.25],
                          "inverse_error": [1e-5, 5e-3, 2e-3, 9e-3]})
    claim = {"check": "table_threshold", "table": "redisc", "column": "inverse_error", "agg": "max", "max": 1e-3,
             "where": {"method": "rk4", "step_size": 0.1}}
    out = verdicts(claim, tables={"redisc": table})
    assert out["fast"][0] == HOLDS and out["slow"][0] == FAILS
    out = verdicts(claim | {"experiments": ["fast"]}, tables={"redisc": table})
    assert set(out) == {"fast"}
    assert verdicts(claim, tables={})["all"][0] == NOT_MEASURED


def test_claim_without_check_is_not_measured():
    out = verdicts({"why_not_measured": "needs BSDS300"})
    assert out == {"all": (NOT_MEASURED, "needs BSDS300")}


def test_report_lists_methods_failures_and_claims(tmp_path):
    spec = load_paper("do_vs_od")
    path = write_report(tmp_path, RECORDS.assign(reason=["", "", "", "", "boom"]), [], spec=spec, preset="smoke")
    text = path.read_text()
    assert "| rk4 | 1/1 |" in text and "| adjoint | 1/2 |" in text
    assert "boom" in text and "Smoke preset" in text and "## Claims" in text


def test_table_threshold_on_a_nan_value_is_not_measured():
    import pandas as pd

    from nodebench.claims import NOT_MEASURED, table_threshold
    table = pd.DataFrame({"K": [6], "speedup": [float("nan")]})
    out = table_threshold(pd.DataFrame(), {"cost": table}, {"table": "cost", "column": "speedup", "min": 10})
    assert out[0][2] == NOT_MEASURED and "NaN" in out[0][1]


def test_table_threshold_with_some_rows_not_measured_is_not_measured():
    """The aggregate skipped NaN rows, so "the smallest E1 slope ≥ 1.9" held on the one grid that was measured
    while the other's slope could not be fitted (the Taylor analysis gives NaN below 3 usable points)."""
    import pandas as pd

    from nodebench.claims import NOT_MEASURED, table_threshold
    table = pd.DataFrame({"grid": ["data", "0.05"], "E1_slope": [2.0, float("nan")]})
    out = table_threshold(pd.DataFrame(), {"slopes": table},
                          {"table": "slopes", "column": "E1_slope", "agg": "min", "min": 1.9})
    assert out == [("all", "E1_slope not measured (NaN) in 1 of 2 row(s)", NOT_MEASURED)]


def test_a_check_declares_typed_and_required_parameters():
    """A plug-in's check declares its parameters with ``Param``: missing, mistyped and out-of-range values are
    one-line errors from ``Check.validate`` (what the loader calls); a plain name still accepts any value."""
    import pytest

    from nodebench.claims import Check, fields_of
    from nodebench.config import Param
    from nodebench.errors import UserError

    fields = fields_of((Param("method", "str", required=True), Param("share", "float", low=0.0, high=1.0), "free"))
    check = Check("declared", lambda records, tables, claim: [], tuple(f.name for f in fields), fields)
    assert check.params == ("method", "share", "free")
    check.validate({"method": "rk4", "share": 0.5, "free": [object()]}, "f.toml: claim 'X'")
    for claim, message in [({}, r"^f.toml: claim 'X': needs 'method' \(a string\)$"),
                           ({"method": 5}, r"claim 'X': method must be a string, got 5"),
                           ({"method": "rk4", "share": 2}, r"share must be a finite number from 0 to 1, got 2"),
                           ({"method": "rk4", "share": True}, r"share must be a finite number from 0 to 1, got True")]:
        with pytest.raises(UserError, match=message):
            check.validate(claim, "f.toml: claim 'X'")


def test_every_builtin_check_declares_what_it_reads():
    """The built-in checks that read a parameter unconditionally declare it required, so a claim without it is
    refused at load rather than a KeyError after the run."""
    from nodebench.claims import CHECKS

    required = {name: {f.name for f in check.fields if f.required} for name, check in CHECKS.items()}
    assert required["time_reduction"] == {"method", "baseline", "min"}
    assert required["metric_parity"] == {"method", "baseline", "metric"}
    assert required["ratio_trend"] == {"method", "baseline", "param"}
    assert CHECKS.lookup("table_threshold").one_of == (("min", "max"),)


def test_environment_line_covers_every_record_not_the_first():
    """A run resumed at several commits named only its first row's commit and start time."""
    from nodebench.reporting import environment_line
    rows = records_of([{"experiment": "e", "method": "rk4", "git_sha": sha, "started_at": at, "num_threads": 1,
                        "cpu_model": "Xeon", "gpu_model": "", "cpu_count": 1}
                       for sha, at in [("bbb", "2026-12-03T12:22:06"), ("aaa", "2026-12-03T12:15:48"),
                                       ("bbb", "2026-12-03T12:30:00")]])
    line = environment_line(rows)
    assert "git bbb, aaa" in line and "started 2026-12-03T12:15:48 to 2026-12-03T12:30:00" in line, line
    assert "GPU none" in line and "1 torch thread(s)" in line and "torch not recorded" in line, line
    assert "(1 core(s), " in line, line  # was "(1 cores, " on a machine (or affinity) of one core
    many = rows.loc[[0] * 6].assign(git_sha=[f"c{i}" for i in range(6)])
    assert "git 6 values: c0 … c5" in environment_line(many)


def ttt_table(fast, direct):
    """A ``time_to_target`` table (as :func:`nodebench.target.time_to_target_table` writes it) of one
    experiment: per method, one time per seed, NaN where the seed never reached the target or failed."""
    rows = [{"experiment": "e", "config": "", "versus": "", "method": method, "seed": seed, "target": 0.5,
             "time_to_target_s": t, "reached": t == t} for method, times in (("fast", fast), ("direct", direct))
            for seed, t in enumerate(times)]
    return {"time_to_target": pd.DataFrame(rows)}


def test_time_to_target_claim_counts_seeds_that_never_reach_the_target():
    nan = float("nan")
    claim = {"check": "time_to_target", "method": "fast", "baseline": "direct", "min": 2.0}
    verdict, text = verdicts(claim, tables=ttt_table([1.0, nan, nan], [5.0, 5.0, 5.0]))["e"]
    assert verdict == FAILS, text  # held as 5 s / 1 s = 5x, from the one seed of three that reached the target
    assert "5 s / not reached" in text and "fast reached in 1 of 3 seeds" in text
    verdict, text = verdicts(claim, tables=ttt_table([1.0, 1.0, nan], [5.0, nan, 5.0]))["e"]
    assert verdict == HOLDS and "5 s / 1 s = 5×" in text and "direct reached in 2 of 3 seeds" in text
    verdict, text = verdicts(claim, tables=ttt_table([1.0, nan, nan], [nan, nan, 5.0]))["e"]
    assert verdict == NOT_MEASURED and "not reached / not reached" in text


def test_the_summary_shows_the_allocated_peak_where_a_run_recorded_it():
    from nodebench.reporting import summary_table
    assert "allocated" not in summary_table(RECORDS)  # a run from before the column: no empty column
    table = summary_table(RECORDS.assign(alloc_peak_bytes=3 * 2**20))
    assert "allocated fwd+bwd [MiB]" in table and "| 3 |" in table, table


def test_a_memory_claim_reads_a_resident_set_of_zero_as_not_measured():
    """The report shows it as "–"; the claim check read it as 0 bytes, so adjoint/gq read 0× and failed."""
    claim = {"id": "M", "text": "memory", "check": "ratio", "method": "gq", "baseline": "adjoint",
             "column": "peak_mem_bytes", "min": 0.1}
    rows = [{"experiment": "e", "method": "gq", "peak_mem_bytes": 5e6, "mem_source": "vmhwm"},
            {"experiment": "e", "method": "adjoint", "peak_mem_bytes": 0.0, "mem_source": "vmhwm"}]
    (verdict,) = check_claims([claim], records_of(rows))
    assert verdict.verdict == NOT_MEASURED and "peak_mem_bytes not measured for adjoint" in verdict.measured
    rows[1]["peak_mem_bytes"] = 3e7
    (verdict,) = check_claims([claim], records_of(rows))
    assert verdict.verdict == HOLDS and "6×" in verdict.measured


def test_a_memory_ratio_shows_its_medians_in_mib_with_the_unit():
    """The snode and gq_adjoint reports read "(rk4 1.12e+07, snode 2.35e+07; needs ≥ 1)": bytes, with no unit,
    beside "direct 0.0562 s" for times."""
    claim = {"id": "M", "text": "memory", "check": "ratio", "method": "gq", "baseline": "adjoint",
             "column": "peak_mem_bytes", "min": 0.1}
    rows = [{"experiment": "e", "method": "gq", "peak_mem_bytes": 5 * 2**20},
            {"experiment": "e", "method": "adjoint", "peak_mem_bytes": 30 * 2**20}]
    (verdict,) = check_claims([claim], records_of(rows))
    assert "(adjoint 30 MiB, gq 5 MiB; needs ≥ 0.1)" in verdict.measured, verdict.measured
    claim |= {"column": "time_per_iter_s"}
    rows = [row | {"time_per_iter_s": t} for row, t in zip(rows, (0.5, 2.0))]
    (verdict,) = check_claims([claim], records_of(rows))
    assert "(adjoint 2 s, gq 0.5 s; needs ≥ 0.1)" in verdict.measured, verdict.measured


def test_a_ratio_over_a_zero_median_names_it():
    claim = {"id": "Z", "text": "nfe", "check": "ratio", "method": "direct", "baseline": "adjoint",
             "column": "nfe_backward_per_iter"}
    rows = [{"experiment": "e", "method": "direct", "nfe_backward_per_iter": 0.0},
            {"experiment": "e", "method": "adjoint", "nfe_backward_per_iter": 30.0}]
    (verdict,) = check_claims([claim], records_of(rows))
    assert verdict.verdict == NOT_MEASURED
    assert "direct's median nfe_backward_per_iter is 0: no ratio" in verdict.measured


def test_an_experiment_whose_cases_all_failed_keeps_its_claim_row():
    """The checks saw the successful records only, so an experiment where every case failed had no row at all
    in the claims table (rather than "no successful run")."""
    rows = records_of([{"experiment": "e", "method": m, "train_wall_s": t, "test_mse": 1.0, "status": s}
                       for m, t, s in (("rk4", 1.0, "ok"), ("adjoint", 2.0, "ok"))]
                      + [{"experiment": "x", "method": m, "train_wall_s": 1.0, "status": s}
                         for m, s in (("rk4", "diverged"), ("adjoint", "oom"))])
    pair = {"method": "rk4", "baseline": "adjoint"}
    for claim in ({"check": "time_reduction", "min": 0.3}, {"check": "ratio"},
                  {"check": "metric_parity", "metric": "test_mse", "abs_tol": 0.1}):
        out = verdicts(claim | pair, rows)
        assert set(out) == {"e", "x"}, (claim, out)
        assert out["e"][0] == HOLDS and out["x"][0] == NOT_MEASURED, (claim, out)
    # a table check names each experiment the claim lists, as the record checks do (not just those in its table)
    table = {"check": "table_threshold", "table": "records", "column": "train_wall_s", "max": 5.0,
             "experiments": ["e", "z"]}
    assert {scope: verdict for scope, (verdict, _) in verdicts(table, rows).items()} == {"e": HOLDS, "z": NOT_MEASURED}


def test_a_figure_at_its_threshold_holds_whatever_the_rounding():
    """3.3 s / 1.1 s is 3× and 0.9164 − 0.8964 is 2 accuracy points, but in floating point 2.9999999999999996
    and 0.020000000000000018: "3× (needs ≥ 3)" and "within 2 points" read "does not hold"."""
    ratio = records_of([{"experiment": "e", "method": "rk4", "train_wall_s": 1.1},
                        {"experiment": "e", "method": "adjoint", "train_wall_s": 3.3}])
    assert verdicts({"check": "ratio", "method": "rk4", "baseline": "adjoint", "min": 3.0}, ratio)["e"][0] == HOLDS
    assert verdicts({"check": "ratio", "method": "rk4", "baseline": "adjoint", "min": 3.01}, ratio)["e"][0] == FAILS
    accuracy = records_of([{"experiment": "e", "method": "gq", "test_accuracy": 0.8964},
                           {"experiment": "e", "method": "direct", "test_accuracy": 0.9164}])
    parity = {"check": "metric_parity", "method": "gq", "baseline": "direct", "metric": "test_accuracy"}
    assert verdicts(parity | {"abs_tol": 0.02}, accuracy)["e"][0] == HOLDS
    assert verdicts(parity | {"abs_tol": 0.0199}, accuracy)["e"][0] == FAILS
    value = records_of([{"experiment": "e", "method": "rk4", "x": 0.1 + 0.2}])
    assert verdicts({"check": "table_threshold", "table": "records", "column": "x", "max": 0.3}, value)["e"][0] == HOLDS
    tradeoff = records_of([{"experiment": "e", "method": "adjoint", "hparams": h, "test_nfe": n, "test_accuracy": a}
                           for h, n, a in (('{"reg": "none"}', 30.0, 0.9164),
                                           ('{"reg": "speed", "reg_lambda": 1.0}', 15.0, 0.8964))])
    claim = {"check": "tradeoff", "where": {"reg": "speed"}, "reference": {"reg": "none"}, "metric": "test_accuracy",
             "abs_tol": 0.02, "min": 2.0}
    verdict, text = verdicts(claim, tradeoff)["e"]
    assert verdict == HOLDS and "2× at " in text, text


def test_a_reduction_or_a_ratio_over_a_zero_median_is_not_measured():
    rows = records_of([{"experiment": "e", "method": "rk4", "train_wall_s": 1.0},
                       {"experiment": "e", "method": "adjoint", "train_wall_s": 0.0}])
    verdict, text = verdicts({"check": "time_reduction", "method": "rk4", "baseline": "adjoint", "min": 0.3},
                             rows)["e"]  # was a ZeroDivisionError that stopped the whole report
    assert verdict == NOT_MEASURED and "adjoint's median train_wall_s is 0" in text
    rows = records_of([{"experiment": "e", "method": "adjoint", "hparams": h, "test_nfe": n}
                       for h, n in (('{"reg": "none"}', 20.0), ('{"reg": "speed", "reg_lambda": 1.0}', 0.0))])
    verdict, text = verdicts({"check": "hparam_ratio", "at": {"reg": "speed", "reg_lambda": "max"},
                              "reference": {"reg": "none"}}, rows)["e"]
    assert verdict == NOT_MEASURED and "is 0: no ratio" in text, text  # was "test_nfe missing"


def test_the_seeds_column_counts_the_experiment_the_scope_names():
    """A scope with a setting ("a, reg_order 2", "a n_train=4") counted the seeds of every experiment, and an
    experiment that did not run showed the run's seeds instead of none."""
    from nodebench.claims import Verdict
    from nodebench.reporting import NOT_IN_RUN, claim_seeds

    rows = records_of([{"experiment": "a", "method": m, "seed": s} for m in ("rk4", "adjoint") for s in range(3)]
                      + [{"experiment": "b", "method": "rk4", "seed": 0}])
    def seeds(scope, verdict=HOLDS):
        return claim_seeds(Verdict("X", "claim", "", scope, "", verdict), rows)
    assert seeds("a") == 3 and seeds("b") == 1 and seeds("all") == 1
    assert seeds("a, reg_order 2") == 3 and seeds("a n_train=4 noise=0.01") == 3
    assert seeds("zzz", NOT_IN_RUN) == 0


def test_a_cell_with_a_pipe_or_a_line_break_keeps_its_row_and_the_preset_is_said_once(tmp_path):
    """A reason with a line break split its table row over several lines (a standard renderer then shows the
    rest as new rows); the HTML page split a cell at an escaped ``\\|``; and a paper run's report said
    "Preset: **quick**." twice, in the paper line and again in the settings."""
    from html.parser import HTMLParser

    records = RECORDS.assign(reason=["", "", "", "", "RuntimeError: a | b\n  File x.py\nValueError"])
    path = write_report(tmp_path, records, [], spec=load_paper("do_vs_od"), preset="quick",
                        info={"preset": "quick", "command_line": "nodebench reproduce do_vs_od"})
    text = path.read_text()
    assert "| t | adjoint | 1 | error | RuntimeError: a \\| b ⏎ File x.py ⏎ ValueError |" in text
    assert text.count("Preset: **quick**") == 1

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cells = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.rows[-1].append("")

        def handle_data(self, data):
            if self.rows and self.rows[-1]:
                self.rows[-1][-1] += data

    page = Rows()
    page.feed(path.with_suffix(".html").read_text())
    failed = [[c.strip() for c in r] for r in page.rows if r[-1].startswith("RuntimeError")]
    assert failed == [["t", "adjoint", "1", "error", "RuntimeError: a | b ⏎ File x.py ⏎ ValueError"]]


def test_an_analysis_section_says_why_it_is_empty_and_one_for_experiments_outside_the_run_is_left_out(tmp_path):
    """The real-data taynode quick report repeated the Pareto and order sections of the synthetic experiments
    (declared for the same preset) to say "No case of the selected experiments was recorded"; and a scaling
    section where no experiment varied its parameter ended after its description, with no table and no word."""
    from types import SimpleNamespace

    from nodebench.analyses import run_analyses

    records = RECORDS.assign(hparams='{"width": 8}', peak_mem_bytes=1.0)
    spec = SimpleNamespace(analyses=[{"kind": "scaling", "presets": ["quick"], "param": "width"},
                                     {"kind": "scaling", "presets": ["quick"], "param": "width",
                                      "experiments": ["not_run"]}])
    sections, figures, _ = run_analyses(spec, tmp_path, records, preset="quick")
    assert len(sections) == 1 and figures == []
    assert sections[0].rstrip().endswith("No experiment of this run has more than one value of `width`.")


INFINITE_METRIC = records_of([{"experiment": "e", "method": m, "seed": s, "train_wall_s": 1.0, "test_mse": v,
                               "status": "ok" if m != "failed" else "diverged", "reason": ""}
                              for m, values in (("finite", (1.0, 2.0)), ("overflowed", (float("inf"),) * 2),
                                                ("negative", (-float("inf"),) * 2), ("one_seed", (0.5, float("inf"))),
                                                ("failed", (1.0,)))
                              for s, v in enumerate(values)])


def test_an_infinite_metric_reads_as_infinity_with_a_note_not_as_python_inf():
    """An overflowed metric read "inf" ("-inf"), sorted as text on the page, after every number either way."""
    from nodebench.markdown import fmt3, fmt_times
    from nodebench.reporting import summary_table

    table = summary_table(INFINITE_METRIC)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[-1].strip(" |") for line in table.splitlines()}
    assert rows["finite"] == "1.5 [1, 2]" and rows["overflowed"] == "∞" and rows["negative"] == "−∞"
    assert rows["one_seed"] == "∞ [0.5, ∞]" and rows["failed"] == "–" and not re.search(r"\binf\b", table)
    assert "∞: an infinite value (a metric that overflowed)" in table
    assert "∞: an infinite" not in summary_table(RECORDS)
    assert (fmt3(float("inf")), fmt3(-float("inf")), fmt_times(float("inf")), fmt3(None)) == ("∞", "−∞", "∞×", "–")


def test_the_claims_and_the_gate_list_seeds_with_one_helper():
    """A cross-fitted claim's "picked on seeds 0, 2" and the gate's notes list seeds alike, in ascending order, from
    one helper (nodebench.markdown.seeds_text), not two near-copies."""
    from nodebench import claims
    from nodebench.benchmarking import compare
    from nodebench.markdown import seeds_text

    assert claims.seeds_text is compare.seeds_text is seeds_text
    assert (seeds_text([3]), seeds_text({2, 0})) == ("seed 3", "seeds 0, 2")


def test_a_table_left_by_an_analysis_that_no_longer_runs_judges_no_claim(tmp_path):
    """A time_to_target.parquet from an earlier build of the run, whose experiments its records no longer hold
    (the analysis is skipped): the claims read it and held "17.5×" on experiments that were not in the run.
    Tables of analyses that ran, and per-case tables (not written by an analysis), are still read."""
    from types import SimpleNamespace

    from nodebench.analyses import run_analyses

    ttt_table([1.0], [5.0])["time_to_target"].to_parquet(tmp_path / "time_to_target.parquet")
    pd.DataFrame({"case_id": ["c0"], "test_nll": [1.0]}).to_parquet(tmp_path / "rediscretisation.parquet")
    claim = {"id": "X", "text": "faster", "check": "time_to_target", "method": "fast", "baseline": "direct",
             "min": 2.0}
    skipped = SimpleNamespace(analyses=[{"kind": "time_to_target", "presets": ["quick"], "experiments": ["e"]}])
    sections, _, tables = run_analyses(skipped, tmp_path, RECORDS, preset="quick")
    assert sections == [] and sorted(tables) == ["rediscretisation"]
    (verdict,) = check_claims([claim], RECORDS, tables)
    assert verdict.verdict == NOT_MEASURED, verdict.measured
    ran = SimpleNamespace(analyses=[{"kind": "time_to_target", "presets": ["quick"], "experiments": ["fast"]}])
    assert sorted(run_analyses(ran, tmp_path, RECORDS, preset="quick")[2]) == ["rediscretisation", "time_to_target"]


def test_every_table_of_the_committed_runs_is_declared_by_the_analysis_that_writes_it():
    """Only declared tables are left out when their analysis does not run: one written but not declared would
    still be read stale. Per-case tables are merged from cases/ (nodebench.records.merge), not analyses'."""
    from pathlib import Path

    from nodebench.analyses import ANALYSES

    for paper in ("snode", "do_vs_od", "gq_adjoint", "taynode"):
        load_paper(paper)
    declared = {name for analysis in ANALYSES.values() for name in analysis.tables}
    baselines = Path(__file__).resolve().parents[1] / "results" / "baselines"
    runs = [path.parent for path in baselines.glob("*/run.json") if '"paper"' in path.read_text()]  # reproduce
    written = {p.stem for run in runs for p in run.glob("*.parquet")} - {"records", "curves", "rediscretisation"}
    assert written and written <= declared, written - declared


def test_the_summary_counts_a_seed_run_twice_as_one_seed():
    """A folder with two runs of one case (seed 0 twice, 1 s and 3 s) read ok/seeds "2/2" and a median [1, 3]."""
    from nodebench.reporting import summary_table
    twice = records_of([{"experiment": "e", "method": "rk4", "train_wall_s": t, "test_nll": 1.0} for t in (1.0, 3.0)])
    row = next(line for line in summary_table(twice).splitlines() if line.startswith("| rk4"))
    assert "| 2/2 runs of 1 seed | 2 |" in row and "[" not in row, row


def test_a_claim_on_an_analysis_table_no_seed_varies_shows_no_seed_count(tmp_path):
    """S6 (the Legendre fit's convergence rate) and T4 (Taylor-mode timings) read tables computed without
    seeds, yet showed the runs' seed count and "holds (1 seed)"; a table of seeded cases keeps its count."""
    import dataclasses

    import pandas as pd

    claim = {"id": "C", "text": "fast", "source": "s", "check": "table_threshold", "table": "fit", "column": "rate",
             "min": 0.1}
    spec = dataclasses.replace(load_paper("do_vs_od"), claims=[claim])
    unseeded = {"fit": pd.DataFrame({"degree": [2, 4], "rate": [0.3, 0.3]})}
    records = RECORDS.assign(reason="")
    text = write_report(tmp_path, records, [], spec=spec, tables=unseeded, preset="quick").read_text()
    assert "| C | fast | s | all | rate = 0.3 (needs ≥ 0.1) | – | **holds** |" in text
    seeded = {"fit": unseeded["fit"].assign(seed=[0, 1])}
    text = write_report(tmp_path, records, [], spec=spec, tables=seeded, preset="quick").read_text()
    assert "| C | fast | s | all | rate = 0.3 (needs ≥ 0.1) | 1 | **holds** (1 seed) |" in text


def test_a_claim_row_with_no_verdict_counts_no_seed(tmp_path):
    """adjoint's only seed diverged: the row read "rk4 or adjoint has no successful run | 1 | not measured", the 1
    being rk4's seed, the only method left among the successful records; a claim with no check read 1 too."""
    import dataclasses

    claims = [{"id": "D", "text": "faster", "source": "s", "check": "time_reduction", "method": "rk4",
               "baseline": "adjoint", "min": 0.3}, {"id": "N", "text": "tables", "source": "s"}]
    spec = dataclasses.replace(load_paper("do_vs_od"), claims=claims)
    rows = records_of([{"experiment": "e", "method": "rk4", "train_wall_s": 1.0},
                       {"experiment": "e", "method": "adjoint", "train_wall_s": 2.0, "status": "diverged"}])
    text = write_report(tmp_path, rows.assign(reason=""), [], spec=spec, preset="quick").read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| D |", "| N |"))]
    assert len(rows) == 2 and all(row.endswith("| 0 | not measured at this preset |") for row in rows), rows
