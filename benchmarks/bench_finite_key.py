"""Throughput of the finite-key estimator (Lim et al., PRA 89, 022307 (2014)) and its Monte Carlo, against NumPy.

Usage: python benchmarks/bench_finite_key.py [--points 10000] [--trials 1000] [--bound hoeffding_lim2014]

Two figures, each after compilation (the estimator: best of ``--repeat`` runs):
1. estimator evaluations/s on expected counts over a ``--points`` grid (sweeps/lim_2014.yaml, distance x block
   size), end to end through the sweep engine;
2. Monte Carlo trials/s (one trial = a multinomial sample of a block's 12 observed counts + the estimator
   on them) over ``--points`` x ``--trials``.
The NumPy versions are written here independently (numpy.random.Generator.multinomial for the counts); the
expected-count key lengths must agree (to 1e-9, or the one bit of the floor) before any figure is printed.
``--bound`` picks ``protocol.finite_key_bound``; the NumPy versions exist for Lim's bounds only (the default).
"""

from __future__ import annotations

import argparse

import numpy as np
from timing import device_line, timed

from qkdjax.cli import compose_config
from qkdjax.config import parse_grid
from qkdjax.study import make_study
from qkdjax.sweep import run_grid
from qkdjax.tail_bounds import FINITE_KEY_BOUNDS

# sweeps/lim_2014.yaml
ETA_BOB, P_DC, P_AP, E_MIS, ALPHA = 0.1, 6e-7, 0.04, 0.005, 0.2
MU, PROBS, Q_X, F_EC, KAPPA, EPS_COR, QBER_ABORT = np.array([0.4, 0.2, 2e-4]), np.array([0.3, 0.35, 0.35]), 0.5, 1.16, 1e-15, 1e-15, 0.11


def h2(p):
    p = np.clip(p, 1e-300, 0.5)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def numpy_gains(distance_km, mu=MU):
    """Click and error probabilities per gate of Bob's threshold pair (qkdjax.physics.detector's model: an
    afterpulse is a noise click of one detector with probability P_AP D / 2, D the click probability without)."""
    eta = ETA_BOB * 10 ** (-ALPHA * distance_km / 10)
    signal = -np.expm1(-np.outer(eta, mu))
    no_afterpulse = P_DC * (2 - P_DC) + (1 - P_DC) ** 2 * signal
    noise = P_DC + (1 - P_DC) * P_AP * no_afterpulse / 2
    click = noise * (2 - noise) + (1 - noise) ** 2 * signal
    wrong = noise + (1 - noise) * E_MIS * signal + (1 - noise) * (noise * (1 - signal) + E_MIS * signal)
    return click, wrong / 2


def numpy_key_length(n_x, m_x, n_z, m_z, eps_sec, mu=MU, probs=PROBS, rounded=True):
    """Lim 2014 Eqs. (1)-(5) on counts shaped [..., intensity]; ``rounded=False``: before flooring and clipping."""
    eps = eps_sec / 21
    tau0, tau1 = probs @ np.exp(-mu), probs @ (mu * np.exp(-mu))
    mu1, mu2, mu3 = mu

    def bounds(counts):
        delta = np.sqrt(counts.sum(-1, keepdims=True) / 2 * np.log(1 / eps[..., None]))
        return np.exp(mu) / probs * (counts - delta), np.exp(mu) / probs * (counts + delta)

    def s01(counts):
        lo, hi = bounds(counts)
        s0 = np.maximum(tau0 * (mu2 * lo[..., 2] - mu3 * hi[..., 1]) / (mu2 - mu3), 0)
        s1 = tau1 * mu1 * (lo[..., 1] - hi[..., 2] - (mu2**2 - mu3**2) / mu1**2 * (hi[..., 0] - s0 / tau0))
        return s0, np.maximum(s1 / (mu1 * (mu2 - mu3) - mu2**2 + mu3**2), 0)

    s_x0, s_x1 = s01(n_x)
    _, s_z1 = s01(n_z)
    lo, hi = bounds(m_z)
    v_z1 = np.maximum(tau1 * (hi[..., 1] - lo[..., 2]) / (mu2 - mu3), 0)
    b = np.clip(np.divide(v_z1, s_z1, out=np.zeros_like(v_z1), where=s_z1 > 0), 1e-300, 0.5)
    c, d = np.maximum(s_z1, 1), np.maximum(s_x1, 1)
    with np.errstate(divide="ignore", over="ignore"):  # b = 0 where there is no key; gamma is then unused
        gamma = np.sqrt((c + d) * (1 - b) * b / (c * d * np.log(2)) * np.maximum(np.log2((c + d) / (c * d * (1 - b) * b * eps**2)), 0))
        phase = np.minimum(b + gamma, 0.5)
    total_x = n_x.sum(-1)
    qber = np.divide(m_x.sum(-1), total_x, out=np.zeros_like(total_x), where=total_x > 0)
    margin = s_x0 + s_x1 * (1 - h2(phase)) - total_x * F_EC * h2(qber) - 6 * np.log2(21 / eps_sec) - np.log2(2 / EPS_COR)
    if not rounded:
        return margin
    ell = np.floor(margin)
    return np.where((s_z1 > 0) & (ell > 0) & (qber <= QBER_ABORT), ell, 0.0)


def numpy_key_length_kappa(n_x, m_x, n_z, m_z, mu=MU, probs=PROBS):
    eps_sec = KAPPA * np.maximum(n_x.sum(-1), 1)
    for _ in range(8):  # the same fixed-point iteration as qkdjax, on the unrounded length
        eps_sec = KAPPA * np.maximum(numpy_key_length(n_x, m_x, n_z, m_z, eps_sec, mu, probs, rounded=False), 1)
    return numpy_key_length(n_x, m_x, n_z, m_z, eps_sec, mu, probs)


def numpy_expected(distance_km, block_size, mu=MU, probs=PROBS, q_x=Q_X):
    gain, error = numpy_gains(distance_km, mu)
    pulses = block_size / (q_x**2 * gain @ probs)
    per = pulses[:, None] * probs
    q_z = 1 - q_x
    return (q_x**2 * per * gain, q_x**2 * per * error, q_z**2 * per * gain, q_z**2 * per * error), pulses


def numpy_estimator(distance_km, block_size):
    counts, _ = numpy_expected(distance_km, block_size)
    return numpy_key_length_kappa(*counts)


def numpy_montecarlo(distance_km, block_size, trials, rng):
    gain, error = numpy_gains(distance_km)
    pulses = np.round(block_size / (Q_X**2 * gain @ PROBS))
    basis = np.array([Q_X**2, (1 - Q_X) ** 2])
    cells = (basis[None, :, None, None] * np.stack([gain - error, error], 1)[:, None] * PROBS).reshape(len(pulses), 12)
    pvals = np.concatenate([cells, 1 - cells.sum(1, keepdims=True)], 1)
    counts = rng.multinomial(pulses[:, None].astype(np.int64), pvals[:, None, :], size=(len(pulses), trials))[..., :12]
    (x_ok, x_err), (z_ok, z_err) = np.moveaxis(counts.reshape(*counts.shape[:2], 2, 2, 3), (2, 3), (0, 1)).astype(float)
    return numpy_key_length_kappa(x_ok + x_err, x_err, z_ok + z_err, z_err)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-numpy", action="store_true")
    parser.add_argument("--bound", choices=FINITE_KEY_BOUNDS, default=FINITE_KEY_BOUNDS[0])
    args = parser.parse_args()
    args.skip_numpy |= args.bound != FINITE_KEY_BOUNDS[0]
    print(device_line())
    n_distance = args.points // 10
    blocks = "${logspace:4,10,10}"
    overrides = ("sweep=lim_2014", f"link.distance_km=${{linspace:0,200,{n_distance}}}", f"protocol.block_size={blocks}")
    overrides += (f"protocol.finite_key_bound={args.bound}",)
    distance, block = (g.ravel() for g in np.meshgrid(np.linspace(0, 200, n_distance), np.logspace(4, 10, 10), indexing="ij"))

    for label, extra, unit in (("estimator", (), 1), ("Monte Carlo", (f"montecarlo.trials={args.trials}",), args.trials)):
        grid = parse_grid(compose_config(*overrides, *extra)[0])
        study_of = lambda choices: make_study(choices, trials=0 if unit == 1 else args.trials)
        run = lambda: run_grid(study_of, grid, chunk_size=262144, seed=0)
        run()  # compile
        cube, seconds = timed(run, args.repeat if unit == 1 else 1)  # a Monte Carlo run is long enough to time once
        evaluations = cube.key_rate.size * unit
        line = f"{label:>12}: {evaluations:.3g} evaluations, qkdjax {evaluations / seconds:.3e}/s"
        if not args.skip_numpy:
            if unit == 1:
                reference, np_seconds = timed(lambda: numpy_estimator(distance, block), args.repeat)
                np.testing.assert_allclose(cube.key_length.values.ravel(), reference, rtol=1e-9, atol=1.0)  # floor(): one bit
            else:
                rng = np.random.default_rng(0)
                _, np_seconds = timed(lambda: numpy_montecarlo(distance, block, args.trials, rng), 1)
            line += f", numpy {evaluations / np_seconds:.3e}/s, ratio {np_seconds / seconds:.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
