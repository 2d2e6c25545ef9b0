"""Markdown tables and number formats shared by reports and analyses."""

from __future__ import annotations

import math

import pandas as pd

#: What an infinite value reads in a table (a metric that overflowed); the report page sorts it as a number.
INFINITE = {1: "∞", -1: "−∞"}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; ``|`` inside cells is escaped, and a line break inside a cell (a
    multi-line failure reason) becomes " ⏎ ", since a row must stay on one line."""
    def cells(values) -> str:
        return "| " + " | ".join(" ⏎ ".join(part.strip() for part in str(c).replace("|", "\\|").splitlines())
                                 for c in values) + " |"

    return "\n".join([cells(header), "|" + "---|" * len(header)] + [cells(row) for row in rows])


def fmt_number(value: float, spec: str) -> str:
    """``value`` in format ``spec`` (``".3g"``); ``–`` for a missing value, ``∞`` / ``−∞`` for an infinite one
    (Python's ``inf`` sorted as text on the report page, after every number either way)."""
    if pd.isna(value):
        return "–"
    return INFINITE[1 if value > 0 else -1] if math.isinf(value) else format(value, spec)


def fmt3(value: float) -> str:
    """Three significant digits (:func:`fmt_number`)."""
    return fmt_number(value, ".3g")


def fmt4(value: float) -> str:
    """Four significant digits (:func:`fmt_number`)."""
    return fmt_number(value, ".4g")


def fmt_value(value) -> str:
    """A hyper-parameter value as text: numbers with ``g``, anything else as ``str``."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def fmt_ms(seconds: float) -> str:
    """Seconds shown in milliseconds, three significant digits."""
    return "–" if pd.isna(seconds) else fmt3(seconds * 1e3)


def fmt_mib(nbytes: float) -> str:
    """A memory figure in bytes shown in MiB, three significant digits: ``–`` where it was not measured (NaN or
    ``None``: :func:`nodebench.records.measured_memory`), ``0`` for a measured 0. Every table of memory figures
    (the report's summary, the scaling analysis, the leaderboard, claim details) shows them through it."""
    return "–" if pd.isna(nbytes) else fmt3(nbytes / 2**20)


def fmt_times(value: float) -> str:
    """A ratio as ``1.23×``."""
    return "–" if pd.isna(value) else f"{fmt3(value)}×"


def seeds_text(seeds) -> str:
    """``"seed 0"``, ``"seeds 0, 2"``: the seeds in ascending order."""
    seeds = sorted(seeds)
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
