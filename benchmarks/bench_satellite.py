"""Throughput of the satellite-pass turbulence Monte Carlo: passes x time steps x fading samples per second.

Usage: python benchmarks/bench_satellite.py [--passes 64] [--samples 1000]

1. The fading core, against NumPy: for every pass (max elevations 20-90 degrees of the SatQuMA downlink with
   1 urad pointing jitter and HV5/7 turbulence), time step (qkdjax.scenarios.satellite_pass.PASS_TIME_STEPS) and sample, draw the
   pointing miss and the log-normal scintillation, and turn the transmittance into the pass-averaged detection
   and error probabilities of the three intensities (what each Monte Carlo pass feeds to its finite-key block).
   The per-step fading statistics come from qkdjax for both (deterministic, not timed); the NumPy version
   (numpy.random.Generator) is written here independently.
2. The whole pass study end to end (qkdjax.run of sweeps/satellite_pass.yaml with --samples trials): the
   same samples plus count sampling and the finite-key estimator per pass, and the key per day.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from timing import device_line, timed

import qkdjax
from qkdjax.cli import compose_config
from qkdjax.config import parse_grid
from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.parameters import build_params
from qkdjax.physics import satellite
from qkdjax.protocols.bb84_decoy import detection_statistics
from qkdjax.scenarios.satellite_pass import PASS_TIME_STEPS, pass_geometry


def pass_statistics(max_elevations_deg):
    """Params of the benchmark link and the fading statistics of every pass's steps, [passes, steps]."""
    grid = parse_grid(compose_config("sweep=satellite_pass", "link.pointing_jitter_urad=1.0", "link.receiver_radius_m=0.5")[0])
    axes = {a.name: a.values[0] for a in grid.numeric_axes}
    params = build_params({**grid.fixed, **grid.static, **axes})

    def one_pass(max_elevation_deg):
        elevation_deg, _step_s = pass_geometry(params.link, max_elevation_deg)
        table = satellite.diffraction_table(params.link)
        return jax.vmap(satellite.fading, (None, 0, None))(params.link, elevation_deg, table)

    return params, jax.jit(jax.vmap(one_pass))(jnp.asarray(max_elevations_deg))


def qkdjax_fading(params, statistics, key, samples):
    """Pass-averaged gains and error gains [passes, samples, intensity] from faded transmittances."""

    def one_sample(pass_statistics, sample_key):
        uniforms = stream_uniforms(sample_key, (2, PASS_TIME_STEPS))
        channels = satellite.faded_transmittance(uniforms, pass_statistics)
        gain, error_gain, *_ = jax.vmap(lambda channel: detection_statistics(params, channel))(channels)
        return gain.mean(0), error_gain.mean(0)

    def one_pass(pass_statistics, pass_key):
        return jax.vmap(one_sample, (None, 0))(pass_statistics, jax.random.split(pass_key, samples))

    keys = jax.random.split(key, statistics.beam_radius_m.shape[0])
    return jax.vmap(one_pass)(statistics, keys)


def numpy_fading(params, statistics, rng, samples):
    """The same computation with NumPy, written independently (qkdjax.physics.detector's model, non-paralysable dead time)."""
    s = {k: np.asarray(v)[:, None, :] for k, v in statistics._asdict().items()}  # [passes, 1, steps]
    shape = (s["beam_radius_m"].shape[0], samples, PASS_TIME_STEPS)
    miss_squared = 2 * s["miss_sigma_m"] ** 2 * rng.exponential(size=shape)
    log_variance = np.log1p(s["scintillation_index"])
    scintillation = np.exp(rng.normal(-log_variance / 2, np.sqrt(log_variance), size=shape))
    channel = s["transmittance_without_pointing"] * np.exp(-2 * miss_squared / s["beam_radius_m"] ** 2) * scintillation
    det, src, link = params.detector, params.source, params.link
    mu = np.array([src.mu_signal, src.mu_decoy, src.mu_weak])
    probs = np.array([src.p_signal, src.p_decoy, 1 - src.p_signal - src.p_decoy])
    background = -np.expm1(-link.background_rate_hz * link.detection_window_ns * 1e-9)
    p_dc = 1 - (1 - det.dark_count_prob) * (1 - background)
    signal = -np.expm1(-(channel * det.efficiency)[..., None] * mu)
    # two detectors, each with noise clicks p (dark counts, background, afterpulses p_ap D / 2), double clicks random
    p = p_dc + (1 - p_dc) * det.afterpulse_prob * (1 - (1 - p_dc) ** 2 * (1 - signal)) / 2
    click = 1 - (1 - p) ** 2 * (1 - signal)
    wrong_alone = (1 - p) * (p * (1 - signal) + det.misalignment * signal)  # the wrong detector clicks alone
    error = (p + (1 - p) * det.misalignment * signal + wrong_alone) / 2
    live = 1 / (1 + src.rep_rate_hz * (click @ probs) / 2 * det.dead_time_ns * 1e-9)
    return (click * live[..., None]).mean(2), (error * live[..., None]).mean(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(device_line())
    params, statistics = pass_statistics(np.linspace(20.0, 90.0, args.passes))
    work = args.passes * PASS_TIME_STEPS * args.samples
    run = jax.jit(lambda key: qkdjax_fading(params, statistics, key, args.samples))
    jax.block_until_ready(run(jax.random.key(0)))
    (gain, _), seconds = timed(lambda: run(jax.random.key(1)), args.repeat)
    (np_gain, _), np_seconds = timed(lambda: numpy_fading(params, statistics, np.random.default_rng(1), args.samples), args.repeat)
    # Different random streams: the pass-averaged gains must agree within their Monte Carlo spread.
    spread = np_gain.std(1) / np.sqrt(args.samples)
    assert np.all(np.abs(np.asarray(gain).mean(1) - np_gain.mean(1)) < 5 * spread + 1e-15), "qkdjax and NumPy disagree"
    print(
        f"fading core: {args.passes} passes x {PASS_TIME_STEPS} steps x {args.samples} samples = {work:.3g}: "
        f"qkdjax {work / seconds:.3e}/s, numpy {work / np_seconds:.3e}/s, ratio {np_seconds / seconds:.1f}"
    )
    overrides = ("sweep=satellite_pass", f"montecarlo.trials={args.samples}")
    cube = qkdjax.run(*overrides)  # compile
    _, seconds = timed(lambda: qkdjax.run(*overrides), 1)
    end_to_end = cube.key_per_pass.size * PASS_TIME_STEPS * args.samples
    print(
        f"pass study end to end: {cube.key_per_pass.size} passes x {PASS_TIME_STEPS} steps x {args.samples} trials "
        f"in {seconds:.1f} s: {end_to_end / seconds:.3e}/s"
    )


if __name__ == "__main__":
    main()
