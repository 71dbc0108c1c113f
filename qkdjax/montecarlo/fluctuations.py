"""Block-to-block fluctuations: sample what a receiver observes in one block, exactly, for any block size.

A block is ``N`` pulses. Each pulse ends in exactly one of 12 observed cells (intensity k, matched basis X or Z,
detection without or with a bit error) or in none of them (no detection, or mismatched bases, discarded at
sifting), so the cell counts are multinomial(N, cell probabilities). They are drawn as a chain of conditional
binomials, ``c_i ~ Binomial(N - sum_{j<i} c_j, p_i / (1 - sum_{j<i} p_j))``, which is the multinomial exactly;
``jax.random.binomial`` samples each exactly (inversion for small means, BTRS rejection for large) at any N.

Common random numbers. Cell ``i`` draws from the ``i``-th key of ``split(key, 12)``, so the same key gives two
designs the same uniforms cell by cell. Inversion (``n p <= 10``) maps them monotonically to counts: more
probability or more pulses, never fewer counts. BTRS (W. Hörmann, J. Stat. Comput. Simul. 46, 101 (1993))
transforms its first candidate monotonically in the mean too (for a spread well above one count), but accepts or
rejects it by a test that depends on ``n`` and ``p``; where the decision flips (measured: 1-8 % of draws at means
1e3-1e4, even for designs 0.001 dB apart) that cell, and through the remaining count every later cell, draws
afresh. So nearby designs' blocks are strongly, not perfectly, correlated
(trial key lengths 4 km apart correlate at ~0.99 for n_X = 1e5), and a Monte Carlo difference is sharp but not
monotone trial by trial.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qkdjax.protocols.bb84_finite import BlockCounts


def cell_probabilities(matched, probs, gain, error_gain) -> jax.Array:
    """Per-pulse probabilities of the 12 observed cells, shaped [basis (X, Z), outcome (correct, error), intensity].

    ``matched = (w_X, w_Z)``: the probability that both parties pick X (Z), a number or one per intensity.
    ``gain`` and ``error_gain <= gain`` are probabilities per pulse (``qkdjax.physics.detector``: a gate gives
    at most one detection event, afterpulses included), so the cells form a probability distribution.
    """
    per_outcome = jnp.stack([gain - error_gain, error_gain]) * probs  # [outcome, intensity]
    basis = jnp.stack([jnp.broadcast_to(w, probs.shape) for w in matched])  # [basis, intensity]
    return basis[:, None, :] * per_outcome


def sample_multinomial(key, total, cell_probs) -> jax.Array:
    """Counts of ``total`` trials in cells of probabilities ``cell_probs`` (summing to <= 1; the rest is unobserved)."""
    flat = cell_probs.ravel()
    mass_before = jnp.concatenate([jnp.zeros(1), jnp.cumsum(flat)[:-1]])
    conditional = jnp.clip(flat / jnp.maximum(1.0 - mass_before, 1e-300), 0.0, 1.0)

    def draw(remaining, inputs):
        cell_key, p = inputs
        count = jax.random.binomial(cell_key, remaining, p)
        return remaining - count, count

    _, counts = jax.lax.scan(draw, total, (jax.random.split(key, flat.size), conditional))
    return counts.reshape(cell_probs.shape)


def sample_block(key, pulses, matched, probs, gain, error_gain) -> BlockCounts:
    """Observed detections and errors per intensity and basis in one block of ``pulses`` pulses."""
    counts = sample_multinomial(key, jnp.round(pulses), cell_probabilities(matched, probs, gain, error_gain))
    (x_correct, x_error), (z_correct, z_error) = counts
    return BlockCounts(x_correct + x_error, x_error, z_correct + z_error, z_error)
