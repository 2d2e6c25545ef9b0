"""Memory figures in every table: ``–`` where a peak was not measured (NaN, or a resident set that read 0:
:func:`nodebench.records.measured_memory`), ``0`` for a measured 0, through one formatter
(:func:`nodebench.markdown.fmt_mib`)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from nodebench.analyses import scaling_table
from nodebench.benchmarking import leaderboard
from nodebench.markdown import fmt_mib
from nodebench.reporting import summary_table, write_report


@pytest.mark.parametrize("nbytes, shown", [(math.nan, "–"), (None, "–"), (0, "0"), (0.0, "0"), (3 * 2**19, "1.5")])
def test_a_memory_figure_is_a_dash_only_where_it_was_not_measured(nbytes, shown):
    assert fmt_mib(nbytes) == shown
    assert leaderboard._fmt(nbytes, "mib") == shown


def test_the_summary_and_the_scaling_table_show_the_same_memory_figures():
    """A resident set that read 0 (the step reused resident pages) is not measured: "–" in the report's summary,
    "0" in the scaling analysis's table, which also took it into its median. A CUDA peak of 0 is a measured 0 in
    both, a missing reading "–" in both."""
    records = pd.DataFrame({
        "case_id": ["a", "b", "c"], "task": "g1d", "method": ["rk4", "gq", "adjoint"], "seed": 0, "status": "ok",
        "hp_width": 5, "train_wall_s": 1.0, "time_per_iter_s": 0.01, "iters": 10, "nfe_forward_per_iter": 1.0,
        "nfe_backward_per_iter": 1.0, "peak_mem_bytes": [0.0, 0.0, math.nan], "mem_source": ["vmhwm", "cuda", ""]})
    expected = {"rk4": "–", "gq": "0", "adjoint": "–"}
    header, _, *summary = [[cell.strip() for cell in line.strip("|").split("|")]
                           for line in summary_table(records).splitlines()]
    column = header.index("peak mem [MiB]")
    assert {row[0]: row[column] for row in summary} == expected
    header, rows = scaling_table(records, "hp_width", None, "rk4")
    column = header.index("peak mem [MiB]")
    assert {row[1]: row[column] for row in rows} == expected


def test_the_report_says_what_a_dash_in_peak_memory_means(tmp_path):
    """A report whose peak-memory cells read "–" for a resident set of 0 (common on CPU: a step reused pages
    already resident) says why, and names the column that does measure it; it used to say only "memory is the
    peak added above what was held before each step", which a "–" beside a measured figure contradicts."""
    records = pd.DataFrame({
        "case_id": ["a"], "experiment": "e", "task": "g1d", "method": ["rk4"], "seed": 0, "status": "ok",
        "train_wall_s": 1.0, "time_per_iter_s": 0.01, "iters": 10, "nfe_forward_per_iter": 1.0,
        "nfe_backward_per_iter": 1.0, "peak_mem_bytes": [0.0], "mem_source": ["vmhwm"], "alloc_peak_bytes": [2.0**20]})
    text = write_report(tmp_path, records, []).read_text()
    assert "| rk4 |" in text and "| – |" in text, text
    assert "– where the resident set did not grow" in text and "allocated fwd+bwd column" in text, text


@pytest.mark.parametrize("sources, cuda, cpu", [
    (["cuda_allocated"], True, False), (["vmhwm"], False, True), (["cuda_allocated", "vmhwm"], True, True)])
def test_the_report_says_how_the_peak_memory_was_read(sources, cuda, cpu, tmp_path):
    """On CUDA the peak is the allocator's (``mem_source`` cuda_allocated), never a resident set: a CUDA run's
    report said its peak mem was "the resident-set peak" and explained a "–" that CUDA never gives; a run on both
    devices says which is which."""
    records = pd.DataFrame({
        "case_id": [f"c{i}" for i in range(len(sources))], "experiment": "e", "task": "g1d", "method": "rk4",
        "seed": 0, "status": "ok", "train_wall_s": 1.0, "time_per_iter_s": 0.01, "iters": 10,
        "nfe_forward_per_iter": 1.0, "nfe_backward_per_iter": 1.0, "peak_mem_bytes": 2.0**20, "mem_source": sources})
    text = write_report(tmp_path, records, []).read_text()
    assert ("CUDA allocator's peak" in text) == cuda and ("resident-set peak" in text) == cpu, text
    assert ("on CUDA, the CUDA allocator's" in text and "on the CPU, the resident-set" in text) == (cuda and cpu)
