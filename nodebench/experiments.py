"""Paper specs: the declarative ``experiments.toml`` of each paper package, fully validated when loaded.

A file declares the paper, its experiments, analyses and claims::

    paper = "do_vs_od"
    title = "Discretize-Optimize vs Optimize-Discretize"
    reference = "Onken & Ruthotto, arXiv 2005.13420"

    [[experiment]]
    name = "spiral"                      # blocks with one name form one experiment
    task = "cubic_spiral"                # a task id (see `nodebench list`)
    methods = ["rk4", "adjoint"]
    hparams = { lr = 0.1 }               # task hyper-parameters and method options for every method
    method_hparams.adjoint = { rtol = 1e-7, atol = 1e-9 }
    presets.smoke = { iters = 60, seeds = 1 }          # an experiment runs only at the presets it lists
    presets.paper = { iters = 300, seeds = 5, hparams = { lr = 0.1 } }

    [[analysis]]                         # a kind registered in nodebench.analyses.ANALYSES
    kind = "scaling"
    presets = ["quick"]
    param = "width"

    [[claim]]                            # a check registered in nodebench.claims.CHECKS
    id = "D2"
    ...

Loading checks everything before a case runs: unknown keys (with the nearest valid one), preset settings,
task and method names, every case's hyper-parameters (:func:`nodebench.runner.settings.check_cases`),
analysis kinds and their parameters, claim checks and their parameters, and claim ids.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodebench.analyses import ANALYSES
from nodebench.analyses import COMMON_KEYS as ANALYSIS_KEYS
from nodebench.claims import CHECKS
from nodebench.claims import COMMON_KEYS as CLAIM_KEYS
from nodebench.config import check_keys, from_mapping
from nodebench.errors import UserError
from nodebench.methods import METHODS
from nodebench.paths import plain_name
from nodebench.runner.case import Case, expand_grid

PRESETS = ("smoke", "quick", "paper")
#: What a preset of an experiment may set.
PRESET_KEYS = ("iters", "budget_s", "seeds", "warmup", "hparams", "methods", "grid")


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
    path: str = ""

    def cases(self, preset: str, device: str, experiments: list[str] | None = None) -> list[Case]:
        """Every case of this paper at ``preset`` on ``device`` (only ``experiments`` when given)."""
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        names = list(dict.fromkeys(exp.name for exp in self.experiments))  # one name may span presets
        for name in experiments or []:
            if name not in names:
                raise UserError(f"paper {self.paper!r} has no experiment {name!r}; valid: {', '.join(names)}")
        cases: list[Case] = []
        for exp in self.experiments:
            if preset not in exp.presets or (experiments and exp.name not in experiments):
                continue
            settings = dict(exp.presets[preset])
            seeds = int(settings.pop("seeds", 1))
            hparams = exp.hparams | settings.pop("hparams", {})
            methods = settings.pop("methods", exp.methods)
            cases += expand_grid(tasks=[exp.task], methods=methods, seeds=range(seeds), hparams=hparams,
                                 method_hparams=exp.method_hparams, device=device, paper=self.paper,
                                 experiment=exp.name, preset=preset, **settings)
        if not cases:
            at_preset = list(dict.fromkeys(exp.name for exp in self.experiments if preset in exp.presets))
            if experiments and at_preset:
                raise UserError(f"paper {self.paper!r} runs no experiment {', '.join(experiments)} at preset "
                                f"{preset!r}; at {preset}: {', '.join(at_preset)}")
            raise UserError(f"paper {self.paper!r} has no experiment at preset {preset!r}; its presets: "
                            f"{', '.join(self.presets())}")
        return cases

    def presets(self) -> list[str]:
        """The presets at which at least one experiment runs, in :data:`PRESETS` order."""
        return [p for p in PRESETS if any(p in exp.presets for exp in self.experiments)]


def load_paper(name: str) -> PaperSpec:
    """The validated spec of the installed paper ``name`` (:func:`nodebench.papers.get_paper`)."""
    from nodebench.papers import get_paper

    paper = get_paper(name)
    spec = parse_spec(paper.spec_file.read_text(), where=f"{paper.module}/experiments.toml")
    if spec.paper != name:
        raise UserError(f"{spec.path}: declares paper = {spec.paper!r}, but it is installed as {name!r}")
    return spec


def load_spec_file(path: str | Path) -> PaperSpec:
    """The validated spec in an ``experiments.toml`` file (for a paper under development)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no experiment file at {str(path)!r}")
    return parse_spec(path.read_text(), where=str(path))


def parse_spec(text: str, where: str) -> PaperSpec:
    """Parse and validate an ``experiments.toml``; any problem is a one-line :class:`UserError`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"malformed experiment file {where!r}: {err}") from None
    check_keys(raw, ("paper", "title", "reference", "notes", "experiment", "analysis", "claim"), where)
    for key in ("paper", "title", "reference"):
        if not isinstance(raw.get(key), str):
            raise UserError(f"{where}: needs a string {key!r}")
    experiments = [from_mapping(Experiment, exp, f"{where}: experiment {exp.get('name', i)!r}")
                   for i, exp in enumerate(raw.get("experiment", []))]
    for name in (raw["paper"], *(exp.name for exp in experiments)):
        plain_name(name, f"{where}: name")  # names become folder and file names
    spec = PaperSpec(paper=raw["paper"], title=raw["title"], reference=raw["reference"], experiments=experiments,
                     claims=raw.get("claim", []), analyses=raw.get("analysis", []), notes=raw.get("notes", ""),
                     path=where)
    _check_experiments(spec, where)
    _check_analyses(spec, where)
    _check_claims(spec, where)
    return spec


def _check_experiments(spec: PaperSpec, where: str) -> None:
    from nodebench.runner.settings import check_cases

    for exp in spec.experiments:
        at = f"{where}: experiment {exp.name!r}"
        for method in [*exp.methods, *exp.method_hparams]:
            METHODS.lookup(method)
        for preset, settings in exp.presets.items():
            if preset not in PRESETS:
                raise UserError(f"{at}: unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
            check_keys(settings, PRESET_KEYS, f"{at}, preset {preset}")
            try:
                cases = spec.cases(preset, "cpu", experiments=[exp.name])
                check_cases(cases)
            except (UserError, TypeError, ValueError) as err:
                raise UserError(f"{at}, preset {preset}: {err}") from None


def _check_analyses(spec: PaperSpec, where: str) -> None:
    for declared in spec.analyses:
        analysis = ANALYSES.lookup(declared.get("kind"))
        check_keys(declared, (*ANALYSIS_KEYS, *analysis.params), f"{where}: analysis {analysis.name!r}")
        _check_presets(declared.get("presets", []), f"{where}: analysis {analysis.name!r}")
        _check_experiment_names(spec, declared, f"{where}: analysis {analysis.name!r}")


def _check_claims(spec: PaperSpec, where: str) -> None:
    ids = []
    for claim in spec.claims:
        at = f"{where}: claim {claim.get('id')!r}"
        for key in ("id", "text"):
            if not isinstance(claim.get(key), str):
                raise UserError(f"{at}: needs a string {key!r}")
        ids.append(claim["id"])
        if claim.get("check") is None:
            check_keys(claim, CLAIM_KEYS, at)
            continue
        check = CHECKS.lookup(claim["check"])
        check_keys(claim, (*CLAIM_KEYS, *check.params), at)
        for key in ("method", "baseline"):
            if key in claim and claim[key] not in METHODS:
                raise UserError(f"{at}: {key} {claim[key]!r} is not a method; valid: {', '.join(METHODS)}")
        _check_experiment_names(spec, claim, at)
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise UserError(f"{where}: claim ids must be unique; repeated: {', '.join(duplicated)}")


def _check_presets(presets: list[str], at: str) -> None:
    for preset in presets:
        if preset not in PRESETS:
            raise UserError(f"{at}: unknown preset {preset!r}; valid: {', '.join(PRESETS)}")


def _check_experiment_names(spec: PaperSpec, block: dict, at: str) -> None:
    names = [exp.name for exp in spec.experiments]
    for name in block.get("experiments", []):
        if name not in names:
            raise UserError(f"{at}: unknown experiment {name!r}; valid: {', '.join(names)}")
