"""The study: one grid point's parameters -> observables -> key metrics.

This is where the physics modules are composed; the sweep engine maps ``Study`` over every grid point and knows
nothing of what it computes. ``Study`` holds the static (string) choices so that it is hashable and jit caches
one compiled program per choice and chunk shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from qkdjax.parameters import StudyParams, build_params
from qkdjax.physics.bounds import plob_bound
from qkdjax.physics.detector import click_and_error_probs, live_fraction
from qkdjax.physics.source import intensities, intensity_probs
from qkdjax.protocols import bb84_decoy

# Cube variables: name -> CF attributes.
OUTPUTS: Mapping[str, Mapping[str, str]] = {
    "key_rate": {"units": "bit/s", "long_name": "secret key rate"},
    "key_rate_per_pulse": {"units": "bit", "long_name": "secret key bits per sent pulse"},
    "qber": {"units": "1", "long_name": "quantum bit error rate of the signal intensity"},
    "gain": {"units": "1", "long_name": "detection probability per signal pulse"},
    "plob_bound_per_pulse": {"units": "bit", "long_name": "PLOB repeaterless bound per channel use"},
    "channel_transmittance": {"units": "1", "long_name": "channel transmittance (excluding the receiver)"},
    "single_photon_yield": {"units": "1", "long_name": "single-photon yield used by the key rate (bound)"},
    "single_photon_error": {"units": "1", "long_name": "single-photon error rate used by the key rate (bound)"},
}


def detection_statistics(p: StudyParams):
    """Gains and error gains per intensity (signal, decoy, weak), and the true single-photon yield and error yield.

    Dead time scales every yield by the live fraction at the mean click rate of the intensity mix, shared by
    Bob's two detectors.
    """
    channel = p.link.transmittance()
    eta = channel * p.detector.efficiency
    click, error = click_and_error_probs(-jnp.expm1(-eta * intensities(p.source)), p.detector)
    mean_click = jnp.dot(intensity_probs(p.source), click)
    live = live_fraction(p.source.rep_rate_hz * mean_click / 2.0, p.detector.dead_time_ns)
    click1, error1 = click_and_error_probs(eta, p.detector)
    return channel, live * click, live * error, live * click1, live * error1


def single_photon_bounds(p: StudyParams, gain, error_gain, true_yield1, true_error_yield1):
    """Y_1 (lower) and e_1 (upper) as the chosen decoy method estimates them."""
    method = p.protocol.decoy
    if method == "infinite":  # infinitely many decoys pin Y_1 and e_1 exactly (Lo, Ma, Chen, PRL 94, 230504 (2005))
        return true_yield1, bb84_decoy.safe_divide(true_error_yield1, true_yield1)
    if method == "vacuum_weak":
        return bb84_decoy.vacuum_weak_bounds(intensities(p.source), gain, error_gain)
    if method == "none":
        return bb84_decoy.untagged_bounds(p.source.mu_signal, gain[0], error_gain[0])
    raise ValueError(f"protocol.decoy = {method!r} is not one of {bb84_decoy.DECOY_METHODS}")


def asymptotic_metrics(p: StudyParams) -> dict[str, jax.Array]:
    """All cube variables for one grid point of a fibre decoy-BB84 study."""
    channel, gain, error_gain, yield1, error_yield1 = detection_statistics(p)
    qber = bb84_decoy.safe_divide(error_gain[0], gain[0])
    y1, e1 = single_photon_bounds(p, gain, error_gain, yield1, error_yield1)
    per_pulse = bb84_decoy.asymptotic_key_rate(p.source.p_signal, p.source.mu_signal, gain[0], qber, y1, e1, p.protocol)
    return {
        "key_rate": per_pulse * p.source.rep_rate_hz,
        "key_rate_per_pulse": per_pulse,
        "qber": qber,
        "gain": gain[0],
        "plob_bound_per_pulse": plob_bound(channel),
        "channel_transmittance": channel,
        "single_photon_yield": y1,
        "single_photon_error": jnp.minimum(e1, 0.5),
    }


@dataclasses.dataclass(frozen=True)
class Study:
    """``study(values, key) -> metrics`` for one grid point; ``choices`` are the static string parameters."""

    choices: tuple[tuple[str, str], ...]

    def __call__(self, values: Mapping[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
        del key  # the asymptotic study is deterministic; Monte Carlo studies draw from it
        return asymptotic_metrics(build_params({**values, **dict(self.choices)}))

    outputs = OUTPUTS
