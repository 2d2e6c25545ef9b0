"""The lockstep barrier between the two workers of an A/B pair (nodebench/runner/lockstep.py)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from nodebench.runner import lockstep
from nodebench.runner.case import Case
from nodebench.runner.lockstep import Lockstep
from nodebench.runner.sweep import run_case_process


def sides() -> tuple[Lockstep, Lockstep]:
    (a, b) = lockstep.pipes()
    return Lockstep(*a), Lockstep(*b)


def test_neither_side_passes_a_barrier_before_the_other_reaches_it():
    """Side B is slower (it sleeps before each barrier); side A must wait for it at every barrier: A passes
    barrier i only after B arrived there, and the other way round."""
    a, b = sides()
    times = {"a": [], "b": []}

    def run(name, side, pause):
        for _ in range(5):
            time.sleep(pause)
            arrived = time.monotonic()
            side.wait()
            times[name].append((arrived, time.monotonic()))

    threads = [threading.Thread(target=run, args=("a", a, 0.0)), threading.Thread(target=run, args=("b", b, 0.02))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for (a_arrived, a_passed), (b_arrived, b_passed) in zip(times["a"], times["b"]):
        assert a_passed >= b_arrived and b_passed >= a_arrived  # A, which never sleeps, waited for B
    assert a.barriers == b.barriers == 5
    a.close(), b.close()


def test_a_side_whose_partner_has_ended_goes_on_alone():
    a, b = sides()
    done = threading.Event()

    def partner():
        b.wait(), b.wait()
        b.close()

    thread = threading.Thread(target=partner)
    thread.start()

    def survivor():
        for _ in range(5):
            a.wait()
        done.set()

    threading.Thread(target=survivor, daemon=True).start()
    assert done.wait(timeout=30), "the survivor hung at a barrier of a partner that had ended"
    thread.join()
    assert a.barriers == 2 and not a.active


def test_the_barrier_is_found_in_the_environment_only_when_handed_over():
    assert Lockstep.from_env({}) is None
    barrier = Lockstep.from_env({lockstep.ENV: "7,9"})
    assert (barrier._read, barrier._write) == (7, 9)


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


SPIRAL = {"lr": 0.05}


@pytest.mark.parametrize("partner_method", ["rk4", "no_such_method"])
def test_two_workers_step_in_lockstep_and_a_failed_partner_blocks_nothing(tmp_path, partner_method):
    """Two real worker processes handed the pipes: with a healthy partner every timed step passes a barrier
    (the workers' logs say so); with a partner that fails before training, the other finishes alone. The
    parent keeps no copy of the pipes (else a partner's exit would never end them)."""
    cases = [Case(task="cubic_spiral", method="rk4", iters=4, hparams=SPIRAL),
             Case(task="cubic_spiral", method=partner_method, iters=4, hparams=SPIRAL)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    pipes = lockstep.pipes()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run_case_process, case, folder, env=os.environ | {lockstep.ENV: lockstep.env_value(fds)},
                               pass_fds=fds, timeout_s=300) for case, folder, fds in zip(cases, dirs, pipes)]
        statuses = [future.result() for future in futures]
    assert not any(fd_is_open(fd) for fds in pipes for fd in fds)
    log = next((dirs[0] / "logs").glob("*.log")).read_text()
    if partner_method == "rk4":
        assert statuses == ["ok", "ok"]
        assert "lockstep: 4 barrier(s) passed with the partner" in log, log
    else:
        assert statuses == ["ok", "error"]
        assert "lockstep: 0 barrier(s) passed with the partner" in log, log
