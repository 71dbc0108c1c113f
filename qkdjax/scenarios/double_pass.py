"""A pass of a satellite over two ground stations (``link=satellite_double_downlink``): the coincidences of the time
both stations see it form one finite-key block, with key per pass, per day and per year, and Monte Carlo passes
through turbulence and pointing jitter on both downlinks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from qkdjax.montecarlo.estimates import COUNTS_STREAM, FADING_STREAM, probability_estimate, summarise, trial_stream
from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.numerics import safe_divide
from qkdjax.physics import free_space, satellite
from qkdjax.physics.bounds import plob_bound, single_repeater_bound
from qkdjax.scenarios.satellite_pass import PASS_MONTECARLO_OUTPUTS, PASS_TIME_STEPS, PassStudy
from qkdjax.sweep import Output

DOUBLE_PASS_OUTPUTS: Mapping[str, Output] = {
    "key_per_pass": Output("bit", "secret key of one pass (the coincidences while both stations see it, one block)", role="per_pass"),
    "key_rate": Output("bit/s", "secret key per pass divided by the time both stations see the satellite", role="rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per pump pulse (or coincidence window) of the pass", role="rate_per_pulse"),
    "qber": Output("1", "quantum bit error rate of the pass's coincidences"),
    "gain": Output("1", "coincidence probability per pulse, pass average"),
    "plob_bound_per_pulse": Output("bit", "PLOB bound of the two-photon channel per use, pass average", role="bound"),
    "repeater_bound_per_pulse": Output("bit", "single-repeater bound (the worse downlink) per use, pass average"),
    "pass_duration_s": Output("s", "time both stations see the satellite above the minimum elevation"),
    "block_pulses": Output("1", "pulses during the pass"),
    "alice_max_elevation_deg": Output("degree", "Alice's highest elevation of the pass"),
    "bob_max_elevation_deg": Output("degree", "Bob's highest elevation of the pass"),
    "min_two_photon_loss_db": Output("dB", "two-photon loss (both downlinks) at closest approach"),
    "max_two_photon_loss_db": Output("dB", "two-photon loss at the ends of the common window"),
    "phase_error": Output("1", "upper bound on the phase-error rate of the pass"),
    "key_per_day": Output("bit/d", "expected secret key per day (passes per day x cloud-free probability x key per pass)"),
    "key_per_year": Output("bit/Julian_year", "expected secret key per Julian year (365.25 d)", role="supply"),
    "trusted_nodes": Output("1", "trusted nodes between the stations (none: the source need not be trusted)", role="trusted_nodes"),
    "untrusted_relays": Output("1", "untrusted nodes between the stations (the satellite's pair source)", role="untrusted_relays"),
}


class DoublePass(NamedTuple):
    elevation_deg: jax.Array  # [2, steps]
    step_s: jax.Array
    table: satellite.DiffractionTable
    loss_db: jax.Array  # [2, steps]
    pulses: jax.Array
    statistics: tuple
    key: object


def pass_statistics(p, arms, step_s):
    """Pulses of a block (``link.passes_per_block`` common windows) and the coincidence statistics averaged over the
    window's steps (``arms`` [2, steps])."""
    statistics = jax.vmap(lambda arm: p.protocol.block_statistics(p, arm), in_axes=1)(arms)
    pulses = p.link.passes_per_block * p.source.rep_rate_hz * step_s * arms.shape[1]
    return pulses, jax.tree.map(lambda s: jnp.mean(s, axis=0), statistics)


def configured_pass(p) -> DoublePass:
    link = p.link
    _, elevation_deg, step_s = free_space.common_pass_elevations_deg(
        link.station_separation_km, link.crossing_offset_km, link.min_elevation_deg, link.altitude_km, PASS_TIME_STEPS
    )
    table = satellite.diffraction_table(link)
    loss_db = jax.vmap(link.arm_loss_db, (1, None), 1)(elevation_deg, table)
    pulses, statistics = pass_statistics(p, 10.0 ** (-loss_db / 10.0), step_s)
    return DoublePass(elevation_deg, step_s, table, loss_db, pulses, statistics, p.protocol.block_key(p, pulses, statistics))


def _margin_per_pulse(p):
    one = configured_pass(p)
    return safe_divide(one.key.length_margin, one.pulses)


def _evaluate(p) -> tuple[jax.Array, DoublePass]:
    """The key rate over the double pass and the pass (``optimize.optimise``'s ``evaluate``)."""
    one = configured_pass(p)
    return safe_divide(one.key.key_length / p.link.passes_per_block, one.step_s * PASS_TIME_STEPS), one


def double_pass_metrics(p, one: DoublePass) -> dict:
    key, duration_s = one.key, one.step_s * PASS_TIME_STEPS
    per_pass = key.key_length / p.link.passes_per_block
    arms = 10.0 ** (-one.loss_db / 10.0)
    two_photon_db = jnp.sum(one.loss_db, axis=0)
    per_day = p.link.passes_per_day * p.link.cloud_free_prob * per_pass
    return {
        "key_per_pass": per_pass,
        "key_rate": safe_divide(per_pass, duration_s),
        "key_rate_per_pulse": safe_divide(key.key_length, one.pulses),
        **p.protocol.signal_summary(one.statistics),
        "plob_bound_per_pulse": jnp.mean(plob_bound(arms[0] * arms[1])),
        "repeater_bound_per_pulse": jnp.mean(jax.vmap(single_repeater_bound, in_axes=1)(arms)),
        "pass_duration_s": duration_s,
        "block_pulses": one.pulses,
        "alice_max_elevation_deg": jnp.max(one.elevation_deg[0]),
        "bob_max_elevation_deg": jnp.max(one.elevation_deg[1]),
        "min_two_photon_loss_db": jnp.min(two_photon_db),
        "max_two_photon_loss_db": jnp.max(two_photon_db),
        "phase_error": key.phase_error,
        "key_per_day": per_day,
        "key_per_year": 365.25 * per_day,
        "trusted_nodes": jnp.zeros(()),
        "untrusted_relays": jnp.ones(()),
    }


def double_pass_montecarlo_metrics(p, key, trials: int, one: DoublePass) -> dict:
    """Distribution of the key per pass: every trial fades each step of both downlinks independently (pointing,
    scintillation) and samples the block's coincidences (as ``satellite_pass`` does for one downlink); a block of
    several passes repeats the trial's one faded pass (the fading's spread between passes is not averaged down)."""
    fading = jax.vmap(jax.vmap(satellite.fading, (None, 0, None)), (None, 0, None))(p.link, one.elevation_deg, one.table)
    extra = 10.0 ** (-p.link.extra_loss_db() / 10.0)

    def one_pass(t):
        fading_key, counts_key = trial_stream(key, t, FADING_STREAM), trial_stream(key, t, COUNTS_STREAM)
        uniforms = stream_uniforms(fading_key, (2, 2, PASS_TIME_STEPS))
        arms = satellite.faded_transmittance(uniforms, fading) * extra[:, None]
        pulses, statistics = pass_statistics(p, arms, one.step_s)
        return p.protocol.sampled_block_key(p, counts_key, jnp.round(pulses), statistics)

    passes = jax.vmap(one_pass)(jnp.arange(trials))
    per_pass = passes.key_length / p.link.passes_per_block
    return {**summarise("key_per_pass", per_pass), **probability_estimate("abort_probability", passes.aborted)}


class DoublePassStudy(PassStudy):
    """Key per pass, per day and per year of a double downlink whose elevations are unset; ``trials`` Monte Carlo
    passes per point; with the optimiser, the protocol parameters that maximise the key of the pass."""

    name = "double_pass"

    @property
    def outputs(self):
        return {**DOUBLE_PASS_OUTPUTS, **self.optimize_outputs, **(PASS_MONTECARLO_OUTPUTS if self.trials else {})}

    @property
    def evaluations_per_point(self) -> int:
        return max(self.trials, 1) * 2 * PASS_TIME_STEPS

    def __call__(self, values, key):
        p, answers, one = self.optimised(self.params(values), _margin_per_pulse, _evaluate)
        return double_pass_metrics(p, one) | answers | (double_pass_montecarlo_metrics(p, key, self.trials, one) if self.trials else {})
