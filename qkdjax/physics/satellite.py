"""A satellite link as a whole: the free-space models composed at one elevation, and their fading.

Mean transmittance (the SatQuMA loss budget, see shared/reference/satellite_downlink.json, with pointing added):

    eta = eta_diffraction(L) * eta_atmosphere(elevation) * eta_pointing(L) * 10^(-intrinsic_loss_db / 10)

Fading (turbulence Monte Carlo): per time step the transmittance is ``eta`` with its mean pointing factor
replaced by an instantaneous one and multiplied by a unit-mean scintillation factor:

- pointing: the beam centre misses the receiver by r, a 2-D Gaussian of sigma = jitter x L per axis, so r^2 is
  exponential with mean 2 sigma^2 and the collected fraction is exp(-2 r^2 / W^2) for a beam of radius W >> the
  aperture (mean 1 / (1 + 4 sigma^2 / W^2), ``free_space.pointing_efficiency``); on uplinks beam wander adds
  to the jitter;
- scintillation: log-normal with the scintillation index of the path (``free_space.lognormal_fading``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from qkdjax.numerics import transmittance_to_db
from qkdjax.physics import free_space

DIFFRACTION_TABLE_NODES = 32  # log-range nodes: linear interpolation within 0.003 dB (tests/test_satellite.py)


class DiffractionTable(NamedTuple):
    """Diffraction loss at log-spaced slant ranges from zenith to the horizon of a pass (``min_elevation_deg``).

    A pass needs the loss at thousands of ranges per grid point (time steps x passes x trials); the quadrature
    of ``free_space.diffraction_efficiency`` at 32 ranges, interpolated in log range, serves them all.
    """

    log_range_km: jax.Array
    loss_db: jax.Array


def diffraction_table(link) -> DiffractionTable:
    nearest, farthest = link.altitude_km, free_space.slant_range_km(link.min_elevation_deg, link.altitude_km)
    log_range_km = jnp.linspace(jnp.log(nearest), jnp.log(farthest), DIFFRACTION_TABLE_NODES)
    efficiency = jax.vmap(free_space.diffraction_efficiency, (0, None, None, None, None))(
        jnp.exp(log_range_km), link.wavelength_nm, link.beam_waist_m, link.transmitter_radius_m, link.receiver_radius_m
    )
    return DiffractionTable(log_range_km, transmittance_to_db(efficiency))


def atmospheric_transmittance(link, elevation_deg):
    """The link's measured table (``link.atmosphere_table``, interpolated linearly in elevation) where it has one,
    else the Kasten-Young air mass at ``link.zenith_transmittance`` (``free_space.atmospheric_transmittance``)."""
    if link.atmosphere_table is None:
        return free_space.atmospheric_transmittance(elevation_deg, link.zenith_transmittance)
    elevations, transmittances = (jnp.asarray(column) for column in link.atmosphere_table)
    return jnp.interp(elevation_deg, elevations, transmittances)


def loss_budget_db(link, elevation_deg, table: DiffractionTable | None = None) -> dict[str, jax.Array]:
    """Slant range and each loss of the mean transmittance, in dB, at one elevation (vmap for several).

    The diffraction loss is computed directly, or interpolated from ``table`` when one is given.
    """
    range_km = free_space.slant_range_km(elevation_deg, link.altitude_km)
    if table is None:
        diffraction = free_space.diffraction_efficiency(
            range_km, link.wavelength_nm, link.beam_waist_m, link.transmitter_radius_m, link.receiver_radius_m
        )
        diffraction_db = transmittance_to_db(diffraction)
    else:
        diffraction_db = jnp.interp(jnp.log(range_km), table.log_range_km, table.loss_db)
    atmosphere = atmospheric_transmittance(link, elevation_deg)
    pointing = free_space.pointing_efficiency(range_km, link.pointing_jitter_urad, link.wavelength_nm, link.beam_waist_m)
    losses = {
        "diffraction_loss_db": diffraction_db,
        "atmospheric_loss_db": transmittance_to_db(atmosphere),
        "pointing_loss_db": transmittance_to_db(pointing),
        "intrinsic_loss_db": link.intrinsic_loss_db,
    }
    return {"slant_range_km": range_km, **losses, "total_loss_db": sum(losses.values())}


def mean_transmittance(link, elevation_deg, table: DiffractionTable | None = None):
    """Mean channel transmittance (Bob's detector efficiency excluded) at ``elevation_deg``."""
    return 10.0 ** (-loss_budget_db(link, elevation_deg, table)["total_loss_db"] / 10.0)


class Fading(NamedTuple):
    """What the fading of one time step depends on (deterministic; sampled by ``faded_transmittance``)."""

    transmittance_without_pointing: jax.Array
    beam_radius_m: jax.Array
    miss_sigma_m: jax.Array  # pointing error at the receiver, per axis
    scintillation_index: jax.Array


def fading(link, elevation_deg, table: DiffractionTable | None = None) -> Fading:
    """The fading statistics of the link at one elevation."""
    budget = loss_budget_db(link, elevation_deg, table)
    range_km = budget["slant_range_km"]
    path = (elevation_deg, link.altitude_km, link.ground_cn2_m_minus_2_3, link.rms_wind_m_per_s, link.station_altitude_m)
    rytov = free_space.rytov_variance(path[0], link.wavelength_nm, *path[1:], link.uplink)
    distance_km = free_space.turbulence_distance_km(*path, link.uplink)
    return Fading(
        10.0 ** (-(budget["total_loss_db"] - budget["pointing_loss_db"]) / 10.0),
        free_space.beam_radius_m(range_km, link.wavelength_nm, link.beam_waist_m),
        link.pointing_jitter_urad * 1e-6 * range_km * 1e3,
        free_space.scintillation_index(rytov, link.receiver_radius_m, link.wavelength_nm, distance_km, link.uplink),
    )


def faded_transmittance(uniforms, statistics: Fading):
    """Random transmittances, pointing and scintillation sampled around the mean budget, from ``uniforms`` in
    (0, 1) shaped ``[2, *statistics' shape]`` by inversion: ``[0]`` the pointing miss, ``[1]`` the scintillation."""
    miss_squared = -2.0 * statistics.miss_sigma_m**2 * jnp.log(uniforms[0])  # r^2: exponential, mean 2 sigma^2
    scintillation = free_space.lognormal_fading(ndtri(uniforms[1]), statistics.scintillation_index)
    return statistics.transmittance_without_pointing * jnp.exp(-2.0 * miss_squared / statistics.beam_radius_m**2) * scintillation
