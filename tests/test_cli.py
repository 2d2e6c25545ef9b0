"""The command line: every kind of bad input gets one line, exit code 2, no traceback, nothing lost."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from nodebench import cli
from nodebench.cli import main
from nodebench.records import load_run


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nodebench: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def npz_files(tmp_path):
    t = np.linspace(0, 1, 5)
    good = tmp_path / "good.npz"
    np.savez(good, t=t, y=np.random.default_rng(0).normal(size=(4, 5, 2)))
    nan = tmp_path / "nan.npz"
    y = np.zeros((4, 5, 2))
    y[1, 2, 0] = np.nan
    np.savez(nan, t=t, y=y)
    shape = tmp_path / "shape.npz"
    np.savez(shape, t=t, y=np.zeros((4, 6, 2)))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    return {"good": good, "nan": nan, "shape": shape, "garbage": garbage, "missing": tmp_path / "nope.npz"}


BAD_RUNS = [
    (["--task", "no_such_task", "--method", "rk4"], ["unknown task", "cubic_spiral"]),
    (["--task", "cubic_spiral", "--method", "rk5"], ["unknown method", "rk4", "adjoint"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--iters", "0"], ["--iters", "positive integer"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--iters", "ten"], ["--iters"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--budget-s", "-3"], ["--budget-s", "positive"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--budget-s", "nan"], ["--budget-s"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--seeds", "x"], ["--seeds"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--hparam", "lr"], ["KEY=VALUE"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--hparam", "learning_rate=1"], ["learning_rate", "valid", "lr"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--hparam", "rtol=-1"], ["rtol", "positive"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--hparam", "dtype=float16"], ["float16", "float32"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--hparam", "lr=0"], ["lr", "positive"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--device", "tpu"], ["device", "cpu"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--budget-s", "3"], ["not allowed"]),
    # a budget the case time limit cuts short would only record timeouts (small values: a regression fails fast)
    (["--task", "cubic_spiral", "--method", "rk4", "--budget-s", "1", "--timeout-s", "1"],
     ["budget of 1 s", "--timeout-s"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--budget-s", "2", "--timeout-s", "1"], ["time limit of 1 s"]),
    (["--task", "cubic_spiral", "--method", ","], ["no method given"]),
    (["--task", "cubic_spiral", "--method", "sde_direct"], ["sde_direct", "ODE task"]),
    (["--task", "cubic_spiral", "--method", "gq", "--hparam", "gtol=0"], ["gtol", "positive"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--hparam", "reg=fast"], ["unknown regulariser", "speed"]),
    (["--task", "cubic_spiral", "--method", "rk4", "--hparam", "reg=speed", "--hparam", "reg_order=0"],
     ["reg_order"]),
    (["--task", "ou_sde", "--method", "sde_adjoint", "--hparam", "reg=speed", "--hparam", "reg_lambda=1"],
     ["needs an ODE method", "sde_adjoint"]),
]


@pytest.mark.parametrize("argv,fragments", BAD_RUNS, ids=[" ".join(a[2:]) for a, _ in BAD_RUNS])
def test_bad_run_arguments(capsys, tmp_path, argv, fragments):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "run", *argv, "--out", str(out))
    assert_one_line_error(code, err, *fragments)
    assert not out.exists()


RUN = ["run", "--task", "cubic_spiral", "--method", "rk4", "--dry-run"]
REPRODUCE = ["reproduce", "do_vs_od", "--dry-run"]
BENCH = ["bench", "--suite", "nightly", "--dry-run"]
INT_OPTIONS = {"--seeds", "--iters", "--jobs", "--threads"}
#: Bad numbers: zero, negative, not finite, overflowing, not numbers (``-inf`` and ``-1e400`` too, which
#: argparse would take for options); and 1.5 for an integer option.
BAD_NUMBERS = ["0", "-1", "-inf", "-1e400", "nan", "inf", "1e400", "ten", ""]
NUMBER_OPTIONS = [(RUN, "--seeds"), (RUN, "--iters"), (RUN, "--budget-s")] + [
    (command, option) for command in (RUN, REPRODUCE, BENCH) for option in ("--jobs", "--threads", "--timeout-s")] + [
    (["data", "fetch", "mnist"], "--timeout-s")]
BAD_VALUES = [(command + [option, value], [f"argument {option}", "positive", f"got {value!r}"])
              for command, option in NUMBER_OPTIONS for value in BAD_NUMBERS + ["1.5"] * (option in INT_OPTIONS)] + [
    (["compare", "a", "b", "--threshold", value], ["argument --threshold", "NAME=POSITIVE_NUMBER", "time=0.2"])
    for value in ["time=0", "time=-1", "time=-inf", "time=nan", "time=inf", "time=1e400", "time=x", "=0.2", "time", ""]
] + [
    (["leaderboard", "a", "--out", "lb", "--target", value], ["argument --target", "NAME=POSITIVE_NUMBER"])
    for value in ["cubic_spiral=0", "cubic_spiral=nan", "cubic_spiral=1e400", "cubic_spiral", ""]
] + [  # unknown names, with the nearest valid one where there is one (case aside)
    (["run", "--task", "cubic_spirl", "--method", "rk4", "--dry-run"], ["unknown task", "did you mean 'cubic_spiral'"]),
    (["run", "--task", "", "--method", "rk4", "--dry-run"], ["unknown task ''", "cubic_spiral"]),
    (["run", "--task", "cubic_spiral", "--method", "adjont", "--dry-run"], ["did you mean 'adjoint'"]),
    (RUN + ["--hparam", "LR=0.1"], ["unknown hyper-parameter 'LR'", "did you mean 'lr'"]),
    (RUN + ["--executor", "lokal"], ["argument --executor", "'lokal'", "'local', 'submitit', 'dask'"]),
    (["reproduce", "DO_VS_OD", "--dry-run"], ["unknown paper", "did you mean 'do_vs_od'"]),
    (REPRODUCE + ["--preset", "smok"], ["unknown preset 'smok'", "did you mean 'smoke'", "quick"]),
    (REPRODUCE + ["--preset", ""], ["unknown preset ''", "smoke, quick, paper"]),
    (REPRODUCE + ["--experiment", "spirall"], ["no experiment 'spirall'", "did you mean 'spiral'"]),
    (["bench", "--suite", "nightlyy", "--dry-run"], ["unknown suite 'nightlyy'", "did you mean 'nightly'"]),
    (["bench", "--suite", "", "--dry-run"], ["unknown suite ''", "nightly"]),
    (BENCH + ["--machine", "../x"], ["argument --machine", "not a plain name"]),
    (BENCH + ["--baseline", " "], ["argument --baseline", "git revision"]),
    (["history", "--suite", ""], ["argument --suite", "not a plain name"]),
    (["data", "verify", "MNIST"], ["unknown data set 'MNIST'", "did you mean 'mnist'"]),
    (["data", "fetch", ""], ["unknown data set ''", "mnist"]),
    # a socket timeout beyond ~9e9 s overflowed time_t: a traceback once the network was up
    (["data", "fetch", "mnist", "--timeout-s", "1e10"], ["argument --timeout-s", "≤ 86,400", "got '1e10'"]),
] + [(command + ["--device", device], ["unknown device", "valid: cpu, cuda, cuda:N"])
     for command in (RUN, REPRODUCE, BENCH) for device in ("", "tpu", "CPU")
] + [(argv, ["expected a path, got an empty string"]) for argv in (  # '' would be the current folder
    RUN + ["--out", ""], REPRODUCE + ["--out", ""], BENCH + ["--out", ""], ["report", ""], ["compare", "", "b"],
    ["compare", "a", ""], ["compare", "a", "b", "--out", ""], ["history", "--store", ""], ["history", "--out", ""],
    ["leaderboard", "", "--out", "lb"], ["leaderboard", "a", "--out", ""], ["data", "list", "--root", ""],
    ["data", "list", "--manifest", ""])]


@pytest.mark.parametrize("argv,fragments", BAD_VALUES, ids=[" ".join(map(repr, a)) for a, _ in BAD_VALUES])
def test_every_bad_value_is_one_line_and_writes_nothing(capsys, tmp_path, monkeypatch, argv, fragments):
    """Every numeric, choice, name and path option of every command, given a value it cannot take."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_requested_without_cuda(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "--task", "cubic_spiral", "--method", "rk4", "--device", "cuda",
                           "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "CUDA is not available")


@pytest.mark.parametrize("kind,fragment", [("missing", "does not exist"), ("garbage", "not a readable .npz"),
                                           ("nan", "NaN"), ("shape", "(N, T, D)")])
def test_bad_trajectory_files(capsys, tmp_path, npz_files, kind, fragment):
    code, _, err = run_cli(capsys, "run", "--task", f"trajectories:{npz_files[kind]}", "--method", "rk4",
                           "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "o").exists()


def test_bad_reproduce_arguments(capsys, tmp_path):
    code, _, err = run_cli(capsys, "reproduce", "no_such_paper", "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "unknown paper", "do_vs_od")
    code, _, err = run_cli(capsys, "reproduce", "do_vs_od", "--preset", "huge", "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "unknown preset", "smoke")
    assert not (tmp_path / "o").exists()


def test_bad_report_arguments(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(tmp_path / "missing"))
    assert_one_line_error(code, err, "does not exist")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "records.parquet").write_bytes(b"PAR1 garbage")
    code, _, err = run_cli(capsys, "report", str(corrupt))
    assert_one_line_error(code, err, "cannot read")
    assert (corrupt / "records.parquet").read_bytes() == b"PAR1 garbage"


def test_unknown_subcommand_and_option(capsys):
    code, _, err = run_cli(capsys, "frobnicate")
    assert_one_line_error(code, err, "invalid choice")
    code, _, err = run_cli(capsys, "run", "--task", "cubic_spiral", "--method", "rk4", "--colour", "red")
    assert_one_line_error(code, err, "--colour")


def test_list(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for name in ("do_vs_od", "cubic_spiral", "trajectories:PATH", "rk4", "rk4_38", "adjoint", "seminorm", "direct"):
        assert name in out


@pytest.mark.slow
def test_run_then_report_end_to_end(tmp_path, npz_files):
    """The console script runs a real grid, writes records, curves and figures; bad input keeps them."""
    out = tmp_path / "run"
    exe = [sys.executable, "-m", "nodebench.cli"]
    done = subprocess.run(exe + ["run", "--task", f"trajectories:{npz_files['good']}", "--method", "rk4,euler",
                                 "--iters", "3", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = pd.read_parquet(out / "records.parquet")
    assert sorted(records["method"]) == ["euler", "rk4"]
    assert (records["status"] == "ok").all() and records["test_mse"].notna().all()
    assert len(pd.read_parquet(out / "curves.parquet")) == 6
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert any(name.endswith("loss_vs_time.png") for name in pngs)
    assert any(name.endswith("work_precision.png") for name in pngs)
    before = (out / "records.parquet").read_bytes()

    bad = subprocess.run(exe + ["run", "--task", f"trajectories:{npz_files['nan']}", "--method", "rk4",
                                "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert (out / "records.parquet").read_bytes() == before

    (out / "report.md").unlink()
    rebuilt = subprocess.run(exe + ["report", str(out)], capture_output=True, text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "| rk4 |" in (out / "report.md").read_text()


def test_a_reproduction_into_a_folder_of_another_kind_of_run_is_refused(tmp_path, capsys):
    """A `nodebench run` folder resumed by `reproduce` would mix the two and replace run.json's provenance."""
    out = tmp_path / "mixed"
    out.mkdir()
    (out / "run.json").write_text('{"run_id": "20260101-000000-abcdef", "command": "run"}')
    code = main(["reproduce", "do_vs_od", "--experiment", "spiral", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "holds a `nodebench run` run; this `nodebench reproduce do_vs_od smoke` there would mix the two" in err
    assert sorted(p.name for p in out.iterdir()) == ["run.json"] and "reproduce" not in (out / "run.json").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["_check", "_finish"], ids=["start-up", "reporting"])
def test_sigterm_outside_the_sweep_is_one_line_and_keeps_the_records(tmp_path, phase):
    """SIGTERM while the command starts up (checking the cases) or after its sweep (figures and report)
    stops it as during the sweep: one line, exit code 128 + 15, and the merged records stay readable."""
    out = tmp_path / "run"
    script = ("import sys, time\nfrom nodebench import api\nfrom nodebench.cli import main\n"
              "def hold(*args, **kwargs):\n    print('holding', flush=True)\n    time.sleep(60)\n"
              "setattr(api, sys.argv[1], hold)\nsys.exit(main(sys.argv[2:]))\n")
    argv = ["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "2", "--hparam", "n_points=6",
            "--hparam", "hidden=4", "--no-progress", "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-c", script, phase, *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "holding"
        process.terminate()
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    lines = [line for line in err.splitlines() if line.startswith("nodebench:") or "Traceback" in line]
    assert process.returncode == 128 + 15 and len(lines) == 1, err
    assert lines[0].startswith("nodebench: interrupted by SIGTERM")
    if phase == "_finish":
        records, _ = load_run(out)
        assert list(records["status"]) == ["ok"]


@pytest.mark.parametrize("argv,after", [
    (["run", "--task", "cubic_spiral", "--method", "rk4"],
     "finished cases are kept, rerun with the same --out to resume"),
    (["data", "fetch", "mnist"], "a partial download is kept as FILE.part; rerun the same command to resume"),
    (["bench", "--suite", "nightly"], "the unfinished run is neither gated nor in the history; rerun the command"),
    (["history"], "what it wrote before is intact; rerun the command"),
])
def test_an_interrupted_command_says_what_it_kept(monkeypatch, capsys, argv, after):
    """Ctrl-C told every command "finished cases are kept, rerun with the same --out to resume", also
    ``data fetch`` (no --out; a partial download resumes) and ``bench`` (a new run; nothing resumes)."""
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, argv[0], interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err == f"nodebench: interrupted by SIGINT; {after}\n"


def test_an_interrupted_run_says_how_many_cases_it_kept_and_the_command_that_resumes_it(monkeypatch, capsys,
                                                                                           tmp_path):
    """Ctrl-C said "rerun with the same --out to resume", also to a run given no --out (a new results/runs/<time>
    that the same command would not find again): now the count of finished cases, their folder, and the command."""
    from nodebench.records import CASES
    from nodebench.runner import sweep

    def interrupted(cases, run_dir, **kwargs):  # the first case finished, then Ctrl-C
        (run_dir / CASES / f"{cases[0].case_id}.json").write_text('{"status": "ok"}')
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep, "_run_locked", lambda cases, run_dir, **kwargs: (
        (run_dir / CASES).mkdir(parents=True), interrupted(cases, run_dir)))
    argv = ["run", "--task", "cubic_spiral", "--method", "rk4,euler", "--iters", "1", "--no-progress"]
    assert main(argv) == 130
    (out,) = (tmp_path / "results" / "runs").iterdir()
    out = out.relative_to(tmp_path)
    assert capsys.readouterr().err.splitlines()[-1] == (f"nodebench: interrupted by SIGINT; 1 of 2 case(s) finished, "
                                                        f"kept in {out}; resume with: nodebench {' '.join(argv)} "
                                                        f"--out {out}")


@pytest.mark.parametrize("statuses,line", [
    (["ok", "ok"], "2 case(s): 2 ok"),
    (["timeout", "ok", "diverged", "ok"], "4 case(s): 2 ok, 1 diverged, 1 timeout; the reasons: the failed-cases "
     "tables of R/report.md (the records' reason column), each worker's output: R/logs/CASE_ID.log"),
])
def test_a_finished_run_ends_with_its_statuses_and_where_failures_are_explained(monkeypatch, capsys, statuses,
                                                                               line):
    """The last lines named the files only: a run whose cases diverged or timed out looked like a success."""
    from pathlib import Path

    from nodebench import api

    result = api.RunResult(Path("R"), [], pd.DataFrame({"status": statuses}), report=Path("R/report.md"))
    monkeypatch.setattr(api, "run", lambda *args, **kwargs: result)
    assert main(["run", "--task", "cubic_spiral", "--method", "rk4"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == line


def test_a_dry_run_says_where_its_cases_go_and_which_finished_before(capsys, tmp_path):
    """--dry-run said "N case(s); nothing was run": neither the folder nor what a resume there would skip."""
    import nodebench

    out = tmp_path / "run"
    argv = ["run", "--task", "cubic_spiral", "--method", "rk4,euler", "--iters", "1", "--out", str(out), "--dry-run"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"2 case(s) into {out}; nothing was run (--dry-run)"
    case = nodebench.run("cubic_spiral", "rk4,euler", iters=1, dry_run=True).cases[0]
    (out / "cases").mkdir(parents=True)
    (out / "cases" / f"{case.case_id}.json").write_text(json.dumps(case.identity() | {"status": "diverged"}))
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (f"2 case(s) into {out}: 1 finished before (skipped), 1 to "
                                                        "run; nothing was run (--dry-run)")
    assert main(argv + ["--retry-failed"]) == 0  # the failed case runs again
    assert capsys.readouterr().out.splitlines()[-1] == f"2 case(s) into {out}; nothing was run (--dry-run)"
    assert sorted(p.name for p in out.rglob("*")) == sorted(["cases", f"{case.case_id}.json"])  # nothing written


def test_a_dry_run_without_out_says_its_folder_is_a_new_one(capsys, tmp_path, monkeypatch):
    """Without --out each run makes a folder named by its time: the dry run names one such folder and says a later
    run will not use it, rather than name a folder as if the run would go (and resume) there."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--task", "cubic_spiral", "--method", "rk4", "--iters", "1", "--dry-run"]) == 0
    assert re.fullmatch(r"1 case\(s\) into a new folder such as results/runs/[0-9-]+ \(each run without --out makes "
                        r"its own; give --out to resume\); nothing was run \(--dry-run\)",
                        capsys.readouterr().out.splitlines()[-1])
    assert not (tmp_path / "results").exists()


def test_the_command_line_module_imports_no_heavy_library():
    """``import nodebench.cli`` (what the ``nodebench`` script does before ``main``) stays light, so that
    main's signal handling covers the seconds that torch and scikit-learn take to import."""
    code = "import sys, nodebench.cli; print(sorted({'torch', 'sklearn', 'pandas'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("program", ["/venv/bin/nodebench", "/src/nodebench/cli.py"])
def test_the_recorded_command_line_names_the_command_as_typed(monkeypatch, program):
    """run.json's command line (the report's "Command:") reads ``nodebench run ...`` whether the console script or
    ``python -m nodebench.cli`` started it."""
    from nodebench.run_settings import invocation

    monkeypatch.setattr(sys, "argv", [program, "run", "--task", "cubic_spiral"])
    assert invocation()["command_line"] == "nodebench run --task cubic_spiral"
