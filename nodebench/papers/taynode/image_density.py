"""Image density estimation with a FFJORD CNF: the FFJORD MNIST experiment of Kelly et al. 2020.

Kelly, Bettencourt, Johnson, Duvenaud, "Learning Differential Equations that are Easy to Solve" (NeurIPS
2020, arXiv 2007.04504), official ``ffjord_mnist.py`` ("FFJORD
MNIST" column). One CNF block (no multiscale architecture) on the flattened image, with the
:class:`~nodebench.cnf.ConcatConvNet` field: ConcatConv2d 3×3 with 64-64-64 hidden channels and softplus,
then a ConcatConv2d back to the image's channels, last layer zero-initialised; Hutchinson divergence with
Rademacher probes (one probe per sample, fixed within a solve); t ∈ [0, 1]; Adam, LR 1e-3, batch 200; the
loss is bits/dim (+ λR through the harness's regulariser; K = 2 in the paper). The problem reuses
:class:`~nodebench.tasks.density.DensityProblem` (batching, NFE counting, the ``augment`` hook that the
regularisers rely on) through :func:`~nodebench.tasks.density.build_density_problem`.

**Preprocessing** (as the official code, which follows FFJORD):

1. Pixels as integer levels ``k ∈ {0, …, L−1}`` (MNIST: ``L = 256``, the uint8 values).
2. Uniform dequantisation ``x = (k + u) / L``, ``u ~ U[0, 1)`` per pixel, so ``x ∈ [0, 1)^D``. Our choice
   (a departure): the noise is drawn **once per split** at build time from a local generator seeded by
   the case seed (never the global RNG), so every method sees the same dequantised data and the test
   metrics are deterministic given the seed; the official script draws fresh noise for every batch.
3. Logit transform ``y = logit(s)``, ``s = α + (1 − 2α) x``, ``α = 1e-5``, applied inside the flow
   (:class:`LogitTransform`, an nflows transform placed before the CNF), with
   ``log|dy/dx| = log(1 − 2α) − log s − log(1 − s)`` per pixel. So ``flow.log_prob(x)`` and every NLL
   reported here are densities of ``x`` in ``[0, 1]^D`` (nats per image), not of the logits.

**Bits per dimension.** With ``NLL(x) = −log p(x)`` (nats, ``x ∈ [0, 1]^D``), the density of the
dequantised data in level units ``v = L·x`` is ``p(x)/L^D``, and ``E_u[log p_v(k + u)]`` is a lower bound
on the log-probability of the discrete image ``k`` (Theis et al. 2016). Hence

    bits/dim = (NLL(x) + D·log L) / (D·log 2) = NLL(x) / (D log 2) + log₂ L,

FFJORD's ``-(logpx/D − log 256)/log 2`` for ``L = 256``. The training loss is the batch mean of this
bits/dim (its gradient is the NLL's divided by ``D log 2``, which sets the scale of λ).

**Digits stand-in** (``cnf_image_digits``, offline, smoke tests only): scikit-learn's 8×8 digits, pixel
values 0…16 treated as ``L = 17`` levels (our choice: the data's own quantisation, not a rescaling to 256
levels, so bits/dim is bounded by log₂ 17 ≈ 4.09 for a uniform model and is not comparable to MNIST's).

**Metrics** (:meth:`ImageDensityProblem.evaluate`, first ``eval_size`` test images in batches of
``test_batch_size``):

- ``test_bpd``: bits/dim (formula above) with the reference solver, dopri5 at ``rtol = atol = eval_tol``
  and the ``eval_trace`` estimator (default Hutchinson, as the official evaluation; ``"exact"`` costs D
  vector-Jacobian products per evaluation and is practical only for small images);
- ``test_nll``: the same in nats per image of ``x ∈ [0, 1]^D`` (the headline the generic analyses pick);
- ``test_bpd_train_solver``: bits/dim with the training method's own solve;
- ``test_nfe``: evaluations of a dopri5 forward solve of the first test batch at ``rtol = atol = nfe_tol``
  with the training trace estimator (2 + 6 × attempted steps), as the density tasks. The batch is one
  state (dopri5's RMS error norm over the whole batch sets the steps); the official script solves each
  image on its own under ``jax.vmap`` and averages their NFE over all test batches;
- ``reference_nfe``: evaluations per reference solve of the first test batch;
- ``t1``: the end time.

**Departures** (hyper-parameters or harness limits): no LR warm-up (official: linear over 1000 iterations)
and no ÷10 decay after epoch 80 (the harness uses a constant Adam LR); fixed dequantisation (above); the
harness runs a fixed number of iterations instead of 100 epochs; ``weight_decay = 0``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import torch
from nflows.flows.base import Flow
from nflows.transforms.base import CompositeTransform, Transform

from nodebench.cnf import TRACES, ConcatConvNet
from nodebench.config import Param
from nodebench.datasets import Splits
from nodebench.datasets.catalog import provenance
from nodebench.datasets.images import DATASET_LABELS, load_images
from nodebench.errors import UserError
from nodebench.tasks.base import Task, int_hparam, positive_hparam
from nodebench.tasks.density import (CNF_PARAM_RULES, REFERENCE_METHOD, DensityProblem, _counting_solve,
                                     build_density_problem)

LOGIT_ALPHA = 1e-5

IMAGE_DENSITY_DEFAULTS: dict[str, Any] = {
    "channels": 64,  # hidden channels of every ConcatConv2d layer
    "nlayers": 3,  # hidden layers (the official 64-64-64)
    "ksize": 3,
    "activation": "softplus",
    "t1": 1.0,
    "train_t1": False,
    "trace": "hutchinson",  # training (and test_nfe) trace estimator
    "noise": "rademacher",
    "eval_trace": "hutchinson",  # trace estimator of test_bpd / test_nll
    "alpha": LOGIT_ALPHA,
    "batch_size": 200,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "dtype": "float32",
    "n_train": None,  # None: all
    "n_test": None,
    "eval_tol": 1e-5,
    "nfe_tol": 1e-5,
    "eval_size": 1000,
    "test_batch_size": 200,
}


# -- preprocessing -----------------------------------------------------------------------------------------

def dequantize(levels: torch.Tensor, n_levels: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform dequantisation ``(k + u) / L``, ``u ~ U[0, 1)`` drawn from ``generator`` (float64, CPU)."""
    levels = torch.as_tensor(levels, dtype=torch.float64)
    if levels.numel() and (levels.min() < 0 or levels.max() > n_levels - 1 or (levels != levels.round()).any()):
        raise UserError(f"pixel levels must be integers in 0..{n_levels - 1}")
    noise = torch.rand(levels.shape, generator=generator, dtype=torch.float64)
    return (levels + noise) / n_levels


def logit_transform(x: torch.Tensor, alpha: float = LOGIT_ALPHA) -> tuple[torch.Tensor, torch.Tensor]:
    """``y = logit(α + (1 − 2α) x)`` elementwise and ``log|det ∂y/∂x|`` per sample (summed over dim 1…).

    ``1 − s`` is computed as ``α + (1 − 2α)(1 − x)``, which keeps its relative precision for x near 1.
    """
    s = alpha + (1 - 2 * alpha) * x
    s1 = alpha + (1 - 2 * alpha) * (1 - x)
    log_s, log_s1 = torch.log(s), torch.log(s1)
    y = log_s - log_s1
    logdet = (math.log1p(-2 * alpha) - log_s - log_s1).reshape(x.shape[0], -1).sum(dim=1)
    return y, logdet


def inverse_logit_transform(y: torch.Tensor, alpha: float = LOGIT_ALPHA) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`logit_transform`: ``x = (sigmoid(y) − α)/(1 − 2α)`` and ``log|det ∂x/∂y|``."""
    x = (torch.sigmoid(y) - alpha) / (1 - 2 * alpha)
    logdet = (torch.nn.functional.logsigmoid(y) + torch.nn.functional.logsigmoid(-y)
              - math.log1p(-2 * alpha)).reshape(y.shape[0], -1).sum(dim=1)
    return x, logdet


class LogitTransform(Transform):
    """:func:`logit_transform` as an nflows transform (data ``x ∈ [0, 1]^D`` → logits), no parameters."""

    def __init__(self, alpha: float = LOGIT_ALPHA):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise UserError(f"logit alpha must lie in [0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, inputs, context=None):
        return logit_transform(inputs, self.alpha)

    def inverse(self, inputs, context=None):
        return inverse_logit_transform(inputs, self.alpha)


def bits_per_dim(nll: float | torch.Tensor, dim: int, n_levels: int = 256):
    """``(NLL + D log L) / (D log 2)``: NLL in nats of ``x ∈ [0, 1]^D`` to bits/dim of the L-level data."""
    return (nll + dim * math.log(n_levels)) / (dim * math.log(2))


# -- the problem -------------------------------------------------------------------------------------------

class ImageDensityProblem(DensityProblem):
    """A :class:`DensityProblem` on dequantised images in ``[0, 1]^D`` with the logit transform in the flow.

    Args (besides :class:`DensityProblem`'s):
        n_levels: ``L``, the number of pixel levels (256 for 8-bit images).
        alpha: the logit transform's ``α``.
        eval_trace: trace estimator of the test NLL, ``"hutchinson"`` or ``"exact"``.
    """

    def __init__(self, data, dynamics, *, n_levels: int, alpha: float = LOGIT_ALPHA,
                 eval_trace: str = "hutchinson", **kwargs):
        super().__init__(data, dynamics, **kwargs)
        if eval_trace not in ("hutchinson", "exact"):
            raise UserError(f"unknown eval_trace {eval_trace!r}; valid: hutchinson, exact")
        self.n_levels = int(n_levels)
        self.eval_trace = eval_trace
        self.logit = LogitTransform(alpha)
        self.flow = Flow(CompositeTransform([self.logit, self.cnf]), self.flow._distribution)
        self.model = self.flow

    def bits_per_dim(self, nll):
        """bits/dim of the L-level data from an NLL in nats of ``x ∈ [0, 1]^D`` (module docstring)."""
        return bits_per_dim(nll, self.dim, self.n_levels)

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        """The training objective: mean bits/dim of the batch (the official loss)."""
        return self.bits_per_dim(-self.flow.log_prob(x).mean())

    @torch.no_grad()
    def evaluate(self, solve: Callable) -> dict[str, float]:
        """``test_bpd``, ``test_nll``, ``test_bpd_train_solver``, ``test_nfe``, ``reference_nfe``, ``t1``."""
        batches = self._test_batches()
        try:
            self.cnf.trace = self.train_trace
            counts: list[int] = []
            self.cnf.solve = _counting_solve("dopri5", counts, rtol=self.nfe_tol, atol=self.nfe_tol,
                                             options={"max_num_steps": 100_000})
            self.flow.log_prob(batches[0])
            test_nfe = counts[0]
            self.cnf.trace = self.eval_trace
            counts = []
            reference = _counting_solve(REFERENCE_METHOD, counts, rtol=self.eval_tol, atol=self.eval_tol,
                                        options={"max_num_steps": 100_000})
            nll = self._test_nll(reference, batches)
            reference_nfe = counts[0]
            nll_train_solver = self._test_nll(solve, batches)
        finally:
            self.cnf.solve = solve
            self.cnf.trace = self.train_trace
        return {"test_bpd": self.bits_per_dim(nll), "test_nll": nll,
                "test_bpd_train_solver": self.bits_per_dim(nll_train_solver), "test_nfe": float(test_nfe),
                "reference_nfe": float(reference_nfe), "t1": float(self.cnf.t1)}


# -- tasks -------------------------------------------------------------------------------------------------

def _cap(hp: Mapping[str, Any], key: str) -> int | None:
    return None if hp[key] is None else int_hparam(hp, key, 1)


class ImageDensityTask(Task):
    """FFJORD CNF density estimation on one image data set (see the module docstring)."""

    paper = "taynode"
    metrics = ("test_bpd", "test_nll", "test_bpd_train_solver", "test_nfe", "reference_nfe", "t1")
    defaults = IMAGE_DENSITY_DEFAULTS
    param_rules = CNF_PARAM_RULES | {"eval_trace": Param("eval_trace", "str", choices=TRACES)}
    dataset: str = ""
    n_levels: int = 256

    def levels(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Train and test images as integer levels 0…L−1, shape (N, C, H, W)."""
        raw = load_images(self.dataset, seed=seed)
        scale = self.n_levels - 1  # the loaders return levels / (L − 1)
        return (raw.train_x.double() * scale).round(), (raw.test_x.double() * scale).round()

    def check_hparams(self, hp):
        if not hp["alpha"] < 0.5:
            raise UserError(f"hyper-parameter alpha (the logit transform's) must lie in (0, 0.5), got {hp['alpha']!r}")
        if hp["ksize"] % 2 == 0:  # the ConcatConv2d layers pad ksize // 2 to keep the image size: odd kernels only
            raise UserError(f"task {self.name}: hyper-parameter ksize must be a positive odd integer, "
                            f"got {hp['ksize']!r}")

    def time_span(self, hp):
        return hp["t1"]

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        channels, nlayers = int_hparam(hp, "channels", 1), int_hparam(hp, "nlayers", 1)
        ksize = int_hparam(hp, "ksize", 1)
        alpha = float(hp["alpha"])
        positive_hparam(hp, "t1")
        int_hparam(hp, "eval_size", 1)
        int_hparam(hp, "test_batch_size", 1)
        n_train, n_test = _cap(hp, "n_train"), _cap(hp, "n_test")
        train, test = self.levels(seed)
        train, test = train[:n_train], test[:n_test]
        shape = tuple(train.shape[1:])
        generator = torch.Generator().manual_seed(seed)
        x_train = dequantize(train, self.n_levels, generator).flatten(1)
        x_test = dequantize(test, self.n_levels, generator).flatten(1)
        splits = Splits(x_train.numpy(), np.empty((0, x_train.shape[1])), x_test.numpy())

        def dynamics(dim: int) -> ConcatConvNet:
            return ConcatConvNet(shape, (channels,) * nlayers, hp["activation"], ksize=ksize)

        problem = build_density_problem(splits, hp, seed=seed, device=torch.device(device), dynamics=dynamics,
                                        problem_cls=ImageDensityProblem, n_levels=self.n_levels, alpha=alpha,
                                        eval_trace=hp["eval_trace"])
        problem.provenance = provenance(DATASET_LABELS.get(self.dataset, self.dataset), len(train), 0, len(test))
        return problem


class CnfImageMNIST(ImageDensityTask):
    """FFJORD MNIST density estimation of Kelly et al. (NeurIPS 2020; official ``ffjord_mnist.py``), FFJORD
    after Grathwohl et al. (ICLR 2019)."""

    name = "cnf_image_mnist"
    dataset = "mnist"
    n_levels = 256
    description = ("FFJORD MNIST density (Kelly et al. 2020): one CNF block, ConcatConv2d 64-64-64 softplus, "
                   "Hutchinson/Rademacher, dequantised + logit, bits/dim, batch 200; needs the IDX files")


class CnfImageDigits(ImageDensityTask):
    """Offline stand-in for :class:`CnfImageMNIST` on sklearn's 8×8 digits; not an experiment of the paper."""

    name = "cnf_image_digits"
    dataset = "digits"
    n_levels = 17
    description = ("offline stand-in for cnf_image_mnist: sklearn 8×8 digits as 17 levels, same CNF and "
                   "preprocessing (smoke tests only)")


IMAGE_DENSITY_TASKS: list[type[ImageDensityTask]] = [CnfImageMNIST, CnfImageDigits]

__all__ = ["IMAGE_DENSITY_TASKS", "ImageDensityProblem", "ImageDensityTask", "LogitTransform", "bits_per_dim",
           "dequantize", "inverse_logit_transform", "logit_transform"]
