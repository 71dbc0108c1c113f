"""Confidence bounds of the finite-key estimators (qkdjax.tail_bounds): valid on sampled data, ordered, convergent."""

from decimal import Decimal, getcontext

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qkdjax.tail_bounds import FINITE_KEY_BOUNDS, count_bounds, relative_entropy

EPS = 0.01  # large enough that a failing bound shows in 20 000 samples, small enough to be a tail
SAMPLES = 20_000
LABEL_PROBS = np.array([0.8, 0.15, 0.05])  # signal, decoy, weak: the intensity labels of the detections
ALLOWED = EPS + 4.0 * np.sqrt(EPS / SAMPLES)  # failure frequency a valid bound stays below (4 sigma)

bounds_of = jax.jit(jax.vmap(count_bounds, (0, None, None)), static_argnums=2)


def failure_rates(samples, expected, method):
    """Frequency with which the expected counts fall below the lower bound and above the upper bound."""
    lower, upper = (np.asarray(b) for b in bounds_of(jnp.asarray(samples, float), EPS, method))
    return np.mean(expected > upper, axis=0), np.mean(expected < lower, axis=0)


@pytest.mark.parametrize("method", ["hoeffding_lim2014", "hoeffding_per_intensity"])
@pytest.mark.parametrize("detections", [40, 2_000, 1_000_000])
def test_label_sampling_bounds_hold_with_the_stated_probability(method, detections):
    """Lim's model: the ``n`` detections of a basis carry independent intensity labels; each bound on ``n p_k``."""
    samples = np.random.default_rng(detections).multinomial(detections, LABEL_PROBS, size=SAMPLES)
    for rate in failure_rates(samples, detections * LABEL_PROBS, method):
        assert np.all(rate <= ALLOWED), rate


@pytest.mark.parametrize("mean", [3.0, 40.0, 1e6])
def test_chernoff_bounds_hold_for_independent_pulses(mean):
    """Chernoff's model: each count is a sum of independent Bernoulli trials (pulses), binomial here."""
    means = np.array([mean, mean / 4, mean / 16])
    pulses = 10**9
    samples = np.random.default_rng(int(mean)).binomial(pulses, means / pulses, size=(SAMPLES, 3))
    for rate in failure_rates(samples, means, "chernoff"):
        assert np.all(rate <= ALLOWED), rate


def test_hoeffding_with_the_own_count_in_place_of_n_is_not_a_bound():
    """The check has the power to see an invalid bound: ``sqrt(n_k/2 ln(1/eps))`` fails a rare intensity."""
    detections = 10_000
    samples = np.random.default_rng(1).multinomial(detections, LABEL_PROBS, size=SAMPLES)
    naive = np.sqrt(samples / 2.0 * np.log(1 / EPS))
    rate = np.mean(detections * LABEL_PROBS[2] > samples[:, 2] + naive[:, 2])
    assert rate > 5 * EPS


def widths(counts, method, eps=1e-10):
    lower, upper = count_bounds(jnp.asarray(counts, float), eps, method)
    return np.asarray(upper - lower)


def test_rare_intensities_get_tighter_bounds_than_lims_single_deviation():
    counts = np.array([9_000.0, 900.0, 100.0])
    lim, per_intensity, chernoff = (widths(counts, m) for m in FINITE_KEY_BOUNDS)
    assert np.all(per_intensity <= lim)  # Hoeffding's Theorem 1 is never looser than its quadratic relaxation
    assert chernoff[2] < lim[2] / 2 and per_intensity[2] < lim[2] / 2  # the weak intensity: much tighter
    assert chernoff[1] < lim[1]


def test_relative_widths_shrink_alike_as_the_block_grows():
    for method in FINITE_KEY_BOUNDS:
        relative = [widths(np.array([0.8, 0.15, 0.05]) * n, method)[1] / (0.15 * n) for n in (1e6, 1e12)]
        assert relative[1] < relative[0] / 500  # ~ 1/sqrt(n)
        assert relative[1] < 1e-4


def test_per_intensity_bounds_are_exact_roots_and_carry_gradients():
    # a 1e15-count block: q ~ 1 - 1e-6 keeps 16 digits, the deviation 1 - q - 1e-6 ~ 1e-13 of them 1e-7 relative
    for counts, rtol in (([5_000.0, 400.0, 3.0], 1e-9), ([2.0, 1.0, 1.0], 1e-9), ([1e15, 1e9, 30.0], 1e-5)):
        counts = jnp.array(counts)
        lower, upper = count_bounds(counts, 1e-9, "hoeffding_per_intensity")
        n, log_inv_eps = float(jnp.sum(counts)), -np.log(1e-9)
        f = counts / n
        for bound in (lower, upper):
            np.testing.assert_allclose(n * relative_entropy(f, bound / n), log_inv_eps, rtol=rtol)
    grad = jax.grad(lambda c: count_bounds(c, 1e-9, "hoeffding_per_intensity")[0][1])(counts)
    assert np.all(np.isfinite(grad)) and grad[1] > 0
    # no count, no lower bound above zero; all labels one intensity: the upper bound is the total
    lower, upper = count_bounds(jnp.array([10.0, 0.0, 0.0]), 1e-9, "hoeffding_per_intensity")
    assert float(lower[1]) == 0.0 and float(upper[0]) == pytest.approx(10.0)


def test_relative_entropy_keeps_its_precision_in_the_tails_and_near_its_zero():
    getcontext().prec = 50
    worst = 0.0
    for f in (1e-12, 1e-3, 0.3, 0.5, 0.99, 0.999999):
        for q in (1e-300, 1e-15, f * (1 - 1e-7), f * 0.6, f * 1.0000001, f + (1 - f) * 0.4, 1 - 1e-15):
            exact = Decimal(f) * (Decimal(f) / Decimal(q)).ln() + (1 - Decimal(f)) * ((1 - Decimal(f)) / (1 - Decimal(q))).ln()
            worst = max(worst, abs(float(relative_entropy(jnp.asarray(f), jnp.asarray(q))) / float(exact) - 1))
    assert worst < 1e-12


def test_an_unknown_bound_is_refused():
    with pytest.raises(ValueError, match="chernoff"):
        count_bounds(jnp.ones(3), 1e-9, "bernstein")
