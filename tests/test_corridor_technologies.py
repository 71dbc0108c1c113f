"""Trusted nodes or twin-field: corridors whose hops are any protocol's links, designs compared in one run
(``compare``), and the design needing the fewest trusted nodes (``qkdjax.analysis.least_trust_design``)."""

import json

import numpy as np
import pytest
import xarray as xr
from conftest import refused, run_cli

import qkdjax
from qkdjax import analysis
from qkdjax.config import ConfigError
from qkdjax.report import write_report

SNS = ("protocol=tf_sns", "detector=snspd", "detector.dead_time_ns=0", "detector.dark_count_prob=1e-9", "detector.misalignment=0.04")
SNS_BOUNDS = ("+optimize.bounds.protocol.sending_prob=[1e-4,0.5]", "+optimize.bounds.protocol.mu_z=[0.01,1.5]")
# The sweep made small: two demands, one dark-count level, hourly steps, few trials and Adam steps.
FAST = (
    "link.trusted_nodes=[0,1,2]", "link.demand_bps=[10,1e4]", "detector.dark_count_prob=[1e-9]", "montecarlo.trials=8",
    "supply.time_step_s=7200", "optimize.steps=40",
)  # fmt: skip


def midpoint_rate(distance_km: float, extra_loss_db: float, *overrides: str) -> xr.Dataset:
    """The SNS point study over one span with the relay in its middle, the extra loss split between the arms."""
    return qkdjax.run(
        "link=midpoint_fibre", *SNS, f"link.distance_km=[{distance_km}]", "link.attenuation_db_per_km=0.2", "detector.efficiency=0.65",
        f"link.alice_extra_loss_db={extra_loss_db / 2}", f"link.bob_extra_loss_db={extra_loss_db / 2}", *overrides,
    ).squeeze()  # fmt: skip


def test_a_twin_field_corridor_hop_is_a_span_through_an_untrusted_relay_in_its_middle():
    cube = qkdjax.run(
        "sweep=corridor", *SNS, "link.total_length_km=300", "link.trusted_nodes=[0,1,3]", "link.demand_bps=1e3", "montecarlo.trials=0"
    )
    cube = cube.squeeze()
    for nodes in (0, 1, 3):
        hop = cube.sel({"link.trusted_nodes": nodes})
        expected = midpoint_rate(300.0 / (nodes + 1), 1.0)
        assert float(hop.key_rate) == pytest.approx(float(expected.key_rate), rel=1e-12)
        assert float(hop.trusted_nodes) == nodes and float(hop.untrusted_relays) == nodes + 1
        assert float(hop.bottleneck_loss_db) == pytest.approx(0.2 * 300.0 / (nodes + 1) + 1.0)
    assert float(cube.key_rate.sel({"link.trusted_nodes": 0})) > 0  # 300 km without a trusted node: twin-field's reach
    bb84 = qkdjax.run("sweep=corridor", "link.trusted_nodes=[0]", "link.demand_bps=1e3", "montecarlo.trials=0").squeeze()
    assert float(bb84.untrusted_relays) == 0 and float(bb84.key_rate) == 0


def test_corridor_hops_are_optimised_as_the_point_study_optimises_one_span():
    optimised = ("optimize.enabled=true", "optimize.params=[protocol.sending_prob,protocol.mu_z]", "optimize.steps=40", *SNS_BOUNDS)
    corridor = qkdjax.run(
        "sweep=corridor", *SNS, *optimised, "link.total_length_km=400", "link.trusted_nodes=[1]", "link.demand_bps=1e3", "montecarlo.trials=0"
    ).squeeze()  # fmt: skip
    point = midpoint_rate(200.0, 1.0, *optimised)
    for name in ("key_rate", "opt.protocol.sending_prob", "opt.protocol.mu_z", "opt.initial_key_rate"):
        assert float(corridor[name]) == pytest.approx(float(point[name]), rel=1e-9), name
    assert float(corridor.key_rate) > float(corridor["opt.initial_key_rate"])
    assert "slowest hop" in corridor["opt.protocol.mu_z"].attrs["long_name"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """``qkdjax sweep=corridor_technologies`` (made small) as a user runs it: one command, one cube."""
    folder = tmp_path_factory.mktemp("compare")
    result = run_cli("sweep=corridor_technologies", *FAST, cwd=folder)
    assert result.returncode == 0, result.stderr
    path = folder / result.stdout.strip().splitlines()[-1]
    assert path == folder / "results" / "corridor_technologies.nc"
    assert sorted(p.name for p in (folder / "results").iterdir()) == ["corridor_technologies.nc"]  # no Hydra folders
    return qkdjax.open_cube(path), folder


@pytest.mark.slow
def test_designs_are_merged_along_a_design_dim_with_common_random_numbers(compared):
    cube, _ = compared
    assert list(cube.design.values) == ["bb84", "tf_sns"]
    assert cube.attrs["rerun"] == "qkdjax sweep=corridor_technologies " + " ".join(FAST)
    overrides = json.loads(cube.attrs["design_overrides"])
    assert "protocol=tf_sns" in overrides["tf_sns"] and "protocol=bb84_decoy" in overrides["bb84"]
    # The same failures and repairs in both designs: availability does not depend on the protocol.
    np.testing.assert_array_equal(cube.availability.sel(design="bb84"), cube.availability.sel(design="tf_sns"))
    # What only one design optimises is NaN for the other, and says whose it is.
    assert cube["opt.protocol.mu_z"].attrs["designs"] == "tf_sns"
    assert (
        np.isnan(cube["opt.protocol.mu_z"].sel(design="bb84")).all() and np.isfinite(cube["opt.protocol.mu_z"].sel(design="tf_sns")).all()
    )
    np.testing.assert_array_equal(cube.untrusted_relays.sel(design="bb84"), 0)
    relays, nodes = xr.broadcast(cube.untrusted_relays.sel(design="tf_sns"), cube["link.trusted_nodes"])
    np.testing.assert_array_equal(relays, nodes + 1)


@pytest.mark.slow
def test_a_design_of_the_comparison_is_the_run_of_its_overrides(compared):
    cube, _ = compared
    overrides = json.loads(cube.attrs["design_overrides"])["tf_sns"]
    alone = qkdjax.run(*overrides)
    for name in ("key_rate", "demand_met_probability", "opt.protocol.sending_prob"):
        np.testing.assert_array_equal(cube[name].sel(design="tf_sns").transpose(*alone[name].dims), alone[name], err_msg=name)


@pytest.mark.slow
def test_the_report_answers_trusted_nodes_or_twin_field(compared, tmp_path):
    cube, _ = compared
    choice = analysis.least_trust_design(cube, probability=0.95)
    low = choice.sel({"link.demand_bps": 10.0}).squeeze()
    # 400 km in one span: only twin-field makes key (BB84 needs a trusted node), hundreds of bit/s with 1e-9 darks
    assert str(low.best.values) == "tf_sns" and float(low.trusted_nodes) == 0 and float(low.untrusted_relays) == 1
    assert 100 < float(low.key_rate) < 1e3
    assert float(choice.trusted_nodes_needed.sel(design="bb84", **{"link.demand_bps": 10.0}).squeeze()) >= 1
    summary = write_report(cube, tmp_path / "report", probability=0.95).read_text()
    assert "### Which design: the design needing the fewest trusted nodes" in summary
    assert "| 10 | tf_sns | 0 | 1 |" in summary


def synthetic_comparison(rng) -> xr.Dataset:
    """Two designs x 4 node counts x 3 demands with random key rates and probabilities of meeting the demand."""
    shape = (2, 4, 3)
    dims = ("design", "link.trusted_nodes", "link.demand_bps")
    coords = {
        "design": ["a", "b"],
        "link.trusted_nodes": ("link.trusted_nodes", [0.0, 1.0, 2.0, 3.0], {"qkdjax_role": "option"}),
        "link.demand_bps": ("link.demand_bps", [1.0, 10.0, 100.0], {"qkdjax_role": "demand"}),
    }
    nodes = np.broadcast_to(np.arange(4.0)[None, :, None], shape)
    data = {
        "key_rate": (dims, rng.uniform(0.0, 10.0, shape)),
        "demand_met_probability": (dims, rng.choice([0.5, 0.99], shape), {"qkdjax_role": "demand_met"}),
        "trusted_nodes": (dims, nodes, {"qkdjax_role": "trusted_nodes"}),
        "untrusted_relays": (dims, nodes * np.array([0.0, 1.0])[:, None, None], {"qkdjax_role": "untrusted_relays"}),
    }
    return xr.Dataset(data, coords=coords)


@pytest.mark.parametrize("seed", range(8))
def test_least_trust_design_agrees_with_a_brute_force_search(seed):
    cube = synthetic_comparison(np.random.default_rng(seed))
    choice = analysis.least_trust_design(cube, probability=0.95)
    for demand in cube["link.demand_bps"].values:
        options = []  # (nodes, -rate, design) of every option meeting the demand
        for design in ("a", "b"):
            for nodes in range(4):
                point = cube.sel({"design": design, "link.trusted_nodes": nodes, "link.demand_bps": demand})
                if point.demand_met_probability >= 0.95:
                    options.append((nodes, -float(point.key_rate), design))
        found = choice.sel({"link.demand_bps": demand})
        if not options:
            assert str(found.best.values) == "none" and np.isnan(found.trusted_nodes)
            continue
        nodes, rate, design = min(options)
        assert str(found.best.values) == design and float(found.trusted_nodes) == nodes
        assert float(found.key_rate) == -rate
        assert float(found.untrusted_relays) == (nodes if design == "b" else 0)


def test_least_trust_design_without_a_monte_carlo_uses_the_key_rate_target():
    cube = synthetic_comparison(np.random.default_rng(0)).drop_vars("demand_met_probability")
    choice = analysis.least_trust_design(cube, target=9.0)
    met = cube.key_rate >= 9.0
    assert bool(np.isfinite(choice.trusted_nodes_needed).values.any()) == bool(met.any())
    with pytest.raises(ValueError, match="give probability="):
        analysis.least_trust_design(cube)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("compare={only: ['protocol=tf_sns']}",), r"compare names one design \(only\): a comparison needs two or more"),
        (("compare={a: ['seed=3'], b: ['protocol=tf_sns']}",), r"compare.a: seed=3 cannot differ between designs"),
        (("compare={a: ['montecarlo.trials=5'], b: []}",), "compare.a: montecarlo.trials=5 cannot differ between designs"),
        (("compare={1a: [], b: []}",), "design name '1a' must be a letter"),
        (("compare={a: 'protocol=tf_sns', b: []}",), "compare.a = 'protocol=tf_sns' must be a list of overrides"),
        (("compare={a: ['protocol=nope'], b: []}",), r"compare.a: protocol = 'nope' is not one of the protocol configs"),
        (("compare={a: ['protocol=tf_sns'], b: []}",), "compare.a: protocol.type tf_sns needs a link with 2 arm"),
    ],
)
def test_bad_comparisons_are_refused_before_any_design_runs(overrides, message):
    with pytest.raises(ConfigError, match=message):
        qkdjax.run("link.distance_km=[10]", *overrides)


def test_a_comparison_is_one_netcdf_run(capsys, tmp_path):
    line = refused(capsys, "--multirun", "sweep=corridor_technologies", "seed=1,2", f"output.dir={tmp_path}")
    assert "compare runs its designs in one process and merges them: run it without --multirun" in line
    line = refused(capsys, "sweep=corridor_technologies", "output.format=zarr", f"output.dir={tmp_path}")
    assert "compare merges its designs' cubes in memory: use output.format=netcdf" in line
    assert not any(tmp_path.iterdir())
