"""Cost of the total time derivatives d^K z/dt^K behind TayNODE's R_K: Taylor mode
(:func:`nodebench.taylor.ode_derivatives`, ``method="taylor"``) against nested ``torch.func.jvp``
(``method="jvp"``), shared by ``benchmarks/taylor_cost.py`` and the ``taylor_cost`` analysis.

The field is TayNODE's cost benchmark setting: autonomous z' = f(z), an MLP D → hidden → hidden → D with tanh. Per
dimension, order and method, each round times

- unrecorded forward: ``ode_derivatives(f, t, z, K)`` under ``torch.no_grad()``, i.e. z', …, d^K z/dt^K
  alone, what JAX's jitted forward computes (``unrecorded_s``);
- forward: the same call recording the autograd graph (``forward_s``);
- backward: ``torch.autograd.grad(mean((d^K z)²), f.parameters())``, the R_K integrand's gradient,

with :class:`nodebench.harness.Stopwatch` (synchronised on CUDA), per call: with ``min_block`` > 0 each phase is a
block of consecutive calls (``number`` of them, sized from one warm call so that the shortest phase, the unrecorded
forward, lasts ``min_block`` seconds), otherwise one call. Rounds interleave the methods, alternating which runs
first, after one untimed warm-up call each; ratios are medians of per-round ratios.
No method's backward is timed on its own: ``backward_s`` is, per round, the forward+backward block's time less
the forward block's (``total_s`` = ``forward_s`` + ``backward_s`` is the forward+backward block as timed), two
blocks timed apart, so the timing noise of both lands in it and on a busy machine a round's can be negative
(a forward block stalled longer than the backward takes). The samples keep it as measured; the tables
(:func:`cost_table`, :func:`backward_median`) show forward and forward+backward, both timed, and the backward
only where it stands out of that noise (the lower quartile of its rounds above 0: in about three rounds in
four or more, forward+backward took longer than forward), otherwise "within noise" (:data:`WITHIN_NOISE`), never a
negative time. The speed-ups and the figure use only the timed columns.
Nested jvp grows about 3× per order, so once its warm-up call (forward + backward) exceeds ``cap`` seconds
twice in a row (the first call of a new nesting depth can carry one-off costs) it is skipped at that and
every higher order (rows with ``skipped=True``).

Optional method ``"taylor_compiled"``: :func:`nodebench.taylor.compile_derivatives` (the whole derivative
function for one K under ``torch.compile``, traced through the tape once), its first calls compiling it, one
graph per grad mode (``compile_s``, wall seconds of a :class:`~nodebench.harness.Stopwatch`, synchronised on CUDA
at both ends), with ``torch.compile``'s ``compile_mode`` when one is given (``"reduce-overhead"``: CUDA graphs).
JAX's compile time is wall seconds too.
Optional method ``"taylor_fused"``: :func:`nodebench.taylor.compile_grad_and_value`, forward and backward
compiled as one graph (``torch.func.grad_and_value``, the counterpart of JAX's jitted ``value_and_grad``); its
forward (``unrecorded_s`` = ``forward_s``) is :func:`compile_derivatives` under ``torch.no_grad()``, its
forward+backward one call of the compiled gradient (``backward_s`` the difference), as JAX jet's; compiled
with ``compile_mode`` too, ``compile_s`` covering both functions.
Optional method ``"jax_jet"`` (:mod:`nodebench.taylor.jax_jet`, where ``jax`` is importable and has a device
of the field's kind, CPU or GPU): JAX's jet on the same weights, jitted; its warm-up call compiles it
(``compile_s`` of its rows), its forward is a jitted call (``forward_s`` = ``unrecorded_s``) and its
forward+backward a jitted ``value_and_grad`` call (``backward_s`` is the difference), in blocks of ``number``
calls as the others.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from nodebench.harness import Stopwatch
from nodebench.taylor import compile_derivatives, compile_grad_and_value, ode_derivatives
from nodebench.taylor.jax_jet import JaxJet

METHODS = ("taylor", "jvp")
JAX = "jax_jet"
COMPILED = "taylor_compiled"
FUSED = "taylor_fused"
#: the optional methods, each checked for agreement with eager Taylor mode
OPTIONAL = (JAX, COMPILED, FUSED)
#: a table's backward cell where the difference of the two timed blocks is within their noise (:func:`backward_median`)
WITHIN_NOISE = "within noise"


def make_field(dim: int, hidden: int, device: torch.device, dtype: torch.dtype, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, dim)).to(device=device, dtype=dtype)


class Autonomous(nn.Module):
    """The field f(t, z) = net(z) as a module (torchdiffeq's argument order), its parameters ``net``'s."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class CpuClock:
    """A :class:`nodebench.harness.Stopwatch` stand-in timing the process's CPU time (all its threads) on
    the CPU: on a machine shared with other jobs, time spent waiting for a core is not counted."""

    def start(self) -> None:
        self._t0 = time.process_time()

    def stop(self) -> tuple[float, None]:
        return time.process_time() - self._t0, None


def one_call(net: nn.Module, t: torch.Tensor, z: torch.Tensor, order: int, method: str, clock: Stopwatch,
             compiled: Callable | None = None, number: int = 1):
    """(forward s without recording, forward s, backward s, d^K z) per call (``compiled``: the function for
    ``"taylor_compiled"``). Each phase is ``number`` calls in a row timed as one block: forwards under
    ``torch.no_grad()``, as JAX's jitted forward (which keeps no residuals); forwards recording their graph, each
    dropped before the next; forwards each followed by the backward of its graph, as in training. The backward
    is the last block's time less the recorded forward's, as JAX's is, so noise can make it negative (see the
    module docstring)."""
    params = list(net.parameters())

    def derivatives_of(z_):
        if compiled is not None:
            return compiled(t, z_)
        return ode_derivatives(lambda t_, y_: net(y_), t, z_, order, method=method)

    unrecorded, derivatives = _unrecorded_block(derivatives_of, z, clock, number)
    clock.start()
    for _ in range(number):
        derivatives = derivatives_of(z)
    forward, _ = clock.stop()
    del derivatives
    clock.start()
    for _ in range(number):
        derivatives = derivatives_of(z)
        torch.autograd.grad(derivatives[-1].pow(2).mean(), params)
    total, _ = clock.stop()
    # a copy: a compiled function's outputs can live in memory its next call reuses (CUDA graphs)
    return unrecorded / number, forward / number, (total - forward) / number, derivatives[-1].detach().clone()


def fused_call(derivatives_of: Callable, step: Callable, t: torch.Tensor, z: torch.Tensor, clock: Stopwatch,
               number: int = 1):
    """:func:`one_call`'s tuple for ``"taylor_fused"``: ``number`` calls of the compiled derivatives
    ``derivatives_of(t, z)`` under ``torch.no_grad()`` (the forward, recorded or not: the fused step records
    nothing), then ``number`` calls of the compiled gradient ``step(t, z)`` (forward+backward)."""
    forward, derivatives = _unrecorded_block(lambda z_: derivatives_of(t, z_), z, clock, number)
    value = derivatives[-1].clone()
    clock.start()
    for _ in range(number):
        step(t, z)
    total, _ = clock.stop()
    return forward / number, forward / number, (total - forward) / number, value


def _unrecorded_block(derivatives_of: Callable, z: torch.Tensor, clock: Stopwatch, number: int):
    """(seconds, last result) of ``number`` calls of ``derivatives_of(z)`` under ``torch.no_grad()``."""
    with torch.no_grad():
        clock.start()
        for _ in range(number):
            derivatives = derivatives_of(z)
        seconds, _ = clock.stop()
    return seconds, derivatives


def calls_per_block(seconds_per_call: float, min_block: float) -> int:
    """The fewest calls whose block lasts ``min_block`` seconds at ``seconds_per_call`` (at least 1)."""
    if min_block <= 0 or seconds_per_call >= min_block:
        return 1
    return math.ceil(min_block / max(seconds_per_call, 1e-6))  # a call timed at 0 counts as 1 µs


def measure_cost(dims: Sequence[int] = (2, 64), orders: Sequence[int] = tuple(range(1, 9)), *,
                 methods: Sequence[str] = METHODS, hidden: int = 64, batch: int = 256, rounds: int = 7,
                 cap: float = 2.0, dtype: str = "float32", device: str = "cpu", seed: int = 0,
                 cpu_time: bool = False, min_block: float = 0.0, compile_mode: str | None = None,
                 resume: pd.DataFrame | None = None, on_cell: Callable[[pd.DataFrame, dict], None] | None = None,
                 log: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """Samples (one row per dim, K, method and round: unrecorded_s, forward_s, backward_s, total_s, seconds per
    call; ``number``, the calls per timed block; skipped) and the agreement max|Δ|/max|d^K z| between the methods
    per (dim, K) (and, keyed (dim, K, "jax_jet"), JAX jet's against Taylor mode). ``cpu_time`` (CPU only): time
    the process's CPU seconds instead of wall time. ``min_block`` (seconds): time each phase as a block of
    consecutive calls, as many as make one warm call's unrecorded forward, the shortest phase, last
    ``min_block`` (0: one call per block), so that sub-millisecond calls are timed warm and above the clock's
    resolution, and a block's first call, which runs with caches another method's turn left cold, weighs the
    same in every phase and method. ``compile_mode``: ``torch.compile``'s ``mode`` for ``"taylor_compiled"`` and
    ``"taylor_fused"`` (None: the compiling functions' own settings).
    ``resume``: samples of an earlier run with the same settings; its (dim, K) cells are not measured again, and a
    method it skipped stays skipped at higher orders. ``on_cell(samples, agreement)`` is called with each newly
    measured cell's rows and agreement (what a script writes as it goes); the return value holds the new cells."""
    if not (min_block >= 0 and math.isfinite(min_block)):
        raise ValueError(f"min_block must be a finite number of seconds ≥ 0, got {min_block!r}")
    device_, dtype_ = torch.device(device), getattr(torch, dtype)
    if cpu_time and device_.type != "cpu":
        raise ValueError("cpu_time needs device cpu")
    clock = CpuClock() if cpu_time else Stopwatch(device_)
    compile_clock = Stopwatch(device_)  # wall seconds, synchronised on CUDA, whatever ``clock`` is
    rows, agreement = [], {}
    tiny = torch.zeros(1, 1, device=device_, dtype=dtype_)  # torch.func.jvp's first call loads its decompositions
    ode_derivatives(lambda t_, z_: torch.tanh(z_), tiny[0, 0], tiny, 2, method="jvp")
    for dim in dims:
        net = make_field(dim, hidden, device_, dtype_, seed)
        z = torch.randn(batch, dim, device=device_, dtype=dtype_)
        t = torch.zeros((), device=device_, dtype=dtype_)
        active = list(methods)
        for order in orders:
            earlier = None if resume is None else resume[(resume.dim == dim) & (resume.K == order)]
            if earlier is not None and not earlier.empty:  # measured by the run being resumed
                active = [m for m in active if m not in set(earlier[earlier.skipped].method)]
                if log:
                    log(f"dim {dim:>3} K {order}: already measured, kept")
                continue
            cell = len(rows)
            values, jax_runner, compiled, compile_times, numbers = {}, None, {}, {}, {}

            def timed(method: str, number: int = 1):
                """(unrecorded s, forward s, backward s, d^K z) per call of ``method``, ``number`` calls a block."""
                if method == JAX:  # its forward keeps no residuals: recorded or not, the same call
                    forward, total, value = jax_runner.time_call(z, number)
                    return forward, forward, total - forward, value
                if method == FUSED:
                    return fused_call(*compiled[FUSED], t, z, clock, number)
                return one_call(net, t, z, order, method, clock, compiled.get(method), number)

            for method in list(active):  # untimed warm-up; the cap check
                if method == JAX:
                    jax_runner = JaxJet(net, order, timer=time.process_time if cpu_time else time.perf_counter)
                    compile_times[method] = jax_runner.compile(z)
                    values[method] = timed(method)[3]
                elif method in (COMPILED, FUSED):  # compile time in wall seconds: Inductor compiles in workers
                    settings = {"mode": compile_mode} if compile_mode else {}
                    derivatives = compile_derivatives(lambda t_, y_: net(y_), order, **settings)
                    compiled[method] = derivatives if method == COMPILED else (
                        derivatives, compile_grad_and_value(Autonomous(net), order, **settings))
                    compile_clock.start()  # every graph compiles: both grad modes, or forward and step
                    values[method] = timed(method)[3]
                    compile_times[method] = compile_clock.stop()[0]
                else:
                    unrecorded, forward, backward, values[method] = timed(method)
                    if method != "taylor" and forward + backward > cap:  # a one-off first-call cost? try once more
                        unrecorded, forward, backward, values[method] = timed(method)
                    if method != "taylor" and forward + backward > cap:
                        active.remove(method)
                        if log:
                            log(f"dim {dim:>3} K {order}: {method} took {forward + backward:.2f} s > cap {cap:g} s; "
                                "skipped from here on")
                        continue
                    if unrecorded >= min_block:  # every phase already a block of its own
                        continue
                if min_block > 0:  # one more call, warm (compiled methods: after compiling), sizes the blocks
                    unrecorded, _, _, _ = timed(method)
                    numbers[method] = calls_per_block(unrecorded, min_block)  # the shortest phase lasts min_block
            if "taylor" in values and "jvp" in values:
                a, b = values["taylor"], values["jvp"]
                agreement[(dim, order)] = float((a - b).abs().max() / b.abs().max())
            for other in OPTIONAL:
                if "taylor" in values and other in values:
                    a, b = values[other].to(values["taylor"]), values["taylor"]
                    agreement[(dim, order, other)] = float((a - b).abs().max() / b.abs().max())
            for method in methods:
                if method not in active:
                    rows.append(dict(dim=dim, K=order, method=method, round=-1, forward_s=math.nan,
                                     backward_s=math.nan, unrecorded_s=math.nan, number=0, skipped=True))
            for round_ in range(rounds):
                for method in (active if round_ % 2 == 0 else active[::-1]):
                    number = numbers.get(method, 1)
                    unrecorded, forward, backward, _ = timed(method, number)
                    rows.append(dict(dim=dim, K=order, method=method, round=round_, forward_s=forward,
                                     backward_s=backward, unrecorded_s=unrecorded, number=number, skipped=False,
                                     compile_s=compile_times.get(method, math.nan)))
            if log:
                done = _with_totals(pd.DataFrame([r for r in rows if r["dim"] == dim and r["K"] == order
                                                  and not r["skipped"]]))
                med = done.groupby("method")[["forward_s", "total_s"]].median() if len(done) else done
                log(f"dim {dim:>3} K {order}: " + "  ".join(  # the timed blocks, not their noisy difference
                    f"{m} fwd {med.loc[m, 'forward_s'] * 1e3:.2f} fwd+bwd {med.loc[m, 'total_s'] * 1e3:.2f} ms"
                    for m in med.index) + "".join(f"  ({m} compile {c:.1f} s)" for m, c in compile_times.items()))
            if on_cell:
                on_cell(_with_totals(pd.DataFrame(rows[cell:])),
                        {key: value for key, value in agreement.items() if key[:2] == (dim, order)})
    return _with_totals(pd.DataFrame(rows)), agreement


def _with_totals(samples: pd.DataFrame) -> pd.DataFrame:
    if not samples.empty:
        samples["total_s"] = samples.forward_s + samples.backward_s
    return samples


def timing_cells(row, method: str, fmt: Callable[[float], str]) -> list[str]:
    """The forward, forward+backward and backward cells of ``method`` in a :func:`cost_table` row (a named tuple),
    ``fmt`` turning seconds into text; the backward :data:`WITHIN_NOISE` where it is."""
    backward = WITHIN_NOISE if getattr(row, f"{method}_backward_noise") else fmt(getattr(row, f"{method}_backward_s"))
    return [fmt(getattr(row, f"{method}_forward_s")), fmt(getattr(row, f"{method}_total_s")), backward]


def ratio(samples: pd.DataFrame, dim: int, order: int, column: str, slow: str = "jvp",
          fast: str = "taylor") -> tuple[float, float, float] | None:
    """Median and IQR over rounds of t_slow / t_fast (default t_jvp / t_taylor)."""
    rows = samples[(samples.dim == dim) & (samples.K == order) & ~samples.skipped]
    table = rows.pivot(index="round", columns="method", values=column)
    if slow not in table or fast not in table:
        return None
    ratios = list((table[slow] / table[fast]).dropna())
    if not ratios:
        return None
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    return statistics.median(ratios), q[0], q[2]


def growth(samples: pd.DataFrame, dim: int, method: str, column: str) -> tuple[float, float] | None:
    """(exponent p of t ∝ K^p, factor r of t ∝ r^K), least-squares fits of the medians over K ≥ 2."""
    med = samples[(samples.dim == dim) & (samples.method == method) & ~samples.skipped & (samples.K >= 2)]
    med = med.groupby("K")[column].median()
    if len(med) < 3:
        return None
    ks, ts = np.asarray(med.index, dtype=float), np.log(med.to_numpy())
    power = np.polyfit(np.log(ks), ts, 1)[0]
    factor = math.exp(np.polyfit(ks, ts, 1)[0])
    return float(power), float(factor)


def backward_median(samples: pd.DataFrame, dim: int, order: int, method: str) -> tuple[float, bool]:
    """(median over rounds of ``backward_s``, whether it is within noise) of ``method`` at (dim, K); (NaN, False)
    where not measured (skipped). ``backward_s`` is the difference of two blocks timed apart (module docstring):
    within noise, and then NaN, unless its lower quartile over rounds is above 0, so that no table shows a
    negative time or one that noise alone could have made."""
    rows = samples[(samples.dim == dim) & (samples.K == order) & (samples.method == method) & ~samples.skipped]
    differences = list(rows.backward_s.dropna())
    if not differences:
        return math.nan, False
    low = statistics.quantiles(differences, n=4, method="inclusive")[0] if len(differences) > 1 else differences[0]
    return (statistics.median(differences), False) if low > 0 else (math.nan, True)


def cost_table(samples: pd.DataFrame, agreement: dict | None = None) -> pd.DataFrame:
    """One row per (dim, K): median forward and forward+backward seconds of each method (``{method}_forward_s``,
    ``{method}_total_s``: the timed blocks; NaN where skipped), its backward (``{method}_backward_s``,
    :func:`backward_median`: NaN where skipped or within noise, ``{method}_backward_noise`` telling which), the
    speed-ups t_jvp/t_taylor (median of per-round ratios; forward and forward+backward) and the agreement."""
    agreement = agreement or {}
    ok = samples[~samples.skipped]
    medians = ok.groupby(["dim", "K", "method"])[["forward_s", "total_s"]].median()
    rows = []
    for (dim, order), _ in samples.groupby(["dim", "K"], sort=True):
        row = {"dim": int(dim), "K": int(order)}
        for method in METHODS:
            for column in ("forward_s", "total_s"):
                key = (dim, order, method)
                row[f"{method}_{column}"] = float(medians.loc[key, column]) if key in medians.index else math.nan
            row[f"{method}_backward_s"], row[f"{method}_backward_noise"] = backward_median(samples, dim, order, method)
        for name, column in (("speedup_forward", "forward_s"), ("speedup_total", "total_s")):
            stats = ratio(samples, dim, order, column)
            row[name] = math.nan if stats is None else stats[0]
        row["jvp_skipped"] = bool(samples[(samples.dim == dim) & (samples.K == order) & (samples.method == "jvp")]
                                  .skipped.any())
        row["agreement"] = agreement.get((dim, order), math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["Autonomous", "COMPILED", "CpuClock", "FUSED", "JAX", "METHODS", "OPTIONAL", "WITHIN_NOISE",
           "backward_median", "calls_per_block", "cost_table", "fused_call", "growth", "make_field", "measure_cost",
           "one_call", "ratio", "timing_cells"]
