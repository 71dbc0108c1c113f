"""Satellite-ground optical links (qkdjax.physics.free_space, qkdjax.physics.satellite)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np

from qkdjax.parameters import NON_NEGATIVE, POSITIVE, PROBABILITY, Column, Constraint, Link, Range, number, table
from qkdjax.physics import satellite
from qkdjax.sweep import Output

ANGLE = Range(0.0, 90.0)

LOSS_BUDGET_OUTPUTS: Mapping[str, Output] = {
    "slant_range_km": Output("km", "slant range to the satellite"),
    "diffraction_loss_db": Output("dB", "diffraction loss (truncated Gaussian beam, receive aperture)", role="loss_term"),
    "atmospheric_loss_db": Output("dB", "atmospheric extinction", role="loss_term"),
    "pointing_loss_db": Output("dB", "mean pointing-jitter loss", role="loss_term"),
    "total_loss_db": Output("dB", "total channel loss (diffraction, atmosphere, pointing, intrinsic)", role="loss_total"),
}


class SatelliteLink(Link):
    """Satellite-ground optical link (down: satellite transmits; up: ground station transmits).

    With ``elevation_deg`` set the link is evaluated at that elevation; left unset (null), over a whole pass that
    peaks at ``max_elevation_deg`` (key per pass, per day, per year). Models: qkdjax.physics.free_space.
    """

    types = ("satellite_downlink", "satellite_uplink")
    point_outputs: ClassVar[Mapping[str, Output]] = LOSS_BUDGET_OUTPUTS
    altitude_km: Any = number("km", "satellite altitude (circular orbit)", Range(150.0, 40000.0))
    elevation_deg: Any = number("degree", "elevation of the satellite", ANGLE, optional=True, role="elevation")
    max_elevation_deg: Any = number("degree", "maximum elevation of the pass", ANGLE, role="elevation")
    min_elevation_deg: Any = number("degree", "elevation at which the link starts and stops", Range(0.0, 90.0, high_closed=False))
    wavelength_nm: Any = number("nm", "wavelength", Range(100.0, 20000.0))
    transmitter_radius_m: Any = number("m", "transmit aperture radius", Range(0.0, 10.0, low_closed=False))
    beam_waist_m: Any = number("m", "Gaussian beam waist at the transmitter", Range(0.0, 10.0, low_closed=False))
    receiver_radius_m: Any = number("m", "receive aperture radius", Range(0.0, 10.0, low_closed=False))
    intrinsic_loss_db: Any = number("dB", "fixed optical loss of both terminals", NON_NEGATIVE)
    zenith_transmittance: Any = number("1", "atmospheric transmittance at zenith", Range(0.0, 1.0, low_closed=False))
    atmosphere_table: Any = table(
        "measured atmospheric transmittance vs elevation (e.g. MODTRAN), in place of the air-mass model",
        (Column("elevation_deg", "degree", ANGLE), Column("transmittance", "1", Range(0.0, 1.0, low_closed=False))),
    )
    pointing_jitter_urad: Any = number("urad", "pointing jitter per axis (rms)", NON_NEGATIVE)
    ground_cn2_m_minus_2_3: Any = number("m^(-2/3)", "turbulence strength Cn2 at ground level", NON_NEGATIVE)
    rms_wind_m_per_s: Any = number("m/s", "rms high-altitude wind speed (Hufnagel-Valley)", NON_NEGATIVE)
    station_altitude_m: Any = number("m", "ground station altitude", Range(0.0, 6000.0))
    background_rate_hz: Any = number("Hz", "background counts per detector (night or day sky)", NON_NEGATIVE)
    detection_window_ns: Any = number("ns", "detection time window per pulse", POSITIVE)
    station_latitude_deg: Any = number("degree", "ground station latitude", Range(-80.0, 80.0))
    inclination_deg: Any = number("degree", "orbit inclination", Range(0.0, 180.0))
    cloud_free_prob: Any = number("1", "probability that a pass is cloud free", PROBABILITY)

    constraints = (
        Constraint(
            "link.atmosphere_table spanning link.min_elevation_deg to 90 degree",
            ("atmosphere_table", "min_elevation_deg"),
            lambda rows, low: (rows[0][0] <= low) & (rows[0][-1] >= 90.0),
        ),
        Constraint(
            "link.atmosphere_table spanning link.elevation_deg",
            ("atmosphere_table", "elevation_deg"),
            lambda rows, elevation: rows[0][0] <= elevation,
        ),
        # The diffraction quadrature holds 0.001 dB up to ~60 rad of near-field phase at the transmit aperture.
        Constraint(
            "near-field phase pi link.transmitter_radius_m^2 / (link.wavelength_nm link.altitude_km) <= 50 rad",
            ("transmitter_radius_m", "wavelength_nm", "altitude_km"),
            lambda a, wavelength, h: np.pi * a**2 / (wavelength * 1e-9 * h * 1e3) <= 50.0,
        ),
        Constraint(
            "link.min_elevation_deg < link.max_elevation_deg",
            ("min_elevation_deg", "max_elevation_deg"),
            lambda low, high: low < high,
        ),
    )

    @classmethod
    def scenario(cls, static):
        """A whole pass where ``elevation_deg`` is unset, else the link at one elevation."""
        return "pass" if static.get("link.elevation_deg", 1.0) is None else "point"

    @property
    def uplink(self) -> bool:
        return self.type == "satellite_uplink"

    def transmittance(self):
        """Mean transmittance at ``elevation_deg`` (a link evaluated at one elevation)."""
        return satellite.mean_transmittance(self, self.elevation_deg)

    def background_count_prob(self, rep_rate_hz):
        """Probability of a background count per detector per gate: Poisson counts in the detection window."""
        del rep_rate_hz
        return -jnp.expm1(-self.background_rate_hz * self.detection_window_ns * 1e-9)

    def point_metrics(self):
        """The loss budget at ``elevation_deg`` (``LOSS_BUDGET_OUTPUTS``)."""
        budget = satellite.loss_budget_db(self, self.elevation_deg)
        return {name: budget[name] for name in LOSS_BUDGET_OUTPUTS}
