"""Paper packages as plug-ins: every paper × preset and every suite loads and validates; typos in a spec
are one-line errors before any case runs; a third-party paper registers through its entry point."""

from __future__ import annotations

import os
import shutil
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


def _tree(folder: Path) -> dict[str, int]:
    """Every path under ``folder`` with its modification time (a file or folder written changes it)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in [folder, *folder.rglob("*")]}


@pytest.mark.slow
def test_an_installed_third_party_paper_registers_through_its_entry_point(tmp_path):
    """``pip install reproduce/example_paper`` (into a target folder) makes ``example_paper`` a paper of
    ``nodebench list`` and of the Python API, with its own claim check."""
    target, source = tmp_path / "site", tmp_path / "example_paper"
    # built from a copy: setuptools writes build/ and *.egg-info into the folder it builds, and a stale
    # build/lib there would be installed as well
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    before = _tree(EXAMPLE)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    assert _tree(EXAMPLE) == before, "the install wrote into the checkout"
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


def refused(text: str, message: str) -> str:
    """The one-line error loading ``text`` as ``good.toml``: it names the file and matches ``message``."""
    with pytest.raises(UserError, match=message) as err:
        parse_spec(text, "good.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("good.toml: "), str(err.value)
    return str(err.value)


@pytest.mark.parametrize("value", ["2.5", "true", "'3'", "0", "-1", "inf", "nan", "[1]"])
def test_preset_seeds_must_be_a_positive_integer_never_coerced(value):
    refused(GOOD.replace("seeds = 2 }", f"seeds = {value} }}"),
            r"experiment 'e', preset smoke: seeds must be an integer >= 1, got ")


def test_a_huge_preset_grid_is_refused_before_any_case_is_built():
    """10^9 seeds (or a grid as large) used to hang the loader building cases; the count is checked first."""
    refused(GOOD.replace("seeds = 2 }", "seeds = 1000000000 }"), r"preset smoke: 1000000000 seed\(s\) × 1 method\(s\) "
            r"= 1000000000 cases, more than 1000000")
    refused(GOOD.replace("seeds = 2 }", "seeds = 10000, grid = { hidden = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "
                         "lr = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1] }, warmup = 0 }"),
            r"10000 seed\(s\) × 1 method\(s\) × 10 × 11 grid setting\(s\) = 1100000 cases, more than 1000000")


@pytest.mark.parametrize("edit, message", [
    (("seeds = 2 }", "seeds = 2, warmup = -1 }"), r"preset smoke: warmup must be an integer from 0 to 1e\+09, got -1"),
    (("seeds = 2 }", "seeds = 2, warmup = 2.5 }"), r"preset smoke: warmup must be an integer from 0 to 1e\+09, got 2.5"),
    (('methods = ["rk4"]', "methods = []"), r"experiment 'e': methods must be a non-empty list of distinct strings, got \[\]"),
    (('methods = ["rk4"]', 'methods = ["rk4", "rk4"]'), r"experiment 'e': methods must be a non-empty list of distinct"),
    (('methods = ["rk4"]', 'methods = "rk4"'), r"experiment 'e': methods must be a non-empty list of distinct"),
    (("seeds = 2 }", "seeds = 2, methods = [] }"), r"preset smoke: methods must be a non-empty list of distinct"),
    (("seeds = 2 }", 'seeds = 2, methods = ["rk5"] }'), r"preset smoke: methods: unknown method 'rk5'"),
    (('task = "cubic_spiral"', 'task = "cubic_spiral"\ndescription = 5'), r"experiment 'e': description must be a string"),
    (('reference = "R"', 'reference = "R"\nnotes = 5'), r"good.toml: notes must be a string, got 5"),
])
def test_preset_and_experiment_values_are_typed(edit, message):
    refused(GOOD.replace(*edit), message)


@pytest.mark.parametrize("edit, message", [
    (("presets.smoke = { iters = 2, seeds = 2 }", "presets.smoke = 5"),
     r"experiment 'e': presets.smoke must be a table of preset settings \(iters, .*\), got 5"),
    (("presets.smoke = { iters = 2, seeds = 2 }", "presets = 5"), r"experiment 'e': presets must be a table"),
    (('methods = ["rk4"]', 'methods = ["rk4"]\nmethod_hparams = 5'), r"experiment 'e': method_hparams must be a table"),
    (("[[experiment]]", "[experiment]"), r"\[experiment\] is a single table; write each experiment as \[\[experiment\]\]"),
    (('methods = ["rk4"]', 'methods = ["rk4"]\nhparams = [1]'), r"experiment 'e': hparams must be a table \(name = value\), got \[1\]"),
    (("seeds = 2 }", "seeds = 2, grid = { hidden = 5 } }"), r"preset smoke: grid.hidden must be a non-empty list of values, got 5"),
    (("seeds = 2 }", "seeds = 2, hparams = 5 }"), r"preset smoke: hparams must be a table"),
])
def test_malformed_tables_are_one_line_errors_not_tracebacks(edit, message):
    text = refused(GOOD.replace(*edit), message)
    assert "unsupported operand" not in text and "not iterable" not in text


def test_experiment_hparams_are_checked_even_when_every_method_overrides_them():
    text = GOOD.replace('methods = ["rk4"]', 'methods = ["rk4"]\nhparams = { lr = -1 }\nmethod_hparams.rk4 = { lr = 0.1 }')
    refused(text, r"experiment 'e': hparams: .*lr must be a positive finite number, got -1")
    refused(GOOD.replace("seeds = 2 }", "seeds = 2, hparams = { lr = -1 } }")
            .replace('methods = ["rk4"]', 'methods = ["rk4"]\nmethod_hparams.rk4 = { lr = 0.1 }'),
            r"experiment 'e', preset smoke: hparams: .*lr must be a positive finite number, got -1")
    refused(GOOD.replace('methods = ["rk4"]', 'methods = ["rk4"]\nmethod_hparams.euler = { step_size = 0.1 }'),
            r"method_hparams.euler is for a method this experiment never runs")


@pytest.mark.parametrize("edit, message", [
    # an option given to one method that it does not use was accepted, then silently ignored
    (('methods = ["rk4"]', 'methods = ["rk4"]\nmethod_hparams.rk4 = { rtol = 1e-3 }'),
     r"experiment 'e': method_hparams.rk4: method rk4 does not use rtol; its solver options: step_size$"),
    (('methods = ["rk4"]', 'methods = ["rk4"]\nmethod_hparams.rk4 = { snode_order = 4 }'),
     r"method_hparams.rk4: method rk4 does not use snode_order"),
    (('methods = ["rk4"]', 'methods = ["rk4"]\nmethod_hparams.rk4 = { reg = "rnode", reg_order = 3 }'),
     r"method_hparams.rk4: regulariser reg=rnode does not use reg_order; reg_order is the order K of reg = speed "
     r"only$"),
    # two blocks of one experiment building the same case: listed twice by --dry-run, run once
    (("[[claim]]", '[[experiment]]\nname = "e"\ntask = "cubic_spiral"\nmethods = ["rk4"]\n'
                   "presets.smoke = { iters = 2 }\n\n[[claim]]"),
     r"experiment 'e', preset smoke: builds case rk4/s0 \(no hyper-parameters\) twice: the \[\[experiment\]\] blocks "
     r"named 'e' overlap at preset 'smoke'; give each case once$"),
])
def test_settings_a_spec_would_silently_ignore_or_repeat_are_refused(edit, message):
    refused(GOOD.replace(*edit), message)


CLAIM = GOOD.split("[[claim]]")[0] + """[[claim]]
id = "C2"
text = "t"
"""


@pytest.mark.parametrize("claim, message", [
    ('check = "time_reduction"\nbaseline = "rk4"\nmin = 0.1', r"claim 'C2': needs 'method' \(a string\)"),
    ('check = "time_reduction"\nmethod = "rk4"\nmin = 0.1', r"claim 'C2': needs 'baseline'"),
    ('check = "time_reduction"\nmethod = "rk4"\nbaseline = "rk4"', r"claim 'C2': needs 'min' \(a finite number\)"),
    ('check = "time_reduction"\nmethod = "rk4"\nbaseline = "rk4"\nmin = "x"', r"claim 'C2': min must be a finite number, got 'x'"),
    ('check = "time_reduction"\nmethod = "rk4"\nbaseline = "rk4"\nmin = nan', r"claim 'C2': min must be a finite number, got nan"),
    ('check = "time_reduction"\nmethod = "rk4"\nbaseline = "rk4"\nmin = 0.9\nmax = 0.1', r"claim 'C2': min 0.9 is above max 0.1"),
    ('check = "wins"\nmethod = "rk4"\nbaseline = "rk4"\nfraction = 2', r"claim 'C2': fraction must be a finite number from 0 to 1"),
    ('check = "metric_parity"\nmethod = "rk4"\nbaseline = "rk4"\nmetric = "test_mze"', r"claim 'C2': metric 'test_mze' is not a metric"),
    ('check = "metric_parity"\nmethod = "rk4"\nbaseline = "rk4"\nmetric = "test_mse"\nrel_tol = -1', r"rel_tol must be a finite number >= 0"),
    ('check = "table_threshold"\ntable = "records"\ncolumn = "test_mse"', r"claim 'C2': needs 'min' or 'max'"),
    ('check = "ratio"\nmethod = "rk4"\nbaseline = "rk4"\nexperiments = "e"', r"experiments must be a non-empty list of distinct strings, got 'e'"),
    ('check = "ratio"\nmethod = "rk4"\nbaseline = "rk4"\nhparams = 5', r"claim 'C2': hparams must be a table"),
    ('check = "ratio_trend"\nmethod = "rk4"\nbaseline = "rk4"', r"claim 'C2': needs 'param'"),
    ('check = 5', r"claim 'C2': check must be a string, got 5"),
    ('check = "ratio"\nmethod = "euler"\nbaseline = "rk4"',
     r"claim 'C2': method 'euler' is not run by the paper's experiments; they run: rk4$"),
    ('check = "ratio"\nmethod = "rk4"\nbaseline = "euler"\nexperiments = ["e"]',
     r"claim 'C2': baseline 'euler' is not run by experiment\(s\) e; they run: rk4$"),
    ('check = "vibes"', r"claim 'C2': check: unknown claim check 'vibes'"),
    ('check = "ratio"\nmethod = "rk4"\nbaseline = "rk4"\nexperiments = ["ee"]',
     r"claim 'C2': unknown experiment 'ee' \(did you mean 'e'\?\); valid: e$"),
])
def test_claim_parameters_are_checked_at_load_not_after_the_run(claim, message):
    refused(CLAIM + claim + "\n", message)


def test_a_method_one_preset_adds_counts_as_run_by_the_experiment():
    """A claim on a method only the paper preset runs (``presets.paper.methods``) is valid."""
    text = CLAIM.replace("presets.smoke = { iters = 2, seeds = 2 }",
                         'presets.smoke = { iters = 2, seeds = 2 }\npresets.paper = { iters = 2, methods = ["euler"] }')
    spec = parse_spec(text + 'check = "ratio"\nmethod = "euler"\nbaseline = "rk4"\n', "good.toml")
    assert spec.claims[-1]["method"] == "euler"


ANALYSIS = GOOD.split("[[claim]]")[0] + """[[analysis]]
presets = ["smoke"]
"""


@pytest.mark.parametrize("analysis, message", [
    ('kind = "scaling"', r"analysis 'scaling': needs 'param' \(a string\)"),
    ('kind = "scaling"\nparam = "hidden"\nexperiments = ["x"]', r"analysis 'scaling': unknown experiment 'x'"),
    ('kind = "taylor"\ntask = "cubic_spiro"', r"analysis 'taylor': task: unknown task 'cubic_spiro'"),
    ('kind = "taylor"\ntolerances = [-1]', r"analysis 'taylor': tolerances must be a non-empty list, each item a positive"),
    ('kind = "taylor"\nstep_sizes = ["grd"]', r"analysis 'taylor': step_sizes must be .* or 'grid', got \['grd'\]"),
    ('kind = "taylor"\nmethods = ["rk5"]', r"analysis 'taylor': methods: 'rk5' is not a method"),
    ('kind = "time_to_target"\nreference = "drect"', r"analysis 'time_to_target': reference 'drect' is not a method"),
    ('kind = "time_to_target"\npresets = "smoke"', r"presets must be a non-empty list of distinct strings, got 'smoke'"),
    ('kind = "scalling"', r"analysis 'scalling': kind: unknown analysis kind 'scalling'"),
])
def test_analysis_parameters_are_checked_at_load(analysis, message):
    load_papers()  # the paper analysis kinds (taylor)
    text = ANALYSIS.replace('presets = ["smoke"]\n', "") if "presets =" in analysis else ANALYSIS
    refused(text + analysis + "\n", message)


def test_an_analysis_without_presets_is_refused_not_silently_skipped():
    refused(ANALYSIS.replace('presets = ["smoke"]\n', "") + 'kind = "scaling"\nparam = "hidden"\n',
            r"analysis 'scaling': needs 'presets', the presets it runs at \(a list of smoke, quick, paper\)$")


def test_a_spec_file_knows_the_installed_papers_kinds(tmp_path):
    """``load_spec_file`` registers the installed papers' analysis kinds first: ``taylor`` is checked, not unknown."""
    (tmp_path / "experiments.toml").write_text(ANALYSIS + 'kind = "taylor"\ntolerances = [1e-3]\nstep_sizes = ["grid", 0.1]\n')
    assert load_spec_file(tmp_path / "experiments.toml").analyses[0]["kind"] == "taylor"


def test_a_grid_that_repeats_a_run_is_refused_at_load():
    """A grid crossing reg_order with a reg_lambda of 0 makes one unregularised run per order: the same run
    twice (no regulariser at λ = 0), which the sweep spent twice and `nodebench compare` then refused as one
    configuration measured twice. The spec is refused when it loads, naming the options; λ > 0 only is fine."""
    grid = ('presets.smoke = { iters = 2, seeds = 2 }',
            'hparams = { reg = "speed" }\npresets.smoke = { iters = 2, seeds = 1, grid = { reg_order = [2, 3], '
            'reg_lambda = [0.0, 1.0] } }')
    message = refused(GOOD.replace(*grid), "two cases of cubic_spiral/rk4/s0 are one run")
    assert "reg_order 2, 3" in message and "preset smoke" in message, message
    spec = parse_spec(GOOD.replace(*grid).replace("[0.0, 1.0]", "[0.5, 1.0]"), "good.toml")
    assert len(spec.cases("smoke", "cpu")) == 4


@pytest.mark.parametrize("methods, grid, ignored", [
    ('["gq", "adjoint"]', "gtol = [0.1, 0.5]", "gtol 0.1, 0.5"),  # a GQ tolerance sweep beside the adjoint
    ('["rk4", "direct"]', "rtol = [1e-3, 1e-6]", "rtol 0.001, 1e-06"),
    ('["rk4"]', 'reg = ["speed", "rnode"], reg_order = [2, 3], reg_lambda = [1.0]', "reg_order 2, 3"),  # RNODE's
])
def test_a_repeated_run_that_is_no_unregularised_baseline_is_not_advised_as_one(methods, grid, ignored):
    """A grid over an option some of its methods (or RNODE) ignore repeats their run too; the refusal advised
    declaring "the unregularised baseline, reg_lambda = 0" as its own experiment, where no regulariser is involved
    or one runs. It names the cases to move instead."""
    text = GOOD.replace('methods = ["rk4"]', f"methods = {methods}").replace(
        "presets.smoke = { iters = 2, seeds = 2 }", f"presets.smoke = {{ iters = 2, seeds = 1, grid = {{ {grid} }} }}")
    message = refused(text, "are one run")
    assert f"({ignored}); declare that run once (the " in message and "cases that ignore" in message, message
    assert "reg_lambda = 0" not in message and "unregularised" not in message, message
