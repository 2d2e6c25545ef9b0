"""One registry pattern for everything nodebench looks up by name: tasks, methods, analyses, claim checks,
figures and metrics.

A :class:`Registry` is a plain ``dict`` from a name to an object with a :meth:`Registry.register` helper
(usable as a decorator), in the manner of torchdiffeq's ``SOLVERS`` and JAX's ``jet_rules``. A lookup of
an unknown name is a one-line :class:`~nodebench.errors.UserError` that names the nearest valid name and
lists the valid ones. Paper packages (:mod:`nodebench.papers`) add their tasks, analyses, checks and
figures to these registries when they are imported; the framework never imports a paper itself.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from nodebench.errors import UserError

T = TypeVar("T")


def nearest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the valid name closest to ``name`` ignoring case (``MNIST``: ``mnist``), or an
    empty string."""
    by_folded = {str(option).casefold(): option for option in valid}
    match = difflib.get_close_matches(str(name).casefold(), list(by_folded), n=1, cutoff=0.6)
    return f" (did you mean {by_folded[match[0]]!r}?)" if match else ""


def unknown(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """The one-line error for an unknown ``kind`` named ``name``."""
    valid = list(valid)
    return UserError(f"unknown {kind} {name!r}{nearest(name, valid)}; valid: {', '.join(valid) or 'none'}")


#: How many plug-in imports are under way (:func:`importing_plugins`): what is registered meanwhile, each worker
#: process registers too, since it imports the same plug-ins.
_PLUGIN_IMPORTS = 0


@contextlib.contextmanager
def importing_plugins() -> Iterator[None]:
    """Within the block, registrations count as made by a paper plug-in's import (:func:`nodebench.papers.load_papers`
    wraps each plug-in's import in it), so that a helper module a plug-in imports from outside its own package
    is known to the workers as well."""
    global _PLUGIN_IMPORTS
    _PLUGIN_IMPORTS += 1
    try:
        yield
    finally:
        _PLUGIN_IMPORTS -= 1


class Registry(dict, Generic[T]):
    """A name → object mapping of one ``kind`` (``"task"``, ``"method"``...), filled by :meth:`register`."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        #: name → the module that registered it (for a class or function, the module defining it).
        self.origins: dict[str, str] = {}
        #: the names registered while a paper plug-in was imported (:func:`importing_plugins`).
        self.by_plugins: set[str] = set()

    def register(self, name: str | None = None, obj: T | None = None) -> Any:
        """Add ``obj`` under ``name``; without ``obj``, a decorator that registers what it decorates under
        ``name`` (default: the object's ``name`` attribute, else its ``__name__``). Registering a second,
        different object under a taken name is an error (a plug-in must not quietly replace a built-in)."""
        caller = sys._getframe(1).f_globals.get("__name__", "")

        def add(value: T) -> T:
            key = name or getattr(value, "name", None) or value.__name__
            if key in self and self[key] is not value:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self[key] = value
            self.origins[key] = value.__module__ if inspect.isclass(value) or inspect.isfunction(value) else caller
            if _PLUGIN_IMPORTS:
                self.by_plugins.add(key)
            return value
        return add if obj is None else add(obj)

    def check_known_to_workers(self, name: str, in_plugin: Callable[[str], object] = lambda module: None) -> None:
        """A one-line :class:`UserError` where ``name`` was registered by code a worker process does not import:
        each case runs in a fresh worker, which imports nodebench and the installed paper plug-ins, never the
        running script or notebook (``__main__``) nor a module of the user's that no plug-in imports, so every case
        of it would fail as unknown. Known to the workers: what nodebench registers, what was registered while a
        plug-in was imported, and what a module inside a loaded plug-in's package registered (``in_plugin(module)``
        true: :func:`nodebench.papers.paper_of_module`)."""
        origin = self.origins.get(name)
        if origin is None or origin == "nodebench" or origin.startswith("nodebench.") or name in self.by_plugins \
                or in_plugin(origin):
            return
        who = "your script (__main__)" if origin == "__main__" else f"module {origin!r}, which no paper plug-in imports"
        raise UserError(f"{self.kind} {name!r} is registered by {who}; the worker process of each case does not "
                        f"import it: register it in a paper plug-in (README: \"Your own method or task\")")

    def lookup(self, name: str) -> T:
        """The object registered as ``name``; an unknown name is a :class:`UserError`."""
        try:
            return self[name]
        except (KeyError, TypeError):
            raise unknown(self.kind, name, sorted(self)) from None

