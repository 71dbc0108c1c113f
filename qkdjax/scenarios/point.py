"""A link evaluated at one point (a fibre length, a satellite elevation): the protocol's asymptotic or finite-key
metrics, Monte Carlo blocks, and the optimiser's and inverse questions' answers at every grid point."""

from __future__ import annotations

from collections.abc import Mapping

from qkdjax import optimize, parameters
from qkdjax.config import ConfigError
from qkdjax.study import Study
from qkdjax.sweep import Output


def margin_per_pulse(p):
    """The optimiser's objective at one point: the protocol's key bits per pulse before clipping."""
    return p.protocol.margin_per_pulse(p)


def key_rate(p):
    return p.protocol.key_rate(p)


def evaluate(p):
    """The key rate and the protocol's ``(metrics, block)`` at one point."""
    metrics, block = p.protocol.metrics(p)
    return metrics["key_rate"], (metrics, block)


class PointStudy(Study):
    """Asymptotic key rates, or finite-key blocks with the expected counts when the protocol's finite-key field is
    set, with ``trials`` Monte Carlo blocks per point when ``trials > 0``; the link may add metrics of its own
    (``outputs``, ``point_metrics``: a satellite's loss budget, a lit fibre's Raman noise)."""

    name = "point"

    @classmethod
    def check(cls, static, classes, settings):
        protocol = classes["protocol"]
        if settings.trials and not protocol.finite(static):
            field = protocol.finite_key_field
            how = (
                f"set protocol.{field} (e.g. 1e6), or montecarlo.trials=0 for asymptotic key rates"
                if field
                else f"protocol.type {static.get('protocol.type')} has no finite-key analysis: set montecarlo.trials=0"
            )
            raise ConfigError(f"montecarlo.trials = {settings.trials} samples finite blocks: {how}")
        if settings.keep_trials and not settings.trials:
            raise ConfigError("montecarlo.keep_trials = true keeps per-trial values of finite blocks: set montecarlo.trials > 0")

    @property
    def outputs(self) -> Mapping[str, Output]:
        protocol, link = self.classes["protocol"], self.classes["link"]
        extra = {**link.outputs(self.static), **self.optimize_outputs, **self.inverse_outputs}
        montecarlo = protocol.sample_outputs(self.keep_trials) if self.trials else {}
        return {**protocol.outputs(self.static), **extra, **montecarlo}

    @property
    def inverse_outputs(self) -> dict[str, Output]:
        """One variable per inverse question, e.g. ``max.link.distance_km``: NaN where no value reaches the target."""
        if self.inverse is None:
            return {}
        outputs = {}
        for name in self.inverse.solve:
            meta = parameters.field(name, self.types).metadata
            long_name = f"{meta['inverse'].long_name} {self.inverse.target_key_rate:g} bit/s"
            outputs[optimize.output_name(name, meta["inverse"])] = Output(meta["units"], long_name)
        return outputs

    def __call__(self, values, key):
        p, answers, (metrics, block) = self.optimised(self.params(values), margin_per_pulse, evaluate)
        if self.inverse is not None:
            answers |= optimize.answer(p, self.inverse, self.optimizer, margin_per_pulse, key_rate)
        if self.trials:
            metrics |= p.protocol.sample_metrics(p, key, self.trials, self.keep_trials, block)
        metrics |= answers
        return metrics | p.link.point_metrics()
