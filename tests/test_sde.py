"""Tests for nodebench.sde (Karhunen–Loève noise, Wong–Zakai field, torchsde view) and the ou_sde task."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torchsde
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from nodebench.errors import UserError
from nodebench.harness import count_nfe
from nodebench.methods import get_method
from nodebench.sde import (
    DriftDiffusion,
    KarhunenLoeveNoise,
    StepReportingBrownian,
    StratonovichSDE,
    WongZakaiField,
    fit_gaussian,
    gaussian_kl,
    gaussian_log_prob,
    kl_brownian_variance,
)
from nodebench.tasks import get_task
from nodebench.papers.gq_adjoint.ou import ou_moments, sample_kl
from nodebench.training import train

CPU = torch.device("cpu")
SMALL = {"n_train": 4, "n_test": 2, "paths": 6, "batch_size": 2, "n_times": 11, "t_end": 2.0, "eval_dt": 0.05}


class Linear(nn.Module):
    """a·z (+ b·t·0, so the module depends on t like a real field)."""

    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))

    def forward(self, t, z):
        return self.a * z


class Constant(nn.Module):
    def __init__(self, b: float):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))

    def forward(self, t, z):
        return self.b * torch.ones_like(z)


def linear_sde(a: float, b: float, multiplicative: bool) -> DriftDiffusion:
    """dX = aX dt + b∘dW (additive) or dX = aX dt + bX∘dW (multiplicative)."""
    return DriftDiffusion(Linear(a), Linear(b) if multiplicative else Constant(b))


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# Karhunen–Loève noise


def test_noise_matches_closed_form_cosine_series():
    t0, t1, k = 0.5, 2.5, 7
    noise = KarhunenLoeveNoise(t0, t1, k, dtype=torch.float64).resample((3, 2), generator(1))
    eta = noise.eta.numpy()
    assert eta.shape == (k, 3, 2)
    c = t1 - t0
    for t in (0.5, 0.9, 1.7, 2.5):
        s = (t - t0) / c
        expected = math.sqrt(2 / c) * sum(eta[n - 1] * math.cos((n - 0.5) * math.pi * s) for n in range(1, k + 1))
        np.testing.assert_allclose(noise(torch.tensor(t, dtype=torch.float64)).numpy(), expected, rtol=1e-12,
                                   atol=1e-12)
    # the integral W_K is the antiderivative of ξ, starting at 0
    ts = torch.linspace(t0, 1.9, 4001, dtype=torch.float64)
    xi = torch.stack([noise(t) for t in ts])
    trapezoid = torch.trapezoid(xi, ts, dim=0)
    np.testing.assert_allclose(noise.integral(ts[-1]).numpy(), trapezoid.numpy(), atol=1e-5)
    assert torch.equal(noise.integral(torch.tensor(t0, dtype=torch.float64)), torch.zeros(3, 2, dtype=torch.float64))


def test_noise_path_fixed_between_resamples_and_global_rng_untouched():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    gen = generator(7)
    noise = KarhunenLoeveNoise(0.0, 1.0, 10).resample((5, 1), gen)
    t = torch.tensor(0.3)
    first, again = noise(t), noise(t)
    assert torch.equal(first, again)  # same path for every evaluation within a solve
    # a whole Wong–Zakai solve (forward and adjoint backward) evaluates the path many times
    field = WongZakaiField(linear_sde(-0.3, 0.5, multiplicative=True).float(), noise)
    ys = odeint_adjoint(field, torch.ones(5, 1), torch.linspace(0, 1, 5), rtol=1e-5, atol=1e-5)
    ys.sum().backward()
    assert torch.equal(noise(t), first)
    noise.resample((5, 1), gen)
    assert not torch.allclose(noise(t), first)  # a new path after resampling
    assert torch.equal(torch.get_rng_state(), before)  # the official code reseeds the global RNG; we don't
    # the same local seed reproduces the path
    assert torch.equal(KarhunenLoeveNoise(0.0, 1.0, 10).resample((5, 1), generator(7))(t), first)
    with pytest.raises(RuntimeError, match="resample"):
        KarhunenLoeveNoise(0.0, 1.0)(t)


def test_noise_and_wong_zakai_field_run_under_vmap():
    noise = KarhunenLoeveNoise(0.0, 2.0, 6, dtype=torch.float64).resample((4, 1), generator(3))
    ts = torch.tensor([0.1, 0.7, 1.9], dtype=torch.float64)
    np.testing.assert_allclose(torch.func.vmap(noise)(ts).numpy(), torch.stack([noise(t) for t in ts]).numpy(),
                               rtol=1e-12)
    field = WongZakaiField(count_nfe(linear_sde(-0.2, 0.4, multiplicative=True)), noise)
    zs = torch.randn(3, 4, 1, dtype=torch.float64, generator=generator(4))
    with torch.no_grad():
        batched = torch.func.vmap(field)(ts, zs)
        looped = torch.stack([field(t, z) for t, z in zip(ts, zs)])
    np.testing.assert_allclose(batched.numpy(), looped.numpy(), rtol=1e-12)


def test_truncated_kl_brownian_variance():
    t0, t1, k = 0.0, 2.0, 5
    n = 40_000
    noise = KarhunenLoeveNoise(t0, t1, k, dtype=torch.float64).resample((n,), generator(5))
    for t in (0.3, 1.2, 2.0):
        var = float(noise.integral(torch.tensor(t, dtype=torch.float64)).var())
        exact = kl_brownian_variance(t, t0, t1, k)
        assert var == pytest.approx(exact, rel=0.04)  # sampling error of a variance: sqrt(2/n) = 0.7 %
    # the truncated variance approaches Brownian motion's, t − t0, as K grows, and is below it
    assert kl_brownian_variance(1.2, t0, t1, 5) < 1.2
    assert kl_brownian_variance(1.2, t0, t1, 2000) == pytest.approx(1.2, abs=1e-3)
    assert kl_brownian_variance(1.2, t0, t1, 0) == 0.0


def test_kl_path_mirrors_past_its_interval():
    """What KarhunenLoeveNoise's docstring warns of: past t1 the path is W_K(t1 + u) = W_K(t1 − u), back to 0
    at t1 + c, not Brownian motion (so the noise must be built on the solve's own span)."""
    t0, t1 = 0.5, 2.5
    noise = KarhunenLoeveNoise(t0, t1, 7, dtype=torch.float64).resample((4,), generator(3))
    path = lambda t: noise.integral(torch.tensor(t, dtype=torch.float64))  # noqa: E731
    for u in (0.2, 1.1):
        torch.testing.assert_close(path(t1 + u), path(t1 - u), rtol=0, atol=1e-12)
    torch.testing.assert_close(path(t1 + (t1 - t0)), torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)
    assert path(t1).abs().min() > 1e-3  # a real path, not zero everywhere


# ------------------------------------------------------------------------------------------------
# Wong–Zakai ODE ≈ Stratonovich SDE


@pytest.mark.parametrize("multiplicative", [False, True])
def test_wong_zakai_linear_sde_moments(multiplicative):
    a, b, horizon, paths, k = -0.5, 0.8, 1.0, 4000, 12
    t = torch.tensor([0.0, horizon], dtype=torch.float64)
    y0 = torch.ones(paths, 1, dtype=torch.float64)
    noise = KarhunenLoeveNoise(0.0, horizon, k, dtype=torch.float64).resample(y0.shape, generator(11))
    field = WongZakaiField(linear_sde(a, b, multiplicative), noise)
    with torch.no_grad():
        x = odeint(field, y0, t, rtol=1e-5, atol=1e-5)[-1, :, 0]
    var_k = kl_brownian_variance(horizon, 0.0, horizon, k)
    if multiplicative:
        # Stratonovich: X_T = exp(aT + b W_K(T)), so E X_T = exp(aT + b² Var W_K(T) / 2); Itô would give exp(aT)
        expected_mean = math.exp(a * horizon + b * b * var_k / 2)
        assert abs(expected_mean - math.exp(a * horizon)) > 0.2
        tol = 0.05
    else:
        # additive noise: Stratonovich = Itô, E X_T = exp(aT), Var X_T = b² (e^{2aT} − 1)/(2a)
        expected_mean = math.exp(a * horizon)
        assert float(x.var()) == pytest.approx(b * b * (math.exp(2 * a * horizon) - 1) / (2 * a), rel=0.1)
        tol = 0.03
    assert float(x.mean()) == pytest.approx(expected_mean, abs=tol)
    # the torchsde view of the same field simulates the same Stratonovich law
    sde = StratonovichSDE(linear_sde(a, b, multiplicative))
    bm = torchsde.BrownianInterval(0.0, horizon, size=y0.shape, dtype=torch.float64, entropy=5, dt=0.01)
    with torch.no_grad():
        x_sde = torchsde.sdeint(sde, y0, t, bm=bm, method="reversible_heun", dt=0.01)[-1, :, 0]
    exact = math.exp((a + (b * b / 2 if multiplicative else 0.0)) * horizon)
    assert float(x_sde.mean()) == pytest.approx(exact, abs=tol)


def test_stratonovich_sde_interface():
    field = count_nfe(linear_sde(-0.5, 0.3, multiplicative=False))
    sde = StratonovichSDE(field)
    assert (sde.noise_type, sde.sde_type) == ("diagonal", "stratonovich")
    z = torch.ones(3, 1, dtype=torch.float64)
    f, g = sde.f_and_g(torch.tensor(0.0), z)
    assert field.nfe["forward"] == 1  # one field call for drift and diffusion
    assert torch.equal(sde.f(0.0, z), f) and torch.equal(sde.g(0.0, z), g)
    assert {id(p) for p in sde.parameters()} == {id(p) for p in field.parameters()}


def test_wong_zakai_field_forwards_callbacks_and_parameters():
    counter = count_nfe(linear_sde(-0.5, 0.3, multiplicative=True))
    noise = KarhunenLoeveNoise(0.0, 1.0, 5, dtype=torch.float64).resample((4, 1), generator(2))
    field = WongZakaiField(counter, noise)
    assert {id(p) for p in field.parameters()} == {id(p) for p in counter.parameters()}
    assert len(list(field.parameters())) == 2
    y0 = torch.ones(4, 1, dtype=torch.float64)
    ys = odeint_adjoint(field, y0, torch.linspace(0, 1, 4, dtype=torch.float64), rtol=1e-6, atol=1e-6)
    assert counter.steps["forward"] > 0 and counter.accepted["forward"] > 0
    assert counter.nfe["forward"] > counter.steps["forward"]
    counter.phase = "backward"
    ys.sum().backward()
    assert counter.steps["backward"] > 0 and counter.accepted["backward"] > 0
    # a field without callbacks: none are invented (torchdiffeq then uses its no-op callbacks)
    bare = WongZakaiField(linear_sde(-0.5, 0.3, multiplicative=True), noise)
    assert not hasattr(bare, "callback_step") and not hasattr(bare, "callback_accept_step_adjoint")
    with pytest.raises(AttributeError):
        bare.not_an_attribute  # noqa: B018
    odeint(bare, y0, torch.linspace(0, 1, 3, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------
# Gaussian metrics


def test_gaussian_kl_and_log_prob():
    m, s = torch.tensor([0.3, -1.0]), torch.tensor([0.5, 2.0])
    assert torch.allclose(gaussian_kl(m, s, m, s), torch.zeros(2), atol=1e-7)
    mp, sp, mq, sq = 0.2, 0.7, -0.4, 1.3
    closed = math.log(sq / sp) + (sp ** 2 + (mp - mq) ** 2) / (2 * sq ** 2) - 0.5
    got = gaussian_kl(*(torch.tensor(v, dtype=torch.float64) for v in (mp, sp, mq, sq)))
    assert float(got) == pytest.approx(closed, rel=1e-12)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mp, sp), torch.distributions.Normal(mq, sq))
    assert float(got) == pytest.approx(float(ref), rel=1e-6)
    assert float(gaussian_kl(*(torch.tensor(v) for v in (mq, sq, mp, sp)))) != pytest.approx(closed, rel=1e-3)
    x = torch.tensor([0.1, 2.0])
    np.testing.assert_allclose(gaussian_log_prob(x, m, s).numpy(), torch.distributions.Normal(m, s).log_prob(x).numpy(),
                               rtol=1e-6)
    # fitted Gaussians: unbiased std over the chosen axis, a point mass gets a finite, tiny std
    samples = torch.tensor([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]], dtype=torch.float64)
    mean, std = fit_gaussian(samples, dim=1)
    np.testing.assert_allclose(mean.numpy(), [2.0, 4.0])
    np.testing.assert_allclose(std.numpy(), [1.0, 1e-6], rtol=1e-9)


def test_sample_kl_direction_and_initial_time():
    g = generator(9)
    true = torch.randn(3, 50, 6, generator=g, dtype=torch.float64)
    pred = 2.0 * torch.randn(3, 50, 6, generator=g, dtype=torch.float64) + 0.5
    true[..., 0] = pred[..., 0] = 1.0  # point masses at the initial time: left out, so no 0/0
    mt, st = fit_gaussian(true[..., 1:], dim=1)
    mp, sp = fit_gaussian(pred[..., 1:], dim=1)
    assert float(sample_kl(pred, true)) == pytest.approx(float(gaussian_kl(mp, sp, mt, st).mean()), rel=1e-12)
    assert float(sample_kl(pred, true, "true||pred")) == pytest.approx(float(gaussian_kl(mt, st, mp, sp).mean()))
    assert float(sample_kl(true, true)) == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------------------------
# The ou_sde task


def test_ou_task_registry_and_sde_methods_need_sde_tasks():
    task = get_task("ou_sde")
    assert task.dynamics == "sde" and task.paper == "gq_adjoint"
    assert task.metrics[0] == "test_kl"
    assert get_task("cubic_spiral").dynamics == "ode"
    for name in ("sde_direct", "sde_adjoint"):
        with pytest.raises(UserError, match="SDE"):
            get_method(name).check_task(get_task("cubic_spiral"))
        get_method(name).check_task(task)
    get_method("gq").check_task(task)  # ODE methods train the Wong–Zakai ODE
    with pytest.raises(UserError, match="kl_direction"):
        task.hparams({"kl_direction": "sideways"})
    with pytest.raises(UserError, match="ncosines"):
        task.hparams({"ncosines": -1})


def test_ou_data_follow_the_exact_law_and_the_seed():
    hp = {"n_train": 30, "n_test": 2, "paths": 40, "n_times": 11}
    problem = get_task("ou_sde").build(seed=3, device=CPU, hparams=hp)
    y = problem.y_train.double()
    assert y.shape == (30, 40, 11) and problem.y_train.dtype == torch.float32
    assert torch.equal(y[..., 0], problem.x0_train.double()[:, None].expand(30, 40))
    assert float(problem.x0_train.min()) >= -3 and float(problem.x0_train.max()) <= 3
    mean, var = ou_moments(problem.x0_train, problem.t)
    z = (y[..., 1:].mean(1) - mean[:, 1:]) / (var[:, 1:] / 40).sqrt()
    assert abs(float(z.mean())) < 0.3 and 0.7 < float(z.std()) < 1.3
    assert float((y[..., 1:].var(1) / var[:, 1:]).mean()) == pytest.approx(1.0, abs=0.1)
    same = get_task("ou_sde").build(seed=3, device=CPU, hparams=hp)
    other = get_task("ou_sde").build(seed=4, device=CPU, hparams=hp)
    assert torch.equal(same.y_train, problem.y_train) and torch.equal(same.y_test, problem.y_test)
    assert not torch.allclose(other.y_train, problem.y_train)


def test_wong_zakai_gradients_agree_across_ode_methods():
    """The noise path is fixed within a solve, so adjoint and GQ gradients equal backprop's."""
    grads = {}
    for name in ("direct", "adjoint", "gq"):  # a fresh build each: the same data, weights, batch and noise path
        problem = get_task("ou_sde").build(seed=0, device=CPU, hparams={**SMALL, "dtype": "float64"})
        params = list(problem.model.parameters())
        solve = get_method(name).make_solve(params, rtol=1e-9, atol=1e-9)
        problem.model.zero_grad()
        problem.loss(solve).backward()
        grads[name] = torch.cat([p.grad.reshape(-1) for p in params])
    assert grads["direct"].abs().max() > 0
    for name in ("adjoint", "gq"):
        np.testing.assert_allclose(grads[name].numpy(), grads["direct"].numpy(), rtol=1e-4, atol=1e-7)


def test_sde_adjoint_gradients_equal_backprop():
    """Reversible Heun's adjoint is algebraically exact: same Brownian path (entropy), same gradients.

    Exact only when torchsde's accumulated step times (curr_t += dt, in the dtype of ``t``) are exact in
    floating point and land on the output times (here dt = 1/16, outputs every 1/4). Otherwise round-off
    shifts the forward step grid against the output times, the backward pass (restarted at every output
    time) does not retrace it, and the gradients differ: measured 5.5e-4 relative (norm) with the task's
    defaults in float32 (dt = 0.01, outputs every 0.1), 3e-7 in float64."""
    grads, losses = {}, {}
    for name in ("sde_direct", "sde_adjoint"):  # a fresh build each: the same data, weights, batch and entropy
        problem = get_task("ou_sde").build(seed=1, device=CPU, hparams={**SMALL, "n_times": 9, "dtype": "float64"})
        params = list(problem.model.parameters())
        problem.model.zero_grad()
        loss = problem.loss(get_method(name).make_solve(params, step_size=0.0625))
        loss.backward()
        losses[name] = float(loss.detach())
        grads[name] = torch.cat([p.grad.reshape(-1) for p in params])
    assert losses["sde_direct"] == losses["sde_adjoint"]
    assert grads["sde_direct"].abs().max() > 0
    np.testing.assert_allclose(grads["sde_adjoint"].numpy(), grads["sde_direct"].numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["gq", "gq_batched", "sde_direct", "sde_adjoint"])
def test_ou_trains_with_each_method(method):
    problem = get_task("ou_sde").build(seed=0, device=CPU, hparams=SMALL)
    m = get_method(method)
    options = {"step_size": 0.05} if m.sde else {"rtol": 1e-3, "atol": 1e-3}
    result = train(problem, m, device=CPU, iters=2, solver_options=options)
    assert set(result.metrics) == {"test_kl", "test_logprob"}
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert result.metrics["test_kl"] >= 0
    c = result.curves
    assert all(math.isfinite(v) for v in c["loss"]) and all(n > 0 for n in c["nfe_forward"])
    assert all(n > 0 for n in c["nfe_backward"]) == (m.family == "OD")
    if not m.sde:  # torchdiffeq's step callbacks reach the counter through the Wong–Zakai wrapper
        assert all(s > 0 for s in c["steps_forward"]) and all(s > 0 for s in c["steps_backward"])


def test_step_reporting_brownian_reports_each_increment_and_changes_no_path():
    y0 = torch.ones(3, 1, dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    sde = StratonovichSDE(count_nfe(linear_sde(-0.5, 0.3, multiplicative=True), adaptive=False))

    def brownian():
        return torchsde.BrownianInterval(0.0, 1.0, size=y0.shape, dtype=torch.float64, entropy=3, dt=0.125)

    bm = StepReportingBrownian(brownian(), sde.callback_step)
    assert (bm.shape, bm.dtype, bm.levy_area_approximation) == (y0.shape, torch.float64, "none")
    ys = torchsde.sdeint(sde, y0, t, bm=bm, method="reversible_heun", dt=0.125)
    assert sde.field.steps["forward"] == 8  # 1 / 0.125 steps, one increment each
    assert torch.equal(ys, torchsde.sdeint(sde, y0, t, bm=brownian(), method="reversible_heun", dt=0.125))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchsde: point values are slower than increments
        bm(torch.tensor(0.5))  # a point value W(t) is no step
    assert sde.field.steps["forward"] == 8


@pytest.mark.parametrize("method", ["sde_direct", "sde_adjoint"])
def test_sde_methods_record_the_solver_steps(method, monkeypatch):
    """Steps per phase against an independent count: calls of torchsde's reversible Heun step (the forward
    solve) and of its adjoint's step (the backward solve) during each training iteration."""
    from torchsde._core.methods import reversible_heun

    calls = {"forward": 0, "backward": 0}
    for solver, phase in ((reversible_heun.ReversibleHeun, "forward"),
                          (reversible_heun.AdjointReversibleHeun, "backward")):
        def step(self, *args, _step=solver.step, _phase=phase, **kwargs):
            calls[_phase] += 1
            return _step(self, *args, **kwargs)
        monkeypatch.setattr(solver, "step", step)
    per_iteration = []
    problem = get_task("ou_sde").build(seed=0, device=CPU, hparams=SMALL)
    result = train(problem, get_method(method), device=CPU, iters=2, solver_options={"step_size": 0.05},
                   before_step=lambda: calls.update(forward=0, backward=0),
                   on_iteration=lambda iteration, loss: per_iteration.append(dict(calls)))
    c = result.curves
    assert all(n["forward"] > 0 for n in per_iteration)
    assert all((n["backward"] > 0) == (method == "sde_adjoint") for n in per_iteration)
    assert c["steps_forward"] == [n["forward"] for n in per_iteration]
    assert c["steps_backward"] == [n["backward"] for n in per_iteration]
    # a fixed-step solver accepts every step it makes
    assert c["accepted_forward"] == c["steps_forward"] and c["accepted_backward"] == c["steps_backward"]


def test_karhunen_loeve_noise_refuses_an_infinite_span_and_an_integer_dtype():
    """Accepted before: c = inf made every ξ(t) NaN or 0; an integer dtype failed only at resample, in the RNG."""
    from nodebench.sde import KarhunenLoeveNoise

    with pytest.raises(ValueError, match="need finite t1 > t0, got t0=0.0, t1=inf"):
        KarhunenLoeveNoise(0.0, math.inf)
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype, got torch.int64"):
        KarhunenLoeveNoise(0.0, 1.0, dtype=torch.long)


# ------------------------------------------------------------------------------------------------
# Audit of the Wong–Zakai side (each test failed before its fix)


def test_ou_task_accepts_zero_cosines_the_official_ablation():
    """ncosines = 0 (ξ ≡ 0: the deterministic ODE) is in the official OU ablation {0, 1, 5, 10, 25, 50} and
    allowed by the task's own check and KarhunenLoeveNoise, but the typed default (10) refused it (≥ 1)."""
    task = get_task("ou_sde")
    assert task.hparams({"ncosines": 0})["ncosines"] == 0
    with pytest.raises(UserError, match="ncosines must be an integer >= 0, got -1"):
        task.hparams({"ncosines": -1})
    problem = task.build(seed=0, device=CPU, hparams={**SMALL, "ncosines": 0})
    pred = problem.simulate_train(get_method("gq").make_solve(list(problem.model.parameters())), problem.x0_train)
    assert float(pred.std(dim=1).max()) < 1e-5  # no noise: the paths of an initial condition agree (round-off)


def test_wong_zakai_field_refuses_a_noise_path_of_another_shape():
    """A path of shape (1,) or (d,) broadcast in g ⊙ ξ and drove every trajectory with the same Brownian
    motion, silently (measured: 4 × 2 identical trajectories)."""
    field = linear_sde(-0.5, 0.3, multiplicative=False)
    y0 = torch.ones(4, 2, dtype=torch.float64)
    for shape in ((1,), (2,), (4, 1)):
        noise = KarhunenLoeveNoise(0.0, 1.0, 5, dtype=torch.float64).resample(shape, generator(0))
        with pytest.raises(ValueError, match=r"noise path has shape .* the state \(4, 2\).*resample\(y0.shape"):
            odeint(WongZakaiField(field, noise), y0, torch.linspace(0, 1, 3, dtype=torch.float64))
    noise = KarhunenLoeveNoise(0.0, 1.0, 5, dtype=torch.float64).resample(y0.shape, generator(0))
    ys = odeint(WongZakaiField(field, noise), y0, torch.linspace(0, 1, 3, dtype=torch.float64))
    assert len(set(ys[-1].reshape(-1).tolist())) == 8  # independent noise per component


def test_karhunen_loeve_noise_counts_cosines_by_integers_only():
    """A bool was taken as K = 1 (True) and a numpy integer was refused."""
    with pytest.raises(ValueError, match="ncosines must be a non-negative integer, got True"):
        KarhunenLoeveNoise(0.0, 1.0, True)
    noise = KarhunenLoeveNoise(0.0, 1.0, np.int64(3))
    assert noise.ncosines == 3 and type(noise.ncosines) is int and noise.omegas.shape == (3,)


@pytest.mark.parametrize("name", ["sde_direct", "sde_adjoint"])
def test_sde_method_solve_refuses_an_ode_field(name):
    """An ODE problem trained with an SDE method through ``nodebench.training.train`` (no task, so no
    ``check_task``) failed with a TypeError on the missing ``entropy`` keyword."""
    solve = get_method(name).make_solve()
    y0, t = torch.ones(3, 1, dtype=torch.float64), torch.linspace(0, 1, 3, dtype=torch.float64)
    with pytest.raises(UserError, match=f"method '{name}' integrates an SDE.*use it on an SDE task"):
        solve(Linear(-0.5), y0, t)
    with pytest.raises(UserError, match="got Linear and entropy=3"):
        solve(Linear(-0.5), y0, t, entropy=3)
    with pytest.raises(UserError, match="entropy=None"):
        solve(StratonovichSDE(linear_sde(-0.5, 0.3, False)), y0, t)
    assert solve(StratonovichSDE(linear_sde(-0.5, 0.3, False)), y0, t, entropy=3).shape == (3, 3, 1)


def test_brownian_covariance_of_the_kl_expansion_tends_to_min():
    """Cov(W_K(s), W_K(t)) = Σ_{n≤K} 2c sin(ω_n s̃) sin(ω_n t̃)/ω_n² → min(s, t) − t0 (not only the variance),
    and the sampled paths of :meth:`KarhunenLoeveNoise.integral` have it."""
    t0, t1 = 0.5, 2.5
    c = t1 - t0

    def cov(a, b, k):
        return sum(2 * c * math.sin((n - 0.5) * math.pi * (a - t0) / c) * math.sin((n - 0.5) * math.pi * (b - t0) / c)
                   / ((n - 0.5) * math.pi) ** 2 for n in range(1, k + 1))

    pairs = [(0.7, 2.2), (1.3, 1.1), (2.5, 0.9), (2.5, 2.5)]
    errors = [max(abs(cov(a, b, k) - (min(a, b) - t0)) for a, b in pairs) for k in (5, 50, 500)]
    assert errors[2] < 2e-3 and errors[2] < errors[1] / 5 < errors[0] / 25, errors  # O(1/K)
    noise = KarhunenLoeveNoise(t0, t1, 5, dtype=torch.float64).resample((40_000,), generator(8))
    for a, b in pairs:
        wa, wb = (noise.integral(torch.tensor(x, dtype=torch.float64)) for x in (a, b))
        assert float((wa * wb).mean()) == pytest.approx(cov(a, b, 5), abs=0.03)


class TrueOU(nn.Module):
    """The data's drift and diffusion as a drift–diffusion field."""

    def forward(self, t, z):
        from nodebench.papers.gq_adjoint.ou import OUSDE

        return OUSDE().f_and_g(t, z)


def test_ou_problem_with_the_true_field_reproduces_the_closed_form_law():
    """The task's two simulation paths, fed the true OU drift and diffusion: the Wong–Zakai ODE (training,
    K = 50 cosines) and the transferred Stratonovich SDE (evaluation, torchsde reversible Heun), both against
    the closed-form mean and variance (:func:`ou_moments`; μ = φ = 0 gives x0 e^{−θt}, σ²(1 − e^{−2θt})/(2θ))."""
    t = torch.linspace(0, 10, 6, dtype=torch.float64)
    x0 = torch.tensor([-2.0, 1.0], dtype=torch.float64)
    mean, var = ou_moments(x0, t, mu=0.0, phi=0.0)
    assert mean.shape == var.shape == (2, 6)  # the documented shape (the variance was (1, T))
    np.testing.assert_allclose(mean.numpy(), (x0[:, None] * torch.exp(-0.1 * t)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), (0.36 / 0.2 * (1 - torch.exp(-0.2 * t))).expand(2, -1).numpy(),
                               rtol=1e-12, atol=1e-15)
    paths = 400
    problem = get_task("ou_sde").build(seed=2, device=CPU, hparams={
        "n_train": 3, "n_test": 3, "paths": paths, "n_times": 6, "batch_size": 3, "ncosines": 50,
        "dtype": "float64", "eval_dt": 0.05})
    problem.field = TrueOU()
    with torch.no_grad():
        runs = {"sde": (problem.x0_test, problem.simulate_sde(problem.x0_test, problem.eval_entropy)),
                "wong_zakai": (problem.x0_train, problem.simulate_train(
                    get_method("direct").make_solve(rtol=1e-6, atol=1e-6), problem.x0_train))}
    for name, (x0, samples) in runs.items():
        mean, var = ou_moments(x0, problem.t)
        z = (samples[..., 1:].mean(1) - mean[:, 1:]) / (var[:, 1:] / paths).sqrt()
        assert float(z.abs().max()) < 4, name
        ratio = samples[..., 1:].var(1) / var[:, 1:]
        # sampling sd of one ratio √(2/400) = 0.07; of the mean of the 15, 0.018
        assert 0.7 < float(ratio.min()) and float(ratio.max()) < 1.3, (name, ratio)
        assert float(ratio.mean()) == pytest.approx(1.0, abs=0.07), (name, ratio)
