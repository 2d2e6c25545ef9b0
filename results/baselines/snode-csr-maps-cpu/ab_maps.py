"""SNODE's three objective maps (observations, node states, node slopes; one shared c), forward + backward:
the matrix-free ElementMap of commit 363bc42 (einsum / index_select) against the current one (one sparse CSR
product with a held transpose), and the dense matrix, interleaved in one process on one thread.

Vehicle sizes: N = 32 trajectories, D = 6, degree p = 6, Q = 7 nodes per element, float32, E ≈ (T − 1)/p.
Usage (repository root): taskset -c 0 .venv/bin/python results/baselines/snode-csr-maps-cpu/ab_maps.py ROUNDS T...
Prints the median ms per forward + backward of each variant and the ratios."""
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from nodebench.snode import elements as new

OLD_COMMIT = "363bc42"
torch.set_num_threads(1)
N, D, p, Q = 32, 6, 6, 7
dtype = torch.float32


def old_module():
    source = subprocess.run(["git", "show", f"{OLD_COMMIT}:nodebench/snode/elements.py"], capture_output=True,
                            text=True, check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location("old_elements", file.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def workload(module, T, dense=False):
    module.DENSE_COLUMNS = 10**9 if dense else 0
    basis = module.ElementBasis(0.0, 10.0, p, max(1, round((T - 1) / p)))
    t = torch.linspace(0, 10, T, dtype=torch.float64)
    tq, _ = basis.quadrature(Q)
    element = basis.node_elements(Q)
    maps = [basis.value_map(t).to(dtype), basis.value_map(tq, element).to(dtype),
            basis.slope_map(tq, element).to(dtype)]
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(N, basis.n_free, D, dtype=dtype, generator=gen, requires_grad=True)
    gs = [torch.randn(N, m.shape[0], D, dtype=dtype, generator=gen) for m in maps]

    def step():  # as SpectralObjective: obs_map @ z, then the node maps on shared coefficients
        if dense:
            outs = [m @ z for m in maps]
        else:
            c = basis.coefficients(z)
            outs = [maps[0] @ z, maps[1].apply(c), maps[2].apply(c)]
        return torch.autograd.grad(sum((o * g).sum() for o, g in zip(outs, gs)), [z])[0]
    return basis.n_free, step


old = old_module()
rounds = int(sys.argv[1])
for T in map(int, sys.argv[2:]):
    P, step_old = workload(old, T)
    variants = {"old": step_old, "new": workload(new, T)[1]}
    if T <= 2001:
        variants["dense"] = workload(new, T, dense=True)[1]
    ref = step_old()
    for step in variants.values():
        torch.testing.assert_close(step(), ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max()))
    t0 = time.perf_counter()
    step_old()
    n = max(1, int(0.05 / (time.perf_counter() - t0)))
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, step in variants.items():
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            times[k].append((time.perf_counter() - t0) / n * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"T={T:6d} P={P:6d} n={n:3d} rounds={rounds} " + " ".join(f"{k} {v:8.3f} ms" for k, v in med.items())
          + f"  old/new {med['old'] / med['new']:.2f}"
          + (f"  dense/new {med['dense'] / med['new']:.2f}" if "dense" in med else ""), flush=True)
