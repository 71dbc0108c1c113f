"""A whole satellite pass: the counts of all its time steps form one finite-key block (as SatQuMA does), with key
per pass, per day and per year, and Monte Carlo passes through turbulence and pointing jitter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from qkdjax.config import ConfigError
from qkdjax.montecarlo.estimates import (
    ABORT_OUTPUT,
    COUNTS_STREAM,
    FADING_STREAM,
    probability_estimate,
    summarise,
    summary_outputs,
    trial_stream,
)
from qkdjax.montecarlo.uniforms import stream_uniforms
from qkdjax.numerics import safe_divide
from qkdjax.physics import free_space, satellite
from qkdjax.physics.bounds import plob_bound
from qkdjax.study import Study
from qkdjax.sweep import Output

PASS_OUTPUTS: Mapping[str, Output] = {
    "key_per_pass": Output("bit", "secret key of one pass (its counts form one finite-key block)", role="per_pass"),
    "key_rate": Output("bit/s", "secret key per pass divided by the pass duration", role="rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per pulse sent during the pass", role="rate_per_pulse"),
    "qber": Output("1", "quantum bit error rate of the signal intensity over the pass"),
    "gain": Output("1", "detection probability per signal pulse, pass average"),
    "plob_bound_per_pulse": Output("bit", "PLOB repeaterless bound per channel use, pass average", role="bound"),
    "pass_duration_s": Output("s", "time above the minimum elevation"),
    "block_pulses": Output("1", "pulses sent during the pass"),
    "min_total_loss_db": Output("dB", "total channel loss at the pass's maximum elevation"),
    "phase_error": Output("1", "upper bound on the single-photon phase-error rate of the pass"),
    "passes_per_day": Output("1/d", "passes per day above the minimum elevation"),
    "key_per_day": Output("bit/d", "expected secret key per day (all passes, cloud-free fraction)"),
    "key_per_year": Output("bit/Julian_year", "expected secret key per Julian year (365.25 d)", role="supply"),
}
PASS_MONTECARLO_OUTPUTS: Mapping[str, Output] = {
    **summary_outputs("key_per_pass", "bit", "secret key per pass (turbulence, pointing, counts)"),
    **ABORT_OUTPUT,
}
PASS_TIME_STEPS = 128  # time steps per pass: 4 s for an 8-minute pass at 500 km
PASS_OFFSETS = 16  # closest-approach offsets averaged over for the key per day


def pass_block(p, channels, step_s):
    """Pulses of a pass and the protocol's block statistics, averaged over the time steps' ``channels``."""
    statistics = jax.vmap(lambda channel: p.protocol.block_statistics(p, channel))(channels)
    pulses = p.source.rep_rate_hz * step_s * channels.shape[0]
    return pulses, jax.tree.map(lambda s: jnp.mean(s, axis=0), statistics)


def pass_geometry(link, max_elevation_deg):
    """Elevations of the pass's time steps and the step length."""
    _, elevation_deg, step_s = free_space.pass_elevations_deg(max_elevation_deg, link.min_elevation_deg, link.altitude_km, PASS_TIME_STEPS)
    return elevation_deg, step_s


def key_per_day(p, table):
    """Expected key per day and passes per day: passes/day x cloud-free probability x key of the average pass.

    The average is over the closest-approach offsets of the passes above the minimum elevation
    (``free_space.max_elevation_weights``), each pass with the mean transmittance.
    """
    max_elevations, weights = free_space.max_elevation_weights(PASS_OFFSETS, p.link.min_elevation_deg, p.link.altitude_km)

    def key_of_pass(max_elevation_deg):
        elevation_deg, step_s = pass_geometry(p.link, max_elevation_deg)
        channels = jax.vmap(satellite.mean_transmittance, (None, 0, None))(p.link, elevation_deg, table)
        return p.protocol.block_key(p, *pass_block(p, channels, step_s)).key_length

    mean_key = jnp.dot(weights, jax.vmap(key_of_pass)(max_elevations))
    passes = free_space.passes_per_day(p.link.station_latitude_deg, p.link.min_elevation_deg, p.link.altitude_km, p.link.inclination_deg)
    return passes * p.link.cloud_free_prob * mean_key, passes


class Pass(NamedTuple):
    """One pass peaking at ``link.max_elevation_deg``, its counts as one block, and the block's key."""

    elevation_deg: jax.Array
    step_s: jax.Array
    table: satellite.DiffractionTable
    loss_db: jax.Array
    channels: jax.Array
    pulses: jax.Array
    statistics: tuple
    key: object  # the protocol's block estimate (FiniteKey for BB84)

    @property
    def duration_s(self):
        return self.step_s * PASS_TIME_STEPS


def configured_pass(p) -> Pass:
    """The pass of ``p``'s link with the mean transmittance per step."""
    elevation_deg, step_s = pass_geometry(p.link, p.link.max_elevation_deg)
    table = satellite.diffraction_table(p.link)
    loss_db = jax.vmap(satellite.loss_budget_db, (None, 0, None))(p.link, elevation_deg, table)["total_loss_db"]
    channels = 10.0 ** (-loss_db / 10.0)
    pulses, statistics = pass_block(p, channels, step_s)
    return Pass(elevation_deg, step_s, table, loss_db, channels, pulses, statistics, p.protocol.block_key(p, pulses, statistics))


def _margin_per_pulse(p):
    """The optimiser's smooth objective: the pass's key before rounding, per pulse sent."""
    one = configured_pass(p)
    return one.key.length_margin / one.pulses


def _evaluate(p) -> tuple[jax.Array, Pass]:
    """The key rate over the pass and the pass (``optimize.optimise``'s ``evaluate``)."""
    one = configured_pass(p)
    return safe_divide(one.key.key_length, one.duration_s), one


def pass_metrics(p, one: Pass) -> dict:
    """Cube variables of one pass peaking at ``link.max_elevation_deg`` (``one``, its ``configured_pass``),
    with the mean transmittance per step."""
    key, pulses = one.key, one.pulses
    per_day, passes = key_per_day(p, one.table)
    return {
        "key_per_pass": key.key_length,
        "key_rate": safe_divide(key.key_length, one.duration_s),
        "key_rate_per_pulse": safe_divide(key.key_length, pulses),
        **p.protocol.signal_summary(one.statistics),
        "plob_bound_per_pulse": jnp.mean(plob_bound(one.channels)),
        "pass_duration_s": one.duration_s,
        "block_pulses": pulses,
        "min_total_loss_db": jnp.min(one.loss_db),
        "phase_error": key.phase_error,
        "passes_per_day": passes,
        "key_per_day": per_day,
        "key_per_year": 365.25 * per_day,
    }


def pass_montecarlo_metrics(p, key, trials: int, one: Pass) -> dict:
    """Distribution of the key per pass: every trial fades each time step (pointing, scintillation) and samples
    the pass's counts.

    The counts are drawn as one multinomial with the pass-averaged cell probabilities. A pass is a sum of
    steps with different probabilities p_t; this has the same mean and a variance smaller by N Var_t(p_t),
    which is below p_max of it (detection probabilities of satellite links are << 1).
    """
    elevation_deg, step_s = one.elevation_deg, one.step_s
    fading = jax.vmap(satellite.fading, (None, 0, None))(p.link, elevation_deg, one.table)  # shared by the trials

    def one_pass(t):
        fading_key, counts_key = trial_stream(key, t, FADING_STREAM), trial_stream(key, t, COUNTS_STREAM)
        uniforms = stream_uniforms(fading_key, (2, *elevation_deg.shape))
        channels = satellite.faded_transmittance(uniforms, fading)
        pulses, statistics = pass_block(p, channels, step_s)
        return p.protocol.sampled_block_key(p, counts_key, jnp.round(pulses), statistics)

    passes = jax.vmap(one_pass)(jnp.arange(trials))
    return {**summarise("key_per_pass", passes.key_length), **probability_estimate("abort_probability", passes.aborted)}


class PassStudy(Study):
    """Key per pass, per day and per year of a satellite link whose ``elevation_deg`` is unset; ``trials``
    Monte Carlo passes per point; with the optimiser, the protocol parameters that maximise the key of the pass
    peaking at ``link.max_elevation_deg`` (one block), used for every pass of the day."""

    name = "pass"

    @classmethod
    def check(cls, static, classes, settings):
        protocol = classes["protocol"]
        kind = static.get("protocol.type") or protocol.types[0]
        if not protocol.pass_blocks:
            raise ConfigError(
                f"protocol.type {kind} cannot estimate a satellite pass as one block: set link.elevation_deg to evaluate one elevation"
            )
        if protocol.finite(static):
            raise ConfigError(
                f"protocol.{protocol.finite_key_field} is set, but a satellite pass (link.elevation_deg = null) makes its own block of "
                f"all the pass's counts: set protocol.{protocol.finite_key_field}=null, or link.elevation_deg to evaluate one elevation"
            )
        cls.refuse_point_settings(settings, "a satellite pass", optimises=True)

    @property
    def outputs(self):
        return {**PASS_OUTPUTS, **self.optimize_outputs, **(PASS_MONTECARLO_OUTPUTS if self.trials else {})}

    @property
    def evaluations_per_point(self) -> int:
        return max(self.trials, 1) * PASS_TIME_STEPS

    def __call__(self, values, key):
        p, answers, one = self.optimised(self.params(values), _margin_per_pulse, _evaluate)
        return pass_metrics(p, one) | answers | (pass_montecarlo_metrics(p, key, self.trials, one) if self.trials else {})


RELAY_OUTPUTS: Mapping[str, Output] = {
    "key_per_year": Output("bit/Julian_year", "key the stations share per Julian year: the smaller station's supply", role="supply"),
    "key_per_day": Output("bit/d", "key the stations share per day: the smaller station's supply"),
    "alice_key_per_year": Output("bit/Julian_year", "expected key per year between the satellite and Alice"),
    "bob_key_per_year": Output("bit/Julian_year", "expected key per year between the satellite and Bob"),
    "alice_passes_per_day": Output("1/d", "Alice's passes per day above the minimum elevation"),
    "bob_passes_per_day": Output("1/d", "Bob's passes per day above the minimum elevation"),
    "key_per_pass": Output("bit", "key of the pass peaking at link.max_elevation_deg, the smaller station's", role="per_pass"),
    "trusted_nodes": Output("1", "trusted nodes between the stations (the satellite holds both keys)", role="trusted_nodes"),
    "untrusted_relays": Output("1", "untrusted nodes between the stations", role="untrusted_relays"),
}


class RelayPassStudy(PassStudy):
    """A trusted satellite between two stations (``link=satellite_trusted_relay``): each station's key per year from
    its own passes (``pass_metrics``, with the protocol parameters optimised per station by the optimiser), and the
    supply they share, the smaller one. Expected values: no Monte Carlo."""

    name = "relay_pass"

    @classmethod
    def check(cls, static, classes, settings):
        super().check(static, classes, settings)
        if settings.trials:
            raise ConfigError(
                f"montecarlo.trials = {settings.trials}: a trusted relay reports expected key supplies; run link=satellite_downlink "
                "per station for Monte Carlo passes, or set montecarlo.trials=0"
            )

    @property
    def outputs(self):
        return RELAY_OUTPUTS

    @property
    def evaluations_per_point(self) -> int:
        return 2 * PASS_TIME_STEPS

    def __call__(self, values, key):
        del key
        p = self.params(values)
        stations = []
        for latitude_deg in (p.link.alice_latitude_deg, p.link.bob_latitude_deg):
            station, _, one = self.optimised(p._replace(link=p.link.station_downlink(latitude_deg)), _margin_per_pulse, _evaluate)
            stations.append(pass_metrics(station, one))
        alice, bob = stations
        return {
            "key_per_year": jnp.minimum(alice["key_per_year"], bob["key_per_year"]),
            "key_per_day": jnp.minimum(alice["key_per_day"], bob["key_per_day"]),
            "alice_key_per_year": alice["key_per_year"],
            "bob_key_per_year": bob["key_per_year"],
            "alice_passes_per_day": alice["passes_per_day"],
            "bob_passes_per_day": bob["passes_per_day"],
            "key_per_pass": jnp.minimum(alice["key_per_pass"], bob["key_per_pass"]),
            "trusted_nodes": jnp.ones(()),
            "untrusted_relays": jnp.zeros(()),
        }
