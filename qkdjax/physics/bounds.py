"""Fundamental limits of repeaterless point-to-point key distribution."""

import jax.numpy as jnp


def plob_bound(transmittance):
    """PLOB bound ``-log2(1 - eta)`` secret bits per channel use of a pure-loss channel.

    S. Pirandola, R. Laurenza, C. Ottaviani, L. Banchi, Nat. Commun. 8, 15043 (2017), Eq. (19). ``log1p`` keeps it
    exact for eta ~ 1e-20 (1000 km of fibre), where it equals eta / ln 2; it is +inf for a lossless channel.
    """
    return -jnp.log1p(-transmittance) / jnp.log(2.0)


def single_repeater_bound(arm_transmittances):
    """Repeater bound ``-log2(1 - min(eta_A, eta_B))`` secret bits per use of a two-arm channel with one middle
    station: the end-to-end capacity of a repeater chain of pure-loss links is that of its worst link
    (S. Pirandola, End-to-end capacities of a quantum communication network, Commun. Phys. 2, 51 (2019)). Twin-field protocols can beat PLOB of the whole
    channel but not this bound; measurement-device-independent QKD stays below PLOB.
    """
    return plob_bound(jnp.min(arm_transmittances))
