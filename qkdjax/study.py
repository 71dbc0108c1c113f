"""The study: one grid point's parameters -> observables -> key metrics.

This is where the physics modules are composed; the sweep engine maps ``Study`` over every grid point and knows
nothing of what it computes. Three kinds of study share it: asymptotic key rates, finite-key blocks with the
expected counts, and Monte Carlo distributions of sampled blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qkdjax import optimize, parameters
from qkdjax.montecarlo.estimates import mean_estimate, probability_estimate
from qkdjax.montecarlo.fluctuations import sample_block
from qkdjax.network import availability
from qkdjax.numerics import safe_divide
from qkdjax.parameters import MAX_PATHS, MAX_TRUSTED_NODES, FibreLink, StudyParams, build_params, replace_values
from qkdjax.physics import free_space, satellite
from qkdjax.physics.bounds import plob_bound
from qkdjax.physics.detector import click_and_error_probs, live_fraction
from qkdjax.physics.fibre import loss_db as fibre_loss_db
from qkdjax.physics.source import intensities, intensity_probs
from qkdjax.protocols import bb84_decoy
from qkdjax.protocols.bb84_finite import FiniteKey, block_counts, expected_block_counts, finite_key
from qkdjax.sweep import Output

QUANTILES = (0.05, 0.5, 0.95)

# Cube variables of each kind of study.
ASYMPTOTIC_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "secret key rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per sent pulse"),
    "qber": Output("1", "quantum bit error rate of the signal intensity"),
    "gain": Output("1", "detection probability per signal pulse"),
    "plob_bound_per_pulse": Output("bit", "PLOB repeaterless bound per channel use (+inf for a lossless channel)"),
    "channel_transmittance": Output("1", "channel transmittance (excluding the receiver)"),
    "single_photon_yield": Output("1", "single-photon yield used by the key rate (bound)"),
    "single_photon_error": Output("1", "single-photon error rate used by the key rate (bound)"),
}
FINITE_KEY_OUTPUTS: Mapping[str, Output] = {
    **{k: v for k, v in ASYMPTOTIC_OUTPUTS.items() if not k.startswith("single_photon")},
    "key_length": Output("bit", "secret key length of a block with the expected counts"),
    "block_pulses": Output("1", "pulses sent per block"),
    "eps_sec": Output("1", "secrecy parameter of the block"),
    "vacuum_detections_x": Output("1", "lower bound on key-basis vacuum detections s_X0"),
    "single_photon_detections_x": Output("1", "lower bound on key-basis single-photon detections s_X1"),
    "phase_error": Output("1", "upper bound on the single-photon phase-error rate"),
}


def stderr_output(name: str, units: str, long_name: str) -> dict[str, Output]:
    """``name_stderr``: the standard error of the Monte Carlo mean ``name`` (``qkdjax.montecarlo.estimates``)."""
    return {f"{name}_stderr": Output(units, f"standard error of the {long_name} (std / sqrt(trials); 95 % interval: +- 1.96 stderr)")}


def probability_outputs(name: str, long_name: str) -> dict[str, Output]:
    """A Monte Carlo probability ``name`` and its 95 % Wilson score interval ``name_ci_low``, ``name_ci_high``."""
    return {
        name: Output("1", long_name),
        f"{name}_ci_low": Output("1", f"low end of the 95 % Wilson score interval of the {long_name}"),
        f"{name}_ci_high": Output("1", f"high end of the 95 % Wilson score interval of the {long_name}"),
    }


def summary_outputs(name: str, units: str, long_name: str) -> dict[str, Output]:
    """Mean (and its standard error), standard deviation and quantiles of a Monte Carlo quantity."""
    return {
        f"{name}_mean": Output(units, f"mean {long_name} over Monte Carlo trials"),
        **stderr_output(f"{name}_mean", units, f"mean {long_name}"),
        f"{name}_std": Output(units, f"standard deviation of the {long_name} over Monte Carlo trials"),
        f"{name}_quantile": Output(units, f"quantiles of the {long_name} over Monte Carlo trials", ("quantile",)),
    }


def summarise(name: str, values: jax.Array) -> dict[str, jax.Array]:
    """``summary_outputs(name, ...)`` of the trial values ``values``."""
    return {
        **mean_estimate(f"{name}_mean", values),
        f"{name}_std": jnp.std(values, ddof=1) if values.size > 1 else jnp.zeros(()),
        f"{name}_quantile": jnp.quantile(values, jnp.asarray(QUANTILES)),
    }


ABORT_OUTPUT = probability_outputs("abort_probability", "probability that a block aborts (QBER above threshold or no key)")
MONTECARLO_OUTPUTS: Mapping[str, Output] = {
    **summary_outputs("key_length", "bit", "secret key length per block"),
    **summary_outputs("key_rate", "bit/s", "secret key rate"),
    **ABORT_OUTPUT,
}
TRIAL_OUTPUTS: Mapping[str, Output] = {
    "trial_key_length": Output("bit", "secret key length of each Monte Carlo block", ("trial",)),
    "trial_qber": Output("1", "observed key-basis QBER of each Monte Carlo block", ("trial",)),
}
LOSS_BUDGET_OUTPUTS: Mapping[str, Output] = {
    "slant_range_km": Output("km", "slant range to the satellite"),
    "diffraction_loss_db": Output("dB", "diffraction loss (truncated Gaussian beam, receive aperture)"),
    "atmospheric_loss_db": Output("dB", "atmospheric extinction"),
    "pointing_loss_db": Output("dB", "mean pointing-jitter loss"),
    "total_loss_db": Output("dB", "total channel loss (diffraction, atmosphere, pointing, intrinsic)"),
}
PASS_OUTPUTS: Mapping[str, Output] = {
    "key_per_pass": Output("bit", "secret key of one pass (its counts form one finite-key block)"),
    "key_rate": Output("bit/s", "secret key per pass divided by the pass duration"),
    "key_rate_per_pulse": Output("bit", "secret key bits per pulse sent during the pass"),
    "qber": Output("1", "quantum bit error rate of the signal intensity over the pass"),
    "gain": Output("1", "detection probability per signal pulse, pass average"),
    "plob_bound_per_pulse": Output("bit", "PLOB repeaterless bound per channel use, pass average"),
    "pass_duration_s": Output("s", "time above the minimum elevation"),
    "block_pulses": Output("1", "pulses sent during the pass"),
    "min_total_loss_db": Output("dB", "total channel loss at the pass's maximum elevation"),
    "phase_error": Output("1", "upper bound on the single-photon phase-error rate of the pass"),
    "passes_per_day": Output("1/d", "passes per day above the minimum elevation"),
    "key_per_day": Output("bit/d", "expected secret key per day (all passes, cloud-free fraction)"),
    "key_per_year": Output("bit/Julian_year", "expected secret key per Julian year (365.25 d)"),
}
PASS_MONTECARLO_OUTPUTS: Mapping[str, Output] = {
    **summary_outputs("key_per_pass", "bit", "secret key per pass (turbulence, pointing, counts)"),
    **ABORT_OUTPUT,
}
CHAIN_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "end-to-end secret key rate (key relay: the slowest hop)"),
    "bottleneck_hop": Output("1", "index of the slowest hop (0: the first)"),
    "bottleneck_loss_db": Output("dB", "channel loss of the slowest hop"),
    "trusted_nodes": Output("1", "trusted nodes on each path"),
}
SUPPLY_OUTPUTS: Mapping[str, Output] = {
    "availability": Output("1", "fraction of time a relay path is up (mean over trials)"),
    **stderr_output("availability", "1", "availability (mean over trials of the fraction of time up)"),
    **probability_outputs("demand_met_probability", "probability that the demand is fully met over the horizon"),
    "unserved_bits_mean": Output("bit", "expected demanded key not served over the horizon"),
    **stderr_output("unserved_bits_mean", "bit", "expected unserved key"),
    "unserved_fraction_mean": Output("1", "expected fraction of the demand not served"),
    **stderr_output("unserved_fraction_mean", "1", "expected unserved fraction"),
    "longest_starvation_h_mean": Output("h", "mean longest interval without enough key"),
    **stderr_output("longest_starvation_h_mean", "h", "mean longest starvation"),
    "longest_starvation_h_q95": Output("h", "95 % quantile of the longest interval without enough key"),
    "first_starvation_h_quantile": Output("h", "quantiles of the time to the first starvation (horizon: never)", ("quantile",)),
}
# Trial t of a point draws from fold_in(key, t), and each random process of the trial from fold_in(that, its id):
# adding a process shifts no other's stream, and a block and a pass draw their counts from the same stream.
COUNTS_STREAM, FADING_STREAM = 0, 1
PASS_TIME_STEPS = 128  # time steps per pass: 4 s for an 8-minute pass at 500 km
PASS_OFFSETS = 16  # closest-approach offsets averaged over for the key per day


def detection_statistics(p: StudyParams, channel):
    """Gains and error gains per intensity (signal, decoy, weak), and the true single-photon yield and error yield.

    Background light the link lets in adds to each detector's dark counts (independent Poisson noise). Dead
    time scales every yield by the live fraction at the mean click rate of the intensity mix, shared by Bob's
    two detectors.
    """
    background = p.link.background_count_prob(p.source.rep_rate_hz)
    noise = 1.0 - (1.0 - p.detector.dark_count_prob) * (1.0 - background)
    detector = dataclasses.replace(p.detector, dark_count_prob=noise)
    eta = channel * detector.efficiency
    click, error = click_and_error_probs(-jnp.expm1(-eta * intensities(p.source)), detector)
    mean_click = jnp.dot(intensity_probs(p.source), click)
    live = live_fraction(p.source.rep_rate_hz * mean_click / 2.0, detector.dead_time_ns)
    click1, error1 = click_and_error_probs(eta, detector)
    return live * click, live * error, live * click1, live * error1


def single_photon_bounds(p: StudyParams, gain, error_gain, true_yield1, true_error_yield1):
    """Y_1 (lower) and e_1 (upper) as the chosen decoy method estimates them."""
    method = p.protocol.decoy
    if method == "infinite":  # infinitely many decoys pin Y_1 and e_1 exactly (Lo, Ma, Chen, PRL 94, 230504 (2005))
        return true_yield1, safe_divide(true_error_yield1, true_yield1)
    if method == "vacuum_weak":
        return bb84_decoy.vacuum_weak_bounds(intensities(p.source), gain, error_gain)
    if method == "none":
        return bb84_decoy.untagged_bounds(p.source.mu_signal, gain[0], error_gain[0])
    raise ValueError(f"protocol.decoy = {method!r} is not one of {bb84_decoy.DECOY_METHODS}")


class AsymptoticEstimate(NamedTuple):
    """What the asymptotic key rate of one point is computed from."""

    channel: jax.Array
    gain: jax.Array  # per intensity
    qber: jax.Array  # signal intensity
    single_photon_yield: jax.Array  # bound
    single_photon_error: jax.Array  # bound
    margin_per_pulse: jax.Array  # the rate formula before clipping at zero


def asymptotic_estimate(p: StudyParams) -> AsymptoticEstimate:
    """Asymptotic decoy BB84 over a link evaluated at one point (fibre length, elevation)."""
    channel = p.link.transmittance()
    gain, error_gain, yield1, error_yield1 = detection_statistics(p, channel)
    qber = safe_divide(error_gain[0], gain[0])
    y1, e1 = single_photon_bounds(p, gain, error_gain, yield1, error_yield1)
    margin = bb84_decoy.asymptotic_key_margin(p.source.p_signal, p.source.mu_signal, gain[0], qber, y1, e1, p.protocol)
    return AsymptoticEstimate(channel, gain, qber, y1, e1, margin)


def asymptotic_metrics(p: StudyParams) -> dict[str, jax.Array]:
    """Cube variables of asymptotic decoy BB84 over a link evaluated at one point."""
    estimate = asymptotic_estimate(p)
    per_pulse = jnp.maximum(estimate.margin_per_pulse, 0.0)  # exactly 0 where the bound gives no key, never NaN
    return {
        "key_rate": per_pulse * p.source.rep_rate_hz,
        "key_rate_per_pulse": per_pulse,
        "qber": estimate.qber,
        "gain": estimate.gain[0],
        "plob_bound_per_pulse": plob_bound(estimate.channel),
        "channel_transmittance": estimate.channel,
        "single_photon_yield": estimate.single_photon_yield,
        "single_photon_error": jnp.minimum(estimate.single_photon_error, 0.5),
    }


class FiniteKeyEstimate(NamedTuple):
    """A block of ``protocol.block_size`` key-basis detections with the expected counts, and its key."""

    channel: jax.Array
    gain: jax.Array  # per intensity
    error_gain: jax.Array  # per intensity
    probs: jax.Array  # of the intensities
    pulses: jax.Array  # sent per block
    key: FiniteKey


def finite_key_estimate(p: StudyParams) -> FiniteKeyEstimate:
    """The expected block of a link evaluated at one point, estimated with Lim et al. (2014)."""
    channel = p.link.transmittance()
    gain, error_gain, _, _ = detection_statistics(p, channel)
    probs = intensity_probs(p.source)
    counts, pulses = expected_block_counts(p.protocol.block_size, p.protocol.p_key_basis, probs, gain, error_gain)
    key = finite_key(counts, intensities(p.source), probs, p.protocol)
    return FiniteKeyEstimate(channel, gain, error_gain, probs, pulses, key)


def finite_key_metrics(p: StudyParams) -> tuple[dict[str, jax.Array], FiniteKeyEstimate]:
    """Cube variables of a finite block with the expected counts, and the estimate (the Monte Carlo samples
    blocks like it)."""
    estimate = finite_key_estimate(p)
    key, gain = estimate.key, estimate.gain
    per_pulse = key.key_length / estimate.pulses
    metrics = {
        "key_rate": per_pulse * p.source.rep_rate_hz,
        "key_rate_per_pulse": per_pulse,
        "qber": safe_divide(estimate.error_gain[0], gain[0]),
        "gain": gain[0],
        "plob_bound_per_pulse": plob_bound(estimate.channel),
        "channel_transmittance": estimate.channel,
        "key_length": key.key_length,
        "block_pulses": estimate.pulses,
        "eps_sec": key.eps_sec,
        "vacuum_detections_x": key.vacuum_detections_x,
        "single_photon_detections_x": key.single_photon_detections_x,
        "phase_error": key.phase_error,
    }
    return metrics, estimate


def key_rate_margin_per_pulse(p: StudyParams) -> jax.Array:
    """Secret bits per pulse before rounding and clipping at zero (negative: no key), asymptotic or finite-key
    by ``protocol.block_size``: smooth in the source and protocol parameters, the optimisers' objective."""
    if p.protocol.block_size is None:
        return asymptotic_estimate(p).margin_per_pulse
    estimate = finite_key_estimate(p)
    return estimate.key.length_margin / estimate.pulses


def point_key_rate(p: StudyParams) -> jax.Array:
    """Secret key rate (bit/s) of a link evaluated at one point, asymptotic or finite-key by ``protocol.block_size``."""
    if p.protocol.block_size is None:
        return asymptotic_metrics(p)["key_rate"]
    return finite_key_metrics(p)[0]["key_rate"]


def trial_stream(key, trial, process: int) -> jax.Array:
    """Key of random process ``process`` in trial ``trial``."""
    return jax.random.fold_in(jax.random.fold_in(key, trial), process)


def montecarlo_metrics(p: StudyParams, key, trials: int, keep_trials: bool, block: FiniteKeyEstimate) -> dict[str, jax.Array]:
    """Distribution of the key over ``trials`` sampled blocks like ``block``, each estimated as a deployed system
    would.

    Trial ``t`` draws its counts from ``fold_in(fold_in(key, t), COUNTS_STREAM)``: with common random numbers
    (one ``key`` for every point) the same stream wherever it is evaluated.
    """
    probs, gain, error_gain = block.probs, block.gain, block.error_gain
    pulses = jnp.round(block.pulses)

    def one_block(t):
        observed = sample_block(trial_stream(key, t, COUNTS_STREAM), pulses, p.protocol.p_key_basis, probs, gain, error_gain)
        return finite_key(observed, intensities(p.source), probs, p.protocol)

    blocks = jax.vmap(one_block)(jnp.arange(trials))
    metrics = {
        **summarise("key_length", blocks.key_length),
        **summarise("key_rate", blocks.key_length / pulses * p.source.rep_rate_hz),
        **probability_estimate("abort_probability", blocks.aborted),
    }
    if keep_trials:
        metrics |= {"trial_key_length": blocks.key_length, "trial_qber": blocks.qber_x}
    return metrics


def pass_block(p: StudyParams, channels, step_s):
    """Pulses of a pass and its gains and error gains per intensity, averaged over the time steps' ``channels``."""
    gain, error_gain, _, _ = jax.vmap(lambda channel: detection_statistics(p, channel))(channels)
    pulses = p.source.rep_rate_hz * step_s * channels.shape[0]
    return pulses, jnp.mean(gain, axis=0), jnp.mean(error_gain, axis=0)


def pass_key(p: StudyParams, pulses, gain, error_gain):
    """The pass's counts as one finite-key block (as SatQuMA does), estimated with Lim et al. (2014)."""
    probs = intensity_probs(p.source)
    counts = block_counts(pulses, p.protocol.p_key_basis, probs, gain, error_gain)
    return finite_key(counts, intensities(p.source), probs, p.protocol)


def pass_geometry(link, max_elevation_deg):
    """Elevations of the pass's time steps and the step length."""
    _, elevation_deg, step_s = free_space.pass_elevations_deg(max_elevation_deg, link.min_elevation_deg, link.altitude_km, PASS_TIME_STEPS)
    return elevation_deg, step_s


def key_per_day(p: StudyParams, table):
    """Expected key per day and passes per day: passes/day x cloud-free probability x key of the average pass.

    The average is over the closest-approach offsets of the passes above the minimum elevation
    (``free_space.max_elevation_weights``), each pass with the mean transmittance.
    """
    max_elevations, weights = free_space.max_elevation_weights(PASS_OFFSETS, p.link.min_elevation_deg, p.link.altitude_km)

    def key_of_pass(max_elevation_deg):
        elevation_deg, step_s = pass_geometry(p.link, max_elevation_deg)
        channels = jax.vmap(satellite.mean_transmittance, (None, 0, None))(p.link, elevation_deg, table)
        return pass_key(p, *pass_block(p, channels, step_s)).key_length

    mean_key = jnp.dot(weights, jax.vmap(key_of_pass)(max_elevations))
    passes = free_space.passes_per_day(p.link.station_latitude_deg, p.link.min_elevation_deg, p.link.altitude_km, p.link.inclination_deg)
    return passes * p.link.cloud_free_prob * mean_key, passes


def pass_metrics(p: StudyParams) -> tuple[dict[str, jax.Array], tuple]:
    """Cube variables of one pass peaking at ``link.max_elevation_deg``, with the mean transmittance per step."""
    elevation_deg, step_s = pass_geometry(p.link, p.link.max_elevation_deg)
    table = satellite.diffraction_table(p.link)
    loss_db = jax.vmap(satellite.loss_budget_db, (None, 0, None))(p.link, elevation_deg, table)["total_loss_db"]
    channels = 10.0 ** (-loss_db / 10.0)
    pulses, gain, error_gain = pass_block(p, channels, step_s)
    key = pass_key(p, pulses, gain, error_gain)
    duration_s = step_s * PASS_TIME_STEPS
    per_day, passes = key_per_day(p, table)
    metrics = {
        "key_per_pass": key.key_length,
        "key_rate": safe_divide(key.key_length, duration_s),
        "key_rate_per_pulse": safe_divide(key.key_length, pulses),
        "qber": safe_divide(error_gain[0], gain[0]),
        "gain": gain[0],
        "plob_bound_per_pulse": jnp.mean(plob_bound(channels)),
        "pass_duration_s": duration_s,
        "block_pulses": pulses,
        "min_total_loss_db": jnp.min(loss_db),
        "phase_error": key.phase_error,
        "passes_per_day": passes,
        "key_per_day": per_day,
        "key_per_year": 365.25 * per_day,
    }
    return metrics, (elevation_deg, step_s, table)


def pass_montecarlo_metrics(p: StudyParams, key, trials: int, geometry) -> dict[str, jax.Array]:
    """Distribution of the key per pass: every trial fades each time step (pointing, scintillation) and samples
    the pass's counts.

    The counts are drawn as one multinomial with the pass-averaged cell probabilities. A pass is a sum of
    steps with different probabilities p_t; this has the same mean and a variance smaller by N Var_t(p_t),
    which is below p_max of it (detection probabilities of satellite links are << 1).
    """
    elevation_deg, step_s, table = geometry
    probs = intensity_probs(p.source)
    statistics = jax.vmap(satellite.fading, (None, 0, None))(p.link, elevation_deg, table)  # shared by the trials

    def one_pass(t):
        fading_key, counts_key = trial_stream(key, t, FADING_STREAM), trial_stream(key, t, COUNTS_STREAM)
        step_keys = jax.random.split(fading_key, elevation_deg.shape[0])
        channels = jax.vmap(satellite.faded_transmittance)(step_keys, statistics)
        pulses, gain, error_gain = pass_block(p, channels, step_s)
        observed = sample_block(counts_key, jnp.round(pulses), p.protocol.p_key_basis, probs, gain, error_gain)
        return finite_key(observed, intensities(p.source), probs, p.protocol)

    passes = jax.vmap(one_pass)(jnp.arange(trials))
    return {**summarise("key_per_pass", passes.key_length), **probability_estimate("abort_probability", passes.aborted)}


def hop_key_rate(p: StudyParams, hop_link, overrides=()) -> dict[str, jax.Array]:
    """Secret key rate (bit/s) and channel loss of one hop: the study's detector, source and protocol over
    ``hop_link``, with the hop's own ``(group.field, value)`` overrides."""
    hop = replace_values(p._replace(link=hop_link), {k: v for k, v in overrides if k.split(".")[0] != "link"})
    rate = point_key_rate(hop)
    loss_db = fibre_loss_db(hop_link.distance_km, hop_link.attenuation_db_per_km, hop_link.extra_loss_db)
    return {"key_rate": rate, "loss_db": loss_db}


def chain_hops(p: StudyParams) -> tuple[dict[str, jax.Array], jax.Array]:
    """Key rate and loss of every hop slot [H], and which slots hold a hop (corridors fill the first N + 1)."""
    link = p.link
    if link.type == "corridor":
        hops = link.trusted_nodes + 1.0
        hop_link = FibreLink("fibre", link.total_length_km / hops, link.attenuation_db_per_km, link.extra_loss_db)
        one = hop_key_rate(p, hop_link)
        slots = MAX_TRUSTED_NODES + 1
        return {k: jnp.full(slots, v) for k, v in one.items()}, jnp.arange(slots) < hops
    per_hop = []
    for pairs in link.hops:
        values = dict(pairs)
        hop_link = FibreLink("fibre", values["link.distance_km"], values["link.attenuation_db_per_km"], values["link.extra_loss_db"])
        per_hop.append(hop_key_rate(p, hop_link, pairs))
    return {k: jnp.stack([h[k] for h in per_hop]) for k in per_hop[0]}, jnp.ones(len(per_hop), bool)


def chain_metrics(p: StudyParams) -> tuple[dict[str, jax.Array], tuple]:
    """End-to-end key rate of a trusted-node chain: key relay delivers what its slowest hop makes."""
    hops, mask = chain_hops(p)
    rates = jnp.where(mask, hops["key_rate"], jnp.inf)
    slowest = jnp.argmin(rates)
    metrics = {
        "key_rate": rates[slowest],
        "bottleneck_hop": slowest.astype(jnp.float64),
        "bottleneck_loss_db": hops["loss_db"][slowest],
        "trusted_nodes": jnp.sum(mask) - 1.0,
    }
    return metrics, (hops["key_rate"], mask)


def supply_metrics(p: StudyParams, key, trials: int, horizon_h: float, steps: int, hops) -> dict[str, jax.Array]:
    """Availability of the key supply over ``trials`` simulated horizons (qkdjax.network.availability).

    ``link.paths`` identical disjoint paths, each the chain of hops; hops and their intermediate nodes fail and
    are repaired with the link's reliability figures.
    """
    link = p.link
    rates, mask = hops
    path_mask = (jnp.arange(MAX_PATHS) < link.paths)[:, None] & mask[None, :]
    shape = path_mask.shape

    def reliability(mtbf_h, mttr_h, columns):
        full = lambda v: jnp.full((MAX_PATHS, columns), v)
        return availability.Reliability(full(mtbf_h), full(mttr_h), full(link.failure_shape), full(link.repair_log_sigma))

    summary = availability.simulate_trials(
        key, jnp.broadcast_to(rates, shape), jnp.full(shape, link.buffer_bits), path_mask,
        reliability(link.hop_mtbf_h, link.hop_mttr_h, shape[1]), reliability(link.node_mtbf_h, link.node_mttr_h, shape[1] - 1),
        link.store_bits, link.demand_bps, horizon_h, steps, trials=trials,
    )  # fmt: skip
    renamed = {"availability_mean": "availability", "availability_mean_stderr": "availability_stderr"}
    renamed |= {"first_starvation_h_quantiles": "first_starvation_h_quantile"}
    return {renamed.get(name, name): value for name, value in summary._asdict().items()}


@dataclasses.dataclass(frozen=True)
class Study:
    """``study(values, key) -> metrics`` for one grid point.

    ``choices`` are the static parameters (strings, and optional numbers left unset). A satellite link with
    ``link.elevation_deg`` unset is a pass study (key per pass, per day, per year; ``trials`` turbulence Monte
    Carlo passes). Otherwise the link is evaluated at one point: an unset ``protocol.block_size`` gives asymptotic
    key rates, a set one finite-key blocks, with ``trials`` Monte Carlo blocks per point when ``trials > 0``.
    The study is hashable so that jit caches one program per study.
    """

    choices: tuple[tuple[str, str | None], ...]
    trials: int = 0
    keep_trials: bool = False
    supply_horizon_h: float = 8760.0
    supply_steps: int = 0
    optimizer: optimize.Optimizer | None = None
    inverse: optimize.Inverse | None = None

    @property
    def satellite(self) -> bool:
        return dict(self.choices).get("link.type", "fibre").startswith("satellite")

    @property
    def chain(self) -> bool:
        return dict(self.choices).get("link.type") in ("trusted_node", "corridor")

    @property
    def satellite_pass(self) -> bool:
        return self.satellite and ("link.elevation_deg", None) in self.choices

    @property
    def finite_key(self) -> bool:
        return ("protocol.block_size", None) not in self.choices

    @property
    def outputs(self) -> Mapping[str, Output]:
        if self.chain:
            return {**CHAIN_OUTPUTS, **(SUPPLY_OUTPUTS if self.trials else {})}
        if self.satellite_pass:
            return {**PASS_OUTPUTS, **(PASS_MONTECARLO_OUTPUTS if self.trials else {})}
        extra = {**(LOSS_BUDGET_OUTPUTS if self.satellite else {}), **self.optimize_outputs, **self.inverse_outputs}
        if not self.finite_key:
            return {**ASYMPTOTIC_OUTPUTS, **extra}
        montecarlo = MONTECARLO_OUTPUTS if self.trials else {}
        return {**FINITE_KEY_OUTPUTS, **extra, **montecarlo, **(TRIAL_OUTPUTS if self.keep_trials else {})}

    @property
    def optimize_outputs(self) -> dict[str, Output]:
        """``opt.<param>`` for every optimised parameter, the convergence flag and the rate before optimising."""
        if self.optimizer is None:
            return {}
        outputs = {}
        for name in self.optimizer.params:
            meta = parameters.field(name).metadata
            outputs[f"opt.{name}"] = Output(meta["units"], f"optimised {meta['long_name']}")
        return outputs | {
            "opt.converged": Output("1", f"1 where the best start's key rate reached a plateau (rel. change < {optimize.TOLERANCE:g})"),
            "opt.initial_key_rate": Output("bit/s", "secret key rate with the configured (not optimised) parameters"),
        }

    @property
    def inverse_outputs(self) -> dict[str, Output]:
        """One variable per inverse question, e.g. ``max.link.distance_km``: NaN where no value reaches the target."""
        if self.inverse is None:
            return {}
        link_type = dict(self.choices).get("link.type")
        outputs = {}
        for name in self.inverse.solve:
            meta, quantity = parameters.field(name, link_type).metadata, optimize.INVERSE_QUANTITIES[name]
            long_name = f"{quantity.long_name} {self.inverse.target_key_rate:g} bit/s"
            outputs[self.inverse.output_name(name)] = Output(meta["units"], long_name)
        return outputs

    @property
    def coords(self) -> Mapping[str, tuple[np.ndarray, Mapping[str, str]]]:
        """Values and attributes of the per-point dims that outputs may have."""
        return {
            "quantile": (np.asarray(QUANTILES), {"units": "1", "long_name": "quantile over Monte Carlo trials"}),
            "trial": (np.arange(self.trials), {"units": "1", "long_name": "Monte Carlo trial index"}),
        }

    @property
    def evaluations_per_point(self) -> int:
        if self.chain:
            return max(self.trials, 1) * MAX_PATHS * (MAX_TRUSTED_NODES + 1)  # per time step: the scan's state
        return max(self.trials, 1) * (PASS_TIME_STEPS if self.satellite_pass else 1)

    def __call__(self, values: Mapping[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
        p = build_params({**values, **dict(self.choices)})
        if self.chain:
            metrics, hops = chain_metrics(p)
            if self.trials:
                metrics |= supply_metrics(p, key, self.trials, self.supply_horizon_h, self.supply_steps, hops)
            return metrics
        if self.satellite_pass:
            metrics, geometry = pass_metrics(p)
            return metrics | (pass_montecarlo_metrics(p, key, self.trials, geometry) if self.trials else {})
        answers = {}
        if self.optimizer is not None:
            optimum = optimize.optimise(p, self.optimizer, key_rate_margin_per_pulse, point_key_rate)
            p = optimum.params
            answers |= {f"opt.{name}": value for name, value in optimum.values.items()}
            answers |= {"opt.converged": optimum.converged.astype(jnp.float64), "opt.initial_key_rate": optimum.initial_key_rate}
        if self.inverse is not None:
            answers |= optimize.answer(p, self.inverse, self.optimizer, key_rate_margin_per_pulse, point_key_rate)
        if not self.finite_key:
            metrics = asymptotic_metrics(p)  # deterministic: the key is unused
        else:
            metrics, block = finite_key_metrics(p)
            if self.trials:
                metrics |= montecarlo_metrics(p, key, self.trials, self.keep_trials, block)
        metrics |= answers
        if self.satellite:
            budget = satellite.loss_budget_db(p.link, p.link.elevation_deg)
            metrics |= {name: budget[name] for name in LOSS_BUDGET_OUTPUTS}
        return metrics
