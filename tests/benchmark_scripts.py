"""Running a script of ``benchmarks/`` with bad arguments: the check shared by the scripts' tests."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(script: str, arguments: list[str], monkeypatch) -> None:
    """``benchmarks/SCRIPT ARGUMENTS`` run as ``__main__`` in this process (argv and sys.path restored after
    the test, with whatever the script adds to sys.path)."""
    monkeypatch.setattr(sys, "argv", [script, *arguments])
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    runpy.run_path(str(BENCHMARKS / script), run_name="__main__")


def assert_refused_in_one_line(script: str, arguments: list[str], message: str, tmp_path: Path, capsys,
                               monkeypatch) -> None:
    """``benchmarks/SCRIPT ARGUMENTS``, run as ``__main__`` in this process, exits 2 with the one line
    ``SCRIPT: error: …MESSAGE…`` on stderr (any other exception fails the test: a traceback) and neither writes
    nor changes anything in its ``--out`` (``tmp_path / "out"``)."""
    out = tmp_path / "out"
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with pytest.raises(SystemExit) as exited:
        run_script(script, [*arguments, "--out", str(out)], monkeypatch)
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"{script}: error: ") and message in err, err
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert out.exists() == bool(before)


def assert_exits_2_in_one_line(script: str, arguments: list[str], message: str, capsys, monkeypatch) -> None:
    """``benchmarks/SCRIPT ARGUMENTS`` (a script without ``--out``, or with a bad one) exits 2 with one line on
    stderr holding ``message``."""
    with pytest.raises(SystemExit) as exited:
        run_script(script, arguments, monkeypatch)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and message in err, err
