"""Common random numbers (``montecarlo.common_random_numbers``, the default): trial t draws the same random streams
at every grid point and option, so Monte Carlo curves are monotone where the physics is and options compare
sharply; independent draws per point stay available. Results do not depend on the chunk size either way."""

import numpy as np
import pytest

import qkdjax

# The corridor of sweeps/corridor.yaml on a small grid: hourly steps, 40 trials, demands around the knee.
CORRIDOR = (
    "sweep=corridor",
    "montecarlo.trials=40",
    "supply.time_step_s=3600",
    "link.trusted_nodes=[1,2,3]",
    "link.demand_bps=[1e3,3e3,1e4,2e4,3e4]",
)
OPTIONS = "protocol.decoy=[infinite,vacuum_weak]"  # a categorical axis
INDEPENDENT = "montecarlo.common_random_numbers=false"


@pytest.fixture(scope="module")
def corridors():
    return qkdjax.run(*CORRIDOR, OPTIONS), qkdjax.run(*CORRIDOR, INDEPENDENT)


def test_corridor_demand_is_met_less_often_as_it_grows(corridors):
    common, _ = corridors
    met = common.demand_met_probability.transpose(..., "link.demand_bps").values
    assert np.all(np.diff(met, axis=-1) <= 0), met
    assert met.max() > 0.5 and met.min() < 0.5  # the grid spans the knee: the test is not vacuous
    unserved = common.unserved_fraction_mean.transpose(..., "link.demand_bps").values
    assert np.all(np.diff(unserved, axis=-1) >= 0)


def test_what_does_not_depend_on_an_axis_is_identical_along_it_and_differs_with_independent_draws(corridors):
    """Failures do not depend on the demand or on the decoy method (a categorical option): with common random
    numbers the availability is the same along both, bit for bit; with independent draws it is not."""
    common, independent = corridors
    availability = common.availability.transpose("protocol.decoy", "link.demand_bps", ...).values
    assert np.all(availability == availability[:1, :1])
    availability = independent.availability.transpose("link.demand_bps", ...).values
    assert np.all(availability[1:] != availability[:1])
    for name in ("key_rate", "trusted_nodes", "bottleneck_hop"):  # deterministic outputs do not change
        np.testing.assert_array_equal(common[name].sel({"protocol.decoy": "vacuum_weak"}).values, independent[name].values)
    assert "common_random_numbers: false" in independent.attrs["config"]


# Finite-key blocks at 36-72 km (4 km apart), every trial kept. 400 evaluations per chunk: chunks of 8 points (2)
# instead of one of 16.
FINITE = (
    "sweep=lim_2014",
    "optimize.enabled=false",
    "montecarlo.trials=100",
    "montecarlo.keep_trials=true",
    "protocol.block_size=[1e5]",
    "link.distance_km=${linspace:36,72,10}",
)


@pytest.fixture(scope="module")
def blocks():
    return {
        "common": qkdjax.run(*FINITE),
        "common, chunks of 8 points": qkdjax.run(*FINITE, "sweep.chunk_size=400"),
        "independent": qkdjax.run(*FINITE, INDEPENDENT),
    }


@pytest.mark.device
def test_same_monte_carlo_cube_whatever_the_chunk_size(blocks):
    for name in blocks["common"].data_vars:
        np.testing.assert_array_equal(blocks["common, chunks of 8 points"][name].values, blocks["common"][name].values, err_msg=name)


def test_options_differ_sharply_with_common_random_numbers(blocks):
    """Two designs 4 km apart: with shared streams a trial's keys at the two differ by far less than the spread of
    either (correlation ~0.99), so the difference of the two estimates is ~10x sharper than with independent draws."""
    spread = {}
    for name in ("common", "independent"):
        keys = blocks[name].trial_key_length.squeeze().sel({"link.distance_km": [40.0, 44.0]}).values
        spread[name] = np.std(keys[0] - keys[1])
        assert keys.std(axis=-1).min() > 300  # each design alone fluctuates by hundreds of bits
    assert spread["common"] < 0.25 * spread["independent"], spread
    differences = blocks["common"].key_length_mean.squeeze().diff("link.distance_km").values
    assert np.all(differences < 0), differences  # shorter fibre, more key: monotone


@pytest.mark.device
def test_cube_standard_errors_are_those_of_the_kept_trials(blocks):
    cube = blocks["independent"]
    trials = cube.trial_key_length.values
    np.testing.assert_allclose(cube.key_length_mean_stderr.values, trials.std(axis=-1, ddof=1) / np.sqrt(100), rtol=1e-12)
    low, p, high = (cube[f"abort_probability{suffix}"].values for suffix in ("_ci_low", "", "_ci_high"))
    assert np.all((low <= p) & (p <= high) & (high > 0))  # never certain from a finite number of trials
    for name in ("key_length_mean_stderr", "key_rate_mean_stderr", "abort_probability_ci_low", "abort_probability_ci_high"):
        assert "95 %" in cube[name].attrs["long_name"]
