"""Decoy-state MDI-QKD physics against a brute-force Bell-state measurement, closed forms, limits and bounds."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import reference

from qkdjax.links.fibre import MidpointFibre
from qkdjax.physics.bounds import plob_bound
from qkdjax.physics.fibre import fibre_transmittance
from qkdjax.protocols import mdi_physics
from qkdjax.protocols.mdi_physics import bsm_gains, decoy_gains, single_photon_pair, vacuum_weak_bounds

jax.config.update("jax_enable_x64", True)

PARAMS = reference("mdi_qkd")["parameters"]
ATT, DET = PARAMS["attenuation_db_per_km"], PARAMS["charlie_detector_efficiency"]
PD, ED, F = PARAMS["dark_count_prob_per_detector"], PARAMS["misalignment_e_d"], PARAMS["ec_efficiency_f"]
MUS = np.geomspace(0.05, 1.0, 30)
NU = 0.01


def arm_transmittances(distance_km, attenuation_db_per_km, detector_efficiency, relay_fraction):
    link = MidpointFibre(distance_km=distance_km, relay_fraction=relay_fraction, attenuation_db_per_km=attenuation_db_per_km)
    eta = link.transmittance() * detector_efficiency
    return eta[0], eta[1]


def key_margin(mu_a, mu_b, eta_a, eta_b, pd, ed, f, decoy, nu_a=None, nu_b=None):
    """The key per pulse pair of signal intensities ``mu_a``, ``mu_b`` (decoys ``nu_a``, ``nu_b`` and vacuum)."""
    gains = decoy_gains(mu_a, nu_a, mu_b, nu_b, eta_a, eta_b, pd, ed)
    yield11, error11 = mdi_physics.single_pair_bounds(decoy, mu_a, nu_a, mu_b, nu_b, eta_a, eta_b, pd, ed, gains)
    return mdi_physics.key_margin(mu_a, mu_b, gains[0][0, 0], gains[1][0, 0], yield11, error11, f)


def brute_force_gains(mu_a, mu_b, eta_a, eta_b, dark_count_prob, misalignment):
    """(Q_Z, E_Z Q_Z, Q_X, E_X Q_X) from the four detectors' click probabilities, independent of qkdjax.

    The misalignment rotates Bob's or Alice's polarisation by theta (e_d = sin^2 theta), each half the time.
    """
    theta = np.arcsin(np.sqrt(misalignment))
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    args = (mu_a, mu_b, eta_a, eta_b, dark_count_prob)
    return 0.5 * (rotated_arm_gains(*args, np.eye(2), rotation) + rotated_arm_gains(*args, rotation, np.eye(2)))


def rotated_arm_gains(mu_a, mu_b, eta_a, eta_b, dark_count_prob, rotation_a, rotation_b, n_phi=512):
    """The coherent amplitudes sqrt(eta mu) of Alice (relative phase phi, averaged on a uniform grid: the integrand
    is periodic and analytic) and Bob, polarisations rotated by rotation_a, rotation_b, meet on a 50:50 beam
    splitter, c = (a + b)/sqrt2, d = (a - b)/sqrt2; each of cH, cV, dH, dV clicks independently given phi with
    1 - (1 - p_d) exp(-|amplitude|^2). psi+ = cH&cV or dH&dV, psi- = cH&dV or dH&cV, the other two silent.
    Every term is a product of positive factors (expm1), so this is exact at tiny intensities too.
    """
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    alpha, beta = np.sqrt(eta_a * mu_a) * np.exp(1j * phi)[:, None], np.sqrt(eta_b * mu_b)
    h, v = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    out = []
    for states in ((h, v), ((h + v) / np.sqrt(2), (h - v) / np.sqrt(2))):
        gain = error = 0.0
        for i, a0 in enumerate(states):
            for j, b0 in enumerate(states):
                a, b = rotation_a @ a0, rotation_b @ b0
                c, d = (alpha * a + beta * b) / np.sqrt(2), (alpha * a - beta * b) / np.sqrt(2)
                mean = {"cH": abs(c[:, 0]) ** 2, "cV": abs(c[:, 1]) ** 2, "dH": abs(d[:, 0]) ** 2, "dV": abs(d[:, 1]) ** 2}
                off = {k: (1 - dark_count_prob) * np.exp(-n) for k, n in mean.items()}
                on = {k: -np.expm1(np.log1p(-dark_count_prob) - n) for k, n in mean.items()}

                def pattern(x, y):
                    rest = [k for k in mean if k not in (x, y)]
                    return np.mean(on[x] * on[y] * off[rest[0]] * off[rest[1]])

                plus, minus = pattern("cH", "cV") + pattern("dH", "dV"), pattern("cH", "dV") + pattern("dH", "cV")
                gain += (plus + minus) / 4
                if states[0] is h:
                    error += (plus + minus) / 4 if i == j else 0.0
                else:
                    error += (minus if i == j else plus) / 4
        out += [gain, error]
    return np.array(out)


def gains(*args, model="rotation"):
    return np.array([float(g) for g in bsm_gains(*(jnp.float64(a) for a in args), model)])


@pytest.mark.parametrize(
    "args",
    [
        (0.3, 0.3, 0.1, 0.1, 3e-6, 0.015),
        (0.5, 0.1, 0.3, 0.02, 1e-3, 0.05),  # asymmetric
        (1.0, 2.0, 0.9, 0.7, 0.01, 0.2),
        (3.0, 5.0, 0.8, 0.9, 1e-4, 0.1),  # Bessel (large-argument) branch
        (0.4, 0.4, 0.1, 0.1, 0.0, 0.5),
        (1e-10, 1e-10, 1.0, 1.0, 3e-6, 0.015),
        (0.3, 0.4, 1e-8, 3e-8, 0.0, 0.015),
        (1e-12, 0.2, 0.1, 0.1, 1e-7, 0.015),
    ],
)
def test_gains_match_brute_force_bell_state_measurement(args):
    np.testing.assert_allclose(gains(*args), brute_force_gains(*args), rtol=1e-10, atol=0.0)


@pytest.mark.parametrize("ed", [0.0, 0.015, 0.1])
def test_effective_model_gains_are_the_published_closed_forms(ed):
    """Ma-Razavi 2012, Appendix B (both Bell states), and Lo-Curty-Qi 2012's X-basis error gain, literal: fine at
    mu ~ 0.5 where nothing cancels; at e_d = 0 the rotation model is the same relay."""
    from scipy.special import i0

    mu_a, mu_b, eta_a, eta_b, pd = 0.5, 0.3, 0.2, 0.05, 1e-4
    mu_p, x = eta_a * mu_a + eta_b * mu_b, np.sqrt(eta_a * mu_a * eta_b * mu_b) / 2
    q_c = 2 * (1 - pd) ** 2 * np.exp(-mu_p / 2) * (1 - (1 - pd) * np.exp(-eta_a * mu_a / 2))
    q_c *= 1 - (1 - pd) * np.exp(-eta_b * mu_b / 2)
    q_e = 2 * pd * (1 - pd) ** 2 * np.exp(-mu_p / 2) * (i0(2 * x) - (1 - pd) * np.exp(-mu_p / 2))
    y = (1 - pd) * np.exp(-mu_p / 4)
    q_x = 2 * y**2 * (1 + 2 * y**2 - 4 * y * i0(x) + i0(2 * x))
    e_x = q_x / 2 - 2 * (0.5 - ed) * y**2 * (i0(2 * x) - 1)  # e0 Q - 2 (e0 - e_d) y^2 [I0(2x) - 1], e0 = 1/2
    expected = [q_c + q_e, ed * q_c + (1 - ed) * q_e, q_x, e_x]
    np.testing.assert_allclose(gains(mu_a, mu_b, eta_a, eta_b, pd, ed, model="effective"), expected, rtol=1e-10)
    if ed == 0.0:
        np.testing.assert_allclose(gains(mu_a, mu_b, eta_a, eta_b, pd, ed), expected, rtol=1e-10)


@pytest.mark.parametrize("mu", [1e-8, 1e-10, 1e-12])
@pytest.mark.parametrize("eta", [1.0, 1e-8])
def test_gains_keep_relative_precision_at_tiny_intensity(mu, eta):
    """Leading orders without noise (u = eta mu_a / 2, v = eta mu_b / 2): Q_Z = 2uv, E_Z Q_Z = 0,
    Q_X = (u + v)^2, E_X Q_X = (u^2 + v^2)/2, with relative corrections O(eta mu)."""
    mu_b = 2 * mu
    u, v = eta * mu / 2, eta * mu_b / 2
    got = gains(mu, mu_b, eta, eta, 0.0, 0.0)
    np.testing.assert_allclose(got[[0, 2, 3]], [2 * u * v, (u + v) ** 2, (u**2 + v**2) / 2], rtol=1e-7)
    assert got[1] == 0.0
    noisy = gains(mu, mu, eta, eta, PD, ED)
    assert np.all(noisy > 0) and np.all(noisy <= 1) and np.all(np.isfinite(noisy))
    assert noisy[1] <= noisy[0] and noisy[3] <= noisy[2]


def test_literal_diagonal_gain_cancels_where_ours_does_not():
    """Why the cancellation-free form: the literal Ma-Razavi Q_diag loses every digit at mu = 1e-8."""
    from scipy.special import i0

    mu, eta = 1e-8, 0.1
    mu_p, x = 2 * eta * mu, eta * mu / 2
    y = np.exp(-mu_p / 4)
    literal = 2 * y**2 * (1 + 2 * y**2 - 4 * y * i0(x) + i0(2 * x))
    exact = gains(mu, mu, eta, eta, 0.0, 0.0)[2]
    assert exact == pytest.approx((eta * mu) ** 2, rel=1e-7)
    assert abs(literal - exact) > 10 * exact


def test_gains_are_probabilities_over_a_grid():
    grid = np.meshgrid(np.geomspace(1e-12, 10, 7), np.geomspace(1e-12, 10, 5), [1e-9, 0.01, 1.0], [0, 1e-5, 0.1], [0, 0.015, 0.5])
    mu_a, mu_b, eta, pd, ed = (jnp.asarray(g.ravel()) for g in grid)
    out = np.array(jax.vmap(bsm_gains)(mu_a, mu_b, eta, eta / 3, pd, ed))
    assert out.dtype == np.float64 and np.all(np.isfinite(out))
    assert np.all(out >= 0) and np.all(out <= 1)
    assert np.all(out[1] <= out[0]) and np.all(out[3] <= out[2])


def test_single_photon_pair_limits_and_closed_form():
    eta_a, eta_b = 0.03, 0.2
    yield11, error11 = single_photon_pair(eta_a, eta_b, 0.0, ED)
    assert yield11 == pytest.approx(eta_a * eta_b / 2, rel=1e-15) and error11 == pytest.approx(ED, rel=1e-14)
    assert single_photon_pair(eta_a, eta_b, 0.0, 0.0)[1] == 0.0
    pd = 1e-3  # Ma-Razavi 2012, Appendix B
    ma_razavi = (1 - pd) ** 2 * (eta_a * eta_b / 2 + (2 * eta_a + 2 * eta_b - 3 * eta_a * eta_b) * pd)
    ma_razavi += (1 - pd) ** 2 * 4 * (1 - eta_a) * (1 - eta_b) * pd**2
    error_ma_razavi = ma_razavi / 2 - (0.5 - ED) * (1 - pd) ** 2 * eta_a * eta_b / 2
    yield11, error11 = single_photon_pair(eta_a, eta_b, pd, ED)
    assert yield11 == pytest.approx(ma_razavi, rel=1e-13)
    assert error11 * yield11 == pytest.approx(error_ma_razavi, rel=1e-13)


@pytest.mark.parametrize("args", [(0.1, 0.1, 3e-6, 0.015), (0.3, 0.01, 1e-3, 0.1), (1e-3, 0.5, 0.0, 0.0)])
@pytest.mark.parametrize("model", ["effective", "rotation"])
def test_single_photon_pair_is_the_photon_number_coefficient_of_the_gains(args, model):
    """Y11 = d^2/dmu_a dmu_b [e^{mu_a + mu_b} Q(mu_a, mu_b)] at 0 (Poisson sum of Y_nm), by autodiff of bsm_gains:
    both misalignment models hold the same single-photon pairs."""
    coefficient = np.asarray(pair_coefficients(*(jnp.float64(a) for a in args), model))  # compiled once per model
    yield11, error11 = (float(a) for a in single_photon_pair(*args))
    assert coefficient[0] == pytest.approx(yield11, rel=1e-10)
    assert coefficient[2] == pytest.approx(yield11, rel=1e-10)  # basis-independent
    assert coefficient[3] == pytest.approx(error11 * yield11, rel=1e-10, abs=1e-300)


@functools.partial(jax.jit, static_argnums=4)
def pair_coefficients(eta_a, eta_b, pd, ed, model):
    scaled = lambda a, b: jnp.exp(a + b) * jnp.stack(bsm_gains(a, b, eta_a, eta_b, pd, ed, model))
    return jax.jacfwd(jax.jacfwd(scaled, 0), 1)(0.0, 0.0)


def true_and_bounded(distance, mu_a, nu_a, mu_b, nu_b, relay_fraction=0.5):
    eta_a, eta_b = arm_transmittances(distance, ATT, DET, relay_fraction)
    gz, _, gx, egx = decoy_gains(mu_a, nu_a, mu_b, nu_b, eta_a, eta_b, PD, ED)
    return (*single_photon_pair(eta_a, eta_b, PD, ED), *vacuum_weak_bounds(mu_a, nu_a, mu_b, nu_b, gz, gx, egx))


def test_vacuum_weak_bounds_are_valid():
    distance, mu_a, nu_a, mu_b, nu_b, fraction = (
        jnp.asarray(g.ravel())
        for g in np.meshgrid(np.arange(0.0, 301.0, 25.0), [0.1, 0.5], [0.001, 0.05], [0.3, 0.8], [0.02, 0.08], [0.3, 0.5])
    )
    bounds = jax.jit(jax.vmap(true_and_bounded))(distance, mu_a, nu_a, mu_b, nu_b, fraction)
    y11, e11, y11_l, e11_u = (np.asarray(a) for a in bounds)
    assert np.all(y11_l <= y11 * (1 + 1e-9)) and np.all(y11_l > 0)
    assert np.all(e11_u >= e11 * (1 - 1e-9)) and np.all(e11_u <= 0.5)
    assert true_and_bounded(50.0, 0.1, 0.2, 0.3, 0.05)[2] == 0.0  # nothing certified unless nu < mu


@pytest.mark.parametrize("distance", [0.0, 100.0, 200.0])
def test_vacuum_weak_bounds_tend_to_true_values_as_nu_vanishes(distance):
    errors = []
    for nu in (0.1, 0.01, 1e-3, 1e-4):
        y11, e11, y11_l, e11_u = (float(a) for a in true_and_bounded(distance, 0.4, nu, 0.3, nu / 2))
        errors.append((1 - y11_l / y11, e11_u / e11 - 1))
    errors = np.array(errors)
    assert np.all(errors >= -1e-9)
    assert np.all(np.diff(errors, axis=0) < 0)  # tighter as nu shrinks
    assert np.all(errors[-1] < 5e-3)


@jax.jit
def best_keys(distance):
    """Key per pulse pair, maximised over symmetric mu on a grid, for the reference parameters."""

    def margins(mu):
        eta_a, eta_b = arm_transmittances(distance, ATT, DET, 0.5)
        infinite = key_margin(mu, mu, eta_a, eta_b, PD, ED, F, "infinite", nu_a=NU, nu_b=NU)
        weak = key_margin(mu, mu, eta_a, eta_b, PD, ED, F, "vacuum_weak", nu_a=NU, nu_b=NU)
        return jnp.stack([infinite, weak])

    return jnp.max(jax.vmap(margins)(jnp.asarray(MUS)), axis=0)


def test_reach_beyond_200_km_and_key_at_0_km():
    distances = np.arange(0.0, 301.0, 2.0)
    keys = np.asarray(jax.vmap(best_keys)(jnp.asarray(distances)))
    reach = [distances[keys[:, k] > 0].max() for k in range(2)]
    assert np.all(keys[0] > 0)
    assert reach[0] > 200 and reach[1] > 200  # effective misalignment: 'infinite' 232 km, 'vacuum_weak' (nu = 0.01) 228 km
    assert reach[1] <= reach[0] and np.all(keys[:, 1] <= keys[:, 0])
    assert np.all(np.diff(np.maximum(keys, 0), axis=0) <= 0)
    plob = np.asarray(plob_bound(fibre_transmittance(jnp.asarray(distances), ATT, 0.0)))  # whole channel, no detector
    assert np.all(np.maximum(keys, 0).T <= plob)


def test_asymmetric_relay_gives_less_key():
    mu, total = 0.3, 150.0
    for decoy in ("infinite", "vacuum_weak"):
        margins = []
        for fraction in (0.5, 0.4, 0.3, 0.2):
            eta_a, eta_b = arm_transmittances(total, ATT, DET, fraction)
            margins.append(float(key_margin(mu, mu, eta_a, eta_b, PD, ED, F, decoy, nu_a=NU, nu_b=NU)))
            eta_a, eta_b = arm_transmittances(total, ATT, DET, 1.0 - fraction)  # the model is symmetric in the arms
            assert float(key_margin(mu, mu, eta_a, eta_b, PD, ED, F, decoy, nu_a=NU, nu_b=NU)) == pytest.approx(margins[-1], rel=1e-9)
        assert margins[0] > 0 and np.all(np.diff(margins) < 0)


@pytest.mark.parametrize("decoy", ["infinite", "vacuum_weak"])
def test_key_margin_gradient_is_finite(decoy):
    def margin(mu, distance):
        eta_a, eta_b = arm_transmittances(distance, ATT, DET, 0.5)
        return key_margin(mu, 0.8 * mu, eta_a, eta_b, PD, ED, F, decoy, nu_a=0.1 * mu, nu_b=0.05 * mu)

    mu, distance = (jnp.asarray(g.ravel()) for g in np.meshgrid(np.geomspace(1e-4, 3.0, 9), [0.0, 100.0, 250.0, 400.0]))
    value, grad = jax.jit(jax.vmap(jax.value_and_grad(margin, argnums=(0, 1))))(mu, distance)
    assert value.dtype == jnp.float64 and np.all(np.isfinite(value))
    assert all(g.dtype == jnp.float64 and np.all(np.isfinite(g)) for g in grad)


def test_unknown_decoy_method_is_refused():
    with pytest.raises(ValueError, match="decoy method 'none' is not one of"):
        key_margin(0.3, 0.3, 0.1, 0.1, PD, ED, F, "none", nu_a=NU, nu_b=NU)
