"""TayNODE's claims and their sources (nodebench/papers/taynode/README.md, "Published figures"): a figure the
report shows as "published" must come from the paper, and no claim is left attributed to an unchecked source."""

from __future__ import annotations

from nodebench.experiments import load_paper

# Marks of an attribution that was never checked against the paper's text.
UNCHECKED = ("UNVERIFIED", "secondary summary", "machine-generated summary")


def test_published_values_rest_on_the_paper_and_no_attribution_is_left_unverified():
    claims = load_paper("taynode").claims
    published_unchecked = [c["id"] for c in claims if (c.get("published") is not None or c.get("published_text"))
                           and any(mark in c.get("source", "") for mark in UNCHECKED)]
    assert published_unchecked == []
    assert [c["id"] for c in claims if "UNVERIFIED" in c.get("source", "")] == []
