"""What a GPU step would synchronise on, and every task and method run on CUDA.

On the CPU, a TorchFunctionMode sees what would synchronise a GPU inside a timed step: host reads of tensors
(``.item()``, ``float()``...) and tensors made from host data for an explicit device (a copy from pageable
host memory, which synchronises the stream on CUDA). On CUDA (skipped without it) the same paths run with
torch's sync debug mode, and every task and method trains on the device through the harness.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from nodebench.gq.dopri5 import dopri5
from nodebench.methods import METHODS, get_method
from nodebench.papers import load_papers
from nodebench.regularizers import Regularizer
from nodebench.tasks import get_task
from nodebench.training import train

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
HOST_READS = frozenset({"item", "__float__", "__int__", "__bool__", "__index__", "tolist", "numpy"})


class HostTraffic(TorchFunctionMode):
    """Records host reads of tensors (``reads``) and tensors made from host data with ``device=`` (``copies``)."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.copies: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.reads.append(name)
        elif name in ("tensor", "as_tensor", "from_numpy") and "device" in kwargs and not torch.is_tensor(args[0]):
            self.copies.append(name)
        return func(*args, **kwargs)


def euler(func, y0, t):
    """Fixed-step Euler on the output times with no host read (torchdiffeq's grids compare times on the host)."""
    ys = [y0]
    for i in range(len(t) - 1):
        dt, y = t[i + 1] - t[i], ys[-1]
        f = func(t[i], y)
        ys.append(tuple(a + dt * b for a, b in zip(y, f)) if isinstance(y, tuple) else y + dt * f)
    return tuple(torch.stack(part) for part in zip(*ys)) if isinstance(y0, tuple) else torch.stack(ys)


class Steps:
    """A field counting the solver's attempted steps."""

    def __init__(self, field):
        self.field, self.steps = field, 0

    def __call__(self, t, y):
        return self.field(t, y)

    def callback_step(self, t0, y0, dt):
        self.steps += 1


def mlp(dim: int = 4, device="cpu", dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(dim, 16), nn.Tanh(), nn.Linear(16, dim)).to(device=device, dtype=dtype)


def lean_solve(device):
    net = mlp(device=device)
    field = Steps(lambda t, y: net(y.view(-1, 4)).reshape(-1) * torch.cos(t))
    y0 = torch.linspace(-1.0, 1.0, 8, device=device)

    def solve():
        return dopri5(field, y0, [0.0, 0.4, 1.3, 2.0], rtol=1e-8, atol=1e-8,
                      callbacks={"callback_step": field.callback_step})
    return field, solve


def test_lean_dopri5_reads_the_host_once_per_step_and_copies_nothing_to_the_device():
    """The GQ adjoint's solver: one ``.item()`` per attempted step (three for the initial step), no tensor made
    from host data for the state's device (the field's times, the dense output's weights)."""
    field, solve = lean_solve("cpu")
    with HostTraffic() as traffic:
        solve()
    assert field.steps > 5
    assert traffic.copies == []
    assert traffic.reads == ["item"] * (field.steps + 3)


def reg_problem(device):
    net = mlp(device=device)
    z0 = torch.linspace(-1.0, 1.0, 12, device=device).reshape(3, 4)
    t = torch.linspace(0.0, 1.0, 5, device=device)
    return (lambda t, z: net(z)), z0, t


@pytest.mark.parametrize("kind", ["speed", "rnode"])
def test_a_regularised_solve_reads_nothing_back_to_the_host(kind):
    """R is summed on the device and read by ``value`` only when asked (after a step's clock has stopped)."""
    field, z0, t = reg_problem("cpu")
    solve = Regularizer(kind, order=2, lam=1.0).wrap(euler)
    with HostTraffic() as traffic:
        solve(field, z0, t)
        solve(field, z0, t)
    assert traffic.reads == []
    assert math.isfinite(solve.value) and solve.value > 0
    assert solve.value == pytest.approx(float(solve.penalty.detach()))  # λ = 1: the same sum of the two solves


def test_the_ou_loss_reads_no_time_back_to_the_host():
    """An ODE method on ou_sde (the Wong–Zakai path on the span of the observation times): no host read."""
    load_papers()
    problem = get_task("ou_sde").build(seed=0, device=torch.device("cpu"), hparams=dict(
        n_train=4, n_test=2, paths=3, batch_size=2, n_times=5, t_end=1.0, eval_dt=0.05))
    with HostTraffic() as traffic:
        loss = problem.loss(euler)
    assert traffic.reads == []
    assert math.isfinite(float(loss.detach()))


# -- on CUDA --------------------------------------------------------------------------------------------------

def synchronisations(fn) -> int:
    """The synchronisations torch's sync debug mode reports while ``fn()`` runs."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@CUDA
def test_cuda_lean_dopri5_synchronises_once_per_step():
    field, solve = lean_solve("cuda")
    solve()  # the first solve moves the tableau to the device
    field.steps = 0
    syncs = synchronisations(solve)
    assert field.steps > 5
    assert syncs <= field.steps + 3


@CUDA
def test_cuda_regularised_solve_does_not_synchronise():
    field, z0, t = reg_problem("cuda")
    solve = Regularizer("speed", order=2, lam=1.0).wrap(euler)
    solve(field, z0, t)  # the first call makes the cached constants of the Taylor-mode rules
    solve.reset()
    assert synchronisations(lambda: solve(field, z0, t)) == 0
    assert math.isfinite(solve.value)


#: Small versions of every task that runs without data files, each with a method it can train.
CUDA_TASKS = {
    "cubic_spiral": ({"hidden": 8, "n_points": 8}, "rk4"),
    "cnf_toy_moons": ({"hidden_dims": [8, 8], "n_train": 64, "n_val": 8, "n_test": 32, "batch_size": 32,
                       "eval_size": 32, "test_batch_size": 32, "density_grid": 4, "test_step_sizes": [0.25]}, "rk4"),
    "cnf_sklearn_iris": ({"hidden_dims": [8, 8], "batch_size": 32, "eval_size": 32, "test_step_sizes": [0.5]},
                         "adjoint"),
    "g1d": ({"width": 8}, "gq"),
    "nested_spheres": ({"width": 8, "n_train": 20, "n_test": 5, "batch_size": 16}, "gq_batched"),
    "sines": ({"width": 8, "n_train": 3, "n_test": 2, "n_obs": 4, "irregular": True}, "seminorm"),
    "ou_sde": ({"n_train": 4, "n_test": 2, "paths": 3, "batch_size": 2, "n_times": 5, "t_end": 1.0,
                "eval_dt": 0.05}, "sde_adjoint"),
    "images_digits": ({"n_train": 64, "n_test": 40, "width": 8, "batch_size": 16}, "direct"),
    "vehicle": ({"n_train": 4, "n_test": 2, "hidden": 8}, "snode"),
    "multi_agent": ({"n_train": 4, "n_test": 2, "hidden": 8, "agents": 2}, "euler"),
    "digits_ode": ({"n_train": 60, "n_test": 30, "batch_size": 20, "hidden": 16}, "adjoint"),
    "latent_ode_synthetic": ({"n_records": 24, "n_channels": 4, "n_obs": 6, "batch_size": 6, "eval_batch_size": 10,
                              "eval_tol": 1e-6, "latent_dim": 4, "rec_dim": 6, "gru_units": 8, "rec_to_gen_units": 8,
                              "dynamics_units": 8}, "rk4"),
    "cnf_image_digits": ({"n_train": 64, "n_test": 24, "channels": 8, "batch_size": 32, "eval_size": 24,
                          "test_batch_size": 24}, "rk4"),
}
#: A small ODE task for every ODE method; SDE methods on ou_sde.
ODE_CASE = ("cubic_spiral", {"hidden": 8, "n_points": 8})
SDE_CASE = ("ou_sde", CUDA_TASKS["ou_sde"][0])
SOLVER = {"rtol": 1e-4, "atol": 1e-4, "step_size": 0.25}


def train_on(device: str, task: str, hparams: dict, method: str, **kwargs):
    load_papers()
    method = get_method(method)
    problem = get_task(task).build(seed=0, device=torch.device(device), hparams=hparams)
    options = {k: v for k, v in SOLVER.items() if k in method.accepts}
    result = train(problem, method, device=torch.device(device), iters=2, warmup=1, solver_options=options,
                   **kwargs)
    return problem, result


def check_cuda_result(problem, result) -> None:
    assert result.iters == 2 and result.mem_source == "cuda_allocated"
    assert result.event_s is not None and result.event_s > 0
    assert result.peak_mem_bytes is not None and result.peak_mem_forward_bytes is not None
    assert all(p.device.type == "cuda" for p in problem.model.parameters())
    assert all(math.isfinite(v) for v in result.metrics.values())


@CUDA
@pytest.mark.parametrize("task", sorted(CUDA_TASKS))
def test_cuda_every_offline_task_trains_and_evaluates(task):
    hparams, method = CUDA_TASKS[task]
    check_cuda_result(*train_on("cuda", task, hparams, method))


@CUDA
@pytest.mark.parametrize("method", sorted(METHODS))
def test_cuda_every_method_trains(method):
    task, hparams = SDE_CASE if METHODS[method].sde else ODE_CASE
    check_cuda_result(*train_on("cuda", task, hparams, method))


@CUDA
@pytest.mark.parametrize("kind", ["speed", "rnode"])
def test_cuda_regularised_training(kind):
    problem, result = train_on("cuda", *ODE_CASE, "adjoint", regularizer=Regularizer(kind, lam=0.1))
    check_cuda_result(problem, result)
    assert all(math.isfinite(row[7]) for row in result.rows)  # the regulariser column, read after each step
