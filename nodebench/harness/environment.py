"""Environment metadata stored on every record row: code version, packages, hardware, threads."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "torchdiffeq", "torchsde", "nflows", "numpy", "pandas")


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The commit of the nodebench checkout, with ``-dirty`` when it has uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device | str = "cpu") -> dict[str, object]:
    """Metadata for one record row: git sha, package versions, CPU/GPU model, threads, start time."""
    device = torch.device(device)
    env: dict[str, object] = {
        "git_sha": git_sha(),
        "hostname": platform.node(),
        "python_version": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "num_threads": torch.get_num_threads(),
        "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda_version": torch.version.cuda if device.type == "cuda" else None,
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for name in PACKAGES:
        try:
            env[f"version_{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[f"version_{name}"] = None
    return env
