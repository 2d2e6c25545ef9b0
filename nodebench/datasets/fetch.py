"""Download a known data set from its official source into the data directory, verified.

:func:`download_file` streams one URL into ``<target>.part`` with a progress bar (tqdm), resumes a
partial ``.part`` left by an interrupted download with an HTTP ``Range`` request (a server that ignores
the range restarts the file from zero), checks the result against the pinned checksum, and only then
renames it onto the target (atomic on one file system), so a target path never holds a partial or
unverified file; a connection that closes before the announced ``Content-Length`` is a failed download
(the partial file is kept for a resume), not a complete one. Network errors, timeouts, HTTP errors and
checksum mismatches are one-line :class:`~nodebench.errors.UserError` s. :func:`fetch` does this for
every file of a data set that is missing or does not verify (see :mod:`nodebench.datasets.catalog` for
the forms a file is stored in).
"""

from __future__ import annotations

import os
import socket
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

from nodebench.datasets.catalog import (DataSet, FileSpec, PathArg, check_file, file_digest, get_dataset,
                                        members_digest)
from nodebench.datasets.storage import data_root
from nodebench.errors import UserError

CHUNK = 1 << 16
TIMEOUT_S = 60.0
USER_AGENT = "nodebench-data-fetch"


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {})
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def download_file(url: str, target: Path, *, md5: str = "", sha256: str = "", timeout: float = TIMEOUT_S,
                  progress: bool = True) -> Path:
    """Download ``url`` to ``target`` (module docstring): resumable, checked against ``sha256`` (else
    ``md5``; neither: unchecked), renamed into place at the end.

    Raises:
        UserError: the download failed (the partial file is kept for a resume) or its checksum does not
            match (the partial file is deleted).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = _partial(target)
    offset = part.stat().st_size if part.is_file() else 0
    try:
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:  # 416: the partial file is already complete
                raise
            response = None
        if response is not None:
            with response:
                resumed = offset and response.status == 206
                offset = offset if resumed else 0
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else None
                received = offset
                with open(part, "ab" if resumed else "wb") as out, tqdm(
                        total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=target.name, disable=not progress, file=sys.stderr, leave=False) as bar:
                    for chunk in iter(lambda: response.read(CHUNK), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
                        received += len(chunk)
                if total is not None and received < total:  # urllib returns b"" when the connection drops
                    raise ConnectionError(f"the connection closed after {received} of {total} bytes")
    except urllib.error.HTTPError as exc:
        raise UserError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kept = part.stat().st_size if part.is_file() else 0
        then = (f"rerun the same command to resume ({kept} bytes kept in {part})" if kept else
                "nothing was kept; check the network and rerun the command")
        raise UserError(f"could not download {url}: {reason}; {then}") from None
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    if expected:
        actual = file_digest(part, algorithm)
        if actual != expected.lower():
            part.unlink()
            raise UserError(f"download of {url} has {algorithm} {actual}, expected {expected}; the file was "
                            "deleted: rerun the command, and if it fails again the source has changed")
    os.replace(part, target)
    return target


def _download_any(spec: FileSpec, target: Path, *, md5: str = "", sha256: str = "", timeout: float,
                  progress: bool) -> Path:
    """Try each of the file's URLs in turn; the last error is raised when all fail."""
    if not spec.urls:
        raise UserError(f"no download URL for {spec.path} in the data manifest")
    error: UserError | None = None
    for url in spec.urls:
        try:
            return download_file(url, target, md5=md5, sha256=sha256, timeout=timeout, progress=progress)
        except UserError as exc:
            error = exc
    raise error


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


def _fetch_members(dataset: DataSet, specs: list[FileSpec], directory: Path, *, timeout: float,
                   progress: bool) -> list[Path]:
    """Files extracted from one archive: the archive is downloaded (verified when its checksum is pinned)
    next to them and its matching members are written, each atomically."""
    url = specs[0].urls[0]
    sums = dataset.archives.get(url, {})
    archive = directory / Path(urlparse(url).path).name
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
                target = directory / match
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = _partial(target)
                with tar.extractfile(member) as source, open(tmp, "wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                os.replace(tmp, target)
                written.append(target)
                del pending[match]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"could not read archive {archive}: {exc}; delete it and fetch again") from None
    if pending:
        raise UserError(f"archive {archive} lacks {', '.join(sorted(pending))}")
    return written


def _aside(path: Path) -> Path:
    """A free name beside ``path`` for a copy that does not verify: ``<path>.mismatch``, ``.mismatch-2``, …"""
    candidates = (path.with_name(f"{path.name}.mismatch{'' if i == 1 else f'-{i}'}") for i in range(1, 1000))
    return next(p for p in candidates if not p.exists())


def fetch(name: str, root: PathArg = None, *, manifest: PathArg = None, timeout: float = TIMEOUT_S,
          progress: bool = True, optional: bool = False) -> list[Path]:
    """Download every file of data set ``name`` that is missing or does not verify under the data
    directory; ``optional`` files (PhysioNet's set C) only when asked. Returns the paths written. A copy
    that does not verify and would still be found before the fetched file (a corrupt plain MNIST file beside
    the downloaded ``.gz``, a record folder beside the tarball) is renamed to ``<name>.mismatch``, kept.

    Raises:
        UserError: a download failed or did not verify (see :func:`download_file`), or a file that is
            present does not verify after the fetch.
    """
    dataset = get_dataset(name, manifest)
    directory = data_root(root)
    where = directory / dataset.folder if dataset.folder else directory
    todo = [spec for spec in dataset.files
            if (optional or not spec.optional) and check_file(spec, where).state in ("missing", "mismatch")]
    written: list[Path] = []
    by_archive: dict[str, list[FileSpec]] = {}
    for spec in todo:
        if spec.form == "member":
            by_archive.setdefault(spec.urls[0] if spec.urls else "", []).append(spec)
        elif spec.form == "tar":
            written.append(_fetch_tar(spec, where, timeout=timeout, progress=progress))
        else:
            stored = f"{spec.path}.gz" if spec.form == "gz" else spec.path
            md5, sha256 = (spec.gz_md5, spec.gz_sha256) if spec.form == "gz" else (spec.md5, spec.sha256)
            written.append(_download_any(spec, where / stored, md5=md5, sha256=sha256, timeout=timeout,
                                         progress=progress))
    for specs in by_archive.values():
        written += _fetch_members(dataset, specs, where, timeout=timeout, progress=progress)
    for spec in todo:
        state = check_file(spec, where)
        if state.state == "mismatch" and state.found not in written:  # another form shadows the fetched file
            aside = _aside(state.found)
            os.replace(state.found, aside)
            print(f"{state.found} did not verify ({state.detail}); moved it to {aside}", file=sys.stderr)
            state = check_file(spec, where)
        if state.state == "mismatch":
            raise UserError(f"{spec.path} in {where} still does not verify after the fetch: {state.detail}")
    return written


__all__ = ["TIMEOUT_S", "download_file", "fetch"]
