"""Errors that nodebench reports to the user as one line and exit code 2."""


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
