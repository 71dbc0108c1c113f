"""Event-level simulator against the analytic detector model (z-scores of counts), across its two samplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ASYMPTOTIC, BASE_POINT
from scipy import stats

from qkdjax.montecarlo import events
from qkdjax.montecarlo.events import expected_counts, simulate_pulses
from qkdjax.parameters import build_params

# Lim et al., PRA 89, 022307 (2014), Fig. 1 (InGaAs APDs); an SNSPD link with a vacuum weak intensity.
DETECTORS = {
    "ingaas": {
        "detector.efficiency": 0.1,
        "detector.dark_count_prob": 6e-7,
        "detector.afterpulse_prob": 0.04,
        "detector.misalignment": 0.005,
        "source.mu_signal": 0.5,
        "source.mu_decoy": 0.1,
        "source.mu_weak": 2e-4,
        "source.p_signal": 0.7,
        "source.p_decoy": 0.2,
        "protocol.p_key_basis": 0.7,
    },
    "snspd": {
        "detector.efficiency": 0.8,
        "detector.dark_count_prob": 1e-8,
        "detector.afterpulse_prob": 0.0,
        "detector.misalignment": 0.02,
        "source.mu_signal": 0.6,
        "source.mu_decoy": 0.2,
        "source.mu_weak": 0.0,
        "source.p_signal": 0.6,
        "source.p_decoy": 0.3,
        "protocol.p_key_basis": 0.5,
    },
}
PULSES_MODE_PULSES = 2**23  # ~0.5 s on one CPU core
CLICKS_MODE_CLICKS = 1e7  # the clicks mode's cost is per click: n_pulses is chosen to give about this many


def link(detector: str, distance_km: float, **overrides):
    """(params, channel transmittance) of a fibre link (0.2 dB/km) with one of ``DETECTORS``."""
    values = {**BASE_POINT, **dict(ASYMPTOTIC), "protocol.decoy": "vacuum_weak", **DETECTORS[detector]}
    params = build_params({**values, "link.distance_km": distance_km, **overrides})
    return params, float(params.link.transmittance())


def simulate(params, channel, n_pulses, mode, seed=0, **kwargs):
    key = jax.random.key(seed)
    return simulate_pulses(key, params.source, params.detector, params.protocol, channel, n_pulses, mode=mode, **kwargs)


def clicks_mode_pulses(params, channel) -> int:
    per_pulse = expected_counts(params.source, params.detector, params.protocol, channel, 1.0).detections.sum()
    return int(min(1e15, CLICKS_MODE_CLICKS / per_pulse))


def per_pulse_moments(params, channel):
    """Per sifted pulse, for each cell: mean and variance of its detection and of its error (Bernoulli: a gate
    gives at most one detection event), with the analytic model's probabilities."""
    expected = expected_counts(params.source, params.detector, params.protocol, channel, 1.0)
    rate, error = np.asarray(expected.detections / expected.sent), np.asarray(expected.errors / expected.sent)
    return (rate, rate * (1 - rate)), (error, error * (1 - error))


def z_scores(counts, params, channel):
    """z of the sent, detection and error counts of every cell against the analytic model.

    Detections and errors are tested given the sent pulses of their cell. Variances are floored at one count^2: a
    count of a few where well under one is expected is no evidence against the model.
    """
    sent = np.asarray(counts.sent)
    n = int(counts.n_pulses)
    p_sent = np.asarray(expected_counts(params.source, params.detector, params.protocol, channel, 1.0).sent)
    z = [(sent - n * p_sent) / np.sqrt(n * p_sent * (1 - p_sent))]
    for observed, (mean, variance) in zip((counts.detections, counts.errors), per_pulse_moments(params, channel)):
        z.append((np.asarray(observed) - sent * mean) / np.sqrt(np.maximum(sent * variance, 1.0)))
    return np.stack(z)


@pytest.mark.parametrize("detector", DETECTORS)
@pytest.mark.parametrize("distance_km", [0.0, 50.0, 150.0])
@pytest.mark.parametrize("mode", events.MODES)
@pytest.mark.device
def test_counts_follow_the_analytic_model(mode, distance_km, detector):
    params, channel = link(detector, distance_km)
    n_pulses = PULSES_MODE_PULSES if mode == "pulses" else clicks_mode_pulses(params, channel)
    counts = simulate(params, channel, n_pulses, mode)
    assert int(counts.n_pulses) == n_pulses
    assert counts.detections.sum() > 100  # the test has events to judge
    z = z_scores(counts, params, channel)
    assert np.abs(z).max() < 4, z


@pytest.mark.device
def test_both_modes_give_the_same_gains_and_error_rates():
    params, channel = link("ingaas", 25.0, **{"detector.misalignment": 0.02})
    by_mode = [simulate(params, channel, PULSES_MODE_PULSES, mode) for mode in events.MODES]
    for field, (_, variance) in zip(("detections", "errors"), per_pulse_moments(params, channel)):
        rates, spreads = [], []
        for counts in by_mode:
            sent = np.asarray(counts.sent)
            rates.append(np.asarray(getattr(counts, field)) / sent)
            spreads.append(np.sqrt(np.maximum(sent * variance, 1.0)) / sent)
        z = (rates[0] - rates[1]) / np.hypot(*spreads)
        assert np.abs(z).max() < 4, z


@pytest.mark.parametrize("mode", events.MODES)
@pytest.mark.device
def test_same_key_same_counts(mode):
    params, channel = link("ingaas", 50.0)
    n = 10**6 if mode == "pulses" else 10**10
    first, again = (simulate(params, channel, n, mode) for _ in range(2))
    other = simulate(params, channel, n, mode, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first.detections, other.detections)


@pytest.mark.parametrize(("mode", "n_pulses"), [("pulses", 3 * 4096 + 17), ("pulses", 5), ("clicks", 10**6 + 7)])
@pytest.mark.device
def test_chunks_cover_every_pulse_once(mode, n_pulses):
    params, channel = link("snspd", 0.0)
    counts = simulate(params, channel, n_pulses, mode, chunk_size=4096)
    assert int(counts.n_pulses) == n_pulses
    assert counts.sent.dtype == counts.detections.dtype == counts.errors.dtype == jnp.int64


@pytest.mark.parametrize("mode", events.MODES)
def test_lossless_noiseless_link_detects_every_photon_without_error(mode):
    noiseless = {"detector.efficiency": 1.0, "detector.dark_count_prob": 0.0, "detector.misalignment": 0.0}
    params, channel = link("snspd", 0.0, **noiseless)
    counts = simulate(params, channel, 10**6, mode)
    assert int(counts.errors.sum()) == 0
    assert np.abs(z_scores(counts, params, channel)).max() < 4


@pytest.mark.device
def test_clicks_mode_sends_1e13_pulses_over_200_km():
    params, channel = link("ingaas", 200.0)
    counts = simulate(params, channel, 10**13, "clicks")
    assert int(counts.n_pulses) == 10**13
    assert np.abs(z_scores(counts, params, channel)).max() < 4


def test_pulses_mode_memory_does_not_grow_with_n_pulses():
    """One compiled loop serves every pulse count; its scratch memory is a few dozen bytes per pulse of a chunk."""
    params, channel = link("ingaas", 50.0)
    simulate(params, channel, 10**3, "pulses")
    compiled = events._simulate_every_pulse._cache_size()
    simulate(params, channel, 10**5, "pulses")
    assert events._simulate_every_pulse._cache_size() == compiled  # n_pulses is traced: nothing recompiled
    chunk_size, n_terms = 2**12, events.photon_number_terms(params.source.mu_signal)
    numbers = events._link(params.source, params.detector, params.protocol, channel)
    lowered = events._simulate_every_pulse.lower(jax.random.key(0), numbers, jnp.int64(10**9), chunk_size, n_terms)
    assert lowered.compile().memory_analysis().temp_size_in_bytes < 128 * chunk_size


@pytest.mark.device
def test_arithmetic_decoding_leaves_a_fresh_uniform():
    """After a chain of choices, the rescaled uniform is uniform whatever the outcomes (KS test per outcome)."""
    u = events._uniform53(jax.random.key(3), (2**18,))
    rare, u = events._decide(u, 0.01)
    index, u = events._choose(u, (0.2, 0.2, 0.7))  # an empty interval [0.2, 0.2) is never chosen
    coin, u = events._decide(u, 0.5)
    rare, index, coin, u = map(np.asarray, (rare, index, coin, u))
    assert abs(rare.mean() - 0.01) < 4 * np.sqrt(0.01 * 0.99 / u.size)
    assert set(np.unique(index)) == {0, 2, 3} and abs((index == 2).mean() - 0.5) < 0.005
    for outcome in (rare, index == 0, coin, ~coin):
        assert stats.kstest(u[outcome], "uniform").pvalue > 0.01


@pytest.mark.parametrize(
    ("overrides", "arguments", "message"),
    [
        ({}, {"n_pulses": 0}, r"n_pulses = 0 is outside integer in \[1, 9.0072e\+15\]"),
        ({}, {"n_pulses": 2.5}, r"n_pulses = 2.5 is outside integer"),
        ({}, {"n_pulses": 2**60}, r"n_pulses = 1152921504606846976 is outside"),
        ({}, {"chunk_size": 0}, r"chunk_size = 0 is outside integer in \[1, 6.71089e\+07\]"),
        ({}, {"mode": "photons"}, r"mode = 'photons' is not one of \('pulses', 'clicks'\)"),
        ({}, {"channel_transmittance": 1.5}, r"channel_transmittance = 1.5 is outside \[0, 1\]"),
        ({}, {"channel_transmittance": np.ones(3)}, r"channel_transmittance must be one number"),
        ({"detector.dead_time_ns": 50.0}, {}, r"detector.dead_time_ns = 50 ns.*needs detector.dead_time_ns = 0"),
        ({"detector.dark_count_prob": 0.7}, {}, r"detector.dark_count_prob = 0.7 is outside \[0, 0.5\]"),
        ({"protocol.p_key_basis": 1.0}, {}, r"protocol.p_key_basis = 1.0 is outside \(0, 1\)"),
        ({"source.mu_decoy": 0.9}, {}, r"source.mu_decoy < source.mu_signal does not hold"),
        ({"source.mu_signal": 12.0}, {}, r"source.mu_signal = 12 is outside \(0, 10\]"),
    ],
)
def test_bad_input_is_refused(overrides, arguments, message):
    params, channel = link("ingaas", 50.0, **overrides)
    call = {"channel_transmittance": channel, "n_pulses": 1000, **arguments}
    with pytest.raises(ValueError, match=message):
        simulate_pulses(jax.random.key(0), params.source, params.detector, params.protocol, **call)
