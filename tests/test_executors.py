"""Sweeps through the cluster engines: a local dask.distributed cluster and submitit's local executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nodebench.cli import main
from nodebench.records import load_run
from nodebench.runner.case import Case, expand_grid
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


def _processes_naming(text: str) -> list[int]:
    """PIDs of the live processes whose command line names ``text`` (zombies excluded)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if text in (proc / "cmdline").read_bytes().decode(errors="replace") and state not in ("Z", "X"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc to find the sweep's jobs")
def test_a_terminated_submitit_sweep_stops_its_jobs(tmp_path):
    """SIGTERM stops a sweep on submitit's local executor as it stops a local one: none of its jobs or
    workers goes on computing (and writing into the run folder) a few seconds later."""
    pytest.importorskip("submitit")
    out = tmp_path / "run"
    long_case = Case(task="cubic_spiral", method="euler", iters=10**6)
    script = textwrap.dedent("""
        import json, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the jobs must not inherit an ignored SIGINT
        from nodebench.runner.case import Case
        from nodebench.runner.sweep import run_cases
        run_cases([Case.from_dict(json.loads(sys.argv[1]))], sys.argv[2], executor="submitit", progress=False)
    """)
    sweep = subprocess.Popen([sys.executable, "-c", script, json.dumps(long_case.to_dict()), str(out)],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "cases" / f"{long_case.case_id}.progress").is_file():  # the worker is training
            assert sweep.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        sweep.send_signal(signal.SIGTERM)
        sweep.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _processes_naming(str(out)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes_naming(str(out)), "a submitit job or its worker outlived the sweep by 5 s"
    finally:
        for pid in _processes_naming(str(out)):
            os.kill(pid, signal.SIGKILL)
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()


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
