"""Throughput of the key-supply availability Monte Carlo: simulated link-years per second.

Usage: python benchmarks/bench_availability.py [--trials 1000] [--points 4] [--steps 52560] [--tradeoffs]

A 3-hop trusted-node chain (one path, two intermediate nodes; hops 12, 8, 10 kbit/s with 100 Mbit buffers,
MTBF 4380 h / MTTR 12 h; nodes MTBF 8760 h / MTTR 4 h, all exponential; a 50 Mbit end-to-end store) over one
year, at ``--points`` demands from 2 to 8 kbit/s, ``--trials`` trials each. Work = trials x points x hops x
steps / steps per year, in link-years. qkdjax (``qkdjax.network.availability``, one jit(vmap) over points and
trials) runs against a NumPy version written here independently: vectorised over points and trials, a Python
loop over time steps, each component a two-state Markov chain stepped with ``p_fail = 1 - exp(-dt / MTBF)``,
``p_repair = 1 - exp(-dt / MTTR)``. Different random streams: the means must agree within their Monte Carlo
error first. ``--tradeoffs`` also times qkdjax over step lengths and trial counts.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from timing import device_line, timed

import qkdjax  # noqa: F401  (float64)
from qkdjax.network.availability import Reliability, sample_trials

HOURS_PER_YEAR = 8760.0
RATES_BPS = np.array([[12e3, 8e3, 10e3]])
BUFFER_BITS = 1e8
STORE_BITS = 5e7
HOP = (4380.0, 12.0)  # MTBF, MTTR (h)
NODE = (8760.0, 4.0)


def qkdjax_run(demands_bps, trials: int, n_steps: int):
    """Per-trial results [points, trials] of every demand, in one compiled call."""
    mask = np.ones(RATES_BPS.shape, bool)
    hop = Reliability(np.full(RATES_BPS.shape, HOP[0]), np.full(RATES_BPS.shape, HOP[1]))
    node = Reliability(np.full((1, 2), NODE[0]), np.full((1, 2), NODE[1]))

    def one_point(key, demand_bps):
        return sample_trials(key, RATES_BPS, BUFFER_BITS, mask, hop, node, STORE_BITS, demand_bps, HOURS_PER_YEAR, n_steps, trials=trials)

    keys = jax.random.split(jax.random.key(0), len(demands_bps))
    return jax.jit(jax.vmap(one_point)), (keys, jnp.asarray(demands_bps))


def numpy_run(demands_bps, trials: int, n_steps: int, rng):
    """Mean availability and unserved fraction [points] and their per-trial standard deviations."""
    shape = (len(demands_bps), trials)
    dt_h = HOURS_PER_YEAR / n_steps
    mtbf = np.array([HOP[0]] * 3 + [NODE[0]] * 2)
    mttr = np.array([HOP[1]] * 3 + [NODE[1]] * 2)
    p_fail, p_repair = -np.expm1(-dt_h / mtbf), -np.expm1(-dt_h / mttr)
    up = rng.random((*shape, 5)) < mtbf / (mtbf + mttr)  # stationary start
    gain = RATES_BPS[0] * dt_h * 3600
    demand = np.asarray(demands_bps)[:, None] * dt_h * 3600
    hops = np.zeros((*shape, 3))
    store = np.zeros(shape)
    unserved = np.zeros(shape)
    up_steps = np.zeros(shape)
    for _ in range(n_steps):
        nodes_up = up[..., 3:]
        ends = np.ones((*shape, 1), bool)
        node_ok = np.concatenate([ends, nodes_up, ends], axis=-1)
        hop_ok = up[..., :3] & node_ok[..., :-1] & node_ok[..., 1:]
        path_up = hop_ok.all(-1)
        hops += np.where(hop_ok, gain, 0.0)
        relay = np.where(path_up, np.minimum(hops.min(-1), STORE_BITS - store + demand), 0.0)
        hops = np.minimum(hops - relay[..., None], BUFFER_BITS)
        store += relay
        served = np.minimum(store, demand)
        store -= served
        unserved += demand - served
        up_steps += path_up
        u = rng.random((*shape, 5))
        up = np.where(up, u >= p_fail, u < p_repair)
    availability = up_steps / n_steps
    fraction = unserved / (demand * n_steps)
    return availability.mean(1), availability.std(1), fraction.mean(1), fraction.std(1)


def link_years(trials, points):
    """Trials x points x hops x steps / steps per year: the horizon is one year."""
    return trials * points * RATES_BPS.shape[1]


def time_qkdjax(demands, trials, n_steps, repeat):
    run, args = qkdjax_run(demands, trials, n_steps)
    jax.block_until_ready(run(*args))  # compile
    return timed(lambda: run(*args), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--steps", type=int, default=52560, help="time steps per year (52560: 10 minutes)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tradeoffs", action="store_true", help="also time step lengths x trial counts")
    args = parser.parse_args()
    print(device_line())
    demands = np.linspace(2e3, 8e3, args.points)
    trial, seconds = time_qkdjax(demands, args.trials, args.steps, args.repeat)
    (np_avail, np_avail_std, np_unserved, np_unserved_std), np_seconds = timed(
        lambda: numpy_run(demands, args.trials, args.steps, np.random.default_rng(1))
    )
    avail, unserved = np.asarray(trial.availability), np.asarray(trial.unserved_fraction)
    for name, ours, ours_std, theirs, theirs_std in [
        ("availability", avail.mean(1), avail.std(1), np_avail, np_avail_std),
        ("unserved fraction", unserved.mean(1), unserved.std(1), np_unserved, np_unserved_std),
    ]:
        error = np.sqrt((ours_std**2 + theirs_std**2) / args.trials)
        assert np.all(np.abs(ours - theirs) < 5 * error + 1e-12), f"qkdjax and NumPy disagree on {name}"
        print(f"{name} per demand: qkdjax {np.round(ours, 5)}, numpy {np.round(theirs, 5)} (+- {error.max():.1g})")
    work = link_years(args.trials, args.points)
    print(
        f"{args.points} demands x {args.trials} trials x 3 hops x 1 year at {HOURS_PER_YEAR * 60 / args.steps:g}-minute "
        f"steps = {work:.3g} link-years: qkdjax {work / seconds:.3e}/s ({seconds:.2f} s), "
        f"numpy {work / np_seconds:.3e}/s ({np_seconds:.2f} s), ratio {np_seconds / seconds:.1f}"
    )
    if args.tradeoffs:
        for n_steps in (8760, 52560, 525600):
            for trials in (100, 1000, 10000):
                if trials * n_steps > 1.1e9:
                    continue
                _, seconds = time_qkdjax(demands[:1], trials, n_steps, 1)
                work = link_years(trials, 1)
                print(f"  {HOURS_PER_YEAR * 60 / n_steps:5.3g}-minute steps, {trials:5d} trials: {work / seconds:.3e} link-years/s")


if __name__ == "__main__":
    main()
