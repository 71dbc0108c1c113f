"""Throughput of the Monte Carlo samplers against NumPy's vectorised equivalents, after compilation.

Usage: python benchmarks/bench_samplers.py [--blocks 200000] [--samples 4000000] [--repeat 5]

1. block counts: ``qkdjax.montecarlo.fluctuations.sample_multinomial`` (12 cells, block sizes 1e4 .. 1e11 pulses,
   the cell probabilities of a decoy-BB84 link at 50 km) vmapped over ``--blocks`` keys, against
   ``Generator.multinomial`` on the same blocks and against the chain of ``jax.random.binomial`` draws the
   sampler replaced;
2. fading: ``satellite.faded_transmittance`` (pointing miss and log-normal scintillation from a key's stream)
   against ``Generator.exponential`` + ``Generator.standard_normal`` through the same formula;
3. failure/repair times: the durations of ``qkdjax.network.availability`` (Weibull time to failure, log-normal
   time to repair, one uniform each) against ``Generator.weibull`` and ``Generator.lognormal``.
Each pair's means must agree within 5 standard errors before a figure is printed. Under each, ``floor`` lines
time the same program with less arithmetic (no variate: the uniforms and, for block counts, the loop over cells;
then each of the block sampler's two branches alone): what bounds the ratio to NumPy on this machine.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from timing import device_line, timed

from qkdjax.montecarlo.fluctuations import _cornish_fisher, _inverted, sample_multinomial
from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.network.availability import Reliability, duration_laws, standard_variates
from qkdjax.physics.satellite import Fading, faded_transmittance

CELLS = np.array([3e-3, 1e-4, 2e-5, 5e-5, 1e-6, 3e-7] * 2) * 0.25
FADING = Fading(transmittance_without_pointing=1e-3, beam_radius_m=2.0, miss_sigma_m=0.8, scintillation_index=0.3)
MTBF_H, SHAPE, MTTR_H, LOG_SIGMA = 8760.0, 1.5, 8.0, 0.8


def binomial_chain(key, total, probs):
    """The replaced sampler: the multinomial as 12 conditional ``jax.random.binomial`` draws."""
    conditional = probs / (1.0 - jnp.concatenate([jnp.zeros(1), jnp.cumsum(probs)[:-1]]))

    def draw(remaining, inputs):
        count = jax.random.binomial(inputs[0], remaining, inputs[1])
        return remaining - count, count

    return jax.lax.scan(draw, total, (jax.random.split(key, probs.size), conditional))[1]


def agree(name, ours, theirs):
    ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
    error = np.sqrt(ours.var(0) / len(ours) + theirs.var(0) / len(theirs))
    assert np.all(np.abs(ours.mean(0) - theirs.mean(0)) <= 5 * error + 1e-12), f"qkdjax and NumPy disagree on {name}"


def report(name, unit, size, seconds, np_seconds, extra=""):
    print(
        f"{name:>22}: qkdjax {size / seconds:.3e} {unit}/s, numpy {size / np_seconds:.3e}/s, ratio {np_seconds / seconds:.1f}{extra}",
        flush=True,
    )


def floor(name, program, args, np_seconds, size, unit, *inputs):
    """Time ``program`` (a reduced version of a sampler) and print it against NumPy's time for the same work."""
    program(*inputs)
    _, seconds = timed(lambda: program(*inputs), args.repeat)
    print(f"{'floor':>22}: {name}: {size / seconds:.3e} {unit}/s = {np_seconds / seconds:.1f}x NumPy", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200_000)
    parser.add_argument("--samples", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(device_line())
    rng = np.random.default_rng(0)
    keys = jax.random.split(jax.random.key(0), args.blocks)

    pulses = np.round(10 ** rng.uniform(4, 11, args.blocks))
    probs = jnp.asarray(CELLS)
    ours = jax.jit(jax.vmap(lambda k, n: sample_multinomial(k, n, probs)))
    chain = jax.jit(jax.vmap(lambda k, n: binomial_chain(k, n, probs)))
    pvals = np.append(CELLS, 1 - CELLS.sum())
    counts, seconds = timed(lambda: ours(keys, pulses), args.repeat)
    theirs, np_seconds = timed(lambda: rng.multinomial(pulses.astype(np.int64), pvals), args.repeat)
    agree("block counts", np.asarray(counts) / pulses[:, None], theirs[:, :12] / pulses[:, None])
    chain(keys[:100], pulses[:100])
    _, chain_seconds = timed(lambda: chain(keys, pulses), 1)
    report("block counts", "blocks", args.blocks, seconds, np_seconds, f"; jax.random.binomial chain {args.blocks / chain_seconds:.3e}/s")
    print(f"{'':>22}  = {12 * args.blocks / seconds:.3e} sampled cells/s")
    reduced = {
        "loop and uniforms, no binomial": lambda u, trials, p: jnp.floor(u * trials * p),
        "Cornish-Fisher branch alone": lambda u, trials, p: _cornish_fisher(u, trials, p, trials * p),
        "inversion branch alone": _inverted,
    }
    for name, quantile in reduced.items():
        program = jax.jit(jax.vmap(lambda k, n, quantile=quantile: sample_multinomial(k, n, probs, quantile)))
        floor(name, program, args, np_seconds, args.blocks, "blocks", keys, pulses)

    n = args.samples
    fading = jax.jit(lambda key: faded_transmittance(stream_uniforms(key, (2, n)), FADING))

    def numpy_fading():
        miss_squared = 2 * FADING.miss_sigma_m**2 * rng.standard_exponential(n)
        log_variance = np.log1p(FADING.scintillation_index)
        scintillation = np.exp(np.sqrt(log_variance) * rng.standard_normal(n) - log_variance / 2)
        return FADING.transmittance_without_pointing * np.exp(-2 * miss_squared / FADING.beam_radius_m**2) * scintillation

    fading(keys[0])
    samples, seconds = timed(lambda: fading(keys[0]), args.repeat)
    reference, np_seconds = timed(numpy_fading, args.repeat)
    agree("fading", samples[:, None], reference[:, None])
    report("fading", "samples", n, seconds, np_seconds)
    floor("the two uniforms alone", jax.jit(lambda key: jnp.prod(stream_uniforms(key, (2, n)), 0)), args, np_seconds, n, "samples", keys[0])

    reliability = Reliability(mtbf_h=MTBF_H, failure_shape=SHAPE, mttr_h=MTTR_H, repair_log_sigma=LOG_SIGMA)
    reliability = jax.tree.map(lambda value: jnp.asarray([value]), reliability)
    laws = duration_laws(reliability)  # [0] time to failure, [1] time to repair, each shaped [1]
    durations = jax.jit(lambda key: laws.duration_h(*standard_variates(stream_uniforms(key, (2, n // 2)))))  # [law, n/2]

    def numpy_durations():
        eta = float(laws.scale_h[0, 0])
        return np.stack([eta * rng.weibull(SHAPE, n // 2), MTTR_H * rng.lognormal(-(LOG_SIGMA**2) / 2, LOG_SIGMA, n // 2)])

    durations(keys[0])
    times, seconds = timed(lambda: durations(keys[0]), args.repeat)
    reference, np_seconds = timed(numpy_durations, args.repeat)
    agree("failure/repair times", times.T, reference.T)
    report("failure/repair times", "durations", n, seconds, np_seconds)
    floor("the uniforms alone", jax.jit(lambda key: stream_uniforms(key, (2, n // 2))), args, np_seconds, n, "durations", keys[0])


if __name__ == "__main__":
    main()
