"""Mini-batch order of the GQ paper's tasks (Norcliffe & Deisenroth, TMLR 2023, arXiv 2308.10644).

The official code (``a-norcliffe/torch_gq_adjoint``, ``models/trainer.py``) trains epoch by epoch over a
shuffled ``DataLoader``: every training example is used once per epoch, in a new order each epoch. One
harness iteration is one such mini-batch, so the paper's "E epochs" are E · ⌊N / batch_size⌋ iterations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True)
class EpochBatches:
    """Where a training stands in its epochs of mini-batches, each epoch a fresh permutation of ``range(n)``.

    A value, never changed in place: :meth:`next` returns the batch and the position after it, which the
    problem stores as an attribute. The harness's warm-up sets a problem's attributes (and generators) back
    afterwards (:func:`nodebench.training.train`), which an object changed in place would escape: the timed
    iterations would start from the warm-up's batches.

    A last partial batch is dropped (our choice: every iteration then costs the same; the official
    ``DataLoader`` keeps it), so an epoch has ⌊n / batch_size⌋ batches.

    Args:
        n: training examples.
        batch_size: examples per batch, capped at ``n`` (full batch).
        generator: draws the permutations (a local ``torch.Generator``, never the global RNG).
    """

    n: int
    batch_size: int
    generator: torch.Generator
    order: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    cursor: int = 0

    def __post_init__(self):
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "batch_size", max(1, min(int(self.batch_size), self.n)))

    def next(self) -> tuple[torch.Tensor, EpochBatches]:
        """The next batch's indices (CPU, int64) and the position after it, reshuffling when the current epoch
        has no full batch left."""
        order, cursor = self.order, self.cursor
        if cursor + self.batch_size > len(order):
            order, cursor = torch.randperm(self.n, generator=self.generator), 0
        return order[cursor:cursor + self.batch_size], replace(self, order=order, cursor=cursor + self.batch_size)
