"""A sweep's progress on stderr, for a person at a terminal and for a log file alike.

Every finished case is one line (:func:`case_line`): ``[2/4] task/method/sSEED: STATUS in 12.3 s, about 00:45
left``, the case named by :attr:`~nodebench.runner.case.Case.name` (a paper's experiment first). On a terminal
a tqdm bar below the lines names what runs, redrawn at most once a second; where stderr is no terminal
(``2> log``) its carriage-return redraws would garble the file, so there is no bar, and a plain ``still
running:`` line every :data:`ALIVE_EVERY_S` is the sign of life instead. The local sweep
(:mod:`nodebench.runner.sweep`), the cluster engines (:mod:`nodebench.runner.executors`) and the A/B bench
(:mod:`nodebench.benchmarking.ab`) all report through :class:`Progress`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from nodebench.runner.case import Case

#: How often a sweep whose stderr is not a terminal (a log file) names its running cases and their progress.
ALIVE_EVERY_S = 60.0


def case_line(case: Case, status: str, seconds: float | None, done: int, count: int, elapsed_s: float) -> str:
    """The line of a finished case: ``[2/4] NAME: STATUS in 12.3 s`` (``seconds`` it took; left out
    when unknown, a job its engine lost) and, while cases remain, the time left at the mean pace so far
    (``elapsed_s`` since the sweep started, over ``done`` cases)."""
    line = f"[{done}/{count}] {case.name}: {status}"
    line += f" in {seconds:.1f} s" if seconds is not None else ""
    return line + (f", about {tqdm.format_interval(elapsed_s / done * (count - done))} left" if done < count else "")


def running_notes(cases: list[Case], cases_dir: Path) -> str:
    """What ``cases`` are doing, from their workers' progress notes in ``cases_dir`` (``starting`` without one):
    ``NAME: iter 3/20 loss 0.12; ...``."""
    parts = []
    for case in cases:
        note = cases_dir / f"{case.case_id}.progress"
        try:
            status = note.read_text()
        except OSError:  # not written yet, or removed as the case ended
            status = "starting"
        parts.append(f"{case.name}: {status}")
    return "; ".join(parts)


class Progress:
    """The progress of ``total`` cases on stderr (module docstring); ``enabled=False`` prints nothing. A context
    manager that closes its bar."""

    def __init__(self, total: int, *, enabled: bool = True, desc: str = "cases"):
        self.enabled, self.tty = enabled and total > 0, sys.stderr.isatty()
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.shown, self.postfix = self.started, ""
        self.bar = tqdm(total=total, desc=desc, unit="case", disable=not self.enabled or not self.tty,
                        file=sys.stderr, mininterval=1.0)

    def finished(self, case: Case, status: str, seconds: float | None) -> None:
        """One more case ended with ``status`` after ``seconds``: its line (:func:`case_line`)."""
        self.done += 1
        self.bar.update(1)
        if self.enabled:
            elapsed = time.monotonic() - self.started
            tqdm.write(case_line(case, status, seconds, self.done, self.total, elapsed), file=sys.stderr)

    def running(self, describe: Callable[[], str]) -> None:
        """Called while cases run: on a terminal the bar names ``describe()`` (redrawn at most once a second, when
        it changed); in a log a ``still running:`` line every :data:`ALIVE_EVERY_S`."""
        now = time.monotonic()
        if not self.enabled:
            return
        if self.tty and now - self.shown > 1.0 and (postfix := describe()) != self.postfix:
            self.postfix, self.shown = postfix, now
            self.bar.set_postfix_str(postfix)
        elif not self.tty and now - self.shown > ALIVE_EVERY_S:
            self.shown = now
            print(f"  still running: {describe()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
