"""Measurements of a benchmark script kept cell by cell, so that a run stopped by a time limit keeps what it
finished and the same command resumes after it (``benchmarks/taylor_cost.py``, ``benchmarks/gq_gradient_cost.py``).

A cell is one point of the script's grid (a width; a dimension and order). After each cell the script hands its
rows to :meth:`Checkpoint.add`, which rewrites ``<table>.parquet`` in ``--out`` atomically, with the run's
settings beside them in ``settings.json``. A rerun with the same settings skips the finished cells
(:meth:`Checkpoint.done`); one with other settings is refused, so that tables measured differently are never
mixed or overwritten. The grid's axes themselves are not settings: a rerun may add cells.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nodebench.errors import UserError
from nodebench.paths import output_dir
from nodebench.records import atomic_write

SETTINGS = "settings.json"


class Checkpoint:
    """The tables of one benchmark run in ``out``, written after every cell.

    Args:
        out: the run's folder (made at the first :meth:`add`).
        settings: what the measurement depends on (JSON-able; values that are not are compared as text).
        key: the columns of the ``main`` table that identify a cell.
        main: the table whose cells :meth:`done` lists.

    Raises:
        UserError: ``out`` holds a run with other settings, an unreadable ``settings.json``, or tables without
            one (a run made before checkpoints, never overwritten).

    Example:
        >>> checkpoint = Checkpoint(out, {"rounds": 7, "device": "cpu"}, key=["width"])
        >>> for width in widths:
        ...     if (width,) not in checkpoint.done():
        ...         checkpoint.add(samples=measure(width))
        >>> samples = checkpoint.table("samples")
    """

    def __init__(self, out: Path, settings: Mapping[str, Any], key: Sequence[str], main: str = "samples"):
        self.out, self.key, self.main = Path(out), list(key), main
        self.settings = json.loads(json.dumps(dict(settings), default=str))
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
        if saved != self.settings:
            changed = sorted(k for k in set(saved) | set(self.settings) if saved.get(k) != self.settings.get(k))
            raise UserError(f"{self.out} holds a run with other settings ({', '.join(changed)}); rerun with its "
                            "settings to resume it, or give another out (--out)")
        self.tables = {table.stem: _read(table) for table in sorted(self.out.glob("*.parquet"))}

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
            atomic_write(self.out / SETTINGS, lambda tmp: tmp.write_text(json.dumps(self.settings, indent=1)))
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
