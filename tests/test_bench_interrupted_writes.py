"""A gate, history or leaderboard command killed while it writes a report leaves the earlier report whole:
every such file is written to a temporary name and renamed (:func:`nodebench.records.atomic_write`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.figure
import pandas as pd
import pytest
from test_bench_compare import _records
from test_leaderboard_fairness import SPREAD, board

from nodebench import api
from nodebench.benchmarking import ab, leaderboard_page
from nodebench.benchmarking.history import list_runs
from nodebench.benchmarking.history_plots import history_table
from nodebench.benchmarking.history_site import write_site
from nodebench.runner.sweep import write_run_info

OLD = "an earlier report, whole\n"
REAL_TO_PARQUET = pd.DataFrame.to_parquet


def interrupt_writes(monkeypatch):
    """From now on every text, Parquet or figure write writes a few bytes of its file, then the process is
    'killed'."""
    def cut(path):
        Path(path).write_bytes(b"PAR1 cut")
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", lambda self, *args, **kwargs: cut(self))
    monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda self, path, *args, **kwargs: cut(path))
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, path, *args, **kwargs: cut(path))


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (its path inside, its bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path) -> Path:
    """A history store of two runs of suite ``s`` on machine ``m``."""
    for name in ("20260101T000000Z-aaaa", "20260102T000000Z-bbbb"):
        folder = tmp_path / "store" / "m" / "s" / name
        folder.mkdir(parents=True)
        _records()[0].to_parquet(folder / "records.parquet", index=False)
    return tmp_path / "store"


def test_an_interrupted_gate_report_keeps_the_earlier_one(store, monkeypatch):
    first, second = list_runs(store)["run_dir"]
    (second / "compare.md").write_text(OLD)
    interrupt_writes(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        api.compare(first, second, out=second / "compare.md")
    assert (second / "compare.md").read_text() == OLD


def test_interrupted_history_pages_keep_the_earlier_ones(store, tmp_path, monkeypatch):
    out = tmp_path / "history"
    out.mkdir()
    for name in ("history.md", "index.html"):
        (out / name).write_text(OLD)
    runs = list_runs(store, "m", "s")
    table = history_table(runs)
    interrupt_writes(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        api.history(store, "m", "s", out)
    with pytest.raises(KeyboardInterrupt):
        write_site(table, runs, out)
    assert [(out / name).read_text() for name in ("history.md", "index.html")] == [OLD, OLD]


def test_an_interrupted_leaderboard_keeps_the_earlier_one(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    for frame, name in zip(board(SPREAD), ("records", "curves")):
        frame.to_parquet(run / f"{name}.parquet", index=False)
    out = tmp_path / "board"
    out.mkdir()
    (out / "leaderboard.md").write_text(OLD)
    interrupt_writes(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        leaderboard_page.write([run], out)
    assert (out / "leaderboard.md").read_text() == OLD


@pytest.mark.parametrize("killed_at", ["records.parquet", "compare.md"])
def test_an_interrupted_ab_run_keeps_the_baseline_records_and_the_earlier_gate_report(tmp_path, monkeypatch,
                                                                                      killed_at):
    """The A/B run rewrote the baseline's merged records (stamped with its commit) in place: a kill there lost
    the baseline side of a finished run."""
    run_dir = tmp_path / "run"
    write_run_info(run_dir, command="bench", baseline_sha="b" * 40)
    (run_dir / "compare.md").write_text(OLD)

    def merge(folder, run_id):  # the workers are not started here: each side merges three finished cases
        records = _records()[0]
        REAL_TO_PARQUET(records, Path(folder) / "records.parquet", index=False)
        if Path(folder).name == ab.BASELINE_DIR:  # both sides merged: the kill comes at the next write
            interrupt_writes(monkeypatch)
            if killed_at == "compare.md":
                monkeypatch.setattr(pd.DataFrame, "to_parquet", REAL_TO_PARQUET)
        return records, pd.DataFrame()

    env = SimpleNamespace(sha="b" * 40, subject="base", has_module=lambda name: True, command=lambda: None)
    monkeypatch.setattr(ab, "prepare_baseline", lambda *args, **kwargs: env)
    monkeypatch.setattr(ab, "resolve", lambda rev: (env.sha, env.subject))  # the run resumed is of this baseline
    monkeypatch.setattr(ab, "run_case_process", lambda **job: None)
    monkeypatch.setattr(ab, "merge", merge)
    with pytest.raises(KeyboardInterrupt):
        ab.bench_ab("gate_study", "HEAD", run_dir=run_dir, progress=False, log=lambda line: None)
    assert len(pd.read_parquet(run_dir / ab.BASELINE_DIR / "records.parquet")) == 3
    assert (run_dir / "compare.md").read_text() == OLD


def test_interrupted_figures_keep_the_earlier_ones(store, tmp_path, monkeypatch):
    """The history's and the leaderboard's PNGs were written in place: a redraw killed mid-write left a broken
    figure (a few bytes) where the last whole one was."""
    history_out, board_out = tmp_path / "history", tmp_path / "board"
    api.history(store, "m", "s", history_out)
    run = tmp_path / "run"
    run.mkdir()
    for frame, name in zip(board(SPREAD), ("records", "curves")):
        frame.to_parquet(run / f"{name}.parquet", index=False)
    leaderboard_page.write([run], board_out)
    earlier = {out: files(out) for out in (history_out, board_out)}
    assert all(any(name.endswith(".png") for name in found) for found in earlier.values())
    interrupt_writes(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        api.history(store, "m", "s", history_out)
    with pytest.raises(KeyboardInterrupt):
        leaderboard_page.write([run], board_out)
    assert {out: files(out) for out in (history_out, board_out)} == earlier  # whole, and no temporary file left


def test_an_interrupted_report_keeps_its_earlier_figures_and_pages(tmp_path, monkeypatch):
    """A report's figures (``plots.save_figure``: PNG and PDF), ``report.md`` and ``report.html`` were written in
    place: a run killed while redrawing its report left a broken figure or page where the last whole one was."""
    import matplotlib.pyplot as plt
    from test_claims_report import RECORDS as CASES

    from nodebench.plots import save_figure
    from nodebench.report_page import write_report_html
    from nodebench.reporting import write_report

    def figure():
        fig = plt.figure(figsize=(2, 2))
        fig.gca().plot([1, 2, 3])
        return fig

    records = CASES.assign(reason="")
    figures = save_figure(figure(), tmp_path / "figures", "curve")
    write_report(tmp_path, records, figures)
    earlier = files(tmp_path)
    assert {"figures/curve.png", "figures/curve.pdf", "report.md", "report.html"} <= set(earlier)
    interrupt_writes(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        save_figure(figure(), tmp_path / "figures", "curve")
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path, records, figures)
    with pytest.raises(KeyboardInterrupt):
        write_report_html(tmp_path / "report.md")
    assert files(tmp_path) == earlier  # whole, and no temporary file left
