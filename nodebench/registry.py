"""One registry pattern for everything nodebench looks up by name: tasks, methods, analyses, claim checks,
figures and metrics.

A :class:`Registry` is a plain ``dict`` from a name to an object with a :meth:`Registry.register` helper
(usable as a decorator), in the manner of torchdiffeq's ``SOLVERS`` and JAX's ``jet_rules``. A lookup of
an unknown name is a one-line :class:`~nodebench.errors.UserError` that names the nearest valid name and
lists the valid ones. Paper packages (:mod:`nodebench.papers`) add their tasks, analyses, checks and
figures to these registries when they are imported; the framework never imports a paper itself.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from collections.abc import Iterable
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


class Registry(dict, Generic[T]):
    """A name → object mapping of one ``kind`` (``"task"``, ``"method"``...), filled by :meth:`register`."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        #: name → the module that registered it (for a class or function, the module defining it).
        self.origins: dict[str, str] = {}

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
            return value
        return add if obj is None else add(obj)

    def check_known_to_workers(self, name: str) -> None:
        """A one-line :class:`UserError` where ``name`` was registered by the running script or notebook
        (``__main__``): each case runs in a fresh worker process, which imports nodebench and the installed
        paper plug-ins, never the script, so every case of it would fail as unknown."""
        if self.origins.get(name) == "__main__":
            raise UserError(f"{self.kind} {name!r} is registered by your script (__main__), which the worker process "
                            f"of each case does not import; register it in a paper plug-in (README: \"Your own "
                            f"method or task\")")

    def lookup(self, name: str) -> T:
        """The object registered as ``name``; an unknown name is a :class:`UserError`."""
        try:
            return self[name]
        except (KeyError, TypeError):
            raise unknown(self.kind, name, sorted(self)) from None

