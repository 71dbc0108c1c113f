"""Spontaneous Raman noise from classical channels (qkdjax.physics.raman): closed forms, limits, gradients, coefficient model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qkdjax.physics import raman

NEPER_PER_DB = np.log(10.0) / 10.0


def brute_force_forward(length_km, att_c, att_q, n=200_001):
    """``int_0^L exp(-a_c z) exp(-a_q (L - z)) dz`` by the trapezoid rule on a fine grid."""
    z = np.linspace(0.0, length_km, n)
    a_c, a_q = NEPER_PER_DB * att_c, NEPER_PER_DB * att_q
    return np.trapezoid(np.exp(-a_c * z - a_q * (length_km - z)), z)


def brute_force_backward(length_km, att_c, att_q, n=200_001):
    z = np.linspace(0.0, length_km, n)
    return np.trapezoid(np.exp(-NEPER_PER_DB * (att_c + att_q) * z), z)


CASES = [(1.0, 0.2, 0.2), (25.0, 0.2, 0.2), (50.0, 0.25, 0.2), (80.0, 0.2, 0.35), (150.0, 0.17, 0.2), (300.0, 0.35, 0.16)]


@pytest.mark.parametrize(("length_km", "att_c", "att_q"), CASES)
def test_effective_lengths_match_numerical_integral(length_km, att_c, att_q):
    forward = float(raman.forward_raman_length_km(length_km, att_c, att_q))
    backward = float(raman.backward_raman_length_km(length_km, att_c, att_q))
    assert forward == pytest.approx(brute_force_forward(length_km, att_c, att_q), rel=1e-8)
    assert backward == pytest.approx(brute_force_backward(length_km, att_c, att_q), rel=1e-8)


def test_forward_is_symmetric_and_equal_attenuation_limit():
    a = NEPER_PER_DB * 0.2
    for length in (0.5, 10.0, 100.0):
        assert float(raman.forward_raman_length_km(length, 0.2, 0.2)) == pytest.approx(length * np.exp(-a * length), rel=1e-14)
    assert float(raman.forward_raman_length_km(40.0, 0.2, 0.3)) == pytest.approx(float(raman.forward_raman_length_km(40.0, 0.3, 0.2)))


def test_forward_peaks_at_analytic_length():
    lengths = jnp.linspace(0.0, 200.0, 200_001)
    for att_c, att_q in [(0.2, 0.2), (0.25, 0.18), (0.18, 0.3)]:
        values = raman.forward_raman_length_km(lengths, att_c, att_q)
        a_c, a_q = NEPER_PER_DB * att_c, NEPER_PER_DB * att_q
        expected = 1.0 / a_c if att_c == att_q else np.log(a_c / a_q) / (a_c - a_q)  # d/dL of the closed form = 0
        assert float(lengths[jnp.argmax(values)]) == pytest.approx(expected, abs=2e-3)
        assert float(values[0]) == 0.0 and float(values[-1]) < float(jnp.max(values))


def test_backward_grows_monotonically_and_saturates():
    lengths = jnp.linspace(0.0, 2000.0, 20_001)
    values = raman.backward_raman_length_km(lengths, 0.2, 0.25)
    limit = 1.0 / (NEPER_PER_DB * (0.2 + 0.25))
    assert bool(jnp.all(jnp.diff(values[:3001]) > 0))  # strictly rising over 0-300 km
    assert bool(jnp.all(jnp.diff(values) > -1e-14 * limit))  # beyond, flat to rounding once saturated
    assert float(values[-1]) == pytest.approx(limit, rel=1e-12)
    assert bool(jnp.all(values <= limit * (1.0 + 1e-14)))


def test_large_loss_difference_does_not_overflow():
    values = [raman.forward_raman_length_km(5000.0, 0.2, 3.0), raman.forward_raman_length_km(5000.0, 3.0, 0.2)]
    for value in values:
        assert np.isfinite(float(value)) and float(value) >= 0.0


def test_gradients_finite_at_equal_attenuation_and_zero_length():
    def forward(args):
        return raman.forward_raman_length_km(*args)

    def backward(args):
        return raman.backward_raman_length_km(*args)

    length, a = 30.0, NEPER_PER_DB * 0.2
    grad = jax.grad(forward)(jnp.array([length, 0.2, 0.2]))
    assert bool(jnp.all(jnp.isfinite(grad)))
    # d/d(att_c) of int exp(-a_c z - a_q (L - z)) dz at a_c = a_q: -(ln10/10) L^2 exp(-a L) / 2
    assert float(grad[1]) == pytest.approx(-NEPER_PER_DB * length**2 * np.exp(-a * length) / 2.0, rel=1e-10)
    for fn in (forward, backward):
        grad0 = jax.grad(fn)(jnp.array([0.0, 0.2, 0.3]))
        assert bool(jnp.all(jnp.isfinite(grad0)))
        assert float(grad0[0]) == pytest.approx(1.0)  # both lengths grow like L near 0


def test_zero_power_gives_zero_noise_and_units():
    rho = raman.raman_coefficient_per_km_nm(1530.0, 1550.0)
    length = raman.forward_raman_length_km(25.0, 0.2, 0.2)
    assert float(raman.raman_noise_photons_per_s(0.0, rho, 0.8, length, 1550.0)) == 0.0
    photon_energy = 6.62607015e-34 * 299792458.0 / 1550e-9
    expected = 1e-3 * float(rho) * 0.8 * float(length) / photon_energy
    assert float(raman.raman_noise_photons_per_s(raman.dbm_to_w(0.0), rho, 0.8, length, 1550.0)) == pytest.approx(expected)
    assert float(raman.dbm_to_w(-30.0)) == pytest.approx(1e-6, rel=1e-14)


def test_table_constants_are_the_cited_values():
    # Hollenbeck & Cantrell, JOSA B 19, 2886 (2002), Table 1: the dominant modes (cm^-1, amplitude, Gaussian/Lorentzian FWHM).
    modes = {pos: (amp, g, lor) for pos, amp, g, lor in raman.HOLLENBECK_CANTRELL_MODES}
    assert modes[463.00] == (74.00, 135.33, 45.11)
    assert modes[362.50] == (67.67, 162.50, 54.17)
    assert modes[231.25] == (36.67, 175.00, 58.33)
    assert len(modes) == 13
    assert raman.PEAK_RAMAN_GAIN_M_PER_W_AT_1UM == 1.0e-13  # Stolen & Ippen, APL 22, 276 (1973)


def test_gain_shape_peak_and_oddness():
    # Silica Raman gain peaks at ~13.2 THz (440 cm^-1): Stolen & Ippen (1973); Agrawal, Nonlinear Fiber Optics, Ch. 8.
    assert raman.RAMAN_PEAK_OFFSET_THZ == pytest.approx(13.2, abs=0.2)
    offsets = jnp.linspace(-40.0, 40.0, 801)
    shape = raman.raman_gain_shape(offsets)
    assert float(jnp.max(shape)) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(np.asarray(shape), -np.asarray(shape[::-1]), atol=1e-15)


def test_coefficient_detailed_balance_and_magnitude():
    c = 299792458.0
    nu_c = c / 1550e-9
    for offset_thz in (0.5, 2.5, 10.0, 13.2, 30.0):
        lam_stokes = c / (nu_c - offset_thz * 1e12) * 1e9
        lam_anti = c / (nu_c + offset_thz * 1e12) * 1e9
        stokes = float(raman.raman_coefficient_per_km_nm(1550.0, lam_stokes))
        anti = float(raman.raman_coefficient_per_km_nm(1550.0, lam_anti))
        # (n_th + 1)/n_th = exp(h dnu/kT), times the (nu_q^3) photon-energy x bandwidth-per-nm factor of each side
        boltzmann = np.exp(6.62607015e-34 * offset_thz * 1e12 / (1.380649e-23 * 300.0))
        assert stokes / anti == pytest.approx(boltzmann * (lam_anti / lam_stokes) ** 3, rel=1e-9)
    # Peak Stokes value from the closed form: (g/A_eff) (n+1) h nu (nu^2/c) per nm, g = 1e-13 m/W * (1 um / 1.55 um).
    lam_peak = c / (nu_c - raman.RAMAN_PEAK_OFFSET_THZ * 1e12)
    nu = c / lam_peak
    n_th = 1.0 / np.expm1(6.62607015e-34 * raman.RAMAN_PEAK_OFFSET_THZ * 1e12 / (1.380649e-23 * 300.0))
    expected = 1e-13 / 1.55 / 80e-12 * 1e3 * (n_th + 1.0) * 6.62607015e-34 * nu * nu**2 / c * 1e-9
    assert float(raman.raman_coefficient_per_km_nm(1550.0, lam_peak * 1e9)) == pytest.approx(expected, rel=1e-6)


def test_coefficient_plausible_range_finite_and_jittable():
    # Plausibility band, not a measurement: QKD coexistence papers report rho of order 1e-9 (km nm)^-1 within ~20 nm of a
    # 1550 nm pump; the first-principles model (no calibration) must land within a factor ~10 of that.
    rho = jax.jit(raman.raman_coefficient_per_km_nm)(jnp.full(5, 1550.0), jnp.array([1510.0, 1530.0, 1550.0, 1570.0, 1590.0]))
    assert bool(jnp.all((rho > 1e-9) & (rho < 2e-8)))
    # O-band classical into a C-band quantum channel (35 THz Stokes) is ~10x smaller; C-band into O-band (anti-Stokes) negligible.
    o_to_c = float(raman.raman_coefficient_per_km_nm(1310.0, 1550.0))
    c_to_o = float(raman.raman_coefficient_per_km_nm(1550.0, 1310.0))
    assert 1e-11 < o_to_c < 2e-9 and 0.0 <= c_to_o < 1e-2 * o_to_c
    grad = jax.grad(raman.raman_coefficient_per_km_nm, argnums=1)(1550.0, 1550.0)
    assert np.isfinite(float(grad))
    wide = raman.raman_coefficient_per_km_nm(1550.0, jnp.linspace(1100.0, 2200.0, 2001), temperature_k=4.0)
    assert bool(jnp.all(jnp.isfinite(wide) & (wide >= 0.0)))
