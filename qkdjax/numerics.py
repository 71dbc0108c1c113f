"""Generic numerics shared by every model: safe division, entropies, decibels.

Written for float64 scalars or arrays of one grid point; nothing here knows which protocol or link calls it.
"""

import jax.numpy as jnp
from jax.scipy.special import xlogy


def safe_divide(numerator, denominator):
    """``numerator / denominator``, and 0 where the denominator is 0 (no detections means no rate, not NaN)."""
    nonzero = denominator != 0
    return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), 0.0)


def safe_sqrt(x):
    """``sqrt(max(x, 0))`` whose gradient is 0, not NaN, where ``x <= 0`` (sqrt's slope is infinite at 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def binary_entropy(p):
    """Shannon entropy of a bit, ``H2(p) = -p log2 p - (1-p) log2(1-p)``, with ``p`` clipped to [0, 1/2]."""
    p = jnp.clip(p, 0.0, 0.5)
    return -(xlogy(p, p) + xlogy(1.0 - p, 1.0 - p)) / jnp.log(2.0)


def db_to_transmittance(loss_db):
    """Transmittance ``10^(-dB/10)`` of a loss in dB, as ``exp(-ln10/10 dB)``: full relative precision at 200 dB."""
    return jnp.exp(-jnp.log(10.0) / 10.0 * loss_db)


def transmittance_to_db(transmittance):
    """Loss in dB of a transmittance, ``-10 log10(eta)``."""
    return -10.0 * jnp.log10(transmittance)
