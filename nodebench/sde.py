"""SDEs in nodebench: Wong–Zakai training of a Stratonovich SDE as an ODE, and the torchsde view.

Norcliffe & Deisenroth, "Faster Training of Neural ODEs Using Gauß–Legendre Quadrature" (TMLR 2023,
arXiv 2308.10644), train neural SDEs with ODE methods (the paper's Wong–Zakai SDE section; official code
``models/neural_de.py``, class ``make_sde_func``) and transfer the parameters to an SDE solver for evaluation.

**The model.** A *drift–diffusion field* is an ``nn.Module`` whose ``forward(t, z)`` returns the tuple
``(f, g)``, or a plain function ``(t, z) -> (f, g)``: the drift f(t, z) and the diagonal diffusion g(t, z), both
of z's shape. It stands for the
Stratonovich SDE with diagonal noise

    dZ = f(t, Z) dt + g(t, Z) ∘ dW,   W a Brownian motion of Z's shape.

:class:`DriftDiffusion` builds one from two modules. :class:`StratonovichSDE` is the same field seen by
torchsde (``noise_type="diagonal"``, ``sde_type="stratonovich"``; ``f_and_g`` makes one field call).

**Wong–Zakai training.** Replace white noise by a smooth random function ξ and integrate the random ODE

    dz/dt = f(t, z) + g(t, z) ⊙ ξ(t)                                         (:class:`WongZakaiField`)

with any ODE solver and gradient method (dopri5 + the GQ adjoint in the paper). ξ is the time derivative
of the truncated Karhunen–Loève (KL) expansion of Brownian motion on [t0, t1] (:class:`KarhunenLoeveNoise`):
with c = t1 − t0, s = (t − t0)/c and ω_n = (n − ½)π,

    W(t)  = Σ_{n=1..∞} η_n · √(2c) · sin(ω_n s) / ω_n,          η_n ~ N(0, 1) i.i.d., of Z's shape,
    ξ(t)  = dW/dt ≈ √(2/c) · Σ_{n=1..K} η_n · cos(ω_n s),       K = ``ncosines``.

The sin functions are the eigenfunctions of Brownian motion's covariance min(t, t') on [t0, t1], so the
truncated W_K(t) = ∫_{t0}^{t} ξ has variance Σ_{n≤K} (2/c)·(sin(ω_n s)/(ω_n/c))², which tends to t − t0
as K → ∞ (:func:`kl_brownian_variance`). By the Wong–Zakai theorem, solutions of ODEs driven by smooth
approximations of Brownian paths converge to the **Stratonovich** SDE (not the Itô one), so the trained
f and g transfer unchanged to a Stratonovich solver: the task evaluates every method, Wong–Zakai or
torchsde-trained, by simulating :class:`StratonovichSDE` with torchsde.

The path (the η_n) is drawn once per solve and held fixed until the next :meth:`KarhunenLoeveNoise.resample`,
so every forward evaluation and every evaluation of an adjoint's backward solve (and the GQ quadrature
nodes) sees the same ξ; the ODE is then an ordinary deterministic ODE and the adjoint gradient is exact.

**Difference from the official code.** ``make_sde_func.noise`` calls ``torch.manual_seed(seed)`` and
redraws the η_n on *every* evaluation (and adds 500 to the seed per batch), which reseeds the global
torch RNG inside the vector field and so disturbs any other randomness drawn during a solve (a side
effect the official implementation has). Here the η_n are stored tensors drawn from a caller-supplied local
``torch.Generator``: same fixed-path semantics, no global side effect, and ξ(t) is pure tensor algebra in
t (no ``.item()``), so it runs under ``torch.func.vmap`` over t (the ``gq_batched`` method).

Also here: :func:`fit_gaussian`, :func:`gaussian_kl` and :func:`gaussian_log_prob`, the sample-based
metrics of SDE tasks (a Gaussian fitted to the sample paths at each time).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

from nodebench.callbacks import ForwardsCallbacks


class KarhunenLoeveNoise:
    """Smooth approximate white noise ξ(t) = √(2/c) Σ_{n=1..K} η_n cos((n − ½)π s), s = (t − t0)/c.

    Args:
        t0, t1: the interval the expansion lives on (c = t1 − t0 > 0): the solve's time span.
        ncosines: K, the number of cosines (0 gives ξ ≡ 0, a deterministic ODE).
        dtype, device: of the coefficients η_n and of ξ(t).

    The coefficients are drawn by :meth:`resample` and fixed until the next call, so all evaluations of
    one solve see the same path. ``noise(t)`` takes a 0-d tensor ``t`` (also under ``torch.func.vmap``)
    and returns a tensor of the shape given to :meth:`resample`.

    Outside [t0, t1] the expansion is no Brownian motion: cos(ω_n s) is even about s = 1, so the path mirrors
    there, W_K(t1 + u) = W_K(t1 − u), and returns to 0 at t1 + c. ``noise(t)`` does not check ``t`` (an adaptive
    solver's last step may evaluate the field a little past t1, and a check would cost a host sync per
    evaluation on a GPU): build the noise on the solve's own span, as the paper's transfer does.
    """

    def __init__(self, t0: float, t1: float, ncosines: int = 10, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None):
        t0, t1 = float(t0), float(t1)
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"need finite t1 > t0, got t0={t0}, t1={t1}")
        if isinstance(ncosines, bool) or not (isinstance(ncosines, numbers.Integral) and ncosines >= 0):
            # a bool is no count (True was taken as K = 1); a numpy integer is one
            raise ValueError(f"ncosines must be a non-negative integer, got {ncosines!r}")
        ncosines = int(ncosines)
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        self.t0, self.t1, self.c = t0, t1, t1 - t0
        self.ncosines = ncosines
        self.dtype = dtype
        self.device = torch.device("cpu") if device is None else torch.device(device)
        #: ω_n = (n − ½)π, n = 1..K.
        self.omegas = (torch.arange(1, ncosines + 1, dtype=dtype, device=self.device) - 0.5) * math.pi
        self.eta: torch.Tensor | None = None

    def resample(self, shape: Sequence[int], generator: torch.Generator | None = None) -> KarhunenLoeveNoise:
        """Draw new η_n ~ N(0, 1), shape (K, *shape), from ``generator`` (a local ``torch.Generator``;
        ``None`` draws from the global RNG, which is advanced but never reseeded). Returns ``self``."""
        gen_device = generator.device if generator is not None else self.device
        eta = torch.randn((self.ncosines, *shape), generator=generator, dtype=self.dtype, device=gen_device)
        self.eta = eta.to(self.device)
        return self

    def _coefficients(self) -> torch.Tensor:
        if self.eta is None:
            raise RuntimeError("KarhunenLoeveNoise has no path yet; call resample(shape, generator) first")
        return self.eta

    def _s(self, t: torch.Tensor) -> torch.Tensor:
        return (torch.as_tensor(t).to(dtype=self.dtype, device=self.device) - self.t0) / self.c

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """ξ(t), of the shape given to :meth:`resample`."""
        eta = self._coefficients()
        basis = torch.cos(self.omegas * self._s(t))  # (K,)
        return math.sqrt(2.0 / self.c) * torch.tensordot(basis, eta, dims=1)

    def integral(self, t: torch.Tensor) -> torch.Tensor:
        """W_K(t) = ∫_{t0}^{t} ξ = √(2c) Σ_n η_n sin(ω_n s)/ω_n, the truncated KL Brownian path."""
        eta = self._coefficients()
        basis = torch.sin(self.omegas * self._s(t)) / self.omegas
        return math.sqrt(2.0 * self.c) * torch.tensordot(basis, eta, dims=1)


def kl_brownian_variance(t: float, t0: float, t1: float, ncosines: int) -> float:
    """Var W_K(t) = Σ_{n=1..K} (2/c)·(sin(ω_n s)/(ω_n/c))² of the K-term KL expansion on [t0, t1] (→ t − t0)."""
    c = t1 - t0
    s = (t - t0) / c
    return sum((2.0 / c) * (math.sin((n - 0.5) * math.pi * s) / ((n - 0.5) * math.pi / c)) ** 2
               for n in range(1, ncosines + 1))


class DriftDiffusion(nn.Module):
    """A drift–diffusion field from two modules: ``forward(t, z) = (drift(t, z), diffusion(t, z))``; their
    parameters are its ``parameters()``.

    A plain function is refused (TypeError): its parameters would not be this module's, and an adjoint without
    ``adjoint_params`` would return no gradient for them. Plain functions make a plain-function field,
    ``lambda t, z: (drift(t, z), diffusion(t, z))``, which :class:`WongZakaiField` and :class:`StratonovichSDE` take.
    """

    def __init__(self, drift: nn.Module, diffusion: nn.Module):
        for name, part in (("drift", drift), ("diffusion", diffusion)):
            if not isinstance(part, nn.Module):
                raise TypeError(f"DriftDiffusion takes modules, got {type(part).__name__} as {name}; for plain "
                                "functions use the field lambda t, z: (drift(t, z), diffusion(t, z)) instead")
        super().__init__()
        self.drift = drift
        self.diffusion = diffusion

    def forward(self, t, z):
        return self.drift(t, z), self.diffusion(t, z)


class WongZakaiField(ForwardsCallbacks):
    """The Wong–Zakai ODE field ``forward(t, z) = f + g ⊙ ξ(t)`` with ``(f, g) = field(t, z)``.

    Args:
        field: a drift–diffusion field (possibly wrapped, e.g. in the harness's ``CountingField``), registered
            as a submodule, so this module's ``parameters()`` are the field's; or a plain function
            ``(t, z) -> (f, g)``, whose parameters this module does not hold.
        noise: a :class:`KarhunenLoeveNoise` with a drawn path of z's shape (another shape is a ValueError).

    torchdiffeq's step callbacks are forwarded to ``field`` (:class:`~nodebench.callbacks.ForwardsCallbacks`),
    so a counting wrapper inside still sees every solver step. A method's solve
    (:meth:`nodebench.methods.Method.make_solve`) hands this field around a plain function to its solver as a plain
    callable (:func:`~nodebench.callbacks.solver_field`), so its adjoint needs the parameters (``params``), as
    for the function itself; given to torchdiffeq's ``odeint_adjoint`` directly, pass ``adjoint_params``.
    """

    def __init__(self, field: nn.Module | Callable, noise: KarhunenLoeveNoise):
        super().__init__()
        self.field = field
        self.noise = noise

    def forward(self, t, z):
        f, g = self.field(t, z)
        xi = self.noise(t)
        if xi.shape != z.shape:
            # g * ξ would broadcast: a path of shape (1,) or (d,) drives every trajectory (or every row) with the
            # same Brownian motion, silently, instead of the independent diagonal noise W of z's shape (paper,
            # Wong–Zakai section: η_n has z's shape). Static shapes, so this also holds under torch.func.vmap.
            raise ValueError(f"the Wong–Zakai noise path has shape {tuple(xi.shape)}, the state {tuple(z.shape)}: "
                             "draw the path with noise.resample(y0.shape, generator)")
        return f + g * xi


class StratonovichSDE(ForwardsCallbacks):
    """torchsde's view of a drift–diffusion field: dZ = f dt + g ∘ dW, diagonal noise, Stratonovich.

    ``f_and_g`` makes one field call (what reversible Heun and its adjoint use); ``f`` and ``g`` also make
    one call each. The field is a registered submodule, so ``parameters()`` are its parameters. The step
    callbacks are forwarded to the field, so a counting wrapper inside hears the steps that a
    :class:`StepReportingBrownian` reports.

    The field may be a plain function ``(t, z) -> (f, g)``: as for :class:`WongZakaiField`, a method's solve hands
    it to torchsde as no module, so ``sde_adjoint`` needs the parameters (``params``); torchsde's
    ``sdeint_adjoint`` called directly needs ``adjoint_params``.
    """

    noise_type = "diagonal"
    sde_type = "stratonovich"

    def __init__(self, field: nn.Module | Callable):
        super().__init__()
        self.field = field

    def f_and_g(self, t, y):
        return self.field(t, y)

    def f(self, t, y):
        return self.field(t, y)[0]

    def g(self, t, y):
        return self.field(t, y)[1]

    def forward(self, t, y):
        return self.f_and_g(t, y)


class StepReportingBrownian:
    """A torchsde Brownian motion ``bm`` that reports every increment W(tb) − W(ta) it is asked for as a
    solver step, ``callback_step(ta, None, tb − ta)`` (torchdiffeq's signature; the state is unknown here).

    torchsde calls no step callbacks, but each step of its fixed-step solvers draws exactly one increment
    over the step (reversible Heun and its adjoint included, the adjoint through torchsde's
    ``ReverseBrownian`` around this object), so the reports count the steps of the forward solve and of the
    adjoint's backward solve. A point value W(ta) (``tb`` is ``None``) is no step. ``shape``, ``dtype``,
    ``device`` and ``levy_area_approximation`` are ``bm``'s.
    """

    def __init__(self, bm, callback_step):
        self.bm, self.callback_step = bm, callback_step

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        if tb is not None:
            self.callback_step(ta, None, tb - ta)
        return self.bm(ta, tb, return_U=return_U, return_A=return_A)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bm={self.bm!r})"

    def size(self):
        return self.bm.shape

    shape = property(lambda self: self.bm.shape)
    dtype = property(lambda self: self.bm.dtype)
    device = property(lambda self: self.bm.device)
    levy_area_approximation = property(lambda self: self.bm.levy_area_approximation)


# --------------------------------------------------------------------------------------------------
# Sample-based metrics: a Gaussian fitted to sample paths at each time.

def fit_gaussian(samples: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over ``dim`` (unbiased variance), the std as √(var + eps²) so that a
    point mass gives a finite std and a finite gradient (the official code adds 1e-9 to the std instead,
    whose square root has an infinite derivative at zero variance)."""
    mean = samples.mean(dim=dim)
    var = samples.var(dim=dim)
    return mean, torch.sqrt(var + eps ** 2)


def gaussian_kl(mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor,
                std_q: torch.Tensor) -> torch.Tensor:
    """KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) = log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½, elementwise."""
    return torch.log(std_q / std_p) + (std_p ** 2 + (mean_p - mean_q) ** 2) / (2 * std_q ** 2) - 0.5


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(x; μ, σ²), elementwise with broadcasting."""
    return -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)


__all__ = ["DriftDiffusion", "KarhunenLoeveNoise", "StepReportingBrownian", "StratonovichSDE", "WongZakaiField",
           "fit_gaussian", "gaussian_kl", "gaussian_log_prob", "kl_brownian_variance"]
