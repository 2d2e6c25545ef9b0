"""The known data sets: where their files are looked for, their pinned checksums, and whether a copy verifies.

``nodebench/datasets/manifest.toml`` describes each data set in a ``[[dataset]]`` block (MNIST, PhysioNet 2012,
CIFAR-10, SVHN) and the five MAF tabular sets in its older ``[[files]]`` list; this module reads both into
:class:`DataSet` objects. A file (:class:`FileSpec`) is stored in one of four forms:

- ``plain``: the file itself, ``<data>/<folder>/<path>`` (SVHN's ``.mat`` files, PhysioNet's outcomes);
- ``gz``: the file, plain or gzipped (``<path>`` or ``<path>.gz``); the checksum of whichever form is
  found is compared (MNIST's IDX files; ``mnist/MNIST/raw/``, torchvision's layout, is searched too);
- ``tar``: a folder of record files, extracted (``<path>/``) or as its tarball (``<path>.tar.gz``).
  Verified by a *members digest*, the sha256 of the lines ``<member name>\\t<sha256 of its bytes>\\n``
  over its ``.txt`` members sorted by name, which is the same for the folder and for any tarball of the
  same files (PhysioNet's ``set-a``/``set-b``; a repackaged archive has another archive checksum);
- ``member``: a file extracted from an archive that holds several (the MAF archive, CIFAR-10's batches);
  the archive's own checksum is in the manifest's ``[archives]`` table.

A checksum that is empty is *not pinned*: the file is found but cannot be verified. :func:`status`
reports every file; a data set is ``verified`` when every file found matched a pinned checksum and no
required file is missing. :func:`check_case_data` is the run-time gate of ``nodebench run``/``reproduce``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tarfile
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional

from nodebench.datasets.storage import DEFAULT_MANIFEST, ENV_VAR, data_root, folder_note, read_tar_files
from nodebench.errors import UserError
from nodebench.registry import nearest

PathArg = Optional[str | os.PathLike]
FORMS = ("plain", "gz", "tar", "member")
CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSpec:
    """One file (or record folder) of a data set; see the module docstring for ``form``.

    Attributes:
        path: relative to the data set's folder.
        urls: where ``fetch`` downloads it from, in order (for ``gz``: the ``.gz`` file; ``tar``: the
            tarball; ``member``: the archive).
        md5, sha256: of the plain file (``plain``, ``gz``, ``member``); ``gz_md5``/``gz_sha256`` of the
            gzipped form; ``members_sha256`` the members digest and ``members`` their count (``tar``).
        optional: a data set is complete without it (PhysioNet's set C).
        alternatives: other folders, relative to the data set's folder, searched for the file too.
    """

    path: str
    form: str = "plain"
    urls: tuple[str, ...] = ()
    md5: str = ""
    sha256: str = ""
    gz_md5: str = ""
    gz_sha256: str = ""
    members_sha256: str = ""
    members: int | None = None
    optional: bool = False
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataSet:
    """A known data set: its folder under the data directory, its files, and the tasks that read it."""

    name: str
    title: str
    folder: str
    files: tuple[FileSpec, ...]
    tasks: tuple[str, ...] = ()
    note: str = ""
    archives: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class FileStatus:
    """What was found for one :class:`FileSpec`: ``state`` is ``verified``, ``mismatch``, ``unpinned`` (no
    checksum pinned), ``unchecked`` (not verified on request) or ``missing``; ``found`` the path (None when
    missing); ``detail`` a short explanation."""

    spec: FileSpec
    state: str
    found: Path | None
    detail: str = ""
    size: int = 0


@dataclass(frozen=True)
class DataStatus:
    """A data set's files under one data directory."""

    dataset: DataSet
    directory: Path
    files: tuple[FileStatus, ...]

    @property
    def where(self) -> Path:
        return self.directory / self.dataset.folder if self.dataset.folder else self.directory

    @property
    def missing(self) -> list[FileStatus]:
        return [f for f in self.files if f.state == "missing" and not f.spec.optional]

    @property
    def found(self) -> bool:
        return not self.missing

    @property
    def verified(self) -> bool:
        """Every required file present and matching its pinned checksum; no optional file mismatched."""
        return self.found and all(f.state == "verified" or (f.spec.optional and f.state in ("missing", "unpinned"))
                                  for f in self.files)

    def verified_parts(self, paths: Iterable[str]) -> bool:
        """Whether the files ``paths`` (FileSpec paths) were all found and matched their pinned checksums."""
        states = {f.spec.path: f.state for f in self.files}
        return all(states.get(path) == "verified" for path in paths)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def summary(self) -> str:
        """One phrase: ``verified``, ``found, not verified (…)`` or ``missing (…)``."""
        if not self.found:
            return "missing (" + ", ".join(f.spec.path for f in self.missing) + ")"
        bad = [f for f in self.files if f.state in ("mismatch", "unpinned", "unchecked")]
        if not bad:
            return "verified"
        return "found, not verified (" + "; ".join(f"{f.spec.path}: {f.detail}" for f in bad) + ")"


# -- the manifest -----------------------------------------------------------------------------------------------

TOP_KEYS = ("dataset", "files", "archives", "maf_note")
DATASET_KEYS = (("name", "folder", "files"), ("title", "tasks", "note", "archives"))
FILE_KEYS = (("path",), ("form", "urls", "url", "md5", "sha256", "gz_md5", "gz_sha256", "members_sha256", "members",
                         "optional", "alternatives"))
MAF_FILE_KEYS = (("dataset", "path", "url", "sha256"), ())
#: Hex digits of each checksum field (an empty value means "not pinned").
DIGEST_LENGTHS = {"md5": 32, "gz_md5": 32, "sha256": 64, "gz_sha256": 64, "members_sha256": 64}
HEX = re.compile(r"[0-9a-fA-F]*")


def _table(raw, keys: tuple[tuple[str, ...], tuple[str, ...]], where: str) -> dict:
    """``raw`` if it is a table with every required key of ``keys`` (required, optional) and no other key."""
    required, optional = keys
    if not isinstance(raw, dict):
        raise TypeError(f"{where} is not a table")
    valid = required + optional
    unknown = [key for key in raw if key not in valid]  # first: a misspelt key is also a missing one
    if unknown:
        raise ValueError(f"{where} has unknown key {unknown[0]!r}{nearest(unknown[0], valid)}; "
                         f"valid: {', '.join(valid)}")
    missing = [key for key in required if key not in raw]
    if missing:
        raise ValueError(f"{where} lacks required key {missing[0]!r} (required: {', '.join(required)})")
    return raw


def _digest(raw: dict, key: str, where: str) -> str:
    """The checksum ``raw[key]``: empty, or as many hex digits as :data:`DIGEST_LENGTHS` says."""
    value = str(raw.get(key, ""))
    length = DIGEST_LENGTHS[key]
    if value and (len(value) != length or not HEX.fullmatch(value)):
        raise ValueError(f"{where}: {key} {value!r} is not {length} hex digits (leave it empty when not pinned)")
    return value


def _relative(value, what: str) -> str:
    """``value`` as a path that stays inside the data directory (relative, no ``..``)."""
    path = PurePosixPath(str(value))
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{what} {str(value)!r} must be a relative path inside the data directory (no '..')")
    return str(value)


def _strings(value) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value or ())


def _file_spec(raw, where: str) -> FileSpec:
    raw = _table(raw, FILE_KEYS, where)
    form = str(raw.get("form", "plain"))
    if form not in FORMS:
        raise ValueError(f"{where}: form {form!r} is unknown (valid: {', '.join(FORMS)})")
    members = raw.get("members")
    digests = {key: _digest(raw, key, where) for key in DIGEST_LENGTHS}
    alternatives = tuple(_relative(a, f"{where}: alternative") for a in _strings(raw.get("alternatives", ())))
    return FileSpec(path=_relative(raw["path"], f"{where}: path"), form=form,
                    urls=_strings(raw.get("urls", raw.get("url", ()))), **digests,
                    members=None if members is None else int(members), optional=bool(raw.get("optional", False)),
                    alternatives=alternatives)


def _dataset(raw, number: int) -> DataSet:
    """The ``number``-th (from 1) ``[[dataset]]`` block."""
    raw = _table(raw, DATASET_KEYS, f"[[dataset]] entry {number}")
    where = f"[[dataset]] entry {number} ({raw['name']})"
    if not isinstance(raw["files"], list):
        raise TypeError(f"{where}: files is not a list of tables")
    archives = {str(url): {key: _digest(sums, key, f"{where}, archive {url}")
                           for key in _table(sums, ((), ("md5", "sha256")), f"{where}, archive {url}")}
                for url, sums in raw.get("archives", {}).items()}
    files = tuple(_file_spec(f, f"{where}, file {i}") for i, f in enumerate(raw["files"], 1))
    return DataSet(str(raw["name"]), str(raw.get("title", raw["name"])), _relative(raw["folder"], f"{where}: folder"),
                   files, _strings(raw.get("tasks", ())), str(raw.get("note", "")), archives)


def _maf_sets(raw: dict) -> list[DataSet]:
    """The MAF sets of the manifest's ``[[files]]`` list (paths relative to the data directory itself)."""
    archives = {str(url): {"sha256": _digest({"sha256": sha}, "sha256", f"[archives] {url}")}
                for url, sha in raw.get("archives", {}).items()}
    names: dict[str, list[FileSpec]] = {}
    for number, entry in enumerate(raw.get("files", []), 1):
        where = f"[[files]] entry {number}"
        entry = _table(entry, MAF_FILE_KEYS, where)
        names.setdefault(str(entry["dataset"]), []).append(FileSpec(
            path=_relative(entry["path"], f"{where}: path"), form="member", urls=(str(entry["url"]),),
            sha256=_digest(entry, "sha256", where)))
    note = str(raw.get("maf_note", ""))
    return [DataSet(name, f"MAF tabular set {name} (Papamakarios et al. 2017)", "", tuple(files),
                    (f"cnf_{name}",), note, archives) for name, files in names.items()]


@functools.lru_cache(maxsize=8)
def _catalog(path: str) -> dict[str, DataSet]:
    try:
        raw = _table(tomllib.loads(Path(path).read_text()), ((), TOP_KEYS), "the top level")
        sets = [_dataset(entry, number) for number, entry in enumerate(raw.get("dataset", []), 1)]
        sets += _maf_sets(raw)
    except FileNotFoundError:
        raise UserError(f"data manifest not found at {path}") from None
    except IsADirectoryError:
        raise UserError(f"data manifest {path} is a folder; give a .toml file") from None
    except (tomllib.TOMLDecodeError, TypeError, ValueError, AttributeError, OSError) as exc:
        raise UserError(f"malformed data manifest {path}: {exc}") from None
    if not sets:  # else `data list` lists nothing, `fetch` knows no name and `verify` blames the data folder
        raise UserError(f"data manifest {path} declares no data set; give one with [[dataset]] or [[files]] entries")
    return {s.name: s for s in sets}


def catalog(manifest: PathArg = None) -> dict[str, DataSet]:
    """Every known data set by name (from ``manifest``, default ``nodebench/datasets/manifest.toml``)."""
    return _catalog(str(Path(manifest) if manifest is not None else DEFAULT_MANIFEST))


def get_dataset(name: str, manifest: PathArg = None) -> DataSet:
    """The data set ``name``; an unknown name is a :class:`UserError` listing the known ones."""
    known = catalog(manifest)
    if name not in known:
        raise UserError(f"unknown data set {name!r}{nearest(name, known)}; known: {', '.join(known)}")
    return known[name]


def dataset_of_task(task: str, manifest: PathArg = None) -> DataSet | None:
    """The data set whose files ``task`` reads, or None for a task that generates or bundles its data."""
    return next((s for s in catalog(manifest).values() if task in s.tasks), None)


# -- checksums --------------------------------------------------------------------------------------------------

def file_digest(path: Path, algorithm: str) -> str:
    """The hex ``md5``/``sha256`` of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _txt_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of the ``.txt`` files of a record folder or of its tarball, names without folders."""
    if path.is_dir():
        for item in sorted(path.glob("*.txt")):
            try:
                data = item.read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read record file {item}: {exc.strerror or exc}; expected "
                                f"{path} to hold readable <RecordID>.txt files") from None
            yield item.name, data
        return
    try:
        files = read_tar_files(path)
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"cannot read archive {path}: {exc}; delete it and fetch it again") from None
    for name, data in files:
        if name.endswith(".txt"):
            yield name.rsplit("/", 1)[-1], data


def members_digest(path: Path) -> tuple[str, int]:
    """The members digest (module docstring) of a record folder or tarball, and the number of members."""
    lines = sorted(f"{name}\t{hashlib.sha256(data).hexdigest()}\n" for name, data in _txt_members(path))
    return hashlib.sha256("".join(lines).encode()).hexdigest(), len(lines)


def _candidates(spec: FileSpec, where: Path) -> Iterable[tuple[Path, str]]:
    """``(path, kind)`` where the file may be, in search order; kind is ``plain``, ``gz``, ``dir`` or ``tar``."""
    for folder in ("", *spec.alternatives):
        base = where / folder / spec.path
        if spec.form == "tar":
            yield base, "dir"
            yield base.with_name(base.name + ".tar.gz"), "tar"
        else:
            yield base, "plain"
            if spec.form == "gz":
                yield base.with_name(base.name + ".gz"), "gz"


def locate(spec: FileSpec, where: Path) -> tuple[Path, str] | None:
    """Where the file is, and its kind; None when absent."""
    for path, kind in _candidates(spec, where):
        if (path.is_dir() and any(p.is_file() for p in path.glob("*.txt"))) if kind == "dir" else path.is_file():
            return path, kind
    return None


def _expected(spec: FileSpec, kind: str) -> tuple[str, str]:
    """(algorithm, expected hex digest) for the found kind; the digest is empty when none is pinned."""
    if kind in ("dir", "tar"):
        return "members", spec.members_sha256
    sha, md5 = (spec.gz_sha256, spec.gz_md5) if kind == "gz" else (spec.sha256, spec.md5)
    return ("md5", md5) if md5 and not sha else ("sha256", sha)


def check_file(spec: FileSpec, where: Path, verify: bool = True) -> FileStatus:
    """Locate ``spec`` under ``where`` and (``verify``) compare its checksum with the pinned one."""
    hit = locate(spec, where)
    if hit is None:
        files = [path for path, kind in _candidates(spec, where) if kind != "dir"]
        return FileStatus(spec, "missing", None, "not found" + folder_note(files))
    path, kind = hit
    size = sum(p.stat().st_size for p in path.glob("*.txt")) if kind == "dir" else path.stat().st_size
    algorithm, expected = _expected(spec, kind)
    if not expected:
        return FileStatus(spec, "unpinned", path, f"no {algorithm} checksum pinned", size)
    if not verify:
        return FileStatus(spec, "unchecked", path, "not checked", size)
    if algorithm == "members":
        actual, count = members_digest(path)
        if spec.members is not None and count != spec.members:
            return FileStatus(spec, "mismatch", path, f"{count} record files, expected {spec.members}", size)
    else:
        actual = file_digest(path, algorithm)
    if actual != expected.lower():
        return FileStatus(spec, "mismatch", path, f"{algorithm} {actual}, expected {expected}", size)
    return FileStatus(spec, "verified", path, f"{algorithm}{' digest' if algorithm == 'members' else ''} matches",
                      size)


def status(name: str, root: PathArg = None, *, verify: bool = True, manifest: PathArg = None) -> DataStatus:
    """Every file of data set ``name`` under the data directory (``root``, ``$NODEBENCH_DATA`` or
    ``<repo>/datasets``), checksummed unless ``verify`` is False."""
    dataset = get_dataset(name, manifest)
    directory = data_root(root)
    where = directory / dataset.folder if dataset.folder else directory
    return DataStatus(dataset, directory, tuple(check_file(spec, where, verify) for spec in dataset.files))


@functools.lru_cache(maxsize=16)
def _status(name: str, directory: str, manifest: str) -> DataStatus:
    return status(name, directory, manifest=manifest)


def data_verified(name: str, root: PathArg = None, *, parts: Iterable[str] | None = None,
                  manifest: PathArg = None) -> bool:
    """Whether data set ``name`` verifies under the data directory (checksummed once per process); with
    ``parts``, whether those of its files do (a run that reads only some of them)."""
    if name not in catalog(manifest):
        return False
    state = _status(name, str(data_root(root).resolve()), str(Path(manifest) if manifest else DEFAULT_MANIFEST))
    return state.verified if parts is None else state.verified_parts(parts)


def provenance(dataset: str, n_train: int, n_val: int, n_test: int, *, parts: Iterable[str] | None = None,
               root: PathArg = None) -> dict:
    """A problem's provenance (:data:`nodebench.records.PROVENANCE`): ``data_verified`` is True when
    ``dataset`` is a known data set whose files (``parts`` of them, if given) matched their checksums; a
    stand-in's name (generated or bundled data) is recorded as given, unverified."""
    return {"dataset": dataset, "n_train": int(n_train), "n_val": int(n_val), "n_test": int(n_test),
            "data_verified": data_verified(dataset, root, parts=parts)}


# -- the gate before a sweep ---------------------------------------------------------------------------------

class DataUnavailable(UserError):
    """The data sets a sweep's cases need that are missing or unusable, all named on one line (``problems``: one
    phrase per data set). :func:`nodebench.run`/``reproduce``/``bench`` raise it before anything is written;
    their dry runs return its line beside the cases they list (:attr:`nodebench.api.RunResult.missing_data`)."""

    def __init__(self, problems: list[str], any_missing: bool) -> None:
        elsewhere = f"set {ENV_VAR} to another data folder" if any_missing else ""
        if len(problems) == 1:
            super().__init__(problems[0] + (f"; or {elsewhere}" if elsewhere else ""))
        else:
            super().__init__(f"{len(problems)} data sets the cases need are missing or unusable"
                             f"{f' (or {elsewhere})' if elsewhere else ''}: "
                             + ". ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)))


def check_case_data(cases, verify: bool = True, root: PathArg = None, manifest: PathArg = None) -> None:
    """Refuse a sweep whose cases need data that is absent (or, with ``verify``, not verified; without it,
    malformed: :func:`check_structure`).

    Every data set the cases need is checked, and all that fail are named at once, so that a user fetches
    them in one go rather than learning of them one rerun at a time.

    Raises:
        DataUnavailable: one line naming, for each such data set, the tasks and cases that need it, the folder
            it was looked for in and what is wrong, and the ``nodebench data fetch`` command.
    """
    needs: dict[str, list[str]] = {}
    for case in cases:
        dataset = dataset_of_task(case.task, manifest)
        if dataset is not None:
            needs.setdefault(dataset.name, []).append(case.task)
    states = {name: status(name, root, verify=verify, manifest=manifest) for name in needs}
    problems = [problem for name, state in states.items() if (problem := _data_problem(state, needs[name], verify))]
    if problems:
        raise DataUnavailable(problems, any_missing=not all(state.found for state in states.values()))


def _data_problem(state: DataStatus, tasks: list[str], verify: bool) -> str:
    """What stops the cases of ``tasks`` (one entry per case) from using data set ``state``, or ``""``."""
    name, fetch = state.dataset.name, f"`nodebench data fetch {state.dataset.name}`"
    distinct = list(dict.fromkeys(tasks))
    who = (f"task{'s' if len(distinct) > 1 else ''} {', '.join(distinct)} "
           f"({len(tasks)} case{'s' if len(tasks) > 1 else ''}) need{'' if len(distinct) > 1 else 's'} data set {name}")
    if not state.found:
        missing = ", ".join(f.spec.path + f.detail.removeprefix("not found") for f in state.missing)
        return f"{who}, not found in {state.where} (missing {missing}); run {fetch}"
    if verify and not state.verified:
        return (f"{who}, found in {state.where} but {state.summary()[len('found, '):]}; run {fetch} to replace it, "
                "or pass --no-verify to use it as it is")
    if not verify:
        try:
            check_structure(state)
        except UserError as exc:
            return f"{who}, but {exc} (checked with --no-verify, which skips the checksums); run {fetch} to replace it"
    return ""


def check_structure(state: DataStatus) -> None:
    """Check the *structure* of every file of ``state`` that was found, cheaply and without checksums: what
    the loaders would find wrong in its headers before reading the data (an IDX header against the file's
    length, a ``.gz`` stream decompressed and counted, a PhysioNet tarball's member list, a ``.npy`` header
    against its length, a pickle's framing, a MATLAB or HDF5 header). The checks are the loaders' own
    (:mod:`~nodebench.datasets.images`, :mod:`~nodebench.datasets.physionet`,
    :mod:`~nodebench.datasets.tabular`). ``nodebench run --no-verify`` calls it before a sweep, so that a
    corrupt file stops the command instead of failing every case.

    Raises:
        UserError: one line naming the first malformed file and what is wrong with it.
    """
    from nodebench.datasets import images, physionet, tabular

    found = {f.spec.path: f.found for f in state.files if f.found is not None}
    name = state.dataset.name
    if name == "mnist":
        by_name = {path: found[path] for path in images.MNIST_FILES.values() if path in found}
        images.check_mnist_files(by_name)
        return
    for relative, path in found.items():
        if name == "physionet":
            if path.name.startswith("Outcomes-"):
                physionet.check_outcomes(path)
            else:
                physionet.check_set(path)
        elif name == "cifar10":
            images.check_cifar_batch(path)
        elif name == "svhn":
            images.check_svhn_mat(path)
        elif not state.dataset.folder:  # the MAF sets: paths relative to the data directory
            tabular.check_maf_file(relative, path)


__all__ = ["DataSet", "DataStatus", "DataUnavailable", "FileSpec", "FileStatus", "catalog", "check_case_data",
           "check_file", "check_structure", "data_verified", "dataset_of_task", "file_digest", "get_dataset", "locate",
           "members_digest", "provenance", "status"]
