"""Sweeps through the cluster engines: a local dask.distributed cluster and submitit's local executor."""

from __future__ import annotations

import pytest

from nodebench.cli import main
from nodebench.records import load_run
from nodebench.runner.case import expand_grid
from nodebench.runner.executors import check_executor
from nodebench.runner.sweep import run_cases

CASES = expand_grid(tasks=["cubic_spiral"], methods=["rk4"], seeds=range(2), iters=2)


def assert_recorded(run_dir):
    records, curves = load_run(run_dir)
    assert sorted(records["case_id"]) == sorted(c.case_id for c in CASES)
    assert (records["status"] == "ok").all(), records[["status", "reason"]]
    assert sorted(curves.groupby("case_id").size().tolist()) == [2, 2]  # two iterations per case, merged
    assert len(list((run_dir / "cases").glob("*.json"))) == 2  # one file per case in the shared folder


@pytest.mark.slow
def test_sweep_on_a_local_dask_distributed_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_cases(CASES, tmp_path / "dask", executor="dask", scheduler=cluster.scheduler_address, progress=False)
    assert_recorded(tmp_path / "dask")


@pytest.mark.slow
def test_sweep_through_submitits_local_executor(tmp_path):
    submitit = pytest.importorskip("submitit")
    assert submitit.AutoExecutor(folder=tmp_path / "probe").cluster == "local"  # no SLURM here: the fallback
    run_cases(CASES, tmp_path / "submitit", executor="submitit", jobs=2, progress=False)
    assert_recorded(tmp_path / "submitit")
    assert list((tmp_path / "submitit" / "submitit").glob("*_result.pkl"))  # the jobs really went through submitit


@pytest.mark.parametrize("argv, fragment", [
    (["--executor", "dask"], "needs --scheduler"),
    (["--executor", "submitit", "--scheduler", "tcp://x:1"], "--scheduler applies to --executor dask only"),
    (["--executor", "dask", "--scheduler", "notaurl"], "--scheduler 'notaurl' is not a dask scheduler address"),
    (["--executor", "ray"], "invalid choice"),
])
def test_bad_engine_options_are_one_line_and_write_nothing(capsys, tmp_path, argv, fragment):
    out = tmp_path / "run"
    code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--out", str(out), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert not out.exists()


def test_a_missing_engine_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)  # as if not installed
    with pytest.raises(Exception, match=r"pip install 'nodebench\[slurm\]'"):
        check_executor("submitit", None)
