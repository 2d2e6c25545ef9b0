"""Undoing optimiser steps in place: tensors and optimiser state put back as they were.

The harness runs steps that must leave no trace: a warm-up step that allocates Adam's lazy state before the
first timed step (:mod:`nodebench.training`), and the untimed passes that measure a step's allocated bytes
after the timed ones (SNODE's too, :meth:`nodebench.snode.CoordinateDescent.kept`). Values are copied back
into the same tensors, so nothing is reallocated and every reference (an optimiser's parameter list, its
state keys) stays valid.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch


@contextlib.contextmanager
def restored(tensors: Sequence[torch.Tensor], optimizers: Sequence[torch.optim.Optimizer] = ()) -> Iterator[None]:
    """On leaving the block, each of ``tensors`` holds its values from entering it, and so does each
    optimiser's state tensor (Adam's ``step``, ``exp_avg``, ``exp_avg_sq``). State the block created — a
    first step's lazy initialisation — is zeroed in place: a fresh Adam's state (zero moments, step 0) whose
    tensors are already allocated. Not restored if the block raises (a failed step's state is moot)."""
    values = [t.detach().clone() for t in tensors]
    states = [{key: {name: v.clone() for name, v in state.items() if torch.is_tensor(v)}
               for key, state in optimizer.state.items()} for optimizer in optimizers]
    yield
    with torch.no_grad():
        for tensor, value in zip(tensors, values):
            tensor.copy_(value)
        for optimizer, before in zip(optimizers, states):
            for key, state in optimizer.state.items():
                saved = before.get(key, {})
                for name, value in state.items():
                    if torch.is_tensor(value):
                        value.copy_(saved[name]) if name in saved else value.zero_()
