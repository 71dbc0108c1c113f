"""Block-to-block fluctuations: sample what a receiver observes in one block, for any block size.

A block is ``N`` pulses. Each pulse ends in exactly one of 12 observed cells (intensity k, matched basis X or Z,
detection without or with a bit error) or in none of them (no detection, or mismatched bases, discarded at
sifting), so the cell counts are multinomial(N, cell probabilities). They are drawn as a chain of conditional
binomials, ``c_i ~ Binomial(N - sum_{j<i} c_j, p_i / (1 - sum_{j<i} p_j))``, which is the multinomial exactly.

Each binomial is the quantile of one uniform (:func:`binomial_quantile`):
- mean below ``SMALL_MEAN`` = 10 (of the rarer outcome): inversion of the binomial distribution function, summed
  term by term in float64 (relative error ~1e-15) up to 31 counts: exact but for counts of 32 and more, which
  become 32 (their probability is below P(Poisson(10) >= 32) = 2.5e-8, the binomial's upper tail being lighter
  than the Poisson's of equal mean: T. W. Anderson & S. M. Samuels, Proc. 5th Berkeley Symp. 1, 1 (1967));
- mean of 10 and above: the one-term Cornish-Fisher quantile with continuity correction,
  ``floor(m + s (z + g (z^2 - 1) / 6) + 1/2)``, ``m, s, g`` the binomial's mean, standard deviation and skewness
  ``(1 - 2p) / s``, ``z`` the normal quantile of the uniform. The skewness term removes the ``O(1/s)`` error of
  the normal approximation and leaves ``O(1/s^2)`` (Edgeworth expansion of a lattice law, C.-G. Esseen, Acta Math.
  77, 1 (1945)). Measured against the exact distribution function (``tests/test_finite_key.py``, every p from
  1e-6 to 1/2), the Kolmogorov distance is below ``0.015 / m``: 1.5e-3 at the threshold, 1.5e-5 at m = 1000.
  A Monte Carlo of T trials resolves a probability only to ``~0.5 / sqrt(T)`` (5e-3 at 1e4 trials), so the
  approximation is invisible below ~1e5 trials and shrinks wherever counts are large, which is where a block's
  key is decided. ``z`` is computed in float32 (a Kolmogorov error below ``sup |z phi(z)| 2^-24 ~ 1e-8``).

This costs ~27-30 ns a cell on a 2-core CPU, against ~50-85 ns for NumPy's exact ``Generator.multinomial`` and
~2 us for ``jax.random.binomial``'s rejection loops under ``vmap`` (``benchmarks/bench_samplers.py``).

Common random numbers. Cell ``i`` draws uniform ``i`` of the key's stream (``qkdjax.montecarlo.uniforms``), and
both branches map it monotonically to a count: the same key gives two designs the same uniforms cell by cell, and
more probability or more pulses never give fewer counts of a cell (but where the mean crosses ``SMALL_MEAN``: the
branches may differ there by a count, for a share of uniforms below their Kolmogorov distance). The chain's later cells see the earlier cells'
counts through the remaining pulses, so nearby designs' blocks are correlated strongly, not perfectly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from qkdjax.montecarlo.uniforms import key_seed, next_uniform
from qkdjax.protocols.bb84_finite import BlockCounts

SMALL_MEAN = 10.0  # exact inversion below this mean, Cornish-Fisher at and above
INVERSION_STEPS = 32  # terms of the inversion, summed for every lane (module docstring: the tail beyond)


def cell_probabilities(matched, probs, gain, error_gain) -> jax.Array:
    """Per-pulse probabilities of the 12 observed cells, shaped [basis (X, Z), outcome (correct, error), intensity].

    ``matched = (w_X, w_Z)``: the probability that both parties pick X (Z), a number or one per intensity.
    ``gain`` and ``error_gain <= gain`` are probabilities per pulse (``qkdjax.physics.detector``: a gate gives
    at most one detection event, afterpulses included), so the cells form a probability distribution.
    """
    per_outcome = jnp.stack([gain - error_gain, error_gain]) * probs  # [outcome, intensity]
    basis = jnp.stack([jnp.broadcast_to(w, probs.shape) for w in matched])  # [basis, intensity]
    return basis[:, None, :] * per_outcome


def binomial_quantile(u, trials, p) -> jax.Array:
    """The Binomial(``trials``, ``p``) count at uniform ``u`` in (0, 1), nondecreasing in ``u`` (and in ``p`` and
    ``trials`` within each branch).

    Draws the rarer outcome (``p > 1/2``: ``trials - Binomial(trials, 1 - p)`` at ``1 - u``) so the mean that picks
    the method is the smaller one.
    """
    flip = p > 0.5
    q = jnp.where(flip, 1.0 - p, p)
    v = jnp.where(flip, 1.0 - u, u)
    mean = trials * q
    small = mean < SMALL_MEAN
    count = jnp.where(small, _inverted(v, trials, q), _cornish_fisher(v, trials, q, mean))
    return jnp.where(flip, trials - count, count)


def _inverted(u, trials, q) -> jax.Array:
    """Inversion, ``q <= 1/2``: the number of k < ``INVERSION_STEPS`` with F(k) < u, F the distribution function.

    Multiplications by constants' reciprocals, not divisions: a division costs several multiplications here."""
    odds = q / (1.0 - q)
    pmf = jnp.exp(trials * jnp.log1p(-q))  # >= 2^-(2 SMALL_MEAN / ln 2) where used: no underflow
    cdf, count = pmf, jnp.zeros_like(u)
    for k in range(INVERSION_STEPS):  # unrolled: one fused pass over the lanes
        count = count + (u > cdf)
        pmf = pmf * ((trials - k) * odds * (1.0 / (k + 1)))
        cdf = cdf + pmf
    return jnp.minimum(count, trials)  # F(trials) may round below u


def _cornish_fisher(u, trials, q, mean) -> jax.Array:
    """One-term Cornish-Fisher quantile with continuity correction (module docstring: its error)."""
    sd = jnp.sqrt(mean * (1.0 - q))
    skewness = (1.0 - 2.0 * q) / jnp.maximum(sd, 1.0)  # sd < 1 only where inversion is used instead
    tail = jnp.minimum(u, 1.0 - u)  # float32 quantile of the smaller tail: no rounding of u to 1
    z = jnp.copysign(ndtri(tail.astype(jnp.float32)).astype(jnp.float64), u - 0.5)
    return jnp.clip(jnp.floor(mean + sd * (z + skewness * (z * z - 1.0) / 6.0) + 0.5), 0.0, trials)


def sample_multinomial(key, total, cell_probs, quantile=binomial_quantile) -> jax.Array:
    """Counts of ``total`` trials in cells of probabilities ``cell_probs`` (summing to <= 1; the rest is unobserved).

    ``quantile(u, trials, p)`` draws each conditional binomial; ``benchmarks/bench_samplers.py`` swaps in one
    branch, or none, to measure what the loop and each branch cost."""
    flat = cell_probs.ravel()
    mass_before = jnp.concatenate([jnp.zeros(1), jnp.cumsum(flat)[:-1]])
    conditional = jnp.clip(flat / jnp.maximum(1.0 - mass_before, 1e-300), 0.0, 1.0)

    def draw(carry, p):
        remaining, state = carry
        state, u = next_uniform(state)
        count = quantile(u, remaining, p)
        return (remaining - count, state), count

    # A loop over the cells, not unrolled: one cell's code compiles (0.4 s, against 2.4 s unrolled), and each pass
    # over the lanes is heavy enough (the inversion's steps, a normal quantile) that the loop's memory traffic is
    # lost in it. Each step makes its own uniform: 19 % faster than reading them from an array made beforehand.
    _, counts = jax.lax.scan(draw, (total, key_seed(key)), conditional)
    return counts.reshape(cell_probs.shape)


def sample_block(key, pulses, matched, probs, gain, error_gain) -> BlockCounts:
    """Observed detections and errors per intensity and basis in one block of ``pulses`` pulses."""
    counts = sample_multinomial(key, jnp.round(pulses), cell_probabilities(matched, probs, gain, error_gain))
    (x_correct, x_error), (z_correct, z_error) = counts
    return BlockCounts(x_correct + x_error, x_error, z_correct + z_error, z_error)
