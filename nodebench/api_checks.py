"""The Python API's argument checks: what the CLI's parser guarantees for a command line, checked again for a
caller of :mod:`nodebench.api`, so that a wrong type or value is one :class:`~nodebench.errors.UserError` line
before anything runs, never a ``TypeError`` from deep inside or a sweep that hangs (``jobs=0``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.registry import nearest

#: Upper bounds of the engine options: far above any real use, low enough that a typo is an error, not a
#: sweep that exhausts the machine (a million torch threads).
MAX_JOBS, MAX_THREADS = 10_000, 1_024
#: The longest per-case time limit, a year: a submitit job asks SLURM for 1.5× it in whole minutes, and
#: ``--timeout-s 1.7e308`` made that infinite (an ``OverflowError`` traceback after the run folder was written).
MAX_CASE_TIMEOUT_S = 365 * 24 * 3600

#: The engine options of :func:`nodebench.api.run`, ``reproduce`` and ``bench`` (``**engine``), typed.
ENGINE = {param.name: param for param in (
    Param("jobs", "int", low=1, high=MAX_JOBS), Param("threads", "int", low=1, high=MAX_THREADS),
    Param("timeout_s", "float", positive=True, high=MAX_CASE_TIMEOUT_S), Param("progress", "bool"),
    Param("retry_failed", "bool"),
    Param("executor", "str", choices=("local", "submitit", "dask")), Param("scheduler", "str", optional=True),
    Param("allow_mixed_commits", "bool"), Param("verify_data", "bool"))}


def check_engine(engine: Mapping[str, Any]) -> dict[str, Any]:
    """``engine`` with every option known and valid (``jobs=0`` would wait forever for a free slot), as the
    Python values the sweep takes: ``threads=1.0`` or ``np.int64(1)`` is 1 (a worker refused ``"1.0"`` threads,
    and its failure record a float), ``progress=np.False_`` is False."""
    for key in engine:
        if key not in ENGINE:
            raise UserError(f"unknown engine option {key!r}{nearest(key, ENGINE)}; valid: {', '.join(ENGINE)}")
    return {key: ENGINE[key].check(plain(value), "engine option") for key, value in engine.items()}


def names(value, what: str) -> list[str]:
    """``value`` as a list of names: one string, or a list or tuple of strings (a string is one name, never
    its characters)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise UserError(f"{what} must be a string or a list of strings, got {value!r}")
    return list(items)


def distinct(items: list[str], what: str) -> None:
    """A :class:`UserError` when ``items`` names one twice: the sweep would run it once (``--method rk4,rk4``,
    ``--experiment X --experiment X``), so a repeat is refused rather than silently dropped."""
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise UserError(f"{what} {', '.join(items)} name {', '.join(repeated)} more than once; give each once")


def table(value, what: str) -> dict[str, Any]:
    """``value`` as a dict with string keys (``None``: empty), NumPy scalar values as Python numbers (a value
    from ``np.logspace`` is a number, and the case id hashes the value's JSON)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise UserError(f"{what} must be a mapping of names to values, e.g. {{'lr': 0.1}}, got {value!r}")
    return {key: plain(item) for key, item in value.items()}


def plain(value):
    """``value`` with NumPy scalars (also in a list or tuple) as the Python numbers, strings or bools they hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    return value


def flag(value, what: str) -> bool:
    """``value``, a bool (``dry_run="no"`` would be true)."""
    return Param(what, "bool").check(plain(value), "argument")


def method_tables(value, methods: list[str]) -> dict[str, dict[str, Any]]:
    """``method_hparams``: a mapping from some of ``methods`` to mappings of options."""
    tables = table(value, "method_hparams")
    for method, options in tables.items():
        if method not in methods:
            raise UserError(f"method_hparams names {method!r}{nearest(method, methods)}, which is not among the "
                            f"methods {', '.join(methods)}")
        tables[method] = table(options, f"method_hparams[{method!r}]")
    return tables


def path(value, what: str) -> Path:
    """``value`` (a string or path-like, not empty) as a :class:`~pathlib.Path`."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise UserError(f"{what} must be a non-empty path, got {value!r}")
    return Path(value)


def positive_numbers(value, what: str) -> dict[str, float]:
    """A mapping of names to positive finite numbers (``thresholds``, ``targets``)."""
    return {key: Param(key, "float", positive=True).check(item, what) for key, item in table(value, what).items()}


__all__ = ["ENGINE", "MAX_CASE_TIMEOUT_S", "MAX_JOBS", "MAX_THREADS", "check_engine", "distinct", "flag",
           "method_tables", "names", "path", "plain", "positive_numbers", "table"]
