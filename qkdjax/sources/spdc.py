"""Photon-pair sources: spontaneous parametric down-conversion (models: qkdjax.physics.pairs)."""

from __future__ import annotations

from typing import Any

from qkdjax.parameters import POSITIVE, Range, Source, choice, number
from qkdjax.physics.pairs import PAIR_STATISTICS


class SPDCSource(Source):
    """A pair source between the parties (BBM92): ``mean_pairs`` pairs per pump pulse, thermal (single-mode) or
    Poisson (multimode) pair statistics. A CW-pumped source is the same with ``rep_rate_hz`` = 1 / coincidence
    window and ``mean_pairs`` = pair rate x window (pairs per window)."""

    types = ("spdc",)
    rep_rate_hz: Any = number("Hz", "pump pulses (or coincidence windows) per second", POSITIVE)
    mean_pairs: Any = number(
        "1", "mean photon pairs per pulse (or per coincidence window)", Range(0.0, 10.0, low_closed=False), optimisable=True
    )
    statistics: str = choice("pair-number statistics: thermal (single-mode SPDC) or poisson (multimode)", PAIR_STATISTICS)
