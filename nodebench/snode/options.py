"""SNODE's hyper-parameters, as a case's ``snode_*`` hyper-parameters (``--hparam snode_degree=8``).

Every default is a nodebench choice: the paper's settings were not available in usable detail. γ = 0.1
and 10 weight steps per iteration were the best of a short search on the vehicle task
(``nodebench/papers/snode/README.md``).

=================== ========= ==========================================================================
key                 default   meaning
=================== ========= ==========================================================================
snode_degree        6         Legendre degree p of every element
snode_elements      null      number of elements E; null (auto) = max(1, round((T − 1)/p)) for T
                              observation times, so each element spans about p observation intervals
snode_nodes         null      quadrature nodes per element; null = p + 1
snode_quadrature    legendre  ``legendre`` (Gauss–Legendre) or ``lobatto`` (Gauss–Lobatto)
snode_variant       penalty   ``penalty`` (J = L + γR) or ``augmented`` (augmented Lagrangian, multipliers
                              updated by guarded dual ascent, see snode_dual_*)
snode_gamma         0.1       the penalty weight γ at the start
snode_gamma_growth  1.0       γ ← min(γ·growth, gamma_max) after every iteration (continuation)
snode_gamma_max     null      upper limit of the continuation (null: no limit)
snode_coef_steps    1         Adam steps on the coefficients per iteration (θ fixed)
snode_weight_steps  10        Adam steps on the weights θ per iteration (coefficients fixed); their
                              learning rate is the task's ``lr``
snode_coef_lr       0.01      Adam learning rate of the coefficient steps
snode_ridge         1e-8      ridge of the initial least-squares fit (needed when an element has
                              fewer observations than coefficients); 0 makes the fit dense, T × (1 + E·p)
snode_dual_every    10        augmented variant: iterations per outer iteration (λ held fixed)
snode_dual_tolerance 0.01     augmented variant: λ is updated once J_A fell by less than this fraction
                              over an outer iteration (the sub-problem is approximately solved)
=================== ========= ==========================================================================

Valid values (anything else is a one-line :class:`~nodebench.errors.UserError`, exit status 2 on the command
line): the counts (elements, coef_steps, weight_steps, dual_every) are integers from 1 to ``MAX_COUNT`` = 10⁶,
nodes from 1 to ``MAX_NODES`` = 10⁴ (from 2 for ``lobatto``, whose rule holds both end points) and degree from
1 to 9999 (its default rule has p + 1 nodes); elements, nodes and gamma_max also take null
(``--hparam snode_elements=null``), their default; gamma and coef_lr are finite and > 0; gamma_growth ≥ 1;
gamma_max ≥ gamma; ridge ≥ 0; 0 ≤ dual_tolerance < 1. The dual_* options outside the augmented variant and
gamma_max without a continuation (gamma_growth 1) have no effect: the harness warns that they are ignored
(:func:`inert_options`). Counts within these limits can still ask for more memory than the device has free
(the maps grow with the number of observation times and of nodes, a fit without ridge with its square): such a case is
refused when it starts, before any map is built, and recorded as ``oom`` with the estimate and the options to
lower (:func:`nodebench.snode.memory.check_memory`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Mapping

from nodebench.errors import UserError
from nodebench.registry import nearest

PREFIX = "snode_"
#: Largest count option (elements, steps; degree and nodes: MAX_NODES): beyond it sizes overflow or steps never end.
MAX_COUNT = 10**6
#: Most quadrature nodes per element (snode_nodes, and degree + 1, its default): building a Q-node Gauss rule takes
#: O(Q²) time (5 s for 10⁴ nodes on a 2-core CPU, 39 s for 3·10⁴), and 10⁴ nodes integrate degree 19999 exactly.
MAX_NODES = 10**4
VARIANTS = ("penalty", "augmented")
RULES = ("legendre", "lobatto")


@dataclass(frozen=True)
class SnodeOptions:
    """Validated SNODE settings (see the module docstring for each field; the equations they enter, (M2)–(M14),
    are in ``nodebench/papers/snode/README.md``)."""

    degree: int = 6
    elements: int | None = None
    nodes: int | None = None
    quadrature: str = "legendre"
    variant: str = "penalty"
    gamma: float = 0.1
    gamma_growth: float = 1.0
    gamma_max: float | None = None
    coef_steps: int = 1
    weight_steps: int = 10
    coef_lr: float = 0.01
    ridge: float = 1e-8
    dual_every: int = 10
    dual_tolerance: float = 0.01

    def __post_init__(self):
        _integer("degree", self.degree, 1, maximum=MAX_NODES - 1)  # its default rule has p + 1 nodes
        _integer("coef_steps", self.coef_steps, 1)
        _integer("weight_steps", self.weight_steps, 1)
        if self.elements is not None:
            _integer("elements", self.elements, 1, null="auto")
        if self.nodes is not None:
            _integer("nodes", self.nodes, 2 if self.quadrature == "lobatto" else 1, null="p + 1", maximum=MAX_NODES)
        _choice("quadrature", self.quadrature, RULES)
        _choice("variant", self.variant, VARIANTS)
        _number("gamma", self.gamma, minimum=0.0, strict=True)
        _number("gamma_growth", self.gamma_growth, minimum=1.0, strict=False)
        if self.gamma_max is not None:
            _number("gamma_max", self.gamma_max, minimum=self.gamma, strict=False, null="no limit")
        _number("coef_lr", self.coef_lr, minimum=0.0, strict=True)
        _number("ridge", self.ridge, minimum=0.0, strict=False)
        _integer("dual_every", self.dual_every, 1)
        _number("dual_tolerance", self.dual_tolerance, minimum=0.0, strict=False)
        if self.dual_tolerance >= 1:
            raise UserError(f"SNODE option {PREFIX}dual_tolerance must be < 1, got {self.dual_tolerance!r}")
        for name in ("degree", "elements", "nodes", "coef_steps", "weight_steps", "dual_every"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> "SnodeOptions":
        """Options from a case's ``snode_*`` hyper-parameters; an unknown key is a :class:`UserError`."""
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in hparams.items():
            name = key[len(PREFIX):]
            if not key.startswith(PREFIX) or name not in known:
                valid = [PREFIX + k for k in sorted(known)]
                raise UserError(f"unknown SNODE option {key!r}{nearest(key, valid)}; valid: {', '.join(valid)}")
            values[name] = value
        return cls(**values)

    def elements_for(self, n_times: int) -> int:
        """E of (M2) for ``n_times`` observation times (``elements`` if set, else about p intervals per element)."""
        return self.elements if self.elements is not None else max(1, round((n_times - 1) / self.degree))

    @property
    def nodes_per_element(self) -> int:
        """Q of (M7): ``nodes`` if set, else p + 1."""
        return self.nodes if self.nodes is not None else self.degree + 1


def is_snode_option(key: str) -> bool:
    """Whether the hyper-parameter ``key`` is one of SNODE's (``snode_*``)."""
    return key.startswith(PREFIX)


def inert_options(hparams: Mapping[str, Any]) -> list[str]:
    """The ``snode_*`` keys of a case's ``hparams`` that the others leave without effect: the dual ascent's
    (``snode_dual_*``, (M13)) outside the augmented variant, and ``snode_gamma_max`` without a continuation
    (``snode_gamma_growth`` 1, (M14) step 3). The harness warns that they are ignored, as for another method's
    options. Raises :class:`UserError` on an invalid option."""
    options = SnodeOptions.from_hparams({k: v for k, v in hparams.items() if is_snode_option(k)})
    inert = [f"{PREFIX}dual_every", f"{PREFIX}dual_tolerance"] if options.variant != "augmented" else []
    if options.gamma_growth == 1:
        inert.append(f"{PREFIX}gamma_max")
    return sorted(key for key in inert if key in hparams)


def _integer(name: str, value, minimum: int, null: str | None = None, maximum: int = MAX_COUNT) -> None:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value != int(value) or not minimum <= value <= maximum):
        alternative = f" or null ({null})" if null else ""
        raise UserError(f"SNODE option {PREFIX}{name} must be an integer from {minimum} to {maximum}"
                        f"{alternative}, got {value!r}")


def _number(name: str, value, *, minimum: float, strict: bool, null: str | None = None) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        alternative = f" or null ({null})" if null else ""
        raise UserError(f"SNODE option {PREFIX}{name} must be a finite number {bound}{alternative}, got {value!r}")


def _choice(name: str, value, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise UserError(f"SNODE option {PREFIX}{name} must be one of {', '.join(valid)}, got {value!r}")
