"""Throughput of the network availability Monte Carlo (``qkdjax.network.relay``) and its growth with the graph.

Usage: python benchmarks/bench_network.py [--trials 100] [--steps 52560] [--sizes 2 4 8 16 32 64]

Two families of graphs, each with links of known rate (no physics: the relay and the failures are timed), one
demand between the two user sites at the ends, a year in ``--steps`` steps, ``--trials`` trials in one compiled
call: a chain of ``n`` sites (``n - 1`` links, ``n - 1`` minimal cuts) and a ladder of ``n`` sites (two rails
joined by rungs: a mesh whose minimal cuts grow exponentially with its length). Prints compile and run times,
link-years per second (trials x links x years / run time) and the fitted exponent of run time vs links.
"""

from __future__ import annotations

import argparse
import itertools

import jax
import numpy as np
from timing import device_line, timed

import qkdjax  # noqa: F401  (float64)
from qkdjax.config import ConfigError
from qkdjax.network.availability import Reliability
from qkdjax.network.graph import build_graph, minimal_cuts
from qkdjax.network.relay import Cuts, sample_trials

HOURS_PER_YEAR = 8766.0


def chain(n: int):
    sites = {"A": "user", **{f"N{i}": "trusted" for i in range(1, n - 1)}, "B": "user"}
    names = list(sites)
    return sites, list(itertools.pairwise(names))


def ladder(n: int):
    """Two rails of ``n // 2`` sites joined by rungs, the users at opposite corners."""
    half = max(n // 2, 2)
    top, bottom = [f"T{i}" for i in range(half)], [f"B{i}" for i in range(half)]
    top[0], bottom[-1] = "A", "B"
    sites = {name: "user" if name in ("A", "B") else "trusted" for name in top + bottom}
    edges = list(itertools.pairwise(top)) + list(itertools.pairwise(bottom)) + list(zip(top, bottom))
    return sites, edges


def program(sites, edges, trials: int, n_steps: int):
    graph = build_graph(sites, edges)
    cuts = Cuts.stack([minimal_cuts(graph, graph.sites.index("A"), graph.sites.index("B")).astype(float)])
    n_links, n_sites = len(edges), len(sites)
    mtbf = np.r_[np.full(n_links, 4380.0), [np.inf if k == "user" else 8760.0 for k in sites.values()]]
    mttr = np.r_[np.full(n_links, 12.0), np.full(n_sites, 4.0)]
    reliability = Reliability(mtbf, mttr, np.ones(n_links + n_sites), np.zeros(n_links + n_sites))
    rates = np.full(n_links, 1e4)

    def run(key):
        return sample_trials(
            key, rates, np.asarray(graph.edges), reliability, cuts, np.ones((1, n_links)), 1e9, 1e3, HOURS_PER_YEAR, n_steps, trials=trials
        ).availability

    return jax.jit(run), cuts.matrix.shape[1], n_links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--steps", type=int, default=52560)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    args = parser.parse_args()
    print(device_line())
    print(f"{args.trials} trials x {args.steps} steps (one year), one demand between the ends")
    print(f"{'graph':>7} {'sites':>5} {'links':>5} {'cuts':>6} {'compile s':>9} {'run s':>7} {'link-years/s':>12} {'mean avail.':>11}")
    for family in (chain, ladder):
        links, times = [], []
        for n in args.sizes:
            if family is ladder and n < 4:
                continue
            sites, edges = family(n)
            try:
                run, n_cuts, n_links = program(sites, edges, args.trials, args.steps)
            except ConfigError as error:  # a mesh past the cut enumeration's limits
                print(f"{family.__name__:>7} {len(sites):>5} {len(edges):>5}  {error}")
                continue
            key = jax.random.key(0)
            _, compile_s = timed(lambda run=run, key=key: run(key))
            availability, run_s = timed(lambda run=run, key=key: run(key), repeat=2)
            link_years = args.trials * n_links  # one year each
            print(
                f"{family.__name__:>7} {len(sites):>5} {n_links:>5} {n_cuts:>6} {compile_s - run_s:>9.2f} {run_s:>7.2f}"
                f" {link_years / run_s:>12.3g} {float(np.mean(availability)):>11.4f}"
            )
            links.append(n_links)
            times.append(run_s)
        if len(links) > 2:
            exponent = np.polyfit(np.log(links), np.log(times), 1)[0]
            print(f"{family.__name__}: run time ~ links^{exponent:.2f} over {links[0]}..{links[-1]} links")


if __name__ == "__main__":
    main()
