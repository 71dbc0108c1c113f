"""What the middle-station protocols (MDI-QKD, twin-field) share: the estimate of one point, its cube variables with
the two bounds (PLOB of the whole channel, the single-repeater bound of one middle node), and the detector
features their middle station does not model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from qkdjax.parameters import Constraint, Protocol, StudyParams
from qkdjax.physics.bounds import plob_bound, single_repeater_bound
from qkdjax.sweep import Output

BOUND_OUTPUTS: Mapping[str, Output] = {
    "plob_bound_per_pulse": Output("bit", "PLOB repeaterless bound of the whole Alice-Bob channel per use", role="bound"),
    "repeater_bound_per_pulse": Output("bit", "single-repeater bound per use, -log2(1 - the worse arm's transmittance)"),
    "channel_transmittance": Output("1", "Alice-Bob channel transmittance (both arms, excluding the relay's detectors)"),
}


class Estimate(NamedTuple):
    """What the key rate of one point is computed from."""

    arms: jax.Array  # [Alice's, Bob's] channel transmittance
    gain: jax.Array  # of the key events
    qber: jax.Array  # of the key events
    single_photon_yield: jax.Array  # bound
    single_photon_error: jax.Array  # phase error, bound
    margin_per_pulse: jax.Array  # the rate formula before clipping at zero


def relay_detector_constraints(kind: str) -> tuple[Constraint, ...]:
    """The middle station's detectors are modelled without afterpulses and dead time."""
    return (
        Constraint(f"detector.afterpulse_prob = 0 (protocol.type {kind} models none)", ("detector.afterpulse_prob",), lambda a: a == 0),
        Constraint(f"detector.dead_time_ns = 0 (protocol.type {kind} models none)", ("detector.dead_time_ns",), lambda t: t == 0),
    )


def relay_detector(p: StudyParams, detectors: int):
    """The middle station's ``detectors`` detectors with the noise both arms let in added to their dark counts
    (independent: ``a + b (1 - a)`` of the arms' ``a``, ``b``; a link giving one value gives the station's)."""
    noise = p.link.background_count_prob(p.detector.efficiency, detectors)
    if jnp.ndim(noise):
        noise = noise[0] + noise[1] * (1.0 - noise[0])
    return p.detector.with_background(noise)


class MiddleStationProtocol(Protocol):
    """A protocol over a two-arm link to a middle station whose ``estimate(p)`` gives the ``Estimate`` of one point;
    asymptotic and deterministic (nothing to sample)."""

    arms: ClassVar[int] = 2

    def estimate(self, p: StudyParams) -> Estimate:
        raise NotImplementedError

    def metrics(self, p):
        found = self.estimate(p)
        per_pulse = jnp.maximum(found.margin_per_pulse, 0.0)  # exactly 0 where the bound gives no key, never NaN
        metrics = {
            "key_rate": per_pulse * p.source.rep_rate_hz,
            "key_rate_per_pulse": per_pulse,
            "qber": found.qber,
            "gain": found.gain,
            "plob_bound_per_pulse": plob_bound(found.arms[0] * found.arms[1]),
            "repeater_bound_per_pulse": single_repeater_bound(found.arms),
            "channel_transmittance": found.arms[0] * found.arms[1],
            "single_photon_yield": found.single_photon_yield,
            "single_photon_error": jnp.minimum(found.single_photon_error, 0.5),
        }
        return metrics, None

    def margin_per_pulse(self, p):
        """Secret bits per pulse pair before clipping at zero (negative: no key), the optimiser's objective."""
        return self.estimate(p).margin_per_pulse

    def key_rate(self, p):
        return jnp.maximum(self.margin_per_pulse(p), 0.0) * p.source.rep_rate_hz
