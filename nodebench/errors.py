"""Errors that nodebench reports to the user as one line and exit code 2."""

from __future__ import annotations

import traceback
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: an unknown name, an invalid value, a missing or malformed file.

    The command-line interface prints ``nodebench: error: <message>`` and exits with code 2, without a
    traceback. The message must say what is wrong and what would be valid. It is kept on one line: the line
    breaks of a library's message quoted in it (``tarfile``'s, one line per compression tried) become spaces.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


#: Longest failure reason kept in a record (one line of a report table).
REASON_LIMIT = 300


def clip(text: str, limit: int = REASON_LIMIT) -> str:
    """``text`` on one line, cut at a word boundary with "…" when longer than ``limit`` characters."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "…"


def one_line(err: BaseException) -> str:
    """An exception as a short one-line failure reason: ``Type: message`` (:func:`clip`)."""
    return clip(f"{type(err).__name__}: {err}")


def where_raised(err: BaseException, origin: str | None) -> str:
    """`` (at FILE:LINE)``: where ``err`` arose in the code nodebench called, the file ``origin`` or, where it
    is a package's ``__init__.py``, that package: its deepest line there, rather than in nodebench or in a
    library that code called (else the deepest line of all; an empty string without a traceback)."""
    if isinstance(err, SyntaxError):
        return f" (at {err.filename}:{err.lineno})"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith("<")]
    if origin:
        home = Path(origin).resolve()
        home = home.parent if home.name == "__init__.py" else home
        frames = [f for f in frames if Path(f.filename).resolve().is_relative_to(home)] or frames
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
