"""Availability of a trusted-node key supply (qkdjax.network.availability) against closed forms and reliability
theory: buffers and relay without failures, MTBF / (MTBF + MTTR) for Markov and renewal components, series and
parallel structures, the slowest hop, monotonicity with common random numbers, determinism, input checks.

Every simulation here has one of three shapes (a single hop; two paths of up to three hops; the same with an
all-up start) and the same steps and trials, so the whole file compiles the simulator three times.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from qkdjax.network.availability import (
    Reliability,
    SupplyTrial,
    check_supply_inputs,
    sample_trials,
    simulate_trials,
    summarise,
)

N_STEPS = 20_000
TRIALS = 200
NEVER = Reliability(np.inf, 1.0)  # never fails


def as_reliability(r: Reliability, shape) -> Reliability:
    return Reliability(*(jnp.broadcast_to(jnp.asarray(v, jnp.float64), shape) for v in r))


def inputs(
    rate_bps,
    hop: Reliability = NEVER,
    node: Reliability = NEVER,
    mask=None,
    *,
    buffer_bits=1e12,
    store_bits=0.0,
    demand_bps=0.0,
    horizon_h=1000.0,
    stationary_start=True,
    initial_fill=0.0,
):
    """Arguments of ``sample_trials`` after the key for a network of ``[P, H]`` hops, every number a float64
    array so that calls with the same shapes share one compile."""
    rate = jnp.asarray(rate_bps, jnp.float64)
    mask = jnp.ones(rate.shape, bool) if mask is None else jnp.asarray(mask)
    f64 = lambda v: jnp.asarray(v, jnp.float64)
    args = (
        rate, jnp.broadcast_to(f64(buffer_bits), rate.shape), mask, as_reliability(hop, rate.shape),
        as_reliability(node, (rate.shape[0], rate.shape[1] - 1)), f64(store_bits), f64(demand_bps), f64(horizon_h),
        N_STEPS,
    )  # fmt: skip
    return args, {"trials": TRIALS, "stationary_start": stationary_start, "initial_fill": f64(initial_fill)}


def simulate(*args, seed=0, **kwargs) -> SupplyTrial:
    """``TRIALS`` trials of the network ``inputs(*args, **kwargs)``."""
    positional, keywords = inputs(*args, **kwargs)
    return sample_trials(jax.random.key(seed), *positional, **keywords)


def assert_within(samples, expected, n_se=4.0):
    """The mean of ``samples`` (over trials) is within ``n_se`` standard errors of ``expected``."""
    samples = np.asarray(samples)
    se = samples.std() / np.sqrt(samples.size)
    assert abs(samples.mean() - expected) < n_se * se, f"mean {samples.mean():.5f} vs {expected:.5f} (se {se:.1g})"


def steady(mtbf_h, mttr_h):
    return mtbf_h / (mtbf_h + mttr_h)


# (a) One hop without failures: buffers, store and demand in closed form.

RATE = 1e3  # bit/s
HORIZON_S = 1000.0 * 3600.0


@pytest.mark.parametrize(
    "buffer_bits, store_bits", [(2e9, 0.0), (1e9, 0.0), (1e12, 1e9), (2e9, 1e9)], ids=["below", "full", "store", "both"]
)
def test_buffers_fill_at_the_rate_up_to_their_capacity(buffer_bits, store_bits):
    trial = simulate([[RATE]], buffer_bits=buffer_bits, store_bits=store_bits)
    generated = RATE * HORIZON_S  # 3.6e9 bits
    store = min(generated, store_bits)
    np.testing.assert_allclose(trial.final_store_bits, store, rtol=1e-12)
    np.testing.assert_allclose(trial.final_hop_buffer_bits[:, 0, 0], min(generated - store, buffer_bits), rtol=1e-12)
    assert np.all(trial.availability == 1.0) and np.all(trial.demand_met)


def test_demand_below_the_rate_is_always_met():
    trial = simulate([[RATE]], buffer_bits=1e6, store_bits=1e6, demand_bps=0.999 * RATE)
    assert np.all(trial.demand_met) and np.all(trial.unserved_bits == 0.0)
    np.testing.assert_array_equal(trial.first_starvation_h, 1000.0)
    np.testing.assert_array_equal(trial.longest_starvation_h, 0.0)


@pytest.mark.parametrize("initial_fill", [0.0, 1.0])
def test_demand_above_the_rate_is_short_by_the_difference_once_the_key_runs_out(initial_fill):
    demand, buffer_bits, store_bits = 1.5 * RATE, 2e8, 3e8
    trial = simulate([[RATE]], buffer_bits=buffer_bits, store_bits=store_bits, demand_bps=demand, initial_fill=initial_fill)
    initial = initial_fill * (buffer_bits + store_bits)
    unserved = (demand - RATE) * HORIZON_S - initial  # every bit made is served; the initial key delays the shortfall
    np.testing.assert_allclose(trial.unserved_bits, unserved, rtol=1e-12)
    np.testing.assert_allclose(trial.unserved_fraction, unserved / (demand * HORIZON_S), rtol=1e-12)
    empty_h = initial / (demand - RATE) / 3600.0
    dt_h = 1000.0 / N_STEPS
    assert np.all((trial.first_starvation_h <= empty_h) & (trial.first_starvation_h > empty_h - dt_h))
    np.testing.assert_allclose(trial.longest_starvation_h, 1000.0 - trial.first_starvation_h, rtol=1e-12)
    assert not np.any(trial.demand_met)


# (b), (f) One hop that fails: availability MTBF / (MTBF + MTTR) for Markov and for renewal components.

MTBF_H, MTTR_H = 8.0, 2.0


@pytest.mark.parametrize(
    "failure_shape, repair_log_sigma",
    [(1.0, 0.0), (2.0, 0.0), (0.7, 0.0), (1.0, 1.0), (1.0, 1e-3), (3.0, 0.5)],
    ids=["markov", "weibull-2", "weibull-0.7", "lognormal-1", "fixed-repair", "weibull-lognormal"],
)
@pytest.mark.device
def test_availability_is_mtbf_over_mtbf_plus_mttr_for_any_failure_and_repair_laws(failure_shape, repair_log_sigma):
    """Rausand & Høyland (2004) Ch. 7-8: the long-run availability depends only on the two means."""
    hop = Reliability(MTBF_H, MTTR_H, failure_shape, repair_log_sigma)
    trial = simulate([[RATE]], hop)
    assert_within(trial.availability, steady(MTBF_H, MTTR_H))


def test_availability_from_an_all_up_start():
    """The transient from all up lasts ~MTBF MTTR / (MTBF + MTTR) = 1.6 h: a 2e-4 bias over 1000 h."""
    trial = simulate([[RATE]], Reliability(MTBF_H, MTTR_H), stationary_start=False)
    assert_within(trial.availability, steady(MTBF_H, MTTR_H) + 0.2 * 1.6 / 1000.0)


def first_failures_h(trial: SupplyTrial) -> np.ndarray:
    """With demand at the hop's rate and no store, the first starved step is the first one with the hop down."""
    return np.asarray(trial.first_starvation_h)


@pytest.mark.parametrize("failure_shape", [1.0, 2.0])
@pytest.mark.device
def test_times_to_failure_are_weibull_and_shape_one_is_exponential(failure_shape):
    trial = simulate([[RATE]], Reliability(MTBF_H, MTTR_H, failure_shape), demand_bps=RATE, stationary_start=False)
    scale = MTBF_H / special.gamma(1 + 1 / failure_shape)
    dt_h = 1000.0 / N_STEPS
    # the hop shows down from the first step starting after it failed: up to one step late
    result = stats.kstest(first_failures_h(trial) - dt_h / 2, stats.weibull_min(failure_shape, scale=scale).cdf)
    assert result.pvalue > 0.01
    if failure_shape == 1.0:
        exponential = simulate([[RATE]], Reliability(MTBF_H, MTTR_H), demand_bps=RATE, stationary_start=False)
        np.testing.assert_array_equal(trial.first_starvation_h, exponential.first_starvation_h)
        assert stats.kstest(first_failures_h(exponential) - dt_h / 2, stats.expon(scale=MTBF_H).cdf).pvalue > 0.01


@pytest.mark.device
def test_stationary_start_draws_the_equilibrium_residual_life():
    """Started up, a Weibull(k) component fails after ``eta Gamma(1/k)^(1/k)``: density S(t) / MTBF (Ross Ch. 3)."""
    k = 2.0
    trial = simulate([[RATE]], Reliability(MTBF_H, MTTR_H, k), demand_bps=RATE)
    first = first_failures_h(trial)
    started_up = first > 0.0
    assert_within(started_up, steady(MTBF_H, MTTR_H))
    scale = MTBF_H / special.gamma(1 + 1 / k)
    dt_h = 1000.0 / N_STEPS
    residual_cdf = lambda t: special.gammainc(1 / k, (np.maximum(t, 0) / scale) ** k)
    assert stats.kstest(first[started_up] - dt_h / 2, residual_cdf).pvalue > 0.01


@pytest.mark.device
def test_repair_times_are_lognormal_with_mean_mttr():
    """A near-deterministic failure at ~100 h (Weibull k = 50) then one repair before the horizon (150 h)."""
    mttr_h, sigma = 5.0, 0.8
    trial = simulate([[RATE]], Reliability(100.0, mttr_h, 50.0, sigma), demand_bps=RATE, horizon_h=150.0, stationary_start=False)
    repairs_h = np.asarray(trial.longest_starvation_h)
    lognormal = stats.lognorm(sigma, scale=mttr_h * np.exp(-(sigma**2) / 2))
    assert stats.kstest(repairs_h, lognormal.cdf).pvalue > 0.01


# (c), (d) Series and parallel structures, the slowest hop.

CHAIN = Reliability([[60.0, 90.0, 75.0], [50.0, 80.0, 1.0]], [[6.0, 8.0, 5.0], [7.0, 4.0, 1.0]])
CHAIN_NODES = Reliability([[120.0, 100.0], [150.0, 1.0]], [[5.0, 10.0], [6.0, 1.0]])
ONE_PATH = [[True, True, True], [False, False, False]]  # padded, as a caller with a fixed path axis does
TWO_PATHS = [[True, True, True], [True, True, False]]


def path_availability(p: int, n_hops: int) -> float:
    hops = steady(np.asarray(CHAIN.mtbf_h)[p, :n_hops], np.asarray(CHAIN.mttr_h)[p, :n_hops])
    nodes = steady(np.asarray(CHAIN_NODES.mtbf_h)[p, : n_hops - 1], np.asarray(CHAIN_NODES.mttr_h)[p, : n_hops - 1])
    return float(np.prod(hops) * np.prod(nodes))


def test_a_chain_is_up_when_all_its_hops_and_nodes_are():
    trial = simulate(np.full((2, 3), RATE), CHAIN, CHAIN_NODES, ONE_PATH)
    assert_within(trial.availability, path_availability(0, 3))


def test_parallel_paths_are_down_only_when_both_are():
    trial = simulate(np.full((2, 3), RATE), CHAIN, CHAIN_NODES, TWO_PATHS)
    assert_within(trial.availability, 1 - (1 - path_availability(0, 3)) * (1 - path_availability(1, 2)))


@pytest.mark.parametrize("mask, demand_bps, supplied_bps", [(ONE_PATH, 1.5e3, 1e3), (ONE_PATH, 0.9e3, 0.9e3), (TWO_PATHS, 2e3, 1.5e3)])
def test_each_path_supplies_at_its_slowest_hop(mask, demand_bps, supplied_bps):
    rates = [[3e3, 1e3, 2e3], [2e3, 0.5e3, 4e3]]
    trial = simulate(rates, mask=mask, buffer_bits=1e9, store_bits=1e6, demand_bps=demand_bps)
    np.testing.assert_allclose(trial.unserved_fraction, 1 - supplied_bps / demand_bps, atol=1e-12)
    assert np.all(trial.availability == 1.0)


# (e) Monotonicity with common random numbers.


def test_demand_is_met_less_often_as_it_grows_and_as_repairs_slow():
    def summary(demand_bps, mttr_scale):
        hop = CHAIN._replace(mttr_h=np.asarray(CHAIN.mttr_h) * mttr_scale)
        nodes = CHAIN_NODES._replace(mttr_h=np.asarray(CHAIN_NODES.mttr_h) * mttr_scale)
        trial = simulate(np.full((2, 3), 2e3), hop, nodes, TWO_PATHS, buffer_bits=2e7, store_bits=3e7, demand_bps=demand_bps)
        return summarise(trial)

    by_demand = [summary(d, 1.0) for d in (0.5e3, 1e3, 1.5e3, 2e3)]
    met = [float(s.demand_met_probability) for s in by_demand]
    assert met[0] > met[-1] and np.all(np.diff(met) <= 0), met
    assert np.all(np.diff([float(s.unserved_fraction_mean) for s in by_demand]) > 0)
    by_mttr = [summary(1e3, m) for m in (0.25, 1.0, 4.0)]
    met = [float(s.demand_met_probability) for s in by_mttr]
    assert met[0] > met[-1] and np.all(np.diff(met) <= 0), met
    assert np.all(np.diff([float(s.availability_mean) for s in by_mttr]) < 0)


# (g) Determinism, batching, dtypes.


def test_a_key_gives_the_same_trials_under_vmap_and_another_key_others():
    args = (np.full((2, 3), 2e3), CHAIN, CHAIN_NODES, TWO_PATHS)
    kwargs = {"buffer_bits": 2e7, "store_bits": 3e7, "demand_bps": 1e3}
    first, again, other = simulate(*args, **kwargs), simulate(*args, **kwargs), simulate(*args, **kwargs, seed=1)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
    assert np.any(first.availability != other.availability)
    demands = jnp.array([1e3, 1.5e3])
    batched = jax.vmap(lambda d: simulate(*args, **{**kwargs, "demand_bps": d}))(demands)
    for a, b in zip(first, batched):  # the same up to float rounding (XLA may rewrite a division)
        np.testing.assert_allclose(a, b[0], rtol=1e-13)
    assert all(np.asarray(v).dtype in (np.float64, np.bool_) for v in first)


def test_simulate_trials_summarises_over_trials():
    args, kwargs = inputs([[RATE]], Reliability(MTBF_H, MTTR_H), demand_bps=RATE)
    summary = simulate_trials(jax.random.key(0), *args, **kwargs)
    trial = sample_trials(jax.random.key(0), *args, **kwargs)
    assert float(summary.availability_mean) == pytest.approx(float(trial.availability.mean()), rel=1e-12)
    assert float(summary.demand_met_probability) == 0.0  # 1000 h is ~100 failures
    assert summary.first_starvation_h_quantiles.shape == (3,)
    assert np.all(np.diff(summary.first_starvation_h_quantiles) >= 0)
    assert float(summary.longest_starvation_h_q95) >= float(summary.longest_starvation_h_mean) > 0


# Input checks on host values.

GOOD = {
    "hop_rate_bps": np.full((2, 3), 1e3),
    "hop_buffer_bits": 1e9,
    "hop_mask": np.array(TWO_PATHS),
    "hop_reliability": Reliability(np.full((2, 3), 1e3), 4.0),
    "node_reliability": Reliability(np.full((2, 2), 1e4), 2.0, 1.5, 0.5),
    "store_bits": 1e8,
    "demand_bps": 5e2,
    "horizon_h": 8760.0,
    "n_steps": 52560,
}


def test_good_inputs_pass_and_entries_of_absent_hops_are_not_checked():
    rates = GOOD["hop_rate_bps"].copy()
    rates[1, 2] = np.nan
    check_supply_inputs(**{**GOOD, "hop_rate_bps": rates})


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("hop_rate_bps", -1.0, "hop_rate_bps[0, 0] = -1"),
        ("hop_buffer_bits", -5.0, "hop_buffer_bits[0, 0] = -5"),
        ("hop_reliability", Reliability(0.0, 4.0), "hop_reliability.mtbf_h[0, 0] = 0"),
        ("node_reliability", Reliability(1e4, -2.0), "node_reliability.mttr_h[0, 0] = -2"),
        ("node_reliability", Reliability(1e4, 2.0, 0.0), "node_reliability.failure_shape[0, 0] = 0"),
        ("hop_reliability", Reliability(1e3, 4.0, 1.0, -0.5), "hop_reliability.repair_log_sigma[0, 0] = -0.5"),
        ("store_bits", -1.0, "store_bits = -1"),
        ("demand_bps", -2.0, "demand_bps = -2"),
        ("horizon_h", 0.0, "horizon_h = 0"),
        ("initial_fill", 1.5, "initial_fill = 1.5"),
        ("n_steps", 0, "n_steps = 0"),
        ("n_steps", 1.5, "n_steps = 1.5"),
        ("hop_mask", np.zeros((2, 3), bool), "hop_mask has no hop"),
        ("hop_mask", np.array([[True, False, True], [True, True, True]]), "hop_mask[0]"),
    ],
)
def test_bad_inputs_name_the_parameter_and_value(name, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        check_supply_inputs(**{**GOOD, name: value})
