"""Gaussian-modulated coherent-state CV-QKD (GG02) with trusted detector noise: mutual information and Holevo bound.

F. Grosshans, P. Grangier, PRL 88, 057902 (2002); the entanglement-based picture and closed forms of J. Lodewyck
et al., PRA 76, 042305 (2007), Sec. II and Appendix, as collected by F. Laudenbach et al., Adv. Quantum Technol. 1,
1800011 (2018), Sec. 4 ("Laudenbach 2018"). Everything in shot-noise units (SNU, vacuum variance 1), per symbol.

Alice's modulation variance ``V_A`` makes her half of the equivalent two-mode squeezed state ``V = V_A + 1``. The
channel has transmittance ``T`` and excess noise ``xi`` referred to its input, so Bob's mode before his detector
has variance ``T (V_A + xi) + 1``; the noise it adds, referred to the input, is ``chi_line = 1/T - 1 + xi``. Bob's
detector (efficiency ``eta``, electronic noise ``v_el``) adds ``chi_hom = (1 - eta + v_el) / eta`` (homodyne) or
``chi_het = (2 - eta + 2 v_el) / eta`` (heterodyne, one quadrature's share of the second beam splitter's vacuum),
referred to its input; ``chi_tot = chi_line + chi_det / T``. The detector's noise is trusted: Eve holds the
purification of the channel only (Lodewyck 2007, Fig. 2). Reverse reconciliation:

    I_AB = (d/2) log2[(V + chi_tot) / (1 + chi_tot)],   d = 1 (homodyne), 2 (heterodyne),
    chi_BE = G[(l1 - 1)/2] + G[(l2 - 1)/2] - G[(l3 - 1)/2] - G[(l4 - 1)/2],   G(x) = (x+1) log2(x+1) - x log2 x,

with ``l1, l2`` the symplectic eigenvalues of Alice and Bob's state and ``l3, l4`` those of Alice's and the
detector's modes given Bob's measurement (the fifth is 1):

    l1,2^2 = [A +- sqrt(A^2 - 4B)] / 2,   A = V^2 (1 - 2T) + 2T + T^2 (V + chi_line)^2,   B = T^2 (V chi_line + 1)^2,
    l3,4^2 = [C +- sqrt(C^2 - 4D)] / 2,

    homodyne:   C = [V sqrt(B) + T (V + chi_line) + A chi_hom] / [T (V + chi_tot)],
                D = sqrt(B) (V + sqrt(B) chi_hom) / [T (V + chi_tot)],
    heterodyne: C = [A chi_het^2 + B + 1 + 2 chi_het (V sqrt(B) + T (V + chi_line)) + 2T (V^2 - 1)] / [T (V + chi_tot)]^2,
                D = [(V + sqrt(B) chi_het) / (T (V + chi_tot))]^2

(Lodewyck 2007, Eqs. (A1)-(A7); Laudenbach 2018, Eqs. (27)-(38)). ``tests/test_cv_qkd.py`` checks them against the
symplectic spectra of the covariance matrices, conditioned on Bob's outcome, computed from scratch.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import xlogy

from qkdjax.numerics import safe_sqrt

QUADRATURES = {"homodyne": 1, "heterodyne": 2}


def entropy_g(x):
    """von Neumann entropy in bits of a thermal state with ``x >= 0`` mean photons: ``(x+1) log2(x+1) - x log2 x``."""
    x = jnp.maximum(x, 0.0)
    return (xlogy(x + 1.0, x + 1.0) - xlogy(x, x)) / jnp.log(2.0)


def _eigenvalue_pair(a, b):
    """The two symplectic eigenvalues ``nu`` with ``nu^2 = [a +- sqrt(a^2 - 4b)] / 2``, as ``nu``, each >= 1 up to
    rounding (clipped: a pure mode has entropy 0). The smaller is ``b / (larger)``: no cancellation."""
    larger_squared = (a + safe_sqrt(a * a - 4.0 * b)) / 2.0
    smaller_squared = b / larger_squared
    return jnp.maximum(jnp.sqrt(larger_squared), 1.0), jnp.maximum(jnp.sqrt(smaller_squared), 1.0)


def detector_noise(efficiency, electronic_noise_snu, measurement: str):
    """Noise the detector adds referred to its input, ``chi_hom`` or ``chi_het`` (SNU)."""
    if measurement == "homodyne":
        return (1.0 - efficiency + electronic_noise_snu) / efficiency
    return (2.0 - efficiency + 2.0 * electronic_noise_snu) / efficiency


def mutual_information(modulation_variance_snu, transmittance, excess_noise_snu, efficiency, electronic_noise_snu, measurement):
    """Alice-Bob mutual information ``I_AB`` in bits per symbol; ``log1p`` keeps it exact at small signal-to-noise."""
    chi_tot = 1.0 / transmittance - 1.0 + excess_noise_snu + detector_noise(efficiency, electronic_noise_snu, measurement) / transmittance
    snr = modulation_variance_snu / (1.0 + chi_tot)
    return QUADRATURES[measurement] / 2.0 * jnp.log1p(snr) / jnp.log(2.0)


def holevo_bound(modulation_variance_snu, transmittance, excess_noise_snu, efficiency, electronic_noise_snu, measurement):
    """Eve's Holevo information on Bob's data ``chi_BE`` in bits per symbol (reverse reconciliation, trusted
    detector), and its rounding error: ``chi_BE`` is a difference of entropies, so a key below about 1e-16 of their
    size (at ``T < 1e-12``) is not resolved in float64."""
    before, after = _eve_entropies(modulation_variance_snu, transmittance, excess_noise_snu, efficiency, electronic_noise_snu, measurement)
    return jnp.maximum(before - after, 0.0), 64.0 * jnp.finfo(jnp.float64).eps * (before + after)


def _eve_entropies(modulation_variance_snu, transmittance, excess_noise_snu, efficiency, electronic_noise_snu, measurement):
    """``(S(E), S(E | Bob's data))`` in bits: ``G(l1) + G(l2)`` and ``G(l3) + G(l4)``."""
    v = modulation_variance_snu + 1.0
    t = transmittance
    chi_line = 1.0 / t - 1.0 + excess_noise_snu
    chi_det = detector_noise(efficiency, electronic_noise_snu, measurement)
    chi_tot = chi_line + chi_det / t
    a = v * v * (1.0 - 2.0 * t) + 2.0 * t + t * t * (v + chi_line) ** 2
    sqrt_b = t * (v * chi_line + 1.0)
    b = sqrt_b**2
    denominator = t * (v + chi_tot)
    if measurement == "homodyne":
        c = (v * sqrt_b + t * (v + chi_line) + a * chi_det) / denominator
        d = sqrt_b * (v + sqrt_b * chi_det) / denominator
    else:
        c = (a * chi_det**2 + b + 1.0 + 2.0 * chi_det * (v * sqrt_b + t * (v + chi_line)) + 2.0 * t * (v * v - 1.0)) / denominator**2
        d = ((v + sqrt_b * chi_det) / denominator) ** 2
    l1, l2 = _eigenvalue_pair(a, b)
    l3, l4 = _eigenvalue_pair(c, d)
    return sum(entropy_g((nu - 1.0) / 2.0) for nu in (l1, l2)), sum(entropy_g((nu - 1.0) / 2.0) for nu in (l3, l4))
