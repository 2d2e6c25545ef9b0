"""Environment metadata stored on every record row: code version, packages, hardware, threads, and on a CUDA
device the GPU model, driver, clocks and throttle reasons (what the GPU ran under, the measuring guide's
environment record)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

#: Packages whose versions a record holds: nodebench itself (an installed copy has no commit to record) and its
#: numerical dependencies (scikit-learn draws the toy data sets and splits digits, scipy builds SNODE's basis).
PACKAGES = ("nodebench", "torch", "torchdiffeq", "torchsde", "nflows", "numpy", "pandas", "scikit-learn", "scipy")
#: Record column → ``nvidia-smi --query-gpu`` field, read for a CUDA device.
NVIDIA_SMI_FIELDS = {"gpu_driver_version": "driver_version", "gpu_sm_clock_mhz": "clocks.sm",
                     "gpu_mem_clock_mhz": "clocks.mem", "gpu_throttle_reasons": "clocks_throttle_reasons.active"}
_CLOCKS = ("gpu_sm_clock_mhz", "gpu_mem_clock_mhz")
#: Seconds nvidia-smi may take before its values are given up as unknown.
NVIDIA_SMI_TIMEOUT_S = 5


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit of the nodebench checkout, with ``-dirty`` when it has uncommitted changes; ``unknown`` when
    nodebench does not run from a checkout of its own (an installed copy, whose folder may lie inside another
    project's repository: that repository's commit is not the code that ran)."""
    root = Path(__file__).resolve().parents[2]
    try:
        top, sha = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=root, capture_output=True,
                                  text=True, check=True).stdout.splitlines()
        if Path(top).resolve() != root:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, ValueError, subprocess.CalledProcessError):
        return "unknown"
    return sha.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int | None:
    """The CPUs this process may run on: its affinity mask (what ``taskset``, a SLURM allocation or a container's
    cpuset leaves it), else all the machine's (``os.cpu_count``, None if unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks (macOS, Windows)
        return os.cpu_count()


def _nvidia_smi_id(index: int) -> str:
    """nvidia-smi's ``--id`` for torch's CUDA device ``index``: torch numbers only the devices listed in
    ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs, both accepted by ``--id``), in that order."""
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    return visible[index] if index < len(visible) else str(index)


def gpu_state(index: int) -> dict[str, object]:
    """The NVIDIA driver version, the SM and memory clocks now [MHz] and the active clock throttle reasons
    (nvidia-smi's bit mask, ``0x0000000000000000`` when none) of CUDA device ``index``, from ``nvidia-smi``.
    A value nvidia-smi does not give (``[N/A]``), or all of them when it is missing, fails or runs past
    :data:`NVIDIA_SMI_TIMEOUT_S`, is None."""
    state: dict[str, object] = dict.fromkeys(NVIDIA_SMI_FIELDS)
    command = ["nvidia-smi", f"--id={_nvidia_smi_id(index)}", "--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS.values()),
               "--format=csv,noheader"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=NVIDIA_SMI_TIMEOUT_S,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return state
    lines = out.splitlines()
    values = [value.strip() for value in lines[0].split(",")] if lines else []
    if len(values) != len(state):
        return state
    for key, value in zip(state, values):
        if key in _CLOCKS:
            value = value.removesuffix("MHz").strip()
            state[key] = int(value) if value.isdigit() else None
        else:
            state[key] = value if value and not value.startswith("[") else None
    return state


def _cudnn_version() -> str | None:
    """cuDNN's version (torch's integer, e.g. ``91002``), which picks the convolution kernels of the image tasks on
    CUDA; None where torch has no cuDNN."""
    version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return None if version is None else str(version)


def environment(device: torch.device | str = "cpu") -> dict[str, object]:
    """Metadata for one record row: git sha, package versions, CPU/GPU model, the CPUs the process may use
    (:func:`usable_cpus`), threads, start time, and on a CUDA device its driver, clocks and throttle reasons
    (:func:`gpu_state`) and CUDA and cuDNN versions (None on other devices)."""
    device = torch.device(device)
    env: dict[str, object] = {
        "git_sha": git_sha(),
        "hostname": platform.node(),
        "python_version": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": usable_cpus(),
        "num_threads": torch.get_num_threads(),
        "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda_version": torch.version.cuda if device.type == "cuda" else None,
        "cudnn_version": _cudnn_version() if device.type == "cuda" else None,
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        env |= gpu_state(torch.cuda.current_device() if device.index is None else device.index)
    else:
        env |= dict.fromkeys(NVIDIA_SMI_FIELDS)
    for name in PACKAGES:
        try:
            env[f"version_{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[f"version_{name}"] = None
    return env
