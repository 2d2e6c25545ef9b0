"""Bad arguments to the Python API (:mod:`nodebench.api`): one :class:`UserError` line before anything runs,
never a ``TypeError`` from deep inside, a run into the current folder, or a sweep that waits forever."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import nodebench
from nodebench.errors import UserError

RUN = Path(__file__).resolve().parents[1] / "results" / "baselines" / "gq_adjoint-quick-cpu"


def _dry(**kwargs):
    return lambda tmp: nodebench.run(kwargs.pop("task", "g1d"), kwargs.pop("methods", "rk4"), dry_run=True, **kwargs)


CASES = {
    "jobs=0 (waited forever for a free slot)": (_dry(jobs=0), "jobs must be an integer from 1 to 10000, got 0"),
    "threads=0": (_dry(threads=0), "threads must be an integer from 1 to 1024"),
    "timeout_s=-1": (_dry(timeout_s=-1), "timeout_s must be a positive finite number"),
    "a misspelt engine option": (_dry(jbos=2), "unknown engine option 'jbos' (did you mean 'jobs'?)"),
    "jobs as a string": (_dry(jobs="2"), "jobs must be an integer"),
    "seeds=0 (an empty run before)": (_dry(seeds=0), "seeds must be an integer >= 1, got 0"),
    "seeds=True": (_dry(seeds=True), "seeds must be an integer >= 1, got True"),
    "a misspelt method in method_hparams": (_dry(methods=["rk4", "adjoint"],
                                                 method_hparams={"adjiont": {"rtol": 1e-5}}),
                                            "method_hparams names 'adjiont' (did you mean 'adjoint'?)"),
    "hparams every method overrides (silently unused before)": (
        _dry(hparams={"lr": -1}, method_hparams={"rk4": {"lr": 0.1}}),
        "hparams: task g1d: hyper-parameter lr must be a positive finite number, got -1"),
    "methods a number": (_dry(methods=5), "methods must be a string or a list of strings"),
    "task a list": (_dry(task=["g1d"]), "task must be a task id"),
    "hparams a string": (_dry(hparams="lr=0.1"), "hparams must be a mapping"),
    "hparams a list (iterated by letter before)": (_dry(hparams=["lr"]), "hparams must be a mapping"),
    "method_hparams values not tables": (_dry(methods="adjoint", method_hparams={"adjoint": 1e-5}),
                                         "method_hparams['adjoint'] must be a mapping"),
    "out empty (ran into the current folder)": (lambda tmp: nodebench.run("g1d", "rk4", iters=1, out=""),
                                                "out must be a non-empty path"),
    "report a number": (lambda tmp: nodebench.report(5), "run_dir must be a non-empty path"),
    "compare a number": (lambda tmp: nodebench.compare(5, RUN), "baseline must be a non-empty path"),
    "thresholds a list": (lambda tmp: nodebench.compare(RUN, RUN, thresholds=["time"], out=tmp / "c.md"),
                          "thresholds must be a mapping"),
    "a threshold True": (lambda tmp: nodebench.compare(RUN, RUN, thresholds={"time": True}, out=tmp / "c.md"),
                         "thresholds time must be a positive finite number"),
    # the Python argument named, not only the command line's option
    "a misspelt threshold metric": (lambda tmp: nodebench.compare(RUN, RUN, thresholds={"tme": 0.1}, out=tmp / "c.md"),
                                    "unknown metric 'tme' in thresholds (--threshold)"),
    "an exactly gated metric given a threshold": (
        lambda tmp: nodebench.compare(RUN, RUN, thresholds={"nfe": 0.1}, out=tmp / "c.md"),
        "takes no threshold (thresholds, --threshold)"),
    "a budget over timeout_s": (_dry(budget_s=120, timeout_s=60), "case time limit of 60 s (timeout_s, --timeout-s)"),
    "a dask executor without a scheduler": (lambda tmp: nodebench.run("g1d", "rk4", executor="dask", dry_run=True),
                                            "executor 'dask' (--executor dask) needs scheduler (--scheduler ADDRESS)"),
    "rtol 0 in float32 (an exact tolerance before)": (
        _dry(methods="adjoint", hparams={"rtol": 1e-300}),
        "solver option rtol 1e-300 is below 1.18e-38, the smallest normal number of float32, the model's dtype"),
    "a scheduler for submitit": (_dry(executor="submitit", scheduler="tcp://x:1"),
                                 "scheduler (--scheduler) applies to executor 'dask' (--executor dask) only"),
    "a scheduler that is not an address": (_dry(executor="dask", scheduler="notaurl"),
                                           "scheduler (--scheduler) 'notaurl' is not a dask scheduler address"),
    "a scheduler's port past 65535": (_dry(executor="dask", scheduler="tcp://127.0.0.1:99999"),
                                      "scheduler (--scheduler) 'tcp://127.0.0.1:99999': port 99999 is not a TCP port"),
    "an A/B bench given jobs": (lambda tmp: nodebench.bench("nightly", baseline="HEAD", jobs=2, dry_run=True),
                                "one at a time on this machine; drop jobs 2 (--jobs 2)"),
    "a misspelt leaderboard reference": (lambda tmp: nodebench.leaderboard([RUN], tmp / "b", reference="adjont"),
                                         "reference (--reference) 'adjont' is not a method of the runs"),
    "a history store that is not there": (lambda tmp: nodebench.history(store=tmp / "none"),
                                          "or give store (--store)"),
    "leaderboard of no run": (lambda tmp: nodebench.leaderboard([], tmp / "b"), "run_dirs names no run"),
    "leaderboard into ''": (lambda tmp: nodebench.leaderboard([RUN], ""), "out must be a non-empty path"),
    "a target NaN": (lambda tmp: nodebench.leaderboard([RUN], tmp / "b", targets={"g1d": math.nan}),
                     "targets g1d must be a positive finite number"),
    # a TypeError from deep inside before, or a value taken for another: '' for the default store, for no baseline
    "get_task of a list": (lambda tmp: nodebench.get_task(["g1d"]), "unknown task ['g1d']"),
    "history store a number": (lambda tmp: nodebench.history(store=5), "store must be a non-empty path, got 5"),
    "history store ''": (lambda tmp: nodebench.history(store=""), "store must be a non-empty path, got ''"),
    "history out a number": (lambda tmp: nodebench.history(RUN, out=5), "out must be a non-empty path, got 5"),
    "bench out ''": (lambda tmp: nodebench.bench("nightly", out="", dry_run=True), "out must be a non-empty path"),
    "bench baseline ''": (lambda tmp: nodebench.bench("nightly", baseline="", out=tmp / "s", dry_run=True),
                          "unknown git revision ''"),
    "bench machine a path (dry run)": (lambda tmp: nodebench.bench("nightly", machine="../x", dry_run=True),
                                       "machine name '../x' is not a plain name"),
    "experiments '' (every experiment ran before)": (
        lambda tmp: nodebench.reproduce("do_vs_od", experiments="", dry_run=True),
        "paper 'do_vs_od' has no experiment ''"),
    "describe_cases of a RunResult (a TypeError before)": (
        lambda tmp: nodebench.describe_cases(nodebench.run("g1d", "rk4", dry_run=True)),
        "cases must be a list of cases, e.g. nodebench.run(..., dry_run=True).cases, got RunResult; pass its .cases"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_api_argument_is_one_user_error(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call, message = CASES[name]
    with pytest.raises(UserError, match=None) as err:
        call(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even into the current folder


@pytest.mark.parametrize("call", ["run", "reproduce", "bench", "compare", "history", "leaderboard"])
def test_an_out_folder_error_names_the_python_argument(call, tmp_path, monkeypatch):
    """A Python call's out-folder error named only the command line's flag ("--out '…' is a file"), not ``out``."""
    monkeypatch.chdir(tmp_path)
    given = tmp_path / "a_file"
    given.write_text("kept")
    calls = {"run": lambda: nodebench.run("g1d", "rk4", out=given, dry_run=True),
             "reproduce": lambda: nodebench.reproduce("do_vs_od", out=given, dry_run=True),
             "bench": lambda: nodebench.bench("nightly", out=given, dry_run=True),
             "compare": lambda: nodebench.compare(RUN, RUN, out=given),
             "history": lambda: nodebench.history(tmp_path, out=given),
             "leaderboard": lambda: nodebench.leaderboard([RUN], given)}
    with pytest.raises(UserError) as err:
        calls[call]()
    assert str(err.value).startswith(f"out (--out) {str(given)!r} "), str(err.value)
    assert list(tmp_path.iterdir()) == [given] and given.read_text() == "kept"


def test_a_read_only_run_folder_is_named_as_the_argument_of_report(tmp_path, monkeypatch):
    """``nodebench.report`` called its run_dir "run folder", neither the Python nor the command line's name."""
    import os
    import shutil

    run = shutil.copytree(RUN, tmp_path / "run")
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not (
        Path(path) == run and mode & os.W_OK))
    with pytest.raises(UserError, match=rf"^run_dir {str(run)!r} is not writable$"):
        nodebench.report(run)


def test_one_name_is_one_name_not_its_letters(tmp_path):
    """A string where a list is expected is one item: one experiment, one run folder."""
    cases = nodebench.reproduce("do_vs_od", experiments="spiral", dry_run=True).cases
    assert cases and {case.experiment for case in cases} == {"spiral"}
    md, _ = nodebench.leaderboard(RUN, tmp_path / "board")
    assert "1 run(s)" in md.read_text()


def test_a_run_named_twice_counts_once_in_the_leaderboard(tmp_path):
    """As on the command line: the same run as a folder, again, and as its records file was '3 runs of 1 seed'."""
    md, _ = nodebench.leaderboard([RUN, str(RUN), RUN / "records.parquet"], tmp_path / "board")
    assert "1 run(s)" in md.read_text() and "3 runs of" not in md.read_text()


def test_a_python_run_announces_how_to_resume_in_python_and_on_the_command_line(tmp_path, monkeypatch):
    """``nodebench.run`` said "rerun with --out X to resume", a flag a Python caller has no use for."""
    from nodebench.runner import sweep

    def announced(cases, out, *, announce, **engine):
        raise RuntimeError(announce)

    monkeypatch.setattr(sweep, "run_cases", announced)
    with pytest.raises(RuntimeError) as err:
        nodebench.run("g1d", "rk4", iters=1, out=tmp_path / "r")
    assert f"(rerun with out={str(tmp_path / 'r')!r} (--out {tmp_path / 'r'}) to resume)" in str(err.value)


def test_the_leaderboard_without_run_folders_ranks_this_machines_latest_nightly_run(tmp_path, monkeypatch):
    """As ``nodebench leaderboard --out DIR``: ``nodebench.leaderboard(out=...)`` required run_dirs (a TypeError);
    both rank this machine's latest nightly run of the history store now, and name run_dirs when there is none."""
    import shutil

    from nodebench.benchmarking import history

    monkeypatch.setenv("NODEBENCH_MACHINE", "this")
    monkeypatch.setattr(history, "DEFAULT_STORE", tmp_path / "store")
    with pytest.raises(UserError, match=r"no nightly run of this machine \('this'\).*give run folders \(run_dirs\)"):
        nodebench.leaderboard(out=tmp_path / "none")
    for stamp in ("20260101T000000Z-aaaa", "20260102T000000Z-bbbb"):
        shutil.copytree(RUN, tmp_path / "store" / "this" / "nightly" / stamp, ignore=shutil.ignore_patterns("logs"))
    md, _ = nodebench.leaderboard(out=tmp_path / "board")
    latest, _ = nodebench.leaderboard([tmp_path / "store" / "this" / "nightly" / stamp], tmp_path / "explicit")
    assert "1 run(s)" in md.read_text() and md.read_text() == latest.read_text()
