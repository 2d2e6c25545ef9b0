"""The regression gate: per case and metric, the change of CURRENT against BASELINE and a noise-aware verdict.

Counts are gated exactly and times only with statistics. NFE (forward + backward evaluations per step) is
deterministic for a fixed seed and code on one machine, so samples matched by seed and iteration (by seed
where there are no per-step samples) are compared exactly: more evaluations on any matched sample is a
``regression``, fewer an ``improved``, no difference ``same``; no threshold, no test (:func:`judge_exact`).
The change shown is the ratio of the matched totals. Runs on different machines may differ in NFE too
(another floating-point path can make an adaptive solver take other steps).

A case is a configuration (experiment, task, method, hyper-parameters but those the method ignores:
:func:`effective_hparams`) on one device: a CPU case and a
CUDA case are listed apart (``new``/``missing``), never compared. Histories from different machines never
mix: when the two runs name different machines (hostname, CPU or GPU model, where both record it), the
report starts with a one-line warning naming both (:func:`machine_warning`); likewise for other settings:
threads, Python, CUDA, driver or library versions (:func:`settings_warning`) and for configurations trained for
other iteration counts (:func:`iters_warning`), whose final metrics then compare training lengths as much as code.

For the other metrics, a change is flagged only when it passes the metric's threshold (a relative one
symmetric in log ratio: 10 % is a ratio above 1.1 on the worse side, below 1/1.1 = 0.909 on the better one,
so the two runs swapped give the reverse verdict; :func:`band`), a one-sided rank
test on the repeat samples says CURRENT is worse at p ≤ α (asv's rule: a factor of 1.1 and Mann–Whitney
p < 0.002), **and** its 95 % confidence interval lies entirely on the worse side of no change. Per-step
samples are matched by seed and iteration, which do the same work in both runs (the work per step varies
several-fold over a run as adaptive solvers change their step counts), and tested with the paired form of the rank test,
Wilcoxon's signed-rank test (``scipy.stats.wilcoxon``) on the differences; per-seed samples with
Mann–Whitney U (``scipy.stats.mannwhitneyu``). The samples of a case (a configuration, over its seeds) are:

- **time**: the wall time of every timed training step of every seed (the curves' ``time_s``; warm-up
  excluded), so a 20-iteration case with 3 seeds gives 60 samples; threshold 10 %, α = 0.002;
- **cpu**: the process CPU time of every step (``cpu_s``), the same rule; on a shared CPU it leaves out
  the time a worker waited for a core, so it is the quieter of the two;
- **NFE**: forward + backward evaluations of every step (curves; per seed, the records' means per
  iteration, where either run has no curves), compared exactly (above), so an A/A comparison gives
  exactly 1.00;
- **test NFE** (``test_nfe``, the evaluations of a test solve at the training tolerance): one value per seed,
  compared exactly as NFE;
- **memory**: the peak memory of each seed (one sample per seed), threshold 5 % and at least 4 MiB,
  α = 0.05. On CPU the figure is a resident-set peak, which the allocator's arenas move in steps of a
  MiB or more: in the nightly A/A run of 2026-12-03 one configuration's seeds spanned 0.5–4.5 MiB on one
  side, and another's three seeds all read 1.1–1.3 MiB higher on one side (p = 0.05, the smallest
  three seeds allow), so growth under 4 MiB is not gated; a seed whose resident set read 0 (its step
  reused resident pages) has no reading, as in reports (:func:`nodebench.records.measured_memory`);
- **allocated**: the allocated-bytes peak of forward + backward of each seed (``alloc_peak_bytes``, from
  an untimed pass: tensor storage on CPU, the allocator on CUDA), which does not move with the pages an
  allocator keeps: identical runs give identical figures, so the floor is 256 KiB; threshold 5 %, α = 0.05
  (three seeds a side to confirm). Runs recorded before the column existed are not compared on it;
- **final metrics**: one sample per seed; a relative tolerance for errors (``test_mse``, ``test_kl``...:
  10 %) and an absolute one where a ratio means nothing (``test_nll``: 0.05 nats; ``test_accuracy``:
  0.02), α = 0.05.

Where the two runs pair up (the same seeds, and iterations), the change is **paired**
(:func:`paired_effect`): the median over seeds of each seed's median ratio current ÷ baseline of matched
samples (a difference for absolute metrics), with a two-stage bootstrap interval that resamples seeds and
then steps within a seed. Steps of one process share its machine conditions, so the process pair (the
seed) is the unit of independent evidence; the per-step rank test alone is over-confident, which is what
the interval guards against. Unpaired samples fall back to the ratio of the centres: the median over seeds
of each seed's median. Where one run has per-step samples of a metric and the other has none (no curves),
both are compared per seed (``time_per_iter_s``...): steps of three processes are no independent samples
against three per-seed values. With one sample per seed, the one-sided exact test cannot go below 1/C(2n, n):
0.05 with 3 seeds, 0.004 with 5, so per-seed metrics use α = 0.05; with a single seed no per-seed change
can be confirmed, and the verdict says ``noise``. Nor can a per-step change with fewer than two seeds
matched in both runs: the interval then rests on the steps of one pair of processes only. A case that was
``ok`` in BASELINE and fails in CURRENT is a regression (``failed``), seed by seed. So is a lost measurement: a metric
that BASELINE measured for a seed and CURRENT, with that seed ``ok``, did not (no value, NaN, no column), a
step that CURRENT recorded with a NaN where BASELINE has a value (:func:`unmeasured_steps`), and per-step curves
that BASELINE has for a case and CURRENT has not (``missing``, on the metric's or the ``curves`` row).

Verdicts: ``regression``, ``improved``, ``same`` (within the threshold), ``noise`` (beyond the threshold
but not confirmed by the test and the interval; for NFE, different counts of runs with no seed in
common), ``failed``, ``new`` and ``missing`` (a case in one run only: listed, not gated; or a metric or
the curves lost by CURRENT: gated as above).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu, wilcoxon

from nodebench.benchmarking.gate_input import check_gate_input
from nodebench.errors import UserError
from nodebench.markdown import seeds_text
from nodebench.methods import get_method
from nodebench.metrics import METRICS
from nodebench.papers import check_loaded
from nodebench.records import CURVES, RECORDS, config_labels, hparams_dict, load_run, measured_memory, short_commit
from nodebench.runner.settings import ignored_options
from nodebench.schema import check_records

REGRESSION, FAILED, MISSING = "regression", "failed", "missing"
CASE_KEYS = ("experiment", "task", "method", "hparams", "device")
#: The environment columns that name a machine; two runs that differ in one are on different machines.
MACHINE_KEYS = ("hostname", "cpu_model", "gpu_model")
#: The environment columns that change what is measured on one machine (nodebench.harness.environment records
#: them): torch threads per case, the interpreter, the CUDA toolkit, cuDNN and NVIDIA driver (kernels, launch
#: costs), and the numerical dependencies: torch, the solvers, the data sets' and bases' libraries.
SETTING_KEYS = ("num_threads", "python_version", "cuda_version", "cudnn_version", "gpu_driver_version",
                "version_torch", "version_torchdiffeq", "version_torchsde", "version_nflows", "version_numpy",
                "version_scikit-learn", "version_scipy")


@dataclass(frozen=True)
class Rule:
    """How one metric is gated.

    Attributes:
        metric: ``time``, ``cpu``, ``nfe``, ``memory``, ``allocated`` or a metric column (``test_mse``...).
        label, unit, scale: how values are shown (value × scale, in unit).
        threshold: the change that counts: relative (0.1: a ratio beyond 1.1 or below 1/1.1, :func:`band`) or,
            when ``absolute``, in the metric's units.
        alpha: the rank test's significance level.
        higher_is_better: accuracy-like metrics.
        floor: the smallest absolute change (in the metric's raw units) that can count.
        exact: a deterministic count (NFE), compared sample by sample with no threshold and no test
            (:func:`judge_exact`); ``threshold`` and ``alpha`` are unused.
    """

    metric: str
    label: str
    threshold: float
    alpha: float
    absolute: bool = False
    higher_is_better: bool = False
    unit: str = ""
    scale: float = 1.0
    floor: float = 0.0
    exact: bool = False


COST_RULES = (
    Rule("time", "time/iter", 0.10, 0.002, unit="ms", scale=1e3),
    Rule("cpu", "CPU time/iter", 0.10, 0.002, unit="ms", scale=1e3),
    Rule("nfe", "NFE/iter", 0.0, 0.0, exact=True),
    Rule("test_nfe", "test NFE", 0.0, 0.0, exact=True),  # the evaluation's solve: as deterministic
    Rule("memory", "peak memory", 0.05, 0.05, unit="MiB", scale=2.0**-20, floor=4 * 2.0**20),
    # allocated bytes (alloc_peak_bytes) do not depend on which pages the allocator keeps: a finer floor
    Rule("allocated", "allocated peak", 0.05, 0.05, unit="MiB", scale=2.0**-20, floor=2.0**18),
)


class GateRules(Mapping):
    """The gate's rules by metric: :data:`COST_RULES`, then one per registered metric with a gate tolerance,
    its tolerance and direction from the metric registry (:mod:`nodebench.metrics`). Read at each use, so a
    metric a paper package registers after this module was imported is gated too."""

    def _rules(self) -> dict[str, Rule]:
        metrics = (Rule(m.name, m.name, m.gate_tolerance, 0.05, absolute=m.absolute,
                        higher_is_better=m.higher_is_better) for m in METRICS.values() if m.gate_tolerance is not None)
        return {rule.metric: rule for rule in (*COST_RULES, *metrics)}

    def __getitem__(self, metric: str) -> Rule:
        return self._rules()[metric]

    def __iter__(self):
        return iter(self._rules())

    def __len__(self) -> int:
        return len(self._rules())


RULES = GateRules()


def rules_with(thresholds: dict[str, float] | None = None) -> dict[str, Rule]:
    """The default rules with some thresholds replaced (``{"time": 0.2}``); unknown metrics, and exactly
    gated ones (NFE), are refused."""
    rules = dict(RULES)
    for metric, value in (thresholds or {}).items():
        if metric in rules and rules[metric].exact:
            raise UserError(f"{metric} is gated exactly (any change of a deterministic count counts) and takes "
                            f"no threshold (thresholds, --threshold)")
        if metric not in rules:
            valid = ", ".join(m for m, rule in rules.items() if not rule.exact)
            raise UserError(f"unknown metric {metric!r} in thresholds (--threshold); valid: {valid}")
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UserError(f"threshold for {metric} must be a positive finite number, got {value!r}")
        if not rules[metric].absolute and value > 1:  # time=10 meant 10 %, but reads ×11: a gate that never fires
            raise UserError(f"threshold for {metric} is a fraction of the baseline (0.1 = 10 %), at most 1 "
                            f"(100 %, ×2); got {value:g}")
        rules[metric] = replace(rules[metric], threshold=float(value))
    return rules


def load_records(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(records, curves)`` from a run directory or a records Parquet file (curves: the file's sibling
    ``curves.parquet`` when there is one, else empty)."""
    path = Path(path)
    if path.is_dir() or path.name == RECORDS:
        records, curves = load_run(path if path.is_dir() else path.parent)
    elif not path.is_file():
        raise UserError(f"{str(path)!r} does not exist; give a run directory or a records .parquet file")
    else:
        try:
            records = pd.read_parquet(path)
            sibling = path.parent / CURVES
            curves = pd.read_parquet(sibling) if sibling.is_file() else pd.DataFrame()
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
            raise UserError(f"cannot read {str(path)!r} as records: {' '.join(str(err).split())[:200]}") from None
    check_records(records, str(path))
    check_loaded(records.get("paper", ()), repr(str(path)))
    records, curves = check_gate_input(records, curves, str(path))
    if not curves.empty:
        curves = curves[curves["case_id"].isin(records["case_id"])]
    return records, curves


def run_label(records: pd.DataFrame, path: str | Path) -> str:
    """``path`` with the commit(s) its records ran (``git_sha``), so that a gate report says what code it
    compared: ```results/a` (commit 1a2b3c4d5e6f)``, ``… (commits 1a2b…, 9f8e…)`` for a mixed run, and
    ``1a2b3c4d5e6f-dirty`` for records of a checkout with uncommitted changes (not that commit's code)."""
    shas = sorted({short_commit(s) for s in records.get("git_sha", pd.Series(dtype=str)).dropna() if str(s)})
    if not shas:
        return f"`{path}` (commit not recorded)"
    return f"`{path}` (commit{'s' * (len(shas) > 1)} {', '.join(shas)})"


def effective_hparams(records: pd.DataFrame) -> pd.Series:
    """Each record's ``hparams`` (JSON) without the options its method ignores
    (:func:`~nodebench.runner.settings.ignored_options`: ``gtol`` for ``rk4``), as ``nodebench run`` records a case
    (:func:`~nodebench.runner.settings.without_ignored`): a run recorded before it left them out, and a paper
    preset's or suite's case, which keeps its shared options, then name the configuration that ran. An unknown
    method, an invalid option or hparams that are no JSON object keep all their options; a record without
    hparams (no column, or a null: the column is optional in the records schema) has None."""
    def effective(method, hparams: str | None) -> str | None:
        try:
            values = json.loads(hparams) if hparams is not None else None
            ignored = ignored_options(get_method(str(method)), values) if isinstance(values, dict) else []
        except (ValueError, UserError):
            return hparams
        return json.dumps({k: v for k, v in values.items() if k not in ignored}, sort_keys=True) if ignored else hparams
    texts = [h if isinstance(h, str) else None for h in records.get("hparams", pd.Series(None, index=records.index))]
    pairs = {pair: effective(*pair) for pair in set(zip(records["method"], texts))}
    return pd.Series([pairs[pair] for pair in zip(records["method"], texts)], index=records.index, dtype=object)


def keyed(records: pd.DataFrame, show_device: bool = False) -> pd.DataFrame:
    """``records`` with a ``key`` column naming the configuration (seed left out; the device in: a CPU and a
    CUDA case are different configurations; options its method ignores left out: :func:`effective_hparams`) and
    a readable ``case`` (from the hyper-parameters as recorded, so committed case names stay), ending in
    `` [cuda]`` with ``show_device``."""
    records = records.copy()
    for column in CASE_KEYS:
        if column not in records:
            records[column] = ""
    records[list(CASE_KEYS)] = records[list(CASE_KEYS)].fillna("").astype(str)
    records["hparams"] = records["hparams"].replace("", "{}")  # none set, as an empty JSON object
    records["key"] = records[list(CASE_KEYS)].assign(hparams=effective_hparams(records)).agg("\x1f".join, axis=1)
    labels = pd.Series(index=records.index, dtype=object)
    for experiment, group in records.groupby(["experiment", "task"], sort=False):
        name = experiment[0] or experiment[1]
        labels[group.index] = [f"{name}: {label}" for label in config_labels(group)]
    records["case"] = labels + (" [" + records["device"] + "]" if show_device else "")
    return records


def samples(records: pd.DataFrame, curves: pd.DataFrame, metric: str, finite: bool = True) -> pd.Series:
    """The repeat samples of one configuration's ``metric`` (see the module docstring), finite values only (with
    ``finite=False`` NaN and infinities too: what was recorded but not measured), indexed by (seed, iteration) for
    per-step samples and by seed for per-seed ones."""
    ok = records[records["status"] == "ok"]
    steps = curves[curves["case_id"].isin(ok["case_id"])] if not curves.empty and "case_id" in ok else curves.iloc[:0]
    per_step = len(steps) > 0
    steps = steps.assign(seed=steps["case_id"].map(dict(zip(ok["case_id"], ok["seed"])))) if per_step else steps
    ok, steps = ok.set_index("seed"), (steps.set_index(["seed", "iteration"]) if per_step else steps)
    if metric == "time":
        values = steps["time_s"] if per_step and "time_s" in steps else ok.get("time_per_iter_s")
    elif metric == "cpu":
        values = steps["cpu_s"] if per_step and "cpu_s" in steps else None
    elif metric == "nfe":
        if per_step and {"nfe_forward", "nfe_backward"} <= set(steps):
            values = steps["nfe_forward"] + steps["nfe_backward"]
        elif {"nfe_forward_per_iter", "nfe_backward_per_iter"} <= set(ok):
            values = ok["nfe_forward_per_iter"] + ok["nfe_backward_per_iter"]
        else:
            values = None
    elif metric == "memory":  # a resident set that read 0 is not measured (records.measured_memory), not 0 bytes
        values = measured_memory(ok) if "peak_mem_bytes" in ok else None
    else:
        values = ok.get({"allocated": "alloc_peak_bytes"}.get(metric, metric))
    if values is None:
        return pd.Series(dtype=float)
    values = pd.to_numeric(values, errors="coerce").astype(float)
    return values[np.isfinite(values)] if finite else values


def centre(values: pd.Series) -> float:
    """The median over seeds of each seed's median."""
    return float(values.groupby(level=0).median().median())


def rank_test(base: pd.Series, cur: pd.Series, alternative: str) -> float:
    """One-sided p-value that ``cur`` is ``alternative`` ("greater"/"less") than ``base``: Wilcoxon's
    signed-rank test on the matched (seed, iteration) pairs of per-step samples, Mann–Whitney U otherwise."""
    if base.index.nlevels == 2 and cur.index.nlevels == 2:
        pairs = pd.concat({"base": base, "cur": cur}, axis=1, join="inner")
        diff = (pairs["cur"] - pairs["base"]).to_numpy()
        if len(diff) and diff.any():
            return float(wilcoxon(diff, alternative=alternative).pvalue)
        if len(diff):
            return 1.0
    return float(mannwhitneyu(cur.to_numpy(), base.to_numpy(), alternative=alternative).pvalue)


def paired_effect(base: pd.Series, cur: pd.Series, absolute: bool, *, resamples: int = 2000,
                  level: float = 0.95) -> tuple[float, float, float]:
    """The paired change of ``cur`` against ``base`` and its percentile-bootstrap confidence interval:
    ``(estimate, low, high)`` as a ratio (relative metrics, from log ratios) or a difference (``absolute``).

    Samples are matched by index: (seed, iteration) for per-step samples, seed for per-seed ones. The
    estimate is the median over seeds of each seed's median paired change, so one disturbed pair of
    processes does not move it. The interval resamples in two stages, seeds and then the matched steps
    within each seed, because steps of one process share its machine conditions and are not independent.
    NaNs when fewer than one matched pair exists or a ratio of non-positive values would be needed."""
    pairs = pd.concat({"base": base, "cur": cur}, axis=1, join="inner").dropna()
    if pairs.empty or (not absolute and ((pairs["base"] <= 0) | (pairs["cur"] <= 0)).any()):
        return math.nan, math.nan, math.nan
    diff = pairs["cur"] - pairs["base"] if absolute else np.log(pairs["cur"]) - np.log(pairs["base"])
    groups = [g.to_numpy() for _, g in diff.groupby(level=0)]
    rng = np.random.default_rng(0)
    seed_medians = np.stack([np.median(g[rng.integers(0, len(g), (resamples, len(g)))], axis=1) for g in groups])
    picks = rng.integers(0, len(groups), (resamples, len(groups)))
    boot = np.median(seed_medians[picks, np.arange(resamples)[:, None]], axis=1)
    estimate = float(np.median([np.median(g) for g in groups]))
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    back = (lambda x: float(x)) if absolute else (lambda x: float(np.exp(x)))
    return back(estimate), back(low), back(high)


def band(rule: Rule) -> float:
    """The change that passes ``rule``'s threshold: the threshold itself for an absolute rule, else in log ratio,
    ``log(1 + threshold)``, so that a ratio counts beyond ``1 + threshold`` on the worse side and below
    ``1 / (1 + threshold)`` on the better one: a change and its exact reverse (the two runs swapped) are judged
    alike (asv's factor of 1.1 likewise reads an improvement below 1/1.1)."""
    return rule.threshold if rule.absolute else math.log1p(rule.threshold)


def judge(base: pd.Series, cur: pd.Series, rule: Rule) -> dict:
    """Change of the centres with its confidence interval, the one-sided rank test and the verdict for one
    metric of one configuration; the samples are indexed by seed, or by (seed, iteration) for steps.

    Where the samples pair up (the same seeds, and iterations, in both runs), the change is the paired
    estimate of :func:`paired_effect`; otherwise the ratio (or difference) of the centres (:func:`centre`).
    A change counts as a regression when it passes the threshold (:func:`band`: symmetric in log ratio), the
    rank test gives p ≤ α and the confidence interval lies entirely on the worse side of no change (improved,
    the same on the better side). Per-step samples (indexed by seed and
    iteration) need that interval from two or more seeds matched in both runs: the steps of one process share
    its machine conditions, so one pair of processes cannot tell a code change from the machine's drift (with
    one seed, sequential A/A runs of the nightly suite read 2 of 11 nights as regressions); otherwise the
    verdict is ``noise``. An ``exact`` rule is :func:`judge_exact`'s."""
    base, cur = pd.Series(base), pd.Series(cur)
    if rule.exact:
        return judge_exact(base, cur)
    b, c = centre(base), centre(cur)
    ratio = c / b if b != 0 else (1.0 if c == 0 else math.inf)
    estimate, low, high = paired_effect(base, cur, rule.absolute)
    if not math.isnan(estimate):
        ratio = estimate if not rule.absolute else ratio
    change = estimate if rule.absolute and not math.isnan(estimate) else c - b
    sign = -1.0 if rule.higher_is_better else 1.0
    worse_by = sign * (change if rule.absolute else (math.log(ratio) if ratio > 0 else -math.inf))
    no_change = 0.0 if rule.absolute else 1.0
    verdict, p = "same", math.nan
    if abs(worse_by) > band(rule) and abs(c - b) >= rule.floor:
        worse = worse_by > 0
        alternative = "greater" if worse != rule.higher_is_better else "less"
        p = rank_test(base, cur, alternative)
        side = (low > no_change) if alternative == "greater" else (high < no_change)
        if base.index.nlevels == 2:  # steps: the interval must rest on two process pairs or more
            confirmed = p <= rule.alpha and side and len(measured_seeds(base) & measured_seeds(cur)) >= 2
        else:
            confirmed = p <= rule.alpha and (math.isnan(low) or side)
        verdict = ("regression" if worse else "improved") if confirmed else "noise"
    return {"baseline": b, "current": c, "ratio": ratio, "change": change, "ci_low": low, "ci_high": high,
            "p": p, "verdict": verdict, "n_baseline": len(base), "n_current": len(cur)}


def judge_exact(base: pd.Series, cur: pd.Series) -> dict:
    """The verdict on a deterministic count (NFE): for a fixed seed, code and machine an adaptive solver
    takes the same steps, so matched samples ((seed, iteration) for steps, seed for per-seed values) are
    compared exactly, with no threshold and no test: a regression when any matched sample is larger, else
    improved when one is smaller, else the same. ``ratio`` and ``change`` are those of the matched totals;
    ``note`` counts the samples that differ. Samples that match nothing (no seed in common) are not
    evidence of a change: their centres are compared, and a difference is ``noise``."""
    b, c = centre(base), centre(cur)
    pairs = pd.concat({"base": base, "cur": cur}, axis=1, join="inner").dropna()
    row = {"baseline": b, "current": c, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan,
           "n_baseline": len(base), "n_current": len(cur)}
    if pairs.empty:
        return row | {"ratio": c / b if b else (1.0 if c == b else math.inf), "change": c - b,
                      "verdict": "same" if c == b else "noise",
                      "note": "no seed in common: counts of different seeds are not compared exactly"}
    diff = pairs["cur"] - pairs["base"]
    more, fewer = int((diff > 0).sum()), int((diff < 0).sum())
    total_b, total_c = float(pairs["base"].sum()), float(pairs["cur"].sum())
    unit = "steps" if pairs.index.nlevels == 2 else "seeds"
    return row | {"ratio": total_c / total_b if total_b else (1.0 if total_c == total_b else math.inf),
                  "change": total_c - total_b,
                  "verdict": "regression" if more else "improved" if fewer else "same",
                  "note": f"{more} more, {fewer} fewer of {len(pairs)} matched {unit}" if more or fewer else ""}


def unmeasured_steps(base: pd.Series, current: pd.Series) -> pd.MultiIndex:
    """The steps (seed, iteration) that ``base`` measured and whose value the current run recorded as NaN or
    infinite (``current``: its per-step samples with ``finite=False``, :func:`samples`): lost measurements, which
    the exact matching of :func:`judge_exact` and the paired statistics would otherwise skip. Empty for per-seed
    samples, whose lost seeds :func:`measured_seeds` finds."""
    if base.index.nlevels != 2 or current.index.nlevels != 2:
        return pd.MultiIndex.from_tuples([], names=["seed", "iteration"])
    lost = current.index[~np.isfinite(current.to_numpy())]
    return lost[lost.isin(base.index)].unique()


def measured_seeds(values: pd.Series) -> set:
    """The seeds that have at least one sample in ``values`` (indexed by seed, or by (seed, iteration))."""
    return set(values.index.get_level_values(0)) if len(values) else set()


def zero_resident_sets(records: pd.DataFrame, metric: str) -> set:
    """For ``memory``, the seeds of ``records``' ok cases whose resident set read 0 (the step reused resident
    pages): measured, with no figure to compare (:func:`nodebench.records.measured_memory`), so not lost."""
    if metric != "memory" or not {"peak_mem_bytes", "mem_source"} <= set(records):
        return set()
    ok = records[records["status"] == "ok"]
    return set(ok.loc[(ok["mem_source"] == "vmhwm") & (pd.to_numeric(ok["peak_mem_bytes"], errors="coerce") <= 0),
                      "seed"])


def seeds_with_curves(records: pd.DataFrame, curves: pd.DataFrame) -> set:
    """The seeds of ``records``' ok cases that have rows in ``curves``."""
    if curves.empty or "case_id" not in curves:
        return set()
    ok = records[records["status"] == "ok"]
    return set(ok.loc[ok["case_id"].isin(curves["case_id"]), "seed"])


def _check_one_case_per_seed(records: pd.DataFrame, which: str) -> None:
    """A :class:`UserError` when a configuration holds two cases of one seed (a folder that merged runs of
    different iteration limits or budgets, or cases that differ only in options their method ignores,
    :func:`effective_hparams`: one configuration measured twice): their samples would pair with nothing
    definite, and averaging them would hide a repeat. The message names what the cases differ in."""
    if "seed" not in records:
        return
    twice = records[records.duplicated(["key", "seed"], keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        same = twice[(twice["key"] == first["key"]) & (twice["seed"] == first["seed"])]
        limits = [column for column in ("iters", "budget_s") if column in same and same[column].nunique() > 1]
        differ = "; ".join(f"{c} {', '.join(map(str, sorted(same[c].unique())))}" for c in limits)
        ignored = ignored_differences(same)
        why = (f": their hparams differ only in options that change nothing in a run of {first['method']} "
               f"({ignored}), so they are one configuration measured {len(same)} times; keep one of them (nodebench "
               f"run records a case without such options)" if ignored else "")
        raise UserError(f"the {which} run holds {first['case']!r} {len(same)} times for seed {first['seed']}"
                        f"{f' ({differ})' if differ else ''}{why}; compare runs with one case per configuration "
                        f"and seed")


def ignored_differences(same: pd.DataFrame) -> str:
    """The options in which the recorded ``hparams`` of one configuration's cases differ, with their values
    (``gtol 0.1, 0.2``; ``unset`` where a case lacks one), ``""`` where they agree; cases of one :func:`keyed`
    configuration differ only in options their method ignores."""
    options = [hparams_dict(h) for h in same["hparams"]]
    names = sorted({name for hparams in options for name in hparams})
    shown = {name: [json.dumps(hparams[name]) if name in hparams else "unset" for hparams in options]
             for name in names}
    return "; ".join(f"{name} {', '.join(sorted(set(values)))}" for name, values in shown.items()
                     if len(set(values)) > 1)


def compare(baseline: tuple[pd.DataFrame, pd.DataFrame], current: tuple[pd.DataFrame, pd.DataFrame],
            rules: dict[str, Rule] | None = None) -> pd.DataFrame:
    """One row per (configuration, metric) present in both runs, plus ``failed``/``new``/``missing`` rows.
    A configuration run on another device is another configuration (``new``/``missing``; the case names
    end in the device then). When the runs come from different machines, ``result.attrs["warning"]`` says
    so (:func:`machine_warning`; :func:`warning` reads it).

    Args:
        baseline, current: ``(records, curves)`` pairs (see :func:`load_records`).
        rules: the gate's rules (default :data:`RULES`).
    """
    rules = rules or dict(RULES)
    devices = {str(d) for records, _ in (baseline, current) for d in records.get("device", pd.Series([""])).fillna("")}
    base_rec, cur_rec = (keyed(records, show_device=len(devices) > 1) for records, _ in (baseline, current))
    for records, which in ((base_rec, "baseline"), (cur_rec, "current")):
        _check_one_case_per_seed(records, which)
    rows = []
    cur_by_key = dict(list(cur_rec.groupby("key", sort=False)))
    base_by_key = dict(list(base_rec.groupby("key", sort=False)))
    for key, cur in cur_by_key.items():
        case = cur["case"].iloc[0]
        base = base_by_key.get(key)
        if base is None:
            rows.append({"case": case, "metric": "", "verdict": "new"})
            continue
        newly_failed = cur[(cur["status"] != "ok") & ~cur["seed"].isin(base.loc[base["status"] != "ok", "seed"])]
        if len(newly_failed):  # seed by seed: seed 1 failing where seed 0 failed before is still a new failure
            rows.append({"case": case, "metric": "status", "verdict": FAILED,
                         "note": "; ".join(sorted(set(newly_failed["status"])))})
        ok_seeds = set(cur.loc[cur["status"] == "ok", "seed"])
        no_curves = (seeds_with_curves(base, baseline[1]) & ok_seeds) - seeds_with_curves(cur, current[1])
        if no_curves:
            rows.append({"case": case, "metric": "curves", "verdict": MISSING,
                         "note": f"no per-step curves in the current run for {seeds_text(no_curves)}"})
        for metric, rule in rules.items():
            steps = (baseline[1], current[1])
            b, c = samples(base, steps[0], metric), samples(cur, steps[1], metric)
            if len(b) and len(c) and b.index.nlevels != c.index.nlevels:  # steps on one side only: per seed
                steps = (pd.DataFrame(), pd.DataFrame())
                b, c = samples(base, steps[0], metric), samples(cur, steps[1], metric)
            lost = (measured_seeds(b) & ok_seeds) - measured_seeds(c) - zero_resident_sets(cur, metric)
            lost_steps = unmeasured_steps(b, samples(cur, steps[1], metric, finite=False))
            if lost or len(lost_steps):
                what = (seeds_text(lost) if lost else f"{len(lost_steps)} step{'s' * (len(lost_steps) > 1)} of "
                        f"{seeds_text(set(lost_steps.get_level_values(0)))}")
                rows.append({"case": case, "metric": metric, "baseline": centre(b), "verdict": MISSING,
                             "n_baseline": len(b), "n_current": len(c),
                             "note": f"not measured (no value or NaN) in the current run for {what}"})
            elif len(b) and len(c):
                rows.append({"case": case, "metric": metric} | judge(b, c, rule))
    for key, base in base_by_key.items():
        if key not in cur_by_key:
            rows.append({"case": base["case"].iloc[0], "metric": "", "verdict": "missing"})
    columns = ["case", "metric", "baseline", "current", "ratio", "change", "ci_low", "ci_high", "p", "verdict",
               "n_baseline", "n_current", "note"]
    order = {metric: i for i, metric in enumerate(["status", "curves", *rules])}
    result = pd.DataFrame(rows, columns=columns)
    result = result.sort_values(["case", "metric"], key=lambda col: col.map(order) if col.name == "metric" else col,
                                kind="stable", ignore_index=True)
    lines = (machine_warning(baseline[0], current[0]), settings_warning(baseline[0], current[0]),
             iters_warning(base_rec, cur_rec))
    result.attrs["warning"] = "\n".join(line for line in lines if line)
    return result


def recorded(records: pd.DataFrame, column: str) -> str:
    """The values of ``column`` in ``records``, sorted and joined by `` + `` (an empty one read as ``none``)."""
    return " + ".join(v or "none" for v in sorted({str(v) for v in records[column].fillna("")}))


def machine_warning(base: pd.DataFrame, cur: pd.DataFrame) -> str:
    """One line naming both machines when the two runs' records differ in hostname, CPU or GPU model
    (compared where both record it), else ``""``: their times and memory reflect the machines as much as
    the code, and even NFE may differ (another floating-point path can take other adaptive steps).
    Histories from different machines never mix; pytest-benchmark likewise warns when machine info differs."""
    differ = [k for k in MACHINE_KEYS if k in base and k in cur and recorded(base, k) != recorded(cur, k)]
    if not differ:
        return ""

    def name(records: pd.DataFrame) -> str:  # the hostname, then the other columns that differ
        details = "; ".join(f"{k} {recorded(records, k)}" for k in differ if k != "hostname")
        host = recorded(records, "hostname") if "hostname" in records else "unnamed"
        return f"{host}{f' ({details})' if details else ''}"
    return (f"WARNING: time and memory are compared across different machines: baseline {name(base)}, "
            f"current {name(cur)}")


def settings_warning(base: pd.DataFrame, cur: pd.DataFrame) -> str:
    """One line naming the settings of :data:`SETTING_KEYS` (torch threads, Python, CUDA, NVIDIA driver and library
    versions) in which the two runs' records differ (compared where both record them), else ``""``: a step on 4
    threads, on another CUDA or torch, is another measurement, whatever the code did."""
    differ = [k for k in SETTING_KEYS if k in base and k in cur and recorded(base, k) != recorded(cur, k)]
    if not differ:
        return ""
    return ("WARNING: time and memory are compared across different settings: "
            + "; ".join(f"{k} baseline {recorded(base, k)}, current {recorded(cur, k)}" for k in differ))


def iters_warning(base: pd.DataFrame, cur: pd.DataFrame) -> str:
    """One line naming each configuration (of :func:`keyed` records) whose ``ok`` cases ran other iteration
    counts in the two runs (``iters``, compared where both record it), else ``""``: its per-seed values (final
    test metrics, memory, test NFE) then come from other training lengths, whatever the code did. Per-step
    samples are matched by iteration, so they compare like with like."""
    def counts(records: pd.DataFrame) -> dict[str, tuple[str, str]]:  # key: (case, "20" or "20 + 31")
        ok = records[records["status"] == "ok"] if "iters" in records else records.iloc[:0]
        iters = pd.to_numeric(ok.get("iters", pd.Series(dtype=float)), errors="coerce")
        return {key: (ok.loc[group.index[0], "case"], " + ".join(map(str, sorted({int(n) for n in group.dropna()}))))
                for key, group in iters.groupby(ok["key"], sort=False) if group.notna().any()}
    base_counts, cur_counts = counts(base), counts(cur)
    differ = sorted(f"{case} baseline {n}, current {cur_counts[key][1]}" for key, (case, n) in base_counts.items()
                    if key in cur_counts and cur_counts[key][1] != n)
    if not differ:
        return ""
    return "WARNING: final metrics are compared across different iteration counts (iters): " + "; ".join(differ)


def warning(result: pd.DataFrame) -> str:
    """The comparison's warning lines (:func:`machine_warning`, :func:`settings_warning`,
    :func:`iters_warning`), ``""`` when there is none."""
    return result.attrs.get("warning", "")


def failing(result: pd.DataFrame) -> pd.Series:
    """The rows that fail the gate: regressions, newly failing cases, and metrics or curves the current run
    lost (``missing`` on a metric's row; a case missing from the current run is listed, not gated)."""
    lost = (result["verdict"] == MISSING) & (result["metric"].fillna("") != "")
    return result["verdict"].isin([REGRESSION, FAILED]) | lost


def regressed(result: pd.DataFrame) -> bool:
    """Whether the comparison holds a failing row (:func:`failing`; the gate's exit code 1)."""
    return bool(failing(result).any())


def _value(value: float, rule: Rule | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    scaled = value * (rule.scale if rule else 1.0)
    return f"{scaled:.4g} {rule.unit}".strip() if rule else f"{scaled:.4g}"


def _change(row, rule: Rule) -> str:
    """``×1.213 [1.171, 1.254]``: the ratio (or ``+0.03 [...]``: the difference) and its 95 % interval;
    for an exact rule the ratio of the matched totals and which samples differ: ``×1.0002 exact (+1: 1 more,
    0 fewer of 60 matched steps)``."""
    if rule.exact:
        differ = f" ({row.change:+g}: {row.note})" if isinstance(row.note, str) and row.note else ""
        return f"×{row.ratio:.5g} exact{differ}"
    if rule.absolute:
        text, low, high = f"{row.change * rule.scale:+.3g}", row.ci_low * rule.scale, row.ci_high * rule.scale
        return text if math.isnan(low) else f"{text} [{low:+.3g}, {high:+.3g}]"
    text = f"×{row.ratio:.3f}" if math.isfinite(row.ratio) else "×inf"
    return text if math.isnan(row.ci_low) else f"{text} [{row.ci_low:.3f}, {row.ci_high:.3f}]"


def table(result: pd.DataFrame, rules: dict[str, Rule] | None = None) -> pd.DataFrame:
    """The comparison as display strings: case, metric, baseline, current, change (with its 95 % confidence
    interval), p, verdict. A metric the current run lost reads ``–`` there (not measured, as in the other
    tables: :func:`nodebench.markdown.fmt_number`); a row of no metric (status, curves, new, missing) has no values."""
    rules = rules or dict(RULES)
    rows = []
    for row in result.itertuples():
        rule = rules.get(row.metric)
        if rule is None or row.verdict == MISSING:  # status, curves, new, missing
            rows.append([row.case, rule.label if rule else row.metric, _value(row.baseline, rule), "–" if rule else "",
                         row.note if isinstance(row.note, str) else "", "", row.verdict])
            continue
        change = _change(row, rule)
        p = "" if math.isnan(row.p) else f"{row.p:.2g}"
        verdict = f"**{row.verdict}**" if row.verdict == REGRESSION else row.verdict
        rows.append([row.case, rule.label, _value(row.baseline, rule), _value(row.current, rule), change, p, verdict])
    return pd.DataFrame(rows, columns=["case", "metric", "baseline", "current", "change", "p", "verdict"])


def findings(result: pd.DataFrame, baseline: str, current: str, rules: dict[str, Rule] | None = None) -> list[str]:
    """One line per regression or newly failing case, with what a reviewer needs to act on it: the
    configuration, the metric, the change with its 95 % interval, the p-value and the two revisions."""
    rules = rules or dict(RULES)
    lines = []
    for row in result[failing(result)].itertuples():
        rule = rules.get(row.metric)
        if row.verdict == MISSING:
            what = f"{rule.label if rule else row.metric} {row.note}"
        elif rule is None:
            what = f"now fails ({row.note})"
        else:
            statistics = "" if rule.exact else f", p = {row.p:.2g}"
            what = (f"{rule.label} {_change(row, rule)}{'' if rule.exact else ' (95 % CI)'}, "
                    f"{_value(row.baseline, rule)} → {_value(row.current, rule)}{statistics}")
        lines.append(f"{row.verdict.upper()}: {row.case}: {what}; baseline {baseline} → current {current}")
    return lines


def markdown(result: pd.DataFrame, baseline: str, current: str, rules: dict[str, Rule] | None = None) -> str:
    """The comparison as a Markdown document: the machine and settings warnings (:func:`warning`) when there
    are any, the verdict, each finding, the rules and the table."""
    rules = rules or dict(RULES)
    flagged = result[failing(result)]
    headline = (f"**{len(flagged)} regression(s)** in {flagged['case'].nunique()} case(s)" if len(flagged)
                else "No regression.")
    rule_text = "; ".join(
        f"{r.label} {'±' + format(r.threshold, 'g') if r.absolute else format(r.threshold * 100, 'g') + ' %'}"
        f"{f' and ≥ {r.floor * r.scale:g} {r.unit}' if r.floor else ''} (α = {r.alpha:g})"
        for r in rules.values() if not r.exact)
    exact = ", ".join(r.label for r in rules.values() if r.exact)
    return "\n".join([
        *([*(f"**{line}**" for line in warning(result).splitlines()), ""] if warning(result) else []),
        "# nodebench compare", "", f"Baseline: {baseline}", "", f"Current: {current}", "", headline, "",
        *[f"- {line}" for line in findings(result, baseline, current, rules)], "",
        "A change is a regression when it passes the threshold, a one-sided rank test on the repeat samples "
        "gives p ≤ α (Wilcoxon signed-rank on steps matched by seed and iteration; Mann–Whitney U on per-seed "
        "values) and its 95 % confidence interval lies on the worse side of no change. The change is the "
        "median over seeds of each seed's median paired ratio (or difference), its interval a two-stage "
        "bootstrap over seeds and matched steps. A relative threshold is symmetric in log ratio (10 %: above "
        f"×1.1 worse, below ×1/1.1 = ×0.909 better). Thresholds: {rule_text}."
        + (f" {exact}: a deterministic count for a fixed seed, code and machine, compared exactly: more on any "
           "step (or seed) matched by seed and iteration is a regression, fewer an improvement; no threshold, "
           "no test." if exact else ""), "",
        table(result, rules).to_markdown(index=False), ""])
