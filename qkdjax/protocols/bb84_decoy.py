"""Decoy-state BB84 with weak coherent pulses, asymptotic key rates.

Key rate (GLLP; D. Gottesman, H.-K. Lo, N. Lutkenhaus, J. Preskill, Quantum Inf. Comput. 4, 325 (2004)) in the
decoy-state form of X. Ma, B. Qi, Y. Zhao, H.-K. Lo, Phys. Rev. A 72, 012326 (2005), Eq. (1):

    R = p_signal q { Q_1 [1 - H2(e_1)] - f Q_mu H2(E_mu) }

with ``q`` the sifting factor, ``Q_mu``/``E_mu`` the gain and QBER of the signal intensity and ``Q_1 = Y_1 mu e^-mu``,
``e_1`` the single-photon gain and error rate, which the ``decoy`` method bounds from what Bob observes.
"""

import jax.numpy as jnp

from qkdjax.numerics import binary_entropy, safe_divide
from qkdjax.physics.source import multiphoton_prob, poisson_photon_prob

DECOY_METHODS = ("infinite", "vacuum_weak", "none")


def sifting_factor(p_key_basis):
    """Fraction of pulses kept after sifting when both parties pick the key basis with probability ``p``.

    Efficient BB84 (H.-K. Lo, H. F. Chau, M. Ardehali, J. Cryptology 18, 133 (2005)): both bases are kept and
    their errors estimated separately, so ``q = p^2 + (1-p)^2``; ``p = 1/2`` is standard BB84 (``q = 1/2``).
    Asymptotically both matched bases give key, so ``q`` is symmetric in ``p <-> 1 - p`` and any ``p`` in (0, 1)
    is valid; the finite-key analysis (``bb84_finite``) keeps only key-basis detections, ``p^2`` of the pulses.
    """
    return p_key_basis**2 + (1.0 - p_key_basis) ** 2


def vacuum_weak_bounds(intensity, gain, error_gain):
    """Lower bound on Y_1 and upper bound on e_1 from three intensities ``mu > nu + omega``, ``omega >= 0``.

    Ma, Qi, Zhao, Lo, Phys. Rev. A 72, 012326 (2005), Eqs. (34)-(35) for a vacuum weak intensity; the general
    weak intensity is the asymptotic limit of C. C.-W. Lim et al., Phys. Rev. A 89, 022307 (2014), Eqs. (2)-(4):

        Y_0 >= (nu Q_w e^w - w Q_nu e^nu) / (nu - w)
        Y_1 >= mu [Q_nu e^nu - Q_w e^w - (nu^2 - w^2)/mu^2 (Q_mu e^mu - Y_0)] / (mu (nu - w) - nu^2 + w^2)
        e_1 Y_1 <= (E_nu Q_nu e^nu - E_w Q_w e^w) / (nu - w)
    """
    mu, nu, w = intensity
    q_mu, q_nu, q_w = gain * jnp.exp(intensity)
    eq_nu, eq_w = (error_gain * jnp.exp(intensity))[1:]
    yield0 = jnp.maximum((nu * q_w - w * q_nu) / (nu - w), 0.0)
    yield1 = mu * (q_nu - q_w - (nu**2 - w**2) / mu**2 * (q_mu - yield0)) / (mu * (nu - w) - nu**2 + w**2)
    yield1 = jnp.clip(yield1, 0.0, 1.0)
    error1 = safe_divide((eq_nu - eq_w) / (nu - w), yield1)
    return yield1, error1


def untagged_bounds(mu, gain, error_gain):
    """GLLP without decoys: every multi-photon pulse is assumed tagged and detected.

    ``Q_1 >= Q_mu - P(n >= 2)`` and ``e_1 <= E_mu Q_mu / Q_1`` (GLLP 2004, Sec. 5; Ma et al. 2005, Sec. 2). The
    bound counts vacuum detections too, so with many dark counts it can pass ``P(1)``, the most single photons
    there are: it is capped there (Y_1 <= 1), which keeps it a lower bound.
    """
    single_gain = jnp.clip(gain - multiphoton_prob(mu), 0.0, poisson_photon_prob(1.0, mu))
    return single_gain / poisson_photon_prob(1.0, mu), safe_divide(error_gain, single_gain)


def asymptotic_key_margin(p_signal, mu, gain, qber, single_photon_yield, single_photon_error, protocol):
    """The key-rate formula per sent pulse before clipping at zero: negative where the bound gives no key.

    The key rate is ``max(margin, 0)``; the margin stays smooth where the rate is clipped, so optimisers can
    follow it back toward parameters that give key.
    """
    single_photon_gain = single_photon_yield * poisson_photon_prob(1.0, mu)
    privacy = single_photon_gain * (1.0 - binary_entropy(single_photon_error))
    leak = protocol.ec_efficiency * gain * binary_entropy(qber)
    return p_signal * sifting_factor(protocol.p_key_basis) * (privacy - leak)
