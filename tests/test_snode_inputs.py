"""Bad arguments to SNODE's library pieces (:mod:`nodebench.snode`): a ValueError or TypeError naming the argument,
never a silent wrong answer or a deep error."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nodebench.snode import ElementBasis, LegendreSeries, SpectralObjective


def _bad_snode_inputs():
    t = torch.linspace(0.0, 5.0, 51)
    y = torch.stack([torch.cos(t), -torch.sin(t)], -1)[None]
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    basis = ElementBasis(0.0, 5.0, degree=4, elements=3)
    z = basis.fit(t, y, ridge=1e-8)

    def objective(field=lambda t, x: net(x), t_obs=t, y_obs=y):
        return SpectralObjective(field, basis, t_obs, y_obs, nodes_per_element=5)

    return {
        # silent wrong answers before: a fit to times the basis does not cover, integer coefficients, a residual
        # broadcast from a field of the wrong shape, a negative penalty weight
        "t outside the horizon": (lambda: basis.fit(t + 10, y), "inside the basis's horizon"),
        "y of integers": (lambda: basis.fit(t, y.long()), "y_obs must be a floating-point tensor"),
        "field of the wrong shape": (lambda: objective(field=lambda t, x: net(x)[..., :1]).residual(z),
                                     r"field returned shape \(1, 15, 1\) for node states of shape \(1, 15, 2\)"),
        "negative gamma": (lambda: objective().penalty(torch.ones(1, 15, 2), -1.0, None),
                           "gamma must be a number >= 0"),
        # misleading or deep errors before ("10 observations cannot determine 13 coefficients", an MKL assertion)
        "t and y of different lengths": (lambda: basis.fit(t[:10], y), "one time per observation"),
        "t with NaN": (lambda: basis.fit(t * math.nan, y), "t_obs must be finite"),
        "objective of (T, D) observations": (lambda: objective(y_obs=y[0]), r"y_obs must have shape \(N, T, D\)"),
        "objective t and y of different lengths": (lambda: objective(t_obs=t[:10]), "one time per observation"),
        "z of the wrong shape": (lambda: objective().data_loss(z[:, :5]), r"z must have shape \(N, P, D\)"),
        "series of NaN observations": (lambda: LegendreSeries.fit(t, y[0] * math.nan, degree=3), "must be finite"),
        "series of a fractional degree": (lambda: LegendreSeries.fit(t, y[0], degree=2.5), "degree must be an integer"),
        # a NaN ridge was silently dropped (an unridged fit), an infinite one an MKL error and a torch INTERNAL ASSERT
        "series with a NaN ridge": (lambda: LegendreSeries.fit(t, y[0], degree=3, ridge=math.nan),
                                    "ridge must be a finite number >= 0, got nan"),
        "series with an infinite ridge": (lambda: LegendreSeries.fit(t, y[0], degree=3, ridge=math.inf),
                                          "ridge must be a finite number >= 0, got inf"),
        "elements with a NaN ridge": (lambda: basis.fit(t, y, ridge=math.nan), "ridge must be a finite number >= 0"),
    }


BAD_SNODE = list(_bad_snode_inputs())


@pytest.mark.parametrize("name", BAD_SNODE)
def test_bad_library_input_is_a_clear_error(name):
    call, message = _bad_snode_inputs()[name]
    with pytest.raises((ValueError, TypeError), match=message):
        call()
