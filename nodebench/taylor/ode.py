"""Total time derivatives d^k z/dt^k, k = 1..K, of the solution of dz/dt = f(t, z) through (t, z): the
quantity TayNODE's regulariser R_K = ∫ ‖d^K z/dt^K‖² dt integrates (Kelly, Bettencourt, Johnson &
Duvenaud, "Learning Differential Equations that are Easy to Solve", NeurIPS 2020, arXiv 2007.04504,
§3 and App. A.2).

Time enters through the autonomous system y = (z, t), g(y) = (f(z, t), 1), so the time series is
t + s (t_1 = 1, t_k = 0 after) and ∂f/∂t terms appear in every total derivative.

Two methods, both returning the derivatives themselves (not divided by k!), as JAX ``jet`` and the
official code do, and both differentiable with ordinary autograd (``.backward()`` reaches ``func``'s
parameters, ``z`` and ``t``):

- ``"taylor"`` (:func:`taylor_derivatives`): Taylor mode. With normalised coefficients z_k = z^{(k)}/k!,
  z_{k+1} = [f(t(·), z(·))]_k / (k+1), where [·]_k is the k-th coefficient of f along the series. ``func``
  is called **once**, on series holding only z_0: the call records every operation on a tape
  (:mod:`nodebench.taylor.series`); then for k = 1..K−1 the new coefficient z_k = [f]_{k−1}/k is appended
  to the input series and the tape computes coefficient k of every operation from the lower ones. Level k
  costs one application of each linear operation and an O(k) Cauchy sum for each non-linear one, so
  d^K z costs O(K²) element-wise work and O(K) matrix products per operation in total (not the O(K³) of
  re-evaluating f on the series truncated at each order, nor the exponential cost of nested JVPs).
  The tape is advanced one coefficient at a time across all operations because coefficient k of any
  operation needs z_k, which is known only once the output's coefficient k−1 is: an all-orders pass per
  operation would have to re-run f for every order, as the ``jet``-based recursion of the official code does.
- ``"jvp"`` (:func:`jvp_derivatives`): the reference, nested ``torch.func.jvp`` (``torch.autograd.forward_ad``
  cannot nest). H_1(y) = g(y), H_k(y) = (g(y), tangent of jvp(H_{k−1}, (y,), (g(y),))) = (y', y'', …,
  y^{(k)}). Cost grows about 3× per order.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

from nodebench.taylor.rules import constant, scaled
from nodebench.taylor.series import Tape, is_taylor

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def taylor_derivatives(func: Field, t: torch.Tensor, z: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[z', z'', …, z^{(order)}] at (t, z) by Taylor mode (see the module docstring); ``func`` is called once."""
    tape = Tape()
    z_series = tape.leaf([z])
    one, zero = constant(1.0, t), constant(0.0, t)  # cached: no tensor is made per call
    time_series = tape.leaf([t, one] + [zero] * max(order - 2, 0))
    out = func(time_series, z_series)
    if not is_taylor(out):  # f depends on neither t nor z: z' is that constant, every later derivative 0
        if torch.is_tensor(out):
            _check_output_shape(out, z)
        first = torch.as_tensor(out, dtype=z.dtype, device=z.device).expand(z.shape)
        return [first] + [torch.zeros_like(z) for _ in range(order - 1)]
    _check_output_shape(out, z)
    tape.keep_only([out])
    f = out.coeffs
    for k in range(1, order):
        z_series.coeffs.append(f[k - 1] if k == 1 else scaled(f[k - 1], 1 / k))  # z_k = [f]_{k-1} / k
        tape.advance(k)
    # d^k z/dt^k = k! z_k = (k-1)! [f]_{k-1}
    return [f[k - 1] if k <= 2 else scaled(f[k - 1], math.factorial(k - 1)) for k in range(1, order + 1)]


def _check_output_shape(out, z: torch.Tensor) -> None:
    """A ValueError unless ``func``'s output ``out`` has the state's shape (dz/dt is z's shape)."""
    if tuple(out.shape) != tuple(z.shape):
        raise ValueError(f"func returned shape {tuple(out.shape)} for a state of shape {tuple(z.shape)}: it must "
                         "return dz/dt, of z's shape")


def jvp_derivatives(func: Field, t: torch.Tensor, z: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[z', …, z^{(order)}] at (t, z) by nested ``torch.func.jvp`` (the reference; exponential in order)."""

    def nest(k: int, outer: bool = False):
        def derivatives(z_, t_):
            velocity = (func(t_, z_), torch.ones_like(t_))
            if outer:  # on plain tensors, before any jvp: a wrong shape fails there with a deep message
                _check_output_shape(velocity[0], z_)
            if k == 1:
                return velocity
            _, tangents = torch.func.jvp(nest(k - 1), (z_, t_), velocity)
            return velocity + tuple(tangents)

        return derivatives

    return list(nest(order, outer=True)(z, t)[0::2])


METHODS = {"taylor": taylor_derivatives, "jvp": jvp_derivatives}


def _check_order(order: int) -> None:
    if not (isinstance(order, numbers.Integral) and not isinstance(order, bool) and order >= 1):
        raise ValueError(f"order must be an integer ≥ 1, got {order!r}")


#: Inductor settings of :func:`compile_derivatives` on the CPU: the C++ wrapper calls the graph's kernels from
#: C++ instead of one Python call each, which is most of a small graph's call overhead (README, "Benchmarks").
CPU_INDUCTOR_OPTIONS = {"cpp_wrapper": True}


def compile_derivatives(func: Field, order: int, **options) -> Callable[[torch.Tensor, torch.Tensor],
                                                                      list[torch.Tensor]]:
    """``(t, z) ↦ ode_derivatives(func, t, z, order)`` (Taylor mode) compiled by ``torch.compile`` as one graph.

    The tape runs once, while the graph is traced; calls then run the fused graph, with no per-operation
    Python work. ``fullgraph=True`` turns an operation the compiler cannot trace into an error instead of a
    silent slowdown. One graph is compiled per grad mode (the first call of each compiles, seconds to a
    minute); a new shape recompiles, with dynamic shapes from the second shape on (``torch.compile``'s
    default; ``dynamic=False`` compiles one static graph per shape, at ~10 µs more per call). t must be a
    0-d tensor, as z a tensor, since a Python float would be a constant of the graph. On the CPU, Inductor
    also gets :data:`CPU_INDUCTOR_OPTIONS` (a C++ wrapper around the kernels). ``options`` go to
    ``torch.compile`` and override these: ``options={...}`` is merged into the CPU's Inductor options, and a
    ``mode`` or ``backend`` replaces them. Compiled float32 CPU code evaluates tanh's primal by a rational
    approximation within 6.7 ulps, as XLA does (:mod:`nodebench.taylor.fast_tanh`).
    Gradients reach ``func``'s parameters as in eager mode. Each device type gets a compiled function, with a
    code object of its own, so Dynamo's ``recompile_limit`` (8 graphs per code object) counts its shapes and
    grad modes only, not every (func, K) compiled in the process.

    It pays when the same K and shapes are evaluated many times (see the README's "Benchmarks" for the
    figures against eager Taylor mode and JAX jet: ``benchmarks/taylor_cost.py --methods … taylor_compiled``).
    Where only the gradient of a loss of the derivatives is needed, :func:`compile_grad_and_value` compiles
    the backward into the same graph.

    Example:
        >>> derivatives = compile_derivatives(field, order=3)
        >>> dz = derivatives(torch.tensor(0.0), z)          # compiles on the first call
    """
    _check_order(order)

    def derivatives(t: torch.Tensor, z: torch.Tensor) -> list[torch.Tensor]:
        return taylor_derivatives(func, t, z, order)

    return _compiled_per_device_type(derivatives, options)


def rk_integrand(derivatives: list[torch.Tensor]) -> torch.Tensor:
    """mean((d^K z)²) over the batch and the state, the R_K integrand of the official TayNODE code (Kelly et
    al., §3: R_K = ∫ ‖d^K z/dt^K‖² dt), the default loss of :func:`compile_grad_and_value`."""
    return derivatives[-1].pow(2).mean()


def compile_grad_and_value(field: nn.Module, order: int, loss: Callable[[list[torch.Tensor]], torch.Tensor] =
                           rk_integrand, **options) -> Callable[[torch.Tensor, torch.Tensor],
                                                                tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """``(t, z) ↦ (gradients, value)`` of ``loss(ode_derivatives(field, t, z, order))`` with respect to
    ``field``'s parameters, forward and backward compiled by ``torch.compile`` as one graph.

    ``torch.func.grad_and_value`` over ``torch.func.functional_call(field, …)``, the torch counterpart of a
    jitted ``jax.value_and_grad``: the backward is traced with the forward, so a call runs one graph, with no
    autograd graph recorded and no autograd engine walking it (:func:`compile_derivatives` followed by
    ``torch.autograd.grad`` runs the compiled forward, then the compiled backward through the engine). That
    per-call work is what separates the two at small sizes; the README's "Benchmarks" has the figures
    (``benchmarks/taylor_cost.py --methods … taylor_fused``). Compilation and ``options`` are as in
    :func:`compile_derivatives` (``mode="reduce-overhead"`` replays the whole step as one CUDA graph); the
    first call compiles.

    Args:
        field: the vector field ``field(t, z)``, an ``nn.Module`` (its parameters are the differentiated
            arguments, read at each call, so an optimiser's updates are seen); Taylor-mode operations only.
        order: K ≥ 1.
        loss: a scalar function of ``[z', …, d^K z]``, traceable by ``torch.compile``
            (default :func:`rk_integrand`, mean((d^K z)²)).

    Returns:
        A function of (t, z), t a 0-d tensor, returning ``({name: gradient}, loss value)`` in
        ``torch.func.grad_and_value``'s order, the gradients keyed as ``field.named_parameters()``. With CUDA
        graphs the returned tensors live in memory that the next call overwrites: clone what is kept.

    Example:
        >>> step = compile_grad_and_value(field, order=3)
        >>> grads, value = step(torch.tensor(0.0), z)        # compiles on the first call
        >>> for name, p in field.named_parameters():
        ...     p.grad = grads[name]
    """
    _check_order(order)
    if not isinstance(field, nn.Module):
        raise TypeError(f"field must be an nn.Module (its parameters are what is differentiated), got "
                        f"{type(field).__name__}; wrap a function of parameters you own in a module")

    def value_of(parameters: dict[str, torch.Tensor], t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return loss(taylor_derivatives(lambda t_, z_: functional_call(field, parameters, (t_, z_)), t, z, order))

    grad_and_value = torch.func.grad_and_value(value_of)

    def step(t: torch.Tensor, z: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        # detached: the results need no autograd graph of their own (else AOTAutograd would also compile a
        # backward of the whole step, for a second derivative no one takes)
        return grad_and_value({name: p.detach() for name, p in field.named_parameters()}, t, z)

    return _compiled_per_device_type(step, options)


def _compiled_per_device_type(fn: Callable[[torch.Tensor, torch.Tensor], object], options: dict) -> Callable:
    """``fn(t, z)`` under ``torch.compile`` (``fullgraph=True``, ``options`` as :func:`compile_derivatives`
    describes), compiled separately for each device type of z, each from a copy of ``fn``'s code object."""
    compiled: dict[str, Callable] = {}

    def compile_for(device_type: str) -> Callable:
        def call(t: torch.Tensor, z: torch.Tensor):
            return fn(t, z)

        call.__code__ = call.__code__.replace()  # a copy: Dynamo keys its graph cache by code object
        settings = {"fullgraph": True, **options}
        if device_type == "cpu" and "mode" not in options and "backend" not in options:
            settings["options"] = {**CPU_INDUCTOR_OPTIONS, **(options.get("options") or {})}
        return torch.compile(call, **settings)

    def on_device(t: torch.Tensor, z: torch.Tensor):
        if not (torch.is_tensor(t) and t.dim() == 0 and torch.is_tensor(z)):
            raise ValueError(f"t must be a 0-d tensor and z a tensor (a Python float would be a constant of the "
                             f"compiled graph), got t={t!r} of type {type(t).__name__}, z of type {type(z).__name__}")
        kind = z.device.type
        if kind not in compiled:
            compiled[kind] = compile_for(kind)
        return compiled[kind](t, z)

    return on_device


def ode_derivatives(func: Field, t: torch.Tensor | float, z: torch.Tensor, order: int, *,
                    method: str = "taylor") -> list[torch.Tensor]:
    """The total time derivatives d^k z/dt^k, k = 1..``order``, of the solution of dz/dt = func(t, z)
    through (t, z).

    Args:
        func: the vector field ``f(t, z)`` (torchdiffeq's argument order), any callable built from the
            operations :func:`nodebench.taylor.supported_ops` lists for ``method="taylor"``; it may
            depend on t (concat-t layers: ``torch.cat([z, t.expand(B, 1)], -1)``).
        t: the time, a 0-d tensor (a float is converted with z's dtype).
        z: the state, any shape ((B, D), (B, C, H, W), …); f(t, z) must have the same shape.
        order: K ≥ 1.
        method: ``"taylor"`` (Taylor mode, O(K²)) or ``"jvp"`` (nested ``torch.func.jvp``, reference).

    Returns:
        ``[z', z'', …, z^{(K)}]``, each of z's shape: element k−1 is the k-th derivative, **not** divided
        by k! (JAX ``jet``'s convention, the official code's). Differentiable with ordinary autograd.

    Raises:
        TaylorModeError: ``func`` uses an operation without a Taylor rule (``method="taylor"``), named in
            the message.
        ValueError, TypeError: a bad ``method`` or ``order``, a ``z`` that is not a floating tensor, a ``t``
            that is not a 0-d tensor or a real number, or a ``func`` whose output is not of z's shape.

    Example:
        >>> dz = ode_derivatives(field, torch.tensor(0.0), z, order=3)
        >>> integrand = dz[-1].pow(2).flatten(1).mean(1)   # R_3's integrand per example, as the official code
        >>> integrand.mean().backward()                    # gradients for field.parameters() and z
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    _check_order(order)
    if not torch.is_tensor(z):
        raise TypeError(f"z must be a tensor (one state: tuple states are not supported), got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"z must be a floating-point tensor, got {z.dtype}")
    if not torch.is_tensor(t):
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise TypeError(f"t must be a 0-d tensor or a real number, got {t!r}")
        t = torch.tensor(float(t), dtype=z.dtype, device=z.device)
    if t.dim() != 0:
        raise ValueError(f"t must be a 0-d tensor, got shape {tuple(t.shape)}")
    return METHODS[method](func, t, z, order)
