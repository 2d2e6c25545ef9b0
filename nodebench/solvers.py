"""Classic fourth-order Runge–Kutta as a torchdiffeq fixed-grid solver.

torchdiffeq's ``method="rk4"`` is Kutta's **3/8 rule** (stages at 0, 1/3, 2/3, 1; weights 1/8, 3/8,
3/8, 1/8). The Disc-Opt code of Onken & Ruthotto (arXiv 2005.13420, time-series part) and OT-Flow use
the **classic** RK4 (stages at 0, 1/2, 1/2, 1; weights 1/6, 1/3, 1/3, 1/6). Importing this module
registers the classic rule with torchdiffeq as ``method="rk4_classic"``, so that ``odeint`` and
``odeint_adjoint`` accept it with their usual options (``step_size``, ``grid_constructor``,
``perturb``) and callbacks. Both rules make 4 function evaluations per step.
"""

from __future__ import annotations

from torchdiffeq._impl.misc import Perturb
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.rk_common import rk4_step_func
from torchdiffeq._impl.solvers import FixedGridODESolver

CLASSIC_RK4 = "rk4_classic"
RK4_38 = "rk4"


class ClassicRK4(FixedGridODESolver):
    """Classic RK4, y₁ = y₀ + h (k₁ + 2k₂ + 2k₃ + k₄) / 6, on torchdiffeq's fixed grid."""

    order = 4

    def _step_func(self, func, t0, dt, t1, y0):
        f0 = func(t0, y0, perturb=Perturb.NEXT if self.perturb else Perturb.NONE)
        return rk4_step_func(func, t0, dt, t1, y0, f0=f0, perturb=self.perturb), f0


SOLVERS.setdefault(CLASSIC_RK4, ClassicRK4)
