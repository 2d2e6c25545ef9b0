"""Bad arguments to the user-facing scripts of ``benchmarks/`` without a test module of their own (the Taylor
and GQ cost scripts are checked in ``test_taylor.py`` and ``test_gq.py``): one line, exit code 2, nothing
written."""

from __future__ import annotations

import pytest
from benchmark_scripts import assert_refused_in_one_line


@pytest.mark.parametrize("arguments, message", [
    (["--task", "nope"], "unknown task 'nope'; valid: "),
    (["--methods", "snode", "foo"], "unknown method 'foo'; valid: "),
    (["--methods", "direct"], "--methods must include snode"),
    (["--seeds", "0"], "--seeds: expected a positive integer, got '0'"),
    (["--budget-s", "-1"], "--budget-s: expected a positive finite number, got '-1'"),
    (["--hparam", "x"], "--hparam: expected KEY=VALUE, got 'x'"),
    (["--hparam", "bogus=1"], "unknown hyper-parameter 'bogus' for task 'vehicle' with method 'snode'; valid: "),
    (["--device", "gpu0"], "unknown device 'gpu0'; valid: cpu, cuda, cuda:N"),
])
def test_snode_time_to_target_refuses_bad_arguments(tmp_path, capsys, monkeypatch, arguments, message):
    assert_refused_in_one_line("snode_time_to_target.py", arguments, message, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("arguments, message", [
    (["--problems", "cnf_toy_8gaussians,nope"], "unknown problem 'nope'; valid: cnf_toy_8gaussians, "),
    (["--iters", "0"], "--iters: expected a positive integer, got '0'"),
    (["--seeds", "two"], "--seeds: expected a positive integer, got 'two'"),
])
def test_do_vs_od_cnf_refuses_bad_arguments(tmp_path, capsys, monkeypatch, arguments, message):
    assert_refused_in_one_line("do_vs_od_cnf.py", arguments, message, tmp_path, capsys, monkeypatch)
