"""Coincidences of a photon-pair source between two receivers: gain and error gain per pump pulse.

A source in the middle sends one photon of each pair to Alice and one to Bob (BBM92, C. H. Bennett, G. Brassard,
N. D. Mermin, PRL 68, 557 (1992)). Each side has a pair of threshold detectors behind its basis choice and
clicks with probability ``Y_0`` from background alone (its two detectors' dark and background counts, each
``d = 1 - sqrt(1 - Y_0)``); a double click is given a random bit (the squashing model), so a side's bit is
defined whenever it clicks. ``eta_A``, ``eta_B``: each arm's transmittance times its detectors' efficiency.
A coincidence is a click on both sides; ``gain`` is its probability per pulse and ``error_gain`` that of a
coincidence whose bits differ in matched bases. ``e_d`` is the misalignment.

Thermal statistics (single-mode SPDC, two polarisation modes; mean pair number ``mu = 2 lambda``,
``P(n) = (n + 1) lambda^n / (1 + lambda)^(n + 2)``): X. Ma, C.-H. F. Fung, H.-K. Lo, PRA 76, 012307 (2007)
("MFL 2007"), Eqs. (9)-(10),

    Q = 1 - (1 - Y_0A) x_A^2 - (1 - Y_0B) x_B^2 + (1 - Y_0A)(1 - Y_0B) z^2,
    E Q = Q / 2 - (1 - 2 e_d) (1 - d_A)(1 - d_B) K,      K = lambda (1 + lambda) eta_A eta_B x_A x_B z,

with ``x_A = 1/(1 + eta_A lambda)``, ``x_B = 1/(1 + eta_B lambda)``, ``z = 1/(1 + eta_A lambda + eta_B lambda -
eta_A eta_B lambda)`` (the generating function of ``P(n)`` at the no-click probabilities). Written literally
``Q`` is a difference of numbers near 1 and loses everything at 60-70 dB; since ``z - x_A x_B = K`` exactly, we
evaluate

    Q = P_A P_B + (1 - Y_0A)(1 - Y_0B)(z - x_A x_B)(z + x_A x_B),   P_A = Y_0A + (1 - Y_0A)(1 - x_A^2),

a sum of non-negative terms (``P_A``: Alice's side clicks), exact to rounding at any loss. Eq. (10) as printed
has no factor ``(1 - d_A)(1 - d_B)``: a dark count in a side's other detector turns a true click into a double
click (a random bit), which removes the correlation. With it, ``E Q`` at ``e_d = 0`` is the exact two-mode Fock-space
result (tests/test_bbm92.py sums it); without it the error gain is low by a fraction ~``Y_0`` of the correlated
part (6e-6 for MFL's parameters). MFL's ``e_d`` acts on the whole multi-pair state: ``E Q(e_d) = (1 - 2 e_d)
E Q(0) + e_d Q``, a depolarised pair with probability ``2 e_d``.

Poisson statistics (multimode SPDC, pairs in distinguishable modes; ``P(n) = e^-mu mu^n / n!``), derived here.
Pairs are independent; each is detected by both sides with probability ``eta_A eta_B`` (its bits agree except
with probability ``e_d``, per pair), by one side only, or by neither; a photon seen by one side only lands on a
random detector. With ``g_A = e^(-mu eta_A)``, the same for B, and ``g_AB = e^(-mu (eta_A + eta_B - eta_A
eta_B))`` the no-click probabilities of the photons,

    Q = P_A P_B + (1 - Y_0A)(1 - Y_0B) g_A g_B expm1(mu eta_A eta_B),   P_A = Y_0A + (1 - Y_0A)(1 - g_A).

For the error, write a side's bit as a spin ``s = +-1`` (0 for a random bit or no click): ``s 1{single click} =
1{no hit on detector 1} - 1{no hit on detector 0}``, so ``E[s_A s_B] = 2 (H_00 - H_01)`` with ``H_ab`` the
probability that Alice's detector ``a`` and Bob's ``b`` both stay dark. Poisson thinning gives ``H_00 = (1 - d_A)
(1 - d_B) exp(-mu [(eta_A + eta_B)/2 - eta_A eta_B (1 - e_d)/2])`` and ``H_01`` the same with ``e_d`` in place
of ``1 - e_d``; then ``E Q = (Q - E[s_A s_B]) / 2`` with

    E[s_A s_B] = 2 (1 - d_A)(1 - d_B) e^(-mu (eta_A + eta_B)/2) e^(mu eta_A eta_B e_d / 2) expm1(mu eta_A eta_B (1 - 2 e_d) / 2).

Both forms keep every term non-negative except the one subtraction in ``E Q``, whose terms differ by the
errors themselves (no catastrophic cancellation unless ``e_d`` and the noise vanish together).
"""

from __future__ import annotations

import jax.numpy as jnp

PAIR_STATISTICS = ("thermal", "poisson")


def _thermal(mean_pairs, eta_a, eta_b, y0_a, y0_b, misalignment):
    lam = mean_pairs / 2.0
    x_a, x_b = 1.0 / (1.0 + eta_a * lam), 1.0 / (1.0 + eta_b * lam)
    z = 1.0 / (1.0 + eta_a * lam + eta_b * lam * (1.0 - eta_a))
    correlated = lam * (1.0 + lam) * eta_a * eta_b * x_a * x_b * z  # z - x_A x_B, exactly
    # 1 - x^2 = eta lambda (2 + eta lambda) x^2, without cancellation
    click_a = y0_a + (1.0 - y0_a) * eta_a * lam * (2.0 + eta_a * lam) * x_a**2
    click_b = y0_b + (1.0 - y0_b) * eta_b * lam * (2.0 + eta_b * lam) * x_b**2
    gain = click_a * click_b + (1.0 - y0_a) * (1.0 - y0_b) * correlated * (z + x_a * x_b)
    dark_free = jnp.sqrt((1.0 - y0_a) * (1.0 - y0_b))  # (1 - d_A)(1 - d_B)
    return gain, 0.5 * gain - (1.0 - 2.0 * misalignment) * dark_free * correlated


def _poisson(mean_pairs, eta_a, eta_b, y0_a, y0_b, misalignment):
    both = mean_pairs * eta_a * eta_b
    g_a, g_b = jnp.exp(-mean_pairs * eta_a), jnp.exp(-mean_pairs * eta_b)
    click_a = y0_a + (1.0 - y0_a) * -jnp.expm1(-mean_pairs * eta_a)
    click_b = y0_b + (1.0 - y0_b) * -jnp.expm1(-mean_pairs * eta_b)
    gain = click_a * click_b + (1.0 - y0_a) * (1.0 - y0_b) * g_a * g_b * jnp.expm1(both)
    dark_free = jnp.sqrt((1.0 - y0_a) * (1.0 - y0_b))  # (1 - d_A)(1 - d_B)
    spin = 2.0 * dark_free * jnp.exp(-mean_pairs * (eta_a + eta_b) / 2.0 + both * misalignment / 2.0)
    spin = spin * jnp.expm1(both * (1.0 - 2.0 * misalignment) / 2.0)
    return gain, 0.5 * (gain - spin)


def coincidences(statistics: str, mean_pairs, eta_a, eta_b, y0_a, y0_b, misalignment):
    """``(gain, error_gain)`` per pulse of a pair source between two threshold receivers (module docstring):
    ``statistics`` thermal (MFL 2007, Eqs. (9)-(10)) or poisson; ``0 <= error_gain <= gain / 2`` up to rounding,
    clipped there."""
    model = _thermal if statistics == "thermal" else _poisson
    gain, error_gain = model(mean_pairs, eta_a, eta_b, y0_a, y0_b, misalignment)
    return gain, jnp.clip(error_gain, 0.0, 0.5 * gain)
