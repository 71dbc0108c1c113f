"""The cheapest network design (design.enabled): candidates' rates and prices, the MILP's choice, the Monte Carlo
check of each design, and one-line refusals."""

import json

import numpy as np
import pytest
from test_network_scenario import network, sites_of

from qkdjax.config import ConfigError

DESIGN = ("cost=example", "design.enabled=true", "montecarlo.trials=100", "supply.time_step_s=3600", "link.demand_bps=2e4")
BB84 = {"attenuation_db_per_km": 0.2, "extra_loss_db": 1.0}


def problem(**changes):
    """Users A, B 240 km apart: a direct span (too slow for 2e4 bit/s), or two 120 km spans through a candidate
    trusted node T, or three 80 km spans through U and V; a second, costlier path through W."""
    spec = {
        "sites": sites_of(A="user", B="user", T="trusted", U="trusted", V="trusted", W="trusted"),
        "links": [
            {"a": "A", "b": "B", "name": "direct", "distance_km": 240.0, **BB84},
            {"a": "A", "b": "T", "name": "A-T", "distance_km": 120.0, **BB84},
            {"a": "T", "b": "B", "name": "T-B", "distance_km": 120.0, **BB84},
            {"a": "A", "b": "U", "name": "A-U", "distance_km": 80.0, **BB84},
            {"a": "U", "b": "V", "name": "U-V", "distance_km": 80.0, **BB84},
            {"a": "V", "b": "B", "name": "V-B", "distance_km": 80.0, **BB84},
            {"a": "A", "b": "W", "name": "A-W", "distance_km": 150.0, **BB84},
            {"a": "W", "b": "B", "name": "W-B", "distance_km": 150.0, **BB84},
        ],
        "demands": [{"a": "A", "b": "B"}],
    }
    return spec | changes


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    return network(tmp_path_factory.mktemp("plan"), (*DESIGN, "detector=snspd", "design.protection=none"), **problem())


def test_the_cheapest_design_is_the_cheapest_that_carries_the_demand(planned, tmp_path):
    """Brute force over the four routes: each route's price is the sum of its links' and nodes' (the network study
    prices a whole design; here each route's network is priced on its own) and its rate the slowest link's."""
    cube = planned
    rates = dict(zip(cube.network_link.values, cube.link_key_rate.values))
    routes = {
        "direct": (["direct"], []),
        "T": (["A-T", "T-B"], ["T"]),
        "UV": (["A-U", "U-V", "V-B"], ["U", "V"]),
        "W": (["A-W", "W-B"], ["W"]),
    }
    prices = {}
    for name, (links, nodes) in routes.items():
        if min(rates[link] for link in links) < 2e4:
            continue
        spec = problem(
            sites=sites_of(A="user", B="user", **dict.fromkeys(nodes, "trusted")),
            links=[x for x in problem()["links"] if x["name"] in links],
        )
        route = network(tmp_path / name, ("cost=example", "montecarlo.trials=0", "link.demand_bps=2e4", "detector=snspd"), **spec)
        prices[name] = float(route.cost_per_year.squeeze())
    assert rates["direct"] < 2e4 < min(rates["A-T"], rates["T-B"])  # the problem needs a trusted node
    ranked = sorted(prices, key=prices.get)
    winner, runner_up = json.loads(cube.attrs["design_winner"]), json.loads(cube.attrs["design_runner_up"])
    assert winner["annual_cost"] == pytest.approx(prices[ranked[0]], rel=1e-9)
    assert sorted(winner["spans"]) == sorted(routes[ranked[0]][0])
    assert winner["sites"] == routes[ranked[0]][1]
    assert runner_up["annual_cost"] >= winner["annual_cost"]
    np.testing.assert_array_equal(cube.design_cost_per_year, [winner["annual_cost"], runner_up["annual_cost"]])


def test_each_design_is_checked_by_the_monte_carlo(planned, tmp_path):
    """The verified supply is the network study of the design's own network, with the same seed."""
    cube = planned
    winner = json.loads(cube.attrs["design_winner"])
    built = cube.design_built.sel(network_design="cheapest").values.astype(bool)
    assert sorted(cube.network_link.values[built]) == sorted(winner["spans"])
    opened = cube.site.values[cube.design_opened.sel(network_design="cheapest").values.astype(bool)]
    links = [x for x in problem()["links"] if x["name"] in winner["spans"]]
    kinds = {"A": "user", "B": "user", **dict.fromkeys(winner["sites"], "trusted")}
    assert sorted(opened) == sorted(kinds)
    spec = problem(sites=sites_of(**kinds), links=links)
    alone = network(tmp_path, (*DESIGN[2:], "detector=snspd"), **spec).squeeze()
    for name in ("demand_met_probability", "availability", "key_rate"):
        np.testing.assert_array_equal(cube[f"design_{name}"].sel(network_design="cheapest"), alone[name])
    assert winner["demand_met_probability"] == float(alone.demand_met_probability.min())
    assert float(cube.design_meets_target.sel(network_design="cheapest")) == float(alone.demand_met_probability.min() >= 0.99)


def test_auto_protection_adds_a_second_route_when_one_misses_the_probability(tmp_path):
    """Links that fail often: no single route meets the demand with probability 0.99; protected designs have two
    disjoint routes."""
    flaky = ("link.link_mtbf_h=200", "link.link_mttr_h=24", "link.store_bits=7.2e7", "design.probability=0.99", "design.protection=auto")
    flaky = (*flaky, "detector=snspd")  # an hour of key in the stores
    cube = network(tmp_path, (*DESIGN, *flaky), **problem())
    winner = json.loads(cube.attrs["design_winner"])
    assert winner["protection"] == "single_span"
    assert len(winner["sites"]) >= 2 and len(winner["spans"]) >= 4  # two routes through trusted nodes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("cost=unpriced",), "design.enabled compares designs by cost: choose a price set"),
        (("montecarlo.trials=0",), "design.enabled checks each design's key supply by Monte Carlo: set montecarlo.trials > 0"),
        (("link.demand_bps=[1e3,2e3]",), "design.enabled solves one design problem: give link.demand_bps one value"),
        (("design.probability=1.5",), "design.probability = 1.5 must be a probability in (0, 1]"),
        (("design.protection=always",), "design.protection = 'always' is not one of: none, single_span, auto"),
        (("link.demand_bps=1e9",), "no candidate design"),
    ],
)
def test_bad_design_runs_get_one_line(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as error:
        network(tmp_path, (*DESIGN, *overrides), **problem())
    assert message in str(error.value) and "\n" not in str(error.value)
