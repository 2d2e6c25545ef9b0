"""The environment record's GPU driver, clocks and throttle reasons, read from nvidia-smi for a CUDA device
only, with a fake nvidia-smi first on PATH (no GPU needed)."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import shutil
import stat
import subprocess

import pytest
import torch

from nodebench.harness.environment import NVIDIA_SMI_FIELDS, environment, gpu_state
from nodebench.schema import SCHEMA, check_row

environment_module = importlib.import_module("nodebench.harness.environment")  # the package exports the function

H200 = "570.86.15, 1980 MHz, 3201 MHz, 0x0000000000000004\n"


@pytest.fixture
def fake_smi(tmp_path, monkeypatch):
    """Put an ``nvidia-smi`` printing the given output (and exiting with the given code) first on PATH;
    return the file where it writes its arguments."""
    calls = tmp_path / "calls"

    def install(output: str, code: int = 0):
        (tmp_path / "out").write_text(output)
        script = tmp_path / "nvidia-smi"
        script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncat {tmp_path / "out"}\nexit {code}\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        return calls
    return install


def test_the_gpu_columns_are_in_the_schema():
    for key in NVIDIA_SMI_FIELDS:
        assert key in SCHEMA, key


def test_a_cpu_record_has_the_gpu_values_empty_and_runs_no_nvidia_smi(fake_smi):
    calls = fake_smi(H200)
    env = environment("cpu")
    assert {key: env[key] for key in NVIDIA_SMI_FIELDS} == dict.fromkeys(NVIDIA_SMI_FIELDS)
    assert not calls.exists()


def test_nvidia_smi_output_fills_the_driver_clocks_and_throttle_reasons(fake_smi):
    calls = fake_smi(H200)
    state = gpu_state(1)
    assert state == {"gpu_driver_version": "570.86.15", "gpu_sm_clock_mhz": 1980, "gpu_mem_clock_mhz": 3201,
                     "gpu_throttle_reasons": "0x0000000000000004"}
    assert calls.read_text().split() == ["--id=1", "--query-gpu=driver_version,clocks.sm,clocks.mem,"
                                         "clocks_throttle_reasons.active", "--format=csv,noheader"]
    check_row({"case_id": "c", "paper": "", "experiment": "", "task": "", "method": "", "seed": 0, "device": "cuda",
               "preset": "", "hparams": "", "status": "ok"} | state)  # the schema's types


def test_a_cuda_record_reads_its_own_device(fake_smi, monkeypatch):
    calls = fake_smi(H200)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")  # no GPU needed
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    env = environment("cuda:2")
    assert env["gpu_sm_clock_mhz"] == 1980 and env["gpu_driver_version"] == "570.86.15"
    assert env["cudnn_version"] == "91002" and environment("cpu")["cudnn_version"] is None
    environment("cuda")
    assert [line.split()[0] for line in calls.read_text().splitlines()] == ["--id=2", "--id=0"]


def test_the_device_index_is_mapped_through_cuda_visible_devices(fake_smi, monkeypatch):
    calls = fake_smi(H200)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, GPU-8a1b")
    gpu_state(0)
    gpu_state(1)
    assert [line.split()[0] for line in calls.read_text().splitlines()] == ["--id=3", "--id=GPU-8a1b"]


def test_values_nvidia_smi_does_not_give_are_empty(fake_smi):
    fake_smi("[N/A], [N/A], 1593 MHz, [Not Supported]\n")
    assert gpu_state(0) == {"gpu_driver_version": None, "gpu_sm_clock_mhz": None, "gpu_mem_clock_mhz": 1593,
                            "gpu_throttle_reasons": None}


@pytest.mark.parametrize("output, code", [("", 0), ("No devices were found\n", 6), ("garbage\n", 0),
                                          (H200, 9)])
def test_a_failing_nvidia_smi_gives_empty_values(fake_smi, output, code):
    fake_smi(output, code)
    assert gpu_state(0) == dict.fromkeys(NVIDIA_SMI_FIELDS)


def test_a_missing_nvidia_smi_gives_empty_values(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_state(0) == dict.fromkeys(NVIDIA_SMI_FIELDS)


def test_a_hanging_nvidia_smi_gives_empty_values(tmp_path, monkeypatch, fake_smi):
    fake_smi(H200)
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\nexec sleep 5\n")
    monkeypatch.setattr(environment_module, "NVIDIA_SMI_TIMEOUT_S", 0.2)
    assert gpu_state(0) == dict.fromkeys(NVIDIA_SMI_FIELDS)


def test_cpu_count_is_the_cpus_the_process_may_use_not_the_machines(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a cluster node, of which taskset or SLURM left one CPU
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert environment("cpu")["cpu_count"] == 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # no affinity masks (macOS): the machine's
    assert environment("cpu")["cpu_count"] == 64


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_an_installed_copy_inside_another_repository_records_no_commit_not_that_repositorys(tmp_path):
    # a project's repository holding a virtual environment into which nodebench was installed (not a checkout)
    run = functools.partial(subprocess.run, cwd=tmp_path, check=True, capture_output=True)
    run(["git", "init", "-q"])
    run(["git", "-c", "user.name=n", "-c", "user.email=n@b", "commit", "-q", "--allow-empty", "-m", "project"])
    copy = tmp_path / "venv" / "lib" / "site-packages" / "nodebench" / "harness" / "environment.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(environment_module.__file__, copy)
    spec = importlib.util.spec_from_file_location("installed_environment", copy)
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)
    assert installed.git_sha() == "unknown"  # was the project's commit, recorded as the code that ran


def test_the_record_names_the_nodebench_version_that_ran():
    """An installed copy records no commit (``git_sha`` unknown, above): its records named the versions of torch
    and the other dependencies but not of the nodebench that produced them."""
    import nodebench

    assert environment("cpu")["version_nodebench"] == nodebench.__version__


#: Declared dependencies that only store, draw or print results: no number in a record depends on their version.
NOT_NUMERICAL = {"pyarrow", "matplotlib", "tqdm", "tabulate"}


def test_every_dependency_that_makes_a_cases_numbers_has_its_version_recorded():
    """scikit-learn draws the toy data sets and splits digits, scipy builds SNODE's Legendre basis: a record named
    neither version, so a data set that changed with scikit-learn could not be told from a regression."""
    import re
    import tomllib
    from importlib import metadata
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    declared = {re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower() for requirement in project["dependencies"]}
    env = environment("cpu")
    assert sorted(name for name in declared - NOT_NUMERICAL if f"version_{name}" not in env) == []
    assert env["version_scikit-learn"] == metadata.version("scikit-learn")
    assert env["version_scipy"] == metadata.version("scipy")
