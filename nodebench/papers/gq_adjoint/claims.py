"""Claim checks of the GQ paper (Norcliffe & Deisenroth 2023, arXiv 2308.10644).

- ``toy_gradient_parity`` (claim G4a; the official ``experiments/toy_gradient.py``, whose figure sets GQ's relative
  gradient errors beside the adjoint's): from the ``toy_gradient`` table, per gradient (dL/dz0, dL/da, dL/dT), the
  largest relative error of ``method`` over the end times T against ``baseline``'s; holds when each is at most
  ``factor`` (default 1) × the baseline's. A failed solve of ``method`` at any T fails the claim (a gradient it did
  not return is not accurate); a gradient the baseline never returned is not measured.
"""

from __future__ import annotations

import pandas as pd

from nodebench.claims import BASELINE, FAILS, HOLDS, METHOD, NOT_MEASURED, at_most, register_check
from nodebench.config import Param
from nodebench.papers.gq_adjoint.analyses import TOY_WRT


def _failed_text(table: pd.DataFrame, method: str) -> str | None:
    """Which end times ``method``'s toy solve failed at, or ``None``."""
    own = table[table["method"] == method]
    failed = sorted(own.loc[own["status"] != "ok", "T"].unique())
    if not failed:
        return None
    return f"{method} failed at {len(failed)} of {own['T'].nunique()} end times (T = " + \
        ", ".join(f"{T:g}" for T in failed[:5]) + (", …" if len(failed) > 5 else "") + ")"


@register_check("toy_gradient_parity", params=(BASELINE, Param("factor", "float", positive=True), METHOD),
                tables=("toy_gradient",))
def toy_gradient_parity(records, tables, claim) -> list[tuple[str, str, str]]:
    method, base, factor = claim["method"], claim["baseline"], claim.get("factor", 1.0)
    table = tables.get("toy_gradient", pd.DataFrame())
    if table.empty or not {method, base} <= set(table["method"]):
        return [("all", f"no toy_gradient rows of {method} and {base} in this run", NOT_MEASURED)]
    worst = table[table["status"] == "ok"].groupby(["method", "wrt"])["rel_error"].max()
    pairs = {wrt: (worst.get((method, wrt)), worst.get((base, wrt))) for wrt in TOY_WRT}
    shown = "; ".join(f"dL/d{wrt} {m:.2g} vs {b:.2g}" + (f" ({m / b:.3g}×)" if b > 0 else "")
                      for wrt, (m, b) in pairs.items() if m is not None and b is not None)
    text = f"largest relative error, {method} vs {base}: {shown or 'none'} (needs ≤ {factor:g}× {base}'s)"
    failed = _failed_text(table, method)
    if failed:
        return [("all", f"{failed}; {text}", FAILS)]
    unmatched = [f"dL/d{wrt}" for wrt, (m, b) in pairs.items() if m is None or b is None]
    if unmatched:
        return [("all", f"{base} returned no {', '.join(unmatched)}; {text}", NOT_MEASURED)]
    holds = all(at_most(m, factor * b) for m, b in pairs.values())
    return [("all", text, HOLDS if holds else FAILS)]
