"""Benchmark checkpoints (:mod:`nodebench.benchmarking.checkpoint`) and the resumable cost benchmarks: tables
written after each cell, a rerun with the same settings keeping them, one with other settings or in another
environment (machine, commit, versions) refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark_scripts import assert_refused_in_one_line, run_script
from nodebench.benchmarking.checkpoint import ENVIRONMENT, SETTINGS, Checkpoint
from nodebench.errors import UserError
from nodebench.harness import environment
from nodebench.papers.taynode.cost import measure_cost
from nodebench.records import short_commit

#: How a checkpoint's refusal ends: the Python argument beside the scripts' flag.
GIVE = r"give another out \(--out\)$"
#: An environment as nodebench.harness.environment records it (the fields a checkpoint keeps)
ENV = {"git_sha": "e3c49434812d8cd2472582e52689e93102bf9ae1", "cpu_model": "AMD EPYC 7B13", "gpu_model": None,
       "num_threads": 1, "version_torch": "2.13.0+cpu", "hostname": "box-1"}


def test_checkpoint_writes_each_cell_and_resumes_with_the_same_settings(tmp_path):
    out = tmp_path / "run"
    first = Checkpoint(out, {"rounds": 3, "device": "cpu"}, key=["width"], environment=ENV)
    assert first.done() == set() and not out.exists()  # nothing is written before a cell is done
    first.add(samples=pd.DataFrame({"width": [5, 5], "time_s": [1.0, 2.0]}), extra=pd.DataFrame())
    first.add(samples=pd.DataFrame({"width": [20], "time_s": [3.0]}))
    saved = json.loads((out / SETTINGS).read_text())
    assert saved == {"rounds": 3, "device": "cpu", ENVIRONMENT: saved[ENVIRONMENT]}
    assert {k: v for k, v in saved[ENVIRONMENT].items() if v is not None} == {k: v for k, v in ENV.items()
                                                                              if k != "hostname" and v is not None}
    assert pd.read_parquet(out / "samples.parquet").time_s.tolist() == [1.0, 2.0, 3.0]
    assert not (out / "extra.parquet").exists()  # an empty table is not written

    again = Checkpoint(out, {"device": "cpu", "rounds": 3}, key=["width"], environment=ENV)
    assert again.done() == {(5,), (20,)}
    again.add(samples=pd.DataFrame({"width": [100], "time_s": [4.0]}))
    assert again.table("samples").width.tolist() == [5, 5, 20, 100]
    assert again.table("missing").empty


def test_checkpoint_refuses_other_settings_and_a_broken_settings_file(tmp_path):
    out = tmp_path / "run"
    first = Checkpoint(out, {"rounds": 3, "tol": 1e-3}, key=["width"], environment=ENV)
    first.add(samples=pd.DataFrame({"width": [5]}))
    before = (out / "samples.parquet").read_bytes()
    with pytest.raises(UserError, match=r"other settings \(rounds, threads\); rerun with its settings to resume it, or "
                                          + GIVE):
        Checkpoint(out, {"rounds": 4, "tol": 1e-3, "threads": 1}, key=["width"], environment=ENV)
    assert (out / "samples.parquet").read_bytes() == before
    (out / SETTINGS).write_text("{not json")
    with pytest.raises(UserError, match=r"is not a readable settings file \(.*\); " + GIVE):
        Checkpoint(out, {"rounds": 3, "tol": 1e-3}, key=["width"], environment=ENV)
    (out / SETTINGS).unlink()  # tables from a run before checkpoints: never overwritten
    with pytest.raises(UserError, match=r"without settings.json \(a run that cannot be resumed\); move them away or "
                                          + GIVE):
        Checkpoint(out, {"rounds": 3, "tol": 1e-3}, key=["width"], environment=ENV)
    assert (out / "samples.parquet").read_bytes() == before


def test_measure_cost_resumes_after_the_cells_it_is_given():
    """Cells in ``resume`` are not measured again, ``on_cell`` sees each new cell, and a method the earlier
    run skipped (nested jvp over its cap) stays skipped at higher orders."""
    settings = dict(dims=(2,), methods=("taylor", "jvp"), hidden=4, batch=2, rounds=1)
    cells = []
    first, _ = measure_cost(orders=(1, 2), on_cell=lambda rows, agreement: cells.append((rows, agreement)), **settings)
    assert [(int(rows.K.iloc[0]), sorted(agreement)) for rows, agreement in cells] == [(1, [(2, 1)]), (2, [(2, 2)])]
    assert pd.concat([rows for rows, _ in cells], ignore_index=True).equals(first)

    more, agreement = measure_cost(orders=(1, 2, 3), resume=first, **settings)
    assert sorted(more.K.unique()) == [3] and set(agreement) == {(2, 3)}

    skipped = first.copy()
    skipped.loc[(skipped.K == 2) & (skipped.method == "jvp"), "skipped"] = True
    more, _ = measure_cost(orders=(1, 2, 3), resume=skipped, **settings)
    assert more[more.method == "jvp"].skipped.all() and not more[more.method == "taylor"].skipped.any()


def test_taylor_cost_benchmark_resumes_and_refuses_other_settings(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    common = ["--dims", "2", "--hidden", "4", "--batch", "2", "--methods", "taylor", "jvp", "--min-block", "0",
              "--out", str(out)]
    run_script("taylor_cost.py", ["--orders", "1", "--rounds", "1", *common], monkeypatch)
    first = pd.read_parquet(out / "samples.parquet")
    run_script("taylor_cost.py", ["--orders", "1", "2", "--rounds", "1", *common], monkeypatch)
    assert "dim   2 K 1: already measured, kept" in capsys.readouterr().out
    both = pd.read_parquet(out / "samples.parquet")
    assert both[both.K == 1].reset_index(drop=True).equals(first) and sorted(both.K.unique()) == [1, 2]
    assert "| 2 |" in (out / "summary.md").read_text()
    assert_refused_in_one_line("taylor_cost.py", ["--orders", "1", "--rounds", "2", *common[:-2]],
                               "holds a run with other settings (rounds)", out.parent, capsys, monkeypatch)
    assert pd.read_parquet(out / "samples.parquet").equals(both)


def test_gq_gradient_cost_benchmark_resumes_after_its_finished_widths(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GQ_OFFICIAL_PATH", raising=False)
    out = tmp_path / "out"
    common = ["--methods", "gq", "direct", "--rounds", "1", "--out", str(out)]
    run_script("gq_gradient_cost.py", ["--widths", "5", *common], monkeypatch)
    first = pd.read_parquet(out / "samples.parquet")
    run_script("gq_gradient_cost.py", ["--widths", "5", "8", *common], monkeypatch)
    assert "width     5: already measured" in capsys.readouterr().out
    both = pd.read_parquet(out / "samples.parquet")
    assert both[both.width == 5].reset_index(drop=True).equals(first) and sorted(both.width.unique()) == [5, 8]


def test_a_checkpoint_refuses_what_it_cannot_resume_in_one_line(tmp_path):
    """A file as the folder, settings that are not an object, and a truncated table: each a one-line UserError
    before anything is measured (a FileExistsError after measuring, an AttributeError and a pyarrow error before),
    naming the argument ``out`` beside the scripts' flag (it named ``--out`` only, a flag a Python caller has not)."""
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match=r"^out \(--out\) '.*a_file' is a file; give a folder"):
        Checkpoint(tmp_path / "a_file", {"rounds": 3}, key=["width"], environment=ENV)
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / SETTINGS).write_text("[1, 2]")
    with pytest.raises(UserError, match="holds list, not the settings of a run; " + GIVE):
        Checkpoint(tmp_path / "listed", {"rounds": 3}, key=["width"], environment=ENV)
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / SETTINGS).write_text(json.dumps({"rounds": 3, ENVIRONMENT: ENV}))
    (tmp_path / "cut" / "samples.parquet").write_bytes(b"PAR1 cut short")
    with pytest.raises(UserError, match=r"samples.parquet is not a readable table \(.*\); move it away or " + GIVE) \
            as refused:
        Checkpoint(tmp_path / "cut", {"rounds": 3}, key=["width"], environment=ENV)
    assert "\n" not in str(refused.value)


def test_a_benchmark_script_refuses_an_out_it_cannot_resume_naming_the_flag(tmp_path, capsys, monkeypatch):
    """The checkpoint's refusals reach a script's command line as its one error line, naming ``--out``."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "samples.parquet").write_bytes(b"an older run's table")
    assert_refused_in_one_line("taylor_cost.py", ["--orders", "1", "--rounds", "1"], "holds tables without "
                               "settings.json (a run that cannot be resumed); move them away or give another out "
                               "(--out)", tmp_path, capsys, monkeypatch)


def test_checkpoint_refuses_a_run_of_another_machine_or_commit_naming_what_differs(tmp_path, capsys):
    """settings.json recorded no environment: a run measured on another CPU at another commit was resumed, its
    samples mixed with this machine's and its summary labelled as measured here."""
    out = tmp_path / "run"
    Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV).add(samples=pd.DataFrame({"width": [5]}))
    before = (out / SETTINGS).read_bytes()
    here = ENV | {"cpu_model": "Intel Xeon 8480", "git_sha": "edfed1a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6-dirty",
                  "hostname": "box-2"}
    with pytest.raises(UserError, match=r"was measured in another environment: commit e3c49434812d \(here "
                                        r"edfed1a0b1c2-dirty\), cpu_model 'AMD EPYC 7B13' \(here 'Intel Xeon 8480'\); "
                                        r"its samples are not mixed with this one's: resume it where it was measured, "
                                        r"or " + GIVE):
        Checkpoint(out, {"rounds": 3}, key=["width"], environment=here, assume_same_environment=True)
    with pytest.raises(UserError, match=r"environment: version_torch '2.13.0\+cpu' \(here '2.14.0'\); "):
        Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV | {"version_torch": "2.14.0"})
    assert (out / SETTINGS).read_bytes() == before
    # another host of the same hardware, software and commit resumes it, and the recorded environment is kept
    again = Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV | {"hostname": "box-2"})
    assert again.done() == {(5,)} and again.environment["cpu_model"] == ENV["cpu_model"]
    assert capsys.readouterr().err == ""
    dirty = tmp_path / "dirty"
    Checkpoint(dirty, {"rounds": 3}, key=["width"], environment=here).add(samples=pd.DataFrame({"width": [5]}))
    assert Checkpoint(dirty, {"rounds": 3}, key=["width"], environment=here).done() == {(5,)}
    assert "measured with uncommitted changes to commit edfed1a0b1c2, as this checkout has; whether they are the " \
           "same changes is not checked" in capsys.readouterr().err


def test_checkpoint_refuses_a_run_without_an_environment_unless_told_it_was_measured_here(tmp_path):
    out = tmp_path / "run"
    Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV).add(samples=pd.DataFrame({"width": [5]}))
    (out / SETTINGS).write_text(json.dumps({"rounds": 3}))  # as written before the environment was recorded
    with pytest.raises(UserError, match=r"holds a run that did not record the machine and commit it was measured on "
                                        r"\(written before nodebench recorded them\); if it was measured here, rerun "
                                        r"with --assume-same-environment \(assume_same_environment=True\), else "
                                        + GIVE):
        Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV)
    assert json.loads((out / SETTINGS).read_text()) == {"rounds": 3}
    adopted = Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV, assume_same_environment=True)
    adopted.add(samples=pd.DataFrame({"width": [8]}))
    assert json.loads((out / SETTINGS).read_text())[ENVIRONMENT]["cpu_model"] == ENV["cpu_model"]
    assert Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV).done() == {(5,), (8,)}
    (out / SETTINGS).write_text(json.dumps({"rounds": 3, ENVIRONMENT: "AMD"}))
    with pytest.raises(UserError, match="holds str as its environment, not the environment of a run; " + GIVE):
        Checkpoint(out, {"rounds": 3}, key=["width"], environment=ENV)


def _recorded(out, **changes):
    """Change what ``out``'s settings.json recorded of its environment (``drop``: none, as an older run)."""
    saved = json.loads((out / SETTINGS).read_text())
    if changes.pop("drop", False):
        del saved[ENVIRONMENT]
    saved.get(ENVIRONMENT, {}).update(changes)
    (out / SETTINGS).write_text(json.dumps(saved))


def test_cost_benchmarks_refuse_an_out_measured_elsewhere_and_summarise_the_recorded_environment(
        tmp_path, capsys, monkeypatch):
    """The README's case: a copy of a baseline measured on another CPU at another commit, resumed here, exited 0
    and rewrote summary.md as measured on this machine at this commit."""
    monkeypatch.delenv("GQ_OFFICIAL_PATH", raising=False)
    taylor = ["--dims", "2", "--hidden", "4", "--batch", "2", "--methods", "taylor", "--min-block", "0", "--rounds",
              "1"]
    gq = ["--methods", "direct", "--rounds", "1", "--widths", "5"]
    for script, arguments in (("taylor_cost.py", taylor + ["--orders", "1"]), ("gq_gradient_cost.py", gq)):
        out = tmp_path / script / "out"
        run_script(script, [*arguments, "--out", str(out)], monkeypatch)
        here = environment()
        assert json.loads((out / SETTINGS).read_text())[ENVIRONMENT]["git_sha"] == here["git_sha"]
        _recorded(out, cpu_model="AMD EPYC 7B13", git_sha="e3c49434812d8cd2472582e52689e93102bf9ae1")
        assert_refused_in_one_line(script, arguments, "was measured in another environment: commit e3c49434812d "
                                   f"(here {short_commit(here['git_sha'])}), cpu_model 'AMD EPYC 7B13' (here "
                                   f"{here['cpu_model']!r}); its samples are not mixed with this one's",
                                   out.parent, capsys, monkeypatch)
        _recorded(out, drop=True)
        assert_refused_in_one_line(script, arguments, "did not record the machine and commit it was measured on",
                                   out.parent, capsys, monkeypatch)
        run_script(script, [*arguments, "--assume-same-environment", "--out", str(out)], monkeypatch)
        recorded = json.loads((out / SETTINGS).read_text())[ENVIRONMENT]
        assert (recorded["cpu_model"], recorded["git_sha"]) == (here["cpu_model"], here["git_sha"])
        summary = (out / "summary.md").read_text()
        assert f"Device {recorded['cpu_model']} (cpu), {recorded['num_threads']} torch thread(s), torch " \
               f"{recorded['version_torch']}, git `{recorded['git_sha']}`" in summary, summary[:400]
    assert "| 5 | direct |" in summary  # a run without a GQ method (no "nodes") had an AttributeError, no summary
