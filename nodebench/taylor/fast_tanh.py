"""The zeroth coefficient of tanh (its primal) in compiled float32 CPU code: a rational approximation that
Inductor fuses into one vectorised loop of multiply-adds and a division, where ``torch.tanh`` compiles to a
call of Sleef's 1-ulp ``tanhf`` that costs about four times as much per element (25 µs against 7 µs per
256 × 64 block on one core; README, "Benchmarks"). XLA evaluates float32 tanh the same way on the CPU (a
rational function of the same degrees, x clamped to ±9: ``EmitFastTanh`` in ``xla/service/llvm_ir/math_ops.cc``),
so the comparison with JAX's ``jet`` in ``benchmarks/taylor_cost.py`` runs like against like. The coefficients
below are nodebench's own fit.

tanh(x) ≈ x·P(x²)/Q(x²) on |x| ≤ 9.5 (deg P = 6, deg Q = 3), x clamped to ±9.5 beyond, where float32
tanh is ±1. The coefficients are a near-minimax fit of the relative error (Lawson's iteratively reweighted
least squares on 400 000 points of [0, 9.5], linearised in Q): 1.2e-8 in exact arithmetic. Evaluated in
float32, over every float32 in [2⁻²⁰, 10], it errs by at most 6.7 ulps (4.0e-7 relative), about 1 ulp on
average (``tests/test_fast_tanh.py`` checks 8 ulps); XLA's float32 tanh errs by up to 2.8e-7 relative over
a million inputs, ``torch.tanh`` by 0.51 ulps. NaN stays NaN, ±inf gives ±1, −0 gives −0.

The derivative is exact for the value returned: 1 − y², as for ``torch.tanh``, so gradients (and the
Taylor rule's u = 1 − y²) see the same y. Eager mode, float64 and other devices keep ``torch.tanh``:
eager, the approximation would run as a dozen kernels instead of one; float64 would need more terms; on
CUDA nothing was measured.
"""

from __future__ import annotations

import torch

#: P's coefficients, constant term first.
P = (0.9999999883590313, 0.1306219205397569, 0.0030796126211054893, 1.0900694023082101e-05,
     -1.9204856754383186e-08, 4.7930537713146885e-11, -7.265241620662855e-14)
#: Q's coefficients, constant term first.
Q = (1.0, 0.463955147958892, 0.0243981562061313, 0.0002510749639126694)
#: |x| beyond which the approximation is evaluated at ±CLAMP (float32 tanh rounds to ±1 from 9.01).
CLAMP = 9.5


def rational_tanh(x: torch.Tensor) -> torch.Tensor:
    """x·P(x²)/Q(x²) with x clamped to ±:data:`CLAMP`, by Horner's scheme (no gradient rule of its own:
    :func:`primal_tanh` gives it one)."""
    x = x.clamp(-CLAMP, CLAMP)
    s = x * x
    p = s * P[-1] + P[-2]
    for c in P[-3::-1]:
        p = p * s + c
    q = s * Q[-1] + Q[-2]
    for c in Q[-3::-1]:
        q = q * s + c
    return x * p / q


class _RationalTanh(torch.autograd.Function):
    """:func:`rational_tanh` with tanh's derivative 1 − y² of the returned y."""

    @staticmethod
    def forward(x):
        return rational_tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


def primal_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x): :func:`rational_tanh` while ``torch.compile`` traces float32 CPU code, else ``torch.tanh``."""
    if torch.compiler.is_compiling() and x.dtype == torch.float32 and x.device.type == "cpu":
        return _RationalTanh.apply(x)
    return torch.tanh(x)
