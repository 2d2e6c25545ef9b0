"""The metric registry: what each recorded metric means, which way is better, and how the gate treats it.

Reports, claims, figures, the regression gate and the leaderboard read a metric's direction, unit and
headline status from here instead of guessing from its name. A task declares its metrics in
``Task.metrics`` (the first is its headline); the worker records that headline in each row's
``headline_metric`` column, so a records file says which of its columns is the figure of merit.

A paper package registers the metrics its tasks add::

    from nodebench.metrics import METRICS, Metric
    METRICS.register(obj=Metric("test_auc", "max", headline=True, gate_tolerance=0.02, absolute=True))
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from nodebench.registry import Registry


@dataclass(frozen=True)
class Metric:
    """A recorded quantity.

    Attributes:
        name: the records column.
        direction: ``"min"`` (lower is better) or ``"max"``.
        unit: shown in tables and axis labels (empty: dimensionless).
        headline: a task's figure of merit (a test metric, not a cost).
        gate_tolerance: the regression gate's tolerance (relative, or absolute with ``absolute``); ``None``:
            the gate does not check it.
        absolute: the tolerance is an absolute difference (log-likelihoods, accuracies).
        description: one line for the records schema and ``nodebench list``.
    """

    name: str
    direction: str
    unit: str = ""
    headline: bool = False
    gate_tolerance: float | None = None
    absolute: bool = False
    description: str = ""

    def __post_init__(self):
        if self.direction not in ("min", "max"):
            raise ValueError(f"metric {self.name!r}: direction must be 'min' or 'max', not {self.direction!r}")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"

    def worse_by(self, value: float, reference: float) -> float:
        """How much worse ``value`` is than ``reference`` (positive: worse), in the metric's direction."""
        return reference - value if self.higher_is_better else value - reference


METRICS: Registry[Metric] = Registry("metric")
for _metric in (
    Metric("test_mse", "min", headline=True, gate_tolerance=0.10, description="test mean squared error"),
    Metric("extrap_mse", "min", gate_tolerance=0.10, description="MSE beyond the training horizon"),
    Metric("train_mse", "min", description="training-set mean squared error"),
    Metric("test_kl", "min", headline=True, gate_tolerance=0.10, description="KL(prediction ‖ truth) on test"),
    Metric("test_logprob", "max", gate_tolerance=0.05, absolute=True, description="test log-likelihood"),
    Metric("test_nll", "min", "nats", headline=True, gate_tolerance=0.05, absolute=True,
           description="test negative log-likelihood per sample"),
    Metric("test_nll_train_solver", "min", "nats", description="test NLL with the training discretisation"),
    Metric("test_bpd", "min", "bits/dim", headline=True, gate_tolerance=0.05, absolute=True,
           description="test bits per dimension"),
    Metric("test_bpd_train_solver", "min", "bits/dim", description="test bits/dim with the training solver"),
    Metric("test_accuracy", "max", headline=True, gate_tolerance=0.02, absolute=True,
           description="test classification accuracy"),
    Metric("train_accuracy", "max", description="training classification accuracy"),
    Metric("test_loss", "min", description="the training loss on the test set"),
    Metric("inverse_error", "min", gate_tolerance=0.10, description="mean ‖f⁻¹(f(x)) − x‖ of a flow"),
    Metric("inverse_error_frob", "min", description="‖F⁻¹(F(X)) − X‖_F / n of a flow"),
    Metric("test_nfe", "min", "evaluations", description="NFE of a test solve at the training tolerance"),
    Metric("test_nfe_train_solver", "min", "evaluations",
           description="NFE of a test solve with the training method's own solver and tolerances"),
    Metric("reference_nfe", "min", "evaluations", description="NFE of the reference solve used for test metrics"),
    Metric("t1", "min", description="learned end time of a CNF block"),
    Metric("train_wall_s", "min", "s", description="summed timed step time"),
    Metric("time_per_iter_s", "min", "s", description="median step time"),
    Metric("peak_mem_bytes", "min", "bytes", description="peak memory a step adds"),
    Metric("nfe_forward_per_iter", "min", "evaluations", description="field evaluations per forward pass"),
    Metric("nfe_backward_per_iter", "min", "evaluations", description="field evaluations per backward pass"),
):
    METRICS.register(obj=_metric)


def metric(name: str) -> Metric:
    """The registered metric ``name``, or a ``min``-direction stand-in for an unregistered column (extra
    columns a task reports are never a reason to fail a report)."""
    return METRICS.get(name) or Metric(name, "min")


def higher_is_better(name: str) -> bool:
    return metric(name).higher_is_better


def headline_metric(records: pd.DataFrame) -> str | None:
    """The headline metric of ``records``: the task-declared ``headline_metric`` column's most common value
    that has data, else the first registered headline metric with data; ``None`` if there is none."""
    def has_data(name) -> bool:
        return isinstance(name, str) and name in records and records[name].notna().any()

    if "headline_metric" in records:
        for name in records["headline_metric"].dropna().value_counts().index:
            if has_data(name):
                return str(name)
    return next((m.name for m in METRICS.values() if m.headline and has_data(m.name)), None)

