"""Side by side with SatQuMA on its default system (sweeps/satquma_pass.yaml): the key per pass with its estimator
(Chernoff bounds, v_Z1 capped at m_Z, logM error correction) and with Lim 2014's Hoeffding bounds, at the
parameters SatQuMA optimised, and qkdjax's own optimum. SatQuMA's figures: tests/reference/satquma_pass.json."""

import numpy as np
import pytest
from conftest import reference

import qkdjax

SATQUMA = reference("satquma_pass")
TOLERANCE = 0.01  # measured: qkdjax is 0.14-0.15 % below SatQuMA in every case (the issue asks for 5 %)


def at(row, max_elevation_deg=90.0, min_elevation_deg=None):
    """Overrides that put SatQuMA's parameters of ``row`` (and its window of 2 dt + 1 one-second slots) into the sweep."""
    overrides = [
        f"source.mu_signal={row['mu1']}", f"source.mu_decoy={row['mu2']}", f"source.mu_weak={row['mu3']}",
        f"source.p_signal={row['pk1']}", f"source.p_decoy={row['pk2']}", f"protocol.p_key_basis={row['PxA']}",
        f"link.max_elevation_deg={max_elevation_deg}",
    ]  # fmt: skip
    return (*overrides, f"link.min_elevation_deg={min_elevation_deg}") if min_elevation_deg is not None else tuple(overrides)


@pytest.mark.parametrize(
    ("case", "bound", "elevations"),
    [
        ("chernoff_theta90", "chernoff", {}),
        ("chernoff_theta80", "chernoff", {"max_elevation_deg": 80.0, "min_elevation_deg": 10.0548}),  # t = +-220.5 s
        ("chernoff_theta90_min_elevation_0", "chernoff", {"min_elevation_deg": 0.3697}),  # t = +-340.5 s
        ("hoeffding_theta90", "hoeffding_lim2014", {}),
    ],
)
def test_key_per_pass_matches_satquma_at_its_parameters(case, bound, elevations):
    row = SATQUMA[case]
    cube = qkdjax.run("sweep=satquma_pass", f"protocol.finite_key_bound={bound}", *at(row, **elevations))
    assert float(cube.key_per_pass) == pytest.approx(row["SKL"], rel=TOLERANCE)
    assert float(cube.qber) == pytest.approx(row["QBER"], rel=TOLERANCE)
    assert float(cube.phase_error) == pytest.approx(row["phi_x"], rel=0.02)
    assert float(cube.block_pulses) == pytest.approx(5e8 * (2 * row["dt"] + 1), rel=1e-4)


def test_lims_hoeffding_finds_no_key_at_satqumas_chernoff_optimum():
    """What the side-by-side run found: Lim 2014 as printed bounds the phase error at 0.5 there."""
    cube = qkdjax.run("sweep=satquma_pass", "protocol.finite_key_bound=hoeffding_lim2014")
    assert float(cube.key_per_pass) == 0.0 and float(cube.phase_error) == 0.5


def test_qkdjax_finds_satqumas_optimum():
    row = SATQUMA["chernoff_theta90"]
    cube = qkdjax.run("sweep=satquma_pass", "protocol.finite_key_bound=chernoff", "optimize.enabled=true")
    assert float(cube.key_per_pass) == pytest.approx(row["SKL"], rel=TOLERANCE)
    found = [float(cube[f"opt.{name}"]) for name in ("protocol.p_key_basis", "source.p_signal", "source.mu_signal")]
    np.testing.assert_allclose(found, [row["PxA"], row["pk1"], row["mu1"]], rtol=0.02)
