"""Physics models against closed forms, published bounds and physical properties."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import evaluate, reference
from hypothesis import given, settings
from hypothesis import strategies as st

from qkdjax.numerics import binary_entropy
from qkdjax.physics.bounds import plob_bound
from qkdjax.physics.detector import click_and_error_probs, live_fraction
from qkdjax.physics.fibre import fibre_transmittance
from qkdjax.physics.source import multiphoton_prob, poisson_photon_prob
from qkdjax.protocols.bb84_decoy import sifting_factor

DECOYS = ["infinite", "vacuum_weak", "none"]


def test_fibre_transmittance_is_beer_lambert():
    assert fibre_transmittance(100.0, 0.2, 0.0) == pytest.approx(1e-2, rel=1e-14)
    assert fibre_transmittance(50.0, 0.2, 3.0) == pytest.approx(10 ** (-1.3), rel=1e-14)
    assert fibre_transmittance(1000.0, 0.2, 0.0) == pytest.approx(1e-20, rel=1e-12)


@pytest.mark.parametrize("distance_km", ["100", "200", "300", "500", "1002"])
def test_plob_bound_matches_published_values(distance_km):
    published = reference("bounds")["values_0.2_db_per_km"][distance_km]
    eta = fibre_transmittance(float(distance_km), 0.2, 0.0)
    assert plob_bound(eta) == pytest.approx(published, rel=1e-3)


def test_plob_bound_is_exact_for_tiny_transmittance():
    eta = jnp.float64(1e-20)
    assert plob_bound(eta) == pytest.approx(1e-20 / np.log(2), rel=1e-12)
    assert plob_bound(jnp.float64(1.0)) == np.inf


def test_poisson_source():
    mu = jnp.float64(0.3)
    total = sum(poisson_photon_prob(jnp.float64(n), mu) for n in range(40))
    assert total == pytest.approx(1.0, abs=1e-14)
    assert multiphoton_prob(mu) == pytest.approx(1 - np.exp(-0.3) * 1.3, rel=1e-12)
    assert multiphoton_prob(jnp.float64(1e-9)) == pytest.approx(0.5e-18, rel=1e-6)  # no cancellation


def enumerated_click_and_error(s, p, e_mis):
    """Click and error probabilities of two threshold detectors, summed over the 8 outcomes of (signal detected
    and misaligned, noise click right, noise click wrong): a double click errs half the time. Independent of
    qkdjax.physics.detector."""
    click = error = 0.0
    for signal, misaligned, right, wrong in itertools.product((0, 1), repeat=4):
        if not signal and misaligned:
            continue
        prob = (s if signal else 1 - s) * ((e_mis if misaligned else 1 - e_mis) if signal else 1.0)
        prob = prob * (p if right else 1 - p) * (p if wrong else 1 - p)
        click_right, click_wrong = right or (signal and not misaligned), wrong or (signal and misaligned)
        click += prob * (click_right or click_wrong)
        error += prob * (click_wrong * (0.5 if click_right else 1.0))
    return click, error


def test_detector_is_the_two_detector_model_with_random_double_clicks():
    from qkdjax.detectors.threshold import ThresholdDetector

    rng = np.random.default_rng(3)
    for s, p_dc, p_ap, e_mis in [(1.0, 0.5, 0.99, 0.5), (0.0, 0.5, 0.0, 0.5), *rng.uniform(0, 1, (20, 4)) * [1, 0.5, 1, 0.5]]:
        click, error = click_and_error_probs(
            jnp.float64(s),
            ThresholdDetector(efficiency=1.0, dark_count_prob=p_dc, afterpulse_prob=p_ap, dead_time_ns=0.0, misalignment=e_mis),
        )
        d = 1 - (1 - p_dc) ** 2 * (1 - s)  # no afterpulses; then each detector afterpulses with p_ap d / 2
        expected = enumerated_click_and_error(s, 1 - (1 - p_dc) * (1 - p_ap * d / 2), e_mis)
        np.testing.assert_allclose([click, error], expected, rtol=1e-12, atol=1e-300)
        assert 0 <= error <= click / 2 * (1 + 1e-15) and click <= 1


def test_detector_reduces_to_ma_2005_and_lim_2014_to_first_order():
    """Ma et al. (2005): Q = Y0 + 1 - e^{-eta mu}, EQ = Y0 / 2 + e_det (1 - e^{-eta mu}), Y0 = 2 p_dc; Lim et al.
    (2014) add afterpulses, R = D (1 + p_ap), e = p_dc + e_mis (1 - v) + p_ap D / 2. Both drop second-order terms
    (p_dc s, p_ap D s, s^2), relative errors of order s = 1 - v: at 100 km of Lim's link (s = 5e-4) they hold
    to 1e-3; where D (1 + p_ap) > 1 ours stays a probability."""
    from qkdjax.detectors.threshold import ThresholdDetector

    s = -np.expm1(-0.1 * 1e-2 * 0.5)  # 100 km, 10 % efficiency, mu = 0.5
    click, error = click_and_error_probs(
        jnp.float64(s), ThresholdDetector(efficiency=0.1, dark_count_prob=1e-6, afterpulse_prob=0.0, dead_time_ns=0.0, misalignment=0.02)
    )
    assert click == pytest.approx(2e-6 + s, rel=1e-3) and error == pytest.approx(1e-6 + 0.02 * s, rel=1e-3)
    click, error = click_and_error_probs(
        jnp.float64(s), ThresholdDetector(efficiency=0.1, dark_count_prob=6e-7, afterpulse_prob=0.04, dead_time_ns=0.0, misalignment=0.005)
    )
    d = 1 - (1 - 2 * 6e-7) * (1 - s)
    assert click == pytest.approx(d * 1.04, rel=1e-3) and error == pytest.approx(6e-7 + 0.005 * s + 0.04 * d / 2, rel=1e-3)
    click, error = click_and_error_probs(
        jnp.float64(0.9), ThresholdDetector(efficiency=1.0, dark_count_prob=0.01, afterpulse_prob=0.9, dead_time_ns=0.0, misalignment=0.01)
    )
    assert click < 1 < 0.9 * 1.9 and error < click / 2


def test_dead_time_is_non_paralysable():
    assert live_fraction(1e6, 1000.0) == pytest.approx(0.5)
    assert live_fraction(1e6, 0.0) == 1.0


def test_entropy_and_sifting():
    assert binary_entropy(jnp.float64(0.5)) == 1.0
    assert binary_entropy(jnp.float64(0.0)) == 0.0
    assert binary_entropy(jnp.float64(0.11)) == pytest.approx(0.4999, abs=1e-4)
    assert sifting_factor(0.5) == 0.5 and sifting_factor(0.9) == pytest.approx(0.82)


def test_high_rep_rate_saturates_detectors():
    point = {"link.distance_km": 0.0, "detector.dead_time_ns": 1000.0, "source.p_signal": 1.0, "source.p_decoy": 0.0}
    slow = evaluate({**point, "source.rep_rate_hz": 1e6}, "infinite")
    fast = evaluate({**point, "source.rep_rate_hz": 1e10}, "infinite")
    # Only signal pulses are sent: the click rate per detector cannot exceed 1 / dead time.
    assert fast["gain"] * 1e10 / 2 < 1e6
    assert fast["key_rate"] > slow["key_rate"]
    assert fast["key_rate_per_pulse"] < slow["key_rate_per_pulse"] / 10


@pytest.mark.parametrize("decoy", DECOYS)
def test_rates_are_finite_non_negative_and_exactly_zero_past_cutoff(decoy):
    distance = np.linspace(0.0, 1000.0, 2001)
    weak_source = {"source.mu_signal": 0.05, "source.mu_decoy": 0.02} if decoy == "none" else {}  # no decoys: mu ~ eta
    out = evaluate({"link.distance_km": distance, **weak_source}, decoy)
    for name, value in out.items():
        assert np.all(~np.isnan(value)), name
    rate = out["key_rate_per_pulse"]
    assert np.all(rate >= 0.0)
    assert rate[-1] == 0.0
    positive = rate > 0
    assert positive[0] and not positive[-1]
    cutoff = np.argmin(positive)
    assert not positive[cutoff:].any()  # once gone, the key stays exactly zero


@pytest.mark.parametrize("decoy", DECOYS)
def test_rate_below_plob_and_monotone_in_distance(decoy):
    distance = np.linspace(0.0, 300.0, 601)
    out = evaluate({"link.distance_km": distance, "detector.efficiency": 1.0, "detector.dark_count_prob": 1e-8}, decoy)
    assert np.all(out["key_rate_per_pulse"] <= out["plob_bound_per_pulse"])
    assert np.all(np.diff(out["key_rate_per_pulse"]) <= 0.0)


def test_tiny_rates_keep_full_precision():
    """Without dark counts the rate is exactly proportional to eta for eta -> 0: rate / eta must stay constant
    to 1e-9 from 1e-11 down to 1e-19 bit/pulse (naive 1 - exp(-x) or float32 would lose it entirely)."""
    distance = np.linspace(400.0, 800.0, 9)  # eta from 1e-9 (O(eta) corrections below 1e-9) to 1e-17
    out = evaluate({"link.distance_km": distance, "detector.dark_count_prob": 0.0}, "infinite")
    rate = out["key_rate_per_pulse"]
    assert 0 < rate[-1] < 1e-18
    ratio = rate / out["channel_transmittance"]
    np.testing.assert_allclose(ratio, ratio[-1], rtol=1e-9)


detectors = st.fixed_dictionaries(
    {
        "detector.efficiency": st.floats(0.01, 1.0),
        "detector.dark_count_prob": st.floats(1e-9, 1e-4),
        "detector.misalignment": st.floats(0.0, 0.05),
        "link.attenuation_db_per_km": st.floats(0.15, 0.35),
        "link.extra_loss_db": st.floats(0.0, 10.0),
        "source.mu_signal": st.floats(0.3, 0.8),
        "protocol.ec_efficiency": st.floats(1.0, 1.5),
    }
)


@settings(max_examples=30, deadline=None)
@given(point=detectors, decoy=st.sampled_from(DECOYS))
def test_property_monotone_bounded_nonnegative(point, decoy):
    distance = np.linspace(0.0, 400.0, 201)[:, None]
    scale = np.array([1.0, 1.05])[None, :]  # a second, slightly better detector
    values = {**point, "link.distance_km": distance, "detector.efficiency": np.minimum(point["detector.efficiency"] * scale, 1.0)}
    out = evaluate(values, decoy)
    rate = out["key_rate_per_pulse"]
    assert np.all(np.isfinite(rate)) and np.all(rate >= 0)
    assert np.all(rate <= out["plob_bound_per_pulse"])
    assert np.all(np.diff(rate, axis=0) <= 1e-15 * rate[:-1])  # non-increasing in distance
    assert np.all(rate[:, 1] >= rate[:, 0] * (1 - 1e-12))  # non-decreasing in efficiency


@settings(max_examples=20, deadline=None)
@given(point=detectors)
def test_property_attenuation_monotone(point):
    attenuation = np.linspace(0.15, 0.4, 26)
    out = evaluate({**point, "link.attenuation_db_per_km": attenuation, "link.distance_km": 80.0}, "vacuum_weak")
    assert np.all(np.diff(out["key_rate_per_pulse"]) <= 0.0)


def test_decoy_bounds_are_valid_bounds():
    """vacuum_weak never claims more single-photon yield, or less error, than the exact (infinite-decoy) values."""
    distance = np.linspace(0.0, 150.0, 151)
    exact = evaluate({"link.distance_km": distance}, "infinite")
    bound = evaluate({"link.distance_km": distance}, "vacuum_weak")
    assert np.all(bound["single_photon_yield"] <= exact["single_photon_yield"] * (1 + 1e-12))
    assert np.all(bound["single_photon_error"] >= exact["single_photon_error"] * (1 - 1e-12))
    assert np.all(bound["key_rate_per_pulse"] <= exact["key_rate_per_pulse"])
