"""Decoy-state measurement-device-independent QKD: Alice and Bob send weak coherent pulses to an untrusted relay.

Key rate per pulse pair (H.-K. Lo, M. Curty, B. Qi, Phys. Rev. Lett. 108, 130503 (2012), Eq. (1)), in the
efficient version (key from the Z basis, phase errors from the X basis, no sifting factor):

    R = p_signal^2 { Q11_Z [1 - H2(e11_X)] - f Q_Z H2(E_Z) }

with ``Q_Z``/``E_Z`` the Z-basis gain and QBER of signal-signal pairs (both Bell states psi+ and psi- counted),
``Q11_Z = mu^2 e^(-2 mu) Y11_Z`` and ``e11_X`` the single-photon-pair gain and X-basis error rate, which the
``decoy`` method bounds from what the relay announces, with the source's signal, decoy and vacuum
(``mu_weak = 0``) intensities sent by both (physics: ``mdi_physics``). ``p_signal^2`` is the share of
pulse pairs in which both send the signal intensity (1 in the asymptotic limit of the papers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.numerics import safe_divide
from qkdjax.parameters import Constraint, Range, StudyParams, choice, number
from qkdjax.protocols import mdi_physics
from qkdjax.protocols.middle_station import BOUND_OUTPUTS, Estimate, MiddleStationProtocol, relay_detector, relay_detector_constraints
from qkdjax.sources.wcp_decoy import WCPDecoy
from qkdjax.sweep import Output

OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "secret key rate", role="rate"),
    "key_rate_per_pulse": Output("bit", "secret key bits per pulse pair sent", role="rate_per_pulse"),
    "qber": Output("1", "Z-basis quantum bit error rate of signal-signal pairs"),
    "gain": Output("1", "Z-basis Bell-state announcement probability per signal-signal pair"),
    **BOUND_OUTPUTS,
    "single_photon_yield": Output("1", "Z-basis single-photon-pair yield Y11 used by the key rate (bound)"),
    "single_photon_error": Output("1", "X-basis single-photon-pair error rate e11 used by the key rate (bound)"),
}


def estimate(p: StudyParams) -> Estimate:
    """Asymptotic decoy MDI-QKD over a two-arm link evaluated at one point."""
    arms = p.link.transmittance()
    detector = relay_detector(p, detectors=4)  # Charlie's, with the noise both arms let in
    eta_a, eta_b = arms * detector.efficiency
    noise, misalignment = detector.dark_count_prob, detector.misalignment
    mu, nu = p.source.mu_signal, p.source.mu_decoy
    model = p.protocol.misalignment_model
    gains = mdi_physics.decoy_gains(mu, nu, mu, nu, eta_a, eta_b, noise, misalignment, model)  # [Alice, Bob] (mu, nu, 0)
    yield11, error11 = mdi_physics.single_pair_bounds(p.protocol.decoy, mu, nu, mu, nu, eta_a, eta_b, noise, misalignment, gains)
    gain, error_gain = gains[0][0, 0], gains[1][0, 0]
    qber = safe_divide(error_gain, gain)
    margin = mdi_physics.key_margin(mu, mu, gain, error_gain, yield11, error11, p.protocol.ec_efficiency)
    return Estimate(arms, gain, qber, yield11, error11, p.source.p_signal**2 * margin)


class MDIDecoy(MiddleStationProtocol):
    """Decoy-state MDI-QKD with weak coherent pulses from both parties (the same ``wcp_decoy`` source) and a
    polarisation Bell-state measurement at the relay with four threshold detectors (``detector``: the relay's).

    Asymptotic key only (``finite_key_field`` None: Monte Carlo blocks and satellite passes are refused with one
    line). The relay's detectors are modelled without afterpulses and dead time, which the constraints require.
    """

    types = ("mdi_decoy",)
    cost_family = "mdi"
    needs: ClassVar[Mapping[str, type]] = {"source": WCPDecoy, "detector": ThresholdDetector}
    decoy: str = choice("single-photon-pair estimation method", mdi_physics.DECOY_METHODS)
    misalignment_model: str = choice("how detector.misalignment enters the relay's gains", mdi_physics.MISALIGNMENT_MODELS)
    ec_efficiency: Any = number("1", "error-correction inefficiency f_EC", Range(1.0, 3.0))

    constraints = (
        *relay_detector_constraints("mdi_decoy"),
        Constraint(
            "source.mu_weak = 0 (protocol.type mdi_decoy: the third intensity is the vacuum)", ("source.mu_weak",), lambda w: w == 0
        ),
    )

    @classmethod
    def outputs(cls, static):
        del static
        return OUTPUTS

    def estimate(self, p):
        return estimate(p)
