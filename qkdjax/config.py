"""Config -> validated grid: the one place where user input is checked, before anything is computed.

A numeric parameter given as a list (or through the ``${linspace:..}``/``${logspace:..}`` resolvers) becomes a
numeric axis; a string choice given as a list becomes a categorical axis. Every value of every axis is checked
against the range in the parameter's metadata, and every relation between parameters (``source.mu_decoy <
source.mu_signal`` ...) on every combination of the values it involves. Errors are one line that names the
parameter, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from qkdjax import parameters
from qkdjax.optimize import Inverse, Optimizer, inverse_quantities
from qkdjax.parameters import Range
from qkdjax.units import ROLE_ATTR, cf_attrs


class ConfigError(ValueError):
    """Invalid user input; the message is one line naming the parameter, its value and what is allowed."""


MAX_AXIS_VALUES = 10**9  # values of one sweep axis: float64 arrays on the host
# Host memory a range axis takes while the config is parsed and checked, per value (1e8 values peaked at 4.9 GB).
AXIS_BYTES_PER_VALUE = 64


def _range_args(name: str, args: tuple, *, integer_bounds: bool = False) -> tuple[float, float, int]:
    usage = f"${{{name}:start,stop,num}} with num a positive integer"
    if len(args) != 3:
        raise ConfigError(f"malformed range: {name} got {len(args)} argument(s), expected {usage}")
    start, stop, num = args
    numbers_ok = all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args)
    if not numbers_ok or not isinstance(num, int) or num < 1:
        raise ConfigError(f"malformed range: {name}:{','.join(map(str, args))}, expected {usage}")
    if num > MAX_AXIS_VALUES:  # before NumPy allocates them
        raise ConfigError(f"{name}:{','.join(map(str, args))} has {num} values, above the maximum {MAX_AXIS_VALUES:.0e} of an axis (8 GB)")
    from qkdjax.resources import available_memory_bytes  # (resources builds on this module)

    if num * AXIS_BYTES_PER_VALUE > (memory := available_memory_bytes()):
        raise ConfigError(
            f"{name}:{','.join(map(str, args))} has {num:.3g} values, which take about {num * AXIS_BYTES_PER_VALUE / 2**30:.3g} GiB "
            f"to parse, more than the {memory / 2**30:.3g} GiB available: use fewer values, or sub-ranges in several jobs"
        )
    return float(start), float(stop), num


def linspace(*args) -> list[float]:
    """``${linspace:start,stop,num}``: ``num`` evenly spaced values, both ends included."""
    return np.linspace(*_range_args("linspace", args)).tolist()


def logspace(*args) -> list[float]:
    """``${logspace:a,b,num}``: ``num`` values from ``10^a`` to ``10^b``, evenly spaced in log10."""
    return np.logspace(*_range_args("logspace", args)).tolist()


OmegaConf.register_new_resolver("linspace", linspace, replace=True)
OmegaConf.register_new_resolver("logspace", logspace, replace=True)


@dataclasses.dataclass(frozen=True)
class Axis:
    """One dimension of the result cube: a dotted config path, its values and CF attributes."""

    name: str
    values: np.ndarray
    attrs: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Grid:
    """The parameter space of a study: fixed values plus numeric (vectorised) and categorical (looped) axes."""

    fixed: Mapping[str, float]
    static: Mapping[str, str]
    numeric_axes: tuple[Axis, ...]
    categorical_axes: tuple[Axis, ...]

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in (*self.numeric_axes, *self.categorical_axes))


@dataclasses.dataclass(frozen=True)
class Settings:
    """How to run and where to write: everything in the config outside the physics groups."""

    seed: int
    chunk_size: int
    output_dir: str
    output_name: str | None
    output_format: str
    shard: int  # this job's slice of the grid, of ``num_shards`` (cluster array jobs writing one Zarr store)
    num_shards: int
    trials: int
    keep_trials: bool
    common_random_numbers: bool  # every grid point and option draws the same random streams per trial
    supply_horizon_h: float
    supply_steps: int
    compile_cache_dir: str | None = None  # JAX's persistent compilation cache; None: off
    optimizer: Optimizer | None = None
    inverse: Inverse | None = None
    design: DesignSettings | None = None  # the cheapest network design (qkdjax.network.planning)


class DesignSettings(NamedTuple):
    """``design.*``: which network designs to look for and how sure their supply must be."""

    probability: float  # each demand met over the horizon with at least this probability
    designs: int  # the cheapest and its runners-up
    protection: str  # none | single_span | auto


PROTECTIONS = ("none", "single_span", "auto")
MAX_DESIGNS = 20  # each is one more MILP solve and one more Monte Carlo run


OUTPUT_FORMATS = ("netcdf", "zarr")
_APP_KEYS = {"seed", "output", "sweep", "montecarlo", "supply", "compile_cache", "optimize", "inverse", "compare", "design", "hydra"}
DESIGN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
# What every design of one comparison shares: where the cube goes, how it is run, and the random numbers (common
# random numbers across designs).
SHARED_BY_DESIGNS = ("compare", "output", "sweep", "seed", "montecarlo", "supply", "compile_cache", "hydra")


def parse_compare(cfg: DictConfig) -> dict[str, tuple[str, ...]]:
    """``compare``: design name -> the overrides that make that design on top of the run's (empty: no comparison).

    The run computes every design with the same seed and merges their cubes along a ``design`` dim. Raises
    ``ConfigError``.
    """
    compare = cfg.get("compare")
    if compare is None:
        return {}
    if cfg.get("design") is not None and cfg.design.get("enabled") is True:
        raise ConfigError("compare and design.enabled: one at a time (a design run compares the designs it finds)")
    if not isinstance(compare, DictConfig):
        raise ConfigError(f"compare = {compare!r} must map design names to lists of overrides, e.g. {{one: ['detector=NAME'], two: [...]}}")
    designs = {}
    for name, overrides in compare.items():
        if not DESIGN_NAME.match(str(name)):
            raise ConfigError(f"compare: design name {name!r} must be a letter then up to 63 letters, digits, _ or -")
        if not isinstance(overrides, ListConfig) or not all(isinstance(o, str) for o in overrides):
            raise ConfigError(f"compare.{name} = {overrides!r} must be a list of overrides (strings such as detector=NAME)")
        for override in parse_overrides(list(overrides)):
            key = override.key_or_group
            if override.is_sweep_override() or re.split(r"[./]", key)[0] in SHARED_BY_DESIGNS:
                raise ConfigError(
                    f"compare.{name}: {override.input_line} cannot differ between designs (they share "
                    f"{', '.join(SHARED_BY_DESIGNS)} and make no multirun); make it an axis of the sweep instead"
                )
        designs[str(name)] = tuple(overrides)
    if len(designs) == 1:
        raise ConfigError(f"compare names one design ({next(iter(designs))}): a comparison needs two or more")
    return designs


RANGE_EXPRESSION = re.compile(r"^\$\{(linspace|logspace):([^{}]*)\}$")
_RANGES = {"linspace": linspace, "logspace": logspace}


def _parse_number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _expand_range(expression: str) -> np.ndarray | None:
    """Evaluate a ``${linspace:..}``/``${logspace:..}`` leaf with NumPy, or None if it is not one.

    Large axes (1e6 values) would take minutes as OmegaConf list nodes; this path never builds them.
    """
    match = RANGE_EXPRESSION.match(expression) if isinstance(expression, str) else None
    if match is None:
        return None
    args = tuple(_parse_number(a.strip()) for a in match.group(2).split(","))
    start, stop, num = _range_args(match.group(1), args)
    return np.linspace(start, stop, num) if match.group(1) == "linspace" else np.logspace(start, stop, num)


def _resolve(node: DictConfig, path: str) -> Any:
    """Resolve one config value, turning interpolation and resolver failures into a ConfigError on ``path``."""
    key = path.rsplit(".", 1)[-1]
    try:
        expanded = _expand_range(OmegaConf.to_container(node, resolve=False)[key])
        if expanded is not None:
            return expanded
        value = node[key]
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except OmegaConfBaseException as error:
        raise omegaconf_error(error, path) from None


def omegaconf_error(error: OmegaConfBaseException, path: str | None = None) -> ConfigError:
    """OmegaConf's multi-line message (an unresolvable interpolation, a bad node) as one line on its key."""
    reason = re.sub(r"^ConfigError raised while resolving interpolation: ", "", str(error).strip().splitlines()[0])
    return ConfigError(f"{path or getattr(error, 'full_key', None) or 'config'}: {reason}")


def config_yaml(cfg: DictConfig) -> str:
    """The config as resolved YAML, with range expressions kept as written (the cube's coords hold the values)."""
    container = OmegaConf.to_container(cfg, resolve=False)
    for group in parameters.GROUPS:
        for key, value in container.get(group, {}).items():
            if isinstance(value, str) and RANGE_EXPRESSION.match(value):
                container[group][key] = "\\" + value  # escaped: resolves to the literal expression
    return OmegaConf.to_yaml(OmegaConf.create(container), resolve=True)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_axis(value: Any) -> bool:
    return isinstance(value, (list, np.ndarray))


def numeric_values(path: str, value: Any, allowed: Range) -> np.ndarray:
    if value is None:
        raise ConfigError(f"{path} is not set (allowed range {allowed})")
    if _is_axis(value) and len(value) == 0:
        raise ConfigError(f"{path} = [] is an empty sweep axis (give at least one value in {allowed})")
    if isinstance(value, np.ndarray):  # an expanded range expression: numbers by construction
        array = value.astype(np.float64)
    else:
        for v in value if _is_axis(value) else [value]:
            if not _is_number(v):
                raise ConfigError(f"{path} = {v!r} is not a number (allowed range {allowed})")
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    bad = array[~allowed.contains(array)]
    if bad.size:
        raise ConfigError(f"{path} = {bad[0]:g} is outside the allowed range {allowed}")
    if len(np.unique(array)) != len(array):
        raise ConfigError(f"{path} repeats values in its sweep axis; each value must appear once")
    return array


def _shape(rows: np.ndarray) -> str:
    return " x ".join(str(n) for n in rows.shape) or "one number"


def _table(path: str, value: Any, columns: Sequence[parameters.Column]) -> tuple[tuple[float, ...], ...] | None:
    """Validate a table given inline (a list of rows) or as a CSV file (a header line optional); its columns."""
    if value is None:
        return None
    names = ", ".join(f"{c.name} [{c.units}]" for c in columns)
    if isinstance(value, str):
        try:
            rows = np.genfromtxt(Path(value).expanduser(), delimiter=",", invalid_raise=True)
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path} = {value!r} cannot be read as a CSV table of {names}: {error}") from None
        if rows.ndim == 2 and np.isnan(rows[0]).all():  # a header line reads as NaN
            rows = rows[1:]
    else:
        value = OmegaConf.to_object(value) if isinstance(value, ListConfig) else value
        try:
            rows = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(f"{path} must be a list of rows [{names}] or a CSV file's path") from None
    if rows.ndim != 2 or rows.shape[1] != len(columns) or rows.shape[0] < 2 or np.isnan(rows).any():
        raise ConfigError(f"{path} must have at least 2 rows of {len(columns)} numbers ({names}), got {_shape(rows)}")
    for column, values in zip(columns, rows.T):
        bad = values[~column.allowed.contains(values)]
        if bad.size:
            raise ConfigError(f"{path} column {column.name} = {bad[0]:g} is outside the allowed range {column.allowed}")
    if np.any(np.diff(rows[:, 0]) <= 0):
        raise ConfigError(f"{path} column {columns[0].name} must increase strictly from row to row")
    return tuple(tuple(float(x) for x in values) for values in rows.T)


def _check_members(path: str, values: Sequence[str], allowed: Sequence[str], repeated: str) -> None:
    """Each of ``values`` is one of ``allowed`` and appears once (``repeated`` says what a repeat means)."""
    for v in values:
        if v not in allowed:
            raise ConfigError(f"{path} = {v!r} is not one of: {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{path} = {list(values)} {repeated}")


def _choice_values(path: str, value: Any, choices: Sequence[str]) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ConfigError(f"{path} = [] is an empty sweep axis (choose from {', '.join(choices)})")
    _check_members(path, values, choices, "repeats choices in its sweep axis; each choice must appear once")
    return values


def _hops(path: str, value: Any, classes: Mapping[str, type]) -> tuple[tuple[tuple[str, float], ...], ...]:
    """Validate a list of hops; each hop is the values of a link of class ``classes["link"]`` plus optional
    ``detector``/``protocol`` values (of the study's classes in ``classes``).

    Returns per hop the flat ``(group.field, value)`` pairs it sets (hashable: the hops are static).
    """
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path} must be a non-empty list of hops, each with distance_km and attenuation_db_per_km")
    hops = []
    for index, hop in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(hop, dict):
            raise ConfigError(f"{where} = {hop!r} is not a hop (a mapping with distance_km, attenuation_db_per_km)")
        sections = {"link": {k: v for k, v in hop.items() if k not in ("detector", "protocol")}}
        sections |= {group: hop[group] for group in ("detector", "protocol") if group in hop}
        sections["link"].setdefault("extra_loss_db", 0.0)
        pairs = []
        for group, values in sections.items():
            fields = {f.name: f for f in parameters.numeric_fields(classes[group])}
            if not isinstance(values, dict):
                raise ConfigError(f"{where}.{group} must be a mapping of {group} values")
            for key, number in values.items():
                if key not in fields:
                    raise ConfigError(f"unknown key '{key}' in {where} ({group} values of a hop: {', '.join(fields)})")
                if _is_axis(number):
                    raise ConfigError(
                        f"{where}.{key} = {number} is a list, but a hop's values are static: give one number (a multirun over link.hops compares chains)"
                    )
                pairs.append((f"{group}.{key}", float(numeric_values(f"{where}.{key}", number, fields[key].metadata["range"])[0])))
        missing = {"distance_km", "attenuation_db_per_km"} - set(sections["link"])
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(sorted(missing))}")
        hops.append(tuple(pairs))
    return tuple(hops)


def _type_name(cfg: DictConfig, group: str) -> str | None:
    """The group's ``type`` (None: the group's default), one name even where a list of types is swept."""
    node = cfg.get(group)
    if not isinstance(node, DictConfig):
        raise ConfigError(f"config group '{group}' is missing (choose one with {group}=NAME)")
    type_name = _resolve(node, f"{group}.type") if "type" in node else None
    names = type_name if isinstance(type_name, list) else [type_name]
    known = ", ".join(parameters.registry(group))
    classes = set()
    for name in names:
        try:
            classes.add(parameters.group_class(group, name))
        except (KeyError, TypeError):
            raise ConfigError(f"{group}.type = {name!r} is not one of: {known}") from None
    if len(classes) > 1:
        raise ConfigError(
            f"{group}.type = {type_name} sweeps models with different parameters: compare them with --multirun {group}={','.join(map(str, names))}"
        )
    return names[0]


def unknown_key_error(group: str, key: str, cls: type) -> ConfigError:
    """The error for ``group.key``, which ``cls`` (the group's class of this study) has no field for."""
    fields = [f.name for f in dataclasses.fields(cls)]
    owners = {t: other for t, other in parameters.registry(group).items() if key in {f.name for f in dataclasses.fields(other)}}
    if owners and all(getattr(other, "finite_key_field", None) == key for other in owners.values()):
        kind = cls.types[0]
        return ConfigError(f"{group}.{key}: {group}.type {kind} has no finite-key analysis (asymptotic key only), so it takes no {key}")
    # e.g. the default sweep's link.distance_km with link=corridor: the sweep was written for another type
    hint = f"; it belongs to {group}.type {' or '.join(owners)}: is the sweep for that type?" if owners else ""
    return ConfigError(f"unknown config key '{group}.{key}' ({group} accepts: {', '.join(fields)}{hint})")


def _check_keys(cfg: DictConfig, group: str, cls: type) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in cfg[group]:
        if key not in fields:
            raise unknown_key_error(group, key, cls)
    for name, f in fields.items():
        if name not in cfg[group] and f.default is dataclasses.MISSING:
            raise ConfigError(f"config key '{group}.{name}' is missing")


def check_compatible(classes: Mapping[str, type], static: Mapping[str, Any]) -> None:
    """The protocol's declared needs hold: its channel arms and the model classes it works with."""
    protocol, link = classes["protocol"], classes["link"]
    kind = static.get("protocol.type") or protocol.types[0]
    if link.arms is not None and protocol.arms != link.arms:  # None: the link's hops take the protocol's arms
        fitting = [t for t, c in parameters.registry("link").items() if c.arms == protocol.arms]
        raise ConfigError(
            f"protocol.type {kind} needs a link with {protocol.arms} arm(s), but link.type {static.get('link.type') or link.types[0]} has {link.arms}: "
            f"choose link={' or link='.join(fitting) or '(none registered)'}"
        )
    for group, needed in protocol.needs.items():
        if not issubclass(classes[group], needed):
            fitting = [t for t, c in parameters.registry(group).items() if issubclass(c, needed)]
            raise ConfigError(
                f"protocol.type {kind} works with {group}.type {' or '.join(fitting)}, not {static.get(f'{group}.type') or classes[group].types[0]}"
            )


def _check_constraints(group: str, cls: type, values: Mapping[str, np.ndarray], static: Mapping[str, Any]) -> None:
    for constraint in cls.constraints:
        paths = [name if "." in name else f"{group}.{name}" for name in constraint.fields]
        if not all(p in values or static.get(p) is not None for p in paths):  # an optional field left unset
            continue
        numeric = [p for p in paths if p in values]
        # Each involved parameter on its own broadcast dimension: all combinations, and no other parameter's.
        arrays = iter(np.ix_(*(values[p] for p in numeric)))
        holds = constraint.holds(*(next(arrays) if p in values else static[p] for p in paths))
        holds = np.broadcast_to(holds, tuple(len(values[p]) for p in numeric))
        if not holds.all():
            where = np.argwhere(~holds)[0] if numeric else ()
            found = ", ".join(f"{p} = {values[p][i]:g}" for p, i in zip(numeric, where)) or "it is not"
            raise ConfigError(f"{constraint.description} is required, but {found}")


def _check_exactly_one_set(group: str, cls: type, values: Mapping[str, np.ndarray]) -> None:
    for names in getattr(cls, "exactly_one_set", ()):
        paths = [f"{group}.{name}" for name in names]
        if sum(p in values for p in paths) != 1:
            found = ", ".join(f"{p} = {values[p][0]:g}" if p in values else f"{p} = null" for p in paths)
            raise ConfigError(f"set exactly one of {' and '.join(paths)} (the other null), but {found}")


class Structured(NamedTuple):
    """What a ``parameters.structure`` field's parser returns where its value holds sweep axes of its own (a
    network link's swept length): the static value, and the axes."""

    value: Any
    axes: tuple[Axis, ...]


class GroupValues(NamedTuple):
    """A group's values as parsed: static choices, numeric values (one array each), and which of them are axes."""

    static: dict[str, Any]
    numeric: dict[str, np.ndarray]
    numeric_axes: list[Axis]
    categorical_axes: list[Axis]


def parse_group(group: str, cls: type, given: Mapping[str, Any], value_of, classes: Mapping[str, type]) -> GroupValues:
    """Validate the values of one group's fields: ``given`` holds the keys the config sets, ``value_of(name)`` the
    value of one of them. Relations between fields are checked by the caller, once every group is parsed."""
    parsed = GroupValues({}, {}, [], [])
    for field in dataclasses.fields(cls):
        path, meta = f"{group}.{field.name}", field.metadata
        value = value_of(field.name) if field.name in given else field.default
        if "derive" in meta:
            if field.name in given:
                raise ConfigError(f"{path} is set from the grid ({meta['long_name']}): leave it out")
        elif meta.get("hops"):
            parsed.static[path] = _hops(path, value, {**classes, "link": meta["hops"]})
        elif "parse" in meta:
            result = meta["parse"](path, value, classes)
            structured = result if isinstance(result, Structured) else Structured(result, ())
            parsed.static[path] = structured.value
            parsed.numeric_axes.extend(structured.axes)
            parsed.numeric.update({axis.name: axis.values for axis in structured.axes})
        elif "table" in meta:
            parsed.static[path] = _table(path, value, meta["table"])
        elif "choices" in meta:
            values = _choice_values(path, value, meta["choices"])
            if isinstance(value, list):
                parsed.categorical_axes.append(Axis(path, np.asarray(values, dtype=object), {"long_name": meta["long_name"]}))
            else:
                parsed.static[path] = value
        elif value is None and meta["optional"]:
            parsed.static[path] = None
        else:
            parsed.numeric[path] = numeric_values(path, value, meta["range"])
            if _is_axis(value):
                role = {ROLE_ATTR: meta["role"]} if meta.get("role") else {}
                parsed.numeric_axes.append(
                    Axis(path, parsed.numeric[path], {**cf_attrs(meta["units"]), "long_name": meta["long_name"], **role})
                )
    return parsed


def check_relations(classes: Mapping[str, type], numeric: Mapping[str, np.ndarray], static: Mapping[str, Any]) -> None:
    """Every relation between parameters (constraints, exactly-one-set groups) on every combination of values."""
    for group, cls in classes.items():
        _check_constraints(group, cls, numeric, static)
        _check_exactly_one_set(group, cls, numeric)
        cls.check_grid(static, numeric)


def parse_grid(cfg: DictConfig) -> Grid:
    """Validate the physics groups of a composed config and lay out its grid. Raises ``ConfigError``."""
    fixed, static, numeric, numeric_axes, categorical_axes = {}, {}, {}, [], []
    types = {f"{group}.type": _type_name(cfg, group) for group in parameters.GROUPS}
    classes = parameters.study_classes(types)
    check_compatible(classes, types)
    for group, cls in classes.items():
        _check_keys(cfg, group, cls)
        parsed = parse_group(group, cls, cfg[group], lambda name, group=group: _resolve(cfg[group], f"{group}.{name}"), classes)
        static |= parsed.static
        numeric |= parsed.numeric
        numeric_axes += parsed.numeric_axes
        categorical_axes += parsed.categorical_axes
    axes = {a.name for a in numeric_axes}
    fixed = {path: float(values[0]) for path, values in numeric.items() if path not in axes}
    check_relations(classes, numeric, static)
    for group, cls in classes.items():
        static |= {f"{group}.{f.name}": f.metadata["derive"](static, numeric) for f in dataclasses.fields(cls) if "derive" in f.metadata}
    return Grid(fixed, static, tuple(numeric_axes), tuple(categorical_axes))


# Counts that shape a run's memory or time: their maxima, and why (conf/config.yaml lists them too). The memory a
# study needs within these is checked against the machine before compiling (qkdjax.resources).
MAXIMA = {
    "seed": (2**63 - 1, "jax.random.key takes a signed 64-bit seed"),
    "montecarlo.trials": (10**6, "per grid point: a probability from 1e6 trials is within 1e-3; add seeds for more"),
    "optimize.starts": (1000, "starts per grid point"),
    "optimize.steps": (10**5, "Adam steps per start: the optimum is reached in hundreds"),
    "inverse.iterations": (200, "bisection steps: 200 halve any search interval below 1e-60 of its width"),
    "inverse.optimize_steps": (10**5, "Adam steps per bisection step"),
    "supply.horizon_h / supply.time_step_s": (10**7, "time steps: a year in 3.2 s steps, where repairs take hours"),
}


def _integer(path: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{path} = {value!r} must be an integer >= {low}")
    _at_most(path, value)
    return value


def _at_most(path: str, value: int) -> None:
    if path in MAXIMA and value > MAXIMA[path][0]:
        high, why = MAXIMA[path]
        raise ConfigError(f"{path} = {value} is above its maximum {high} ({why})")


FILE_NAME = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9._=-]*")


def _output_dir(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"output.dir = {value!r} must be the path of a folder")
    return value


def _output_name(value: Any) -> str | None:
    """A plain file name (or null: the sweep's name); its length is checked with its suffixes (qkdjax.cli)."""
    if value is not None and not (isinstance(value, str) and FILE_NAME.fullmatch(value)):
        raise ConfigError(f"output.name = {value!r} must be a plain file name: letters, digits and . _ - =, not starting with '.'")
    return value


def _positive_number(path: str, value: Any) -> float:
    if not _is_number(value) or not 0 < value < math.inf:
        raise ConfigError(f"{path} = {value!r} must be a positive number")
    return float(value)


def _boolean(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{path} = {value!r} must be true or false")
    return value


def _shards(shard: Any, num_shards: Any, output_format: str) -> tuple[int, int]:
    """Validated ``(sweep.shard, sweep.num_shards)``; a null shard is 0 of 1."""
    num_shards = _integer("sweep.num_shards", num_shards, 1)
    if shard is None:
        if num_shards > 1:
            raise ConfigError(
                f"sweep.shard is not set, but sweep.num_shards = {num_shards}: give sweep.shard in 0..{num_shards - 1} "
                f"(a cluster array: --multirun sweep.shard='range({num_shards})')"
            )
        return 0, 1
    if not isinstance(shard, int) or isinstance(shard, bool) or not 0 <= shard < num_shards:
        raise ConfigError(f"sweep.shard = {shard!r} must be an integer in [0, sweep.num_shards = {num_shards})")
    if num_shards > 1 and output_format != "zarr":
        raise ConfigError(
            f"sweep.num_shards = {num_shards} writes shards into one shared store: set output.format=zarr (not {output_format!r})"
        )
    return shard, num_shards


def _compile_cache_dir(node: DictConfig) -> str | None:
    """``compile_cache.dir``, its default under the user's cache folder, or None when ``compile_cache.enabled`` is false."""
    if not _boolean("compile_cache.enabled", node.enabled):
        return None
    directory = node.dir
    if directory is None:
        return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qkdjax" / "jax")
    if not isinstance(directory, str) or not directory.strip():
        raise ConfigError(f"compile_cache.dir = {directory!r} must be a folder path, or null for the user cache folder")
    return directory


def parse_settings(cfg: DictConfig) -> Settings:
    """Validate the run settings (seed, chunking, output). Raises ``ConfigError``."""
    for key in cfg:
        if key not in _APP_KEYS and key not in parameters.GROUPS:
            raise ConfigError(f"unknown config key '{key}'")
    output_format = cfg.output.format
    if output_format not in OUTPUT_FORMATS:
        raise ConfigError(f"output.format = {output_format!r} is not one of: {', '.join(OUTPUT_FORMATS)}")
    shard, num_shards = _shards(cfg.sweep.get("shard"), cfg.sweep.get("num_shards", 1), output_format)
    horizon_h = _positive_number("supply.horizon_h", cfg.supply.horizon_h)
    step_s = _positive_number("supply.time_step_s", cfg.supply.time_step_s)
    if step_s > horizon_h * 3600.0:
        raise ConfigError(f"supply.time_step_s = {step_s:g} is longer than supply.horizon_h = {horizon_h:g} h")
    supply_steps = round(horizon_h * 3600.0 / step_s)
    _at_most("supply.horizon_h / supply.time_step_s", supply_steps)
    keep_trials = _boolean("montecarlo.keep_trials", cfg.montecarlo.keep_trials)
    common_random_numbers = _boolean("montecarlo.common_random_numbers", cfg.montecarlo.common_random_numbers)
    return Settings(
        compile_cache_dir=_compile_cache_dir(cfg.compile_cache),
        optimizer=parse_optimizer(cfg.optimize),
        inverse=parse_inverse(cfg.inverse),
        design=parse_design(cfg.get("design")),
        seed=_integer("seed", cfg.seed, 0),
        chunk_size=_integer("sweep.chunk_size", cfg.sweep.chunk_size, 1),
        output_dir=_output_dir(cfg.output.dir),
        output_name=_output_name(cfg.output.name),
        output_format=output_format,
        shard=shard,
        num_shards=num_shards,
        trials=_integer("montecarlo.trials", cfg.montecarlo.trials, 0),
        keep_trials=keep_trials,
        common_random_numbers=common_random_numbers,
        supply_horizon_h=float(horizon_h),
        supply_steps=supply_steps,
    )


def _parameter_names(path: str, value: Any) -> tuple[str, ...]:
    """A non-empty list of dotted ``group.field`` paths, none repeated (which fields fit is checked with the
    study's classes, ``check_study``)."""
    if not isinstance(value, (list, ListConfig)) or not value or not all(isinstance(v, str) and v.count(".") == 1 for v in value):
        raise ConfigError(f"{path} = {value!r} must be a non-empty list of dotted parameter names (group.field)")
    names = tuple(value)
    if len(set(names)) != len(names):
        raise ConfigError(f"{path} = {list(names)} names a parameter twice")
    return names


def _bounds(path: str, node: Any, names: Sequence[str]) -> tuple[tuple[float, float] | None, ...]:
    """``[low, high]`` for each of ``names`` from ``node.<group>.<field>``, with low < high; None where it is not
    set (``check_study`` says so once it knows that the name is one the study's classes accept)."""
    bounds = []
    for name in names:
        where = f"{path}.{name}"
        value = OmegaConf.select(node, name) if isinstance(node, DictConfig) else None
        if value is None:
            bounds.append(None)
            continue
        if not isinstance(value, ListConfig) or len(value) != 2 or not all(_is_number(v) for v in value):
            raise ConfigError(f"{where} = {value!r} must be [low, high]")
        low, high = float(value[0]), float(value[1])
        if not low < high:
            raise ConfigError(f"{where} = [{low:g}, {high:g}] must have low < high")
        bounds.append((low, high))
    return tuple(bounds)


def parse_optimizer(node: DictConfig) -> Optimizer | None:
    """``optimize.*``: which protocol parameters to optimise at every point, within which bounds, and how."""
    if not _boolean("optimize.enabled", node.enabled):
        return None
    params = _parameter_names("optimize.params", node.params)
    bounds = _bounds("optimize.bounds", node.bounds, params)
    return Optimizer(
        params,
        bounds,
        starts=_integer("optimize.starts", node.starts, 1),
        steps=_integer("optimize.steps", node.steps, 1),
        learning_rate=_positive_number("optimize.learning_rate", node.learning_rate),
    )


def parse_design(node: DictConfig | None) -> DesignSettings | None:
    """``design.*``: look for the cheapest network design (None: not asked)."""
    if node is None or not _boolean("design.enabled", node.enabled):
        return None
    probability = node.probability
    if not _is_number(probability) or not 0 < probability <= 1:
        raise ConfigError(f"design.probability = {probability!r} must be a probability in (0, 1]")
    if node.protection not in PROTECTIONS:
        raise ConfigError(f"design.protection = {node.protection!r} is not one of: {', '.join(PROTECTIONS)}")
    designs = _integer("design.designs", node.designs, 1)
    if designs > MAX_DESIGNS:
        raise ConfigError(f"design.designs = {designs} is above its maximum {MAX_DESIGNS} (a MILP solve and a Monte Carlo run each)")
    return DesignSettings(float(probability), designs, node.protection)


def parse_inverse(node: DictConfig) -> Inverse | None:
    """``inverse.*``: the inverse questions to answer at every point for a key-rate target."""
    target = node.target_key_rate
    if target is None:
        if node.solve:
            raise ConfigError(f"inverse.solve = {list(node.solve)} needs a target: set inverse.target_key_rate (bit/s)")
        return None
    if not _is_number(target) or not 0 <= target < math.inf:
        raise ConfigError(f"inverse.target_key_rate = {target!r} must be a number >= 0 (bit/s)")
    solve = _parameter_names("inverse.solve", node.solve)
    bounds = _bounds("inverse.bounds", node.bounds, solve)
    return Inverse(
        float(target),
        solve,
        bounds,
        iterations=_integer("inverse.iterations", node.iterations, 1),
        optimize_steps=_integer("inverse.optimize_steps", node.optimize_steps, 1),
    )


def _check_box(setting: str, path: str, box: tuple[float, float] | None, classes: Mapping[str, type]) -> None:
    """``setting.bounds.<path>`` = ``box`` is set and lies within the range of the field ``path`` of the study's
    classes."""
    if box is None:
        raise ConfigError(f"{setting}.bounds.{path} is not set (give [low, high])")
    group, name = path.split(".")
    allowed = next(f.metadata["range"] for f in dataclasses.fields(classes[group]) if f.name == name)
    if not allowed.contains(np.array(box)).all():
        raise ConfigError(f"{setting}.bounds.{path} = [{box[0]:g}, {box[1]:g}] is outside the allowed range {allowed}")


def _check_optimizer(grid: Grid, optimizer: Optimizer, classes: Mapping[str, type]) -> None:
    """The optimised parameters are optimisable fields of the study's classes and not axes, their boxes lie in
    their ranges, and the boxes' low ends leave every relation between them room (``optimisation_room``)."""
    allowed = parameters.flagged_paths(classes, "optimisable")
    axes = {a.name for a in grid.numeric_axes}
    for name, box in zip(optimizer.params, optimizer.bounds):
        if name not in allowed:
            raise ConfigError(f"optimize.params: {name} is not an optimisable parameter of this study (optimisable: {', '.join(allowed)})")
        if name in axes:
            raise ConfigError(
                f"{name} is both a sweep axis and optimised: give it one value (the first start) or drop it from optimize.params"
            )
        _check_box("optimize", name, box, classes)

    def swept(name: str) -> np.ndarray:
        axis = next((a.values for a in grid.numeric_axes if a.name == name), None)
        return np.asarray([grid.fixed[name]]) if axis is None else axis

    for group, cls in classes.items():

        def least(field: str, group=group) -> float:  # the smallest value the optimiser may give it, else its largest fixed value
            path = f"{group}.{field}"
            return optimizer.box(path)[0] if path in optimizer.params else float(np.max(swept(path)))

        def most(field: str, group=group) -> float:
            path = f"{group}.{field}"
            return optimizer.box(path)[1] if path in optimizer.params else float(np.min(swept(path)))

        for relation, fields, holds in cls.optimisation_room(least, most):
            if not holds and {f"{group}.{f}" for f in fields} & set(optimizer.params):
                bounds = ", ".join(f"{n} = {list(optimizer.box(n))}" for n in optimizer.params if n.startswith(f"{group}."))
                raise ConfigError(f"optimize.bounds leave no {group} with {relation} ({bounds}; fixed values as configured)")


def _check_inverse(inverse: Inverse, classes: Mapping[str, type]) -> None:
    """Each inverse question is one the study's classes answer, searched within the parameter's range."""
    quantities = inverse_quantities(classes)
    for name, box in zip(inverse.solve, inverse.bounds):
        if name not in quantities:
            raise ConfigError(f"inverse.solve = {name!r} is not one of the questions of this study: {', '.join(quantities)}")
        _check_box("inverse", name, box, classes)
        if quantities[name].log_scale and box[0] <= 0:
            raise ConfigError(f"inverse.bounds.{name} must start above 0 (it is searched in log scale), got {box[0]:g}")


def check_study(grid: Grid, settings: Settings) -> None:
    """Reject settings that contradict the study's parameters: what its scenario cannot honour
    (``Study.check``), and optimiser and inverse settings that do not fit its classes."""
    from qkdjax.study import scenario_class  # (the scenarios build on this module)

    classes = parameters.study_classes(grid.static)
    scenario_class(grid.static).check(grid.static, classes, settings)
    if settings.optimizer:
        _check_optimizer(grid, settings.optimizer, classes)
    if settings.inverse:
        _check_inverse(settings.inverse, classes)
    if settings.design:
        from qkdjax.network.planning import check_design_run

        check_design_run(grid, settings)


def known_keys(primary: DictConfig) -> set[str]:
    """Dotted keys a command-line override may set: the app settings and every parameter field."""
    keys = {".".join(p) for p in _leaf_paths(OmegaConf.to_container(primary))}
    for group in parameters.GROUPS:
        keys |= {f"{group}.{f.name}" for cls in parameters.registry(group).values() for f in dataclasses.fields(cls)}
    return keys


def _leaf_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaf_paths(v, (*prefix, str(k)))]
    return [prefix]


OVERRIDE_GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic"


def parse_overrides(overrides: Sequence[str], config_loader: Any = None) -> list:
    """Hydra's parse of command-line overrides; a syntax error is one line naming the override. ``config_loader``:
    Hydra's, for ``glob(..)`` sweeps of config group options."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser, parsed = OverridesParser.create(config_loader=config_loader), []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])
        except OverrideParseException as error:
            reason = str(error).strip().splitlines()[0]
            raise ConfigError(
                f"cannot parse the override {text!r}: {reason} (quote values with spaces or ${{..}}; {OVERRIDE_GRAMMAR})"
            ) from None
    return parsed


def check_override_keys(overrides: Sequence[str], primary: DictConfig, groups: Mapping[str, Sequence[str]]) -> None:
    """Reject a command-line override of a key that no config has (with the keys its group accepts), and a config
    group choice that is not one of the group's options."""
    from hydra.core.override_parser.types import OverrideType

    keys = known_keys(primary)
    for override in parse_overrides(overrides):
        key = override.key_or_group
        if key in groups and override.type != OverrideType.DEL and not override.is_sweep_override():
            _check_group_choice(key, override.value(), groups[key])
        if override.type != OverrideType.CHANGE or key in groups or re.split(r"[./]", key)[0] == "hydra" or key in keys:
            continue
        close = difflib.get_close_matches(key, sorted(keys), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"unknown config key '{key}' ({hint}{_accepted_keys(key.split('.')[0], keys)})")


def _check_group_choice(group: str, value: Any, options: Sequence[str]) -> None:
    if value not in options:
        hint = "name it without .yaml; " if isinstance(value, str) and value.endswith(".yaml") else ""
        raise ConfigError(f"{group} = {value!r} is not one of the {group} configs ({hint}choose from: {', '.join(options)})")


def _accepted_keys(group: str, keys: set[str]) -> str:
    """What a config group accepts, per ``type`` where its parameter class depends on it."""
    classes = parameters.registry(group) if group in parameters.GROUPS else None
    if classes is None or len(set(classes.values())) == 1:
        siblings = sorted(k.split(".", 1)[1] for k in keys if k.startswith(group + "."))
        return f"{group} accepts: {', '.join(siblings)}" if siblings else "no such group or setting"
    by_class: dict[type, list[str]] = {}
    for type_name, cls in classes.items():
        by_class.setdefault(cls, []).append(type_name)
    parts = [f"{', '.join(names)}: {', '.join(sorted(f.name for f in dataclasses.fields(cls)))}" for cls, names in by_class.items()]
    return f"{group} accepts, by {group}.type: {'; '.join(parts)}"
