"""Spontaneous Raman noise that classical (data) channels put into a quantum channel in the same fibre.

A classical pump of power ``P`` at ``lambda_c`` scatters, per km of fibre and per nm of bandwidth at ``lambda_q``, the power
``P * rho(lambda_c, lambda_q)``. How much of it reaches the quantum receiver depends on where it is scattered; integrating the
attenuated pump times the attenuated scattered light along the span gives an effective length (co- or counter-propagating), as in
P. Eraerds et al., New J. Phys. 12, 063027 (2010), forward/backward noise formulas (there for equal attenuations: ``P_out rho L`` forward and
``P_out rho sinh(alpha L)/alpha`` backward, with ``P_out = P exp(-alpha L)``), generalised here to two attenuations.

The coefficient ``rho`` is built from the Raman gain of silica, not from a digitised noise spectrum:

* spectral shape: the intermediate-broadening multi-mode model of D. Hollenbeck and C. D. Cantrell, J. Opt. Soc. Am. B 19, 2886
  (2002), Table 1 (13 vibrational modes; positions, amplitudes, Gaussian and Lorentzian widths, in cm^-1), evaluated exactly with
  the Faddeeva function. It peaks at ~13.2 THz, as measured for silica (R. H. Stolen and E. P. Ippen, Appl. Phys. Lett. 22, 276
  (1973); G. P. Agrawal, Nonlinear Fiber Optics, Ch. 8);
* magnitude: peak co-polarised gain coefficient ``g_R = 1e-13 m/W`` for a 1 um pump, scaling as 1/lambda_pump (Stolen and Ippen
  1973; Agrawal, Ch. 8), divided by the effective area (80 um^2 by default, a typical ITU-T G.652 value at 1550 nm);
* spontaneous emission into one mode at ``nu_q``: ``dP/dz = (g/A_eff) P h nu_q B (n_th + 1)`` on the Stokes side and
  ``(g/A_eff) P h nu_q B n_th`` on the anti-Stokes side, ``n_th = 1/(exp(h dnu/kT) - 1)``. Both come from one formula,
  ``g_odd(dnu) / (1 - exp(-h dnu/kT))``, since the Raman gain is odd in the offset ``dnu = nu_c - nu_q``.

Limitations, stated rather than hidden: only the co-polarised gain is counted, so at small offsets (< ~3 THz, where the
cross-polarised gain is not negligible; X. Li et al., Opt. Express 13, 2236 (2005)) the noise is underestimated (by a factor
up to ~1.5, a rough estimate); the 1/lambda_pump scaling and A_eff are nominal, so ``rho`` carries a ~30% uncertainty for a given fibre.
Beyond ``|dnu| > 60 THz`` the gain is taken as its (negligible) table-end value. Everything is jax.numpy, jit/vmap-safe,
non-negative and NaN-free; the only table is computed once at import with numpy/scipy.
"""

import jax.numpy as jnp
import numpy as np
from scipy.special import wofz

PLANCK_J_S = 6.62607015e-34
BOLTZMANN_J_PER_K = 1.380649e-23
SPEED_OF_LIGHT_M_PER_S = 299792458.0
NEPER_PER_DB = np.log(10.0) / 10.0

# Hollenbeck & Cantrell, JOSA B 19, 2886 (2002), Table 1: (component position, peak intensity, Gaussian FWHM, Lorentzian FWHM),
# positions and widths in cm^-1. Cross-checked against the reproduction in the py-fmas package (omelchert/py-fmas,
# raman_response.py), which lists mode 10 at 835.00 cm^-1.
HOLLENBECK_CANTRELL_MODES = (
    (56.25, 1.00, 52.10, 17.37),
    (100.00, 11.40, 110.42, 38.81),
    (231.25, 36.67, 175.00, 58.33),
    (362.50, 67.67, 162.50, 54.17),
    (463.00, 74.00, 135.33, 45.11),
    (497.00, 4.50, 24.50, 8.17),
    (611.50, 6.80, 41.50, 13.83),
    (691.67, 4.60, 155.00, 51.67),
    (793.67, 4.20, 59.50, 19.83),
    (835.00, 4.50, 64.30, 21.43),
    (930.00, 2.70, 150.00, 50.00),
    (1080.00, 3.10, 91.00, 30.33),
    (1215.00, 3.00, 160.00, 53.33),
)
PEAK_RAMAN_GAIN_M_PER_W_AT_1UM = 1.0e-13  # Stolen & Ippen (1973); Agrawal, Nonlinear Fiber Optics, Ch. 8
DEFAULT_EFFECTIVE_AREA_UM2 = 80.0  # typical G.652 at 1550 nm
DEFAULT_TEMPERATURE_K = 300.0
_THZ_PER_INVERSE_CM = SPEED_OF_LIGHT_M_PER_S * 100.0 / 1e12  # 1 cm^-1 = 0.02998 THz
_OFFSET_GRID_STEP_THZ = 0.02
OFFSET_GRID_MAX_THZ = 60.0


def _hollenbeck_cantrell_response(wavenumber_cm):
    """Im of the Fourier transform of the H&C response (arbitrary units), odd in the offset; numpy, import time only.

    Each mode ``A exp(-gamma t - Gamma^2 t^2 / 4) sin(omega_v t)`` with ``gamma = pi c FWHM_L``, ``Gamma = pi c FWHM_G`` gives
    ``A/2 [C(w - w_v) - C(w + w_v)]``, ``C(D) = int_0^inf exp(-gamma t - Gamma^2 t^2/4) cos(D t) dt = sqrt(pi)/Gamma Re w(z)``,
    ``z = (D + i gamma)/Gamma``, with w the Faddeeva function; in wavenumbers ``z = (2 D + i FWHM_L)/FWHM_G``.
    """
    k = np.asarray(wavenumber_cm, dtype=float)[..., None]
    position, amplitude, fwhm_gauss, fwhm_lorentz = (np.asarray(column) for column in zip(*HOLLENBECK_CANTRELL_MODES))

    def lineshape(detuning):
        return np.sqrt(np.pi) / fwhm_gauss * wofz((2.0 * detuning + 1j * fwhm_lorentz) / fwhm_gauss).real

    return np.sum(0.5 * amplitude * (lineshape(k - position) - lineshape(k + position)), axis=-1)


def _gain_over_offset_table():
    """``g(dnu)/dnu`` on ``0 <= dnu <= 60 THz`` (peak of g normalised to 1), even and finite at 0, for ``jnp.interp``."""
    offset_thz = np.arange(0.0, OFFSET_GRID_MAX_THZ + 0.5 * _OFFSET_GRID_STEP_THZ, _OFFSET_GRID_STEP_THZ)
    fine_thz = np.linspace(10.0, 16.0, 6001)
    fine_gain = _hollenbeck_cantrell_response(fine_thz / _THZ_PER_INVERSE_CM)
    probe = np.where(offset_thz > 0, offset_thz, 1e-6)  # g is linear at 0: g(1e-6)/1e-6 is the limit to ~1e-12
    ratio = _hollenbeck_cantrell_response(probe / _THZ_PER_INVERSE_CM) / np.max(fine_gain) / probe
    return offset_thz, ratio, float(fine_thz[np.argmax(fine_gain)])


RAMAN_OFFSET_GRID_THZ, RAMAN_GAIN_OVER_OFFSET_PER_THZ, RAMAN_PEAK_OFFSET_THZ = _gain_over_offset_table()


def _one_minus_exp_ratio(x):
    """``f(x) = (1 - exp(-x)) / x = -expm1(-x)/x``, ``f(0) = 1``; exact for either sign, slope -1/2 at 0 (no 0/0)."""
    small = jnp.abs(x) < 1e-8
    x_safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 - 0.5 * x, -jnp.expm1(-x_safe) / x_safe)


def _np_per_km(attenuation_db_per_km):
    return NEPER_PER_DB * attenuation_db_per_km


def dbm_to_w(power_dbm):
    """Power in W of a level in dBm, ``1e-3 * 10^(dBm/10)``."""
    return 1e-3 * jnp.exp(NEPER_PER_DB * power_dbm)


def forward_raman_length_km(distance_km, classical_attenuation_db_per_km, quantum_attenuation_db_per_km):
    """Effective length (km) of co-propagating Raman noise: ``int_0^L exp(-a_c z - a_q (L - z)) dz``.

    Equals ``(exp(-a_q L) - exp(-a_c L)) / (a_c - a_q)`` (a in nepers/km), ``L exp(-a L)`` for equal attenuations (Eraerds et al.
    2010, forward formula). The expression is symmetric in ``a_c, a_q``, so it is evaluated as ``exp(-a_min L) L f((a_max - a_min) L)``
    with ``f(x) = -expm1(-x)/x``: no cancellation, no overflow for ``a_c < a_q``, finite gradient at ``a_c == a_q``.
    """
    a_c = _np_per_km(classical_attenuation_db_per_km)
    a_q = _np_per_km(quantum_attenuation_db_per_km)
    a_min, a_max = jnp.minimum(a_c, a_q), jnp.maximum(a_c, a_q)
    return jnp.exp(-a_min * distance_km) * distance_km * _one_minus_exp_ratio((a_max - a_min) * distance_km)


def backward_raman_length_km(distance_km, classical_attenuation_db_per_km, quantum_attenuation_db_per_km):
    """Effective length (km) of counter-propagating Raman noise (classical transmitter at the quantum receiver).

    ``int_0^L exp(-(a_c + a_q) z) dz = (1 - exp(-(a_c + a_q) L)) / (a_c + a_q)``, evaluated as ``L f((a_c + a_q) L)``; it rises
    monotonically to ``1/(a_c + a_q)``. For equal attenuations it is Eraerds et al. (2010)'s ``sinh(aL)/a`` times ``exp(-a L)``.
    """
    a_sum = _np_per_km(classical_attenuation_db_per_km) + _np_per_km(quantum_attenuation_db_per_km)
    return distance_km * _one_minus_exp_ratio(a_sum * distance_km)


def raman_gain_shape(frequency_offset_thz):
    """Normalised silica Raman gain (peak +1 at ~13.2 THz), odd in ``offset = nu_pump - nu_signal`` (Hollenbeck & Cantrell)."""
    ratio = jnp.interp(jnp.abs(frequency_offset_thz), RAMAN_OFFSET_GRID_THZ, RAMAN_GAIN_OVER_OFFSET_PER_THZ)
    return ratio * frequency_offset_thz


def raman_coefficient_per_km_nm(
    classical_wavelength_nm,
    quantum_wavelength_nm,
    temperature_k=DEFAULT_TEMPERATURE_K,
    effective_area_um2=DEFAULT_EFFECTIVE_AREA_UM2,
):
    """Effective spontaneous Raman coefficient ``rho`` in 1/(km nm): noise power per launch power, per km, per nm at lambda_q.

    ``rho = (g_R(lambda_c)/A_eff) g_odd(dnu) h nu_q (nu_q^2/c) / (1 - exp(-h dnu/kT))``, ``dnu = nu_c - nu_q`` (positive = Stokes,
    quantum wavelength longer), i.e. ``n_th + 1`` on the Stokes side and ``n_th`` on the anti-Stokes side. Written as
    ``[g(dnu)/dnu] (kT/h) [x/(1 - exp(-x))]`` so it is finite (not 0/0) at ``dnu = 0``, where it tends to its thermal limit.
    Vacuum wavelengths. Offsets beyond 60 THz take the table-end gain (negligible); meant for ``|dnu| <= 40 THz``.
    """
    nu_c_thz = SPEED_OF_LIGHT_M_PER_S / (classical_wavelength_nm * 1e-9) / 1e12
    nu_q_hz = SPEED_OF_LIGHT_M_PER_S / (quantum_wavelength_nm * 1e-9)
    offset_thz = nu_c_thz - nu_q_hz / 1e12
    gain_over_offset_per_thz = jnp.interp(jnp.abs(offset_thz), RAMAN_OFFSET_GRID_THZ, RAMAN_GAIN_OVER_OFFSET_PER_THZ)
    thermal_thz = BOLTZMANN_J_PER_K * temperature_k / PLANCK_J_S / 1e12
    x = offset_thz / thermal_thz
    bose = 1.0 / _one_minus_exp_ratio(x)  # x / (1 - exp(-x)) > 0; 1 at x = 0; -> 0 (not NaN) far on the anti-Stokes side
    peak_gain_m_per_w = PEAK_RAMAN_GAIN_M_PER_W_AT_1UM * (1000.0 / classical_wavelength_nm)
    gain_efficiency_per_w_km = peak_gain_m_per_w / (effective_area_um2 * 1e-12) * 1e3
    hz_per_nm = nu_q_hz**2 / SPEED_OF_LIGHT_M_PER_S * 1e-9
    return gain_efficiency_per_w_km * gain_over_offset_per_thz * thermal_thz * bose * PLANCK_J_S * nu_q_hz * hz_per_nm


def raman_noise_photons_per_s(launch_power_w, rho_per_km_nm, filter_nm, length_km, quantum_wavelength_nm):
    """Raman photons per second reaching the receiver in the filter band (both polarisations): ``P rho B L_eff / (h c/lambda_q)``.

    ``length_km`` is the effective length from :func:`forward_raman_length_km` or :func:`backward_raman_length_km`.
    """
    photon_energy_j = PLANCK_J_S * SPEED_OF_LIGHT_M_PER_S / (quantum_wavelength_nm * 1e-9)
    return launch_power_w * rho_per_km_nm * filter_nm * length_km / photon_energy_j
