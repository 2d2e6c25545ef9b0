"""Claim checks of the TayNODE paper (Kelly et al. 2020).

- ``order_matching`` (claim T6; the paper's section is not confirmed): per experiment, per solver (``orders``: method
  → order, default :data:`nodebench.papers.taynode.analyses.SOLVER_ORDERS`) with a λ = 0 run and at least two K of
  R_K: the K that minimises ``column`` (default ``test_nfe``) relative to λ = 0; the solver matches when K = its order
  is within ``tolerance`` (relative, default 0) of the best, is a reduction (below 1), and the values over K differ by
  more than ``tolerance`` (a flat curve has no peak, so it does not match). Holds when at least ``fraction`` (default
  1) of the solvers measured match; a solver whose order was not among the K run is listed as not measured.
"""

from __future__ import annotations

import pandas as pd

from nodebench.claims import FAILS, HOLDS, NOT_MEASURED, experiments_of, register_check
from nodebench.config import Param
from nodebench.papers.taynode.analyses import missing_column, order_matching_table


@register_check("order_matching", params=(Param("column", "str"), Param("fraction", "float", low=0.0, high=1.0),
                                          Param("orders", "table"), Param("tolerance", "float", low=0.0),
                                          Param("experiments", "strs")))
def order_matching(records, tables, claim) -> list[tuple[str, str, str]]:
    column = claim.get("column", "test_nfe")
    tolerance, fraction = claim.get("tolerance", 0.0), claim.get("fraction", 1.0)
    out = []
    for exp in experiments_of(records, claim):
        exp_rows = records[records["experiment"] == exp] if not records.empty else records
        if not exp_rows.empty and (why := missing_column(exp_rows, column)):
            out.append((exp, why, NOT_MEASURED))
            continue
        table = order_matching_table(exp_rows, claim.get("orders"), column) if not exp_rows.empty else pd.DataFrame()
        if table.empty:
            out.append((exp, "no R_K run finished", NOT_MEASURED))
            continue
        parts, matched, measured = [], 0, 0
        for method, rows in table.groupby("method", sort=False):
            rows = rows[rows["relative_nfe"].notna()]
            order = rows["solver_order"].iloc[0] if len(rows) else None
            if len(rows) < 2 or order is None or pd.isna(order):
                parts.append(f"{method}: needs λ = 0 and two K")
                continue
            best = rows.loc[rows["relative_nfe"].idxmin()]
            at_order = rows[rows["K"] == int(order)]
            text = f"{method} (order {int(order)}): best K {int(best['K'])} ({best['relative_nfe']:.3g}×)"
            if at_order.empty:
                parts.append(text + f", K {int(order)} not run")
                continue
            value = float(at_order["relative_nfe"].iloc[0])
            measured += 1
            worst = float(rows["relative_nfe"].max())
            flat = worst - float(best["relative_nfe"]) <= tolerance * float(best["relative_nfe"])
            hit = not flat and value < 1.0 and value <= best["relative_nfe"] * (1 + tolerance)
            matched += hit
            parts.append(text + f", K {int(order)} {value:.3g}×" + (" ✓" if hit else "")
                         + (" (no peak: flat over K)" if flat else ""))
        summary = "; ".join(parts) + f" (relative {column} vs λ = 0; tolerance {tolerance:g})"
        if measured == 0:
            out.append((exp, summary, NOT_MEASURED))
        else:
            verdict = HOLDS if matched / measured >= fraction else FAILS
            out.append((exp, f"{matched} of {measured} solvers best at K = order: {summary}", verdict))
    return out or [("all", "no experiment measured", NOT_MEASURED)]
