"""The study: one grid point's parameters -> observables -> key metrics, as the sweep engine maps it.

A study is a small, hashable scenario object (jit caches one program per study) made by ``make_study`` from a
combination of static choices and the run's settings. Which scenario it is follows from what the link class
declares (``Link.scenario``): a link evaluated at one point, a satellite pass, a trusted-node chain. Scenarios
live in ``qkdjax.scenarios`` and register themselves by ``name``; the engine knows none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import numpy as np

from qkdjax import optimize, parameters
from qkdjax.config import ConfigError
from qkdjax.montecarlo.estimates import QUANTILES
from qkdjax.sweep import Output

_SCENARIOS: dict[str, type[Study]] = {}


@dataclasses.dataclass(frozen=True)
class Study:
    """``study(values, key) -> metrics`` for one grid point, with the run's settings.

    ``choices`` are the static parameters (strings, and optional numbers left unset). ``trials`` Monte Carlo
    trials per point (0: none); the scenario says what a trial is.
    """

    name: ClassVar[str]

    choices: tuple[tuple[str, str | None], ...]
    trials: int = 0
    keep_trials: bool = False
    supply_horizon_h: float = 8760.0
    supply_steps: int = 0
    optimizer: optimize.Optimizer | None = None
    inverse: optimize.Inverse | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _SCENARIOS[cls.name] = cls

    @classmethod
    def check(cls, static: Mapping[str, Any], classes: Mapping[str, type], settings: Any) -> None:
        """Reject run settings this scenario cannot honour (raises ``qkdjax.config.ConfigError``)."""

    @staticmethod
    def refuse_point_settings(settings: Any, scenario: str, *, optimises: bool = False) -> None:
        """Inverse questions, kept per-trial blocks and (unless the scenario ``optimises``) optimisation are
        answered for links evaluated at one point: refuse them for ``scenario`` (e.g. "a satellite pass")."""
        if (settings.optimizer and not optimises) or settings.inverse:
            what = "inverse.target_key_rate" if settings.inverse else "optimize.enabled"
            raise ConfigError(
                f"{what} works on links evaluated at one point (e.g. link.elevation_deg set for a satellite), not on {scenario}"
            )
        if settings.keep_trials:
            raise ConfigError(f"montecarlo.keep_trials = true keeps per-trial values of finite blocks at one point, not of {scenario}")

    @property
    def static(self) -> dict[str, Any]:
        return dict(self.choices)

    @property
    def classes(self) -> dict[str, type]:
        return parameters.study_classes(self.static)

    @property
    def outputs(self) -> Mapping[str, Output]:
        raise NotImplementedError

    @property
    def coords(self) -> Mapping[str, tuple[np.ndarray, Mapping[str, str]]]:
        """Values and attributes of the per-point dims that outputs may have."""
        return {
            "quantile": (np.asarray(QUANTILES), {"units": "1", "long_name": "quantile over Monte Carlo trials"}),
            "trial": (np.arange(self.trials), {"units": "1", "long_name": "Monte Carlo trial index"}),
        }

    @property
    def labels(self) -> Mapping[str, tuple[str, np.ndarray, Mapping[str, str]]]:
        """Non-index coordinates on per-point dims: name -> (dim, values, attrs) (e.g. the ends of a network's links)."""
        return {}

    @property
    def optimize_outputs(self) -> dict[str, Output]:
        """``opt.<param>`` for every optimised parameter, the convergence flag and the rate before optimising."""
        if self.optimizer is None:
            return {}
        outputs = {}
        for name in self.optimizer.params:
            meta = parameters.field(name, self.types).metadata
            outputs[f"opt.{name}"] = Output(meta["units"], f"optimised {meta['long_name']}")
        return outputs | {
            "opt.converged": Output("1", f"1 where the best start's key rate reached a plateau (rel. change < {optimize.TOLERANCE:g})"),
            "opt.initial_key_rate": Output("bit/s", "secret key rate with the configured (not optimised) parameters"),
        }

    @property
    def types(self) -> dict[str, str | None]:
        return {group: self.static.get(f"{group}.type") for group in parameters.GROUPS}

    def optimised(self, p: parameters.StudyParams, margin_per_pulse, evaluate) -> tuple[parameters.StudyParams, dict, Any]:
        """``p`` with the optimiser's parameters (``p`` itself without an optimiser), the ``opt.*`` answers, and
        the outcome of ``evaluate(p) -> (key_rate, outcome)`` there (``optimize.optimise``)."""
        if self.optimizer is None:
            return p, {}, evaluate(p)[1]
        optimum = optimize.optimise(p, self.optimizer, margin_per_pulse, evaluate)
        return optimum.params, optimize.answers(optimum), optimum.outcome

    @property
    def evaluations_per_point(self) -> int:
        return max(self.trials, 1)

    def params(self, values: Mapping[str, jax.Array]) -> parameters.StudyParams:
        return parameters.build_params({**values, **self.static})

    def __call__(self, values: Mapping[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
        raise NotImplementedError


def scenario_class(static: Mapping[str, Any]) -> type[Study]:
    """The scenario the grid's link class declares for these static choices."""
    parameters.import_package("qkdjax.scenarios")
    return _SCENARIOS[parameters.group_class("link", static.get("link.type")).scenario(static)]


def make_study(choices: tuple[tuple[str, Any], ...], **settings: Any) -> Study:
    """The study of one combination of static ``choices`` with the run's ``settings`` (``Study``'s fields)."""
    return scenario_class(dict(choices))(choices, **settings)
