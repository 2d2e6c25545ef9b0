"""Where density data files live and their checksums (`nodebench data fetch NAME` fetches them).

The files of the five MAF data sets (Papamakarios et al. 2017, arXiv 1705.07057) come from one archive,
Zenodo record 1161203. ``nodebench/datasets/manifest.toml`` in the repository lists each file with its path
relative to the data directory, its source URL and its sha256. An empty sha256 means "not yet pinned":
the file is then used without verification and a warning is logged.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import math
import os
import tarfile
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from nodebench.errors import UserError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Data files live in ``datasets/`` of a source checkout, else in the user's cache (an installed wheel);
#: ``NODEBENCH_DATA`` overrides both.
DEFAULT_DATA_DIR = (REPO_ROOT / "datasets" if (REPO_ROOT / "datasets" / "README.md").is_file()
                    else Path.home() / ".cache" / "nodebench" / "data")
#: The checksum manifest ships inside the package, so an installed wheel verifies its data too.
DEFAULT_MANIFEST = Path(__file__).resolve().parent / "manifest.toml"
ENV_VAR = "NODEBENCH_DATA"


@dataclass(frozen=True)
class ManifestFile:
    """One data file: its data set, path relative to the data directory, source URL and sha256."""

    dataset: str
    path: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest: data files and the checksums of the archives they come from (by URL)."""

    files: tuple[ManifestFile, ...]
    archives: dict[str, str]

    def files_of(self, dataset: str) -> tuple[ManifestFile, ...]:
        """The files of ``dataset``; :class:`UserError` if the manifest lists none."""
        files = tuple(f for f in self.files if f.dataset == dataset)
        if not files:
            known = sorted({f.dataset for f in self.files})
            raise UserError(f"no files for data set {dataset!r} in the manifest; known: {', '.join(known)}")
        return files


def data_root(root: Optional[str | os.PathLike] = None) -> Path:
    """The data directory: ``root`` if given, else ``$NODEBENCH_DATA``, else ``<repo>/datasets``.

    Raises:
        UserError: that path exists but is not a folder (a missing folder just holds no data).
    """
    return data_root_and_source(root)[0]


def data_root_and_source(root: Optional[str | os.PathLike] = None) -> tuple[Path, str]:
    """The data directory (:func:`data_root`) and what chose it, for messages: ``--root``, ``$NODEBENCH_DATA``
    or ``the default data directory``."""
    if root is not None:
        directory, source = Path(root), "--root"
    elif os.environ.get(ENV_VAR):
        directory, source = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        directory, source = DEFAULT_DATA_DIR, "the default data directory"
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{source} {str(directory)!r} is a file; give a folder")
    return directory, source


def folder_note(paths) -> str:
    """`` (<path> is a folder, not a file)`` for the first of ``paths`` that is a folder where a file is
    expected, else ``""``: said beside "not found", which alone would send the user looking for nothing."""
    folder = next((Path(p) for p in paths if Path(p).is_dir()), None)
    return f" ({folder} is a folder, not a file)" if folder is not None else ""


def read_manifest(path: Optional[str | os.PathLike] = None) -> Manifest:
    """Parse the manifest (default ``nodebench/datasets/manifest.toml``); :class:`UserError` if unusable."""
    path = Path(path) if path is not None else DEFAULT_MANIFEST
    try:
        raw = tomllib.loads(path.read_text())
        files = tuple(
            ManifestFile(str(f["dataset"]), str(f["path"]), str(f["url"]), str(f["sha256"])) for f in raw["files"]
        )
        archives = {str(url): str(sha) for url, sha in raw.get("archives", {}).items()}
    except FileNotFoundError:
        raise UserError(f"data manifest not found at {path}") from None
    except (tomllib.TOMLDecodeError, KeyError, TypeError, OSError) as exc:
        raise UserError(f"malformed data manifest {path}: {exc}") from None
    return Manifest(files, archives)


def _npy_magic(path: Path, handle) -> None:
    if handle.read(6) != b"\x93NUMPY":
        raise UserError(f"{path} is not a .npy file (no NumPy header); write arrays with numpy.save")


def read_npy(path: Path) -> np.ndarray:
    """Read a ``.npy`` array without unpickling; :class:`UserError` if the file is not one."""
    with open(path, "rb") as handle:
        _npy_magic(path, handle)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npy array: {exc}") from None


def npy_header(path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape a ``.npy`` file declares (``numpy.lib.format``'s header parser), checked against the
    file's length, without reading the array.

    Raises:
        UserError: no NumPy header, an unreadable header, an object array (which would need unpickling), or a
            length that is not the header's plus the declared array's.
    """
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as handle:
            _npy_magic(path, handle)
            handle.seek(0)
            version = npy_format.read_magic(handle)
            readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
            if version in readers:
                shape, _, dtype = readers[version](handle)
                offset = handle.tell()
            else:  # a newer header format: numpy's own reader, mapping the array rather than reading it
                mapped = np.load(path, mmap_mode="r", allow_pickle=False)
                shape, dtype, offset = mapped.shape, mapped.dtype, mapped.offset
        size = path.stat().st_size
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npy array: {exc}") from None
    if dtype.hasobject:
        raise UserError(f"{path} holds an object array, which cannot be read without unpickling; expected a "
                        "numeric array written with numpy.save")
    expected = offset + math.prod(shape) * dtype.itemsize
    if size != expected:
        state = "truncated" if size < expected else "too long"
        raise UserError(f"{path} is {state}: its .npy header declares a {dtype} array of shape {shape} "
                        f"({expected} bytes with the header), the file has {size} bytes")
    return dtype, tuple(shape)


def read_tar_files(path: Path) -> list[tuple[str, bytes]]:
    """``(member name, bytes)`` of every regular file of the tar archive ``path`` (gzipped or plain), in archive
    order, read whole so that a damaged archive is an error rather than a shorter list.

    :mod:`tarfile` alone ends its listing silently at the first unreadable header after the first member, and
    never reaches the gzip CRC when the caller stops reading: a single flipped byte in a ``.tar.gz`` then yields
    the members before it, with no error. Here the gzip stream is decompressed and CRC-checked first, and what
    follows the last member must be the zero blocks that end a tar.

    Raises:
        tarfile.ReadError: corrupt or truncated gzip data, a damaged tar header or a missing end-of-archive block.
        OSError: the file cannot be read.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise tarfile.ReadError(f"corrupt gzip data ({exc})") from None
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        files = [(member.name, tar.extractfile(member).read()) for member in tar if member.isfile()]
        end = tar.offset
    rest = raw[end:]
    if len(rest) < tarfile.BLOCKSIZE or rest.strip(b"\0"):
        raise tarfile.ReadError(f"damaged or truncated tar after its first {len(files)} file(s): byte {end} does not "
                                "start a readable header or the zero blocks that end an archive")
    return files


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str) -> None:
    """Check ``path`` against ``expected``; an empty ``expected`` logs a warning and skips the check."""
    if not expected:
        log.warning("no sha256 pinned for %s in the data manifest; using it unverified", path)
        return
    actual = sha256_of(path)
    if actual != expected.lower():
        raise UserError(
            f"checksum mismatch for {path}: sha256 {actual}, manifest expects {expected}; "
            "delete the file and download it again"
        )


def dataset_files(
    dataset: str, root: Optional[str | os.PathLike] = None, manifest: Optional[str | os.PathLike] = None
) -> dict[str, Path]:
    """Locate and verify the files of ``dataset``; returns ``{relative path: absolute path}``.

    Raises:
        UserError: A file is missing (the message names the expected path and how to get it) or its
            checksum does not match the manifest.
    """
    directory = data_root(root)
    found = {}
    for entry in read_manifest(manifest).files_of(dataset):
        path = directory / entry.path
        if not path.is_file():
            raise UserError(
                f"{dataset} data file not found: expected {path}{folder_note([path])}; fetch it with "
                f"`nodebench data fetch {dataset}` "
                f"or set {ENV_VAR} to a folder holding {entry.path}"
            )
        verify_checksum(path, entry.sha256)
        found[entry.path] = path
    return found
