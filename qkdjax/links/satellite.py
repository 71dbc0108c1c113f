"""Satellite-ground optical links (qkdjax.physics.free_space, qkdjax.physics.satellite)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from qkdjax.config import ConfigError
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


PASS_PEAK = Constraint(
    "link.min_elevation_deg < link.max_elevation_deg", ("min_elevation_deg", "max_elevation_deg"), lambda low, high: low < high
)


class SatelliteOptics(Link):
    """What every satellite-to-ground optical link has: the orbit, the terminals, the atmosphere and the receiver's
    background (models: qkdjax.physics.free_space, composed in qkdjax.physics.satellite)."""

    altitude_km: Any = number("km", "satellite altitude (circular orbit)", Range(150.0, 40000.0))
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
    cloud_free_prob: Any = number("1", "probability that a pass is cloud free (at every station it needs)", PROBABILITY)

    constraints = (
        Constraint(
            "link.atmosphere_table spanning link.min_elevation_deg to 90 degree",
            ("atmosphere_table", "min_elevation_deg"),
            lambda rows, low: (rows[0][0] <= low) & (rows[0][-1] >= 90.0),
        ),
        # The diffraction quadrature holds 0.001 dB up to ~60 rad of near-field phase at the transmit aperture.
        Constraint(
            "near-field phase pi link.transmitter_radius_m^2 / (link.wavelength_nm link.altitude_km) <= 50 rad",
            ("transmitter_radius_m", "wavelength_nm", "altitude_km"),
            lambda a, wavelength, h: np.pi * a**2 / (wavelength * 1e-9 * h * 1e3) <= 50.0,
        ),
    )

    @property
    def uplink(self) -> bool:
        return False

    def background_count_prob(self, detector_efficiency, detectors):
        """Probability of a background count per detector per gate: Poisson counts in the detection window
        (``background_rate_hz`` is each detector's count rate already)."""
        del detector_efficiency, detectors
        return -jnp.expm1(-self.background_rate_hz * self.detection_window_ns * 1e-9)


class SatelliteLink(SatelliteOptics):
    """Satellite-ground optical link (down: satellite transmits; up: ground station transmits).

    With ``elevation_deg`` set the link is evaluated at that elevation; left unset (null), over a whole pass that
    peaks at ``max_elevation_deg`` (key per pass, per day, per year). Models: qkdjax.physics.free_space.
    """

    types = ("satellite_downlink", "satellite_uplink")
    point_outputs: ClassVar[Mapping[str, Output]] = LOSS_BUDGET_OUTPUTS
    elevation_deg: Any = number("degree", "elevation of the satellite", ANGLE, optional=True, role="elevation")
    max_elevation_deg: Any = number("degree", "maximum elevation of the pass", ANGLE, role="elevation")
    station_latitude_deg: Any = number("degree", "ground station latitude", Range(-80.0, 80.0))
    inclination_deg: Any = number("degree", "orbit inclination", Range(0.0, 180.0))

    constraints = (
        *SatelliteOptics.constraints,
        Constraint(
            "link.atmosphere_table spanning link.elevation_deg",
            ("atmosphere_table", "elevation_deg"),
            lambda rows, elevation: rows[0][0] <= elevation,
        ),
        PASS_PEAK,
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

    def point_metrics(self):
        """The loss budget at ``elevation_deg`` (``LOSS_BUDGET_OUTPUTS``)."""
        budget = satellite.loss_budget_db(self, self.elevation_deg)
        return {name: budget[name] for name in LOSS_BUDGET_OUTPUTS}


DOUBLE_LOSS_OUTPUTS: Mapping[str, Output] = {
    "alice_total_loss_db": Output("dB", "total channel loss of Alice's downlink", role="loss_term"),
    "bob_total_loss_db": Output("dB", "total channel loss of Bob's downlink", role="loss_term"),
    "two_photon_loss_db": Output("dB", "two-photon loss: both downlinks' channel losses", role="loss_total"),
}


class SatelliteDoubleDownlink(SatelliteOptics):
    """One satellite, two ground stations: a pair source on the satellite sends one photon of each pair down to each
    (J. Yin et al., Science 356, 1140 (2017); Nature 582, 501 (2020)). Each arm is the downlink of
    ``SatelliteLink`` (diffraction, atmosphere, pointing, turbulence, background) at its station's elevation, both
    stations built alike but for a lumped loss of their own.

    With both elevations set the link is evaluated there; unset (null), over the part of a pass in which both
    stations see the satellite: the ground track crosses the stations' baseline at right angles,
    ``crossing_offset_km`` from its midpoint towards Bob (``free_space.common_pass_elevations_deg``). Such passes
    happen ``passes_per_day`` times a day (an input: it depends on the orbit, the sites and the operating hours);
    ``passes_per_block`` of them form one finite-key block, each contributing the key of the block over that number.
    """

    types = ("satellite_double_downlink",)
    arms: ClassVar[int] = 2
    point_outputs: ClassVar[Mapping[str, Output]] = DOUBLE_LOSS_OUTPUTS
    alice_elevation_deg: Any = number("degree", "elevation of the satellite seen by Alice", ANGLE, optional=True, role="elevation")
    bob_elevation_deg: Any = number("degree", "elevation of the satellite seen by Bob", ANGLE, optional=True)
    station_separation_km: Any = number("km", "ground distance between the two stations", Range(0.0, 20000.0), role="distance")
    crossing_offset_km: Any = number(
        "km", "where the ground track crosses the baseline, from its midpoint towards Bob", Range(-10000.0, 10000.0)
    )
    alice_extra_loss_db: Any = number("dB", "extra lumped loss of Alice's station", NON_NEGATIVE, default=0.0)
    bob_extra_loss_db: Any = number("dB", "extra lumped loss of Bob's station", NON_NEGATIVE, default=0.0)
    passes_per_day: Any = number("1/d", "passes per day over both stations (both above min_elevation_deg)", NON_NEGATIVE)
    passes_per_block: Any = number(
        "1",
        "passes whose coincidences form one finite-key block (a faint link accumulates them)",
        Range(1.0, 1e4, integer=True),
        default=1.0,
    )

    constraints = (
        *SatelliteOptics.constraints,
        Constraint(
            "link.alice_elevation_deg >= link.min_elevation_deg",
            ("alice_elevation_deg", "min_elevation_deg"),
            lambda elevation, low: elevation >= low,
        ),
        Constraint(
            "link.bob_elevation_deg >= link.min_elevation_deg",
            ("bob_elevation_deg", "min_elevation_deg"),
            lambda elevation, low: elevation >= low,
        ),
    )

    @classmethod
    def scenario(cls, static):
        """The part of a pass both stations see where the elevations are unset, else the link at those elevations."""
        unset = [static.get(f"link.{side}_elevation_deg", 1.0) is None for side in ("alice", "bob")]
        if unset[0] != unset[1]:
            raise ConfigError(
                "link.alice_elevation_deg and link.bob_elevation_deg: set both (the link at those elevations) or neither (a pass)"
            )
        return "double_pass" if unset[0] else "point"

    def extra_loss_db(self):
        return jnp.stack([self.alice_extra_loss_db, self.bob_extra_loss_db])

    def arm_loss_db(self, elevations_deg, table=None):
        """Total loss of each arm at its station's elevation ``[Alice's, Bob's]``."""
        budget = jax.vmap(satellite.loss_budget_db, (None, 0, None))(self, elevations_deg, table)
        return budget["total_loss_db"] + self.extra_loss_db()

    def transmittance(self):
        """Mean transmittance of both arms at the stations' elevations."""
        return 10.0 ** (-self.arm_loss_db(jnp.stack([self.alice_elevation_deg, self.bob_elevation_deg])) / 10.0)

    def point_metrics(self):
        alice, bob = self.arm_loss_db(jnp.stack([self.alice_elevation_deg, self.bob_elevation_deg]))
        return {"alice_total_loss_db": alice, "bob_total_loss_db": bob, "two_photon_loss_db": alice + bob}


class SatelliteTrustedRelay(SatelliteOptics):
    """A trusted satellite relaying key between two ground stations: it runs a downlink QKD pass with each station
    on its own passes (``SatelliteLink`` with that station's latitude), keeps both keys and announces their XOR, so
    the stations share the smaller of the two key supplies and trust the satellite with all of it."""

    types = ("satellite_trusted_relay",)
    max_elevation_deg: Any = number("degree", "maximum elevation of the pass whose key per pass is reported", ANGLE, role="elevation")
    alice_latitude_deg: Any = number("degree", "Alice's station latitude", Range(-80.0, 80.0))
    bob_latitude_deg: Any = number("degree", "Bob's station latitude", Range(-80.0, 80.0))
    inclination_deg: Any = number("degree", "orbit inclination", Range(0.0, 180.0))

    constraints = (*SatelliteOptics.constraints, PASS_PEAK)

    @classmethod
    def scenario(cls, static):
        return "relay_pass"

    def station_downlink(self, latitude_deg) -> SatelliteLink:
        """The downlink to one station: this link's optics and orbit at the station's latitude, over whole passes."""
        optics = {f.name: getattr(self, f.name) for f in dataclasses.fields(SatelliteOptics)}
        return SatelliteLink(
            **optics, elevation_deg=None, max_elevation_deg=self.max_elevation_deg, station_latitude_deg=latitude_deg,
            inclination_deg=self.inclination_deg,
        )  # fmt: skip
