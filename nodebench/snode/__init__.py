"""SNODE (Quaglino et al., "SNODE: Spectral Discretization of Neural ODEs for System Identification",
ICLR 2020, arXiv 1906.07038), reimplemented from the paper text (no official code was released): each
training trajectory is a Legendre spectral-element series, and the series coefficients and the network
weights are trained by coordinate descent on the data loss plus γ times the ODE violation, with no ODE
solve while training. The harness method is ``snode``; the formulas and every nodebench choice are in
``nodebench/papers/snode/README.md``.

>>> from nodebench.snode import ElementBasis, LegendreSeries, gauss_legendre_nodes
>>> series = LegendreSeries.fit(t_obs, y_obs, degree=12)       # y_obs: (..., N, D)
>>> x, dx = series(t), series.derivative(t)                    # (..., T, D) each
>>> basis = ElementBasis(0.0, 10.0, degree=6, elements=8)      # C0-continuous elements
>>> z = basis.fit(t_obs, y_obs, ridge=1e-8)                     # free coefficients (..., P, D)
>>> x_nodes = basis.values(t_nodes) @ z                         # every quantity is linear in z
>>> x_nodes = basis.value_map(t_nodes) @ z                      # the same, matrix-free for P > 128
"""

from nodebench.snode.coordinate_descent import CoordinateDescent
from nodebench.snode.elements import ElementBasis, ElementMap
from nodebench.snode.legendre import (
    LegendreSeries,
    gauss_legendre_nodes,
    gauss_lobatto_nodes,
    legendre_basis,
    legendre_basis_derivative,
)
from nodebench.snode.objective import SpectralObjective
from nodebench.snode.options import SnodeOptions

__all__ = ["CoordinateDescent", "ElementBasis", "ElementMap", "LegendreSeries", "SnodeOptions", "SpectralObjective",
           "gauss_legendre_nodes", "gauss_lobatto_nodes", "legendre_basis", "legendre_basis_derivative"]
