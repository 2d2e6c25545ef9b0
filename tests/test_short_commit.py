"""A run of a checkout with uncommitted changes (``git_sha`` ``<sha>-dirty``) is named dirty wherever a commit is
shown (:func:`nodebench.records.short_commit`): the leaderboard's page and environment table, the history's
table, plot labels, Markdown and HTML page, and a history run's folder; each cut the sha to 12 or 7 characters,
which named it as the clean commit, whose code it did not run."""

from __future__ import annotations

from pathlib import Path

from test_bench_compare import _records, run_cli
from test_leaderboard_fairness import board

from nodebench.benchmarking import history, leaderboard, leaderboard_page
from nodebench.benchmarking.history_plots import history_table, run_gates
from nodebench.benchmarking.history_site import environment
from nodebench.records import short_commit

SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
CLEAN, DIRTY = SHA[:12], SHA[:12] + "-dirty"


def test_short_commit_keeps_the_dirty_suffix():
    assert (short_commit(SHA), short_commit(SHA + "-dirty"), short_commit("unknown"), short_commit(None)) == (
        CLEAN, DIRTY, "unknown", "")


def test_a_dirty_run_is_named_dirty_on_the_leaderboard(tmp_path):
    records, curves = board([("famA", [1, 1], "cpu", "Xeon", None), ("famB", [2, 2], "cpu", "Xeon", None)])
    records = records.assign(git_sha=[SHA] * 2 + [SHA + "-dirty"] * 2, run_id=["r1"] * 2 + ["r2"] * 2)
    assert leaderboard.environment_table(records)["git"].tolist() == [CLEAN, DIRTY]
    folder = tmp_path / "run"
    folder.mkdir()
    records.to_parquet(folder / "records.parquet", index=False)
    curves.to_parquet(folder / "curves.parquet", index=False)
    md, html = leaderboard_page.write([folder], tmp_path / "board", targets={"toy": 0.5})
    assert f"Records from 2 commits ({CLEAN}, {DIRTY})" in md.read_text()
    assert DIRTY in html.read_text()


def test_a_dirty_run_is_named_dirty_in_the_history(capsys, tmp_path):
    store = tmp_path / "store"
    for index, (time, sha) in enumerate([(0.02, SHA), (0.03, SHA + "-dirty")]):
        folder = store / "m" / "s" / f"2026010{index + 1}T000000Z-{short_commit(sha)}"
        folder.mkdir(parents=True)
        _records(time=time)[0].assign(git_sha=sha).to_parquet(folder / "records.parquet", index=False)
    runs = history.list_runs(store, "m", "s")
    table = history_table(runs)  # the plots' tick labels and the pages' commits
    assert sorted(set(table["git_sha"])) == [CLEAN, DIRTY]
    assert environment(runs, run_gates(table))["git"].tolist() == [CLEAN, DIRTY]
    code, out, err = run_cli(capsys, "history", "--store", store, "--machine", "m", "--suite", "s", "--html",
                             "--out", tmp_path / "site")
    assert code == 0, err
    assert DIRTY in (tmp_path / "site" / "index.html").read_text()
    code, out, err = run_cli(capsys, "history", "--store", store, "--machine", "m", "--suite", "s",
                             "--out", tmp_path / "md")
    assert code == 0 and DIRTY in (tmp_path / "md" / "history.md").read_text(), err


def test_a_history_run_s_folder_names_a_dirty_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "git_sha", lambda: SHA + "-dirty")
    assert Path(history.new_run(tmp_path, "m", "s")).name.endswith("-" + DIRTY)
