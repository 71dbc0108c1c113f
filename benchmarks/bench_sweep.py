"""Throughput of the asymptotic fibre decoy-BB84 sweep: qkdjax (jit + vmap, chunked) against plain NumPy.

Usage: python benchmarks/bench_sweep.py [--points 1e6 1e7] [--decoy infinite vacuum_weak] [--chunk-size N]

The default study's model (sweeps/default.yaml: InGaAs detectors, distance x attenuation x efficiency) is run at
the requested number of points, once to compile and then timed two ways: end to end through ``qkdjax.run``
(Hydra compose, validation, grid, cube; about half a second of it is Hydra) and the engine alone
(``run_grid`` on the parsed grid: device evaluation, transfer and cube assembly), against a hand-written
``jit(vmap(study))`` of the same study over the whole flat grid at once (its metrics brought to the host as NumPy
arrays: what the engine adds is chunking, gathering grid values and the cube); ``time ratio`` is the engine's
time over the hand-written program's, ``cores`` the engine's CPU seconds per second (on a CPU: cores kept busy). The NumPy version evaluates the
same formulas over the same grid, chunk by chunk, written here independently; all must agree (NumPy to 1e-9 of
the largest rate, the hand-written program too: XLA fuses the two programs differently) before any figure is printed.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from timing import device_line, timed

import qkdjax
from qkdjax.cli import compose_config
from qkdjax.config import parse_grid
from qkdjax.study import make_study
from qkdjax.sweep import categorical_choices, choice_study, run_grid

ATTENUATIONS = [0.16, 0.18, 0.2, 0.22]
EFFICIENCIES = [0.05, 0.1, 0.15, 0.2, 0.25]
# conf/detector/ingaas_apd.yaml, conf/source/wcp_decoy.yaml, conf/protocol/bb84_decoy.yaml
P_DC, P_AP, DEAD_NS, E_MIS = 6e-7, 0.04, 1000.0, 0.01
REP_HZ, MU, P_MU = 1e9, np.array([0.5, 0.1, 0.0]), np.array([0.8, 0.1, 0.1])
Q_KEY, F_EC = 0.5, 1.16


def h2(p):
    p = np.clip(p, 1e-300, 0.5)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def numpy_key_rate(distance, attenuation, efficiency, decoy):
    """Key rate in bit/s of the qkdjax default model, for flat arrays of grid values."""
    eta = efficiency * 10 ** (-attenuation * distance / 10)
    signal = -np.expm1(-np.outer(eta, MU))  # [points, intensity]
    detect = 2 * P_DC + (1 - 2 * P_DC) * signal
    click = detect * (1 + P_AP)
    error = P_DC + E_MIS * signal + P_AP * detect / 2
    live = 1 / (1 + REP_HZ * (click @ P_MU) / 2 * DEAD_NS * 1e-9)
    gain, error_gain = click * live[:, None], error * live[:, None]
    qber = error_gain[:, 0] / gain[:, 0]
    if decoy == "infinite":
        d1 = 2 * P_DC + (1 - 2 * P_DC) * eta
        y1 = d1 * (1 + P_AP) * live
        e1 = (P_DC + E_MIS * eta + P_AP * d1 / 2) * live / y1
    else:
        mu, nu, w = MU
        qe, eqe = gain * np.exp(MU), error_gain * np.exp(MU)
        y0 = np.maximum((nu * qe[:, 2] - w * qe[:, 1]) / (nu - w), 0)
        y1 = mu * (qe[:, 1] - qe[:, 2] - (nu**2 - w**2) / mu**2 * (qe[:, 0] - y0)) / (mu * (nu - w) - nu**2 + w**2)
        y1 = np.clip(y1, 0, 1)
        e1 = (eqe[:, 1] - eqe[:, 2]) / (nu - w) / y1
    rate = P_MU[0] * Q_KEY * (y1 * MU[0] * np.exp(-MU[0]) * (1 - h2(e1)) - F_EC * gain[:, 0] * h2(qber))
    return np.maximum(rate, 0) * REP_HZ


def numpy_sweep(distances, decoy, chunk_size):
    shape = (len(distances), len(ATTENUATIONS), len(EFFICIENCIES))
    out = np.empty(int(np.prod(shape)))
    axes = (np.asarray(distances), np.asarray(ATTENUATIONS), np.asarray(EFFICIENCIES))
    for start in range(0, out.size, chunk_size):
        index = np.unravel_index(np.arange(start, min(start + chunk_size, out.size)), shape)
        out[start : start + chunk_size] = numpy_key_rate(*(a[i] for a, i in zip(axes, index)), decoy)
    return out.reshape(shape)


def hand_written(grid):
    """``jit(vmap(study))`` over the flat grid (one categorical choice), and its inputs."""
    (choices,) = categorical_choices(grid)
    study = choice_study(make_study, grid, choices)
    mesh = np.meshgrid(*(a.values for a in grid.numeric_axes), indexing="ij")
    flat = {a.name: jnp.asarray(m.ravel()) for a, m in zip(grid.numeric_axes, mesh)}
    fixed = {name: jnp.float64(value) for name, value in grid.fixed.items()}
    program = jax.jit(jax.vmap(lambda values: study({**fixed, **values}, jax.random.key(0))))
    return lambda: {name: np.asarray(value) for name, value in program(flat).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--decoy", nargs="+", default=["infinite", "vacuum_weak"])
    parser.add_argument("--chunk-size", type=int, default=262144)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many timed runs")
    parser.add_argument("--skip-numpy", action="store_true", help="time qkdjax only (large GPU runs)")
    args = parser.parse_args()
    print(device_line())
    print(
        f"{'points':>10} {'decoy':>12} {'run() pt/s':>11} {'engine pt/s':>12} {'cores':>5} {'jit(vmap)':>11} {'time ratio':>10}"
        f" {'numpy pt/s':>11} {'engine/numpy':>12} {'compile s':>9}"
    )
    for points in args.points:
        n_distance = round(points / (len(ATTENUATIONS) * len(EFFICIENCIES)))
        distances = np.linspace(0.0, 250.0, n_distance)
        for decoy in args.decoy:
            overrides = (
                f"link.distance_km=${{linspace:0,250,{n_distance}}}",
                f"protocol.decoy={decoy}",
                f"sweep.chunk_size={args.chunk_size}",
            )
            _, first = timed(lambda: qkdjax.run(*overrides))
            cube, seconds = timed(lambda: qkdjax.run(*overrides), args.repeat)
            grid = parse_grid(compose_config(*overrides)[0])
            cpu_start = time.process_time()
            _, engine_seconds = timed(lambda: run_grid(make_study, grid, chunk_size=args.chunk_size, seed=0), 1)
            cores = (time.process_time() - cpu_start) / engine_seconds  # CPU seconds per second: cores kept busy
            _, engine_seconds = timed(lambda: run_grid(make_study, grid, chunk_size=args.chunk_size, seed=0), args.repeat)
            n = cube.key_rate.size
            program = hand_written(grid)
            program()
            metrics, hand_seconds = timed(program, args.repeat)
            reference = cube.key_rate.values.ravel()
            np.testing.assert_allclose(metrics["key_rate"], reference, rtol=1e-9, atol=1e-9 * reference.max())
            line = f"{n:>10.3g} {decoy:>12} {n / seconds:>11.3e} {n / engine_seconds:>12.3e} {cores:>5.2f}"
            line += f" {n / hand_seconds:>11.3e} {engine_seconds / hand_seconds:>10.2f}"
            if not args.skip_numpy:
                reference, np_seconds = timed(lambda: numpy_sweep(distances, decoy, args.chunk_size), args.repeat)
                np.testing.assert_allclose(cube.key_rate.values, reference, rtol=1e-9, atol=1e-9 * reference.max())
                line += f" {n / np_seconds:>11.3e} {np_seconds / engine_seconds:>12.1f}"
            print(line + f" {first - seconds:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
