"""Time to optimise the protocol parameters of every point of a finite-key grid, qkdjax against a per-point scipy loop.

Usage: python benchmarks/bench_optimize.py [--points 10000] [--scipy-points 100]

qkdjax: sweeps/lim_2014.yaml (five parameters optimised per point: mu1, mu2, p_mu1, p_mu2, q_x) over ``--points``
grid points (distance 0-200 km x 10 block sizes 1e4-1e10), end to end through the sweep engine, after compilation.
scipy: what a per-point tool does, written here: scipy.optimize.minimize (Nelder-Mead, bounded, from the sweep's
configured start, 2000 evaluations at most) on the NumPy estimator of bench_finite_key.py, one point at a time,
on ``--scipy-points`` points spread over the same grid; its seconds per point are compared.

Printed: seconds per point of each, their ratio, and the quality of both optima (failed points: NaN rates or no
key where the other method finds some; the median ratio of the scipy rate to the qkdjax rate).
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
from bench_finite_key import numpy_expected, numpy_key_length_kappa
from scipy.optimize import minimize
from timing import device_line, timed

from qkdjax.cli import compose_config
from qkdjax.config import parse_grid, parse_settings
from qkdjax.study import make_study
from qkdjax.sweep import run_grid

START = np.array([0.4, 0.2, 0.3, 0.35, 0.5])  # sweeps/lim_2014.yaml: mu1, mu2, p_mu1, p_mu2, q_x
BOUNDS = [(0.01, 1.5), (0.001, 0.8), (0.01, 0.99), (0.01, 0.99), (0.5, 0.99)]  # conf/config.yaml optimize.bounds
MU_WEAK = 2e-4


def numpy_rate_per_pulse(x, distance_km, block_size):
    """Key bits per pulse of the Lim 2014 link at one point for x = (mu1, mu2, p_mu1, p_mu2, q_x); 0 if infeasible."""
    mu1, mu2, p1, p2, q_x = x
    if not (mu1 > mu2 + MU_WEAK and mu2 > MU_WEAK and p1 + p2 < 1):
        return 0.0
    mu, probs = np.array([mu1, mu2, MU_WEAK]), np.array([p1, p2, 1 - p1 - p2])
    counts, pulses = numpy_expected(np.array([distance_km]), np.array([block_size]), mu, probs, q_x)
    return float(numpy_key_length_kappa(*counts, mu, probs)[0] / pulses[0])


def scipy_optimum(distance_km, block_size):
    """Best rate per pulse from a bounded Nelder-Mead search at one point (never below the start's)."""
    objective = functools.partial(numpy_rate_per_pulse, distance_km=distance_km, block_size=block_size)
    start = objective(START)
    found = minimize(lambda x: -objective(x), START, method="Nelder-Mead", bounds=BOUNDS, options={"maxfev": 2000})
    return max(-found.fun, start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--scipy-points", type=int, default=100)
    args = parser.parse_args()
    print(device_line())
    overrides = ("sweep=lim_2014", f"link.distance_km=${{linspace:0,200,{args.points // 10}}}", "protocol.block_size=${logspace:4,10,10}")
    cfg = compose_config(*overrides)[0]
    grid, settings = parse_grid(cfg), parse_settings(cfg)
    study_of = functools.partial(make_study, optimizer=settings.optimizer)
    run = lambda: run_grid(study_of, grid, chunk_size=settings.chunk_size, seed=0)
    _, first = timed(run)
    cube, seconds = timed(run)
    rate = cube.key_rate_per_pulse
    points = rate.size
    keyed = rate > 0
    unconverged = int((keyed & (cube["opt.converged"] == 0)).sum())
    print(f"qkdjax: {points} points in {seconds:.2f} s ({first:.1f} s with compilation): {seconds / points * 1e3:.3f} ms/point; "
          f"NaN {int(np.isnan(rate).sum())}, key at {int(keyed.sum())} points, not converged there {unconverged}")  # fmt: skip

    flat = rate.stack(point=rate.dims)
    chosen = np.linspace(0, points - 1, args.scipy_points).round().astype(int)
    start = time.perf_counter()
    scipy_rates = np.array([scipy_optimum(float(flat[i]["link.distance_km"]), float(flat[i]["protocol.block_size"])) for i in chosen])
    scipy_seconds = (time.perf_counter() - start) / len(chosen)
    ours = flat.values[chosen]
    both = (ours > 0) & (scipy_rates > 0)
    print(
        f"scipy Nelder-Mead loop: {scipy_seconds * 1e3:.1f} ms/point over {len(chosen)} points; "
        f"qkdjax is {scipy_seconds / (seconds / points):.0f}x faster per point"
    )
    print(
        f"quality on those points: key found by qkdjax only {int(((ours > 0) & (scipy_rates == 0)).sum())}, "
        f"by scipy only {int(((ours == 0) & (scipy_rates > 0)).sum())}; median scipy/qkdjax rate "
        f"{np.median(scipy_rates[both] / ours[both]):.4f} (min {np.min(scipy_rates[both] / ours[both]):.4f})"
    )


if __name__ == "__main__":
    main()
