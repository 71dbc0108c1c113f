"""Phase-randomised weak coherent pulse (WCP) source."""

import jax.numpy as jnp
from jax.scipy.special import gammaln, xlogy


def poisson_photon_prob(n, mu):
    """Probability of ``n`` photons in a phase-randomised coherent pulse of mean photon number ``mu``.

    ``P(n) = exp(-mu) mu^n / n!`` (H.-K. Lo, X. Ma, K. Chen, Phys. Rev. Lett. 94, 230504 (2005)); evaluated in the
    log domain so large ``n`` and tiny ``mu`` stay exact. At ``mu = 0`` (a vacuum intensity) it is 1 for ``n = 0``
    and 0 otherwise, with a finite gradient there (``xlogy``'s ``n / mu`` would make it NaN; the one-sided slope
    of ``P(1)`` there, 1, is given as 0).
    """
    positive = mu > 0
    log_prob = xlogy(n, jnp.where(positive, mu, 1.0)) - mu - gammaln(n + 1.0)
    return jnp.where(positive | (n == 0), jnp.exp(log_prob), 0.0)


def multiphoton_prob(mu):
    """Probability of two or more photons, ``1 - e^-mu (1 + mu)``, written to stay exact for ``mu`` << 1."""
    return -jnp.expm1(-mu) - mu * jnp.exp(-mu)


def intensities(source):
    """Mean photon numbers of the three intensities, ordered (signal, decoy, weak)."""
    return jnp.stack([source.mu_signal, source.mu_decoy, source.mu_weak])


def intensity_probs(source):
    """Probabilities of sending (signal, decoy, weak); the weak intensity takes what the other two leave (0, not
    -3e-17, where they sum to one in rounding)."""
    return jnp.stack([source.p_signal, source.p_decoy, jnp.maximum(1.0 - source.p_signal - source.p_decoy, 0.0)])
