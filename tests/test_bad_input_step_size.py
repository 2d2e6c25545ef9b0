"""A fixed step that does not fit the time span (``step_size=1e-300``: PyTorch's "invalid size, possible
overflow?" as a case's error row; ``1e300``: an empty ``AssertionError``; an SDE step of 1e-9 or a data step of
1e-300: a case that ran until its time limit) is one line and exit code 2 before anything runs, where the task
knows its span, and a clear reason where only the solve does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodebench.cli import main
from nodebench.errors import UserError
from nodebench.methods import get_method


@pytest.mark.parametrize("task, method, hparam, message", [
    ("cubic_spiral", "rk4", "step_size=1e-300", "step_size 1e-300 does not fit the time span of task 'cubic_spiral' "
                                                "(length 1.5): give a step_size from 1.5e-06 (1,000,000 steps) to 1.5"),
    ("cubic_spiral", "rk4", "step_size=1e300", "step_size 1e+300 does not fit the time span of task 'cubic_spiral'"),
    ("g1d", "midpoint", "step_size=1e-300", "step_size 1e-300 does not fit the time span of task 'g1d' (length 1)"),
    ("ou_sde", "sde_direct", "step_size=1e-9", "step_size 1e-09 does not fit the time span of task 'ou_sde'"),
    ("ou_sde", "gq", "data_dt=1e-300", "data_dt 1e-300 does not fit the time span of task 'ou_sde' (length 10)"),
    ("cnf_toy_moons", "rk4", "test_step_sizes=[0.1,1e-300]", "test_step_sizes entry 1e-300 does not fit the time span "
                                                            "of task 'cnf_toy_moons' (length 0.5)"),
    ("trajectories", "euler", "step_size=3", "step_size 3 does not fit the time span of task 'trajectories:"),
])
def test_a_step_that_does_not_fit_the_span_is_refused_before_running(task, method, hparam, message, tmp_path, capsys):
    if task == "trajectories":
        np.savez(tmp_path / "data.npz", t=np.linspace(0.0, 2.0, 5), y=np.zeros((4, 5, 2)))
        task = f"trajectories:{tmp_path / 'data.npz'}"
    code = main(["run", "--task", task, "--method", method, "--hparam", hparam, "--iters", "1", "--no-progress",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_step_that_fits_the_span_is_taken(tmp_path, capsys):
    assert main(["run", "--task", "cubic_spiral", "--method", "rk4,adjoint", "--hparam", "step_size=1.5",
                 "--dry-run", "--out", str(tmp_path / "out")]) == 0  # a whole-span step; adjoint ignores it
    assert "2 case(s)" in capsys.readouterr().out


def test_a_solve_refuses_a_step_too_short_for_its_own_span():
    """Where only the data tell the span (a latent ODE's batch times, a plug-in's task), the solve names it: the
    case's error row then reads so instead of "invalid size, possible overflow?"."""
    y0, t = torch.ones(3, 2), torch.linspace(0.0, 2.0, 5)
    with pytest.raises(UserError, match=r"step_size 1e-300 does not fit this solve's time span \(length 2\): give "
                                        r"a step_size from 2e-06"):
        get_method("euler").make_solve(step_size=1e-300)(lambda s, y: -y, y0, t)
    ys = get_method("euler").make_solve(step_size=3.0)(lambda s, y: -y, y0, t)  # a span shorter than the step
    assert ys.shape == (5, 3, 2) and torch.isfinite(ys).all()
