"""The latent ODE on PhysioNet 2012 (interpolation) of Kelly, Bettencourt, Johnson and Duvenaud, "Learning
Differential Equations that are Easy to Solve" (NeurIPS 2020, arXiv 2007.04504), after the official
``latent_ode.py`` and ``physionet_data.py`` of ``jacobjinkelly/easy-neural-ode`` (themselves adapted from
Rubanova, Chen and Duvenaud's latent ODE, 2019).

**Model** (as in the official code; sizes are hyper-parameters, official values in brackets):

- encoder: the official "plain GRU" (``LatentGRU``, no encoder ODE) with a hidden mean and std of
  ``rec_dim`` [40]; update gate, reset gate and new-state net are each Linear(``gru_units`` [50]) → tanh →
  Linear (→ sigmoid for the gates); the input at a time point is [values, mask, Δt] (2·37 + 1), Δt the
  gap to the next grid time (0 at the last); it runs **backwards** over the batch's union time grid from
  zero state; the new std is |·|. The state is updated where the sum of [mask, Δt] is positive, i.e.
  wherever something is observed **or Δt > 0** (the official test also counts Δt, so every grid time but
  the last updates the state even when the record has no observation there; replicated);
- rec→gen: Linear(2·rec_dim → ``rec_to_gen_units`` [50]) → tanh → Linear(→ 2·``latent_dim`` [20]): mean
  and |std| of z0; ``n_samples`` [3] reparameterised samples of z0;
- decoder ODE (``problem.field``), time-independent: f(z) = Linear(tanh(… Linear(tanh(z)) …)) with
  ``dynamics_layers`` [4] blocks [tanh, Linear(``dynamics_units`` [50])] then tanh → Linear(latent_dim)
  (the official ``GenDynamics`` with ``gen_layers = 3``, which builds layers + 1 = 4 blocks); plain
  out-of-place ops (``torch.tanh``, ``nn.Linear``), so ``torch.func.jvp`` and a ``__torch_function__``
  Taylor mode can trace it;
- the decoder ODE is solved over the batch's union time grid, from its first time: t = 0, a row every
  record has (the parsers start each record with one, observed or not, as the official code); a
  Linear(latent_dim → 37) maps z(t) to the data;
- initialisation: N(0, 0.1²) weights and zero biases for encoder, rec→gen and output layer; the ODE MLP
  keeps Haiku's default (truncated normal, std 1/√fan_in; zero bias), as in the official code.

**Loss** (official): with σ = ``obs_std`` [0.01], for each z0 sample s the log-likelihood
ℓ_s = [Σ over the batch's (record, time, channel) entries of −(m·(x − μ_s))²/(2σ²) − log σ − ½ log 2π] /
Σ m — the official code adds the constant terms at every entry of the union grid, observed or not, and
divides by the number of observed entries; KL = mean over records and latent dimensions of
KL(N(μ0, σ0²) ‖ N(0, 1)); loss = −logsumexp_s(ℓ_s − β·KL) (no + log n_samples, as in the official code).
β = max(0, 1 − ``kl_rate``^(epoch − ``kl_delay``)) [0.99, 10], epoch = completed passes over the
training split (``kl_epoch_iters`` iterations per epoch; None: ⌊n_train / batch_size⌋; 0-based, so
β = 0 for the first 11 epochs).

**Metrics** (:meth:`LatentODEProblem.evaluate`, reference dopri5 solve at rtol = atol = ``eval_tol``
[1.4e-8, the official tolerance], whatever method trained the model; z0 noise from a generator seeded
by the seed, the same at every evaluation):

- ``test_mse``: masked MSE of the reconstruction on the held-out records, Σ (m·(x − μ))² / Σ m over all
  test batches, averaged over the z0 samples (observed entries only: padding and unobserved entries have
  m = 0); ``train_mse`` the same on the training records. The official script evaluates on the
  **training** split only, and averages per-batch ratios (each batch's Σ (m·(x − μ))² / Σ m) where we
  pool the sums, which weights every observation equally;
- ``test_loss``: the training loss (above, at the current β) averaged over test batches;
- ``test_nfe``: mean over test batches of the NFE of one dopri5 solve of the decoder ODE (all z0 samples
  of the batch as one state) at ``nfe_rtol``/``nfe_atol``, NFE = 2 + 6 × attempted steps (the official
  convention; :func:`nodebench.papers.taynode.classification.counted_dopri5`). The official code solves each
  record separately (vmap, per-record step sizes) at 1.4e-8 and averages; ours solves the batch as one
  state, whose steps follow the RMS error norm over the whole batch (neither the hardest record's NFE nor
  the per-record mean), so it depends on the batch size.
  The default 1e-5 follows the MNIST task; set it to the training tolerance for the
  official protocol.

**Data.** ``latent_ode_physionet`` reads the challenge's raw record files with
:mod:`nodebench.datasets.physionet` (``<data>/physionet/set-a`` and ``set-b``; nothing is downloaded;
``datasets/README.md``): 37 channels, 1-hour quantisation, times / 48 h. The
records are shuffled by a generator seeded by ``data_seed`` (default: the run's seed) and split
(1 − ``test_fraction``)/``test_fraction`` = 80/20 as in the official code. ``latent_ode_synthetic`` is an
offline smoke preset (not in the paper): ``n_records`` synthetic records of ``n_channels`` channels, each
a fixed random mix of three damped sinusoids with per-record amplitudes, frequencies, phases and decay
rates plus Gaussian noise, observed at time 0 and ``n_obs`` random whole hours of a 48-hour window, each
channel present with probability ``p_observe`` (at least one observation per record), all from a local
``torch.Generator``; it then goes through the same normalisation and batching as PhysioNet.

**Our choices** (not in the official code):

- normalisation ``"minmax"``: (x − min)/(max − min) with min and max over the training split; the
  official ``(x − min)/max`` over all records is ``normalisation = "official"``;
- evaluation on held-out records (the official code's 20 % hold-out is never used) as well as on the
  training records;
- a union time grid per batch (the official code precomputes one grid for the whole training split; at
  1-hour quantisation both are almost always the 49 hours 0…48);
- fresh z0 noise every iteration from a generator seeded by the seed (the official code reuses one fixed
  key, so the noise is the same at every iteration);
- Adam at a constant ``lr`` (default 1e-3), the harness's optimiser; the official code uses Adamax with lr
  1e-2 decaying ×0.999 per iteration to 1e-3, batch 50, 100 epochs;
- the decoder solve treats the (sample, record) pairs as one batch state of shape (n_samples·B,
  latent_dim), so a per-example regulariser sees one row per (sample, record) as in the official vmap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from nodebench.datasets import physionet
from nodebench.datasets.catalog import provenance
from nodebench.datasets.physionet import Record, Series
from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.tasks.base import Problem, Task, data_seed, dtype_from_name, int_hparam, positive_hparam
from nodebench.papers.taynode.classification import counted_dopri5, haiku_init_

# -- modules ---------------------------------------------------------------------------------------------------

def normal_init_(linear: nn.Linear, std: float = 0.1) -> nn.Linear:
    """The official ``init_kwargs``: weights ~ N(0, std²), zero bias."""
    with torch.no_grad():
        nn.init.normal_(linear.weight, std=std)
        linear.bias.zero_()
    return linear


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(normal_init_(nn.Linear(n_in, hidden)), nn.Tanh(), normal_init_(nn.Linear(hidden, n_out)))


class LatentGRU(nn.Module):
    """The official ``LatentGRU`` run backwards over a batch (see the module docstring).

    Args:
        data_dim: channels D (the input is 2D + 1: values, mask, Δt).
        rec_dim: size of the hidden mean and std.
        units: hidden width of the gate and new-state nets.
    """

    def __init__(self, data_dim: int, rec_dim: int = 40, units: int = 50):
        super().__init__()
        n_in = 2 * rec_dim + 2 * data_dim + 1
        self.rec_dim = rec_dim
        self.update_gate = _mlp(n_in, units, rec_dim)
        self.reset_gate = _mlp(n_in, units, rec_dim)
        self.new_state = _mlp(n_in, units, 2 * rec_dim)

    def step(self, mean, std, x, observed):
        """One update from input ``x`` (B, 2D+1); ``observed`` (B, 1) is 1 where the state may change."""
        h = torch.cat([mean, std, x], dim=-1)
        update = torch.sigmoid(self.update_gate(h))
        reset = torch.sigmoid(self.reset_gate(h))
        new = self.new_state(torch.cat([mean * reset, std * reset, x], dim=-1))
        new_mean, new_std = new[..., :self.rec_dim], new[..., self.rec_dim:].abs()
        new_mean = (1 - update) * new_mean + update * mean
        new_std = (1 - update) * new_std + update * std
        mean = observed * new_mean + (1 - observed) * mean
        std = observed * new_std + (1 - observed) * std
        return mean, std.abs()

    def forward(self, grid: torch.Tensor, values: torch.Tensor, mask: torch.Tensor):
        """Final (mean, std), each (B, rec_dim), of the backward pass over ``grid`` (T,), data (B, T, D)."""
        batch, n_times, _ = values.shape
        delta = torch.cat([grid[1:] - grid[:-1], grid.new_zeros(1)])
        inputs = torch.cat([values, mask, delta.view(1, -1, 1).expand(batch, n_times, 1)], dim=-1)
        observed = ((mask.sum(dim=-1) + delta.view(1, -1)) > 0).to(values.dtype).unsqueeze(-1)  # official rule
        mean = values.new_zeros(batch, self.rec_dim)
        std = values.new_zeros(batch, self.rec_dim)
        for i in range(n_times - 1, -1, -1):
            mean, std = self.step(mean, std, inputs[:, i], observed[:, i])
        return mean, std


class TanhMLPDynamics(nn.Module):
    """The official ``GenDynamics``: f(z) = L_out(tanh(L_k(… tanh(L_1(tanh(z))) …))), time-independent.

    Args:
        dim: latent dimension.
        units: hidden width.
        layers: number of [tanh, Linear(units)] blocks before the final tanh → Linear(dim).
    """

    def __init__(self, dim: int = 20, units: int = 50, layers: int = 4):
        super().__init__()
        sizes = [dim] + [units] * layers
        self.hidden = nn.ModuleList(haiku_init_(nn.Linear(a, b)) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = haiku_init_(nn.Linear(sizes[-1], dim))

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = z
        for layer in self.hidden:
            h = layer(torch.tanh(h))
        return self.out(torch.tanh(h))


class LatentODE(nn.Module):
    """Encoder, rec→gen map, decoder ODE ``field`` and output layer."""

    def __init__(self, data_dim: int, *, latent_dim: int = 20, rec_dim: int = 40, gru_units: int = 50,
                 rec_to_gen_units: int = 50, dynamics_units: int = 50, dynamics_layers: int = 4):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = LatentGRU(data_dim, rec_dim, gru_units)
        self.rec_to_gen = _mlp(2 * rec_dim, rec_to_gen_units, 2 * latent_dim)
        self.field = TanhMLPDynamics(latent_dim, dynamics_units, dynamics_layers)
        self.output = normal_init_(nn.Linear(latent_dim, data_dim))

    def z0_distribution(self, grid, values, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of z0, each (B, latent_dim)."""
        mean, std = self.encoder(grid, values, mask)
        out = self.rec_to_gen(torch.cat([mean, std], dim=-1))
        return out[..., :self.latent_dim], out[..., self.latent_dim:].abs()


# -- problem ---------------------------------------------------------------------------------------------------

class LatentODEProblem(Problem):
    """Fit a latent ODE to irregularly sampled records (interpolation: every observation is also a target).

    Args:
        model: a :class:`LatentODE` in ``dtype`` on the device.
        train, test: the records as :class:`~nodebench.datasets.physionet.Series` on the device.
        batch_size, lr, n_samples, obs_std, kl_delay, kl_rate, kl_epoch_iters: training (module docstring).
        eval_batch_size, eval_tol, eval_max_steps, nfe_rtol, nfe_atol: evaluation.
        seed: seeds the batch order and the z0 noise.
    """

    def __init__(self, model: LatentODE, train: Sequence[Series], test: Sequence[Series], *, batch_size: int,
                 lr: float, n_samples: int, obs_std: float, kl_delay: float, kl_rate: float,
                 kl_epoch_iters: int | None, eval_batch_size: int, eval_tol: float, eval_max_steps: int,
                 nfe_rtol: float, nfe_atol: float, seed: int):
        self.model, self.field = model, model.field
        self.train, self.test = list(train), list(test)
        self.lr = float(lr)
        self.batch_size = max(1, min(int(batch_size), len(self.train)))
        self.n_samples, self.obs_std = int(n_samples), float(obs_std)
        self.kl_delay, self.kl_rate = float(kl_delay), float(kl_rate)
        self.kl_epoch_iters = int(kl_epoch_iters) if kl_epoch_iters else max(1, len(self.train) // self.batch_size)
        self.eval_batch_size, self.eval_max_steps = int(eval_batch_size), int(eval_max_steps)
        self.eval_tol, self.nfe_rtol, self.nfe_atol = float(eval_tol), float(nfe_rtol), float(nfe_atol)
        self.seed = seed
        self.iterations = 0
        self.kl_coef = self.beta(0)
        self._batch_generator = torch.Generator().manual_seed(seed)
        self._noise_generator = torch.Generator().manual_seed(seed + 1)
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0

    def beta(self, epoch: int) -> float:
        """The KL weight at ``epoch`` (0-based): max(0, 1 − kl_rate^(epoch − kl_delay)) (module docstring, Loss).
        A power past the float range (a long ``kl_delay``, a small ``kl_rate``) is far above 1: β = 0."""
        try:
            return max(0.0, 1.0 - self.kl_rate ** (epoch - self.kl_delay))
        except OverflowError:
            return 0.0

    def next_batch(self) -> list[Series]:
        """The next mini-batch: consecutive slices of a per-epoch permutation (local generator)."""
        if self._cursor + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self.train), generator=self._batch_generator)
            self._cursor = 0
        idx = self._order[self._cursor:self._cursor + self.batch_size].tolist()
        self._cursor += self.batch_size
        return [self.train[i] for i in idx]

    def _noise(self, batch: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        shape = (self.n_samples, batch, self.model.latent_dim)
        return torch.randn(shape, generator=generator, dtype=torch.float64).to(like)

    def terms(self, series: Sequence[Series], solve: Callable, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Loss and its parts for one batch, solving the decoder ODE with ``solve``.

        Returns:
            ``loss`` (at the current β), ``likelihood`` (n_samples,), ``kl``, ``sq_error`` (the masked
            squared error summed over the batch, averaged over samples), ``n_observed`` (Σ mask).
        """
        grid, values, mask = physionet.collate(series)
        mean, std = self.model.z0_distribution(grid, values, mask)
        batch, latent = mean.shape
        z0 = mean + std * self._noise(batch, mean, generator)  # (S, B, L)
        zs = solve(self.field, z0.reshape(self.n_samples * batch, latent), grid)  # (T, S·B, L)
        pred = self.model.output(zs).reshape(len(grid), self.n_samples, batch, -1).permute(1, 2, 0, 3)
        sq = ((values - pred) * mask).pow(2).flatten(1).sum(dim=1)  # (S,)
        n_observed = mask.sum().clamp(min=1.0)
        constant = values.numel() * (math.log(self.obs_std) + 0.5 * math.log(2 * math.pi))
        likelihood = (-sq / (2 * self.obs_std ** 2) - constant) / n_observed
        var = std.pow(2)
        kl = (0.5 * (var + mean.pow(2) - 1 - torch.log(var))).mean()
        loss = -torch.logsumexp(likelihood - self.kl_coef * kl, dim=0)
        return {"loss": loss, "likelihood": likelihood, "kl": kl, "sq_error": sq.mean(), "n_observed": n_observed}

    def loss(self, solve: Callable) -> torch.Tensor:
        """The official objective on the next mini-batch, β from the epoch of this iteration."""
        self.kl_coef = self.beta(self.iterations // self.kl_epoch_iters)
        self.iterations += 1
        self.model.train()
        return self.terms(self.next_batch(), solve, self._noise_generator)["loss"]

    def loss_fixed(self, solve: Callable) -> torch.Tensor:
        """A deterministic loss for gradient checks: the first ``batch_size`` records, fixed noise."""
        generator = torch.Generator().manual_seed(self.seed)
        return self.terms(self.train[:self.batch_size], solve, generator)["loss"]

    def _pass(self, series: Sequence[Series], solve: Callable) -> tuple[float, float, list[float]]:
        generator = torch.Generator().manual_seed(self.seed + 2)
        sq, n, losses = 0.0, 0.0, []
        for start in range(0, len(series), self.eval_batch_size):
            out = self.terms(series[start:start + self.eval_batch_size], solve, generator)
            sq += float(out["sq_error"])
            n += float(out["n_observed"])
            losses.append(float(out["loss"]))
        return sq / n, sum(losses) / len(losses), losses

    def _reference(self, rtol: float, atol: float, nfes: list[int]) -> Callable:
        def solve(func, y0, t):
            ys, nfe = counted_dopri5(func, y0, t, rtol=rtol, atol=atol, max_steps=self.eval_max_steps)
            nfes.append(nfe)
            return ys
        return solve

    @torch.no_grad()
    def evaluate(self, solve: Callable) -> dict[str, float]:
        self.model.eval()
        nfes: list[int] = []
        test_mse, test_loss, _ = self._pass(self.test, self._reference(self.eval_tol, self.eval_tol, nfes))
        if not (self.nfe_rtol == self.eval_tol and self.nfe_atol == self.eval_tol):
            nfes = []  # a separate solve per test batch at the NFE tolerances, same z0 noise
            self._pass(self.test, self._reference(self.nfe_rtol, self.nfe_atol, nfes))
        train_mse, _, _ = self._pass(self.train, self._reference(self.eval_tol, self.eval_tol, []))
        return {"test_mse": test_mse, "test_loss": test_loss, "train_mse": train_mse,
                "test_nfe": sum(nfes) / len(nfes)}


# -- data ------------------------------------------------------------------------------------------------------

def synthetic_records(n_records: int, n_channels: int, n_obs: int, p_observe: float, noise: float,
                      generator: torch.Generator, n_components: int = 3) -> list[Record]:
    """Irregularly sampled, partly observed multichannel series on a 48-hour window (raw, unnormalised).

    Channel c of a record is offset_c + Σ_k W_ck · a_k e^{−γ_k s} sin(2π f_k s + φ_k) + noise·ε at
    s = hours / 48, with W and the offsets fixed for the data set and a ∈ [0.5, 1.5], f ∈ [0.5, 3],
    φ ∈ [0, 2π), γ ∈ [0, 2] drawn per record and component. Times: 0 and ``n_obs`` distinct whole hours
    in 1…48; each (time, channel) is observed with probability ``p_observe``, and at least once per record.
    """
    def uniform(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, dtype=torch.float64)

    mixing = torch.randn(n_channels, n_components, generator=generator, dtype=torch.float64) / math.sqrt(n_components)
    offsets = uniform(-1.0, 1.0, n_channels)
    records = []
    for i in range(n_records):
        hours = torch.cat([torch.zeros(1, dtype=torch.float64),
                           (torch.randperm(48, generator=generator)[:n_obs] + 1).sort().values.double()])
        s = hours / physionet.WINDOW_HOURS
        amp, freq = uniform(0.5, 1.5, n_components), uniform(0.5, 3.0, n_components)
        phase, decay = uniform(0.0, 2 * math.pi, n_components), uniform(0.0, 2.0, n_components)
        waves = amp * torch.exp(-decay * s[:, None]) * torch.sin(2 * math.pi * freq * s[:, None] + phase)
        values = offsets + waves @ mixing.T + noise * torch.randn(len(s), n_channels, generator=generator,
                                                                  dtype=torch.float64)
        mask = (torch.rand(len(s), n_channels, generator=generator, dtype=torch.float64) < p_observe).double()
        if mask.sum() == 0:
            row = int(torch.randint(len(s), (1,), generator=generator))
            col = int(torch.randint(n_channels, (1,), generator=generator))
            mask[row, col] = 1.0
        values = values * mask
        records.append(Record(f"synthetic-{i}", hours.numpy(), values.numpy(), mask.numpy()))
    return records


# -- tasks -----------------------------------------------------------------------------------------------------

def _n_train(n_records: int, test_fraction: float) -> int:
    """Training records of the 80/20-style split (the official ``int(n · train_frac)``); at least one of each."""
    n_train = int(n_records * (1 - test_fraction))
    if n_train < 1 or n_train >= n_records:
        raise UserError(f"{n_records} record(s) cannot be split with test_fraction {test_fraction}: "
                        "need at least one training and one test record")
    return n_train


def _check_fraction(hp: dict, key: str) -> None:
    """``hp[key]`` (already a number > 0) must be below 1."""
    if not hp[key] < 1:
        raise UserError(f"hyper-parameter {key} must be a number in (0, 1), got {hp[key]!r}")


class LatentODETask(Task):
    """The TayNODE latent ODE on one source of irregular time series (see the module docstring)."""

    paper = "taynode"
    metrics = ("test_mse", "test_loss", "train_mse", "test_nfe")
    #: checked up front, before any case runs (with :meth:`check_hparams`): the KL warm-up may start at once (0
    #: epochs of delay), its rate is in (0, 1], an epoch is at least one iteration
    param_rules = {"kl_delay": Param("kl_delay", "float", low=0.0),
                   "kl_rate": Param("kl_rate", "float", positive=True, high=1.0),
                   "kl_epoch_iters": Param("kl_epoch_iters", "int", low=1, optional=True),
                   "normalisation": Param("normalisation", "str", choices=physionet.NORMALISATIONS)}
    common: ClassVar[dict[str, Any]] = {
        "latent_dim": 20,
        "rec_dim": 40,
        "gru_units": 50,
        "rec_to_gen_units": 50,
        "dynamics_units": 50,
        "dynamics_layers": 4,
        "n_samples": 3,
        "obs_std": 0.01,
        "batch_size": 50,
        "lr": 1e-3,
        "kl_delay": 10,
        "kl_rate": 0.99,
        "kl_epoch_iters": None,
        "test_fraction": 0.2,
        "normalisation": "minmax",
        "dtype": "float64",
        "eval_batch_size": 100,
        "eval_tol": 1.4e-8,
        "eval_max_steps": 10_000,
        "nfe_rtol": 1e-5,
        "nfe_atol": 1e-5,
        "data_seed": None,
    }

    def check_hparams(self, hp):
        _check_fraction(hp, "test_fraction")

    def records(self, hp: dict, seed: int) -> list[Record]:
        """The raw records (before the split and the normalisation)."""
        raise NotImplementedError

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        device = torch.device(device)
        dtype = dtype_from_name(hp["dtype"])
        sizes = {key: int_hparam(hp, key, 1) for key in ("latent_dim", "rec_dim", "gru_units", "rec_to_gen_units",
                                                          "dynamics_units", "dynamics_layers", "n_samples",
                                                          "batch_size", "eval_batch_size", "eval_max_steps")}
        floats = {key: positive_hparam(hp, key) for key in ("obs_std", "eval_tol", "nfe_rtol", "nfe_atol")}
        split_seed = data_seed(hp, seed)
        records = self.records(hp, split_seed)
        n_train = _n_train(len(records), hp["test_fraction"])
        order = torch.randperm(len(records), generator=torch.Generator().manual_seed(split_seed)).tolist()
        train = [records[i] for i in order[:n_train]]
        test = [records[i] for i in order[n_train:]]
        lo, hi = physionet.channel_range(train if hp["normalisation"] == "minmax" else records)
        train, test = (physionet.normalise(part, lo, hi, hp["normalisation"]) for part in (train, test))
        data_dim = records[0].values.shape[1]
        with torch.random.fork_rng(devices=[]):  # initialise from the seed without touching the global RNG
            torch.manual_seed(seed)
            model = LatentODE(data_dim, latent_dim=sizes["latent_dim"], rec_dim=sizes["rec_dim"],
                              gru_units=sizes["gru_units"], rec_to_gen_units=sizes["rec_to_gen_units"],
                              dynamics_units=sizes["dynamics_units"], dynamics_layers=sizes["dynamics_layers"])
        model = model.to(device=device, dtype=dtype)
        as_series = [[physionet.to_series(r, dtype, device) for r in part] for part in (train, test)]
        problem = LatentODEProblem(model, *as_series, batch_size=sizes["batch_size"], lr=float(hp["lr"]),
                                   n_samples=sizes["n_samples"], obs_std=floats["obs_std"],
                                   kl_delay=float(hp["kl_delay"]), kl_rate=float(hp["kl_rate"]),
                                   kl_epoch_iters=hp["kl_epoch_iters"],
                                   eval_batch_size=sizes["eval_batch_size"], eval_tol=floats["eval_tol"],
                                   eval_max_steps=sizes["eval_max_steps"], nfe_rtol=floats["nfe_rtol"],
                                   nfe_atol=floats["nfe_atol"], seed=seed)
        problem.provenance = self.provenance(hp, len(train), len(test))
        return problem

    def provenance(self, hp: dict, n_train: int, n_test: int) -> dict:
        """The problem's provenance (:func:`nodebench.datasets.catalog.provenance`); no validation split."""
        raise NotImplementedError


def _sets(value: Any) -> list[str]:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise UserError(f"hyper-parameter sets must list PhysioNet set folders, e.g. 'set-a,set-b' or "
                        f"['set-a', 'set-b'], got {value!r}")
    return [n.strip() for n in names]


class LatentODEPhysioNet(LatentODETask):
    """The latent ODE on PhysioNet 2012 of Kelly et al. (NeurIPS 2020; official ``latent_ode.py``)."""

    name = "latent_ode_physionet"
    description = ("latent ODE (GRU encoder, 20-dim decoder ODE, tanh MLP 4×50) on PhysioNet 2012, 37 channels, "
                   "1-h bins, as in Kelly et al. 2020; needs the challenge's set-a/set-b record files")
    defaults: ClassVar[dict[str, Any]] = {**LatentODETask.common, "n_records": None, "quantization": 1.0,
                                          "sets": "set-a,set-b"}
    #: bin width in hours; 0 keeps the records' minutes (:func:`nodebench.datasets.physionet.parse_record`);
    #: ``sets`` a comma-separated string or a list of set folders (checked by :meth:`check_hparams`)
    param_rules = {**LatentODETask.param_rules, "quantization": Param("quantization", "float", low=0.0),
                   "sets": Param("sets", "any")}

    def check_hparams(self, hp):
        super().check_hparams(hp)
        _sets(hp["sets"])
        if not hp["quantization"] < physionet.WINDOW_HOURS:
            raise UserError(f"hyper-parameter quantization must be a number of hours in [0, 48), "
                            f"got {hp['quantization']!r}")

    def records(self, hp: dict, seed: int) -> list[Record]:
        return physionet.load_physionet(sets=_sets(hp["sets"]), n_records=hp["n_records"],
                                        quantization=hp["quantization"])

    def provenance(self, hp: dict, n_train: int, n_test: int) -> dict:
        return provenance("physionet", n_train, 0, n_test, parts=_sets(hp["sets"]))


#: The most records ``latent_ode_synthetic`` generates: 8× PhysioNet 2012's 12,000, low enough that a typo
#: (``n_records = 1e12``) is an error, not a case that draws one record after another until its time limit
#: (10,000 records took 1.5 s on a shared 2-core machine).
MAX_RECORDS = 100_000


class LatentODESynthetic(LatentODETask):
    """Offline smoke preset of the latent ODE on synthetic series (:func:`synthetic_records`); not in the
    paper."""

    name = "latent_ode_synthetic"
    description = ("offline smoke preset: the TayNODE latent ODE on synthetic irregular, partly observed "
                   "multichannel damped sinusoids (not in the paper)")
    defaults: ClassVar[dict[str, Any]] = {**LatentODETask.common, "n_records": 400, "n_channels": 37, "n_obs": 16,
                                          "p_observe": 0.3, "noise": 0.05}
    #: checked up front, before any case runs: at least one training and one test record (with
    #: ``test_fraction``, :meth:`check_hparams`); whole hours 1…48; an observation probability in (0, 1]
    param_rules = {**LatentODETask.param_rules, "n_records": Param("n_records", "int", low=2, high=MAX_RECORDS),
                   "n_obs": Param("n_obs", "int", low=1, high=48),
                   "p_observe": Param("p_observe", "float", positive=True, high=1.0)}

    def check_hparams(self, hp):
        super().check_hparams(hp)
        _n_train(hp["n_records"], hp["test_fraction"])

    def records(self, hp: dict, seed: int) -> list[Record]:
        return synthetic_records(hp["n_records"], hp["n_channels"], hp["n_obs"], hp["p_observe"], hp["noise"],
                                 torch.Generator().manual_seed(seed))

    def provenance(self, hp: dict, n_train: int, n_test: int) -> dict:
        return provenance("synthetic irregular series (stand-in)", n_train, 0, n_test)


LATENT_ODE_TASKS: list[type[LatentODETask]] = [LatentODEPhysioNet, LatentODESynthetic]

__all__ = ["LATENT_ODE_TASKS", "LatentGRU", "LatentODE", "LatentODEPhysioNet", "LatentODEProblem",
           "LatentODESynthetic", "LatentODETask", "TanhMLPDynamics", "normal_init_", "synthetic_records"]
