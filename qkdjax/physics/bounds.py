"""Fundamental limits of repeaterless point-to-point key distribution."""

import jax.numpy as jnp


def plob_bound(transmittance):
    """PLOB bound ``-log2(1 - eta)`` secret bits per channel use of a pure-loss channel.

    S. Pirandola, R. Laurenza, C. Ottaviani, L. Banchi, Nat. Commun. 8, 15043 (2017), Eq. (19). ``log1p`` keeps it
    exact for eta ~ 1e-20 (1000 km of fibre), where it equals eta / ln 2; it is +inf for a lossless channel.
    """
    return -jnp.log1p(-transmittance) / jnp.log(2.0)
