"""QKD networks (link=network): key relay by max-flow, the same answers as chains and corridors, availability of
meshes against exact reliability, validation of the graph, costs."""

import itertools
import math

import numpy as np
import pytest
import yaml
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

import qkdjax
from qkdjax.config import ConfigError
from qkdjax.paths import CONF_DIR

RATES_ONLY = ("montecarlo.trials=0", "link.demand_bps=[1e4]")
FAST = ("supply.time_step_s=3600", "montecarlo.trials=200")


def network(tmp_path, overrides=(), **link):
    """Run a network given as the link config's values (a YAML written under ``tmp_path``)."""
    (tmp_path / "link").mkdir(parents=True, exist_ok=True)
    defaults = yaml.safe_load((CONF_DIR / "link" / "network.yaml").read_text())
    (tmp_path / "link" / "net.yaml").write_text(yaml.safe_dump(defaults | link))
    return qkdjax.run(f"hydra.searchpath=[file://{tmp_path}]", "link=net", "sweep=tokyo_network", *overrides)


def sites_of(**kinds):
    return [{"name": name, "kind": kind} for name, kind in kinds.items()]


def chain_links(lengths_km, attenuation=0.2, extra_db=0.0, **extra):
    names = ["A", *[f"N{i}" for i in range(1, len(lengths_km))], "B"]
    sites = [{"name": n, "kind": "user" if n in ("A", "B") else "trusted"} for n in names]
    links = [{"a": a, "b": b, "distance_km": d, "attenuation_db_per_km": attenuation, "extra_loss_db": extra_db, **extra}
             for a, b, d in zip(names, names[1:], lengths_km)]  # fmt: skip
    return {"sites": sites, "links": links, "demands": [{"a": "A", "b": "B"}]}


def test_a_chain_network_is_the_trusted_node_chain(tmp_path):
    """The Tokyo chain Koganei - Otemachi - Hongo: the same hops, the same end-to-end rate (to the last bits: the
    network's links are one vectorised program, the chain's hops scalar ones)."""
    chain = qkdjax.run("sweep=tokyo_2010", "link.demand_bps=1e4", "link.paths=1", "montecarlo.trials=0")
    sites = sites_of(Koganei="user", Otemachi="trusted", Hongo="user")
    links = [
        {"a": "Koganei", "b": "Otemachi", "distance_km": 45.0, "attenuation_db_per_km": 0.3},
        {"a": "Otemachi", "b": "Hongo", "distance_km": 13.0, "attenuation_db_per_km": 0.5},
    ]
    cube = network(tmp_path, RATES_ONLY, sites=sites, links=links, demands=[{"a": "Koganei", "b": "Hongo"}])
    assert float(cube.key_rate.squeeze()) == pytest.approx(float(chain.key_rate), rel=1e-14)
    np.testing.assert_array_equal(cube.min_cut_link.squeeze(), [1.0, 0.0])  # the 45 km link is the bottleneck
    assert float(cube.trusted_nodes.squeeze()) == 1


@pytest.mark.parametrize("protocol", ["bb84_decoy", "tf_sns"])
def test_a_chain_network_is_the_corridor(tmp_path, protocol):
    """A 300 km corridor with 2 trusted nodes; twin-field hops are spans through an untrusted relay, half the hop's
    extra loss on each arm."""
    setup = ("detector=snspd", "detector.dead_time_ns=0", "link.attenuation_db_per_km=0.2")
    corridor = qkdjax.run(
        "sweep=corridor", "link.trusted_nodes=[2]", "link.demand_bps=[1e3]", "montecarlo.trials=0", f"protocol={protocol}", *setup
    )
    extra = (
        {"link": "midpoint_fibre", "alice_extra_loss_db": 0.5, "bob_extra_loss_db": 0.5} if protocol == "tf_sns" else {"extra_loss_db": 1.0}
    )
    spec = chain_links([100.0] * 3, **extra)
    if protocol == "tf_sns":
        for link in spec["links"]:
            link.pop("extra_loss_db")
    cube = network(tmp_path, (*RATES_ONLY, f"protocol={protocol}", "detector=snspd", "detector.dead_time_ns=0"), **spec)
    assert float(cube.key_rate.squeeze()) == pytest.approx(float(corridor.key_rate.squeeze()), rel=1e-12)
    assert float(cube.untrusted_relays.squeeze()) == float(corridor.untrusted_relays.squeeze())


def test_chain_supply_agrees_with_the_chain_scenario(tmp_path):
    """Without hop buffers (the network model keeps key at the user sites only) the chain scenario and the network
    simulate the same process: their estimates agree within their statistical errors."""
    common = ("supply.time_step_s=3600", "supply.horizon_h=1000", "montecarlo.trials=300", "link.demand_bps=[500]")
    reliability = ("link.node_mtbf_h=300", "link.node_mttr_h=20", "link.store_bits=1e8")
    empty = "link.store_initial_fill=0"  # the chain scenario's stores start empty
    corridor = qkdjax.run(
        "sweep=corridor", "link.trusted_nodes=[2]", "link.buffer_bits=0", "link.hop_mtbf_h=500", "link.hop_mttr_h=30", *common, *reliability
    )
    spec = chain_links([100.0] * 3, extra_db=1.0)
    cube = network(tmp_path, (*common, *reliability, empty, "link.link_mtbf_h=500", "link.link_mttr_h=30", "detector=ingaas_apd"), **spec)
    chain, net = corridor.squeeze(), cube.squeeze()
    assert float(net.key_rate) == pytest.approx(float(chain.key_rate), rel=1e-12)
    for name in ("availability", "unserved_fraction_mean", "longest_starvation_h_mean"):
        difference = abs(float(net[name]) - float(chain[name]))
        assert difference < 4.0 * math.hypot(float(net[f"{name}_stderr"]), float(chain[f"{name}_stderr"])), name
    p_net, p_chain = float(net.demand_met_probability), float(chain.demand_met_probability)
    assert 0.05 < p_chain < 0.95  # a discriminating point
    assert abs(p_net - p_chain) < 4.0 * math.sqrt(p_chain * (1 - p_chain) * 2 / 300)


def bridge(rates):
    """The Wheatstone bridge A - {C, D} - B with a cross link C - D: not series-parallel."""
    ends = [("A", "C"), ("A", "D"), ("C", "D"), ("C", "B"), ("D", "B")]
    links = [{"a": a, "b": b, "key_rate_bps": float(r)} for (a, b), r in zip(ends, rates)]
    return {"sites": sites_of(A="user", B="user", C="trusted", D="trusted"), "links": links, "demands": [{"a": "A", "b": "B"}]}


def scipy_max_flow(n_sites, ends, rates):
    """Max-flow of integer rates through an undirected graph (each link both ways), site 0 to site 1."""
    rows, cols, capacity = [], [], []
    for (i, j), r in zip(ends, rates):
        rows += [i, j]
        cols += [j, i]
        capacity += [int(r), int(r)]
    graph = csr_matrix((capacity, (rows, cols)), shape=(n_sites, n_sites))
    graph.sum_duplicates()
    return maximum_flow(graph, 0, 1).flow_value


def test_demand_rate_is_the_max_flow_of_random_meshes(tmp_path):
    rng, checked = np.random.default_rng(7), 0
    for trial in range(8):
        n = int(rng.integers(3, 7))
        names = ["A", "B", *[f"T{i}" for i in range(n - 2)]]
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        chosen = [pairs[k] for k in rng.choice(len(pairs), size=min(len(pairs), int(rng.integers(n, 2 * n))), replace=False)]
        chosen.append((0, 2) if n > 2 else (0, 1))  # a parallel link, maybe
        chosen += [(i, int(rng.integers(0, i))) for i in range(1, n) if not any(i in pair for pair in chosen)]  # none left alone
        rates = rng.integers(0, 100, size=len(chosen))
        links = [
            {"a": names[i], "b": names[j], "key_rate_bps": float(r), "name": f"l{k}"} for k, ((i, j), r) in enumerate(zip(chosen, rates))
        ]
        sites = [{"name": name, "kind": "user" if name in "AB" else "trusted"} for name in names]
        try:
            cube = network(tmp_path / str(trial), RATES_ONLY, sites=sites, links=links, demands=[{"a": "A", "b": "B"}])
        except ConfigError as error:  # a random graph that leaves A and B apart
            assert "not connected" in str(error)
            continue
        assert float(cube.key_rate.squeeze()) == scipy_max_flow(n, chosen, rates)
        cut = cube.min_cut_link.squeeze().values.astype(bool)
        assert rates[cut].sum() == scipy_max_flow(n, chosen, rates)  # the reported bottleneck is a minimum cut
        checked += 1
    assert checked >= 5


def test_shared_links_are_split_in_proportion_to_demand(tmp_path):
    sites = sites_of(A="user", B="user", C="user", N="trusted")
    links = [
        {"a": "A", "b": "N", "key_rate_bps": 400.0},
        {"a": "N", "b": "B", "key_rate_bps": 1000.0},
        {"a": "N", "b": "C", "key_rate_bps": 1000.0},
    ]
    demands = [{"a": "A", "b": "B", "share": 1.0}, {"a": "A", "b": "C", "share": 3.0}]
    cube = network(tmp_path, RATES_ONLY, sites=sites, links=links, demands=demands).squeeze()
    np.testing.assert_allclose(cube.key_rate, [100.0, 300.0], rtol=1e-15)
    np.testing.assert_allclose(cube.key_rate_alone, [400.0, 400.0], rtol=1e-15)
    np.testing.assert_allclose(cube.demand_bps, [1e4, 3e4])


def exact_connectivity(availability):
    """P(A and B connected) of the bridge with independent links up with the given probabilities (all 32 states)."""
    ends = [(0, 2), (0, 3), (2, 3), (2, 1), (3, 1)]
    total = 0.0
    for state in itertools.product([0, 1], repeat=5):
        reached, grew = {0}, True
        while grew:
            grew = False
            for up, (i, j) in zip(state, ends):
                if up and (i in reached) != (j in reached):
                    reached |= {i, j}
                    grew = True
        if 1 in reached:
            total += math.prod(a if up else 1 - a for up, a in zip(state, availability))
    return total


def test_mesh_availability_is_the_exact_reliability(tmp_path):
    """Trusted nodes that never fail, links with MTBF 100 h and MTTR 10-40 h: the fraction of time A and B are
    connected equals the bridge's exact two-terminal reliability within the Monte Carlo error."""
    spec = bridge([5, 5, 5, 5, 5])
    mttr = [10.0, 20.0, 30.0, 40.0, 15.0]
    for link, repair in zip(spec["links"], mttr):
        link |= {"mtbf_h": 100.0, "mttr_h": repair}
    overrides = ("supply.time_step_s=900", "montecarlo.trials=200", "link.demand_bps=[0]", "link.node_mtbf_h=inf")
    cube = network(tmp_path, overrides, **spec).squeeze()
    expected = exact_connectivity([100.0 / (100.0 + r) for r in mttr])
    assert abs(float(cube.availability) - expected) < 4.0 * float(cube.availability_stderr)
    np.testing.assert_allclose(cube.link_availability, [100.0 / (100.0 + r) for r in mttr], atol=0.02)


def test_site_failures_cut_their_links(tmp_path):
    """A star through one trusted node that fails: the user pair is up when the node and both links are."""
    spec = {
        "sites": [*sites_of(A="user", B="user"), {"name": "N", "kind": "trusted", "mtbf_h": 50.0, "mttr_h": 10.0}],
        "links": [{"a": "A", "b": "N", "key_rate_bps": 9.0}, {"a": "N", "b": "B", "key_rate_bps": 9.0}],
        "demands": [{"a": "A", "b": "B"}],
    }
    overrides = ("supply.time_step_s=900", "montecarlo.trials=200", "link.demand_bps=[0]", "link.link_mtbf_h=inf")
    cube = network(tmp_path, overrides, **spec).squeeze()
    assert abs(float(cube.availability) - 50.0 / 60.0) < 4.0 * float(cube.availability_stderr)
    assert float(cube.mean_outage_h) == pytest.approx(10.0, rel=0.1)  # the observed time to restore: the node's MTTR


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"links": [{"a": "A", "b": "X", "key_rate_bps": 1.0}]}, "names site 'X', which is not one of: A, B, N"),
        ({"links": [{"a": "A", "b": "A", "key_rate_bps": 1.0}]}, "joins site 'A' to itself"),
        (
            {"sites": sites_of(A="user", B="user", N="relay")},
            "link.sites[2].kind = 'relay' is not one of: user, trusted, ground_station (untrusted",
        ),
        ({"sites": sites_of(A="user", B="user", N="trusted", M="trusted")}, "site 'M' has no link"),
        ({"sites": sites_of(A="user", B="user", N="trusted", A2="user") + [{"name": "A", "kind": "user"}]}, "lists the site 'A' twice"),
        (
            {
                "sites": sites_of(A="user", B="user", N="trusted", M="trusted"),
                "links": [{"a": "A", "b": "N", "key_rate_bps": 1.0}, {"a": "M", "b": "B", "key_rate_bps": 1.0}],
            },
            "sites 'A' and 'B' are not connected by any link path",
        ),
        ({"demands": [{"a": "A", "b": "N"}]}, "'N' is a trusted site; demands join user sites"),
        (
            {
                "links": [
                    {
                        "a": "A",
                        "b": "B",
                        "distance_km": 1.0,
                        "attenuation_db_per_km": 0.2,
                        "protocol": {"use": "bb84_decoy", "decoy": ["infinite", "none"]},
                    }
                ]
            },
            "link.links[0].protocol.decoy is a list, but a link's choices are static",
        ),
        (
            {"links": [{"a": "A", "b": "B", "distance_km": [1, -2], "attenuation_db_per_km": 0.2}]},
            "link.links[0]: link.distance_km = -2 is outside",
        ),
        (
            {"links": [{"a": "A", "b": "B", "link": "midpoint_fibre", "distance_km": 10.0, "attenuation_db_per_km": 0.2}]},
            "needs a link with 1 arm(s)",
        ),
        (
            {"links": [{"a": "A", "b": "B", "protocol": "nope", "distance_km": 1.0}]},
            "link.links[0].protocol = 'nope' is not one of the protocol configs",
        ),
        (
            {"links": [{"a": "A", "b": "B", "detector": {"efficiency": 2.0}, "distance_km": 1.0, "attenuation_db_per_km": 0.2}]},
            "link.links[0].detector.efficiency = 2",
        ),
        ({"links": [{"a": "A", "b": "B", "key_rate_bps": -1.0}]}, "key_rate_bps = -1.0 must be a number in [0, inf)"),
    ],
)
def test_bad_networks_get_one_line(tmp_path, change, message):
    spec = {
        "sites": sites_of(A="user", B="user", N="trusted"),
        "links": [{"a": "A", "b": "N", "key_rate_bps": 1.0}, {"a": "N", "b": "B", "key_rate_bps": 1.0}],
        "demands": [{"a": "A", "b": "B"}],
    } | change
    with pytest.raises(ConfigError) as error:
        network(tmp_path, RATES_ONLY, **spec)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_costs_add_up(tmp_path):
    """The example price set on the Tokyo network: capex, opex and the capital recovery factor by hand."""
    cube = qkdjax.run("sweep=tokyo_network", "cost=example", *RATES_ONLY).squeeze()
    prices = yaml.safe_load((CONF_DIR / "cost" / "example.yaml").read_text())
    capex = 3 * prices["terminal_pair_bb84_eur"] + prices["trusted_node_eur"]
    r, n = prices["discount_rate"], prices["lifetime_years"]
    failures = 3 * 8766.0 / (4380.0 + 12.0) + 8766.0 / (8760.0 + 4.0)
    opex = (
        prices["site_rent_eur_per_year"] + prices["staff_eur_per_year"] + 70.0 * prices["dark_fibre_eur_per_km_year"]
        + capex * prices["maintenance_fraction_per_year"] + failures * prices["repair_eur"]
    )  # fmt: skip
    per_year = capex * r * (1 + r) ** n / ((1 + r) ** n - 1) + opex
    assert float(cube.capex) == capex
    assert float(cube.cost_per_year) == pytest.approx(per_year, rel=1e-12)
    assert float(cube.cost_per_protected_link) == pytest.approx(per_year / 2, rel=1e-12)
    delivered = 2 * 1e4 * 8766.0 * 3600.0  # both pairs get their 1e4 bit/s
    assert float(cube.cost_per_key_bit) == pytest.approx(per_year / delivered, rel=1e-12)
    assert cube.cost_per_year.attrs["non_udunits_units"] == "EUR/year"


def test_a_satellite_edge_is_the_satellite_link_at_its_elevation(tmp_path):
    """A ground station's downlink at 60 degrees (its own source and detector) beside a fibre link and a supply of
    known rate (a pass study's key per day / 86400): each link's rate is its own point study's."""
    spec = {
        "sites": sites_of(A="user", G="ground_station", B="user"),
        "links": [
            {"a": "A", "b": "G", "distance_km": 20.0, "attenuation_db_per_km": 0.2},
            {"a": "G", "b": "B", "link": "satellite_downlink", "elevation_deg": 60.0, "source": "micius", "detector": "si_spad"},
            {"a": "A", "b": "B", "key_rate_bps": 0.5, "name": "pass-supply"},
        ],
        "demands": [{"a": "A", "b": "B"}],
    }
    cube = network(tmp_path, RATES_ONLY, **spec).squeeze()
    alone = qkdjax.run("sweep=satquma_downlink", "link.elevation_deg=60", "source=micius", "detector=si_spad")
    assert float(cube.link_key_rate[1]) == pytest.approx(float(alone.key_rate), rel=1e-12)
    assert float(cube.key_rate) == pytest.approx(min(float(cube.link_key_rate[0]), float(cube.link_key_rate[1])) + 0.5, rel=1e-12)
    assert list(cube.link_type.values) == ["fibre", "satellite_downlink", "supply"]


def test_one_link_length_is_a_sweep_axis(tmp_path):
    """A list as one link's length makes a grid axis of its own (vectorised like any other): each point equals the
    network with that length fixed, and the fibre leased follows it."""
    spec = chain_links([45.0, 13.0], attenuation=0.3)
    spec["links"][0]["distance_km"] = [30.0, 45.0, 60.0]
    cube = network(tmp_path / "swept", (*RATES_ONLY, "cost=example"), **spec).squeeze()
    axis = "link.links.A-N1.link.distance_km"
    assert list(cube[axis].values) == [30.0, 45.0, 60.0] and cube[axis].attrs["units"] == "km"
    for length in (30.0, 60.0):
        fixed = chain_links([length, 13.0], attenuation=0.3)
        alone = network(tmp_path / str(length), (*RATES_ONLY, "cost=example"), **fixed).squeeze()
        point = cube.sel({axis: length})
        np.testing.assert_allclose(point.link_key_rate, alone.link_key_rate, rtol=1e-14)
        np.testing.assert_allclose(point.link_length_km, [length, 13.0])
        assert float(point.cost_per_year) == pytest.approx(float(alone.cost_per_year), rel=1e-14)


def test_links_are_optimised_like_point_studies(tmp_path):
    """With optimize.enabled each link runs the point study's optimiser over its own parameters: the Koganei -
    Otemachi link's optimised rate is the point study's at 45 km, above the configured one."""
    optimise = ("optimize.enabled=true", "optimize.steps=100")
    cube = qkdjax.run("sweep=tokyo_network", *RATES_ONLY, *optimise).squeeze()
    plain = qkdjax.run("sweep=tokyo_network", *RATES_ONLY).squeeze()
    point = qkdjax.run("link.distance_km=[45]", "link.attenuation_db_per_km=0.3", "detector=snspd", "detector.efficiency=0.65", *optimise)
    assert float(cube.link_key_rate[0]) == pytest.approx(float(point.key_rate.squeeze()), rel=1e-9)
    assert np.all(cube.link_key_rate > plain.link_key_rate)
