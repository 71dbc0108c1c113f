"""Trusted-node chains end to end: key relay rates, the Tokyo and corridor sweeps, key-supply availability."""

import re

import numpy as np
import pytest
from omegaconf import OmegaConf

import qkdjax
from qkdjax.cli import CONF_DIR
from qkdjax.config import ConfigError

FAST = ("supply.time_step_s=3600", "montecarlo.trials=64")  # hourly steps: repairs take 4-12 h here


def fibre_rate(distance_km, attenuation_db_per_km, extra_loss_db=0.0, detector="ingaas_apd", *overrides):
    """Key rate of a single fibre link with a detector preset (the default sweep's efficiency axis replaced)."""
    efficiency = OmegaConf.load(CONF_DIR / "detector" / f"{detector}.yaml").efficiency
    cube = qkdjax.run(
        f"link.distance_km=[{distance_km}]", f"link.attenuation_db_per_km={attenuation_db_per_km}",
        f"link.extra_loss_db={extra_loss_db}", f"detector={detector}", f"detector.efficiency={efficiency}", *overrides,
    )  # fmt: skip
    return float(cube.key_rate.squeeze())


def test_chain_rate_is_its_slowest_hop():
    cube = qkdjax.run("sweep=tokyo_2010", "link.demand_bps=1e4", "link.paths=1", "montecarlo.trials=0")
    hops = [fibre_rate(45.0, 0.3, 0.0, "snspd"), fibre_rate(13.0, 0.5, 0.0, "snspd")]
    assert float(cube.key_rate) == pytest.approx(min(hops), rel=1e-12)
    assert float(cube.bottleneck_hop) == 0 and float(cube.trusted_nodes) == 1
    assert float(cube.bottleneck_loss_db) == pytest.approx(13.5)


def test_hop_overrides_apply_to_that_hop_only():
    slow_second_hop = (
        "sweep=tokyo_2010", "link.demand_bps=1e4", "link.paths=1", "montecarlo.trials=0",
        ("link.hops=[{distance_km: 45.0, attenuation_db_per_km: 0.3}, "
        "{distance_km: 13.0, attenuation_db_per_km: 0.5, detector: {efficiency: 0.001}}]"),
    )  # fmt: skip
    cube = qkdjax.run(*slow_second_hop)
    assert float(cube.bottleneck_hop) == 1
    assert float(cube.key_rate) == pytest.approx(fibre_rate(13.0, 0.5, 0.0, "snspd", "detector.efficiency=0.001"))


def test_corridor_hops_are_equal_spans():
    cube = qkdjax.run("sweep=corridor", "link.demand_bps=[1e3]", "montecarlo.trials=0")
    rates = cube.key_rate.squeeze()
    for nodes in (1, 3, 6):
        expected = fibre_rate(300.0 / (nodes + 1), 0.2, 1.0)
        assert float(rates.sel({"link.trusted_nodes": nodes})) == pytest.approx(expected, rel=1e-12)
    assert float(rates.sel({"link.trusted_nodes": 0})) == 0.0  # 300 km in one hop: beyond reach
    np.testing.assert_array_equal(cube.trusted_nodes.squeeze(), cube["link.trusted_nodes"])


@pytest.fixture(scope="module")
def corridor_supply():
    return qkdjax.run("sweep=corridor", "link.trusted_nodes=[0,2,4]", "link.demand_bps=[1e3,1e5,1e6]", *FAST)


def test_supply_meets_demand_only_below_the_rate(corridor_supply):
    cube = corridor_supply
    met = cube.demand_met_probability
    assert np.all(met.sel({"link.trusted_nodes": 0}) == 0)  # no key at all
    np.testing.assert_allclose(cube.unserved_fraction_mean.sel({"link.trusted_nodes": 0}), 1.0, rtol=1e-12)
    assert np.all(met.diff("link.demand_bps") <= 0)  # more demand, less often met
    short = cube.key_rate < cube["link.demand_bps"]  # the chain makes less key than demanded: starves for sure
    assert np.all(met.where(short, 0) == 0)


def test_chain_availability_is_the_product_of_its_parts():
    """Independent components in series: A = A_hop^H A_node^(H-1); two disjoint paths: 1 - (1 - A)^2."""
    a_hop, a_node = 100.0 / (100.0 + 10.0), 200.0 / (200.0 + 5.0)
    cube = qkdjax.run(
        "sweep=corridor", "link.trusted_nodes=[2]", "link.demand_bps=[0]", "link.paths=[1,2]",
        "link.hop_mtbf_h=100", "link.hop_mttr_h=10", "link.node_mtbf_h=200", "link.node_mttr_h=5",
        "supply.time_step_s=1800", "montecarlo.trials=200",
    )  # fmt: skip
    path = a_hop**3 * a_node**2
    expected = np.array([path, 1 - (1 - path) ** 2])
    found = cube.availability.squeeze().values
    # The time average of a year of a 110-hour cycle: its trial-to-trial spread is a few 1e-3.
    np.testing.assert_allclose(found, expected, atol=0.01)
    assert found[1] > found[0]


def test_components_that_never_fail_are_always_up():
    """An MTBF of ``inf`` (documented: never fails) is accepted, and the chain is then up all the time."""
    cube = qkdjax.run(
        "sweep=corridor", "link.trusted_nodes=[2]", "link.demand_bps=[0]", "link.hop_mtbf_h=inf", "link.node_mtbf_h=inf", *FAST
    )  # fmt: skip
    np.testing.assert_array_equal(cube.availability.values, 1.0)


def test_longer_repairs_starve_more():
    runs = [
        qkdjax.run("sweep=corridor", "link.trusted_nodes=[4]", "link.demand_bps=[1e5]", "link.store_bits=1e7", f"link.hop_mttr_h={h}", *FAST)
        for h in (2, 48)
    ]  # fmt: skip
    quick, slow = (float(r.demand_met_probability.squeeze()) for r in runs)
    assert slow <= quick
    assert float(runs[1].unserved_fraction_mean.squeeze()) >= float(runs[0].unserved_fraction_mean.squeeze())


def test_tokyo_and_corridor_commands_write_cubes(tmp_path):
    from conftest import run_cli

    for sweep in ("tokyo_2010", "corridor"):
        done = run_cli(f"sweep={sweep}", *FAST, "montecarlo.trials=8", f"output.dir={tmp_path}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        cube = qkdjax.open_cube(done.stdout.strip().splitlines()[-1])
        assert {"availability", "demand_met_probability", "unserved_bits_mean", "longest_starvation_h_q95"} <= set(cube)
        assert cube.first_starvation_h_quantile.dims[-1] == "quantile"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("link.hops=[]",), "link.hops must be a non-empty list of hops"),
        (("link.hops=[{distance_km: 10}]",), "link.hops[0] lacks attenuation_db_per_km"),
        (("link.hops=[{distance_km: 10, attenuation_db_per_km: 0.2, colour: 3}]",), "unknown key 'colour' in link.hops[0]"),
        (("link.hops=[{distance_km: -10, attenuation_db_per_km: 0.2}]",), "link.hops[0].distance_km = -10 is outside"),
        (("link.hop_mtbf_h=-5",), "link.hop_mtbf_h = -5 is outside the allowed range (0, inf]"),
        (("link.demand_bps=-1",), "link.demand_bps = -1 is outside the allowed range [0, inf)"),
        (("link.paths=1.5",), "link.paths = 1.5 is outside the allowed range integer in [1, inf)"),
        (("+link.path_slots=4",), "link.path_slots is set from the grid"),
        (("supply.time_step_s=0",), "supply.time_step_s = 0 must be a positive number"),
    ],
)
def test_bad_network_input_is_rejected(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        qkdjax.run("sweep=tokyo_2010", *overrides)


def test_a_sweep_for_another_link_type_is_named_as_the_cause():
    with pytest.raises(ConfigError, match=re.escape("it belongs to link.type fibre or midpoint_fibre: is the sweep for that type?")):
        qkdjax.run("link=corridor")  # the default sweep sets fibre lengths
