"""Devices: a CUDA sweep submitted from a machine without a GPU (a SLURM login node) is checked where its cases
run; a device the machine at hand lacks is one line before anything runs, or a failed case on a worker."""

from __future__ import annotations

import signal
import sys

import pytest
import torch
from test_executors import _fake_slurm

import nodebench
from nodebench.errors import UserError
from nodebench.runner.case import Case, expand_grid
from nodebench.runner.executors import gpus_needed, open_engine, run_remote
from nodebench.runner.sweep import record_failure, run_case_process
from nodebench.runner.worker import run_case

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


def _dry(device: str, **engine):
    return nodebench.run("cubic_spiral", "rk4", iters=2, device=device, dry_run=True, **engine).cases


def test_a_gpu_index_this_machine_does_not_have_is_one_line(monkeypatch):
    """cuda:7 on a one-GPU machine passed the check; every case then failed inside its worker."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert [case.device for case in _dry("cuda:0")] == ["cuda:0"]
    with pytest.raises(UserError, match=r"^device 'cuda:7' requested but this machine has 1 CUDA device\(s\), "
                                         r"cuda:0 to cuda:0$"):
        _dry("cuda:7")


@needs_no_gpu
def test_a_cuda_sweep_for_slurm_is_accepted_on_a_login_node_without_a_gpu(tmp_path, monkeypatch):
    """--device cuda --executor submitit was refused on a machine without CUDA, though SLURM runs the cases on
    its GPU nodes; run here (local, or submitit without SLURM), it is still refused."""
    pytest.importorskip("submitit")
    with pytest.raises(UserError, match="CUDA is not available on this machine; use cpu"):
        _dry("cuda", executor="submitit")  # no SLURM here: submitit's local executor runs the cases here
    _fake_slurm(tmp_path, monkeypatch, "exit 1")
    assert [case.device for case in _dry("cuda", executor="submitit")] == ["cuda"]
    with pytest.raises(UserError, match="CUDA is not available on this machine; use cpu"):
        _dry("cuda")
    with pytest.raises(UserError, match="unknown device 'gpu'"):
        _dry("gpu", executor="submitit")  # the syntax is checked wherever the cases run


@needs_no_gpu
def test_a_worker_without_the_device_records_a_failed_case_that_says_so(tmp_path):
    """A SLURM node or dask worker without CUDA: the case is an error row naming the device and the machine
    (it died in the environment probe before, outside the case's error handling)."""
    case = Case(task="cubic_spiral", method="rk4", device="cuda", iters=2, hparams={"n_points": 6, "hidden": 4})
    row = run_case(case, tmp_path)
    assert row["status"] == "error" and row["device"] == "cuda"
    assert "device 'cuda' requested but CUDA is not available on this machine (" in row["reason"]


def test_gpus_needed_counts_the_highest_index():
    def cases(*devices):
        return [Case(task="t", method="m", device=device) for device in devices]

    assert gpus_needed(cases("cpu")) == 0
    assert gpus_needed(cases("cpu", "cuda")) == 1
    assert gpus_needed(cases("cuda:0", "cuda:2")) == 3


def test_slurm_jobs_of_a_cuda_sweep_ask_for_their_gpus(tmp_path, monkeypatch):
    """The job array asked SLURM for no GPU: a CUDA sweep landed on nodes without one unless the user's
    sbatch environment asked for it."""
    submitit = pytest.importorskip("submitit")
    script = tmp_path / "sbatch-script"
    _fake_slurm(tmp_path, monkeypatch, f'cp "$1" {script}; echo "Submitted batch job 4242"', sacct="exit 0",
                scancel="exit 0")
    assert submitit.AutoExecutor(folder=tmp_path / "probe").cluster == "slurm"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for device, expected in (("cuda:1", "#SBATCH --gpus-per-node=2"), ("cpu", None)):
        cases = expand_grid(tasks=["cubic_spiral"], methods=["rk4"], seeds=range(2), iters=2, device=device)
        previous = signal.signal(signal.SIGALRM, interrupt)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.5)
            with pytest.raises(KeyboardInterrupt), open_engine("submitit", None) as engine:
                run_remote(cases, tmp_path / device, engine=engine, run_case=run_case_process,
                           record_failure=record_failure, jobs=2, threads=1, timeout_s=60, progress=False)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        lines = script.read_text().splitlines()
        gpu_lines = [line for line in lines if "gpu" in line]
        assert gpu_lines == ([expected] if expected else []), gpu_lines


def test_submitit_missing_is_its_install_hint_not_a_traceback(monkeypatch):
    """Choosing where the device is checked imported submitit before the executor check named the extra."""
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if not installed: `import submitit` raises
    with pytest.raises(UserError, match=r"executor 'submitit' \(--executor submitit\) needs submitit: pip install "
                                        r"'nodebench\[slurm\]'"):
        _dry("cpu", executor="submitit")
