"""A case's hyper-parameters in their declared number types, so that one setting is one case id.

A case id hashes the hyper-parameters as given (:attr:`nodebench.runner.case.Case.case_id`), and ``8``, ``8.0``
and ``numpy.int64(8)`` are three JSON texts: without this, ``--hparam hidden=8.0`` on a resume did not find the
finished ``hidden=8`` case and ran it again. Each number is converted to the type its key declares (an
integer option to ``int`` when it is integral, a real one to ``float``); anything else is left as given for
the checks (:func:`nodebench.runner.settings.check_cases`) to accept or refuse.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import fields
from typing import Any, Mapping

from nodebench.config import LISTS, TrainingOptions
from nodebench.errors import UserError
from nodebench.methods import SOLVER_PARAMS
from nodebench.snode.options import PREFIX, SnodeOptions
from nodebench.tasks import get_task

#: The regulariser's number options (:class:`nodebench.regularizers.Regularizer` checks their values).
REGULARIZER_KINDS = {"reg_order": "int", "reg_lambda": "float"}


def number_kinds(task: str) -> dict[str, str]:
    """Key → ``"int"``, ``"float"``, ``"ints"`` or ``"floats"`` for every number option a case of ``task``
    takes: the task's typed hyper-parameters, the solver, training, regulariser and ``snode_*`` options. An
    unknown task or a missing task file types the method options only: the checks refuse it in their words."""
    try:
        task_params = list(get_task(task).params().values())
    except UserError:
        task_params = []
    params = [*task_params, *SOLVER_PARAMS.values(), *TrainingOptions.PARAMS]
    snode = {PREFIX + f.name: kind for f in fields(SnodeOptions)
             for kind in ("int", "float") if str(f.type).startswith(kind)}
    return {p.name: p.kind for p in params if p.kind in ("int", "float", *LISTS)} | REGULARIZER_KINDS | snode


def typed_hparams(task: str | Mapping[str, str], hparams: Mapping[str, Any]) -> dict[str, Any]:
    """``hparams`` with each number converted to its key's declared type (``hidden=8.0`` → ``8``, ``lr=1`` →
    ``1.0``, a NumPy scalar → a Python number); keys and values this cannot type are returned as given.
    ``task``: a task id, or its :func:`number_kinds` (computed once for many grid points: a data file's task
    reads its file)."""
    kinds = number_kinds(task) if isinstance(task, str) else task
    return {key: _typed(value, kinds[key]) if key in kinds else value for key, value in hparams.items()}


def _typed(value: Any, kind: str) -> Any:
    if kind in LISTS:
        return [_typed(v, LISTS[kind]) for v in value] if isinstance(value, (list, tuple)) else value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return value
    if kind == "int":  # beyond 2**53 a float is no exact count: left as typed, for the checks' message
        return int(value) if value == int(value) and abs(value) <= 2**53 else value
    return float(value)
