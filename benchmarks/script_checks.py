"""Argument checks shared by the scripts of ``benchmarks/`` beyond the types of :mod:`nodebench.argtypes`.

A script imports this module as a sibling (``benchmarks/`` is ``sys.path[0]`` when it runs), as it does
``bare_step.py``. Each check reports through the script's :class:`~nodebench.argtypes.ScriptParser`: one line,
exit code 2, before anything is measured or written.
"""

from __future__ import annotations

from collections.abc import Iterable

from nodebench.argtypes import ScriptParser


def refuse_repeats(parser: ScriptParser, **options: Iterable) -> None:
    """Refuse a value given twice to a list option, ``option_name=values`` (``methods=args.methods``): a
    repeated method or size would be measured twice under one key, which no table can hold."""
    for name, values in options.items():
        seen = []
        for value in values:
            if value in seen:
                parser.error(f"--{name.replace('_', '-')} repeats {value!r}; give each value once")
            seen.append(value)


def stepped_methods() -> list[str]:
    """The methods whose training step is a solve and its gradient, which a bare step can repeat: all but
    the spectral ones (SNODE trains by coordinate descent, without a solver step)."""
    from nodebench.methods import METHODS

    return sorted(name for name, method in METHODS.items() if not method.spectral)


def check_stepped_method(parser: ScriptParser, method: str) -> None:
    """Refuse a method without a solver step (:func:`stepped_methods`), naming the valid ones."""
    from nodebench.api import get_method
    from nodebench.errors import UserError

    try:
        spectral = get_method(method).spectral
    except UserError:
        return  # an unknown name: the script's check_case names it
    if spectral:
        parser.error(f"method {method!r} has no solver step to time (it trains by coordinate descent); "
                     f"valid: {', '.join(stepped_methods())}")
