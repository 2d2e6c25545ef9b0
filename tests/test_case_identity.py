"""Case identity when a method ignores an option: ``nodebench run`` leaves the option out of that method's case
(its id and recorded hparams are those of the run without it; the warning stays), a folder written before that
would run such a case again is refused, and a paper's shared options stay in its cases (the ids of its committed
records)."""

import json

import pytest

import nodebench
from nodebench.cli import main
from nodebench.experiments import load_paper
from nodebench.harness.environment import git_sha
from nodebench.records import CASES
from nodebench.runner.case import Case


def _plan(methods="rk4,gq", task="g1d", **kw) -> dict[str, Case]:
    return {case.method: case for case in nodebench.run(task, methods, iters=2, dry_run=True, **kw).cases}


def test_run_leaves_out_options_a_method_ignores(capsys):
    plan = _plan(hparams={"gtol": 0.1})
    assert "method rk4 does not use gtol; ignored" in capsys.readouterr().err
    assert dict(plan["rk4"].hparams) == {} and dict(plan["gq"].hparams) == {"gtol": 0.1}
    assert plan["rk4"].case_id == _plan(hparams={"gtol": 0.2})["rk4"].case_id == _plan()["rk4"].case_id
    assert plan["gq"].case_id != _plan(hparams={"gtol": 0.2})["gq"].case_id
    given = _plan(hparams={"width": 8}, method_hparams={"rk4": {"rtol": 1e-5}})  # per-method options too
    assert dict(given["rk4"].hparams) == {"width": 8}
    snode = _plan("snode", "vehicle", hparams={"snode_dual_every": 3, "snode_gamma": 0.2})  # inert: penalty variant
    assert dict(snode["snode"].hparams) == {"snode_gamma": 0.2}


def test_case_without_ignored_options_keeps_its_id():
    plan = _plan(hparams={"width": 8, "gtol": 0.1})
    assert plan["rk4"].case_id == Case(task="g1d", method="rk4", hparams={"width": 8}, iters=2).case_id
    assert plan["gq"].case_id == Case(task="g1d", method="gq", hparams={"width": 8, "gtol": 0.1}, iters=2).case_id


def _row(out, case: Case) -> None:
    (out / CASES).mkdir(parents=True, exist_ok=True)
    row = case.identity() | {"status": "ok", "git_sha": git_sha(), "iters": case.iters}
    (out / CASES / f"{case.case_id}.json").write_text(json.dumps(row))


def test_resume_of_a_folder_holding_an_ignored_option(tmp_path, capsys):
    out = tmp_path / "run"
    _row(out, Case(task="g1d", method="gq", hparams={"gtol": 0.1}, iters=2))
    _row(out, Case(task="g1d", method="rk4", hparams={"gtol": 0.1}, iters=2))  # as nodebench run wrote it before
    command = ["run", "--task", "g1d", "--method", "rk4,gq", "--hparam", "gtol=0.2", "--iters", "2", "--out", str(out),
               "--dry-run"]
    before = sorted(path.name for path in out.rglob("*"))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2  # the warning, then the one-line refusal
    assert ("holds case g1d/rk4/s0 recorded with gtol, which change nothing in its run (method rk4 does not use "
            "gtol)") in err.strip().splitlines()[-1]
    assert sorted(path.name for path in out.rglob("*")) == before
    clean = tmp_path / "clean"  # a case that held no ignored option resumes as it was
    _row(clean, Case(task="g1d", method="rk4", iters=2))
    _row(clean, Case(task="g1d", method="gq", hparams={"gtol": 0.1}, iters=2))
    plan = _plan(hparams={"gtol": 0.1}, out=clean)
    assert {case.case_id for case in plan.values()} == {path.stem for path in (clean / CASES).glob("*.json")}


@pytest.mark.parametrize("preset", ["smoke", "quick"])
def test_paper_presets_keep_their_shared_options(preset):
    adjoint = [case for case in load_paper("gq_adjoint").cases(preset, "cpu") if case.method == "adjoint"]
    assert adjoint and all("gtol" in case.hparams for case in adjoint)  # set for gq and shared on purpose


def test_resume_of_a_folder_holding_a_regulariser_option_without_a_regulariser(tmp_path, capsys):
    """A row recorded with ``reg_order`` and no regulariser (an earlier nodebench kept it in the id) is refused
    naming what leaves the option unused, not "which method rk4 does not use"."""
    out = tmp_path / "run"
    _row(out, Case(task="cubic_spiral", method="rk4", hparams={"reg_order": 3}, iters=2))
    before = sorted(path.name for path in out.rglob("*"))
    assert main(["run", "--task", "cubic_spiral", "--method", "rk4", "--hparam", "reg_order=3", "--iters", "2",
                 "--out", str(out), "--dry-run"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ("holds case cubic_spiral/rk4/s0 recorded with reg_order, which change nothing in its run (no regulariser "
            "(reg unset) does not use reg_order)") in last, last
    assert sorted(path.name for path in out.rglob("*")) == before
