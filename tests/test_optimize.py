"""Per-point optimisation of protocol parameters and inverse questions (qkdjax.optimize).

Checked against published optima (GYS: mu = 0.48 at f = 1.22; Lim 2014's n_X = 1e9 optimum at 100 km and its
block-size gain), against dense brute-force grid searches, and against the rate at the answers of inverse
questions, computed independently of the bisection.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from conftest import evaluate, reference

import qkdjax
from qkdjax.config import ConfigError
from qkdjax.optimize import Optimizer, constrained, optimisable, unconstrained
from qkdjax.parameters import build_params, study_classes

GYS_DISTANCES = "link.distance_km=[0,20,40,60,80,100,120]"
LIM_POINTS = ("link.distance_km=[0,50,100,150]", "protocol.block_size=[1e5,1e7,1e9]")
LIM_OPTIMISED = ("source.mu_signal", "source.mu_decoy", "source.p_signal", "source.p_decoy", "protocol.p_key_basis")


@pytest.fixture(scope="module")
def gys():
    """The GYS link with the signal intensity optimised per point, and the same link with mu = 0.48 fixed."""
    overrides = ("sweep=gys_2005", GYS_DISTANCES)
    optimised = qkdjax.run(*overrides, "optimize.enabled=true", "optimize.params=[source.mu_signal]")
    return optimised, qkdjax.run(*overrides)


@pytest.fixture(scope="module")
def lim():
    """sweeps/lim_2014.yaml (optimised by default) and the same points with its fixed first-start parameters."""
    return qkdjax.run("sweep=lim_2014", *LIM_POINTS), qkdjax.run("sweep=lim_2014", *LIM_POINTS, "optimize.enabled=false")


def test_gys_optimal_signal_intensity_is_the_published_one(gys):
    optimised, _ = gys
    published = reference("gys_2005")["published"]["optimal_mu_f_1.22"]
    mu = optimised["opt.source.mu_signal"].sel({"protocol.decoy": "infinite", "link.distance_km": slice(0, 100)})
    np.testing.assert_allclose(mu, published, atol=0.01)
    assert optimised["opt.source.mu_signal"].attrs["units"] == "1"


@pytest.mark.parametrize("which", ["gys", "lim"])
def test_optimised_rates_are_never_below_the_fixed_ones(which, request):
    optimised, fixed = request.getfixturevalue(which)
    # The optimiser rates the configured point in one call with its candidates (so that comparison is exact); the
    # fixed run is another program: the same rate to rounding.
    np.testing.assert_allclose(optimised["opt.initial_key_rate"], fixed.key_rate, rtol=1e-13)
    assert np.all(optimised.key_rate >= optimised["opt.initial_key_rate"])
    assert np.all(optimised.key_rate >= fixed.key_rate * (1 - 1e-13))
    assert np.all(np.isfinite(optimised.key_rate)) and np.all(optimised.key_rate_per_pulse <= optimised.plob_bound_per_pulse)
    assert float((optimised.key_rate > fixed.key_rate).mean()) > 0.5  # and better at most points


def test_lim_2014_optimum_matches_the_check_vector(lim):
    optimised, _ = lim
    vector = reference("lim_2014")["independent_check_vector"]
    point = optimised.sel({"link.distance_km": 100.0, "protocol.block_size": 1e9})
    assert float(point.key_rate_per_pulse) == pytest.approx(vector["outputs"]["key_rate_per_pulse"], rel=2e-3)
    inputs = vector["inputs"]
    for name, published in (("protocol.p_key_basis", "q_x"), ("source.p_signal", "p_mu1"), ("source.p_decoy", "p_mu2"),
                            ("source.mu_signal", "mu1"), ("source.mu_decoy", "mu2")):  # fmt: skip
        assert float(point[f"opt.{name}"]) == pytest.approx(inputs[published], abs=0.01), name
    assert bool(point["opt.converged"])


def test_lim_2014_block_size_gain_at_100_km_is_the_published_one(lim):
    rate = lim[0].key_rate_per_pulse.sel({"link.distance_km": 100.0})
    ratio = float(rate.sel({"protocol.block_size": 1e9}) / rate.sel({"protocol.block_size": 1e7}))
    assert ratio == pytest.approx(reference("lim_2014")["published"]["ratio_R_1e9_over_R_1e7_at_100_km"], rel=0.05)


def key_rate(values: dict):
    p = build_params(values)
    return p.protocol.key_rate(p)


def brute_force(values: dict, names: tuple[str, ...], box: dict, points=7, rounds=6) -> float:
    """Best exact key rate (bit/s) of a grid search over ``names`` that zooms in on its best cell ``rounds`` times.

    Written independently of qkdjax.optimize: plain grids, points breaking a source constraint set to 0.
    """
    low, high = (np.array([box[n][i] for n in names]) for i in (0, 1))
    full_low, full_high = low.copy(), high.copy()

    @jax.jit
    def rates(grid):
        def one(x):
            named = dict(zip(names, x))
            merged = {**values, **named}
            s, d, w = (merged[f"source.mu_{k}"] for k in ("signal", "decoy", "weak"))
            feasible = (s > d + w) & (d > w) & (merged["source.p_signal"] + merged["source.p_decoy"] < 1)
            return jnp.where(feasible, jnp.nan_to_num(key_rate(merged)), 0.0)

        return jax.vmap(one)(grid)

    best = 0.0
    for _ in range(rounds):
        axes = [np.linspace(a, b, points) for a, b in zip(low, high)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(names))
        found = np.asarray(rates(grid))
        best = max(best, float(found.max()))
        centre, width = grid[np.argmax(found)], (high - low) / (points - 1)
        low, high = np.maximum(centre - 1.5 * width, full_low), np.minimum(centre + 1.5 * width, full_high)
    return best


def point_values(cube: xr.Dataset, selection: dict) -> dict:
    """The flat ``group.field -> value`` parameters of one cube point, from its config and coordinates."""
    import yaml

    config = yaml.safe_load(cube.attrs["config"])
    values = {f"{g}.{k}": v for g in ("link", "detector", "source", "protocol") for k, v in config[g].items()}
    return {**values, **selection}


def test_gys_optimum_agrees_with_a_dense_grid_search(gys):
    optimised, _ = gys
    point = optimised.sel({"protocol.decoy": "infinite"})
    mu = jnp.linspace(0.01, 1.5, 20001)
    for distance in (20.0, 80.0, 120.0):
        values = point_values(optimised, {"link.distance_km": distance, "protocol.decoy": "infinite"})
        rates = jax.vmap(lambda m: key_rate({**values, "source.mu_signal": m}))(mu)
        found = float(point.key_rate.sel({"link.distance_km": distance}))
        assert found == pytest.approx(float(rates.max()), rel=5e-3)


@pytest.mark.parametrize(("distance", "block_size"), [(50.0, 1e5), (100.0, 1e7), (150.0, 1e9)])
def test_lim_optimum_agrees_with_a_dense_grid_search(lim, distance, block_size):
    optimised, _ = lim
    values = point_values(optimised, {"link.distance_km": distance, "protocol.block_size": block_size})
    box = {"source.mu_signal": (0.05, 1.0), "source.mu_decoy": (0.01, 0.5), "source.p_signal": (0.01, 0.95),
           "source.p_decoy": (0.01, 0.95), "protocol.p_key_basis": (0.01, 0.99)}  # fmt: skip
    searched = brute_force(values, LIM_OPTIMISED, box)
    found = float(optimised.key_rate.sel({"link.distance_km": distance, "protocol.block_size": block_size}))
    assert searched > 0
    assert found == pytest.approx(searched, rel=5e-3)


@pytest.mark.parametrize(("distance", "block_size"), [(50.0, 1e5), (150.0, 1e9)])
def test_optimised_point_reports_the_metrics_of_its_own_parameters(lim, distance, block_size):
    """Every metric at an optimised point is what a fixed run at the optimised parameters gives (the optimiser
    keeps the outcome of the candidate it picks: a wrong index would show here)."""
    optimised, _ = lim
    point = optimised.sel({"link.distance_km": distance, "protocol.block_size": block_size})
    found = [f"{name}={float(point[f'opt.{name}'])!r}" for name in LIM_OPTIMISED]
    fixed = qkdjax.run("sweep=lim_2014", f"link.distance_km=[{distance}]", f"protocol.block_size=[{block_size}]",
                       "optimize.enabled=false", *found).squeeze()  # fmt: skip
    assert float(fixed.key_rate) > float(point["opt.initial_key_rate"])
    for name in fixed.data_vars:
        np.testing.assert_allclose(point[name].values, fixed[name].values, rtol=1e-12, err_msg=name)


BB84 = study_classes({})


@pytest.mark.parametrize("params", [optimisable(BB84), ("source.mu_decoy", "source.mu_weak", "source.p_decoy")])
def test_every_unconstrained_point_is_a_valid_source_and_the_map_inverts(params):
    boxes = {"source.mu_signal": (0.05, 1.0), "source.mu_decoy": (0.01, 0.6), "source.mu_weak": (0.0, 0.01),
             "source.p_signal": (0.1, 0.9), "source.p_decoy": (0.05, 0.9), "protocol.p_key_basis": (0.01, 0.99)}  # fmt: skip
    optimizer = Optimizer(params, tuple(boxes[p] for p in params))
    fixed = {"source.mu_signal": 0.5, "source.mu_decoy": 0.1, "source.mu_weak": 1e-3, "source.p_signal": 0.5,
             "source.p_decoy": 0.2, "protocol.p_key_basis": 0.5}  # fmt: skip
    z = np.random.default_rng(1).normal(scale=4.0, size=(2000, len(params)))
    values = jax.vmap(lambda zi: {**fixed, **constrained(BB84, zi, fixed, optimizer)})(z)
    values = {k: np.broadcast_to(np.asarray(v), (len(z),)) for k, v in values.items()}
    s, d, w = values["source.mu_signal"], values["source.mu_decoy"], values["source.mu_weak"]
    assert np.all(s > d + w) and np.all(d > w) and np.all(values["source.p_signal"] + values["source.p_decoy"] < 1)
    for name in params:
        assert np.all((values[name] >= boxes[name][0]) & (values[name] <= boxes[name][1])), name
    moderate = np.abs(z).max(axis=1) < 6
    back = jax.vmap(lambda v: unconstrained(BB84, v, optimizer))({k: jnp.asarray(v) for k, v in values.items()})
    np.testing.assert_allclose(np.asarray(back)[moderate], z[moderate], atol=1e-6)


def test_optimisation_never_returns_a_worse_point_than_the_configured_one():
    """One wild step from the check vector's optimum is worse: the configured point is returned unchanged."""
    inputs = reference("lim_2014")["independent_check_vector"]["inputs"]
    start = (f"source.mu_signal={inputs['mu1']}", f"source.mu_decoy={inputs['mu2']}", f"source.p_signal={inputs['p_mu1']}",
             f"source.p_decoy={inputs['p_mu2']}", f"protocol.p_key_basis={inputs['q_x']}")  # fmt: skip
    overrides = ("sweep=lim_2014", "link.distance_km=[100]", "protocol.block_size=[1e9]", *start)
    cube = qkdjax.run(*overrides, "optimize.starts=1", "optimize.steps=1", "optimize.learning_rate=3.0")
    assert cube.key_rate.item() == cube["opt.initial_key_rate"].item() > 0
    assert cube["opt.source.mu_signal"].item() == inputs["mu1"]


def test_reach_of_the_gys_link_is_the_published_maximum_distance():
    cube = qkdjax.run("sweep=gys_2005", "link.distance_km=[0]", "inverse.target_key_rate=0", "inverse.solve=[link.distance_km]")
    published = reference("gys_2005")["published"]
    reach = cube["max.link.distance_km"].squeeze("link.distance_km")
    assert float(reach.sel({"protocol.decoy": "infinite"})) == pytest.approx(published["max_distance_km_infinite_decoys"], abs=0.3)
    assert float(reach.sel({"protocol.decoy": "vacuum_weak"})) == pytest.approx(
        published["max_distance_km_vacuum_plus_weak_decoy_mu_0.48_nu_0.05"], abs=0.3
    )
    assert reach.attrs["units"] == "km"


def test_inverse_answers_sit_on_the_target():
    """The rate at each answer is just above the target and just beyond it below: checked by direct evaluation."""
    target = 1e3  # bit/s
    distances = [10.0, 40.0, 80.0]
    cube = qkdjax.run(
        "link.distance_km=[10,40,80]", "detector.efficiency=0.1", "link.attenuation_db_per_km=0.2", "protocol.decoy=vacuum_weak",
        f"inverse.target_key_rate={target}", "inverse.solve=[detector.efficiency,link.extra_loss_db,detector.misalignment]",
    )  # fmt: skip
    base = {k: v for k, v in point_values(cube, {}).items() if isinstance(v, float) and not k.startswith("link.")}
    for name, output, direction in (("detector.efficiency", "min.detector.efficiency", -1),
                                    ("link.extra_loss_db", "max.link.extra_loss_db", +1),
                                    ("detector.misalignment", "max.detector.misalignment", +1)):  # fmt: skip
        answer = cube[output].values
        assert np.all(np.isfinite(answer)), output
        beyond = answer + direction * np.maximum(np.abs(answer) * 1e-4, 1e-6)
        at = evaluate({**base, "link.distance_km": distances, name: answer}, decoy="vacuum_weak")["key_rate"]
        past = evaluate({**base, "link.distance_km": distances, name: beyond}, decoy="vacuum_weak")["key_rate"]
        assert np.all(at > target) and np.all(past < target), output


def test_inverse_answers_beyond_the_search_interval():
    cube = qkdjax.run(
        "link.distance_km=[0,400]", "detector.efficiency=0.1", "link.attenuation_db_per_km=0.2", "inverse.target_key_rate=1",
        "inverse.solve=[detector.efficiency]", "inverse.bounds.detector.efficiency=[0.05,1]",
    )  # fmt: skip
    answer = cube["min.detector.efficiency"].sel({"link.distance_km": [0.0, 400.0]}).values
    assert np.all(answer[..., 0] == 0.05)  # even the least efficiency in the interval reaches the target
    assert np.all(np.isnan(answer[..., 1]))  # no efficiency reaches it through 400 km of fibre


# Reach of the optimised sweeps/lim_2014.yaml with Eqs. (1)-(5) as printed, from an independent implementation of
# them (issue 13): the last km with key for n_X = 1e4, 1e5, 1e6.
LIM_REACH_KM = {1e4: 127.0, 1e5: 160.0, 1e6: 172.0}


@pytest.fixture(scope="module")
def lim_near_reach():
    """sweeps/lim_2014.yaml as a user runs it (optimised, its optimiser settings) on a 1-km grid around the reach."""
    return qkdjax.run("sweep=lim_2014", "link.distance_km=${linspace:120,180,61}", "protocol.block_size=[1e4,1e5,1e6]")


def test_lim_2014_optimised_reach_is_that_of_the_printed_equations(lim_near_reach):
    reach = qkdjax.analysis.reach(lim_near_reach, 1e-6)  # bit/s: any key
    for block_size, expected in LIM_REACH_KM.items():
        assert float(reach.sel({"protocol.block_size": block_size})) == pytest.approx(expected, abs=2.0), block_size
    assert np.all(np.diff(reach.values) > 0)  # bigger blocks reach further
    assert not reach.at_grid_edge.any()


def test_lim_2014_optimum_near_the_reach_of_small_blocks_favours_the_test_basis(lim_near_reach):
    """At 150 km, n_X = 1e5 the phase-error estimate needs Z data: the optimal q_x is below 1/2, and it beats
    the best rate with q_x fixed at 1/2 (searched independently of the optimiser)."""
    point = lim_near_reach.sel({"link.distance_km": 150.0, "protocol.block_size": 1e5})
    assert 0.0 < float(point["opt.protocol.p_key_basis"]) < 0.5
    values = point_values(lim_near_reach, {"link.distance_km": 150.0, "protocol.block_size": 1e5, "protocol.p_key_basis": 0.5})
    box = {"source.mu_signal": (0.05, 1.0), "source.mu_decoy": (0.01, 0.5), "source.p_signal": (0.01, 0.95), "source.p_decoy": (0.01, 0.95)}
    unbiased = brute_force(values, LIM_OPTIMISED[:4], box, points=5, rounds=5)
    assert float(point.key_rate) > unbiased


def test_reach_with_optimised_parameters_is_where_the_optimised_rate_vanishes():
    overrides = ("sweep=lim_2014", "protocol.block_size=[1e6]")
    answer = qkdjax.run(*overrides, "link.distance_km=[0]", "inverse.target_key_rate=0", "inverse.solve=[link.distance_km]")
    reach = answer["max.link.distance_km"].item()
    around = qkdjax.run(*overrides, f"link.distance_km=[{reach - 0.5},{reach + 0.5}]")
    inside, outside = around.key_rate.values.ravel()
    assert inside > 0 and outside == 0
    assert 150 < reach < 180  # Lim 2014, Fig. 1: n_X = 1e6 stops between the 1e5 and 1e7 curves


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("optimize.enabled=true", "optimize.params=[source.rep_rate_hz]"), "optimize.params: source.rep_rate_hz is not an optimisable parameter of this study"),
        (("optimize.enabled=true", "optimize.params=[source.mu_signal,source.mu_signal]"), "names a parameter twice"),
        (("optimize.enabled=true", "optimize.bounds.source.mu_signal=[0.5,0.1]"), "must have low < high"),
        (("optimize.enabled=true", "optimize.bounds.protocol.p_key_basis=[0,0.9]"), r"p_key_basis = \[0, 0.9\] is outside the allowed range \(0, 1\)"),
        (("optimize.enabled=true", "optimize.params=[source.mu_signal]", "optimize.bounds.source.mu_signal=[0.01,0.05]"),
         "leave no source with mu_signal > mu_decoy"),
        (("optimize.enabled=true", "optimize.starts=0"), "optimize.starts = 0 must be an integer >= 1"),
        (("optimize.enabled=1",), "optimize.enabled = 1 must be true or false"),
        (("optimize.enabled=true", "source.mu_signal=[0.4,0.5]"), "source.mu_signal is both a sweep axis and optimised"),
        (("sweep=corridor", "inverse.target_key_rate=1", "inverse.solve=[link.total_length_km]"),
         r"inverse.target_key_rate works on links evaluated at one point \(.*\), not on trusted-node chains"),
        (("inverse.solve=[link.distance_km]",), "needs a target: set inverse.target_key_rate"),
        (("inverse.target_key_rate=-1", "inverse.solve=[link.distance_km]"), "inverse.target_key_rate = -1 must be a number >= 0"),
        (("inverse.target_key_rate=1", "inverse.solve=[source.mu_signal]"), "inverse.solve = 'source.mu_signal' is not one of"),
        (("inverse.target_key_rate=1", "inverse.solve=[detector.efficiency]", "inverse.bounds.detector.efficiency=[0,1]"), "outside the allowed range \\(0, 1\\]"),
        (("inverse.target_key_rate=1", "inverse.solve=[detector.misalignment]", "inverse.bounds.detector.misalignment=[0,0.9]"), "outside the allowed range"),
        (("sweep=satquma_downlink", "inverse.target_key_rate=1", "inverse.solve=[link.distance_km]"),
         "inverse.solve = 'link.distance_km' is not one of the questions of this study"),
    ],
)  # fmt: skip
def test_bad_optimisation_and_inverse_settings_are_rejected(overrides, message):
    sweep = () if any(o.startswith("sweep=") for o in overrides) else ("link.distance_km=[10]",)
    with pytest.raises(ConfigError, match=message):
        qkdjax.run(*sweep, *overrides)


@pytest.mark.device
def test_optimised_cube_does_not_depend_on_the_chunk_size():
    overrides = ("sweep=lim_2014", "link.distance_km=${linspace:20,140,13}", "protocol.block_size=[1e6]", "optimize.steps=40")
    small, large = (qkdjax.run(*overrides, f"sweep.chunk_size={size}") for size in (8, 4096))
    xr.testing.assert_identical(small.drop_attrs(), large.drop_attrs())


def test_lim_2014_command_writes_optimised_rates_and_parameters(tmp_path):
    from conftest import run_cli

    done = run_cli("sweep=lim_2014", "link.distance_km=[100]", "protocol.block_size=[1e9]", f"output.dir={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cube = qkdjax.open_cube(done.stdout.strip().splitlines()[-1])
    names = {f"opt.{p}" for p in LIM_OPTIMISED} | {"opt.converged", "opt.initial_key_rate"}
    assert names <= set(cube.data_vars)
    assert cube.key_rate.item() > cube["opt.initial_key_rate"].item()
    assert "optimize:" in cube.attrs["config"]
