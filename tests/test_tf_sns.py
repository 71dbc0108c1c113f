"""Sending-or-not-sending twin-field QKD (qkdjax.protocols.tf_sns): published reach, the bounds it passes and the one
it does not, the square-root scaling, the detection model against brute force, and the optimiser near the reach."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import reference, refused
from scipy.integrate import quad
from scipy.special import i0

import qkdjax
from qkdjax.cli import compose_config
from qkdjax.config import ConfigError, parse_grid
from qkdjax.parameters import build_params
from qkdjax.protocols import tf_sns
from qkdjax.report import write_report

TF = reference("tf_qkd")
FINE = "link.distance_km=${linspace:0,800,801}"


@pytest.fixture(scope="module")
def sweep():
    return qkdjax.run("sweep=tf_sns_2018", FINE)


def reach_km(rate):
    distances = rate["link.distance_km"].values
    return distances[rate.values > 0].max()


def test_published_reach_per_misalignment_within_5_percent(sweep):
    for e_d, published in TF["sns_published"]["max_distance_exceeds_km"].items():
        found = reach_km(sweep.key_rate_per_pulse.sel({"detector.misalignment": float(e_d)}))
        assert found == pytest.approx(published, rel=0.05), (e_d, found)


def test_key_passes_plob_but_never_the_repeater_bound(sweep):
    rate, plob, repeater = sweep.key_rate_per_pulse, sweep.plob_bound_per_pulse, sweep.repeater_bound_per_pulse
    assert np.all(rate.values <= repeater.values)
    best = rate.sel({"detector.misalignment": 0.15})
    above = best.values > plob.sel({"detector.misalignment": 0.15}).values
    crossing = best["link.distance_km"].values[above].min()
    assert 250 < crossing < 400 and np.all(above[best["link.distance_km"].values >= crossing + 5][: (700 - 400)])
    assert not np.any(above[best["link.distance_km"].values < crossing])


def test_rate_falls_with_the_square_root_of_the_channel_transmittance(sweep):
    """log10(rate) falls by 0.01 per km at 0.2 dB/km (half the loss), where BB84 falls by 0.02."""
    rate = sweep.key_rate_per_pulse.sel({"detector.misalignment": 0.15})
    slope = (np.log10(rate.sel({"link.distance_km": 500.0})) - np.log10(rate.sel({"link.distance_km": 300.0}))) / 200.0
    assert float(slope) == pytest.approx(-0.01, rel=0.05)
    hardware = ("detector.efficiency=0.8", "detector.dark_count_prob=1e-11", "detector.afterpulse_prob=0", "detector.dead_time_ns=0")
    bb84 = qkdjax.run("sweep=gys_2005", "link.distance_km=[100,200]", "protocol.decoy=infinite", *hardware).key_rate_per_pulse.squeeze()
    bb84_slope = float(np.log10(bb84.values[1] / bb84.values[0])) / 100.0
    assert bb84_slope == pytest.approx(2 * float(slope), rel=0.05)


@pytest.mark.parametrize("x", [1e-12, 1e-6, 1e-3, 0.3, 2.0])
def test_z_window_gains_against_a_phase_average_by_quadrature(x):
    """Exactly one click of two threshold detectors, averaged over the relative phase by numerical quadrature."""
    p_d = 1e-7

    def one_click(mean_1, mean_2):  # each detector: Poisson light and dark counts; clicks as -expm1, exact
        log_silent_1, log_silent_2 = np.log1p(-p_d) - mean_1, np.log1p(-p_d) - mean_2
        return -np.expm1(log_silent_1) * np.exp(log_silent_2) - np.expm1(log_silent_2) * np.exp(log_silent_1)

    both = quad(lambda d: one_click(x * (1 + np.cos(d)), x * (1 - np.cos(d))), 0, 2 * np.pi, epsabs=0, epsrel=1e-10, limit=200)[0] / (
        2 * np.pi
    )
    neither, one, both_found = (float(g) for g in tf_sns.z_window_gains(jnp.asarray(x), p_d))
    assert neither == pytest.approx(one_click(0.0, 0.0), rel=1e-12)
    assert one == pytest.approx(one_click(x / 2, x / 2), rel=1e-9)
    assert both_found == pytest.approx(both, rel=1e-9)


def test_i0_minus_one_is_exact_across_the_series_switch():
    for x in (1e-8, 1e-3, 0.1, 0.49, 0.51, 1.0, 3.0):
        expected = np.expm1(np.log(i0(x))) if x > 1e-3 else (x / 2) ** 2 * (1 + (x / 2) ** 2 / 4)
        assert float(tf_sns.i0_minus_one(jnp.asarray(x))) == pytest.approx(expected, rel=1e-12)


def point(distance_km, **protocol):
    grid = parse_grid(compose_config("sweep=tf_sns_2018", "protocol.decoy=vacuum_weak")[0])
    values = {**grid.fixed, **grid.static, "link.distance_km": distance_km, "detector.misalignment": 0.15}
    return build_params(values | {f"protocol.{k}": v for k, v in protocol.items()})


@pytest.mark.parametrize("distance_km", [0.0, 100.0, 400.0, 600.0])
def test_three_intensity_bounds_hold_and_approach_the_true_values(distance_km):
    p = point(distance_km)
    eta, p_d, e_d = p.link.transmittance()[0] * p.detector.efficiency, p.detector.dark_count_prob, p.detector.misalignment
    true = tf_sns.single_photon_bounds(dataclasses.replace(p.protocol, decoy="infinite"), eta, p_d, e_d)
    bound = tf_sns.single_photon_bounds(p.protocol, eta, p_d, e_d)
    assert float(bound[0]) <= float(true[0]) and float(bound[1]) >= float(true[1])
    weak = tf_sns.single_photon_bounds(point(distance_km, mu_x_weak=1e-4, mu_x_decoy=2e-4).protocol, eta, p_d, e_d)
    assert float(weak[0]) == pytest.approx(float(true[0]), rel=1e-3)


def test_the_symmetric_protocol_refuses_asymmetric_links_and_unordered_decoys():
    with pytest.raises(ConfigError, match="link.relay_fraction = 0.5"):
        qkdjax.run("sweep=tf_sns_2018", "link.relay_fraction=0.3")
    with pytest.raises(ConfigError, match="protocol.mu_x_weak < protocol.mu_x_decoy"):
        qkdjax.run("sweep=tf_sns_2018", "protocol.mu_x_weak=0.5")


def test_a_finite_block_is_refused_with_the_reason(capsys):
    line = refused(capsys, "sweep=tf_sns_2018", "protocol.block_size=1e10")
    assert line.endswith(
        "protocol.block_size: protocol.type tf_sns has no finite-key analysis (asymptotic key only), so it takes no block_size"
    )


def test_the_optimiser_finds_the_reach_of_a_dense_grid_search():
    """Near the reach the optimum in epsilon is narrow: a dense (epsilon, mu_z) grid on 0.5-km steps against
    the optimiser on the same steps."""
    distances = np.arange(690.0, 720.0, 0.5)
    optimised = qkdjax.run("sweep=tf_sns_2018", f"link.distance_km=[{','.join(map(str, distances))}]", "detector.misalignment=0.15")
    found = reach_km(optimised.key_rate_per_pulse.squeeze())
    p = point(700.0)
    p = p._replace(protocol=dataclasses.replace(p.protocol, decoy="infinite"))
    epsilons, mus = jnp.logspace(-4, -1, 400), jnp.linspace(0.05, 1.0, 60)

    def margin(distance_km, epsilon, mu):
        there = p._replace(link=dataclasses.replace(p.link, distance_km=distance_km))
        return tf_sns.estimate(there._replace(protocol=dataclasses.replace(p.protocol, sending_prob=epsilon, mu_z=mu))).margin_per_pulse

    def best(distance_km):
        return jnp.max(jax.vmap(lambda e: jax.vmap(lambda m: margin(distance_km, e, m))(mus))(epsilons))

    dense = distances[np.asarray(jax.jit(jax.vmap(best))(jnp.asarray(distances))) > 0].max()
    assert abs(found - dense) <= 0.5, (found, dense)


def test_crossing_gives_where_a_design_passes_a_bound_and_the_report_states_it(sweep, tmp_path):
    passes = qkdjax.analysis.crossing(sweep)
    by_error = dict(zip(passes["detector.misalignment"].values, passes.values))
    assert 300 < by_error[0.15] < 310 and np.isnan(by_error[0.45])
    rate, plob = (sweep[v].sel({"detector.misalignment": 0.15}) for v in ("key_rate_per_pulse", "plob_bound_per_pulse"))
    distances = rate["link.distance_km"].values
    assert np.all(rate.values[distances > by_error[0.15] + 1][:300] > plob.values[distances > by_error[0.15] + 1][:300])
    assert np.all(rate.values[distances < by_error[0.15]] <= plob.values[distances < by_error[0.15]])
    summary = write_report(sweep, tmp_path).read_text()
    assert "passes plob_bound_per_pulse" in summary and f"{by_error[0.15]:.4g}" in summary


def test_optimised_three_intensity_decoys_come_within_a_fraction_of_infinite_decoys():
    """epsilon, mu_z and both X-window decoys optimised (the intervals keep mu_x_weak < mu_x_decoy)."""
    common = ("sweep=tf_sns_2018", "link.distance_km=[300,650]", "detector.misalignment=0.15")
    infinite = qkdjax.run(*common).key_rate_per_pulse.squeeze().values
    tuned = ("protocol.decoy=vacuum_weak", "optimize.params=[protocol.sending_prob,protocol.mu_z,protocol.mu_x_decoy,protocol.mu_x_weak]")
    three = qkdjax.run(*common, *tuned)
    np.testing.assert_allclose(three.key_rate_per_pulse.squeeze().values, infinite, rtol=5e-3)
    assert np.all(three["opt.protocol.mu_x_weak"].values < three["opt.protocol.mu_x_decoy"].values)
    assert np.all(three.key_rate.squeeze().values > 1.2 * three["opt.initial_key_rate"].squeeze().values)
