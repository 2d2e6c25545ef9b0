"""Values a notebook passes to the Python API (:mod:`nodebench.api`): NumPy numbers are numbers (the same
case, hence the same case id, as the Python number), a flag is a bool, and the lists behind ``nodebench list``."""

from __future__ import annotations

import numpy as np
import pytest

import nodebench
from nodebench.errors import UserError

SMALL = {"n_points": 6, "hidden": 4}


def _cases(**kwargs):
    kwargs.setdefault("iters", 2)
    return nodebench.run("cubic_spiral", ["rk4"], dry_run=True, **kwargs).cases


def test_numpy_hparams_are_python_numbers(tmp_path, monkeypatch):
    """A TypeError 'Object of type int64 is not JSON serializable' from deep inside before."""
    monkeypatch.chdir(tmp_path)
    (case,) = _cases(hparams={"n_points": np.int64(6), "hidden": 4, "lr": np.float32(0.5)},
                     method_hparams={"rk4": {"step_size": np.float64(0.25)}})
    assert case.hparams == {"n_points": 6, "hidden": 4, "lr": 0.5, "step_size": 0.25}
    assert all(type(value) in (int, float) for value in case.hparams.values())
    assert case.case_id == _cases(hparams={"n_points": 6, "hidden": 4, "lr": 0.5},
                                  method_hparams={"rk4": {"step_size": 0.25}})[0].case_id
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("limit", [{"iters": np.int64(2)}, {"iters": None, "budget_s": np.float64(3.0)}])
def test_numpy_limits_name_the_same_case(limit, tmp_path, monkeypatch):
    """iters=np.int64(2) hashed to another case id than iters=2 before: a rerun into the same folder was
    refused as 'run with another limit'."""
    monkeypatch.chdir(tmp_path)
    plain = {key: None if value is None else value.item() for key, value in limit.items()}
    (numpy_case,), (python_case,) = _cases(hparams=SMALL, **limit), _cases(hparams=SMALL, **plain)
    assert numpy_case.case_id == python_case.case_id
    assert (type(numpy_case.iters), type(numpy_case.budget_s)) == (type(python_case.iters),
                                                                    type(python_case.budget_s))


@pytest.mark.parametrize("call", [
    lambda: nodebench.run("cubic_spiral", "rk4", iters=2, hparams=SMALL, dry_run="no"),
    lambda: nodebench.reproduce("snode", preset="quick", dry_run="no"),
    lambda: nodebench.bench("nightly", dry_run="no"),
    lambda: nodebench.history(".", html="yes"),
], ids=["run", "reproduce", "bench", "history"])
def test_a_flag_must_be_a_bool(call, tmp_path, monkeypatch):
    """dry_run="no" was true before: nothing ran, silently."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        call()
    assert "must be true or false" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_list_tasks_and_methods_include_the_papers():
    tasks, methods = nodebench.list_tasks(), nodebench.list_methods()
    assert {"cubic_spiral", "g1d"} <= set(tasks) and tasks["cubic_spiral"].defaults["hidden"] > 0
    assert {"rk4", "adjoint", "gq", "snode"} <= set(methods) and methods["gq"].family == "OD"
