"""Key relay over a network's graph in time: failures and repairs of links and sites, each demand's max-flow at
every step, and the key stores at the user sites.

The graph (``qkdjax.network.graph``) has ``E`` links and ``V`` sites; a link makes key at ``r_e`` bit/s while it
and both its end sites are up. Components (links, then sites) fail and are repaired as the alternating renewal
processes of ``qkdjax.network.availability`` (same laws, same one-change-per-step time stepping and stationary
start; see its docstring for the approximation and its bias), in steps of ``dt = horizon / n_steps``.

Key relay (one-time pad hop by hop through trusted nodes: M. Peev et al., New J. Phys. 11, 075001 (2009)) gives
demand ``d`` at each step the max-flow ``F_d`` between its two user sites over the working links (L. R. Ford,
D. R. Fulkerson, Can. J. Math. 8, 399 (1956)), as the minimum over its minimal cuts of the capacity crossing each
(a static ``[cuts, links]`` matrix per demand, so the flow vectorises over steps, trials and grid points).

Several demands share a link's key in proportion to their demand (a proportional share, fixed in advance):
link ``e`` gives demand ``d`` the share ``w_de = s_d u_de / sum_d' s_d' u_d'e`` of its rate, where ``s_d`` is
the demand's share of ``link.demand_bps`` and ``u_de`` is 1 where ``e`` lies on a path between ``d``'s sites
through sites that relay (it crosses one of ``d``'s minimal cuts; a user site relays only its own pairs' key
unless it says ``relays: true``). Each demand's flow over its shares is feasible together with the
others' (their shares of every link add to at most 1), and equals its max-flow where one demand uses the link.
It is not the multi-commodity optimum: a demand cannot take the part of a shared link another leaves unused.

Each demand has a store of ``C_d`` bits at its two sites, ``initial_fill`` full at the start (the network scenario's
``link.store_initial_fill``: 1, a network in service, by default), from which applications draw ``D_d`` bit/s: per
step ``x = min(F_d dt, C_d - store + D_d dt)`` enters, ``min(store + x, D_d dt)`` is served, as the store of a
chain (``qkdjax.network.availability``, step 3-4). Trusted nodes bank no key for later: key a link makes while
its demands' routes are cut is lost (a chain with ``link.buffer_bits = 0``). The hop buffers of a chain need a
flow per link, which the cut form of the max-flow does not give; a network relies on its user-site stores.

A demand is *connected* in a step where ``F_d > 0``: its availability (uptime) is the fraction of such steps,
an *outage* a maximal run of steps without, and the mean outage is the observed mean time to restore the
end-to-end service. What the stores cannot serve is the share of key exchanges QKD does not protect (they fall
back to another key exchange, e.g. post-quantum).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qkdjax.montecarlo.estimates import mean_estimate, probability_estimate
from qkdjax.network.availability import (
    FIRST_STARVATION_QUANTILES,
    SECONDS_PER_HOUR,
    Reliability,
    advance,
    duration_laws,
    new_tally,
    scan_steps,
    start_components,
    tally_step,
)
from qkdjax.numerics import safe_divide

HOURS_PER_YEAR = 8766.0  # a Julian year


class Cuts(NamedTuple):
    """Minimal cuts of every demand as one ``[D, C, E]`` 0/1 matrix (``C`` the most any demand has), with
    ``padding[d, c] = inf`` on the rows demand ``d`` does not have (so they never are the minimum)."""

    matrix: np.ndarray
    padding: np.ndarray

    @classmethod
    def stack(cls, per_demand: list[np.ndarray]) -> Cuts:
        most = max(c.shape[0] for c in per_demand)
        edges = per_demand[0].shape[1]
        matrix = np.zeros((len(per_demand), most, edges))
        padding = np.full((len(per_demand), most), np.inf)
        for d, cuts in enumerate(per_demand):
            matrix[d, : len(cuts)] = cuts
            padding[d, : len(cuts)] = 0.0
        return cls(matrix, padding)

    def shares(self, demand_shares: np.ndarray) -> np.ndarray:
        """``w[d, e]``: demand ``d``'s proportional share of link ``e`` (see the module docstring)."""
        uses = self.matrix.any(axis=1) * np.asarray(demand_shares, float)[:, None]
        total = uses.sum(axis=0)
        return np.divide(uses, total, out=np.zeros_like(uses), where=total > 0)

    def flows(self, capacity):
        """Max-flow of each demand ``[D]`` over link capacities ``capacity[D, E]`` (each demand its own)."""
        return jnp.min(jnp.einsum("dce,de->dc", self.matrix, capacity) + self.padding, axis=-1)

    def bottleneck(self, capacity):
        """``[D, E]``: 1 on the links of each demand's minimum cut (the first, where several tie)."""
        crossing = jnp.einsum("dce,de->dc", self.matrix, capacity) + self.padding
        first = jnp.argmin(crossing, axis=-1)
        return jnp.take_along_axis(jnp.asarray(self.matrix), first[:, None, None], axis=1)[:, 0]


class NetworkTrial(NamedTuple):
    """One simulated horizon, per demand ``[D]`` unless noted. Times in hours, resolved to one step."""

    availability: jax.Array  # fraction of steps with a flow (connected)
    outage_h: jax.Array  # time without a flow, summed
    outages: jax.Array  # runs of steps without a flow (one already under way at the start counts)
    unserved_bits: jax.Array
    unserved_fraction: jax.Array
    demand_met: jax.Array  # bool: no step starved
    longest_starvation_h: jax.Array
    first_starvation_h: jax.Array  # horizon_h where never
    link_availability: jax.Array  # [E] fraction of steps each link made key
    failures: jax.Array  # failures of links and sites over the horizon (scalar)


def failures_per_year(mtbf_h, mttr_h) -> jax.Array:
    """Expected failures a year of components in their renewal processes' steady state: a year / (MTBF + MTTR)."""
    mtbf_h = jnp.asarray(mtbf_h, jnp.float64)
    return jnp.where(jnp.isinf(mtbf_h), 0.0, HOURS_PER_YEAR / (jnp.where(jnp.isinf(mtbf_h), 1.0, mtbf_h) + mttr_h))


def link_working(up, ends) -> jax.Array:
    """``[E]``: links up with both end sites up (``up``: links, then sites)."""
    n_links = ends.shape[0]
    return up[:n_links] & up[n_links + ends[:, 0]] & up[n_links + ends[:, 1]]


def simulate_network(
    key, rate_bps, ends, reliability: Reliability, cuts: Cuts, shares, store_bits, demand_bps, horizon_h, n_steps: int, *,
    stationary_start: bool = True, initial_fill=0.0,
) -> NetworkTrial:  # fmt: skip
    """One trial over ``horizon_h`` in ``n_steps`` steps (module docstring). ``rate_bps [E]``, ``ends [E, 2]`` site
    indices (static), ``reliability`` fields ``[E + V]`` (links then sites), ``shares [D, E]``, ``store_bits`` and
    ``demand_bps`` ``[D]`` (or broadcast). Keys: the start from ``split(key)[0]``, the steps as in
    ``qkdjax.network.availability``."""
    ends = np.asarray(ends)
    laws = duration_laws(reliability)
    dt_h = horizon_h / n_steps
    capacity_bits = jnp.asarray(shares) * (jnp.asarray(rate_bps) * (dt_h * SECONDS_PER_HOUR))  # [D, E] per step
    n_demands = capacity_bits.shape[0]
    demand_bits = jnp.broadcast_to(demand_bps * (dt_h * SECONDS_PER_HOUR), (n_demands,))
    store_capacity_bits = jnp.broadcast_to(jnp.asarray(store_bits, jnp.float64), (n_demands,))
    start_key, step_key = jax.random.split(key)
    components = start_components(start_key, reliability, laws, stationary_start)

    def step(carry, inputs):
        i, variates = inputs
        components, store, tally, connected_before, outages, working_steps, failures = carry
        working = link_working(components.up, ends)
        relayed_bits = cuts.flows(jnp.where(working, capacity_bits, 0.0))
        connected = relayed_bits > 0.0
        held = store + jnp.minimum(relayed_bits, store_capacity_bits - store + demand_bits)
        served = jnp.minimum(held, demand_bits)
        tally = tally_step(tally, i, connected, demand_bits - served, demand_bits)
        after = advance(variates, components, laws, dt_h)
        carry = (
            after, held - served, tally, connected, outages + (connected_before & ~connected), working_steps + working,
            failures + jnp.sum(components.up & ~after.up, dtype=jnp.int32),
        )  # fmt: skip
        return carry, None

    zeros = jnp.zeros(n_demands, jnp.int32)
    carry = (
        components, initial_fill * store_capacity_bits, new_tally((n_demands,), n_steps), jnp.ones(n_demands, bool), zeros,
        jnp.zeros(ends.shape[0], jnp.int32), jnp.zeros((), jnp.int32),
    )  # fmt: skip
    _, _, tally, _, outages, working_steps, failures = scan_steps(step, carry, step_key, n_steps)
    total_demand_bits = demand_bits * n_steps
    down_steps = n_steps - tally.up_steps
    return NetworkTrial(
        availability=tally.up_steps.astype(jnp.float64) / n_steps,
        outage_h=down_steps * dt_h,
        outages=outages,
        unserved_bits=tally.unserved_bits,
        unserved_fraction=safe_divide(tally.unserved_bits, total_demand_bits),
        demand_met=tally.first_starved_step == n_steps,
        longest_starvation_h=tally.longest_run_steps * dt_h,
        first_starvation_h=tally.first_starved_step * dt_h,
        link_availability=working_steps.astype(jnp.float64) / n_steps,
        failures=failures,
    )


def summarise(trials: NetworkTrial, horizon_h: float) -> dict[str, jax.Array]:
    """Statistics over the leading (trial) axis: per demand, and per link for ``link_availability``."""
    outages = jnp.sum(trials.outages, axis=0)
    return {
        **mean_estimate("availability", trials.availability),
        # the ratio estimator of the mean outage: all outage time over all outages (0 where none was seen)
        "mean_outage_h": jnp.sum(trials.outage_h, axis=0) / jnp.maximum(outages, 1),
        **probability_estimate("demand_met_probability", trials.demand_met),
        **mean_estimate("unserved_bits_mean", trials.unserved_bits),
        **mean_estimate("unserved_fraction_mean", trials.unserved_fraction),
        "protected_fraction": 1.0 - jnp.mean(trials.unserved_fraction, axis=0),
        **mean_estimate("longest_starvation_h_mean", trials.longest_starvation_h),
        "longest_starvation_h_q95": jnp.quantile(trials.longest_starvation_h, 0.95, axis=0),
        "first_starvation_h_quantile": jnp.moveaxis(
            jnp.quantile(trials.first_starvation_h, jnp.asarray(FIRST_STARVATION_QUANTILES), axis=0), 0, -1
        ),
        "link_availability": jnp.mean(trials.link_availability, axis=0),
        "failures_per_year": jnp.mean(trials.failures) * (HOURS_PER_YEAR / horizon_h),
    }


def sample_trials(key, *args, trials: int, **kwargs) -> NetworkTrial:
    """``trials`` trials of ``simulate_network(key, *args, **kwargs)``; trial ``t`` draws from ``fold_in(key, t)``."""
    return jax.vmap(lambda t: simulate_network(jax.random.fold_in(key, t), *args, **kwargs))(jnp.arange(trials))
