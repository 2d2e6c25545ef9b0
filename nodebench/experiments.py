"""Paper packages: the declarative experiment files under ``reproduce/<paper>/experiments.toml``.

A file declares the paper, its experiments and its claims::

    paper = "do_vs_od"
    title = "Discretize-Optimize vs Optimize-Discretize"
    reference = "Onken & Ruthotto, arXiv 2005.13420"

    [[experiment]]
    name = "spiral"                      # unique within the paper
    task = "cubic_spiral"                # a task id (see `nodebench list`)
    methods = ["rk4", "adjoint"]
    hparams = { lr = 0.1 }               # task hyper-parameters and solver options for every method
    method_hparams.adjoint = { rtol = 1e-7, atol = 1e-9 }
    presets.smoke = { iters = 60, seeds = 1 }          # an experiment runs only at the presets it lists
    presets.paper = { iters = 300, seeds = 5, hparams = { lr = 0.1 } }

    [[claim]]                            # see nodebench.claims for the checks
    id = "D2"
    ...

The folder is found next to the installed package (an editable install or a source checkout), or
where ``NODEBENCH_REPRODUCE`` points.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodebench.errors import UserError
from nodebench.paths import plain_name
from nodebench.runner.case import Case, expand_grid

PRESETS = ("smoke", "quick", "paper")
SPEC_FILE = "experiments.toml"


def reproduce_root() -> Path:
    """The ``reproduce/`` folder holding one sub-folder per paper."""
    env = os.environ.get("NODEBENCH_REPRODUCE")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "reproduce"


@dataclass
class Experiment:
    name: str
    task: str
    methods: list[str]
    hparams: dict[str, Any] = field(default_factory=dict)
    method_hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


@dataclass
class PaperSpec:
    paper: str
    title: str
    reference: str
    experiments: list[Experiment]
    claims: list[dict[str, Any]]
    analyses: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""
    path: Path | None = None

    def cases(self, preset: str, device: str) -> list[Case]:
        """Every case of this paper at ``preset`` on ``device``."""
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        cases: list[Case] = []
        for exp in self.experiments:
            if preset not in exp.presets:
                continue
            settings = dict(exp.presets[preset])
            seeds = int(settings.pop("seeds", 1))
            hparams = exp.hparams | settings.pop("hparams", {})
            methods = settings.pop("methods", exp.methods)
            cases += expand_grid(tasks=[exp.task], methods=methods, seeds=range(seeds), hparams=hparams,
                                 method_hparams=exp.method_hparams, device=device, paper=self.paper,
                                 experiment=exp.name, preset=preset, **settings)
        if not cases:
            raise UserError(f"paper {self.paper!r} has no experiment at preset {preset!r}")
        return cases


def available_papers() -> list[str]:
    root = reproduce_root()
    return sorted(p.parent.name for p in root.glob(f"*/{SPEC_FILE}")) if root.is_dir() else []


def load_paper(name: str) -> PaperSpec:
    """Parse ``reproduce/<name>/experiments.toml``; unknown papers and malformed files are UserErrors."""
    papers = available_papers()
    if name not in papers:
        raise UserError(f"unknown paper {name!r}; valid papers: {', '.join(papers) or 'none found in ' + str(reproduce_root())}")
    path = reproduce_root() / name / SPEC_FILE
    try:
        raw = tomllib.loads(path.read_text())
        experiments = [Experiment(**exp) for exp in raw.get("experiment", [])]
        _check_kinds(path, raw)
        for name_in_file in (raw["paper"], *(e.name for e in experiments)):
            plain_name(name_in_file, f"{str(path)!r}: name")
        return PaperSpec(paper=raw["paper"], title=raw["title"], reference=raw["reference"],
                         experiments=experiments, claims=raw.get("claim", []),
                         analyses=raw.get("analysis", []), notes=raw.get("notes", ""), path=path)
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as err:
        raise UserError(f"malformed experiment file {str(path)!r}: {err}") from None


def _check_kinds(path: Path, raw: dict[str, Any]) -> None:
    from nodebench.analyses import ANALYSES
    from nodebench.claims import CHECKS

    for claim in raw.get("claim", []):
        if claim.get("check") is not None and claim["check"] not in CHECKS:
            raise UserError(f"{str(path)!r}: claim {claim.get('id')!r} uses unknown check {claim['check']!r}; "
                            f"valid: {', '.join(CHECKS)}")
    for analysis in raw.get("analysis", []):
        if analysis.get("kind") not in ANALYSES:
            raise UserError(f"{str(path)!r}: unknown analysis kind {analysis.get('kind')!r}; valid: {', '.join(ANALYSES)}")
