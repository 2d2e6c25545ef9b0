"""Malformed files and output paths that broke the one-line rule: a corrupt tarball's error over five lines, a
``run.json`` with a list for a name and a paper file that is not UTF-8 as tracebacks, and ``compare --out`` on a
run's ``records.parquet``, which it replaced with Markdown."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from nodebench.cli import main
from nodebench.errors import UserError
from nodebench.experiments import load_spec_file

BASELINE = Path(__file__).resolve().parents[1] / "results" / "baselines" / "gq_adjoint-quick-cpu"


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_exit_2(argv: list[str], message: str, capsys) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nodebench: error: ") and err.count("\n") == 1 and message in err, err


def test_a_user_error_is_one_line_whatever_it_quotes():
    assert str(UserError("cannot read x: could not be opened:\n- method gz: ReadError('not gzip')\n")) == \
        "cannot read x: could not be opened: - method gz: ReadError('not gzip')"


def test_a_corrupt_tarball_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "physionet").mkdir()
    (tmp_path / "physionet" / "set-a.tar.gz").write_bytes(b"\x00not an archive" * 64)
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path))
    _one_line_exit_2(["data", "verify", "physionet"], "cannot read archive", capsys)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A copy of a committed run."""
    shutil.copytree(BASELINE, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("target", ["records.parquet", "run.json"])
def test_compare_never_writes_over_a_file_of_another_kind(run_dir, target, capsys):
    before = _digests(run_dir)
    _one_line_exit_2(["compare", str(run_dir), str(run_dir), "--out", str(run_dir / target)],
                     "does not end in .md: the command writes a .md file, never over a file of another kind", capsys)
    assert _digests(run_dir) == before


def test_a_run_json_naming_a_paper_by_a_list_is_corrupt(run_dir, capsys):
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(info | {"paper": ["gq_adjoint"]}))
    before = _digests(run_dir)
    _one_line_exit_2(["report", str(run_dir)], "run.json' is corrupt (not a JSON object whose run_id, command, paper, "
                                               "preset, suite are strings)", capsys)
    assert _digests(run_dir) == before


def test_a_paper_file_that_is_not_utf8_is_one_user_error(tmp_path):
    (tmp_path / "experiments.toml").write_bytes(b"paper = '\xff'\n")
    with pytest.raises(UserError, match=r"malformed experiment file .*: 'utf-8' codec can't decode byte 0xff"):
        load_spec_file(tmp_path / "experiments.toml")


@pytest.mark.parametrize("command", [["list"], ["verify"], ["fetch", "mnist"]])
def test_a_manifest_without_data_sets_is_one_line(command, tmp_path, capsys, monkeypatch):
    """An empty manifest listed nothing (exit 0), blamed the data folder ("no data set found in ...", exit 1) or
    gave "unknown data set 'mnist'; known: " with an empty list."""
    (tmp_path / "empty.toml").write_text("# nothing yet\n")
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "data"))
    _one_line_exit_2(["data", *command, "--manifest", str(tmp_path / "empty.toml")],
                     f"data manifest {tmp_path / 'empty.toml'} declares no data set", capsys)
    assert not (tmp_path / "data").exists()
