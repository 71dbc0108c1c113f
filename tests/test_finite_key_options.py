"""Finite-key and asymptotic options of decoy BB84 beyond Lim 2014 as printed: the bound strategies at the key
level, the single-photon error cap, blocks of sent pulses, Tomamichel's leakage, the vacuum term, measured
atmosphere tables and optimised satellite passes."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ASYMPTOTIC, BASE_POINT, run_cli
from scipy.stats import binom

import qkdjax
from qkdjax.config import ConfigError
from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.parameters import build_params
from qkdjax.physics.detector import click_and_error_probs
from qkdjax.protocols import bb84_decoy
from qkdjax.protocols.bb84_decoy import BB84Decoy
from qkdjax.protocols.bb84_finite import expected_block_counts, finite_key, finite_size_leakage
from qkdjax.tail_bounds import FINITE_KEY_BOUNDS

DETECTOR = ThresholdDetector(efficiency=0.1, dark_count_prob=6e-7, afterpulse_prob=0.04, dead_time_ns=0.0, misalignment=0.005)
INTENSITY, PROBS, Q_X = jnp.array([0.5, 0.15, 0.0]), jnp.array([0.7, 0.2, 0.1]), 0.7


def protocol(**fields):
    base = {
        "decoy": "vacuum_weak", "p_key_basis": Q_X, "ec_efficiency": 1.16, "block_size": 1e6, "eps_sec": 1e-10, "eps_sec_per_key_bit": None,
        "eps_cor": 1e-15, "qber_abort": 0.5,
    }  # fmt: skip
    return BB84Decoy(**(base | fields))


def block(distance_km, **fields):
    """Key of one block with the expected counts over fibre (0.2 dB/km) and 10 % detectors."""
    chosen = protocol(**fields)
    eta = 0.1 * 10 ** (-0.02 * distance_km)
    gain, error_gain = click_and_error_probs(-jnp.expm1(-eta * INTENSITY), DETECTOR)
    counts, pulses = expected_block_counts(chosen, PROBS, gain, error_gain)
    return finite_key(counts, INTENSITY, PROBS, chosen), pulses, counts


def rate(distance_km, **fields):
    key, pulses, _ = block(distance_km, **fields)
    return float(key.key_length / pulses)


def test_tighter_bounds_give_more_key_in_small_blocks_and_all_agree_in_large_ones():
    small = {bound: rate(50, block_size=1e6, finite_key_bound=bound) for bound in FINITE_KEY_BOUNDS}
    assert small["chernoff"] > 0 and small["hoeffding_per_intensity"] > 0 and small["hoeffding_lim2014"] == 0
    medium = {bound: rate(50, block_size=1e7, finite_key_bound=bound) for bound in FINITE_KEY_BOUNDS}
    assert medium["chernoff"] > 1.3 * medium["hoeffding_lim2014"] > 0
    assert medium["hoeffding_per_intensity"] > 1.3 * medium["hoeffding_lim2014"]
    large = [rate(50, block_size=1e12, finite_key_bound=bound) for bound in FINITE_KEY_BOUNDS]
    np.testing.assert_allclose(large, large[0], rtol=2e-3)
    # and the tighter bounds go further: at 1e5 detections only they have key at 50 km with the cap
    assert rate(50, block_size=1e5) == 0.0
    assert rate(50, block_size=1e5, finite_key_bound="chernoff", single_photon_error_cap="observed") > 0


def test_the_error_cap_never_loosens_the_phase_error():
    for distance_km in (0, 50, 80):
        free, _, _ = block(distance_km, finite_key_bound="chernoff")
        capped, _, _counts = block(distance_km, finite_key_bound="chernoff", single_photon_error_cap="observed")
        assert float(capped.phase_error) <= float(free.phase_error)
        assert float(capped.key_length) >= float(free.key_length)


def test_a_block_of_sent_pulses_is_the_block_of_the_detections_they_give():
    key_x, pulses, _counts = block(40, block_size=1e6)
    key_n, pulses_n, counts_n = block(40, block_size=float(pulses), block_size_unit="pulses")
    assert float(pulses_n) == float(pulses)
    assert float(jnp.sum(counts_n.detections_x)) == pytest.approx(1e6, rel=1e-12)
    assert float(key_n.length_margin) == pytest.approx(float(key_x.length_margin), rel=1e-9)


@pytest.mark.parametrize(("n", "qber"), [(1e3, 0.05), (1e5, 0.02), (1e7, 0.01)])
def test_finite_size_leakage_is_tomamichels_formula(n, qber):
    """An independent evaluation with SciPy's binomial quantile."""
    eps = 1e-15
    quantile = binom.ppf(eps * (1 + 1 / np.sqrt(n)), int(n), 1 - qber)
    h = -qber * np.log2(qber) - (1 - qber) * np.log2(1 - qber)
    expected = n * h + (n * (1 - qber) - quantile - 1) * np.log2((1 - qber) / qber) - 0.5 * np.log2(n) - np.log2(1 / eps)
    assert float(finite_size_leakage(n, qber, eps)) == pytest.approx(expected, rel=1e-10)
    assert 1.0 < expected / (n * h) < {1e3: 1.8, 1e5: 1.15, 1e7: 1.03}[n]  # above n h(Q), by less as n grows
    assert float(finite_size_leakage(n, 0.0, eps)) == 0.0


def test_tomamichel_leakage_costs_key_only_where_it_exceeds_f_h():
    ideal = {"finite_key_bound": "chernoff", "ec_efficiency": 1.0}  # f = 1: the finite-size term always exceeds it
    assert 0 < rate(20, block_size=1e6, ec_leakage="tomamichel2017", **ideal) < rate(20, block_size=1e6, **ideal)
    assert rate(20, block_size=1e10, ec_leakage="tomamichel2017") == rate(20, block_size=1e10)  # f = 1.16 exceeds it


@pytest.mark.parametrize("decoy", ["infinite", "vacuum_weak", "none"])
def test_the_vacuum_term_adds_the_vacuum_yields_key(decoy):
    values = {**BASE_POINT, **dict(ASYMPTOTIC), "protocol.decoy": decoy, "source.mu_weak": 0.0}
    excluded = bb84_decoy.asymptotic_estimate(build_params(values))
    p = build_params(values | {"protocol.vacuum_contribution": "included"})
    included = bb84_decoy.asymptotic_estimate(p)
    detector = bb84_decoy.bob_detectors(p)
    noise_click = float(click_and_error_probs(0.0, detector)[0])  # the vacuum yield; a vacuum weak intensity measures it
    expected = (
        0.0
        if decoy == "none"
        else p.source.p_signal * bb84_decoy.sifting_factor(p.protocol.p_key_basis) * noise_click * np.exp(-p.source.mu_signal)
    )
    assert float(included.margin_per_pulse - excluded.margin_per_pulse) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_a_measured_atmosphere_replaces_the_air_mass_model(tmp_path):
    elevations = np.array([0.0, 10.0, 30.0, 60.0, 90.0])
    transmittances = np.array([0.01, 0.3, 0.6, 0.75, 0.8])
    csv = tmp_path / "modtran.csv"
    csv.write_text("elevation_deg,transmittance\n" + "".join(f"{e},{t}\n" for e, t in zip(elevations, transmittances)))
    inline = [[float(e), float(t)] for e, t in zip(elevations, transmittances)]
    for table in (str(csv), str(inline).replace(" ", "")):
        cube = qkdjax.run("sweep=satquma_downlink", f"link.atmosphere_table={table}", "link.elevation_deg=[10,45,90]")
        expected = -10 * np.log10(np.interp([10, 45, 90], elevations, transmittances))
        np.testing.assert_allclose(cube.atmospheric_loss_db.values, expected, rtol=1e-12)


def test_a_tables_contents_are_part_of_the_cube_and_of_a_stores_identity(tmp_path):
    """A CSV file's path is in the config; what it held is in the cube's ``tables`` attr, and a store made from
    other contents under the same path does not resume."""
    csv = tmp_path / "atmosphere.csv"
    csv.write_text("0,0.01\n90,0.8\n")
    overrides = ("sweep=satquma_downlink", f"link.atmosphere_table={csv}", "link.elevation_deg=[30,60]")
    cube = qkdjax.run(*overrides)
    assert json.loads(cube.attrs["tables"]) == {"link.atmosphere_table": [[0.0, 90.0], [0.01, 0.8]]}
    store = ("output.format=zarr", f"output.dir={tmp_path}", "output.name=store")
    first = run_cli(*overrides, *store, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    csv.write_text("0,0.02\n90,0.8\n")
    second = run_cli(*overrides, *store, cwd=tmp_path)
    assert second.returncode != 0 and len(second.stderr.strip().splitlines()) == 1, second.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[[0,0.5],[0,0.6]]", "must increase strictly"),
        ("[[0,0.5],[90,1.5]]", "column transmittance = 1.5 is outside"),
        ("[[20,0.5],[90,0.8]]", "spanning link.min_elevation_deg"),
        ("[[0,0.5]]", "at least 2 rows"),
        ("/no/such/table.csv", "cannot be read"),
    ],
)
def test_bad_atmosphere_tables_are_refused_with_one_line(table, message):
    with pytest.raises(ConfigError, match=message):
        qkdjax.run("sweep=satellite_pass", f"link.atmosphere_table={table}", "montecarlo.trials=0")


def test_an_optimised_pass_gives_at_least_the_configured_key():
    overrides = (
        "sweep=satellite_pass",
        "montecarlo.trials=0",
        "link.max_elevation_deg=[30,90]",
        "link.receiver_radius_m=0.5",
        "link.pointing_jitter_urad=0",
    )
    configured = qkdjax.run(*overrides)
    optimised = qkdjax.run(*overrides, "optimize.enabled=true", "optimize.steps=100")
    assert np.all(optimised.key_per_pass.values >= configured.key_per_pass.values)
    assert np.all(optimised.key_per_pass.values > 1.5 * configured.key_per_pass.values)  # p_key_basis 0.5 is far from the optimum
    np.testing.assert_allclose(optimised["opt.initial_key_rate"], configured.key_rate, rtol=1e-12)
    assert {"opt.source.mu_signal", "opt.protocol.p_key_basis"} <= set(optimised.data_vars)


def test_a_pass_still_refuses_inverse_questions():
    with pytest.raises(ConfigError, match="inverse.target_key_rate works on links evaluated at one point"):
        qkdjax.run("sweep=satellite_pass", "montecarlo.trials=0", "inverse.target_key_rate=1", "inverse.solve=[detector.efficiency]")


def test_the_options_default_to_the_published_analyses():
    """Lim 2014 as printed and Ma et al. 2005 stay the defaults (the lim_2014 and gys_2005 figures)."""
    fields = {f.name: f for f in dataclasses.fields(BB84Decoy)}
    defaults = {"finite_key_bound": "hoeffding_lim2014", "single_photon_error_cap": "none", "ec_leakage": "f_h"}
    defaults |= {"vacuum_contribution": "excluded", "block_size_unit": "detections"}
    for name, default in defaults.items():
        assert fields[name].metadata["static"] and fields[name].default == default


@pytest.mark.parametrize("bound", ["hoeffding_per_intensity", "chernoff"])
def test_monte_carlo_blocks_use_the_chosen_bound(bound):
    """Sampled blocks go through the same estimator: their mean key is near the expected block's, and above
    Lim's."""
    overrides = ("sweep=lim_2014", "optimize.enabled=false", "link.distance_km=[50]", "protocol.block_size=[1e6]", "montecarlo.trials=200")
    cube = qkdjax.run(*overrides, f"protocol.finite_key_bound={bound}")
    expected, sampled = float(cube.key_length.squeeze()), float(cube.key_length_mean.squeeze())
    assert expected > 0 and sampled == pytest.approx(expected, rel=0.02)
    assert float(qkdjax.run(*overrides).key_length_mean.squeeze()) < 0.98 * sampled  # Lim 2014 as printed


def test_intensity_dependent_basis_choices_generalise_lims_counts():
    """Alice's basis per intensity and Bob's own: the counts follow p_k w_{B,k}, each basis bounds its decoys with
    its own intensity statistics, and equal choices give exactly the uniform analysis."""
    uniform, pulses, counts = block(50, block_size=1e7, finite_key_bound="chernoff")
    same, pulses_same, _ = block(50, block_size=1e7, finite_key_bound="chernoff", p_key_basis_bob=Q_X, p_key_basis_decoy=Q_X)
    assert float(same.length_margin) == pytest.approx(float(uniform.length_margin), rel=1e-12)
    assert float(pulses_same) == pytest.approx(float(pulses), rel=1e-12)
    # decoys and weak pulses mostly in Z: the X basis' few decoys cost X single photons, the Z basis gains them
    tilted, pulses_tilted, counts_tilted = block(
        50, block_size=1e7, finite_key_bound="chernoff", p_key_basis_decoy=0.2, p_key_basis_weak=0.2
    )
    ratio = counts_tilted.detections_x[1] / counts.detections_x[1]
    assert float(ratio) == pytest.approx(0.2 / Q_X * float(pulses_tilted) / float(pulses), rel=1e-12)
    assert float(counts_tilted.detections_z[1]) > 2 * float(counts.detections_z[1])
    assert float(tilted.key_length) > 0
    chosen = protocol(p_key_basis_bob=0.6)
    x, z = chosen.matched_bases()
    np.testing.assert_allclose([x[0], z[0]], [Q_X * 0.6, (1 - Q_X) * 0.4])
    assert bb84_decoy.sifting_factor(Q_X, 0.6) == pytest.approx(Q_X * 0.6 + 0.3 * 0.4)


def test_the_event_simulator_refuses_basis_choices_it_does_not_model():
    from qkdjax.montecarlo.events import simulate_pulses

    p = build_params({**BASE_POINT, **dict(ASYMPTOTIC), "protocol.decoy": "vacuum_weak", "protocol.p_key_basis_bob": 0.6})
    with pytest.raises(ValueError, match="protocol.p_key_basis_bob = 0.6: the event simulator models one"):
        simulate_pulses(jax.random.key(0), p.source, p.detector, p.protocol, 1e-3, 1000)
