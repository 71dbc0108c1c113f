"""Free-space link physics against independent geometry, direct quadratures, closed forms and simulations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtri
from scipy import integrate, optimize, special, stats

from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.numerics import transmittance_to_db
from qkdjax.physics import free_space as fs

R_KM = 6371.0
GM_KM3_PER_S2 = 398600.4418
SIDEREAL_RAD_PER_S = 7.2921159e-5
HV57 = (1.7e-14, 21.0)  # Hufnagel-Valley 5/7: ground Cn^2 (m^-2/3), rms wind (m/s)
SATQUMA_ELEVATIONS_DEG = [10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0]
diffraction_efficiency = jax.jit(fs.diffraction_efficiency)  # compiled once for all cases
hufnagel_valley_cn2 = jax.jit(fs.hufnagel_valley_cn2)  # called point by point by scipy.quad


def _elevation_deg(satellite_km, station_km):
    """Elevation of a satellite seen from a station on the sphere, from position vectors (shape [3, ...])."""
    line = satellite_km - station_km
    sin_el = np.sum(line * station_km, axis=0) / (np.linalg.norm(line, axis=0) * np.linalg.norm(station_km, axis=0))
    return np.degrees(np.arcsin(sin_el))


# --- geometry ---------------------------------------------------------------------------------------------------


def _slant_range_by_cosine_law(elevation_deg, altitude_km):
    """Root of (R+h)^2 = R^2 + L^2 - 2 R L cos(90 deg + el), the triangle Earth centre / station / satellite."""
    b = 2.0 * R_KM * np.sin(np.radians(elevation_deg))
    return (-b + np.sqrt(b * b + 4.0 * ((R_KM + altitude_km) ** 2 - R_KM**2))) / 2.0


@pytest.mark.parametrize("elevation_deg", [0.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0])
def test_slant_range_matches_law_of_cosines(elevation_deg):
    expected = _slant_range_by_cosine_law(elevation_deg, 500.0)
    assert fs.slant_range_km(elevation_deg, 500.0) == pytest.approx(expected, rel=1e-12)


def test_slant_range_known_values():
    assert fs.slant_range_km(90.0, 500.0) == pytest.approx(500.0, rel=1e-14)
    assert fs.slant_range_km(10.0, 500.0) == pytest.approx(1694.567, abs=1e-3)
    assert fs.slant_range_km(0.0, 500.0) == pytest.approx(np.sqrt((R_KM + 500.0) ** 2 - R_KM**2), rel=1e-12)


@pytest.mark.parametrize("elevation_deg", [0.0, 5.0, 30.0, 60.0, 89.9, 90.0])
def test_central_angle_closes_the_triangle_and_inverts(elevation_deg):
    psi = fs.central_angle_rad(elevation_deg, 500.0)
    # angles of the triangle: psi + (90 + el) + nadir angle = 180, sin(nadir) = R cos(el) / (R+h)
    nadir = np.arcsin(R_KM * np.cos(np.radians(elevation_deg)) / (R_KM + 500.0))
    assert psi == pytest.approx(np.pi / 2 - np.radians(elevation_deg) - nadir, abs=1e-12)
    assert fs.elevation_deg_from_central_angle(psi, 500.0) == pytest.approx(elevation_deg, abs=1e-9)


def test_orbital_rate():
    period_s = 2 * np.pi / fs.orbital_rate_rad_per_s(500.0)
    assert period_s / 60 == pytest.approx(94.47, abs=0.01)  # 500 km above the mean radius (94.6 min: equatorial)


def _pass_half_duration_s(max_elevation_deg, min_elevation_deg, altitude_km):
    """Half-duration of a pass over a non-rotating Earth from position vectors: a circular orbit whose plane misses
    the station by the central angle where the peak elevation is reached, and a root find on the elevation."""
    station = np.array([R_KM, 0.0, 0.0])
    omega = np.sqrt(GM_KM3_PER_S2 / (R_KM + altitude_km) ** 3)

    def satellite(psi0, t):  # closest approach at t = 0, psi0 off the station across the track
        u = omega * t
        return (R_KM + altitude_km) * np.array([np.cos(psi0) * np.cos(u), np.sin(u), np.sin(psi0) * np.cos(u)])

    def peak(psi0):
        return _elevation_deg(satellite(psi0, 0.0), station) - max_elevation_deg

    psi0 = 0.0 if max_elevation_deg == 90.0 else optimize.brentq(peak, 0.0, 0.5, xtol=1e-14)
    edge = optimize.brentq(lambda t: _elevation_deg(satellite(psi0, t), station) - min_elevation_deg, 0.0, 2000.0)
    return edge, lambda t: _elevation_deg(satellite(psi0, t), station[:, None] if np.ndim(t) else station)


@pytest.mark.parametrize("max_elevation_deg", [90.0, 60.0, 25.0])
def test_pass_geometry(max_elevation_deg):
    n = 201
    time_s, elevation_deg, step_s = fs.pass_elevations_deg(max_elevation_deg, 10.0, 500.0, n)
    half_s, elevation_at = _pass_half_duration_s(max_elevation_deg, 10.0, 500.0)
    assert step_s * n == pytest.approx(2 * half_s, rel=1e-9)
    assert time_s[0] == pytest.approx(-half_s + float(step_s) / 2, rel=1e-9)
    np.testing.assert_allclose(time_s, -time_s[::-1], atol=1e-9)
    np.testing.assert_allclose(elevation_deg, elevation_deg[::-1], atol=1e-9)
    np.testing.assert_allclose(elevation_deg, elevation_at(np.asarray(time_s)), atol=1e-8)
    assert elevation_deg[n // 2] == pytest.approx(max_elevation_deg, abs=1e-9)  # the middle sample is t = 0
    assert np.all(np.diff(elevation_deg[: n // 2 + 1]) > 0)
    assert elevation_at(half_s) == pytest.approx(10.0, abs=1e-9)
    assert 10.0 < elevation_deg.min() < 10.3


def test_overhead_pass_lasts_about_seven_minutes():
    _, _, step_s = fs.pass_elevations_deg(90.0, 10.0, 500.0, 10)
    psi_max = np.arccos(R_KM * np.cos(np.radians(10.0)) / (R_KM + 500.0)) - np.radians(10.0)
    omega = np.sqrt(GM_KM3_PER_S2 / (R_KM + 500.0) ** 3)
    assert 10 * step_s == pytest.approx(2 * psi_max / omega, rel=1e-12)
    assert 10 * step_s / 60 == pytest.approx(7.38, abs=0.01)


def test_pass_below_min_elevation_is_empty():
    time_s, elevation_deg, step_s = fs.pass_elevations_deg(8.0, 10.0, 500.0, 7)
    assert step_s == 0.0
    assert np.all(np.asarray(time_s) == 0.0) and np.all(np.isfinite(elevation_deg))


# --- diffraction --------------------------------------------------------------------------------------------------


def _diffraction_by_quad(range_km, wavelength_nm, waist_m, tx_radius_m, rx_radius_m):
    """The same paraxial Fresnel model, integrated directly with scipy (the SatQuMA recipe plus the phase)."""
    k, z = 2 * np.pi / (wavelength_nm * 1e-9), range_km * 1e3

    def mode(r):
        return np.sqrt(2 / np.pi) / waist_m * np.exp(-((r / waist_m) ** 2))

    def intensity(rho):
        def part(trig):
            return integrate.quad(
                lambda r: mode(r) * trig(k * r * r / (2 * z)) * special.j0(k * r * rho / z) * r,
                0, tx_radius_m, epsabs=0, epsrel=1e-11, limit=400,
            )[0]  # fmt: skip

        return (k / z) ** 2 * rho * (part(np.cos) ** 2 + part(np.sin) ** 2)

    received = 2 * np.pi * integrate.quad(intensity, 0, rx_radius_m, epsabs=0, epsrel=1e-10, limit=400)[0]
    return received / -np.expm1(-2 * (tx_radius_m / waist_m) ** 2)


@pytest.mark.parametrize("elevation_deg", SATQUMA_ELEVATIONS_DEG)
def test_diffraction_satquma_default_link(elevation_deg):
    range_km = _slant_range_by_cosine_law(elevation_deg, 500.0)
    ours = diffraction_efficiency(range_km, 810.0, 0.15, 0.15, 0.6)
    reference = _diffraction_by_quad(range_km, 810.0, 0.15, 0.15, 0.6)
    assert abs(transmittance_to_db(ours) - transmittance_to_db(reference)) < 0.05
    assert ours == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize(
    "link",
    [
        (300.0, 400.0, 1.0, 1.0, 1.0),  # near field: Fresnel phase 26 rad, 8 rings across the receiver
        (300.0, 400.0, 0.5, 1.0, 0.05),  # receiver inside the beam
        (1000.0, 810.0, 1.0, 0.15, 1.0),  # uniformly lit aperture: Airy rings over the receiver
        (3000.0, 1600.0, 0.05, 0.05, 0.05),  # far field, tiny efficiency
        (600.0, 1550.0, 0.05, 0.5, 0.3),  # Gaussian well inside a large aperture
    ],
)
def test_diffraction_matches_direct_quadrature(link):
    assert diffraction_efficiency(*link) == pytest.approx(_diffraction_by_quad(*link), rel=1e-6)


@pytest.mark.parametrize("range_km, rx_radius_m", [(300.0, 0.3), (300.0, 1.0), (2000.0, 0.5), (2000.0, 3.0)])
def test_untruncated_gaussian_beam_limit(range_km, rx_radius_m):
    # a >> w0: a free Gaussian beam, collected fraction 1 - exp(-2 b^2 / W(L)^2), near (z_R = 157 km) and far field
    waist_m, wavelength_nm = 0.2, 800.0
    w_m = waist_m * np.sqrt(1 + (range_km * 1e3 * wavelength_nm * 1e-9 / (np.pi * waist_m**2)) ** 2)
    assert fs.beam_radius_m(range_km, wavelength_nm, waist_m) == pytest.approx(w_m, rel=1e-14)
    expected = -np.expm1(-2 * rx_radius_m**2 / w_m**2)
    assert diffraction_efficiency(range_km, wavelength_nm, waist_m, 1.2, rx_radius_m) == pytest.approx(expected, rel=1e-9)


def test_bessel_functions():
    x = np.concatenate([np.linspace(0.0, 40.0, 4001), np.geomspace(40.0, 1e5, 500)])
    j0, j1 = jax.jit(fs._bessel_j0_j1)(x)
    np.testing.assert_allclose(j0, special.j0(x), rtol=0, atol=1e-11)
    np.testing.assert_allclose(j1, special.j1(x), rtol=0, atol=1e-11)


# --- atmosphere and pointing --------------------------------------------------------------------------------------


def test_atmospheric_transmittance():
    elevations = np.linspace(0.0, 90.0, 91)
    eta = np.asarray(fs.atmospheric_transmittance(elevations, 0.8))
    assert eta[-1] == pytest.approx(0.8, rel=3e-4)  # Kasten-Young air mass at zenith: 0.9997
    assert np.all(np.diff(eta) > 0) and eta[0] > 0
    air_mass_60 = 1 / (np.sin(np.radians(60)) + 0.50572 * 66.07995**-1.6364)
    assert eta[60] == pytest.approx(0.8**air_mass_60, rel=1e-14)
    assert air_mass_60 == pytest.approx(1 / np.sin(np.radians(60)), rel=1e-3)  # plane-parallel limit


def test_pointing_efficiency():
    w_m = float(fs.beam_radius_m(1000.0, 810.0, 0.15))
    assert fs.pointing_efficiency(1000.0, 0.0, 810.0, 0.15) == 1.0
    sigma_m = 2e-6 * 1e6  # 2 urad at 1000 km
    assert fs.pointing_efficiency(1000.0, 2.0, 810.0, 0.15) == pytest.approx(1 / (1 + 4 * sigma_m**2 / w_m**2))
    # Monte Carlo of the miss: the mean of exp(-2 r^2 / W^2) over a 2-D Gaussian miss
    miss = np.random.default_rng(0).normal(0.0, sigma_m, size=(2, 400_000))
    collected = np.exp(-2 * np.sum(miss**2, axis=0) / w_m**2)
    assert fs.pointing_efficiency(1000.0, 2.0, 810.0, 0.15) == pytest.approx(collected.mean(), rel=5e-3)
    assert fs.pointing_efficiency(1000.0, 1e3, 810.0, 0.15) == pytest.approx(w_m**2 / (4 * 1e3**2), rel=1e-3)


# --- turbulence ---------------------------------------------------------------------------------------------------


def test_hufnagel_valley_5_7_has_a_5_cm_fried_parameter():
    # the name HV5/7: r0 = (0.423 k^2 int Cn^2 dh)^(-3/5) = 5 cm at 0.5 um, zenith
    cn2 = lambda h: float(hufnagel_valley_cn2(h, *HV57))
    integral = integrate.quad(cn2, 0, 30e3, points=[300, 10e3], epsabs=0)[0]
    r0_m = (0.423 * (2 * np.pi / 0.5e-6) ** 2 * integral) ** (-3 / 5)
    assert r0_m == pytest.approx(0.05, rel=0.05)


def _rytov_by_quad(elevation_deg, wavelength_nm, altitude_km, station_m, uplink):
    """2.25 k^7/6 int Cn^2(h(s)) w(s)^5/6 ds along the ray, h(s) from the law of cosines, with scipy.quad."""
    r0 = R_KM * 1e3 + station_m
    sin_el = np.sin(np.radians(elevation_deg))
    link_m = 1e3 * np.sqrt((R_KM + altitude_km) ** 2 - (R_KM * np.cos(np.radians(elevation_deg))) ** 2)
    link_m -= 1e3 * R_KM * sin_el

    def height_m(s):
        return np.sqrt(r0**2 + s * s + 2 * r0 * s * sin_el) - R_KM * 1e3

    top = optimize.brentq(lambda s: height_m(s) - 30e3, 0, 2e6)
    ground = optimize.brentq(lambda s: height_m(s) - station_m - 500, 0, 2e6)

    def integrand(s):
        weight = s * (1 - s / link_m) if uplink else s
        return float(hufnagel_valley_cn2(height_m(s), *HV57)) * weight ** (5 / 6)

    total = integrate.quad(integrand, 0, top, points=[ground], epsabs=0, epsrel=1e-10, limit=400)[0]
    return 2.25 * (2 * np.pi / (wavelength_nm * 1e-9)) ** (7 / 6) * total


@pytest.mark.parametrize(
    "elevation_deg, station_m, uplink", [(90.0, 0.0, False), (30.0, 0.0, False), (10.0, 2400.0, False),
                                         (0.0, 0.0, False), (20.0, 0.0, True)]
)  # fmt: skip
def test_rytov_variance_matches_direct_quadrature(elevation_deg, station_m, uplink):
    ours = fs.rytov_variance(elevation_deg, 810.0, 500.0, *HV57, station_m, uplink)
    assert ours == pytest.approx(_rytov_by_quad(elevation_deg, 810.0, 500.0, station_m, uplink), rel=1e-5)


def test_rytov_variance_grows_towards_the_horizon_and_matches_flat_earth():
    elevations = np.linspace(0.0, 90.0, 46)
    rytov = np.asarray(jax.vmap(lambda e: fs.rytov_variance(e, 810.0, 500.0, *HV57, 0.0, False))(elevations))
    assert np.all(np.isfinite(rytov)) and np.all(np.diff(rytov) < 0)
    # Andrews & Phillips' flat-Earth form: 2.25 k^7/6 sec^11/6(zenith) int Cn^2 h^5/6 dh
    k = 2 * np.pi / 810e-9
    zenith = 2.25 * k ** (7 / 6) * integrate.quad(
        lambda h: float(hufnagel_valley_cn2(h, *HV57)) * h ** (5 / 6), 0, 30e3, points=[500, 10e3], epsabs=0
    )[0]  # fmt: skip
    assert rytov[-1] == pytest.approx(zenith, rel=1e-5)
    assert fs.rytov_variance(45.0, 810.0, 500.0, *HV57, 0.0, False) == pytest.approx(zenith * np.sqrt(2) ** (11 / 6), rel=2e-3)


def test_scintillation_index_limits():
    tiny_aperture = 1e-6
    # weak fluctuations: sigma_I^2 -> sigma_R^2; strong: the plane-wave index saturates towards 1
    assert fs.scintillation_index(1e-4, tiny_aperture, 810.0, 5.0, False) == pytest.approx(1e-4, rel=1e-3)
    strong = fs.scintillation_index(100.0, tiny_aperture, 810.0, 5.0, False)
    assert 1.0 < strong < 1.3
    # aperture averaging only reduces it, more for wider apertures and nearer turbulence
    indices = [fs.scintillation_index(0.2, r, 810.0, 5.0, False) for r in (0.01, 0.1, 0.5)]
    assert 0.2 * (1 - 1e-3) > indices[0] > indices[1] > indices[2] > 0
    assert fs.scintillation_index(0.2, 0.1, 810.0, 2.0, False) < indices[1]


@pytest.mark.device
@pytest.mark.parametrize("seed", [0, 1])
def test_lognormal_fading_is_unit_mean_log_normal(seed):
    index = 0.3
    normal = ndtri(stream_uniforms(jax.random.key(seed), 1_000_000))
    samples = np.asarray(fs.lognormal_fading(normal, index))
    log_variance = np.log1p(index)
    assert samples.mean() == pytest.approx(1.0, abs=5 * np.sqrt(index / samples.size))
    assert stats.kstest(np.log(samples), "norm", args=(-log_variance / 2, np.sqrt(log_variance))).pvalue > 0.01
    assert np.var(samples) == pytest.approx(index, rel=0.02)


# --- pass statistics ----------------------------------------------------------------------------------------------


def _simulate_passes(latitude_deg, min_elevation_deg, altitude_km, inclination_deg, days=10.0, n_stations=36):
    """Passes per day and their peak elevations for stations at one latitude, evenly spread in longitude, under a
    circular orbit over a rotating Earth (10 s steps)."""
    t = np.arange(0.0, days * 86400.0, 10.0)
    u = np.sqrt(GM_KM3_PER_S2 / (R_KM + altitude_km) ** 3) * t
    inc, lat = np.radians(inclination_deg), np.radians(latitude_deg)
    satellite = (R_KM + altitude_km) * np.stack([np.cos(u), np.sin(u) * np.cos(inc), np.sin(u) * np.sin(inc)])
    passes, peaks = 0, []
    for lon0 in np.linspace(0.0, 2 * np.pi, n_stations, endpoint=False):
        lon = lon0 + SIDEREAL_RAD_PER_S * t
        station = R_KM * np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.full_like(t, np.sin(lat))])
        elevation = _elevation_deg(satellite, station)
        edges = np.diff(np.r_[False, elevation > min_elevation_deg, False].astype(int))
        rises, sets = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        passes += rises.size
        peaks += [elevation[a:b].max() for a, b in zip(rises, sets)]
    return passes / (days * n_stations), np.array(peaks)


@pytest.mark.parametrize("min_elevation_deg", [10.0, 30.0])
@pytest.mark.parametrize("latitude_deg", [0.0, 20.0, 40.0, 60.0])
def test_passes_per_day_and_peak_elevations_match_simulation(latitude_deg, min_elevation_deg):
    simulated, peaks = _simulate_passes(latitude_deg, min_elevation_deg, 500.0, 97.4)
    model = fs.passes_per_day(latitude_deg, min_elevation_deg, 500.0, 97.4)
    assert model == pytest.approx(simulated, rel=0.15)
    max_elevations, weights = fs.max_elevation_weights(64, min_elevation_deg, 500.0)
    assert np.sum(weights) == pytest.approx(1.0, rel=1e-14)
    assert np.all(np.asarray(max_elevations) > min_elevation_deg) and np.all(np.diff(max_elevations) < 0)
    assert float(max_elevations @ weights) == pytest.approx(peaks.mean(), abs=2.0)


def test_passes_per_day_equatorial_orbits():
    # a station on the equator under an equatorial orbit sees every lap over the ground: N - 1 (N + 1 retrograde)
    laps = np.sqrt(GM_KM3_PER_S2 / (R_KM + 500.0) ** 3) * 86400 / (2 * np.pi)
    assert fs.passes_per_day(0.0, 10.0, 500.0, 0.0) == pytest.approx(laps - 86400 / 86164.0905, rel=1e-6)
    assert fs.passes_per_day(0.0, 10.0, 500.0, 180.0) == pytest.approx(laps + 86400 / 86164.0905, rel=1e-6)
    assert fs.passes_per_day(89.0, 10.0, 500.0, 51.6) == 0.0


# --- as the sweep uses them ---------------------------------------------------------------------------------------


def test_jit_vmap_finite_at_the_elevation_limits():
    elevations = jnp.array([0.0, 1e-9, 45.0, 90.0 - 1e-9, 90.0])

    def point(elevation_deg):
        range_km = fs.slant_range_km(elevation_deg, 500.0)
        _, pass_elevations, step_s = fs.pass_elevations_deg(elevation_deg, 0.0, 500.0, 5)
        rytov = fs.rytov_variance(elevation_deg, 810.0, 500.0, *HV57, 0.0, False)
        distance = fs.turbulence_distance_km(elevation_deg, 500.0, *HV57, 0.0, False)
        return jnp.concatenate([
            jnp.stack([range_km, fs.central_angle_rad(elevation_deg, 500.0), step_s, rytov, distance,
                       fs.diffraction_efficiency(range_km, 810.0, 0.15, 0.15, 0.6),
                       fs.atmospheric_transmittance(elevation_deg, 0.8),
                       fs.pointing_efficiency(range_km, 1.0, 810.0, 0.15),
                       fs.scintillation_index(rytov, 0.6, 810.0, distance, False),
                       fs.passes_per_day(40.0, elevation_deg, 500.0, 97.4)]),
            pass_elevations,
        ])  # fmt: skip

    values = np.asarray(jax.jit(jax.vmap(point))(elevations))
    assert values.dtype == np.float64 and np.all(np.isfinite(values))
