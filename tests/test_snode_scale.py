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
from nodebench.snode import CoordinateDescent, ElementBasis, SnodeOptions, SpectralObjective
from nodebench.snode import elements as elements_module
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


@pytest.mark.parametrize("nodes, ridge, n_times", [
    (None, 1e-8, 301), (60, 1e-8, 301), (None, 0.0, 301),  # fit by elements, node maps, dense fit
    (None, 1e-8, 61), (30, 1e-8, 61),  # small maps, which hold their dense matrices
    (None, 0.0, 61), (None, 0.0, 13),  # a small dense fit: LAPACK gelsd's workspace outweighs the matrix
])
def test_memory_estimate_matches_the_allocated_peak_of_the_set_up(nodes, ridge, n_times):
    """The estimate is within 0.9 and 1.5 times the measured peak (over by up to a third where the node maps'
    construction dominates: it is counted beside both maps, though the second is built while only the first is
    held)."""
    from nodebench.snode.memory import matrix_bytes

    problem, params = _problem(n_times)
    options = SnodeOptions(nodes=nodes, ridge=ridge)
    descent = CoordinateDescent(problem, params, options)
    with AllocatedPeak(CPU) as peak:
        descent.setup()
    parts = matrix_bytes(n_times, 4 * 3, options.degree, options.elements_for(n_times), options.nodes_per_element,
                         4, ridge=ridge)
    assert 0.9 * peak.bytes <= sum(parts.values()) <= 1.5 * peak.bytes, (peak.bytes, parts)


def _svd_fit_peak(monkeypatch, n_times: int, options: SnodeOptions) -> int:
    """The allocated peak of the set-up with the non-CPU path's solve (svd_lstsq, the device decision patched),
    run on the CPU."""
    monkeypatch.setattr(legendre, "minimum_norm_lstsq", legendre.svd_lstsq)
    problem, params = _problem(n_times)
    descent = CoordinateDescent(problem, params, options)
    with AllocatedPeak(CPU) as peak:
        descent.setup()
    return peak.bytes


@pytest.mark.parametrize("n_times, elements", [(301, None), (61, None), (13, None), (301, 10)])
def test_memory_estimate_off_the_cpu_matches_the_allocated_peak_of_the_svd_fit(monkeypatch, n_times, elements):
    """A dense fit off the CPU takes the SVD pseudo-inverse, about twice the CPU solve's temporaries (before, the
    CPU's estimate was 0.56 times this peak at T = 301): within 0.9 and 1.5 times it, as on the CPU; the SVD
    library's own workspace, which the CPU does not show, is allowed for."""
    from nodebench.snode.memory import matrix_bytes

    options = SnodeOptions(ridge=0.0, elements=elements)
    peak = _svd_fit_peak(monkeypatch, n_times, options)
    parts = matrix_bytes(n_times, 4 * 3, options.degree, options.elements_for(n_times), options.nodes_per_element,
                         4, ridge=0.0, device_type="cuda")
    assert 0.9 * peak <= sum(parts.values()) <= 1.5 * peak, (peak, parts)


def test_a_dense_fit_is_checked_against_the_solve_its_device_takes(monkeypatch):
    """With room for the CPU's gelsd fit but not for the SVD's, the CPU case passes and a CUDA one is refused
    (before, every device was checked with the CPU's estimate)."""
    from nodebench.snode import memory

    options = SnodeOptions(ridge=0.0)
    peak = _svd_fit_peak(monkeypatch, 301, options)
    monkeypatch.setattr(memory, "device_memory", lambda device: (peak, "the SVD fit's measured peak"))
    args = (301, 4 * 3, options.degree, options.elements_for(301), options.nodes_per_element, 4)
    assert memory.check_memory(*args, CPU, ridge=0.0) < peak
    with pytest.raises(MemoryError, match="largest: least-squares fit.*set snode_ridge > 0"):
        memory.check_memory(*args, torch.device("cuda"), ridge=0.0)


def test_a_basis_over_the_memory_limit_is_refused_before_any_matrix_is_built(monkeypatch):
    from nodebench.snode import memory

    limit = 2**20
    monkeypatch.setattr(memory, "device_memory", lambda device: (limit, "a 1 MiB test limit"))
    problem, params = _problem(301)
    descent = CoordinateDescent(problem, params, SnodeOptions(nodes=60, ridge=0.0))
    with AllocatedPeak(CPU) as peak, pytest.raises(MemoryError, match="snode_elements") as info:
        descent.setup()
    assert peak.bytes < limit and descent.objective is None
    message = str(info.value)
    assert "\n" not in message and "of a 1 MiB test limit (largest" in message
    assert "largest: least-squares fit" in message and "(E = 50)" in message and "T = 301" in message
    assert "; set snode_ridge > 0 (the fit is dense without it), or lower snode_elements (E = 50)" in message
    assert len(f"SnodeMemoryError: {message}") <= REASON_LIMIT - 25  # room for longer names and counts


def test_a_refusal_names_the_options_that_shrink_its_largest_part(monkeypatch):
    """Many nodes on few elements: the matrix-free node maps are the largest part, and Q, not T, is what to lower;
    a fit with ridge, linear in T, never suggests the ridge."""
    from nodebench.snode import memory

    monkeypatch.setattr(memory, "device_memory", lambda device: (2**20, "a 1 MiB test limit"))
    monkeypatch.setattr(memory, "DENSE_COLUMNS", 0)  # P = 61 maps would hold their matrices: "node maps" largest
    with pytest.raises(memory.SnodeMemoryError) as info:
        memory.check_memory(11, 4, 6, 10, 10**4, 4, CPU, ridge=1e-8)
    message = str(info.value)
    assert "(largest: node maps, " in message
    assert message.endswith("GiB); lower snode_nodes (Q = 10000) or snode_elements (E = 10)")
    with pytest.raises(memory.SnodeMemoryError) as info:
        memory.check_memory(3001, 4, 6, 500, 7, 4, CPU, ridge=1e-8)
    message = str(info.value)
    assert "(largest: least-squares fit, " in message and "snode_ridge" not in message
    assert message.endswith("GiB); lower snode_elements (E = 500), snode_degree (p = 6) or T = 3001 observation times")


def test_an_absurd_element_count_is_an_oom_row_that_says_what_to_lower(tmp_path):
    """``--hparam snode_elements=1000000 --hparam snode_ridge=0`` asks for hundreds of terabytes (a dense fit,
    E² entries): a recorded ``oom`` case whose reason gives the estimate and the options to lower, not the
    allocator's failure on the first map."""
    t = np.linspace(0.0, 10.0, 101)
    y = np.cumsum(np.ones((2, 101, 1)), axis=1) * 0.01
    np.savez(tmp_path / "data.npz", t=t, y=y)
    case = Case(task=f"trajectories:{tmp_path / 'data.npz'}", method="snode", iters=1,
                hparams={"snode_elements": 10**6, "snode_ridge": 0.0})
    (tmp_path / "out").mkdir()
    row = run_case(case, tmp_path / "out")
    assert row["status"] == "oom"
    assert row["reason"].startswith("SnodeMemoryError: SNODE's matrices need ~")
    assert "largest: least-squares fit" in row["reason"] and "snode_elements (E = 1000000)" in row["reason"]
    assert row["reason"].endswith("or T = 101 observation times")
    assert "; set snode_ridge > 0 (the fit is dense without it), or lower snode_elements (E = 1000000)" in row["reason"]


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


def _dense_reference(basis, t, element=None, slope=False):
    """M (T, P) straight from (M2)/(M3) and the continuity recurrence (M5), one element and coefficient at a time:
    the dense matrices SNODE trained with before its maps were matrix-free, as an independent oracle."""
    p, n_elem = basis.degree, basis.elements
    g = torch.zeros(n_elem, p + 1, basis.n_free, dtype=D64)
    g[0, 0, 0] = 1.0
    for e in range(n_elem):
        for k in range(1, p + 1):
            g[e, k, 1 + e * p + k - 1] = 1.0
        if e:
            signs = torch.tensor([(-1.0) ** k for k in range(1, p + 1)], dtype=D64)
            g[e, 0] = g[e - 1, 0] + g[e - 1, 1:].sum(0) - (signs[:, None] * g[e, 1:]).sum(0)
    idx, tau = basis.locate(t, element)
    local = legendre.legendre_basis_derivative(tau, p) * (2 / basis.width) if slope else legendre.legendre_basis(tau, p)
    return torch.stack([local[i] @ g[int(idx[i])] for i in range(len(idx))])


def _mlp(dim):
    with torch.random.fork_rng():  # the same weights on every call, the global generator left as it was
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(dim, 8), torch.nn.Tanh(), torch.nn.Linear(8, dim)).double()
    return net, lambda t, x: net(x)


@pytest.mark.parametrize("elements, degree, nodes, n_times, rule", [
    (1, 5, 6, 11, "legendre"), (1, 3, 5, 4, "lobatto"), (4, 3, 4, 13, "legendre"), (7, 2, 3, 40, "lobatto"),
    (12, 6, 9, 61, "legendre"),
])
@pytest.mark.parametrize("dense_columns", [0, 10**9])  # both of ElementMap's branches: matrix-free, dense
def test_matrix_free_maps_equal_the_dense_matrices(elements, degree, nodes, n_times, rule, dense_columns,
                                                   monkeypatch):
    """States, slopes and observation values of the maps (ElementMap, matrix-free or holding a small map's
    matrix), the objective J and its gradients in z and θ equal those of the dense matrices to round-off, for
    random z (float64)."""
    monkeypatch.setattr(elements_module, "DENSE_COLUMNS", dense_columns)
    gen = torch.Generator().manual_seed(elements * 100 + degree)
    basis = ElementBasis(0.5, 2.5, degree, elements)
    t = torch.cat([torch.tensor([0.5, 2.5], dtype=D64), 0.5 + 2 * torch.rand(n_times - 2, generator=gen, dtype=D64)])
    t[2:2 + min(elements - 1, n_times - 2)] = 0.5 + basis.width * torch.arange(1, min(elements, n_times - 1))
    y = torch.randn(3, n_times, 2, generator=gen, dtype=D64)
    net, field = _mlp(2)
    objective = SpectralObjective(field, basis, t, y, nodes_per_element=nodes, rule=rule)
    assert all((m.matrix is not None) == (dense_columns > 0)
               for m in (objective.obs_map, objective.node_values, objective.node_slopes))
    tq, w = basis.quadrature(nodes, rule)
    element = basis.node_elements(nodes)
    m, v = _dense_reference(basis, t), _dense_reference(basis, tq, element)
    s = _dense_reference(basis, tq, element, slope=True)
    z = torch.randn(3, basis.n_free, 2, generator=gen, dtype=D64, requires_grad=True)
    states, slopes = objective.nodes(z)
    scale = float(s.abs().max() * z.detach().abs().max())
    torch.testing.assert_close(objective.obs_map @ z, m @ z, rtol=1e-12, atol=1e-13 * scale)
    torch.testing.assert_close(states, v @ z, rtol=1e-12, atol=1e-13 * scale)
    torch.testing.assert_close(slopes, s @ z, rtol=1e-12, atol=1e-13 * scale)
    lam = torch.randn(3, elements * nodes, 2, generator=gen, dtype=D64)
    j = objective.data_loss(z) + objective.penalty(objective.residual(z), 0.7, lam)
    r = s @ z - field(tq, v @ z)
    j_dense = (((m @ z - y) ** 2).mean() + (0.7 * (w[:, None] * r * r) + w[:, None] * lam * r).sum() / 6)
    grads = torch.autograd.grad(j, [z, *net.parameters()])
    grads_dense = torch.autograd.grad(j_dense, [z, *net.parameters()])
    torch.testing.assert_close(j, j_dense, rtol=1e-12, atol=0)
    for grad, grad_dense in zip(grads, grads_dense):
        torch.testing.assert_close(grad, grad_dense, rtol=1e-11, atol=1e-12 * float(grad_dense.abs().max()))


def test_a_small_map_is_one_dense_product_and_a_large_one_stays_matrix_free():
    """At the paper's sizes (P ≤ DENSE_COLUMNS: vehicle at horizon 10 has P = 103) a map holds its dense matrix,
    equal to the oracle's, and applies it as one product, without the matrix-free steps' cumulative sum (M5),
    1.5× slower there (the objective's maps, one core); past the threshold it holds none (memory O(T·p), not O(T·P))."""
    from torch.profiler import profile

    t = torch.linspace(0.0, 10.0, 101, dtype=D64)
    small = ElementBasis(0.0, 10.0, 6, 17)
    large = ElementBasis(0.0, 10.0, 6, elements_module.DENSE_COLUMNS // 6 + 1)
    assert small.n_free <= elements_module.DENSE_COLUMNS < large.n_free
    small_map = small.value_map(t)
    torch.testing.assert_close(small_map.matrix, _dense_reference(small, t), rtol=0, atol=1e-12)
    assert small_map.to(torch.float32).matrix.dtype == torch.float32
    assert large.value_map(t).matrix is None
    z = torch.randn(4, small.n_free, 3, dtype=D64, requires_grad=True)
    with profile() as prof:
        torch.autograd.grad((small_map @ z).sum(), [z])
    names = {event.key for event in prof.key_averages()}
    assert "aten::cumsum" not in names and "aten::matmul" in names, sorted(names)
    with pytest.raises(ValueError, match="P = 103"):
        small_map @ z[:, 1:]


def test_a_matrix_free_map_is_one_sparse_product_whose_gradient_uses_the_held_transpose(monkeypatch):
    """Matrix-free (P > DENSE_COLUMNS): a map, gathered (observations) or element by element (nodes), is one sparse
    CSR product over all trajectories and dimensions (the objective's maps 1.5× faster than with the batched einsum
    and index_select gather at T = 2001, the observation map alone 2.5×); its gradient is the product with the held
    Sᵀ, without autograd's sort and conversion of S on every backward (1.2× the whole)."""
    from torch.profiler import profile

    monkeypatch.setattr(elements_module, "DENSE_COLUMNS", 0)
    basis = ElementBasis(0.0, 10.0, 3, 8)
    tq, _ = basis.quadrature(4)
    node_map = basis.value_map(tq, basis.node_elements(4))
    obs_map = basis.value_map(torch.linspace(0.0, 10.0, 30, dtype=D64))
    z = torch.randn(5, basis.n_free, 2, dtype=D64, requires_grad=True)
    with profile() as prof:
        torch.autograd.grad((node_map @ z).sum() + (obs_map @ z).sum(), [z])
    counts = {event.key: event.count for event in prof.key_averages()}
    assert counts.get("_SparseProduct") == counts.get("_SparseProductBackward") == 2, sorted(counts)
    slow = {"aten::index_select", "aten::index_add_", "aten::sort", "aten::_to_sparse_csr", "aten::_to_sparse_csc"}
    assert not slow & set(counts), sorted(counts)


@pytest.mark.parametrize("slope, nodes, batch", [(False, False, ()), (True, True, (3,)), (False, True, (2, 3))])
def test_the_sparse_products_gradient_is_the_dense_matrix_transposed(slope, nodes, batch, monkeypatch):
    """The CSR path's gradient in z, for any upstream gradient g, is Mᵀ g of the dense oracle to 1e-12 in float64
    (times on element boundaries and at the ends, Gauss–Lobatto nodes at τ = ±1 taking their own element's slope,
    no, one and two batch dimensions); in float32 (the map's ``to``) the same to float32 round-off; and building the
    map raises none of torch's sparse-CSR warnings (shown on every call here, not once per process)."""
    import warnings

    monkeypatch.setattr(elements_module, "DENSE_COLUMNS", 0)
    gen = torch.Generator().manual_seed(len(batch))
    basis = ElementBasis(0.5, 2.5, 4, 6)
    if nodes:  # Gauss–Lobatto: a node on each boundary of every element
        t, _ = basis.quadrature(5, "lobatto")
        element = basis.node_elements(5)
    else:  # every boundary, both ends, random times
        boundaries = 0.5 + basis.width * torch.arange(7, dtype=D64)
        t, element = torch.cat([boundaries, 0.5 + 2 * torch.rand(20, generator=gen, dtype=D64)]), None
    warn_always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            the_map = (basis.slope_map if slope else basis.value_map)(t, element)
            single = the_map.to(torch.float32)
    finally:
        torch.set_warn_always(warn_always)
    assert the_map.matrix is None
    m = _dense_reference(basis, t, element, slope)
    z = torch.randn(*batch, basis.n_free, 2, generator=gen, dtype=D64, requires_grad=True)
    g = torch.randn(*batch, len(t), 2, generator=gen, dtype=D64)
    (grad,) = torch.autograd.grad((the_map @ z * g).sum(), [z])
    expected = m.T @ g
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12 * float(expected.abs().max()))
    z32 = z.detach().float().requires_grad_(True)
    (grad32,) = torch.autograd.grad((single @ z32 * g.float()).sum(), [z32])
    assert grad32.dtype == torch.float32
    torch.testing.assert_close(grad32, expected.float(), rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("dense_columns", [0, 10**9])  # both of ElementMap's branches: sparse CSR, dense
def test_a_deep_copied_objective_is_independent_and_gives_the_same_loss_and_gradient(dense_columns, monkeypatch):
    """``copy.deepcopy`` of an objective (a trainer's snapshot) copies its maps: torch refuses to deep-copy a
    sparse CSR tensor ("Cannot access storage of SparseCsrTensorImpl"), which the matrix-free maps hold; the copy
    gives the same J and gradient, and its maps' tensors share no memory with the original's."""
    import copy

    monkeypatch.setattr(elements_module, "DENSE_COLUMNS", dense_columns)
    problem, _ = _problem(31)
    basis = ElementBasis(0.0, 10.0, degree=3, elements=10)
    objective = SpectralObjective(problem.field, basis, problem.t, problem.y_train, nodes_per_element=4)
    assert (objective.obs_map.matrix is None) == (dense_columns == 0)
    copied = copy.deepcopy(objective)
    z = basis.fit(problem.t, problem.y_train, ridge=1e-8).requires_grad_(True)

    def loss_and_gradient(obj):
        j = obj.data_loss(z) + obj.penalty(obj.residual(z), 0.5, None)
        return (j, *torch.autograd.grad(j, [z]))
    torch.testing.assert_close(loss_and_gradient(copied), loss_and_gradient(objective), rtol=0, atol=0)
    maps = copied.node_slopes, objective.node_slopes
    assert maps[0].basis is not maps[1].basis and (maps[0].matrix is None) == (maps[1].matrix is None)
    for name in ("sparse", "sparse_transpose"):
        parts = [(getattr(m, name).crow_indices(), getattr(m, name).col_indices(), getattr(m, name).values())
                 for m in maps]
        for mine, theirs in zip(*parts, strict=True):
            assert torch.equal(mine, theirs) and mine.data_ptr() != theirs.data_ptr()


def test_training_follows_the_dense_loss_curve(monkeypatch):
    """A whole SNODE run (fit, 12 iterations of both blocks, the augmented variant's dual updates) with the
    matrix-free maps gives the loss curve and weights of the same run on the dense matrices, to round-off."""
    from nodebench.snode import coordinate_descent

    monkeypatch.setattr(elements_module, "DENSE_COLUMNS", 0)  # P = 33 would hold the dense matrices

    class DenseObjective(SpectralObjective):
        def __init__(self, field, basis, t_obs, y_obs, *, nodes_per_element, rule):
            super().__init__(field, basis, t_obs, y_obs, nodes_per_element=nodes_per_element, rule=rule)
            element = basis.node_elements(nodes_per_element)
            self.obs_map = _dense_reference(basis, t_obs)
            self.dense_nodes = (_dense_reference(basis, self.t_nodes, element),
                                _dense_reference(basis, self.t_nodes, element, True))

        def nodes(self, z):
            return self.dense_nodes[0] @ z, self.dense_nodes[1] @ z

    def run():
        net, field = _mlp(2)
        t = torch.linspace(0.0, 3.0, 31, dtype=D64)
        y = torch.stack([torch.sin(2 * t), torch.cos(t)], -1)[None] * torch.tensor([1.0, 0.6], dtype=D64)[:, None, None]
        problem = types.SimpleNamespace(t=t, y_train=y, u_train=None, use_controls=lambda t, u: None, field=field,
                                        lr=1e-2, weight_decay=0.0)
        options = SnodeOptions(degree=4, nodes=5, variant="augmented", dual_every=2, dual_tolerance=0.5,
                               weight_steps=3)
        descent = CoordinateDescent(problem, list(net.parameters()), options)
        losses = [float(descent.step(lambda: None)) for _ in range(12)]
        return losses, descent.z.detach(), [q.detach() for q in net.parameters()], descent.dual.accepted

    losses, z, weights, accepted = run()
    monkeypatch.setattr(coordinate_descent, "SpectralObjective", DenseObjective)
    dense_losses, dense_z, dense_weights, dense_accepted = run()
    assert accepted == dense_accepted >= 1 and len(set(losses)) == len(losses)  # dual steps taken, J moving
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(dense_losses), rtol=1e-10, atol=0)
    torch.testing.assert_close(z, dense_z, rtol=1e-10, atol=1e-12)
    for weight, dense_weight in zip(weights, dense_weights):
        torch.testing.assert_close(weight, dense_weight, rtol=1e-10, atol=1e-12)


def test_training_maps_take_memory_linear_in_t_not_a_dense_matrix():
    """The objective's maps and a gradient of J over 2001 observations (E = 333, 7 nodes each: dense node maps
    and observation map of 2331 and 2001 rows by P = 1999) take less than one dense T × P float32 matrix."""
    problem, params = _problem(2001, n_traj=2, dim=2)
    options = SnodeOptions()
    basis = ElementBasis(0.0, 10.0, options.degree, options.elements_for(2001))
    z = torch.zeros(2, basis.n_free, 2, requires_grad=True)
    with AllocatedPeak(CPU) as peak:
        objective = SpectralObjective(problem.field, basis, problem.t, problem.y_train,
                                      nodes_per_element=options.nodes_per_element)
        j = objective.data_loss(z) + objective.penalty(objective.residual(z), 0.1, None)
        torch.autograd.grad(j, [z, *params])
    assert peak.bytes < 4 * 2001 * basis.n_free, peak.bytes


@pytest.mark.parametrize("elements, degree, n_times, ridge, gap", [
    (1, 5, 11, 1e-8, False), (4, 3, 13, 1e-8, False), (7, 2, 40, 1e-3, False), (12, 6, 61, 1e-8, False),
    (6, 3, 40, 1e-8, True),  # elements 2 and 3 hold no observation: only the ridge determines their coefficients
])
def test_the_fit_by_elements_equals_the_dense_solve(elements, degree, n_times, ridge, gap):
    """The fit (M6) with ridge, element by element, gives the stacked dense system's solution (the same
    objective to round-off, z to the system's condition number times the unit round-off), for times anywhere
    in the horizon, on element boundaries and at its ends, several trajectories, float64 and float32."""
    gen = torch.Generator().manual_seed(elements * 10 + degree)
    basis = ElementBasis(0.5, 2.5, degree, elements)
    t = 0.5 + 2 * torch.rand(n_times, generator=gen, dtype=D64)
    t[:3] = torch.tensor([0.5, 2.5, 0.5 + basis.width], dtype=D64)
    if gap:
        t = t[(t < 0.5 + 2 * basis.width) | (t >= 0.5 + 4 * basis.width)]
    y = torch.randn(3, len(t), 2, generator=gen, dtype=D64)
    m = basis.values(t)
    stacked = torch.cat([m, ridge ** 0.5 * torch.eye(basis.n_free, dtype=D64)])
    condition = float(torch.linalg.cond(stacked))
    expected = legendre.least_squares(m, y, ridge)
    z = basis.fit(t, y, ridge)

    def objective(z):
        return float(((m @ z - y) ** 2).sum() + ridge * (z ** 2).sum())

    assert objective(z) == pytest.approx(objective(expected), rel=1e-12)
    torch.testing.assert_close(z, expected, rtol=0, atol=100 * condition * 2.2e-16 * float(expected.abs().max()))
    z32 = basis.fit(t.float(), y.float(), ridge)  # solved in float64, returned in float32
    assert z32.dtype == torch.float32
    torch.testing.assert_close(z32, basis.fit(t.float().double(), y.float().double(), ridge).float())


def test_the_fit_with_ridge_takes_memory_linear_in_t_not_a_dense_matrix():
    """2001 observations of 4 series, E = 333: the fit element by element takes less than a quarter of one dense
    T × P float64 matrix (the dense solve held three: the map, its stack on the ridge's rows, the solver's copy)."""
    options = SnodeOptions()
    basis = ElementBasis(0.0, 10.0, options.degree, options.elements_for(2001))
    t = torch.linspace(0.0, 10.0, 2001, dtype=D64)
    y = torch.stack([torch.sin(t), torch.cos(3 * t)], -1).expand(2, -1, -1)
    with AllocatedPeak(CPU) as peak:
        z = basis.fit(t, y, ridge=1e-8)
    assert peak.bytes < 2 * 2001 * basis.n_free, peak.bytes
    assert float(((basis.value_map(t) @ z - y) ** 2).mean()) < 1e-12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dense_columns", [0, 10**9])  # both of ElementMap's branches: sparse CSR, dense
def test_the_fit_by_elements_and_the_maps_on_cuda_equal_the_cpu_ones(dense_columns, monkeypatch):
    monkeypatch.setattr(elements_module, "DENSE_COLUMNS", dense_columns)
    cuda = torch.device("cuda")
    basis, t, y = _gap_data()
    cuda_basis, cuda_t, cuda_y = _gap_data(cuda)
    z = basis.fit(t, y, ridge=1e-6)
    cuda_z = cuda_basis.fit(cuda_t, cuda_y, ridge=1e-6)
    torch.testing.assert_close(cuda_z.cpu(), z, rtol=0, atol=1e-10)
    tq, _ = basis.quadrature(5)
    element = basis.node_elements(5)
    for cpu_map, cuda_map in ((basis.value_map(t), cuda_basis.value_map(cuda_t)),
                              (basis.slope_map(tq, element), cuda_basis.slope_map(tq.to(cuda), element.to(cuda)))):
        assert (cuda_map.matrix is None) == (dense_columns == 0)
        torch.testing.assert_close((cuda_map @ cuda_z).cpu(), cpu_map @ z, rtol=1e-12, atol=1e-12)
        for dtype in (D64, torch.float32):  # the gradient (the held transpose's product), also in the map's `to`
            z_in, cuda_z_in = (w.detach().to(dtype).requires_grad_(True) for w in (z, cuda_z))
            (grad,) = torch.autograd.grad((cpu_map.to(dtype) @ z_in).pow(2).sum(), [z_in])
            (cuda_grad,) = torch.autograd.grad((cuda_map.to(dtype) @ cuda_z_in).pow(2).sum(), [cuda_z_in])
            tolerance = {"rtol": 1e-12, "atol": 1e-11} if dtype == D64 else {}
            torch.testing.assert_close(cuda_grad.cpu(), grad, **tolerance)
