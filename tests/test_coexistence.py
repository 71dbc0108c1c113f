"""Lit fibre (qkdjax.links.fibre, qkdjax.physics.raman): Raman noise of classical traffic in every protocol's
receiver, the dark-fibre cube to rounding without traffic, forward noise rising then falling with length, both arms of a
middle-station link, the CV excess noise it makes, and the coexistence sweep's report."""

import numpy as np
import pytest

import qkdjax
from qkdjax.links.fibre import FibreLink, MidpointFibre
from qkdjax.physics.raman import PLANCK_J_S, SPEED_OF_LIGHT_M_PER_S, raman_coefficient_per_km_nm
from qkdjax.report import summary_lines

LIT = ["link.classical_channels=4", "link.classical_counter_channels=2", "link.classical_power_dbm=0"]
DARK_AND_LIT = {
    "bb84_decoy": ["link.distance_km=[10,40]"],
    "mdi_decoy": ["link=midpoint_fibre", "protocol=mdi_decoy", "detector=snspd", "detector.dead_time_ns=0", "link.distance_km=[10,40]"],
    "tf_sns": ["link=midpoint_fibre", "protocol=tf_sns", "detector=snspd", "detector.dead_time_ns=0", "link.distance_km=[10,40]"],
    "bbm92": [
        "link=midpoint_fibre",
        "protocol=bbm92",
        "source=spdc",
        "detector=snspd",
        "detector.dead_time_ns=0",
        "link.distance_km=[10,40]",
    ],
    "cv_gg02": ["protocol=cv_gg02", "source=gaussian", "detector=coherent", "link.distance_km=[10,40]"],
}


@pytest.mark.parametrize("protocol", sorted(DARK_AND_LIT))
def test_no_traffic_is_exactly_dark_fibre_and_traffic_costs_key(protocol):
    base = DARK_AND_LIT[protocol]
    dark = qkdjax.run(*base)
    silent = qkdjax.run(
        *base, "link.classical_channels=0", "link.classical_counter_channels=0", "link.classical_power_dbm=10"
    )  # lit, no traffic
    lit = qkdjax.run(*base, *LIT)
    np.testing.assert_allclose(silent.key_rate.values, dark.key_rate.values, rtol=2e-15, atol=0)  # to rounding (another program)
    assert "raman_forward_photons" not in dark  # dark fibre computes and writes no Raman terms
    assert float(silent.raman_forward_photons.max()) == 0.0 == float(silent.raman_backward_photons.max())
    assert np.all(lit.key_rate.values < dark.key_rate.values)
    assert np.all(lit.raman_forward_photons.values > 0) and np.all(lit.raman_backward_photons.values > 0)


def test_noise_photons_follow_the_closed_forms_in_length():
    """Forward noise ~ L exp(-a L): largest at L = 1/a (21.7 km at 0.2 dB/km); backward rises to (1 - e^(-2aL))/2a."""
    lengths = np.linspace(0.0, 100.0, 1001)
    link = FibreLink(
        distance_km=lengths, attenuation_db_per_km=0.2, classical_channels=1, classical_counter_channels=1, classical_power_dbm=0.0
    )
    forward, backward = (np.asarray(link.raman_photons_per_window(f)) for f in (True, False))
    a = 0.2 * np.log(10) / 10
    assert lengths[np.argmax(forward)] == pytest.approx(1 / a, abs=0.1)
    assert np.all(np.diff(backward) > 0)
    rho = float(raman_coefficient_per_km_nm(1550.92, 1547.72))
    photons_per_joule = 1547.72e-9 / (PLANCK_J_S * SPEED_OF_LIGHT_M_PER_S)
    window = 1e-3 * rho * 0.8 * 1e-9 * photons_per_joule  # 0 dBm, 0.8 nm, 1 ns
    np.testing.assert_allclose(forward, window * lengths * np.exp(-a * lengths), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(backward, window * -np.expm1(-2 * a * lengths) / (2 * a), rtol=1e-10)


def test_each_arm_of_a_middle_station_link_scatters_over_its_own_length():
    link = MidpointFibre(
        distance_km=60.0, relay_fraction=0.25, attenuation_db_per_km=0.2, classical_channels=1, raman_coefficient_per_km_nm=1e-9
    )
    alice, bob = (
        FibreLink(distance_km=d, attenuation_db_per_km=0.2, classical_channels=1, raman_coefficient_per_km_nm=1e-9) for d in (15.0, 45.0)
    )
    np.testing.assert_allclose(
        link.raman_photons_per_window(True), [alice.raman_photons_per_window(True), bob.raman_photons_per_window(True)]
    )


def test_cv_excess_noise_from_raman_is_twice_the_mode_occupation_per_polarisation_over_t():
    cube = qkdjax.run("protocol=cv_gg02", "source=gaussian", "detector=coherent", "link.distance_km=[25]", "link.classical_channels=1")
    link = FibreLink(distance_km=25.0, attenuation_db_per_km=0.2, classical_channels=1, classical_power_dbm=0.0)
    per_mode = float(link.noise_photons_per_mode()) / 2  # the local oscillator's polarisation
    raman = cube.raman_excess_noise_snu.squeeze().values.ravel()
    np.testing.assert_allclose(raman, 2 * per_mode / float(link.transmittance()), rtol=1e-12)
    total = cube.excess_noise_total_snu.squeeze().values.ravel()
    np.testing.assert_allclose(total, 0.01 + raman, rtol=1e-12)


def test_coexistence_report_says_how_much_classical_power_each_design_tolerates():
    cube = qkdjax.run(
        "sweep=coexistence", "link.distance_km=[25,80]", "link.classical_channels=[1,16]", "link.classical_power_dbm=${linspace:-30,10,21}"
    )
    text = "\n".join(summary_lines(cube, 1.0, 0.95))
    assert "Largest link.classical_power_dbm tolerated" in text
    assert "most tolerant" in text
    edge = qkdjax.analysis.required_value(cube, 1.0, "link.classical_power_dbm", side="max")
    # SNSPDs tolerate more than gated InGaAs APDs everywhere; more channels tolerate less power per channel
    assert np.all(edge.sel(design="bb84_snspd").values > edge.sel(design="bb84_ingaas").values)
    assert np.all(edge.sel({"link.classical_channels": 16}).values < edge.sel({"link.classical_channels": 1}).values)


def test_cv_raman_noise_reproduces_kumar_qin_alleaume_2015():
    """R. Kumar, H. Qin, R. Alleaume, NJP 17, 043027 (2015), Eq. (6) and its worked case (as transcribed by a third
    party): 0 dBm over 25 km at 0.2 dB/km, Raman coefficient 3e-9 /(km nm), quantum channel at 1531.12 nm, 0.5 dB
    add/drop loss before Bob: 1.3e-3 SNU (forward) and 1.6e-3 SNU (backward) of excess noise at Bob's input. Ours:
    2 x the photons per mode in the local oscillator's polarisation, through the same 0.5 dB."""
    for direction, published in (({"classical_channels": 1}, 1.3e-3), ({"classical_counter_channels": 1}, 1.6e-3)):
        link = FibreLink(
            distance_km=25.0, attenuation_db_per_km=0.2, classical_power_dbm=0.0, quantum_wavelength_nm=1531.12,
            raman_coefficient_per_km_nm=3e-9, **direction,
        )  # fmt: skip
        at_bob = 2.0 * float(link.noise_photons_per_mode()) / 2.0 * 10 ** (-0.05)
        assert at_bob == pytest.approx(published, rel=0.03)
