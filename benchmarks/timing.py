"""Shared by the benchmark scripts: best-of-n wall time, and the line naming the device."""

import time

import jax


def timed(fn, repeat=1):
    """``fn()`` and its best wall time over ``repeat`` calls (the first touches of fresh memory vary a lot).

    JAX arrays in the result are waited for: JAX dispatches asynchronously.
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return result, best


def device_line() -> str:
    return f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}"
