"""GQ-paper analyses (toy gradient, scaling) and the ratio claim checks, on CPU and hand-made records."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from nodebench.analyses import ANALYSES, scaling
from nodebench.claims import FAILS, HOLDS, NOT_MEASURED, check_claims
from nodebench.papers.gq_adjoint import analyses
from nodebench.records import expand_hparams

Z0, A = 10.0, 0.2


def test_toy_analytic_gradients_match_finite_differences_of_the_closed_form():
    def loss(z0, a, T):
        return (z0 * math.exp(a * T)) ** 2

    for T in (19.0, 24.37, 29.04):
        exact = analyses.toy_analytic(Z0, A, T)
        args = {"z0": Z0, "a": A, "T": T}
        for wrt in ("z0", "a", "T"):
            h = 1e-6 * max(abs(args[wrt]), 1.0)
            plus, minus = dict(args), dict(args)
            plus[wrt] += h
            minus[wrt] -= h
            fd = (loss(**plus) - loss(**minus)) / (2 * h)
            assert fd == pytest.approx(exact[wrt], rel=1e-7), (wrt, T)


def test_toy_T_grid():
    assert analyses.toy_T_values({}) == [19.0 + 0.5 * i for i in range(21)]
    paper = analyses.toy_T_values({"T_start": 19.0, "T_stop": 29.04, "T_step": 0.02})
    assert len(paper) == 503 and paper[0] == 19.0 and paper[-1] == pytest.approx(29.04)
    assert analyses.toy_T_values({"T_values": [20, 25]}) == [20.0, 25.0]


@pytest.mark.parametrize("block, message", [
    ({"T_start": 29.0, "T_stop": 19.0}, r"T_start 29 is above T_stop 19"),
    ({"T_values": [20.0], "T_step": 0.1}, r"give T_values or T_start/T_stop/T_step, not both"),
    ({"T_start": 1.0, "T_stop": 100.0, "T_step": 1e-4},
     r"T_start..T_stop by T_step gives 990,001 end times; at most 10,000"),
    ({"z0": 0.0}, r"z0 and a must be non-zero"),
    ({"a": 0.0, "T_values": [20.0]}, r"z0 and a must be non-zero"),
    ({"a": 20.0}, r"the analytic gradients e\^\(2·a·T\) overflow float64 at T = 29 with a = 20"),
    ({"rtol": 1e-300, "dtype": "float32"}, r"parameter rtol 1e-300 is below 1.18e-38, the smallest normal number "
                                           r"of float32, .*; give rtol >= 1.18e-38 or dtype float64 \(dtype = "
                                           r"\"float64\"\)"),
    ({"z0": 1e300, "dtype": "float32"}, r"parameter z0 1e\+300 is beyond the range of float32"),
])
def test_toy_gradient_blocks_that_cannot_run_are_refused_before_anything_runs(block, message):
    """Each of these used to fail only after the cases ran: an empty T grid (a report of NaN), a grid of a
    million solves, a ZeroDivisionError or an OverflowError in the analytic gradients; or ran silently wrong: in
    float32, rtol = 1e-300 was 0, another tolerance, and z0 = 1e300 inf (gtol, a Python float setting a node count,
    is not a tensor of that dtype: tests/test_bad_inputs.py)."""
    from nodebench.errors import UserError
    with pytest.raises(UserError, match=r"^analysis 'toy_gradient': " + message):
        ANALYSES["toy_gradient"].validate({"kind": "toy_gradient", **block}, "analysis 'toy_gradient'")
    ANALYSES["toy_gradient"].validate({"kind": "toy_gradient", "T_start": 19.0, "T_stop": 29.04, "T_step": 0.02},
                                      "analysis 'toy_gradient'")


def test_toy_gradient_direct_and_gq_are_accurate_and_failures_are_rows(tmp_path, monkeypatch):
    spec = {"kind": "toy_gradient", "methods": ["direct", "gq"], "T_values": [19.0, 29.0]}
    section, figures = ANALYSES["toy_gradient"].fn(spec, tmp_path, pd.DataFrame())
    table = pd.read_parquet(tmp_path / "toy_gradient.parquet")
    assert set(table.columns) >= {"method", "T", "wrt", "value", "analytic", "rel_error", "status"}
    assert len(table) == 2 * 2 * 3 and (table["status"] == "ok").all()
    assert (table["rel_error"] < 1e-3).all(), table
    assert table["rel_error"].max() > 0  # a real solve, not the analytic value copied
    assert figures and all(p.is_file() for p in figures)
    assert "## Toy gradient accuracy" in section and "| gq | dL/dT |" in section

    # a method that raises gives NaN rows with its error as the status, and the others still run
    real = analyses.toy_gradient_table.__globals__["torch"].autograd.grad

    def flaky(outputs, inputs, **kw):
        if len(inputs) == 3 and inputs[2].item() > 25:
            raise RuntimeError("boom")
        return real(outputs, inputs, **kw)

    monkeypatch.setattr(analyses.torch.autograd, "grad", flaky)
    table = analyses.toy_gradient_table(["direct"], [19.0, 29.0])
    failed = table[table["T"] == 29.0]
    assert failed["value"].isna().all() and failed["status"].str.contains("boom").all()
    assert (table[table["T"] == 19.0]["status"] == "ok").all()


def record(experiment, method, width, seed, time, *, status="ok", mem=2**20, mse=0.1, **extra):
    return {"experiment": experiment, "task": "g1d", "method": method, "seed": seed, "status": status,
            "case_id": f"{experiment}-{method}-{width}-{seed}", "hparams": json.dumps({"width": width, "rtol": 1e-3}),
            "train_wall_s": time, "time_per_iter_s": time / 100, "peak_mem_bytes": mem, "peak_mem_forward_bytes": mem,
            "nfe_forward_per_iter": 26.0, "nfe_backward_per_iter": 40.0, "test_mse": mse} | extra


def scaling_records():
    rows = []
    # g1d: adjoint 2 s / 40 s at widths 5 / 3000 (medians), gq 1 s / 5 s: speed-ups 2× and 8×
    for seed, jitter in enumerate((0.9, 1.1)):
        rows += [record("g1d", "adjoint", 5, seed, 2.0 * jitter), record("g1d", "gq", 5, seed, 1.0 * jitter),
                 record("g1d", "adjoint", 3000, seed, 40.0 * jitter, mem=2**30),
                 record("g1d", "gq", 3000, seed, 5.0 * jitter, mem=2**25)]
    rows.append(record("g1d", "adjoint", 3000, 2, 1e6, status="timeout"))  # ignored by the medians
    # spheres: the speed-up shrinks with width (3× at 20, 1.5× at 1000); adjoint did not run at 2000
    rows += [record("spheres", "adjoint", 20, 0, 3.0), record("spheres", "gq", 20, 0, 1.0),
             record("spheres", "adjoint", 1000, 0, 3.0), record("spheres", "gq", 1000, 0, 2.0),
             record("spheres", "gq", 2000, 0, 4.0), record("spheres", "adjoint", 2000, 0, 9.0, status="oom")]
    # one width only: no scaling study
    rows += [record("single", "adjoint", 20, 0, 1.0), record("single", "gq", 20, 0, 1.0)]
    return pd.DataFrame(rows)


def test_expand_hparams():
    wide = expand_hparams(scaling_records())
    assert wide["hp_width"].tolist()[:4] == [5, 5, 3000, 3000] and (wide["hp_rtol"] == 1e-3).all()
    assert "hp_width" not in expand_hparams(scaling_records().drop(columns="hparams"))


def test_scaling_analysis_figures_and_speedups(tmp_path):
    spec = {"kind": "scaling", "param": "width", "experiments": ["g1d", "single"]}
    section, figures = ANALYSES["scaling"].fn(spec, tmp_path, scaling_records())
    names = {p.name for p in figures}
    assert names == {f"g1d_scaling_{k}.png" for k in ("time", "time_per_iter", "metric", "memory",
                                                            "test_mse_vs_time")}
    assert all(p.is_file() and (p.with_suffix(".pdf")).is_file() for p in figures)
    assert "### g1d: width" in section and "single" not in section and "spheres" not in section
    lines = {tuple(c.strip() for c in line.strip("|").split("|")[:6]) for line in section.splitlines()}
    assert ("3000", "gq", "2/2", "5", "50", "8×") in lines
    assert ("3000", "adjoint", "2/3", "40", "400", "1×") in lines
    assert ("5", "gq", "2/2", "1", "10", "2×") in lines
    assert "| 3000 | gq | 2/2 | 5 | 50 | 8× | 32 | 26 | 40 | 0.1 |" in section

    # another reference and metric; an experiment where the reference failed shows no speed-up
    section, figures = scaling({"param": "width", "reference": "gq", "metric": "train_wall_s"}, tmp_path,
                                        scaling_records())
    assert "speed-up vs gq" in section and "| 3000 | adjoint | 2/3 | 40 | 400 | 0.125× |" in section
    assert "| 2000 | adjoint | 0/1 | – | – | – |" in section
    assert any(p.name == "spheres_scaling_time.png" for p in figures)

    section, figures = scaling({"param": "depth"}, tmp_path, scaling_records())
    assert figures == [] and "depth" in section


def verdicts(claim, records=None):
    claim = {"id": "G", "text": "claim"} | claim
    records = scaling_records() if records is None else records
    return {v.scope: (v.verdict, v.measured) for v in check_claims([claim], records)}


def test_ratio_claim_fixed_value_max_selector_and_bounds():
    claim = {"check": "ratio", "method": "gq", "baseline": "adjoint", "hparams": {"width": 3000}, "min": 5,
             "published": 7.2, "experiments": ["g1d"]}
    verdict, text = verdicts(claim)["g1d"]
    assert verdict == HOLDS and text.startswith("adjoint/gq at width 3000: 8×") and "published: 7.2×" in text
    assert verdicts(claim | {"min": 10})["g1d"][0] == FAILS
    assert verdicts(claim | {"max": 6})["g1d"][0] == FAILS
    assert verdicts(claim | {"hparams": {"width": 5}})["g1d"][0] == FAILS  # 2× < 5

    # "max": the largest width both methods ran; spheres' adjoint OOMed at 2000, so width 1000 (3 s / 2 s)
    out = verdicts({"check": "ratio", "method": "gq", "baseline": "adjoint", "hparams": {"width": "max"},
                    "experiments": ["g1d", "spheres"]})
    assert out["g1d"][0] == HOLDS and "width 3000: 8×" in out["g1d"][1]
    assert out["spheres"][0] == HOLDS and "width 1000: 1.5×" in out["spheres"][1]
    # a fixed width only one of them ran says which widths the other has
    out = verdicts({"check": "ratio", "method": "gq", "baseline": "adjoint", "hparams": {"width": 2000},
                    "experiments": ["spheres"]})
    assert out["spheres"][0] == NOT_MEASURED and "no successful adjoint run at width 2000" in out["spheres"][1]
    assert "adjoint measured at width 20, 1000" in out["spheres"][1]
    out = verdicts({"check": "ratio", "method": "gq", "baseline": "adjoint", "hparams": {"width": "min"}})
    assert out["spheres"][0] == HOLDS and "width 20: 3×" in out["spheres"][1]

    # a width not run at this preset says which widths were
    out = verdicts(claim | {"experiments": ["spheres"]})
    assert out["spheres"][0] == NOT_MEASURED and "width 3000 not measured" in out["spheres"][1]
    assert "width 20, 1000, 2000" in out["spheres"][1]
    # another column: memory ratio
    out = verdicts(claim | {"column": "peak_mem_bytes", "min": 30, "published": None})
    assert out["g1d"][0] == HOLDS and "peak_mem_bytes" in out["g1d"][1] and "32×" in out["g1d"][1]
    # no records at all
    empty = scaling_records().iloc[0:0]
    assert verdicts(claim, records=empty)["g1d"][0] == NOT_MEASURED
    assert verdicts({k: v for k, v in claim.items() if k != "experiments"}, records=empty)["all"][0] == NOT_MEASURED


def test_ratio_trend_claim():
    claim = {"check": "ratio_trend", "method": "gq", "baseline": "adjoint", "param": "width",
             "published_text": "especially for large models"}
    out = verdicts(claim)
    assert out["g1d"][0] == HOLDS and "2× at width 5 → 8× at width 3000" in out["g1d"][1]
    assert out["spheres"][0] == FAILS and "3× at width 20 → 1.5× at width 1000" in out["spheres"][1]
    assert out["single"][0] == NOT_MEASURED and "two width values" in out["single"][1]
    assert verdicts(claim | {"param": "depth"})["g1d"][0] == NOT_MEASURED


def test_ratio_claim_selector_on_an_experiment_that_does_not_vary_the_hparam():
    rows = [record("fixed", m, None, 0, t) | {"hparams": json.dumps({"rtol": 1e-3})}
            for m, t in (("adjoint", 6.0), ("gq", 2.0))]
    out = verdicts({"check": "ratio", "method": "gq", "baseline": "adjoint", "hparams": {"width": "max"}},
                   records=pd.DataFrame(rows))
    assert out["fixed"][0] == HOLDS and "at the task's default width" in out["fixed"][1] and "3×" in out["fixed"][1]


def test_config_labels_name_the_varying_hparams_and_skip_unset_ones():
    from nodebench.records import config_labels
    hparams = [{"reg": "none"}, {"reg": "speed", "reg_order": 2}, {"reg": "speed", "reg_order": 3}]
    rows = pd.DataFrame([{"method": "adjoint", "hparams": json.dumps({**h, "steps": [1, 2]})} for h in hparams])
    assert list(config_labels(rows)) == ["adjoint reg=none", "adjoint reg=speed reg_order=2",
                                         "adjoint reg=speed reg_order=3"]
