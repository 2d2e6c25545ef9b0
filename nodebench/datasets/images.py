"""Image-classification data: MNIST, CIFAR-10 and SVHN from their standard files, and sklearn's digits.

These are the data sets of the image experiments of Norcliffe & Deisenroth, "Faster Training of Neural
ODEs Using Gauß–Legendre Quadrature" (TMLR 2023). The
official code (``a-norcliffe/torch_gq_adjoint``, ``datasets/datasets.py`` and ``experiments/images.py``)
reads them with torchvision and ``ToTensor()`` only, the standard train/test splits and no
normalisation. torchvision is not a dependency (its wheels pin a CUDA build of torch), so this module reads the same
files itself and returns what ``ToTensor()`` would: float32 in [0, 1] (``uint8 / 255``), shape (N, C, H, W),
with int64 labels. The loaders never download: the files must be in the data directory
(``$NODEBENCH_DATA``, default ``<repo>/datasets``); ``nodebench data fetch mnist`` (or ``cifar10``,
``svhn``) downloads them from the official sources and checks them against the md5 values the sources
publish (pinned in ``nodebench/datasets/manifest.toml``), and ``nodebench data verify mnist`` checks a copy.

Files, relative to the data directory (the folders match torchvision's ``root`` layout, so a folder
torchvision downloaded into works as is):

- MNIST, ``mnist/``: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each plain or gzipped (``.gz``); ``mnist/MNIST/raw/`` (torchvision's
  layout) is searched too. IDX headers are parsed and checked (magic number, dtype code, dimensions,
  length); a malformed file is a :class:`~nodebench.errors.UserError`.
- CIFAR-10, ``cifar10/cifar-10-batches-py/``: ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, the
  "python version" pickles (a dict with ``data``: uint8 (N, 3072), rows of R, G and B planes, and
  ``labels``). Our choice: they are unpickled by a restricted unpickler that admits only NumPy arrays,
  so a tampered file cannot run code.
- SVHN, ``svhn/``: ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB v5: ``X`` uint8 (32, 32, 3, N),
  ``y`` (N, 1) with 10 meaning the digit 0, mapped to 0 as torchvision does). The "extra" split is not used.
- ``digits``: scikit-learn's bundled 8×8 digits (offline; 1797 images, values 0…16, scaled to [0, 1] by
  dividing by 16), split by a seeded stratified shuffle. An offline stand-in for smoke tests, not part of
  the paper.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nodebench.datasets.storage import ENV_VAR, data_root, folder_note
from nodebench.errors import UserError

PathArg = str | os.PathLike | None

IMAGE_NAMES = ("mnist", "cifar10", "svhn", "digits")
#: How records name each source (the ``dataset`` column); the stand-in is labelled as one.
DATASET_LABELS = {"digits": "digits (scikit-learn 8x8, stand-in)"}
README_HINT = "see datasets/README.md for where to get the files and where to put them"

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_DIRS = ("mnist", "mnist/MNIST/raw")
CIFAR10_DIR = "cifar10/cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
SVHN_DIR = "svhn"
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}

#: IDX dtype codes (third byte of the magic number) and the big-endian NumPy dtypes they denote.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: The longest IDX header: the magic number and up to 255 dimensions.
IDX_MAX_HEADER = 4 + 4 * 255


@dataclass(frozen=True)
class ImageSplits:
    """Train and test images, float in [0, 1] shaped (N, C, H, W), with int64 labels in 0…n_classes−1."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int = 10

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of one image."""
        return self.train_x.shape[2], self.train_x.shape[3]


def _to_float(images: np.ndarray, scale: float = 255.0) -> torch.Tensor:
    """``ToTensor()``'s conversion: float32, divided by ``scale`` (255 for uint8 pixels)."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(scale)


def _labels(labels: np.ndarray, what: str, n_classes: int = 10) -> torch.Tensor:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise UserError(f"{what}: labels must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}")
    return torch.from_numpy(labels)


def _missing(dataset: str, directory: Path, paths: list[str]) -> UserError:
    folders = [f"{directory / p.removesuffix('[.gz]')}{suffix}" for p in paths for suffix in ("", ".gz")]
    return UserError(f"{dataset} data not found: expected {', '.join(paths)} in the data directory {directory}"
                     f"{folder_note(folders)} "
                     f"(set {ENV_VAR} to use another); fetch it with `nodebench data fetch "
                     f"{dataset.lower().replace('-', '')}` or {README_HINT}")


# -- MNIST: IDX files ---------------------------------------------------------------------------------------

def idx_header(head: bytes, length: int, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """The dtype, dimensions and header length of an IDX file of ``length`` bytes whose first bytes are ``head``
    (at least the whole header, or the whole file when shorter); the checks of :func:`read_idx`.

    Raises:
        UserError: A wrong magic number, a truncated header, or a length the dimensions do not imply.
    """
    if length < 4:
        raise UserError(f"{path} is not an IDX file: {length} bytes, shorter than the 4-byte magic number")
    if head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file: magic number 0x{head[:4].hex()}, expected 0x0000TTNN with "
                        f"a dtype code TT in {{{', '.join(f'{k:02x}' for k in IDX_DTYPES)}}}")
    dtype, ndim = np.dtype(IDX_DTYPES[head[2]]), head[3]
    header = 4 + 4 * ndim
    if length < header:
        raise UserError(f"{path} is a truncated IDX file: the header declares {ndim} dimensions "
                        f"({header} bytes) but the file has {length} bytes")
    dims = tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims) * dtype.itemsize
    if length != expected:
        state = "truncated" if length < expected else "too long"
        raise UserError(f"{path} is {state}: IDX header declares shape {dims} of {dtype.str[1:]} "
                        f"({expected} bytes with the header), the file has {length} bytes")
    return dtype, dims, header


#: What reading a plain or gzipped file can raise: OSError (``gzip.BadGzipFile`` among them), EOFError (a
#: truncated gzip stream) and zlib.error (damaged compressed data, which is no OSError).
_READ_ERRORS = (OSError, EOFError, zlib.error)


def _idx_unreadable(path: Path, exc: BaseException) -> UserError:
    return UserError(f"cannot read {path}: {exc}; expected an IDX file, plain or gzipped")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain, or gzipped when the name ends in ``.gz``) into an array of its shape.

    The header is two zero bytes, a dtype code (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions, then each dimension as a big-endian uint32; the data follow,
    big-endian, and must have exactly the length the dimensions imply.

    Raises:
        UserError: The file cannot be read, is not valid gzip, or is not a well-formed IDX file.
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except _READ_ERRORS as exc:
        raise _idx_unreadable(path, exc) from None
    dtype, dims, header = idx_header(raw, len(raw), path)
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def check_idx(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape of an IDX file, checked as :func:`read_idx` checks it but without keeping its data:
    a plain file's header against its size, a ``.gz`` file decompressed in chunks (which also checks the gzip
    stream's CRC and length) and counted.

    Raises:
        UserError: as :func:`read_idx`.
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                head = handle.read(IDX_MAX_HEADER)
                length = len(head) + sum(len(chunk) for chunk in iter(lambda: handle.read(1 << 20), b""))
        else:
            with open(path, "rb") as handle:
                head = handle.read(IDX_MAX_HEADER)
            length = path.stat().st_size
    except _READ_ERRORS as exc:
        raise _idx_unreadable(path, exc) from None
    dtype, dims, _ = idx_header(head, length, path)
    return dtype.newbyteorder("="), dims


def _find_mnist_file(directory: Path, name: str) -> Path | None:
    for folder in MNIST_DIRS:
        for candidate in (name, name + ".gz"):
            path = directory / folder / candidate
            if path.is_file():
                return path
    return None


def _check_mnist_pair(images_path: Path, images: tuple[np.dtype, tuple[int, ...]], labels_path: Path,
                      labels: tuple[np.dtype, tuple[int, ...]]) -> None:
    """The dtypes and shapes of an images file and its labels file: ubyte (N, rows, cols) and ubyte (N,)."""
    (images_dtype, images_shape), (labels_dtype, labels_shape) = images, labels
    if images_dtype != np.uint8 or len(images_shape) != 3:
        raise UserError(f"{images_path}: expected IDX ubyte images of shape (N, rows, cols), "
                        f"got {images_dtype} of shape {images_shape}")
    if labels_dtype != np.uint8 or len(labels_shape) != 1:
        raise UserError(f"{labels_path}: expected IDX ubyte labels of shape (N,), "
                        f"got {labels_dtype} of shape {labels_shape}")
    if images_shape[0] != labels_shape[0]:
        raise UserError(f"{images_path} holds {images_shape[0]} images but {labels_path} holds {labels_shape[0]} "
                        "labels; expected one label per image")


def _mnist_part(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_mnist_pair(images_path, (images.dtype, images.shape), labels_path, (labels.dtype, labels.shape))
    return _to_float(images[:, None]), _labels(labels, str(labels_path))


def check_mnist_files(paths: dict[str, Path]) -> None:
    """Check the structure of MNIST's IDX files (``paths``: file name as in :data:`MNIST_FILES` → where it is,
    plain or ``.gz``) as :func:`load_mnist` would, without loading the images; absent names are skipped.

    Raises:
        UserError: a malformed file (see :func:`read_idx`), or images and labels that do not pair up.
    """
    shapes = {name: check_idx(path) for name, path in paths.items()}
    for images, labels in (("train_images", "train_labels"), ("test_images", "test_labels")):
        names = MNIST_FILES[images], MNIST_FILES[labels]
        if all(name in shapes for name in names):
            _check_mnist_pair(paths[names[0]], shapes[names[0]], paths[names[1]], shapes[names[1]])


def load_mnist(root: PathArg = None) -> ImageSplits:
    """MNIST from its four IDX files (plain or ``.gz``) under ``<data>/mnist`` or ``<data>/mnist/MNIST/raw``.

    Returns:
        60000 training and 10000 test images, (N, 1, 28, 28) float32 in [0, 1], int64 labels.

    Raises:
        UserError: A file is missing (naming the expected paths) or malformed.
    """
    directory = data_root(root)
    found = {key: _find_mnist_file(directory, name) for key, name in MNIST_FILES.items()}
    absent = [name for key, name in MNIST_FILES.items() if found[key] is None]
    if absent:
        raise _missing("MNIST", directory, [f"{MNIST_DIRS[0]}/{name}[.gz]" for name in absent])
    train_x, train_y = _mnist_part(found["train_images"], found["train_labels"])
    test_x, test_y = _mnist_part(found["test_images"], found["test_labels"])
    return ImageSplits(train_x, train_y, test_x, test_y)


# -- CIFAR-10: python pickles -------------------------------------------------------------------------------

#: What unpickling a corrupt or foreign file can raise; all of them mean "not a CIFAR batch".
_CORRUPT_PICKLE = (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError, AttributeError, LookupError,
                   ImportError)  # LookupError: also an unknown codec named by a tampered ``_codecs.encode`` call
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only (what the CIFAR-10 batches hold); any other global
    (a function, a class from another module) is refused, so loading a file cannot execute code."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if module.startswith(("numpy.core.", "numpy._core.")):  # NumPy 2 renamed numpy.core to numpy._core
            module = f"{_NUMPY_CORE}.{module.split('.', 2)[2]}"
        return super().find_class(module, name)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR "python version" batch: images uint8 (N, 3, 32, 32) and labels int64 (N,).

    The batch is a pickled dict with ``data`` (uint8, N × 3072: the 1024 red, then green, then blue
    values of each image, row-major) and ``labels`` (N ints); keys may be bytes (Python 2 pickles) or str.

    Raises:
        UserError: The file cannot be unpickled safely or lacks the expected keys and shapes.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            batch = _ArrayUnpickler(handle, encoding="bytes").load()
    except _CORRUPT_PICKLE as exc:
        raise UserError(f"cannot read CIFAR batch {path}: {exc}; expected a CIFAR-10 python-version batch "
                        "(a pickled dict of NumPy arrays)") from None
    if not isinstance(batch, dict):
        raise UserError(f"{path}: expected a pickled dict with data and labels, got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise UserError(f"{path}: expected keys data and labels, found {', '.join(map(str, batch)) or 'none'}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: expected data of uint8 and shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise UserError(f"{path}: expected {len(data)} labels, got shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def check_pickle_frame(path: str | os.PathLike, what: str) -> None:
    """Cheap structure check of a pickle file without unpickling it: it must start as a pickle does (the
    ``PROTO`` opcode of protocol 2 or later, or a protocol 0/1 dict, list or tuple opening) and end with the
    ``STOP`` opcode, which a truncated pickle lacks.

    Raises:
        UserError: the file cannot be read or is not framed as a pickle (``what`` says what was expected).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
            handle.seek(0, os.SEEK_END)
            if handle.tell():
                handle.seek(-1, os.SEEK_END)
            tail = handle.read(1)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc}; expected {what}") from None
    starts = (head[:1] == b"\x80" and len(head) == 2 and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL) or head[:1] in (
        b"(", b"}", b"]", b")")
    if not starts:
        raise UserError(f"{path} is not a pickle: it starts with 0x{head.hex() or ' (empty file)'}; expected {what}")
    if tail != b".":
        raise UserError(f"{path} is a truncated pickle: it does not end with the STOP opcode; expected {what}")


def check_cifar_batch(path: str | os.PathLike) -> None:
    """Cheap structure check of a CIFAR batch (see :func:`check_pickle_frame`), without unpickling it."""
    check_pickle_frame(path, "a CIFAR-10 python-version batch (a pickled dict of NumPy arrays)")


def load_cifar10(root: PathArg = None) -> ImageSplits:
    """CIFAR-10 from ``<data>/cifar10/cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``).

    Returns:
        50000 training and 10000 test images, (N, 3, 32, 32) float32 in [0, 1], int64 labels.
    """
    directory = data_root(root)
    folder = directory / CIFAR10_DIR
    names = [*CIFAR10_TRAIN, CIFAR10_TEST]
    absent = [f"{CIFAR10_DIR}/{name}" for name in names if not (folder / name).is_file()]
    if absent:
        raise _missing("CIFAR-10", directory, absent)
    train = [read_cifar_batch(folder / name) for name in CIFAR10_TRAIN]
    test_x, test_y = read_cifar_batch(folder / CIFAR10_TEST)
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    return ImageSplits(_to_float(train_x), _labels(train_y, f"{folder}/data_batch_*"),
                       _to_float(test_x), _labels(test_y, str(folder / CIFAR10_TEST)))


# -- SVHN: MATLAB files -------------------------------------------------------------------------------------

def read_svhn_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN cropped-digits file: images uint8 (N, 3, 32, 32), labels int64 (N,) with 10 mapped to 0.

    Raises:
        UserError: The file is not a readable MATLAB v5 file or lacks ``X`` (32, 32, 3, N) / ``y``.
    """
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise UserError(f"cannot read {path}: {exc}; expected the MATLAB v5 file from the SVHN site") from None
    except Exception as exc:  # scipy's reader fails on a damaged file in many ways (ZeroDivisionError, NameError…)
        raise UserError(f"cannot read {path}: {type(exc).__name__}: {exc}; expected an SVHN MATLAB file with X "
                        "and y") from None
    if "X" not in mat or "y" not in mat:
        raise UserError(f"{path}: expected variables X and y, found {', '.join(sorted(mat)) or 'none'}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    _check_svhn_shapes(path, x.dtype, x.shape, y.size)
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise UserError(f"{path}: expected labels 0..10 (10 meaning the digit 0), found {labels.min()}..{labels.max()}")
    labels[labels == 10] = 0
    return np.transpose(x, (3, 2, 0, 1)), labels  # (H, W, C, N) -> (N, C, H, W)


def _check_svhn_shapes(path: Path, x_dtype, x_shape: tuple[int, ...], y_size: int) -> None:
    if x_dtype != np.uint8 or len(x_shape) != 4 or tuple(x_shape[:3]) != (32, 32, 3):
        raise UserError(f"{path}: expected X of uint8 and shape (32, 32, 3, N), got {x_dtype} {tuple(x_shape)}")
    if y_size != x_shape[3]:
        raise UserError(f"{path}: X holds {x_shape[3]} images but y holds {y_size} labels; expected y of shape "
                        "(N, 1)")


def check_svhn_mat(path: str | os.PathLike) -> None:
    """Cheap structure check of an SVHN file: the MATLAB v5 header and the names, classes and shapes of ``X``
    and ``y`` from the variables' own headers (:func:`scipy.io.whosmat`), without reading their data.

    Raises:
        UserError: as :func:`read_svhn_mat` for a file that is not MATLAB v5 or lacks ``X``/``y``.
    """
    import scipy.io

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            major, _ = scipy.io.matlab.matfile_version(handle)
        if major != 1:
            raise NotImplementedError("a MATLAB v7.3 (HDF5) file")
        found = {name: (shape, cls) for name, shape, cls in scipy.io.whosmat(path)}
    except NotImplementedError as exc:
        raise UserError(f"cannot read {path}: {exc}; expected the MATLAB v5 file from the SVHN site") from None
    except (scipy.io.matlab.MatReadError, OSError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise UserError(f"cannot read {path}: {exc}; expected an SVHN MATLAB file with X and y") from None
    if "X" not in found or "y" not in found:
        raise UserError(f"{path}: expected variables X and y, found {', '.join(sorted(found)) or 'none'}")
    (x_shape, x_class), (y_shape, _) = found["X"], found["y"]
    _check_svhn_shapes(path, np.dtype(np.uint8) if x_class == "uint8" else x_class, x_shape, math.prod(y_shape))


def load_svhn(root: PathArg = None) -> ImageSplits:
    """SVHN (cropped digits) from ``<data>/svhn/train_32x32.mat`` and ``test_32x32.mat``.

    Returns:
        73257 training and 26032 test images, (N, 3, 32, 32) float32 in [0, 1], int64 labels (0…9).
    """
    directory = data_root(root)
    paths = {split: directory / SVHN_DIR / name for split, name in SVHN_FILES.items()}
    absent = [f"{SVHN_DIR}/{SVHN_FILES[split]}" for split, path in paths.items() if not path.is_file()]
    if absent:
        raise _missing("SVHN", directory, absent)
    train_x, train_y = read_svhn_mat(paths["train"])
    test_x, test_y = read_svhn_mat(paths["test"])
    return ImageSplits(_to_float(train_x), torch.from_numpy(train_y), _to_float(test_x), torch.from_numpy(test_y))


# -- sklearn digits (offline smoke data) --------------------------------------------------------------------

def load_digits(seed: int = 0, test_fraction: float = 0.2) -> ImageSplits:
    """scikit-learn's bundled 8×8 digits, (N, 1, 8, 8) with values 0…16 divided by 16.

    The split is a stratified shuffle seeded by ``seed`` (``test_fraction`` of the images, 360 of 1797 by
    default, go to the test set). Needs no files.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    digits = sk_digits()
    images = digits.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), values 0..16
    train_x, test_x, train_y, test_y = train_test_split(images, digits.target, test_size=test_fraction,
                                                        random_state=seed, stratify=digits.target)
    return ImageSplits(_to_float(train_x, 16.0), _labels(train_y, "digits"),
                       _to_float(test_x, 16.0), _labels(test_y, "digits"))


LOADERS: dict[str, Callable[..., ImageSplits]] = {"mnist": load_mnist, "cifar10": load_cifar10, "svhn": load_svhn}


def load_images(name: str, root: PathArg = None, *, seed: int = 0) -> ImageSplits:
    """The image data set ``name`` (one of :data:`IMAGE_NAMES`); ``seed`` only affects ``digits``' split."""
    if name == "digits":
        return load_digits(seed)
    if name not in LOADERS:
        raise UserError(f"unknown image data set {name!r}; valid: {', '.join(IMAGE_NAMES)}")
    return LOADERS[name](root)


__all__ = ["DATASET_LABELS", "IMAGE_NAMES", "ImageSplits", "load_cifar10", "load_digits", "load_images", "load_mnist",
           "load_svhn", "read_cifar_batch", "read_idx", "read_svhn_mat", "check_cifar_batch", "check_idx",
           "check_mnist_files", "check_pickle_frame", "check_svhn_mat", "idx_header"]
