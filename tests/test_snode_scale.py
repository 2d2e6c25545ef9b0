"""SNODE at scale and off the CPU: the dense matrices' memory is estimated and refused up front
(:mod:`nodebench.snode.memory`), and the least-squares fit is the minimum-norm solution on every device, also
for a rank-deficient basis (:func:`nodebench.snode.legendre.minimum_norm_lstsq`)."""

from __future__ import annotations

import os
import types

import numpy as np
import pytest
import torch

from nodebench.errors import REASON_LIMIT
from nodebench.harness.memory import AllocatedPeak
from nodebench.runner.case import Case
from nodebench.runner.worker import run_case
from nodebench.snode import CoordinateDescent, ElementBasis, SnodeOptions
from nodebench.snode import legendre

D64 = torch.float64
CPU = torch.device("cpu")


def _gap_data(device=CPU):
    """A 4-element basis whose third element ([2, 3)) holds no observation: without ridge its matrix has rank
    11 of 13, and the fit's coefficients are those of the minimum-norm solution."""
    basis = ElementBasis(0.0, 4.0, degree=3, elements=4, device=device)
    t = torch.cat([torch.linspace(0.0, 1.99, 12, dtype=D64), torch.linspace(3.0, 4.0, 6, dtype=D64)]).to(device)
    y = torch.stack([torch.sin(t), torch.cos(2 * t)], dim=-1)[None].expand(3, -1, -1)  # (N, T, D)
    return basis, t, y


def test_svd_lstsq_gives_gelsd_minimum_norm_solution_of_a_rank_deficient_basis():
    """The solve every non-CPU device uses (torch offers only QR 'gels' there, which fails on this basis),
    run on the CPU against LAPACK's gelsd."""
    basis, t, y = _gap_data()
    m = basis.values(t)
    assert int(torch.linalg.matrix_rank(m)) < basis.n_free
    folded = y[0]
    expected = torch.linalg.lstsq(m, folded, driver="gelsd").solution
    z = legendre.svd_lstsq(m, folded)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-12)
    batched = legendre.svd_lstsq(m.expand(3, -1, -1), y)
    torch.testing.assert_close(batched, expected.expand(3, -1, -1), rtol=0, atol=1e-12)


def test_least_squares_off_the_cpu_never_asks_for_the_full_rank_gels_driver(monkeypatch):
    """The non-CPU branch's logic, on the meta device (shapes only): no QR 'gels' solve, which assumes full
    column rank, for a fit without ridge."""
    drivers = []
    lstsq = torch.linalg.lstsq

    def spy(a, b, *args, driver=None, **kwargs):
        drivers.append(driver)
        return lstsq(a, b, *args, driver=driver, **kwargs)

    monkeypatch.setattr(torch.linalg, "lstsq", spy)
    basis = torch.empty(18, 13, dtype=D64, device="meta")
    for y in (torch.empty(3, 18, 2, dtype=D64, device="meta"), torch.empty(18, 2, dtype=D64, device="meta")):
        assert legendre.least_squares(basis, y, 0.0).shape == (*y.shape[:-2], 13, 2)
    assert "gels" not in drivers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rank_deficient_fit_on_cuda_equals_the_cpu_fit():
    basis, t, y = _gap_data()
    expected = basis.fit(t, y, ridge=0.0)
    cuda_basis, cuda_t, cuda_y = _gap_data(torch.device("cuda"))
    z = cuda_basis.fit(cuda_t, cuda_y, ridge=0.0)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z.cpu(), expected, rtol=0, atol=1e-10)


def _problem(n_times: int, n_traj: int = 4, dim: int = 3):
    field = torch.nn.Linear(dim, dim)
    t = torch.linspace(0.0, 10.0, n_times)
    y = torch.randn(n_traj, n_times, dim, generator=torch.Generator().manual_seed(0))
    problem = types.SimpleNamespace(t=t, y_train=y, u_train=None, use_controls=lambda t, u: None,
                                    field=lambda t, x: field(x), lr=1e-3, weight_decay=0.0)
    return problem, list(field.parameters())


@pytest.mark.parametrize("nodes", [None, 60])  # the fit's temporaries dominate, or the node maps do
def test_memory_estimate_matches_the_allocated_peak_of_the_set_up(nodes):
    from nodebench.snode.memory import matrix_bytes

    problem, params = _problem(301)
    options = SnodeOptions(nodes=nodes)
    descent = CoordinateDescent(problem, params, options)
    with AllocatedPeak(CPU) as peak:
        descent.setup()
    parts = matrix_bytes(301, 4 * 3, options.degree, options.elements_for(301), options.nodes_per_element, 4)
    assert 0.9 * peak.bytes <= sum(parts.values()) <= 1.2 * peak.bytes, (peak.bytes, parts)


def test_a_basis_over_the_memory_limit_is_refused_before_any_matrix_is_built(monkeypatch):
    from nodebench.snode import memory

    limit = 2**20
    monkeypatch.setattr(memory, "device_memory", lambda device: (limit, "a 1 MiB test limit"))
    problem, params = _problem(301)
    descent = CoordinateDescent(problem, params, SnodeOptions(nodes=60))
    with AllocatedPeak(CPU) as peak, pytest.raises(MemoryError, match="snode_nodes") as info:
        descent.setup()
    assert peak.bytes < limit and descent.objective is None
    message = str(info.value)
    assert "\n" not in message and "of a 1 MiB test limit (largest" in message
    assert "largest: node maps" in message and "E = 50)" in message and "T = 301" in message
    assert len(f"SnodeMemoryError: {message}") <= REASON_LIMIT - 25  # room for longer names and counts


def test_an_absurd_element_count_is_an_oom_row_that_says_what_to_lower(tmp_path):
    """``--hparam snode_elements=1000000`` asks for hundreds of terabytes (E² entries): a recorded ``oom`` case
    whose reason gives the estimate and the options to lower, not the allocator's failure on the first map."""
    t = np.linspace(0.0, 10.0, 101)
    y = np.cumsum(np.ones((2, 101, 1)), axis=1) * 0.01
    np.savez(tmp_path / "data.npz", t=t, y=y)
    case = Case(task=f"trajectories:{tmp_path / 'data.npz'}", method="snode", iters=1,
                hparams={"snode_elements": 10**6})
    (tmp_path / "out").mkdir()
    row = run_case(case, tmp_path / "out")
    assert row["status"] == "oom"
    assert row["reason"].startswith("SnodeMemoryError: SNODE's matrices need ~")
    assert "largest: temporaries of the fit" in row["reason"] and "snode_elements (E = 1000000)" in row["reason"]
    assert row["reason"].endswith("(E·Q + T)·(1 + E·p)")


@pytest.mark.parametrize("groups, files, expected", [
    ("0::/job\n", {"job/memory.max": "5000\n", "job/memory.current": "1000\n"}, 4000),
    ("0::/job\n", {"job/memory.max": "max\n", "job/memory.current": "1000\n"}, None),
    ("0::/job\n", {"memory.max": "4096\n", "memory.current": "96\n"}, 4000),  # a container's own group as root
    ("5:cpu:/job\n4:memory:/job\n", {"memory/job/memory.limit_in_bytes": "2048\n",
                                       "memory/job/memory.usage_in_bytes": "4096\n"}, 0),
    ("4:memory:/job\n", {}, None),
])
def test_the_room_under_the_control_groups_memory_limit_is_read_for_v1_and_v2(tmp_path, groups, files, expected):
    from nodebench.snode.memory import _cgroup_room

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "cgroup").write_text(groups)
    assert _cgroup_room(tmp_path, tmp_path / "cgroup") == expected


def test_cpu_memory_is_what_is_available_not_the_total(tmp_path):
    from nodebench.snode.memory import _meminfo_available

    (tmp_path / "meminfo").write_text("MemTotal:       24683664 kB\nMemFree:  1000 kB\nMemAvailable:   2000 kB\n")
    assert _meminfo_available(tmp_path / "meminfo") == 2000 * 1024
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert _meminfo_available(tmp_path / "missing") == total


@pytest.mark.parametrize("rule", ["gauss_legendre_nodes", "gauss_lobatto_nodes"])
def test_a_large_quadrature_rule_takes_linear_memory_and_stays_exact(rule):
    """``snode_nodes=30000`` once built a dense 30000² companion matrix (7 GiB, hours of eigenvalues): the
    rule's memory is O(n), not 8n² bytes (18 MB for these 1500 nodes)."""
    import tracemalloc

    n = 1500
    tracemalloc.start()
    try:
        x, w = getattr(legendre, rule)(n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 8 * n
    assert bool((x[1:] > x[:-1]).all()) and x.shape == w.shape == (n,)
    for power, exact in ((0, 2.0), (2, 2 / 3), (40, 2 / 41)):
        torch.testing.assert_close(float((w * x ** power).sum()), exact, rtol=1e-12, atol=0)
