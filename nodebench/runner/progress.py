"""A sweep's progress on stderr, for a person at a terminal and for a log file alike.

Every finished case is one line (:func:`case_line`): ``[2/4] task/method/sSEED: STATUS in 12.3 s, about 00:45
left``, the case named by :attr:`~nodebench.runner.case.Case.name` (a paper's experiment first) and, where cases of
the sweep share that name, the settings that tell them apart (:func:`case_names`). On a terminal
a tqdm bar below the lines names what runs, redrawn at most once a second; where stderr is no terminal
(``2> log``) its carriage-return redraws would garble the file, so there is no bar, and a plain ``still
running:`` line every :data:`ALIVE_EVERY_S` is the sign of life instead. The local sweep
(:mod:`nodebench.runner.sweep`), the cluster engines (:mod:`nodebench.runner.executors`) and the A/B bench
(:mod:`nodebench.benchmarking.ab`) all report through :class:`Progress`.
"""

from __future__ import annotations

import json
import sys
import time
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm import tqdm

from nodebench.runner.case import Case

#: How often a sweep whose stderr is not a terminal (a log file) names its running cases and their progress.
ALIVE_EVERY_S = 60.0


#: The fields of a case that its :attr:`~nodebench.runner.case.Case.name` leaves out, besides its hyper-parameters.
UNNAMED_FIELDS = ("iters", "budget_s", "warmup", "device", "paper", "preset")


def case_names(cases: Iterable[Case]) -> dict[str, str]:
    """Each case's name in the progress lines, by case id, unique among ``cases`` (a sweep's): its
    :attr:`~nodebench.runner.case.Case.name` and, where cases share that name (a swept hyper-parameter), the
    settings that tell them apart, before the seed::

        digits_lambda/digits_ode/adjoint/reg_lambda=100.0,reg_order=2/s0

    The settings are chosen among the configurations that share the name with the seed left out, so that one
    configuration reads the same for every seed, even where a seed lacks part of the grid. To keep lines short
    they are few, chosen greedily: each time the one (hyper-parameter, or case field such as ``iters``) whose
    values split the configurations most. One that a case lacks (an option of other methods) is left out of its
    name."""
    by_head: dict[str, dict[str, Case]] = {}
    for case in cases:
        by_head.setdefault(case.name.rpartition("/")[0], {})[case.case_id] = case
    names = {}
    for head, group in by_head.items():
        settings = {case_id: _settings(case) for case_id, case in group.items()}
        configs = [dict(config) for config in {tuple(sorted(values.items())) for values in settings.values()}]
        keys = sorted({key for values in configs for key in values})
        chosen: list[str] = []
        while len({_values(c, chosen) for c in configs}) < len(configs) and len(chosen) < len(keys):
            chosen.append(max((key for key in keys if key not in chosen),
                              key=lambda k: len({_values(c, [*chosen, k]) for c in configs})))
        for case_id, values in settings.items():
            shown = ",".join(f"{key}={values[key]}" for key in sorted(chosen) if key in values)
            names[case_id] = "/".join(filter(None, (head, shown, f"s{group[case_id].seed}")))
    return names


def _settings(case: Case) -> dict[str, str]:
    """What :func:`case_names` may add to a case's name: its hyper-parameters and unnamed fields, as text."""
    fields: dict[str, Any] = {key: getattr(case, key) for key in UNNAMED_FIELDS} | dict(case.hparams)
    return {key: value if isinstance(value, str) else json.dumps(value, default=str) for key, value in fields.items()}


def _values(settings: dict[str, str], keys: list[str]) -> tuple:
    return tuple((key in settings, settings.get(key)) for key in keys)


def case_line(case: Case, status: str, seconds: float | None, done: int, count: int, elapsed_s: float,
              name: str | None = None) -> str:
    """The line of a finished case: ``[2/4] NAME: STATUS in 12.3 s`` (``seconds`` it took; left out
    when unknown, a job its engine lost) and, while cases remain, the time left at the mean pace so far
    (``elapsed_s`` since the sweep started, over ``done`` cases). ``name``: the case's name in its sweep
    (:func:`case_names`; default :attr:`~nodebench.runner.case.Case.name`)."""
    line = f"[{done}/{count}] {name or case.name}: {status}"
    line += f" in {seconds:.1f} s" if seconds is not None else ""
    return line + (f", about {tqdm.format_interval(elapsed_s / done * (count - done))} left" if done < count else "")


def running_notes(cases: list[Case], cases_dir: Path, name: Callable[[Case], str] = attrgetter("name")) -> str:
    """What ``cases`` are doing, from their workers' progress notes in ``cases_dir`` (``starting`` without one):
    ``NAME: iter 3/20 loss 0.12; ...``, each case named by ``name`` (a sweep's :meth:`Progress.name`)."""
    parts = []
    for case in cases:
        note = cases_dir / f"{case.case_id}.progress"
        try:
            status = note.read_text()
        except OSError:  # not written yet, or removed as the case ended
            status = "starting"
        parts.append(f"{name(case)}: {status}")
    return "; ".join(parts)


class Progress:
    """The progress of ``total`` cases on stderr (module docstring); ``enabled=False`` prints nothing. ``cases``:
    the sweep's, among which each line names its case uniquely (:func:`case_names`; all of them, those finished
    before included, so that a resume names a case as the first run did). A context manager that closes its bar."""

    def __init__(self, total: int, *, enabled: bool = True, desc: str = "cases", cases: Iterable[Case] = ()):
        self.enabled, self.tty = enabled and total > 0, sys.stderr.isatty()
        self.names = case_names(cases) if self.enabled else {}
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
            tqdm.write(case_line(case, status, seconds, self.done, self.total, elapsed, self.name(case)),
                       file=sys.stderr)

    def name(self, case: Case) -> str:
        """How the lines name ``case``: unique among the sweep's cases (:func:`case_names`)."""
        return self.names.get(case.case_id) or case.name

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
