"""Phase-randomised weak coherent pulses with decoy intensities (models: qkdjax.physics.source)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from qkdjax.parameters import NON_NEGATIVE, POSITIVE, PROBABILITY, Constraint, Range, Source, number


class WCPDecoy(Source):
    """Phase-randomised weak coherent pulses at three intensities: signal > decoy > weak (weak may be vacuum).

    A middle-station protocol gives both parties this source (the same intensities and probabilities).
    """

    types = ("wcp_decoy",)
    rep_rate_hz: Any = number("Hz", "pulse repetition rate", POSITIVE)
    mu_signal: Any = number("1", "signal mean photon number", POSITIVE, optimisable=True)
    mu_decoy: Any = number("1", "decoy mean photon number", POSITIVE, optimisable=True)
    mu_weak: Any = number("1", "weak decoy mean photon number", NON_NEGATIVE, optimisable=True)
    p_signal: Any = number("1", "probability of sending the signal intensity", Range(0.0, 1.0, low_closed=False), optimisable=True)
    p_decoy: Any = number("1", "probability of sending the decoy intensity", PROBABILITY, optimisable=True)

    constraints = (
        Constraint("source.mu_decoy < source.mu_signal", ("mu_decoy", "mu_signal"), lambda d, s: d < s),
        Constraint("source.mu_weak < source.mu_decoy", ("mu_weak", "mu_decoy"), lambda w, d: w < d),
        # The decoy bounds divide by (mu_decoy - mu_weak)(mu_signal - mu_decoy - mu_weak) (Lim 2014, Eq. (3)).
        Constraint(
            "source.mu_signal > source.mu_decoy + source.mu_weak",
            ("mu_signal", "mu_decoy", "mu_weak"),
            lambda s, d, w: s > d + w,
        ),
        Constraint("source.p_signal + source.p_decoy <= 1", ("p_signal", "p_decoy"), lambda s, d: s + d <= 1.0),
    )

    @classmethod
    def feasible_interval(cls, name, box, values, least):
        """The box cut by the constraints above, intensities set from the largest down, probabilities signal
        then decoy: ``mu_signal > mu_decoy + mu_weak``, ``mu_decoy > mu_weak``, ``p_signal + p_decoy < 1``."""
        low, high = box
        if name == "mu_signal":
            return jnp.maximum(low, least("mu_decoy") + least("mu_weak")), high
        if name == "mu_decoy":
            weak = least("mu_weak")
            return jnp.maximum(low, weak), jnp.minimum(high, values["mu_signal"] - weak)
        if name == "mu_weak":
            decoy = values["mu_decoy"]
            return low, jnp.minimum(high, jnp.minimum(decoy, values["mu_signal"] - decoy))
        if name == "p_signal":
            return low, jnp.minimum(high, 1.0 - least("p_decoy"))
        if name == "p_decoy":
            return low, jnp.minimum(high, 1.0 - values["p_signal"])
        return low, high

    @classmethod
    def optimisation_room(cls, least, most):
        intensities = ("mu_signal", "mu_decoy", "mu_weak")
        return (
            ("mu_signal > mu_decoy + mu_weak", intensities, most("mu_signal") > least("mu_decoy") + least("mu_weak")),
            ("mu_decoy > mu_weak", intensities[1:], most("mu_decoy") > least("mu_weak")),
            ("p_signal + p_decoy < 1", ("p_signal", "p_decoy"), least("p_signal") + least("p_decoy") < 1.0),
        )
