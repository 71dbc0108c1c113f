"""Fibre links: one span from Alice to Bob, or two spans to a middle station (MDI and twin-field QKD), dark or lit.

A lit fibre (``classical_channels`` or ``classical_counter_channels`` set; both null: dark fibre, no Raman terms computed or written)
carries classical channels beside the quantum one: their spontaneous Raman scattering puts noise photons
at the quantum wavelength into the receiver (``qkdjax.physics.raman``). Co-propagating channels travel with the
quantum signal, counter-propagating ones against it (their transmitter sits at the quantum receiver); all have the
same launch power and wavelength (a DWDM comb is taken at its centre). The Raman coefficient is the silica model of
``qkdjax.physics.raman`` unless a measured one for the fibre is given. The noise reaches photon counters through the
receiver's filter in each detection window (``background_count_prob``) and a coherent receiver in the one mode its
local oscillator picks (``noise_photons_per_mode``). A two-arm link carries the same traffic on each arm, the noise
of each arm counted at that arm's receiver end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax.numpy as jnp

from qkdjax.parameters import NON_NEGATIVE, POSITIVE, Link, Quantity, Range, number
from qkdjax.physics.fibre import fibre_transmittance, loss_db
from qkdjax.physics.raman import (
    SPEED_OF_LIGHT_M_PER_S,
    backward_raman_length_km,
    dbm_to_w,
    forward_raman_length_km,
    raman_coefficient_per_km_nm,
    raman_noise_photons_per_s,
)
from qkdjax.sweep import Output

REACH = Quantity("max", False, "largest fibre length reaching the target key rate (reach)")
CHANNELS = Range(0.0, 1e4, integer=True)
WAVELENGTH_NM = Range(1260.0, 1675.0)  # the O to U bands of single-mode fibre
RAMAN_OUTPUTS: Mapping[str, Output] = {
    "raman_forward_photons": Output(
        "1", "Raman photons per detection window in the receiver filter from co-propagating channels (all arms)"
    ),
    "raman_backward_photons": Output(
        "1", "Raman photons per detection window in the receiver filter from counter-propagating channels (all arms)"
    ),
}


class LitFibre(Link):
    """Classical traffic in the fibre and what the quantum receiver lets in of its Raman noise (module docstring)."""

    classical_channels: Any = number(
        "1", "classical channels co-propagating with the quantum signal (null: none, and dark if classical_counter_channels is)", CHANNELS,
        optional=True, default=None,
    )  # fmt: skip
    classical_counter_channels: Any = number(
        "1", "classical channels counter-propagating to the quantum signal (null: none, and dark if classical_channels is)", CHANNELS,
        optional=True, default=None,
    )  # fmt: skip
    classical_power_dbm: Any = number(
        "dBm", "launch power of each classical channel", Range(-80.0, 30.0), default=0.0, role="interference",
        inverse=Quantity("max", False, "largest launch power per classical channel reaching the target key rate"),
    )  # fmt: skip
    classical_wavelength_nm: Any = number("nm", "wavelength of the classical channels", WAVELENGTH_NM, default=1550.92)
    quantum_wavelength_nm: Any = number("nm", "wavelength of the quantum channel", WAVELENGTH_NM, default=1547.72)
    classical_attenuation_db_per_km: Any = number(
        "dB/km", "fibre attenuation at the classical wavelength (null: attenuation_db_per_km)", NON_NEGATIVE, optional=True, default=None
    )
    raman_coefficient_per_km_nm: Any = number(
        "km-1 nm-1", "effective Raman coefficient of the fibre, classical to quantum wavelength (null: silica model)", NON_NEGATIVE,
        optional=True, default=None,
    )  # fmt: skip
    filter_bandwidth_nm: Any = number("nm", "receiver filter bandwidth at the quantum wavelength (photon counters)", POSITIVE, default=0.8)
    detection_window_ns: Any = number("ns", "detection window per pulse of the photon counters", POSITIVE, default=1.0)

    @classmethod
    def outputs(cls, static):
        lit = any(static.get(f"link.{name}", 0.0) is not None for name in ("classical_channels", "classical_counter_channels"))
        return RAMAN_OUTPUTS if lit else {}

    @property
    def lit(self) -> bool:
        return self.classical_channels is not None or self.classical_counter_channels is not None

    def arm_lengths_km(self):
        raise NotImplementedError

    def raman_photons_per_s_per_nm(self, forward: bool):
        """Raman photons per second per nm at the quantum wavelength reaching each arm's receiver from the co-
        (``forward``) or counter-propagating channels."""
        classical = self.attenuation_db_per_km if self.classical_attenuation_db_per_km is None else self.classical_attenuation_db_per_km
        length = self.arm_lengths_km()
        effective = (forward_raman_length_km if forward else backward_raman_length_km)(length, classical, self.attenuation_db_per_km)
        channels = self.classical_channels if forward else self.classical_counter_channels
        if channels is None:
            return jnp.zeros_like(length)
        rho = self.raman_coefficient_per_km_nm
        if rho is None:
            rho = raman_coefficient_per_km_nm(self.classical_wavelength_nm, self.quantum_wavelength_nm)
        return channels * raman_noise_photons_per_s(dbm_to_w(self.classical_power_dbm), rho, 1.0, effective, self.quantum_wavelength_nm)

    def raman_photons_per_window(self, forward: bool):
        return self.raman_photons_per_s_per_nm(forward) * self.filter_bandwidth_nm * self.detection_window_ns * 1e-9

    def background_count_prob(self, detector_efficiency, detectors):
        """Poisson noise clicks: the window's Raman photons in the filter band, detected, shared by the detectors."""
        if not self.lit:
            return 0.0
        photons = self.raman_photons_per_window(True) + self.raman_photons_per_window(False)
        return -jnp.expm1(-detector_efficiency * photons / detectors)

    def noise_photons_per_mode(self):
        """Raman photons per second per Hz (``d lambda / d nu = lambda^2 / c``): the photon number of one mode."""
        if not self.lit:
            return 0.0
        flux_per_nm = self.raman_photons_per_s_per_nm(True) + self.raman_photons_per_s_per_nm(False)
        wavelength_m = self.quantum_wavelength_nm * 1e-9
        return flux_per_nm * 1e9 * wavelength_m**2 / SPEED_OF_LIGHT_M_PER_S

    def point_metrics(self):
        if not self.lit:
            return {}
        return {
            "raman_forward_photons": jnp.sum(self.raman_photons_per_window(True)),
            "raman_backward_photons": jnp.sum(self.raman_photons_per_window(False)),
        }


class FibreLink(LitFibre):
    """Single-mode fibre span with lumped extra loss (connectors, splices, switches), dark or lit."""

    types = ("fibre",)
    distance_km: Any = number("km", "fibre length", NON_NEGATIVE, inverse=REACH, role="distance")
    attenuation_db_per_km: Any = number("dB/km", "fibre attenuation", NON_NEGATIVE)
    extra_loss_db: Any = number(
        "dB",
        "extra lumped loss",
        NON_NEGATIVE,
        default=0.0,
        inverse=Quantity("max", False, "largest extra loss still reaching the target key rate"),
    )

    def arm_lengths_km(self):
        return self.distance_km

    def transmittance(self):
        return fibre_transmittance(self.distance_km, self.attenuation_db_per_km, self.extra_loss_db)

    def loss_db(self):
        return loss_db(self.distance_km, self.attenuation_db_per_km, self.extra_loss_db)


class MidpointFibre(LitFibre):
    """Two fibre spans from Alice and from Bob to a middle station (Charlie) at ``relay_fraction`` of the way.

    ``distance_km`` is the whole Alice-Bob length, so reach, plots and reports read as for a single span;
    ``transmittance()`` is ``[Alice's arm, Bob's arm]``, each with its own lumped extra loss.
    """

    types = ("midpoint_fibre",)
    arms: ClassVar[int] = 2
    distance_km: Any = number("km", "Alice-Bob fibre length (both arms)", NON_NEGATIVE, inverse=REACH, role="distance")
    relay_fraction: Any = number("1", "middle station's position from Alice, as a fraction of distance_km", Range(0.0, 1.0), default=0.5)
    attenuation_db_per_km: Any = number("dB/km", "fibre attenuation", NON_NEGATIVE)
    alice_extra_loss_db: Any = number("dB", "extra lumped loss of Alice's arm", NON_NEGATIVE, default=0.0)
    bob_extra_loss_db: Any = number("dB", "extra lumped loss of Bob's arm", NON_NEGATIVE, default=0.0)

    def arm_lengths_km(self):
        return jnp.stack([self.distance_km * self.relay_fraction, self.distance_km * (1.0 - self.relay_fraction)])

    def transmittance(self):
        alice = fibre_transmittance(self.distance_km * self.relay_fraction, self.attenuation_db_per_km, self.alice_extra_loss_db)
        bob = fibre_transmittance(self.distance_km * (1.0 - self.relay_fraction), self.attenuation_db_per_km, self.bob_extra_loss_db)
        return jnp.stack([alice, bob])

    def loss_db(self):
        """Loss of the whole Alice-Bob channel (both arms)."""
        return loss_db(self.distance_km, self.attenuation_db_per_km, self.alice_extra_loss_db + self.bob_extra_loss_db)
