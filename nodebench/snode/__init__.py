"""SNODE (Quaglino et al., "SNODE: Spectral Discretization of Neural ODEs for System Identification",
ICLR 2020, arXiv 1906.07038): spectral (Legendre-series) trajectory representation, reimplemented from the
paper text (no official code was released).

>>> from nodebench.snode import LegendreSeries, gauss_legendre_nodes
>>> series = LegendreSeries.fit(t_obs, y_obs, degree=12)       # y_obs: (..., N, D)
>>> x, dx = series(t), series.derivative(t)                    # (..., T, D) each
>>> tau, w = gauss_legendre_nodes(16)                          # quadrature on [-1, 1]
"""

from nodebench.snode.legendre import (
                                      LegendreSeries,
                                      SpectralElements,
                                      gauss_legendre_nodes,
                                      gauss_lobatto_nodes,
                                      legendre_basis,
                                      legendre_basis_derivative,
)

__all__ = ["LegendreSeries", "SpectralElements", "gauss_legendre_nodes", "gauss_lobatto_nodes", "legendre_basis",
           "legendre_basis_derivative"]
