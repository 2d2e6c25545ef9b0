"""A dry run without the data it needs still lists every case, then names every missing data set at once (one
line, exit code 2); a real run refuses with that line before writing anything. The data folder is an empty
temporary one: nothing is downloaded and no real data is read."""

from __future__ import annotations

import re

import pytest

from nodebench.cli import main
from nodebench.datasets import catalog
from nodebench.errors import UserError


def _needed_data_sets(paper: str, preset: str) -> dict[str, int]:
    """Data set → how many of the paper preset's cases need it (none of them is in an empty data folder)."""
    from nodebench.experiments import load_paper

    counts: dict[str, int] = {}
    for case in load_paper(paper).cases(preset, "cpu"):
        if (dataset := catalog.dataset_of_task(case.task)) is not None:
            counts[dataset.name] = counts.get(dataset.name, 0) + 1
    return counts


@pytest.mark.parametrize("paper", ["do_vs_od", "taynode"])
def test_a_dry_run_without_the_data_lists_every_case_then_names_every_missing_set(paper, tmp_path, monkeypatch,
                                                                                  capsys):
    """The dry run stopped at the first missing data set, one line and no case listed: what the paper preset
    would run, and which data sets to fetch first, could not be seen until every one was there."""
    from nodebench.experiments import load_paper

    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "empty"))
    out = tmp_path / "run"
    assert main(["reproduce", paper, "--preset", "paper", "--dry-run", "--out", str(out)]) == 2
    printed, err = capsys.readouterr()
    cases = load_paper(paper).cases("paper", "cpu")
    assert f"{len(cases)} case(s) into {out}; nothing was run (--dry-run)" in printed
    assert all(case.task in printed for case in cases)
    needed = _needed_data_sets(paper, "paper")
    assert len(needed) > 1 and err.startswith("nodebench: error: ") and err.count("\n") == 1, err
    for name, count in needed.items():
        assert re.search(rf"\({count} cases?\) needs? data set {name}, not found", err), (name, err)
        assert f"`nodebench data fetch {name}`" in err, (name, err)
    assert not out.exists() and not (tmp_path / "empty").exists()


def test_a_run_without_the_data_names_every_missing_set_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """A real run refused at the first missing data set: fetch it, rerun, and meet the next."""
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "empty"))
    out = tmp_path / "run"
    assert main(["reproduce", "do_vs_od", "--preset", "paper", "--out", str(out)]) == 2
    printed, err = capsys.readouterr()
    needed = _needed_data_sets("do_vs_od", "paper")
    assert not printed and err.count("\n") == 1 and f"{len(needed)} data sets the cases need are missing" in err, err
    assert all(f"`nodebench data fetch {name}`" in err for name in needed), err
    assert not out.exists() and not (tmp_path / "empty").exists()


def test_the_api_dry_run_returns_the_cases_and_the_missing_data(tmp_path, monkeypatch):
    import nodebench

    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "empty"))
    planned = nodebench.run("mnist_ode", "adjoint", dry_run=True, out=tmp_path / "run")
    assert len(planned.cases) == 1 and planned.exit_code == 2 and "nodebench data fetch mnist" in planned.missing_data
    with pytest.raises(UserError, match="data set mnist, not found") as refused:
        nodebench.run("mnist_ode", "adjoint", out=tmp_path / "run")
    assert str(refused.value) == planned.missing_data and not (tmp_path / "run").exists()
    assert nodebench.run("cubic_spiral", "adjoint", dry_run=True, out=tmp_path / "run").missing_data == ""


def test_a_set_that_does_not_verify_is_named_beside_a_missing_one(tmp_path, monkeypatch, capsys):
    """Each data set is named with what is wrong with it: POWER found but unpinned (--no-verify uses it), GAS
    missing (fetch it); the old gate named only the first."""
    np = pytest.importorskip("numpy")
    (tmp_path / "data" / "power").mkdir(parents=True)
    np.save(tmp_path / "data" / "power" / "data.npy", np.zeros((4, 8)))  # POWER: 8 columns
    monkeypatch.setenv("NODEBENCH_DATA", str(tmp_path / "data"))
    argv = ["reproduce", "do_vs_od", "--preset", "paper", "--experiment", "tabular_power", "--experiment",
            "tabular_gas", "--dry-run", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    printed, err = capsys.readouterr()
    assert "cnf_power" in printed and "cnf_gas" in printed and err.count("\n") == 1, err
    assert re.search(r"needs data set power, found in .* but not verified .*--no-verify", err), err
    assert re.search(r"needs data set gas, not found in .*`nodebench data fetch gas`", err), err
    assert main([*argv, "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "data set power" not in err and "`nodebench data fetch gas`" in err, err
