"""Tests for the ``trajectories:PATH.npz`` task: training on a user's file, controls, and every kind of bad
file being a one-line UserError."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nodebench.errors import UserError
from nodebench.methods import get_method
from nodebench.tasks import get_task
from nodebench.tasks.trajectory import PiecewiseLinearControls
from nodebench.training import train

CPU = torch.device("cpu")
SMALL = {"hidden": 16, "dtype": "float64"}


def test_valid_file_trains_and_reports_test_mse(trajectory_file):
    path = trajectory_file()
    task = get_task(f"trajectories:{path}")
    problem = task.build(seed=0, device=CPU, hparams=SMALL)
    # 6 trajectories, test_fraction 0.2: one held out, five trained on
    assert problem.y_train.shape == (5, 12, 2) and problem.y_test.shape == (1, 12, 2)
    assert problem.u_train.shape == (5, 12, 1) and problem.u_test.shape == (1, 12, 1)
    result = train(problem, get_method("rk4"), device=CPU, iters=3, warmup=0)
    assert result.curves["nfe_forward"] == [4 * 11] * 3
    assert set(result.metrics) == {"test_mse", "train_mse"}
    assert math.isfinite(result.metrics["test_mse"]) and result.metrics["test_mse"] > 0


def test_split_is_seeded(trajectory_file):
    task = get_task(f"trajectories:{trajectory_file()}")
    a, b, c = (task.build(seed=s, device=CPU, hparams=SMALL) for s in (0, 0, 1))
    assert torch.equal(a.y_test, b.y_test)
    assert torch.equal(a.y_train, b.y_train)
    assert len(a.y_train) + len(a.y_test) == 6
    all_trajectories = {tuple(x.flatten().tolist()) for x in torch.cat([a.y_train, a.y_test])}
    assert len(all_trajectories) == 6  # a partition: no trajectory lost or duplicated
    assert not torch.equal(a.y_test, c.y_test)  # seeds 0 and 1 hold out different trajectories
    assert {tuple(x.flatten().tolist()) for x in torch.cat([c.y_train, c.y_test])} == all_trajectories
    # the file and its split are recorded on every row (records' provenance columns)
    assert a.provenance == {"dataset": str(trajectory_file()), "n_train": len(a.y_train), "n_val": 0,
                            "n_test": len(a.y_test), "data_verified": False}


def test_controls_are_fed_to_the_field(trajectory_file, trajectories):
    t, y, u = trajectories()
    with_u = get_task(f"trajectories:{trajectory_file('a.npz', t=t, y=y, u=u)}")
    other_u = get_task(f"trajectories:{trajectory_file('b.npz', t=t, y=y, u=-3 * u + 1)}")
    no_u = get_task(f"trajectories:{trajectory_file('c.npz', t=t, y=y)}")
    problems = [task.build(seed=0, device=CPU, hparams=SMALL) for task in (with_u, other_u, no_u)]
    assert problems[0].field.net[0].in_features == 2 + 1
    assert problems[2].field.net[0].in_features == 2
    # the same initial weights and states, different controls: a different loss
    torch.testing.assert_close(problems[0].field.net[2].weight, problems[1].field.net[2].weight)
    losses = [float(p.loss(get_method("euler").make_solve()).detach()) for p in problems[:2]]
    assert abs(losses[0] - losses[1]) > 1e-6 * abs(losses[0])
    result = train(problems[2], get_method("euler"), device=CPU, iters=1, warmup=0)
    assert math.isfinite(result.metrics["test_mse"])


def test_piecewise_linear_controls():
    t = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    u = torch.tensor([[[0.0], [2.0], [6.0]], [[1.0], [1.0], [-1.0]]], dtype=torch.float64)  # (N=2, T=3, M=1)
    controls = PiecewiseLinearControls(t, u)
    for time, expect in [(0.0, [[0.0], [1.0]]), (0.5, [[1.0], [1.0]]), (1.0, [[2.0], [1.0]]),
                         (2.0, [[4.0], [0.0]]), (3.0, [[6.0], [-1.0]]), (5.0, [[6.0], [-1.0]])]:
        got = controls(torch.tensor(time, dtype=torch.float64))
        torch.testing.assert_close(got, torch.tensor(expect, dtype=torch.float64), msg=f"u({time})")


GOOD_T = np.linspace(0.0, 1.0, 5)
GOOD_Y = np.random.default_rng(0).normal(size=(3, 5, 2))

BAD_FILES = {
    "missing y": dict(t=GOOD_T),
    "missing t": dict(y=GOOD_Y),
    "y is 2-D": dict(t=GOOD_T, y=GOOD_Y[0]),
    "y has the wrong T": dict(t=GOOD_T, y=GOOD_Y[:, :4]),
    "t is 2-D": dict(t=GOOD_T[None], y=GOOD_Y),
    "a single time": dict(t=GOOD_T[:1], y=GOOD_Y[:, :1]),
    "u has the wrong N": dict(t=GOOD_T, y=GOOD_Y, u=np.zeros((2, 5, 1))),
    "u is 2-D": dict(t=GOOD_T, y=GOOD_Y, u=np.zeros((3, 5))),
    "NaN in y": dict(t=GOOD_T, y=np.where(np.arange(30).reshape(3, 5, 2) == 17, np.nan, GOOD_Y)),
    "inf in u": dict(t=GOOD_T, y=GOOD_Y, u=np.full((3, 5, 1), np.inf)),
    "t decreasing": dict(t=GOOD_T[::-1].copy(), y=GOOD_Y),
    "t repeated": dict(t=np.array([0.0, 0.25, 0.25, 0.75, 1.0]), y=GOOD_Y),
    "a single trajectory": dict(t=GOOD_T, y=GOOD_Y[:1]),
    "non-numeric y": dict(t=GOOD_T, y=np.full((3, 5, 2), "a")),
    "no state dimension": dict(t=GOOD_T, y=np.zeros((3, 5, 0))),
    "timedelta times": dict(t=np.arange(5).astype("timedelta64[s]"), y=GOOD_Y),  # NumPy calls it an integer
    "boolean y": dict(t=GOOD_T, y=GOOD_Y > 0),
    "object y": dict(t=GOOD_T, y=np.array([{"a": 1}] * 3, dtype=object)),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_a_user_error(case, trajectory_file):
    path = trajectory_file(**BAD_FILES[case])
    with pytest.raises(UserError) as info:
        get_task(f"trajectories:{path}")
    message = str(info.value)
    assert "\n" not in message and len(message) < 400


def test_missing_file_and_garbage_bytes(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        get_task(f"trajectories:{tmp_path / 'nope.npz'}")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(64) + b"\x00 not a zip archive")
    with pytest.raises(UserError, match=r"not a readable .npz file \(not a zip archive\)"):
        get_task(f"trajectories:{garbage}")
    text = tmp_path / "text.npz"
    text.write_text("t,y\n0,1\n")  # NumPy would call it pickled data
    with pytest.raises(UserError, match=r"not a readable .npz file \(not a zip archive\)"):
        get_task(f"trajectories:{text}")
    with pytest.raises(UserError, match="names no file"):
        get_task("trajectories:")
    with pytest.raises(UserError, match="is a folder; give an .npz file"):
        get_task(f"trajectories:{tmp_path}")


def test_unsigned_times_out_of_order_are_named_as_such(trajectory_file):
    """np.diff wraps around for unsigned integers: [0, 2, 1, ...] passed as increasing, then failed later as
    "times closer than float32's resolution"."""
    path = trajectory_file(t=np.array([0, 2, 1, 3, 4], dtype=np.uint8), y=GOOD_Y)
    with pytest.raises(UserError, match=r"array 't' in .* must be strictly increasing$"):
        get_task(f"trajectories:{path}")
    ok = get_task(f"trajectories:{trajectory_file('ok.npz', t=np.array([0, 2, 3, 7, 9], dtype=np.uint8), y=GOOD_Y)}")
    assert ok.time_span(ok.hparams({})) == 9.0


def test_other_arrays_in_the_file_are_ignored_unread(trajectory_file):
    """An extra object array (metadata a user keeps beside the data) refused the whole file, and every extra
    array was read into memory."""
    path = trajectory_file(t=GOOD_T, y=GOOD_Y, notes=np.array([{"system": "pendulum"}], dtype=object),
                           labels=np.array(["a", "b", "c"]))
    task = get_task(f"trajectories:{path}")
    assert sorted(k for k, v in task.data.items() if v is not None) == ["t", "y"]
    problem = task.build(seed=0, device=CPU, hparams=SMALL)
    assert problem.y_train.shape[1:] == (5, 2)


class _TouchesOnUnpickling:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("where", ["y", "extra"])
def test_a_pickled_array_is_never_unpickled(where, tmp_path):
    marker = tmp_path / "unpickled"
    evil = np.empty(1, dtype=object)
    evil[0] = _TouchesOnUnpickling(marker)
    arrays = {"t": GOOD_T, "y": evil} if where == "y" else {"t": GOOD_T, "y": GOOD_Y, "extra": evil}
    np.savez(tmp_path / "evil.npz", **arrays)
    try:
        get_task(f"trajectories:{tmp_path / 'evil.npz'}")
    except UserError as err:
        assert where == "y" and "object array" in str(err)
    assert not marker.exists()


def test_npy_file_named_npz_is_a_user_error(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, GOOD_Y)
    renamed = path.rename(tmp_path / "data.npz")
    with pytest.raises(UserError, match="single array"):
        get_task(f"trajectories:{renamed}")


def test_bad_hparams_are_user_errors(trajectory_file):
    task = get_task(f"trajectories:{trajectory_file()}")
    with pytest.raises(UserError, match="no hyper-parameter 'width'"):
        task.build(seed=0, device=CPU, hparams={"width": 3})
    with pytest.raises(UserError, match="test_fraction"):
        task.build(seed=0, device=CPU, hparams={"test_fraction": 1.0})
    for fraction, message in ((0, "positive finite"), (-0.5, "positive finite"), (1, "strictly between 0 and 1"),
                              (5, "strictly between 0 and 1")):  # refused by the up-front check, before any run
        with pytest.raises(UserError, match=f"test_fraction must .*{message}"):
            task.hparams({"test_fraction": fraction})
    with pytest.raises(UserError, match="dtype"):
        task.build(seed=0, device=CPU, hparams={"dtype": "float16"})


DTYPE_CASES = {  # valid in float64, not once cast to the float32 default
    "y beyond float32": ({"t": GOOD_T, "y": GOOD_Y * 1e300}, "'y' .* beyond the range of float32"),
    "u beyond float32": ({"t": GOOD_T, "y": GOOD_Y, "u": np.full((3, 5, 1), 1e300)},
                         "'u' .* beyond the range of float32"),
    "t closer than float32 resolution": ({"t": GOOD_T * 1e-320, "y": GOOD_Y},
                                         "'t' .* not strictly increasing once cast to float32"),
}


@pytest.mark.parametrize("case", list(DTYPE_CASES))
def test_values_are_checked_as_the_model_sees_them_in_its_dtype(case, trajectory_file):
    """A file valid in float64 but not in float32 failed only at run time (a diverged row, an assertion)."""
    arrays, message = DTYPE_CASES[case]
    task = get_task(f"trajectories:{trajectory_file(**arrays)}")
    with pytest.raises(UserError, match=message) as info:
        task.hparams({})
    assert "\n" not in str(info.value) and "dtype=float64" in str(info.value)
    assert task.hparams({"dtype": "float64"})["dtype"] == "float64"


def test_a_file_invalid_in_the_model_dtype_is_refused_up_front(trajectory_file, tmp_path, capsys):
    from nodebench.cli import main

    task = f"trajectories:{trajectory_file(t=GOOD_T, y=GOOD_Y * 1e300)}"
    out = tmp_path / "run"
    for extra in (["--dry-run"], ["--out", str(out)]):
        assert main(["run", "--task", task, "--method", "rk4", "--iters", "2", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "beyond the range of float32" in err, err
    assert not out.exists()
