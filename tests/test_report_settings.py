"""Reports and records describe themselves: settings section, verdict labels, clipped reasons, extras."""

import sys

import pandas as pd
import pytest

from nodebench.claims import NOT_MEASURED, Verdict
from nodebench.errors import UserError, clip
from nodebench.reporting import NOT_IN_RUN, _outside_the_run, _verdict_cell
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
