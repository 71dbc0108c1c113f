"""Parameter pytrees: one frozen dataclass per config group, the single source of units, ranges and names.

Every numeric field carries its CF ``units``, a ``long_name`` and its allowed range in the field metadata; string
fields are static (part of the pytree structure, so a new value compiles a new program) and list their choices.
The sweep engine reads the same metadata to label cube coordinates, and the validator to reject bad input.
Physics functions receive these dataclasses with scalar leaves (one grid point) and are vmapped by the engine.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qkdjax.physics import satellite
from qkdjax.physics.fibre import fibre_transmittance


@dataclasses.dataclass(frozen=True)
class Range:
    """An interval of allowed values; ``str(Range)`` is how users see it in error messages."""

    low: float = -math.inf
    high: float = math.inf
    low_closed: bool = True
    high_closed: bool = True
    integer: bool = False
    infinite_ok: bool = False  # an infinite bound value (e.g. a component that never fails) is allowed

    def contains(self, x: np.ndarray) -> np.ndarray:
        above = x >= self.low if self.low_closed else x > self.low
        below = x <= self.high if self.high_closed else x < self.high
        ok = above & below & (np.isfinite(x) | self.infinite_ok)
        return ok & (x == np.round(x)) if self.integer else ok

    def __str__(self) -> str:
        # An infinite end is shown closed only where infinity itself is accepted: "(0, inf]" means "inf" is allowed.
        left = "[" if self.low_closed and (math.isfinite(self.low) or self.infinite_ok) else "("
        right = "]" if self.high_closed and (math.isfinite(self.high) or self.infinite_ok) else ")"
        kind = "integer in " if self.integer else ""
        return f"{kind}{left}{self.low:g}, {self.high:g}{right}"


PROBABILITY = Range(0.0, 1.0)
POSITIVE = Range(0.0, math.inf, low_closed=False)
NON_NEGATIVE = Range(0.0, math.inf)
MTBF = Range(0.0, math.inf, low_closed=False, infinite_ok=True)  # a mean time between failures; inf: never fails


def number(units: str, long_name: str, allowed: Range, *, optional: bool = False) -> Any:
    """A numeric (traced, sweepable) field; an ``optional`` one may be left unset (null), which is static."""
    return dataclasses.field(metadata={"units": units, "long_name": long_name, "range": allowed, "optional": optional})


def choice(long_name: str, choices: tuple[str, ...]) -> Any:
    """A string field: static under jit; a list of choices in a sweep is a categorical axis."""
    return dataclasses.field(metadata={"static": True, "long_name": long_name, "choices": choices})


class Constraint(NamedTuple):
    """A relation between fields of one group, checked on every combination of their swept values."""

    description: str
    fields: tuple[str, ...]
    holds: Callable[..., np.ndarray]


def numeric_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if "range" in f.metadata)


def choice_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if "choices" in f.metadata)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FibreLink:
    """Single-mode fibre span with lumped extra loss (connectors, splices, switches)."""

    type: str = choice("link model", ("fibre",))
    distance_km: Any = number("km", "fibre length", NON_NEGATIVE)
    attenuation_db_per_km: Any = number("dB/km", "fibre attenuation", NON_NEGATIVE)
    extra_loss_db: Any = number("dB", "extra lumped loss", NON_NEGATIVE)

    constraints = ()

    def transmittance(self):
        return fibre_transmittance(self.distance_km, self.attenuation_db_per_km, self.extra_loss_db)

    def background_count_prob(self, rep_rate_hz):
        """Noise photons the channel adds per detector per gate (fibre: none modelled)."""
        del rep_rate_hz
        return 0.0


ANGLE = Range(0.0, 90.0)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SatelliteLink:
    """Satellite-ground optical link (down: satellite transmits; up: ground station transmits).

    With ``elevation_deg`` set the link is evaluated at that elevation; left unset (null), over a whole pass that
    peaks at ``max_elevation_deg`` (key per pass, per day, per year). Models: qkdjax.physics.free_space.
    """

    type: str = choice("link model", ("satellite_downlink", "satellite_uplink"))
    altitude_km: Any = number("km", "satellite altitude (circular orbit)", Range(150.0, 40000.0))
    elevation_deg: Any = number("degree", "elevation of the satellite", ANGLE, optional=True)
    max_elevation_deg: Any = number("degree", "maximum elevation of the pass", ANGLE)
    min_elevation_deg: Any = number("degree", "elevation at which the link starts and stops", Range(0.0, 90.0, high_closed=False))
    wavelength_nm: Any = number("nm", "wavelength", Range(100.0, 20000.0))
    transmitter_radius_m: Any = number("m", "transmit aperture radius", Range(0.0, 10.0, low_closed=False))
    beam_waist_m: Any = number("m", "Gaussian beam waist at the transmitter", Range(0.0, 10.0, low_closed=False))
    receiver_radius_m: Any = number("m", "receive aperture radius", Range(0.0, 10.0, low_closed=False))
    intrinsic_loss_db: Any = number("dB", "fixed optical loss of both terminals", NON_NEGATIVE)
    zenith_transmittance: Any = number("1", "atmospheric transmittance at zenith", Range(0.0, 1.0, low_closed=False))
    pointing_jitter_urad: Any = number("urad", "pointing jitter per axis (rms)", NON_NEGATIVE)
    ground_cn2_m_minus_2_3: Any = number("m^(-2/3)", "turbulence strength Cn2 at ground level", NON_NEGATIVE)
    rms_wind_m_per_s: Any = number("m/s", "rms high-altitude wind speed (Hufnagel-Valley)", NON_NEGATIVE)
    station_altitude_m: Any = number("m", "ground station altitude", Range(0.0, 6000.0))
    background_rate_hz: Any = number("Hz", "background counts per detector (night or day sky)", NON_NEGATIVE)
    detection_window_ns: Any = number("ns", "detection time window per pulse", POSITIVE)
    station_latitude_deg: Any = number("degree", "ground station latitude", Range(-80.0, 80.0))
    inclination_deg: Any = number("degree", "orbit inclination", Range(0.0, 180.0))
    cloud_free_prob: Any = number("1", "probability that a pass is cloud free", PROBABILITY)

    constraints = (
        # The diffraction quadrature holds 0.001 dB up to ~60 rad of near-field phase at the transmit aperture.
        Constraint(
            "near-field phase pi link.transmitter_radius_m^2 / (link.wavelength_nm link.altitude_km) <= 50 rad",
            ("transmitter_radius_m", "wavelength_nm", "altitude_km"),
            lambda a, wavelength, h: np.pi * a**2 / (wavelength * 1e-9 * h * 1e3) <= 50.0,
        ),
        Constraint(
            "link.min_elevation_deg < link.max_elevation_deg",
            ("min_elevation_deg", "max_elevation_deg"),
            lambda low, high: low < high,
        ),
    )

    @property
    def uplink(self) -> bool:
        return self.type == "satellite_uplink"

    def transmittance(self):
        """Mean transmittance at ``elevation_deg`` (a link evaluated at one elevation)."""
        return satellite.mean_transmittance(self, self.elevation_deg)

    def background_count_prob(self, rep_rate_hz):
        """Probability of a background count per detector per gate: Poisson counts in the detection window."""
        del rep_rate_hz
        return -jnp.expm1(-self.background_rate_hz * self.detection_window_ns * 1e-9)


MAX_TRUSTED_NODES = 8  # corridors are simulated with this many node slots, the unused ones masked out
MAX_PATHS = 3  # disjoint parallel paths between the two user sites


def hops_field(long_name: str) -> Any:
    """A list of hops, each a fibre link with optional detector/protocol overrides: static (it shapes the study)."""
    return dataclasses.field(metadata={"static": True, "long_name": long_name, "hops": True})


@dataclasses.dataclass(frozen=True)
class KeySupply:
    """Reliability of hops and trusted nodes, key buffers and the application's demand (qkdjax.network)."""

    paths: Any = number("1", "disjoint parallel paths between the user sites", Range(1.0, MAX_PATHS, integer=True))
    hop_mtbf_h: Any = number("h", "mean time between failures of a hop", MTBF)
    hop_mttr_h: Any = number("h", "mean time to repair a hop", POSITIVE)
    node_mtbf_h: Any = number("h", "mean time between failures of a trusted node", MTBF)
    node_mttr_h: Any = number("h", "mean time to repair a trusted node", POSITIVE)
    failure_shape: Any = number("1", "Weibull shape of the times to failure (1: exponential)", Range(0.2, 10.0))
    repair_log_sigma: Any = number("1", "log-sd of lognormal repair times (0: exponential)", Range(0.0, 3.0))
    buffer_bits: Any = number("bit", "key buffer of each hop", NON_NEGATIVE)
    store_bits: Any = number("bit", "end-to-end key store at the user sites", NON_NEGATIVE)
    demand_bps: Any = number("bit/s", "end-to-end key demand of the applications", NON_NEGATIVE)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrustedNodeChain(KeySupply):
    """Fibre hops in series joined at trusted nodes, with key relay; each hop may override detector and protocol
    values of the study (e.g. a hop with other detectors)."""

    type: str = choice("link model", ("trusted_node",))
    hops: Any = hops_field("hops of the chain")

    constraints = ()


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Corridor(KeySupply):
    """A fibre corridor cut into equal hops by ``trusted_nodes`` evenly spaced trusted nodes."""

    type: str = choice("link model", ("corridor",))
    total_length_km: Any = number("km", "corridor length", NON_NEGATIVE)
    trusted_nodes: Any = number("1", "trusted nodes along the corridor", Range(0.0, MAX_TRUSTED_NODES, integer=True))
    attenuation_db_per_km: Any = number("dB/km", "fibre attenuation", NON_NEGATIVE)
    extra_loss_db: Any = number("dB", "extra lumped loss per hop", NON_NEGATIVE)

    constraints = ()


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Detector:
    """Bob's threshold detectors (a pair, one per bit value) and receiver optics."""

    efficiency: Any = number("1", "receiver detection efficiency incl. optics", Range(0.0, 1.0, low_closed=False))
    dark_count_prob: Any = number("1", "dark count probability per detector per gate", Range(0.0, 0.5))
    afterpulse_prob: Any = number("1", "afterpulse probability", Range(0.0, 1.0, high_closed=False))
    dead_time_ns: Any = number("ns", "detector dead time", NON_NEGATIVE)
    misalignment: Any = number("1", "optical misalignment error probability", Range(0.0, 0.5))

    constraints = ()


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Source:
    """Phase-randomised weak coherent pulses at three intensities: signal > decoy > weak (weak may be vacuum)."""

    rep_rate_hz: Any = number("Hz", "pulse repetition rate", POSITIVE)
    mu_signal: Any = number("1", "signal mean photon number", POSITIVE)
    mu_decoy: Any = number("1", "decoy mean photon number", POSITIVE)
    mu_weak: Any = number("1", "weak decoy mean photon number", NON_NEGATIVE)
    p_signal: Any = number("1", "probability of sending the signal intensity", Range(0.0, 1.0, low_closed=False))
    p_decoy: Any = number("1", "probability of sending the decoy intensity", PROBABILITY)

    constraints = (
        Constraint("source.mu_decoy < source.mu_signal", ("mu_decoy", "mu_signal"), lambda d, s: d < s),
        Constraint("source.mu_weak < source.mu_decoy", ("mu_weak", "mu_decoy"), lambda w, d: w < d),
        # The decoy bounds divide by (mu_decoy - mu_weak)(mu_signal - mu_decoy - mu_weak) (Lim 2014, Eq. (3)).
        Constraint(
            "source.mu_signal > source.mu_decoy + source.mu_weak",
            ("mu_signal", "mu_decoy", "mu_weak"),
            lambda s, d, w: s > d + w,
        ),
        Constraint("source.p_signal + source.p_decoy <= 1", ("p_signal", "p_decoy"), lambda s, d: s + d <= 1.0),
    )


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Protocol:
    """Decoy-state BB84 post-processing choices; ``block_size`` set selects the finite-key analysis.

    Security parameters follow Lim et al., Phys. Rev. A 89, 022307 (2014): the key is ``eps_cor``-correct and
    ``eps_sec``-secret, where ``eps_sec`` is either fixed or, as in their Fig. 1, proportional to the key
    length (``eps_sec_per_key_bit`` = kappa); exactly one of the two is set for a finite-key study.
    """

    decoy: str = choice("single-photon estimation method", ("infinite", "vacuum_weak", "none"))
    # any bias: the key basis is the one whose detections form the key, and at small blocks near the reach the
    # optimum picks it less often than the test basis (q_x < 1/2: more Z data for the phase-error estimate)
    p_key_basis: Any = number("1", "probability that each party picks the key basis", Range(0.0, 1.0, low_closed=False, high_closed=False))
    ec_efficiency: Any = number("1", "error-correction inefficiency f_EC", Range(1.0, 3.0))
    block_size: Any = number("1", "key-basis detections per block n_X", Range(1.0, 1e18), optional=True)
    eps_sec: Any = number("1", "secrecy parameter", Range(0.0, 1.0, low_closed=False, high_closed=False), optional=True)
    eps_sec_per_key_bit: Any = number("1", "secrecy parameter per key bit kappa", Range(0.0, 1e-3, low_closed=False), optional=True)
    eps_cor: Any = number("1", "correctness parameter", Range(0.0, 1.0, low_closed=False, high_closed=False))
    qber_abort: Any = number("1", "abort above this observed key-basis QBER", Range(0.0, 0.5))

    constraints = ()
    exactly_one_set = (("eps_sec", "eps_sec_per_key_bit"),)


class StudyParams(NamedTuple):
    """Everything a study needs for one grid point."""

    link: FibreLink | SatelliteLink | TrustedNodeChain | Corridor
    detector: Detector
    source: Source
    protocol: Protocol


# Config group -> {type name -> parameter class}; a group with one class uses the key None (no ``type`` field).
GROUPS: Mapping[str, Mapping[str | None, type]] = {
    "link": {
        "fibre": FibreLink,
        "satellite_downlink": SatelliteLink,
        "satellite_uplink": SatelliteLink,
        "trusted_node": TrustedNodeChain,
        "corridor": Corridor,
    },
    "detector": {None: Detector},
    "source": {None: Source},
    "protocol": {None: Protocol},
}


def group_class(group: str, type_name: str | None) -> type:
    """The parameter class of a config group, picked by its ``type`` field where it has one."""
    classes = GROUPS[group]
    if None in classes:
        return classes[None]
    if type_name not in classes:
        raise KeyError(type_name)
    return classes[type_name]


def field(path: str, type_name: str | None = None) -> dataclasses.Field:
    """The dataclass field of a dotted ``group.field`` path (its metadata: units, long_name, range).

    Raises KeyError if the group's class (picked by ``type_name`` where it has a type) has no such field.
    """
    group, name = path.split(".")
    found = [f for f in dataclasses.fields(group_class(group, type_name)) if f.name == name]
    if not found:
        raise KeyError(path)
    return found[0]


def build_params(values: Mapping[str, Any]) -> StudyParams:
    """Build the params pytree from a flat mapping ``"group.field" -> value`` (scalars or arrays)."""
    groups = {}
    for group in GROUPS:
        cls = group_class(group, values.get(f"{group}.type"))
        groups[group] = cls(**{f.name: values[f"{group}.{f.name}"] for f in dataclasses.fields(cls)})
    return StudyParams(**groups)


def replace_values(p: StudyParams, values: Mapping[str, Any]) -> StudyParams:
    """``p`` with the fields named by ``"group.field"`` keys replaced by ``values``."""
    groups: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        group, field = path.split(".")
        groups.setdefault(group, {})[field] = value
    return p._replace(**{group: dataclasses.replace(getattr(p, group), **fields) for group, fields in groups.items()})
