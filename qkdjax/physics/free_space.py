"""Free-space optical links between a satellite and a ground station: geometry, passes, diffraction, atmosphere,
pointing, turbulence and pass statistics.

Pure functions of scalars in float64, written for one grid point and vmapped by the caller. Angles are in degrees
unless a name ends in ``_rad``; every other unit is in the name. Integrals use fixed-order Gauss-Legendre rules
(static node counts), so each function compiles to a fixed, branch-free program.
"""

import math

import jax.numpy as jnp
import numpy as np

EARTH_RADIUS_KM = 6371.0
EARTH_GM_KM3_PER_S2 = 398600.4418
EARTH_ROTATION_RAD_PER_S = 7.2921159e-5  # sidereal
SECONDS_PER_DAY = 86400.0


def _gauss_legendre_01(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss-Legendre rule on [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1.0) / 2.0, weights / 2.0


# ---------------------------------------------------------------------------------------------------------------
# Geometry of a circular orbit seen from a station on a spherical Earth


def slant_range_km(elevation_deg, altitude_km):
    """Distance from the station to a satellite at ``altitude_km`` seen at ``elevation_deg``.

    Law of cosines in the Earth-centre / station / satellite triangle (shared/reference/satellite_downlink.json;
    J.-P. Bourgoin et al., New J. Phys. 15, 023006 (2013)): ``L = sqrt((R+h)^2 - R^2 cos^2 t) - R sin t``,
    written as ``h (2R + h) / (sqrt(...) + R sin t)`` so that no digits cancel.
    """
    r, el = EARTH_RADIUS_KM, jnp.deg2rad(elevation_deg)
    root = jnp.sqrt((r + altitude_km) ** 2 - (r * jnp.cos(el)) ** 2)
    return altitude_km * (2.0 * r + altitude_km) / (root + r * jnp.sin(el))


def central_angle_rad(elevation_deg, altitude_km):
    """Earth-centre angle between the station and the sub-satellite point, ``psi = acos(R cos t / (R+h)) - t``.

    Law of sines in the same triangle as :func:`slant_range_km` (standard orbital geometry, e.g. Bourgoin 2013).
    """
    el = jnp.deg2rad(elevation_deg)
    return jnp.maximum(jnp.arccos(EARTH_RADIUS_KM * jnp.cos(el) / (EARTH_RADIUS_KM + altitude_km)) - el, 0.0)


def elevation_deg_from_central_angle(central_angle_rad, altitude_km):
    """Inverse of :func:`central_angle_rad`: ``tan t = (cos psi - R/(R+h)) / sin psi`` (90 degrees at psi = 0)."""
    ratio = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + altitude_km)
    return jnp.rad2deg(jnp.arctan2(jnp.cos(central_angle_rad) - ratio, jnp.sin(central_angle_rad)))


def orbital_rate_rad_per_s(altitude_km):
    """Angular rate of a circular orbit, ``sqrt(GM / (R+h)^3)`` (Kepler's third law)."""
    return jnp.sqrt(EARTH_GM_KM3_PER_S2 / (EARTH_RADIUS_KM + altitude_km) ** 3)


def _half_pass_s(closest, edge, omega):
    """Half the time above the edge of a pass: ``cos(omega T) = cos psi_edge / cos psi0``, in half-angle sines
    (``closest``, ``edge``: ``sin^2(psi/2)`` at closest approach and at the edge)."""
    sin2_half_sweep = jnp.clip((edge - closest) / (1.0 - 2.0 * closest), 0.0, 1.0)
    return 2.0 * jnp.arcsin(jnp.sqrt(sin2_half_sweep)) / omega


def _elevation_along(closest, along, altitude_km):
    """Elevation where ``cos psi = cos psi0 cos(omega t)``: ``1 - cos psi0 cos(omega t) = 2 sin^2(psi/2)`` in
    half-angle sines (``along = sin^2(omega t / 2)``)."""
    psi = 2.0 * jnp.arcsin(jnp.sqrt(jnp.clip(closest + along - 2.0 * closest * along, 0.0, 1.0)))
    return elevation_deg_from_central_angle(psi, altitude_km)


def pass_elevations_deg(max_elevation_deg, min_elevation_deg, altitude_km, n_steps: int):
    """Elevation during one pass, sampled at the midpoints of ``n_steps`` equal time steps.

    Returns ``(time_s, elevation_deg, step_s)``: times from closest approach (shape ``[n_steps]``, spanning -T..T
    where the elevation is ``min_elevation_deg``), the elevations there, and the step length ``2T / n_steps``.

    The Earth does not rotate during the pass (its surface moves at <= 0.47 km/s against the satellite's ~7 km/s),
    so the sub-satellite point runs along a great circle at the orbital rate ``omega`` and, by the spherical law of
    cosines in the right triangle station / closest point / satellite, ``cos psi(t) = cos psi0 cos(omega t)``, psi0
    the central angle at closest approach (Bourgoin et al., New J. Phys. 15, 023006 (2013), Sec. 2). Both sides are
    evaluated through half-angle sines, which keep full precision near the zenith. A pass that never reaches
    ``min_elevation_deg`` (max < min) is empty: ``step_s = 0`` and every sample sits at closest approach.
    """
    omega = orbital_rate_rad_per_s(altitude_km)
    closest = jnp.sin(central_angle_rad(max_elevation_deg, altitude_km) / 2.0) ** 2
    edge = jnp.sin(central_angle_rad(min_elevation_deg, altitude_km) / 2.0) ** 2
    half_s = _half_pass_s(closest, edge, omega)
    step_s = 2.0 * half_s / n_steps
    time_s = -half_s + (jnp.arange(n_steps) + 0.5) * step_s
    return time_s, _elevation_along(closest, jnp.sin(omega * time_s / 2.0) ** 2, altitude_km), step_s


def common_pass_elevations_deg(separation_km, crossing_offset_km, min_elevation_deg, altitude_km, n_steps: int):
    """Both stations' elevations while both see the satellite above ``min_elevation_deg``, at the midpoints of
    ``n_steps`` equal time steps: ``(time_s, [elevation at Alice, at Bob] [2, n_steps], step_s)``.

    The ground track crosses the stations' baseline (a great circle, ``separation_km`` long) at right angles,
    ``crossing_offset_km`` from its midpoint towards Bob, so both stations are closest to the satellite at the same
    time, at central angles ``(separation / 2 +- offset) / R``, and each follows :func:`pass_elevations_deg`'s
    ``cos psi(t) = cos psi0 cos(omega t)``. The common window is the shorter station's pass (empty: ``step_s = 0``).
    """
    omega = orbital_rate_rad_per_s(altitude_km)
    psi0 = jnp.stack([separation_km / 2.0 + crossing_offset_km, separation_km / 2.0 - crossing_offset_km]) / EARTH_RADIUS_KM
    closest = jnp.sin(jnp.abs(psi0) / 2.0) ** 2
    edge = jnp.sin(central_angle_rad(min_elevation_deg, altitude_km) / 2.0) ** 2
    half_s = jnp.min(_half_pass_s(closest, edge, omega))
    step_s = 2.0 * half_s / n_steps
    time_s = -half_s + (jnp.arange(n_steps) + 0.5) * step_s
    along = jnp.sin(omega * time_s / 2.0) ** 2
    return time_s, _elevation_along(closest[:, None], along[None, :], altitude_km), step_s


# ---------------------------------------------------------------------------------------------------------------
# Beam propagation and losses


def beam_radius_m(slant_range_km, wavelength_nm, beam_waist_m):
    """Radius (1/e^2 intensity) of a Gaussian beam after ``slant_range_km``: ``w0 sqrt(1 + (L / z_R)^2)``,
    ``z_R = pi w0^2 / lambda`` (A. E. Siegman, Lasers (1986), Ch. 17)."""
    rayleigh_m = math.pi * beam_waist_m**2 / (wavelength_nm * 1e-9)
    return beam_waist_m * jnp.sqrt(1.0 + (slant_range_km * 1e3 / rayleigh_m) ** 2)


def _bessel_j0_j1(x):
    """J0(x) and J1(x) for x >= 0 to ~1e-12 absolute: power series below x = 14 and Hankel's asymptotic expansion
    above (M. Abramowitz & I. A. Stegun, Handbook of Mathematical Functions (1964), Eqs. 9.1.10 and 9.2.5-9.2.10).
    ``jax.scipy.special.bessel_jn`` is not used: its backward recurrence is wrong beyond x ~ 40."""
    switch = 14.0
    small = jnp.minimum(x, switch)  # each branch sees only arguments where it converges
    ratio = -((small / 2.0) ** 2)
    j0, j1, term0, term1 = 1.0, small / 2.0, 1.0, small / 2.0
    for m in range(1, 36):  # terms fall below 1e-17 by m = 34 at x = 14
        term0, term1 = term0 * ratio / (m * m), term1 * ratio / (m * (m + 1))
        j0, j1 = j0 + term0, j1 + term1
    large = jnp.maximum(x, switch)
    far = []
    for nu in (0, 1):  # J_nu = sqrt(2 / pi x) (P cos(x - (2 nu + 1) pi / 4) - Q sin(...))
        p, q, a_k = 1.0, 0.0, 1.0
        for k in range(1, 24):  # a_k = prod_{j<=k} (4 nu^2 - (2j-1)^2) / (k! 8^k); P takes even k, Q odd k
            a_k = a_k * (4 * nu * nu - (2 * k - 1) ** 2) / (8.0 * k)
            term = (-1) ** (k // 2) * a_k / large**k
            p, q = (p, q + term) if k % 2 else (p + term, q)
        phase = large - (2 * nu + 1) * math.pi / 4.0
        far.append(jnp.sqrt(2.0 / (math.pi * large)) * (p * jnp.cos(phase) - q * jnp.sin(phase)))
    return jnp.where(x < switch, j0, far[0]), jnp.where(x < switch, j1, far[1])


_APERTURE_NODES, _APERTURE_WEIGHTS = _gauss_legendre_01(64)


def diffraction_efficiency(slant_range_km, wavelength_nm, beam_waist_m, transmitter_radius_m, receiver_radius_m):
    """Fraction of the power leaving the transmit aperture that the receive aperture collects (SatQuMA model).

    The transmitted mode is the Gaussian ``u(r) = sqrt(2/pi)/w0 exp(-r^2/w0^2)`` cut at the aperture radius ``a``;
    it is propagated over ``L`` with the paraxial Fresnel integral (J. W. Goodman, Introduction to Fourier Optics,
    3rd ed. (2005), Ch. 4, in polar form)

        U(rho) = (k/L) int_0^a u(r) exp(i k r^2 / 2L) J0(k r rho / L) r dr,

    and ``2 pi int_0^b |U|^2 rho drho`` over the receive radius ``b`` is divided by the power inside the transmit
    aperture, ``1 - exp(-2 a^2 / w0^2)``. For ``L >> a^2 / lambda`` the phase factor is one and this is the
    Fraunhofer model of SatQuMA (D. McArthur et al., SatQuMA, Strathclyde, ``channel/diffraction``); keeping it
    makes the result exact for Gaussian-beam propagation in the near field too.

    The receive-plane integral is done in closed form by Lommel's integral (G. N. Watson, A Treatise on the Theory
    of Bessel Functions (1944), Sec. 5.11): ``int_0^1 J0(p y) J0(q y) y dy = (p J1(p) J0(q) - q J0(p) J1(q)) /
    (p^2 - q^2)``, so any number of diffraction rings inside the receiver costs nothing. What is left is a quadratic
    form over a 64-node Gauss-Legendre rule in ``r`` on ``[0, min(a, 6 w0)]`` (the mode is below e^-36 beyond):
    within 1e-10 dB of a 1500 x 1500-node direct quadrature for L = 300-3000 km, lambda = 400-1600 nm and radii
    0.05-1 m, whose largest Fresnel phase ``k a^2 / 2L`` is 26 rad; the rule holds 0.001 dB up to ~60 rad.
    """
    wavenumber_per_m = 2.0 * math.pi / (wavelength_nm * 1e-9)
    range_m = slant_range_km * 1e3
    aperture_to_waist = transmitter_radius_m / beam_waist_m
    # r = a x: the field in the transmit plane and the Bessel argument scale are both dimensionless
    x_max = jnp.minimum(1.0, 6.0 / aperture_to_waist)
    x, dx = x_max * _APERTURE_NODES, x_max * _APERTURE_WEIGHTS
    fresnel_phase = wavenumber_per_m * transmitter_radius_m**2 / (2.0 * range_m)
    field = dx * x * jnp.exp((-(aperture_to_waist**2) + 1j * fresnel_phase) * x**2)
    bessel_scale = wavenumber_per_m * transmitter_radius_m * receiver_radius_m / range_m
    p = bessel_scale * x
    j0, j1 = _bessel_j0_j1(p)
    numerator = p[:, None] * j1[:, None] * j0[None, :] - p[None, :] * j0[:, None] * j1[None, :]
    denominator = p[:, None] ** 2 - p[None, :] ** 2
    same = np.eye(x.shape[0], dtype=bool)
    lommel = jnp.where(same, (j0**2 + j1**2)[:, None] / 2.0, numerator / jnp.where(same, 1.0, denominator))
    # an elementwise product and one reduction, which XLA fuses without storing the kernel of every vmapped point
    received = jnp.sum(lommel * (jnp.outer(field.real, field.real) + jnp.outer(field.imag, field.imag)))
    transmitted = -jnp.expm1(-2.0 * aperture_to_waist**2)
    return 4.0 * bessel_scale**2 * aperture_to_waist**2 * received / transmitted


def atmospheric_transmittance(elevation_deg, zenith_transmittance):
    """Clear-sky transmittance ``eta_zenith ** AM`` with the Kasten-Young air mass (F. Kasten & A. T. Young,
    Appl. Opt. 28, 4735 (1989)): ``AM = 1 / (sin t + 0.50572 (t + 6.07995)^-1.6364)``, t in degrees; AM is finite
    (about 38) at the horizon, where ``1 / sin t`` would diverge."""
    air_mass = 1.0 / (jnp.sin(jnp.deg2rad(elevation_deg)) + 0.50572 * (elevation_deg + 6.07995) ** -1.6364)
    return jnp.exp(air_mass * jnp.log(zenith_transmittance))


def pointing_efficiency(slant_range_km, pointing_jitter_urad, wavelength_nm, beam_waist_m):
    """Mean fraction of the on-axis power collected when the beam centre jitters: ``1 / (1 + 4 sigma^2 / W^2)``.

    The receiver (small against the beam) collects ``exp(-2 r^2 / W^2)`` of the on-axis power when the beam
    centre misses it by ``r``; with a 2-D Gaussian miss of ``sigma = jitter x L`` per axis each axis averages to
    ``E[exp(-2 x^2 / W^2)] = (1 + 4 sigma^2 / W^2)^-1/2`` (the Gaussian integral; the jitter model of
    M. Toyoshima et al., J. Opt. Soc. Am. A 19, 567 (2002)). W is the Gaussian beam radius at the receiver
    (:func:`beam_radius_m`).
    """
    sigma_m = pointing_jitter_urad * 1e-6 * slant_range_km * 1e3
    beam_m = beam_radius_m(slant_range_km, wavelength_nm, beam_waist_m)
    return 1.0 / (1.0 + 4.0 * (sigma_m / beam_m) ** 2)


# ---------------------------------------------------------------------------------------------------------------
# Turbulence


def hufnagel_valley_cn2(height_m, ground_cn2_m_minus_2_3, rms_wind_m_per_s):
    """Refractive-index structure constant Cn^2(h) (m^-2/3) of the Hufnagel-Valley model at ``height_m`` above
    sea level (L. C. Andrews & R. L. Phillips, Laser Beam Propagation through Random Media, 2nd ed. (2005), Ch. 12);
    ``A = 1.7e-14``, ``v = 21 m/s`` give HV5/7 (r0 = 5 cm at 0.5 um, zenith)."""
    h = height_m
    return (
        0.00594 * (rms_wind_m_per_s / 27.0) ** 2 * (1e-5 * h) ** 10 * jnp.exp(-h / 1000.0)
        + 2.7e-16 * jnp.exp(-h / 1500.0)
        + ground_cn2_m_minus_2_3 * jnp.exp(-h / 100.0)
    )


_TURBULENCE_TOP_M = 30e3  # above 30 km the HV profile adds < 1e-4 of the path integral
_TURBULENCE_NODES, _TURBULENCE_WEIGHTS = _gauss_legendre_01(96)


def _turbulence_path(elevation_deg, altitude_km, ground_cn2, rms_wind, station_altitude_m, uplink: bool):
    """Rytov weights ``Cn^2 w^5/6 ds`` along the slant path and each node's distance to the receiver (m).

    The ray is followed on a spherical Earth from the station (radius ``R + h0``) up to 30 km. With ``h - h0 = t^2``
    the distance along the ray ``s(t)`` and ``ds/dt`` are smooth even at zero elevation, so one 96-node
    Gauss-Legendre rule in ``t`` resolves the 100 m ground layer and the 10 km jet-stream layer alike (1e-10
    relative to adaptive quadrature at the zenith, 1e-6 at the horizon). ``w = s`` for a plane wave received on the
    ground (downlink), ``w = s (1 - s/L)`` for a spherical wave sent from the ground to a receiver at ``L`` (uplink).
    """
    earth_m = EARTH_RADIUS_KM * 1e3
    station_m = earth_m + station_altitude_m
    sin_el = jnp.sin(jnp.deg2rad(elevation_deg))
    t_top = jnp.sqrt(_TURBULENCE_TOP_M - station_altitude_m)
    t, dt = t_top * _TURBULENCE_NODES, t_top * _TURBULENCE_WEIGHTS
    height_m = station_altitude_m + t**2
    # (R+h)^2 - (R+h0)^2 cos^2(el) = t^2 (2R + h + h0) + (R+h0)^2 sin^2(el): no cancellation, no pole at el = 0
    rise = t**2 * (station_m + earth_m + height_m)
    root = jnp.sqrt(rise + (station_m * sin_el) ** 2)
    s_m = rise / (root + station_m * sin_el)
    ds = 2.0 * t * (earth_m + height_m) / root * dt
    cn2 = hufnagel_valley_cn2(height_m, ground_cn2, rms_wind)
    if uplink:
        link_m = slant_range_km(elevation_deg, altitude_km) * 1e3
        return cn2 * (s_m * (1.0 - s_m / link_m)) ** (5.0 / 6.0) * ds, link_m - s_m
    return cn2 * s_m ** (5.0 / 6.0) * ds, s_m


def rytov_variance(
    elevation_deg, wavelength_nm, altitude_km, ground_cn2_m_minus_2_3, rms_wind_m_per_s, station_altitude_m,
    uplink: bool,
):  # fmt: skip
    """Rytov variance of the slant path: plane wave for a downlink, spherical wave for an uplink.

    ``sigma^2 = 2.25 k^(7/6) int Cn^2(h(s)) w(s)^(5/6) ds`` along the ray, ``s`` the distance from the ground end,
    ``w = s`` (plane wave, receiver on the ground) or ``w = s (1 - s/L)`` (spherical wave from the ground to a
    receiver at ``L``). With a flat Earth, ``ds = sec(zeta) dh``, these are Andrews & Phillips 2005, Ch. 12, the
    downlink plane-wave ``2.25 k^7/6 sec^11/6(zeta) int Cn^2(h) (h-h0)^5/6 dh`` and the uplink spherical-wave
    form with ``[(h-h0)(1 - (h-h0)/(H-h0))]^5/6`` (equation numbers not checked against the book); on a sphere
    they stay finite down to zero elevation, where ``sec`` diverges. ``uplink`` is a static Python bool.
    """
    weights, _ = _turbulence_path(elevation_deg, altitude_km, ground_cn2_m_minus_2_3, rms_wind_m_per_s, station_altitude_m, uplink)
    wavenumber_per_m = 2.0 * math.pi / (wavelength_nm * 1e-9)
    return 2.25 * wavenumber_per_m ** (7.0 / 6.0) * jnp.sum(weights)


def turbulence_distance_km(
    elevation_deg, altitude_km, ground_cn2_m_minus_2_3, rms_wind_m_per_s, station_altitude_m, uplink: bool
):  # fmt: skip
    """Distance from the turbulence to the receiver, weighted as the Rytov variance weights each layer (km).

    It is the path length ``L`` the aperture-averaging factor of :func:`scintillation_index` needs: a few km for
    a downlink (turbulence next to the receiving telescope), about the slant range for an uplink.
    """
    weights, distance_m = _turbulence_path(elevation_deg, altitude_km, ground_cn2_m_minus_2_3, rms_wind_m_per_s, station_altitude_m, uplink)
    return jnp.sum(weights * distance_m) / jnp.sum(weights) / 1e3


def scintillation_index(rytov_variance, receiver_radius_m, wavelength_nm, turbulence_distance_km, uplink: bool):
    """Scintillation index of the received power, weak to strong fluctuations, with aperture averaging.

    Point receiver, zero inner scale (Andrews & Phillips 2005, Ch. 9): for a plane wave, ``s`` the
    Rytov variance, ``sigma_I^2 = exp[0.49 s / (1 + 1.11 s^6/5)^7/6 + 0.51 s / (1 + 0.69 s^6/5)^5/6] - 1``; for a
    spherical wave (uplink) 1.11 becomes 0.56. A receiver of diameter D averages it by the factor of L. C. Andrews,
    J. Opt. Soc. Am. A 9, 597 (1992): ``A = [1 + c k D^2 / 4L]^-7/6``, c = 1.062 (plane wave) or 0.333 (spherical
    wave), L = :func:`turbulence_distance_km`. A is derived for weak fluctuations, which is what downlinks see.
    """
    s = rytov_variance
    strong = 0.56 if uplink else 1.11
    log_index = 0.49 * s / (1.0 + strong * s**1.2) ** (7.0 / 6.0) + 0.51 * s / (1.0 + 0.69 * s**1.2) ** (5.0 / 6.0)
    wavenumber_per_m = 2.0 * math.pi / (wavelength_nm * 1e-9)
    fresnel_ratio = wavenumber_per_m * (2.0 * receiver_radius_m) ** 2 / (4.0 * turbulence_distance_km * 1e3)
    averaging = (1.0 + (0.333 if uplink else 1.062) * fresnel_ratio) ** (-7.0 / 6.0)
    return averaging * jnp.expm1(log_index)


def lognormal_fading(normal, scintillation_index):
    """Unit-mean log-normal transmittance factors ``exp(X)``, ``X ~ N(-v/2, v)``, ``v = ln(1 + sigma_I^2)``, of
    standard normal variates ``normal``.

    The log-normal law is the weak-fluctuation model of irradiance (Andrews & Phillips 2005): it fits
    downlinks, whose turbulence sits next to a large receiving aperture that averages it to weak fluctuations.
    Beam wander, which dominates uplinks and motivates the elliptic-beam model of D. Yu. Vasylyev, A. A. Semenov &
    W. Vogel, Phys. Rev. Lett. 117, 090501 (2016), is folded into the pointing jitter instead.
    """
    log_variance = jnp.log1p(scintillation_index)
    return jnp.exp(jnp.sqrt(log_variance) * normal - log_variance / 2.0)


# ---------------------------------------------------------------------------------------------------------------
# How often a station sees the satellite


def passes_per_day(station_latitude_deg, min_elevation_deg, altitude_km, inclination_deg):
    """Expected passes per day that rise above ``min_elevation_deg``, circular orbit.

    A pass happens on a revolution whose ground track comes within ``psi_max`` (the central angle at
    ``min_elevation_deg``) of the station. Over many days the Earth's rotation makes the longitude of the orbit
    plane relative to the station uniform (it only redistributes longitudes), and the track's closest point to a
    station at latitude ``phi`` is within ``psi_max`` when ``|sin i cos phi sin Omega + cos i sin phi| < sin
    psi_max`` for the relative node longitude Omega (the station's distance to the orbit plane). Its probability
    over uniform Omega is the passes per revolution,

        (asin(clip((sin psi_max - cos i sin phi) / (sin i cos phi))) - asin(clip((-sin psi_max - ...) / ...))) / pi,

    which for small ``psi_max`` is the ground-track density result ``2 psi_max / (pi sqrt(sin^2 i - sin^2 phi))``
    (two latitude crossings per revolution; the sub-satellite latitude density ``cos phi / (pi sqrt(sin^2 i -
    sin^2 phi))`` follows from ``sin phi = sin i sin(omega t)``) and stays finite at the track's turning latitude. Passes per day = this x revolutions per day over the ground: the
    Earth's surface moves along any track at ``omega_E cos i`` (its eastward speed times the sine of the track's
    azimuth, ``cos i / cos phi``), so the satellite laps the ground at ``omega - omega_E cos i``, which is exact for
    equatorial orbits (N -/+ 1 passes a day) and within 1 % of a simulated rotating Earth at i = 97.4 degrees.
    """
    psi_max = central_angle_rad(min_elevation_deg, altitude_km)
    lat, inc = jnp.deg2rad(station_latitude_deg), jnp.deg2rad(inclination_deg)
    across = jnp.maximum(jnp.abs(jnp.sin(inc) * jnp.cos(lat)), np.finfo(np.float64).tiny)
    offset = jnp.cos(inc) * jnp.sin(lat)
    high = jnp.clip((jnp.sin(psi_max) - offset) / across, -1.0, 1.0)
    low = jnp.clip((-jnp.sin(psi_max) - offset) / across, -1.0, 1.0)
    per_revolution = (jnp.arcsin(high) - jnp.arcsin(low)) / math.pi
    ground_rate_rad_per_s = orbital_rate_rad_per_s(altitude_km) - EARTH_ROTATION_RAD_PER_S * jnp.cos(inc)
    revolutions_per_day = ground_rate_rad_per_s * SECONDS_PER_DAY / (2.0 * math.pi)
    return per_revolution * revolutions_per_day


def max_elevation_weights(n_offsets: int, min_elevation_deg, altitude_km):
    """Maximum elevations of the passes that rise above ``min_elevation_deg``, with their probabilities.

    The closest-approach ground offset of such a pass is taken uniform in ``[0, psi_max]`` (the small-``psi_max``
    limit of the uniform node longitude of :func:`passes_per_day`). Returns ``(max_elevations_deg, weights)``, each
    of shape ``[n_offsets]``: the maximum elevations at the midpoints of ``n_offsets`` equal offset intervals and
    equal weights summing to one (the midpoint rule for averaging key per pass over passes). ``n_offsets`` is static.
    """
    psi_max = central_angle_rad(min_elevation_deg, altitude_km)
    offsets = (jnp.arange(n_offsets) + 0.5) / n_offsets * psi_max
    return elevation_deg_from_central_angle(offsets, altitude_km), jnp.full(n_offsets, 1.0 / n_offsets)
