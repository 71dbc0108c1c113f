"""The study: one grid point's parameters -> observables -> key metrics.

This is where the physics modules are composed; the sweep engine maps ``Study`` over every grid point and knows
nothing of what it computes. Three kinds of study share it: asymptotic key rates, finite-key blocks with the
expected counts, and Monte Carlo distributions of sampled blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from qkdjax.montecarlo.fluctuations import sample_block
from qkdjax.parameters import StudyParams, build_params
from qkdjax.physics.bounds import plob_bound
from qkdjax.physics.detector import click_and_error_probs, live_fraction
from qkdjax.physics.source import intensities, intensity_probs
from qkdjax.protocols import bb84_decoy
from qkdjax.protocols.bb84_finite import expected_block_counts, finite_key
from qkdjax.sweep import Output

QUANTILES = (0.05, 0.5, 0.95)

# Cube variables of each kind of study.
ASYMPTOTIC_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "secret key rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per sent pulse"),
    "qber": Output("1", "quantum bit error rate of the signal intensity"),
    "gain": Output("1", "detection probability per signal pulse"),
    "plob_bound_per_pulse": Output("bit", "PLOB repeaterless bound per channel use"),
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
MONTECARLO_OUTPUTS: Mapping[str, Output] = {
    "key_length_mean": Output("bit", "mean secret key length per block over Monte Carlo trials"),
    "key_length_std": Output("bit", "standard deviation of the secret key length per block"),
    "key_length_quantile": Output("bit", "quantiles of the secret key length per block", ("quantile",)),
    "key_rate_mean": Output("bit/s", "mean secret key rate over Monte Carlo trials"),
    "key_rate_std": Output("bit/s", "standard deviation of the secret key rate"),
    "key_rate_quantile": Output("bit/s", "quantiles of the secret key rate", ("quantile",)),
    "abort_probability": Output("1", "probability that a block aborts (QBER above threshold or no key)"),
}
TRIAL_OUTPUTS: Mapping[str, Output] = {
    "trial_key_length": Output("bit", "secret key length of each Monte Carlo block", ("trial",)),
    "trial_qber": Output("1", "observed key-basis QBER of each Monte Carlo block", ("trial",)),
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


def finite_key_metrics(p: StudyParams) -> tuple[dict[str, jax.Array], tuple]:
    """Cube variables of a finite block of ``protocol.block_size`` key-basis detections with the expected counts,
    and what the Monte Carlo needs to sample such blocks."""
    channel, gain, error_gain, _, _ = detection_statistics(p)
    intensity, probs = intensities(p.source), intensity_probs(p.source)
    counts, pulses = expected_block_counts(p.protocol.block_size, p.protocol.p_key_basis, probs, gain, error_gain)
    key = finite_key(counts, intensity, probs, p.protocol)
    per_pulse = key.key_length / pulses
    metrics = {
        "key_rate": per_pulse * p.source.rep_rate_hz,
        "key_rate_per_pulse": per_pulse,
        "qber": bb84_decoy.safe_divide(error_gain[0], gain[0]),
        "gain": gain[0],
        "plob_bound_per_pulse": plob_bound(channel),
        "channel_transmittance": channel,
        "key_length": key.key_length,
        "block_pulses": pulses,
        "eps_sec": key.eps_sec,
        "vacuum_detections_x": key.vacuum_detections_x,
        "single_photon_detections_x": key.single_photon_detections_x,
        "phase_error": key.phase_error,
    }
    return metrics, (pulses, probs, gain, error_gain)


def montecarlo_metrics(p: StudyParams, key, trials: int, keep_trials: bool, block) -> dict[str, jax.Array]:
    """Distribution of the key over ``trials`` sampled blocks, each estimated as a deployed system would.

    Trial ``t`` draws from ``fold_in(point_key, t)``: a point's trials do not depend on how the grid is chunked.
    """
    pulses, probs, gain, error_gain = block
    pulses = jnp.round(pulses)

    def one_block(t):
        observed = sample_block(jax.random.fold_in(key, t), pulses, p.protocol.p_key_basis, probs, gain, error_gain)
        return finite_key(observed, intensities(p.source), probs, p.protocol)

    blocks = jax.vmap(one_block)(jnp.arange(trials))
    lengths = blocks.key_length
    rates = lengths / pulses * p.source.rep_rate_hz
    metrics = {
        "key_length_mean": jnp.mean(lengths),
        "key_length_std": jnp.std(lengths, ddof=1) if trials > 1 else jnp.zeros(()),
        "key_length_quantile": jnp.quantile(lengths, jnp.asarray(QUANTILES)),
        "key_rate_mean": jnp.mean(rates),
        "key_rate_std": jnp.std(rates, ddof=1) if trials > 1 else jnp.zeros(()),
        "key_rate_quantile": jnp.quantile(rates, jnp.asarray(QUANTILES)),
        "abort_probability": jnp.mean(blocks.aborted),
    }
    if keep_trials:
        metrics |= {"trial_key_length": lengths, "trial_qber": blocks.qber_x}
    return metrics


@dataclasses.dataclass(frozen=True)
class Study:
    """``study(values, key) -> metrics`` for one grid point.

    ``choices`` are the static parameters (strings, and optional numbers left unset): an unset
    ``protocol.block_size`` means asymptotic key rates; a set one, finite-key blocks, with ``trials`` Monte Carlo
    blocks per point when ``trials > 0``. The study is hashable so that jit caches one program per study.
    """

    choices: tuple[tuple[str, str | None], ...]
    trials: int = 0
    keep_trials: bool = False

    @property
    def finite_key(self) -> bool:
        return ("protocol.block_size", None) not in self.choices

    @property
    def outputs(self) -> Mapping[str, Output]:
        if not self.finite_key:
            return ASYMPTOTIC_OUTPUTS
        return {**FINITE_KEY_OUTPUTS, **(MONTECARLO_OUTPUTS if self.trials else {}), **(TRIAL_OUTPUTS if self.keep_trials else {})}

    @property
    def coords(self) -> Mapping[str, tuple[np.ndarray, Mapping[str, str]]]:
        """Values and attributes of the per-point dims that outputs may have."""
        return {
            "quantile": (np.asarray(QUANTILES), {"units": "1", "long_name": "quantile over Monte Carlo trials"}),
            "trial": (np.arange(self.trials), {"long_name": "Monte Carlo trial"}),
        }

    @property
    def evaluations_per_point(self) -> int:
        return max(self.trials, 1)

    def __call__(self, values: Mapping[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
        p = build_params({**values, **dict(self.choices)})
        if not self.finite_key:
            return asymptotic_metrics(p)  # deterministic: the key is unused
        metrics, block = finite_key_metrics(p)
        if self.trials:
            metrics |= montecarlo_metrics(p, key, self.trials, self.keep_trials, block)
        return metrics
