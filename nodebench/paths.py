"""Checks of the paths and names a command will write to, made before any work starts.

Every check raises :class:`~nodebench.errors.UserError` (one line, exit code 2) naming the path and what is
wrong with it: an empty path, a file where a folder is needed (or the reverse), a path under a regular
file, a folder that is not writable, a name read from a file that is not a plain identifier (a suite
called ``../../x`` must not escape the history store).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from nodebench.errors import UserError

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def nonempty_path(text: str) -> Path:
    """``argparse`` type of an output path: refuses the empty string (which would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def plain_name(value, what: str, example: str = "nightly") -> str:
    """``value`` if it is a plain identifier (letters, digits, ``_ . -``, starting with a letter or digit), the
    only names that may become a path component: an empty name or a path (``a/b``, ``../x``) is refused, never
    rewritten."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        raise UserError(f"{what} {value!r} is not a plain name; use letters, digits, '_', '.' and '-', starting "
                        f"with a letter or digit (e.g. {example})")
    return value


#: The longest file or folder name, in bytes, of the common file systems (ext4, xfs, btrfs, APFS, NTFS).
NAME_MAX = 255


def _short_names(path: Path, what: str) -> None:
    """Every name in ``path`` must be short enough to exist (checked first: ``exists()`` itself fails on one)."""
    long = [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX]
    if long:
        raise UserError(f"{what} {str(path)[:60]!r}… cannot be created: the name {long[0][:20]!r}… is longer "
                        f"than {NAME_MAX} bytes")


def _writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable folder."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} {str(path)!r} lies under {str(parent)!r}, which is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{what} {str(path)!r} cannot be created: {str(parent)!r} is not writable")
            return


def output_dir(path: Path, what: str = "out (--out)") -> Path:
    """A folder the command will create or write into; ``what`` names it in messages, as the Python argument beside
    the command's flag (:mod:`nodebench.api` and the command line raise the same messages)."""
    if str(path) == "":
        raise UserError(f"{what} is empty; give a folder")
    _short_names(path, what)
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{what} {str(path)!r} is a file; give a folder (new or a previous output folder)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"{what} {str(path)!r} is not writable")
        return path
    _writable_parent(path, what)
    return path


def output_file(path: Path, what: str = "out (--out)") -> Path:
    """A Markdown file the command will create or replace, named ``*.md``: a run's records, ``run.json`` or
    another file of another kind is never written over."""
    if str(path) == "":
        raise UserError(f"{what} is empty; give a file")
    _short_names(path, what)
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; give a file name, e.g. {str(path / 'compare.md')!r}")
    if path.suffix != ".md":
        raise UserError(f"{what} {str(path)!r} does not end in .md: the command writes a .md file, never "
                        f"over a file of another kind (records, run.json); give e.g. {str(path.with_suffix('.md'))!r}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what} {str(path)!r} is not writable")
    _writable_parent(path, what)
    return path


def writable_entries(folder: Path, *, files: tuple[str, ...] = (), folders: tuple[str, ...] = ()) -> None:
    """A :class:`UserError` where ``folder`` already holds one of the ``files`` a command writes as a folder,
    or one of its ``folders`` as a file: checked before any work, so nothing fails half-way through."""
    for name in files:
        if (folder / name).is_dir():
            raise UserError(f"{str(folder / name)!r} is a folder where a file is written; move it away or give "
                            "another output folder")
    for name in folders:
        if (folder / name).exists() and not (folder / name).is_dir():
            raise UserError(f"{str(folder / name)!r} is a file where a folder is written; move it away or give "
                            "another output folder")


def sweep_dir(path: Path, *, allow_mixed_commits: bool = False) -> Path:
    """The output folder of a sweep: a writable folder, not in use by a live sweep, not a merged run whose
    per-case files are gone (the merge would replace its records), and holding no cases of another git
    commit unless ``allow_mixed_commits``. Reads only: nothing is written or moved."""
    from nodebench.harness.environment import git_sha
    from nodebench.records import CASES, CURVES, RECORDS
    from nodebench.runner.guard import LOCK, check_commit, check_not_locked, read_json_object
    from nodebench.runner.sweep import LOGS, RUN_INFO

    output_dir(path)
    if not path.is_dir():
        return path
    writable_entries(path, files=(RECORDS, CURVES, RUN_INFO, "report.md", LOCK), folders=(CASES, LOGS, "figures"))
    for name in (CASES, LOGS):  # the workers write there: a read-only one would fail every case
        if (path / name).is_dir():
            output_dir(path / name, "the folder in out (--out)")
    check_not_locked(path)
    if (path / RECORDS).is_file() and not (path / CASES).is_dir():
        raise UserError(f"{str(path)!r} holds {RECORDS} but no {CASES}/ folder (a copied or published run); "
                        "a sweep there would replace its records: give another out (--out)")
    rows = [row for row in map(read_json_object, sorted((path / CASES).glob("*.json"))) if row]
    check_commit(rows, git_sha(), path, allow_mixed=allow_mixed_commits, warn=False)  # the run warns as it adds
    return path


def unique_paths(paths: list[Path]) -> list[Path]:
    """``paths`` without repeats of the same file or folder (compared resolved), first occurrence kept."""
    seen, out = set(), []
    for path in paths:
        key = path.resolve()
        if key.is_file() and key.name == "records.parquet":
            key = key.parent  # a run folder and its records file are one run
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out
