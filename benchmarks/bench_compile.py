"""Time to cube of every reference sweep, cold and warm, and how much of it is compilation.

Usage: python benchmarks/bench_compile.py [--sweeps lim_2014 satellite_pass ...] [--extra OVERRIDE ...]

Each sweep runs in two fresh processes sharing an empty persistent compilation cache (``compile_cache.dir``):
``cold`` compiles every program and stores it, ``warm`` loads them (what a rerun, or a sweep job after the first,
pays). ``compile s`` is JAX's own account of tracing, lowering and XLA compilation (its monitoring events), so
``cube s - compile s`` is Hydra, validation, evaluation and assembly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import device_line

SWEEPS = sorted(path.stem for path in (Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def child(sweep: str, cache: str, extra: list[str]) -> dict:
    """One run of ``sweep`` in this (fresh) process."""
    from jax import monitoring

    import qkdjax

    seconds = {"compile": 0.0}

    def record(event, duration, **_):
        if event in COMPILE_EVENTS:
            seconds["compile"] += duration

    monitoring.register_event_duration_secs_listener(record)
    start = time.perf_counter()
    qkdjax.run(f"sweep={sweep}", f"compile_cache.dir={cache}", *extra)
    return {"seconds": time.perf_counter() - start, "compile": seconds["compile"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", nargs="+", default=SWEEPS, choices=SWEEPS, metavar="SWEEP")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every run")
    parser.add_argument("--child", nargs=2, metavar=("SWEEP", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.extra)))
        return
    print(device_line())
    print(f"{'sweep':>24} {'cold cube s':>11} {'compile s':>9} {'warm cube s':>11} {'compile s':>9}")
    totals = [0.0, 0.0, 0.0, 0.0]
    for sweep in args.sweeps:
        with tempfile.TemporaryDirectory(prefix="qkdjax-cache-") as cache:
            command = [sys.executable, __file__, "--child", sweep, cache, "--extra", *args.extra]
            runs = [json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1]) for _ in "cw"]
        figures = [runs[0]["seconds"], runs[0]["compile"], runs[1]["seconds"], runs[1]["compile"]]
        totals = [t + f for t, f in zip(totals, figures)]
        print(f"{sweep:>24} " + " ".join(f"{f:>{w}.1f}" for f, w in zip(figures, (11, 9, 11, 9))), flush=True)
    print(f"{'all':>24} " + " ".join(f"{f:>{w}.1f}" for f, w in zip(totals, (11, 9, 11, 9))))


if __name__ == "__main__":
    main()
