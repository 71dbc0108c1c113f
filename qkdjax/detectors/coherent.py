"""Coherent (shot-noise-limited) detection for continuous-variable QKD: a balanced homodyne detector measuring one
random quadrature, or a heterodyne detector measuring both (F. Laudenbach et al., Adv. Quantum Technol. 1, 1800011
(2018), Sec. 3). Its noise is trusted: calibrated, not in Eve's hands (qkdjax.physics.cv)."""

from __future__ import annotations

from typing import Any

from qkdjax.parameters import NON_NEGATIVE, Detector, Quantity, Range, choice, number
from qkdjax.physics.cv import QUADRATURES


class CoherentDetector(Detector):
    """Bob's coherent receiver with its local oscillator: overall efficiency (optics and photodiodes) and the
    electronic noise of its amplifier, in shot-noise units."""

    types = ("coherent",)
    measurement: Any = choice("coherent detection: one quadrature (homodyne) or both (heterodyne)", tuple(QUADRATURES))
    efficiency: Any = number(
        "1", "receiver efficiency incl. optics", Range(0.0, 1.0, low_closed=False),
        inverse=Quantity("min", True, "smallest receiver efficiency reaching the target key rate"),
    )  # fmt: skip
    electronic_noise_snu: Any = number(
        "1", "electronic noise variance v_el of the detector, in shot-noise units", NON_NEGATIVE,
        inverse=Quantity("max", False, "largest electronic noise reaching the target key rate"),
    )  # fmt: skip
