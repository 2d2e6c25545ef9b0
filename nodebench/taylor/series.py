"""Truncated Taylor series pushed through ordinary torch code: the tensor-like :class:`TaylorTensor`,
the :class:`Tape` that extends every intermediate series by one coefficient at a time, and :func:`jet`.

Taylor-mode AD (Bettencourt, Johnson & Duvenaud, "Taylor-mode automatic differentiation for
higher-order derivatives in JAX", 2019, §2–§4; used by Kelly et al., "Learning Differential Equations
that are Easy to Solve", NeurIPS 2020, arXiv 2007.04504, App. A.2). A series is kept as its normalised
coefficients x_k = x^{(k)}/k!, each an ordinary tensor of the primal's shape, so every rule is plain torch
arithmetic and ordinary autograd reaches parameters and inputs through it.

Dispatch: :class:`TaylorTensor` is *not* a ``torch.Tensor`` subclass but a tensor-like object with
``__torch_function__`` (the protocol torch offers for any type). ``torch.tanh(x)``, ``F.linear(x, W, b)``,
``tensor * x``, ``x.reshape(...)``, ``nn.Linear``/``nn.Conv2d``/``nn.Tanh``/``nn.Sequential`` all route
through one table of rules (:mod:`nodebench.taylor.rules`); an operation without a rule raises
:class:`TaylorModeError` naming it.

Evaluation is *incremental*: calling the user's function once evaluates every operation at coefficient 0
(the ordinary forward pass, so shapes and Python control flow on shapes resolve) and records it on the
tape in creation order, which is a topological order. :meth:`Tape.advance` then computes coefficient k of
every recorded node from coefficients ≤ k of its inputs and < k of itself. A linear operation costs one
application per coefficient; a non-linear one (product, quotient, exp, tanh, …) costs one k-term Cauchy
sum at level k. Coefficients 0..K therefore cost O(K²) element-wise work per operation and the function
is traced only once, which is what lets the ODE recursion in :mod:`nodebench.taylor.ode` feed
z_{k+1} back into the same tape.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import torch


class TaylorModeError(TypeError):
    """An operation that has no Taylor rule met a :class:`TaylorTensor` (or a rule got bad arguments)."""


#: Rule table: torch function or ``torch.Tensor`` method → handler taking the call's arguments.
HANDLERS: dict[Callable, Callable] = {}
#: Operation families with a rule, for error messages and the docs (filled by :func:`register`).
FAMILIES: dict[str, list[str]] = {}

#: Attributes read from the primal (coefficient 0): metadata that no Taylor rule is needed for.
META_ATTRIBUTES = frozenset({
    "dtype", "device", "shape", "ndim", "layout", "is_cuda", "is_sparse", "is_quantized", "is_meta",
    "size", "dim", "numel", "nelement", "ndimension", "is_floating_point", "is_complex", "element_size",
    "get_device", "is_contiguous",
})


def register(family: str, *funcs: Callable) -> Callable:
    """Decorator: make ``handler`` the Taylor rule of every function in ``funcs`` (one family)."""

    def decorate(handler: Callable) -> Callable:
        for func in funcs:
            HANDLERS[func] = handler
        FAMILIES.setdefault(family, []).extend(op_name(f) for f in funcs)
        return handler

    return decorate


def supported_ops() -> list[str]:
    """The operation families with a Taylor rule (``linear``, ``tanh``, ``getitem``, …)."""
    return sorted(FAMILIES)


def op_name(func: Callable) -> str:
    """A readable name for a torch function or tensor method: ``torch.relu``, ``Tensor.abs``,
    ``torch.nn.functional.relu``."""
    name = getattr(func, "__name__", None)
    if name is None:
        return repr(func)
    for prefix, namespace in (("torch.nn.functional", torch.nn.functional), ("torch", torch),
                              ("Tensor", torch.Tensor)):
        if getattr(namespace, name, None) is func:
            return f"{prefix}.{name}"
    qualname = getattr(func, "__qualname__", "")
    if qualname.startswith(("TensorBase.", "Tensor.")):
        return f"Tensor.{name}"
    module = getattr(func, "__module__", None)
    return f"{module}.{name}" if module else name


def unsupported(func: Callable | str) -> TaylorModeError:
    """The error for an operation without a Taylor rule, listing the supported families."""
    name = func if isinstance(func, str) else op_name(func)
    return TaylorModeError(f"{name} is not supported in Taylor mode; supported: {', '.join(supported_ops())}")


class Tape:
    """The operations of one traced function, in creation (= topological) order."""

    def __init__(self):
        self.nodes: list[TaylorTensor] = []

    def leaf(self, coeffs: Sequence[torch.Tensor]) -> TaylorTensor:
        """An input series from its normalised coefficients; more may be appended to ``.coeffs`` later.
        Every coefficient takes the primal's dtype and shape (broadcast), as every computed one does, so the
        rules may accumulate Cauchy sums in place."""
        if not coeffs:
            raise ValueError("a leaf needs at least its zeroth coefficient")
        primal = coeffs[0]
        coeffs = [primal] + [c if c.dtype == primal.dtype and c.shape == primal.shape
                             else c.to(primal.dtype).expand(primal.shape) for c in coeffs[1:]]
        node = TaylorTensor(self, coeffs)
        self.nodes.append(node)
        return node

    def keep_only(self, outputs: Sequence[TaylorTensor]) -> None:
        """Drop the nodes that no output depends on, so :meth:`advance` skips dead code."""
        alive, stack = set(), list(outputs)
        while stack:
            node = stack.pop()
            if id(node) not in alive:
                alive.add(id(node))
                stack.extend(node.parents)
        self.nodes = [n for n in self.nodes if id(n) in alive]

    def advance(self, k: int) -> None:
        """Compute coefficient ``k`` of every node; all must hold coefficients 0..k−1 and every leaf 0..k."""
        for node in self.nodes:
            node.extend(k)


class TaylorTensor:
    """A truncated Taylor series x(s) = Σ_k x_k s^k that behaves like a tensor under torch functions.

    ``coeffs[k]`` is the normalised coefficient x_k = x^{(k)}(0)/k!, an ordinary tensor of the primal's
    shape. ``rule(k, coeffs)`` (``None`` for a leaf) returns coefficient k from the inputs (``parents``)
    and this node's coefficients 0..k−1. Metadata (``shape``, ``dtype``, ``size()``…) is the primal's.
    """

    __slots__ = ("coeffs", "tape", "rule", "parents")

    def __init__(self, tape: Tape, coeffs: list[torch.Tensor], rule: Callable | None = None,
                 parents: Sequence[TaylorTensor] = ()):
        self.coeffs, self.tape, self.rule, self.parents = coeffs, tape, rule, tuple(parents)

    @property
    def primal(self) -> torch.Tensor:
        return self.coeffs[0]

    def extend(self, k: int) -> None:
        if len(self.coeffs) > k:
            return
        if self.rule is None or len(self.coeffs) < k:
            raise RuntimeError(f"cannot compute Taylor coefficient {k}: the series holds {len(self.coeffs)} "
                               f"coefficients{' (an input series)' if self.rule is None else ''}")
        value = self.rule(k, self.coeffs)
        primal = self.coeffs[0]
        if value.dtype != primal.dtype:
            value = value.to(primal.dtype)
        if value.shape != primal.shape:
            value = value.expand(primal.shape)
        self.coeffs.append(value)

    # --- the torch function protocol -------------------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        handler = HANDLERS.get(func)
        if handler is None:
            raise unsupported(func)
        return handler(*args, **(kwargs or {}))

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in META_ATTRIBUTES:
            return getattr(self.coeffs[0], name)
        method = getattr(torch.Tensor, name, None)
        if method is None:
            raise AttributeError(f"'TaylorTensor' object has no attribute {name!r}")
        handler = HANDLERS.get(method)
        if handler is None:
            raise unsupported(f"Tensor.{name}")
        return functools.partial(handler, self)

    def __repr__(self) -> str:
        return (f"TaylorTensor(order={len(self.coeffs) - 1}, shape={tuple(self.coeffs[0].shape)}, "
                f"dtype={self.coeffs[0].dtype})")

    def __len__(self) -> int:
        return len(self.coeffs[0])

    def __bool__(self):
        raise unsupported("Tensor.__bool__ (data-dependent control flow)")

    __hash__ = object.__hash__

    # Python operators route through the same rule table as the Tensor methods they mirror.
    def _call(self, method: str, *args):
        return HANDLERS[getattr(torch.Tensor, method)](*args)

    def __add__(self, other):
        return self._call("add", self, other)

    def __radd__(self, other):
        return self._call("add", other, self)

    def __sub__(self, other):
        return self._call("sub", self, other)

    def __rsub__(self, other):
        return self._call("sub", other, self)

    def __mul__(self, other):
        return self._call("mul", self, other)

    def __rmul__(self, other):
        return self._call("mul", other, self)

    def __truediv__(self, other):
        return self._call("div", self, other)

    def __rtruediv__(self, other):
        return self._call("div", other, self)

    def __pow__(self, other):
        return self._call("pow", self, other)

    def __rpow__(self, other):
        return self._call("pow", other, self)

    def __matmul__(self, other):
        return self._call("matmul", self, other)

    def __rmatmul__(self, other):
        return self._call("matmul", other, self)

    def __neg__(self):
        return self._call("neg", self)

    def __pos__(self):
        return self

    def __getitem__(self, index):
        return self._call("__getitem__", self, index)

    def _compare(self, other):
        raise unsupported("comparison (Tensor.__eq__/__lt__/…)")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _compare

    def __abs__(self):
        raise unsupported(torch.abs)


def is_taylor(x) -> bool:
    return isinstance(x, TaylorTensor)


def to_normalised(derivatives: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """[x', x'', …] (derivatives) → [x_1, x_2, …] (x_k = x^{(k)}/k!)."""
    return [d / math.factorial(k) for k, d in enumerate(derivatives, start=1)]


def to_derivatives(coeffs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """[x_1, x_2, …] (normalised) → [x', x'', …] (x^{(k)} = k!·x_k)."""
    return [c * math.factorial(k) for k, c in enumerate(coeffs, start=1)]


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def jet(fn: Callable, primals: Sequence[torch.Tensor], series: Sequence[Sequence[torch.Tensor]]):
    """Push truncated Taylor series through ``fn``, in the derivative convention of JAX's ``jet``.

    Args:
        fn: any function of tensors built from supported torch operations, returning a tensor or a
            tuple of tensors.
        primals: the inputs x_i(0).
        series: for each input, ``[x_i'(0), x_i''(0), …, x_i^{(K)}(0)]``, all of the same length K, each a
            tensor of x_i's shape (or one that broadcasts to it).

    Returns:
        ``(primal_out, series_out)``: ``fn(*primals)`` and ``[y'(0), …, y^{(K)}(0)]`` for y(s) =
        fn(x(s)) — tuples of these when ``fn`` returns a tuple. Differentiable with ordinary autograd.

    Example:
        >>> y, (dy, ddy) = jet(torch.sin, (x,), ([torch.ones_like(x), torch.zeros_like(x)],))
        >>> # dy = cos(x), ddy = -sin(x)
    """
    if len(primals) != len(series):
        raise ValueError(f"{len(primals)} primals but {len(series)} series")
    orders = {len(s) for s in series}
    if len(orders) > 1:
        raise ValueError(f"all series must have the same length, got {sorted(orders)}")
    order = orders.pop() if orders else 0
    for i, (primal, terms) in enumerate(zip(primals, series)):
        if not torch.is_tensor(primal):
            raise TypeError(f"primals[{i}] must be a tensor, got {type(primal).__name__}")
        for k, term in enumerate(terms):
            if not (torch.is_tensor(term) and _broadcasts_to(term.shape, primal.shape)):
                got = f"shape {tuple(term.shape)}" if torch.is_tensor(term) else type(term).__name__
                raise ValueError(f"series[{i}][{k}] must be a tensor of primals[{i}]'s shape {tuple(primal.shape)} "
                                 f"(or one that broadcasts to it), got {got}")
    tape = Tape()
    leaves = [tape.leaf([p] + to_normalised(s)) for p, s in zip(primals, series)]
    out = fn(*leaves)
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    tape.keep_only([o for o in outputs if is_taylor(o)])
    for k in range(1, order + 1):
        tape.advance(k)
    results = []
    for o in outputs:
        if is_taylor(o):
            results.append((o.coeffs[0], to_derivatives(o.coeffs[1:order + 1])))
        else:
            results.append((o, [torch.zeros_like(o) for _ in range(order)]))
    if isinstance(out, (tuple, list)):
        return tuple(r[0] for r in results), tuple(r[1] for r in results)
    return results[0]
