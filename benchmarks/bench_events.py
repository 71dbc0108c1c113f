"""Throughput of the event-level decoy-BB84 simulator: pulses/s of both modes against plain NumPy.

Usage: python benchmarks/bench_events.py [--pulses 1e8] [--numpy-pulses 1e7] [--chunk-size N] [--impls threefry2x32 rbg]

The link is the default study's (conf/: InGaAs APDs without dead time, WCP decoy source, p_key_basis 0.5) over
50 km of 0.2 dB/km fibre. ``mode="pulses"`` is timed per key implementation at ``--pulses``; a NumPy version of the
same pulse-by-pulse simulation, written here independently (``numpy.random.Generator``, one draw per choice), at
``--numpy-pulses``. ``mode="clicks"`` is timed at 50 and 200 km, where its cost is per click: it reports effective
pulses/s. Every figure is the best of ``--repeat`` runs after compilation, and every result must first agree with
the analytic model (all z-scores of the counts below 5) before it is printed.
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from types import SimpleNamespace

import jax
import numpy as np
from timing import timed

from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.montecarlo.events import expected_counts, simulate_pulses
from qkdjax.sources.wcp_decoy import WCPDecoy

DETECTOR = ThresholdDetector(efficiency=0.1, dark_count_prob=6e-7, afterpulse_prob=0.04, dead_time_ns=0.0, misalignment=0.01)
SOURCE = WCPDecoy(rep_rate_hz=1e9, mu_signal=0.5, mu_decoy=0.1, mu_weak=0.0, p_signal=0.8, p_decoy=0.1)
P_KEY_BASIS = 0.5
PROTOCOL = SimpleNamespace(p_key_basis=P_KEY_BASIS)  # the one protocol field the event simulator reads


def transmittance(distance_km: float) -> float:
    return 10 ** (-0.2 * distance_km / 10)


def numpy_simulation(rng: np.random.Generator, channel: float, n_pulses: int, chunk_size: int):
    """Counts [sent, detections, errors] per cell (intensity, basis X/Z), drawn pulse by pulse with NumPy."""
    mu = np.array([SOURCE.mu_signal, SOURCE.mu_decoy, SOURCE.mu_weak])
    cumulative = np.cumsum([SOURCE.p_signal, SOURCE.p_decoy])
    eta = channel * DETECTOR.efficiency
    p_dc, p_ap, e_mis = DETECTOR.dark_count_prob, DETECTOR.afterpulse_prob, DETECTOR.misalignment
    p_noise = p_dc + (1 - p_dc) * p_ap * (1 - (1 - p_dc) ** 2 * np.exp(-eta * mu)) / 2  # afterpulses: noise clicks
    histogram = np.zeros(7 * 9, np.int64)  # cell (6 sifted + mismatched) x detections (0-2) x errors (0-2)
    for start in range(0, n_pulses, chunk_size):
        size = min(chunk_size, n_pulses - start)

        def draw(p):
            return rng.random(size) < p

        k = np.searchsorted(cumulative, rng.random(size), side="right")
        alice_x, bob_x = draw(P_KEY_BASIS), draw(P_KEY_BASIS)
        signal = draw(-np.expm1(rng.poisson(mu[k]) * np.log1p(-eta)))
        dark_right, dark_wrong, misaligned = draw(p_noise[k]), draw(p_noise[k]), draw(e_mis)
        coin = draw(0.5)
        click_right = (signal & ~misaligned) | dark_right
        click_wrong = (signal & misaligned) | dark_wrong
        detections = (click_right | click_wrong).astype(np.int64)
        errors = (click_wrong & (~click_right | coin)).astype(np.int64)
        cell = np.where(alice_x == bob_x, 2 * k + ~alice_x, 6)
        histogram += np.bincount((cell * 3 + detections) * 3 + errors, minlength=histogram.size)
    per_cell = histogram.reshape(7, 3, 3)[:6]
    value = np.arange(3)
    counts = per_cell.sum((1, 2)), (per_cell * value[:, None]).sum((1, 2)), (per_cell * value).sum((1, 2))
    return tuple(c.reshape(3, 2) for c in counts)  # sent, detections, errors


def max_abs_z(counts, channel: float, n_pulses: int) -> float:
    """Largest |z| of the sent, detection and error counts against the analytic model (Poisson errors, sqrt(mean))."""
    expected = expected_counts(SOURCE, DETECTOR, PROTOCOL, channel, float(n_pulses))
    z = [
        (np.asarray(observed) - np.asarray(mean)) / np.sqrt(np.maximum(np.asarray(mean), 1.0))
        for observed, mean in zip(counts, expected[:3])
    ]
    return float(np.abs(z).max())


def checked(counts, channel: float, n_pulses: int):
    z = max_abs_z(counts, channel, n_pulses)
    if z >= 5:
        raise AssertionError(f"counts disagree with the analytic model: max |z| = {z:.1f}")
    return z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulses", type=float, default=1e8)
    parser.add_argument("--numpy-pulses", type=float, default=1e7)
    parser.add_argument("--chunk-size", type=int, default=2**20)
    parser.add_argument("--impls", nargs="+", default=["threefry2x32", "rbg"], help="jax.random key implementations")
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many timed runs")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores; chunk_size {args.chunk_size}")

    def simulate(key, distance_km, n_pulses, mode):
        channel = transmittance(distance_km)
        run = partial(simulate_pulses, key, SOURCE, DETECTOR, PROTOCOL, channel, n_pulses, chunk_size=args.chunk_size, mode=mode)
        jax.block_until_ready(run())  # compile
        counts, seconds = timed(run, args.repeat)
        return seconds, checked(counts[:3], channel, n_pulses), int(counts.detections.sum())

    n = int(args.pulses)
    jax_rates = {}
    for impl in args.impls:
        seconds, z, _ = simulate(jax.random.key(0, impl=impl), 50.0, n, "pulses")
        jax_rates[impl] = n / seconds
        print(f"pulses mode, {impl:>13} key, {n:.0e} pulses at 50 km: {n / seconds:.3e} pulses/s (max |z| {z:.1f})")

    n_numpy = int(args.numpy_pulses)
    channel = transmittance(50.0)
    counts, seconds = timed(lambda: numpy_simulation(np.random.default_rng(0), channel, n_numpy, args.chunk_size), args.repeat)
    numpy_rate = n_numpy / seconds
    z = checked(counts, channel, n_numpy)
    ratios = ", ".join(f"{impl} {rate / numpy_rate:.1f}x" for impl, rate in jax_rates.items())
    print(f"numpy (PCG64), {n_numpy:.0e} pulses at 50 km: {numpy_rate:.3e} pulses/s (max |z| {z:.1f})")
    print(f"pulses mode / numpy: {ratios}")

    key = jax.random.key(0, impl=args.impls[0])
    for distance_km, n_pulses in ((50.0, 10**11), (200.0, 10**13)):
        seconds, z, clicks = simulate(key, distance_km, n_pulses, "clicks")
        print(
            f"clicks mode, {n_pulses:.0e} pulses at {distance_km:g} km: {n_pulses / seconds:.3e} effective pulses/s, "
            f"{clicks / seconds:.3e} detections/s (max |z| {z:.1f})"
        )


if __name__ == "__main__":
    main()
