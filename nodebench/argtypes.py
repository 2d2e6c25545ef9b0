"""Command-line value types shared by the ``nodebench`` CLI and the benchmark scripts, and the scripts' parser.

Each type turns a bad value into ``argparse.ArgumentTypeError`` naming what was given and what is valid, so
that a parser reports it as one line with exit code 2 (:class:`ScriptParser` for the scripts in
``benchmarks/``; the CLI's own parser raises :class:`nodebench.errors.UserError` instead).
"""

from __future__ import annotations

import argparse
import math
import sys

from nodebench.errors import UserError


def _number(text: str, convert, expected: str):
    """``convert(text)``, or ``argparse.ArgumentTypeError("expected EXPECTED, got 'TEXT'")``."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a positive number")
    if not value > 0 or value == math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds ≥ 0."""
    value = _number(text, float, "a number of seconds ≥ 0")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds ≥ 0, got {text!r}")
    return value


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, available on this machine (:func:`nodebench.api.check_device`)."""
    from nodebench.api import check_device

    try:
        return check_device(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class ScriptParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``PROG: error: MESSAGE``, and exit code 2 (no usage dump)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
