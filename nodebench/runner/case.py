"""Cases: one training run, named by (paper, experiment, task, method, hyper-parameters, seed, device, preset).

A case is a pure, picklable, JSON-serialisable config; its :attr:`Case.case_id` is a hash of that config
and names its result files, which is how a resumed sweep recognises finished work.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from nodebench.runner.typed_hparams import number_kinds, typed_hparams


@dataclass(frozen=True)
class Case:
    """One training run.

    Attributes:
        task: task id (``cubic_spiral``, ``trajectories:PATH``...).
        method: training-method id.
        seed: seeds the model initialisation and the data draws.
        device: ``cpu``, ``cuda``, ``cuda:1``...
        hparams: task hyper-parameters and solver options (``rtol``, ``atol``, ``step_size``...).
        iters, budget_s: stop after this many iterations or this much summed step time.
        warmup: untimed warm-up passes.
        paper, experiment, preset: where the case comes from (empty for ``nodebench run``).
    """

    task: str
    method: str
    seed: int = 0
    device: str = "cpu"
    hparams: Mapping[str, Any] = field(default_factory=dict)
    iters: int | None = None
    budget_s: float | None = None
    warmup: int = 1
    paper: str = ""
    experiment: str = ""
    preset: str = ""

    @property
    def case_id(self) -> str:
        """A hash of the config and, for a task read from a file, of that file's content."""
        from nodebench.runner.guard import data_fingerprint

        blob = json.dumps(self.to_dict() | data_fingerprint(self.task), sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """``experiment/task/method/sSEED`` (no experiment for ``nodebench run``), as progress lines name it."""
        return "/".join(filter(None, (self.experiment, self.task, self.method, f"s{self.seed}")))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"hparams": dict(self.hparams)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Case":
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """The columns that identify this case in a record row."""
        return {"case_id": self.case_id, "paper": self.paper, "experiment": self.experiment, "task": self.task,
                "method": self.method, "seed": self.seed, "device": self.device, "preset": self.preset,
                "hparams": json.dumps(dict(self.hparams), sort_keys=True)}


def expand_grid(*, tasks: Iterable[str], methods: Iterable[str], seeds: Iterable[int],
                grid: Mapping[str, Iterable[Any]] | None = None, method_hparams: Mapping[str, Mapping] | None = None,
                **common) -> list[Case]:
    """All cases of tasks × methods × hyper-parameter grid × seeds.

    Args:
        grid: hyper-parameter name → list of values; the Cartesian product is taken.
        method_hparams: per-method fixed hyper-parameters (e.g. tolerances only the adaptive methods use).
        **common: other :class:`Case` fields shared by all cases (``device``, ``iters``, ``hparams``...).

    Each case's numbers are in their declared types (:func:`~nodebench.runner.typed_hparams.typed_hparams`):
    ``hidden=8.0`` is the case ``hidden=8``, with its case id.
    """
    grid = dict(grid or {})
    base = dict(common.pop("hparams", {}) or {})
    names = list(grid)
    tasks = list(tasks)
    kinds = {task: number_kinds(task) for task in tasks}
    cases = []
    for task, method, values in itertools.product(tasks, methods, itertools.product(*grid.values())):
        given = base | dict((method_hparams or {}).get(method, {})) | dict(zip(names, values))
        hparams = typed_hparams(kinds[task], given)
        for seed in seeds:
            cases.append(Case(task=task, method=method, seed=seed, hparams=hparams, **common))
    return cases


def in_rounds(cases: list[Case]) -> list[Case]:
    """``cases`` reordered in rounds: seed 0 of every configuration, then seed 1, and so on, with the order
    of the configurations rotated by one each round (asv's rounds), so that a burst of load on the machine,
    or its drift, hits every configuration alike rather than all seeds of one."""
    by_config: dict[str, list[Case]] = {}
    for case in sorted(cases, key=lambda c: c.seed):
        config = json.dumps({k: v for k, v in case.to_dict().items() if k != "seed"}, sort_keys=True, default=str)
        by_config.setdefault(config, []).append(case)
    groups = list(by_config.values())
    ordered: list[Case] = []
    for round_ in range(max(map(len, groups), default=0)):
        shift = round_ % len(groups)
        ordered += [group[round_] for group in groups[shift:] + groups[:shift] if round_ < len(group)]
    return ordered
