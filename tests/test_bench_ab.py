"""`nodebench bench --baseline REV`: interleaved A/B runs, the paired gate statistics and their errors."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_bench_compare import run_cli

from nodebench.benchmarking.ab import interleaved
from nodebench.benchmarking.compare import RULES, judge, paired_effect
from nodebench.runner.case import expand_grid
from nodebench.runner.sweep import run_case_process

ROOT = Path(__file__).resolve().parents[1]
TINY_AB = """
suite = "tiny_ab"
seeds = 2
[[entry]]
name = "spiral"
paper = "do_vs_od"
task = "cubic_spiral"
methods = ["rk4"]
iters = 6
[[entry]]
name = "g1d"
paper = "gq_adjoint"
task = "g1d"
methods = ["gq"]
hparams = { width = 50, lr = 1e-2, rtol = 1e-3, atol = 1e-3, gtol = 0.1 }
iters = 6
"""


def test_interleaving_pairs_each_case_and_alternates_which_side_goes_first():
    cases = expand_grid(tasks=["cubic_spiral", "g1d"], methods=["rk4"], seeds=range(3), iters=2)
    cases = sorted(cases, key=lambda case: case.seed)
    order = interleaved(cases)
    assert len(order) == 2 * len(cases)
    pairs = [order[i:i + 2] for i in range(0, len(order), 2)]
    assert all(a[0] == b[0] and {a[1], b[1]} == {"baseline", "current"} for a, b in pairs)
    firsts = [pair[0][1] for pair in pairs]
    assert firsts.count("baseline") == firsts.count("current")
    for task in ("cubic_spiral", "g1d"):  # each configuration alternates from round to round
        mine = [pair[0][1] for pair in pairs if pair[0][0].task == task]
        assert all(a != b for a, b in zip(mine, mine[1:]))
    assert [pair[0][0].seed for pair in pairs] == [0, 0, 1, 1, 2, 2]  # rounds of seeds


def _steps(values: dict[int, list[float]]) -> pd.Series:
    index = pd.MultiIndex.from_tuples([(s, i) for s, v in values.items() for i in range(len(v))],
                                      names=["seed", "iteration"])
    return pd.Series([x for v in values.values() for x in v], index=index)


def test_paired_ratio_and_its_interval_follow_the_matched_steps():
    rng = np.random.default_rng(1)
    base = {s: list(rng.uniform(0.9, 1.1, 40)) for s in range(3)}
    cur = {s: [x * 1.2 for x in v] for s, v in base.items()}
    estimate, low, high = paired_effect(_steps(base), _steps(cur), absolute=False)
    assert estimate == pytest.approx(1.2) and low == pytest.approx(1.2) and high == pytest.approx(1.2)
    noisy = {s: [x * 1.2 * f for x, f in zip(v, rng.uniform(0.95, 1.05, 40))] for s, v in base.items()}
    estimate, low, high = paired_effect(_steps(base), _steps(noisy), absolute=False)
    assert low < estimate < high and 1.15 < low and high < 1.25


def test_a_change_whose_interval_reaches_no_change_is_noise_not_a_regression():
    rng = np.random.default_rng(2)
    base = {s: list(rng.uniform(0.9, 1.1, 40)) for s in range(3)}
    # two seeds' processes ran 30 % slower, one 10 % faster: the rank test is confident, the interval is not
    cur = {s: [x * f for x in v] for (s, v), f in zip(base.items(), (1.3, 1.3, 0.9))}
    row = judge(_steps(base), _steps(cur), RULES["cpu"])
    assert row["p"] <= RULES["cpu"].alpha and row["ci_low"] < 1.0 and row["verdict"] == "noise"


def test_an_unknown_baseline_revision_is_one_line_with_exit_code_2(capsys, tmp_path, monkeypatch):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    monkeypatch.setenv("NODEBENCH_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli(capsys, "bench", "--suite", "nightly", "--baseline", "no-such-rev-42",
                             "--out", tmp_path / "store")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "unknown git revision 'no-such-rev-42'" in lines[0], err
    assert not (tmp_path / "store").exists() and not (tmp_path / "cache").exists()
    code, out, err = run_cli(capsys, "bench", "--suite", "nightly", "--baseline", "no-such-rev-42", "--dry-run")
    assert code == 2 and "unknown git revision 'no-such-rev-42'" in err, err  # a dry run checks it too
    # only what was given is named ("drop executor and jobs (--executor, --jobs)" for --jobs alone)
    code, out, err = run_cli(capsys, "bench", "--suite", "nightly", "--baseline", "HEAD", "--jobs", "2", "--dry-run")
    assert code == 2 and err.strip().endswith("machine; drop jobs 2 (--jobs 2)"), err
    code, out, err = run_cli(capsys, "bench", "--suite", "nightly", "--baseline", "HEAD", "--executor", "submitit",
                             "--dry-run")
    assert code == 2 and err.strip().endswith("machine; drop executor 'submitit' (--executor submitit)"), err


def test_an_empty_baseline_revision_is_refused_not_read_as_no_baseline(capsys, tmp_path):
    """``--baseline ''`` ran the sequential gate against the previous run, silently."""
    code, out, err = run_cli(capsys, "bench", "--suite", "nightly", "--baseline", "", "--dry-run")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "argument --baseline: expected a git revision" in lines[0], err
    assert "cases; nothing was run" not in out


def test_a_bad_machine_name_is_refused_before_the_baseline_is_installed(tmp_path, monkeypatch):
    from nodebench.benchmarking import ab
    from nodebench.errors import UserError

    monkeypatch.setattr(ab, "prepare_baseline", lambda *args, **kwargs: pytest.fail("the baseline was installed"))
    with pytest.raises(UserError, match="machine name '../escape' is not a plain name"):
        ab.bench_ab("gate_study", "HEAD", machine="../escape", store=tmp_path / "store")
    assert not (tmp_path / "store").exists()


PLANTED_STEP = """        self.optimizer.step()
        if type(self.problem).__name__ == "G1DProblem":  # PLANTED: 20 % more field evaluations
            counter = self.problem.field
            with torch.no_grad():
                for _ in range(round(0.2 * (counter.nfe["forward"] + counter.nfe["backward"]))):
                    counter(self.problem.t[0], self.problem.z0)
        return loss
"""


@pytest.mark.slow
def test_a_planted_20_percent_slowdown_in_a_second_commit_fails_the_gate_naming_its_configuration(tmp_path):
    """A clone of this checkout's HEAD gets a second commit whose g1d training step repeats 20 % of its
    field evaluations; ``bench --baseline HEAD~1`` from it exits 1 and names g1d, and only g1d. The
    repeated work shows in the deterministic NFE count, so the verdict does not hang on the machine's
    timing noise (the timing gate's power is measured by benchmarks/gate_false_alarms.py)."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout and git")
    if os.environ.get("NODEBENCH_AB_TEST") != "1":
        pytest.skip("an A/B run of two installs takes minutes; set NODEBENCH_AB_TEST=1 to run it")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(ROOT), str(clone)], check=True)
    (clone / "nodebench" / "benchmarking" / "suites" / "tiny_ab.toml").write_text(TINY_AB)
    training = clone / "nodebench" / "training.py"
    step_tail = "        self.optimizer.step()\n        return loss\n"
    assert step_tail in training.read_text(), "GradientStep.step changed shape; update the planted slowdown"
    training.write_text(training.read_text().replace(step_tail, PLANTED_STEP, 1))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "commit", "-qam", "planted 20 % slowdown in g1d"], cwd=clone, check=True)
    env = dict(os.environ, PYTHONPATH=str(clone), NODEBENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "nodebench.cli", "bench", "--suite", "tiny_ab", "--baseline",
                           "HEAD~1", "--out", str(tmp_path / "store"), "--no-progress"], cwd=clone, env=env,
                          capture_output=True, text=True)
    findings = [line for line in done.stdout.splitlines() if line.startswith("REGRESSION:")]
    assert done.returncode == 1, done.stdout + done.stderr
    assert findings and all(line.startswith("REGRESSION: g1d: gq:") for line in findings), done.stdout
    nfe = [line for line in findings if "NFE/iter ×" in line]
    assert nfe and 1.15 <= float(re.search(r"NFE/iter ×([0-9.]+)", nfe[0]).group(1)) <= 1.25, done.stdout
    assert "exact" in nfe[0] and "p = " not in nfe[0]  # NFE is gated exactly: no interval, no test
    baseline_sha = subprocess.run(["git", "rev-parse", "HEAD~1"], cwd=clone, capture_output=True, text=True).stdout
    current_sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout
    assert all(f"baseline {baseline_sha[:12]} → current {current_sha[:12]}" in line for line in findings)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity call on this OS")
def test_pairs_run_on_one_core_and_the_affinity_is_restored():
    from nodebench.benchmarking.ab import _one_core

    before = os.sched_getaffinity(0)
    with _one_core():
        inside = os.sched_getaffinity(0)
        child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert inside == {min(before)} and child == str([min(before)])  # workers inherit the one core
    assert os.sched_getaffinity(0) == before


def test_a_baseline_that_predates_lockstep_is_recognised(tmp_path):
    """The A/B run hands lockstep pipes only to a baseline whose installed package has the module."""
    from nodebench.benchmarking.baseline_env import BaselineEnv

    python = tmp_path / "venv" / "bin" / "python"
    env = BaselineEnv("0" * 40, "old", python)
    assert not env.has_module("nodebench.runner.lockstep")
    module = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "nodebench" / "runner" / "lockstep.py"
    module.parent.mkdir(parents=True)
    module.write_text("")
    assert env.has_module("nodebench.runner.lockstep")


def test_a_resume_with_another_baseline_commit_or_into_a_folder_that_is_no_ab_run_is_refused(tmp_path, monkeypatch):
    """``bench_ab(..., run_dir=FOLDER)`` resumed with whatever commit the revision named now (a branch that moved
    since: the baseline side then held two commits, all stamped with the newer), and into a folder that was no A/B
    run it ran every case and then failed on the missing run id. Both are refused before the baseline installs."""
    from nodebench.benchmarking import ab
    from nodebench.benchmarking.baseline_env import resolve
    from nodebench.errors import UserError
    from nodebench.runner.sweep import write_run_info

    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout and git")
    monkeypatch.setattr(ab, "prepare_baseline", lambda *a, **k: pytest.fail("installed the baseline"))
    with pytest.raises(UserError, match="is no A/B run to resume"):
        ab.bench_ab("gate_study", "HEAD", run_dir=tmp_path / "elsewhere", progress=False, log=lambda line: None)
    moved = tmp_path / "moved"
    write_run_info(moved, command="bench", baseline_rev="HEAD", baseline_sha="0" * 40)
    head = resolve("HEAD")[0][:12]
    with pytest.raises(UserError, match=f"ran baseline 000000000000, but 'HEAD' is now {head}"):
        ab.bench_ab("gate_study", "HEAD", run_dir=moved, progress=False, log=lambda line: None)


def test_ab_progress_into_a_log_is_a_line_per_pair_without_redraws(tmp_path, capsys, monkeypatch):
    """``bench --baseline`` logging to a file (stderr no terminal) drew tqdm's carriage-return redraws and named
    no finished case; it prints the sweep's line per case now, with both sides' statuses and the pair's time. The
    current code stands in for the baseline's install."""
    from nodebench.benchmarking import ab
    from nodebench.benchmarking.baseline_env import BaselineEnv
    from nodebench.benchmarking.suites import Suite, SuiteEntry

    monkeypatch.setattr(ab, "prepare_baseline", lambda *a, **k: BaselineEnv("0" * 40, "stand-in", Path(sys.executable)))
    entry = SuiteEntry("spiral", "", "cubic_spiral", ["euler"], hparams={"extrap_t_end": 2.0, "extrap_points": 20},
                       iters=1)
    ab.bench_ab(Suite("tiny", "", "cpu", 1, [entry]), "HEAD", store=tmp_path, machine="test", timeout_s=300,
                log=lambda line: None)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 1 and re.fullmatch(
        r"\[1/1\] spiral/cubic_spiral/euler/s0: baseline ok, current ok in [0-9.]+ s", lines[0]), err


def test_ab_progress_into_a_log_names_the_running_sides_while_a_pair_runs(tmp_path, capsys, monkeypatch):
    """``bench --baseline`` logging to a file said nothing while a pair ran (its threads' ``result()`` blocked;
    the sweep prints a ``still running:`` line every ALIVE_EVERY_S): a long case was silent until it ended. It
    names each running side's progress note now. Stand-in workers of both sides write a note and sleep."""
    from nodebench.benchmarking import ab
    from nodebench.benchmarking.baseline_env import BaselineEnv
    from nodebench.benchmarking.suites import Suite, SuiteEntry
    from nodebench.runner import progress

    monkeypatch.setattr(progress, "ALIVE_EVERY_S", 0.2)
    monkeypatch.setattr(ab, "prepare_baseline", lambda *a, **k: BaselineEnv("0" * 40, "stand-in", Path(sys.executable)))
    slow = [sys.executable, "-c", textwrap.dedent("""
        import pathlib, sys, time
        case_id = pathlib.Path(sys.argv[3]).name.removesuffix(".case.json")
        (pathlib.Path(sys.argv[4]) / f"{case_id}.progress").write_text("iter 1/1 loss 0.5")
        time.sleep(2)
    """)]
    monkeypatch.setattr(ab, "run_case_process", lambda **job: run_case_process(**job | {"python": slow}))
    entry = SuiteEntry("spiral", "", "cubic_spiral", ["euler"], iters=1)
    ab.bench_ab(Suite("tiny", "", "cpu", 1, [entry]), "HEAD", store=tmp_path, machine="test", timeout_s=300,
                log=lambda line: None)
    alive = [line for line in capsys.readouterr().err.splitlines() if "still running" in line]
    name = "spiral/cubic_spiral/euler/s0: iter 1/1 loss 0\\.5"
    assert any(re.fullmatch(f"  still running: (baseline|current) {name}; (baseline|current) {name}", line)
               for line in alive), alive


def test_an_interrupted_ab_pair_stops_its_workers_at_once(tmp_path, monkeypatch):
    """Ctrl-C during a CPU pair was raised while the pair's threads waited on their workers, which run in sessions
    of their own: the bench then waited for both workers to end (up to the case time limit). The interrupt stops
    them now. Stand-in workers that would sleep 30 s; the interrupt comes after one."""
    from nodebench.benchmarking import ab
    from nodebench.benchmarking.baseline_env import BaselineEnv
    from nodebench.benchmarking.suites import Suite, SuiteEntry

    monkeypatch.setattr(ab, "prepare_baseline", lambda *a, **k: BaselineEnv("0" * 40, "stand-in", Path(sys.executable)))
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    monkeypatch.setattr(ab, "run_case_process", lambda **job: run_case_process(**job | {"python": sleeper}))
    entry = SuiteEntry("spiral", "", "cubic_spiral", ["euler"], iters=1)
    previous = signal.signal(signal.SIGALRM, lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            ab.bench_ab(Suite("tiny", "", "cpu", 1, [entry]), "HEAD", store=tmp_path, machine="test", timeout_s=300,
                        progress=False, log=lambda line: None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 15, "the interrupted bench waited for its workers"


def _pair(tmp_path):
    """A pair of one stand-in case (``_run_pair``'s ``pair`` and ``dirs``)."""
    [case] = expand_grid(tasks=["cubic_spiral"], methods=["euler"], seeds=[0], iters=1)
    return [(case, "baseline"), (case, "current")], {"baseline": tmp_path / "baseline", "current": tmp_path}


@pytest.mark.parametrize("together", [True, False], ids=["cpu-together", "cuda-one-after-the-other"])
def test_a_side_whose_worker_cannot_start_stops_its_pair_at_once(tmp_path, together):
    """A side whose worker could not start (its interpreter gone, a full disk) raised only after the other side's
    whole case had run: the bench waited for both threads (up to the case time limit) before saying why it
    stopped. The error comes at once now, and the other side's worker is stopped. The other side: a stand-in
    worker that would sleep 20 s."""
    from nodebench.benchmarking import ab
    from nodebench.runner.progress import Progress

    pair, dirs = _pair(tmp_path)
    sleeper = [sys.executable, "-c", "import time; time.sleep(20)"]
    jobs = [dict(case=pair[0][0], run_dir=dirs["baseline"], python=[str(tmp_path / "no-such-python")]),
            dict(case=pair[1][0], run_dir=dirs["current"], python=sleeper)]
    started = time.monotonic()
    with pytest.raises(FileNotFoundError, match="no-such-python"):
        ab._run_pair(pair, jobs, dirs, together, Progress(1, enabled=False))
    assert time.monotonic() - started < 10, "the pair waited for the other side's case"
    assert not list((tmp_path / "cases").glob("*.json")), "the stopped side recorded a row"


def test_an_interrupt_between_the_starts_of_a_pair_stops_the_started_side(tmp_path, monkeypatch):
    """An interrupt between the submissions of a pair's two sides came before the wait that stops the workers: the
    started side ran to its end (in lockstep, blocked at its first barrier until the case time limit, its partner's
    pipe ends held open here), and the bench waited for it. It is stopped now, and the pipe ends of the side that
    never started are closed. The first side: a stand-in worker that would sleep 20 s."""
    from concurrent.futures import ThreadPoolExecutor

    from nodebench.benchmarking import ab
    from nodebench.runner import lockstep
    from nodebench.runner.progress import Progress

    class InterruptedAtTheSecondStart(ThreadPoolExecutor):
        def submit(self, *args, **kwargs):
            if getattr(self, "started_one", False):
                raise KeyboardInterrupt
            self.started_one = True
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(ab, "ThreadPoolExecutor", InterruptedAtTheSecondStart)
    pair, dirs = _pair(tmp_path)
    sleeper = [sys.executable, "-c", "import time; time.sleep(20)"]
    pipes = lockstep.pipes()
    jobs = [dict(case=case, run_dir=dirs[side], python=sleeper, pass_fds=fds) for (case, side), fds in zip(pair, pipes)]
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ab._run_pair(pair, jobs, dirs, True, Progress(1, enabled=False))
    assert time.monotonic() - started < 10, "the interrupted pair waited for its started side"
    for fd in pipes[1]:
        with pytest.raises(OSError):
            os.fstat(fd)  # closed: no descriptor leaks from an interrupted pair


def test_the_ab_report_starts_with_the_warnings_of_compare_md(tmp_path):
    """``bench --baseline`` printed the gate's table and findings without the machine and settings warnings that
    its ``compare.md`` starts with (as ``nodebench compare`` prints them)."""
    from test_bench_compare import _on, _records

    from nodebench.benchmarking.ab import ABRun, report
    from nodebench.benchmarking.baseline_env import BaselineEnv
    from nodebench.benchmarking.compare import compare, warning

    base = _on(_records()[0]).assign(num_threads=1)
    result = compare((base, pd.DataFrame()), (_on(base, hostname="other").assign(num_threads=4), pd.DataFrame()))
    run = ABRun(tmp_path, BaselineEnv("a" * 40, "base", Path(sys.executable)), "b" * 40, result, False)
    warnings = warning(result).splitlines()
    assert len(warnings) == 2 and report(run).splitlines()[:2] == warnings
