"""Typed configuration: values are checked for type, range and finiteness before anything runs, keys are
routed to their block, and an unknown key names the nearest valid one."""

from __future__ import annotations

import math
import re

import pytest

from nodebench.cli import main
from nodebench.config import Param, TrainingOptions, infer_param
from nodebench.errors import UserError
from nodebench.runner.settings import case_settings, check_case
from nodebench.methods import get_method
from nodebench.tasks import get_task


@pytest.mark.parametrize("param, good, bad", [
    (Param("hidden", "int", low=1), [1, 3, 2.0], [0, -5, 2.5, "abc", True, math.inf, None]),
    (Param("lr", "float", positive=True), [1e-3, 2], [0, -1.0, math.inf, math.nan, "x", False]),
    (Param("noise", "float", low=0.0), [0, 0.1], [-0.1]),
    (Param("dtype", "str", choices=("float32", "float64")), ["float64"], ["float16", 3]),
    (Param("n_train", "int", low=1, optional=True), [None, 5], [0]),
    (Param("hidden_dims", "ints", positive=True, optional=True), [None, [64], (3, 4), [2.0]],
     [[], [64, -1], [64, 0], [1.5], [True], [math.nan], "64", 64, [[64]]]),
    (Param("step_sizes", "floats", positive=True, empty=True), [[], [0.1, 1]], [[0.1, 0], [math.inf], None, 0.1]),
])
def test_param_accepts_and_refuses(param, good, bad):
    for value in good:
        param.check(value)
    for value in bad:
        with pytest.raises(UserError, match=f"{param.name} must be"):
            param.check(value)


def test_list_params_describe_themselves_and_convert_their_items():
    widths = Param("hidden_dims", "ints", positive=True, optional=True)
    assert widths.describe() == "null or a non-empty list, each item a positive integer"
    assert widths.check((64, 32.0)) == [64, 32] and isinstance(widths.check([2.0])[0], int)
    assert Param("s", "floats", low=0, high=1, empty=True).describe() == "a list, each item a finite number from 0 to 1"


def test_integral_floats_become_ints():
    assert Param("hidden", "int", low=1).check(4.0) == 4 and isinstance(Param("h", "int").check(4.0), int)


def test_types_are_inferred_from_defaults():
    assert infer_param("hidden", 50) == Param("hidden", "int", low=1)
    assert infer_param("augment", 0).low == 0
    assert infer_param("t_end", 1.5).positive and infer_param("weight_decay", 1e-5).low == 0.0
    # null ("all the data") only where the default is null: a task with a number there cannot take it
    assert not infer_param("batch_size", 100).optional and infer_param("data_seed", None).optional
    assert infer_param("n_records", None) == Param("n_records", "int", low=1, optional=True)
    assert infer_param("dtype", "float32").choices == ("float32", "float64")


def test_keys_are_routed_to_their_blocks():
    settings = case_settings({"lr": 0.1, "rtol": 1e-5, "monitor_every": 5, "reg": "speed", "reg_order": 2,
                              "reg_lambda": 1.0}, get_method("adjoint"))
    assert settings.task_hparams == {"lr": 0.1} and settings.solver_options == {"rtol": 1e-5}
    assert settings.monitor_every == 5 and settings.regularizer is not None
    assert TrainingOptions.keys() == ("monitor_every",)


def test_unknown_keys_name_the_nearest_valid_one():
    with pytest.raises(UserError, match=r"unknown hyper-parameter 'hiden' \(did you mean 'hidden'\?\)"):
        check_case(get_task("cubic_spiral"), get_method("rk4"), {"hiden": 3})


def test_ignored_options_are_reported():
    assert check_case(get_task("cubic_spiral"), get_method("rk4"), {"rtol": 1e-5}) == ["rtol"]
    assert check_case(get_task("cubic_spiral"), get_method("adjoint"), {"rtol": 1e-5}) == []


def test_cross_field_rule_n_points():
    with pytest.raises(UserError, match="n_points must be an integer >= 2"):
        get_task("cubic_spiral").hparams({"n_points": 1})


@pytest.mark.parametrize("hparam", ["hidden=abc", "hidden=-5", "hidden=2.5", "step_size=Infinity", "lr=Infinity",
                                    "n_points=1", "t_end=-1", "lr=NaN", "dtype=float16", "iter=3", "rtol=0"])
def test_bad_values_exit_2_with_one_line_before_anything_is_written(hparam, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task", "cubic_spiral", "--method", "rk4", "--hparam", hparam, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nodebench: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("limits, match", [({"iters": 10**20}, "iters must be an integer from 1 to 1e+09"),
                                           ({"budget_s": -1.0}, "budget_s must be a positive finite number")])
def test_case_limits_are_checked_whatever_the_entry_point(limits, match):
    """The CLI caps --iters in its parser; the Python API, paper and suite files reach the same check."""
    import nodebench

    with pytest.raises(UserError, match=re.escape(match)):
        nodebench.run("g1d", "rk4", dry_run=True, **limits)
