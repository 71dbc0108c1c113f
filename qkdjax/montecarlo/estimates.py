"""The precision of Monte Carlo estimates: Wilson score intervals for probabilities, standard errors for means.

Every probability a study estimates from ``n`` trials, ``p = k / n``, comes with the 95 % Wilson score interval
(E. B. Wilson, J. Am. Stat. Assoc. 22, 209 (1927)): the set of true probabilities for which ``p`` lies within
``z`` binomial standard deviations, with ``z`` the standard normal quantile at 0.975. Unlike ``p +- z
sqrt(p (1 - p) / n)`` it stays inside [0, 1] and is not empty at ``p = 0`` or 1 (a demand met in every trial is
not met with certainty), and its coverage is close to nominal down to a few trials (L. D. Brown, T. T. Cai,
A. DasGupta, Stat. Sci. 16, 101 (2001)). Every mean comes with its standard error, the sample standard
deviation over ``sqrt(n)``; ``mean +- z stderr`` is its 95 % interval by the central limit theorem.

Also here: the cube variables of Monte Carlo summaries, and the random streams of a trial.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qkdjax.sweep import Output

Z_95 = 1.959963984540054  # standard normal quantile at 0.975: two-sided 95 %


def wilson_interval(successes, trials: int, z: float = Z_95) -> tuple[jax.Array, jax.Array]:
    """Low and high ends of the Wilson score interval of ``successes`` out of ``trials`` (Wilson 1927):
    ``(p + z^2 / 2n -+ h) / (1 + z^2 / n)``, ``h = z sqrt(p (1 - p) / n + z^2 / 4n^2)``, ``p = successes / trials``.

    Written as ``p^2 / (p + z^2 / 2n + h)`` and ``1 - (1 - p)^2 / (1 - p + z^2 / 2n + h)`` (the same by
    ``(c - h)(c + h) = p^2 (1 + z^2 / n)``), which have no cancellation: exactly 0 at ``p = 0`` and 1 at ``p = 1``.
    """
    p = successes / trials
    half_z2n = z**2 / (2.0 * trials)
    h = z * jnp.sqrt(p * (1.0 - p) / trials + half_z2n / (2.0 * trials))
    return p**2 / (p + half_z2n + h), 1.0 - (1.0 - p) ** 2 / (1.0 - p + half_z2n + h)


def standard_error(values, axis: int = 0) -> jax.Array:
    """Standard error of the mean of ``values`` along ``axis``: ``std(ddof=1) / sqrt(n)``; ``inf`` for one value
    (one trial says nothing about its spread)."""
    n = values.shape[axis]
    if n < 2:
        return jnp.full(jnp.mean(values, axis=axis).shape, jnp.inf)
    return jnp.std(values, axis=axis, ddof=1) / jnp.sqrt(n)


def probability_estimate(name: str, outcomes, axis: int = 0) -> dict[str, jax.Array]:
    """``name`` (the fraction of True ``outcomes`` along ``axis``) and its 95 % Wilson interval ``name_ci_low``,
    ``name_ci_high``."""
    trials = outcomes.shape[axis]
    successes = jnp.sum(outcomes, axis=axis, dtype=jnp.float64)
    low, high = wilson_interval(successes, trials)
    return {name: successes / trials, f"{name}_ci_low": low, f"{name}_ci_high": high}


def mean_estimate(name: str, values, axis: int = 0) -> dict[str, jax.Array]:
    """``name`` (the mean of ``values`` along ``axis``) and its standard error ``name_stderr``."""
    return {name: jnp.mean(values, axis=axis), f"{name}_stderr": standard_error(values, axis)}


QUANTILES = (0.05, 0.5, 0.95)  # of every Monte Carlo summary's ``_quantile`` variable (dim ``quantile``)


def stderr_output(name: str, units: str, long_name: str) -> dict[str, Output]:
    """``name_stderr``: the standard error of the Monte Carlo mean ``name``."""
    return {f"{name}_stderr": Output(units, f"standard error of the {long_name} (std / sqrt(trials); 95 % interval: +- 1.96 stderr)")}


def probability_outputs(name: str, long_name: str, role: str | None = None) -> dict[str, Output]:
    """A Monte Carlo probability ``name`` (with its ``role``) and its 95 % Wilson score interval ``name_ci_low``,
    ``name_ci_high``."""
    return {
        name: Output("1", long_name, role=role),
        f"{name}_ci_low": Output("1", f"low end of the 95 % Wilson score interval of the {long_name}"),
        f"{name}_ci_high": Output("1", f"high end of the 95 % Wilson score interval of the {long_name}"),
    }


def summary_outputs(name: str, units: str, long_name: str) -> dict[str, Output]:
    """Mean (and its standard error), standard deviation and quantiles of a Monte Carlo quantity."""
    return {
        f"{name}_mean": Output(units, f"mean {long_name} over Monte Carlo trials"),
        **stderr_output(f"{name}_mean", units, f"mean {long_name}"),
        f"{name}_std": Output(units, f"standard deviation of the {long_name} over Monte Carlo trials"),
        f"{name}_quantile": Output(units, f"quantiles of the {long_name} over Monte Carlo trials", ("quantile",)),
    }


def summarise(name: str, values: jax.Array) -> dict[str, jax.Array]:
    """``summary_outputs(name, ...)`` of the trial values ``values``."""
    return {
        **mean_estimate(f"{name}_mean", values),
        f"{name}_std": jnp.std(values, ddof=1) if values.size > 1 else jnp.zeros(()),
        f"{name}_quantile": jnp.quantile(values, jnp.asarray(QUANTILES)),
    }


ABORT_OUTPUT = probability_outputs("abort_probability", "probability that a block aborts (QBER above threshold or no key)")

# Trial t of a point draws from fold_in(key, t), and each random process of the trial from fold_in(that, its id):
# adding a process shifts no other's stream, and a block and a pass draw their counts from the same stream.
COUNTS_STREAM, FADING_STREAM = 0, 1


def trial_stream(key, trial, process: int) -> jax.Array:
    """Key of random process ``process`` in trial ``trial``."""
    return jax.random.fold_in(jax.random.fold_in(key, trial), process)
