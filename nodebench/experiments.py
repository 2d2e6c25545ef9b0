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

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodebench.analyses import ANALYSES
from nodebench.analyses import COMMON_KEYS as ANALYSIS_KEYS
from nodebench.claims import CHECKS
from nodebench.claims import COMMON_KEYS as CLAIM_KEYS
from nodebench.config import CASE_LIMITS, MAX_CASES, MAX_ITERS, SEEDS, Param, check_keys, from_mapping
from nodebench.errors import UserError
from nodebench.methods import METHODS
from nodebench.paths import plain_name
from nodebench.registry import nearest
from nodebench.runner.case import Case, expand_grid

PRESETS = ("smoke", "quick", "paper")
#: What a preset of an experiment may set.
PRESET_KEYS = ("iters", "budget_s", "seeds", "warmup", "hparams", "methods", "grid")
#: The typed values of an experiment and of its presets (``seeds``, ``iters``, ``budget_s``: ``SEEDS`` and
#: ``CASE_LIMITS`` of :mod:`nodebench.config`).
WARMUP = Param("warmup", "int", low=0, high=MAX_ITERS)  # untimed warm-up passes; 0: none
METHOD_LIST = Param("methods", "strs")
TABLE = {name: Param(name, "table") for name in ("hparams", "method_hparams", "presets", "grid")}
TEXT = {name: Param(name, "str") for name in ("name", "task", "description", "notes", "kind", "check", "source",
                                              "published_text", "why_not_measured", "note")}
#: Parameters of a claim or an analysis whose string value names a method (checked against the registry).
METHOD_PARAMS = ("method", "baseline", "reference", "pair_with")


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
        """Every case of this paper at ``preset`` on ``device`` (only ``experiments`` when given: names, or one
        name)."""
        experiments = [experiments] if isinstance(experiments, str) else experiments
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}{nearest(preset, PRESETS)}; valid presets: {', '.join(PRESETS)}")
        names = list(dict.fromkeys(exp.name for exp in self.experiments))  # one name may span presets
        for name in experiments or []:
            if name not in names:
                raise UserError(f"paper {self.paper!r} has no experiment {name!r}{nearest(name, names)}; valid: "
                                f"{', '.join(names)}")
        cases: list[Case] = []
        total, limit = 0, MAX_CASES
        for exp in self.experiments:
            if preset not in exp.presets or (experiments and exp.name not in experiments):
                continue
            settings = dict(exp.presets[preset])
            at = f"experiment {exp.name!r}, preset {preset}:"
            seeds = SEEDS.check(settings.pop("seeds", 1), at)
            hparams = exp.hparams | settings.pop("hparams", {})
            methods = settings.pop("methods", exp.methods)
            total += _count_cases(exp, preset, at)  # before the grid is built: a typo must not hang the loader
            if total > limit:
                raise UserError(f"paper {self.paper!r} builds {total} cases at preset {preset!r}, more than {limit}; "
                                "give fewer seeds, methods or grid values")
            cases += expand_grid(tasks=[exp.task], methods=methods, seeds=range(seeds), hparams=hparams,
                                 method_hparams=exp.method_hparams, device=device, paper=self.paper,
                                 experiment=exp.name, preset=preset, **settings)
        _refuse_duplicates(cases)
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


def _refuse_duplicates(cases: list[Case]) -> None:
    """Two ``[[experiment]]`` blocks of one name building the same case (same method, seed and settings at a
    preset) is a :class:`UserError`: the sweep would run it once, the dry run list it twice."""
    seen: set[str] = set()
    for case in cases:
        key = json.dumps(case.to_dict(), sort_keys=True, default=str)
        if key in seen:
            settings = " ".join(f"{k}={v}" for k, v in sorted(case.hparams.items())) or "no hyper-parameters"
            raise UserError(f"builds case {case.method}/s{case.seed} ({settings}) twice: the [[experiment]] blocks "
                            f"named {case.experiment!r} overlap at preset {case.preset!r}; give each case once")
        seen.add(key)


def load_paper(name: str) -> PaperSpec:
    """The validated spec of the installed paper ``name`` (:func:`nodebench.papers.get_paper`)."""
    from nodebench.papers import get_paper

    paper = get_paper(name)
    where = f"{paper.module}/experiments.toml"
    spec = parse_spec(_spec_text(paper.spec_file, where), where=where)
    if spec.paper != name:
        raise UserError(f"{spec.path}: declares paper = {spec.paper!r}, but it is installed as {name!r}")
    return spec


def load_spec_file(path: str | Path) -> PaperSpec:
    """The validated spec in an ``experiments.toml`` file (for a paper under development)."""
    from nodebench.papers import load_papers

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no experiment file at {str(path)!r}")
    load_papers()  # the analysis kinds, claim checks and metrics that installed papers register
    return parse_spec(_spec_text(path, str(path)), where=str(path))


def _spec_text(path: Path, where: str) -> str:
    """The text of an ``experiments.toml``; a file that is not UTF-8 (TOML's encoding) is a one-line
    :class:`UserError`, as a malformed one is."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"malformed experiment file {where!r}: {err}") from None


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
    TEXT["notes"].check(raw.get("notes", ""), f"{where}:")
    experiments = [_experiment(block, f"{where}: experiment {block.get('name', i)!r}")
                   for i, block in enumerate(_blocks(raw, "experiment", where))]
    plain_name(raw["paper"], f"{where}: name")  # names become folder and file names
    spec = PaperSpec(paper=raw["paper"], title=raw["title"], reference=raw["reference"], experiments=experiments,
                     claims=_blocks(raw, "claim", where), analyses=_blocks(raw, "analysis", where),
                     notes=raw.get("notes", ""), path=where)
    _check_experiments(spec, where)
    _check_analyses(spec, where)
    _check_claims(spec, where)
    return spec


def _count_cases(exp: Experiment, preset: str, at: str) -> int:
    """The number of cases ``exp`` builds at ``preset`` (seeds × methods × grid settings), refused above
    :func:`max_cases` before any case is built."""
    settings = exp.presets[preset]
    seeds, methods = SEEDS.check(settings.get("seeds", 1), at), settings.get("methods", exp.methods)
    sizes = [len(values) for values in (settings.get("grid") or {}).values()]
    count = seeds * len(methods) * math.prod(sizes)
    if count > MAX_CASES:
        grid = f" × {' × '.join(map(str, sizes))} grid setting(s)" if sizes else ""
        raise UserError(f"{at} {seeds} seed(s) × {len(methods)} method(s){grid} = {count} cases, more than "
                        f"{MAX_CASES}; give fewer seeds, methods or grid values")
    return count


def _blocks(raw: dict, key: str, where: str) -> list[dict]:
    """The ``[[key]]`` blocks of a file: an array of tables, each a table."""
    value = raw.get(key, [])
    if isinstance(value, dict):
        raise UserError(f"{where}: [{key}] is a single table; write each {key} as [[{key}]] (an array of tables)")
    if not isinstance(value, list) or not all(isinstance(block, dict) for block in value):
        raise UserError(f"{where}: {key} must be [[{key}]] blocks (an array of tables), got {value!r}")
    return value


def _experiment(block: dict, at: str) -> Experiment:
    """One ``[[experiment]]`` block, its keys and the types of its values checked."""
    exp = from_mapping(Experiment, block, at)
    plain_name(exp.name, f"{at}: name")  # names become folder and file names
    for name in ("task", "description"):
        TEXT[name].check(getattr(exp, name), f"{at}:")
    METHOD_LIST.check(exp.methods, f"{at}:")
    for name in ("hparams", "method_hparams", "presets"):
        TABLE[name].check(getattr(exp, name), f"{at}:")
    for method, options in exp.method_hparams.items():
        TABLE["hparams"].check(options, f"{at}: method_hparams.{method}:")
    for preset, settings in exp.presets.items():
        if not isinstance(settings, dict):
            raise UserError(f"{at}: presets.{preset} must be a table of preset settings "
                            f"({', '.join(PRESET_KEYS)}), got {settings!r}")
    return exp


def _check_preset(exp: Experiment, preset: str, settings: dict, at: str) -> None:
    """A preset's settings: keys, types and ranges (``seeds``, ``warmup`` and the limits normalised in place)."""
    if preset not in PRESETS:
        raise UserError(f"{at}: unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    at = f"{at}, preset {preset}"
    check_keys(settings, PRESET_KEYS, at)
    for limit in CASE_LIMITS:
        if settings.get(limit.name) is not None:
            settings[limit.name] = limit.check(settings[limit.name], f"{at}:")
    settings["seeds"] = SEEDS.check(settings.get("seeds", 1), f"{at}:")
    if "warmup" in settings:
        settings["warmup"] = WARMUP.check(settings["warmup"], f"{at}:")
    for name in ("hparams", "grid"):
        if name in settings:
            TABLE[name].check(settings[name], f"{at}:")
    for name, values in settings.get("grid", {}).items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{at}: grid.{name} must be a non-empty list of values, got {values!r}")
    if "methods" in settings:
        METHOD_LIST.check(settings["methods"], f"{at}:")
        for method in settings["methods"]:
            _method(method, f"{at}: methods")
    _count_cases(exp, preset, f"{at}:")


def _method(name: str, at: str) -> None:
    try:
        METHODS.lookup(name)
    except UserError as err:
        raise UserError(f"{at}: {err}") from None


def _check_experiments(spec: PaperSpec, where: str) -> None:
    from nodebench.methods import get_method
    from nodebench.runner.settings import check_cases, check_shared_hparams, unused_by_regularizer, unused_options
    from nodebench.tasks import get_task

    for exp in spec.experiments:
        at = f"{where}: experiment {exp.name!r}"
        for method in exp.methods:
            _method(method, f"{at}: methods")
        for method in exp.method_hparams:
            _method(method, f"{at}: method_hparams")
        if not exp.presets:
            raise UserError(f"{at}: presets: runs at no preset; give presets.smoke, presets.quick or presets.paper")
        for preset, settings in exp.presets.items():
            _check_preset(exp, preset, settings, at)
        run = {m for settings in exp.presets.values() for m in settings.get("methods", exp.methods)} | set(exp.methods)
        for method, options in exp.method_hparams.items():
            if method not in run:
                raise UserError(f"{at}: method_hparams.{method} is for a method this experiment never runs; "
                                f"it runs: {', '.join(sorted(run))}")
            unused = unused_options(get_method(method), options)  # shared hparams may hold them on purpose; not these
            keys = [k for k in unused if k not in unused_by_regularizer(options)]  # the regulariser's: per case
            if keys:
                raise UserError(f"{at}: method_hparams.{method}: method {method} does not use {', '.join(keys)}; its "
                                f"solver options: {', '.join(get_method(method).accepts) or 'none'}")
        try:
            get_task(exp.task)
        except UserError as err:
            raise UserError(f"{at}: task: {err}") from None
        for preset, settings in {"": {}, **exp.presets}.items():  # the experiment's, then each preset's
            try:
                check_shared_hparams(exp.task, settings.get("methods", exp.methods),
                                     exp.hparams | settings.get("hparams", {}))
            except UserError as err:
                raise UserError(f"{at}{f', preset {preset}' if preset else ''}: {err}") from None
        for preset in exp.presets:
            try:
                cases = spec.cases(preset, "cpu", experiments=[exp.name])
                check_cases(cases)
            except (UserError, TypeError, ValueError) as err:
                raise UserError(f"{at}, preset {preset}: {err}") from None
            for case in cases:
                _refuse_unused_method_hparams(exp.method_hparams.get(case.method, {}), case, at)
            _refuse_repeated_runs(cases, f"{at}, preset {preset}")


def _refuse_repeated_runs(cases, at: str) -> None:
    """A :class:`UserError` where two of a preset's cases are one run: the same case but for options that change
    nothing in it (:func:`~nodebench.runner.settings.ignored_options`), as a grid crossing ``reg_order`` with a
    ``reg_lambda`` of 0 makes (no regulariser runs at λ = 0, Kelly et al. 2020, §3). The sweep would spend the run
    twice, and ``nodebench compare`` refuses a configuration measured twice for one seed. The advice fits the
    options: a grid over another method's solver option (``gtol`` crossed with ``gq`` and ``adjoint``), over an
    SNODE option inert in some variants, or over ``reg_order`` with RNODE (which has no order) repeats a run too,
    and has no unregularised baseline to declare."""
    from nodebench.regularizers import REGULARIZER_OPTIONS, regularizer_from_hparams
    from nodebench.runner.settings import without_ignored

    seen = {}
    for case in cases:
        other = seen.setdefault(without_ignored(case).case_id, case)
        if other is not case:
            differ = sorted(k for k in {*case.hparams, *other.hparams} if case.hparams.get(k) != other.hparams.get(k))
            values = "; ".join(f"{k} {other.hparams.get(k, 'unset')}, {case.hparams.get(k, 'unset')}" for k in differ)
            once = ("the unregularised baseline, reg_lambda = 0, as an experiment of its own"
                    if regularizer_from_hparams(case.hparams) is None and set(differ) <= set(REGULARIZER_OPTIONS) else
                    f"the {case.method} cases that ignore {', '.join(differ)} in an experiment of their own, "
                    f"without {'it' if len(differ) == 1 else 'them'} in their grid")
            raise UserError(f"{at}: two cases of {case.task}/{case.method}/s{case.seed} are one run: they differ "
                            f"only in options that change nothing in it ({values}); declare that run once ({once})")


def _refuse_unused_method_hparams(options: dict, case, at: str) -> None:
    """A :class:`UserError` for a ``reg*`` option of ``method_hparams`` (``options``) that the regulariser of
    ``case`` does not use (:func:`~nodebench.runner.settings.regularizer_warnings`), judged with the case's other
    options (``reg``, λ); the experiment's shared hparams may hold such options on purpose, not these."""
    from nodebench.runner.settings import regularizer_warnings

    for who, keys in regularizer_warnings(case.hparams).items():
        keys = [k for k in keys if k in options]
        valid = ("reg_order is the order K of reg = speed only" if who.endswith("rnode") else
                 "reg_order and reg_variant configure a regulariser of reg_lambda > 0")
        if keys:
            raise UserError(f"{at}: method_hparams.{case.method}: {who} does not use {', '.join(keys)}; {valid}")


def _check_block(spec: PaperSpec, block: dict, fields, at: str) -> None:
    """What every claim and analysis block shares: the project-wide meaning of some parameter names."""
    from nodebench.metrics import METRICS
    from nodebench.tasks import get_task

    for name in METHOD_PARAMS:
        if isinstance(block.get(name), str) and block[name] not in METHODS:
            raise UserError(f"{at}: {name} {block[name]!r} is not a method; valid: {', '.join(METHODS)}")
    for method in block.get("methods", []) if any(f.name == "methods" for f in fields) else []:
        if method not in METHODS:
            raise UserError(f"{at}: methods: {method!r} is not a method; valid: {', '.join(METHODS)}")
    for name in ("metric", "choose_metric"):
        if isinstance(block.get(name), str) and block[name] not in METRICS:
            raise UserError(f"{at}: {name} {block[name]!r} is not a metric; valid: {', '.join(sorted(METRICS))}")
    if isinstance(block.get("task"), str):
        try:
            get_task(block["task"])
        except UserError as err:
            raise UserError(f"{at}: task: {err}") from None
    _check_experiment_names(spec, block, at)


def _check_registered(spec: PaperSpec, block: dict, key: str, registry, common_keys: tuple[str, ...], at: str) -> None:
    """A ``[[claim]]``/``[[analysis]]`` block naming a registered check or analysis kind by ``key``: the name,
    the block's keys (``common_keys`` and the entry's parameters), their values (``entry.validate``) and the
    names with a project-wide meaning (:func:`_check_block`)."""
    TEXT[key].check(block[key], f"{at}:")
    try:
        entry = registry.lookup(block[key])
    except UserError as err:
        raise UserError(f"{at}: {key}: {err}") from None
    check_keys(block, (*common_keys, *entry.params), at)
    entry.validate(block, at)
    _check_block(spec, block, entry.fields, at)


def _check_analyses(spec: PaperSpec, where: str) -> None:
    for i, declared in enumerate(spec.analyses):
        at = f"{where}: analysis {declared.get('kind', i)!r}"
        if "kind" not in declared:
            raise UserError(f"{at}: needs a 'kind'; valid: {', '.join(sorted(ANALYSES))}")
        _check_registered(spec, declared, "kind", ANALYSES, ANALYSIS_KEYS, at)
        if "presets" not in declared:  # an analysis runs only at the presets it lists: it would never run
            raise UserError(f"{at}: needs 'presets', the presets it runs at (a list of {', '.join(PRESETS)})")
        Param("presets", "strs").check(declared["presets"], f"{at}:")
        TEXT["description"].check(declared.get("description", ""), f"{at}:")
        _check_presets(declared["presets"], at)


def _check_claims(spec: PaperSpec, where: str) -> None:
    ids = []
    for claim in spec.claims:
        at = f"{where}: claim {claim.get('id')!r}"
        for key in ("id", "text"):
            if not isinstance(claim.get(key), str):
                raise UserError(f"{at}: needs a string {key!r}")
        ids.append(claim["id"])
        for key in ("source", "published_text", "why_not_measured", "note"):
            if key in claim:
                TEXT[key].check(claim[key], f"{at}:")
        if claim.get("check") is None:
            check_keys(claim, CLAIM_KEYS, at)
            continue
        _check_registered(spec, claim, "check", CHECKS, CLAIM_KEYS, at)
        _check_claim_methods(spec, claim, at)
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise UserError(f"{where}: claim ids must be unique; repeated: {', '.join(duplicated)}")


def _check_claim_methods(spec: PaperSpec, claim: dict, at: str) -> None:
    """A claim's ``method``/``baseline`` (...) must be run by one of its experiments (at any preset): a claim
    on a method nothing runs could only ever be "not measured"."""
    scope = claim.get("experiments") or [exp.name for exp in spec.experiments]
    run = {method for exp in spec.experiments if exp.name in scope
           for method in (*exp.methods, *(m for preset in exp.presets.values() for m in preset.get("methods", ())))}
    for key in METHOD_PARAMS:
        if isinstance(claim.get(key), str) and claim[key] not in run:
            where = f"experiment(s) {', '.join(scope)}" if claim.get("experiments") else "the paper's experiments"
            raise UserError(f"{at}: {key} {claim[key]!r} is not run by {where}; they run: {', '.join(sorted(run))}")


def _check_presets(presets: list[str], at: str) -> None:
    for preset in presets:
        if preset not in PRESETS:
            raise UserError(f"{at}: unknown preset {preset!r}; valid: {', '.join(PRESETS)}")


def _check_experiment_names(spec: PaperSpec, block: dict, at: str) -> None:
    names = [exp.name for exp in spec.experiments]
    for name in block.get("experiments", []):
        if name not in names:
            raise UserError(f"{at}: unknown experiment {name!r}{nearest(name, names)}; valid: {', '.join(names)}")
