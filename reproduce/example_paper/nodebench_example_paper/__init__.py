"""A minimal nodebench paper plug-in: one experiment on a built-in task and one claim with its own check.

Importing the package registers what it adds (here a claim check); nodebench imports it through the
``nodebench.papers`` entry point declared in ``pyproject.toml``.
"""

from nodebench.claims import FAILS, HOLDS, NOT_MEASURED, register_check


@register_check("fewer_evaluations", params=("method", "baseline"))
def fewer_evaluations(records, tables, claim):
    """Holds when ``method`` makes fewer forward evaluations per iteration than ``baseline`` (medians)."""
    nfe = records.groupby("method")["nfe_forward_per_iter"].median()
    if claim["method"] not in nfe or claim["baseline"] not in nfe:
        return [("all", "a method has no successful run", NOT_MEASURED)]
    ours, theirs = nfe[claim["method"]], nfe[claim["baseline"]]
    return [("all", f"NFE/iter {ours:.3g} vs {theirs:.3g}", HOLDS if ours < theirs else FAILS)]
