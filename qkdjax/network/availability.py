"""Availability of the key supply of a trusted-node network: failures, repairs, key buffers and key relay in time.

The network joins two user sites by ``P`` disjoint paths. Path ``p`` is a chain of up to ``H`` hops (QKD links)
in series, joined at trusted nodes; ``hop_mask[p]`` says which of its ``H`` slots hold a hop (the first ones).
Hop ``h`` of a path runs from node ``h`` to node ``h + 1``; nodes ``1 .. n_p - 1`` are the path's intermediate
trusted nodes (``[P, H - 1]`` arrays, node ``j`` in column ``j - 1``); the user sites at either end never fail.
Each hop makes secret key at ``r_h`` bit/s into a buffer of ``C_h`` bits shared by its two ends; key relay
(one-time pad, hop by hop through the trusted nodes: M. Peev et al., New J. Phys. 11, 075001 (2009), SECOQC;
M. Sasaki et al., Opt. Express 19, 10387 (2011), Tokyo QKD network) moves end-to-end key into a store of
``C_e`` bits at the user sites, from which applications draw ``D`` bit/s (the key store behind the key-delivery
interfaces of ETSI GS QKD 004 V2.1.1 (2020) and ETSI GS QKD 014 V1.1.1 (2019)).

Components (hops and intermediate nodes) fail and are repaired independently: an alternating renewal process
with times to failure Weibull (shape ``k``, 1 = exponential) of mean MTBF and times to repair exponential or
lognormal of mean MTTR. Its long-run availability is MTBF / (MTBF + MTTR) whatever the two distributions
(M. Rausand, A. Høyland, System Reliability Theory, 2nd ed., Wiley (2004), Ch. 7, alternating renewal
processes; for exponential times the two-state Markov process of Ch. 8).

Time runs in ``n_steps`` steps of ``dt = horizon_h / n_steps`` (a ``lax.scan``). Per step ``[t_i, t_i + dt)``:

1. Each component is in the state it has at ``t_i``: a failure inside a step counts from the next step on, for
   as many steps as start before the repair ends. State changes are sampled in continuous time: each component
   carries the time left in its current state; when that runs out, the component takes its new state at the
   next step and its next duration (drawn by inversion of one uniform) is added to the overshoot, so event times
   stay exact and durations are never rounded to whole steps. For an exponential law this is the per-step chain
   ``p_fail = 1 - exp(-dt / MTBF)``, ``p_repair = 1 - exp(-dt / MTTR)``; for Weibull it is the failure
   probability over ``[age, age + dt]`` given the age, without storing the age. Unlike that chain stepped on
   its own (whose snapshots are up with probability ``p_repair / (p_fail + p_repair)``, biased by
   ``O(dt / MTTR)``), a step is up with probability MTBF / (MTBF + MTTR) at any ``dt``, but for one
   approximation: one state change per step per network (one uniform per step). Where several components' times
   run out in the same step, the first (hops path by path, then nodes) changes and the others a step later, and
   a state shorter than the rest of its step shows for one step; overshoots are kept, so later events are not
   shifted. Both need two events within one ``dt``: choose ``dt`` well below the MTTR and the network's mean
   time between events; the bias vanishes as ``dt -> 0``.
2. A hop that is up, with both its end nodes up, adds ``r_h dt`` to its key.
3. Each path whose hops and intermediate nodes are all up relays ``x = min(min_h key_h, room)``, taking ``x``
   from each of its hops (paths in order, until the store is full). ``room`` is what the store can hold at the
   end of the step, ``C_e - store + D dt``, and a hop keeps at most ``C_h`` after relaying: capacities bound
   the key held between steps, not the throughput within one, so a buffer smaller than ``r_h dt`` does not
   throttle a link at coarse steps (it would, were key capped before relay).
4. The application takes ``served = min(store, D dt)``; the step is starved if it is short of ``D dt`` by more
   than float rounding.

Start: from the stationary distribution (default), each component up with probability MTBF / (MTBF + MTTR) and
the time left in its state drawn from the renewal process's equilibrium residual, a uniform fraction of a
length-biased duration (S. M. Ross, Stochastic Processes, 2nd ed., Wiley (1996), Ch. 3): length-biased
Weibull(k, eta) is ``eta G^(1/k)`` with ``G ~ Gamma(1 + 1/k)``, length-biased lognormal is lognormal with its
log-mean raised by ``sigma^2``, length-biased exponential is Gamma(2). So the expected fraction of steps up is
the availability at any horizon. With ``stationary_start=False`` every component starts up and new. Hop buffers
and the store start ``initial_fill`` full.

Keys: ``start_key, step_key = split(key)``; the start draws from ``start_key``; each step draws one uniform (for
the one state change it may make, see 1.), ``K`` steps at a time from ``fold_in(step_key, chunk index)``, ``K``
the largest divisor of ``n_steps`` up to 64.

Common random numbers: with the same key, what is monotone. Failures and repairs do not depend on the key
demand, the rates or the buffers, so those see the same component states step by step: the demand-met
probability cannot rise with the demand. Every duration is the inverse CDF of its uniform (Weibull ``eta
E^(1/k)``, exponential ``MTTR E``, lognormal ``MTTR exp(sigma Z - sigma^2 / 2)``), and the start state is ``u (1
+ MTTR / MTBF) < 1``: each duration grows with its mean, and a longer MTBF never turns an up start down. The
states at a given time are not monotone (a longer up time shifts every later outage), and components share the
step stream (one uniform per step, for whichever changes), so designs with other components (node counts,
paths) share the start draws of the components they have in common but not their later durations.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, ndtri

from qkdjax.montecarlo.estimates import mean_estimate, probability_estimate
from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.parameters import Range

SECONDS_PER_HOUR = 3600.0
FIRST_STARVATION_QUANTILES = (0.05, 0.5, 0.95)
_GAMMA_CANDIDATES = 8
_STARVED_RTOL = 1e-9  # a step short of its demand by less than this fraction is float rounding, not starvation


class Reliability(NamedTuple):
    """Failure and repair laws of components; fields broadcast against each other (one entry per component).

    Times to failure are Weibull with shape ``failure_shape`` (1: exponential) and mean ``mtbf_h`` (``inf``: never
    fails). Times to repair have mean ``mttr_h``: exponential where ``repair_log_sigma`` is 0, else lognormal
    with that standard deviation of the log (a small sigma approaches a fixed repair time).
    """

    mtbf_h: Any
    mttr_h: Any
    failure_shape: Any = 1.0
    repair_log_sigma: Any = 0.0


class SupplyTrial(NamedTuple):
    """One simulated horizon. Times in hours, resolved to one step."""

    availability: jax.Array  # fraction of steps with at least one path up (all its hops and nodes up)
    unserved_bits: jax.Array  # demanded end-to-end key the store could not give, summed over the horizon
    unserved_fraction: jax.Array  # unserved_bits / (demand_bps x horizon); 0 without demand
    demand_met: jax.Array  # bool: no step starved
    longest_starvation_h: jax.Array  # longest run of consecutive starved steps; 0 if none
    first_starvation_h: jax.Array  # start of the first starved step; horizon_h if none
    final_store_bits: jax.Array  # end-to-end key in the store at the end
    final_hop_buffer_bits: jax.Array  # [P, H] key in each hop's buffer at the end (0 where hop_mask is False)


class SupplySummary(NamedTuple):
    """Trials of one network reduced to the statistics a planner reads, each estimate with its precision: the
    standard error of a mean, the 95 % Wilson interval of a probability (``qkdjax.montecarlo.estimates``)."""

    availability_mean: jax.Array
    availability_mean_stderr: jax.Array
    demand_met_probability: jax.Array
    demand_met_probability_ci_low: jax.Array
    demand_met_probability_ci_high: jax.Array
    unserved_bits_mean: jax.Array
    unserved_bits_mean_stderr: jax.Array
    unserved_fraction_mean: jax.Array
    unserved_fraction_mean_stderr: jax.Array
    longest_starvation_h_mean: jax.Array
    longest_starvation_h_mean_stderr: jax.Array
    longest_starvation_h_q95: jax.Array
    first_starvation_h_quantiles: jax.Array  # [3] at FIRST_STARVATION_QUANTILES


class _Components(NamedTuple):
    up: jax.Array  # [N] bool, state during the current step
    left_h: jax.Array  # [N] time from the current step's start to the next change of state (may be <= 0: late)


class _Tally(NamedTuple):
    up_steps: jax.Array
    unserved_bits: jax.Array
    starved_run_steps: jax.Array
    longest_run_steps: jax.Array
    first_starved_step: jax.Array


def weibull_scale_h(r: Reliability) -> jax.Array:
    """Scale ``eta`` of the Weibull law of mean MTBF: ``MTBF = eta Gamma(1 + 1/k)``."""
    return r.mtbf_h / jnp.exp(gammaln(1.0 + 1.0 / r.failure_shape))


class _Law(NamedTuple):
    """A duration ``scale exp(power log E + sigma Z + shift)`` of the ``standard_variates`` of one uniform: one
    formula, so one evaluation per step whatever the component, for Weibull ``eta E^(1/k)`` (exponential at
    k = 1), exponential ``MTTR E`` and lognormal ``MTTR exp(sigma Z - sigma^2 / 2)`` (mean MTTR)."""

    scale_h: jax.Array
    power: jax.Array
    sigma: jax.Array
    shift: jax.Array

    def duration_h(self, log_exponential, normal) -> jax.Array:
        return self.scale_h * jnp.exp(self.power * log_exponential + self.sigma * normal + self.shift)


def standard_variates(u) -> tuple[jax.Array, jax.Array]:
    """``log E`` and ``Z`` of uniforms ``u`` by inversion: ``E = -log(1 - u)`` a unit exponential, ``Z = ndtri(u)``
    a standard normal."""
    return jnp.log(-jnp.log1p(-u)), ndtri(u)


def duration_laws(r: Reliability) -> _Law:
    """Laws ``[2, N]`` of the duration that starts when a component changes state, indexed by its state before:
    [0] (down, being repaired) time to failure, [1] (up, failing) time to repair."""
    sigma = r.repair_log_sigma
    zero = jnp.zeros_like(sigma)
    return _Law(
        jnp.stack([weibull_scale_h(r), r.mttr_h]),
        jnp.stack([1.0 / r.failure_shape, jnp.where(sigma > 0, 0.0, 1.0)]),
        jnp.stack([zero, sigma]),
        jnp.stack([zero, -(sigma**2) / 2]),
    )


def stationary_components(key, r: Reliability) -> _Components:
    """States and times left drawn from the equilibrium of each component's alternating renewal process."""
    u_state, u_left, *u_gamma = stream_uniforms(key, (3 + 2 * _GAMMA_CANDIDATES, *r.mtbf_h.shape))
    up = u_state * (1.0 + r.mttr_h / r.mtbf_h) < 1.0  # P(up) = MTBF / (MTBF + MTTR), also for MTBF = inf
    k, sigma = r.failure_shape, r.repair_log_sigma
    g = gamma_variate(jnp.where(up, 1.0 + 1.0 / k, 2.0), jnp.stack(u_gamma[1:]))
    biased_up_h = weibull_scale_h(r) * g ** (1.0 / k)
    biased_down_h = r.mttr_h * jnp.where(sigma > 0, jnp.exp(sigma**2 / 2 + sigma * ndtri(u_gamma[0])), g)
    return _Components(up, u_left * jnp.where(up, biased_up_h, biased_down_h))


def gamma_variate(shape, u) -> jax.Array:
    """Gamma(``shape`` >= 1) by G. Marsaglia, W. W. Tsang, ACM Trans. Math. Softw. 26, 363 (2000): the first
    accepted of ``len(u) / 2`` candidates, each accepted with probability >= 0.95 (all rejected: < 1e-10).
    A fixed number of candidates compiles in a fraction of the time of ``jax.random.gamma``'s rejection loop."""
    d = shape - 1.0 / 3.0
    x = ndtri(u[0::2])
    v = (1.0 + x / jnp.sqrt(9.0 * d)) ** 3
    positive = v > 0.0
    log_v = jnp.log(jnp.where(positive, v, 1.0))
    accepted = positive & (jnp.log(u[1::2]) < x**2 / 2 + d - d * v + d * log_v)
    first = jnp.argmax(accepted, axis=0)
    return d * jnp.where(positive, v, 1.0)[first, jnp.arange(first.size)]


def new_components(key, laws: _Law) -> _Components:
    """All components up and just repaired."""
    failure = jax.tree.map(lambda field: field[0], laws)
    variates = standard_variates(stream_uniforms(key, failure.scale_h.shape))
    return _Components(jnp.ones(failure.scale_h.shape, bool), failure.duration_h(*variates))


def advance(variates, components: _Components, laws: _Law, dt_h) -> _Components:
    """States at the next step. The first component whose state ran out changes, and its next duration (from
    this step's ``variates``) starts at the overshoot; any other whose state ran out waits a step."""
    left_h = components.left_h - dt_h
    due = left_h <= 0.0
    c = jnp.argmax(due)
    law = jax.tree.map(lambda field: field[components.up[c].astype(jnp.int32), c], laws)
    changes = (jnp.arange(due.size) == c) & due
    return _Components(components.up ^ changes, jnp.where(changes, left_h + law.duration_h(*variates), left_h))


def component_reliability(hop_reliability: Reliability, node_reliability: Reliability, hop_mask) -> Reliability:
    """Flat ``[P H + P (H - 1)]`` reliability of hops then nodes; absent components never fail."""
    exists = jnp.concatenate([hop_mask.ravel(), hop_mask[:, 1:].ravel()])
    fill = Reliability(jnp.inf, 1.0, 1.0, 0.0)

    def flat(hop_value, node_value, absent):
        hops = jnp.broadcast_to(jnp.asarray(hop_value, jnp.float64), hop_mask.shape).ravel()
        nodes = jnp.broadcast_to(jnp.asarray(node_value, jnp.float64), (hop_mask.shape[0], hop_mask.shape[1] - 1))
        return jnp.where(exists, jnp.concatenate([hops, nodes.ravel()]), absent)

    return Reliability(*map(flat, hop_reliability, node_reliability, fill))


def start_components(key, reliability: Reliability, laws: _Law, stationary_start: bool) -> _Components:
    """Components at the start: from their renewal processes' equilibrium, or all up and new."""
    return stationary_components(key, reliability) if stationary_start else new_components(key, laws)


def new_tally(shape: tuple[int, ...], n_steps: int) -> _Tally:
    """Counts before the first step, for demands of ``shape``."""
    zero_steps = jnp.zeros(shape, jnp.int32)
    return _Tally(zero_steps, jnp.zeros(shape), zero_steps, zero_steps, jnp.full(shape, n_steps, jnp.int32))


def scan_steps(step, carry, step_key, n_steps: int):
    """``carry`` after ``step(carry, (i, variates)) -> (carry, None)`` for steps ``i = 0 .. n_steps - 1``, each with
    the standard variates of its one uniform (``K`` steps' uniforms from ``fold_in(step_key, chunk index)``)."""
    chunk = chunk_steps(n_steps)

    def steps(carry, j):
        """``chunk`` steps. Their uniforms, logs and normal quantiles in one go: 1.3x faster than step by step."""
        variates = standard_variates(stream_uniforms(jax.random.fold_in(step_key, j), (chunk,)))
        return jax.lax.scan(step, carry, (j * chunk + jnp.arange(chunk, dtype=jnp.int32), variates))[0], None

    return jax.lax.scan(steps, carry, jnp.arange(n_steps // chunk, dtype=jnp.int32))[0]


def chunk_steps(n_steps: int) -> int:
    """Steps whose uniforms are drawn together: the largest divisor of ``n_steps`` up to 64."""
    return max(d for d in range(1, 65) if n_steps % d == 0)


def working(up, path_exists, n_hops: int) -> tuple[jax.Array, jax.Array]:
    """Hops that make key (``[P, H]``: hop and both end nodes up) and paths that relay it (``[P]``)."""
    n_paths = path_exists.shape[0]
    hop_up = up[: n_paths * n_hops].reshape(n_paths, n_hops)
    node_up = up[n_paths * n_hops :].reshape(n_paths, n_hops - 1)
    ends = jnp.ones((n_paths, 1), bool)  # user sites
    nodes = jnp.concatenate([ends, node_up, ends], axis=1)
    hop_working = hop_up & nodes[:, :-1] & nodes[:, 1:]
    return hop_working, hop_working.all(axis=1) & path_exists


def move_key(hop_bits, store_bits, hop_working, path_up, gain_bits, hop_capacity_bits, store_capacity_bits, demand_bits):
    """One step of key generation, relay and consumption: (hop key, store key, served bits) after it."""
    available = hop_bits + jnp.where(hop_working, gain_bits, 0.0)
    room = store_capacity_bits - store_bits + demand_bits
    relayed = []
    for p in range(available.shape[0]):  # paths in order: disjoint, so each only competes for room
        x = jnp.where(path_up[p], jnp.minimum(available[p].min(), room), 0.0)
        room = room - x
        relayed.append(x)
    relayed = jnp.stack(relayed)
    hop_bits = jnp.minimum(available - relayed[:, None], hop_capacity_bits)
    held = store_bits + relayed.sum()
    served = jnp.minimum(held, demand_bits)
    return hop_bits, held - served, served


def tally_step(tally: _Tally, i, any_path_up, unserved_bits, demand_bits) -> _Tally:
    """Counts after step ``i``; a run of starved steps ends at the first step served in full."""
    starved = unserved_bits > _STARVED_RTOL * demand_bits
    run = jnp.where(starved, tally.starved_run_steps + 1, 0)
    return _Tally(
        tally.up_steps + any_path_up,
        tally.unserved_bits + unserved_bits,
        run,
        jnp.maximum(tally.longest_run_steps, run),
        jnp.minimum(tally.first_starved_step, jnp.where(starved, i, tally.first_starved_step)),
    )


@partial(jax.jit, static_argnames=("n_steps", "stationary_start"))
def simulate_supply(
    key,
    hop_rate_bps,
    hop_buffer_bits,
    hop_mask,
    hop_reliability: Reliability,
    node_reliability: Reliability,
    store_bits,
    demand_bps,
    horizon_h,
    n_steps: int,
    *,
    stationary_start: bool = True,
    initial_fill=0.0,
) -> SupplyTrial:
    """One trial of the key supply over ``horizon_h`` in ``n_steps`` steps (see the module docstring).

    ``hop_rate_bps``, ``hop_buffer_bits``, ``hop_mask`` and the fields of ``hop_reliability`` are ``[P, H]``
    (or broadcast to it), those of ``node_reliability`` ``[P, H - 1]``; entries where the hop is masked out are
    ignored. Everything but ``n_steps`` and ``stationary_start`` may be traced (vmap over trials and grid points).
    """
    hop_mask = jnp.asarray(hop_mask, bool)
    _n_paths, n_hops = hop_mask.shape
    reliability = component_reliability(hop_reliability, node_reliability, hop_mask)
    laws = duration_laws(reliability)
    hop_buffer_bits = jnp.broadcast_to(jnp.asarray(hop_buffer_bits, jnp.float64), hop_mask.shape)
    dt_h = horizon_h / n_steps
    # Absent hops hold infinite key at no rate, so they never limit a path's relay.
    gain_bits = jnp.where(hop_mask, hop_rate_bps, 0.0) * (dt_h * SECONDS_PER_HOUR)
    hop_capacity_bits = jnp.where(hop_mask, hop_buffer_bits, jnp.inf)
    demand_bits = demand_bps * (dt_h * SECONDS_PER_HOUR)
    start_key, step_key = jax.random.split(key)
    components = start_components(start_key, reliability, laws, stationary_start)

    path_exists = hop_mask.any(axis=1)  # callers may pad the path axis with empty rows

    def step(carry, inputs):
        i, variates = inputs
        components, hop_bits, store, tally = carry
        hop_working, path_up = working(components.up, path_exists, n_hops)
        hop_bits, store, served = move_key(hop_bits, store, hop_working, path_up, gain_bits, hop_capacity_bits, store_bits, demand_bits)
        tally = tally_step(tally, i, path_up.any(), demand_bits - served, demand_bits)
        return (advance(variates, components, laws, dt_h), hop_bits, store, tally), None

    tally = new_tally((), n_steps)
    hop_bits = jnp.where(hop_mask, initial_fill * hop_buffer_bits, jnp.inf)
    carry = (components, hop_bits, initial_fill * jnp.asarray(store_bits, jnp.float64), tally)
    _, hop_bits, store, tally = scan_steps(step, carry, step_key, n_steps)
    total_demand_bits = demand_bits * n_steps
    return SupplyTrial(
        availability=tally.up_steps.astype(jnp.float64) / n_steps,
        unserved_bits=tally.unserved_bits,
        unserved_fraction=jnp.where(total_demand_bits > 0, tally.unserved_bits / total_demand_bits, 0.0),
        demand_met=tally.first_starved_step == n_steps,
        longest_starvation_h=tally.longest_run_steps * dt_h,
        first_starvation_h=tally.first_starved_step * dt_h,
        final_store_bits=store,
        final_hop_buffer_bits=jnp.where(hop_mask, hop_bits, 0.0),
    )


def summarise(trials: SupplyTrial) -> SupplySummary:
    """Statistics over the leading (trial) axis of ``trials``."""
    return SupplySummary(
        **mean_estimate("availability_mean", trials.availability),
        **probability_estimate("demand_met_probability", trials.demand_met),
        **mean_estimate("unserved_bits_mean", trials.unserved_bits),
        **mean_estimate("unserved_fraction_mean", trials.unserved_fraction),
        **mean_estimate("longest_starvation_h_mean", trials.longest_starvation_h),
        longest_starvation_h_q95=jnp.quantile(trials.longest_starvation_h, 0.95, axis=0),
        first_starvation_h_quantiles=jnp.quantile(trials.first_starvation_h, jnp.asarray(FIRST_STARVATION_QUANTILES), axis=0),
    )


def sample_trials(key, *args, trials: int, **kwargs) -> SupplyTrial:
    """``trials`` trials of ``simulate_supply(key, *args, **kwargs)`` stacked on a leading axis; trial ``t`` draws
    from ``fold_in(key, t)``, so a trial's result does not depend on how many are run."""
    return jax.vmap(lambda t: simulate_supply(jax.random.fold_in(key, t), *args, **kwargs))(jnp.arange(trials))


def simulate_trials(key, *args, trials: int, **kwargs) -> SupplySummary:
    """``summarise(sample_trials(key, *args, trials=trials, **kwargs))``."""
    return summarise(sample_trials(key, *args, trials=trials, **kwargs))


def check_supply_inputs(
    hop_rate_bps,
    hop_buffer_bits,
    hop_mask,
    hop_reliability: Reliability,
    node_reliability: Reliability,
    store_bits,
    demand_bps,
    horizon_h,
    n_steps,
    initial_fill=0.0,
) -> None:
    """Raise ValueError naming the parameter, the value and what is allowed, for host (NumPy) inputs.

    Entries of masked-out hops (and of the nodes after a path's last hop) are not checked.
    """
    mask = np.asarray(hop_mask)
    if mask.dtype != bool or mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"hop_mask has dtype {mask.dtype} and shape {mask.shape}; allowed: bool [paths >= 1, hops >= 1]")
    if not mask.any():
        raise ValueError("hop_mask has no hop; allowed: at least one path with at least one hop")
    for p, row in enumerate(mask):
        if np.any(row[1:] & ~row[:-1]):
            raise ValueError(f"hop_mask[{p}] = {row.tolist()}; allowed: a path's hops first, then only False")
    node_mask = mask[:, 1:]
    for name, value, where, allowed in [
        ("hop_rate_bps", hop_rate_bps, mask, Range(0.0, np.inf, high_closed=False)),
        ("hop_buffer_bits", hop_buffer_bits, mask, Range(0.0, np.inf, high_closed=False)),
        *_reliability_checks("hop_reliability", hop_reliability, mask),
        *_reliability_checks("node_reliability", node_reliability, node_mask),
        ("store_bits", store_bits, None, Range(0.0, np.inf, high_closed=False)),
        ("demand_bps", demand_bps, None, Range(0.0, np.inf, high_closed=False)),
        ("horizon_h", horizon_h, None, Range(0.0, np.inf, low_closed=False, high_closed=False)),
        ("initial_fill", initial_fill, None, Range(0.0, 1.0)),
    ]:
        _check(name, value, where, allowed)
    if not isinstance(n_steps, (int, np.integer)) or not 1 <= n_steps < 2**31:
        raise ValueError(f"n_steps = {n_steps!r}; allowed: an integer in [1, 2^31)")


def _reliability_checks(name: str, r: Reliability, where):
    return [
        (f"{name}.mtbf_h", r.mtbf_h, where, Range(0.0, np.inf, low_closed=False, infinite_ok=True)),
        (f"{name}.mttr_h", r.mttr_h, where, Range(0.0, np.inf, low_closed=False, high_closed=False)),
        # Gamma(1 + 1/k) overflows for k below ~0.006; shapes outside [0.1, 100] are not failure laws in practice
        (f"{name}.failure_shape", r.failure_shape, where, Range(0.1, 100.0)),
        (f"{name}.repair_log_sigma", r.repair_log_sigma, where, Range(0.0, np.inf, high_closed=False)),
    ]


def _check(name: str, value, where, allowed: Range) -> None:
    try:
        array = np.asarray(value, dtype=np.float64)
        if where is not None:
            array = np.broadcast_to(array, where.shape)
    except (TypeError, ValueError):
        shape = "a scalar" if where is None else f"shape {where.shape}"
        raise ValueError(f"{name} = {value!r} is not numbers of {shape}") from None
    bad = ~allowed.contains(array) & (True if where is None else where)
    if np.any(bad):
        index = np.argwhere(bad)[0] if array.ndim else ()
        at = f"[{', '.join(map(str, index))}]" if len(index) else ""
        raise ValueError(f"{name}{at} = {array[tuple(index)]:g} is outside the allowed range {allowed}")
