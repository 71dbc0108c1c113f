"""Streaming to Zarr against the in-memory path: points/s and peak RSS of an asymptotic sweep of N points.

Usage: python benchmarks/bench_zarr.py [--points 1e7 1e8] [--modes memory zarr] [--chunk-size N] [--dir DIR]

Each (points, mode) runs in a fresh process, so its peak resident memory (``getrusage``'s ``ru_maxrss``) is its
own: ``memory`` is ``qkdjax.run(...)`` (the cube assembled in memory, not written), ``zarr`` is ``qkdjax.run(...,
output.format=zarr, write=True)`` (each chunk written to its region of a store as it is computed); ``finalize``
verifies that store (every chunk file against its checksum) and consolidates it again; ``reach`` then opens it
lazily (Dask, after the same verification) and computes the maximum reach of every design, the README's analysis. The
study is the default one (distance x 4 attenuations x 5 efficiencies, infinite decoys), with as many distances as
make N points. Times are end to end (Hydra compose, compilation, about a second, and for Zarr the writes).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import device_line

POINTS_PER_DISTANCE = 20  # sweeps/default.yaml: 4 attenuations x 5 efficiencies


def overrides(points: float, chunk_size: int) -> tuple[str, ...]:
    distances = round(points / POINTS_PER_DISTANCE)
    return (f"link.distance_km=${{linspace:0,250,{distances}}}", "protocol.decoy=infinite", f"sweep.chunk_size={chunk_size}")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def child(mode: str, points: float, chunk_size: int, folder: str) -> dict:
    """One measurement, in this (fresh) process."""
    import dask

    import qkdjax
    from qkdjax.zarr_store import finalize, open_store

    args = overrides(points, chunk_size)
    start = time.perf_counter()
    if mode == "memory":
        cube = qkdjax.run(*args)
    elif mode == "zarr":
        cube = qkdjax.run(*args, "output.format=zarr", f"output.dir={folder}", "output.name=bench", write=True)
    elif mode == "finalize":
        finalize(Path(folder) / "bench.zarr")
        seconds = time.perf_counter() - start
        cube = open_store(Path(folder) / "bench.zarr", verify=False)
        return {"points": cube.key_rate.size, "seconds": seconds, "peak_rss_gib": peak_rss_gib()}
    else:  # reach: the analysis of a store written by mode zarr, lazily
        cube = qkdjax.open_cube(Path(folder) / "bench.zarr")
        with dask.config.set(scheduler="threads"):
            reach = cube["link.distance_km"].where(cube.key_rate > 0).max("link.distance_km").compute()
        assert reach.notnull().all()
    seconds = time.perf_counter() - start
    return {"points": cube.key_rate.size, "seconds": seconds, "peak_rss_gib": peak_rss_gib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=float, nargs="+", default=[1e7])
    parser.add_argument(
        "--modes", nargs="+", default=["memory", "zarr", "finalize", "reach"], choices=["memory", "zarr", "finalize", "reach"]
    )
    parser.add_argument("--chunk-size", type=int, default=262144)
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temporary folder, removed)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "POINTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="qkdjax-bench-")
    if args.child:
        print(json.dumps(child(args.child[0], float(args.child[1]), args.chunk_size, folder)))
        return
    print(device_line())
    print(f"{'points':>10} {'mode':>7} {'seconds':>8} {'points/s':>10} {'peak RSS GiB':>12}")
    try:
        for points in args.points:
            for mode in args.modes:
                command = [sys.executable, __file__, "--child", mode, str(points), "--chunk-size", str(args.chunk_size), "--dir", folder]
                result = subprocess.run(command, capture_output=True, text=True, check=True)
                row = json.loads(result.stdout.strip().splitlines()[-1])
                rate = row["points"] / row["seconds"]
                print(f"{row['points']:>10.3g} {mode:>7} {row['seconds']:>8.1f} {rate:>10.3e} {row['peak_rss_gib']:>12.2f}", flush=True)
            shutil.rmtree(Path(folder) / "bench.zarr", ignore_errors=True)
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
