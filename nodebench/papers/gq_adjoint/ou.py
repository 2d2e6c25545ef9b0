"""The Ornstein–Uhlenbeck SDE task of Norcliffe & Deisenroth (TMLR 2023; official code
``experiments/ornstein_uhlenbeck.py``, ``datasets/make_ou_data.py``, ``models/metrics.py``).

**Data.** The time-dependent OU process (Stratonovich; the noise is additive, so it equals the Itô one)

    dX = (μ t − θ X) dt + (σ + φ t) ∘ dW,   μ = 0.2, θ = 0.1, σ = 0.6, φ = 0.15,

on t ∈ [0, ``t_end`` = 10] observed at ``n_times`` = 101 equispaced times, X_0 ~ U(−3, 3). Train:
``n_train`` = 200 initial conditions × ``paths`` = 45 sample paths each; test: ``n_test`` = 20 × 45.
*Our generator*: torchsde, Stratonovich midpoint at a fixed step ``data_dt`` = 0.01 in float64, driven by
a ``BrownianInterval`` whose entropy, like X_0, is derived from the seed (``numpy.random.SeedSequence``),
then cast to ``dtype``. The official data come from the ``sdeint`` package's ``stratint`` (Stratonovich
Heun) stepping on the 101 output times themselves (step 0.1), with fixed numpy seeds. The exact law is
Gaussian (:func:`ou_moments`: mean m' = μt − θm, variance v' = −2θv + (σ + φt)²); for this additive-noise
linear SDE the scheme is strong order 1, and ``data_dt`` = 1e-3 gave the same path statistics to three
decimals at ~9× the build time (15 s instead of 1.6 s for the default sizes on 2 CPU cores: the cost is
the Brownian interval's queries, not the drift), so 0.01 is the default.

**Model.** Drift and diffusion are each an MLP over [x, t] (``mlp_t`` in the official code): Linear(2→w),
Softplus, Linear(w→w), Softplus, Linear(w→1), w = ``width`` = 5, PyTorch's default initialisation from the
seed; the diffusion output is unconstrained, as in the official code. 1-D state.

**Training.** One iteration is one mini-batch of ``batch_size`` = 40 initial conditions, taken epoch by
epoch from a fresh permutation of the training set (:class:`~nodebench.papers.gq_adjoint.batching.EpochBatches`,
drawn from the problem's generator), as the official shuffled ``DataLoader``: 5 iterations per epoch, so the
official 100 epochs are 500 iterations. It starts their 45 paths each (1800 trajectories) at X_0 and solves
with the method's ``solve``:

- an ODE method (``not solve.method.sde``) trains the Wong–Zakai ODE dz/dt = f + g ⊙ ξ(t), with a fresh
  Karhunen–Loève path ξ of ``ncosines`` = 10 cosines on [0, t_end] per iteration, drawn from the problem's
  generator (:mod:`nodebench.sde`);
- an SDE method solves the Stratonovich SDE with torchsde (``solve(sde, y0, t, entropy=...)``, the
  Brownian entropy drawn from the problem's generator).

**Loss.** At each time a Gaussian is fitted (mean, std over the 45 paths, unbiased variance, std =
√(var + 1e-12)) to the predicted and to the true samples of each initial condition, and the loss is the
Gaussian KL averaged over initial conditions and times, in the official ``kl_divergence_samples``'
direction KL(pred ‖ true) (``kl_direction = "pred||true"``; ``"true||pred"`` gives the other). *Our
choice*: the initial time is left out of the average: both distributions are the same
point mass there (the official code includes it; its term is 0, so only the averaging differs, by 101/100).

**Metrics** (after training, whatever the method): the learned drift and diffusion are simulated as the
Stratonovich SDE with torchsde reversible Heun at ``eval_dt`` = 0.01 (the paper's parameter transfer) from
the test initial conditions × paths, with a Brownian motion fixed by the seed (the same for every method):

- ``test_kl``: the training KL on the test set (headline; lower is better);
- ``test_logprob``: mean log-density of the true test samples under the Gaussian fitted to the predicted
  samples of their initial condition and time (the official validation metric, ``sample_logp``; higher is
  better), also without the initial time (the official code's t = 0 term is log N(x0; x0, 1e-9²) ≈ 19.8).

**Devices.** The data, the batch order and the Wong–Zakai paths come from CPU generators, the same on CPU and
CUDA for a seed; torchsde draws a Brownian motion from a generator on the state's device, so the SDE methods'
training noise and the evaluation's Brownian motion differ between a CPU and a CUDA run of one seed (the
metrics of the two differ by that sampling noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.methods import check_step_size
from nodebench.papers.gq_adjoint.batching import EpochBatches
from nodebench.sde import (
    DriftDiffusion,
    KarhunenLoeveNoise,
    StratonovichSDE,
    WongZakaiField,
    fit_gaussian,
    gaussian_kl,
    gaussian_log_prob,
)
from nodebench.tasks.base import Problem, Task, dtype_from_name, int_hparam, positive_hparam

OU_PARAMS = {"mu": 0.2, "theta": 0.1, "sigma": 0.6, "phi": 0.15}
KL_DIRECTIONS = ("true||pred", "pred||true")
STD_EPS = 1e-6


class OUSDE(nn.Module):
    """The true OU process dX = (μt − θX) dt + (σ + φt) ∘ dW as a torchsde SDE (diagonal noise)."""

    noise_type = "diagonal"
    sde_type = "stratonovich"

    def __init__(self, mu=OU_PARAMS["mu"], theta=OU_PARAMS["theta"], sigma=OU_PARAMS["sigma"], phi=OU_PARAMS["phi"]):
        super().__init__()
        self.mu, self.theta, self.sigma, self.phi = mu, theta, sigma, phi

    def f_and_g(self, t, y):
        return self.mu * t - self.theta * y, (self.sigma + self.phi * t) * torch.ones_like(y)

    def f(self, t, y):
        return self.f_and_g(t, y)[0]

    def g(self, t, y):
        return self.f_and_g(t, y)[1]


def ou_moments(x0: torch.Tensor, t: torch.Tensor, **params) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and variance of the OU process at times ``t`` from X_0 = ``x0``: shapes (len(x0), len(t)).

    m(t) = x0 e^{−θt} + (μ/θ)(t − 1/θ) + (μ/θ²) e^{−θt};  v(t) = ∫_0^t e^{−2θ(t−s)} (σ + φs)² ds (closed form).
    """
    p = {**OU_PARAMS, **params}
    mu, theta, sigma, phi = p["mu"], p["theta"], p["sigma"], p["phi"]
    x0, t = x0.double()[:, None], t.double()[None, :]
    decay = torch.exp(-theta * t)
    mean = x0 * decay + mu / theta * (t - 1 / theta) + mu / theta ** 2 * decay
    # ∫_0^t e^{2θs} (σ + φs)² ds = F(t) − F(0), F(s) = e^{2θs} [ (σ+φs)²/(2θ) − φ(σ+φs)/(2θ²) + φ²/(4θ³) ]
    a = 2 * theta

    def antiderivative(s):
        q = sigma + phi * s
        return torch.exp(a * s) * (q ** 2 / a - 2 * phi * q / a ** 2 + 2 * phi ** 2 / a ** 3)

    var = torch.exp(-a * t) * (antiderivative(t) - antiderivative(torch.zeros_like(t)))
    return mean, var.expand_as(mean)  # the variance does not depend on x0; the documented (len(x0), len(t))


def simulate_ou(x0: torch.Tensor, paths: int, t: torch.Tensor, *, entropy: int, dt: float = 1e-3,
                method: str = "midpoint") -> torch.Tensor:
    """Sample paths of the true OU process in float64: shape (len(x0), paths, len(t))."""
    import torchsde

    t = t.double()
    y0 = x0.double().repeat_interleave(paths).reshape(-1, 1)
    bm = torchsde.BrownianInterval(t0=float(t[0]), t1=float(t[-1]), size=y0.shape, dtype=torch.float64,
                                   device=y0.device, entropy=entropy, dt=dt)
    with torch.no_grad():
        ys = torchsde.sdeint(OUSDE(), y0, t, bm=bm, method=method, dt=dt)  # (T, N·P, 1)
    return ys[..., 0].reshape(len(t), len(x0), paths).permute(1, 2, 0).contiguous()


class TimeMLP(nn.Module):
    """``mlp_t`` of the official code: Linear(d+1→w), Softplus, Linear(w→w), Softplus, Linear(w→d) on [x, t]."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.Softplus(), nn.Linear(width, width), nn.Softplus(),
                                 nn.Linear(width, dim))

    def forward(self, t, x):
        # Pure tensor ops on t (no .item()), so the field runs under torch.func.vmap over t (gq_batched).
        tt = torch.as_tensor(t).to(x).expand(*x.shape[:-1], 1)
        return self.net(torch.cat([x, tt], dim=-1))


def sample_kl(pred: torch.Tensor, true: torch.Tensor, direction: str = "pred||true") -> torch.Tensor:
    """Mean Gaussian KL between samples ``pred`` and ``true`` of shape (N, paths, T), fitted over paths,
    averaged over N and the times after the first."""
    mean_p, std_p = fit_gaussian(pred[..., 1:], dim=1, eps=STD_EPS)
    mean_t, std_t = fit_gaussian(true[..., 1:], dim=1, eps=STD_EPS)
    if direction == "true||pred":
        return gaussian_kl(mean_t, std_t, mean_p, std_p).mean()
    return gaussian_kl(mean_p, std_p, mean_t, std_t).mean()


def sample_log_prob(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean log N(true; Gaussian fitted to ``pred`` over paths), shapes (N, paths, T), times after the first."""
    mean_p, std_p = fit_gaussian(pred[..., 1:], dim=1, eps=STD_EPS)
    return gaussian_log_prob(true[..., 1:], mean_p[:, None], std_p[:, None]).mean()


class OUProblem(Problem):
    """Fit a neural SDE to OU sample paths (see the module docstring).

    Args:
        field: a drift–diffusion field (:class:`~nodebench.sde.DriftDiffusion`).
        t: observation times (T,).
        x0_train, x0_test: initial conditions (N,).
        y_train, y_test: sample paths (N, paths, T).
        batch_size: initial conditions per iteration (one mini-batch of a per-epoch permutation).
        ncosines: cosines of the Wong–Zakai noise (ODE methods).
        seed: seeds the local generator for the batch order, Wong–Zakai paths and torchsde entropies.
        eval_entropy: Brownian entropy of the evaluation simulation.
    """

    def __init__(self, field: nn.Module, t, x0_train, y_train, x0_test, y_test, *, batch_size: int, ncosines: int,
                 lr: float, seed: int, eval_entropy: int, eval_dt: float = 0.01, kl_direction: str = "pred||true"):
        self.model = field
        self.field = field
        self.t = t
        self.span = (float(t[0]), float(t[-1]))  # read once: a host read inside the timed loss would sync a GPU
        self.x0_train, self.y_train, self.x0_test, self.y_test = x0_train, y_train, x0_test, y_test
        self.batch_size = batch_size
        self.ncosines = ncosines
        self.lr = lr
        self.eval_entropy = eval_entropy
        self.eval_dt = eval_dt
        self.kl_direction = kl_direction
        self._generator = torch.Generator().manual_seed(seed)
        self._batches = EpochBatches(len(x0_train), batch_size, self._generator)

    @property
    def paths(self) -> int:
        return self.y_train.shape[1]

    def _initial_states(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.repeat_interleave(self.paths).reshape(-1, 1)

    def _to_samples(self, ys: torch.Tensor, n: int) -> torch.Tensor:
        """(T, n·paths, 1) solver output to (n, paths, T)."""
        return ys[..., 0].reshape(len(self.t), n, self.paths).permute(1, 2, 0)

    def _entropy(self) -> int:
        return int(torch.randint(0, 2 ** 62, (), generator=self._generator))

    def simulate_train(self, solve, x0: torch.Tensor) -> torch.Tensor:
        """Paths from ``x0`` with the training method's solve: (len(x0), paths, T)."""
        y0 = self._initial_states(x0)
        method = getattr(solve, "method", None)
        if method is not None and method.sde:
            ys = solve(StratonovichSDE(self.field), y0, self.t, entropy=self._entropy())
        else:
            noise = KarhunenLoeveNoise(*self.span, self.ncosines, dtype=y0.dtype,
                                       device=y0.device).resample(y0.shape, self._generator)
            ys = solve(WongZakaiField(self.field, noise), y0, self.t)
        return self._to_samples(ys, len(x0))

    def simulate_sde(self, x0: torch.Tensor, entropy: int) -> torch.Tensor:
        """Paths of the learned Stratonovich SDE (torchsde reversible Heun at ``eval_dt``): (len(x0), paths, T)."""
        import torchsde

        y0 = self._initial_states(x0)
        bm = torchsde.BrownianInterval(t0=self.span[0], t1=self.span[1], size=y0.shape, dtype=y0.dtype,
                                       device=y0.device, entropy=entropy, dt=self.eval_dt)
        ys = torchsde.sdeint(StratonovichSDE(self.field), y0, self.t, bm=bm, method="reversible_heun",
                             dt=self.eval_dt)
        return self._to_samples(ys, len(x0))

    def loss(self, solve) -> torch.Tensor:
        idx, self._batches = self._batches.next()
        idx = idx.to(self.x0_train.device)
        pred = self.simulate_train(solve, self.x0_train[idx])
        return sample_kl(pred, self.y_train[idx], self.kl_direction)

    @torch.no_grad()
    def evaluate(self, solve) -> dict[str, float]:
        pred = self.simulate_sde(self.x0_test, self.eval_entropy)
        return {"test_kl": float(sample_kl(pred, self.y_test, self.kl_direction)),
                "test_logprob": float(sample_log_prob(pred, self.y_test))}


class OrnsteinUhlenbeck(Task):
    """The OU SDE task of Norcliffe & Deisenroth (TMLR 2023, the Wong–Zakai SDE experiment; official
    ``experiments/ornstein_uhlenbeck.py``): trained as an ODE or SDE by the method, evaluated as an SDE
    (:class:`OUProblem`, module docstring)."""

    name = "ou_sde"
    paper = "gq_adjoint"
    dynamics = "sde"
    metrics = ("test_kl", "test_logprob")
    description = ("time-dependent OU SDE, 200×45 paths on [0, 10]; drift/diffusion MLPs, Gaussian-KL loss "
                   "(Norcliffe & Deisenroth 2023)")
    defaults: ClassVar[Mapping[str, Any]] = {
        "n_train": 200, "n_test": 20, "paths": 45, "n_times": 101, "t_end": 10.0, "width": 5, "lr": 1e-3,
        "ncosines": 10, "dtype": "float32", "batch_size": 40, "data_dt": 1e-2, "eval_dt": 0.01,
        "kl_direction": "pred||true"}
    #: ``ncosines = 0`` (ξ ≡ 0, the deterministic ODE) is allowed: the official OU ablation sweeps ncosines over
    #: {0, 1, 5, 10, 25, 50}; typed by its default alone it would have to be ≥ 1.
    param_rules: ClassVar[Mapping[str, Param]] = {"ncosines": Param("ncosines", "int", low=0)}

    def check_hparams(self, hp):
        for key, low in (("n_train", 1), ("n_test", 1), ("paths", 2), ("n_times", 2), ("width", 1),
                         ("ncosines", 0), ("batch_size", 1)):
            int_hparam(hp, key, low)
        for key in ("t_end", "data_dt", "eval_dt"):
            positive_hparam(hp, key)
        for key in ("data_dt", "eval_dt"):  # the data's and the evaluation's fixed SDE steps
            check_step_size(hp[key], hp["t_end"], f"the time span of task {self.name!r}", name=key)
        if hp["kl_direction"] not in KL_DIRECTIONS:
            raise UserError(f"kl_direction must be one of {', '.join(KL_DIRECTIONS)}, got {hp['kl_direction']!r}")

    def time_span(self, hp):
        return hp["t_end"]

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        dtype = dtype_from_name(hp["dtype"])
        x0_seed, train_entropy, test_entropy, eval_entropy, problem_seed = (
            int(s) for s in np.random.SeedSequence([int(seed), 0x0E]).generate_state(5, dtype=np.uint64) >> 2)
        t = torch.linspace(0.0, float(hp["t_end"]), int(hp["n_times"]), dtype=torch.float64)
        gen = torch.Generator().manual_seed(x0_seed)
        x0_train = torch.rand(hp["n_train"], generator=gen, dtype=torch.float64) * 6 - 3
        x0_test = torch.rand(hp["n_test"], generator=gen, dtype=torch.float64) * 6 - 3
        y_train = simulate_ou(x0_train, hp["paths"], t, entropy=train_entropy, dt=float(hp["data_dt"]))
        y_test = simulate_ou(x0_test, hp["paths"], t, entropy=test_entropy, dt=float(hp["data_dt"]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            field = DriftDiffusion(TimeMLP(1, hp["width"]), TimeMLP(1, hp["width"]))
        move = {"device": device, "dtype": dtype}
        return OUProblem(field.to(**move), t.to(**move), x0_train.to(**move), y_train.to(**move),
                         x0_test.to(**move), y_test.to(**move), batch_size=int(hp["batch_size"]),
                         ncosines=int(hp["ncosines"]), lr=float(hp["lr"]), seed=problem_seed,
                         eval_entropy=eval_entropy, eval_dt=float(hp["eval_dt"]),
                         kl_direction=hp["kl_direction"])
