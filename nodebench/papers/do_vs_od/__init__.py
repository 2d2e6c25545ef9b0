"""Onken & Ruthotto, "Discretize-Optimize vs. Optimize-Discretize for Time-Series Regression and Continuous
Normalizing Flows" (arXiv 2005.13420).

Registers the analyses ``taylor``, ``gradient_error``, ``rediscretisation`` and ``density``; its experiments
use the framework's generic tasks (the cubic spiral and the CNF density tasks). ``experiments.toml`` and
``README.md`` in this folder hold the experiments, the claims and what was measured.
"""

from nodebench.papers.do_vs_od import analyses  # noqa: F401  (registers the analyses)
