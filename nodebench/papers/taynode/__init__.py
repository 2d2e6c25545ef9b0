"""Kelly, Bettencourt, Johnson & Duvenaud, "Learning Differential Equations that are Easy to Solve" (NeurIPS
2020, arXiv 2007.04504).

The method is library code (:mod:`nodebench.taylor`, :mod:`nodebench.regularizers`); this package registers
the paper's tasks (``digits_ode``, ``mnist_ode``, ``latent_ode_*``, ``cnf_image_*``), the ``pareto``,
``order_matching`` and ``taylor_cost`` analyses and the ``order_matching`` claim check.
"""

from nodebench.papers.taynode import analyses, claims  # noqa: F401  (register the analyses and the check)
from nodebench.papers.taynode.classification import CLASSIFICATION_TASKS
from nodebench.papers.taynode.image_density import IMAGE_DENSITY_TASKS
from nodebench.papers.taynode.latent_ode import LATENT_ODE_TASKS
from nodebench.tasks import register_task

for _task in (*CLASSIFICATION_TASKS, *LATENT_ODE_TASKS, *IMAGE_DENSITY_TASKS):
    register_task(_task)
