"""One bare training step on a harness problem: what a hand-written loop does, for the overhead benchmarks.

``harness_overhead.py`` and ``between_steps.py`` run a bare step from inside the harness's progress
callback, on the same problem, model, data and parameters: the loss through the raw (uncounted) field,
backward, an Adam step and the loss read-out, with one clock around it.

The step keeps its loss until the next bare step rebinds it, as a bare loop (``loss = ...`` each
iteration) does: the previous step's autograd graph is freed when the new loss is bound, after the next
forward, inside the timed step, which is also where the harness frees its own. Freeing it at the end of
the step instead (``del loss``) hands the allocator a different state at the start of the following
harness step, and that alone is measured: the *identical* bare code run in the harness's slot measured
+1.4 % over itself with ``del``, +0.45 % to +0.60 % without it (cubic spiral, Euler, 1 thread, pinned).
"""

from __future__ import annotations

import time

import torch


class BareStep:
    """``step()`` runs one bare step and returns its (wall, CPU) seconds."""

    def __init__(self, problem, solve, params, raw_field):
        self.problem, self.solve, self.raw_field = problem, solve, raw_field
        self.optimizer = torch.optim.Adam(params, lr=problem.lr, weight_decay=problem.weight_decay)
        self.loss = None

    def step(self) -> tuple[float, float]:
        problem = self.problem
        counted, problem.field = problem.field, self.raw_field
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        self.loss = problem.loss(self.solve)  # frees the previous step's graph here, as rebinding does
        self.optimizer.zero_grad(set_to_none=True)
        self.loss.backward()
        self.optimizer.step()
        float(self.loss.detach())
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        problem.field = counted
        return wall, cpu
