"""Loading third-party paper plug-ins: whatever a broken plug-in does (raises on import, takes a paper id twice,
ships no ``experiments.toml``) is one line naming it, every time it is asked; the example plug-in's own claim
check gives its verdicts."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pandas as pd
import pytest

from nodebench import papers
from nodebench.claims import CHECKS, FAILS, HOLDS, NOT_MEASURED, check_claims
from nodebench.errors import UserError
from nodebench.experiments import load_paper, parse_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "reproduce" / "example_paper"


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install([("id", "module")], {"module/__init__.py": "source"})``: plug-ins declared by entry points,
    their files on the import path; nothing loaded before is reused or kept."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(papers, "_PAPERS", {})

    def install_(points: list[tuple[str, str]], sources: dict[str, str]) -> None:
        for name, text in sources.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
        eps = [EntryPoint(name, value, papers.ENTRY_POINT_GROUP) for name, value in points]
        monkeypatch.setattr(papers, "entry_points", lambda group: eps if group == papers.ENTRY_POINT_GROUP else [])
    yield install_
    for module in [m for m in sys.modules if m.startswith("nbtest_")]:
        del sys.modules[module]


@pytest.mark.parametrize("source, message", [
    ('raise ValueError("boom")\n', r"'nbtest_a': ValueError: boom \(at .*nbtest_a.__init__\.py:1\)$"),
    ("def (\n", r"'nbtest_a': SyntaxError: invalid syntax \(at .*nbtest_a.__init__\.py:1\)$"),
    # a name the framework already has: the error points at the plug-in's line, not at the registry's
    ('from nodebench.claims import register_check\n\n@register_check("ratio")\ndef ratio(r, t, c): ...\n',
     r"'nbtest_a': ValueError: claim check 'ratio' is registered twice \(at .*nbtest_a.__init__\.py:3\)$"),
    ("import nbtest_nowhere\n", r"'nbtest_a': No module named 'nbtest_nowhere'$"),
])
def test_a_plugin_that_raises_on_import_is_one_line_naming_it(install, source, message):
    install([("broken", "nbtest_a")], {"nbtest_a/__init__.py": source})
    with pytest.raises(UserError, match=r"^paper plug-in 'broken' cannot be imported from " + message) as err:
        papers.load_papers()
    assert "\n" not in str(err.value)


def test_a_failed_load_fails_again_rather_than_return_the_papers_before_it(install):
    """The first call used to record the papers imported before the broken one; the second returned those."""
    install([("fine", "nbtest_fine"), ("broken", "nbtest_missing")], {"nbtest_fine/__init__.py": ""})
    for _ in range(2):
        with pytest.raises(UserError, match="paper plug-in 'broken' cannot be imported"):
            papers.load_papers()


@pytest.mark.parametrize("points, message", [
    ([("snode", "nbtest_b")], r"'snode' is declared twice: by 'nodebench\.papers\.snode' and by .* 'nbtest_b'"),
    ([("mine", "nbtest_b"), ("mine", "nbtest_c")], r"'mine' is declared twice: by 'nbtest_b' and by .* 'nbtest_c'"),
])
def test_a_paper_id_declared_twice_is_refused_not_shadowed(install, points, message):
    """The second declaration of an id (a plug-in named like a built-in paper) used to be silently ignored."""
    install(points, {"nbtest_b/__init__.py": "", "nbtest_c/__init__.py": ""})
    with pytest.raises(UserError, match=r"^paper id " + message):
        papers.load_papers()


@pytest.mark.parametrize("files, message", [
    ({"nbtest_d/__init__.py": ""}, r"package 'nbtest_d' has no experiments\.toml; ship experiments\.toml inside the "
                                   r"package as package data \(pyproject\.toml: \[tool\.setuptools\.package-data\] "
                                   r"nbtest_d = \[\"experiments\.toml\"\]\)$"),
    ({"nbtest_d.py": ""}, r"'nbtest_d' is a module, not a package; ship experiments\.toml"),
])
def test_a_plugin_without_its_spec_file_says_how_to_ship_it(install, files, message):
    """A package built without package data used to raise FileNotFoundError (a module: TypeError)."""
    install([("mine", "nbtest_d")], files)
    with pytest.raises(UserError, match=r"^paper 'mine': " + message):
        load_paper("mine")


def test_the_example_papers_check_gives_its_verdicts():
    """The example plug-in's ``fewer_evaluations`` on its own claim: holds, fails, or not measured."""
    sys.path.insert(0, str(EXAMPLE))
    before = dict(CHECKS)
    try:
        importlib.import_module("nodebench_example_paper")
        spec = parse_spec((EXAMPLE / "nodebench_example_paper" / "experiments.toml").read_text(), "example")
        rows = pd.DataFrame({"status": "ok", "experiment": "spiral", "method": ["rk4", "adjoint"],
                             "nfe_forward_per_iter": [76.0, 93.0]})
        verdicts = [[v.verdict for v in check_claims(spec.claims, records)] for records in
                    (rows, rows.assign(nfe_forward_per_iter=[93.0, 76.0]), rows.iloc[:1])]
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("nodebench_example_paper", None)
        CHECKS.clear()
        CHECKS.update(before)
    assert verdicts == [[HOLDS], [FAILS], [NOT_MEASURED]]


def test_a_check_or_analysis_that_raises_at_report_time_is_one_line_naming_it(install, monkeypatch, tmp_path):
    """A paper's claim check or analysis with a bug ended `nodebench reproduce`/`report` in a traceback; now one
    line names the check (or analysis), the error and its line in the paper's module, and says the records are
    kept (they are written before the report)."""
    from nodebench.analyses import ANALYSES, Analysis, run_analyses
    from nodebench.claims import Check

    install([], {"nbtest_buggy/__init__.py": "def check(records, tables, claim):\n"
                                             "    return records['no_such_column']\n\n\n"
                                             "def analysis(block, run_dir, records):\n"
                                             "    return 1 / 0\n"})
    buggy = importlib.import_module("nbtest_buggy")
    monkeypatch.setitem(CHECKS, "nbtest_check", Check("nbtest_check", buggy.check))
    monkeypatch.setitem(ANALYSES, "nbtest_analysis", Analysis("nbtest_analysis", buggy.analysis))
    records = pd.DataFrame({"status": ["ok"], "experiment": ["e"], "method": ["rk4"]})
    claim = {"id": "C1", "text": "t", "check": "nbtest_check"}
    with pytest.raises(UserError, match=r"^claim check 'nbtest_check' \(claim 'C1'\) raised KeyError: 'no_such_column' "
                                        r"\(at .*nbtest_buggy.__init__\.py:2\); the run's records are kept"):
        check_claims([claim], records)
    spec = type("Spec", (), {"analyses": [{"kind": "nbtest_analysis", "presets": ["smoke"]}]})()
    with pytest.raises(UserError, match=r"^analysis 'nbtest_analysis' raised ZeroDivisionError: division by zero "
                                        r"\(at .*nbtest_buggy.__init__\.py:6\); .*`nodebench report RUN_DIR`$"):
        run_analyses(spec, tmp_path, records, preset="smoke")


def test_list_aligns_long_paper_and_experiment_names(monkeypatch, capsys):
    """`nodebench list` padded paper ids to 12 characters and experiment names to 22: a longer one
    (example_paper) pushed its title out of the column."""
    from nodebench import api, cli

    spec = load_paper("snode")
    long = type(spec.experiments[0])(**{**vars(spec.experiments[0]), "name": "an_experiment_named_at_length"})
    monkeypatch.setattr(api, "list_papers", lambda: {"snode": spec, "a_plugin_with_a_long_id": spec.__class__(
        **{**vars(spec), "experiments": [*spec.experiments, long]})})
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    titles = [line.index(spec.title) for line in lines if spec.title in line]
    tasks = [line.index(" task ") for line in lines if line.startswith("    - ")]
    assert len(titles) == 2 and len(set(titles)) == 1 and len(set(tasks)) == 1


def test_cases_take_one_experiment_name_as_a_string():
    """``cases(..., experiments="spiral")`` split the name into letters: "no experiment 's'"."""
    spec = load_paper("do_vs_od")
    assert {c.experiment for c in spec.cases("smoke", "cpu", experiments="spiral")} == {"spiral"}
