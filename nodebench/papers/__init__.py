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
(:mod:`nodebench.api`), the command line and the sweep workers call it before they look anything up.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from importlib.resources import files

from nodebench.errors import UserError
from nodebench.registry import unknown

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
        """The package's ``experiments.toml`` (a :class:`importlib.resources.abc.Traversable`)."""
        return files(self.module).joinpath(SPEC_FILE)

    @property
    def readme(self):
        return files(self.module).joinpath(README_FILE)


_PAPERS: dict[str, Paper] = {}


def _plugin_modules() -> dict[str, str]:
    found = {name: f"{__name__}.{name}" for name in BUILTIN}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if not NAME.match(point.name):
            raise UserError(f"paper plug-in {point.name!r} ({point.value}): a paper id must be a plain identifier")
        found.setdefault(point.name, point.module)
    return found


def load_papers() -> dict[str, Paper]:
    """Import every built-in paper and every installed plug-in (once); name → :class:`Paper`."""
    if not _PAPERS:
        for name, module in _plugin_modules().items():
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise UserError(f"paper plug-in {name!r} cannot be imported from {module!r}: {err}") from None
            _PAPERS[name] = Paper(name, module)
    return dict(_PAPERS)


def get_paper(name: str) -> Paper:
    """The paper ``name``; an unknown name is a :class:`UserError` listing the valid ones."""
    papers = load_papers()
    if not isinstance(name, str) or name not in papers:  # a list is no name (and no dict key)
        raise unknown("paper", name, sorted(papers))
    return papers[name]
