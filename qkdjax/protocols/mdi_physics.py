"""Physics of decoy-state measurement-device-independent (MDI) QKD with weak coherent pulses (``mdi_decoy``).

Alice and Bob send phase-randomised weak coherent pulses in the BB84 polarisation states to a relay (Charlie)
that interferes them on a 50:50 beam splitter (outputs ``c``, ``d``), splits each output on a polarising beam
splitter and watches the four modes ``cH, cV, dH, dV`` with threshold detectors of dark-count probability
``p_d``. A Bell-state measurement succeeds when exactly two detectors click, one H and one V:

* ``psi+``: ``cH & cV`` or ``dH & dV`` (both photons in one output);
* ``psi-``: ``cH & dV`` or ``dH & cV``.

Both ``psi+`` and ``psi-`` are counted (a single Bell state halves every gain and the single-photon-pair yield and
leaves the error rates unchanged). Z (rectilinear, H/V) basis: an announcement is an error when Alice and Bob sent
the same state. X (diagonal, D/A) basis: ``psi+`` errs when they sent different states, ``psi-`` when they sent
the same one.

Key rate per pulse pair (H.-K. Lo, M. Curty, B. Qi, Phys. Rev. Lett. 108, 130503 (2012), Eq. (1), efficient
version without basis-sifting factor):

    R = Q11_Z [1 - H2(e11_X)] - f Q_Z(mu_a, mu_b) H2(E_Z(mu_a, mu_b))

with ``Q11_Z = mu_a mu_b exp(-mu_a - mu_b) Y11_Z``.

Misalignment, two models (``model``). ``effective`` (the default; Lo-Curty-Qi 2012, Ma-Razavi 2012, Appendix B,
and the published curves): ``e_d`` is put on the coincidence terms of an aligned relay, ``E Q = e_d Q_C +
(1 - e_d) Q_E`` in Z and the interference term scaled by ``1 - 2 e_d`` in X. ``rotation`` (derived here): one
arm's polarisation reaches Charlie rotated by a real angle ``theta`` (the same for every linear basis) with
``e_d = sin^2(theta)``, Bob's or Alice's with probability 1/2 each, so that the model is symmetric under
exchanging the arms. Both give exactly the single-photon-pair yield and phase error of X. Ma, M. Razavi,
Phys. Rev. A 86, 062319 (2012) (``e11 = e_d`` without dark counts) and agree to leading order in X; in Z the
rotation also turns two-photon pulses from the rotated side into H-V coincidences, so its ``E_Z`` is larger
(about ``e_d [1 + (u/v + v/u)/2]``, ``2 e_d`` for equal received intensities ``u = v``, instead of ``e_d``).
With the reference parameters (tests/reference/mdi_qkd.json, relay in the middle, symmetric ``mu`` optimised)
the key reaches 232 km with the effective model and 222 km with the rotation ('infinite' decoys).

Every function is written for one grid point (scalars; array arguments broadcast elementwise, callers vmap).
Gains are sums of non-negative terms built from ``expm1`` and series of ``I0 - 1``, so they keep full relative
precision at ``mu ~ 1e-12`` or ``eta ~ 1e-8``; the literal ``1 - (1-p_d) e^{-x}`` and ``I0(2x) - ...``
differences of the published closed forms cancel catastrophically there. Valid for ``eta mu`` up to a few
hundred (``exp`` overflows beyond).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e

from qkdjax.numerics import binary_entropy, safe_divide

DECOY_METHODS = ("infinite", "vacuum_weak")
MISALIGNMENT_MODELS = ("effective", "rotation")

_SERIES_TERMS = 10  # I0(z) - 1 = sum_k (z^2/4)^k / (k!)^2 for z <= 1: the 11th term is below 1e-20 of the sum
_PAIR_TERMS = 10
# <(cosh(a cos phi) - 1)(cosh(b cos phi) - 1)>_phi = sum_{j,l>=1} p^j q^l (2(j+l))! / ((2j)! (2l)! ((j+l)!)^2),
# p = a^2/4, q = b^2/4 (from <cos^2n> = (2n)!/(4^n n!^2)); below 1e-18 of the sum beyond 10 terms for p, q <= 1/4.
_PAIR_COEFFS = np.array(
    [
        [
            math.factorial(2 * (j + l)) / (math.factorial(2 * j) * math.factorial(2 * l) * math.factorial(j + l) ** 2)
            for l in range(1, _PAIR_TERMS + 1)
        ]
        for j in range(1, _PAIR_TERMS + 1)
    ]
)


def _i0_minus_one(z2):
    """``I0(z) - 1`` of the modified Bessel function, given ``z^2 >= 0``: exact to relative precision at tiny z.

    Power series (Horner) for ``z <= 1``; ``exp(z) i0e(z) - 1`` above, where ``I0(z) - 1 > 0.26`` loses at most
    a digit.
    """
    t = z2 / 4.0
    small = t <= 0.25
    ts = jnp.where(small, t, 0.0)
    acc = jnp.ones_like(ts)
    for k in range(_SERIES_TERMS, 1, -1):
        acc = 1.0 + acc * ts / k**2
    z = jnp.sqrt(jnp.where(small, 4.0, z2))
    return jnp.where(small, ts * acc, jnp.exp(z) * i0e(z) - 1.0)


def _powers(x):
    """``x, x^2, ..., x^N`` (``N = _PAIR_TERMS``) along a new last axis, by products: smooth derivatives at 0."""
    powers = [x]
    for _ in range(_PAIR_TERMS - 1):
        powers.append(powers[-1] * x)
    return jnp.stack(powers, axis=-1)


def _cosh_pair_mean(a2, b2, j_sum, j_diff, j_a, j_b):
    """``<(cosh(a cos phi) - 1)(cosh(b cos phi) - 1)>`` over a uniform phase, given ``a^2``, ``b^2`` and
    ``J = I0 - 1`` (:func:`_i0_minus_one`) at ``a + b``, ``a - b``, ``a``, ``b``.

    Equal to ``[J(a+b) + J(a-b)]/2 - J(a) - J(b)``, which cancels to fourth order at small arguments: a double
    power series (all terms positive) where ``a, b <= 1``, the Bessel form above (loses at most a digit or two
    there, and only as ``a/b`` or ``b/a`` grows: near ``e_d = 1/2``).
    """
    p, q = a2 / 4.0, b2 / 4.0
    small = jnp.maximum(p, q) <= 0.25
    ps, qs = jnp.where(small, p, 0.0), jnp.where(small, q, 0.0)
    series = jnp.einsum("...j,jl,...l->...", _powers(ps), _PAIR_COEFFS, _powers(qs))
    return jnp.where(small, series, 0.5 * (j_sum + j_diff) - j_a - j_b)


def _no_click_complement(dark_count_prob, mean_photons):
    """``1 - (1 - p_d) exp(-n)``: a threshold detector's click probability for a coherent state of mean ``n``."""
    return -jnp.expm1(jnp.log1p(-dark_count_prob) - mean_photons)


def _clamp(x, low, high):
    """``clip(x, low, high)`` in value with the derivative of ``x``: it only removes rounding (the analytic values
    lie inside), and a plain clip at a tie (``Q = 0`` at ``mu = 0`` without dark counts) would halve the gradient."""
    return x + jax.lax.stop_gradient(jnp.clip(x, low, high) - x)


def _gains_bob_rotated(u, v, dark_count_prob, misalignment, bessel, pair):
    """``(Q_Z, E_Z Q_Z, Q_X, E_X Q_X)`` with Bob's polarisation rotated by ``theta`` (``sin^2 theta = e_d``) and
    Alice's aligned with Charlie; ``u = eta_a mu_a / 2``, ``v = eta_b mu_b / 2`` (formulas in :func:`bsm_gains`).

    ``bessel`` holds ``I0 - 1`` at ``2 sqrt(uv) sin``, ``2 sqrt(uv) cos``, ``k_H``, ``k_V`` and ``pair`` is
    ``<g_H g_V>``: they depend on ``uv`` and ``theta`` only, the same when Alice's arm is the rotated one.
    """
    j_sin, j_cos, j_h, j_v = bessel
    sin2, cos2 = misalignment, 1.0 - misalignment
    sin_2theta = 2.0 * jnp.sqrt(misalignment * (1.0 - misalignment))
    prefactor = 4.0 * (1.0 - dark_count_prob) ** 2 * jnp.exp(-(u + v))
    h = lambda mean: _no_click_complement(dark_count_prob, mean)

    gain_hv = prefactor * h(v * cos2) * (j_sin + h(u + v * sin2))
    gain_hh = prefactor * h(v * sin2) * (j_cos + h(u + v * cos2))
    hh, hv = h(0.5 * u + 0.5 * v * (1.0 - sin_2theta)), h(0.5 * u + 0.5 * v * (1.0 + sin_2theta))
    gain_x = prefactor * (pair + hh * j_v + hv * j_h + hh * hv)
    interference = 0.5 * prefactor * (j_cos - j_sin)
    return 0.5 * (gain_hv + gain_hh), 0.5 * gain_hh, gain_x, 0.5 * (gain_x - interference)


def effective_misalignment(aligned, misalignment):
    """Gains with the effective misalignment model of Lo-Curty-Qi 2012 and Ma-Razavi 2012 (Appendix B), from
    the gains of an aligned relay ``aligned = (Q_Z, E_Z Q_Z, Q_X, E_X Q_X)`` at ``e_d = 0``.

    Z basis: ``E_Z Q_Z = e_d Q_C + (1 - e_d) Q_E`` with ``Q_C = Q_Z - E_Z Q_Z`` and ``Q_E = E_Z Q_Z`` of the aligned
    relay; X basis: the interference term ``D = Q_X - 2 E_X Q_X`` is scaled by ``1 - 2 e_d``, i.e. ``E_X Q_X =
    e_d Q_X + (1 - 2 e_d) E_X Q_X|aligned``. The gains themselves do not change. Both are sums of non-negative
    terms for ``e_d <= 1/2``; the single-photon-pair terms are those of :func:`single_photon_pair`.
    """
    gain_z, error_gain_z, gain_x, error_gain_x = aligned
    error_gain_z = misalignment * (gain_z - error_gain_z) + (1.0 - misalignment) * error_gain_z
    error_gain_x = misalignment * gain_x + (1.0 - 2.0 * misalignment) * error_gain_x
    return gain_z, error_gain_z, gain_x, error_gain_x


def bsm_gains(mu_a, mu_b, eta_a, eta_b, dark_count_prob, misalignment, model="effective"):
    """Gains and error gains ``(Q_Z, E_Z Q_Z, Q_X, E_X Q_X)`` when Alice sends intensity ``mu_a`` and Bob ``mu_b``.

    Probability per pulse pair that Charlie announces ``psi+`` or ``psi-`` (and that the announcement is an
    error), averaged over the four state pairs of the basis. ``eta_a``, ``eta_b`` include Charlie's detector
    efficiency; ``model`` (static) 'effective' applies ``misalignment = e_d`` as :func:`effective_misalignment`
    does, 'rotation' as a polarisation rotation ``e_d = sin^2(theta)``: with probability 1/2 Bob's polarisation,
    otherwise Alice's, reaches Charlie rotated by ``theta`` (module docstring), which keeps the model symmetric
    under exchanging the arms and ``e11 = e_d`` for single-photon pairs.

    Derivation (own; the ``theta = 0`` case is Ma-Razavi 2012, Appendix B: ``Q_rect = Q_C + Q_E``,
    ``Q_diag = 2y^2[1 + 2y^2 - 4y I0(x) + I0(2x)]`` with ``x = sqrt(eta_a mu_a eta_b mu_b)/2``). With
    ``u = eta_a mu_a/2``, ``v = eta_b mu_b/2`` and relative phase ``phi``, detector ``cH`` sees a coherent state of
    mean ``A_H + k_H cos(phi)``, ``dH`` of ``A_H - k_H cos(phi)`` (``A_H = u a_H^2 + v b_H^2``,
    ``k_H = 2 sqrt(uv) a_H b_H`` for polarisation vectors ``a``, ``b``), likewise V. Writing the one-H-one-V click
    probability given ``phi`` as a product and averaging over ``phi``:

        Q_ab = 4 (1-p_d)^2 e^{-(u+v)} [<g_H g_V> + h_H J_V + h_V J_H + h_H h_V]
        (psi+ - psi-)_ab = 2 (1-p_d)^2 e^{-(u+v)} [I0(k_H + k_V) - I0(k_H - k_V)]

    with ``h = 1 - (1-p_d) e^{-A}``, ``J = I0(k) - 1`` and ``g = cosh(k cos phi) - 1``: every term of ``Q_ab`` is
    non-negative. Z basis, ``HV`` (correct) and ``HH`` (error), Bob's state rotated by ``theta``:

        Q_HV = 4 (1-p_d)^2 e^{-(u+v)} h(v cos^2) [J(4uv sin^2) + h(u + v sin^2)]
        Q_HH = 4 (1-p_d)^2 e^{-(u+v)} h(v sin^2) [J(4uv cos^2) + h(u + v cos^2)]
        Q_Z = (Q_HV + Q_HH)/2,  E_Z Q_Z = Q_HH/2.

    X basis: ``Q_DD = Q_DA`` with ``k_H^2, k_V^2 = uv(1 -+ sin 2theta)``, ``A_H, A_V = u/2 + v(1 -+ sin 2theta)/2``,
    and the error gain ``E_X Q_X = (Q_X - D)/2``, ``D = 2(1-p_d)^2 e^{-(u+v)} [I0(2 sqrt(uv) cos) -
    I0(2 sqrt(uv) sin)]``. At ``theta = 0`` these are Ma-Razavi's ``Q_C``, ``Q_E`` and ``Q_diag``, and
    ``E_diag Q_diag = Q_diag/2 - y^2 [I0(2x) - 1]`` (Lo-Curty-Qi's ``e0 Q - 2(e0 - e_d) y^2 [I0(2x) - 1]``).
    Alice's rotation is the same with ``u`` and ``v`` exchanged.
    """
    if model not in MISALIGNMENT_MODELS:
        raise ValueError(f"misalignment model {model!r} is not one of {MISALIGNMENT_MODELS}")
    if model == "effective":
        return effective_misalignment(bsm_gains(mu_a, mu_b, eta_a, eta_b, dark_count_prob, 0.0, "rotation"), misalignment)
    u, v = eta_a * mu_a / 2.0, eta_b * mu_b / 2.0
    uv = u * v
    sin_2theta = 2.0 * jnp.sqrt(misalignment * (1.0 - misalignment))
    kh2, kv2 = uv * (1.0 - sin_2theta), uv * (1.0 + sin_2theta)
    args2 = jnp.stack(jnp.broadcast_arrays(4.0 * uv * misalignment, 4.0 * uv * (1.0 - misalignment), kh2, kv2))
    bessel = _i0_minus_one(args2)  # one evaluation of the four I0 - 1 both arms need
    pair = _cosh_pair_mean(kh2, kv2, bessel[1], bessel[0], bessel[2], bessel[3])
    bob = _gains_bob_rotated(u, v, dark_count_prob, misalignment, bessel, pair)
    alice = _gains_bob_rotated(v, u, dark_count_prob, misalignment, bessel, pair)
    gain_z, error_gain_z, gain_x, error_gain_x = (0.5 * (b + a) for b, a in zip(bob, alice))
    gain_z, gain_x = _clamp(gain_z, 0.0, 1.0), _clamp(gain_x, 0.0, 1.0)
    return gain_z, _clamp(error_gain_z, 0.0, gain_z), gain_x, _clamp(error_gain_x, 0.0, gain_x)


def single_photon_pair(eta_a, eta_b, dark_count_prob, misalignment):
    """True yield ``Y11_Z`` and X-basis phase error ``e11_X`` of a single-photon pair (the 'infinite' decoy method).

    Own derivation, identical to Ma-Razavi 2012 (Appendix B):

        Y11 = (1-p_d)^2 [eta_a eta_b/2 + (2 eta_a + 2 eta_b - 3 eta_a eta_b) p_d + 4 (1-eta_a)(1-eta_b) p_d^2]
        e11 Y11 = Y11/2 - (1/2 - e_d) (1-p_d)^2 eta_a eta_b / 2

    written here as sums of non-negative terms (both photons arrive: Hong-Ou-Mandel with visibility set by
    ``theta``, a dark count completing a bunched pair; one arrives plus one dark count; two dark counts). The
    yield is the same in both bases and does not depend on ``e_d``; ``p_d = 0`` gives ``Y11 = eta_a eta_b/2`` and
    ``e11_X = e_d``.
    """
    keep = (1.0 - dark_count_prob) ** 2
    both = eta_a * eta_b
    one = eta_a * (1.0 - eta_b) + (1.0 - eta_a) * eta_b
    none = (1.0 - eta_a) * (1.0 - eta_b)
    pd = dark_count_prob
    yield11 = keep * (both * (0.5 + pd) + one * 2.0 * pd + none * 4.0 * pd**2)
    error_yield11 = keep * (both * 0.5 * (misalignment + pd) + one * pd + none * 2.0 * pd**2)
    return yield11, safe_divide(error_yield11, yield11)


def _double_difference(gain, intensities_a, intensities_b, i, j):
    """``sum_{n,m>=1} x^n y^m / (n! m!) Y_nm`` at intensities ``(x, y) = (a[i], b[j])``, from the pairs with vacuum.

    ``G(x, y) = Q(x, y) e^{x+y} = sum_{n,m} x^n y^m Y_nm / (n! m!)``; ``G(x,y) - G(x,0) - G(0,y) + G(0,0)`` keeps the
    terms with photons from both sides. Index 2 of the intensity triples is the vacuum.
    """
    scaled = gain * jnp.exp(intensities_a[:, None] + intensities_b[None, :])
    return scaled[i, j] - scaled[i, 2] - scaled[2, j] + scaled[2, 2]


def vacuum_weak_bounds(mu_a, nu_a, mu_b, nu_b, gain_z, gain_x, error_gain_x):
    """Lower bound on ``Y11_Z`` and upper bound on ``e11_X`` from a signal ``mu``, a weak ``nu < mu`` and a vacuum.

    The gains are 3x3 arrays over Alice's intensity ``(mu_a, nu_a, 0)`` (rows) and Bob's ``(mu_b, nu_b, 0)``
    (columns), as :func:`decoy_gains` returns them. Two-dimensional analogue of the vacuum + weak bounds of X. Ma,
    B. Qi, Y. Zhao, H.-K. Lo, Phys. Rev. A 72, 012326 (2005), Eqs. (34)-(35), in the role of Xu, Curty, Qi, Lo,
    New J. Phys. 15, 113007 (2013), Appendix B (own derivation, valid for asymmetric intensities). With the
    double differences ``S(x, y) = sum_{n,m>=1} x^n y^m Y_nm / (n! m!)`` (:func:`_double_difference`) and
    ``r_a = nu_a/mu_a``, ``r_b = nu_b/mu_b``, each of these has a non-positive coefficient on every ``Y_nm`` but
    ``Y11`` (``Y_nm >= 0``), so each is a valid lower bound and the largest is taken:

        Y11 >= [S(nu_a, nu_b) - r_a^2 S(mu_a, nu_b) - (1 - r_a) r_b^2 S(nu_a, mu_b)] / [nu_a nu_b (1-r_a)(1-r_b)]
        Y11 >= the same with the roles of Alice and Bob exchanged
        Y11 >= [S(nu_a, nu_b) - k S(mu_a, mu_b)] / [nu_a nu_b (1 - max(r_a, r_b))],  k = r_a r_b max(r_a, r_b)

    (the first eliminates Alice's multi-photon terms as the one-dimensional bound does, then Bob's). The phase
    error uses ``e11 Y11 <= T(nu_a, nu_b) / (nu_a nu_b)``, ``T`` the double difference of the X-basis error gains
    (the vacuum terms drop out exactly, no ``e0`` needed), over the X-basis ``Y11`` bounded like ``Y11_Z``. All
    tend to the true values as ``nu -> 0``. ``Y11`` is clipped to [0, 1] and is 0 unless ``nu < mu`` on both
    sides; ``e11`` is clipped to [0, 1/2] (the true ``e11_X`` is at most 1/2 for ``e_d <= 1/2``) and is 1/2 where no
    ``Y11_X`` is certified.
    """
    intensities_a = jnp.stack([mu_a, nu_a, jnp.zeros_like(mu_a)])
    intensities_b = jnp.stack([mu_b, nu_b, jnp.zeros_like(mu_b)])
    ratio_a, ratio_b = nu_a / mu_a, nu_b / mu_b
    ratio = jnp.maximum(ratio_a, ratio_b)

    def yield_lower(gain):
        s = lambda i, j: _double_difference(gain, intensities_a, intensities_b, i, j)
        weak = s(1, 1)
        separable = nu_a * nu_b * (1.0 - ratio_a) * (1.0 - ratio_b)
        alice_first = (weak - ratio_a**2 * s(0, 1) - (1.0 - ratio_a) * ratio_b**2 * s(1, 0)) / separable
        bob_first = (weak - ratio_b**2 * s(1, 0) - (1.0 - ratio_b) * ratio_a**2 * s(0, 1)) / separable
        joint = (weak - ratio_a * ratio_b * ratio * s(0, 0)) / (nu_a * nu_b * (1.0 - ratio))
        bound = jnp.clip(jnp.maximum(jnp.maximum(alice_first, bob_first), joint), 0.0, 1.0)
        return jnp.where((ratio_a < 1.0) & (ratio_b < 1.0), bound, 0.0)  # nothing is certified unless nu < mu

    yield11_z, yield11_x = yield_lower(gain_z), yield_lower(gain_x)
    error_yield11_x = jnp.maximum(_double_difference(error_gain_x, intensities_a, intensities_b, 1, 1), 0.0)
    certified = yield11_x > 0.0
    error11_x = jnp.where(certified, error_yield11_x / (nu_a * nu_b * jnp.where(certified, yield11_x, 1.0)), 0.5)
    return yield11_z, jnp.clip(error11_x, 0.0, 0.5)


def decoy_gains(mu_a, nu_a, mu_b, nu_b, eta_a, eta_b, dark_count_prob, misalignment, model="effective"):
    """:func:`bsm_gains` over the nine intensity pairs, 3x3 arrays indexed by ``(mu, nu, 0)`` of Alice and Bob."""
    intensities_a = jnp.stack([mu_a, nu_a, jnp.zeros_like(mu_a)])
    intensities_b = jnp.stack([mu_b, nu_b, jnp.zeros_like(mu_b)])
    return bsm_gains(intensities_a[:, None], intensities_b[None, :], eta_a, eta_b, dark_count_prob, misalignment, model)


def single_pair_bounds(decoy, mu_a, nu_a, mu_b, nu_b, eta_a, eta_b, dark_count_prob, misalignment, gains):
    """``(Y11_Z, e11_X)`` as the ``decoy`` method (static) estimates them: 'infinite' gives the true values of
    :func:`single_photon_pair`, 'vacuum_weak' the bounds of :func:`vacuum_weak_bounds` from ``gains``
    (:func:`decoy_gains` at ``(mu, nu, 0)`` of both parties)."""
    if decoy not in DECOY_METHODS:
        raise ValueError(f"decoy method {decoy!r} is not one of {DECOY_METHODS}")
    if decoy == "infinite":  # infinitely many decoys pin Y11 and e11 (Lo-Curty-Qi 2012)
        return single_photon_pair(eta_a, eta_b, dark_count_prob, misalignment)
    gain_z, _, gain_x, error_gain_x = gains
    return vacuum_weak_bounds(mu_a, nu_a, mu_b, nu_b, gain_z, gain_x, error_gain_x)


def key_margin(mu_a, mu_b, gain_z, error_gain_z, yield11, error11, ec_efficiency):
    """Key per pulse pair before clipping at zero (Lo-Curty-Qi 2012, Eq. (1)); negative where there is no key.

    ``gain_z``, ``error_gain_z``: of the signal pair ``(mu_a, mu_b)``; ``yield11``, ``error11``: the single-pair
    estimates (:func:`single_pair_bounds`). The margin stays smooth where the rate is clipped, so optimisers can
    follow it back toward parameters that give key.
    """
    single_pair_gain = mu_a * mu_b * jnp.exp(-(mu_a + mu_b)) * yield11
    privacy = single_pair_gain * (1.0 - binary_entropy(error11))
    leak = ec_efficiency * gain_z * binary_entropy(safe_divide(error_gain_z, gain_z))
    return privacy - leak
