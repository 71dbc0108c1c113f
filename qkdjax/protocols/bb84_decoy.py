"""Decoy-state BB84 with weak coherent pulses: asymptotic key rates, finite blocks, Monte Carlo blocks, passes.

Key rate (GLLP; D. Gottesman, H.-K. Lo, N. Lutkenhaus, J. Preskill, Quantum Inf. Comput. 4, 325 (2004)) in the
decoy-state form of X. Ma, B. Qi, Y. Zhao, H.-K. Lo, Phys. Rev. A 72, 012326 (2005), Eq. (1):

    R = p_signal q { Q_1 [1 - H2(e_1)] - f Q_mu H2(E_mu) }

with ``q`` the sifting factor, ``Q_mu``/``E_mu`` the gain and QBER of the signal intensity and ``Q_1 = Y_1 mu e^-mu``,
``e_1`` the single-photon gain and error rate, which the ``decoy`` method bounds from what Bob observes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.montecarlo.estimates import ABORT_OUTPUT, COUNTS_STREAM, probability_estimate, summarise, summary_outputs, trial_stream
from qkdjax.montecarlo.fluctuations import sample_block
from qkdjax.numerics import binary_entropy, safe_divide
from qkdjax.parameters import Protocol, Quantity, Range, StudyParams, choice, number
from qkdjax.physics.bounds import plob_bound
from qkdjax.physics.detector import click_and_error_probs, live_fraction
from qkdjax.physics.source import intensities, intensity_probs, multiphoton_prob, poisson_photon_prob
from qkdjax.protocols.bb84_finite import FiniteKey, block_counts, expected_block_counts, finite_key
from qkdjax.sources.wcp_decoy import WCPDecoy
from qkdjax.sweep import Output
from qkdjax.tail_bounds import FINITE_KEY_BOUNDS

DECOY_METHODS = ("infinite", "vacuum_weak", "none")
OPEN_UNIT = Range(0.0, 1.0, low_closed=False, high_closed=False)


def sifting_factor(p_key_basis, p_key_basis_bob=None):
    """Fraction of pulses kept after sifting when Alice picks the key basis with probability ``p`` and Bob with
    ``p_B`` (default: ``p``).

    Efficient BB84 (H.-K. Lo, H. F. Chau, M. Ardehali, J. Cryptology 18, 133 (2005)): both bases are kept and
    their errors estimated separately, so ``q = p p_B + (1-p)(1-p_B)``, ``p^2 + (1-p)^2`` for equal choices;
    ``p = 1/2`` is standard BB84 (``q = 1/2``). Asymptotically both matched bases give key, so ``q`` is symmetric in
    ``p <-> 1 - p`` and any ``p`` in (0, 1) is valid; the finite-key analysis (``bb84_finite``) keeps only
    key-basis detections, ``p p_B`` of the pulses.
    """
    if p_key_basis_bob is None:
        return p_key_basis**2 + (1.0 - p_key_basis) ** 2
    return p_key_basis * p_key_basis_bob + (1.0 - p_key_basis) * (1.0 - p_key_basis_bob)


def vacuum_yield_lower(intensity, gain):
    """Lower bound on the vacuum yield ``Y_0 >= (nu Q_w e^w - w Q_nu e^nu) / (nu - w)`` (Ma et al. 2005, Eq. (34)
    with a weak intensity ``w``; exact, ``Q_w``, for a vacuum weak intensity)."""
    _, nu, w = intensity
    _, q_nu, q_w = gain * jnp.exp(intensity)
    return jnp.maximum((nu * q_w - w * q_nu) / (nu - w), 0.0)


def vacuum_weak_bounds(intensity, gain, error_gain):
    """Lower bound on Y_1 and upper bound on e_1 from three intensities ``mu > nu + omega``, ``omega >= 0``.

    Ma, Qi, Zhao, Lo, Phys. Rev. A 72, 012326 (2005), Eqs. (34)-(35) for a vacuum weak intensity; the general
    weak intensity is the asymptotic limit of C. C.-W. Lim et al., Phys. Rev. A 89, 022307 (2014), Eqs. (2)-(4):

        Y_0 >= (nu Q_w e^w - w Q_nu e^nu) / (nu - w)
        Y_1 >= mu [Q_nu e^nu - Q_w e^w - (nu^2 - w^2)/mu^2 (Q_mu e^mu - Y_0)] / (mu (nu - w) - nu^2 + w^2)
        e_1 Y_1 <= (E_nu Q_nu e^nu - E_w Q_w e^w) / (nu - w)
    """
    mu, nu, w = intensity
    q_mu, q_nu, q_w = gain * jnp.exp(intensity)
    eq_nu, eq_w = (error_gain * jnp.exp(intensity))[1:]
    yield0 = vacuum_yield_lower(intensity, gain)
    yield1 = mu * (q_nu - q_w - (nu**2 - w**2) / mu**2 * (q_mu - yield0)) / (mu * (nu - w) - nu**2 + w**2)
    yield1 = jnp.clip(yield1, 0.0, 1.0)
    error1 = safe_divide((eq_nu - eq_w) / (nu - w), yield1)
    return yield1, error1


def untagged_bounds(mu, gain, error_gain):
    """GLLP without decoys: every multi-photon pulse is assumed tagged and detected.

    ``Q_1 >= Q_mu - P(n >= 2)`` and ``e_1 <= E_mu Q_mu / Q_1`` (GLLP 2004, Sec. 5; Ma et al. 2005, Sec. 2). The
    bound counts vacuum detections too, so with many dark counts it can pass ``P(1)``, the most single photons
    there are: it is capped there (Y_1 <= 1), which keeps it a lower bound.
    """
    single_gain = jnp.clip(gain - multiphoton_prob(mu), 0.0, poisson_photon_prob(1.0, mu))
    return single_gain / poisson_photon_prob(1.0, mu), safe_divide(error_gain, single_gain)


def asymptotic_key_margin(p_signal, mu, gain, qber, single_photon_yield, single_photon_error, protocol):
    """The key-rate formula per sent pulse before clipping at zero: negative where the bound gives no key.

    The key rate is ``max(margin, 0)``; the margin stays smooth where the rate is clipped, so optimisers can
    follow it back toward parameters that give key.
    """
    single_photon_gain = single_photon_yield * poisson_photon_prob(1.0, mu)
    privacy = single_photon_gain * (1.0 - binary_entropy(single_photon_error))
    leak = protocol.ec_efficiency * gain * binary_entropy(qber)
    return p_signal * sifting_factor(protocol.p_key_basis, protocol.p_key_basis_bob) * (privacy - leak)


# ---------------------------------------------------------------------------------------------------------------
# The protocol: observables of a link evaluated at one point, asymptotic and finite-key estimates, and blocks

ASYMPTOTIC_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "secret key rate", role="rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per sent pulse", role="rate_per_pulse"),
    "qber": Output("1", "quantum bit error rate of the signal intensity"),
    "gain": Output("1", "detection probability per signal pulse"),
    "plob_bound_per_pulse": Output("bit", "PLOB repeaterless bound per channel use (+inf for a lossless channel)", role="bound"),
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
    **summary_outputs("key_length", "bit", "secret key length per block"),
    **summary_outputs("key_rate", "bit/s", "secret key rate"),
    **ABORT_OUTPUT,
}
TRIAL_OUTPUTS: Mapping[str, Output] = {
    "trial_key_length": Output("bit", "secret key length of each Monte Carlo block", ("trial",)),
    "trial_qber": Output("1", "observed key-basis QBER of each Monte Carlo block", ("trial",)),
}


def bob_detectors(p: StudyParams):
    """Bob's two detectors with the noise the link lets in added to their dark counts."""
    return p.detector.with_background(p.link.background_count_prob(p.detector.efficiency, 2))


def detection_statistics(p: StudyParams, channel):
    """Gains and error gains per intensity (signal, decoy, weak), the true single-photon yield and error yield,
    and the true vacuum yield.

    Noise the link lets in (its ``background_count_prob`` hook) adds to each detector's dark counts (independent
    Poisson noise). Dead time scales every yield by the live fraction at the mean click rate of the intensity
    mix, shared by Bob's two detectors.
    """
    detector = bob_detectors(p)
    eta = channel * detector.efficiency
    click, error = click_and_error_probs(-jnp.expm1(-eta * intensities(p.source)), detector)
    mean_click = jnp.dot(intensity_probs(p.source), click)
    live = live_fraction(p.source.rep_rate_hz * mean_click / 2.0, detector.dead_time_ns)
    click1, error1 = click_and_error_probs(eta, detector)
    click0, _ = click_and_error_probs(0.0, detector)
    return live * click, live * error, live * click1, live * error1, live * click0


def single_photon_bounds(p: StudyParams, gain, error_gain, true_yield1, true_error_yield1):
    """Y_1 (lower) and e_1 (upper) as the chosen decoy method estimates them."""
    method = p.protocol.decoy
    if method == "infinite":  # infinitely many decoys pin Y_1 and e_1 exactly (Lo, Ma, Chen, PRL 94, 230504 (2005))
        return true_yield1, safe_divide(true_error_yield1, true_yield1)
    if method == "vacuum_weak":
        return vacuum_weak_bounds(intensities(p.source), gain, error_gain)
    return untagged_bounds(p.source.mu_signal, gain[0], error_gain[0])


def vacuum_key_per_pulse(p: StudyParams, gain, true_yield0):
    """Key from vacuum detections of the signal intensity, ``p_signal q Y_0 e^-mu`` (``Y_0`` as the decoy method
    bounds it; none without decoys): they carry no information to Eve (GLLP 2004's untagged bits), the asymptotic
    form of the ``s_X0`` term of Lim et al. 2014, Eq. (1), which Ma et al. 2005, Eq. (1) leave out."""
    method = p.protocol.decoy
    if method == "none":
        return 0.0
    yield0 = true_yield0 if method == "infinite" else vacuum_yield_lower(intensities(p.source), gain)
    signal = p.source.mu_signal
    sifting = sifting_factor(p.protocol.p_key_basis, p.protocol.p_key_basis_bob)
    return p.source.p_signal * sifting * yield0 * poisson_photon_prob(0.0, signal)


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
    gain, error_gain, yield1, error_yield1, yield0 = detection_statistics(p, channel)
    qber = safe_divide(error_gain[0], gain[0])
    y1, e1 = single_photon_bounds(p, gain, error_gain, yield1, error_yield1)
    margin = asymptotic_key_margin(p.source.p_signal, p.source.mu_signal, gain[0], qber, y1, e1, p.protocol)
    if p.protocol.vacuum_contribution == "included":
        margin = margin + vacuum_key_per_pulse(p, gain, yield0)
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
    gain, error_gain, *_ = detection_statistics(p, channel)
    probs = intensity_probs(p.source)
    counts, pulses = expected_block_counts(p.protocol, probs, gain, error_gain)
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


def montecarlo_metrics(p: StudyParams, key, trials: int, keep_trials: bool, block: FiniteKeyEstimate) -> dict[str, jax.Array]:
    """Distribution of the key over ``trials`` sampled blocks like ``block``, each estimated as a deployed system
    would.

    Trial ``t`` draws its counts from ``fold_in(fold_in(key, t), COUNTS_STREAM)``: with common random numbers
    (one ``key`` for every point) the same stream wherever it is evaluated.
    """
    probs, gain, error_gain = block.probs, block.gain, block.error_gain
    pulses = jnp.round(block.pulses)

    def one_block(t):
        observed = sample_block(trial_stream(key, t, COUNTS_STREAM), pulses, p.protocol.matched_bases(), probs, gain, error_gain)
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


class BB84Decoy(Protocol):
    """Decoy-state BB84 with weak coherent pulses and Bob's threshold pair; ``block_size`` set selects the
    finite-key analysis of Lim et al. (2014) (``bb84_finite``), which also serves satellite passes, with the
    confidence bounds ``finite_key_bound`` (``qkdjax.tail_bounds``) on its decoy counts.

    Security parameters follow Lim et al., Phys. Rev. A 89, 022307 (2014): the key is ``eps_cor``-correct and
    ``eps_sec``-secret, where ``eps_sec`` is either fixed or, as in their Fig. 1, proportional to the key
    length (``eps_sec_per_key_bit`` = kappa); exactly one of the two is set for a finite-key study.
    """

    types = ("bb84_decoy",)
    cost_family = "bb84"
    needs: ClassVar[Mapping[str, type]] = {"source": WCPDecoy, "detector": ThresholdDetector}
    finite_key_field = "block_size"
    pass_blocks = True
    decoy: str = choice("single-photon estimation method", DECOY_METHODS)
    # any bias: the key basis is the one whose detections form the key, and at small blocks near the reach the
    # optimum picks it less often than the test basis (q_x < 1/2: more Z data for the phase-error estimate)
    p_key_basis: Any = number("1", "probability that each party picks the key basis", OPEN_UNIT, optimisable=True)
    p_key_basis_bob: Any = number(
        "1", "probability that Bob picks the key basis (null: p_key_basis)", OPEN_UNIT, optional=True, default=None
    )
    p_key_basis_decoy: Any = number(
        "1", "probability that Alice picks the key basis for decoy pulses (null: p_key_basis)", OPEN_UNIT, optional=True, default=None
    )
    p_key_basis_weak: Any = number(
        "1", "probability that Alice picks the key basis for weak pulses (null: p_key_basis)", OPEN_UNIT, optional=True, default=None
    )
    ec_efficiency: Any = number("1", "error-correction inefficiency f_EC", Range(1.0, 3.0))
    ec_leakage: str = choice(
        "error-correction leakage of a finite block: f_EC n h(E) alone (f_h), or at least Tomamichel et al. 2017's",
        ("f_h", "tomamichel2017"), default="f_h",
    )  # fmt: skip
    vacuum_contribution: str = choice(
        "asymptotic key from vacuum detections Y_0 e^-mu (Lim 2014's s_X0; Ma et al. 2005 leave it out)",
        ("excluded", "included"),
        default="excluded",
    )
    block_size: Any = number(
        "1", "finite-key block: key-basis detections n_X, or sent pulses N (block_size_unit)", Range(1.0, 1e18), optional=True,
        inverse=Quantity("min", True, "smallest block size reaching the target key rate"),
    )  # fmt: skip
    block_size_unit: str = choice("what block_size counts", ("detections", "pulses"), default="detections")
    eps_sec: Any = number("1", "secrecy parameter", Range(0.0, 1.0, low_closed=False, high_closed=False), optional=True)
    eps_sec_per_key_bit: Any = number("1", "secrecy parameter per key bit kappa", Range(0.0, 1e-3, low_closed=False), optional=True)
    eps_cor: Any = number("1", "correctness parameter", Range(0.0, 1.0, low_closed=False, high_closed=False))
    finite_key_bound: str = choice(
        "confidence bounds on the decoy counts (qkdjax.tail_bounds)", FINITE_KEY_BOUNDS, default=FINITE_KEY_BOUNDS[0]
    )
    single_photon_error_cap: str = choice(
        "upper bound on single-photon Z errors: the decoy bound alone (none) or also the observed Z errors",
        ("none", "observed"),
        default="none",
    )
    qber_abort: Any = number("1", "abort above this observed key-basis QBER", Range(0.0, 0.5))

    exactly_one_set = (("eps_sec", "eps_sec_per_key_bit"),)

    @classmethod
    def outputs(cls, static):
        return FINITE_KEY_OUTPUTS if cls.finite(static) else ASYMPTOTIC_OUTPUTS

    def matched_bases(self):
        """``(w_X, w_Z)``: probabilities that both pick the key (X) or the test (Z) basis, numbers where the choice
        is the same for every intensity and party (``q_x^2``, ``(1 - q_x)^2``), else one per intensity: Alice
        picks X with ``p_key_basis`` (signal), ``p_key_basis_decoy``, ``p_key_basis_weak``, Bob with
        ``p_key_basis_bob``. Decoys mostly in Z lose less to sifting where the phase-error estimate needs them;
        each intensity must appear in both bases (each basis' decoy bounds use its own intensities)."""
        alice = (self.p_key_basis, self.p_key_basis_decoy, self.p_key_basis_weak)
        if all(a is None for a in (*alice[1:], self.p_key_basis_bob)):
            return self.p_key_basis**2, (1.0 - self.p_key_basis) ** 2
        alice = jnp.stack([self.p_key_basis if a is None else a for a in alice])
        bob = self.p_key_basis if self.p_key_basis_bob is None else self.p_key_basis_bob
        return alice * bob, (1.0 - alice) * (1.0 - bob)

    @classmethod
    def sample_outputs(cls, keep_trials: bool):
        return {**MONTECARLO_OUTPUTS, **(TRIAL_OUTPUTS if keep_trials else {})}

    def metrics(self, p):
        if self.block_size is None:
            return asymptotic_metrics(p), None  # deterministic: nothing to sample
        return finite_key_metrics(p)

    def margin_per_pulse(self, p):
        """Secret bits per pulse before rounding and clipping at zero (negative: no key): smooth in the source and
        protocol parameters, the optimiser's objective."""
        if self.block_size is None:
            return asymptotic_estimate(p).margin_per_pulse
        estimate = finite_key_estimate(p)
        return estimate.key.length_margin / estimate.pulses

    def key_rate(self, p):
        return self.metrics(p)[0]["key_rate"]

    def sample_metrics(self, p, key, trials, keep_trials, block):
        return montecarlo_metrics(p, key, trials, keep_trials, block)

    def block_statistics(self, p, channel):
        """Gain and error gain per intensity at transmittance ``channel`` (a pass averages them over its steps)."""
        gain, error_gain, *_ = detection_statistics(p, channel)
        return gain, error_gain

    def block_key(self, p, pulses, statistics):
        """The counts of ``pulses`` sent with ``statistics`` as one finite-key block (Lim et al. 2014)."""
        probs = intensity_probs(p.source)
        counts = block_counts(pulses, self.matched_bases(), probs, *statistics)
        return finite_key(counts, intensities(p.source), probs, self)

    def sampled_block_key(self, p, key, pulses, statistics):
        """A block of ``pulses`` sampled with ``statistics`` (drawn from ``key``), estimated as a deployed system would."""
        probs = intensity_probs(p.source)
        observed = sample_block(key, pulses, self.matched_bases(), probs, *statistics)
        return finite_key(observed, intensities(p.source), probs, self)

    def signal_summary(self, statistics):
        gain, error_gain = statistics
        return {"qber": safe_divide(error_gain[0], gain[0]), "gain": gain[0]}
