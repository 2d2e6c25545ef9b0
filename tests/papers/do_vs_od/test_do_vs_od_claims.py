"""The DO vs OD paper's published figures (README, "Published figures": the abstract of arXiv 2005.13420v2)
against the claims that read them (experiments.toml): the bounds are the published ones, and the checks hold
and fail where the published figures say."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from nodebench.claims import FAILS, HOLDS, NOT_MEASURED, check_claims
from nodebench.experiments import load_paper

SPEC = load_paper("do_vs_od")
CLAIMS = {claim["id"]: claim for claim in SPEC.claims}
README = (Path(__file__).resolve().parents[3] / "nodebench" / "papers" / "do_vs_od" / "README.md").read_text()


def published_section() -> str:
    start = README.index("## Published figures\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def published_row(claim_id: str) -> str:
    """The published figure the README's table gives for ``claim_id`` (the row's first cell)."""
    rows = [line for line in published_section().splitlines() if re.search(rf"\|\s*{claim_id}\b", line)]
    assert len(rows) == 1, f"no single row for {claim_id} in README, Published figures"
    return rows[0].split("|")[1]


def timed(wins: int, total: int, reduction: float = 0.5) -> pd.DataFrame:
    """Records of ``total`` experiments, rk4 and adjoint, rk4 faster (by ``reduction``) in the first ``wins``."""
    rows = []
    for i in range(total):
        t_rk4 = 1.0 - reduction if i < wins else 2.0
        rows += [{"experiment": f"e{i}", "method": m, "seed": 0, "status": "ok", "case_id": f"{m}{i}",
                  "train_wall_s": t} for m, t in (("rk4", t_rk4), ("adjoint", 1.0))]
    return pd.DataFrame(rows)


def verdicts(claim_id: str, records: pd.DataFrame) -> list[tuple[str, str, str]]:
    return [(v.scope, v.verdict, v.measured) for v in check_claims([CLAIMS[claim_id]], records)]


def test_win_count_claim_holds_at_the_published_six_of_seven_and_fails_at_five():
    """D1: the README's published count (k of n problems) is the claim's bound: k of n holds, k − 1 fails."""
    won, total = map(int, re.search(r"(\d+) of (\d+) problems", published_row("D1")).groups())
    assert (won - 1) / total < CLAIMS["D1"]["fraction"] <= won / total
    assert verdicts("D1", timed(won, total))[0][1] == HOLDS
    assert verdicts("D1", timed(won - 1, total))[0][1] == FAILS


def test_time_reduction_claim_reads_the_published_range():
    """D2: the README's published range (low % to high %) is the claim's min and max; a reduction just below
    the low end fails, one above the high end holds and says so."""
    low, high = (int(x) / 100 for x in re.search(r"(\d+) % to (\d+) %", published_row("D2")).groups())
    assert (CLAIMS["D2"]["min"], CLAIMS["D2"]["max"]) == (low, high)
    assert verdicts("D2", timed(1, 1, reduction=low))[0][1] == HOLDS
    assert verdicts("D2", timed(1, 1, reduction=low - 0.01))[0][1] == FAILS
    above = verdicts("D2", timed(1, 1, reduction=high + 0.01))[0]
    assert above[1] == HOLDS and "above the published range" in above[2]


@pytest.mark.parametrize("claim_id", ["D3", "D8"])
def test_untranscribed_claims_say_what_the_abstract_lacks(claim_id):
    """D3 (the nine-day case) and D8 (the tables) stay not measured, each saying what the readable text, the
    abstract, does not give."""
    (_, verdict, why), = verdicts(claim_id, timed(1, 1))
    assert verdict == NOT_MEASURED and "abstract" in why


def test_readme_puts_every_abstract_figure_beside_its_claim():
    """The README's section names the claim of every published figure and what is still to transcribe."""
    section = published_section()
    for cid in ("D1", "D2", "D3", "D4a", "D4b", "D5a", "D5b", "D6a"):
        assert cid in CLAIMS and re.search(rf"^\|.*\b{cid}\b", section, re.M), cid
    assert "Still to transcribe" in section
