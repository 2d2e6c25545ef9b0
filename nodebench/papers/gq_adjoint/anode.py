"""The two Augmented-Neural-ODE toys of Norcliffe & Deisenroth, "Faster Training of Neural ODEs Using
Gauß–Legendre Quadrature" (TMLR 2023, arXiv 2308.10644), after Dupont et al. (2019, arXiv 1904.01681).

Both follow the paper's official code (``a-norcliffe/torch_gq_adjoint``, experiment files
``experiments/g1d.py`` and ``experiments/nested_spheres.py``, data from ``datasets/datasets.py`` and
``datasets/make_nested_spheres_data.py``, modules from ``models/modules.py``); the settings are the official
experiment files'.
The hidden width ``width`` is the swept hyper-parameter (5 … 3000 in the paper's runs).

**g1d** (``g1d``): map x = −1 to 1 and x = 1 to −1 (two points, full batch). The state is x augmented
with ``augment`` zeros (3: dimension 4), solved on t = [0, ``t_end``] with ``t_end = 1``; the dynamics
are f(z) = Linear(w→4)(σ(Linear(w→w)(σ(Linear(4→w)(z))))) with σ = Softplus and no time input
(``mlp``); the prediction is the first coordinate of z(T). MSE loss, Adam lr 1e-2, w = 20
(w² + 10w + 4 parameters).

**Nested spheres** (``nested_spheres``): points in [−1, 1]² drawn uniformly and kept by rejection,
class 0 if r < 0.4, class 1 if 0.7 < r < 0.9; ``n_train`` = 1000 and ``n_test`` = 50 points *per
class*. The state is x augmented with 3 zeros (dimension 5); the dynamics are an MLP over [z, t] (t
concatenated as a feature; ``mlp_t``), 2 hidden Softplus layers of width w, output 5; a linear head
5→2 on z(T) gives the logits. Cross-entropy loss, mini-batches of 200, Adam lr 1e-2, w = 20
(w² + 13w + 17 parameters with the head). The head is trained with the field (it is part of
``problem.model``) but is not part of ``problem.field``, the dynamics every solve evaluates.

**Metrics.** Headline metrics use the reference solver of :mod:`nodebench.tasks.trajectory` (dopri5,
rtol 1e-7, atol 1e-9), whatever method trained the model, so methods are compared on the learned
model rather than on their training discretisation:

- g1d: ``test_mse`` on the two points with the reference solver; ``train_mse`` on the same two points
  with the **training method's own solve** at its training tolerances (with the reference solver it
  would repeat ``test_mse``; this is the quantity the official trainer reports as validation loss);
- nested spheres: ``test_accuracy`` and ``test_loss`` (cross-entropy) on the test split and
  ``train_accuracy`` on the whole training split, all with the reference solver.

**Our choices** (not in the official code):

- Data come from a local ``torch.Generator`` seeded with ``data_seed`` (default: the run's seed), never
  from the global RNG. The official code draws the nested-spheres data once with NumPy's global RNG and
  reuses the same files for all repeats; set ``data_seed`` to a constant to hold the data fixed across
  seeds as it does. Train and test points come from one generator, train first.
- The model is initialised with PyTorch's default initialisation after ``torch.manual_seed(seed)`` (the
  field first, then the head), as the official code does under its own seed.
- One harness iteration is one mini-batch: batches are consecutive slices of a per-epoch permutation
  (a local generator seeded with ``seed``), like a shuffled ``DataLoader``; a last partial batch is
  dropped so every iteration costs the same (2000 / 200 divides exactly, so the default loses nothing);
  ``batch_size = None`` trains full batch.
- Solver tolerances are solver options of the experiment (the paper uses dopri5 with rtol = atol = 1e-3
  and C = ``gtol`` = 0.1), not task hyper-parameters. Fixed-step methods without ``step_size`` take a
  single step over [0, T]: give them a ``step_size``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torchdiffeq import odeint

from nodebench.config import Param
from nodebench.papers.gq_adjoint.batching import EpochBatches
from nodebench.tasks.base import Problem, Task, data_seed, dtype_from_name, int_hparam, positive_hparam
from nodebench.tasks.trajectory import REFERENCE_SOLVER

INNER_RADIUS, RING_INNER, RING_OUTER = 0.4, 0.7, 0.9


def reference_solve(func: Callable, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The tight reference solve used for headline metrics (:data:`~nodebench.tasks.trajectory.REFERENCE_SOLVER`)."""
    return odeint(func, y0, t, **REFERENCE_SOLVER)


# -- modules ----------------------------------------------------------------------------------------------

class SoftplusMLP(nn.Module):
    """``f(t, z) = L₃ σ(L₂ σ(L₁ h))`` with σ = Softplus and h = z, or [z, t] when ``time_input``.

    The official code's ``mlp`` (``time_input=False``) and ``mlp_t`` (``time_input=True``). The time
    feature is ``t · 1`` broadcast over ``z``'s leading dimensions, so the module runs under
    ``torch.func.vmap`` over (t, z) with a 0-d ``t`` per node (the ``gq_batched`` method).

    Args:
        dim: state dimension (input, and output unless ``out_dim``).
        width: hidden width w.
        time_input: concatenate t as an extra input feature.
        out_dim: output dimension (default ``dim``).
    """

    def __init__(self, dim: int, width: int, time_input: bool = False, out_dim: int | None = None):
        super().__init__()
        self.time_input = time_input
        self.net = nn.Sequential(nn.Linear(dim + int(time_input), width), nn.Softplus(),
                                 nn.Linear(width, width), nn.Softplus(),
                                 nn.Linear(width, dim if out_dim is None else out_dim))

    def forward(self, t, z):
        if self.time_input:
            z = torch.cat([z, t.to(z.dtype) * torch.ones_like(z[..., :1])], dim=-1)
        return self.net(z)


def augment_zeros(x: torch.Tensor, extra: int) -> torch.Tensor:
    """``x`` (N, D) with ``extra`` zero columns appended (ANODE's augmentation; ``zero_aug``)."""
    return torch.cat([x, x.new_zeros(x.shape[0], extra)], dim=-1)


# -- g1d ----------------------------------------------------------------------------------------------------

class G1DProblem(Problem):
    """Fit z(T)[0] = y from z(0) = [x, 0, …, 0] on the two g1d points (full batch).

    Args:
        field: the dynamics (a :class:`SoftplusMLP` without time input).
        x, y: inputs and targets, (N, 1).
        augment: zeros appended to the state.
        t: the solve's times [0, T].
        lr: Adam learning rate.
    """

    def __init__(self, field: nn.Module, x: torch.Tensor, y: torch.Tensor, *, augment: int, t: torch.Tensor,
                 lr: float):
        self.model = field
        self.field = field
        self.x, self.y, self.t = x, y, t
        self.z0 = augment_zeros(x, augment)
        self.lr = lr

    def predict(self, solve: Callable) -> torch.Tensor:
        """The first coordinate of z(T) for every point, (N, 1)."""
        return solve(self.field, self.z0, self.t)[-1][:, :1]

    def loss(self, solve: Callable) -> torch.Tensor:
        return F.mse_loss(self.predict(solve), self.y)

    @torch.no_grad()
    def evaluate(self, solve: Callable) -> dict[str, float]:
        return {"test_mse": float(F.mse_loss(self.predict(reference_solve), self.y)),
                "train_mse": float(F.mse_loss(self.predict(solve), self.y))}


class G1D(Task):
    """The g1d task: ANODE's 1-D toy (Dupont et al. 2019) as run by Norcliffe & Deisenroth (TMLR 2023; official
    ``experiments/g1d.py``), with :class:`G1DProblem` (see the module docstring)."""

    name = "g1d"
    paper = "gq_adjoint"
    metrics = ("test_mse", "train_mse")
    description = ("ANODE 1-D toy: -1→1, 1→-1, 3 augmented zeros, Softplus MLP width w (Norcliffe & Deisenroth 2023, "
                   "official code)")
    defaults: ClassVar[dict[str, Any]] = {"width": 20, "augment": 3, "t_end": 1.0, "lr": 1e-2, "dtype": "float32"}

    def time_span(self, hp):
        return hp["t_end"]

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        dtype = dtype_from_name(hp["dtype"])
        width = int_hparam(hp, "width", 1)
        augment = int_hparam(hp, "augment", 0)
        t_end = positive_hparam(hp, "t_end")
        move = {"device": torch.device(device), "dtype": dtype}
        x = torch.tensor([[-1.0], [1.0]], **move)
        t = torch.tensor([0.0, t_end], **move)
        torch.manual_seed(seed)
        field = SoftplusMLP(1 + augment, width).to(**move)
        return G1DProblem(field, x, -x, augment=augment, t=t, lr=float(hp["lr"]))


# -- nested spheres -----------------------------------------------------------------------------------------

def nested_spheres_data(n_per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` points of each class by rejection sampling in [−1, 1]² (float64, CPU).

    Returns:
        ``x`` (2n, 2) and labels ``y`` (2n,), class 0 (r < 0.4) first, then class 1 (0.7 < r < 0.9);
        within a class, points keep the order they were drawn in (the official generator's order).
    """
    inner, ring = [], []
    n_inner = n_ring = 0
    chunk = max(64, 8 * n_per_class)
    while n_inner < n_per_class or n_ring < n_per_class:
        x = 2 * torch.rand(chunk, 2, generator=generator, dtype=torch.float64) - 1
        r = x.norm(dim=1)
        inner.append(x[r < INNER_RADIUS])
        ring.append(x[(r > RING_INNER) & (r < RING_OUTER)])
        n_inner += len(inner[-1])
        n_ring += len(ring[-1])
    x = torch.cat([torch.cat(inner)[:n_per_class], torch.cat(ring)[:n_per_class]])
    y = torch.cat([torch.zeros(n_per_class, dtype=torch.long), torch.ones(n_per_class, dtype=torch.long)])
    return x, y


class Classifier(nn.Module):
    """The trained model: the dynamics ``field`` and the linear ``head`` on z(T)."""

    def __init__(self, field: nn.Module, head: nn.Module):
        super().__init__()
        self.field, self.head = field, head


class NestedSpheresProblem(Problem):
    """Classify points by a linear head on z(T), z(0) = [x, 0, 0, 0].

    Args:
        model: a :class:`Classifier` (field and head).
        x_train, y_train, x_test, y_test: points (N, 2) and labels (N,).
        augment: zeros appended to the state.
        t: the solve's times [0, T].
        batch_size: points per iteration (capped by the training-set size: full batch).
        lr: Adam learning rate.
        seed: seeds the local generator of the batch order.
    """

    def __init__(self, model: Classifier, x_train, y_train, x_test, y_test, *, augment: int, t: torch.Tensor,
                 batch_size: int, lr: float, seed: int):
        self.model = model
        self.field = model.field
        self.head = model.head
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.augment = augment
        self.t = t
        self.lr = lr
        self.seed = seed
        self._batches = EpochBatches(len(x_train), batch_size, torch.Generator().manual_seed(seed))
        self.batch_size = self._batches.batch_size

    def logits(self, solve: Callable, x: torch.Tensor) -> torch.Tensor:
        """The head applied to z(T) from z(0) = [x, 0…0], (N, 2)."""
        return self.head(solve(self.field, augment_zeros(x, self.augment), self.t)[-1])

    def next_batch(self) -> torch.Tensor:
        """Indices of the next mini-batch: consecutive slices of a per-epoch permutation."""
        idx, self._batches = self._batches.next()
        return idx.to(self.x_train.device)

    def loss(self, solve: Callable) -> torch.Tensor:
        idx = self.next_batch()
        return F.cross_entropy(self.logits(solve, self.x_train[idx]), self.y_train[idx])

    def loss_fixed(self, solve: Callable) -> torch.Tensor:
        """A deterministic loss for gradient checks: the first batch of the first epoch, every call."""
        idx = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(self.seed))
        idx = idx[:self.batch_size].to(self.x_train.device)
        return F.cross_entropy(self.logits(solve, self.x_train[idx]), self.y_train[idx])

    @torch.no_grad()
    def evaluate(self, solve: Callable) -> dict[str, float]:
        test = self.logits(reference_solve, self.x_test)
        train = self.logits(reference_solve, self.x_train)
        return {"test_accuracy": float((test.argmax(-1) == self.y_test).double().mean()),
                "test_loss": float(F.cross_entropy(test, self.y_test)),
                "train_accuracy": float((train.argmax(-1) == self.y_train).double().mean())}


class NestedSpheres(Task):
    """The nested-spheres task: ANODE's 2-D classification toy (Dupont et al. 2019) as run by Norcliffe &
    Deisenroth (TMLR 2023; official ``experiments/nested_spheres.py``), with :class:`NestedSpheresProblem`."""

    name = "nested_spheres"
    paper = "gq_adjoint"
    metrics = ("test_accuracy", "test_loss", "train_accuracy")
    description = ("ANODE nested spheres: r<0.4 vs 0.7<r<0.9 in 2-D, 3 augmented zeros, MLP over [z, t] width w, "
                   "linear head (Norcliffe & Deisenroth 2023, official code)")
    defaults: ClassVar[dict[str, Any]] = {"width": 20, "augment": 3, "n_train": 1000, "n_test": 50, "batch_size": 200,
                                          "t_end": 1.0, "lr": 1e-2, "dtype": "float32", "data_seed": None}
    #: ``batch_size = null`` trains on the full batch of both classes (2 × n_train)
    param_rules: ClassVar[dict[str, Param]] = {"batch_size": Param("batch_size", "int", low=1, optional=True)}

    def time_span(self, hp):
        return hp["t_end"]

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        dtype = dtype_from_name(hp["dtype"])
        width = int_hparam(hp, "width", 1)
        augment = int_hparam(hp, "augment", 0)
        n_train = int_hparam(hp, "n_train", 1)
        n_test = int_hparam(hp, "n_test", 1)
        batch_size = 2 * n_train if hp["batch_size"] is None else int_hparam(hp, "batch_size", 1)  # None: full batch
        t_end = positive_hparam(hp, "t_end")
        generator = torch.Generator().manual_seed(data_seed(hp, seed))
        x_train, y_train = nested_spheres_data(n_train, generator)
        x_test, y_test = nested_spheres_data(n_test, generator)
        device = torch.device(device)
        move = {"device": device, "dtype": dtype}
        torch.manual_seed(seed)
        dim = 2 + augment
        model = Classifier(SoftplusMLP(dim, width, time_input=True), nn.Linear(dim, 2)).to(**move)
        return NestedSpheresProblem(model, x_train.to(**move), y_train.to(device), x_test.to(**move),
                                    y_test.to(device), augment=augment, t=torch.tensor([0.0, t_end], **move),
                                    batch_size=batch_size, lr=float(hp["lr"]), seed=seed)
