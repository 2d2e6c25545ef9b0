"""Analyses: paper-specific studies run after a sweep (gradient Taylor tests, ...).

An analysis is declared in ``experiments.toml`` as ``[[analysis]]`` with a ``kind`` from
:data:`ANALYSES`, the ``presets`` it runs at, and its parameters. It writes ``<name>.parquet`` into the
run directory, draws its figures, and returns a Markdown section for the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

ANALYSES: dict[str, Callable] = {}


def run_analyses(spec, run_dir: Path, records: pd.DataFrame, *, preset: str) -> tuple[list[str], list[Path]]:
    """Run the paper's analyses declared for ``preset``; returns report sections and figure paths."""
    sections: list[str] = []
    figures: list[Path] = []
    for analysis in getattr(spec, "analyses", []):
        if preset not in analysis.get("presets", []):
            continue
        section, figs = ANALYSES[analysis["kind"]](analysis, Path(run_dir), records)
        sections.append(section)
        figures += figs
    return sections, figures
