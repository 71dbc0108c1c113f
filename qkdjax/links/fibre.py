"""Fibre links: one span from Alice to Bob, or two spans to a middle station (MDI and twin-field QKD)."""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp

from qkdjax.parameters import NON_NEGATIVE, Link, Quantity, Range, number
from qkdjax.physics.fibre import fibre_transmittance, loss_db

REACH = Quantity("max", False, "largest fibre length reaching the target key rate (reach)")


class FibreLink(Link):
    """Single-mode fibre span with lumped extra loss (connectors, splices, switches)."""

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

    def transmittance(self):
        return fibre_transmittance(self.distance_km, self.attenuation_db_per_km, self.extra_loss_db)

    def loss_db(self):
        return loss_db(self.distance_km, self.attenuation_db_per_km, self.extra_loss_db)


class MidpointFibre(Link):
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

    def transmittance(self):
        alice = fibre_transmittance(self.distance_km * self.relay_fraction, self.attenuation_db_per_km, self.alice_extra_loss_db)
        bob = fibre_transmittance(self.distance_km * (1.0 - self.relay_fraction), self.attenuation_db_per_km, self.bob_extra_loss_db)
        return jnp.stack([alice, bob])

    def loss_db(self):
        """Loss of the whole Alice-Bob channel (both arms)."""
        return loss_db(self.distance_km, self.attenuation_db_per_km, self.alice_extra_loss_db + self.bob_extra_loss_db)
