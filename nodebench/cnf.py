"""Continuous normalizing flows (CNFs) as nflows transforms.

A CNF maps ``x = z(0)`` to ``z(T)`` by integrating ``dz/dt = f(t, z)`` and tracks the log-determinant of
the flow map with the instantaneous change of variables, ``dΔ/dt = tr(∂f/∂z)`` (Chen et al. 2018,
arXiv 1806.07366, Theorem 1). The trace is either exact (``d`` autograd passes) or Hutchinson's
stochastic estimate ``εᵀ(∂f/∂z)ε`` as in FFJORD (Grathwohl et al. 2019, arXiv 1810.01367, §3.1).

The solver is pluggable so that one model can be trained with Discretize-Optimize (fixed-step RK4 and
direct backpropagation) or Optimize-Discretize (adaptive solver and the continuous adjoint), and evaluated
with a different discretisation ("re-discretisation"), as compared by Onken & Ruthotto 2020
(arXiv 2005.13420, §5 "Continuous Normalizing Flows").
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Callable, Optional, Sequence, Tuple

import torch
from nflows.transforms.base import Transform
from torch import nn
from torchdiffeq import odeint

from nodebench.errors import UserError
from nodebench.solvers import check_solver_arguments, check_tolerance

SolveFn = Callable[[nn.Module, Tuple[torch.Tensor, ...], torch.Tensor], Tuple[torch.Tensor, ...]]
"""``solve(func, y0, t) -> ys`` with torchdiffeq's ``odeint`` call convention (``ys`` stacked over ``t``)."""

TRACES = ("exact", "hutchinson")
NOISES = ("gaussian", "rademacher")
ACTIVATIONS = {"tanh": nn.Tanh, "softplus": nn.Softplus}


def _check_choice(kind: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise UserError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")
    return value


def _state_tolerance(name: str, tol):
    """A tolerance of the default solver for the state ``(z, Δ)`` as :func:`~nodebench.solvers.check_solver_arguments`
    checks it: a number (or 0-d tensor) as it is, or, as torchdiffeq's ``odeint`` takes a tuple state's tolerances,
    a pair of them (z's, Δ's), each checked here, as one tensor of the two; a TypeError saying what is taken
    otherwise (a per-feature tensor would need the batch size, which changes from call to call)."""
    if isinstance(tol, (tuple, list)) and len(tol) == 2:
        return torch.tensor([check_tolerance(f"{name}[{i}]", entry) for i, entry in enumerate(tol)],
                            dtype=torch.float64)
    if not ((isinstance(tol, numbers.Real) and not isinstance(tol, bool)) or (torch.is_tensor(tol) and tol.dim() == 0)):
        got = f"a tensor of shape {tuple(tol.shape)}" if torch.is_tensor(tol) else repr(tol)
        raise TypeError(f"{name} must be a number ≥ 0, or a pair of them (z's, the log-density's) as torchdiffeq "
                        f"takes a tuple state's tolerances; got {got}")
    return tol


def _counts(values: Sequence) -> bool:
    """Every value is a positive integer (a bool or an integral float is not: a width, a channel count, a size)."""
    return all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in values)


class ConcatSquashLinear(nn.Module):
    """FFJORD's time-conditioned linear layer.

    ``out = (W x + b) * sigmoid(W_g t + b_g) + W_b t``: the time gates and shifts every output unit
    (Grathwohl et al. 2019, arXiv 1810.01367, "ConcatSquash" layers of the released code; also the
    layer used for the CNFs of Onken & Ruthotto 2020, arXiv 2005.13420, §5).

    Args:
        dim_in: Input features.
        dim_out: Output features.
    """

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.gate = nn.Linear(1, dim_out)
        self.shift = nn.Linear(1, dim_out, bias=False)

    def forward(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(B, dim_in)`` at the scalar time ``t``."""
        if isinstance(t, (int, float)):
            t = torch.tensor(float(t))
        t = t.to(dtype=x.dtype, device=x.device).reshape(1, 1)  # .to, not as_tensor: Taylor-mode series pass
        return self.linear(x) * torch.sigmoid(self.gate(t)) + self.shift(t)


class ConcatSquashMLP(nn.Module):
    """A vector field ``f(t, z)`` built from :class:`ConcatSquashLinear` layers.

    The architecture of FFJORD's tabular and toy CNFs (Grathwohl et al. 2019, arXiv 1810.01367, App. B),
    reused by Onken & Ruthotto 2020 (arXiv 2005.13420, §5): ``dim → hidden_dims… → dim`` with the
    activation between layers and none after the last.

    Args:
        dim: State dimension ``D``.
        hidden_dims: Widths of the hidden layers, e.g. ``(64, 64, 64)``.
        activation: ``"tanh"`` or ``"softplus"``.
    """

    def __init__(self, dim: int, hidden_dims: Sequence[int] = (64, 64, 64), activation: str = "tanh"):
        super().__init__()
        _check_choice("activation", activation, tuple(ACTIVATIONS))
        widths = (dim, *hidden_dims, dim)
        if not _counts(widths):
            raise UserError(f"dim and hidden_dims must be positive integers, got {dim!r} and {tuple(hidden_dims)!r}")
        self.layers = nn.ModuleList(ConcatSquashLinear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = ACTIVATIONS[activation]()

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        """Return ``dz/dt`` for ``z`` of shape ``(B, D)``."""
        for i, layer in enumerate(self.layers):
            z = layer(t, z)
            if i < len(self.layers) - 1:
                z = self.activation(z)
        return z


class ConcatConv2d(nn.Module):
    """FFJORD's time-conditioned convolution: ``conv([t, x])``, the time as an extra constant input channel.

    The ``ConcatConv2d`` of FFJORD's released code (Grathwohl et al. 2019, arXiv 1810.01367), also the
    ``ConcatConv2D`` of the FFJORD MNIST script of Kelly et al. 2020 (arXiv 2007.04504): the channel
    ``t · 1`` is prepended to the input and a ``ksize × ksize`` convolution (stride 1, "same" padding)
    is applied.

    Args:
        c_in: Input channels (without the time channel).
        c_out: Output channels.
        ksize: Kernel size (odd; padding ``ksize // 2`` keeps the spatial size).
    """

    def __init__(self, c_in: int, c_out: int, ksize: int = 3):
        super().__init__()
        if not _counts([ksize]) or ksize % 2 == 0:
            raise UserError(f"ConcatConv2d kernel size must be a positive odd integer, got {ksize!r}")
        self.conv = nn.Conv2d(c_in + 1, c_out, ksize, padding=ksize // 2)

    def forward(self, t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` of shape ``(B, c_in, H, W)`` at the scalar time ``t``."""
        if isinstance(t, (int, float)):
            t = torch.tensor(float(t))
        t = t.to(dtype=x.dtype, device=x.device).reshape(1, 1, 1, 1)  # .to, not as_tensor: Taylor-mode series pass
        tt = t.expand(x.shape[0], 1, x.shape[2], x.shape[3])
        return self.conv(torch.cat([tt, x], dim=1))


class ConcatConvNet(nn.Module):
    """A convolutional vector field ``f(t, z)`` on flattened images, for CNFs of image densities.

    The FFJORD MNIST dynamics of Kelly et al. 2020: ``z`` of shape
    ``(B, C·H·W)`` is reshaped to ``(B, C, H, W)``, passed through ``[ConcatConv2d → activation] ×
    len(hidden_channels)`` and a last :class:`ConcatConv2d` back to ``C`` channels, and flattened again.
    The last layer's weight and bias start at zero (so ``f ≡ 0`` and the flow is the identity at
    initialisation, as in the official script). Built only from operations that Taylor mode supports
    (``cat``, ``expand``, ``reshape``, ``conv2d``, ``softplus``/``tanh``), with no in-place operation, so
    :func:`nodebench.taylor.ode_derivatives` can differentiate it.

    Args:
        shape: ``(C, H, W)`` of one image.
        hidden_channels: Channels of the hidden layers, e.g. ``(64, 64, 64)``.
        activation: ``"softplus"`` (the paper's) or ``"tanh"``.
        ksize: Kernel size of every layer.
    """

    def __init__(self, shape: Sequence[int], hidden_channels: Sequence[int] = (64, 64, 64),
                 activation: str = "softplus", ksize: int = 3):
        super().__init__()
        _check_choice("activation", activation, tuple(ACTIVATIONS))
        if len(shape) != 3 or not _counts(shape):
            raise UserError(f"ConcatConvNet shape must be (C, H, W) of positive integers, got {tuple(shape)}")
        if not _counts(hidden_channels):
            raise UserError(f"ConcatConvNet hidden_channels must be positive integers, got {tuple(hidden_channels)}")
        self.shape = tuple(int(s) for s in shape)
        widths = (self.shape[0], *(int(c) for c in hidden_channels), self.shape[0])
        self.layers = nn.ModuleList(ConcatConv2d(a, b, ksize) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = ACTIVATIONS[activation]()
        with torch.no_grad():
            self.layers[-1].conv.weight.zero_()
            self.layers[-1].conv.bias.zero_()

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        """Return ``dz/dt`` for flat ``z`` of shape ``(B, C·H·W)``."""
        x = z.reshape(z.shape[0], *self.shape)
        for i, layer in enumerate(self.layers):
            x = layer(t, x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x.reshape(z.shape[0], -1)


class AugmentedDynamics(nn.Module):
    """The augmented field ``(z, Δ) ↦ (f(t, z), tr ∂f/∂z)`` that a CNF integrates.

    One instance is built per solve so that a Hutchinson probe stays attached to the solve that drew it,
    also during a later adjoint backward pass. Its parameters are exactly those of ``dynamics``, so
    ``odeint_adjoint`` finds them.

    Args:
        dynamics: ``f(t, z)`` with ``z`` of shape ``(B, D)``.
        noise: ``None`` for the exact trace, else the probe ``ε`` of shape ``(B, D)`` for the
            Hutchinson estimate ``εᵀ(∂f/∂z)ε`` (FFJORD, arXiv 1810.01367, §3.1).
    """

    def __init__(self, dynamics: nn.Module, noise: Optional[torch.Tensor] = None):
        super().__init__()
        self.dynamics = dynamics
        self.noise = noise

    @property
    def state_field(self) -> nn.Module:
        """f(t, z) alone: what a regulariser of the CNF's state differentiates (:mod:`nodebench.regularizers`)."""
        return self.dynamics

    def forward(self, t: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor]):
        """Return ``(dz/dt, dΔ/dt)``; differentiable when gradients are enabled by the caller.

        The trace needs autograd even when the caller's does not record: under ``torch.no_grad`` it runs in an
        ``enable_grad`` block, under ``torch.inference_mode`` (whose tensors autograd cannot record) outside
        inference mode on plain copies of ``t`` and ``z``; either way the results carry no graph.
        """
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False):
                t = t.clone() if torch.is_tensor(t) else t
                return self._evaluate(t, state[0].clone(), create_graph=False)
        return self._evaluate(t, state[0], create_graph=torch.is_grad_enabled())

    def _evaluate(self, t: torch.Tensor, z: torch.Tensor, create_graph: bool):
        with torch.enable_grad():
            if not (create_graph and z.requires_grad):
                z = z.detach().requires_grad_(True)
            dz = self.dynamics(t, z)
            if self.noise is None:
                trace = self._exact_trace(dz, z, create_graph)
            else:
                (vjp,) = torch.autograd.grad(dz, z, self.noise, create_graph=create_graph, materialize_grads=True)
                trace = (vjp * self.noise).sum(dim=1)
        if not create_graph:
            dz, trace = dz.detach(), trace.detach()
        return dz, trace

    @staticmethod
    def _exact_trace(dz: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
        trace = torch.zeros_like(dz[:, 0])
        for i in range(z.shape[1]):
            (row,) = torch.autograd.grad(
                dz[:, i].sum(), z, create_graph=create_graph, retain_graph=True, materialize_grads=True
            )
            trace = trace + row[:, i]
        return trace


class CNF(Transform):
    """A continuous normalizing flow as an ``nflows`` transform.

    ``forward`` integrates ``(z, Δ)`` from 0 to ``t1`` with ``Δ(0) = 0`` and returns ``(z(t1), Δ(t1))``,
    so ``log p(x) = log p0(z) + logabsdet`` (nflows convention). ``inverse`` integrates from ``t1`` back to
    0 and returns the log-determinant of the inverse map, so forward then inverse sums to zero (up to
    solver error; a fixed-step solver is not exactly invertible, which Onken & Ruthotto 2020,
    arXiv 2005.13420, §5, measure as the inverse error).

    Args:
        dynamics: Vector field ``f(t, z) -> dz/dt`` with ``z`` of shape ``(B, D)``.
        t1: End time ``T`` (initial value when ``train_t1``).
        trace: ``"exact"`` or ``"hutchinson"``; may be changed later through :attr:`trace` (FFJORD
            trains with Hutchinson and evaluates with the exact trace).
        noise: Hutchinson probe distribution, ``"gaussian"`` or ``"rademacher"``. One probe per sample is
            drawn once per solve, never per function evaluation (drawing per evaluation makes the field
            discontinuous and inflates adaptive-step NFE).
        method, rtol, atol, options: Passed to ``torchdiffeq.odeint`` by the default solver; an unknown method
            or option, or a negative or NaN tolerance, is a ValueError or TypeError here. A tolerance is a number,
            or a pair ``(z's, the log-density's)``, as torchdiffeq takes one per part of the tuple state.
        train_t1: Make ``T`` trainable, parametrised as ``T = s²`` as in FFJORD's ``train_T``.
        solve: Optional ``solve(func, y0, t) -> ys`` with ``odeint``'s call convention, replacing the
            default solver (e.g. ``odeint_adjoint`` or fixed-step RK4). Reassign :attr:`solve` to
            evaluate with another discretisation; ``None`` restores the default.
        seed: Seed of the CNF's own probe generator; ``None`` seeds it from OS entropy.
        generator: A CPU ``torch.Generator`` to draw probes from instead (takes precedence over ``seed``).
            The global RNG is never used.
        augment: Optional ``augment(noise) -> func``, called once per solve with that solve's probe
            (``None`` for the exact trace); the returned module is what the solver integrates. The default
            builds a fresh :class:`AugmentedDynamics` per solve. A training harness that wraps the
            integrated field (e.g. to count evaluations) supplies a hook that sets the probe on one shared
            :class:`AugmentedDynamics` and returns the wrapper (see :mod:`nodebench.tasks.density`).
    """

    def __init__(
        self,
        dynamics: nn.Module,
        *,
        t1: float = 1.0,
        trace: str = "exact",
        noise: str = "gaussian",
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        options: Optional[dict] = None,
        train_t1: bool = False,
        solve: Optional[SolveFn] = None,
        seed: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        augment: Optional[Callable[[Optional[torch.Tensor]], nn.Module]] = None,
    ):
        super().__init__()
        if isinstance(t1, bool) or not isinstance(t1, numbers.Real) or not 0 < t1 < math.inf:
            raise UserError(f"CNF end time t1 must be a positive finite number, got {t1!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise UserError(f"generator must be a torch.Generator or None, got {generator!r}")
        options = check_solver_arguments("", method, _state_tolerance("rtol", rtol), _state_tolerance("atol", atol),
                                         options, per_component=True)  # at construction, not at the first solve
        self.dynamics = dynamics
        self.trace = trace
        self.noise = noise
        self._default_solve = functools.partial(odeint, method=method, rtol=rtol, atol=atol, options=options or None)
        self.solve = solve
        if train_t1:
            self.sqrt_t1 = nn.Parameter(torch.tensor(math.sqrt(t1)))
        else:
            self.register_parameter("sqrt_t1", None)
            self._t1 = float(t1)
        if generator is None:
            generator = torch.Generator()
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        self.generator = generator
        self.augment = augment

    @property
    def trace(self) -> str:
        """``"exact"`` or ``"hutchinson"``."""
        return self._trace

    @trace.setter
    def trace(self, value: str) -> None:
        self._trace = _check_choice("trace estimator", value, TRACES)

    @property
    def noise(self) -> str:
        """The Hutchinson probe distribution, ``"gaussian"`` or ``"rademacher"``."""
        return self._noise

    @noise.setter
    def noise(self, value: str) -> None:
        self._noise = _check_choice("Hutchinson noise", value, NOISES)

    @property
    def solve(self) -> SolveFn:
        """The solver used by :meth:`forward` and :meth:`inverse`; assign ``None`` for the default."""
        return self._solve

    @solve.setter
    def solve(self, value: Optional[SolveFn]) -> None:
        self._solve = self._default_solve if value is None else value

    @property
    def t1(self) -> torch.Tensor:
        """The end time ``T`` (a differentiable tensor when trainable)."""
        if self.sqrt_t1 is None:
            return torch.tensor(self._t1, dtype=torch.float64)
        return self.sqrt_t1**2

    def forward(self, inputs: torch.Tensor, context: Optional[torch.Tensor] = None):
        """Map data ``x`` (``(B, D)``) to ``z = z(t1)``; return ``(z, log|det ∂z/∂x|)``.

        ``context`` is ignored, as nflows's unconditional transforms (permutations, ActNorm...) ignore it: the
        field ``f(t, z)`` takes none, and the CNF can be a block of a conditional flow.
        """
        return self._integrate(inputs, reverse=False)

    def inverse(self, inputs: torch.Tensor, context: Optional[torch.Tensor] = None):
        """Map ``z`` (``(B, D)``) back to ``x = z(0)``; return ``(x, log|det ∂x/∂z|)``; ``context`` is ignored."""
        return self._integrate(inputs, reverse=True)

    def _integrate(self, z: torch.Tensor, reverse: bool):
        if z.dim() != 2 or z.shape[0] == 0:
            raise ValueError(f"CNF expects inputs of shape (batch, features), batch ≥ 1, got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise TypeError(f"CNF expects floating-point inputs, got {z.dtype}")
        t1 = self.t1.to(dtype=z.dtype, device=z.device)
        t = torch.stack([torch.zeros_like(t1), t1])
        if reverse:
            t = t.flip(0)
        noise = self._draw_noise(z) if self.trace == "hutchinson" else None
        func = AugmentedDynamics(self.dynamics, noise) if self.augment is None else self.augment(noise)
        logdet0 = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        zs, logdets = self.solve(func, (z, logdet0), t)
        return zs[-1], logdets[-1]

    def _draw_noise(self, like: torch.Tensor) -> torch.Tensor:
        """Draw one Hutchinson probe per sample from the CNF's own generator (on CPU, then moved)."""
        if self.noise == "gaussian":
            eps = torch.randn(like.shape, generator=self.generator, dtype=like.dtype)
        else:
            eps = torch.randint(0, 2, like.shape, generator=self.generator).to(like.dtype) * 2 - 1
        return eps.to(like.device)
