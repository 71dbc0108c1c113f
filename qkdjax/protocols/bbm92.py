"""Entanglement-based QKD (BBM92): a photon-pair source between Alice and Bob, each measuring in a random basis.

C. H. Bennett, G. Brassard, N. D. Mermin, PRL 68, 557 (1992); key rate with a realistic pair source and threshold
detectors from X. Ma, C.-H. F. Fung, H.-K. Lo, PRA 76, 012307 (2007) ("MFL 2007"). The source sits between the
parties (``link.arms == 2``: ``midpoint_fibre`` with the source at ``relay_fraction``, or a satellite double
downlink); each arm's transmittance times its side's detector efficiency is that side's ``eta``. Coincidence gain
``Q`` and QBER ``E`` per pump pulse: ``qkdjax.physics.pairs`` (thermal: MFL 2007 Eqs. (9)-(10); Poisson: derived
there). Each side clicks from noise alone with ``Y_0 = 1 - (1 - d)^2 (1 - b)^2``: two detectors with dark count
probability ``d`` and the link's background ``b`` per detector per window. Double clicks get a random bit.

Asymptotic key per pulse (MFL 2007, Sec. II, one-way post-processing): with the squashing model the source is
basis-independent, so the phase error of the key equals the bit error of the other basis, ``E`` in both, and

    R = q Q [1 - f H2(E) - H2(E)],     q = p^2 + (1 - p)^2

for each party picking the key basis with probability ``p`` (MFL: ``p = 1/2``, ``q = 1/2``): both matched bases
are sifted into the key, their phase errors estimated from vanishing samples.

Finite key (``block_size`` coincidences per block, all bases): the key-basis matches ``n_k`` with ``m_k`` errors
form the key, the test-basis matches ``n_t`` with ``m_t`` errors bound its phase error by random sampling without
replacement (C. C.-W. Lim et al., PRA 89, 022307 (2014), Eq. (2) with its ``gamma``, ``qkdjax.tail_bounds``):
``phi = m_t / n_t + gamma(eps_PE, m_t / n_t, n_k, n_t)``. No decoy estimate is needed (every squashed
coincidence is a qubit pair), so Lim 2014's Eq. (1) keeps only its single-photon and leakage terms, with its
security accounting split as ``eps_sec = eps_PE + eps_PA`` (halves), ``eps_cor`` for error verification:

    l = floor( n_k [1 - H2(phi)] - f n_k H2(m_k / n_k) - log2(2 / eps_cor) - 2 log2(1 / (2 eps_PA)) ),

the form of the satellite entanglement-QKD analyses (our reading of Yin et al., Nature 582, 501 (2020), Methods).
A block whose observed key-basis QBER exceeds ``qber_abort`` gives no key. A finite block keeps its test-basis
matches for the estimate, so for large blocks its key tends to ``p^2 / q`` of the asymptotic one. The same estimator serves expected
counts, Monte Carlo blocks (the four cells multinomial, ``qkdjax.montecarlo.fluctuations``) and satellite passes
(all coincidences of a pass as one block).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.montecarlo.estimates import COUNTS_STREAM, probability_estimate, summarise, trial_stream
from qkdjax.montecarlo.fluctuations import sample_multinomial
from qkdjax.numerics import binary_entropy, safe_divide
from qkdjax.parameters import Protocol, Quantity, Range, StudyParams, number
from qkdjax.physics.bounds import plob_bound, single_repeater_bound
from qkdjax.physics.pairs import coincidences
from qkdjax.protocols.bb84_decoy import MONTECARLO_OUTPUTS, TRIAL_OUTPUTS
from qkdjax.protocols.middle_station import BOUND_OUTPUTS, relay_detector_constraints
from qkdjax.sources.spdc import SPDCSource
from qkdjax.sweep import Output
from qkdjax.tail_bounds import sampling_deviation

OPEN_UNIT = Range(0.0, 1.0, low_closed=False, high_closed=False)

ASYMPTOTIC_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "secret key rate", role="rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per pump pulse (or coincidence window)", role="rate_per_pulse"),
    "qber": Output("1", "quantum bit error rate of the coincidences in matched bases"),
    "gain": Output("1", "coincidence probability per pump pulse (both sides click)"),
    **BOUND_OUTPUTS,
}
FINITE_KEY_OUTPUTS: Mapping[str, Output] = {
    **ASYMPTOTIC_OUTPUTS,
    "key_length": Output("bit", "secret key length of a block with the expected counts"),
    "block_pulses": Output("1", "pump pulses per block"),
    "phase_error": Output("1", "upper bound on the key-basis phase-error rate"),
}


class Counts(NamedTuple):
    """Matched-basis coincidences of one block: key basis and test basis, with their bit errors."""

    key: jax.Array
    key_errors: jax.Array
    test: jax.Array
    test_errors: jax.Array


def counts_of(cells) -> Counts:
    """``Counts`` from the four cells (key correct, key error, test correct, test error)."""
    return Counts(cells[0] + cells[1], cells[1], cells[2] + cells[3], cells[3])


class Key(NamedTuple):
    key_length: jax.Array  # bits, >= 0
    phase_error: jax.Array
    qber: jax.Array  # observed in the key basis
    aborted: jax.Array
    length_margin: jax.Array  # before rounding and clipping (negative: no key); smooth, for optimisers


class Block(NamedTuple):
    pulses: jax.Array
    statistics: tuple  # (gain, error_gain) per pulse
    key: Key


class BBM92(Protocol):
    """BBM92 with a pair source between the parties and threshold detectors at both ends (module docstring).

    ``detector`` is both sides' detectors; ``bob_efficiency`` and ``bob_dark_count_prob`` give Bob's side its own.
    """

    types = ("bbm92",)
    cost_family = "entanglement"
    arms: ClassVar[int] = 2
    needs: ClassVar[Mapping[str, type]] = {"source": SPDCSource, "detector": ThresholdDetector}
    finite_key_field = "block_size"
    pass_blocks = True
    p_key_basis: Any = number("1", "probability that each party picks the key basis", OPEN_UNIT, optimisable=True)
    ec_efficiency: Any = number("1", "error-correction inefficiency f_EC", Range(1.0, 3.0))
    bob_efficiency: Any = number(
        "1", "Bob's detection efficiency (null: detector.efficiency)", Range(0.0, 1.0, low_closed=False), optional=True, default=None
    )
    bob_dark_count_prob: Any = number(
        "1", "Bob's dark count probability per detector per window (null: detector.dark_count_prob)", Range(0.0, 0.5),
        optional=True, default=None,
    )  # fmt: skip
    block_size: Any = number(
        "1", "finite-key block: coincidences (both sides click, any bases)", Range(1.0, 1e18), optional=True, default=None,
        inverse=Quantity("min", True, "smallest block size reaching the target key rate"),
    )  # fmt: skip
    eps_sec: Any = number("1", "secrecy parameter", OPEN_UNIT, default=1e-10)
    eps_cor: Any = number("1", "correctness parameter", OPEN_UNIT, default=1e-15)
    qber_abort: Any = number("1", "abort above this observed key-basis QBER", Range(0.0, 0.5), default=0.11)

    constraints = relay_detector_constraints("bbm92")  # the detectors at both ends: no afterpulses or dead time

    @classmethod
    def outputs(cls, static):
        return FINITE_KEY_OUTPUTS if cls.finite(static) else ASYMPTOTIC_OUTPUTS

    @classmethod
    def sample_outputs(cls, keep_trials: bool):
        return {**MONTECARLO_OUTPUTS, **(TRIAL_OUTPUTS if keep_trials else {})}

    # --- observables -------------------------------------------------------------------------------------------

    def block_statistics(self, p: StudyParams, arms):
        """``(gain, error_gain)`` per pulse at the arms' channel transmittances ``[Alice's, Bob's]``."""
        detector = p.detector
        bob_efficiency = detector.efficiency if self.bob_efficiency is None else self.bob_efficiency
        efficiencies = jnp.stack([detector.efficiency, bob_efficiency])
        background = jnp.broadcast_to(p.link.background_count_prob(efficiencies, 2), (2,))  # what each arm lets in
        dark = jnp.stack(
            [detector.dark_count_prob, detector.dark_count_prob if self.bob_dark_count_prob is None else self.bob_dark_count_prob]
        )
        noise = 1.0 - ((1.0 - dark) * (1.0 - background)) ** 2  # Y_0 of each side: two detectors
        eta_a, eta_b = arms[0] * detector.efficiency, arms[1] * bob_efficiency
        return coincidences(p.source.statistics, p.source.mean_pairs, eta_a, eta_b, noise[0], noise[1], detector.misalignment)

    def matched(self):
        """Probabilities that both pick the key basis, and both the test basis."""
        return self.p_key_basis**2, (1.0 - self.p_key_basis) ** 2

    def cells(self, statistics):
        """Per-pulse probabilities of the four observed cells (``Counts`` order)."""
        gain, error_gain = statistics
        key, test = self.matched()
        return jnp.stack([key * (gain - error_gain), key * error_gain, test * (gain - error_gain), test * error_gain])

    # --- estimates ---------------------------------------------------------------------------------------------

    def asymptotic_margin(self, statistics):
        gain, error_gain = statistics
        qber = safe_divide(error_gain, gain)
        key, test = self.matched()
        return (key + test) * gain * (1.0 - (1.0 + self.ec_efficiency) * binary_entropy(qber))

    def estimate_key(self, counts: Counts) -> Key:
        """Key length of one block from its counts (module docstring)."""
        eps_half = self.eps_sec / 2.0
        test_qber = safe_divide(counts.test_errors, counts.test)
        phase_error = jnp.minimum(test_qber + sampling_deviation(eps_half, test_qber, counts.key, counts.test), 0.5)
        qber = safe_divide(counts.key_errors, counts.key)
        margin = counts.key * (1.0 - binary_entropy(phase_error)) - self.ec_efficiency * counts.key * binary_entropy(qber)
        margin = margin - jnp.log2(2.0 / self.eps_cor) - 2.0 * jnp.log2(1.0 / (2.0 * eps_half))
        has_key = (counts.test > 0) & (jnp.floor(margin) > 0) & (qber <= self.qber_abort)
        return Key(jnp.where(has_key, jnp.floor(margin), 0.0), phase_error, qber, ~has_key, margin)

    def block_key(self, p, pulses, statistics) -> Key:
        """The expected counts of ``pulses`` pulses as one block."""
        return self.estimate_key(counts_of(pulses * self.cells(statistics)))

    def sampled_block_key(self, p, key, pulses, statistics) -> Key:
        """A block of ``pulses`` pulses sampled (from ``key``) and estimated as a deployed system would."""
        return self.estimate_key(counts_of(sample_multinomial(key, jnp.round(pulses), self.cells(statistics))))

    def signal_summary(self, statistics):
        gain, error_gain = statistics
        return {"qber": safe_divide(error_gain, gain), "gain": gain}

    def point_block(self, p, statistics) -> Block:
        """A block of ``block_size`` expected coincidences with the link's coincidence ``statistics``."""
        pulses = safe_divide(self.block_size, statistics[0])
        return Block(pulses, statistics, self.block_key(p, pulses, statistics))

    # --- the point scenario's interface ------------------------------------------------------------------------

    def metrics(self, p):
        arms = p.link.transmittance()
        statistics = self.block_statistics(p, arms)
        bounds = {
            "plob_bound_per_pulse": plob_bound(arms[0] * arms[1]),
            "repeater_bound_per_pulse": single_repeater_bound(arms),
            "channel_transmittance": arms[0] * arms[1],
        }
        if self.block_size is None:
            per_pulse = jnp.maximum(self.asymptotic_margin(statistics), 0.0)
            return {**self._rates(p, per_pulse), **self.signal_summary(statistics), **bounds}, None
        block = self.point_block(p, statistics)
        per_pulse = safe_divide(block.key.key_length, block.pulses)
        finite = {"key_length": block.key.key_length, "block_pulses": block.pulses, "phase_error": block.key.phase_error}
        return {**self._rates(p, per_pulse), **self.signal_summary(statistics), **bounds, **finite}, block

    @staticmethod
    def _rates(p, per_pulse):
        return {"key_rate": per_pulse * p.source.rep_rate_hz, "key_rate_per_pulse": per_pulse}

    def margin_per_pulse(self, p):
        """Secret bits per pulse before rounding and clipping (negative: no key), the optimiser's objective."""
        statistics = self.block_statistics(p, p.link.transmittance())
        if self.block_size is None:
            return self.asymptotic_margin(statistics)
        block = self.point_block(p, statistics)
        return safe_divide(block.key.length_margin, block.pulses)

    def key_rate(self, p):
        return self.metrics(p)[0]["key_rate"]

    def sample_metrics(self, p, key, trials, keep_trials, block: Block):
        """Distribution of the key over ``trials`` sampled blocks of the expected block's pulses."""
        pulses = jnp.round(block.pulses)
        blocks = jax.vmap(lambda t: self.sampled_block_key(p, trial_stream(key, t, COUNTS_STREAM), pulses, block.statistics))(
            jnp.arange(trials)
        )
        metrics = {
            **summarise("key_length", blocks.key_length),
            **summarise("key_rate", safe_divide(blocks.key_length, pulses) * p.source.rep_rate_hz),
            **probability_estimate("abort_probability", blocks.aborted),
        }
        if keep_trials:
            metrics |= {"trial_key_length": blocks.key_length, "trial_qber": blocks.qber}
        return metrics
