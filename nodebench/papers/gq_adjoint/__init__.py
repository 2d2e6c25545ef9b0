"""Norcliffe & Deisenroth, "Faster Training of Neural ODEs Using Gauß–Legendre Quadrature" (TMLR 2023,
arXiv 2308.10644).

The method itself is library code (:func:`nodebench.gq.odeint_adjoint_gq`, :mod:`nodebench.sde`); this package
registers the paper's tasks (``g1d``, ``nested_spheres``, ``sines``, ``images_*``, ``ou_sde``), the
``toy_gradient`` analysis and its claim check ``toy_gradient_parity``.
"""

from nodebench.papers.gq_adjoint import analyses, claims  # noqa: F401  (register the analysis and the check)
from nodebench.papers.gq_adjoint.anode import G1D, NestedSpheres
from nodebench.papers.gq_adjoint.images import IMAGE_TASKS
from nodebench.papers.gq_adjoint.ou import OrnsteinUhlenbeck
from nodebench.papers.gq_adjoint.sines import Sines
from nodebench.tasks import register_task

for _task in (G1D, NestedSpheres, Sines, OrnsteinUhlenbeck, *IMAGE_TASKS):
    register_task(_task)
