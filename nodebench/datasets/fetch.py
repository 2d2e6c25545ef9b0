"""Download a known data set from its official source into the data directory, verified.

:func:`download_file` streams one URL into ``<target>.part`` with a progress bar (tqdm), resumes a
partial ``.part`` left by an interrupted download with an HTTP ``Range`` request, checks the result against
the pinned checksum, and only then renames it onto the target (atomic on one file system), so a target path
never holds a partial or unverified file. A resumed reply is used only when its ``Content-Range`` starts
where the ``.part`` ends (and a 416 reply means "complete" only when its ``Content-Range`` gives the
``.part``'s length); a server that ignores the range, or answers from elsewhere, restarts the file from
zero. A connection that closes before the announced ``Content-Length`` is a failed download (the partial file
is kept for a resume), not a complete one. Network errors, timeouts, HTTP errors, checksum mismatches and a
data folder that cannot be written (read-only, full) are one-line :class:`~nodebench.errors.UserError` s.
:func:`fetch` does this for every file of a data set that is missing or does not verify (see
:mod:`nodebench.datasets.catalog` for the forms a file is stored in), trying a file's sources in turn, and
removes the folders it created when it fails.
"""

from __future__ import annotations

import errno
import http.client
import numbers
import os
import re
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

from nodebench.datasets.catalog import (DataSet, FileSpec, PathArg, check_file, file_digest, get_dataset,
                                        members_digest)
from nodebench.datasets.storage import ENV_VAR, data_root_and_source
from nodebench.errors import UserError
from nodebench.paths import output_dir

CHUNK = 1 << 16
TIMEOUT_S = 60.0
#: The longest network timeout taken: a day (a socket timeout beyond ~9e9 s overflows the platform's time_t).
MAX_TIMEOUT_S = 86_400
USER_AGENT = "nodebench-data-fetch"
#: Errors of the local file system that carry no file name (raised by a write).
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
CONTENT_RANGE = re.compile(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)")


class DownloadError(UserError):
    """A download from one URL that failed: the ``url``, the ``reason`` (a short phrase) and ``then``, what
    to do next (may be empty)."""

    def __init__(self, url: str, reason: object, then: str = "") -> None:
        super().__init__(f"could not download {url}: {reason}" + (f"; {then}" if then else ""))
        self.url, self.reason, self.then = url, str(reason), then


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _kept(part: Path) -> str:
    """How to resume a download that left ``part``; empty when nothing was kept."""
    kept = part.stat().st_size if part.is_file() else 0
    return f"rerun the same command to resume ({kept} bytes kept in {part})" if kept else ""


def _local(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the local file system (a path that cannot be written, a full disk), not the
    network: urllib's errors carry the URL as their file name."""
    return (isinstance(exc, OSError) and not isinstance(exc, urllib.error.URLError)
            and (exc.filename is not None or exc.errno in DISK_ERRNOS))


@contextmanager
def _writing(part: Path | None = None) -> Iterator[None]:
    """Report a local file-system error (met while writing the partial download ``part``, if given) as one
    line saying what to do, instead of a traceback or a network failure."""
    try:
        yield
    except OSError as exc:
        if not _local(exc):
            raise
        what = f"cannot write {exc.filename or part or 'to the data folder'}: {exc.strerror or exc}"
        kept = _kept(part) if part is not None else ""
        raise UserError(f"{what}; make the data folder writable (or free space) or choose another with --root or "
                        f"${ENV_VAR}" + (f", then {kept}" if kept else "")) from None


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {})
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _content_range(headers) -> tuple[int | None, int | None]:
    """(first byte, total length) of a ``Content-Range`` header; None for what it does not say."""
    match = CONTENT_RANGE.fullmatch((headers or {}).get("Content-Range", "").strip())
    if match is None:
        return None, None
    return tuple(None if value == "*" else int(value) for value in match.groups())


def _open_from(url: str, offset: int, timeout: float):
    """``(response, offset)``: the reply continuing a partial file of ``offset`` bytes, or a full one (offset 0);
    ``(None, offset)`` when the server says the partial file is already the whole file."""
    if offset:
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416:
                raise
            if _content_range(exc.headers)[1] == offset:  # 416 "bytes */<length>": nothing left to send
                return None, offset
        else:
            if response.status != 206:  # the range was ignored: the whole file follows
                return response, 0
            if _content_range(response.headers)[0] == offset:
                return response, offset
            response.close()  # a 206 that starts elsewhere than the partial file ends: appending would corrupt it
    return _open(url, 0, timeout), 0


def _transfer(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """Write ``url`` into ``part``, continuing what it holds when the server allows (module docstring)."""
    response, offset = _open_from(url, part.stat().st_size if part.is_file() else 0, timeout)
    if response is None:
        return
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length and length.isdigit() else None
    received = offset
    try:
        with response, open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=not progress, file=sys.stderr, leave=False) as bar:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))
                received += len(chunk)
        if total is not None and received < total:  # urllib returns b"" when the connection drops
            raise ConnectionError(f"the connection closed after {received} of {total} bytes")
    except BaseException:  # failed or interrupted (Ctrl-C): an empty partial file is not kept
        if part.is_file() and not part.stat().st_size:
            part.unlink()
        raise


def download_file(url: str, target: Path, *, md5: str = "", sha256: str = "", timeout: float = TIMEOUT_S,
                  progress: bool = True) -> Path:
    """Download ``url`` to ``target`` (module docstring): resumable, checked against ``sha256`` (else
    ``md5``; neither: unchecked), renamed into place at the end.

    Raises:
        DownloadError: the download failed (the partial file is kept for a resume) or its checksum does not
            match (the partial file is deleted).
        UserError: ``target`` is a folder, or the data folder cannot be written.
    """
    target = Path(target)
    if target.is_dir():
        raise UserError(f"{target} is a folder where the downloaded file is to go; move it away and rerun")
    part = _partial(target)
    with _writing(part):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _transfer(url, part, timeout, progress, target.name)
        except urllib.error.HTTPError as exc:
            raise DownloadError(url, f"HTTP {exc.code} {exc.reason}", _kept(part)) from None
        except (OSError, http.client.HTTPException) as exc:  # OSError: URLError, timeouts, dropped connections
            if _local(exc):
                raise
            reason = getattr(exc, "reason", exc) if isinstance(exc, OSError) else f"a malformed reply ({exc!r})"
            raise DownloadError(url, reason, _kept(part) or "nothing was kept; check the network and rerun the "
                                "command") from None
        mismatch = _checksum_mismatch(part, md5=md5, sha256=sha256)
        if mismatch:
            part.unlink()
            raise DownloadError(url, f"the file {mismatch}", "it was deleted: rerun the command, and if it fails "
                                "again the source has changed")
        os.replace(part, target)
    return target


def _checksum_mismatch(path: Path, *, md5: str = "", sha256: str = "") -> str:
    """How ``path`` differs from its pinned ``sha256`` (else ``md5``): "has sha256 …, expected …"; "" where it
    matches or nothing is pinned."""
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    actual = file_digest(path, algorithm) if expected else ""
    return f"has {algorithm} {actual}, expected {expected}" if actual != expected.lower() else ""


def _urls(spec: FileSpec) -> tuple[str, ...]:
    if not spec.urls:
        raise UserError(f"no download URL for {spec.path} in the data manifest; add urls to its entry, or put "
                        "the file in place yourself")
    return spec.urls


def _download_any(spec: FileSpec, target: Path, *, md5: str = "", sha256: str = "", timeout: float,
                  progress: bool) -> Path:
    """Try each of the file's URLs in turn; when all fail, one line names each one's failure."""
    failures: list[DownloadError] = []
    for url in _urls(spec):
        try:
            return download_file(url, target, md5=md5, sha256=sha256, timeout=timeout, progress=progress)
        except DownloadError as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    tried = ", ".join(f"{failure.url}: {failure.reason}" for failure in failures)
    then = failures[-1].then
    raise UserError(f"could not download {target.name} from any of its {len(failures)} sources ({tried})"
                    + (f"; {then}" if then else ""))


def _fetch_tar(spec: FileSpec, where: Path, *, timeout: float, progress: bool) -> Path:
    """A record set, downloaded as its tarball and checked by its members digest (kept as a tarball)."""
    target = where / f"{spec.path}.tar.gz"
    downloaded = _download_any(spec, target.with_name(target.name + ".download"), timeout=timeout, progress=progress)
    digest, count = members_digest(downloaded)
    problems = []
    if spec.members is not None and count != spec.members:
        problems.append(f"{count} record files, expected {spec.members}")
    if spec.members_sha256 and digest != spec.members_sha256:
        problems.append(f"members digest {digest}, expected {spec.members_sha256}")
    if problems:
        downloaded.unlink()
        raise UserError(f"the downloaded {spec.path}.tar.gz does not verify ({'; '.join(problems)}); it was deleted")
    os.replace(downloaded, target)
    return target


def _write_member(source, target: Path) -> Path:
    """Write an archive member's stream to ``target`` atomically (through ``<target>.part``)."""
    tmp = _partial(target)
    with _writing(tmp):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)
    return target


def _fetch_members(dataset: DataSet, specs: list[FileSpec], directory: Path, *, timeout: float,
                   progress: bool) -> list[Path]:
    """Files extracted from one archive: the archive is downloaded (verified when its checksum is pinned)
    next to them and its matching members are written, each atomically."""
    url = _urls(specs[0])[0]
    sums = dataset.archives.get(url, {})
    archive = directory / Path(urlparse(url).path).name
    mismatch = _checksum_mismatch(archive, **sums) if archive.is_file() else ""
    if mismatch:  # a corrupt or other archive left there would be extracted again and again: kept aside, refetched
        aside = _aside(archive)
        os.replace(archive, aside)
        print(f"{archive} {mismatch}; moved it to {aside}", file=sys.stderr)
    if not archive.is_file():
        _download_any(specs[0], archive, md5=sums.get("md5", ""), sha256=sums.get("sha256", ""), timeout=timeout,
                      progress=progress)
    pending = {spec.path: spec for spec in specs}
    written = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                match = next((p for p in pending if member.name == p or member.name.endswith("/" + p)), None)
                if match is None or not member.isfile():
                    continue
                with tar.extractfile(member) as source:
                    written.append(_write_member(source, directory / match))
                del pending[match]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"could not read archive {archive}: {exc}; delete it and fetch again") from None
    if pending:
        raise UserError(f"archive {archive} lacks {', '.join(sorted(pending))}")
    return written


@contextmanager
def _removing_new_folders(paths: Iterable[Path]) -> Iterator[None]:
    """When the block fails, remove the folders above ``paths`` that it created and left empty (deepest
    first); a folder that existed before, or holds a partial download, stays."""
    new = sorted({folder for path in paths for folder in path.parents if not folder.exists()},
                 key=lambda folder: len(folder.parts), reverse=True)
    try:
        yield
    except BaseException:
        for folder in new:
            with suppress(OSError):  # not empty, or already gone
                folder.rmdir()
        raise


def _aside(path: Path) -> Path:
    """A free name beside ``path`` for a copy that does not verify: ``<path>.mismatch``, ``.mismatch-2``, …"""
    candidates = (path.with_name(f"{path.name}.mismatch{'' if i == 1 else f'-{i}'}") for i in range(1, 1000))
    return next(p for p in candidates if not p.exists())


def fetch(name: str, root: PathArg = None, *, manifest: PathArg = None, timeout: float = TIMEOUT_S,
          progress: bool = True, optional: bool = False) -> list[Path]:
    """Download every file of data set ``name`` that is missing or does not verify under the data
    directory; ``optional`` files (PhysioNet's set C) only when asked. Returns the paths written. A copy
    that does not verify and would still be found before the fetched file (a corrupt plain MNIST file beside
    the downloaded ``.gz``, a record folder beside the tarball) is renamed to ``<name>.mismatch``, kept. The
    data set's folder must be writable only when there is something to download (checked before any
    request); the folders a failed fetch created are removed again when it left them empty.

    Raises:
        UserError: a download failed or did not verify (see :func:`download_file`), the data folder cannot
            be written, or a file that is present does not verify after the fetch.
    """
    if isinstance(timeout, bool) or not (isinstance(timeout, numbers.Real) and 0 < timeout <= MAX_TIMEOUT_S):
        raise UserError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT_S:g}], got {timeout!r}")
    dataset = get_dataset(name, manifest)
    directory, source = data_root_and_source(root)
    where = directory / dataset.folder if dataset.folder else directory
    todo = [spec for spec in dataset.files
            if (optional or not spec.optional) and check_file(spec, where).state in ("missing", "mismatch")]
    if not todo:
        return []
    output_dir(where, f"the data folder ({source})")
    with _removing_new_folders([where / spec.path for spec in todo]), _writing():
        written = _download(dataset, todo, where, timeout=timeout, progress=progress)
        _move_aside_shadowing_copies(todo, where, written)
    return written


def _download(dataset: DataSet, todo: list[FileSpec], where: Path, *, timeout: float, progress: bool) -> list[Path]:
    """Download the files ``todo`` of ``dataset`` into ``where``, each in its form; the paths written."""
    written: list[Path] = []
    by_archive: dict[str, list[FileSpec]] = {}
    for spec in todo:
        if spec.form == "member":
            by_archive.setdefault(_urls(spec)[0], []).append(spec)
        elif spec.form == "tar":
            written.append(_fetch_tar(spec, where, timeout=timeout, progress=progress))
        else:
            stored = f"{spec.path}.gz" if spec.form == "gz" else spec.path
            md5, sha256 = (spec.gz_md5, spec.gz_sha256) if spec.form == "gz" else (spec.md5, spec.sha256)
            written.append(_download_any(spec, where / stored, md5=md5, sha256=sha256, timeout=timeout,
                                         progress=progress))
    for specs in by_archive.values():
        written += _fetch_members(dataset, specs, where, timeout=timeout, progress=progress)
    return written


def _move_aside_shadowing_copies(todo: list[FileSpec], where: Path, written: list[Path]) -> None:
    """A copy that does not verify and is found before the fetched file is renamed to ``<name>.mismatch``.

    Raises:
        UserError: a file still does not verify after the fetch.
    """
    for spec in todo:
        state = check_file(spec, where)
        if state.state == "mismatch" and state.found not in written:  # another form shadows the fetched file
            aside = _aside(state.found)
            os.replace(state.found, aside)
            print(f"{state.found} did not verify ({state.detail}); moved it to {aside}", file=sys.stderr)
            state = check_file(spec, where)
        if state.state == "mismatch":
            raise UserError(f"{spec.path} in {where} still does not verify after the fetch: {state.detail}")


__all__ = ["MAX_TIMEOUT_S", "TIMEOUT_S", "DownloadError", "download_file", "fetch"]
