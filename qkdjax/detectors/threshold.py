"""Threshold single-photon detectors (models: qkdjax.physics.detector)."""

from __future__ import annotations

import dataclasses
from typing import Any

from qkdjax.parameters import NON_NEGATIVE, Detector, Quantity, Range, number


class ThresholdDetector(Detector):
    """Threshold detectors and receiver optics: Bob's pair (one per bit value), or the middle station's set."""

    types = ("threshold",)
    efficiency: Any = number(
        "1", "receiver detection efficiency incl. optics", Range(0.0, 1.0, low_closed=False),
        inverse=Quantity("min", True, "smallest detection efficiency reaching the target key rate"),
    )  # fmt: skip
    dark_count_prob: Any = number(
        "1", "dark count probability per detector per gate", Range(0.0, 0.5),
        inverse=Quantity("max", True, "largest dark count probability reaching the target key rate"),
    )  # fmt: skip
    afterpulse_prob: Any = number("1", "afterpulse probability", Range(0.0, 1.0, high_closed=False), default=0.0)
    dead_time_ns: Any = number("ns", "detector dead time", NON_NEGATIVE, default=0.0)
    misalignment: Any = number(
        "1", "optical misalignment error probability", Range(0.0, 0.5),
        inverse=Quantity("max", False, "largest misalignment reaching the target key rate"),
    )  # fmt: skip

    def with_background(self, background_count_prob) -> ThresholdDetector:
        """These detectors with the noise a link lets in (``Link.background_count_prob``, per detector per gate)
        added to each one's dark counts as independent noise: ``1 - (1 - p_dark)(1 - p_background)``, written
        ``p_dark + p_background (1 - p_dark)`` (exactly the dark counts where nothing is let in)."""
        noise = self.dark_count_prob + background_count_prob * (1.0 - self.dark_count_prob)
        return dataclasses.replace(self, dark_count_prob=noise)
