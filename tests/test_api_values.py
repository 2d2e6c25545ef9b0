"""Values a notebook passes to the Python API (:mod:`nodebench.api`): NumPy numbers are numbers (the same
case, hence the same case id, as the Python number), a flag is a bool, and the lists behind ``nodebench list``."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nodebench
from nodebench.errors import UserError

RUN = Path(__file__).resolve().parents[1] / "results" / "baselines" / "gq_adjoint-quick-cpu"

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


class _Sweep(Exception):
    """Raised by a stand-in for the sweep, with the options it was given."""


def test_engine_options_reach_the_sweep_as_python_values(tmp_path, monkeypatch):
    """threads=1.0 passed the check but not the worker (int('1.0')), whose failure record then stopped the run
    with 'record column num_threads must be int' in a half-written run folder; progress=np.False_ was refused."""
    from nodebench.runner import sweep

    def stand_in(cases, out, **engine):
        raise _Sweep(engine)

    monkeypatch.setattr(sweep, "run_cases", stand_in)
    with pytest.raises(_Sweep) as given:
        nodebench.run("cubic_spiral", "rk4", iters=2, hparams=SMALL, out=tmp_path / "run", jobs=2.0,
                      threads=np.int64(1), timeout_s=np.float32(60), progress=np.False_, retry_failed=np.True_)
    engine = given.value.args[0]
    assert {key: (type(engine[key]), engine[key]) for key in ("jobs", "threads", "timeout_s", "progress",
                                                             "retry_failed")} == {
        "jobs": (int, 2), "threads": (int, 1), "timeout_s": (float, 60.0), "progress": (bool, False),
        "retry_failed": (bool, True)}


def test_an_ab_bench_returns_the_current_codes_records(tmp_path, monkeypatch):
    """RunResult.records and curves were empty after bench(..., baseline=REV), unlike after any other run."""
    from nodebench import api
    from nodebench.benchmarking import ab

    run_dir = tmp_path / "store" / "m" / "nightly" / "run"
    run_dir.mkdir(parents=True)
    for name in ("records.parquet", "curves.parquet"):
        shutil.copy(RUN / name, run_dir / name)
    monkeypatch.setattr(ab, "bench_ab", lambda *args, **kwargs: types.SimpleNamespace(run_dir=run_dir, exit_code=0))
    monkeypatch.setattr(ab, "report", lambda run: "gate passed")
    monkeypatch.setattr(api, "history", lambda *args, **kwargs: None)
    result = nodebench.bench("nightly", baseline="HEAD", out=tmp_path / "store", machine="m")
    assert result.out == run_dir and result.exit_code == 0
    assert len(result.records) == len(pd.read_parquet(RUN / "records.parquet")) > 0 and not result.curves.empty


def test_dir_lists_the_api():
    """dir(nodebench), hence a notebook's tab completion, listed none of the lazily loaded API before."""
    assert set(nodebench.__all__) <= set(dir(nodebench))


def test_runs_without_out_started_in_one_second_get_their_own_folders(tmp_path, monkeypatch):
    """The default folder was results/runs/<time to the second>: a script's second run in the same second
    resumed into the first's folder and returned both runs' cases as its records."""
    import nodebench.api as api_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(api_module.time, "strftime", lambda fmt, *args: "20261205-120000")
    hparams = {"n_points": 6, "hidden": 4}
    first = api_module.run("cubic_spiral", "rk4", iters=1, hparams=hparams, progress=False)
    second = api_module.run("cubic_spiral", "euler", iters=1, hparams=hparams, progress=False)
    assert (first.out.name, second.out.name) == ("20261205-120000", "20261205-120000-2")
    assert list(first.records["method"]) == ["rk4"] and list(second.records["method"]) == ["euler"]
