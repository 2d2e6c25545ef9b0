"""NFE counting of the GQ adjoint's node VJPs: an evaluation at n stacked points is n evaluations, so
``gq`` (one VJP per node) and ``gq_batched`` (one vmapped or stacked evaluation per interval) record the
same backward NFE for the same solve, and a vmap attempt that fails counts nothing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nodebench.callbacks import ForwardsCallbacks
from nodebench.gq import odeint_adjoint_gq
from nodebench.gq import quadrature as quadrature_module
from nodebench.harness import count_nfe
from nodebench.methods import get_method
from nodebench.tasks.base import Problem
from nodebench.training import train

F64 = torch.float64
T = torch.tensor([0.0, 0.6, 1.5], dtype=F64)
#: Field kinds: one vmap runs, and two it cannot (so the batched quadrature falls back to stacking).
KINDS = {"vmap": "vmap", "python_branch": "stacked", "autograd_inside": "stacked"}


class Field(nn.Module):
    """dy/dt = tanh(y Aᵀ) A in one of :data:`KINDS`; ``python_calls`` counts the Python calls of ``forward``
    (one per vmapped call, whatever the number of points)."""

    def __init__(self, kind: str):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.A = nn.Parameter(0.5 * torch.randn(3, 3, generator=g, dtype=F64))
        self.kind, self.python_calls = kind, 0

    def forward(self, t, y):
        self.python_calls += 1
        if self.kind == "python_branch" and float(t) < 0:  # data-dependent Python control flow
            return -torch.tanh(y @ self.A.T) @ self.A
        if self.kind == "autograd_inside":  # as a CNF's divergence: the gradient of Σ log cosh(y Aᵀ) in y
            with torch.enable_grad():
                y_ = y if y.requires_grad else y.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(torch.log(torch.cosh(y_ @ self.A.T)).sum(), y_, create_graph=True)
            return g
        return torch.tanh(y @ self.A.T) @ self.A


class Wrapper(ForwardsCallbacks):
    """A wrapper holding the counted field as ``field`` (as nodebench's regularisers do)."""

    def __init__(self, field):
        super().__init__()
        self.field = field

    def forward(self, t, y):
        return self.field(t, y)


@pytest.fixture(autouse=True)
def vmap_tiny_fields(monkeypatch):
    monkeypatch.setattr(quadrature_module, "VMAP_MIN_PARAMETERS", 0)  # vmap is tried even for a tiny field


def _backward(kind: str, quadrature: str, wrapped: bool) -> tuple[dict, dict, int]:
    """Counted forward and backward NFE, the GQ stats and the field's Python calls of one gradient."""
    field = Field(kind)
    counter = count_nfe(field)
    stats = {}
    counter.phase = "forward"
    ys = odeint_adjoint_gq(Wrapper(counter) if wrapped else counter, torch.ones(2, 3, dtype=F64) / 3, T,
                           rtol=1e-6, atol=1e-8, gtol=0.5, quadrature=quadrature, stats=stats,
                           adjoint_params=tuple(field.parameters()))
    counter.phase = "backward"
    ys[-1].sum().backward()
    return dict(counter.nfe), stats, field.python_calls


@pytest.mark.parametrize("wrapped", [False, True], ids=["counter", "counter_in_wrapper"])
@pytest.mark.parametrize("kind", KINDS)
def test_batched_quadrature_counts_one_evaluation_per_node_as_the_sequential_one(kind, wrapped):
    sequential, _, sequential_calls = _backward(kind, "sequential", wrapped)
    batched, stats, batched_calls = _backward(kind, "batched", wrapped)
    assert stats["batching"] == KINDS[kind]
    assert stats["nodes"] > stats["intervals"]  # otherwise one call per interval would equal one per node
    assert batched == sequential
    if KINDS[kind] == "vmap":  # the count is corrected, not made by evaluating the field once per node
        assert batched_calls == sequential_calls - stats["nodes"] + stats["intervals"]


class FieldProblem(Problem):
    """Fit y(T) of :class:`Field` to zero: the harness wraps ``field`` in its counter."""

    def __init__(self, kind: str):
        self.field = self.model = Field(kind)
        self.y0 = torch.ones(2, 3, dtype=F64) / 3

    def loss(self, solve):
        return solve(self.field, self.y0, T)[-1].pow(2).mean()

    def evaluate(self, solve):
        return {}


@pytest.mark.parametrize("kind", KINDS)
def test_gq_and_gq_batched_record_the_same_nfe_in_training(kind):
    curves = {}
    for name in ("gq", "gq_batched"):
        torch.manual_seed(0)
        result = train(FieldProblem(kind), get_method(name), device=torch.device("cpu"), iters=2, warmup=0,
                       solver_options=dict(rtol=1e-6, atol=1e-8, gtol=0.5))
        curves[name] = result.curves
    assert list(curves["gq_batched"]["nfe_forward"]) == list(curves["gq"]["nfe_forward"])
    assert list(curves["gq_batched"]["nfe_backward"]) == list(curves["gq"]["nfe_backward"])
