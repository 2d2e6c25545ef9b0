"""Suites, the history store, `nodebench bench` and the history plots."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from test_bench_compare import AA_RUNS, needs_runs, plant_slowdown, run_cli

from nodebench.benchmarking import history
from nodebench.benchmarking.history_plots import history_table, plot_history
from nodebench.benchmarking.suites import load_suite
from nodebench.records import short_commit

TINY = """
suite = "tiny"
seeds = 1
[[entry]]
name = "spiral"
paper = "do_vs_od"
task = "cubic_spiral"
methods = ["rk4"]
iters = 2
target = 0.5
"""


def test_nightly_suite_covers_the_paper_packages_in_rounds_of_seeds():
    suite = load_suite("nightly")
    cases = suite.cases()
    assert {c.paper for c in cases} == {"do_vs_od", "gq_adjoint", "taynode", "snode"}
    assert all(c.preset == "nightly" and c.device == "cpu" for c in cases)
    seeds = [c.seed for c in cases]
    assert seeds == sorted(seeds) and set(seeds) == {0, 1, 2}  # every configuration's seed 0 first
    assert len({c.case_id for c in cases}) == len(cases)


ENTRY = "[[entry]]\nname='a'\npaper='do_vs_od'\ntask='cubic_spiral'\nmethods=['rk4']\n"


@pytest.mark.parametrize("text, fragment", [
    ("suite = 'bad'\n", "declares no [[entry]]"),
    (ENTRY, "exactly one of iters or budget_s"),
    (ENTRY + "iters=0\n", "iters must be an integer from 1 to 1e+09, got 0"),
    (ENTRY + "iters=100000000000000000000\n", "iters must be an integer from 1 to 1e+09"),  # a typo, not a run
    (ENTRY + "iters=2\ncolour='red'\n", "entry 1: unknown key 'colour'; valid: budget_s, "),
    (ENTRY + "iters=2\nitres=2\n", "unknown key 'itres' (did you mean 'iters'?)"),
    ("[[entry]\n", "malformed suite file"),
    (ENTRY + "iters=2\ntarget=nan\n", "finite number"),
    (ENTRY.replace("['rk4']", "[]") + "iters=2\n", "entry 'a': methods must be a non-empty list of distinct strings"),
    # taken before: the same cases twice, a path as the records' experiment, a loader building 10^9 cases
    (ENTRY.replace("['rk4']", "['rk4', 'rk4']") + "iters=2\n", "distinct strings, got ['rk4', 'rk4']"),
    (ENTRY.replace("'a'", "'../a'") + "iters=2\n", "entry '../a': name '../a' is not a plain name"),
    (ENTRY + "iters=2\nseeds=1000000000\n", "entry 'a': 1000000000 seed(s) × 1 method(s) = 1000000000 cases, more"),
    (ENTRY.replace("do_vs_od", "nosuch") + "iters=2\n", "entry 'a': unknown paper 'nosuch'; valid: do_vs_od, "),
    ("suite = 'other'\n" + ENTRY + "iters=2\n", "declares suite = 'other'; a suite is named by its file: use 'bad'"),
    ("seed = 2\n" + ENTRY + "iters=2\n", "unknown key 'seed' (did you mean 'seeds'?)"),
    # values that were taken: run for 0 iterations, replaced by a default, truncated or read as 1
    (ENTRY + "budget_s=-5\n", "bad.toml': entry 'a': budget_s must be a positive finite number, got -5"),
    (ENTRY + "budget_s=0\n", "entry 'a': budget_s must be a positive finite number, got 0"),
    (ENTRY + "iters=true\n", "entry 'a': iters must be an integer from 1 to 1e+09, got True"),
    ("seeds = 2.7\n" + ENTRY + "iters=2\n", "bad.toml': seeds must be an integer >= 1, got 2.7"),
    ("seeds = true\n" + ENTRY + "iters=2\n", "bad.toml': seeds must be an integer >= 1, got True"),
    ("seeds = 'two'\n" + ENTRY + "iters=2\n", "bad.toml': seeds must be an integer >= 1, got 'two'"),
    (ENTRY + "iters=2\nmethod_hparams = { nosuch = { rtol = 1e-3 } }\n",
     "entry 'a' has method_hparams.nosuch, but 'nosuch' is not one of its methods; valid: rk4"),
    # a bad task, method, hyper-parameter or device names the file and the entry
    (ENTRY.replace("cubic_spiral", "nosuch") + "iters=2\n", "bad.toml': entry 'a': unknown task 'nosuch'; valid: "),
    (ENTRY.replace("'rk4'", "'nosuch'") + "iters=2\n", "bad.toml': entry 'a': unknown method 'nosuch'; valid: "),
    (ENTRY + "iters=2\nhparams = { lr = 'fast' }\n", "bad.toml': entry 'a': task cubic_spiral: hyper-parameter lr"),
    # a shared value every method overrides was silently unused
    (ENTRY + "iters=2\nhparams = { lr = -1 }\nmethod_hparams.rk4 = { lr = 0.1 }\n",
     "bad.toml': entry 'a': hparams: task cubic_spiral: hyper-parameter lr must be a positive finite number, got -1"),
    ("device = 'tpu'\n" + ENTRY + "iters=2\n", "bad.toml': device = 'tpu'; valid: cpu, cuda, cuda:N"),
])
def test_bad_suite_files_are_one_line_errors(capsys, tmp_path, monkeypatch, text, fragment):
    (tmp_path / "bad.toml").write_text(text)
    monkeypatch.setenv("NODEBENCH_SUITES", str(tmp_path))
    code, out, err = run_cli(capsys, "bench", "--suite", "bad", "--out", tmp_path / "store")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert not (tmp_path / "store").exists()


def test_unknown_suite_lists_the_valid_ones(capsys, tmp_path):
    code, out, err = run_cli(capsys, "bench", "--suite", "weekly", "--out", tmp_path)
    assert code == 2 and "unknown suite 'weekly'" in err and "nightly" in err


@pytest.mark.slow
def test_bench_appends_keyed_runs_and_gates_the_second_against_the_first(capsys, tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text(TINY)
    monkeypatch.setenv("NODEBENCH_SUITES", str(tmp_path))
    store = tmp_path / "store"
    code, out, err = run_cli(capsys, "bench", "--suite", "tiny", "--out", store, "--machine", "box-1", "--no-progress")
    assert code == 0 and "nothing to compare against" in out, err
    assert (history.list_runs(store)["run_dir"].map(Path).iloc[0].parent / "history.md").is_file()  # first run too
    code, out, err = run_cli(capsys, "bench", "--suite", "tiny", "--out", store, "--machine", "box-1", "--no-progress")
    runs = history.list_runs(store)
    assert len(runs) == 2 and set(runs["machine"]) == {"box-1"} and set(runs["suite"]) == {"tiny"}
    first, second = (Path(p) for p in runs["run_dir"])
    assert second.name.endswith(short_commit(history.git_sha())) and history.previous_run(store, second) == first
    assert code == 0, out  # two steps a side can never confirm a time change at p <= 0.002
    assert (second / "compare.md").is_file() and (second.parent / "history.md").is_file()
    assert (second.parent / "figures" / "history_time.png").is_file()


@needs_runs
def test_history_marks_a_planted_regression_on_its_run(capsys, tmp_path):
    store = tmp_path / "store"
    folder = store / "m" / "nightly"
    for index, source in enumerate(AA_RUNS[:2]):
        shutil.copytree(source, folder / f"2026010{index}T000000Z-aaaa", ignore=shutil.ignore_patterns("cases", "logs"))
    plant_slowdown(Path(AA_RUNS[1]), folder / "20260102T000000Z-bbbb", 1.3)
    runs = history.list_runs(store, "m", "nightly")
    table = history_table(runs)
    flagged = table[table["verdict"] == "regression"]
    assert flagged[["run", "case", "metric"]].values.tolist() == [[2, "g1d: gq", "time"]]
    figures = plot_history(table, tmp_path / "figures")
    assert {p.name for p in figures} >= {"history_time.png", "history_memory.png", "history_nfe.png"}
    code, out, err = run_cli(capsys, "history", "--store", store, "--machine", "m", "--out", tmp_path / "h")
    assert code == 0, err
    assert "g1d: gq (time/iter)" in (tmp_path / "h" / "history.md").read_text()


def test_a_run_s_values_are_drawn_whatever_the_run_before_it_measured(tmp_path):
    """A run's values came from the gate against the run before, which compares only what both measured: the
    run after one whose cases all ran out of memory, and a configuration's first run after it joined the
    suite, had no point in the history (its line started a run late, relative to the wrong first run)."""
    import pandas as pd
    from test_bench_compare import _records

    failed = _records()[0].assign(status="oom", time_per_iter_s=float("nan"), peak_mem_bytes=float("nan"))
    recovered = _records(time=0.02)[0]
    added = _records(time=0.5)[0].assign(method="m2", case_id=lambda r: "n" + r["case_id"])  # joins the suite
    joined = pd.concat([_records(time=0.03)[0], added])
    for index, records in enumerate([failed, recovered, joined]):
        folder = tmp_path / "m" / "s" / f"2026010{index + 1}T000000Z-aaaa"
        folder.mkdir(parents=True)
        records.to_parquet(folder / "records.parquet", index=False)
    table = history_table(history.list_runs(tmp_path, "m", "s"))
    time = table[table["metric"] == "time"]
    assert time[["run", "case", "value", "verdict"]].values.tolist() == [
        [1, "e: m", 0.02, ""], [2, "e: m", 0.03, "noise"], [2, "e: m2", 0.5, ""]]


PLAIN_NAME = "is not a plain name; use letters, digits, '_', '.' and '-', starting with a letter or digit"


@pytest.mark.parametrize("argv, fragment", [
    # empty and path-like names were read as "any suite", walked out of the store, or rewritten (a/b -> a_b)
    (["history", "--store", "STORE", "--suite", ""], f"argument --suite: name '' {PLAIN_NAME}"),
    (["history", "--store", "STORE", "--suite", "../m/tiny"], f"argument --suite: name '../m/tiny' {PLAIN_NAME}"),
    (["history", "--store", "STORE", "--machine", "../m"], f"argument --machine: name '../m' {PLAIN_NAME}"),
    (["bench", "--suite", "tiny", "--out", "STORE", "--machine", ""], f"argument --machine: name '' {PLAIN_NAME}"),
    (["bench", "--suite", "tiny", "--out", "STORE", "--machine", "../../escape"],
     "name '../../escape' is not a plain name"),
    (["bench", "--suite", "tiny", "--out", "STORE", "--machine", "a/b"], "name 'a/b' is not a plain name"),
    (["bench", "--suite", "tiny", "--out", "STORE", "--machine", "box 1"], "name 'box 1' is not a plain name"),
    (["bench", "--suite", "tiny", "--out", "STORE", "--machine", "a/b", "--dry-run"], "name 'a/b' is not a plain name"),
    # a store that is not there was "the store has none of this suite"
    (["history", "--store", "MISSING"], "history store not found: "),
    (["history", "--store", "FILE"], "is a file; give the folder that `nodebench bench --out` writes"),
])
def test_empty_and_path_like_store_names_and_a_missing_store_are_one_line_errors(capsys, tmp_path, monkeypatch,
                                                                                  argv, fragment):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "tiny.toml").write_text(ENTRY + "iters=1\n")
    monkeypatch.setenv("NODEBENCH_SUITES", str(tmp_path / "suites"))
    store = tmp_path / "store"
    (store / "m" / "tiny").mkdir(parents=True)
    (tmp_path / "file").write_text("not a store")
    places = {"STORE": store, "MISSING": tmp_path / "missing", "FILE": tmp_path / "file"}
    code, out, err = run_cli(capsys, *[places.get(a, a) for a in argv])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert sorted(p.relative_to(store).as_posix() for p in store.rglob("*")) == ["m", "m/tiny"]  # nothing written
    assert {p.name for p in tmp_path.iterdir()} == {"suites", "store", "file"}


def test_machine_and_suite_names_given_to_the_store_are_checked_not_rewritten(tmp_path, monkeypatch):
    from nodebench.errors import UserError

    with pytest.raises(UserError, match="machine name 'a/b' is not a plain name"):
        history.machine_name("a/b")
    with pytest.raises(UserError, match="machine name '' is not a plain name"):
        history.machine_name("")
    monkeypatch.setenv("NODEBENCH_MACHINE", "../x")
    with pytest.raises(UserError, match="NODEBENCH_MACHINE '../x' is not a plain name"):
        history.machine_name()
    monkeypatch.delenv("NODEBENCH_MACHINE")
    monkeypatch.setattr(history.platform, "node", lambda: "build host.local")
    assert history.machine_name() == "build_host.local"  # a host name is not chosen: it is made path-safe
    for kwargs in ({"suite": ""}, {"suite": "../m/tiny"}, {"machine": "../m"}):
        with pytest.raises(UserError, match="is not a plain name"):
            history.list_runs(tmp_path, **kwargs)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file"):
        history.list_runs(tmp_path / "file")
    assert history.list_runs(tmp_path / "missing").empty  # not made yet: the first bench run makes it


def test_history_of_an_empty_store_is_a_one_line_error(capsys, tmp_path):
    code, out, err = run_cli(capsys, "history", "--store", tmp_path, "--machine", "m")
    assert code == 2 and "no finished run of suite 'nightly' on machine 'm'" in err


def test_gpu_suite_declares_cuda_cases_with_valid_names():
    from nodebench.runner.settings import check_cases

    suite = load_suite("nightly_gpu")
    assert {c.device for c in suite.cases()} == {"cuda"}
    assert {c.paper for c in suite.cases()} == {"do_vs_od", "gq_adjoint", "taynode", "snode"}
    check_cases(suite.cases("cpu"))  # every task, method and hyper-parameter name is valid


@needs_runs
def test_history_without_machine_names_the_store_s_machines(capsys, tmp_path, monkeypatch):
    """Two machines in the store and this one not among them: the error lists both, to choose with --machine."""
    monkeypatch.setenv("NODEBENCH_MACHINE", "this")
    for machine in ("a", "b"):
        shutil.copytree(AA_RUNS[0], tmp_path / machine / "nightly" / "20260101T000000Z-aaaa",
                        ignore=shutil.ignore_patterns("cases", "logs"))
    code, out, err = run_cli(capsys, "history", "--store", tmp_path)
    assert code == 2 and err.count("\n") == 1, err
    assert "on machine 'this'" in err and "machines with one: a, b (choose with --machine)" in err
    assert not (tmp_path / "this").exists()


@needs_runs
def test_leaderboard_without_runs_names_the_store_s_machines(capsys, tmp_path, monkeypatch):
    """No run directory given and no nightly run of this machine: the error names the machines that have one."""
    monkeypatch.setenv("NODEBENCH_MACHINE", "this")
    monkeypatch.setattr(history, "DEFAULT_STORE", tmp_path / "store")
    for machine in ("a", "b"):
        shutil.copytree(AA_RUNS[0], tmp_path / "store" / machine / "nightly" / "20260101T000000Z-aaaa",
                        ignore=shutil.ignore_patterns("cases", "logs"))
    code, out, err = run_cli(capsys, "leaderboard", "--out", tmp_path / "board")
    assert code == 2 and err.count("\n") == 1, err
    assert "no nightly run of this machine ('this')" in err and "machines with one: a, b" in err
    assert not (tmp_path / "board").exists()


def test_bench_refuses_a_corrupt_previous_run_before_running_the_suite(capsys, tmp_path, monkeypatch):
    """The gate reads the previous run after the suite; a corrupt one is refused before, nothing run or made."""
    (tmp_path / "tiny.toml").write_text(ENTRY + "iters=1\n")
    monkeypatch.setenv("NODEBENCH_SUITES", str(tmp_path))
    monkeypatch.setenv("NODEBENCH_MACHINE", "m")
    earlier = tmp_path / "store" / "m" / "tiny" / "20260101T000000Z-aaaa"
    earlier.mkdir(parents=True)
    (earlier / "records.parquet").write_bytes(b"PAR1 cut short")
    code, out, err = run_cli(capsys, "bench", "--suite", "tiny", "--out", tmp_path / "store", "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "records" in err, err
    assert [p.name for p in earlier.parent.iterdir()] == [earlier.name]


@needs_runs
@pytest.mark.parametrize("ab", [False, True])
def test_bench_refuses_a_corrupt_older_run_before_running_the_suite(capsys, tmp_path, monkeypatch, ab):
    """Only the latest run was checked: a corrupt older one ran the whole suite (with --baseline, both sides),
    then failed the history redraw with exit code 2 and no verdict, every night."""
    (tmp_path / "tiny.toml").write_text(ENTRY + "iters=1\n")
    monkeypatch.setenv("NODEBENCH_SUITES", str(tmp_path))
    monkeypatch.setenv("NODEBENCH_MACHINE", "m")
    monkeypatch.setenv("NODEBENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "store" / "m" / "tiny"
    older, latest = folder / "20260101T000000Z-aaaa", folder / "20260102T000000Z-bbbb"
    shutil.copytree(AA_RUNS[0], latest, ignore=shutil.ignore_patterns("cases", "logs"))
    older.mkdir()
    (older / "run.json").write_text('{"date": "2026-01-01T00:00:00+00:00"}')  # before the latest run's
    (older / "records.parquet").write_bytes(b"PAR1 cut short")
    argv = ["bench", "--suite", "tiny", "--out", tmp_path / "store", "--no-progress"] + ["--baseline", "HEAD"] * ab
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and older.name in err, err
    assert sorted(p.name for p in folder.iterdir()) == [older.name, latest.name]
    assert not (tmp_path / "cache").exists()  # no baseline installed either


def test_runs_with_and_without_a_run_json_date_are_listed_in_time_order(tmp_path):
    """A run whose run.json has no date was dated by its folder name's stamp (`20260102T000000Z`), which sorts
    after every ISO date (`2026-01-03T...`): the gate and the history read it as the newest run."""
    import json

    import pandas as pd

    folder = tmp_path / "store" / "m" / "s"
    for name, date in (("20260101T000000Z-aaaa", "2026-01-01T00:00:00+00:00"), ("20260102T000000Z-bbbb", None),
                       ("20260103T000000Z-cccc", "2026-01-03T01:00:00+01:00")):
        (folder / name).mkdir(parents=True)
        pd.DataFrame({"case_id": ["c"], "task": ["t"], "method": ["m"], "seed": [0], "status": ["ok"]}).to_parquet(
            folder / name / "records.parquet")
        if date:
            (folder / name / "run.json").write_text(json.dumps({"date": date}))
    runs = history.list_runs(tmp_path / "store")
    assert [Path(p).name[:9] for p in runs["run_dir"]] == ["20260101T", "20260102T", "20260103T"]
    assert runs["date"].iloc[1] == "2026-01-02T00:00:00+00:00"  # read like the others


@pytest.mark.parametrize("ab", [False, True])
def test_bench_goes_on_and_keeps_its_verdict_when_the_reader_of_stdout_leaves(tmp_path, monkeypatch, ab):
    """`nodebench bench ... | head -1`: the first line printed to the closed pipe ended the command with exit code
    0 (the gate's regression lost) and the history was not redrawn. The sweep itself is faked here."""
    import io
    import os
    import sys

    import pandas as pd
    from test_bench_compare import _records

    from nodebench import api
    from nodebench.benchmarking import ab as ab_module
    from nodebench.cli import main

    (tmp_path / "tiny.toml").write_text(TINY)
    monkeypatch.setenv("NODEBENCH_SUITES", str(tmp_path))
    store = tmp_path / "store"
    earlier = store / "m" / "tiny" / "20260101T000000Z-aaaa"
    earlier.mkdir(parents=True)
    _records()[0].to_parquet(earlier / "records.parquet")

    def tonight(run_dir):  # the current run: 4.8 MiB more memory per seed, a regression
        records = _records(mem=1.6 * 8 * 2**20)[0]
        records.to_parquet(Path(run_dir) / "records.parquet")
        return records

    monkeypatch.setattr(api, "_sweep", lambda cases, out, *args, **info: (tonight(out), pd.DataFrame()))
    def bench_ab(*args, store, **kwargs):
        run_dir = history.new_run(store, "m", "tiny")
        tonight(run_dir)
        return SimpleNamespace(run_dir=run_dir, exit_code=1)

    monkeypatch.setattr(ab_module, "bench_ab", bench_ab)
    monkeypatch.setattr(ab_module, "report", lambda run: "gate FAILED")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    monkeypatch.setattr(sys, "stdout", open(write, "w", buffering=1))  # each line written at once
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # the CLI closes its stderr after a broken pipe
    code = main(["bench", "--suite", "tiny", "--out", str(store), "--machine", "m", "--no-progress"]
                + ["--baseline", "HEAD"] * ab)
    assert code == 1
    assert "e: m (peak memory)" in (store / "m" / "tiny" / "history.md").read_text()  # the history was redrawn


def _store_of(tmp_path, runs) -> Path:
    """A store ``m/s`` holding one run folder per records frame, a day apart."""
    for index, records in enumerate(runs):
        folder = tmp_path / "store" / "m" / "s" / f"2026010{index + 1}T000000Z-aaaa"
        folder.mkdir(parents=True)
        records.to_parquet(folder / "records.parquet", index=False)
    return tmp_path / "store"


def test_history_says_a_run_fails_its_gate_for_a_newly_failing_case_or_a_lost_measurement(capsys, tmp_path):
    """history.md counted only regressions: a run whose case went out of memory read "0 regressions" while its
    compare.md (and exit code) said it failed; so did one whose memory was no longer measured."""
    from test_bench_compare import _records

    from nodebench.benchmarking.compare import compare, regressed

    partly = _records()[0]
    partly.loc[partly["seed"] == 2, ["status", "time_per_iter_s"]] = ["oom", float("nan")]
    unmeasured = _records()[0].assign(peak_mem_bytes=float("nan"))
    runs = [_records()[0], _records()[0].assign(status="oom", time_per_iter_s=float("nan")), _records()[0],
            partly, _records()[0], unmeasured]
    store = _store_of(tmp_path, runs)
    assert [regressed(compare((a, pd.DataFrame()), (b, pd.DataFrame()))) for a, b in zip(runs, runs[1:])] == [
        True, False, True, False, True]  # what the gate decides
    code, out, err = run_cli(capsys, "history", "--store", store, "--machine", "m", "--suite", "s",
                             "--out", tmp_path / "h")
    assert code == 0, err
    rows = {int(cells[0]): cells[3:] for line in (tmp_path / "h" / "history.md").read_text().splitlines()
            if re.match(r"\| +\d", line) for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert rows[0][:4] == ["–", "0", "0", "0"]
    assert rows[1] == ["fails", "0", "1", "0", "e: m (now fails: oom)"]  # was "0 regressions", nothing named
    assert rows[2][:4] == rows[4][:4] == ["passes", "0", "0", "0"]
    assert rows[3] == ["fails", "0", "1", "0", "e: m (now fails: oom)"]  # one seed of three
    assert rows[5] == ["fails", "0", "0", "1", "e: m (peak memory not measured)"]


def _copy_run(source, run_dir: Path, device: str) -> None:
    """Copy a run to ``run_dir``, dated by its folder name and marked as run on ``device`` (run.json, records)."""
    if not run_dir.exists():
        shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("cases", "logs"))
    history.write_run_info(run_dir, **history.read_run_info(run_dir) | {"device": device,
                                                                        "date": history.folder_date(run_dir)})
    records = pd.read_parquet(run_dir / "records.parquet")
    records.assign(device=device).to_parquet(run_dir / "records.parquet", index=False)


@needs_runs
def test_a_run_is_gated_against_the_previous_run_on_its_own_device(tmp_path):
    """A nightly run after one on another device was gated against it: every configuration was new, and a
    slowdown passed having been compared with nothing. Now it is gated against the last run on its device."""
    store = tmp_path / "store"
    folder = store / "m" / "nightly"
    first, on_cuda, slowed = (folder / f"2026010{i}T000000Z-{name}" for i, name in ((1, "aaaa"), (2, "cuda"),
                                                                                     (3, "bbbb")))
    _copy_run(AA_RUNS[1], first, "cpu")
    _copy_run(AA_RUNS[0], on_cuda, "cuda")
    plant_slowdown(Path(AA_RUNS[1]), slowed, 1.3)
    _copy_run(None, slowed, "cpu")
    assert history.previous_run(store, slowed) == first and history.previous_run(store, on_cuda) is None
    runs = history.list_runs(store, "m", "nightly")
    table = history_table(runs)
    flagged = table[table["verdict"] == "regression"]
    assert flagged[["run", "case", "metric"]].values.tolist() == [[2, "g1d: gq", "time"]]
    assert (table.loc[table["run"] == 1, "verdict"] == "").all()  # the first run on cuda: nothing to gate against
    assert runs["device"].tolist() == ["cpu", "cuda", "cpu"]


def test_the_site_s_record_links_resolve_after_the_site_is_moved(capsys, tmp_path):
    """The links went from the page up into the store (../store/m/s/RUN/records.parquet): a site written with
    --out elsewhere and then moved or published had none that resolved. The records are copied into the site."""
    from test_bench_compare import _records

    for index, time in enumerate([0.02, 0.03]):
        folder = tmp_path / "store" / "m" / "s" / f"2026010{index + 1}T000000Z-aaaa"
        folder.mkdir(parents=True)
        _records(time=time)[0].to_parquet(folder / "records.parquet", index=False)
    code, out, err = run_cli(capsys, "history", "--store", tmp_path / "store", "--machine", "m", "--suite", "s",
                             "--html", "--out", tmp_path / "site")
    assert code == 0, err
    moved = tmp_path / "elsewhere" / "site"
    moved.parent.mkdir()
    shutil.move(tmp_path / "site", moved)
    shutil.rmtree(tmp_path / "store")  # published without the store
    links = set(re.findall(r"href='([^']+)'", (moved / "index.html").read_text()))
    assert len(links) == 2  # one per run
    for link in links:
        assert (moved / link).resolve().is_relative_to(moved) and pd.read_parquet(moved / link)["status"].size
