"""Optical fibre channel."""

from qkdjax.numerics import db_to_transmittance


def loss_db(distance_km, attenuation_db_per_km, extra_loss_db):
    """Total channel loss in dB: distributed fibre attenuation plus lumped extra loss."""
    return attenuation_db_per_km * distance_km + extra_loss_db


def fibre_transmittance(distance_km, attenuation_db_per_km, extra_loss_db):
    """Fibre transmittance ``eta = 10^(-(alpha L + loss_extra) / 10)``.

    Standard Beer-Lambert loss model of single-mode fibre, as used for decoy BB84 in X. Ma, B. Qi, Y. Zhao,
    H.-K. Lo, Phys. Rev. A 72, 012326 (2005), Eq. (6). Computed as ``exp(-ln10/10 * dB)`` so a 1000 km span
    (eta ~ 1e-20) keeps full float64 relative precision.
    """
    return db_to_transmittance(loss_db(distance_km, attenuation_db_per_km, extra_loss_db))
