"""Report-time calls into a paper's own code: its analyses, claim checks and run figures.

A paper's function that raises, or returns something its contract does not allow, must not cost the rest of
the report. :func:`call` turns such a failure into one line naming the paper, the function, the error and
its line in the paper's module. Inside :func:`collecting`, which surrounds each build of a report, it is a
:class:`PaperCodeFailed` recorded with its full traceback: the caller puts a placeholder where the result
would go (a section saying what failed, a claim "not checked", a figure left out), and once the rest of the
report is written :func:`collecting` writes the tracebacks to ``RUN_DIR/logs/report.log`` and raises one
:class:`~nodebench.errors.UserError` naming every failure (exit code 2). Outside it (a check called from
Python, a paper loaded) the failure is a :class:`~nodebench.errors.UserError` at once, the original error
its ``__cause__``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodebench.errors import UserError, one_line, where_raised

#: The run folder's file that keeps the tracebacks of the last report build's failures.
REPORT_LOG = Path("logs") / "report.log"


class PaperCodeFailed(UserError):
    """A paper's function failed while a report is built (:func:`collecting`): its caller leaves a placeholder."""


@dataclass
class _Failures:
    lines: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)


_ACTIVE: ContextVar[_Failures | None] = ContextVar("nodebench_report_failures", default=None)


def _owner(fn: Callable) -> tuple[str, str | None]:
    """``"paper 'x': "`` for a function of paper ``x``'s package (else ``""``), and the file to look for the
    line that failed in: the paper's package, else the function's file."""
    from nodebench.papers import paper_of_module

    paper = paper_of_module(getattr(fn, "__module__", None) or "")
    code = getattr(fn, "__code__", None)
    return (f"paper {paper.name!r}: " if paper else "",
            (paper.origin if paper else None) or (code.co_filename if code else None))


def call(what: str, fn: Callable, *args, returns: Callable[[Any], str | None] | None = None) -> Any:
    """``fn(*args)``, a paper's ``what`` (``"analysis 'scaling'"``); ``returns`` says what is wrong with the
    result (``None``: nothing). A raised error or a wrong result is one line: a :class:`PaperCodeFailed`
    recorded with its traceback inside :func:`collecting`, else a :class:`~nodebench.errors.UserError`."""
    try:
        result = fn(*args)
        problem = returns(result) if returns else None
    except Exception as err:
        owner, origin = _owner(fn)
        reason = f": {err}" if isinstance(err, UserError) else f" raised {one_line(err)}{where_raised(err, origin)}"
        _fail(f"{owner}{what}{reason}", traceback.format_exc(), err)
    if problem:
        code = getattr(fn, "__code__", None)
        at = f" (defined at {code.co_filename}:{code.co_firstlineno})" if code else ""
        _fail(f"{_owner(fn)[0]}{what} returned {problem}{at}", f"{what} returned {problem}{at}\n", None)
    return result


def _fail(line: str, trace: str, cause: BaseException | None):
    failures = _ACTIVE.get()
    if failures is None:  # no report being built: nothing to go on with
        raise UserError(line) from cause
    failures.lines.append(line)
    failures.tracebacks.append(f"{line}\n\n{trace}")
    raise PaperCodeFailed(line) from cause


@contextmanager
def collecting(run_dir: Path) -> Iterator[None]:
    """Build one report of ``run_dir`` in the body, each :func:`call` that fails recorded; then write their
    tracebacks to :data:`REPORT_LOG` (an earlier build's log is removed) and raise one
    :class:`~nodebench.errors.UserError` naming the failures, if any."""
    failures = _Failures()
    token = _ACTIVE.set(failures)
    log = Path(run_dir) / REPORT_LOG
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        if failures.lines:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n\n".join(failures.tracebacks))
        elif log.is_file():
            log.unlink()
    if failures.lines:
        raise UserError(f"the report of {str(run_dir)!r} is written without what failed: "
                        f"{'; '.join(failures.lines)}; tracebacks in {str(log)!r}: fix the paper's code and "
                        f"rebuild the report with `nodebench report {run_dir}`")
