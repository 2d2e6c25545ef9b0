"""Paper packages as plug-ins: every paper × preset and every suite loads and validates; typos in a spec
are one-line errors before any case runs; a third-party paper registers through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodebench.benchmarking.suites import available_suites, load_suite
from nodebench.errors import UserError
from nodebench.experiments import PRESETS, load_paper, load_spec_file, parse_spec
from nodebench.papers import BUILTIN, get_paper, load_papers
from nodebench.runner.settings import check_cases

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "reproduce" / "example_paper"
GOOD = """paper = "good"
title = "T"
reference = "R"

[[experiment]]
name = "e"
task = "cubic_spiral"
methods = ["rk4"]
presets.smoke = { iters = 2, seeds = 2 }

[[claim]]
id = "C1"
text = "rk4 is fast"
check = "ratio"
method = "rk4"
baseline = "rk4"
"""


@pytest.mark.parametrize("paper", BUILTIN)
def test_every_paper_and_preset_validates(paper):
    spec = load_paper(paper)
    assert spec.paper == paper and get_paper(paper).readme.is_file()
    for preset in spec.presets():
        check_cases(spec.cases(preset, "cpu"))
    assert set(spec.presets()) <= set(PRESETS) and spec.presets()


@pytest.mark.parametrize("suite", available_suites())
def test_every_suite_validates(suite):
    check_cases(load_suite(suite).cases("cpu"))


def test_suites_and_specs_ship_inside_the_package():
    import nodebench

    package = Path(nodebench.__file__).parent
    assert {p.parent.name for p in package.glob("papers/*/experiments.toml")} >= set(BUILTIN)
    assert "nightly" in available_suites() and (package / "benchmarking" / "suites" / "nightly.toml").is_file()


def test_a_good_spec_builds_its_cases():
    spec = parse_spec(GOOD, "good.toml")
    cases = spec.cases("smoke", "cpu")
    assert [(c.seed, c.iters, c.experiment, c.preset) for c in cases] == [(0, 2, "e", "smoke"), (1, 2, "e", "smoke")]
    with pytest.raises(UserError, match="no experiment at preset 'paper'"):
        spec.cases("paper", "cpu")
    with pytest.raises(UserError, match="has no experiment 'x'"):
        spec.cases("smoke", "cpu", experiments=["x"])


def test_an_experiment_missing_at_a_preset_is_named_with_those_there():
    """taynode's ``physionet`` runs at the paper preset only; its quick-preset experiment is ``physionet_lambda``.
    An experiment of several presets is listed once."""
    spec = load_paper("taynode")
    with pytest.raises(UserError, match=r"no experiment physionet at preset 'quick'; at quick: .*physionet_lambda"):
        spec.cases("quick", "cpu", experiments=["physionet"])
    with pytest.raises(UserError, match="has no experiment 'x'") as refused:
        spec.cases("quick", "cpu", experiments=["x"])
    valid = str(refused.value).split("valid: ")[1].split(", ")
    assert len(valid) == len(set(valid)) and "physionet" in valid


@pytest.mark.parametrize("edit, message", [
    (("iters = 2", "iter = 2"), r"unknown key 'iter' \(did you mean 'iters'\?\)"),
    (('task = "cubic_spiral"', 'task = "cubic_spirl"'), r"unknown task 'cubic_spirl' \(did you mean 'cubic_spiral'\?\)"),
    (('methods = ["rk4"]', 'methods = ["rk5"]'), r"unknown method 'rk5' \(did you mean 'rk4'\?\)"),
    (('presets.smoke', 'presets.smok'), r"unknown preset 'smok'"),
    (("seeds = 2 }", "seeds = 2, hparams = { hiden = 3 } }"), r"unknown hyper-parameter 'hiden' \(did you mean 'hidden'\?\)"),
    (("seeds = 2 }", "seeds = 2, hparams = { hidden = -5 } }"), r"hidden must be an integer >= 1, got -5"),
    (("seeds = 2 }", "seeds = 2, hparams = { rtol = 0.0 } }"), r"rtol must be a positive finite number"),
    (('check = "ratio"', 'check = "vibes"'), r"unknown claim check 'vibes'"),
    (('baseline = "rk4"', 'baselin = "rk4"'), r"claim 'C1': unknown key 'baselin' \(did you mean 'baseline'\?\)"),
    (('method = "rk4"\nbaseline', 'method = "nope"\nbaseline'), r"method 'nope' is not a method"),
    (('paper = "good"', 'paper = [unclosed'), r"malformed experiment file"),
    (('title = "T"\n', ''), r"needs a string 'title'"),
])
def test_typos_are_one_line_errors_at_load(edit, message):
    with pytest.raises(UserError, match=message) as err:
        parse_spec(GOOD.replace(*edit), "good.toml")
    assert "\n" not in str(err.value)


def test_a_spec_file_under_development_loads_from_its_path(tmp_path):
    (tmp_path / "experiments.toml").write_text(GOOD)
    assert load_spec_file(tmp_path / "experiments.toml").paper == "good"
    with pytest.raises(UserError, match="no experiment file"):
        load_spec_file(tmp_path / "missing.toml")


def test_an_unknown_paper_names_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown paper 'snod' \(did you mean 'snode'\?\); valid: do_vs_od"):
        get_paper("snod")
    assert set(BUILTIN) <= set(load_papers())


@pytest.mark.slow
def test_an_installed_third_party_paper_registers_through_its_entry_point(tmp_path):
    """``pip install reproduce/example_paper`` (into a target folder) makes ``example_paper`` a paper of
    ``nodebench list`` and of the Python API, with its own claim check."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    code = ("import nodebench; spec = nodebench.list_papers()['example_paper']; "
            "from nodebench.claims import CHECKS; print(spec.title, 'fewer_evaluations' in CHECKS, "
            "len(nodebench.reproduce('example_paper', dry_run=True).cases))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[-2:] == ["True", "2"] and out.startswith("Example:")
    listed = subprocess.run([sys.executable, "-m", "nodebench.cli", "list"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout
    assert "example_paper" in listed
