"""The distributions built from the checkout: the wheel holds every file the package reads at run time and
nothing else of the repository; the sdist holds what builds it, and no fragment of the test suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import nodebench

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, built by setuptools from a copy of the checkout's files (tracked, or new and
    not git-ignored; not the baselines of results/): no build output of the checkout leaks into them, nor
    does the build write there."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in filter(None, names):
        # a tracked file deleted in the working tree is not part of the build; results/ is 50 MB of baselines
        if (REPO / name).is_file() and not name.startswith("results/"):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    for hook in ("build_sdist", "build_wheel"):  # one process each, as a build front end calls them
        subprocess.run([sys.executable, "-c", f"import sys; from setuptools import build_meta; build_meta.{hook}"
                        "(sys.argv[1])", str(out)], cwd=source, capture_output=True, check=True)
    return {"source": source, "sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


def _package_data(source: Path) -> set[str]:
    """Every file of the package that is not Python source: what it reads at run time (paper experiments and
    READMEs, benchmark suites, the data manifest)."""
    return {path.relative_to(source).as_posix() for path in (source / "nodebench").rglob("*")
            if path.is_file() and path.suffix != ".py"}


def test_the_wheel_holds_the_package_and_every_file_it_reads_and_nothing_else(dists):
    names = set(zipfile.ZipFile(dists["wheel"]).namelist())
    modules = {path.relative_to(dists["source"]).as_posix() for path in (dists["source"] / "nodebench").rglob("*.py")}
    assert _package_data(dists["source"]) and _package_data(dists["source"]) <= names
    assert modules <= names
    info = f"nodebench-{nodebench.__version__}.dist-info/"
    assert {name for name in names if not name.startswith(info)} == modules | _package_data(dists["source"])
    assert "nodebench = nodebench.cli:main" in zipfile.ZipFile(dists["wheel"]).read(info + "entry_points.txt").decode()


def test_the_wheel_s_metadata_matches_the_package(dists):
    wheel = zipfile.ZipFile(dists["wheel"])
    metadata = Parser().parsestr(wheel.read(f"nodebench-{nodebench.__version__}.dist-info/METADATA").decode())
    assert metadata["Name"] == "nodebench" and metadata["Version"] == nodebench.__version__
    assert metadata["Requires-Python"] == ">=3.11"
    assert any(requirement.startswith("torch>=") for requirement in metadata.get_all("Requires-Dist"))


def test_the_sdist_builds_the_package_and_ships_no_part_of_the_test_suite(dists):
    """setuptools adds tests/test*.py to an sdist by default, without conftest.py, the tests' helper modules
    and the committed baselines they read: six of those modules failed to import there."""
    prefix = f"nodebench-{nodebench.__version__}/"
    names = {name.removeprefix(prefix) for name in tarfile.open(dists["sdist"]).getnames()}
    assert {"pyproject.toml", "README.md"} | _package_data(dists["source"]) <= names
    assert not [name for name in names if name == "tests" or name.startswith("tests/")]


def test_the_readme_says_where_an_installed_wheel_looks_for_data():
    """Outside a checkout the default data folder is the user's cache, which the README did not say: it named
    only ``datasets/`` in the checkout, which an installed wheel does not have."""
    from nodebench.datasets import storage

    cache = Path.home() / ".cache" / "nodebench" / "data"
    assert storage.DEFAULT_DATA_DIR in (REPO / "datasets", cache)
    readme = (REPO / "README.md").read_text()
    assert f"for an installed wheel, `~/{cache.relative_to(Path.home()).as_posix()}`" in readme
