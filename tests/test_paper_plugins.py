"""Loading third-party paper plug-ins: whatever a broken plug-in does (raises on import, takes a paper id twice,
ships no ``experiments.toml``) is one line naming it, every time it is asked, and costs nothing that does not need
it; the example plug-in's own claim check gives its verdicts."""

from __future__ import annotations

import importlib
import re
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pandas as pd
import pytest

from nodebench import papers
from nodebench.claims import CHECKS, FAILS, HOLDS, NOT_CHECKED, NOT_MEASURED, check_claims
from nodebench.errors import UserError
from nodebench.experiments import load_paper, parse_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "reproduce" / "example_paper"


def _undone(monkeypatch, registry):
    """``registry.register`` whose additions ``monkeypatch`` removes after the test."""
    register = type(registry).register.__get__(registry)

    def register_(name=None, obj=None):
        def add(value):
            key = name or getattr(value, "name", None) or value.__name__
            if key not in registry:
                monkeypatch.setitem(registry, key, value)  # undone after the test
            return register(key, value)
        return add if obj is None else add(obj)
    return register_


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install([("id", "module")], {"module/__init__.py": "source"})``: plug-ins declared by entry points,
    their files on the import path; nothing loaded before is reused or kept, nor anything they register."""
    from nodebench.analyses import ANALYSES
    from nodebench.plots import RUN_FIGURES

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(papers, "_PAPERS", {})
    monkeypatch.setattr(papers, "_BROKEN", {}, raising=False)
    for registry in (ANALYSES, CHECKS, RUN_FIGURES):
        monkeypatch.setattr(registry, "register", _undone(monkeypatch, registry))

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
        papers.get_paper("broken")
    assert "\n" not in str(err.value)


def test_a_parameter_of_an_unknown_kind_is_refused_where_the_plugin_declares_it(install):
    """``Param("min", "flaot")`` was accepted, then every load of a claim setting ``min`` was a KeyError traceback."""
    install([("kinds", "nbtest_kind")], {"nbtest_kind/__init__.py": (
        "from nodebench.claims import register_check\nfrom nodebench.config import Param\n\n\n"
        "@register_check('nbtest_kind', params=(Param('min', 'flaot'),))\ndef check(records, tables, claim): ...\n")})
    with pytest.raises(UserError, match=r"^paper plug-in 'kinds' cannot be imported from 'nbtest_kind': ValueError: "
                                        r"Param 'min': unknown kind 'flaot' \(did you mean 'float'\?\); valid: int, "
                                        r".* \(at .*nbtest_kind.__init__\.py:5\)$"):
        papers.get_paper("kinds")


def test_a_broken_plugin_fails_every_time_it_is_asked_for(install):
    """Asked for again, a plug-in that failed to load fails again, with the same line."""
    install([("fine", "nbtest_fine"), ("broken", "nbtest_missing")], {"nbtest_fine/__init__.py": ""})
    for _ in range(2):
        with pytest.raises(UserError, match="paper plug-in 'broken' cannot be imported"):
            papers.get_paper("broken")
    assert "fine" in papers.load_papers() and "broken" not in papers.load_papers()


BROKEN_PLUGINS = {
    "import": ({"nbtest_e/__init__.py": 'raise ValueError("boom")\n'},
               r"paper plug-in 'broken' cannot be imported from 'nbtest_e': ValueError: boom \(at .*:1\)"),
    "spec": ({"nbtest_e/__init__.py": "",
              "nbtest_e/experiments.toml": 'paper = "other"\ntitle = "t"\nreference = "r"\n'},
             r"declares paper = 'other', but it is installed as 'broken'"),
}


@pytest.mark.parametrize("kind", BROKEN_PLUGINS)
def test_a_broken_plugin_costs_only_the_commands_that_need_it(install, capsys, kind):
    """One installed plug-in whose import raised made every command exit 2 (`run` of a built-in task, `reproduce`
    of another paper, `list`). Now those work with one warning naming it; `reproduce` of it is exit 2 saying why,
    and `list` shows it as broken."""
    from nodebench import cli

    files, why = BROKEN_PLUGINS[kind]
    install([("broken", "nbtest_e")], files)
    assert cli.main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--dry-run"]) == 0
    assert cli.main(["reproduce", "snode", "--preset", "smoke", "--dry-run"]) == 0
    err = capsys.readouterr().err.splitlines()  # a spec is read only by what needs it
    assert err == [] if kind == "spec" else len(err) == 1 and re.match(r"^nodebench: warning: " + why, err[0])
    assert cli.main(["list"]) == 0
    listed = capsys.readouterr()
    assert re.search(r"^  broken +BROKEN, not loaded: .*" + why, listed.out, re.M) and "  snode " in listed.out
    assert len(listed.err.splitlines()) == (kind == "spec")  # said once
    assert cli.main(["reproduce", "broken", "--dry-run"]) == 2
    assert re.search(r"^nodebench: error: .*" + why, capsys.readouterr().err, re.M)


def test_records_of_a_broken_plugin_are_refused_where_they_are_read(install, tmp_path, capsys):
    """A report, gate or leaderboard of records of a paper whose plug-in failed to load would read them without
    its metrics (their direction, their gate tolerance): a metric it registers silently ungated or ranked the
    wrong way. Such records are refused naming the paper and why; records of other papers are read as usual."""
    from nodebench import cli

    install([("broken", "nbtest_e")], BROKEN_PLUGINS["import"][0])
    runs = {}
    for paper in ("broken", "snode"):
        runs[paper] = tmp_path / paper
        runs[paper].mkdir()
        pd.DataFrame({"case_id": ["c0", "c1"], "paper": paper, "experiment": "e", "task": "cubic_spiral",
                      "method": ["rk4", "adjoint"], "seed": 0, "hparams": "{}", "status": "ok",
                      "test_mse": [0.1, 0.2], "train_wall_s": 1.0, "nfe_forward": 8.0,
                      "nfe_backward": 8.0}).to_parquet(runs[paper] / "records.parquet")
        pd.DataFrame({"case_id": ["c0", "c1"], "task": "cubic_spiral", "method": ["rk4", "adjoint"], "seed": 0,
                      "iteration": 1, "elapsed_s": [0.5, 0.7], "loss": [0.3, 0.4], "nfe_forward": 8.0,
                      "nfe_backward": 8.0}).to_parquet(runs[paper] / "curves.parquet")
    good, bad = str(runs["snode"]), str(runs["broken"])
    board = str(tmp_path / "board")
    assert [cli.main(["report", good]), cli.main(["compare", good, good]),
            cli.main(["leaderboard", good, "--out", board])] == [0, 0, 0]
    capsys.readouterr()
    for argv in (["report", bad], ["compare", good, bad], ["leaderboard", good, bad, "--out", board]):
        assert cli.main(argv) == 2, argv
        assert re.search(rf"^nodebench: error: '{re.escape(bad)}.*' holds records of paper 'broken', which is not "
                         r"loaded: paper plug-in 'broken' cannot be imported", capsys.readouterr().err, re.M), argv


@pytest.mark.parametrize("points, message", [
    ([("snode", "nbtest_b")], r"'snode' is declared twice: by 'nodebench\.papers\.snode' and by .* 'nbtest_b'"),
    ([("mine", "nbtest_b"), ("mine", "nbtest_c")], r"'mine' is declared twice: by 'nbtest_b' and by .* 'nbtest_c'"),
])
def test_a_paper_id_declared_twice_is_refused_not_shadowed(install, points, message):
    """The second declaration of an id (a plug-in named like a built-in paper) used to be silently ignored."""
    install(points, {"nbtest_b/__init__.py": "", "nbtest_c/__init__.py": ""})
    name = points[0][0]
    with pytest.raises(UserError, match=r"^paper id " + message):
        papers.get_paper(name)
    assert name not in papers.load_papers() and not {"nbtest_b", "nbtest_c"} & set(sys.modules)


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


BUGGY = '''\
from nodebench.analyses import register_analysis
from nodebench.claims import HOLDS, register_check
from nodebench.plots import RUN_FIGURES


@register_analysis("nbtest_analysis")
def analysis(block, run_dir, records):
    return 1 / 0


@register_check("nbtest_check")
def check(records, tables, claim):
    return records["no_such_column"]


@register_check("nbtest_verdict")
def verdict(records, tables, claim):
    return [("all", "1 vs 2", True)]


@RUN_FIGURES.register("nbtest_figure")
def figure(title, records, curves):
    raise KeyError("figure bug")
'''

BUGGY_SPEC = """\
paper = "buggy"
title = "Buggy"
reference = "none"

[[experiment]]
name = "e"
task = "cubic_spiral"
methods = ["rk4"]
presets.smoke = { iters = 2 }

[[analysis]]
kind = "scaling"
presets = ["smoke"]
param = "lr"

[[analysis]]
kind = "nbtest_analysis"
presets = ["smoke"]

[[claim]]
id = "C1"
text = "raises"
check = "nbtest_check"

[[claim]]
id = "C2"
text = "gives a verdict that is none"
check = "nbtest_verdict"

[[claim]]
id = "C3"
text = "no check"
why_not_measured = "not automated"
"""


def test_a_paper_function_that_fails_at_report_time_is_left_out_and_the_rest_written(install, tmp_path):
    """A paper's analysis, claim check or run figure that raised (or returned a verdict that is none) stopped
    the report: nothing written (a run figure: a traceback; a verdict ``True``: shown as the verdict "True").
    Now each is one line naming the paper, the function and its line, the rest of the report is written, the
    tracebacks are kept in ``logs/report.log`` and the command ends with one line naming them all."""
    from nodebench.api import _finish

    install([("buggy", "nbtest_buggy")], {"nbtest_buggy/__init__.py": BUGGY,
                                          "nbtest_buggy/experiments.toml": BUGGY_SPEC})
    papers.load_papers()
    records = pd.DataFrame({"status": "ok", "experiment": "e", "task": "cubic_spiral", "method": "rk4", "seed": [0],
                            "case_id": ["c0"], "train_wall_s": [1.0], "nfe_forward_per_iter": [4.0]})
    run_dir = tmp_path / "run"
    (run_dir / "figures").mkdir(parents=True)
    with pytest.raises(UserError) as err:
        _finish(run_dir, records, pd.DataFrame(), spec=load_paper("buggy"), preset="smoke")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"the report of {str(run_dir)!r} is written without")
    for failure in (r"run figure 'nbtest_figure' \(e\) raised KeyError: 'figure bug' \(at .*buggy.__init__\.py:23\)",
                    r"analysis 'nbtest_analysis' raised ZeroDivisionError: division by zero \(at .*:8\)",
                    r"claim check 'nbtest_check' \(claim 'C1'\) raised KeyError: 'no_such_column'",
                    r"claim check 'nbtest_verdict' \(claim 'C2'\) returned the row \('all', '1 vs 2', True\)"):
        assert re.search("paper 'buggy': " + failure, message), (failure, message)
    report = (run_dir / "report.md").read_text()
    assert "## Scaling with lr" in report and "## Analysis `nbtest_analysis`: not computed" in report
    rows = {line.split(" | ")[0]: line for line in report.splitlines() if line.startswith("| C")}
    assert NOT_CHECKED in rows["| C1"] and NOT_CHECKED in rows["| C2"] and "not automated" in rows["| C3"]
    log = (run_dir / "logs" / "report.log").read_text()
    assert 'raise KeyError("figure bug")' in log and "return 1 / 0" in log and "Traceback" in log


def test_a_paper_function_that_fails_outside_a_report_is_one_line_at_once(install):
    """Called from Python (no report being built), a failing check is one line naming it, raised at once."""
    install([("buggy", "nbtest_buggy")], {"nbtest_buggy/__init__.py": BUGGY,
                                          "nbtest_buggy/experiments.toml": BUGGY_SPEC})
    papers.load_papers()
    records = pd.DataFrame({"status": ["ok"], "experiment": ["e"], "method": ["rk4"]})
    with pytest.raises(UserError, match=r"^paper 'buggy': claim check 'nbtest_check' \(claim 'C1'\) raised "
                                        r"KeyError: 'no_such_column' \(at .*nbtest_buggy.__init__\.py:13\)$"):
        check_claims([{"id": "C1", "text": "t", "check": "nbtest_check"}], records)


@pytest.mark.parametrize("returned, message", [
    ('"## Section"', r"returned str '## Section', not \(section, figures\)"),
    ('"## S", run_dir / "figures" / "a.png"', r"returned figures that are not a list of paths: PosixPath\("),
    ('"## S", [run_dir / "elsewhere.png"]', r"returned figure '.*elsewhere\.png', not a file it wrote into"),
])
def test_an_analysis_returning_what_its_contract_does_not_allow_is_named(install, tmp_path, returned, message):
    """A bare section, a single path or a figure outside ``figures/`` was a traceback naming nodebench's own
    line (``TypeError: 'PosixPath' object is not iterable``) or a broken image link in the report."""
    from nodebench.analyses import run_analyses

    install([], {"nbtest_shape/__init__.py": "from nodebench.analyses import register_analysis\n\n\n"
                                             "@register_analysis('nbtest_shape')\n"
                                             f"def shape(block, run_dir, records):\n    return {returned}\n"})
    importlib.import_module("nbtest_shape")
    spec = type("Spec", (), {"analyses": [{"kind": "nbtest_shape", "presets": ["smoke"]}]})()
    records = pd.DataFrame({"status": ["ok"], "experiment": ["e"], "method": ["rk4"]})
    with pytest.raises(UserError, match=r"^analysis 'nbtest_shape' " + message + r".* \(defined at .*:4\)$"):
        run_analyses(spec, tmp_path, records, preset="smoke")


def test_an_analysis_rules_function_that_raises_is_one_line_at_load(install):
    """``rules`` that raised (a key the block may lack) was a traceback when the paper was loaded."""
    install([], {"nbtest_rules/__init__.py": "from nodebench.analyses import register_analysis\n\n\n"
                                             "@register_analysis('nbtest_rules', params=('t',),\n"
                                             "                   rules=lambda block: block['t'] > 1)\n"
                                             "def rules(block, run_dir, records): ...\n"})
    importlib.import_module("nbtest_rules")
    text = 'paper = "p"\ntitle = "t"\nreference = "r"\n[[analysis]]\nkind = "nbtest_rules"\npresets = ["smoke"]\n'
    with pytest.raises(UserError, match=r"^p\.toml: analysis 'nbtest_rules': rules raised KeyError: 't' "
                                        r"\(at .*nbtest_rules.__init__\.py:5\)$"):
        parse_spec(text, "p.toml")
    with pytest.raises(UserError, match=r"rules returned True, not what is wrong \(a string\) or None"):
        parse_spec(text.replace('presets', 't = 2\npresets'), "p.toml")


def test_a_claim_whose_check_gives_no_row_stays_in_the_report():
    """A check with nothing to judge (every case of the run failed; a plug-in's check returning ``[]``) made
    its claim vanish from the claims table."""
    spec = load_paper("do_vs_od")
    failed = pd.DataFrame({"status": "failed", "experiment": "spiral", "method": ["rk4", "adjoint"], "seed": 0})
    for records in (failed, failed.iloc[:0]):
        assert {v.claim_id for v in check_claims(spec.claims, records)} == {c["id"] for c in spec.claims}


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
