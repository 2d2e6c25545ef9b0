"""The Taylor rule of each supported torch operation (Bettencourt, Johnson & Duvenaud 2019, §3; Griewank &
Walther, "Evaluating Derivatives", 2nd ed., §13.2, Table 13.2).

Notation: x_k, y_k are normalised coefficients (x^{(k)}/k!) of an input and of the output. Each rule below
gives coefficient k ≥ 1 from x_0..x_k and y_0..y_{k−1}; coefficient 0 is always the torch function itself
applied to the primals, so the zeroth order is bit-for-bit the ordinary forward pass (one exception: compiled
float32 CPU code evaluates tanh's primal by a rational approximation within 6.7 ulps, as XLA does;
:mod:`nodebench.taylor.fast_tanh`).

=====================  ===================================================================================
linear in the input    y_k = L(x_k) for reshape/view/flatten/(un)squeeze/expand/transpose/permute,
                       indexing and slicing, sum/mean, neg, cat/stack, split/chunk/unbind, where
                       (constant condition); constants (biases, cat-ed tensors, added tensors) only at k=0
bilinear               mul, matmul, F.linear, conv1d/2d/3d: y_k = Σ_{j=0..k} B(a_j, b_{k−j}) (Cauchy
                       product; one term if an argument is constant, which is the usual case for weights)
div                    y_k = (a_k − Σ_{j=1..k} b_j y_{k−j}) / b_0
pow (scalar a)         y_k = Σ_{j=1..k} ((a+1)j − k) x_j y_{k−j} / (k x_0); integer a ≥ 2 by repeated mul,
                       which needs no x_0 ≠ 0; the same recurrence for a constant tensor a (any
                       sign of x_0 where torch defines x**a); a series exponent as exp(b·log x).
                       At x_0 = 0 any other a (sqrt, rsqrt, x**0.5, x**2.5, …) gives NaN (or ±inf)
                       coefficients, as JAX's jet: x**a is not analytic there (undefined below 0, its
                       k-th derivative infinite for k > a), so no finite series exists
exp                    y_k = Σ_{j=1..k} (j/k) x_j y_{k−j}
log                    y_k = (x_k − Σ_{j=1..k−1} (j/k) y_j x_{k−j}) / x_0
sin, cos               s_k = Σ (j/k) x_j c_{k−j},  c_k = −Σ (j/k) x_j s_{k−j} (joint recurrence)
tanh                   y_k = Σ_{j=1..k} (j/k) x_j u_{k−j},  u = 1 − y²
sigmoid                the same with u = y(1 − y)
softplus (β, thr)      y_k = Σ (j/k) x_j p_{k−j} with p = σ(βx) (its series by the sigmoid rule on βx);
                       y_k = x_k where βx_0 > thr, as torch's linear branch
=====================  ===================================================================================

All products Σ_j w_j x_j y_{k−j} are a chain of k fused multiply-adds (:func:`cauchy`): one kernel per term,
the first a plain product (a term of weight 1 goes first), the rest accumulated in place, weights passed as
Python floats (no scalar tensor is made per call). Level k of a non-linear operation is O(k) element-wise
work; tanh and σ take the symmetric half of [y²]. At order k ≥ 2 the D-64-64-D tanh MLP of the cost
benchmark therefore runs 3 matrix products and, per tanh, k Cauchy terms and ⌊(k−1)/2⌋ + 1 terms of [y²]_{k−1}
(tests/test_taylor.py counts them).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from nodebench.taylor.fast_tanh import primal_tanh
from nodebench.taylor.series import TaylorModeError, TaylorTensor, is_taylor, op_name, register, unsupported

T = torch.Tensor


# --- helpers ---------------------------------------------------------------------------------------------
def _map(obj, fn: Callable):
    """``obj`` with every :class:`TaylorTensor` inside (nested lists, tuples, dicts) replaced by ``fn(it)``."""
    if isinstance(obj, TaylorTensor):
        return fn(obj)
    if isinstance(obj, list):
        return [_map(o, fn) for o in obj]
    if isinstance(obj, tuple) and not isinstance(obj, torch.Size):
        return tuple(_map(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {key: _map(value, fn) for key, value in obj.items()}
    return obj


def _series_in(obj) -> list[TaylorTensor]:
    found: dict[int, TaylorTensor] = {}
    _map(obj, lambda t: found.setdefault(id(t), t))
    return list(found.values())


def _primal(x):
    return x.coeffs[0] if is_taylor(x) else x


def _coeff(k: int) -> Callable:
    return lambda x: x.coeffs[k]


def new_series(primal: torch.Tensor, rule: Callable, parents: Sequence[TaylorTensor]) -> TaylorTensor:
    """Record an operation on its inputs' tape; ``rule(k, own_coeffs)`` gives coefficient k ≥ 1."""
    tape = parents[0].tape
    if any(p.tape is not tape for p in parents):
        raise TaylorModeError("the arguments are series from different calls (tapes); they cannot be mixed")
    node = TaylorTensor(tape, [primal], rule, parents)
    tape.nodes.append(node)
    return node


def cauchy(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], k: int, lo: int, hi: int,
           weights: Sequence[float] | None = None) -> torch.Tensor | None:
    """Σ_{j=lo..hi} w_j · x_j · y_{k−j} (``None`` for an empty sum): one kernel per term, a chain of fused
    multiply-adds whose first term is a term of weight 1 where there is one (a plain product) and else
    ``addcmul`` on a cached zero, so no term needs a separate scaling.

    Why not one kernel per order over stacked coefficients (stack the x_j and the reversed y_{k−j}, one
    product, one weighted reduction): at the sizes this library targets (batch a few hundred, width 64)
    memory traffic dominates, and stacking moves every coefficient again. On one CPU core, batch 256 × 64,
    float32, the stacked form was slower than this chain at every k = 2…8, forward and forward + backward
    (k = 6: 96 vs 51 µs forward, 510 vs 324 µs with the backward; one measurement, torch 2.13, AMD EPYC).
    """
    if hi < lo:
        return None
    (j, w), rest = _cauchy_plan(lo, hi, None if weights is None else tuple(weights))
    x = xs[j]
    total = x * ys[k - j] if w == 1.0 else torch.addcmul(_scalar(0.0, x.dtype, x.device), x, ys[k - j], value=w)
    for j, w in rest:
        total = _add_product(total, xs[j], ys[k - j], w)
    return total


def _add_product(total: torch.Tensor, x: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """total + w·x·y: in place in eager mode (no new buffer per term); out of place while ``torch.compile``
    traces, where it fuses anyway and where the in-place form fails under ``torch.func.grad`` (its decomposition
    to ``prims.fma`` meets functorch's wrapped tensors, torch 2.13; :func:`nodebench.taylor.compile_grad_and_value`)."""
    if torch.compiler.is_compiling():
        return torch.addcmul(total, x, y, value=w)
    return total.addcmul_(x, y, value=w)


def memoised(fn: Callable) -> Callable:
    """``fn`` (pure, hashable arguments) behind an LRU cache in eager mode; called directly while
    ``torch.compile`` traces, which would otherwise warn that it bypasses the cache."""
    cached = functools.lru_cache(maxsize=4096)(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return fn(*args, **kwargs) if torch.compiler.is_compiling() else cached(*args, **kwargs)

    return call


@memoised
def _cauchy_plan(lo: int, hi: int, weights: tuple[float, ...] | None):
    """The terms (j, w_j) of :func:`cauchy` in evaluation order: ((first), (the rest)), first a term of weight 1
    where there is one."""
    terms = [(j, 1.0 if weights is None else float(w)) for j, w in zip(range(lo, hi + 1), weights or
                                                                      [1.0] * (hi - lo + 1))]
    first = next((i for i, (_, w) in enumerate(terms) if w == 1.0), 0)
    return terms[first], tuple(t for i, t in enumerate(terms) if i != first)


def scaled(x: torch.Tensor, w: float) -> torch.Tensor:
    """x · w through a cached 0-d tensor of x's dtype: ``x * w`` with a Python float would convert the
    float into a tensor of x's dtype on every call (an ``aten::_to_copy`` per product)."""
    return x * _scalar(float(w), x.dtype, x.device)


def constant(value: float, like: torch.Tensor) -> torch.Tensor:
    """A cached 0-d tensor holding ``value`` with ``like``'s dtype and device (never modify it)."""
    return _scalar(float(value), like.dtype, like.device)


def _scalar(value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if torch.compiler.is_compiling():  # a constant of the traced graph; the cache is eager mode's
        return torch.tensor(value, dtype=dtype, device=device)
    return _cached_scalar(value, dtype, device)


@functools.lru_cache(maxsize=4096)
def _cached_scalar(value: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor even when first made under inference mode
        return torch.tensor(value, dtype=dtype, device=device)


def square_tail(ys: Sequence[torch.Tensor], k: int, scale: float, first: torch.Tensor) -> torch.Tensor:
    """y_k · first + scale · (2 Σ_{1≤j<k/2} y_j y_{k−j} + [k even] y_{k/2}²) for k ≥ 1: with ``first`` =
    2·scale·y_0 this is scale · [y²]_k from the symmetric half of the Cauchy product; σ' = σ − σ² folds its
    linear term in with ``first`` = 1 − 2σ_0. ``first`` is made once per series, so the chain starts with a
    plain product."""
    total = ys[k] * first
    for j in range(1, (k + 1) // 2):
        total = _add_product(total, ys[j], ys[k - j], 2.0 * scale)
    if k % 2 == 0:
        total = _add_product(total, ys[k // 2], ys[k // 2], scale)
    return total


@memoised
def _derivative_weights(k: int, lo: int = 1, hi: int | None = None, scale: float = 1.0) -> tuple[float, ...]:
    """w_j = scale·j/k, the weights of Σ_j (j/k) x_j u_{k−j} (the series of ∫ u dx)."""
    return tuple(scale * j / k for j in range(lo, (k if hi is None else hi) + 1))


def _one_series(func: Callable, args, kwargs) -> TaylorTensor:
    series = _series_in((args, kwargs))
    if len(series) != 1:
        raise TaylorModeError(f"{op_name(func)} in Taylor mode takes exactly one series argument, got {len(series)}")
    return series[0]


# --- linear, coefficient-wise operations -----------------------------------------------------------------
def _coefwise(func: Callable, shape_args: bool = False) -> Callable:
    """y_k = func(x_k, *args). With ``shape_args`` a series in the other arguments (``expand_as(other)``,
    ``to(other)``) only supplies its primal's shape, dtype or device."""

    def handler(*args, **kwargs):
        if shape_args:
            x, rest = args[0], _map((args[1:], kwargs), _primal)
            args, kwargs = (x, *rest[0]), rest[1]
        x = _one_series(func, args, kwargs)
        primal = func(*_map(args, _primal), **_map(kwargs, _primal))
        if isinstance(primal, (tuple, list)):  # split, chunk, unbind: one series per output
            return type(primal)(new_series(p, _part_rule(func, args, kwargs, i), (x,)) for i, p in enumerate(primal))
        return new_series(primal, lambda k, _: func(*_map(args, _coeff(k)), **_map(kwargs, _coeff(k))), (x,))

    return handler


def _part_rule(func, args, kwargs, i):
    return lambda k, _: func(*_map(args, _coeff(k)), **_map(kwargs, _coeff(k)))[i]


def _constant(func: Callable) -> Callable:
    """ones_like(x) and friends: a constant (plain tensor) of the primal's shape."""
    return lambda *args, **kwargs: func(*_map(args, _primal), **_map(kwargs, _primal))


STRUCTURAL = {
    "reshape/view": [torch.reshape, T.reshape, T.view],
    "flatten": [torch.flatten, T.flatten, torch.unflatten, T.unflatten],
    "unsqueeze": [torch.unsqueeze, T.unsqueeze],
    "squeeze": [torch.squeeze, T.squeeze],
    "expand": [T.expand, torch.broadcast_to, T.broadcast_to],
    "transpose/permute": [torch.transpose, T.transpose, torch.t, T.t, torch.permute, T.permute, torch.movedim,
                          T.movedim],
    "getitem/narrow/select": [T.__getitem__, torch.narrow, T.narrow, torch.select, T.select, torch.index_select,
                              T.index_select],
    "sum": [torch.sum, T.sum],
    "mean": [torch.mean, T.mean],
    "neg": [torch.neg, torch.negative, T.neg, T.negative, T.__neg__],
    "clone/contiguous": [torch.clone, T.clone, T.contiguous],
    "split/chunk/unbind": [torch.split, T.split, torch.chunk, T.chunk, torch.unbind, T.unbind],
}
for _family, _funcs in STRUCTURAL.items():
    for _func in _funcs:
        register(_family, _func)(_coefwise(_func))
for _func in (T.expand_as, T.reshape_as, T.view_as, T.to, T.type_as, T.double, T.float):
    register("expand_as/view_as/to", _func)(_coefwise(_func, shape_args=True))
for _func in (torch.ones_like, torch.zeros_like, torch.full_like, torch.empty_like, torch.rand_like,
              torch.randn_like, T.new_zeros, T.new_ones, T.new_full, T.new_empty, T.new_tensor):
    register("ones_like/zeros_like/new_* (constants)", _func)(_constant(_func))


def _cat_like(func: Callable) -> Callable:
    """cat/stack: y_k = func([a_k, b_k, …]) with constant members replaced by zeros for k ≥ 1."""

    def handler(tensors, *args, **kwargs):
        series = _series_in(tensors)
        if _series_in((args, kwargs)):
            raise TaylorModeError(f"{op_name(func)}: only the tensors to join may be series")
        primal = func(_map(list(tensors), _primal), *args, **kwargs)
        zeros = [None if is_taylor(t) else torch.zeros_like(t) for t in tensors]

        def rule(k, _):
            return func([t.coeffs[k] if z is None else z for t, z in zip(tensors, zeros)], *args, **kwargs)

        return new_series(primal, rule, series)

    return handler


for _func in (torch.cat, torch.concat, torch.concatenate):
    register("cat", _func)(_cat_like(_func))
register("stack", torch.stack)(_cat_like(torch.stack))


@register("where", torch.where)
def _where(condition, input, other):
    if is_taylor(condition):
        raise TaylorModeError("torch.where: the condition cannot be a series")
    series = _series_in((input, other))
    primal = torch.where(condition, _primal(input), _primal(other))

    def rule(k, _):
        return torch.where(condition, input.coeffs[k] if is_taylor(input) else 0.0,
                           other.coeffs[k] if is_taylor(other) else 0.0)

    return new_series(primal, rule, series)


@register("where", T.where)
def _where_method(input, condition, other):
    """``x.where(condition, y)``: torch.where(condition, x, y), the method taking the condition second."""
    return _where(condition, input, other)


# --- add, sub --------------------------------------------------------------------------------------------
def _combination(primal: torch.Tensor, terms: Sequence[tuple[object, float]]) -> TaylorTensor:
    """y_k = Σ c·x_k over the series among ``terms`` (constants only enter y_0)."""
    live = [(x, c) for x, c in terms if is_taylor(x)]

    def rule(k, _):
        parts = [x.coeffs[k] if c == 1 else c * x.coeffs[k] for x, c in live]
        return parts[0] if len(parts) == 1 else parts[0] + parts[1]

    return new_series(primal, rule, [x for x, _ in live])


@register("add", torch.add, T.add, T.__add__, T.__radd__)
def _add(input, other, *, alpha=1):
    return _combination(torch.add(_primal(input), _primal(other), alpha=alpha), [(input, 1), (other, alpha)])


@register("sub", torch.sub, torch.subtract, T.sub, T.subtract, T.__sub__)
def _sub(input, other, *, alpha=1):
    return _combination(torch.sub(_primal(input), _primal(other), alpha=alpha), [(input, 1), (other, -alpha)])


@register("sub", torch.rsub, T.__rsub__)
def _rsub(input, other, *, alpha=1):
    return _sub(other, input, alpha=alpha)


# --- products --------------------------------------------------------------------------------------------
def _bilinear(op: Callable, a, b, primal: torch.Tensor, extra=None) -> TaylorTensor:
    """y = op(a, b) (+ extra) for op bilinear: y_k = Σ_j op(a_j, b_{k−j}) (+ extra_k); one term when one
    argument is constant (the usual case: weights)."""
    if is_taylor(a) and is_taylor(b):
        ac, bc = a.coeffs, b.coeffs

        def product(k, _):
            return functools.reduce(torch.add, (op(ac[j], bc[k - j]) for j in range(k + 1)))
    elif is_taylor(a):
        ac = a.coeffs

        def product(k, _):
            return op(ac[k], b)
    elif is_taylor(b):
        bc = b.coeffs

        def product(k, _):
            return op(a, bc[k])
    else:
        product = None
    if not is_taylor(extra):
        rule = product
    elif product is None:
        rule = lambda k, _: extra.coeffs[k]  # noqa: E731
    else:
        rule = lambda k, _: product(k, _) + extra.coeffs[k]  # noqa: E731
    return new_series(primal, rule, _series_in((a, b, extra)))


@register("mul", torch.mul, torch.multiply, T.mul, T.multiply, T.__mul__, T.__rmul__)
def _mul(input, other):
    primal = torch.mul(_primal(input), _primal(other))
    if input is other:
        doubled = []  # 2·x_0, made at the first coefficient

        def square(k, _):
            if not doubled:
                doubled.append(scaled(input.coeffs[0], 2.0))
            return square_tail(input.coeffs, k, 1.0, doubled[0])

        return new_series(primal, square, (input,))
    if is_taylor(input) and is_taylor(other):
        return new_series(primal, lambda k, _: cauchy(input.coeffs, other.coeffs, k, 0, k), (input, other))
    if is_taylor(input):
        return new_series(primal, lambda k, _: input.coeffs[k] * other, (input,))
    return new_series(primal, lambda k, _: input * other.coeffs[k], (other,))


def _matmul_like(func: Callable) -> Callable:
    return lambda input, other: _bilinear(func, input, other, func(_primal(input), _primal(other)))


for _func in (torch.matmul, T.matmul, T.__matmul__, torch.mm, T.mm, torch.bmm, T.bmm):
    register("matmul", _func)(_matmul_like(_func))
register("matmul", T.__rmatmul__)(lambda input, other: _matmul_like(torch.matmul)(other, input))


@register("linear", F.linear)
def _linear(input, weight, bias=None):
    """F.linear (``nn.Linear``): y_k = x_k Wᵀ, the bias only in y_0 (unless it is itself a series); for a
    constant W the product is ``x_k @ Wᵀ`` with the transpose made once."""
    primal = F.linear(_primal(input), _primal(weight), _primal(bias))
    if is_taylor(weight):
        return _bilinear(lambda x, w: F.linear(x, w), input, weight, primal, bias)
    transposed = weight.t()  # once per trace: F.linear would make this view (and its backward node) per order
    return _bilinear(torch.matmul, input, transposed, primal, bias)


def _conv(func: Callable) -> Callable:
    """conv1d/2d/3d (``nn.Conv*d`` with zero padding): each coefficient convolved, the bias only in y_0."""

    def handler(input, weight, bias=None, *args, **kwargs):
        primal = func(_primal(input), _primal(weight), _primal(bias), *args, **kwargs)
        return _bilinear(lambda x, w: func(x, w, None, *args, **kwargs), input, weight, primal, bias)

    return handler


for _func in (F.conv1d, F.conv2d, F.conv3d):
    register("conv1d/conv2d/conv3d", _func)(_conv(_func))


@register("div", torch.div, torch.divide, torch.true_divide, T.div, T.divide, T.true_divide, T.__truediv__)
def _div(input, other, *, rounding_mode=None):
    """a / b: y_k = (a_k − Σ_{j=1..k} b_j y_{k−j}) / b_0; a constant divisor divides each coefficient."""
    if rounding_mode is not None:
        raise unsupported(f"torch.div(rounding_mode={rounding_mode!r})")
    primal = torch.div(_primal(input), _primal(other))
    if not is_taylor(other):
        return new_series(primal, lambda k, _: input.coeffs[k] / other, (input,))
    b0 = other.coeffs[0]

    def rule(k, y):
        carried = cauchy(other.coeffs, y, k, 1, k)
        return ((input.coeffs[k] - carried) if is_taylor(input) else -carried) / b0

    return new_series(primal, rule, _series_in((input, other)))


register("div", T.__rtruediv__, T.__rdiv__)(lambda input, other: _div(other, input))


@register("reciprocal", torch.reciprocal, T.reciprocal)
def _reciprocal(input):
    return _div(torch.ones_like(input.coeffs[0]), input)


# --- elementary functions --------------------------------------------------------------------------------
@register("exp", torch.exp, T.exp)
def _exp(input):
    """y' = y x': y_k = Σ_{j=1..k} (j/k) x_j y_{k−j}."""
    return new_series(torch.exp(input.coeffs[0]),
                      lambda k, y: cauchy(input.coeffs, y, k, 1, k, _derivative_weights(k)), (input,))


@register("log", torch.log, T.log)
def _log(input):
    """x y' = x': y_k = (x_k − Σ_{j=1..k−1} (j/k) y_j x_{k−j}) / x_0."""
    x = input.coeffs

    def rule(k, y):
        carried = cauchy(y, x, k, 1, k - 1, _derivative_weights(k, hi=k - 1))
        return (x[k] if carried is None else x[k] - carried) / x[0]

    return new_series(torch.log(x[0]), rule, (input,))


def _pow_scalar(x: TaylorTensor, a: float) -> TaylorTensor | torch.Tensor:
    """x**a for a Python scalar a (Griewank & Walther, Table 13.2): x y' = a x' y, i.e. y_k = Σ_{j=1..k}
    ((a+1)j − k) x_j y_{k−j} / (k x_0); a = 0 and 1 exactly, an integer a ≥ 2 by repeated :func:`_mul`. The
    recurrence divides by x_0: where x_0 = 0 (a non-integer a, or a < 0) the coefficients are NaN or ±inf, as in
    JAX's jet, the series of x**a not existing there (see the module docstring); they are left so rather than
    checked, which would read every x_0 back to the host."""
    if a == 0:
        return torch.pow(x.coeffs[0], 0)
    if a == 1:
        return x
    if float(a).is_integer() and a > 1:  # exact products, also at x_0 = 0 where the recurrence divides by 0
        n, result, power = int(a), None, x
        while n:
            if n & 1:
                result = power if result is None else _mul(result, power)
            n >>= 1
            if n:
                power = _mul(power, power)
        result.coeffs[0] = torch.pow(x.coeffs[0], a)  # a fresh node: its primal is torch's own, bit for bit
        return result
    x0 = x.coeffs[0]

    def rule(k, y):  # x y' = a x' y
        return cauchy(x.coeffs, y, k, 1, k, [((a + 1) * j - k) / k for j in range(1, k + 1)]) / x0

    return new_series(torch.pow(x0, a), rule, (x,))


def _pow_tensor(x: TaylorTensor, a: torch.Tensor) -> TaylorTensor:
    """x**a for a constant tensor exponent (element-wise a, possibly a parameter): the scalar recurrence
    x y' = a x' y with tensor weights ((a+1)j − k)/k, and the primal torch.pow itself. Like the scalar rule it
    needs x_0 ≠ 0, but it takes a negative base where torch does (integer a); exp(a·log x) gave NaN there."""
    x0 = x.coeffs[0]

    def rule(k, y):
        total = None
        for j in range(1, k + 1):
            term = ((a + 1) * j - k) / k * x.coeffs[j] * y[k - j]
            total = term if total is None else total + term
        return total / x0

    return new_series(torch.pow(x0, a), rule, (x,))


def _as_scalar_exponent(base: torch.Tensor, exponent: torch.Tensor) -> bool:
    """Whether x**a may take the scalar rule for the tensor ``a``: one element, no gradient, and the result's dtype
    that of x (a 0-d float64 ``a`` makes a 0-d float32 x's power float64)."""
    return exponent.numel() == 1 and not exponent.requires_grad and torch.result_type(base, exponent) == base.dtype


@register("pow", torch.pow, T.pow, T.__pow__)
def _pow(input, exponent):
    """x**a for a scalar a (recurrence; a one-element constant tensor a is taken as its scalar, the result
    broadcast to torch's shape), a constant tensor a (:func:`_pow_tensor`), a series exponent as exp(b·log x)."""
    if isinstance(exponent, torch.Tensor) and _as_scalar_exponent(_primal(input), exponent):
        shape = torch.broadcast_shapes(input.shape, exponent.shape)  # x ** torch.tensor([[2.0]]) is (1, 3) for x (3,)
        power = _pow_scalar(input, exponent.item())
        return power if shape == input.shape else torch.broadcast_to(power, shape)
    if not is_taylor(input):  # constant ** series
        log_base = torch.log(torch.as_tensor(input, dtype=exponent.dtype, device=exponent.device))
        return _exp(_mul(exponent, log_base))
    if is_taylor(exponent):
        return _exp(_mul(exponent, _log(input)))
    if isinstance(exponent, torch.Tensor):
        return _pow_tensor(input, exponent)
    return _pow_scalar(input, exponent)


register("pow", T.__rpow__)(lambda input, other: _pow(other, input))
register("sqrt", torch.sqrt, T.sqrt)(lambda input: _pow_scalar(input, 0.5))
register("rsqrt", torch.rsqrt, T.rsqrt)(lambda input: _pow_scalar(input, -0.5))
register("square", torch.square, T.square)(lambda input: _pow_scalar(input, 2))


def _sincos(input: TaylorTensor, want_sin: bool) -> TaylorTensor:
    """s_k = Σ (j/k) x_j c_{k−j}, c_k = −Σ (j/k) x_j s_{k−j}; the partner series is kept privately."""
    x0 = input.coeffs[0]
    partner = [torch.cos(x0) if want_sin else torch.sin(x0)]
    own_sign, partner_sign = (1.0, -1.0) if want_sin else (-1.0, 1.0)

    def rule(k, own):
        while len(partner) < k:
            i = len(partner)
            partner.append(cauchy(input.coeffs, own, i, 1, i, _derivative_weights(i, scale=partner_sign)))
        return cauchy(input.coeffs, partner, k, 1, k, _derivative_weights(k, scale=own_sign))

    return new_series(torch.sin(x0) if want_sin else torch.cos(x0), rule, (input,))


register("sin", torch.sin, T.sin)(lambda input: _sincos(input, True))
register("cos", torch.cos, T.cos)(lambda input: _sincos(input, False))


def _first_order_ode(input: TaylorTensor, primal: torch.Tensor, linear: float) -> TaylorTensor:
    """y with y' = u·x' for u = c + linear·y − y² (tanh: c = 1, linear = 0; σ: c = 0, linear = 1):
    y_k = Σ_{j=1..k} (j/k) x_j u_{k−j}, u_i = y_i (linear − 2 y_0) − Σ_{1≤j≤i−1} y_j y_{i−j} for i ≥ 1, so
    only u_0 needs c (tanh: 1 − y_0²; σ: y_0 − y_0²)."""
    y0 = primal
    one = _scalar(1.0, y0.dtype, y0.device)
    u = [torch.addcmul(y0 if linear else one, y0, y0, value=-1)]
    first = []  # linear − 2 y_0, made at the second coefficient

    def rule(k, y):
        while len(u) < k:
            if not first:
                first.append(torch.add(one, y0, alpha=-2.0) if linear else scaled(y0, -2.0))
            u.append(square_tail(y, len(u), -1.0, first[0]))
        return cauchy(input.coeffs, u, k, 1, k, _derivative_weights(k))

    return new_series(primal, rule, (input,))


@register("tanh", torch.tanh, T.tanh)
def _tanh(input):
    """tanh' = 1 − tanh²; the primal by :func:`nodebench.taylor.fast_tanh.primal_tanh` (``torch.tanh`` except
    in compiled float32 CPU code)."""
    return _first_order_ode(input, primal_tanh(input.coeffs[0]), linear=0.0)


@register("sigmoid", torch.sigmoid, T.sigmoid)
def _sigmoid(input):
    """σ' = σ − σ²."""
    return _first_order_ode(input, torch.sigmoid(input.coeffs[0]), linear=1.0)


@register("softplus", F.softplus)
def _softplus(input, beta=1.0, threshold=20.0):
    """softplus_β(x) = log(1 + exp(βx))/β, softplus' = σ(βx): y_k = Σ (j/k) x_j p_{k−j} with p = σ(βx),
    whose series follows the sigmoid rule on βx. Where βx_0 > threshold torch switches to y = x, and so
    does this rule."""
    x = input.coeffs
    p0 = torch.sigmoid(beta * x[0])
    p, q = [p0], [torch.addcmul(p0, p0, p0, value=-1)]  # p = σ(βx), q = p(1 − p)
    first = torch.add(_scalar(1.0, p0.dtype, p0.device), p0, alpha=-2.0)
    linear = beta * x[0] > threshold
    # eager mode skips the torch.where where no element is linear; a compiled graph cannot branch on the data
    any_linear = torch.compiler.is_compiling() or bool(linear.any())

    def rule(k, _):
        while len(p) < k:
            i = len(p)
            while len(q) < i:
                m = len(q)
                q.append(square_tail(p, m, -1.0, first))
            p.append(cauchy(x, q, i, 1, i, _derivative_weights(i, scale=beta)))
        value = cauchy(x, p, k, 1, k, _derivative_weights(k))
        return torch.where(linear, x[k], value) if any_linear else value

    return new_series(F.softplus(x[0], beta, threshold), rule, (input,))

