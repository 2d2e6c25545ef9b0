"""SNODE's claims in its experiments file: which baselines they compare against and what the S4 trend needs."""

from __future__ import annotations

import json
import re

import pandas as pd

from nodebench.claims import FAILS, HOLDS, check_claims
from nodebench.experiments import load_paper

#: The experiments of the abstract's comparison (time to target, test MSE, time per iteration).
REGIMES = {"vehicle_high", "vehicle_low", "multi_agent_high", "multi_agent_low"}


def test_every_paper_baseline_run_is_compared_in_s1_to_s3():
    """The abstract compares SNODE with "backpropagation through explicit solvers and the adjoint". S1–S3 checked
    only some of the solvers these experiments run: against Euler, absent from S1, SNODE reached the common
    target 4.9× sooner on vehicle_high, not 10×, and it is slower per iteration (0.79×); gq, a later method, is
    not one of the paper's baselines."""
    spec = load_paper("snode")
    run = {m for exp in spec.experiments if exp.name in REGIMES for m in exp.methods} - {"snode", "gq"}
    families: dict[tuple, set[str]] = {}
    for claim in spec.claims:
        if claim.get("method") == "snode" and REGIMES & set(claim.get("experiments") or REGIMES):
            families.setdefault((claim["check"], claim.get("column")), set()).add(claim["baseline"])
    assert families == {("time_to_target", None): run, ("ratio", "test_mse"): run,
                        ("ratio", "time_per_iter_s"): run}


def _horizon_records(rk4_ms: list[float]) -> pd.DataFrame:
    """vehicle_horizon: SNODE at 10 ms per iteration, RK4 at ``rk4_ms`` over the horizons 2.5, 5, 10, ..."""
    rows = []
    for i, ms in enumerate(rk4_ms):
        for method, t in (("snode", 0.010), ("rk4", ms / 1000)):
            rows.append({"case_id": f"{method}{i}", "experiment": "vehicle_horizon", "method": method, "seed": 0,
                         "status": "ok", "task": "vehicle", "hparams": json.dumps({"horizon": 2.5 * 2 ** i}),
                         "time_per_iter_s": t})
    return pd.DataFrame(rows)


def test_s4_needs_the_ratio_to_grow_at_every_horizon():
    """RK4/SNODE per iteration went 1.9×, 3.0×, 4.0×, 3.7×, 3.5× over horizons 2.5–40: it fell after horizon 10,
    yet S4 ("grows with the horizon") held because 3.5× at 40 is above 1.9× at 2.5."""
    (s4,) = [c for c in load_paper("snode").claims if c["id"] == "S4"]
    (rise_then_fall,) = check_claims([s4], _horizon_records([19, 30, 40, 37, 35]))
    assert rise_then_fall.verdict == FAILS, rise_then_fall.measured
    assert "1.9× at horizon 2.5 → 3× at horizon 5 → 4× at horizon 10 → 3.7×" in rise_then_fall.measured
    assert check_claims([s4], _horizon_records([19, 30, 40, 40, 45]))[0].verdict == HOLDS


def test_s7_fails_on_a_solver_step_in_either_block():
    """S7 ("no ODE solve per iteration") read only ``steps_forward``, SNODE's coefficient block: a solver called in
    the weight block (the harness's backward phase, ``steps_backward``) left every S7 verdict at "holds"."""
    claims = [c for c in load_paper("snode").claims if c["id"].startswith("S7")]

    def verdicts(forward: int, backward: int) -> set[str]:
        records = pd.DataFrame([{"case_id": "a", "experiment": "vehicle_high", "method": "snode", "seed": 0,
                                 "status": "ok", "task": "vehicle", "hparams": "{}", "steps_forward": forward,
                                 "steps_backward": backward}])
        return {v.verdict for v in check_claims(claims, records)}

    assert verdicts(0, 0) == {HOLDS}
    assert verdicts(0, 5) == {HOLDS, FAILS}
    assert verdicts(5, 0) == {FAILS, HOLDS}


def test_every_measured_claim_names_the_part_and_version_of_the_paper_it_quotes():
    """Only the abstract (arXiv v1 and v2) and the introduction (v2) of the paper could be read (README, "Published
    figures"). S5b and S5c cited "the comparison the paper's memory study makes", a study found in neither (the
    introduction calls adjoint-trained ODE-Nets memory efficient), and no source said which version it quoted."""
    for claim in load_paper("snode").claims:
        if "why_not_measured" in claim:
            continue
        source = claim["source"]
        assert re.match(r"(abstract|introduction)\b", source), (claim["id"], source)
        assert re.search(r"arXiv 1906\.07038(v2|, v1 and v2)", source), (claim["id"], source)
        assert "study" not in source, (claim["id"], source)
