"""Satellite links end to end: the SatQuMA loss budget, passes, turbulence Monte Carlo, a Micius-class link."""

import re

import jax
import numpy as np
import pytest

import qkdjax
from qkdjax.cli import compose_config
from qkdjax.config import ConfigError, parse_grid
from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.parameters import build_params
from qkdjax.physics import satellite

ELEVATIONS = [10, 15, 20, 30, 45, 60, 90]
EARTH_RADIUS_KM = 6371.0


@pytest.fixture(scope="module")
def satquma():
    return qkdjax.run("sweep=satquma_downlink")


def test_satquma_downlink_cube(satquma):
    assert satquma["link.elevation_deg"].values.tolist() == ELEVATIONS
    assert satquma["link.elevation_deg"].attrs["units"] == "degree"
    for name in ("diffraction_loss_db", "atmospheric_loss_db", "total_loss_db"):
        assert satquma[name].attrs["non_udunits_units"] == "dB"
        assert np.all(np.diff(satquma[name].values) < 0)  # higher is closer and through less air
    budget = satquma.diffraction_loss_db + satquma.atmospheric_loss_db + satquma.pointing_loss_db + 15.0
    np.testing.assert_allclose(satquma.total_loss_db, budget, rtol=1e-12)
    np.testing.assert_allclose(10 ** (-satquma.total_loss_db / 10), satquma.channel_transmittance, rtol=1e-12)
    zenith_db = float(satquma.atmospheric_loss_db.sel({"link.elevation_deg": 90}))
    assert zenith_db == pytest.approx(-10 * np.log10(0.8), rel=1e-3)  # Kasten-Young air mass at zenith: 0.9997
    assert np.all(satquma.key_rate > 0)
    assert np.all(satquma.key_rate_per_pulse <= satquma.plob_bound_per_pulse)


def micius_link(elevation_deg, **overrides):
    """Micius downlink (Liao et al., Nature 549, 43 (2017)): 848.6 nm, 300 mm transmitter with ~10 urad full-angle
    divergence, 1 m Xinglong telescope; the SatQuMA intrinsic loss; 100 MHz source at 0.8 / 0.1 / 0."""
    waist_m = 848.6e-9 / (np.pi * 5e-6)  # half-angle divergence lambda / (pi w0) = 5 urad
    return (
        "sweep=satquma_downlink", "source=micius", f"link.elevation_deg={elevation_deg}", "link.wavelength_nm=848.6",
        f"link.beam_waist_m={waist_m}", "link.receiver_radius_m=0.5", *overrides,
    )  # fmt: skip


def elevation_of_slant_range(range_km, altitude_km=500.0):
    """Inverse of the slant-range formula: law of cosines in the Earth-centre triangle."""
    r, s = EARTH_RADIUS_KM, EARTH_RADIUS_KM + altitude_km
    return float(np.degrees(np.arcsin((s**2 - r**2 - range_km**2) / (2 * r * range_km))))


def test_micius_class_link_has_the_published_losses_and_key_rates():
    """Liao et al. 2017: link loss ~30-40 dB from 645 to 1200 km (digitised: 29.8, 30.9, 35.0, 40.3 dB), kHz keys."""
    elevations = [round(elevation_of_slant_range(r), 3) for r in (645, 800, 1000, 1200)]
    cube = qkdjax.run(*micius_link(f"[{','.join(map(str, elevations))}]"))
    np.testing.assert_allclose(cube.slant_range_km, [645, 800, 1000, 1200], rtol=1e-4)
    loss = cube.total_loss_db.values
    assert np.all(np.diff(loss) > 0)
    assert np.all((loss > 26) & (loss < 44)), loss
    published = np.array([29.8, 30.9, 35.0, 40.3])
    assert np.all(np.abs(loss - published) < 4.0), loss - published
    assert np.all((cube.key_rate > 1e2) & (cube.key_rate < 1e5)), cube.key_rate.values


def link_params(**values):
    grid = parse_grid(compose_config("sweep=satquma_downlink")[0])
    flat = {**grid.fixed, **grid.static, "link.elevation_deg": 90.0, **values}
    return build_params(flat).link


@pytest.mark.parametrize("elevation_deg", [90.0, 45.0, 20.0])
@pytest.mark.parametrize("turbulence", [0.0, 1.7e-14])
@pytest.mark.device
def test_faded_transmittance_averages_to_the_mean_budget(elevation_deg, turbulence):
    link = link_params(**{"link.pointing_jitter_urad": 1.0, "link.ground_cn2_m_minus_2_3": turbulence})
    uniforms = stream_uniforms(jax.random.key(3), (2, 200_000))
    statistics = satellite.fading(link, elevation_deg)
    samples = np.asarray(satellite.faded_transmittance(uniforms, statistics))
    mean = float(satellite.mean_transmittance(link, elevation_deg))
    assert samples.std() > 0
    assert abs(samples.mean() - mean) < 4 * samples.std() / np.sqrt(samples.size)


def test_without_jitter_or_scintillation_fading_is_the_mean():
    link = link_params(**{"link.pointing_jitter_urad": 0.0})
    for elevation_deg in (90.0, 30.0):
        calm = satellite.fading(link, elevation_deg)._replace(scintillation_index=0.0)
        sample = satellite.faded_transmittance(stream_uniforms(jax.random.key(0), 2), calm)
        assert float(sample) == pytest.approx(float(satellite.mean_transmittance(link, elevation_deg)), rel=1e-12)


def test_scintillation_grows_with_turbulence_and_at_low_elevation():
    def index(elevation_deg, cn2, wind):
        link = link_params(**{"link.ground_cn2_m_minus_2_3": cn2, "link.rms_wind_m_per_s": wind})
        return float(satellite.fading(link, elevation_deg).scintillation_index)

    assert index(90.0, 0.0, 0.0) < index(90.0, 1.7e-14, 21.0) < index(20.0, 1.7e-14, 21.0)
    assert index(90.0, 0.0, 0.0) < 1e-3  # only the weak upper-atmosphere term of the HV profile remains


PASS = ("sweep=satellite_pass", "link.max_elevation_deg=[30,90]", "link.receiver_radius_m=[0.5]", "montecarlo.trials=64")


@pytest.fixture(scope="module")
def passes():
    return qkdjax.run(*PASS)


def test_satellite_pass_cube(passes):
    assert {"link.max_elevation_deg", "link.receiver_radius_m", "link.pointing_jitter_urad", "quantile"} <= set(passes.dims)
    for name in ("key_per_pass", "key_per_pass_mean", "key_per_pass_quantile", "key_per_day", "key_per_year", "abort_probability"):
        assert name in passes and np.all(np.isfinite(passes[name])) and np.all(passes[name] >= 0)
    overhead = passes.sel({"link.max_elevation_deg": 90, "link.pointing_jitter_urad": 0.0})
    assert np.all(overhead.key_per_pass > 0)
    assert np.all(passes.key_per_pass.sel({"link.max_elevation_deg": 90}) >= passes.key_per_pass.sel({"link.max_elevation_deg": 30}))
    assert np.all(passes.key_per_pass <= passes.plob_bound_per_pulse * passes.block_pulses)
    np.testing.assert_allclose(passes.key_per_year, 365.25 * passes.key_per_day)
    assert np.all(np.diff(passes.key_per_pass_quantile, axis=-1) >= 0)
    # Key per day does not depend on which pass the axis picks: it averages over all of them.
    assert float(np.ptp(passes.key_per_day.sel({"link.pointing_jitter_urad": 0.0}).values)) == 0.0
    duration = passes.pass_duration_s.sel({"link.max_elevation_deg": 90}).values
    assert np.all((duration > 400) & (duration < 700))  # ~9 minutes above 10 degrees for an overhead 500 km pass


def test_pass_without_fading_matches_its_expected_key():
    cube = qkdjax.run(
        "sweep=satellite_pass", "link.max_elevation_deg=[90]", "link.receiver_radius_m=[0.6]",
        "link.pointing_jitter_urad=[0.0]", "link.ground_cn2_m_minus_2_3=0", "link.rms_wind_m_per_s=0",
        "montecarlo.trials=100",
    )  # fmt: skip
    cube = cube.squeeze()
    standard_error = float(cube.key_per_pass_std) / np.sqrt(100)
    assert float(cube.key_per_pass_std) > 0  # count fluctuations remain
    assert abs(float(cube.key_per_pass_mean) - float(cube.key_per_pass)) < 4 * standard_error + 1


@pytest.mark.device
def test_pass_cube_is_identical_for_any_chunk_size():
    small = qkdjax.run(*PASS, "sweep.chunk_size=1")
    large = qkdjax.run(*PASS, "sweep.chunk_size=1000000")
    np.testing.assert_array_equal(small.key_per_pass_quantile, large.key_per_pass_quantile)
    np.testing.assert_array_equal(small.key_per_day, large.key_per_day)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("link.elevation_deg=95",), "link.elevation_deg = 95 is outside the allowed range [0, 90]"),
        (("link.elevation_deg=-1",), "link.elevation_deg = -1 is outside the allowed range [0, 90]"),
        (("link.receiver_radius_m=0",), "link.receiver_radius_m = 0 is outside the allowed range (0, 10]"),
        (("link.transmitter_radius_m=-0.1",), "link.transmitter_radius_m = -0.1 is outside the allowed range (0, 10]"),
        (("link.wavelength_nm=0",), "link.wavelength_nm = 0 is outside the allowed range [100, 20000]"),
        (("link.min_elevation_deg=40", "link.max_elevation_deg=30"), "link.min_elevation_deg < link.max_elevation_deg is required"),
        (
            ("link.transmitter_radius_m=5",),
            "near-field phase pi link.transmitter_radius_m^2 / (link.wavelength_nm link.altitude_km) <= 50 rad is required, but link.transmitter_radius_m = 5",
        ),
        (("link.elevation_deg=null", "protocol.block_size=1e6"), "a satellite pass (link.elevation_deg = null) makes its own block"),
    ],
)
def test_bad_satellite_input_is_rejected(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        qkdjax.run("sweep=satquma_downlink", *overrides)


@pytest.mark.parametrize("link_type", ["satellite_downlink", "satellite_uplink"])
def test_pass_diffraction_table_is_within_0p01_db(link_type):
    link = link_params(**{"link.type": link_type})
    table = satellite.diffraction_table(link)
    elevations = np.linspace(10.0, 90.0, 161)
    direct = jax.vmap(satellite.loss_budget_db, (None, 0))(link, elevations)["diffraction_loss_db"]
    interpolated = jax.vmap(satellite.loss_budget_db, (None, 0, None))(link, elevations, table)["diffraction_loss_db"]
    assert float(np.max(np.abs(np.asarray(direct) - np.asarray(interpolated)))) < 0.01
