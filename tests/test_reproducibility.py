"""A case's record is a function of its configuration and the code on the CPU: two sweeps of the same cases, one
worker at a time and two at once (fresh worker processes, each with its own hash seed), record the same
losses, metrics and counts bit for bit; only times and memory may differ."""

import pandas as pd
import pytest

from nodebench.runner.case import Case
from nodebench.runner.sweep import run_cases

SPIRAL_FAST = {"extrap_t_end": 2.0, "extrap_points": 20}
# a data-free task, and a mini-batch task whose warm-up draws a batch that must be set back
CASES = [Case(task="cubic_spiral", method="euler", iters=3, hparams=SPIRAL_FAST),
         Case(task="digits_ode", method="rk4", iters=3, hparams={"n_train": 200, "n_test": 100})]
COUNTS = ("nfe_", "steps_", "accepted_")


def _outcome(records: pd.DataFrame, curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The columns a rerun must reproduce: status, losses, counts and the tasks' metrics, not times or memory."""
    kept = ["status", "final_loss"] + [c for c in records.columns if c.startswith(COUNTS + ("test_", "train_"))
                                       and not c.endswith("_s")]
    steps = ["loss"] + [c for c in curves.columns if c.startswith(COUNTS)]
    return (records.set_index("case_id")[kept].sort_index(),
            curves.set_index(["case_id", "iteration"])[steps].sort_index())


@pytest.mark.slow
def test_the_same_cases_give_bit_identical_records_one_or_two_workers_at_a_time(tmp_path):
    one = _outcome(*run_cases(CASES, tmp_path / "jobs1", jobs=1, timeout_s=300, progress=False))
    two = _outcome(*run_cases(CASES, tmp_path / "jobs2", jobs=2, timeout_s=300, progress=False))
    assert set(one[0]["status"]) == {"ok"} and len(one[0]) == len(CASES)
    assert {"test_accuracy", "test_mse", "nfe_forward"} <= set(one[0].columns)  # both tasks' metrics are compared
    pd.testing.assert_frame_equal(one[0], two[0], check_exact=True)
    pd.testing.assert_frame_equal(one[1], two[1], check_exact=True)
