"""``odeint_adjoint_gq``: the adjoint method with the parameter gradient computed by Gauss–Legendre
quadrature (Norcliffe & Deisenroth, "Faster Training of Neural ODEs Using Gauß–Legendre Quadrature",
TMLR 2023, arXiv 2308.10644, §3; official code ``a-norcliffe/torch_gq_adjoint``).

Forward: solve ``dz/dt = f(t, z)`` under ``no_grad`` and keep only the outputs y_i = z(t_i) and the
forward NFE. Backward, interval by interval from t_N down to t_0:

1. reset z to the stored y_i and add ∂L/∂y_i to the adjoint a;
2. solve the 2-block system ``dz/dt = f``, ``da/dt = −aᵀ ∂f/∂z`` from t_i to t_{i−1}. The parameters are
   neither in the solver state nor in its error norm (the standard adjoint carries a |θ|-dimensional
   block); the solver's output grid is [t_i, τ_n, …, τ_1, t_{i−1}], so (z, a) at the Gauss–Legendre
   nodes τ_k come from the adaptive solver's dense output without stopping at them (the official code's
   "look-back");
3. add Σ_k w'_k · a(τ_k)ᵀ ∂f/∂θ(τ_k, z(τ_k)) to dL/dθ (:mod:`nodebench.gq.quadrature`), with
   n_i = min(⌈C · NFE_fwd · |Δ_i| / |t_N − t_0|⌉, 64) nodes and C = ``gtol``; where ``options`` name times
   at which f jumps or has a kink (torchdiffeq's ``jump_t``, ``step_t``), one such rule per piece between
   them, as the rule is exact only for a smooth integrand (a nodebench addition).

Time gradients are closed-form and need no quadrature: ∂L/∂t_i = (∂L/∂y_i)ᵀ f(t_i, y_i) for i ≥ 1, and
∂L/∂t_0 = −a(t_0⁺)ᵀ f(t_0, y_0), the adjoint before the jump ∂L/∂y_0 (the flow map's derivative in its
start time). This differs from the official code, which integrates aᵀ∂f/∂t at the nodes; both are exact
in the limit, ours is one evaluation per output time.

Differences from the official code, on purpose:

- ``func`` needs no ``nfe`` attribute: the forward solve counts its own evaluations;
- ``quadrature="batched"`` evaluates each interval's node VJPs as one vmapped VJP (a nodebench variant);
- tuple states are supported by flattening them into one vector; the error norms stay torchdiffeq's (the
  forward's the largest of the parts' RMS norms, or the user's ``norm`` applied to the parts; the backward's
  the larger of that norm of z and of a);
- plain ``dopri5`` solves (no ``options``, scalar tolerances), forward and backward, run on
  :mod:`nodebench.gq.dopri5`: torchdiffeq's algorithm step for step with the per-step bookkeeping of a
  tiny state cut down (the paper's regime); any other solver or option goes through ``torchdiffeq.odeint``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, MutableMapping
from typing import Any, Sequence

import torch
from torch import nn
from torchdiffeq import odeint
from torchdiffeq._impl.misc import _mixed_norm
from torchdiffeq._impl.odeint import SOLVERS

from nodebench.gq.dopri5 import dopri5
from nodebench.gq.quadrature import (MAX_NODES, NODE_VJPS, add_grads, gauss_legendre, node_count,
                                     piecewise_gauss_legendre)
from nodebench.callbacks import STEP_CALLBACKS
from nodebench.solvers import check_solver_arguments


class _FlatField:
    """``f`` on a flat state vector: unflattens to the user's shapes (tensor or tuple), counts calls, and
    forwards the user's torchdiffeq step callbacks (their ``_adjoint`` variants for the backward solve).
    The user's field is kept as ``field``, where :func:`nodebench.callbacks.evaluation_counter` finds
    the harness's counter."""

    def __init__(self, field, shapes: Sequence[torch.Size], is_tuple: bool):
        self.field, self.shapes, self.is_tuple = field, list(shapes), is_tuple
        self.sizes = [s.numel() for s in self.shapes]
        self.calls = 0

    def unflatten(self, y: torch.Tensor):
        if not self.is_tuple:
            return y.reshape(self.shapes[0])
        return tuple(p.reshape(s) for p, s in zip(torch.split(y, self.sizes, dim=-1), self.shapes))

    @property
    def blocks(self) -> int | tuple[int, ...]:
        """The lean solver's norm blocks of the flat state (torchdiffeq's mixed norm over a tuple's parts)."""
        return tuple(self.sizes) if self.is_tuple else 1

    def norm(self, user_norm=None):
        """The forward error norm on the flat state that torchdiffeq takes on the user's state: ``user_norm``
        of the state in its own shapes, or for a tuple the largest of its parts' RMS norms; None where
        torchdiffeq's default, the RMS norm of the flat state, is that already."""
        if user_norm is None and not self.is_tuple:
            return None
        norm = _mixed_norm if user_norm is None else user_norm
        return lambda y: norm(self.unflatten(y))

    def __call__(self, t, y):
        self.calls += 1
        out = self.field(t, self.unflatten(y))
        if self.calls == 1:  # once per solve, on the forward solve's first evaluation
            self._check_output(out)
        if self.is_tuple:
            return torch.cat([o.reshape(-1) for o in out])
        return out.reshape(-1)

    def _check_output(self, out) -> None:
        """A ValueError or TypeError unless ``out`` has the state's structure and shapes (dy/dt is y's shape)."""
        shapes = [tuple(s) for s in self.shapes]
        if self.is_tuple:
            if not (isinstance(out, (tuple, list)) and all(torch.is_tensor(o) for o in out)):
                raise TypeError(f"func must return a tuple of {len(shapes)} tensors for a tuple state, got "
                                f"{type(out).__name__}")
            got = [tuple(o.shape) for o in out]
        else:
            if not torch.is_tensor(out):
                raise TypeError(f"func must return a tensor (dy/dt, of y's shape), got {type(out).__name__}")
            got, shapes = tuple(out.shape), shapes[0]
        if got != shapes:
            raise ValueError(f"func returned shape {got} for a state of shape {shapes}: it must return dy/dt, "
                             "of the state's shape")

    def callbacks(self, suffix: str = "") -> dict[str, Any]:
        found = {}
        for name in STEP_CALLBACKS:
            callback = getattr(self.field, name + suffix, None)
            if callback is not None:
                found[name] = callback
        return found


class _WithCallbacks:
    """A callable exposing given torchdiffeq callbacks (torchdiffeq looks them up as attributes)."""

    def __init__(self, fn, callbacks: dict[str, Any]):
        self.fn = fn
        for name, callback in callbacks.items():
            setattr(self, name, callback)

    def __call__(self, t, y):
        return self.fn(t, y)


class _AdjointDynamics:
    """The backward system: ``dz/dt = f(t, z)``, ``da/dt = −aᵀ ∂f/∂z``; a z-only VJP per evaluation. Called
    with the tuple (z, a) by torchdiffeq, and on the flat [z; a] by :meth:`flat` for the lean solver."""

    def __init__(self, field: _FlatField):
        self.field = field

    def _evaluate(self, t, z, a):
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            f = self.field(t, z)
            (vjp_z,) = torch.autograd.grad(f, z, a, allow_unused=True)
        return f.detach(), (torch.zeros_like(a) if vjp_z is None else vjp_z.neg())

    def __call__(self, t, state):
        return self._evaluate(t, *state)

    def flat(self, t, state):
        return torch.cat(self._evaluate(t, *state.view(2, -1)))


def _lean(method: str, options: dict, rtol, atol) -> bool:
    """Whether a solve can take the lean dopri5 (:mod:`nodebench.gq.dopri5`) instead of torchdiffeq: plain
    dopri5 without options and with scalar tolerances."""
    return method == "dopri5" and not options and all(isinstance(tol, (int, float)) for tol in (rtol, atol))


#: The error of a backward pass asked for a graph of its gradients: they are first-order only. torchdiffeq's
#: ``odeint_adjoint`` raises at the second differentiation only where the cotangent required grad, and otherwise
#: gave a generic error or, where the gradient also had another term, a silently incomplete second derivative.
_FIRST_ORDER = ("odeint_adjoint_gq gives first-order gradients only: its backward pass cannot be differentiated twice "
                "(create_graph=True, double backward, Hessian-vector products); backpropagate through "
                "torchdiffeq.odeint for second derivatives")


class _GQAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, field: _FlatField, settings: dict, y0: torch.Tensor, t: torch.Tensor, *params):
        if len(t) == 1:  # the solution at t[0] is y0 (torchdiffeq's answer; nothing to solve)
            ys = y0.unsqueeze(0).clone()
        elif _lean(settings["method"], settings["options"], settings["rtol"], settings["atol"]):
            ys, _ = dopri5(field, y0, t.tolist(), rtol=settings["rtol"], atol=settings["atol"], blocks=field.blocks,
                           callbacks=field.callbacks())
        else:
            forward_field = _WithCallbacks(field, field.callbacks())
            ys = odeint(forward_field, y0, t, rtol=settings["rtol"], atol=settings["atol"],
                        method=settings["method"], options=_with_norm(settings["options"], settings["norm"]))
        ctx.field, ctx.settings, ctx.nfe_forward = field, settings, field.calls
        ctx.save_for_backward(ys, t, *params)
        return ys

    @staticmethod
    def backward(ctx, grad_ys):
        if torch.is_grad_enabled():  # create_graph=True: the caller means to differentiate these gradients again
            raise RuntimeError(_FIRST_ORDER)
        ys, t, *params = ctx.saved_tensors
        field, s = ctx.field, ctx.settings
        wanted = [p for p, need in zip(params, ctx.needs_input_grad[4:]) if need]
        node_vjps = NODE_VJPS[s["quadrature"]]
        dynamics = _AdjointDynamics(field)
        lean = _lean(s["adjoint_method"], s["adjoint_options"], s["adjoint_rtol"], s["adjoint_atol"])
        callbacks = field.callbacks("_adjoint")
        if not lean:
            dynamics = _WithCallbacks(dynamics, callbacks)
            adjoint_options = _with_norm(s["adjoint_options"], s["adjoint_norm"])
        blocks = 2 * field.blocks  # [z; a]: two equal blocks, or each part of z and then of a
        # the times on the state's device, the nodes placed in the finer of the two dtypes and evaluated in the
        # state's (torchdiffeq evaluates the field at times of the state's dtype)
        t_detached = t.detach().to(device=ys.device, dtype=torch.promote_types(t.dtype, ys.dtype))
        span = float(t_detached[-1] - t_detached[0])
        grad_params: list[torch.Tensor | None] = [None] * len(wanted)
        nodes_total = 0
        a = torch.zeros_like(grad_ys[0])  # the adjoint after t[-1]

        def nodes_for(length: float) -> int:
            return node_count(s["gtol"], ctx.nfe_forward, length, span, s["max_nodes"])

        for i in range(len(t) - 1, 0, -1):
            a = a + grad_ys[i]
            if s["breaks"]:
                taus, weights = piecewise_gauss_legendre(t_detached[i - 1], t_detached[i], s["breaks"], nodes_for)
                n = len(taus)
            else:
                n = nodes_for(float(t_detached[i] - t_detached[i - 1]))
                taus, weights = gauss_legendre(n, t_detached[i - 1], t_detached[i])
            grid = torch.cat([t_detached[i:i + 1], taus.flip(0), t_detached[i - 1:i]])
            if lean:
                states, _ = dopri5(dynamics.flat, torch.cat([ys[i], a]), grid.tolist(), rtol=s["adjoint_rtol"],
                                   atol=s["adjoint_atol"], blocks=blocks, callbacks=callbacks)
                zs, adjoints = states[:, :len(a)], states[:, len(a):]
            else:
                zs, adjoints = odeint(dynamics, (ys[i], a), grid, rtol=_pair(s["adjoint_rtol"]),
                                      atol=_pair(s["adjoint_atol"]), method=s["adjoint_method"],
                                      options=adjoint_options)
            if wanted:
                sums = node_vjps(field, wanted, taus.flip(0).to(ys.dtype), zs[1:-1], adjoints[1:-1],
                                 weights.flip(0).to(ys.dtype), s["stats"])
                grad_params = add_grads(grad_params, sums)
            nodes_total += n
            a = adjoints[-1]
        grad_t = None
        if ctx.needs_input_grad[3]:
            times = t_detached.to(ys.dtype)
            grad_t = torch.zeros_like(times)
            for i in range(1, len(t)):
                grad_t[i] = torch.dot(grad_ys[i], field(times[i], ys[i]))
            if len(t) > 1:  # y(t_0) = y0 whatever t_0 for a single time
                grad_t[0] = -torch.dot(a, field(times[0], ys[0]))
            grad_t = grad_t.to(t)
        if s["stats"] is not None:
            s["stats"].update(nfe_forward=ctx.nfe_forward, nodes=nodes_total, intervals=len(t) - 1)
        grad_y0 = a + grad_ys[0]
        # zeros, as torchdiffeq, for a parameter f does not use or a single time (None fails torch.autograd.grad)
        it = iter(torch.zeros_like(p) if g is None else g for p, g in zip(wanted, grad_params))
        grads = [next(it) if need else None for need in ctx.needs_input_grad[4:]]
        return (None, None, grad_y0, grad_t, *grads)


def odeint_adjoint_gq(func, y0, t, *, rtol: float = 1e-7, atol: float = 1e-9, method: str = "dopri5",
                      options: dict | None = None, event_fn=None, gtol: float = 0.1, adjoint_rtol: float | None = None,
                      adjoint_atol: float | None = None, adjoint_method: str | None = None,
                      adjoint_options: dict | None = None, adjoint_params: Sequence[torch.Tensor] | None = None,
                      quadrature: str = "batched", max_nodes: int = MAX_NODES, stats: dict | None = None):
    """Solve ``dy/dt = func(t, y)`` like ``torchdiffeq.odeint_adjoint``, with the parameter gradient
    computed by Gauss–Legendre quadrature of aᵀ∂f/∂θ over each output interval: the GQ adjoint of Norcliffe &
    Deisenroth (TMLR 2023, §3; module docstring for where nodebench departs from the official code), on the
    adjoint equations of Chen et al. (NeurIPS 2018, appendix B).

    Args:
        func: the vector field ``f(t, y)``, any callable; an ``nn.Module`` unless ``adjoint_params`` is
            given. It needs no ``nfe`` attribute.
        y0: initial state, a float32 or float64 tensor of any shape, or a tuple of them (as torchdiffeq).
        t: strictly monotone (increasing or decreasing) finite 1-D floating output times, ``t[0]`` being
            the start (a single time returns ``y0``, as torchdiffeq); of any floating dtype (the field is
            called with times of the state's dtype, as in torchdiffeq, and the quadrature nodes are placed in
            the finer of the two).
        rtol, atol, method, options: the forward solve, as in ``torchdiffeq.odeint``: any of its methods and
            that method's options (``step_size``, ``first_step``, ``step_t``, ``jump_t``, a callable ``norm``
            of the state, ...); an unknown one is refused naming the valid ones. The tolerances are numbers
            ≥ 0 (or 0-d tensors) or, as in torchdiffeq, per-component ones: a tensor broadcastable to ``y0``'s
            shape, or for a tuple ``y0`` one entry per part (a number or a tensor broadcastable to the part's
            shape, or flat of its size); they run through ``torchdiffeq.odeint`` (the lean dopri5 takes scalars).
        event_fn: only None: event handling is not supported (the quadrature needs fixed output times).
        gtol: C in n_i = min(⌈C · NFE_fwd · |Δ_i| / |t_N − t_0|⌉, ``max_nodes``). Larger means **more**
            nodes, the opposite direction to rtol/atol. *Accuracy*: the parameter gradient is the n_i-node
            Gauss–Legendre sum of aᵀ∂f/∂θ at the backward solve's (z, a), so its error is the solve's, which
            follows the tolerances, plus the rule's, which does not: where the integrand varies on a time
            scale 1/ω, about c_n · (ωΔ_i)^{2n} relative, c_n = (n!)⁴ / ((2n+1)·((2n)!)³), i.e. 1/24 for one
            node (the midpoint rule), 2.3e-4 for two, 5.0e-7 for three. With N equal intervals each gets
            ⌈C · NFE_fwd / N⌉ nodes: once N ≥ C · NFE_fwd that is one, and the gradient error stalls however
            small rtol is (a 29-interval spiral at C = 0.1: 1.3e-4 from rtol 1e-6 to 1e-9). For a gradient as
            accurate as the solve give every interval n ≥ 2 nodes: C ≥ n · N / NFE_fwd (``stats`` holds
            ``nodes``, ``intervals`` and ``nfe_forward``) and ``max_nodes`` ≥ n.
        adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options: the backward [z, a] solve (default:
            the forward's; as in torchdiffeq, ``options`` are not carried over to a different
            ``adjoint_method``, which then needs ``adjoint_options``). A per-component tolerance (the forward's
            forms) applies to z, whose components are the forward's, and to a component by component:
            a_j = ∂L/∂z_j (Norcliffe & Deisenroth §3, the system of step 2 above), the same component though on
            the loss's scale, not z_j's. No parameter block is solved: the parameter gradient's accuracy is the
            node count's (``gtol``), not a tolerance's. torchdiffeq's ``odeint_adjoint`` form, one entry per
            block of its backward state (t, y, adj_y, *adjoint_params), is taken too: z gets y's entry, a
            adj_y's (each a number or a tensor of the flat state's size), the t and parameter entries unused; for
            a tuple ``y0`` of as many parts as that form has entries, the forward's form is read.
            ``adjoint_options=dict(norm="seminorm")``
            is accepted and changes nothing: the backward state holds no parameter block for torchdiffeq's
            seminorm to leave out. A callable adjoint ``norm`` is given the pair (z, a) of flat tensors, not
            torchdiffeq's (t, y, adj_y, *adj_params); by default the forward's norm is taken of z and of a.
        adjoint_params: the tensors to return gradients for (default ``tuple(func.parameters())``); those
            that require no gradient are left out, and a tensor listed twice counts once.
        quadrature: ``"batched"`` (the default: one VJP per interval, the nodes evaluated by
            ``torch.func.vmap``, or one by one where ``func`` cannot run under vmap or is small on the CPU;
            the same sums, measured never slower beyond noise and up to 1.3× faster at width 2000) or
            ``"sequential"`` (the paper's official code: one VJP per node). Both make the harness's counter
            record one evaluation per node, so they report the same backward NFE.
        max_nodes: cap on the nodes per interval (64 in the official code).
        stats: optional dict, filled by each backward pass with ``nfe_forward``, ``nodes`` (total),
            ``intervals``, and for ``quadrature="batched"`` ``batching`` (``"vmap"`` or ``"stacked"``).

    Returns:
        The solution at ``t``: shape ``(len(t), *y0.shape)``, or a tuple of such for a tuple ``y0``.
        Backpropagating through it gives first-order gradients for ``y0``, for ``t`` where it requires grad
        (closed-form, module docstring) and for ``adjoint_params`` (zeros for one ``func`` does not use, as
        torchdiffeq). A backward pass with ``create_graph=True`` raises a RuntimeError: the gradients cannot be
        differentiated again (torchdiffeq's ``odeint_adjoint`` can return a silently incomplete second
        derivative there).

    Raises:
        ValueError, TypeError: before any solve, for a bad argument (``t`` not 1-D or empty, not floating,
            with a NaN, a repeated time or a change of direction; a negative or NaN tolerance; an unknown method or
            solver option, or one not carried over to another ``adjoint_method``; a ``norm`` that is not
            callable; an ``event_fn``; an ``adjoint_params`` entry that is not a tensor; a ``y0`` that is not
            float32/float64), naming it and what is valid; at the first
            evaluation, for a ``func`` whose output does not have the state's structure and shapes.

    Example:
        >>> ys = odeint_adjoint_gq(field, y0, torch.linspace(0, 1, 10), rtol=1e-3, atol=1e-3, gtol=0.1)
        >>> ys[-1].pow(2).sum().backward()   # gradients for y0, t (if it requires grad), field.parameters()
    """
    if event_fn is not None:
        raise ValueError("event_fn is not supported by odeint_adjoint_gq: the quadrature needs the output times t "
                         "fixed; solve events with torchdiffeq's odeint_event or odeint_adjoint")
    params = _adjoint_tensors(func, adjoint_params)
    if quadrature not in NODE_VJPS:
        raise ValueError(f"unknown quadrature {quadrature!r}; valid: {', '.join(NODE_VJPS)}")
    if isinstance(gtol, bool) or not isinstance(gtol, numbers.Real) or not 0 < gtol < math.inf:
        raise ValueError(f"gtol must be a positive finite number, got {gtol!r}")
    if isinstance(max_nodes, bool) or not (isinstance(max_nodes, int) and max_nodes >= 1):
        raise ValueError(f"max_nodes must be a positive integer, got {max_nodes!r}")
    if stats is not None and not isinstance(stats, MutableMapping):
        raise TypeError(f"stats must be a dict (filled by each backward pass) or None, got {type(stats).__name__}")
    _check_times(t)
    _check_state(y0)
    method = "dopri5" if method is None else method
    given = "method" if adjoint_method is None else "adjoint_method"  # the argument the value came from
    adjoint_method = method if adjoint_method is None else adjoint_method
    if not (isinstance(adjoint_method, str) and adjoint_method in SOLVERS):
        raise ValueError(f"unknown {given} {adjoint_method!r}; valid: {', '.join(SOLVERS)}")
    is_tuple = isinstance(y0, tuple)
    parts = y0 if is_tuple else (y0,)
    rtol, atol = (_flat_tolerance(name, tol, parts, is_tuple) for name, tol in (("rtol", rtol), ("atol", atol)))
    options = check_solver_arguments("", method, rtol, atol, options, per_component=True)
    adjoint_rtol, adjoint_atol = (_adjoint_tolerance(f"adjoint_{name}", tol, forward, parts, is_tuple, len(params))
                                  for name, tol, forward in (("rtol", adjoint_rtol, rtol),
                                                             ("atol", adjoint_atol, atol)))
    adjoint_options = check_solver_arguments("adjoint_", adjoint_method, adjoint_rtol, adjoint_atol,
                                             _adjoint_options(method, options, adjoint_method, adjoint_options),
                                             per_component=True)
    _check_norms(options, adjoint_options)
    options, adjoint_options = _times_as_tensors("", options), _times_as_tensors("adjoint_", adjoint_options)
    field = _FlatField(func, [p.shape for p in parts], is_tuple)
    flat_y0 = torch.cat([p.reshape(-1) for p in parts])
    norm = field.norm(options.get("norm"))
    settings = dict(rtol=rtol, atol=atol, method=method, options=options, gtol=float(gtol),
                    adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol, adjoint_method=adjoint_method,
                    adjoint_options=adjoint_options, quadrature=quadrature, max_nodes=max_nodes, stats=stats,
                    breaks=_breaks(options), norm=norm,
                    adjoint_norm=None if "norm" in adjoint_options else _adjoint_norm(norm))
    ys = _GQAdjoint.apply(field, settings, flat_y0, t, *params)
    if not is_tuple:
        return ys.reshape(len(t), *y0.shape)
    return tuple(p.reshape(len(t), *s) for p, s in zip(torch.split(ys, field.sizes, dim=-1), field.shapes))


def _adjoint_tensors(func, adjoint_params) -> list[torch.Tensor]:
    """The tensors to differentiate, as torchdiffeq's ``odeint_adjoint`` takes them: ``adjoint_params`` (default
    ``func.parameters()``, which needs ``func`` to be an ``nn.Module``) less those that require no gradient; a
    tensor listed twice is kept once (its gradient would otherwise be added twice). A ValueError or TypeError
    for a plain callable without ``adjoint_params`` or an entry that is not a tensor."""
    if adjoint_params is None:
        if not isinstance(func, nn.Module):
            raise ValueError("func must be an nn.Module when adjoint_params is not given (adjoint_params=() for a "
                             "field without parameters)")
        adjoint_params = func.parameters()
    if torch.is_tensor(adjoint_params):
        adjoint_params = (adjoint_params,)
    tensors = list(adjoint_params)
    for i, p in enumerate(tensors):
        if not torch.is_tensor(p):
            raise TypeError(f"adjoint_params must be tensors (the ones to differentiate), got {type(p).__name__} "
                            f"at index {i}")
    return list({id(p): p for p in tensors if p.requires_grad}.values())


def _is_scalar(tol) -> bool:
    """Whether ``tol`` is one tolerance for every component: not a tensor of one dimension or more, nor a sequence
    (other values are refused as such by :func:`nodebench.solvers.check_tolerance`)."""
    return not (isinstance(tol, (tuple, list)) or (torch.is_tensor(tol) and tol.dim() > 0))


def _flat_tolerance(name: str, tol, parts: Sequence[torch.Tensor], is_tuple: bool):
    """``tol`` as torchdiffeq's ``odeint`` takes it, on the flat state: a number or 0-d tensor as it is; for a
    tensor state a tensor broadcastable to its shape, for a tuple state one entry per part (each a number or a
    tensor broadcastable to the part's shape, or torchdiffeq's flat one of its size), as one 1-D tensor of the
    state's dtype and device. A TypeError or ValueError naming what is valid otherwise (values: checked after)."""
    if _is_scalar(tol):
        return tol
    if not is_tuple:
        if not torch.is_tensor(tol):
            raise TypeError(f"{name} must be a number or a tensor broadcastable to y0's shape {tuple(parts[0].shape)} "
                            f"(per-component tolerances, as in torchdiffeq), got {type(tol).__name__}")
        return _part_tolerance(name, tol, parts[0])
    if not (isinstance(tol, (tuple, list)) and len(tol) == len(parts)):
        got = f"{len(tol)} entries" if isinstance(tol, (tuple, list)) else f"a tensor of shape {tuple(tol.shape)}"
        raise TypeError(f"{name} must be a number, or for a tuple y0 of {len(parts)} parts a tuple of as many (each "
                        f"a number or a tensor broadcastable to its part's shape), as in torchdiffeq; got {got}")
    return torch.cat([_part_tolerance(f"{name}[{i}]", entry, part) for i, (entry, part) in enumerate(zip(tol, parts))])


def _part_tolerance(name: str, tol, part: torch.Tensor) -> torch.Tensor:
    """One part's tolerance ``tol`` (a number, or a tensor broadcastable to ``part``'s shape or of its size,
    torchdiffeq's flat form) as a 1-D tensor over the part's components, of its dtype and device."""
    if not (torch.is_tensor(tol) or isinstance(tol, numbers.Real)) or isinstance(tol, bool):
        raise TypeError(f"{name} must be a number or a tensor, got {type(tol).__name__}")
    tol = torch.as_tensor(tol)
    if tol.dim() == 1 and tol.numel() == part.numel():  # torchdiffeq's flat form of a tuple state's part
        flat = tol
    else:
        try:
            flat = tol.broadcast_to(part.shape).reshape(-1)
        except RuntimeError:
            raise ValueError(f"{name} has shape {tuple(tol.shape)}, which does not broadcast to the state's shape "
                             f"{tuple(part.shape)}: give a number or a tensor broadcastable to it "
                             f"(per-component tolerances, as in torchdiffeq)") from None
    return flat.to(dtype=part.dtype, device=part.device)  # one requiring grad is refused by check_solver_arguments


def _adjoint_tolerance(name: str, tol, forward, parts: Sequence[torch.Tensor], is_tuple: bool, n_params: int):
    """The backward [z; a] solve's tolerance: a number for both blocks, or a 1-D tensor over [z; a]. ``None`` takes
    the forward's (a per-component one for z and, component by component, for a); a value of the forward's forms
    (:func:`_flat_tolerance`) likewise; torchdiffeq's ``odeint_adjoint`` form, one entry per block of its backward
    state (t, y, adj_y, *params), gives z y's entry and a adj_y's, its t and parameter entries unused (GQ's state
    holds neither block). For a tuple y0 of as many parts as that form has entries, the forward's form is read."""
    if tol is None:
        tol = forward
    elif (isinstance(tol, (tuple, list)) and len(tol) == 3 + n_params
          and not (is_tuple and len(tol) == len(parts))):
        state = torch.cat([p.reshape(-1) for p in parts])  # torchdiffeq's y and adj_y: the flat state
        z, a = (_part_tolerance(f"{name}[{i}]", tol[i], state) for i in (1, 2))
        return torch.cat([z, a])
    else:
        tol = _flat_tolerance(name, tol, parts, is_tuple)
    return tol if _is_scalar(tol) else torch.cat([tol, tol])


def _pair(tol):
    """A backward tolerance (:func:`_adjoint_tolerance`) as torchdiffeq's ``odeint`` takes it for the tuple
    state (z, a): a number as it is, a 1-D tensor over [z; a] as one row per block."""
    return tol if _is_scalar(tol) else tol.view(2, -1)


def _adjoint_options(method: str, options: dict, adjoint_method, adjoint_options):
    """The backward solve's options before their check: ``adjoint_options``, or where it is None the forward's
    less its ``norm`` (of y, not of the backward state), as in torchdiffeq's ``odeint_adjoint``, which likewise
    refuses to carry options over to a different ``adjoint_method``; ``norm="seminorm"`` dropped (torchdiffeq
    leaves the parameter block out of the error norm, and GQ's backward state (z, a) holds none)."""
    if adjoint_options is None:
        carried = {k: v for k, v in options.items() if k != "norm"}
        if carried and adjoint_method != method:
            raise ValueError(f"adjoint_method {adjoint_method!r} differs from method {method!r}, so options "
                             f"{sorted(carried)} are not carried over to the backward solve (as in torchdiffeq); "
                             f"pass adjoint_options too (adjoint_options={{}} for none)")
        return carried
    if isinstance(adjoint_options, Mapping) and adjoint_options.get("norm") == "seminorm":
        return {k: v for k, v in adjoint_options.items() if k != "norm"}
    return adjoint_options


def _check_norms(options: dict, adjoint_options: dict) -> None:
    """A TypeError unless a ``norm`` given in ``options`` or ``adjoint_options`` is callable (``"seminorm"``, the
    one name torchdiffeq takes, is an adjoint option and is already resolved by :func:`_adjoint_options`)."""
    for prefix, given in (("", options), ("adjoint_", adjoint_options)):
        norm = given.get("norm")
        if norm is not None and not callable(norm):
            valid = 'a callable of the state, or "seminorm"' if prefix else "a callable of the state"
            raise TypeError(f"{prefix}options['norm'] must be {valid}, got {norm!r}")


#: torchdiffeq's options of times where f jumps (``jump_t``) or has a kink (``step_t``).
TIME_OPTIONS = ("jump_t", "step_t")


def _times_as_tensors(prefix: str, options: dict) -> dict:
    """``options`` with its :data:`TIME_OPTIONS` as 1-D float64 tensors, or a TypeError naming one that holds
    no times. torchdiffeq negates them for a solve in decreasing time only if they are tensors: a list was
    left pointing at −t, so GQ's backward solve, which runs against the forward's direction, missed the jump."""
    converted = dict(options)
    for name in TIME_OPTIONS:
        if name in options:
            try:
                converted[name] = torch.as_tensor(options[name], dtype=torch.float64).reshape(-1)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"{prefix}options[{name!r}] must be times (a tensor or a list of numbers), "
                                f"got {options[name]!r}") from None
    return converted


def _breaks(options: dict) -> list[float]:
    """The times where the user tells torchdiffeq that f jumps or has a kink: the quadrature cuts its rule
    there (:func:`nodebench.gq.quadrature.piecewise_gauss_legendre`)."""
    return sorted({x for name in TIME_OPTIONS if name in options for x in options[name].tolist()})


def _with_norm(options: dict, norm) -> dict:
    """``options`` with ``norm`` as its norm, where ``norm`` is given."""
    return options if norm is None else {**options, "norm": norm}


def _adjoint_norm(state_norm):
    """torchdiffeq's default adjoint norm on the backward state (z, a), given the forward's norm of a flat
    state: the larger of it on z and on a (its seminorm: GQ's backward state holds no parameter block). None
    where the forward's is the RMS norm, whose such norm on (z, a) is torchdiffeq's default of the tuple."""
    if state_norm is None:
        return None
    return lambda state: torch.maximum(torch.as_tensor(state_norm(state[0])), torch.as_tensor(state_norm(state[1])))


def _check_times(t) -> None:
    """A ValueError or TypeError unless ``t`` is a 1-D floating tensor of finite, strictly monotone times, at least
    one (torchdiffeq's rule; a repeated time would also leave an interval without a quadrature rule)."""
    if not (torch.is_tensor(t) and t.dim() == 1 and len(t) >= 1):
        got = f"shape {tuple(t.shape)}" if torch.is_tensor(t) else type(t).__name__
        raise ValueError(f"t must be a 1-D tensor of at least one time, got {got}")
    if not t.is_floating_point():
        raise TypeError(f"t must be a floating-point tensor (as in torchdiffeq), got {t.dtype}")
    values = t.detach().tolist()  # one host read, as the forward solve's own
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise ValueError(f"t must be finite, got t[{i}] = {value}")
    direction = len(values) < 2 or values[1] > values[0]
    for i in range(len(values) - 1):
        if values[i] == values[i + 1]:  # a zero-length interval has no quadrature rule (torchdiffeq refuses it too)
            raise ValueError(f"t must not repeat a time: t[{i}] = t[{i + 1}] = {values[i]:g}")
        if (values[i + 1] > values[i]) != direction:
            raise ValueError(f"t must be strictly increasing or strictly decreasing, got t[{i - 1}..{i + 1}] = "
                             f"{values[i - 1]:g}, {values[i]:g}, {values[i + 1]:g}")


#: The state dtypes a solve runs in: float16 and bfloat16 are too coarse for the step-size control.
STATE_DTYPES = (torch.float32, torch.float64)


def _check_state(y0) -> None:
    """A TypeError or ValueError unless ``y0`` is a float32/float64 tensor, or a tuple of them, with elements."""
    parts = y0 if isinstance(y0, tuple) else (y0,)
    if not (isinstance(y0, (torch.Tensor, tuple)) and parts and all(torch.is_tensor(p) for p in parts)):
        raise TypeError(f"y0 must be a tensor or a tuple of tensors (as in torchdiffeq), got {type(y0).__name__}")
    for p in parts:
        if p.dtype not in STATE_DTYPES:
            why = " (too coarse for the solver's step-size control)" if p.is_floating_point() else ""
            raise TypeError(f"y0 must be float32 or float64, got {p.dtype}{why}; cast the state and the field")
    if sum(p.numel() for p in parts) == 0:
        raise ValueError(f"y0 has no elements (shape {[tuple(p.shape) for p in parts]}): nothing to solve")
