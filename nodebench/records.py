"""Tidy records: one row per case in ``records.parquet``, per-iteration curves in ``curves.parquet``.

Each case is first written on its own into ``RUN_DIR/cases/`` (``<case_id>.json`` and
``<case_id>.curves.parquet``), each file atomically (written to a temporary name, flushed to disk with
fsync, then renamed), so a killed sweep or a lost machine never leaves a half-written case and never loses
a finished one. :func:`merge` then gathers them into the two Parquet files, again atomically.

Before a case counts as finished, :func:`valid_cases` checks it: its row must be a JSON object naming its
own case id and its curves file and extra tables must be readable Parquet. A truncated, empty or corrupt row, a
row whose curves file was deleted, and a copy of a row under another name are moved to ``RUN_DIR/cases/rejected/``
(nothing is deleted), said in one line each, and the case runs again.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from nodebench.errors import UserError
from nodebench.schema import check_records, check_row

RECORDS = "records.parquet"
CURVES = "curves.parquet"
CASES = "cases"
REJECTED = "rejected"
CURVE_KEYS = ("case_id", "task", "method", "seed", "experiment")
CASE_ID = re.compile(r"[0-9a-f]{16}")
#: Provenance columns of every row, with their values for a case whose task reported none (a task that
#: generates its data, or a case that failed before its data was read): the data set, its split sizes, and
#: whether its files matched their pinned checksums (:mod:`nodebench.datasets.catalog`).
PROVENANCE = MappingProxyType({"dataset": "", "n_train": None, "n_val": None, "n_test": None,
                               "data_verified": False})


def provenance_columns(provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The provenance columns of a row: :data:`PROVENANCE` updated by what the task reported."""
    return dict(PROVENANCE) | {k: v for k, v in (provenance or {}).items() if k in PROVENANCE}


def short_commit(sha: object) -> str:
    """A record's ``git_sha`` (:func:`nodebench.harness.environment.git_sha`) cut to 12 characters for a label,
    keeping its ``-dirty`` suffix (``1a2b3c4d5e6f-dirty``: uncommitted changes, not that commit's code);
    ``""`` for none."""
    text = "" if sha is None else str(sha)
    return text[:12] + "-dirty" * text.endswith("-dirty")


def atomic_write(path: Path, write) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then renamed over it (and synced): a reader or a
    killed writer never sees half a file. A write that raises (Ctrl-C included) leaves ``path`` as it was and
    removes its temporary file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_case(cases_dir: Path, case_id: str, row: dict, curves: dict[str, list],
               tables: dict[str, list[dict]] | None = None) -> None:
    """Write one finished case atomically: its extra tables and curves first, then its row, so a row
    implies the rest. An earlier row of the case (a failure being retried) is removed before anything is
    written, so a write cut short leaves no row (the case runs again), never the old row with the new
    curves. ``tables`` maps a name to tidy rows, merged into ``<name>.parquet``. The row is checked against
    the records schema (:mod:`nodebench.schema`)."""
    check_row(row)
    cases_dir.mkdir(parents=True, exist_ok=True)
    (cases_dir / f"{case_id}.json").unlink(missing_ok=True)
    for name, rows in (tables or {}).items():
        extra = pd.DataFrame(rows)
        extra.insert(0, "case_id", case_id)
        atomic_write(cases_dir / f"{case_id}.{name}.table.parquet", lambda p: extra.to_parquet(p, index=False))
    frame = pd.DataFrame(curves)
    for key in reversed(CURVE_KEYS):
        frame.insert(0, key, row[key])
    atomic_write(cases_dir / f"{case_id}.curves.parquet", lambda p: frame.to_parquet(p, index=False))
    atomic_write(cases_dir / f"{case_id}.json", lambda p: p.write_text(json.dumps(_json_row(row), default=str)))


def _json_row(row: dict) -> dict:
    """``row`` as JSON values: a NumPy scalar as the Python number it holds (``default=str`` would store
    ``np.float32(0.5)`` as the string ``"0.5"``, and the metric's column would become text), NaN as null."""
    plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in plain.items()}


def valid_cases(run_dir: Path) -> dict[str, dict]:
    """The rows of the valid cases in ``run_dir/cases`` by case id; every invalid one is moved to
    ``cases/rejected/`` with one line on stderr (see the module docstring)."""
    folder = Path(run_dir) / CASES
    rows = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        case_id = path.name[: -len(".json")]
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            row = None
        if not isinstance(row, dict) or "status" not in row:
            why = "is empty" if path.stat().st_size == 0 else "is truncated or not a case row"
        elif not CASE_ID.fullmatch(case_id) or row.get("case_id") != case_id:
            why = f"names case {row.get('case_id')!r}, not its file name (a copy?); not merged"
        else:
            why = _unreadable_parquet(folder, case_id)
            if why is None:
                rows[case_id] = row
                continue
        _reject(folder, case_id, why)
    return rows


def _unreadable_parquet(folder: Path, case_id: str) -> str | None:
    """What is wrong with the Parquet files of a case that :func:`merge` reads (its curves and its extra tables),
    or None when each is readable Parquet."""
    import pyarrow.parquet as pq

    tables = sorted(folder.glob(f"{glob.escape(case_id)}.*.table.parquet"))
    for path in [folder / f"{case_id}.curves.parquet", *tables]:
        what = "curves file" if path.name.endswith(".curves.parquet") else f"{path.name.split('.')[1]} table"
        try:
            pq.read_metadata(path)
        except FileNotFoundError:
            return f"has no {what} (deleted?)"
        except Exception:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
            return f"has an unreadable {what}"
    return None


def _reject(folder: Path, case_id: str, why: str) -> None:
    """Move a case's files aside into ``cases/rejected/`` and say so in one line."""
    rejected = folder / REJECTED
    rejected.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for path in folder.glob(f"{glob.escape(case_id)}.*"):
        if path.name.endswith((".json", ".parquet")):
            os.replace(path, rejected / f"{path.name}.{stamp}")
    rerun = "" if why.endswith("not merged") else ", the case runs again"
    print(f"nodebench: case file cases/{case_id}.json {why}: moved to cases/{REJECTED}/{rerun}", file=sys.stderr)


def finished_case_ids(run_dir: Path, *, include_failed: bool = True) -> set[str]:
    """Ids of the valid cases already in ``run_dir`` (only the ``ok`` ones unless ``include_failed``)."""
    return {case_id for case_id, row in valid_cases(run_dir).items()
            if include_failed or row.get("status") == "ok"}


def merge(run_dir: Path, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gather every case in ``run_dir/cases`` into ``records.parquet`` and ``curves.parquet``."""
    run_dir = Path(run_dir)
    folder = run_dir / CASES
    valid = valid_cases(run_dir)
    # the rows a sweep writes for a worker it lost lack the provenance columns: they get the defaults (else
    # data_verified is NaN there, and no bool column to filter with)
    records = pd.DataFrame([row | {k: v for k, v in PROVENANCE.items() if k not in row} for row in valid.values()])
    if not records.empty:
        records.insert(0, "run_id", run_id)
    curves = _concat([folder / f"{case_id}.curves.parquet" for case_id in valid])
    atomic_write(run_dir / RECORDS, lambda p: records.to_parquet(p, index=False))
    tables: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.table.parquet")):
        if path.name.split(".")[0] in valid:
            tables.setdefault(path.name.split(".")[1], []).append(path)
    for name, paths in tables.items():
        frame = _concat(paths)
        atomic_write(run_dir / f"{name}.parquet", lambda p: frame.to_parquet(p, index=False))
    atomic_write(run_dir / CURVES, lambda p: curves.to_parquet(p, index=False))
    return records, curves


def _concat(paths: list[Path]) -> pd.DataFrame:
    """The Parquet files at ``paths`` as one table. The empty ones (a failed case's curves) are left out while
    another has rows: their columns have no type, and concatenated they turned integer columns (``iteration``,
    ``nfe_forward``) into floats whenever a case had failed."""
    frames = [pd.read_parquet(path) for path in paths]
    frames = [frame for frame in frames if len(frame)] or frames[:1]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """An extra per-case table of a run (e.g. ``rediscretisation``); empty when the run has none."""
    path = Path(run_dir) / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(records, curves)`` of a run directory, as pandas DataFrames."""
    run_dir = Path(run_dir)
    path = run_dir / RECORDS
    if not path.is_file():
        problem = ("does not exist" if not run_dir.exists() else "is a file, not a run folder"
                   if not run_dir.is_dir() else f"holds no {RECORDS}")
        raise UserError(f"{str(run_dir)!r} {problem}; give a directory written by 'nodebench run' or "
                        "'nodebench reproduce'")
    try:
        records = pd.read_parquet(path)
        curves = pd.read_parquet(run_dir / CURVES) if (run_dir / CURVES).is_file() else pd.DataFrame()
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise UserError(f"cannot read the records in {str(run_dir)!r}: {' '.join(str(err).split())[:200]}") from None
    check_records(records, str(path))
    return records, curves


def hparams_dict(hparams) -> dict:
    """One record's ``hparams`` cell as a dict: its JSON object, ``{}`` where none is set (no value, a null or
    ``""``, as :func:`~nodebench.benchmarking.gate_input.check_gate_input` accepts)."""
    if isinstance(hparams, dict):
        return dict(hparams)
    return json.loads(hparams) if isinstance(hparams, str) and hparams else {}


#: the columns every records file written by nodebench has, and that every reader needs.
def expand_hparams(records: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``records`` with one ``hp_<name>`` column per hyper-parameter in its ``hparams`` JSON
    (a value missing from a row's JSON is NaN/None); records without an ``hparams`` column come back
    unchanged."""
    records = records.copy()
    if records.empty or "hparams" not in records:
        return records
    parsed = [hparams_dict(h) for h in records["hparams"]]
    names = sorted({name for row in parsed for name in row})
    for name in names:
        records[f"hp_{name}"] = [row.get(name) for row in parsed]
    return records


def config_labels(records: pd.DataFrame) -> pd.Series:
    """One label per row: the method, followed by the hyper-parameters that vary within ``records``
    (``gq width=3000``), so that a width sweep's configurations stay apart in tables and figures. A
    hyper-parameter a row does not set is left out of its label."""
    expanded = expand_hparams(records)
    varying = [c for c in expanded if c.startswith("hp_") and expanded[c].map(str).nunique() > 1]

    def label(row) -> str:
        parts = [str(row["method"])]
        for column in varying:
            value = row[column]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            parts.append(f"{column[3:]}={value:g}" if isinstance(value, float) else f"{column[3:]}={value}")
        return " ".join(parts)
    return expanded.apply(label, axis=1) if len(expanded) else expanded["method"].astype(str)


def measured_memory(records):
    """Peak memory per record, NaN where it was not measurable: no reading, a ``ru_maxrss`` reading (a
    process-lifetime high-water mark, not a per-phase peak), or a resident-set (``vmhwm``) reading of 0 — the
    phase reused pages already resident (typical in process), which says nothing about what it allocated.
    Reports, figures, claim checks and the leaderboard all read peak memory through it."""
    memory = records["peak_mem_bytes"].astype(float) if "peak_mem_bytes" in records else math.nan
    if "mem_source" in records:
        source = records["mem_source"].fillna("")
        memory = memory.where(~source.isin(["", "ru_maxrss"]) & ~((source == "vmhwm") & (memory <= 0)))
    return memory
