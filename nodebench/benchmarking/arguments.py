"""The benchmarking commands' argument checks: names that become folders of the history store (machine and
suite keys), and the baseline revision.

Light on purpose (no pandas, no torch): the command line imports it to build its parser.
"""

from __future__ import annotations

import argparse

from nodebench.errors import UserError
from nodebench.paths import plain_name

def store_key(example: str):
    """``argparse`` type of a machine or suite key of the history store (:func:`nodebench.paths.plain_name`),
    ``example`` in its error."""

    def parse(text: str) -> str:
        try:
            return plain_name(text, "name", example)
        except UserError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse


def revision(text: str) -> str:
    """``argparse`` type of a git revision: any non-blank text (git itself says whether it exists)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a git revision, e.g. main or HEAD~1; got {text!r}")
    return text
