"""Command-line value types shared by the ``nodebench`` CLI and the benchmark scripts, and the scripts' parser.

Each type turns a bad value into ``argparse.ArgumentTypeError`` naming what was given and what is valid, so
that a parser reports it as one line with exit code 2 (:class:`ScriptParser` for the scripts in
``benchmarks/``; the CLI's own parser raises :class:`nodebench.errors.UserError` instead).
"""

from __future__ import annotations

import argparse
import math
import subprocess
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


def _up_to(parse, high: int, expected: str):
    """``parse`` (an ``argparse`` type) with a bound ``high`` that a typo cannot pass unnoticed (a million
    threads, 10^20 iterations, a timeout of 300 years) and every real use stays far below."""
    def bounded(text: str):
        value = parse(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"expected {expected} ≤ {high:,}, got {text!r}")
        return value
    return bounded


def positive_int_up_to(high: int):
    """``argparse`` type of a positive integer at most ``high``."""
    return _up_to(positive_int, high, "a positive integer")


def non_negative_int(text: str) -> int:
    value = _number(text, int, "an integer ≥ 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a positive number")
    if not value > 0 or value == math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def positive_float_up_to(high: int):
    """``argparse`` type of a positive finite number at most ``high``."""
    return _up_to(positive_float, high, "a positive number")


def seconds(text: str) -> float:
    """A finite number of seconds ≥ 0."""
    value = _number(text, float, "a number of seconds ≥ 0")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds ≥ 0, got {text!r}")
    return value


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, available on this machine (:func:`nodebench.devices.check_device`)."""
    from nodebench.devices import check_device

    try:
        return check_device(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class ScriptParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``PROG: error: MESSAGE``, and exit code 2 (no usage dump)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    def check_case(self, task: str, method: str, hparams: dict | None = None) -> None:
        """Refuse, as :meth:`error`, an unknown task (a paper's included) or method, or a bad hyper-parameter:
        what a script checks before it starts a worker process, whose own error would come too late."""
        from nodebench.api import get_method, get_task
        from nodebench.runner.settings import check_case

        try:
            check_case(get_task(task), get_method(method), hparams or {})
        except UserError as err:
            self.error(str(err))

    def run_worker(self, argv: list[str]) -> str:
        """The standard output of a worker process ``argv``; if it fails, exit 1 with one line naming its
        exit code and the last line of its error output."""
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            sys.exit(f"{self.prog}: a worker process failed (exit {done.returncode}): {last}")
        return done.stdout
