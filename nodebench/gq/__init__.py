"""Gauss–Legendre quadrature adjoint (Norcliffe & Deisenroth 2023) as a drop-in for torchdiffeq users.

>>> from nodebench.gq import odeint_adjoint_gq
>>> ys = odeint_adjoint_gq(func, y0, t, rtol=1e-3, atol=1e-3, gtol=0.1)  # node VJPs batched per interval
>>> ys = odeint_adjoint_gq(func, y0, t, rtol=1e-3, atol=1e-3, quadrature="sequential")  # one VJP per node
"""

from nodebench.gq.adjoint import odeint_adjoint_gq
from nodebench.gq.quadrature import MAX_NODES, gauss_legendre, node_count

__all__ = ["MAX_NODES", "gauss_legendre", "node_count", "odeint_adjoint_gq"]
