"""Gradient consistency: the Taylor (derivative) test and gradient error against a reference.

Onken & Ruthotto (arXiv 2005.13420) check, after Gholami et al. (2019, ANODE, arXiv 1902.10298), whether
the gradient a training method returns is the gradient of the objective it evaluates. For a direction
``dθ`` and step ``h`` (the released Julia scripts ``checkDerivative{f64,rk4}.jl`` use ``h = 2^-k``,
``k = 1…20``):

- ``E0(h) = |J(θ + h dθ) − J(θ)|`` is ``O(h)``;
- ``E1(h) = |J(θ + h dθ) − J(θ) − h ∇Jᵀdθ|`` is ``O(h²)`` **only if** ``∇J`` is the derivative of the
  ``J`` being evaluated; a wrong gradient leaves ``E1 = O(h)``.

Discretize-Optimize (backprop through fixed-step RK4) differentiates the discrete objective exactly, so
its ``E1`` slope is 2 at any step size. Optimize-Discretize (continuous adjoint) returns the gradient of
the continuous objective, approximated by a separate backward solve; against the discrete forward
objective its ``E1`` flattens to slope 1 once ``h`` is small enough for the gradient error to dominate,
and the adaptive forward solve makes ``J`` itself only piecewise smooth in ``θ``.

Public API: :func:`taylor_test`, :func:`taylor_slopes`, :func:`gradient_taylor_table`,
:func:`gradient_error_vs_reference`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from nodebench.harness import count_nfe
from nodebench.methods import Method, get_method
from nodebench.tasks import Problem, get_task

DEFAULT_HS = 2.0 ** -np.arange(1, 21)
DEFAULT_TOLERANCES = (1e-2, 1e-4, 1e-6, 1e-8)
REFERENCE_TOL = 1e-12

LossFn = Callable[[Sequence[torch.Tensor]], torch.Tensor]


def _as_list(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    params = list(params)
    if not params:
        raise ValueError("taylor_test needs at least one parameter tensor")
    return params


def _like_params(name: str, tensors: Iterable[torch.Tensor], params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``tensors`` as a list, or a ValueError unless it holds one tensor per parameter, of its shape (``zip`` would
    drop extra tensors and broadcasting would pair wrong shapes in ``∇Jᵀdθ`` without an error)."""
    tensors = list(tensors)
    shapes = [tuple(t.shape) for t in tensors]
    expected = [tuple(p.shape) for p in params]
    if shapes != expected:
        raise ValueError(f"{name} must have one tensor per parameter, of the same shape: expected shapes {expected}, "
                         f"got {shapes}")
    return tensors


def random_direction(params: Sequence[torch.Tensor], seed: int = 0, normalize: bool = True) -> list[torch.Tensor]:
    """A standard-normal direction shaped like ``params``, from a CPU generator seeded with ``seed``.

    With ``normalize`` the direction has unit Euclidean norm over all tensors together, so ``h`` is the
    distance moved in parameter space.
    """
    gen = torch.Generator().manual_seed(seed)
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    if normalize:
        norm = math.sqrt(sum(float((d**2).sum()) for d in direction))
        direction = [d / norm for d in direction]
    return [d.to(device=p.device, dtype=p.dtype) for d, p in zip(direction, params)]


def taylor_test(loss_fn: LossFn, params: Iterable[torch.Tensor], *, direction: Sequence[torch.Tensor] | None = None,
                hs: Sequence[float] = DEFAULT_HS, seed: int = 0,
                gradient: Sequence[torch.Tensor] | None = None) -> pd.DataFrame:
    """Taylor test of the gradient that ``loss_fn``'s backward pass returns.

    Args:
        loss_fn: ``loss_fn(params) -> scalar tensor``. It is called with the same tensor objects, perturbed in
            place (``θ + h dθ``, under ``torch.no_grad``) and restored afterwards, so a closure over a model's
            parameters that ignores its argument works too. It must be deterministic (fixed batch, fixed
            noise) and must use the method under test, whose backward pass supplies ``∇J``.
        params: leaf tensors requiring gradients.
        direction: ``dθ``, shaped like ``params``; default :func:`random_direction` (unit norm) from ``seed``.
        hs: the steps ``h``; default ``2^-k`` for ``k = 1…20``.
        seed: seeds the default direction.
        gradient: use this ``∇J`` instead of differentiating ``loss_fn(params)`` (e.g. a gradient computed
            elsewhere).

    Returns:
        One row per ``h`` with columns ``h``, ``E0``, ``E1``, ``J`` (the perturbed loss), ``J0`` (``J(θ)``),
        ``dJ`` (the directional derivative ``∇Jᵀdθ``), and ``E0_order``/``E1_order``, the local orders
        ``log2(E(h_prev)/E(h)) / log2(h_prev/h)`` against the previous row (NaN in the first row).
    """
    params = _as_list(params)
    if direction is None:
        direction = random_direction(params, seed)
    direction = _like_params("direction", direction, params)
    direction = [d.to(device=p.device, dtype=p.dtype) for d, p in zip(direction, params)]

    if gradient is None:
        loss = loss_fn(params)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        gradient = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
        j0 = float(loss.detach())
    else:
        gradient = _like_params("gradient", gradient, params)
        with torch.no_grad():
            j0 = float(loss_fn(params))
    dj = float(sum((g.detach().double() * d.double()).sum() for g, d in zip(gradient, direction)))

    originals = [p.detach().clone() for p in params]
    rows = []
    try:
        for h in hs:
            h = float(h)
            with torch.no_grad():
                for p, p0, d in zip(params, originals, direction):
                    p.copy_(p0 + h * d)
                j = float(loss_fn(params))
            rows.append({"h": h, "E0": abs(j - j0), "E1": abs(j - j0 - h * dj), "J": j, "J0": j0, "dJ": dj})
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, originals):
                p.copy_(p0)
    df = pd.DataFrame(rows, columns=["h", "E0", "E1", "J", "J0", "dJ"])
    for col in ("E0", "E1"):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log2(df[col].shift(1) / df[col]) / np.log2(df["h"].shift(1) / df["h"])
        df[f"{col}_order"] = ratio.replace([np.inf, -np.inf], np.nan)
    return df


def roundoff_floor(df: pd.DataFrame, dtype: torch.dtype = torch.float64, factor: float = 100.0) -> float:
    """The size below which ``E1`` is round-off: ``factor · eps(dtype) · max(|J0|, 1)``."""
    j0 = float(np.abs(df["J0"]).max()) if "J0" in df and len(df) else 1.0
    return factor * torch.finfo(dtype).eps * max(j0, 1.0)


def taylor_slopes(df: pd.DataFrame, *, floor: float | None = None, h_max: float | None = None,
                  dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """Least-squares slopes of ``log E0`` and ``log E1`` against ``log h``.

    The fit uses the rows with ``h ≤ h_max`` (default: all) where ``E1`` is above round-off (``floor``,
    default :func:`roundoff_floor`); ``E0`` is fitted on the same rows. Slope ≈ 1 for ``E0`` and ≈ 2 for
    ``E1`` means a consistent gradient; ``E1`` slope ≈ 1 means ``∇J`` is not the derivative of ``J``.

    Returns:
        ``{"E0": slope, "E1": slope, "n": rows used, "h_min": smallest h used, "h_max": largest h used}``;
        slopes are NaN with fewer than 3 usable rows.
    """
    if floor is None:
        floor = roundoff_floor(df, dtype)
    use = (df["E1"] > floor) & (df["E0"] > 0)
    if h_max is not None:
        use &= df["h"] <= h_max
    sub = df[use]
    out: dict[str, float] = {"n": float(len(sub)), "h_min": math.nan, "h_max": math.nan}
    if len(sub) < 3:
        return out | {"E0": math.nan, "E1": math.nan}
    x = np.log(sub["h"].to_numpy())
    out["h_min"], out["h_max"] = float(sub["h"].min()), float(sub["h"].max())
    for col in ("E0", "E1"):
        out[col] = float(np.polyfit(x, np.log(sub[col].to_numpy()), 1)[0])
    return out


# -- on registered tasks ------------------------------------------------------------------------------

def _configs(methods: Iterable[str], tolerances: Sequence[float], step_sizes: Sequence[float | None]):
    """(method, tol, step_size, solver options) for every case: tolerances for adaptive, steps for fixed."""
    for name in methods:
        method = get_method(name)
        if method.adaptive:
            for tol in tolerances:
                yield method, float(tol), math.nan, {"rtol": float(tol), "atol": float(tol)}
        else:
            for step in step_sizes:
                opts = {} if step is None else {"step_size": float(step)}
                yield method, math.nan, math.nan if step is None else float(step), opts


def _build(task_name: str, seed: int, device, hparams: Mapping | None) -> Problem:
    task = get_task(task_name)
    hp = dict(hparams or {})
    if "dtype" in task.defaults and "dtype" not in hp:
        hp["dtype"] = "float64"
    return task.build(seed=seed, device=torch.device(device), hparams=hp)


class _Rebuilder:
    """Builds the task problem once and hands it back reset to its initial parameters and field.

    Building can be costly (the spiral's ground truth is a tight solve), so configs share one problem whose
    parameters are restored from a snapshot, and whose field is unwrapped again, before each use.
    """

    def __init__(self, task_name: str, seed: int, device, hparams: Mapping | None):
        self.problem = _build(task_name, seed, device, hparams)
        self.field = self.problem.field
        self.state = {k: v.detach().clone() for k, v in self.problem.model.state_dict(keep_vars=True).items()}

    def __call__(self) -> Problem:
        self.problem.field = self.field
        with torch.no_grad():
            for k, v in self.problem.model.state_dict(keep_vars=True).items():
                v.copy_(self.state[k])
        for p in self.problem.model.parameters():
            p.grad = None
        return self.problem


def _problem_loss(problem: Problem, solve) -> torch.Tensor:
    """The problem's deterministic loss when it has one (``loss_fixed``), else ``loss``."""
    fixed = getattr(problem, "loss_fixed", None)
    return fixed(solve) if fixed is not None else problem.loss(solve)


def _params(problem: Problem) -> list[torch.Tensor]:
    return [p for p in problem.model.parameters() if p.requires_grad]


def gradient_taylor_table(task_name: str = "cubic_spiral", methods: Iterable[str] = ("adjoint", "rk4"),
                          tolerances: Sequence[float] = DEFAULT_TOLERANCES,
                          step_sizes: Sequence[float | None] = (None,), *, seed: int = 0, device="cpu",
                          hs: Sequence[float] = DEFAULT_HS, hparams: Mapping | None = None) -> pd.DataFrame:
    """Taylor tests of each method's gradient on a freshly built task problem, in float64.

    Adaptive methods (``adjoint``, ``seminorm``, ``direct``) run at ``rtol = atol = tol`` for every
    ``tol`` in ``tolerances`` (adjoint tolerances equal to the forward ones); fixed-step methods (``rk4``,
    ...) at every ``step_size`` (``None``: the task's own grid, e.g. the spiral's observation times). The
    problem is built once from ``seed`` and reset to its initial parameters before every config, so all
    start from the same ``θ``; all use the same unit-norm direction (seeded by ``seed``). The loss is the
    problem's ``loss_fixed`` where it has one (density tasks: a fixed batch and fixed probes), else
    ``loss`` (deterministic for ``cubic_spiral``).

    Returns:
        Tidy rows: ``task``, ``method``, ``family`` (DO/OD), ``tol``, ``step_size`` (NaN where not
        applicable), ``h``, ``E0``, ``E1``, ``E0_order``, ``E1_order``, ``J0``, ``dJ``.
    """
    frames = []
    fresh = _Rebuilder(task_name, seed, device, hparams)
    for method, tol, step, opts in _configs(methods, tolerances, step_sizes):
        problem = fresh()
        params = _params(problem)
        solve = method.make_solve(params, **opts)
        df = taylor_test(lambda _: _problem_loss(problem, solve), params, hs=hs, seed=seed)
        df.insert(0, "step_size", step)
        df.insert(0, "tol", tol)
        df.insert(0, "family", method.family)
        df.insert(0, "method", method.name)
        df.insert(0, "task", task_name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def taylor_summary(table: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """:func:`taylor_slopes` of every (method, tol, step_size) group of a :func:`gradient_taylor_table`."""
    rows = []
    keys = ["task", "method", "family", "tol", "step_size"]
    for key, group in table.groupby(keys, dropna=False, sort=False):
        slopes = taylor_slopes(group, **kwargs)
        rows.append(dict(zip(keys, key)) | {"E0_slope": slopes["E0"], "E1_slope": slopes["E1"],
                                            "n_fit": slopes["n"], "h_min": slopes["h_min"],
                                            "h_max": slopes["h_max"], "E1_min": float(group["E1"].min())})
    return pd.DataFrame(rows)


def _loss_and_grad(problem: Problem, method: Method, opts: Mapping) -> tuple[float, list[torch.Tensor], dict]:
    counter = count_nfe(problem.field, adaptive=method.adaptive)
    problem.field = counter
    params = _params(problem)
    solve = method.make_solve(params, **opts)
    counter.phase = "forward"
    loss = _problem_loss(problem, solve)
    counter.phase = "backward"
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params)]
    return float(loss.detach()), grads, {"nfe_forward": counter.nfe["forward"],
                                         "nfe_backward": counter.nfe["backward"]}


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for t in tensors])


def gradient_error_vs_reference(task_name: str = "cubic_spiral", methods: Iterable[str] = ("adjoint", "rk4"),
                                tolerances: Sequence[float] = DEFAULT_TOLERANCES,
                                step_sizes: Sequence[float | None] = (None,), *, seed: int = 0, device="cpu",
                                reference_tol: float = REFERENCE_TOL, hparams: Mapping | None = None) -> pd.DataFrame:
    """Each method's loss and gradient against a tight continuous reference, in float64.

    The reference is backprop through dopri5 at ``rtol = atol = reference_tol`` (default 1e-12): the
    gradient of the continuous objective to near machine precision. For Opt-Disc methods the relative
    gradient error shrinks with the tolerance; for Disc-Opt it is the discretisation error of the discrete
    model (RK4: ``O(h⁴)``), not a gradient error: the Taylor test (:func:`gradient_taylor_table`) shows
    that the Disc-Opt gradient is exact for the discrete objective.

    Returns:
        One row per config: ``task``, ``method``, ``family``, ``tol``, ``step_size``, ``loss``,
        ``loss_ref``, ``loss_error`` (``|J − J_ref|``), ``grad_rel_error`` (``‖g − g_ref‖ / ‖g_ref‖``),
        ``grad_cosine``, ``nfe_forward``, ``nfe_backward`` (of the one evaluation), ``reference_tol``,
        ``reference_nfe`` (forward evaluations of the reference solve).
    """
    fresh = _Rebuilder(task_name, seed, device, hparams)
    ref_loss, ref_grads, ref_nfe = _loss_and_grad(fresh(), get_method("direct"),
                                                  {"rtol": reference_tol, "atol": reference_tol})
    g_ref = _flat(ref_grads)
    rows = []
    for method, tol, step, opts in _configs(methods, tolerances, step_sizes):
        problem = fresh()
        loss, grads, nfe = _loss_and_grad(problem, method, opts)
        g = _flat(grads)
        rows.append({"task": task_name, "method": method.name, "family": method.family, "tol": tol,
                     "step_size": step, "loss": loss, "loss_ref": ref_loss, "loss_error": abs(loss - ref_loss),
                     "grad_rel_error": float((g - g_ref).norm() / g_ref.norm()),
                     "grad_cosine": float(torch.dot(g, g_ref) / (g.norm() * g_ref.norm())),
                     **nfe, "reference_tol": reference_tol, "reference_nfe": ref_nfe["nfe_forward"]})
    return pd.DataFrame(rows)


__all__ = ["DEFAULT_HS", "DEFAULT_TOLERANCES", "gradient_error_vs_reference", "gradient_taylor_table",
           "random_direction", "roundoff_floor", "taylor_slopes", "taylor_summary", "taylor_test"]
