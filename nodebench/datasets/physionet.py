"""PhysioNet/Computing in Cardiology Challenge 2012 records for the latent ODE of Kelly et al., "Learning
Differential Equations that are Easy to Solve" (NeurIPS 2020, §5.2 "latent ODE, PhysioNet 2012").

Kelly et al.'s code (``jacobjinkelly/easy-neural-ode``: ``physionet_data.py``) reuses the preprocessing
of Rubanova, Chen & Duvenaud's latent ODE (NeurIPS 2019, ``YuliaRubanova/latent_ode``, ``physionet.py``).
This module follows it where stated and departs from it where stated:

- **Sets.** Sets A and B (4000 ICU stays each, 8000 patients) as both codes; set C (4000 more, its outcomes
  published after the challenge) is read when asked for (``sets``), never by default. A set is read from
  its extracted folder ``<data>/physionet/set-a/<RecordID>.txt`` or, when there is none, straight from its
  tarball ``<data>/physionet/set-a.tar.gz`` (no extraction needed). Records are taken in file-name order,
  set by set, so ``n_records`` keeps a reproducible prefix. :func:`load_outcomes` reads
  ``Outcomes-a.txt`` … (RecordID, SAPS-I, SOFA, Length_of_stay, Survival, In-hospital_death); the latent
  ODE does not use them.
- **Lines.** A record file starts with ``Time,Parameter,Value``; each further line is one measurement,
  ``HH:MM`` since ICU admission (at most 48:00), e.g. ``00:51,HR,84``.
- **Parameters (as Kelly et al.).** The descriptors ``RecordID``, ``Age``, ``Gender``, ``Height`` and
  ``ICUType`` are dropped; the 37 time series of :data:`PARAMETERS` are kept in that fixed order (the
  codes' 41-name list without its four static entries, which Kelly et al. remove; Rubanova et al.'s own
  code keeps them as four more channels observed at t = 0). ``Weight`` is a descriptor and a time series:
  its ``00:00`` value is kept as an observation at t = 0, **including the challenge's −1 "unknown"
  marker**, which neither code filters (326 of the 4000 set-A records carry it).
- **Time (as Kelly et al.).** Times are quantised to ``quantization`` hours, 1 h by default as in Kelly
  et al.'s runs (Rubanova et al.'s default is 0.1 h); ``round`` sends halves to the even hour, as the
  codes' Python ``round``. Several measurements of one parameter in one bin are **averaged**, as both
  codes do: where a record's −1 Weight shares the t = 0 bin with a real weight (16 set-A records), the
  bin holds their mean, a corrupted value we keep for fidelity (310 set-A records keep a clean −1). Every
  record gets a row at t = 0 (its mask may be all zeros), as the codes' parser starts every record with
  one. The result is, per record, the sorted bin times, a (T, 37) value array and a (T, 37) 0/1 mask; at
  1 h the union grid of the full data is the 49 hours 0…48.
- **Normalisation (departs).** :func:`normalise` scales each channel by min–max, ``(x − min)/(max −
  min)``, with min and max over the observed values of the records it is given (the task passes its
  **training split**). Rubanova et al. compute ``(x − min)/max`` with min and max over all records, train
  and test (``mode="official"`` reproduces it). Outliers stay in both: pH up to 735, Urine up to
  11000, Temp down to −17.8 (sets A and B), so those channels' typical values are squashed near one end of [0, 1].
  Unobserved entries stay 0.
- **Time scale (as Kelly et al. on the full data).** :func:`to_series` divides times by 48 h, so the
  challenge window maps onto [0, 1]; Kelly et al. divide by the largest time of their training set's union
  grid, which is 48 h for the full data set (Rubanova et al. by the largest time of each batch).

**Parsing** is bulk (one split of the file, one conversion per column); a file that is not clean is
re-read line by line so that a malformed line becomes a one-line :class:`~nodebench.errors.UserError`
naming the file and line and what was expected (a missing set names both paths it looked for).
``nodebench data verify physionet`` checks the record files against their pinned digest.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nodebench.datasets.storage import ENV_VAR, data_root, folder_note, read_tar_files
from nodebench.errors import UserError

PathArg = str | os.PathLike | None

FOLDER = "physionet"
SETS = ("set-a", "set-b")
#: Every set of the challenge; set C (4000 more records, outcomes published after the challenge) is optional.
ALL_SETS = ("set-a", "set-b", "set-c")
OUTCOME_COLUMNS = ("RecordID", "SAPS-I", "SOFA", "Length_of_stay", "Survival", "In-hospital_death")
HEADER = "Time,Parameter,Value"
README_HINT = "see datasets/README.md for where to get the files and where to put them"
#: The 37 time-series parameters, in the official code's order (its 41-entry list without Age, Gender,
#: Height and ICUType); channel ``i`` of every array is ``PARAMETERS[i]``.
PARAMETERS: tuple[str, ...] = (
    "Weight", "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN", "Cholesterol", "Creatinine", "DiasABP",
    "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg", "MAP", "MechVent", "Na", "NIDiasABP",
    "NIMAP", "NISysABP", "PaCO2", "PaO2", "pH", "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI",
    "TroponinT", "Urine", "WBC",
)
#: General descriptors, dropped (``Weight`` is kept as a time series, see the module docstring).
STATIC_DESCRIPTORS = ("RecordID", "Age", "Gender", "Height", "ICUType")
CHANNEL = {name: i for i, name in enumerate(PARAMETERS)}
#: Length of the challenge's observation window: times are divided by this to lie in [0, 1].
WINDOW_HOURS = 48.0
NORMALISATIONS = ("minmax", "official")

_TIME = re.compile(r"^(\d+):([0-5]\d)$")
_TIMES = re.compile(r"\d+:[0-5]\d(?:,\d+:[0-5]\d)*")
_STATIC, _UNKNOWN = -1, -2
_CODES = CHANNEL | dict.fromkeys(STATIC_DESCRIPTORS, _STATIC)


@dataclass(frozen=True)
class Record:
    """One ICU stay: quantised times in hours (T,), sorted, unique, ``times[0] == 0``; ``values`` (T, D)
    (0 where unobserved) and ``mask`` (T, D) of 0/1, float64."""

    record_id: str
    times: np.ndarray
    values: np.ndarray
    mask: np.ndarray


def _bad_line(path: str, lineno: int, line: str, why: str) -> UserError:
    shown = line if len(line) <= 60 else line[:57] + "..."
    return UserError(f"{path}:{lineno}: malformed PhysioNet record line {shown!r} ({why}); expected "
                     f"'HH:MM,Parameter,Value' with a parameter among the 37 time series or "
                     f"{'/'.join(STATIC_DESCRIPTORS)} and a finite number")


def parse_record(path: str | os.PathLike, quantization: float = 1.0) -> Record:
    """Parse one challenge record file (see the module docstring for the rules).

    Args:
        path: a ``<RecordID>.txt`` file.
        quantization: bin width in hours (0: no quantisation, times kept to the minute).

    Raises:
        UserError: the file cannot be read, lacks the header, or has a malformed line (wrong field
            count, a time not ``HH:MM``, an unknown parameter, a value that is not a finite number, a
            time beyond 48:00).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read PhysioNet record {path}: {exc}; expected a text file "
                        f"starting with {HEADER!r}") from None
    return parse_record_text(text, str(path), quantization)


def _columns_fast(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(hours, channels, values) of the time-series lines of a well-formed record, split and converted in
    bulk; None when anything is unusual (the line-by-line :func:`_columns_checked` then finds the error)."""
    head, _, body = text.partition("\n")
    body = body.rstrip("\n")
    if head.strip() != HEADER or not body or any(c in body for c in " \t\r"):
        return None
    fields = body.replace("\n", ",").split(",")
    if len(fields) % 3:
        return None
    times = ",".join(fields[0::3])
    if _TIMES.fullmatch(times) is None:
        return None
    count = len(fields) // 3
    try:
        numbers = np.fromiter(map(float, fields[2::3]), dtype=np.float64, count=count)
    except ValueError:
        return None
    codes = np.fromiter(map(_CODES.get, fields[1::3], itertools.repeat(_UNKNOWN)), dtype=np.int64, count=count)
    clock = np.fromiter(map(int, times.replace(":", ",").split(",")), dtype=np.float64, count=2 * count)
    clock = clock.reshape(-1, 2)
    hours = clock[:, 0] + clock[:, 1] / 60.0
    if (codes == _UNKNOWN).any() or not np.isfinite(numbers).all() or (hours > WINDOW_HOURS).any():
        return None
    keep = codes >= 0
    return hours[keep], codes[keep], numbers[keep]


def _columns_checked(text: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hours, channels, values) of the time-series lines, line by line; the first malformed line is a
    one-line :class:`UserError` naming ``source`` and the line number."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        first = lines[0].strip() if lines else ""
        raise UserError(f"{source} is not a PhysioNet 2012 record: first line {first[:60]!r}, expected {HEADER!r}")
    hours_list: list[float] = []
    channels: list[int] = []
    numbers: list[float] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != 3:
            raise _bad_line(source, lineno, line, f"{len(fields)} comma-separated fields")
        time, name, value = (f.strip() for f in fields)
        match = _TIME.match(time)
        if match is None:
            raise _bad_line(source, lineno, line, f"time {time!r} is not HH:MM")
        hours = int(match.group(1)) + int(match.group(2)) / 60.0
        if hours > WINDOW_HOURS:
            raise _bad_line(source, lineno, line, f"time {time} is after 48:00")
        try:
            number = float(value)
        except ValueError:
            raise _bad_line(source, lineno, line, f"value {value!r} is not a number") from None
        if not math.isfinite(number):
            raise _bad_line(source, lineno, line, f"value {value!r} is not finite")
        if name in STATIC_DESCRIPTORS:
            continue
        channel = CHANNEL.get(name)
        if channel is None:
            raise _bad_line(source, lineno, line, f"unknown parameter {name!r}")
        hours_list.append(hours)
        channels.append(channel)
        numbers.append(number)
    return (np.asarray(hours_list, dtype=np.float64), np.asarray(channels, dtype=np.int64),
            np.asarray(numbers, dtype=np.float64))


def parse_record_text(text: str, source: str, quantization: float = 1.0) -> Record:
    """Parse the text of one record file; ``source`` (``…/<RecordID>.txt``) names it in errors and gives
    the record id. See :func:`parse_record`."""
    record_id = source.rsplit("/", 1)[-1].removesuffix(".txt")
    columns = _columns_fast(text)
    hours_all, channels, numbers = columns if columns is not None else _columns_checked(text, source)
    if quantization > 0:  # np.round rounds halves to even, as Python's round in the official code
        hours_all = np.round(hours_all / quantization) * quantization
    times = np.unique(np.concatenate([[0.0], hours_all]))  # every record has a row at t = 0
    rows = np.searchsorted(times, hours_all)
    shape = (len(times), len(PARAMETERS))
    total, n = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (rows, channels), numbers)
    np.add.at(n, (rows, channels), 1.0)
    mask = (n > 0).astype(np.float64)
    values = np.divide(total, n, out=np.zeros_like(total), where=n > 0)  # the mean of a bin's measurements
    return Record(record_id, times, values, mask)


def _check_sets(sets: Sequence[str]) -> None:
    if isinstance(sets, str) or not sets:
        raise UserError(f"PhysioNet sets must be a non-empty list of folder names such as {list(SETS)}, "
                        f"got {sets!r}")


def set_source(root: PathArg, name: str) -> Path:
    """Where set ``name`` is: the folder ``<data>/physionet/<name>/`` when it holds ``.txt`` files, else
    the tarball ``<data>/physionet/<name>.tar.gz``.

    Raises:
        UserError: neither exists (naming both expected paths), or the folder holds no ``.txt`` file.
    """
    directory = data_root(root)
    folder = directory / FOLDER / str(name)
    tarball = directory / FOLDER / f"{name}.tar.gz"
    if folder.is_dir() and any(folder.glob("*.txt")):
        return folder
    if tarball.is_file():
        return tarball
    state = "holds no .txt record files" if folder.is_dir() else "not found"
    raise UserError(f"PhysioNet 2012 data {state}: expected {FOLDER}/{name}/<RecordID>.txt or {FOLDER}/{name}.tar.gz "
                    f"in the data directory {directory}{folder_note([tarball])} (set {ENV_VAR} to use another); "
                    f"fetch it with `nodebench data fetch physionet` or {README_HINT}")


def available_sets(root: PathArg = None) -> list[str]:
    """The sets among :data:`ALL_SETS` present under ``<data>/physionet/`` (as folders or tarballs)."""
    found = []
    for name in ALL_SETS:
        try:
            set_source(root, name)
        except UserError:
            continue
        found.append(name)
    return found


def read_set(source: Path) -> list[tuple[str, str]]:
    """``(source name, text)`` of every ``<RecordID>.txt`` of a set folder or tarball, sorted by file name.

    Raises:
        UserError: the tarball cannot be read, or a file is not UTF-8 text.
    """
    items: list[tuple[str, str, bytes]] = []
    try:
        if source.is_dir():
            items = [(p.name, str(p), p.read_bytes()) for p in source.glob("*.txt")]
        else:
            items = [(name.rsplit("/", 1)[-1], f"{source}:{name}", data)
                     for name, data in read_tar_files(source) if name.endswith(".txt")]
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"cannot read PhysioNet set {source}: {exc}; expected a folder or a .tar.gz of "
                        "<RecordID>.txt files") from None
    if not items:
        raise UserError(f"PhysioNet set {source} holds no <RecordID>.txt record files")
    texts = []
    for _, name, data in sorted(items):
        try:
            texts.append((name, data.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise UserError(f"cannot read PhysioNet record {name}: {exc}; expected UTF-8 text") from None
    return texts


def record_files(root: PathArg = None, sets: Sequence[str] = SETS) -> list[Path]:
    """The record files of extracted ``sets`` under ``<data>/physionet/``, each set's files sorted by name.

    Raises:
        UserError: a set folder is missing or holds no ``.txt`` file (naming the expected paths).
    """
    _check_sets(sets)
    files: list[Path] = []
    for name in sets:
        source = set_source(root, name)
        if not source.is_dir():
            raise UserError(f"PhysioNet set {name} is a tarball ({source}), not an extracted folder; "
                            "use load_physionet, which reads both")
        files.extend(sorted(source.glob("*.txt")))
    return files


def load_physionet(root: PathArg = None, *, sets: Sequence[str] = SETS, n_records: int | None = None,
                   quantization: float = 1.0) -> list[Record]:
    """The parsed records of ``sets`` (default set-a then set-b), each set read from its folder or its
    tarball, at most ``n_records`` of them (the first in sorted order; ``None``: all).

    Raises:
        UserError: missing sets or malformed files (see :func:`set_source`, :func:`parse_record`),
            or a bad ``n_records``/``quantization``.
    """
    if n_records is not None and (isinstance(n_records, bool) or not isinstance(n_records, int) or n_records < 1):
        raise UserError(f"n_records must be a positive integer or None (all), got {n_records!r}")
    if isinstance(quantization, bool) or not isinstance(quantization, (int, float)) or not 0 <= quantization < 48:
        raise UserError(f"quantization must be a number of hours in [0, 48), got {quantization!r}")
    _check_sets(sets)
    sources = [set_source(root, name) for name in sets]
    records: list[Record] = []
    for source in sources:
        for name, text in read_set(source):
            if n_records is not None and len(records) >= n_records:
                return records
            records.append(parse_record_text(text, name, float(quantization)))
    return records


def _record_ids(source: Path) -> set[str]:
    """The RecordIDs (file names without ``.txt``) of a set folder or tarball, without parsing the records."""
    try:
        if source.is_dir():
            names = [p.name for p in source.glob("*.txt")]
        else:
            names = [name.rsplit("/", 1)[-1] for name, _ in read_tar_files(source) if name.endswith(".txt")]
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"cannot read PhysioNet set {source}: {exc}; expected a folder or a .tar.gz of "
                        "<RecordID>.txt files") from None
    return {name.removesuffix(".txt") for name in names}


def check_set(source: Path) -> None:
    """Cheap structure check of a set folder or tarball: its member list is readable (a tarball's headers, not
    its records) and names at least one ``<RecordID>.txt``.

    Raises:
        UserError: the tarball is not a readable tar (gzipped or not), or the set holds no record file.
    """
    if not _record_ids(source):
        raise UserError(f"PhysioNet set {source} holds no <RecordID>.txt record files; expected a folder or a "
                        ".tar.gz of them")


def _outcomes_header(lines: Sequence[str], path: Path) -> None:
    if not lines or lines[0].strip() != ",".join(OUTCOME_COLUMNS):
        raise UserError(f"{path} is not a PhysioNet 2012 outcomes file: expected the header "
                        f"{','.join(OUTCOME_COLUMNS)!r}")


def check_outcomes(path: Path) -> None:
    """Cheap structure check of an outcomes file: UTF-8 text whose first line is the challenge's header."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read PhysioNet outcomes {path}: {exc}; fetch them with "
                        "`nodebench data fetch physionet`") from None
    _outcomes_header([first] if first else [], path)


def _ids(ids: Sequence[str]) -> str:
    return ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


def load_outcomes(root: PathArg = None, sets: Sequence[str] = SETS) -> dict[str, dict[str, int]]:
    """The outcomes of ``sets`` (``<data>/physionet/Outcomes-<a|b|c>.txt``): RecordID → {SAPS-I, SOFA,
    Length_of_stay, Survival, In-hospital_death} as ints (−1 where the challenge marks a value unknown).

    Where a set's records are present (folder or tarball), its outcomes file must hold exactly one line
    per record file, so that every record joins to one outcome.

    Raises:
        UserError: a file is missing or not in the challenge's format, a RecordID appears twice, or the
            outcomes do not match the set's record files.
    """
    _check_sets(sets)
    directory = data_root(root)
    outcomes: dict[str, dict[str, int]] = {}
    for name in sets:
        path = directory / FOLDER / f"Outcomes-{str(name).removeprefix('set-')}.txt"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read PhysioNet outcomes {path}: {exc}; fetch them with "
                            "`nodebench data fetch physionet`") from None
        _outcomes_header(lines, path)
        listed: set[str] = set()
        for lineno, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            fields = line.strip().split(",")
            try:
                numbers = [int(f) for f in fields]
            except ValueError:
                numbers = []
            if len(numbers) != len(OUTCOME_COLUMNS):
                raise UserError(f"{path}:{lineno}: malformed outcomes line {line.strip()[:60]!r}; expected "
                                f"{len(OUTCOME_COLUMNS)} integers")
            record_id = str(numbers[0])
            if record_id in outcomes:
                raise UserError(f"{path}:{lineno}: RecordID {record_id} has a second outcomes line; expected "
                                "one line per record")
            outcomes[record_id] = dict(zip(OUTCOME_COLUMNS[1:], numbers[1:]))
            listed.add(record_id)
        try:
            source = set_source(root, name)
        except UserError:
            continue  # no records of this set here: nothing to join
        records = _record_ids(source)
        unmatched, orphans = sorted(records - listed), sorted(listed - records)
        if unmatched or orphans:
            what = "; ".join(
                ([f"no line for record(s) {_ids(unmatched)}"] if unmatched else [])
                + ([f"lines for record(s) {_ids(orphans)} that {source} does not hold"] if orphans else []))
            raise UserError(f"{path} does not match the {len(records)} record files of {name}: {what}; expected "
                            "exactly one outcomes line per <RecordID>.txt")
    return outcomes


def channel_range(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel min and max over the observed values of ``records``; a channel never observed gets
    min 0 and max 1."""
    if not records:
        raise UserError("no records to compute the normalisation from")
    dim = records[0].values.shape[1]
    lo, hi = np.full(dim, np.inf), np.full(dim, -np.inf)
    for r in records:
        observed = r.mask > 0
        lo = np.minimum(lo, np.where(observed, r.values, np.inf).min(axis=0))
        hi = np.maximum(hi, np.where(observed, r.values, -np.inf).max(axis=0))
    never = ~np.isfinite(lo)
    lo[never], hi[never] = 0.0, 1.0
    return lo, hi


def normalise(records: Sequence[Record], lo: np.ndarray, hi: np.ndarray, mode: str = "minmax") -> list[Record]:
    """``records`` with values scaled per channel; unobserved entries stay 0.

    Args:
        lo, hi: per-channel min and max (:func:`channel_range`).
        mode: ``"minmax"``: ``(x − lo)/(hi − lo)`` (a constant channel: divided by 1); ``"official"``:
            ``(x − lo)/hi`` (``hi == 0``: divided by 1), the official code's formula.
    """
    if mode not in NORMALISATIONS:
        raise UserError(f"unknown normalisation {mode!r}; valid: {', '.join(NORMALISATIONS)}")
    scale = (hi - lo) if mode == "minmax" else hi.copy()
    scale = np.where(scale == 0, 1.0, scale)
    return [Record(r.record_id, r.times, np.where(r.mask > 0, (r.values - lo) / scale, 0.0), r.mask)
            for r in records]


@dataclass(frozen=True)
class Series:
    """One irregularly sampled record as tensors: ``times`` (T,) in [0, 1], ``values``/``mask`` (T, D)."""

    times: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor


def to_series(record: Record, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
              window: float = WINDOW_HOURS) -> Series:
    """A :class:`Record` as tensors, times divided by ``window`` hours."""
    return Series(torch.as_tensor(record.times / window, dtype=dtype, device=device),
                  torch.as_tensor(record.values, dtype=dtype, device=device),
                  torch.as_tensor(record.mask, dtype=dtype, device=device))


def collate(series: Sequence[Series]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch on the union of its time points (the official ``process_batch``).

    Returns:
        ``grid`` (T,) sorted unique times; ``values`` and ``mask`` (B, T, D), zero where a record has no
        time point or no observation.
    """
    times = torch.cat([s.times for s in series])
    grid, inverse = torch.unique(times, sorted=True, return_inverse=True)
    first = series[0].values
    values = first.new_zeros(len(series), len(grid), first.shape[1])
    mask = torch.zeros_like(values)
    offset = 0
    for b, s in enumerate(series):
        index = inverse[offset:offset + len(s.times)]
        offset += len(s.times)
        values[b, index] = s.values
        mask[b, index] = s.mask
    return grid, values, mask


__all__ = ["ALL_SETS", "NORMALISATIONS", "OUTCOME_COLUMNS", "PARAMETERS", "Record", "SETS", "STATIC_DESCRIPTORS",
           "Series", "WINDOW_HOURS", "available_sets", "channel_range", "check_outcomes",
           "check_set", "collate", "load_outcomes", "load_physionet",
           "normalise", "parse_record", "parse_record_text", "read_set", "record_files", "set_source", "to_series"]
