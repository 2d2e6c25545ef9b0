"""The values the regression gate keys and pairs its samples on, checked before it reads a run.

:func:`nodebench.schema.check_records` makes sure the required columns are there; the gate also needs what
they hold to be usable: a ``status`` text per case (``ok`` or why not), an integer ``seed`` (the seeds of
the two runs are paired, so a NaN or a ``"0"`` would silently pair with nothing), an ``hparams`` JSON
object (it names the configuration), and per-step ``curves`` rows keyed by ``case_id`` and ``iteration``
(steps are matched by seed and iteration). A file from elsewhere that breaks one of these is one line
naming the file, the column and what is valid, not a traceback or a comparison of nothing.
"""

from __future__ import annotations

import json

import pandas as pd

from nodebench.errors import UserError


def check_gate_input(records: pd.DataFrame, curves: pd.DataFrame, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(records, curves)`` (a run's tables, already through :func:`~nodebench.schema.check_records`) with
    their seeds and iterations as integers (a seed written as ``"0"`` pairs with ``0``); a :class:`UserError`
    naming ``where`` when they hold values the gate cannot pair or key on."""
    status = records["status"]
    bad = status[~status.map(lambda v: isinstance(v, str) and v != "")]
    if len(bad):
        raise UserError(f"{where!r}: column status holds {_shown(bad.iloc[0])} (row {bad.index[0]}); each case's "
                        "status is text: ok, diverged, oom, killed, timeout or error")
    records = records.assign(seed=_integers(records["seed"], "seed", where, "the seeds of the two runs are paired"))
    if "hparams" in records:
        for index, value in records["hparams"].items():
            if not _json_object(value):
                raise UserError(f"{where!r}: column hparams holds {str(value)[:60]!r} (row {index}); each case's "
                                "hyper-parameters are a JSON object such as {\"lr\": 0.01}, or empty")
    if curves.empty:
        return records, curves
    missing = [column for column in ("case_id", "iteration") if column not in curves]
    if missing:
        raise UserError(f"{where!r}: its curves have no {', '.join(missing)} column(s); per-step curves are keyed by "
                        "case_id and iteration (give the curves.parquet nodebench wrote beside the records)")
    iterations = _integers(curves["iteration"], "iteration", f"{where} curves", "steps are matched by iteration")
    return records, curves.assign(iteration=iterations)


def _integers(values: pd.Series, column: str, where: str, why: str) -> pd.Series:
    """``values`` as integers; a :class:`UserError` naming the first that is none (NaN, text, 1.5)."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = values[numbers.isna() | (numbers != numbers.round())]
    if len(bad):
        raise UserError(f"{where!r}: column {column} holds {_shown(bad.iloc[0])} (row {bad.index[0]}); it must hold "
                        f"whole numbers ({why})")
    return numbers.astype("int64")


def _json_object(value) -> bool:
    """An ``hparams`` cell the gate can read: empty (none set) or a JSON object."""
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return True
    if isinstance(value, dict):
        return True
    try:
        return isinstance(json.loads(value), dict)
    except (TypeError, ValueError):
        return False


def _shown(value) -> str:
    """A cell as the error shows it: ``nan``, ``'abc'`` (a NumPy scalar as the Python value it holds)."""
    return repr(value.item() if hasattr(value, "item") else value)
