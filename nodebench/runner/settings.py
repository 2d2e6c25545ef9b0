"""A case's flat hyper-parameters routed to their typed blocks (:mod:`nodebench.config`): the method's
solver options, a regulariser, SNODE's options, the harness's training settings, and the task (the rest).

:func:`check_cases` validates every case of a sweep before anything runs or is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from nodebench.config import CASE_LIMITS, Param, TrainingOptions
from nodebench.errors import UserError
from nodebench.methods import (METHODS, SOLVER_OPTIONS, SOLVER_PARAMS, Method, check_step_size, get_method,
                               solver_options)
from nodebench.papers import paper_of_module
from nodebench.registry import nearest
from nodebench.regularizers import KINDS, REGULARIZER_OPTIONS, Regularizer, regularizer_from_hparams
from nodebench.runner.case import Case
from nodebench.snode.options import PREFIX, SnodeOptions, inert_options, is_snode_option
from nodebench.tasks import TASKS, get_task
from nodebench.tasks.base import MONITOR_TASKS, Task, check_dtype_range

#: Keys that configure how a method trains rather than what it trains on.
METHOD_KEYS = frozenset(SOLVER_OPTIONS) | frozenset(REGULARIZER_OPTIONS) | frozenset(TrainingOptions.keys())
#: SNODE's float options (:class:`SnodeOptions`) as :func:`check_dtype_range` types them: γ and the coefficients'
#: learning rate are > 0; the others may be 0 or are bounded by those (gamma_growth ≥ 1, gamma_max ≥ gamma).
SNODE_FLOAT_PARAMS = {PREFIX + f.name: Param(PREFIX + f.name, "float", positive=f.name in ("gamma", "coef_lr"))
                      for f in fields(SnodeOptions) if "float" in str(f.type)}


def is_method_key(key: str) -> bool:
    """Whether ``key`` is a method option (solver, regulariser, training or ``snode_*``), not a task's."""
    return key in METHOD_KEYS or is_snode_option(key)


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
    :class:`UserError`. ``snode_*`` options are checked whatever the method, and given to a spectral one
    only (:func:`check_case` reports them ignored by the others, as a solver option a method does not use)."""
    snode = {k: v for k, v in hparams.items() if is_snode_option(k)}
    spectral = SnodeOptions.from_hparams(snode) if snode or method.spectral else None
    regularizer = regularizer_from_hparams({k: v for k, v in hparams.items() if k in REGULARIZER_OPTIONS}, seed)
    if regularizer is not None:
        regularizer.check_method(method)
    training = TrainingOptions.from_hparams(hparams)
    return CaseSettings(
        solver_options=solver_options({k: v for k, v in hparams.items() if k in SOLVER_OPTIONS}),
        regularizer=regularizer,
        spectral=spectral if method.spectral else None,
        monitor_every=training.monitor_every,
        task_hparams={k: v for k, v in hparams.items() if not is_method_key(k)},
    )


def check_case(task: Task, method: Method, hparams: Mapping[str, Any]) -> list[str]:
    """Validate one case's names and values (a problem is a one-line :class:`UserError`); returns the
    solver and ``snode_*`` options the method does not use (SNODE's too, where its other options leave them
    without effect: :func:`~nodebench.snode.options.inert_options`)."""
    method.check_task(task)
    settings = case_settings(hparams, method)
    params = task.params()
    for key in settings.task_hparams:
        if key not in params:
            valid = sorted([*params, *METHOD_KEYS])
            raise UserError(f"unknown hyper-parameter {key!r}{nearest(key, valid)} for task {task.name!r} with "
                            f"method {method.name!r}; valid: {', '.join(valid)}")
    hp = task.hparams(settings.task_hparams)
    span = task.time_span(hp)
    step = settings.solver_options.get("step_size")
    if step is not None and span is not None and "step_size" in method.accepts:
        check_step_size(step, span, f"the time span of task {task.name!r}")
    ignored = ignored_options(method, hparams)
    # Only what becomes a tensor of the model's dtype: not an option the method ignores (warned about as such),
    # nor gtol, the GQ node count's factor C, a Python float (Norcliffe & Deisenroth 2023, §3).
    check_dtype_range({k: v for k, v in settings.solver_options.items() if k not in ignored and k != "gtol"},
                      SOLVER_PARAMS, hp.get("dtype"), f"task {task.name}: solver option")
    if method.spectral:  # in float32, snode_gamma = 1e-300 was γ = 0 (no penalty) and snode_coef_lr = 1e-300 no step
        check_dtype_range({k: v for k, v in hparams.items() if k in SNODE_FLOAT_PARAMS and k not in ignored},
                          SNODE_FLOAT_PARAMS, hp.get("dtype"), f"task {task.name}: SNODE option")
    if settings.monitor_every and not task.full_state:
        raise UserError(f"task {task.name!r} has no training monitor; {MONITOR_TASKS}")
    return ignored


def ignored_options(method: Method, hparams: Mapping[str, Any]) -> list[str]:
    """The keys of ``hparams`` that leave a case of ``method`` unchanged: :func:`unused_options`, and for a
    spectral method SNODE's without effect (:func:`~nodebench.snode.options.inert_options`: the dual update (M13)
    outside the augmented variant, the continuation's limit without growth, (M14) of
    ``nodebench/papers/snode/README.md``, Quaglino et al. §3). Raises :class:`UserError` on an invalid ``snode_*``
    option."""
    return unused_options(method, hparams) + (inert_options(hparams) if method.spectral else [])


def without_ignored(case: Case) -> Case:
    """``case`` without the options its method ignores (:func:`ignored_options`), so that its id, its recorded
    ``hparams`` and every comparison keyed on them name what runs: ``--method rk4,gq --hparam gtol=0.1`` gives
    rk4 the case of ``--method rk4``. For options a user typed (``nodebench run``); a paper's or suite's shared
    options stay in its cases' settings, whose ids its committed records hold."""
    ignored = ignored_options(get_method(case.method), case.hparams)
    return replace(case, hparams={k: v for k, v in case.hparams.items() if k not in ignored}) if ignored else case


def unused_options(method: Method, hparams: Mapping[str, Any]) -> list[str]:
    """The solver options (``rtol`` for fixed-step RK4) and ``snode_*`` options in ``hparams`` that the case of
    ``method`` does not use, and those its regulariser does not use (:func:`unused_by_regularizer`)."""
    unused_snode = [] if method.spectral else sorted(k for k in hparams if is_snode_option(k))
    return (method.ignored_options({k: v for k, v in hparams.items() if k in SOLVER_OPTIONS}) + unused_snode
            + unused_by_regularizer(hparams))


def unused_by_regularizer(hparams: Mapping[str, Any]) -> list[str]:
    """The ``reg*`` options in ``hparams`` that leave the case unchanged, whatever the method
    (:func:`regularizer_warnings` says which of them a warning names)."""
    return _regularizer_unused(hparams)[0]


def regularizer_warnings(hparams: Mapping[str, Any]) -> dict[str, list[str]]:
    """Those of :func:`unused_by_regularizer` a warning names, by what leaves them unused."""
    return _regularizer_unused(hparams)[1]


def _regularizer_unused(hparams: Mapping[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """The rule of :func:`unused_by_regularizer` and :func:`regularizer_warnings`, in one place.

    - ``reg_order`` with ``reg = rnode``: RNODE's kinetic and Jacobian costs have no order K (Finlay et al.
      2020, §3); warned.
    - No regulariser runs (``reg`` none or unset, or λ = 0: :func:`~nodebench.regularizers.regularizer_from_hparams`,
      Kelly et al. 2020, §3: the loss is the task loss alone): every ``reg*`` option given, so the case is the
      unregularised run, with that run's id (a spec's ``grid = { reg_lambda = [0, 1, 10] }`` with ``reg = "speed"``
      and ``reg_order = 3`` has at λ = 0 the run of no ``reg*`` option). Warned: ``reg_order`` and ``reg_variant``
      without a regulariser named, and ``reg`` with its options when no ``reg_lambda`` is given (the default λ = 0:
      the user named a regulariser and forgot its weight). Not warned: ``reg = none`` and ``reg_lambda = 0`` (they state
      the default), and a regulariser's options at an explicit λ = 0, a λ grid's unregularised baseline: a warning
      on every ordinary λ grid would be noise.

    Invalid values give no unused option: :func:`case_settings` refuses them."""
    kind, lam = hparams.get("reg", "none"), hparams.get("reg_lambda")
    if kind not in KINDS or lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float))
                                                 or not 0 <= lam < math.inf):
        return [], {}
    order = ["reg_order"] if kind == "rnode" and "reg_order" in hparams else []
    warned = {"regulariser reg=rnode": order} if order else {}
    if kind != "none" and lam is not None and lam > 0:
        return order, warned
    given = [k for k in REGULARIZER_OPTIONS if k in hparams]
    if kind == "none":
        who, keys = f"no regulariser ({'reg=none' if 'reg' in hparams else 'reg unset'})", ["reg_order", "reg_variant"]
    else:
        who, keys = f"no regulariser (reg={kind} without reg_lambda: λ = 0)", [] if lam is not None else given
    keys = [k for k in given if k in keys and k not in order]
    return given, warned | ({who: keys} if keys else {})


def ignored_by(method: Method, hparams: Mapping[str, Any], ignored: list[str]) -> dict[str, list[str]]:
    """``ignored`` (options of ``hparams`` a case of ``method`` ignores: :func:`ignored_options`) by what ignores
    them, as a warning names it: the regulariser's (:func:`regularizer_warnings`: ``"regulariser reg=rnode"``,
    ``"no regulariser (reg unset)"``...; those it leaves unnamed are in no group), ``"method NAME"`` for the
    others."""
    by_regularizer = unused_by_regularizer(hparams)
    return {who: keys for who, keys in ((f"method {method.name}", [k for k in ignored if k not in by_regularizer]),
                                        *regularizer_warnings(hparams).items()) if keys}


def check_shared_hparams(task: str, methods, hparams: Mapping[str, Any]) -> None:
    """``hparams`` shared by ``methods`` checked on their own, once per method, so that a value every method
    overrides (``method_hparams``) is still refused rather than silently unused. A problem is a one-line
    :class:`UserError` prefixed ``hparams:``; an unknown task or method is refused as such."""
    task_, methods_ = get_task(task), [get_method(m) for m in methods]
    try:
        for method in methods_:
            check_case(task_, method, hparams)
    except UserError as err:
        raise UserError(f"hparams: {err}") from None


def check_cases(cases) -> list[str]:
    """Check every case's limits (iters, budget_s), task, method and hyper-parameters before anything runs or
    is written; returns one warning per method, or regulariser, given options it does not use (:func:`ignored_by`)."""
    tasks: dict[str, Task] = {}
    ignored: dict[str, set[str]] = {}
    for case in cases:
        for limit in CASE_LIMITS:
            if getattr(case, limit.name) is not None:
                limit.check(getattr(case, limit.name), "case")
        if case.task not in tasks:  # built once per task: a data file's task reads its file
            tasks[case.task] = get_task(case.task)
        task = tasks[case.task]
        TASKS.check_known_to_workers(case.task, paper_of_module)
        METHODS.check_known_to_workers(case.method, paper_of_module)
        method = get_method(case.method)
        for who, keys in ignored_by(method, case.hparams, check_case(task, method, case.hparams)).items():
            ignored.setdefault(who, set()).update(keys)
    return [f"{who} does not use {', '.join(sorted(keys))}; ignored" for who, keys in ignored.items()]
