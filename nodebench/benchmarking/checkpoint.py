"""Measurements of a benchmark script kept cell by cell, so that a run stopped by a time limit keeps what it
finished and the same command resumes after it (``benchmarks/taylor_cost.py``, ``benchmarks/gq_gradient_cost.py``).

A cell is one point of the script's grid (a width; a dimension and order). After each cell the script hands its
rows to :meth:`Checkpoint.add`, which rewrites ``<table>.parquet`` in ``--out`` atomically, with the run's
settings beside them in ``settings.json``. A rerun with the same settings skips the finished cells
(:meth:`Checkpoint.done`); one with other settings is refused, so that tables measured differently are never
mixed or overwritten. The grid's axes themselves are not settings: a rerun may add cells.

``settings.json`` also records the environment the samples are measured in (:data:`ENVIRONMENT_KEYS`, fields of
the records' :func:`nodebench.harness.environment.environment`: the commit, the CPU and GPU models, threads and
package versions), and a rerun in another one is refused too, naming what differs: a time measured on other
hardware or code is not comparable (the measuring guide's environment record). The host name is not compared (a
container's changes with every start), and uncommitted changes cannot be: a ``-dirty`` checkout resumes a run of
the same dirty commit with a warning. A folder written before the environment was recorded is refused unless
``assume_same_environment`` (the scripts' ``--assume-same-environment``) says it was measured here; this
environment is then recorded for it at once (a later rerun needs no flag).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nodebench.benchmarking.compare import SETTING_KEYS
from nodebench.errors import UserError
from nodebench.paths import output_dir
from nodebench.records import atomic_write, short_commit

SETTINGS = "settings.json"
#: The key of ``settings.json`` that holds the environment, apart from the settings compared
ENVIRONMENT = "environment"
#: The record fields that identify where and with what code a run measured; a resume must match them all
ENVIRONMENT_KEYS = ("git_sha", "version_nodebench", "cpu_model", "gpu_model", *SETTING_KEYS)


class Checkpoint:
    """The tables of one benchmark run in ``out``, written after every cell.

    Args:
        out: the run's folder (made at the first :meth:`add`).
        settings: what the measurement depends on (JSON-able; values that are not are compared as text).
        key: the columns of the ``main`` table that identify a cell.
        main: the table whose cells :meth:`done` lists.
        environment: this process's :func:`nodebench.harness.environment.environment` (its
            :data:`ENVIRONMENT_KEYS` are recorded and compared).
        assume_same_environment: resume a run that recorded no environment as measured in this one.

    Attributes:
        environment: the environment the samples were measured in (the recorded one when resuming), for a summary.

    Raises:
        UserError: ``out`` holds a run with other settings, one measured in another environment or one that
            recorded none (unless ``assume_same_environment``), an unreadable ``settings.json``, or tables without
            one (a run made before checkpoints, never overwritten).

    Example:
        >>> checkpoint = Checkpoint(out, {"rounds": 7, "device": "cpu"}, key=["width"], environment=environment())
        >>> for width in widths:
        ...     if (width,) not in checkpoint.done():
        ...         checkpoint.add(samples=measure(width))
        >>> samples = checkpoint.table("samples")
    """

    def __init__(self, out: Path, settings: Mapping[str, Any], key: Sequence[str], main: str = "samples", *,
                 environment: Mapping[str, Any], assume_same_environment: bool = False):
        self.out, self.key, self.main = Path(out), list(key), main
        self.settings = json.loads(json.dumps(dict(settings), default=str))
        self.environment = json.loads(json.dumps({k: environment.get(k) for k in ENVIRONMENT_KEYS}, default=str))
        self.tables: dict[str, pd.DataFrame] = {}
        output_dir(self.out, "out (--out)")  # a folder (new or a previous run's), checked before anything is measured
        path = self.out / SETTINGS
        if not path.exists():
            if any(self.out.glob("*.parquet")):
                raise UserError(f"{self.out} holds tables without {SETTINGS} (a run that cannot be resumed); "
                                "move them away or give another out (--out)")
            return
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"{path} is not a readable settings file ({err}); give another out (--out)") from None
        if not isinstance(saved, dict):
            raise UserError(f"{path} holds {type(saved).__name__}, not the settings of a run; give another out (--out)")
        recorded = saved.pop(ENVIRONMENT, None)
        if saved != self.settings:
            changed = sorted(k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k))
            raise UserError(f"{self.out} holds a run with other settings ({', '.join(changed)}); rerun with its "
                            "settings to resume it, or give another out (--out)")
        self._check_environment(recorded, assume_same_environment)
        self.tables = {table.stem: _read(table) for table in sorted(self.out.glob("*.parquet"))}

    def _check_environment(self, recorded: Any, assume_same: bool) -> None:
        """Refuse a run ``recorded`` in another environment, or one that recorded none unless ``assume_same``."""
        if recorded is None:
            if not assume_same:
                raise UserError(f"{self.out} holds a run that did not record the machine and commit it was "
                                "measured on (written before nodebench recorded them); if it was measured here, "
                                "rerun with --assume-same-environment (assume_same_environment=True), else give "
                                "another out (--out)")
            self._write_settings()  # asserted once: a later rerun needs no flag
            return
        if not isinstance(recorded, dict):
            raise UserError(f"{self.out / SETTINGS} holds {type(recorded).__name__} as its {ENVIRONMENT}, not the "
                            "environment of a run; give another out (--out)")
        changed = [k for k in ENVIRONMENT_KEYS if k in recorded and recorded[k] != self.environment[k]]
        if changed:
            def text(key: str, value: Any) -> str:
                return short_commit(value) if key == "git_sha" else repr(value)
            differs = ", ".join(f"{'commit' if k == 'git_sha' else k} {text(k, recorded[k])} "
                                f"(here {text(k, self.environment[k])})" for k in changed)
            raise UserError(f"{self.out} was measured in another environment: {differs}; its samples are not "
                            "mixed with this one's: resume it where it was measured, or give another out (--out)")
        if str(recorded.get("git_sha", "")).endswith("-dirty"):
            commit = short_commit(recorded["git_sha"]).removesuffix("-dirty")
            print(f"nodebench: warning: {self.out} was measured with uncommitted changes to commit {commit}, as this "
                  "checkout has; whether they are the same changes is not checked", file=sys.stderr, flush=True)
        self.environment = self.environment | recorded

    def _write_settings(self) -> None:
        saved = self.settings | {ENVIRONMENT: self.environment}
        atomic_write(self.out / SETTINGS, lambda tmp: tmp.write_text(json.dumps(saved, indent=1)))

    def done(self) -> set[tuple]:
        """The keys of the cells already measured."""
        table = self.tables.get(self.main)
        if table is None or table.empty:
            return set()
        return {tuple(row) for row in table[self.key].drop_duplicates().itertuples(index=False)}

    def table(self, name: str) -> pd.DataFrame:
        """All rows of table ``name`` so far (empty if none)."""
        return self.tables.get(name, pd.DataFrame())

    def add(self, **tables: pd.DataFrame) -> None:
        """Append one cell's rows to each named table and write the tables (and the settings) atomically."""
        self.out.mkdir(parents=True, exist_ok=True)
        if not (self.out / SETTINGS).exists():
            self._write_settings()
        for name, rows in tables.items():
            if rows.empty:
                continue
            before = self.tables.get(name)
            table = rows if before is None or before.empty else pd.concat([before, rows], ignore_index=True)
            self.tables[name] = table
            atomic_write(self.out / f"{name}.parquet", lambda tmp, table=table: table.to_parquet(tmp, index=False))


def _read(path: Path) -> pd.DataFrame:
    """A saved table; an unreadable one (a truncated file) is a :class:`UserError`, not a pyarrow error."""
    try:
        return pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise UserError(f"{path} is not a readable table ({' '.join(str(err).split())[:160]}); move it away or "
                        "give another out (--out)") from None
