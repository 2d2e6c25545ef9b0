"""JAX's ``jax.experimental.jet`` on the same field, the reference column of the Taylor-mode cost benchmark
(optional: only where ``jax`` is importable; nodebench never needs it).

The derivatives follow the TayNODE official code's recursion (Kelly et al., NeurIPS 2020, App. A.2,
``sol_recursive``): with the autonomous system y = (z, t), g(y) = (f(z), 1), the series of y is grown one
order per ``jet`` call, y_{k+1} from the k-th output coefficient of ``jet(g, y_0, (y_1, …, y_k))``. The
whole recursion (and for the backward column, ``value_and_grad`` of mean((d^K z)²) with respect to the
weights) is one ``jax.jit``-compiled function per K; the first call's compile time is reported apart.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


#: JAX's platform for each torch device type JAX jet can run on
PLATFORMS = {"cpu": "cpu", "cuda": "gpu"}


def available(device_type: str = "cpu") -> bool:
    """Whether ``jax`` (with ``jax.experimental.jet``) is importable and has a device of torch's
    ``device_type`` (``"cpu"``, or ``"cuda"`` for JAX's GPU backend)."""
    try:
        import jax
        from jax.experimental import jet  # noqa: F401
    except ImportError:
        return False
    if device_type not in PLATFORMS:
        return False
    try:
        return bool(jax.devices(PLATFORMS[device_type]))
    except RuntimeError:  # no backend for that platform
        return False


class JaxJet:
    """d^K z/dt^K of z' = net(z) for an ``nn.Sequential`` of ``nn.Linear`` and ``nn.Tanh`` layers, in JAX.

    Args:
        net: the PyTorch field; its weights are copied (same values, same dtype).
        order: K.
        timer: the clock of :meth:`time_call` (``time.process_time`` for CPU time).

    Weights and inputs live on JAX's device of the same kind as the field's (its first JAX GPU for a CUDA
    field), so that both frameworks run on the same hardware.
    """

    def __init__(self, net: nn.Sequential, order: int, timer=time.perf_counter):
        import jax
        import jax.numpy as jnp
        from jax.experimental.jet import jet

        device_type = next(net.parameters()).device.type
        if not available(device_type):
            raise RuntimeError(f"JAX has no {PLATFORMS.get(device_type, device_type)} device for a field on "
                               f"{device_type}; JAX jet runs on: cpu, cuda (JAX's GPU backend)")
        self.device = jax.devices(PLATFORMS[device_type])[0]
        layers = []
        for module in net:
            if isinstance(module, nn.Linear):
                layers.append((self._array(module.weight), self._array(module.bias)))
            elif isinstance(module, nn.Tanh):
                layers.append("tanh")
            else:
                raise TypeError(f"JaxJet supports nn.Linear and nn.Tanh layers, not {type(module).__name__}")
        self.params = [layer for layer in layers if layer != "tanh"]
        kinds = ["tanh" if layer == "tanh" else "linear" for layer in layers]

        def field(params, z):
            weights = iter(params)
            for kind in kinds:
                if kind == "tanh":
                    z = jnp.tanh(z)
                else:
                    w, b = next(weights)
                    z = jnp.matmul(z, w.T, precision="highest") + b  # full float32, as torch's default
            return z

        def derivatives(params, z):
            def g(y):
                return jnp.concatenate([field(params, y[:, :-1]), jnp.ones_like(y[:, -1:])], -1)

            y0 = jnp.concatenate([z, jnp.zeros_like(z[:, :1])], -1)
            series = [g(y0)]
            for _ in range(1, order):
                _, out = jet(g, (y0,), (series,))
                series.append(out[-1])
            return [s[:, :-1] for s in series]

        self._forward = jax.jit(derivatives)
        self._loss_and_grad = jax.jit(jax.value_and_grad(lambda p, z: jnp.mean(derivatives(p, z)[-1] ** 2)))
        self._block = jax.block_until_ready
        self._timer = timer

    def compile(self, z: torch.Tensor) -> float:
        """Compile both functions for ``z``'s shape (their first calls); the seconds it took."""
        start = time.perf_counter()
        self._block(self._forward(self.params, self._array(z)))
        self._block(self._loss_and_grad(self.params, self._array(z)))
        return time.perf_counter() - start

    def _array(self, z: torch.Tensor):
        import jax
        return jax.device_put(z.detach().cpu().numpy(), self.device)

    def time_call(self, z: torch.Tensor, number: int = 1) -> tuple[float, float, torch.Tensor]:
        """(forward s, forward+backward s, d^K z): ``number`` jitted forward calls in a row, then ``number``
        jitted ``value_and_grad`` calls (each runs its own forward), the input already in JAX; seconds per call.
        Each block waits for its last call's results only, as torch's blocks synchronise at their end: within a
        block both frameworks dispatch asynchronously (a wait after every call would add a host round trip per
        call on a GPU that torch's calls do not pay)."""
        array = self._array(z)
        start = self._timer()
        for _ in range(number):
            out = self._forward(self.params, array)
        self._block(out)
        forward = (self._timer() - start) / number
        start = self._timer()
        for _ in range(number):
            result = self._loss_and_grad(self.params, array)
        self._block(result)
        total = (self._timer() - start) / number
        return forward, total, torch.from_numpy(np.array(out[-1]))
