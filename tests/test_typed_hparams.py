"""One setting is one case id however its numbers are typed (nodebench.runner.typed_hparams)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import nodebench
from nodebench.errors import UserError
from nodebench.benchmarking.suites import available_suites, load_suite
from nodebench.cli import main
from nodebench.experiments import load_paper
from nodebench.runner.typed_hparams import typed_hparams

SMALL = {"n_points": 6, "hidden": 4}


def _case(task="cubic_spiral", method="rk4", **hparams):
    (case,) = nodebench.run(task, method, iters=2, hparams=hparams, dry_run=True).cases
    return case


@pytest.mark.parametrize("given, typed", [
    ({"hidden": 8.0}, {"hidden": 8}), ({"lr": 1}, {"lr": 1.0}), ({"n_points": 1e2}, {"n_points": 100}),
    ({"step_size": 1}, {"step_size": 1.0}), ({"reg": "speed", "reg_lambda": 1, "reg_order": 2.0},
                                             {"reg": "speed", "reg_lambda": 1.0, "reg_order": 2}),
])
def test_an_integral_float_and_an_int_name_one_case(given, typed):
    """hidden=8.0 and hidden=8 were two case ids: a resume typed the other way ran the finished case again."""
    case, same = _case(**given), _case(**typed)
    assert case.hparams == typed and {k: type(v) for k, v in case.hparams.items()} == {
        k: type(v) for k, v in typed.items()}
    assert case.case_id == same.case_id


def test_snode_options_are_typed_by_their_fields():
    case = _case("vehicle", "snode", snode_degree=4.0, snode_gamma=1, snode_elements=None)
    assert case.hparams == {"snode_degree": 4, "snode_gamma": 1.0, "snode_elements": None}
    assert [type(case.hparams[k]) for k in ("snode_degree", "snode_gamma")] == [int, float]


def test_values_that_cannot_be_typed_are_still_refused():
    for bad in ({"hidden": 8.5}, {"hidden": "8"}, {"lr": float("nan")}, {"hidden": True}):
        with pytest.raises(UserError):
            _case(**bad)
    assert typed_hparams("cubic_spiral", {"hidden": 8.5, "unknown": 1.0}) == {"hidden": 8.5, "unknown": 1.0}


def test_typing_changes_no_case_of_any_paper_preset_or_suite():
    """The committed runs' case ids stay valid: every paper preset and suite already types its numbers."""
    cases = [case for paper in nodebench.list_papers() for spec in [load_paper(paper)]
             for preset in spec.presets() for case in spec.cases(preset, device="cpu")]
    cases += [case for name in available_suites() for case in load_suite(name).cases()]
    assert len(cases) > 1000
    for case in cases:
        assert json.dumps(typed_hparams(case.task, case.hparams), sort_keys=True) == json.dumps(
            dict(case.hparams), sort_keys=True), case


def test_a_resume_typed_the_other_way_runs_nothing_again(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--out", str(out),
              "--hparam", "n_points=6", "--no-progress"]
    assert main([*common, "--hparam", "hidden=4"]) == 0
    first = pd.read_parquet(out / "records.parquet")
    assert main([*common, "--hparam", "hidden=4.0"]) == 0
    again = pd.read_parquet(out / "records.parquet")
    assert len(again) == 1
    pd.testing.assert_frame_equal(again, first)


def test_planning_a_sweep_reads_a_data_file_once_per_check_not_per_case(tmp_path, monkeypatch):
    """Planning 6 cases of one trajectory file read it 8 times (the checks built the task per case, and typing the
    hyper-parameters per grid point): an 80 MB file cost half a second per read before anything ran."""
    import numpy as np

    path = tmp_path / "x.npz"
    np.savez(path, t=np.linspace(0, 1, 10), y=np.random.default_rng(0).random((8, 10, 2)))
    reads, load = [], np.load
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: reads.append(args[0]) or load(*args, **kwargs))
    cases = nodebench.run(f"trajectories:{path}", "rk4,euler", seeds=3, iters=2, dry_run=True,
                          out=tmp_path / "out").cases
    assert len(cases) == 6 and len(reads) <= 2, reads
