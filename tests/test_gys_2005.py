"""sweeps/gys_2005.yaml reproduces Ma, Qi, Zhao, Lo, Phys. Rev. A 72, 012326 (2005) (../shared/reference/gys_2005.json)."""

import numpy as np
import pytest
from conftest import reference

import qkdjax


@pytest.fixture(scope="module")
def gys():
    return reference("gys_2005")


def max_distance_km(rate, distance):
    return float(distance[np.asarray(rate) > 0].max())


def test_sweep_has_the_published_layout():
    cube = qkdjax.run("sweep=gys_2005")
    assert dict(cube.sizes) == {"protocol.decoy": 2, "link.distance_km": 301}
    distance = cube["link.distance_km"].values
    assert distance[0] == 0.0 and distance[-1] == 150.0 and np.diff(distance).max() <= 0.5
    assert list(cube["protocol.decoy"].values) == ["infinite", "vacuum_weak"]


@pytest.mark.parametrize(
    ("decoy", "published_key"),
    [("infinite", "max_distance_km_infinite_decoys"), ("vacuum_weak", "max_distance_km_vacuum_plus_weak_decoy_mu_0.48_nu_0.05")],
)
def test_maximum_distance(gys, decoy, published_key):
    cube = qkdjax.run("sweep=gys_2005", f"protocol.decoy={decoy}", "link.distance_km=${linspace:130,150,4001}")
    reach = max_distance_km(cube.key_rate_per_pulse, cube["link.distance_km"].values)
    assert reach == pytest.approx(gys["published"][published_key], abs=0.5)


def test_optimal_signal_intensity(gys):
    cube = qkdjax.run(
        "sweep=gys_2005", "protocol.decoy=infinite", "link.distance_km=[20,50,100]", "source.mu_signal=${linspace:0.3,0.7,401}"
    )
    best = cube.key_rate_per_pulse.idxmax("source.mu_signal")
    np.testing.assert_allclose(best.values, gys["published"]["optimal_mu_f_1.22"], atol=0.01)


def test_bound_tightness_at_40_km(gys):
    """Vacuum + weak decoy with nu/mu = 0.25: Y1 bound 3.5 % below, e1 bound 16.8 % above the true values."""
    cube = qkdjax.run("sweep=gys_2005", "link.distance_km=[40]", "source.mu_decoy=0.12").isel({"link.distance_km": 0})
    exact, bound = cube.sel({"protocol.decoy": "infinite"}), cube.sel({"protocol.decoy": "vacuum_weak"})
    published = gys["published"]["at_40_km_nu_over_mu_0.25"]
    yield_below = 100 * (1 - bound.single_photon_yield / exact.single_photon_yield)
    error_above = 100 * (bound.single_photon_error / exact.single_photon_error - 1)
    assert float(yield_below) == pytest.approx(published["single_photon_yield_lower_bound_below_true_percent"], abs=0.1)
    assert float(error_above) == pytest.approx(published["single_photon_error_upper_bound_above_true_percent"], abs=0.1)


def test_without_decoys_the_link_stops_near_40_km():
    """GLLP with worst-case tagging, the best signal intensity at each distance: about 40 km (reference notes)."""
    cube = qkdjax.run(
        "sweep=gys_2005",
        "protocol.decoy=none",
        "source.mu_decoy=1e-4",
        "source.mu_signal=${logspace:-3.5,-0.5,301}",
        "link.distance_km=${linspace:20,60,401}",
    )
    best = cube.key_rate_per_pulse.max("source.mu_signal")
    assert max_distance_km(best, cube["link.distance_km"].values) == pytest.approx(40.0, abs=1.0)
