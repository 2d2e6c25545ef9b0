"""Counts that a task's ``build`` would refuse are refused before any case runs: one line, exit code 2, nothing
written. ``null`` (all the data, a full batch) is a valid count only where the task's default is ``null`` or its
``param_rules`` say so (``nested_spheres``' full batch); the shared rule used to admit it for every count named
``batch_size``, ``n_train``, … whatever the default, and ``images_*``, the density and OU tasks then crashed
inside the run (``int(None)``: an error row, exit code 0)."""

from __future__ import annotations

import re

import pytest

from nodebench.cli import main
from nodebench.errors import UserError
from nodebench.papers import load_papers
from nodebench.tasks import get_task

load_papers()

CASES = [
    ("images_digits", "batch_size=null", "batch_size must be an integer >= 1"),
    ("cnf_sklearn_iris", "batch_size=null", "batch_size must be an integer >= 1"),
    ("ou_sde", "n_train=null", "n_train must be an integer >= 1"),
    ("digits_ode", "batch_size=null", "batch_size must be an integer >= 1"),
    ("latent_ode_synthetic", "batch_size=null", "batch_size must be an integer >= 1"),
    ("latent_ode_physionet", "batch_size=null", "batch_size must be an integer >= 1"),
    ("latent_ode_synthetic", "n_records=1", "n_records must be an integer from 2 to 100000"),
    ("latent_ode_synthetic", "n_records=null", "n_records must be an integer from 2 to 100000"),
    ("latent_ode_synthetic", "n_obs=49", "n_obs must be an integer from 1 to 48"),
]


@pytest.mark.parametrize("task, hparam, message", CASES)
def test_checked_with_the_hyper_parameters(task, hparam, message):
    key, _, value = hparam.partition("=")
    with pytest.raises(UserError, match=message):
        get_task(task).hparams({key: None if value == "null" else int(value)})


@pytest.mark.parametrize("task, hparam, message", CASES)
def test_cli_refuses_before_any_case_runs(task, hparam, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--task", task, "--method", "direct", "--iters", "1", "--no-progress", "--no-verify",
                 "--out", str(out), "--hparam", hparam]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def _numeric_counts():
    from nodebench.config import OPTIONAL_COUNTS
    from nodebench.tasks import TASKS

    return [(name, key) for name, cls in sorted(TASKS.items()) for key, default in cls.defaults.items()
            if key in OPTIONAL_COUNTS and isinstance(default, int) and key not in (cls.param_rules or {})]


@pytest.mark.parametrize("task, key", _numeric_counts())
def test_null_is_refused_for_every_count_whose_default_is_a_number(task, key):
    with pytest.raises(UserError, match=f"{key} must be an integer"):
        get_task(task).hparams({key: None})


def _integer_hparams():
    from nodebench.tasks import TASKS

    return [(name, key) for name, cls in sorted(TASKS.items()) for key, param in cls().params().items()
            if param.kind == "int" and (param.high is None or param.high >= 2**63)]


@pytest.mark.parametrize("task, key", _integer_hparams())
def test_every_integer_hparam_stops_at_int64(task, key):
    """Whole numbers are torch sizes and seeds, read as int64: ``hidden = 1e30`` passed the check and failed inside
    the case ("Overflow when unpacking long long", an error row, exit code 0)."""
    with pytest.raises(UserError, match=re.escape(f"{key} must be an integer from ") + r"\d+ to 2\*\*63 - 1"
                       + r"( or null)?" + re.escape(f", got {2**63}")):
        get_task(task).hparams({key: 2**63})


def test_a_list_of_widths_stops_at_int64():
    """An item past the bound names it, not "a positive integer" (which 2**63 is)."""
    with pytest.raises(UserError, match=re.escape(f"each item a positive integer <= 2**63 - 1, got [64, {2**63}]")):
        get_task("cnf_toy_moons").hparams({"hidden_dims": [64, 2**63]})


def test_the_largest_data_seed_builds():
    """2**63 - 1, the bound, seeds torch's generator (``data_seed = 2**64`` failed there, an error row)."""
    import torch

    problem = get_task("vehicle").build(seed=0, device=torch.device("cpu"),
                                        hparams={"data_seed": 2**63 - 1, "n_train": 2, "n_test": 1})
    assert problem is not None


def test_a_task_that_declares_null_takes_it():
    """``nested_spheres`` reads ``batch_size = null`` as the full batch (both classes: 2 × n_train)."""
    problem = get_task("nested_spheres").build(seed=0, device="cpu", hparams={"batch_size": None, "n_train": 8,
                                                                            "n_test": 4, "width": 4})
    assert problem.batch_size == 16


def test_physionet_quantization_zero_keeps_the_minutes():
    """The loader documents ``quantization = 0`` as no binning; the task refused it ("a positive number")."""
    assert get_task("latent_ode_physionet").hparams({"quantization": 0.0})["quantization"] == 0.0
    with pytest.raises(UserError, match="quantization"):
        get_task("latent_ode_physionet").hparams({"quantization": -1.0})


#: Values ``Task.hparams`` admitted whose case then failed (an error row, exit code 0): a one-point density grid
#: (no density to draw) or one too large to evaluate after training, an even kernel (``ConcatConv2d`` refused it
#: inside the case), an observation grid of 5 / 1e-300 intervals (an overflow; 5 / 1e-320 is inf) or of 10⁷
#: (a 77 GB allocation).
LATE = [
    ("cnf_toy_moons", {"density_grid": 1}, "density_grid must be 0 (no grid) or an integer from 2 to 1000, got 1"),
    ("cnf_toy_moons", {"density_grid": 10**9}, "density_grid must be an integer from 0 to 1000, got 1000000000"),
    ("cnf_image_digits", {"ksize": 2}, "ksize must be a positive odd integer, got 2"),
    ("vehicle", {"dt": 1e-300}, "horizon / dt = 5e+300 observation intervals; give dt from horizon / 1,000,000"),
    ("vehicle", {"dt": 1e-320}, "horizon / dt = inf observation intervals"),
    ("multi_agent", {"horizon": 1e6}, "horizon / dt = 1e+07 observation intervals; give dt from horizon / "),
    ("latent_ode_synthetic", {"n_records": 10**12}, "n_records must be an integer from 2 to 100000, got 1000000000000"),
]


@pytest.mark.parametrize("task, hparams, message", LATE)
def test_the_api_refuses_what_a_case_would_fail_on(task, hparams, message, tmp_path):
    import nodebench

    with pytest.raises(UserError, match=re.escape(message)):
        nodebench.run(task, ["rk4"], iters=1, hparams=hparams, out=tmp_path / "run", dry_run=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("task, hparams", [("cnf_toy_moons", {"density_grid": 0}),
                                           ("cnf_toy_moons", {"density_grid": 2}), ("cnf_image_digits", {"ksize": 1}),
                                           ("vehicle", {"dt": 2.5}), ("vehicle", {"dt": 5e-6}),
                                           ("latent_ode_synthetic", {"n_records": 100_000}),
                                           ("vehicle", {"data_seed": 2**63 - 1})])
def test_the_bounds_themselves_are_valid(task, hparams):
    assert get_task(task).hparams(hparams).items() >= hparams.items()


@pytest.mark.parametrize("hparams", [{"kl_delay": 1e6}, {"kl_rate": 1e-300}])
def test_a_kl_warm_up_past_the_float_range_starts_at_beta_zero(hparams):
    """β = max(0, 1 − kl_rate^(epoch − kl_delay)): kl_rate^(−10⁶) overflowed Python's float (OverflowError in
    ``build``, an error row); past the float range the power is far above 1, so β is 0."""
    import torch

    problem = get_task("latent_ode_synthetic").build(seed=0, device=torch.device("cpu"),
                                                     hparams={**hparams, "n_records": 8})
    assert problem.kl_coef == 0.0 and problem.beta(10**7) == 1.0
