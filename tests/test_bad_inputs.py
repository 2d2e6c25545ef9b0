"""Bad input across every command: one line on stderr (``nodebench: error: ...``), exit code 2, no
traceback, and an existing results directory left byte for byte as it was.

Each input runs in this process through :func:`nodebench.cli.main`; the results directory is a copy of a
committed baseline run, whose cases come from another commit than this checkout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodebench.cli import main

BASELINE = Path(__file__).resolve().parents[1] / "results" / "baselines" / "gq_adjoint-quick-cpu"


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every file and folder the bad inputs name."""
    root = tmp_path_factory.mktemp("bad")
    results = root / "results"
    shutil.copytree(BASELINE, results)
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder\n")
    records = pd.read_parquet(results / "records.parquet")
    for name, frame in (("no_rows", records.iloc[:0]), ("no_method", records.drop(columns=["method"])),
                        ("no_status", records.drop(columns=["status", "seed"]))):
        (root / name).mkdir()
        frame.to_parquet(root / name / "records.parquet", index=False)
    (root / "other_commit" / "cases").mkdir(parents=True)
    (root / "other_commit" / "cases" / "0123456789abcdef.json").write_text('{"status": "ok", "git_sha": "'
                                                                           + "0" * 40 + '"}')
    (root / "garbage").mkdir()
    (root / "garbage" / "records.parquet").write_bytes(b"PAR1 this is not parquet")
    records.iloc[:0].to_parquet(root / "no_rows.parquet", index=False)
    (root / "bad_run_json").mkdir()
    shutil.copy(results / "records.parquet", root / "bad_run_json" / "records.parquet")
    (root / "bad_run_json" / "run.json").write_text('{"run_id": ')
    t = np.linspace(0, 1, 5)
    np.savez(root / "object.npz", t=t, y=np.array([object()] * 10, dtype=object).reshape(2, 5, 1))
    np.savez(root / "nan.npz", t=t, y=np.full((2, 5, 1), np.nan))
    np.savez(root / "one_trajectory.npz", t=t, y=np.zeros((1, 5, 1)))
    np.savez(root / "unsorted.npz", t=t[::-1], y=np.zeros((2, 5, 1)))
    (root / "truncated.npz").write_bytes((root / "object.npz").read_bytes()[:100])
    (root / "empty.npz").write_bytes(b"")
    (root / "pickled.npy").write_bytes(b"\x80\x04not numpy")
    suites = root / "suites"
    suites.mkdir()
    (suites / "escape.toml").write_text('suite = "../../x"\n[[entry]]\nname = "a"\npaper = "do_vs_od"\n'
                                        'task = "cubic_spiral"\nmethods = ["rk4"]\niters = 1\n')
    (root / "cases_file").mkdir()
    (root / "cases_file" / "cases").write_text("a file where a run keeps its per-case folder\n")
    (root / "report_folder").mkdir()
    shutil.copy(results / "records.parquet", root / "report_folder" / "records.parquet")
    (root / "report_folder" / "report.md").mkdir()
    (root / "board_folder" / "leaderboard.md").mkdir(parents=True)
    (root / "history_folder").mkdir()
    (root / "history_folder" / "figures").write_text("a file where the history's figures go\n")
    (suites / "broken.toml").write_text("suite = [unclosed\n")
    (suites / "empty.toml").write_text('suite = "empty"\n')
    return root


def bad_inputs(root: Path) -> dict[str, list[str]]:
    """Name → argv; ``{root}`` stands for the fixture folder, ``{results}`` for the results copy."""
    r, f = "{root}", "{root}/a_file.txt"
    res = "{root}/results"
    run = ["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--no-progress"]
    board = ["leaderboard", res, "--out", f"{r}/board"]
    return {
        # output paths
        "run --out ''": run + ["--out", ""],
        "run --out FILE": run + ["--out", f],
        "run --out under a file": run + ["--out", f"{f}/sub"],
        "run --out a published run (no cases/)": run + ["--out", res],
        "run --out a folder of another commit": run + ["--out", f"{r}/other_commit"],
        "run --out a folder whose cases/ is a file": run + ["--out", f"{r}/cases_file"],
        "run --device cpu:1": run + ["--device", "cpu:1", "--out", f"{r}/o"],
        "run --seeds 1e11 (a hang before)": run + ["--seeds", "100000000000", "--dry-run"],
        "run --method rk4,rk4": ["run", "--task", "cubic_spiral", "--method", "rk4,rk4", "--iters", "1", "--out",
                                 f"{r}/o"],
        "report of a folder whose report.md is a folder": ["report", f"{r}/report_folder"],
        "leaderboard --out a folder whose leaderboard.md is a folder": ["leaderboard", res, "--out",
                                                                        f"{r}/board_folder"],
        "history --out a folder whose figures/ is a file": ["history", "--machine", "dev-2core-cpu1", "--out",
                                                            f"{r}/history_folder"],
        "reproduce --out FILE": ["reproduce", "snode", "--out", f],
        "reproduce --out under a file": ["reproduce", "snode", "--out", f"{f}/x/y"],
        "reproduce --out ''": ["reproduce", "snode", "--out", ""],
        "bench --out FILE": ["bench", "--suite", "nightly", "--out", f],
        "bench --out under a file": ["bench", "--suite", "nightly", "--out", f"{f}/store"],
        "bench --out ''": ["bench", "--suite", "nightly", "--out", ""],
        "compare --out a folder": ["compare", res, res, "--out", r],
        "compare --out under a file": ["compare", res, res, "--out", f"{f}/c.md"],
        "compare --out ''": ["compare", res, res, "--out", ""],
        "leaderboard --out FILE": ["leaderboard", res, "--out", f],
        "leaderboard --out under a file": ["leaderboard", res, "--out", f"{f}/b"],
        "leaderboard --out ''": ["leaderboard", res, "--out", ""],
        "history --out FILE": ["history", "--store", r, "--out", f],
        "history --store ''": ["history", "--store", ""],
        "report on a file": ["report", f],
        "report on a missing folder": ["report", f"{r}/missing"],
        # records files
        "report: zero rows": ["report", f"{r}/no_rows"],
        "report: no method column": ["report", f"{r}/no_method"],
        "report: no status, seed columns": ["report", f"{r}/no_status"],
        "report: corrupt records": ["report", f"{r}/garbage"],
        "report: corrupt run.json": ["report", f"{r}/bad_run_json"],
        "compare: zero rows (folder)": ["compare", f"{r}/no_rows", res, "--out", f"{r}/c.md"],
        "compare: zero rows (file)": ["compare", res, f"{r}/no_rows.parquet", "--out", f"{r}/c.md"],
        "compare: no method column": ["compare", res, f"{r}/no_method", "--out", f"{r}/c.md"],
        "compare: corrupt records": ["compare", f"{r}/garbage", res, "--out", f"{r}/c.md"],
        "compare: missing records": ["compare", f"{r}/missing.parquet", res, "--out", f"{r}/c.md"],
        "compare: bad threshold": ["compare", res, res, "--threshold", "time=-1"],
        "leaderboard: zero rows": ["leaderboard", f"{r}/no_rows", "--out", f"{r}/board"],
        "leaderboard: no status column": ["leaderboard", f"{r}/no_status", "--out", f"{r}/board"],
        "leaderboard: corrupt records": ["leaderboard", f"{r}/garbage", "--out", f"{r}/board"],
        "leaderboard: missing run": ["leaderboard", f"{r}/missing", "--out", f"{r}/board"],
        "history: empty store": ["history", "--store", f"{r}/suites", "--machine", "m"],
        # leaderboard names
        "leaderboard --reference unknown": board + ["--reference", "NO_SUCH_METHOD"],
        "leaderboard --reference empty": board + ["--reference", ""],
        "leaderboard --target unknown task": board + ["--target", "NO_SUCH_TASK=1"],
        "leaderboard --target not a number": board + ["--target", "sines=abc"],
        "leaderboard --target no name": board + ["--target", "=1"],
        "leaderboard --target negative": board + ["--target", "sines=-1"],
        # suite, paper and other names
        "bench unknown suite": ["bench", "--suite", "NO_SUCH_SUITE", "--out", f"{r}/store"],
        "bench suite path": ["bench", "--suite", "../x", "--out", f"{r}/store"],
        "bench suite naming a path": ["bench", "--suite", "escape", "--out", f"{r}/store"],
        "bench malformed suite": ["bench", "--suite", "broken", "--out", f"{r}/store"],
        "bench suite without entries": ["bench", "--suite", "empty", "--out", f"{r}/store"],
        "history suite path": ["history", "--store", r, "--suite", "../../x", "--machine", "m"],
        "bench machine without letters": ["bench", "--suite", "escape", "--machine", "../", "--out", f"{r}/s"],
        "reproduce unknown paper": ["reproduce", "NO_SUCH_PAPER", "--out", f"{r}/p"],
        "reproduce paper path": ["reproduce", "../snode", "--out", f"{r}/p"],
        "reproduce unknown preset": ["reproduce", "snode", "--preset", "huge", "--out", f"{r}/p"],
        "run unknown task": ["run", "--task", "NO_SUCH_TASK", "--method", "rk4", "--out", f"{r}/o"],
        "run unknown method": ["run", "--task", "cubic_spiral", "--method", "rk5", "--out", f"{r}/o"],
        "run empty method list": ["run", "--task", "cubic_spiral", "--method", ",", "--out", f"{r}/o"],
        "run unknown executor": run + ["--executor", "slurm", "--out", f"{r}/o"],
        # corrupt or invalid data files
        "trajectories: object array": ["run", "--task", f"trajectories:{r}/object.npz", "--method", "rk4",
                                       "--out", f"{r}/o"],
        "trajectories: NaN": ["run", "--task", f"trajectories:{r}/nan.npz", "--method", "rk4", "--out", f"{r}/o"],
        "trajectories: one trajectory": ["run", "--task", f"trajectories:{r}/one_trajectory.npz", "--method",
                                         "rk4", "--out", f"{r}/o"],
        "trajectories: times not increasing": ["run", "--task", f"trajectories:{r}/unsorted.npz", "--method",
                                               "rk4", "--out", f"{r}/o"],
        "trajectories: truncated": ["run", "--task", f"trajectories:{r}/truncated.npz", "--method", "rk4",
                                    "--out", f"{r}/o"],
        "trajectories: empty file": ["run", "--task", f"trajectories:{r}/empty.npz", "--method", "rk4",
                                     "--out", f"{r}/o"],
        "trajectories: missing file": ["run", "--task", f"trajectories:{r}/missing.npz", "--method", "rk4",
                                       "--out", f"{r}/o"],
        "density: a pickle, not .npy": ["run", "--task", f"density:{r}/pickled.npy", "--method", "rk4",
                                        "--out", f"{r}/o"],
        # task hyper-parameters a task checked only when it built the problem, inside the worker (exit 0 before)
        "run cnf activation unknown": ["run", "--task", "cnf_toy_moons", "--method", "rk4", "--hparam",
                                       "activation=bogus", "--out", f"{r}/o"],
        "run cnf noise unknown": ["run", "--task", "cnf_toy_moons", "--method", "rk4", "--hparam", "noise=bogus",
                                  "--out", f"{r}/o"],
        "run cnf hidden_dims not a list": ["run", "--task", "cnf_toy_moons", "--method", "rk4", "--hparam",
                                           "hidden_dims=abc", "--out", f"{r}/o"],
        "run cnf hidden_dims negative": ["run", "--task", "cnf_toy_moons", "--method", "rk4", "--hparam",
                                         "hidden_dims=[64,-1]", "--out", f"{r}/o"],
        "run cnf hidden_dims empty": ["run", "--task", "cnf_toy_moons", "--method", "rk4", "--hparam",
                                      "hidden_dims=[]", "--out", f"{r}/o"],
        "run cnf test_step_sizes zero": ["run", "--task", "cnf_toy_moons", "--method", "rk4", "--hparam",
                                         "test_step_sizes=[0.1,0]", "--out", f"{r}/o"],
        "run image cnf eval_trace unknown": ["run", "--task", "cnf_image_digits", "--method", "rk4", "--hparam",
                                             "eval_trace=bogus", "--out", f"{r}/o"],
        "run sines n_obs 1": ["run", "--task", "sines", "--method", "rk4", "--hparam", "n_obs=1", "--out", f"{r}/o"],
        "run vehicle dt above horizon/2": ["run", "--task", "vehicle", "--method", "rk4", "--hparam", "dt=10",
                                           "--out", f"{r}/o"],
        "run multi_agent one agent": ["run", "--task", "multi_agent", "--method", "rk4", "--hparam", "agents=1",
                                      "--out", f"{r}/o"],
        "run images encoder_padding 5": ["run", "--task", "images_digits", "--method", "rk4", "--hparam",
                                         "encoder_padding=5", "--out", f"{r}/o"],
        # accepted up front before, then a case that failed or crashed (an error row, exit code 0)
        "run cnf density_grid 1 (no density to draw)": ["run", "--task", "cnf_toy_moons", "--method", "rk4",
                                                        "--hparam", "density_grid=1", "--out", f"{r}/o"],
        "run cnf density_grid 1e9 (memory, after training)": ["run", "--task", "cnf_toy_moons", "--method", "rk4",
                                                              "--hparam", "density_grid=1e9", "--out", f"{r}/o"],
        "run image cnf ksize even": ["run", "--task", "cnf_image_digits", "--method", "rk4", "--hparam", "ksize=2",
                                     "--out", f"{r}/o"],
        "run vehicle dt 1e-300 (overflow)": ["run", "--task", "vehicle", "--method", "rk4", "--hparam", "dt=1e-300",
                                             "--out", f"{r}/o"],
        "run multi_agent horizon 1e6 (memory)": ["run", "--task", "multi_agent", "--method", "rk4", "--hparam",
                                                 "horizon=1e6", "--out", f"{r}/o"],
        # sweep options
        "run --hparam given twice": run + ["--hparam", "lr=0.1", "--hparam", "lr=0.2", "--out", f"{r}/o"],
        "run --method with an empty name": ["run", "--task", "cubic_spiral", "--method", "rk4,,adjoint", "--out",
                                            f"{r}/o"],
        "run --threads a million": run + ["--threads", "1000000", "--out", f"{r}/o"],
        "run --iters 1e20": ["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1" + "0" * 20,
                             "--out", f"{r}/o"],
        "run --out name too long": run + ["--out", f"{r}/{'a' * 300}"],
        # refused before a dry run lists the cases (the run itself failed late, ran once or until its limit)
        "run --timeout-s 1.7e308 --executor submitit (an OverflowError traceback)": run + [
            "--timeout-s", "1.7e308", "--executor", "submitit", "--dry-run", "--out", f"{r}/o"],
        "reproduce --experiment given twice (ran once)": ["reproduce", "gq_adjoint", "--experiment", "g1d_widths",
                                                           "--experiment", "g1d_widths", "--dry-run"],
        "run hidden 1e30 (int64 overflow in the case)": run + ["--hparam", "hidden=1e30", "--dry-run"],
        "run n_points 1e30 (int64 overflow in the case)": run + ["--hparam", "n_points=1e30", "--dry-run"],
        "run data_seed 2**64 (int64 overflow in the case)": ["run", "--task", "vehicle", "--method", "rk4",
                                                              "--hparam", f"data_seed={2**64}", "--dry-run"],
        "run latent n_records 1e12 (drew records until the time limit)": [
            "run", "--task", "latent_ode_synthetic", "--method", "direct", "--hparam", "n_records=1e12", "--dry-run"],
        "compare --threshold given twice": ["compare", res, res, "--threshold", "time=0.1", "--threshold",
                                            "time=0.2"],
        # a dry run refuses what the run would refuse
        "run --dry-run --out FILE": run + ["--dry-run", "--out", f],
        "run --dry-run --executor dask without --scheduler": run + ["--dry-run", "--executor", "dask"],
        "run --dry-run --scheduler without dask": run + ["--dry-run", "--scheduler", "tcp://localhost:8786"],
        "run --dry-run into a published run": run + ["--dry-run", "--out", res],
        "reproduce --dry-run --out FILE": ["reproduce", "snode", "--dry-run", "--out", f],
        "reproduce --dry-run without its data": ["reproduce", "do_vs_od", "--preset", "paper", "--experiment",
                                                 "tabular_power", "--dry-run"],
        "bench --dry-run --out FILE": ["bench", "--suite", "nightly", "--dry-run", "--out", f],
    }


INPUTS = bad_inputs(Path("."))


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_bad_input_is_one_line_and_exit_2(name, files, capsys, monkeypatch):
    monkeypatch.setenv("NODEBENCH_SUITES", str(files / "suites"))
    monkeypatch.setenv("NODEBENCH_DATA", str(files / "cases_file"))  # no data set: a data check must refuse
    if name.startswith("bench") and "suite" not in name and "machine" not in name:
        monkeypatch.delenv("NODEBENCH_SUITES")  # the repository's nightly suite
    argv = [a.replace("{root}", str(files)) for a in INPUTS[name]]
    before = _snapshot(files / "results")
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (name, out, err)
    assert err.startswith("nodebench: error: ") and err.count("\n") == 1, (name, err)
    assert "Traceback" not in out + err
    assert _snapshot(files / "results") == before, name
    assert not (files / "o").exists() and not (files / "board").exists() and not (files / "p").exists()


def test_there_are_many_bad_inputs():
    assert len(INPUTS) >= 45


def test_a_run_folder_given_twice_counts_once(files, capsys):
    out = files / "twice"
    assert main(["leaderboard", str(files / "results"), str(files / "results" / "records.parquet"),
                 str(files / "results"), "--out", str(out)]) == 0
    assert "1 run(s)" in (out / "leaderboard.md").read_text()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_output_folder(files, capsys):
    locked = files / "read_only"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o555)
    try:
        code = main(["run", "--task", "cubic_spiral", "--method", "rk4", "--out", str(locked / "o")])
        assert code == 2 and "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_a_path_the_system_refuses_is_one_line(capsys, monkeypatch):
    """An ``OSError`` naming a file (a read-only or virtual file system, a name too long) is reported as one
    line with exit code 2; one naming no file is a bug and keeps its traceback."""
    import errno

    from nodebench import api

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run")

    monkeypatch.setattr(api, "report", refuse)
    assert main(["report", "x"]) == 2
    err = capsys.readouterr().err
    assert err == "nodebench: error: Read-only file system: '/mnt/ro/run'\n"
    monkeypatch.setattr(api, "report", lambda *a, **k: (_ for _ in ()).throw(OSError("no file named")))
    with pytest.raises(OSError):
        main(["report", "x"])


@pytest.mark.parametrize("call, message", [
    (dict(timeout_s=1.7e308), "engine option timeout_s must be a positive finite number <= 3.1536e+07, got 1.7e+308"),
    (dict(hparams={"hidden": 2**63}), "hidden must be an integer from 1 to 2**63 - 1, got 9223372036854775808"),
])
def test_the_api_refuses_values_past_their_range(call, message, tmp_path):
    import nodebench
    from nodebench.errors import UserError

    with pytest.raises(UserError) as err:
        nodebench.run("cubic_spiral", "rk4", iters=1, out=tmp_path / "o", dry_run=True, **call)
    assert message in str(err.value)


def test_an_experiment_named_twice_is_refused_as_a_method_is(tmp_path):
    """``experiments=[X, X]`` ran X once, as if the second were not there; ``methods=[m, m]`` is refused."""
    import nodebench
    from nodebench.errors import UserError

    with pytest.raises(UserError, match="experiments g1d_widths, g1d_widths name g1d_widths more than once"):
        nodebench.reproduce("gq_adjoint", experiments=["g1d_widths", "g1d_widths"], out=tmp_path / "p", dry_run=True)
    with pytest.raises(UserError, match="methods rk4, rk4 name rk4 more than once"):
        nodebench.run("cubic_spiral", ["rk4", "rk4"], out=tmp_path / "o", dry_run=True)
    assert len(nodebench.reproduce("gq_adjoint", experiments=["g1d_widths"], out=tmp_path / "p", dry_run=True).cases)


@pytest.mark.parametrize("timeout_s", ["31536000", "0.5"])
def test_the_timeout_bounds_themselves_are_valid(timeout_s, tmp_path, capsys):
    assert main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--timeout-s", timeout_s,
                 "--dry-run", "--out", str(tmp_path / "o")]) == 0


@pytest.mark.parametrize("task, method, key, value", [("g1d", "gq", "t_end", 1e300), ("nested_spheres", "adjoint",
                                                       "t_end", 1e300), ("g1d", "gq", "lr", 1e300),
                                                      ("ou_sde", "gq", "lr", 1e39)])
def test_a_value_beyond_the_models_dtype_is_refused_before_running(task, method, key, value, tmp_path, capsys):
    """In float32, t_end = 1e300 made the time grid infinite and lr = 1e300 failed in Adam's update: an error row
    each ("t must be finite", "value cannot be converted to type float without overflow"), after the data were
    built. A value float64 holds is a legal number: lr = 1e300 on a float64 task runs (and diverges, a row)."""
    out = tmp_path / "out"
    code = main(["run", "--task", task, "--method", method, "--hparam", f"{key}={value}", "--iters", "1",
                 "--no-progress", "--out", str(out)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and lines == [f"nodebench: error: task {task}: hyper-parameter {key} {value:g} is beyond the "
                                   "range of float32, the model's dtype (magnitude at most 3.4e+38); give a smaller "
                                   f"{key} or dtype float64 (--hparam dtype=float64)"]
    assert not out.exists()
    assert main(["run", "--task", task, "--method", method, "--hparam", f"{key}={value}", "--hparam",
                 "dtype=float64", "--dry-run", "--out", str(out)]) == 0


@pytest.mark.parametrize("task, method, key, kind", [
    ("cnf_sklearn_breast_cancer", "adjoint", "eval_tol", "hyper-parameter"), ("g1d", "gq", "lr", "hyper-parameter"),
    ("g1d", "adjoint", "rtol", "solver option"), ("g1d", "adjoint", "adjoint_atol", "solver option")])
def test_a_positive_value_that_is_0_in_the_models_dtype_is_refused(task, method, key, kind, tmp_path, capsys):
    """In float32, eval_tol = 1e-300 or rtol = 1e-300 was 0 (dopri5 stopped, "underflow in dt", or read rtol as
    0) and lr = 1e-300 an update of 0, silently: a value that must be positive is refused below float32's smallest
    normal number. float64 holds it."""
    out = tmp_path / "out"
    code = main(["run", "--task", task, "--method", method, "--hparam", f"{key}=1e-300", "--iters", "1",
                 "--no-progress", "--out", str(out)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and lines == [f"nodebench: error: task {task}: {kind} {key} 1e-300 is below 1.18e-38, the "
                                   "smallest normal number of float32, the model's dtype (there it is 0 or a "
                                   f"subnormal); give {key} >= 1.18e-38 or dtype float64 (--hparam "
                                   "dtype=float64)"]
    assert not out.exists()
    assert main(["run", "--task", task, "--method", method, "--hparam", f"{key}=1e-300", "--hparam",
                 "dtype=float64", "--dry-run", "--out", str(out)]) == 0


@pytest.mark.parametrize("key, value, problem", [
    ("snode_gamma", 1e-300, "is below 1.18e-38, the smallest normal number of float32, the model's dtype (there it "
                            "is 0 or a subnormal); give snode_gamma >= 1.18e-38"),
    ("snode_coef_lr", 1e-300, "is below 1.18e-38"),
    ("snode_gamma_growth", 1e300, "is beyond the range of float32, the model's dtype (magnitude at most 3.4e+38); "
                                  "give a smaller snode_gamma_growth")])
def test_an_snode_option_the_models_dtype_cannot_hold_is_refused(key, value, problem, tmp_path, capsys):
    """In float32, snode_gamma = 1e-300 was γ = 0 (no collocation penalty) and snode_coef_lr = 1e-300 a
    coefficient step of 0: the case ran and was recorded ok. float64 holds them."""
    out, args = tmp_path / "out", ["run", "--task", "cubic_spiral", "--method", "snode", "--hparam", f"{key}={value}"]
    code = main([*args, "--hparam", "dtype=float32", "--iters", "1", "--no-progress", "--out", str(out)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"nodebench: error: task cubic_spiral: SNODE option {key} {value:g} {problem}")
    assert not out.exists()
    assert main([*args, "--dry-run", "--out", str(out)]) == 0  # cubic_spiral's default dtype, float64


@pytest.mark.parametrize("task, method, key, value, ignored", [
    ("g1d", "rk4", "rtol", 1e-300, "method rk4 does not use rtol"),
    ("cubic_spiral", "snode", "rtol", 1e-300, "method snode does not use rtol"),
    ("cubic_spiral", "snode", "snode_gamma_max", 1e300, "method snode does not use snode_gamma_max"),
    ("g1d", "gq", "gtol", 1e-300, None), ("g1d", "gq", "gtol", 1e300, None)])
def test_an_option_that_never_becomes_a_tensor_of_the_models_dtype_is_not_checked_against_it(
        task, method, key, value, ignored, tmp_path, capsys):
    """An option the method ignores (rtol for rk4 or snode; gamma_max without a continuation) was refused for a
    value float32 cannot hold, though it is only warned about as ignored; gtol, the GQ node count's factor, is a
    Python float (1e-300: one node per interval; 1e300: the most), yet was refused as 0 in float32."""
    code = main(["run", "--task", task, "--method", method, "--hparam", f"{key}={value}", "--hparam",
                 "dtype=float32", "--dry-run", "--out", str(tmp_path / "out")])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 0 and warnings == ([f"nodebench: warning: {ignored}; ignored"] if ignored else []), warnings


def test_a_value_that_may_be_0_may_round_to_0_in_the_models_dtype(tmp_path):
    """weight_decay = 0 is no decay: 1e-300, 0 in float32, means the same and runs."""
    assert main(["run", "--task", "cnf_sklearn_breast_cancer", "--method", "adjoint", "--hparam",
                 "weight_decay=1e-300", "--dry-run", "--out", str(tmp_path / "out")]) == 0
