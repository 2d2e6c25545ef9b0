"""Density data sets: the MAF tabular benchmarks, 2-D toys, bundled sklearn sets and user ``.npy`` files.

See :func:`load_density` for the single entry point.
"""

from nodebench.datasets.density import (
    SKLEARN_NAMES,
    file_splits,
    load_density,
    load_npy,
    load_sklearn,
    load_toy,
    read_npy_file,
)
from nodebench.datasets.splits import Splits
from nodebench.datasets.storage import data_root, read_manifest, verify_checksum
from nodebench.datasets.tabular import (
    MAF_NAMES,
    load_bsds300,
    load_gas,
    load_hepmass,
    load_maf,
    load_miniboone,
    load_power,
)
from nodebench.datasets.toy import TOY_NAMES, sample_toy

__all__ = [
    "MAF_NAMES",
    "SKLEARN_NAMES",
    "TOY_NAMES",
    "Splits",
    "data_root",
    "file_splits",
    "load_bsds300",
    "load_density",
    "load_gas",
    "load_hepmass",
    "load_maf",
    "load_miniboone",
    "load_npy",
    "load_power",
    "load_sklearn",
    "load_toy",
    "read_manifest",
    "read_npy_file",
    "sample_toy",
    "verify_checksum",
]
