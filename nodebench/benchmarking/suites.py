"""Benchmark suites: declarative files ``nodebench/benchmarking/suites/<name>.toml`` of short, fixed-budget cases.

A suite file lists entries; each entry is one task with its methods, like an experiment of a paper
package, at one fixed budget::

    suite = "nightly"
    description = "short fixed-budget cases across the paper packages"
    device = "cpu"                     # or "cuda" for a GPU suite
    seeds = 3                          # seeds 0..N-1 of every case: the repeats of the noise estimate

    [[entry]]
    name = "spiral"                    # unique in the suite; the records' ``experiment`` column
    paper = "do_vs_od"                 # the paper package the entry comes from
    task = "cubic_spiral"
    methods = ["rk4", "adjoint"]
    hparams = { lr = 0.1 }             # task hyper-parameters and solver options of every method
    method_hparams.adjoint = { rtol = 1e-5, atol = 1e-7 }
    iters = 20                         # or budget_s = 5.0
    seeds = 3                          # optional: overrides the suite's
    target = 0.05                      # optional: the leaderboard's time-to-target value for this task

The cases carry the suite's name as their ``preset``. The folder is ``nodebench/benchmarking/suites/`` (package
data, shipped in the wheel), or where ``NODEBENCH_SUITES`` points.

Loading checks every field (counts are positive integers, ``budget_s`` a positive number, ``target`` a
finite one; TOML's ``true``/``false`` is no number), ``method_hparams`` names only methods of its entry,
and every case's task, method and hyper-parameters are valid; an error names the file, the entry and the
field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from nodebench.config import CASE_LIMITS, MAX_CASES, SEEDS, Param, check_keys, from_mapping
from nodebench.errors import UserError
from nodebench.paths import plain_name
from nodebench.registry import nearest
from nodebench.runner.case import Case, expand_grid, in_rounds

SUITE_SUFFIX = ".toml"
DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def suites_root() -> Path:
    """The folder of suite files."""
    env = os.environ.get("NODEBENCH_SUITES")
    return Path(env) if env else Path(__file__).resolve().parent / "suites"


@dataclass
class SuiteEntry:
    """One task with its methods at a fixed budget (see the module docstring for the fields)."""

    name: str
    paper: str
    task: str
    methods: list[str]
    hparams: dict[str, Any] = field(default_factory=dict)
    method_hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    iters: int | None = None
    budget_s: float | None = None
    seeds: int | None = None
    target: float | None = None
    description: str = ""


@dataclass
class Suite:
    """A named list of entries, run on one device with ``seeds`` repeats per case."""

    name: str
    description: str
    device: str
    seeds: int
    entries: list[SuiteEntry]
    path: Path | None = None

    def entry_cases(self, entry: SuiteEntry, device: str | None = None) -> list[Case]:
        """The cases of one entry, on ``device`` (default: the suite's), seed by seed."""
        return expand_grid(tasks=[entry.task], methods=entry.methods, seeds=range(entry.seeds or self.seeds),
                           hparams=entry.hparams, method_hparams=entry.method_hparams,
                           device=device or self.device, iters=entry.iters, budget_s=entry.budget_s,
                           paper=entry.paper, experiment=entry.name, preset=self.name)

    def cases(self, device: str | None = None) -> list[Case]:
        """Every case of the suite, on ``device`` (default: the suite's), in rounds
        (:func:`~nodebench.runner.case.in_rounds`)."""
        return in_rounds([case for entry in self.entries for case in self.entry_cases(entry, device)])

    def targets(self) -> dict[str, float]:
        """Task → the time-to-target value declared by an entry (tasks without one are left out)."""
        return {e.task: float(e.target) for e in self.entries if e.target is not None}


def available_suites() -> list[str]:
    """Names of the suite files in :func:`suites_root`."""
    root = suites_root()
    return sorted(p.stem for p in root.glob(f"*{SUITE_SUFFIX}") if p.is_file()) if root.is_dir() else []


def load_suite(name: str) -> Suite:
    """Parse ``<suites_root>/<name>.toml``; an unknown suite or a malformed file is a :class:`UserError`."""
    suites = available_suites()
    if name not in suites:
        raise UserError(f"unknown suite {name!r}{nearest(name, suites)}; valid suites: "
                        f"{', '.join(suites) or 'none in ' + str(suites_root())}")
    path = suites_root() / f"{name}{SUITE_SUFFIX}"
    where = f"suite file {str(path)!r}"
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"malformed {where}: {err}") from None
    check_keys(raw, ("suite", "description", "device", "seeds", "entry"), where)
    entries = raw.get("entry", [])
    if not isinstance(entries, list):
        raise UserError(f"{where}: entry must be a list of tables ([[entry]]), got {entries!r}")
    entries = [from_mapping(SuiteEntry, entry, f"{where}: entry {i + 1}") for i, entry in enumerate(entries)]
    if raw.get("suite", name) != name:
        raise UserError(f"{where} declares suite = {raw['suite']!r}; a suite is named by its file: use {name!r}")
    suite = Suite(name=name, description=raw.get("description", ""), device=raw.get("device", "cpu"),
                  seeds=raw.get("seeds", 1), entries=entries, path=path)
    _check(suite)
    return suite


#: The numbers of a suite and of its entries (an entry's: where given).
ENTRY_NUMBERS = (SEEDS, *CASE_LIMITS, Param("target", "float"))


def _check(suite: Suite) -> None:
    """The suite's own fields, then each entry's (:func:`_check_entry`); the first problem is a :class:`UserError`."""
    where = f"suite file {str(suite.path)!r}"
    plain_name(suite.name, f"{where}: suite")
    SEEDS.check(suite.seeds, f"{where}:")
    if not (isinstance(suite.device, str) and DEVICE.fullmatch(suite.device)):
        raise UserError(f"{where}: device = {suite.device!r}; valid: cpu, cuda, cuda:N")
    if not suite.entries:
        raise UserError(f"{where} declares no [[entry]]")
    names = [e.name for e in suite.entries]
    if len(set(names)) != len(names):
        raise UserError(f"{where}: entry names must be unique, got {', '.join(map(str, names))}")
    for entry in suite.entries:
        _check_entry(suite, entry, f"{where}: entry {entry.name!r}")


def _check_entry(suite: Suite, entry: SuiteEntry, where: str) -> None:
    """One entry's fields, then its cases' task, methods and hyper-parameters (:func:`check_cases`)."""
    from nodebench.experiments import METHOD_LIST
    from nodebench.papers import get_paper
    from nodebench.runner.settings import check_cases, check_shared_hparams

    plain_name(entry.name, f"{where}: name")  # the records' experiment, as a paper's experiment name
    METHOD_LIST.check(entry.methods, f"{where}:")
    if (entry.iters is None) == (entry.budget_s is None):
        raise UserError(f"{where} needs exactly one of iters or budget_s")
    for param in ENTRY_NUMBERS:
        if getattr(entry, param.name) is not None:
            param.check(getattr(entry, param.name), f"{where}:")
    seeds = entry.seeds or suite.seeds
    if seeds * len(entry.methods) > MAX_CASES:  # before the cases are built: a typo must not hang the loader
        raise UserError(f"{where}: {seeds} seed(s) × {len(entry.methods)} method(s) = {seeds * len(entry.methods)} "
                        f"cases, more than {MAX_CASES}; give fewer seeds")
    _check_hparams(entry, where)
    try:
        get_paper(entry.paper)
        if entry.method_hparams:
            check_shared_hparams(entry.task, entry.methods, entry.hparams)
        check_cases(suite.entry_cases(entry))
    except UserError as err:
        raise UserError(f"{where}: {err}") from None


def _check_hparams(entry: SuiteEntry, where: str) -> None:
    """``hparams`` is a table; ``method_hparams`` a table of tables, one per method of the entry."""
    if not isinstance(entry.hparams, dict):
        raise UserError(f"{where} has hparams = {entry.hparams!r}; expected a table, e.g. {{ lr = 0.1 }}")
    if not isinstance(entry.method_hparams, dict):
        raise UserError(f"{where} has method_hparams = {entry.method_hparams!r}; expected a table of tables, "
                        "e.g. method_hparams.adjoint = { rtol = 1e-5 }")
    for method, options in entry.method_hparams.items():
        if method not in entry.methods:
            raise UserError(f"{where} has method_hparams.{method}, but {method!r} is not one of its methods; "
                            f"valid: {', '.join(entry.methods)}")
        if not isinstance(options, dict):
            raise UserError(f"{where} has method_hparams.{method} = {options!r}; expected a table, e.g. "
                            "{ rtol = 1e-5 }")
