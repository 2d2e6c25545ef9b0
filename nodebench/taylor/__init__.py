"""Taylor-mode automatic differentiation in PyTorch and the total time derivatives d^K z/dt^K behind
TayNODE's speed regulariser R_K (Kelly et al., "Learning Differential Equations that are Easy to Solve",
NeurIPS 2020, arXiv 2007.04504).

>>> from nodebench.taylor import ode_derivatives
>>> dz = ode_derivatives(field, t, z, order=3)                  # [z', z'', z'''], Taylor mode
>>> ref = ode_derivatives(field, t, z, order=3, method="jvp")   # nested torch.func.jvp reference
>>> grads, value = compile_grad_and_value(module, order=3)(t, z)  # ∇_θ mean((d³z)²), one compiled graph
>>> y, (dy, ddy) = jet(torch.tanh, (x,), ([v, w],))             # JAX-jet-like series propagation

Where an operation has no Taylor series the coefficients are NaN or ±inf, as with JAX's jet, not an error:
x**a for a non-integer a (sqrt, rsqrt, x**0.5, …) and log at x_0 = 0, a division by a series whose b_0 = 0
(:mod:`nodebench.taylor.rules`).
"""

from nodebench.taylor import rules as _rules  # noqa: F401  (registers the Taylor rules)
from nodebench.taylor.ode import (METHODS, compile_derivatives, compile_grad_and_value, jvp_derivatives,
                                  ode_derivatives, rk_integrand, taylor_derivatives)
from nodebench.taylor.series import Tape, TaylorModeError, TaylorTensor, jet, supported_ops

__all__ = ["METHODS", "Tape", "TaylorModeError", "TaylorTensor", "compile_derivatives", "compile_grad_and_value",
           "jet", "jvp_derivatives", "ode_derivatives", "rk_integrand", "supported_ops", "taylor_derivatives"]
