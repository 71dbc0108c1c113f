"""How time and memory grow with the size of a study: grid points, Monte Carlo trials, supply time steps.

Usage: python benchmarks/bench_scaling.py [--points 1e4 1e5 1e6 1e7] [--trials 1e2 1e3 1e4 1e5]
                                          [--steps 1e3 1e4 1e5] [--only points trials steps]

Each run is a fresh process (``qkdjax.run`` of a reference sweep, the compile cache off), timed twice in it: the
first call (compile and run) and the second (run only), with its peak resident memory (``ru_maxrss``).
- points: the default sweep (asymptotic decoy BB84) with ``link.distance_km`` stretched to the requested size;
- trials: lim_2014's finite-key Monte Carlo blocks at 8 grid points (block 1e6 detections, 50-120 km);
- steps: the corridor's key-supply Monte Carlo (2 trusted nodes, 200 trials) over one year in that many steps.
A table per axis, then the exponent of a power law fitted to the run time over the larger half of the sizes
(the smaller ones are overhead); linear work should give about 1. Network sizes: benchmarks/bench_network.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

CHILD = """
import json, resource, sys, time
import qkdjax
overrides = json.loads(sys.argv[1])
times = []
for _ in range(2):
    start = time.perf_counter()
    cube = qkdjax.run(*overrides, "compile_cache.enabled=false")
    times.append(time.perf_counter() - start)
peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
print(json.dumps({"first_s": times[0], "run_s": times[1], "peak_gib": peak_gib}))
"""


def measure(overrides: list[str]) -> dict:
    """Times and peak resident memory (GiB) of ``qkdjax.run(*overrides)`` in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(overrides)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def points_study(points: float) -> list[str]:
    n_distance = max(round(points / 20), 1)  # 4 attenuations x 5 efficiencies
    return [f"link.distance_km=${{linspace:0,250,{n_distance}}}"]


def trials_study(trials: float) -> list[str]:
    distances = ",".join(str(d) for d in np.linspace(50, 120, 8))
    return ["sweep=lim_2014", f"link.distance_km=[{distances}]", "protocol.block_size=[1e6]", f"montecarlo.trials={int(trials)}"]


def steps_study(steps: float) -> list[str]:
    step_s = 8766 * 3600 / steps
    return ["sweep=corridor", "link.trusted_nodes=[2]", "link.demand_bps=[1e3]", "montecarlo.trials=200", f"supply.time_step_s={step_s}"]


AXES = {"points": (points_study, "grid points"), "trials": (trials_study, "trials per point"), "steps": (steps_study, "time steps")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7])
    parser.add_argument("--trials", type=float, nargs="+", default=[1e2, 1e3, 1e4, 1e5])
    parser.add_argument("--steps", type=float, nargs="+", default=[1e3, 1e4, 1e5])
    parser.add_argument("--only", nargs="+", choices=list(AXES), default=list(AXES))
    args = parser.parse_args()
    import jax  # only for the device line: the runs are child processes

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    for axis in args.only:
        study, label = AXES[axis]
        sizes = getattr(args, axis)
        print(f"\n{label:>16} {'first s':>9} {'run s':>8} {'per unit us':>12} {'peak GiB':>9}")
        runs = []
        for size in sizes:
            result = measure(study(size))
            runs.append(result["run_s"])
            print(
                f"{size:>16.3g} {result['first_s']:>9.2f} {result['run_s']:>8.2f} {result['run_s'] / size * 1e6:>12.3g} {result['peak_gib']:>9.2f}"
            )
        half = max(len(sizes) // 2, 2)
        exponent = np.polyfit(np.log(sizes[-half:]), np.log(runs[-half:]), 1)[0]
        print(f"{label}: run time ~ size^{exponent:.2f} over {sizes[-half]:.3g}..{sizes[-1]:.3g}")


if __name__ == "__main__":
    main()
