"""Finite-key decoy-state BB84 with three intensities: the concise bounds of C. C.-W. Lim, M. Curty, N. Walenta,
F. Xu, H. Zbinden, Phys. Rev. A 89, 022307 (2014) ("Lim 2014" below).

Alice sends intensity ``k`` in {mu1 > mu2 + mu3, mu3 >= 0} with probability ``p_k`` and picks the key basis X
with probability ``q_x`` (Bob likewise); the block ends after ``n_X`` matched X-basis detections. From the
detections ``n_{B,k}`` and bit errors ``m_{B,k}`` per basis ``B`` and intensity ``k`` the estimator bounds the
vacuum and single-photon detections in X, the single-photon phase-error rate from Z, and returns the key
length (Lim 2014, Eq. (1)):

    l = floor( s_X0 + s_X1 - s_X1 h(phi_X) - lambda_EC - 6 log2(21 / eps_sec) - log2(2 / eps_cor) )

with ``lambda_EC = n_X f_EC h(m_X / n_X)`` (printed without the factor ``n_X`` in the paper, see
shared/reference/lim_2014.json), or at least Tomamichel et al.'s finite-size leakage (``ec_leakage``). Beyond
the paper, as options of the protocol: the confidence bounds on the decoy counts (``finite_key_bound``,
``qkdjax.tail_bounds``), ``v_Z1`` capped at the observed ``m_Z``, blocks of sent pulses, and basis choices that
depend on the intensity and the party (each basis then uses the intensity probabilities given that basis,
``basis_intensity_probs``). The same function serves expected counts (the analytic finite-key rate) and
sampled counts (a deployed system's estimate in the Monte Carlo). Counts are float64 arrays over the three
intensities ``[mu1, mu2, mu3]``; everything is per grid point and vmappable.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from qkdjax.numerics import binary_entropy, safe_divide
from qkdjax.physics.source import poisson_photon_prob
from qkdjax.tail_bounds import binomial_quantile, count_bounds, sampling_deviation

BOUND_COUNT = 21  # Lim 2014 splits eps_sec over 21 estimates (each bound holds except with eps_sec / 21)
EPS_SEC_ITERATIONS = 8  # fixed-point steps for eps_sec = kappa * l; l depends on eps_sec only logarithmically


class BlockCounts(NamedTuple):
    """Detections and bit errors per intensity in each matched basis of one block."""

    detections_x: jax.Array
    errors_x: jax.Array
    detections_z: jax.Array
    errors_z: jax.Array


class FiniteKey(NamedTuple):
    """The estimator's result for one block."""

    key_length: jax.Array  # bits, >= 0; 0 when the block aborts
    eps_sec: jax.Array
    vacuum_detections_x: jax.Array  # s_X0 lower bound
    single_photon_detections_x: jax.Array  # s_X1 lower bound
    phase_error: jax.Array  # phi_X upper bound
    qber_x: jax.Array  # observed m_X / n_X
    aborted: jax.Array  # QBER above qber_abort or no positive key
    length_margin: jax.Array  # Eq. (1) before rounding and clipping (negative: no key); smooth, for optimisers


def block_counts(pulses, matched, probs, gain, error_gain) -> BlockCounts:
    """Expected counts of ``pulses`` pulses: ``n_{B,k} = N p_k w_{B,k} R_k``, ``m_{B,k} = N p_k w_{B,k} e_k``.

    ``matched = (w_X, w_Z)``: the probability that both parties pick basis X (Z) for a pulse of each intensity,
    a number (``q_x^2``, ``(1 - q_x)^2`` in Lim 2014) or one per intensity; ``gain``/``error_gain`` are the
    per-pulse detection and error probabilities per intensity (Lim 2014, Sec. IV: ``R_k`` and ``e_k``), or their
    averages over the pulses of the block.
    """
    per_intensity = pulses * probs
    x, z = matched[0] * per_intensity, matched[1] * per_intensity
    return BlockCounts(x * gain, x * error_gain, z * gain, z * error_gain)


def expected_block_counts(protocol, probs, gain, error_gain) -> tuple[BlockCounts, jax.Array]:
    """Expected counts of the ``protocol``'s block and the pulses ``N`` it takes: a block of ``n_X =
    protocol.block_size`` key-basis detections, ``N = n_X / sum_k p_k w_{X,k} R_k`` (Lim 2014, Fig. 1), or of ``N =
    block_size`` sent pulses (``block_size_unit = "pulses"``: a fixed acquisition time, as a pass or a system with
    fixed frames has). ``w_B`` is built afresh for each use, as the uniform analysis always did (its gradients,
    and so the optimiser's path, stay bit for bit).
    """
    if protocol.block_size_unit == "pulses":
        pulses = protocol.block_size
    elif jnp.ndim(protocol.matched_bases()[0]) == 0:
        pulses = protocol.block_size / (protocol.matched_bases()[0] * jnp.dot(probs, gain))
    else:
        pulses = protocol.block_size / jnp.dot(probs * protocol.matched_bases()[0], gain)
    return block_counts(pulses, protocol.matched_bases(), probs, gain, error_gain), pulses


def basis_intensity_probs(probs, matched):
    """The intensity probabilities given each matched basis, ``p_{k|B} = p_k w_{B,k} / sum_j p_j w_{B,j}``.

    Lim 2014's decoy bounds hold within a basis with the intensity statistics of that basis; where the basis
    choice does not depend on the intensity (a number ``w_B``) they are ``p_k`` in both.
    """
    if jnp.ndim(matched[0]) == 0:
        return probs, probs
    return tuple(probs * w / jnp.dot(probs, w) for w in matched)


def _tau(n, intensity, probs):
    """Probability that Alice sends ``n`` photons, ``tau_n = sum_k p_k e^-k k^n / n!`` (Lim 2014, Eq. (2))."""
    return jnp.dot(probs, poisson_photon_prob(float(n), intensity))


def _corrected(counts, intensity, probs, eps, bound):
    """``n_k^{-/+} = e^k / p_k * (bounds on the expected count of intensity k)``, with the ``bound`` of
    ``qkdjax.tail_bounds`` (Lim 2014: ``n_k -/+ delta(n, eps)``)."""
    lower, upper = count_bounds(counts, eps, bound)
    scale = jnp.exp(intensity) / probs
    return scale * lower, scale * upper


def vacuum_and_single_photon_lower(counts, intensity, probs, eps, bound):
    """Lower bounds ``s_0``, ``s_1`` on vacuum and single-photon detections in one basis (Lim 2014, Eqs. (2)-(3))."""
    mu1, mu2, mu3 = intensity
    lower, upper = _corrected(counts, intensity, probs, eps, bound)
    tau0, tau1 = _tau(0, intensity, probs), _tau(1, intensity, probs)
    s0 = jnp.maximum(tau0 * (mu2 * lower[2] - mu3 * upper[1]) / (mu2 - mu3), 0.0)
    s1 = tau1 * mu1 * (lower[1] - upper[2] - (mu2**2 - mu3**2) / mu1**2 * (upper[0] - s0 / tau0))
    s1 = s1 / (mu1 * (mu2 - mu3) - mu2**2 + mu3**2)
    return s0, jnp.maximum(s1, 0.0)


def single_photon_errors_upper(errors, intensity, probs, eps, bound):
    """Upper bound ``v_1`` on bit errors of single-photon detections in one basis (Lim 2014, Eq. (4))."""
    _, mu2, mu3 = intensity
    lower, upper = _corrected(errors, intensity, probs, eps, bound)
    return _tau(1, intensity, probs) * (upper[1] - lower[2]) / (mu2 - mu3)


def finite_size_leakage(n, qber, eps_cor):
    """Bits one-way error correction of ``n`` bits at bit-error rate ``Q`` must leak, to second order, for an
    ``eps_cor``-correct key: M. Tomamichel, J. Martinez-Mateo, C. Pacher, D. Elkouss, Quantum Inf. Process. 16,
    280 (2017), their approximation for the binary symmetric channel (as in SatQuMA's ``logM``),

        log M = n h(Q) + (n (1 - Q) - F^-1(eps_cor (1 + 1/sqrt(n)); n, 1 - Q) - 1) log((1 - Q) / Q)
                - log(n) / 2 - log(1 / eps_cor),

    ``F^-1`` the binomial quantile. Logarithms in bits throughout (SatQuMA takes the last three in nats).
    Zero where ``Q = 0`` (no errors to correct; the caller's ``f n h(Q)`` is then 0 too).
    """
    errors = qber > 0
    q = jnp.where(errors, jnp.minimum(qber, 0.5), 0.25)
    n = jnp.maximum(n, 1.0)
    quantile = binomial_quantile(eps_cor * (1.0 + 1.0 / jnp.sqrt(n)), n, 1.0 - q)
    leak = n * binary_entropy(q) + (n * (1.0 - q) - quantile - 1.0) * (jnp.log2(1.0 - q) - jnp.log2(q))
    leak = leak - 0.5 * jnp.log2(n) + jnp.log2(eps_cor)
    return jnp.where(errors, leak, 0.0)


def _stand_in(probs):
    """Whether every intensity is sent in a basis, and its probabilities with 1 standing in for those never sent."""
    return jnp.all(probs > 0), jnp.where(probs > 0, probs, 1.0)


def _key_length(counts: BlockCounts, intensity, basis_probs, protocol, eps_sec):
    eps = eps_sec / BOUND_COUNT
    # An intensity never sent in a basis leaves nothing to bound with (its n_k^+/- are -/+ infinite): s_0, s_1 >= 0
    # only, and no key. The bounds are evaluated with a stand-in probability there and s_0, s_1 set to 0 (v_Z1 then
    # goes unused: no s_Z1), so no inf or NaN arises, in values or gradients.
    x_probs, z_probs = basis_probs
    sent_x, probs_x = _stand_in(x_probs)
    # one basis' probabilities where both are the same (the uniform choice): one node, so its gradients sum as before
    sent_z, probs_z = (sent_x, probs_x) if z_probs is x_probs else _stand_in(z_probs)
    bound = protocol.finite_key_bound
    lower_x = vacuum_and_single_photon_lower(counts.detections_x, intensity, probs_x, eps, bound)
    s_x0, s_x1 = (jnp.where(sent_x, s, 0.0) for s in lower_x)
    s_z1 = jnp.where(sent_z, vacuum_and_single_photon_lower(counts.detections_z, intensity, probs_z, eps, bound)[1], 0.0)
    v_z1 = single_photon_errors_upper(counts.errors_z, intensity, probs_z, eps, bound)
    if protocol.single_photon_error_cap == "observed":  # single-photon errors are among the Z errors observed
        v_z1 = jnp.minimum(v_z1, jnp.sum(counts.errors_z))
    # no single-photon detections bound in Z: no phase-error estimate, the worst case (the key is 0 then anyway)
    z_error_rate = jnp.where(s_z1 > 0, safe_divide(jnp.maximum(v_z1, 0.0), s_z1), 0.5)
    phase_error = jnp.minimum(z_error_rate + sampling_deviation(eps, z_error_rate, s_z1, s_x1), 0.5)
    n_x = jnp.sum(counts.detections_x)
    qber = safe_divide(jnp.sum(counts.errors_x), n_x)
    leak = n_x * protocol.ec_efficiency * binary_entropy(qber)
    if protocol.ec_leakage == "tomamichel2017":
        leak = jnp.maximum(leak, finite_size_leakage(n_x, qber, protocol.eps_cor))
    margin = s_x0 + s_x1 * (1.0 - binary_entropy(phase_error)) - leak
    margin = margin - 6.0 * jnp.log2(BOUND_COUNT / eps_sec) - jnp.log2(2.0 / protocol.eps_cor)
    length = jnp.floor(margin)
    has_key = (s_z1 > 0) & (length > 0) & (qber <= protocol.qber_abort)
    return FiniteKey(jnp.where(has_key, length, 0.0), eps_sec, s_x0, s_x1, phase_error, qber, ~has_key, margin)


def finite_key(counts: BlockCounts, intensity, probs, protocol) -> FiniteKey:
    """Key length of one block from its counts, with a fixed ``eps_sec`` or ``eps_sec = kappa * l`` (Lim 2014, Fig. 1).

    For ``kappa`` the self-consistent ``eps_sec`` is found by iterating from ``kappa * n_X`` (above the answer,
    since ``l < n_X``): ``l`` grows with ``eps_sec`` only through logarithms, so the map contracts strongly. It
    iterates on the unrounded length, which keeps the key a continuous function of the parameters (optimisers
    follow it); rounding first would move ``eps_sec`` by a factor below ``1 + 1/l``, the key by < 9/l bits.
    """
    basis_probs = basis_intensity_probs(probs, protocol.matched_bases())
    if protocol.eps_sec_per_key_bit is None:
        return _key_length(counts, intensity, basis_probs, protocol, protocol.eps_sec)
    kappa = protocol.eps_sec_per_key_bit

    # Differentiating through the fixed point would only scale the gradient of l by 1 / (1 - 6 / (l ln 2)) (implicit
    # function theorem for eps_sec = kappa l): the direction optimisers follow is the same without it, and cheaper.
    # The loop sees no derivatives at all (its inputs are stopped too), so a gradient compiles no copy of it.
    fixed = jax.lax.stop_gradient((counts, intensity, basis_probs, protocol))

    def step(_, eps_sec):
        return kappa * jnp.maximum(_key_length(*fixed, eps_sec).length_margin, 1.0)

    eps_sec = jax.lax.fori_loop(0, EPS_SEC_ITERATIONS, step, kappa * jnp.maximum(jnp.sum(fixed[0].detections_x), 1.0))
    return _key_length(counts, intensity, basis_probs, protocol, eps_sec)
