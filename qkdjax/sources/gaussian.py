"""Gaussian-modulated coherent states for continuous-variable QKD (GG02: F. Grosshans, P. Grangier, PRL 88, 057902
(2002)): each symbol is a coherent state whose two quadratures Alice draws from a centred Gaussian of variance
``V_A`` in shot-noise units."""

from __future__ import annotations

from typing import Any

from qkdjax.parameters import POSITIVE, Source, number


class GaussianModulation(Source):
    """Alice's transmitter: ``symbol_rate_hz`` quantum symbols per second (reference or pilot pulses excluded), each a
    coherent state with Gaussian-distributed quadratures of variance ``modulation_variance_snu`` (optimisable)."""

    types = ("gaussian",)
    symbol_rate_hz: Any = number("Hz", "quantum symbol rate (reference pulses excluded)", POSITIVE)
    modulation_variance_snu: Any = number(
        "1", "modulation variance V_A of each quadrature, in shot-noise units", POSITIVE, optimisable=True
    )
