"""Paper packages: one package per paper, discovered as plug-ins.

A paper package holds what only that paper uses — its tasks, analyses, figures, claim checks — plus its
``experiments.toml`` (experiments, presets, claims; :mod:`nodebench.experiments`) and ``README.md`` as
package data. Importing the package registers its tasks, analyses and checks in the framework's
registries (:mod:`nodebench.registry`); the framework never imports a paper by name.

The built-in papers live in this folder. A third-party paper is an installed package that declares an
entry point in the group ``nodebench.papers`` (name → importable module holding ``experiments.toml``)::

    # pyproject.toml of the package "my-paper"
    [project.entry-points."nodebench.papers"]
    my_paper = "my_paper"

:func:`load_papers` imports every built-in and installed paper once; the public API
(:mod:`nodebench.api`), the command line and the sweep workers call it before they look anything up. A
plug-in that cannot be loaded (its import raises, its id is taken or no identifier, its ``experiments.toml``
is invalid) is left out with one warning line on stderr: what does not need it works, and what does (its
paper, records of its paper: :func:`get_paper`, :func:`check_loaded`) is one line naming it and why.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from importlib.resources import files

from nodebench.errors import UserError, where_raised
from nodebench.registry import importing_plugins, unknown

BUILTIN = ("do_vs_od", "gq_adjoint", "snode", "taynode")
ENTRY_POINT_GROUP = "nodebench.papers"
SPEC_FILE = "experiments.toml"
README_FILE = "README.md"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Paper:
    """An imported paper package: its id and the module that holds its files."""

    name: str
    module: str

    @property
    def spec_file(self):
        """The package's ``experiments.toml`` (a :class:`importlib.resources.abc.Traversable`); a module that
        is no package, or a package that does not ship the file, is a one-line :class:`UserError`."""
        ship = (f"ship {SPEC_FILE} inside the package as package data (pyproject.toml: "
                f"[tool.setuptools.package-data] {self.module.split('.')[0]} = [\"{SPEC_FILE}\"])")
        try:
            spec = files(self.module).joinpath(SPEC_FILE)
        except TypeError:  # the entry point names a plain module, which holds no data files
            raise UserError(f"paper {self.name!r}: {self.module!r} is a module, not a package; {ship}") from None
        if not spec.is_file():
            raise UserError(f"paper {self.name!r}: package {self.module!r} has no {SPEC_FILE}; {ship}")
        return spec

    @property
    def readme(self):
        return files(self.module).joinpath(README_FILE)

    @property
    def origin(self) -> str | None:
        """The file the paper's package is imported from (its ``__init__.py``)."""
        return _origin(self.module)


_PAPERS: dict[str, Paper] = {}
#: Plug-in id → why it is left out (:func:`load_papers`, :func:`left_out`).
_BROKEN: dict[str, str] = {}


def _plugin_modules() -> tuple[dict[str, str], dict[str, str]]:
    """Paper id → module of every built-in paper and installed plug-in, and plug-in id → why it cannot be
    loaded: an id that is no identifier, or one that two packages declare (a plug-in named like a built-in
    paper included; then neither plug-in is imported, a built-in still is, and the id is refused rather than
    one package silently shadowing the other)."""
    found = {name: f"{__name__}.{name}" for name in BUILTIN}
    broken: dict[str, str] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if not NAME.match(point.name):
            broken[point.name] = f"paper plug-in {point.name!r} ({point.value}): a paper id must be a plain identifier"
        elif found.get(point.name, point.module) != point.module:
            dist = f" of {point.dist.name!r}" if getattr(point, "dist", None) else ""
            broken[point.name] = (f"paper id {point.name!r} is declared twice: by {found[point.name]!r} and by the "
                                  f"plug-in entry point {point.value!r}{dist}; give the plug-in another name in its "
                                  f"[project.entry-points.\"{ENTRY_POINT_GROUP}\"]")
        else:
            found[point.name] = point.module
    return {name: module for name, module in found.items() if name in BUILTIN or name not in broken}, broken


def _import(name: str, module: str) -> None:
    """Import a paper's package; whatever it raises (a missing module, a syntax error, a name its registration
    takes twice) is one :class:`UserError` naming the plug-in and, for an error of its code, the line."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise UserError(f"paper plug-in {name!r} cannot be imported from {module!r}: {err}") from None
    except Exception as err:  # a plug-in's bug must read as one line, not as a traceback of nodebench's
        reason = err.msg if isinstance(err, SyntaxError) else " ".join(str(err).split())
        raise UserError(f"paper plug-in {name!r} cannot be imported from {module!r}: {type(err).__name__}: "
                        f"{reason}{where_raised(err, _origin(module))}") from None


def _origin(module: str) -> str | None:
    """The file ``module`` is imported from (a package's ``__init__.py``), ``None`` where it cannot be found."""
    try:
        return importlib.util.find_spec(module).origin
    except (ImportError, ValueError, AttributeError):
        return None


def load_papers() -> dict[str, Paper]:
    """Import every built-in paper and every installed plug-in (once); name → :class:`Paper` of those loaded.
    A plug-in that cannot be loaded is left out (:func:`left_out`) with one warning line on stderr; a built-in
    paper that fails to import is a :class:`UserError` that leaves none recorded, so that the next call raises
    it again rather than return the papers imported before it."""
    if not _PAPERS:
        modules, broken = _plugin_modules()
        papers = {}
        for name, module in modules.items():
            try:
                with importing_plugins():
                    _import(name, module)
            except UserError as err:
                if name in BUILTIN:
                    raise
                broken[name] = str(err)
                continue
            if name not in broken:
                papers[name] = Paper(name, module)
        _PAPERS.update(papers)
        for name, reason in broken.items():
            left_out(name, reason)
    return dict(_PAPERS)


def left_out(name: str, reason: str) -> None:
    """Record the plug-in ``name`` as not loaded for ``reason`` (one line) and say so once on stderr."""
    if name not in _BROKEN:
        _BROKEN[name] = reason
        _PAPERS.pop(name, None)
        print(f"nodebench: warning: {reason}; paper {name!r} is left out (commands that need it refuse to run)",
              file=sys.stderr)


def broken_papers() -> dict[str, str]:
    """Plug-in id → why it is not loaded, for every installed plug-in :func:`load_papers` left out."""
    load_papers()
    return dict(_BROKEN)


def check_loaded(names, where: str) -> None:
    """A :class:`UserError` when a paper among ``names`` (the ``paper`` values of records read from ``where``) is
    a plug-in left out: its metrics, analyses and claims are what a report or gate of those records reads."""
    load_papers()
    needed = sorted({name for name in names if isinstance(name, str) and name in _BROKEN})
    if needed:
        raise UserError(f"{where} holds records of paper {needed[0]!r}, which is not loaded: {_BROKEN[needed[0]]}")


def paper_of_module(module: str) -> Paper | None:
    """The imported paper whose package holds ``module`` (a function's ``__module__``), else ``None``."""
    return next((paper for paper in _PAPERS.values()
                 if module == paper.module or module.startswith(f"{paper.module}.")), None)


def get_paper(name: str) -> Paper:
    """The paper ``name``; an unknown name is a :class:`UserError` listing the valid ones."""
    papers = load_papers()
    if isinstance(name, str) and name in _BROKEN:
        raise UserError(_BROKEN[name])
    if not isinstance(name, str) or name not in papers:  # a list is no name (and no dict key)
        raise unknown("paper", name, sorted(papers))
    return papers[name]
