"""Annualised costs: a capital expense spread over an asset's life as an equal yearly payment, plus running costs.

A capital expense ``P`` paid now is worth, at a discount rate ``r`` per year over ``n`` years, the same as ``n``
equal end-of-year payments ``A = P * CRF(r, n)``, with the capital recovery factor (the annuity formula of
engineering economics: W. G. Sullivan, E. M. Wicks, C. P. Koelling, Engineering Economy, 17th ed., Pearson (2019),
Ch. 4, the (A/P, i, N) factor; NREL's "Simple Levelized Cost of Energy" uses the same factor)

    CRF(r, n) = r (1 + r)^n / ((1 + r)^n - 1) = r / (1 - (1 + r)^-n).

At ``r = 0`` the capital is repaid in ``n`` equal parts, ``CRF = 1/n``. Written as ``r / -expm1(-n log1p(r))`` the
factor keeps full precision down to tiny rates (no ``(1 + r)^n - 1`` cancellation); below ``|r n| = 1e-8`` its
first-order expansion ``1/n + r (n + 1) / (2n)`` is used (the next term is below 1e-17 of the value), so the value
and the derivative are exact at ``r = 0`` as well.

Both functions are elementwise and work on Python floats, NumPy arrays and JAX arrays (also under ``jit``, ``grad``
and ``vmap``): they take ``log1p``/``expm1``/``where`` from ``jax.numpy`` when any input is a JAX array. Domain:
``r > -1`` and ``n > 0`` (not checked, so they can run inside a jitted sweep).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

SERIES_BELOW = 1e-8  # |r n| below which CRF takes its first-order expansion in r


def _namespace(*values):
    return jnp if any(isinstance(value, jax.Array) for value in values) else np


def capital_recovery_factor(discount_rate, lifetime_years):
    """``r (1+r)^n / ((1+r)^n - 1)``: the yearly payment, per unit of capital, that repays it over ``n`` years at
    rate ``r`` (``1/n`` at ``r = 0``). Elementwise, broadcasting; NumPy or JAX arrays."""
    xp = _namespace(discount_rate, lifetime_years)
    r = xp.asarray(discount_rate, dtype=float)
    n = xp.asarray(lifetime_years, dtype=float)
    small = xp.abs(r * n) < SERIES_BELOW
    r_safe = xp.where(small, 1.0, r)  # keeps the exact branch (and its gradient) finite where it is not used
    exact = r_safe / -xp.expm1(-n * xp.log1p(r_safe))
    series = 1.0 / n + r * (n + 1.0) / (2.0 * n)
    crf = xp.where(small, series, exact)
    return crf[()] if xp is np else crf  # NumPy: a scalar for scalar inputs


def annualised_cost(capex, opex_per_year, discount_rate, lifetime_years):
    """Yearly cost of an asset: ``capex * CRF(r, n) + opex_per_year`` (same currency; ``capex`` paid once, up front).
    Elementwise, broadcasting; NumPy or JAX arrays."""
    return capex * capital_recovery_factor(discount_rate, lifetime_years) + opex_per_year
