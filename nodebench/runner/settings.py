"""A case's hyper-parameters split by who reads them: the solver, a regulariser, SNODE, the harness's
training monitor, and the task (everything else)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from nodebench.errors import UserError
from nodebench.methods import SOLVER_OPTIONS, Method
from nodebench.regularizers import REGULARIZER_OPTIONS, Regularizer, regularizer_from_hparams
from nodebench.snode.options import SnodeOptions, is_snode_option
from nodebench.tasks.base import int_hparam

#: Hyper-parameters the training loop reads itself.
TRAINING_OPTIONS = ("monitor_every",)


@dataclass
class CaseSettings:
    """What :func:`nodebench.training.train` and ``task.build`` receive from a case's ``hparams``."""

    solver_options: dict[str, Any] = field(default_factory=dict)
    regularizer: Regularizer | None = None
    spectral: SnodeOptions | None = None
    monitor_every: int | None = None
    task_hparams: dict[str, Any] = field(default_factory=dict)


def case_settings(hparams: Mapping[str, Any], method: Method, seed: int = 0) -> CaseSettings:
    """Split and validate ``hparams`` for ``method``; a bad value or an option the method cannot take is a
    :class:`UserError`."""
    for key in SOLVER_OPTIONS:
        value = hparams.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise UserError(f"solver option {key} must be a positive number, got {value!r}")
    snode = {k: v for k, v in hparams.items() if is_snode_option(k)}
    if snode and method.kind != "spectral":
        raise UserError(f"{', '.join(sorted(snode))}: snode_* options apply only to method snode, not "
                        f"{method.name!r}; set them in method_hparams.snode")
    regularizer = regularizer_from_hparams({k: v for k, v in hparams.items() if k in REGULARIZER_OPTIONS}, seed)
    if regularizer is not None:
        regularizer.check_method(method)
    monitor = hparams.get("monitor_every")
    claimed = SOLVER_OPTIONS + REGULARIZER_OPTIONS + TRAINING_OPTIONS
    return CaseSettings(
        solver_options={k: v for k, v in hparams.items() if k in SOLVER_OPTIONS},
        regularizer=regularizer,
        spectral=SnodeOptions.from_hparams(snode) if method.kind == "spectral" else None,
        monitor_every=None if monitor is None else int_hparam(hparams, "monitor_every", 1),
        task_hparams={k: v for k, v in hparams.items() if k not in claimed and not is_snode_option(k)},
    )
