"""Reports and records describe themselves: settings section, verdict labels, clipped reasons, extras."""

import json
import sys

import pandas as pd
import pytest

from nodebench.claims import NOT_MEASURED, Verdict
from nodebench.errors import UserError, clip
from nodebench.reporting import NOT_IN_RUN, NOT_SELECTED, _outside_the_run, _verdict_cell
from nodebench.run_settings import case_settings, invocation, settings_section
from nodebench.runner.case import Case


def test_case_settings_list_limits_seeds_and_varying_hparams():
    cases = [Case("cubic_spiral", m, seed=s, iters=20, hparams={"lr": 0.01, "width": w}, experiment="e")
             for m in ("rk4", "adjoint") for s in (0, 1) for w in (8, 16)]
    [row] = case_settings(cases)
    assert row["methods"] == ["rk4", "adjoint"] and row["seeds"] == [0, 1] and row["limit"] == "20 iterations"
    assert row["hparams"] == {"lr": "0.01", "width": "{8, 16}"}
    lines = "\n".join(settings_section(invocation() | {"preset": "smoke", "settings": [row], "warnings": ["w!"]}))
    assert "Command: `" in lines and "| e | cubic_spiral | rk4, adjoint | 0, 1 | 20 iterations |" in lines
    assert "smoke test" in lines and "**Warning:** w!" in lines


def test_smoke_verdicts_are_indicative_and_unrun_experiments_say_so():
    assert _verdict_cell("holds", "smoke") == "indicative (smoke preset): holds"
    assert _verdict_cell("holds", "paper") == "**holds**"
    records = pd.DataFrame({"experiment": ["ran"], "status": ["error"]})
    ran, unrun = _outside_the_run([Verdict("c", "", "", "ran", "no successful run", NOT_MEASURED),
                                   Verdict("c", "", "", "other, rk4", "no successful run", NOT_MEASURED)], records)
    assert ran.verdict == NOT_MEASURED and ran.measured == "no successful run"
    assert unrun.verdict == NOT_IN_RUN


def test_an_experiment_of_the_preset_left_out_by_the_selection_is_not_called_outside_the_preset(tmp_path):
    """``reproduce --experiment A``: a claim on experiment B of the same preset read "not in this preset"."""
    from nodebench.experiments import load_paper
    from nodebench.reporting import write_report

    spec = load_paper("do_vs_od")
    at_smoke = {exp.name for exp in spec.experiments if "smoke" in exp.presets}
    records = pd.DataFrame({"experiment": ["spiral"], "task": ["cubic_spiral"], "method": ["rk4"], "seed": [0],
                            "status": ["error"], "reason": ["x"], "hparams": ["{}"]})
    rows = {}
    for line in write_report(tmp_path, records, [], spec=spec, preset="smoke").read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 6 and "was not run" in cells[5]:
            rows.setdefault(cells[4], set()).add(cells[-2])
    assert at_smoke - {"spiral"} and at_smoke - {"spiral"} <= set(rows)
    assert all(verdicts == ({NOT_SELECTED} if scope in at_smoke else {NOT_IN_RUN}) for scope, verdicts in rows.items())


def test_failure_reasons_are_cut_at_a_word_boundary():
    text = "RuntimeError: " + "word " * 100
    cut = clip(text)
    assert len(cut) <= 300 and cut.endswith("word…")
    assert clip("short  reason\nhere") == "short reason here"


def test_bsds300_without_h5py_names_the_extra(monkeypatch, tmp_path):
    from nodebench.datasets.tabular import load_bsds300

    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(UserError, match=r"nodebench\[bsds300\]"):
        load_bsds300(tmp_path)


def test_a_resume_that_adds_methods_keeps_the_earlier_command_in_the_settings(tmp_path, monkeypatch):
    """A resume may add methods or seeds to a folder (README, "Stopping and resuming"); the report's tables hold
    every case there, so its Settings section names every command that put cases in, not only the latest."""
    from nodebench.runner.sweep import read_run_info, write_run_info

    def invoke(method: str) -> None:
        argv = ["nodebench", "run", "--task", "cubic_spiral", "--method", method, "--out", str(tmp_path)]
        monkeypatch.setattr(sys, "argv", argv)
        write_run_info(tmp_path, command="run", settings=case_settings([Case("cubic_spiral", method, iters=20)]))

    invoke("rk4")
    invoke("rk4")  # the same command again: nothing earlier to name
    assert "earlier" not in read_run_info(tmp_path)
    invoke("adjoint")
    lines = "\n".join(settings_section(read_run_info(tmp_path)))
    assert "Command: `nodebench run --task cubic_spiral --method adjoint" in lines
    assert "- `nodebench run --task cubic_spiral --method rk4" in lines
    assert "| cubic_spiral | cubic_spiral | rk4 | 0 | 20 iterations |" in lines
    assert "| cubic_spiral | cubic_spiral | adjoint | 0 | 20 iterations |" in lines
    invoke("rk4")  # back to the first command: each command is named once
    lines = "\n".join(settings_section(read_run_info(tmp_path)))
    assert lines.count("--method rk4") == 1 and lines.count("--method adjoint") == 1
    info = read_run_info(tmp_path) | {"earlier": 7}  # a hand-edited run.json: no earlier commands, no crash
    (tmp_path / "run.json").write_text(json.dumps(info))
    assert "Earlier commands" not in "\n".join(settings_section(read_run_info(tmp_path)))
    invoke("adjoint")
    assert [e["command_line"].split("--method ")[1].split()[0] for e in read_run_info(tmp_path)["earlier"]] == ["rk4"]
