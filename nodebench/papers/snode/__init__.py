"""Quaglino, Gallieri, Masci & Koutník, "SNODE: Spectral Discretization of Neural ODEs for System
Identification" (ICLR 2020, arXiv 1906.07038).

The method is library code (:mod:`nodebench.snode`, method ``snode``); this package registers the paper's
stand-in systems (``vehicle``, ``multi_agent``) and the ``spectral_convergence`` analysis.
"""

from nodebench.papers.snode import analyses  # noqa: F401  (registers the analysis)
from nodebench.papers.snode.systems import SYSTEM_TASKS
from nodebench.tasks import register_task

for _task in SYSTEM_TASKS:
    register_task(_task)
