"""Running a script of ``benchmarks/`` with bad arguments: the check shared by the scripts' tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def assert_refused_in_one_line(script: str, arguments: list[str], message: str, tmp_path: Path,
                               env: dict | None = None) -> None:
    """``benchmarks/SCRIPT ARGUMENTS`` exits 2 with the one line ``SCRIPT: error: …MESSAGE…``, no traceback,
    and writes nothing to its ``--out``."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments, "--out", str(out)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"{script}: error: ") and message in done.stderr, done.stderr
    assert not out.exists()
