"""Parameter pytrees and the registry of models: the single source of units, ranges, roles and names.

A model is a frozen dataclass that subclasses one of the five group bases below (``Link``, ``Detector``,
``Source``, ``Protocol``, ``Cost``) and names its ``types``: defining it registers it, so ``link=NAME`` (or
``protocol.type: NAME``) in a config selects it and nothing else in qkdjax has to know it exists. The modules
of ``qkdjax.links``, ``qkdjax.detectors``, ``qkdjax.sources``, ``qkdjax.protocols`` and ``qkdjax.costs`` are
imported on the first lookup; a model defined anywhere else (a notebook, a test, a user package) registers the
same way.

Every numeric field carries its CF ``units``, a ``long_name``, its allowed range and optionally a default, whether
the optimiser may tune it, which inverse question it answers and its role for reports (``number``); string fields
are static (part of the pytree structure, so a new value compiles a new program) and list their choices. The sweep
engine reads the same metadata to label cube coordinates, the validator to reject bad input and the optimiser to
know what it may tune. Physics methods receive these dataclasses with scalar leaves (one grid point) and are
vmapped by the engine.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import numpy as np


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


class Quantity(NamedTuple):
    """An inverse question a field answers (the key rate is monotone in it): its smallest (``min``) or largest
    (``max``) value that still reaches a target rate, searched in log10 or linearly, and the answer's long name."""

    direction: str
    log_scale: bool
    long_name: str


def number(
    units: str,
    long_name: str,
    allowed: Range,
    *,
    default: Any = dataclasses.MISSING,
    optional: bool = False,
    optimisable: bool = False,
    inverse: Quantity | None = None,
    role: str | None = None,
) -> Any:
    """A numeric (traced, sweepable) field.

    ``optional``: it may be left unset (null), which is static. ``default``: the value a config that omits it
    gets. ``optimisable``: ``qkdjax.optimize`` may tune it (within ``optimize.bounds`` cut by the class's
    ``feasible_interval``). ``inverse``: the inverse question it answers. ``role``: what reports use it for
    (``distance``, ``elevation``, ``option``, ``demand``), written to its coordinate's ``qkdjax_role`` attr.
    """
    metadata = {"units": units, "long_name": long_name, "range": allowed, "optional": optional}
    metadata |= {"optimisable": optimisable, "inverse": inverse, "role": role}
    return dataclasses.field(default=default, metadata=metadata)


def choice(long_name: str, choices: tuple[str, ...], *, default: Any = dataclasses.MISSING) -> Any:
    """A string field: static under jit; a list of choices in a sweep is a categorical axis."""
    return dataclasses.field(default=default, metadata={"static": True, "long_name": long_name, "choices": choices})


class Column(NamedTuple):
    """A column of a ``table`` field: its name, CF units and allowed values."""

    name: str
    units: str
    allowed: Range


def structure(long_name: str, parse: Callable[[str, Any, Mapping[str, type]], Any], default: Any = dataclasses.MISSING) -> Any:
    """A static field of structured config (a network's sites, links, demands): ``parse(path, value, classes)``
    (``classes``: the study's group -> class) validates the value as written and returns it hashable, raising
    ``qkdjax.config.ConfigError`` (one line)."""
    return dataclasses.field(default=default, metadata={"static": True, "long_name": long_name, "parse": parse})


def derived(long_name: str, derive: Callable[[Mapping[str, Any], Mapping[str, Any]], Any]) -> Any:
    """A static field the grid sets, not the user: ``derive(static, numeric)`` of the parsed grid (e.g. how many node
    slots a corridor's largest ``trusted_nodes`` needs), so the shapes it fixes follow the sweep."""
    return dataclasses.field(default=None, metadata={"static": True, "long_name": long_name, "derive": derive})


def table(long_name: str, columns: tuple[Column, ...]) -> Any:
    """A measured table (rows of ``columns``, the first strictly increasing): given inline as a list of rows or as
    the path of a CSV file, null where unused. Static (it shapes the program): a tuple of column tuples."""
    return dataclasses.field(default=None, metadata={"static": True, "long_name": long_name, "table": columns})


class Constraint(NamedTuple):
    """A relation between fields, checked on every combination of their swept values: names of the class's own
    fields, or dotted ``group.field`` paths of other groups (a protocol's demands on its detector). A static
    field (a table) is passed as its value, unbroadcast; the relation is skipped where an optional one is unset."""

    description: str
    fields: tuple[str, ...]
    holds: Callable[..., np.ndarray]


def numeric_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if "range" in f.metadata)


def choice_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if "choices" in f.metadata)


GROUPS = ("link", "detector", "source", "protocol", "cost")
PACKAGES = {
    "link": "qkdjax.links",
    "detector": "qkdjax.detectors",
    "source": "qkdjax.sources",
    "protocol": "qkdjax.protocols",
    "cost": "qkdjax.costs",
}
_REGISTRY: dict[str, dict[str, type]] = {group: {} for group in GROUPS}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    """Base of every parameter class: subclasses become frozen, keyword-only dataclasses; those that name
    ``types`` become pytrees (string fields static) and are registered under their group."""

    group: ClassVar[str]
    types: ClassVar[tuple[str, ...]] = ()
    constraints: ClassVar[tuple[Constraint, ...]] = ()
    exactly_one_set: ClassVar[tuple[tuple[str, ...], ...]] = ()  # of each tuple of optional fields, one is set

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "types" in cls.__dict__:  # a concrete model: its first field is its type, defaulting to the first name
            cls.__annotations__ = {"type": "str", **inspect.get_annotations(cls)}
            cls.type = choice(f"{cls.group} model", cls.types, default=cls.types[0])
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        if "types" in cls.__dict__:
            jax.tree_util.register_dataclass(cls)
            for name in cls.types:
                if _REGISTRY[cls.group].get(name, cls).__qualname__ != cls.__qualname__:
                    raise TypeError(f"{cls.group} type {name!r} is registered already by {_REGISTRY[cls.group][name]}")
                _REGISTRY[cls.group][name] = cls

    @classmethod
    def check_grid(cls, static: Mapping[str, Any], numeric: Mapping[str, Any]) -> None:
        """Check what constraints cannot express once the whole grid is parsed (``group.field`` -> static value,
        or -> the array of a numeric field's values), e.g. that a network's links name its sites; raise
        ``qkdjax.config.ConfigError`` (one line)."""
        del static, numeric

    @classmethod
    def feasible_interval(cls, name: str, box: tuple[Any, Any], values: Mapping[str, Any], least: Callable[[str], Any]) -> tuple[Any, Any]:
        """Open interval the optimiser may give field ``name`` within ``box``, given ``values`` of the class's
        fields set before it (and those not optimised) and ``least(field)``, the smallest value a field set after
        it may take. Classes whose constraints tie optimisable fields together narrow it."""
        del name, values, least
        return box

    @classmethod
    def optimisation_room(
        cls, least: Callable[[str], float], most: Callable[[str], float]
    ) -> tuple[tuple[str, tuple[str, ...], bool], ...]:
        """``(relation, fields, holds)`` for each relation ``feasible_interval`` needs room for, with ``least`` and
        ``most`` the extreme values the optimiser's boxes (or the fixed values) allow each field."""
        del least, most
        return ()


class Link(Params):
    """A channel. ``arms``: 1 (Alice to Bob), 2 (Alice and Bob to a middle station) or None (a chain whose hops
    take the protocol's arms); ``transmittance()`` is a scalar for one arm and ``[Alice's arm, Bob's arm]`` for
    two. Two noise hooks of the receiver at the end of each arm (Bob, Alice and Bob, or the middle station), each a
    scalar or one value per arm: ``background_count_prob`` is the probability of a noise click per detector per
    detection window the channel adds to photon counters (background light, Raman photons of classical traffic),
    and ``noise_photons_per_mode`` the noise photons per second per Hz of bandwidth at the quantum wavelength (both
    polarisations), which is the photon number of each mode a coherent receiver's local oscillator picks."""

    group = "link"
    arms: ClassVar[int | None] = 1
    default_type: ClassVar[str] = "fibre"
    point_outputs: ClassVar[Mapping[str, Any]] = {}  # cube variables of the link itself (``point_metrics``)

    @classmethod
    def outputs(cls, static: Mapping[str, Any]) -> Mapping[str, Any]:
        """The link's own cube variables for a grid's static choices (``point_metrics`` gives their values)."""
        del static
        return cls.point_outputs

    @classmethod
    def scenario(cls, static: Mapping[str, Any]) -> str:
        """The kind of study this link makes (``qkdjax.scenarios``), from the static choices of the grid."""
        del static
        return "point"

    def transmittance(self):
        raise NotImplementedError

    def background_count_prob(self, detector_efficiency, detectors):
        """Noise click probability per detector per window, for a receiver of ``detectors`` detectors of
        ``detector_efficiency`` that share the noise evenly."""
        del detector_efficiency, detectors
        return 0.0

    def noise_photons_per_mode(self):
        return 0.0

    def point_metrics(self) -> dict[str, Any]:
        """Values of ``outputs`` for a link evaluated at one point."""
        return {}


class Detector(Params):
    """Detectors at the receiver (Bob, or the middle station)."""

    group = "detector"
    default_type: ClassVar[str] = "threshold"


class Source(Params):
    """The transmitters' light source."""

    group = "source"
    default_type: ClassVar[str] = "wcp_decoy"


class Protocol(Params):
    """A protocol family: its post-processing knobs are its fields; the rest is what it declares and computes.

    Declarations: ``arms`` (channel arms it needs), ``needs`` (group -> the model base class it works with),
    ``finite_key_field`` (the optional field whose setting selects a finite-key analysis; None: asymptotic only),
    ``pass_blocks`` (it can estimate a satellite pass's counts as one finite-key block), ``cost_family`` (the
    price set's terminal-pair price it takes).
    The point scenario calls ``outputs``, ``metrics``, ``margin_per_pulse``, ``key_rate`` and, for Monte Carlo
    blocks, ``sample_outputs`` and ``sample_metrics``; the satellite-pass scenario calls ``block_statistics``,
    ``block_key``, ``sampled_block_key`` and ``signal_summary`` (``qkdjax.scenarios``).
    """

    group = "protocol"
    default_type: ClassVar[str] = "bb84_decoy"
    arms: ClassVar[int] = 1
    needs: ClassVar[Mapping[str, type]] = {}
    finite_key_field: ClassVar[str | None] = None
    pass_blocks: ClassVar[bool] = False
    cost_family: ClassVar[str | None] = None  # how a price set prices its terminal pair (``qkdjax.costs``)

    @classmethod
    def finite(cls, static: Mapping[str, Any]) -> bool:
        """Whether the grid's static choices select the finite-key analysis."""
        return cls.finite_key_field is not None and static.get(f"protocol.{cls.finite_key_field}", 1.0) is not None


class Cost(Params):
    """Prices of a design (``qkdjax.costs``): what its sites and links cost to build and run."""

    group = "cost"
    default_type: ClassVar[str] = "unpriced"


@functools.cache
def import_package(package_name: str) -> None:
    """Import every module of a package once per process: defining their classes registers them."""
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__, f"{package_name}."):
        importlib.import_module(module.name)


def discover() -> None:
    """Import every module of the model packages, which registers their classes."""
    for package_name in PACKAGES.values():
        import_package(package_name)


def registry(group: str) -> Mapping[str, type]:
    """Type name -> parameter class of a config group."""
    discover()
    return _REGISTRY[group]


BASES: Mapping[str, type] = {"link": Link, "detector": Detector, "source": Source, "protocol": Protocol, "cost": Cost}


def group_class(group: str, type_name: str | None) -> type:
    """The parameter class of a config group picked by its ``type`` (None: the group's default type)."""
    classes = registry(group)
    name = BASES[group].default_type if type_name is None else type_name
    if name not in classes:
        raise KeyError(type_name)
    return classes[name]


def classes_of(p: StudyParams) -> dict[str, type]:
    """Group -> parameter class of a study's parameters."""
    return {group: type(getattr(p, group)) for group in GROUPS}


def study_classes(static: Mapping[str, Any]) -> dict[str, type]:
    """Group -> parameter class of a grid, from its static ``group.type`` choices."""
    return {group: group_class(group, static.get(f"{group}.type")) for group in GROUPS}


def field(path: str, types: Mapping[str, str | None] | None = None) -> dataclasses.Field:
    """The dataclass field of a dotted ``group.field`` path (its metadata: units, long_name, range, ...), in the
    class that ``types`` (group -> type name) picks, the group's default type where it names none.

    Raises KeyError if that class has no such field.
    """
    group, name = path.split(".")
    found = [f for f in dataclasses.fields(group_class(group, (types or {}).get(group))) if f.name == name]
    if not found:
        raise KeyError(path)
    return found[0]


class StudyParams(NamedTuple):
    """Everything a study needs for one grid point."""

    link: Link
    detector: Detector
    source: Source
    protocol: Protocol
    cost: Cost


def build_params(values: Mapping[str, Any]) -> StudyParams:
    """Build the params pytree from a flat mapping ``"group.field" -> value`` (scalars or arrays); fields it
    does not name keep their defaults."""
    groups = {}
    for group in GROUPS:
        cls = group_class(group, values.get(f"{group}.type"))
        names = [f.name for f in dataclasses.fields(cls) if f"{group}.{f.name}" in values]
        groups[group] = cls(**{name: values[f"{group}.{name}"] for name in names})
    return StudyParams(**groups)


def replace_values(p: StudyParams, values: Mapping[str, Any]) -> StudyParams:
    """``p`` with the fields named by ``"group.field"`` keys replaced by ``values``."""
    groups: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        group, name = path.split(".")
        groups.setdefault(group, {})[name] = value
    return p._replace(**{group: dataclasses.replace(getattr(p, group), **fields) for group, fields in groups.items()})


def field_of(p: StudyParams, path: str) -> dataclasses.Field:
    """The dataclass field of ``group.field`` in the class of ``p``'s group."""
    group, name = path.split(".")
    return next(f for f in dataclasses.fields(type(getattr(p, group))) if f.name == name)


def flagged_paths(classes: Mapping[str, type], flag: str) -> tuple[str, ...]:
    """Dotted paths of the fields whose metadata sets ``flag`` (``optimisable``, ``inverse``), in group then
    field order (the order the optimiser sets them in)."""
    return tuple(f"{group}.{f.name}" for group, cls in classes.items() for f in dataclasses.fields(cls) if f.metadata.get(flag))
