"""The satellite double downlink (link=satellite_double_downlink): the common pass of two stations against vector
geometry, each arm as the single downlink, and the Micius 2020 comparison."""

import json

import numpy as np
import pytest
from conftest import reference

import qkdjax
from qkdjax.config import ConfigError
from qkdjax.physics import free_space
from qkdjax.report import write_report

YIN_2020 = reference("entanglement")["experiment_yin_2020"]


def vector_elevations_deg(separation_km, offset_km, altitude_km, time_s):
    """Stations on the equator at longitudes -/+ (separation/2) / R; the satellite's polar orbit crosses the equator
    at ``offset_km`` east of their midpoint at t = 0; elevation = 90 degrees - angle(station zenith, line of sight)."""
    r, orbit = free_space.EARTH_RADIUS_KM, free_space.EARTH_RADIUS_KM + altitude_km
    omega = float(free_space.orbital_rate_rad_per_s(altitude_km))
    crossing = offset_km / r
    satellite = orbit * np.stack(
        [np.cos(omega * time_s) * np.cos(crossing), np.cos(omega * time_s) * np.sin(crossing), np.sin(omega * time_s)], -1
    )
    elevations = []
    for longitude in (-separation_km / 2 / r, separation_km / 2 / r):
        station = r * np.array([np.cos(longitude), np.sin(longitude), 0.0])
        sight = satellite - station
        cos_zenith = sight @ station / (np.linalg.norm(sight, axis=-1) * r)
        elevations.append(90.0 - np.degrees(np.arccos(cos_zenith)))
    return np.stack(elevations)


@pytest.mark.parametrize(("separation_km", "offset_km"), [(1120.0, 0.0), (1120.0, 250.0), (400.0, -100.0), (2000.0, 30.0)])
def test_the_common_pass_is_the_vector_geometry_of_both_stations(separation_km, offset_km):
    time_s, elevations, step_s = free_space.common_pass_elevations_deg(separation_km, offset_km, 10.0, 500.0, 64)
    np.testing.assert_allclose(elevations, vector_elevations_deg(separation_km, offset_km, 500.0, np.asarray(time_s)), atol=1e-9)
    # the window ends where the lower station's elevation reaches the minimum
    edges = vector_elevations_deg(separation_km, offset_km, 500.0, np.array([time_s[0] - step_s / 2, time_s[-1] + step_s / 2]))
    assert float(np.min(edges)) == pytest.approx(10.0, abs=1e-9)


def test_stations_farther_apart_than_the_satellite_sees_share_no_window():
    _, _, step_s = free_space.common_pass_elevations_deg(5000.0, 0.0, 10.0, 500.0, 16)
    assert float(step_s) == 0.0


POINT = ("sweep=micius_2020", "montecarlo.trials=0", "link.crossing_offset_km=0")
OPTICS = ("altitude_km=500", "wavelength_nm=810", "transmitter_radius_m=0.09", "beam_waist_m=0.05", "receiver_radius_m=0.6",
          "intrinsic_loss_db=11", "station_altitude_m=2500", "pointing_jitter_urad=1")  # micius_2020's  # fmt: skip


def test_each_arm_is_the_single_downlink_at_its_elevation():
    double = qkdjax.run(*POINT, "link.alice_elevation_deg=30", "link.bob_elevation_deg=60", "link.bob_extra_loss_db=2").squeeze()
    single = qkdjax.run("sweep=satquma_downlink", "link.elevation_deg=[30,60]", *(f"link.{o}" for o in OPTICS)).total_loss_db.squeeze()
    assert float(double.alice_total_loss_db) == pytest.approx(float(single.sel({"link.elevation_deg": 30})), rel=1e-12)
    assert float(double.bob_total_loss_db) == pytest.approx(float(single.sel({"link.elevation_deg": 60})) + 2.0, rel=1e-12)
    assert float(double.two_photon_loss_db) == pytest.approx(float(double.alice_total_loss_db + double.bob_total_loss_db))
    assert 0 < float(double.key_rate_per_pulse) <= float(double.repeater_bound_per_pulse)


def test_one_elevation_without_the_other_is_refused():
    with pytest.raises(ConfigError, match="set both .* or neither"):
        qkdjax.run(*POINT, "link.alice_elevation_deg=30")


@pytest.fixture(scope="module")
def micius():
    return qkdjax.run("sweep=micius_2020", "montecarlo.trials=40")


def test_micius_key_rate_is_within_an_order_of_magnitude_of_the_published_one(micius):
    published = YIN_2020["finite_key_rate_bit_per_s"]
    rate = micius.key_rate.sel({"link.crossing_offset_km": 0.0}).squeeze()
    assert published / 10 < float(rate) < published * 10
    # the assumed terminals give a two-photon loss in the range of the published experiments' (50-85 dB)
    assert 50 < float(micius.min_two_photon_loss_db.min()) and float(micius.max_two_photon_loss_db.max()) < 85
    assert np.all(micius.qber < 0.11) and np.all(micius.key_rate_per_pulse <= micius.repeater_bound_per_pulse)


@pytest.mark.device
def test_micius_monte_carlo_passes_agree_with_the_mean_pass(micius):
    mean, stderr = micius.key_per_pass_mean, micius.key_per_pass_mean_stderr
    # fading keeps each arm's mean transmittance and the arms fade independently: the coincidences keep their mean,
    # and the key of a fading pass is close to that of the mean pass
    assert np.all(np.abs(mean - micius.key_per_pass) < 4 * stderr + 0.1 * micius.key_per_pass)


def test_an_off_centre_track_shortens_the_common_window(micius):
    duration = micius.pass_duration_s.squeeze()
    assert float(duration.sel({"link.crossing_offset_km": 200.0})) < float(duration.sel({"link.crossing_offset_km": 0.0}))
    assert YIN_2020["trusted_relay"] is False and np.all(micius.trusted_nodes == 0)


@pytest.fixture(scope="module")
def trust():
    return qkdjax.run("sweep=satellite_trust")


def test_a_trusted_satellite_relays_the_smaller_station_supply(trust):
    relay = trust.sel(design="trusted_satellite")
    np.testing.assert_array_equal(relay.key_per_year, np.minimum(relay.alice_key_per_year, relay.bob_key_per_year))
    overrides = json.loads(trust.attrs["design_overrides"])["trusted_satellite"]
    station = qkdjax.run(
        *[o for o in overrides if not o.startswith(("link=", "link.max_elevation_deg"))], "link=satellite_downlink", "link.elevation_deg=null",
        "link.max_elevation_deg=60", "link.station_latitude_deg=37.4", "link.detection_window_ns=0.5", "link.inclination_deg=97.4",
    )  # fmt: skip
    np.testing.assert_allclose(relay.alice_key_per_year, station.key_per_year.squeeze(), rtol=1e-12)


def test_the_report_says_which_satellite_design_gives_more_key_and_what_it_trusts(trust, tmp_path):
    assert float(trust.trusted_nodes.sel(design="trusted_satellite").max()) == 1
    assert float(trust.trusted_nodes.sel(design="entanglement").max()) == 0
    assert np.all(trust.key_per_year.sel(design="trusted_satellite") > trust.key_per_year.sel(design="entanglement"))
    summary = write_report(trust, tmp_path).read_text()
    assert "### Which design gives more key: key_per_year" in summary
    assert "- **trusted_satellite**:" in summary and "trusting 1 node(s) (0 untrusted); the most key at 100% of the points" in summary
    assert "- **entanglement**:" in summary and "trusting 0 node(s) (1 untrusted)" in summary


def test_a_trusted_relay_refuses_monte_carlo_trials():
    with pytest.raises(ConfigError, match="a trusted relay reports expected key supplies"):
        qkdjax.run("sweep=satellite_trust", "montecarlo.trials=10")
