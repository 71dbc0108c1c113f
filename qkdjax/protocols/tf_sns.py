"""Sending-or-not-sending twin-field QKD (SNS TF-QKD): Alice and Bob send weak pulses to an untrusted middle station.

X.-B. Wang, Z.-W. Yu, X.-L. Hu, Phys. Rev. A 98, 062323 (2018) ("WYH 2018"). In each window each party picks a Z
window (probability ``p_z_window``) or an X window. In a Z window a party sends a phase-randomised coherent pulse
of intensity ``mu_z`` with probability ``epsilon`` (Alice's bit 1, Bob's bit 0) or sends nothing; in an X window
it sends a decoy intensity (vacuum, ``mu_x_weak``, ``mu_x_decoy``) with a random phase, announced afterwards.
Charlie interferes the two pulses on a 50:50 beam splitter with two threshold detectors; an effective event is
exactly one click (the convention of WYH 2018). Key per window pair from Z windows (WYH 2018, Eq. (4)):

    R = p_z^2 { 2 epsilon (1 - epsilon) mu_z e^-mu_z s_1 [1 - H(e_1^ph)] - f S_Z H(E_Z) }

``s_1``: yield of the untagged single-photon states (one party sends one photon, the other nothing), ``e_1^ph``:
their phase-flip error, equal to the X-window single-photon bit-flip error, ``S_Z``/``E_Z``: the Z-window gain
and bit-flip error (a wrong bit: both send, or neither sends and a dark count clicks).

Detection model (one arm's transmittance ``eta`` = channel x Charlie's efficiency, dark counts ``p_d`` per
detector per window, ``x = eta mu``): one sending party puts ``x/2`` on each detector; two phase-randomised pulses
put ``x (1 +- cos delta)`` with a uniform relative phase, so ``<e^(-x cos delta)> = I_0(x)``:

    S_00 = 2 p_d (1 - p_d),   S_01 = 2 (1 - p_d) e^(-x/2) [1 - (1 - p_d) e^(-x/2)],
    S_11 = 2 (1 - p_d) [e^(-x) I_0(x) - (1 - p_d) e^(-2x)]      (WYH 2018, Sec. IV);

each is written as a sum of non-negative terms (``-expm1``, ``I_0 - 1`` by its series), exact at x ~ 1e-12.
X windows whose phases match (the slice width -> 0, the asymptotic analysis) put ``2x (1 - e_d)`` on the right
detector and ``2x e_d`` on the wrong one, ``e_d`` = ``detector.misalignment``. Decoy estimate of ``s_1``,
``e_1``: ``infinite`` decoys give the true single-photon yield ``(1 - p_d) [eta + 2 p_d (1 - eta)]`` and error
``(1 - p_d) [eta e_d + (1 - eta) p_d] / s_1``; ``vacuum_weak`` bounds them from X windows where both send the same
intensity. Their total photon number is Poisson(2 mu) and, given it, the split between the parties is binomial(n,
1/2) whatever mu, so the total-n yields do not depend on mu and the vacuum + weak-decoy bounds of Ma et al.,
PRA 72, 012326 (2005), Eqs. (34)-(35) hold with the intensities 2 mu (our reading of WYH 2018, Eqs. (5)-(6)):
yields from all X windows, the error yield from the phase-matched ones.

The symmetric protocol: both arms must have the same loss (relay in the middle, equal extra losses); asymmetric
channels need the asymmetric SNS of Hu et al. (2019), not built. Asymptotic key only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.numerics import binary_entropy, safe_divide
from qkdjax.parameters import Constraint, Range, StudyParams, choice, number
from qkdjax.protocols.bb84_decoy import vacuum_weak_bounds
from qkdjax.protocols.middle_station import BOUND_OUTPUTS, Estimate, MiddleStationProtocol, relay_detector, relay_detector_constraints
from qkdjax.sources.wcp_decoy import WCPDecoy
from qkdjax.sweep import Output

OPEN_UNIT = Range(0.0, 1.0, low_closed=False, high_closed=False)
I0_SERIES_BELOW = 0.5  # I_0(x) - 1 by its series below, where 1e-16 of I_0 would be a large part of it

OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "secret key rate", role="rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per window (pulse pair) sent", role="rate_per_pulse"),
    "qber": Output("1", "Z-window bit-flip error rate E_Z (in [0, 1]: neither or both sending is a wrong bit)"),
    "gain": Output("1", "Z-window effective-event probability S_Z (exactly one click)"),
    **BOUND_OUTPUTS,
    "single_photon_yield": Output("1", "untagged single-photon yield s_1 used by the key rate (bound)"),
    "single_photon_error": Output("1", "single-photon phase-flip error e_1^ph used by the key rate (bound)"),
}


def i0_minus_one(x):
    """``I_0(x) - 1 = sum_{k>=1} (x/2)^(2k) / (k!)^2`` for ``x >= 0``: its series (8 terms) below
    ``I0_SERIES_BELOW``, ``i0e(x) e^x - 1`` above (where it is > 0.06)."""
    small = x < I0_SERIES_BELOW
    q = jnp.where(small, x, 0.0) ** 2 / 4.0
    term, total = q, q
    for k in range(2, 9):
        term = term * q / (k * k)
        total = total + term
    large = jax.scipy.special.i0e(jnp.where(small, 1.0, x)) * jnp.exp(jnp.where(small, 1.0, x)) - 1.0
    return jnp.where(small, total, large)


def z_window_gains(x, p_dark):
    """``S_00, S_01, S_11`` of a Z window: neither, one, both parties send (``x = eta mu_z``)."""
    live = 1.0 - p_dark
    neither = 2.0 * p_dark * live
    one = 2.0 * live * jnp.exp(-x / 2.0) * (-jnp.expm1(-x / 2.0) + p_dark * jnp.exp(-x / 2.0))
    both = 2.0 * live * (jnp.exp(-x) * (i0_minus_one(x) - jnp.expm1(-x)) + p_dark * jnp.exp(-2.0 * x))
    return neither, one, both


def phase_matched_probs(x, p_dark, e_d):
    """(exactly one click, the wrong one alone) of an X window where both send ``mu`` (``x = eta mu``) in matched phase."""
    live = 1.0 - p_dark
    right, wrong = 2.0 * x * (1.0 - e_d), 2.0 * x * e_d

    def alone(mine, other):  # this detector clicks, the other does not
        return live * jnp.exp(-other) * (-jnp.expm1(-mine) + p_dark * jnp.exp(-mine))

    return alone(right, wrong) + alone(wrong, right), alone(wrong, right)


def single_photon_bounds(protocol, eta, p_dark, e_d):
    """``s_1`` (lower) and ``e_1^ph`` (upper) as the decoy method estimates them."""
    live = 1.0 - p_dark
    if protocol.decoy == "infinite":
        yield1 = live * (eta + 2.0 * p_dark * (1.0 - eta))
        return yield1, safe_divide(live * (eta * e_d + (1.0 - eta) * p_dark), yield1)
    weak, decoy = protocol.mu_x_weak, protocol.mu_x_decoy
    # X windows where both send the same intensity: all phases for the yields, matched phases for the errors
    gains = jnp.stack([z_window_gains(eta * mu, p_dark)[2] for mu in (decoy, weak)] + [2.0 * p_dark * live])
    errors = jnp.stack([phase_matched_probs(eta * mu, p_dark, e_d)[1] for mu in (decoy, weak)] + [p_dark * live])
    return vacuum_weak_bounds(jnp.stack([2.0 * decoy, 2.0 * weak, 0.0]), gains, errors)


def estimate(p: StudyParams) -> Estimate:
    """Asymptotic SNS TF-QKD over a symmetric two-arm link evaluated at one point."""
    arms = p.link.transmittance()
    detector = relay_detector(p, detectors=2)  # Charlie's, with the noise both arms let in
    eta, p_dark, e_d = arms[0] * detector.efficiency, detector.dark_count_prob, detector.misalignment
    protocol = p.protocol
    epsilon, mu = protocol.sending_prob, protocol.mu_z
    neither, one, both = z_window_gains(eta * mu, p_dark)
    gain = (1.0 - epsilon) ** 2 * neither + 2.0 * epsilon * (1.0 - epsilon) * one + epsilon**2 * both
    qber = safe_divide((1.0 - epsilon) ** 2 * neither + epsilon**2 * both, gain)
    yield1, error1 = single_photon_bounds(protocol, eta, p_dark, e_d)
    untagged = 2.0 * epsilon * (1.0 - epsilon) * mu * jnp.exp(-mu) * yield1
    # E_Z passes 1/2 where dark counts rule (neither sent, a wrong bit); the leak is symmetric, H(E) = H(1 - E)
    leak = protocol.ec_efficiency * gain * binary_entropy(jnp.minimum(qber, 1.0 - qber))
    margin = untagged * (1.0 - binary_entropy(error1)) - leak
    return Estimate(arms, gain, qber, yield1, error1, protocol.p_z_window**2 * margin)


class SendingOrNotSending(MiddleStationProtocol):
    """SNS twin-field QKD (Wang, Yu, Hu 2018) over a two-arm link to Charlie's beam splitter and two threshold
    detectors (``detector``: Charlie's; ``misalignment`` is the X-window phase misalignment e_d). The source gives
    the window rate; intensities and the sending probability are the protocol's. Asymptotic key only."""

    types = ("tf_sns",)
    cost_family = "twin_field"
    needs: ClassVar[Mapping[str, type]] = {"source": WCPDecoy, "detector": ThresholdDetector}
    decoy: str = choice("single-photon estimation method (X windows)", ("infinite", "vacuum_weak"))
    sending_prob: Any = number("1", "probability epsilon that a party sends in a Z window", OPEN_UNIT, optimisable=True)
    mu_z: Any = number("1", "intensity sent in a Z window", Range(0.0, 2.0, low_closed=False), optimisable=True)
    mu_x_decoy: Any = number("1", "stronger X-window decoy intensity", Range(0.0, 2.0, low_closed=False), optimisable=True)
    mu_x_weak: Any = number("1", "weaker X-window decoy intensity", Range(0.0, 2.0, low_closed=False), optimisable=True)
    p_z_window: Any = number("1", "probability of a Z window (1: the asymptotic limit)", Range(0.0, 1.0, low_closed=False))
    ec_efficiency: Any = number("1", "error-correction inefficiency f_EC", Range(1.0, 3.0))

    constraints = (
        Constraint("protocol.mu_x_weak < protocol.mu_x_decoy", ("mu_x_weak", "mu_x_decoy"), lambda w, d: w < d),
        *relay_detector_constraints("tf_sns"),
        Constraint(
            "link.relay_fraction = 0.5 (protocol.type tf_sns is the symmetric protocol)", ("link.relay_fraction",), lambda f: f == 0.5
        ),
        Constraint(
            "link.alice_extra_loss_db = link.bob_extra_loss_db (protocol.type tf_sns is the symmetric protocol)",
            ("link.alice_extra_loss_db", "link.bob_extra_loss_db"),
            lambda a, b: a == b,
        ),
    )

    @classmethod
    def feasible_interval(cls, name, box, values, least):
        """The optimiser keeps ``mu_x_weak < mu_x_decoy``: the decoy (set first) leaves room below it."""
        low, high = box
        if name == "mu_x_decoy":
            return jnp.maximum(low, least("mu_x_weak")), high
        if name == "mu_x_weak":
            return low, jnp.minimum(high, values["mu_x_decoy"])
        return box

    @classmethod
    def optimisation_room(cls, least, most):
        names = ("mu_x_decoy", "mu_x_weak")
        return (("mu_x_decoy > mu_x_weak", names, most("mu_x_decoy") > least("mu_x_weak")),)

    @classmethod
    def outputs(cls, static):
        del static
        return OUTPUTS

    def estimate(self, p):
        return estimate(p)
