"""MDI-QKD end to end: the mdi_2013 sweep, its bounds and reach, optimisation, refusals and the report."""

import numpy as np
import pytest
from conftest import reference

import qkdjax
from qkdjax import analysis
from qkdjax.config import ConfigError
from qkdjax.report import write_report

PUBLISHED = reference("mdi_qkd")


@pytest.fixture(scope="module")
def cube():
    return qkdjax.run("sweep=mdi_2013")


def test_sweep_uses_the_reference_parameters(cube):
    import yaml

    config, params = yaml.safe_load(cube.attrs["config"]), PUBLISHED["parameters"]
    assert config["link"]["attenuation_db_per_km"] == params["attenuation_db_per_km"]
    assert config["link"]["relay_fraction"] == params["relay_fraction"]
    assert config["detector"]["efficiency"] == params["charlie_detector_efficiency"]
    assert config["detector"]["dark_count_prob"] == params["dark_count_prob_per_detector"]
    assert config["detector"]["misalignment"] == params["misalignment_e_d"]
    assert config["protocol"]["ec_efficiency"] == params["ec_efficiency_f"]


def test_cube_has_the_rates_per_pulse_pair_and_both_bounds(cube):
    assert cube.key_rate.attrs["units"] == "bit/s"
    assert cube.key_rate_per_pulse.attrs["long_name"] == "secret key bits per pulse pair sent"
    rate, plob, repeater = cube.key_rate_per_pulse, cube.plob_bound_per_pulse, cube.repeater_bound_per_pulse
    assert bool((rate > 0).any()) and bool((rate <= plob).all()) and bool((plob <= repeater).all())
    eta = 10 ** (-0.02 * cube["link.distance_km"])
    np.testing.assert_allclose(cube.channel_transmittance.isel({"protocol.decoy": 0}), eta, rtol=1e-12)
    with np.errstate(divide="ignore"):  # +inf at 0 km, where each arm is lossless
        np.testing.assert_allclose(repeater.isel({"protocol.decoy": 0}), -np.log2(1 - np.sqrt(eta)), rtol=1e-12)
    assert bool((np.diff(rate.values, axis=-1) <= 0).all())  # less key with more fibre


def test_reach_is_over_200_km_with_decoys_and_the_decoy_bound_costs_key(cube):
    reach = analysis.reach(cube, np.finfo(float).tiny)
    assert float(reach.sel({"protocol.decoy": "infinite"})) > 200  # published: "over 200 km" with decoys
    assert bool((cube.key_rate.sel({"protocol.decoy": "vacuum_weak"}) <= cube.key_rate.sel({"protocol.decoy": "infinite"})).all())


def test_optimised_intensities_reach_further_than_fixed_ones():
    overrides = ("sweep=mdi_2013", "link.distance_km=[0,150,225]", "protocol.decoy=[vacuum_weak]")
    fixed, optimised = qkdjax.run(*overrides), qkdjax.run(*overrides, "optimize.enabled=true")
    assert bool((optimised.key_rate >= fixed.key_rate).all())
    at_225 = {"link.distance_km": 225, "protocol.decoy": "vacuum_weak"}
    assert float(fixed.key_rate.sel(at_225)) == 0 < float(optimised.key_rate.sel(at_225))
    assert {"opt.source.mu_signal", "opt.source.mu_decoy", "opt.converged"} <= set(optimised.data_vars)


def test_relay_position_is_symmetric_and_the_middle_is_best():
    cube = qkdjax.run("sweep=mdi_2013", "link.distance_km=[100]", "link.relay_fraction=[0.2,0.35,0.5,0.65,0.8]")
    rate = cube.key_rate.squeeze("link.distance_km").transpose("protocol.decoy", "link.relay_fraction").values
    np.testing.assert_allclose(rate, rate[:, ::-1], rtol=1e-9)
    assert np.all(np.argmax(rate, axis=1) == 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("protocol=mdi_decoy",), "protocol.type mdi_decoy needs a link with 2 arm(s), but link.type fibre has 1: choose link=midpoint_fibre"),
        (("sweep=mdi_2013", "montecarlo.trials=10"), "protocol.type mdi_decoy has no finite-key analysis"),
        (("sweep=mdi_2013", "detector.afterpulse_prob=0.04"), "detector.afterpulse_prob = 0 (protocol.type mdi_decoy models none)"),
        (("sweep=mdi_2013", "source.mu_weak=0.001"), "source.mu_weak = 0"),
        (("sweep=mdi_2013", "link.relay_fraction=1.5"), "link.relay_fraction = 1.5 is outside the allowed range [0, 1]"),
        (("sweep=mdi_2013", "protocol.decoy=none"), "protocol.decoy"),
    ],
)  # fmt: skip
def test_what_mdi_does_not_model_is_refused_with_one_line(overrides, message):
    with pytest.raises(ConfigError, match=None) as error:
        qkdjax.run(*overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_report_reads_the_mdi_cube_by_its_roles(cube, tmp_path):
    summary = write_report(cube, tmp_path).read_text()
    assert "Maximal reach (link.distance_km)" in summary and "Key rate / PLOB bound" in summary
    assert (tmp_path / "rate_vs_distance.png").exists()
