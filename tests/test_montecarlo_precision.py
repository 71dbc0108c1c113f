"""The precision every Monte Carlo estimate carries (qkdjax.montecarlo.estimates): Wilson score intervals against
SciPy, standard errors against SciPy, and coverage of the exact value at the nominal rate. (Cube standard errors
against the kept trials: tests/test_common_random_numbers.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from qkdjax.montecarlo.estimates import mean_estimate, probability_estimate, standard_error, wilson_interval
from qkdjax.network.availability import Reliability, sample_trials


@pytest.mark.parametrize("trials", [1, 2, 7, 40, 200, 10_000])
def test_wilson_interval_is_scipys(trials):
    for successes in sorted({0, 1, trials // 3, trials // 2, trials - 1, trials}):
        low, high = wilson_interval(jnp.float64(successes), trials)
        expected = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
        np.testing.assert_allclose([float(low), float(high)], [expected.low, expected.high], rtol=1e-12, atol=1e-15)
        assert 0.0 <= float(low) <= successes / trials <= float(high) <= 1.0


def test_estimates_of_trials_along_an_axis():
    outcomes = np.random.default_rng(1).random((5, 30)) < 0.3
    estimate = probability_estimate("p", jnp.asarray(outcomes), axis=1)
    np.testing.assert_array_equal(estimate["p"], outcomes.mean(axis=1))
    for row, low, high in zip(outcomes, estimate["p_ci_low"], estimate["p_ci_high"]):
        expected = stats.binomtest(int(row.sum()), row.size).proportion_ci(method="wilson")
        np.testing.assert_allclose([low, high], [expected.low, expected.high], rtol=1e-12)
    values = np.random.default_rng(2).lognormal(size=(30, 4))
    estimate = mean_estimate("m", jnp.asarray(values))
    np.testing.assert_allclose(estimate["m_stderr"], stats.sem(values, axis=0), rtol=1e-12)
    assert float(standard_error(jnp.ones(1))) == np.inf  # one trial: no spread to estimate


@pytest.mark.device
def test_intervals_cover_the_exact_value_at_the_nominal_rate():
    """One hop, demand at its rate, no store: the demand is met iff the hop is up at the start and does not fail
    before the last step starts (memoryless), P = A exp(-(T - dt) / MTBF); availability A = MTBF / (MTBF + MTTR).
    100 estimates of 20 trials each: the 95 % intervals should cover the exact values about 95 times."""
    mtbf_h, mttr_h, horizon_h, steps, group = 1500.0, 10.0, 1000.0, 20_000, 20
    hop = Reliability(*(jnp.full((1, 1), v) for v in (mtbf_h, mttr_h, 1.0, 0.0)))
    node = Reliability(*(jnp.full((1, 0), v) for v in (mtbf_h, mttr_h, 1.0, 0.0)))
    args = (jnp.full((1, 1), 1e3), jnp.full((1, 1), 1e12), jnp.ones((1, 1), bool), hop, node, 0.0, 1e3, horizon_h, steps)
    trials = sample_trials(jax.random.key(7), *args, trials=100 * group)
    available = mtbf_h / (mtbf_h + mttr_h)
    met = probability_estimate("met", trials.demand_met.reshape(100, group), axis=1)
    exact = available * np.exp(-(horizon_h - horizon_h / steps) / mtbf_h)
    covered = (met["met_ci_low"] <= exact) & (exact <= met["met_ci_high"])
    assert 0.88 <= float(covered.mean()) <= 1.0, float(covered.mean())
    mean = mean_estimate("up", trials.availability.reshape(100, group), axis=1)
    covered = np.abs(mean["up"] - available) <= 1.96 * mean["up_stderr"]
    assert 0.85 <= float(covered.mean()) <= 1.0, float(covered.mean())
