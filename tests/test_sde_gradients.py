"""SDE gradients against closed forms and an independent implementation of the discrete scheme.

- Wong–Zakai (ODE methods on a fixed Karhunen–Loève path): for dX = a⊙X dt + b X∘dW the random ODE
  x' = (a + b ξ(t)) x has the pathwise closed form x(t) = x0 exp(a (t − t0) + b W_K(t)), W_K = ∫_{t0}^t ξ,
  so every ODE method's gradient is checked against autograd through it (before, only method against
  method at rtol 1e-4 in tests/test_sde.py).
- torchsde methods (sde_direct, sde_adjoint): reversible Heun is re-implemented here in plain torch from its
  update rule (Kidger et al. 2021; torchsde's ``ReversibleHeun.step``) and driven by the same Brownian
  increments, so backprop through the re-implementation is the exact derivative of the discrete solution;
  and on the linear SDE the gradients converge to those of the Stratonovich closed form
  X_t = X_0 exp(a (t − t0) + b (W_t − W_t0)) (before, sde_adjoint was compared with sde_direct only).
- Both with a field that is a plain function rather than a module, and the adjoints' refusal of one without
  the parameters (before, torchdiffeq's callback lookup raised KeyError 'field').
"""

from __future__ import annotations

import pytest
import torch
import torchsde
from torch import nn
from torchdiffeq import odeint

from nodebench.harness.nfe import CallCounter
from nodebench.methods import get_method
from nodebench.sde import (
    DriftDiffusion,
    KarhunenLoeveNoise,
    StratonovichSDE,
    WongZakaiField,
)

F64 = torch.float64


class Scale(nn.Module):
    """p ⊙ z for a parameter p of any shape broadcasting against z."""

    def __init__(self, value):
        super().__init__()
        self.p = nn.Parameter(torch.as_tensor(value, dtype=F64))

    def forward(self, t, z):
        return self.p * z


# --- Wong–Zakai ---------------------------------------------------------------------------------------------
T_WZ = torch.tensor([0.5, 0.9, 1.6, 2.0], dtype=F64)  # t0 ≠ 0 and c = t1 − t0 = 1.5 ≠ 1
X0 = torch.tensor([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]], dtype=F64)
WZ_WEIGHTS = [0.0, 1.0, -0.4, 0.8]


def plain(module: nn.Module):
    """The field as a plain function closing over the module's parameters, as torchdiffeq and torchsde accept."""
    return lambda t, z: module(t, z)


def wong_zakai_gradients(solve, noise, plain_function=False):
    """(dL/dx0, dL/da, dL/db) for L = Σ_i w_i Σ x(t_i)² (+ Σ x(t_end)), a (2,) drift rates, b a scalar; in the
    noise's dtype. ``solve(field, x0, t, params)``; the field a plain function if ``plain_function``."""
    module = DriftDiffusion(Scale([-0.4, 0.3]), Scale(0.7)).to(noise.dtype)
    params = [module.drift.p, module.diffusion.p]
    x0 = X0.to(noise.dtype).requires_grad_(True)
    xs = solve(WongZakaiField(plain(module) if plain_function else module, noise), x0, T_WZ.to(noise.dtype), params)
    loss = sum(w * (x ** 2).sum() for w, x in zip(WZ_WEIGHTS, xs, strict=True)) + xs[-1].sum()
    return torch.autograd.grad(loss, [x0, *params])


def pathwise_closed_form(field, x0, t, params):
    a, b = params
    w = torch.stack([field.noise.integral(s) for s in t])  # W_K(t), (T, *x0.shape)
    return x0 * torch.exp(a * (t - t[0]).reshape(-1, 1, 1) + b * w)


@pytest.mark.parametrize("plain_function", [False, True], ids=["module", "plain-function"])
@pytest.mark.parametrize("name", ["direct", "adjoint", "seminorm", "gq", "gq_batched"])
def test_wong_zakai_gradients_match_the_pathwise_closed_form(name, plain_function):
    noise = KarhunenLoeveNoise(0.5, 2.0, ncosines=6, dtype=F64).resample(X0.shape, torch.Generator().manual_seed(3))
    want = wong_zakai_gradients(pathwise_closed_form, noise)
    got = wong_zakai_gradients(
        lambda f, y0, t, params: get_method(name).make_solve(params, rtol=1e-10, atol=1e-12)(f, y0, t), noise,
        plain_function)
    for label, g, w in zip(("x0", "a", "b"), got, want, strict=True):
        scale = float(w.abs().max())
        assert scale > 1e-1, label
        error = float((g - w).abs().max()) / scale
        assert error < 2e-8, f"{name} d/d{label}: relative error {error:.2e}"  # measured ≤ 3.9e-9


@pytest.mark.parametrize("name", ["direct", "adjoint", "gq", "gq_batched"])
def test_float32_wong_zakai_gradients_match_the_float64_pathwise_closed_form(name):
    """The training dtype: a float32 path, field and state at rtol 1e-6, against the closed form in float64 on the
    same η_n."""
    noise = KarhunenLoeveNoise(0.5, 2.0, ncosines=6).resample(X0.shape, torch.Generator().manual_seed(3))
    exact_noise = KarhunenLoeveNoise(0.5, 2.0, ncosines=6, dtype=F64)
    exact_noise.eta = noise.eta.double()
    want = wong_zakai_gradients(pathwise_closed_form, exact_noise)
    options = dict(rtol=1e-6, atol=1e-7, **({"gtol": 0.5} if name.startswith("gq") else {}))
    got = wong_zakai_gradients(lambda f, y0, t, params: get_method(name).make_solve(params, **options)(f, y0, t), noise)
    for label, g, w in zip(("x0", "a", "b"), got, want, strict=True):  # measured ≤ 2.3e-5 (gq's d/dx0)
        assert g.dtype == torch.float32, label
        error = float((g.double() - w).abs().max()) / float(w.abs().max())
        assert error < 1e-4, f"{name} d/d{label}: relative error {error:.2e}"


# --- torchsde: reversible Heun ------------------------------------------------------------------------------
T_SDE = torch.tensor([0.25, 0.5, 0.75, 1.0, 1.25], dtype=F64)  # every output time on the dt grid (exact sums)
ENTROPY = 123


def increments(dt: float, shape) -> list[torch.Tensor]:
    """The Brownian increments over the dt grid of T_SDE, queried in solver order from a BrownianInterval built
    as :class:`nodebench.methods.SDEBackprop` builds it (same span, size, dtype, entropy and dt)."""
    bm = torchsde.BrownianInterval(t0=float(T_SDE[0]), t1=float(T_SDE[-1]), size=shape, dtype=F64, entropy=ENTROPY,
                                   dt=dt)
    n = round(float(T_SDE[-1] - T_SDE[0]) / dt)
    grid = [float(T_SDE[0]) + i * dt for i in range(n + 1)]
    return [bm(grid[i], grid[i + 1]) for i in range(n)]


def reversible_heun(field, y0, dt: float, dws) -> torch.Tensor:
    """Reversible Heun (Kidger et al. 2021, arXiv 2105.13493): with z0 = y0,
    z_{n+1} = 2 y_n − z_n + f(t_n, z_n) h + g(t_n, z_n) ΔW_n,
    y_{n+1} = y_n + (f(t_n, z_n) + f(t_{n+1}, z_{n+1})) h/2 + (g(t_n, z_n) + g(t_{n+1}, z_{n+1})) ΔW_n/2;
    returns y at the times of T_SDE."""
    t0 = float(T_SDE[0])
    per_output = round(float(T_SDE[1] - T_SDE[0]) / dt)
    y, z = y0, y0
    f, g = field(torch.tensor(t0, dtype=F64), y0)
    out = [y0]
    for n, dw in enumerate(dws):
        t1 = torch.tensor(t0 + (n + 1) * dt, dtype=F64)
        z_next = 2 * y - z + f * dt + g * dw
        f_next, g_next = field(t1, z_next)
        y = y + (f + f_next) * (0.5 * dt) + (g + g_next) * (0.5 * dw)
        z, f, g = z_next, f_next, g_next
        if (n + 1) % per_output == 0:
            out.append(y)
    return torch.stack(out)


class Drift(nn.Module):
    """−θ ⊙ z + μ sin(2t): time-dependent, a vector and a scalar parameter."""

    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.8, 0.3], dtype=F64))
        self.mu = nn.Parameter(torch.tensor(0.5, dtype=F64))

    def forward(self, t, z):
        return -self.theta * z + self.mu * torch.sin(2 * t)


class Diffusion(nn.Module):
    """σ ⊙ (1 + 0.3 tanh(z)) + s·t: state- and time-dependent (multiplicative, so Itô ≠ Stratonovich)."""

    def __init__(self):
        super().__init__()
        self.sigma = nn.Parameter(torch.tensor([0.6, 0.4], dtype=F64))
        self.s = nn.Parameter(torch.tensor(0.2, dtype=F64))

    def forward(self, t, z):
        return self.sigma * (1 + 0.3 * torch.tanh(z)) + self.s * t


def sde_loss(xs):
    return sum((k + 1) * (x ** 2).sum() for k, x in enumerate(xs[1:])) + xs[-1].sum()


def sde_gradients(name, field, dt, reference=False, plain_function=False):
    params = list(field.parameters())
    x0 = X0.clone().requires_grad_(True)
    if reference:
        xs = reversible_heun(field, x0, dt, increments(dt, X0.shape))
    else:
        sde = StratonovichSDE(plain(field) if plain_function else field)
        xs = get_method(name).make_solve(params, step_size=dt)(sde, x0, T_SDE, entropy=ENTROPY)
    return xs.detach(), torch.autograd.grad(sde_loss(xs), [x0, *params])


@pytest.mark.parametrize("plain_function", [False, True], ids=["module", "plain-function"])
@pytest.mark.parametrize("name", ["sde_direct", "sde_adjoint"])
def test_sde_methods_give_the_exact_gradient_of_the_discrete_reversible_heun_solution(name, plain_function):
    dt = 1 / 32
    field = DriftDiffusion(Drift(), Diffusion())
    want_xs, want = sde_gradients(name, field, dt, reference=True)
    got_xs, got = sde_gradients(name, field, dt, plain_function=plain_function)
    torch.testing.assert_close(got_xs, want_xs, rtol=1e-13, atol=1e-13)  # the same path and the same scheme
    for g, w in zip(got, want, strict=True):
        assert float(w.abs().max()) > 1e-2
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sde_direct", "sde_adjoint"])
def test_sde_method_gradients_converge_to_the_stratonovich_closed_form(name):
    """dX = aX dt + bX∘dW: X_t = X_0 exp(a (t − t0) + b (W_t − W_t0)) on the same Brownian path. One path, so
    the errors are pathwise (strong): measured relative gradient errors 1.6e-2 at dt = 2⁻⁶ and 4.3e-4 at 2⁻¹⁰."""
    errors = []
    for dt in (2 ** -6, 2 ** -10):
        field = DriftDiffusion(Scale(-0.4), Scale(0.6))
        _, got = sde_gradients(name, field, dt)
        w = torch.cumsum(torch.stack([torch.zeros_like(X0)] + increments(dt, X0.shape)), 0)[::round(0.25 / dt)]
        a = torch.tensor(-0.4, dtype=F64, requires_grad=True)
        b = torch.tensor(0.6, dtype=F64, requires_grad=True)
        x0 = X0.clone().requires_grad_(True)
        exact = x0 * torch.exp(a * (T_SDE - T_SDE[0]).reshape(-1, 1, 1) + b * w)
        want = torch.autograd.grad(sde_loss(exact), [x0, a, b])
        errors.append(max(float((g - v).abs().max() / v.abs().max()) for g, v in zip(got, want, strict=True)))
    assert errors[1] < 2e-3 and errors[1] < errors[0] / 8, errors


@pytest.mark.parametrize("name", ["adjoint", "seminorm", "gq", "gq_batched", "sde_adjoint"])
def test_plain_function_field_without_params_is_refused_by_an_adjoint(name):
    """An adjoint cannot find a plain function's parameters: without them it must ask (a ValueError naming
    adjoint_params, as for the function itself), not take the wrapper module's parameters(), which are none, and
    return no parameter gradient."""
    module = DriftDiffusion(Scale(-0.4), Scale(0.6))
    x0 = X0.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="adjoint_params"):
        if get_method(name).sde:
            get_method(name).make_solve(step_size=0.25)(StratonovichSDE(plain(module)), x0, T_SDE, entropy=ENTROPY)
        else:
            noise = KarhunenLoeveNoise(0.5, 2.0, ncosines=6, dtype=F64).resample(X0.shape)
            get_method(name).make_solve()(WongZakaiField(plain(module), noise), x0, T_WZ)


def test_drift_diffusion_refuses_plain_functions():
    """Their parameters would not be the module's: an adjoint without adjoint_params would miss them."""
    with pytest.raises(TypeError, match="takes modules, got function as diffusion"):
        DriftDiffusion(Scale(-0.4), plain(Scale(0.6)))


def test_a_plain_callable_field_with_callbacks_still_hears_the_steps():
    """A plain callable that listens to torchdiffeq's steps (the harness's CallCounter) inside the Wong–Zakai
    field hears every step, as inside a module."""
    noise = KarhunenLoeveNoise(0.5, 2.0, ncosines=6, dtype=F64).resample(X0.shape, torch.Generator().manual_seed(3))
    counter = CallCounter(DriftDiffusion(Scale(-0.4), Scale(0.6)))
    odeint(WongZakaiField(counter, noise), X0, T_WZ, method="rk4", options={"step_size": 0.1})
    assert counter.steps == 15 and counter.nfe == 4 * 15
