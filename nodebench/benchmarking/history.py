"""The history store: one folder per suite run, keyed by (machine, suite, date, git sha), no server.

Layout under the store root (default ``results/history/``)::

    <machine>/<suite>/<YYYYmmddTHHMMSSZ>-<sha12>/   records.parquet, curves.parquet, run.json, compare.md

Each run writes only its own folder, so several machines can share one store on a shared filesystem
without locking, and histories from different machines never mix. The machine name defaults to the host
name (made path-safe); set ``--machine`` or ``NODEBENCH_MACHINE`` where host names change between jobs (CI,
containers). A machine or suite name given must be a plain name as it is: an empty one, a path (``a/b``,
``../x``) or a character the store cannot keep is refused, never rewritten.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path

import pandas as pd

from nodebench.errors import UserError
from nodebench.harness.environment import git_sha
from nodebench.paths import plain_name
from nodebench.records import RECORDS, short_commit
from nodebench.runner.sweep import read_run_info, write_run_info

DEFAULT_STORE = Path("results") / "history"


def machine_name(name: str | None = None) -> str:
    """The store's machine key: ``name``, else ``$NODEBENCH_MACHINE`` (both a plain name as given:
    :func:`~nodebench.paths.plain_name`), else the host name made path-safe."""
    if name is not None:
        return plain_name(name, "machine name", "ci-cpu")
    if os.environ.get("NODEBENCH_MACHINE"):
        return plain_name(os.environ["NODEBENCH_MACHINE"], "NODEBENCH_MACHINE", "ci-cpu")
    raw = platform.node() or "unknown"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._")
    if not safe:
        raise UserError(f"machine name {raw!r} has no letters or digits; give e.g. --machine ci-cpu")
    return safe


def new_run(store: str | Path, machine: str, suite: str, **meta) -> Path:
    """Create the folder of a new run in the store and its ``run.json``; return the folder."""
    now = _dt.datetime.now(_dt.timezone.utc)
    sha = git_sha()
    folder = Path(store) / plain_name(machine, "machine") / plain_name(suite, "suite")
    run_dir = folder / f"{now:%Y%m%dT%H%M%SZ}-{short_commit(sha)}"
    if run_dir.exists():
        raise UserError(f"{str(run_dir)!r} exists already; wait a second and rerun")
    write_run_info(run_dir, command="bench", suite=suite, machine=machine, git_sha=sha,
                   date=now.isoformat(timespec="seconds"), **meta)
    return run_dir


def list_runs(store: str | Path, machine: str | None = None, suite: str | None = None) -> pd.DataFrame:
    """Finished runs in the store (those with records), oldest first by their UTC start (``run.json``'s date,
    else the folder name's: :func:`folder_date`): columns ``machine, suite, date, git_sha, device, run_dir``
    (``device``: the one ``run.json`` names, ``""`` for a run that names none).
    ``machine`` and ``suite`` select (None: all) and must be plain names; a store that is a file is a
    :class:`UserError` (one that does not exist yet has no runs)."""
    if Path(store).is_file():
        raise UserError(f"history store {str(store)!r} is a file; give the folder that `nodebench bench --out` writes")
    for value, what, example in ((machine, "machine name", "ci-cpu"), (suite, "suite name", "nightly")):
        if value is not None:
            plain_name(value, what, example)
    rows = []
    for records in sorted(Path(store).glob(f"{machine or '*'}/{suite or '*'}/*/{RECORDS}")):
        run_dir = records.parent
        info = read_run_info(run_dir)
        rows.append({"machine": run_dir.parent.parent.name, "suite": run_dir.parent.name,
                     "date": info.get("date") or folder_date(run_dir),
                     "git_sha": info.get("git_sha", run_dir.name.partition("-")[2]),
                     "device": str(info.get("device") or ""), "run_dir": run_dir})
    frame = pd.DataFrame(rows, columns=["machine", "suite", "date", "git_sha", "device", "run_dir"])
    when = pd.to_datetime(frame["date"], utc=True, errors="coerce", format="ISO8601")  # one clock: run.json's
    return frame.assign(when=when).sort_values(["when", "run_dir"], kind="stable").drop(columns="when").reset_index(
        drop=True)


def folder_date(run_dir: Path) -> str:
    """The UTC start in a run folder's name (``20260102T030405Z-sha``) written as ``run.json`` writes its date
    (``2026-01-02T03:04:05+00:00``), so that runs with and without a ``run.json`` date sort and read alike; the
    name's first part as it is where it is no such time."""
    stamp = run_dir.name.split("-")[0]
    try:
        when = _dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return stamp
    return when.isoformat(timespec="seconds")


def previous_run(store: str | Path, run_dir: Path) -> Path | None:
    """The latest finished run of the same machine, suite and device before ``run_dir``, or None. A run on
    another device is no baseline: every configuration would be new, and the gate would pass having compared
    nothing (a run naming no device, from before ``run.json`` named it, is taken as on any device)."""
    run_dir = Path(run_dir)
    runs = list_runs(store, run_dir.parent.parent.name, run_dir.parent.name)
    device = str(read_run_info(run_dir).get("device") or "")
    earlier = [Path(row.run_dir) for row in runs.itertuples()
               if Path(row.run_dir).name < run_dir.name and same_device(row.device, device)]
    return earlier[-1] if earlier else None


def same_device(a: str, b: str) -> bool:
    """Whether runs on devices ``a`` and ``b`` gate against each other (``""``: a run that names no device)."""
    return a == b or "" in (a, b)
