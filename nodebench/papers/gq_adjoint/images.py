"""Image classification with a convolutional neural ODE: the image experiments of Norcliffe & Deisenroth,
"Faster Training of Neural ODEs Using Gauß–Legendre Quadrature" (TMLR 2023, arXiv 2308.10644), after the
official code ``a-norcliffe/torch_gq_adjoint``
(``experiments/images.py``, ``models/modules.py``: ``downsampling``, ``convolutions``, ``fc_layers``).

**Model** (as in the official code):

- encoder: BatchNorm2d(C) → ReLU → conv 3×3 (C→10, no padding) → max-pool 2 → ReLU → conv 3×3 (10→10,
  no padding). The ODE state is the encoder output: 10×11×11 = 1210 for MNIST, 10×13×13 = 1690 for
  32-pixel images (CIFAR-10, SVHN);
- dynamics ``f(z)``: conv 3×3 (10→w) → Softplus → conv 3×3 (w→w) → Softplus → conv 3×3 (w→10), padding 1,
  no time input, solved on [0, 1]; ``w = width`` (default 50; the paper sweeps 50, 200, 350, 500);
- decoder: flatten → Linear(state→50) → ReLU → Linear(50→10), on z(1).

With ``width = 50`` this has 93,682 parameters for MNIST (31,610 of them in ``f``) and 117,866 for
32-pixel images, the counts derived from the official code. ``problem.model`` holds encoder,
dynamics and decoder (all trained); ``problem.field`` is only the dynamics.

**Training** (official defaults): cross-entropy on mini-batches of 32, Adam with lr 1e-3; the official
runs use dopri5 at rtol = atol = 1e-3 (pass those as the case's solver options) and 15 epochs. Batches are
consecutive slices of a per-epoch permutation drawn from a ``torch.Generator`` seeded by the seed, never
the global RNG. The loss runs the model in train mode (BatchNorm uses batch statistics); evaluation runs
it in eval mode (running statistics).

**Metrics** (:meth:`ImageProblem.evaluate`): ``test_accuracy`` and ``test_loss`` (mean cross-entropy) on
the test split (the first ``n_test`` images), and ``reference_nfe`` (mean evaluations of ``f`` per
reference solve of one evaluation batch). Our choice: the official code validates with the training
solver and tolerance; nodebench evaluates every method with one reference solver so that methods are
compared on the learned model: dopri5 at ``rtol = atol = eval_tol`` (1e-5; the 1e-7/1e-9 used elsewhere
costs too many steps for a convolutional field in float32) with at most ``eval_max_steps`` steps (a solve
that needs more stops the run as diverged).

**Data** (:mod:`nodebench.datasets.images`): MNIST, CIFAR-10 and SVHN from their standard files in the
data directory, scaled to [0, 1] like torchvision's ``ToTensor()`` with no normalisation, standard
train/test splits. They are never downloaded (torchvision is not usable here);
``datasets/README.md`` says where to get them. ``images_digits`` is an offline smoke preset on
scikit-learn's 8×8 digits, not part of the paper.

**Our choices, beyond the official code:**

- ``encoder_padding``: the unpadded encoder shrinks 8×8 digits to a 1×1 state, so images smaller than
  28 pixels get padding 1 in both encoder convolutions (state 10×4×4 for digits); ``None`` means this
  automatic rule, 0 or 1 force it;
- ``n_train``/``n_test`` keep the first images of each split (``None``: all);
- evaluation runs BatchNorm in eval mode (running statistics). The official trainer never switches the
  model to eval mode, so its validation normalises each validation batch by that batch's own statistics
  (500 images; 16 for SVHN), and its accuracies depend on that batch size;
- ``eval_batch_size`` is 500 for every data set (the official SVHN runs validate in batches of 16); with
  BatchNorm in eval mode it only changes memory;
- a last partial training batch is dropped every epoch (the official ``DataLoader`` keeps it); the paper
  preset runs ⌈15 · N / 32⌉ iterations, 15 epochs' worth of images (the official runs take 15 · ⌈N / 32⌉
  steps: the same for MNIST, 7 more for CIFAR-10, 10 more for SVHN);
- the state stays an image (B, 10, H, W) instead of the official flattened vector; the solvers see the
  same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchdiffeq import odeint

from nodebench.datasets.catalog import provenance
from nodebench.datasets.images import DATASET_LABELS, ImageSplits, load_images
from nodebench.config import Param
from nodebench.errors import UserError
from nodebench.harness.nfe import CallCounter
from nodebench.papers.gq_adjoint.batching import EpochBatches
from nodebench.tasks.base import Problem, Task, dtype_from_name, int_hparam, optional_count

REFERENCE_METHOD = "dopri5"
T_SPAN = (0.0, 1.0)

DEFAULTS: dict[str, Any] = {
    "width": 50,
    "state_channels": 10,
    "decoder_hidden": 50,
    "encoder_padding": None,  # None: 0 for images of 28 px and more (the official code), 1 below
    "batch_size": 32,
    "lr": 1e-3,
    "eval_batch_size": 500,
    "eval_tol": 1e-5,
    "eval_max_steps": 2000,
    "n_train": None,
    "n_test": None,
    "dtype": "float32",
}


class ConvDynamics(nn.Module):
    """``f(t, z)``: conv 3×3 (C→w) → Softplus → conv 3×3 (w→w) → Softplus → conv 3×3 (w→C), padding 1.

    No time input; works on (B, C, H, W) and under ``torch.func.vmap`` (the ``gq_batched`` method).
    """

    def __init__(self, channels: int = 10, width: int = 50):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(width, channels, kernel_size=3, padding=1)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        z = F.softplus(self.conv1(z))
        z = F.softplus(self.conv2(z))
        return self.conv3(z)


class Encoder(nn.Module):
    """BatchNorm → ReLU → conv 3×3 → max-pool 2 → ReLU → conv 3×3 (the official ``downsampling``)."""

    def __init__(self, in_channels: int, channels: int = 10, padding: int = 0):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=padding)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(x))
        x = F.max_pool2d(self.conv1(x), kernel_size=2)
        return self.conv2(F.relu(x))


def state_shape(image_size: tuple[int, int], channels: int = 10, padding: int = 0) -> tuple[int, int, int]:
    """The encoder's output shape (C, H, W) for images of ``image_size`` (H, W)."""
    h, w = ((s + 2 * padding - 2) // 2 + 2 * padding - 2 for s in image_size)
    return channels, h, w


def default_padding(image_size: tuple[int, int]) -> int:
    """0 (the official encoder) for images of at least 28 pixels a side, else 1 (our choice, see above)."""
    return 0 if min(image_size) >= 28 else 1


class ImageODEModel(nn.Module):
    """Encoder, ODE dynamics and decoder; :meth:`forward` classifies with a given ``solve``."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], *, width: int = 50, state_channels: int = 10,
                 decoder_hidden: int = 50, n_classes: int = 10, encoder_padding: int | None = None):
        super().__init__()
        padding = default_padding(image_size) if encoder_padding is None else int(encoder_padding)
        if padding not in (0, 1):
            raise UserError(f"encoder_padding must be 0, 1 or None (automatic), got {encoder_padding!r}")
        self.state_shape = state_shape(image_size, state_channels, padding)
        if min(self.state_shape[1:]) < 1:
            raise UserError(f"images of {image_size[0]}×{image_size[1]} px leave no ODE state with encoder "
                            f"padding {padding}; use encoder_padding=1")
        self.encoder = Encoder(in_channels, state_channels, padding)
        self.field = ConvDynamics(state_channels, width)
        self.decoder = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.state_shape), decoder_hidden), nn.ReLU(),
                                     nn.Linear(decoder_hidden, n_classes))

    def forward(self, x: torch.Tensor, solve: Callable, field: nn.Module | None = None,
                t: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``x``: encode, solve ``field`` (default: the model's own) on ``t`` (default [0, 1]), decode."""
        if t is None:
            t = torch.tensor(T_SPAN, dtype=x.dtype, device=x.device)
        z0 = self.encoder(x)
        zs = solve(self.field if field is None else field, z0, t)
        return self.decoder(zs[-1])


class ImageProblem(Problem):
    """A convolutional neural ODE classifier on image data (tensors already on the device).

    Args:
        data: train/test images (N, C, H, W) in [0, 1] and int64 labels, on the device, any float dtype;
            batches are cast to ``dtype``.
        model: the :class:`ImageODEModel`, on the device in ``dtype``.
        batch_size, lr: training settings; ``eval_batch_size``, ``eval_tol``, ``eval_max_steps``: evaluation.
        seed: seeds the batch order.
    """

    def __init__(self, data: ImageSplits, model: ImageODEModel, *, dtype: torch.dtype, batch_size: int, lr: float,
                 eval_batch_size: int, eval_tol: float, eval_max_steps: int, seed: int):
        self.data, self.model, self.field = data, model, model.field
        self.dtype = dtype
        self.lr = float(lr)
        self.batch_size = max(1, min(int(batch_size), len(data.train_x)))
        self.eval_batch_size = max(1, int(eval_batch_size))
        self.eval_tol, self.eval_max_steps = float(eval_tol), int(eval_max_steps)
        device = data.train_x.device
        self.t = torch.tensor(T_SPAN, dtype=dtype, device=device)
        self._batches = EpochBatches(len(data.train_x), self.batch_size, torch.Generator().manual_seed(seed))

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx, self._batches = self._batches.next()
        idx = idx.to(self.data.train_x.device)
        return self.data.train_x[idx].to(self.dtype), self.data.train_y[idx]

    def _loss(self, solve: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.model.train()
        return F.cross_entropy(self.model(x, solve, self.field, self.t), y)

    def loss(self, solve: Callable) -> torch.Tensor:
        """Mean cross-entropy of the next mini-batch (model in train mode), solved with ``solve``."""
        return self._loss(solve, *self._next_batch())

    def loss_fixed(self, solve: Callable) -> torch.Tensor:
        """A deterministic loss for gradient checks: the first ``batch_size`` training images."""
        x, y = self.data.train_x[:self.batch_size].to(self.dtype), self.data.train_y[:self.batch_size]
        return self._loss(solve, x, y)

    @torch.no_grad()
    def evaluate(self, solve: Callable) -> dict[str, float]:
        """Test accuracy, mean cross-entropy and NFE per solve with the reference solver, model in eval mode."""
        self.model.eval()
        counts: list[int] = []

        def reference(func, y0, t):
            counted = CallCounter(func)
            out = odeint(counted, y0, t, method=REFERENCE_METHOD, rtol=self.eval_tol, atol=self.eval_tol,
                         options={"max_num_steps": self.eval_max_steps})
            counts.append(counted.nfe)
            return out

        correct, total_loss = 0, 0.0
        n = len(self.data.test_x)
        for start in range(0, n, self.eval_batch_size):
            x = self.data.test_x[start:start + self.eval_batch_size].to(self.dtype)
            y = self.data.test_y[start:start + self.eval_batch_size]
            logits = self.model(x, reference, self.field, self.t)
            total_loss += float(F.cross_entropy(logits.double(), y, reduction="sum"))
            correct += int((logits.argmax(dim=1) == y).sum())
        return {"test_accuracy": correct / n, "test_loss": total_loss / n,
                "reference_nfe": sum(counts) / len(counts)}


class ImageTask(Task):
    """A convolutional neural-ODE classifier on one image data set (see the module docstring)."""

    paper = "gq_adjoint"
    metrics = ("test_accuracy", "test_loss", "reference_nfe")
    defaults = DEFAULTS
    param_rules = {"encoder_padding": Param("encoder_padding", "int", low=0, high=1, optional=True)}
    dataset: str = ""

    def load(self, seed: int) -> ImageSplits:
        return load_images(self.dataset, seed=seed)

    def time_span(self, hp):
        return T_SPAN[1] - T_SPAN[0]

    def build(self, *, seed, device, hparams):
        hp = self.hparams(hparams)
        device = torch.device(device)
        dtype = dtype_from_name(hp["dtype"])
        sizes = {key: int_hparam(hp, key, 1) for key in ("width", "state_channels", "decoder_hidden",
                                                          "eval_batch_size", "eval_max_steps")}
        if not float(hp["eval_tol"]) > 0:
            raise UserError(f"hyper-parameter eval_tol must be positive, got {hp['eval_tol']!r}")
        raw = self.load(seed)
        n_train, n_test = optional_count(hp, "n_train"), optional_count(hp, "n_test")
        train_x, train_y = raw.train_x[:n_train], raw.train_y[:n_train]
        test_x, test_y = raw.test_x[:n_test], raw.test_y[:n_test]
        data = ImageSplits(train_x.to(device), train_y.to(device), test_x.to(device), test_y.to(device),
                           raw.n_classes)
        with torch.random.fork_rng(devices=[]):  # initialise from the seed without touching the global RNG
            torch.manual_seed(seed)
            model = ImageODEModel(data.channels, data.size, width=sizes["width"],
                                  state_channels=sizes["state_channels"], decoder_hidden=sizes["decoder_hidden"],
                                  n_classes=data.n_classes, encoder_padding=hp["encoder_padding"])
        model = model.to(device=device, dtype=dtype)
        problem = ImageProblem(data, model, dtype=dtype, batch_size=int(hp["batch_size"]), lr=float(hp["lr"]),
                               eval_batch_size=sizes["eval_batch_size"], eval_tol=float(hp["eval_tol"]),
                               eval_max_steps=sizes["eval_max_steps"], seed=seed)
        problem.provenance = provenance(DATASET_LABELS.get(self.dataset, self.dataset), len(train_x), 0, len(test_x))
        return problem


class ImagesDigits(ImageTask):
    """Offline smoke preset of the image task on sklearn's 8×8 digits; not an experiment of the paper."""

    name = "images_digits"
    dataset = "digits"
    description = ("offline smoke preset: the GQ image model on sklearn's 8×8 digits (encoder padding 1, "
                   "state 10×4×4), not in the paper")


class ImagesMNIST(ImageTask):
    """MNIST image classification of Norcliffe & Deisenroth (TMLR 2023; official ``experiments/images.py``)."""

    name = "images_mnist"
    dataset = "mnist"
    description = ("MNIST, conv neural ODE (state 10×11×11, f conv 10-w-w-10) as in Norcliffe & Deisenroth's "
                   "image experiments; needs the IDX files")


class ImagesCIFAR10(ImageTask):
    """CIFAR-10 image classification of Norcliffe & Deisenroth (TMLR 2023; official ``experiments/images.py``)."""

    name = "images_cifar10"
    dataset = "cifar10"
    description = ("CIFAR-10, conv neural ODE (state 10×13×13, f conv 10-w-w-10) as in Norcliffe & "
                   "Deisenroth's image experiments; needs the python batches")


class ImagesSVHN(ImageTask):
    """SVHN image classification of Norcliffe & Deisenroth (TMLR 2023; official ``experiments/images.py``)."""

    name = "images_svhn"
    dataset = "svhn"
    description = ("SVHN, conv neural ODE (state 10×13×13, f conv 10-w-w-10) as in Norcliffe & Deisenroth's "
                   "image experiments; needs train/test_32x32.mat")


IMAGE_TASKS: list[type[ImageTask]] = [ImagesDigits, ImagesMNIST, ImagesCIFAR10, ImagesSVHN]
