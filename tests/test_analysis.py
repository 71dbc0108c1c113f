"""qkdjax.analysis returns the right numbers: synthetic cubes with analytic answers, and the GYS cube vs Ma et al."""

import re

import numpy as np
import pytest
import xarray as xr
from conftest import reference

import qkdjax
from qkdjax import analysis

DISTANCE = np.linspace(0.0, 200.0, 41)  # 5 km steps
LOSS_PER_KM = np.array([0.02, 0.05, 0.1])  # rate = exp(-a d): reach for target t is -log(t) / a


def synthetic_cube() -> xr.Dataset:
    """key_rate = exp(-a d) (bit/s) over distance x a x an efficiency factor, and a categorical dim."""
    d = xr.DataArray(DISTANCE, dims="link.distance_km", attrs={"units": "km", "long_name": "fibre length", "qkdjax_role": "distance"})
    a = xr.DataArray(LOSS_PER_KM, dims="a")
    eff = xr.DataArray([0.1, 0.2, 0.4, 0.8], dims="detector.efficiency", attrs={"units": "1", "long_name": "efficiency"})
    option = xr.DataArray(["slow", "fast"], dims="option")
    speed = xr.DataArray([1.0, 3.0], dims="option")
    rate = speed * (eff / 0.8) ** 2 * np.exp(-a * d)
    cube = xr.Dataset({"key_rate": rate.assign_attrs(units="bit/s", long_name="secret key rate")})
    return cube.assign_coords({"link.distance_km": d, "a": a, "detector.efficiency": eff, "option": option})


@pytest.fixture(scope="module")
def cube():
    return synthetic_cube()


def test_reach_of_an_exponential_is_analytic(cube):
    rate = cube.sel({"option": "slow", "detector.efficiency": 0.8})
    for target in (0.5, 1e-2, 3e-4):
        got = analysis.reach(rate, target)
        expected = -np.log(target) / LOSS_PER_KM
        expected = np.where(expected > DISTANCE[-1], DISTANCE[-1], expected)
        np.testing.assert_allclose(got.values, expected, rtol=1e-12)
        np.testing.assert_array_equal(got.at_grid_edge.values, -np.log(target) / LOSS_PER_KM >= DISTANCE[-1])
    assert got.attrs["units"] == "km"


def test_reach_keeps_other_dims_and_is_nan_where_never_met(cube):
    got = analysis.reach(cube, 2.0)
    assert set(got.dims) == {"a", "detector.efficiency", "option"}
    assert np.isnan(got.sel(option="slow")).all()  # rate <= 1 everywhere
    fast = got.sel({"option": "fast", "detector.efficiency": 0.8})
    np.testing.assert_allclose(fast.values, np.log(3.0 / 2.0) / LOSS_PER_KM, rtol=1e-12)


def test_lazy_cube_gives_a_lazy_result_with_the_same_numbers(cube):
    pytest.importorskip("dask")
    lazy = analysis.reach(cube.chunk({"a": 1, "link.distance_km": 10}), 1e-2)
    assert lazy.chunks is not None
    xr.testing.assert_allclose(lazy.compute(), analysis.reach(cube, 1e-2))
    best = analysis.compare_options(cube.chunk({"a": 1}), "option")
    assert best.advantage.chunks is not None
    xr.testing.assert_identical(best.compute(), analysis.compare_options(cube, "option"))
    nodes = analysis.smallest_option_meeting_demand(availability_cube().chunk({"link.demand_bps": 1}), 0.99, "link.trusted_nodes")
    assert nodes.chunks is not None and list(nodes.values) == [2.0, 3.0, 4.0]


def test_required_efficiency_is_the_smallest_meeting_the_target(cube):
    """rate = (eff / 0.8)^2 exp(-a d): eff needed for target t is 0.8 sqrt(t exp(a d)), interpolated in log."""
    rate = cube.sel({"option": "slow", "a": 0.05}).sel({"link.distance_km": [0.0, 20.0, 40.0, 60.0]})
    got = analysis.required_value(rate, 0.1, "detector.efficiency")
    exact = 0.8 * np.sqrt(0.1 * np.exp(0.05 * np.array([0.0, 20.0, 40.0, 60.0])))
    # log(rate) is linear in log(eff), not eff: the interpolated value is within a grid step and above the exact one
    assert got.sel({"link.distance_km": 60.0}).isnull()  # needs 0.8 * sqrt(2.0) > 0.8
    ok = got.values[:3]
    assert np.all(ok >= exact[:3] - 1e-12) and np.all(ok - exact[:3] < 0.1)
    assert got.at_grid_edge.values[0] == (exact[0] <= 0.1)
    assert got.name == "required_detector.efficiency" and got.attrs["units"] == "1"


def test_required_value_of_a_falling_rate_is_the_largest(cube):
    got = analysis.required_value(cube.sel({"option": "fast", "detector.efficiency": 0.8, "a": 0.1}), 1e-3, "link.distance_km")
    assert float(got) == pytest.approx(np.log(3.0 / 1e-3) / 0.1, rel=1e-12)


def test_required_value_of_a_flat_rate_is_the_largest_tolerated(cube):
    flat = cube.sel({"option": "slow", "link.distance_km": 0.0, "detector.efficiency": 0.8})  # the same for every a
    got = analysis.required_value(flat, 0.5, "a")
    assert float(got) == LOSS_PER_KM[-1] and bool(got.at_grid_edge)
    assert float(analysis.required_value(flat, 0.5, "a", side="min")) == LOSS_PER_KM[0]


def test_margin_feasibility_and_plob_fraction(cube):
    m = analysis.margin(cube, 0.5)
    np.testing.assert_allclose(m.values, cube.key_rate.values / 0.5)
    assert (analysis.feasible(cube, 0.5) == (cube.key_rate >= 0.5)).all()
    bound = xr.DataArray([np.inf, 2.0, 0.5], dims="x")
    rate = xr.full_like(bound, 0.25).assign_attrs(qkdjax_role="rate_per_pulse")
    plob = xr.Dataset({"key_rate_per_pulse": rate, "plob_bound_per_pulse": bound.assign_attrs(qkdjax_role="bound")})
    np.testing.assert_allclose(analysis.plob_fraction(plob).values, [0.0, 0.125, 0.5])


def test_compare_options_names_the_best_and_by_how_much(cube):
    result = analysis.compare_options(cube, "option")
    assert (result.best == "fast").all()
    positive = result.runner_up_value > 0
    np.testing.assert_allclose(result.advantage.where(positive).values, np.where(positive, 3.0, np.nan))
    worst = analysis.compare_options(cube, "option", higher_is_better=False)
    assert (worst.best == "slow").all()


def availability_cube() -> xr.Dataset:
    """demand_met_probability over trusted nodes x demand: more nodes meet more demand."""
    nodes = np.arange(5.0)
    demand = np.array([1e3, 1e4, 1e5])
    prob = np.clip((nodes[None, :] - np.log10(demand)[:, None] + 3.0) / 2.0, 0.0, 1.0)
    cube = xr.Dataset(
        {"demand_met_probability": (("link.demand_bps", "link.trusted_nodes"), prob, {"units": "1", "qkdjax_role": "demand_met"})}
    )
    attrs = (
        {"units": "bit/s", "long_name": "demand", "qkdjax_role": "demand"},
        {"units": "1", "long_name": "trusted nodes", "qkdjax_role": "option"},
    )
    return cube.assign_coords(
        {"link.demand_bps": ("link.demand_bps", demand, attrs[0]), "link.trusted_nodes": ("link.trusted_nodes", nodes, attrs[1])}
    )


def test_options_meeting_a_demand():
    cube = availability_cube()  # probability 1 needs nodes >= log10(demand) - 1
    nodes = analysis.smallest_option_meeting_demand(cube, 0.99, "link.trusted_nodes")
    np.testing.assert_array_equal(nodes.values, [2.0, 3.0, 4.0])
    half = analysis.smallest_option_meeting_demand(cube, 0.5, "link.trusted_nodes")
    np.testing.assert_array_equal(half.values, [1.0, 2.0, 3.0])
    demand = analysis.largest_demand_met(cube, 0.99)
    np.testing.assert_array_equal(demand.values, [np.nan, np.nan, 1e3, 1e4, 1e5])
    assert demand.attrs["units"] == "bit/s"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: analysis.reach(c, 1.0, dim="link.length"), "dim = 'link.length'"),
        (lambda c: analysis.reach(c, 0.0), "target = 0.0"),
        (lambda c: analysis.reach(c, -1.0), "target = -1.0"),
        (lambda c: analysis.reach(c, 1.0, variable="key_rate_bps"), "variable = 'key_rate_bps'"),
        (lambda c: analysis.required_value(c, 1.0, "a", side="up"), "side = 'up'"),
        (lambda c: analysis.reach(c, 1.0, dim="option"), "dim = 'option' is categorical"),
        (lambda c: analysis.compare_options(c, "colour"), "dim = 'colour'"),
        (lambda c: analysis.meets_demand(c, 0.5), "the cube has no demand_met variable"),
        (lambda c: analysis.meets_demand(availability_cube(), 1.5), "probability = 1.5"),
    ],
)
def test_bad_input_names_the_parameter_and_value(cube, call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(cube)


def test_best_point(cube):
    best = analysis.best_point(cube)
    assert best == {"option": "fast", "link.distance_km": 0.0, "a": 0.02, "detector.efficiency": 0.8, "value": 3.0}


def test_gys_reach_matches_the_published_maximum_distance():
    """Ma et al. (2005): 142.05 km with infinite decoys, 140.55 km with vacuum + weak decoy (GYS parameters)."""
    published = reference("gys_2005")["published"]
    cube = qkdjax.run("sweep=gys_2005")  # 0 - 150 km in 0.5 km steps
    reach = analysis.reach(cube, np.finfo(float).tiny, variable="key_rate_per_pulse")  # any positive key
    assert reach.sel({"protocol.decoy": "infinite"}).item() == pytest.approx(published["max_distance_km_infinite_decoys"], abs=0.5)
    vacuum_weak = published["max_distance_km_vacuum_plus_weak_decoy_mu_0.48_nu_0.05"]
    assert reach.sel({"protocol.decoy": "vacuum_weak"}).item() == pytest.approx(vacuum_weak, abs=0.5)
    assert not reach.at_grid_edge.any()
    best = analysis.compare_options(cube.sel({"link.distance_km": [50.0, 100.0]}), "protocol.decoy")
    assert (best.best == "infinite").all() and (best.advantage > 1).all()
