"""Cheap uniforms for Monte Carlo draws: a SplitMix64 stream seeded by a JAX key's bits.

``jax.random`` spends one Threefry-2x32 hash (20 rounds) on every 32 bits; on a CPU that is several times the cost
of the arithmetic that turns a uniform into a count or a transmittance. A sampler that needs a handful of uniforms
per key (a block's 12 cells, a pass step's two fading factors) takes them here instead: word ``i`` of key ``k`` is
``mix64(seed(k) + (i + 1) gamma)``, ``seed(k)`` the key's own bits (already a Threefry output) and ``mix64`` the
output function of SplitMix64 (G. L. Steele Jr., D. Lea & C. H. Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014, with D. Stafford's "Mix13" constants), whose stream passes BigCrush. Two keys' streams
overlap only if their seeds lie within ``count`` steps of gamma of each other: probability ``~2 count / 2^64`` per
pair of keys. Costs ~2 ns per uniform against ~10 ns for ``jax.random.uniform`` (``benchmarks/bench_samplers.py``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def mix64(x):
    """SplitMix64's finaliser: a bijection of 64-bit words that scatters every input bit over the output."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def key_seed(key) -> jax.Array:
    """The 64 bits of a key (threefry: its two words; wider implementations: their word pairs XOR-ed)."""
    words = jax.random.key_data(key).astype(jnp.uint64)
    pairs = (words[..., 0::2] << np.uint64(32)) | words[..., 1::2]
    return jax.lax.reduce(pairs, np.uint64(0), jax.lax.bitwise_xor, (pairs.ndim - 1,))


def unit_interval(bits) -> jax.Array:
    """A word's top 53 bits as a uniform on the 2^-53 grid strictly inside (0, 1) (midpoints: ``log(u)``,
    ``log1p(-u)``, ``ndtri(u)`` stay finite)."""
    return ((bits >> np.uint64(11)).astype(jnp.float64) + 0.5) * 2.0**-53


def stream_uniforms(key, shape: int | tuple[int, ...]) -> jax.Array:
    """Uniforms of ``shape``: the stream's first words, in C order."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    steps = jnp.arange(1, math.prod(shape) + 1, dtype=jnp.uint64) * GOLDEN_GAMMA
    return unit_interval(mix64(key_seed(key) + steps)).reshape(shape)


def next_uniform(state) -> tuple[jax.Array, jax.Array]:
    """``(state, u)``: the stream's next uniform, from ``state = key_seed(key)`` before the first word.

    For loops that draw one uniform a step (the values of :func:`stream_uniforms`, in order): the word is made
    where it is used, not read from an array made beforehand."""
    state = state + GOLDEN_GAMMA
    return state, unit_interval(mix64(state))
