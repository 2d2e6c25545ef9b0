"""Device names (``cpu``, ``cuda``, ``cuda:N``): their syntax, and whether the machine at hand has them.

A sweep whose cases run on other machines (SLURM nodes, dask workers) is checked for the syntax only: the
machine that submits it (a login node) needs no GPU. Each worker checks its own machine before the case
starts (:func:`unavailable`), so a node without the device is a failed case whose reason says so.
"""

from __future__ import annotations

import torch

from nodebench.errors import UserError

VALID = "cpu, cuda, cuda:N"


def parse_device(device: str) -> torch.device:
    """``device`` as a :class:`torch.device`; anything but ``cpu``, ``cuda`` or ``cuda:N`` is a UserError."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}; valid: {VALID}") from None
    if parsed.type not in ("cpu", "cuda") or (parsed.type == "cpu" and parsed.index is not None):
        raise UserError(f"unsupported device {device!r}; valid: {VALID}")
    return parsed


def unavailable(device: torch.device) -> str | None:
    """Why this machine cannot run on ``device`` (no CUDA, or fewer GPUs than ``cuda:N`` needs), else None."""
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return f"device {str(device)!r} requested but CUDA is not available on this machine"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return (f"device {str(device)!r} requested but this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}")
    return None


def check_device(device: str, here: bool = True) -> str:
    """``device`` normalised (``cpu``, ``cuda``, ``cuda:N``); unknown is a UserError, and so, with ``here``
    (the cases run on this machine), is a device this machine does not have."""
    parsed = parse_device(device)
    problem = unavailable(parsed) if here else None
    if problem:
        raise UserError(problem if torch.cuda.is_available() else f"{problem}; use cpu")
    return str(parsed)
