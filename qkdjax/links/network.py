"""QKD networks (``link=network``): sites that hold key, links between them each a QKD link of its own kind, and
the key demands of user pairs (``qkdjax.scenarios.network``).

A link is any point link of the registry (a fibre span, a ``midpoint_fibre`` span through an untrusted relay
with a middle-station protocol, a satellite link at a fixed elevation) with its own detector, source and
protocol, or a supply of known rate (``key_rate_bps``: e.g. a satellite edge's key per day / 86400 from a
``satellite_pass`` study). For each of its groups a link either takes the study's (its values, sweep axes
included, with the link's own overrides on top) or names a config option (``protocol: tf_sns``, or
``protocol: {use: tf_sns, mu_z: 0.3}``), whose YAML in ``conf/`` gives its values. Its own link values sit at the
top level of its entry, as for the hops of a chain; a list there makes an axis of the grid, named
``link.links.<link name>.<group.field>`` (e.g. one span's length swept). Sites are user sites, trusted nodes and ground stations
(untrusted relays sit inside the spans of middle-station protocols); trusted nodes and ground stations relay every
pair's key, a user site only its own pairs' unless it says ``relays: true`` (a user's site that is also a trusted
node of the operator). The graph is static: it shapes the study.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np
from omegaconf import OmegaConf

from qkdjax import parameters
from qkdjax.config import Axis, ConfigError, Structured, check_compatible, check_relations, numeric_values, parse_group
from qkdjax.network.graph import SITE_KINDS, Graph, build_graph, demand_cuts
from qkdjax.parameters import MTBF, NON_NEGATIVE, POSITIVE, Link, Range, number, structure
from qkdjax.paths import CONF_DIR
from qkdjax.units import cf_attrs

PHYSICS_GROUPS = ("link", "detector", "source", "protocol")
EDGE_GROUPS = PHYSICS_GROUPS[1:]  # the groups a link may take from the study
LINK_KEYS = ("a", "b", "name", "link", *EDGE_GROUPS, "key_rate_bps", "mtbf_h", "mttr_h")
SITE_KEYS = ("name", "kind", "x_km", "y_km", "mtbf_h", "mttr_h", "relays")
DEMAND_KEYS = ("a", "b", "share")


class Site(NamedTuple):
    name: str
    kind: str
    x_km: float | None = None
    y_km: float | None = None
    mtbf_h: float | None = None  # None: the network's default for its kind (user sites: never fail)
    mttr_h: float | None = None
    relays: bool = True  # it passes on other pairs' key (trusted nodes, ground stations; user sites that say so)


class NetworkLink(NamedTuple):
    """One link, parsed: its ends, what it computes its key rate with, and its reliability (None: the defaults).

    ``inherits``: the groups it takes from the study (their grid values, then ``values`` on top); ``values``: its
    numeric values (``group.field`` -> number), ``static``: its static choices (types included); ``swept``: those of
    its values that are axes of the grid (given as lists), named ``link.links.<name>.<group.field>``."""

    a: str
    b: str
    name: str
    inherits: tuple[str, ...]
    values: tuple[tuple[str, float], ...]
    static: tuple[tuple[str, Any], ...]
    key_rate_bps: float | None
    mtbf_h: float | None
    mttr_h: float | None
    swept: tuple[tuple[str, str], ...] = ()  # (group.field, the grid axis sweeping it); ``values`` holds its first value

    @property
    def fixed_rate(self) -> bool:
        return self.key_rate_bps is not None

    def types(self, study_static: Mapping[str, Any]) -> dict[str, Any]:
        """``group.type`` of each of its groups (the study's for those it inherits)."""
        own = dict(self.static)
        return {f"{g}.type": study_static.get(f"{g}.type") if g in self.inherits else own.get(f"{g}.type") for g in PHYSICS_GROUPS}

    def value(self, path: str, default: float = 0.0) -> float:
        return dict(self.values).get(path, default)


class Demand(NamedTuple):
    a: str
    b: str
    share: float  # this pair's demand is share x link.demand_bps

    @property
    def label(self) -> str:
        return f"{self.a}-{self.b}"


def _mapping(path: str, value: Any, what: str) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path} = {value!r} must be a mapping ({what})")
    return dict(value)


def _number(path: str, value: Any, allowed: Range) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not allowed.contains(np.asarray(float(value))):
        raise ConfigError(f"{path} = {value!r} must be a number in {allowed}")
    return float(value)


def _entry(where: str, value: Any, keys: tuple[str, ...], what: str) -> dict:
    """A mapping of some of ``keys`` (one line naming the first unknown key otherwise)."""
    entry = _mapping(where, value, f"{what}: {', '.join(keys)}")
    if unknown := set(entry) - set(keys):
        raise ConfigError(f"unknown key '{min(unknown)}' in {where} ({what} accepts: {', '.join(keys)})")
    return entry


def _reliability(where: str, entry: Mapping[str, Any]) -> dict[str, float | None]:
    """A link's or site's own ``mtbf_h`` and ``mttr_h`` (None where it takes the network's default)."""
    return {
        "mtbf_h": _number(f"{where}.mtbf_h", entry["mtbf_h"], MTBF) if entry.get("mtbf_h") is not None else None,
        "mttr_h": _number(f"{where}.mttr_h", entry["mttr_h"], POSITIVE) if entry.get("mttr_h") is not None else None,
    }


def _site_name(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "-#,\n"):
        raise ConfigError(f"{path} = {value!r} must be a site name (text without '-', '#' or ',')")
    return value


def parse_sites(path: str, value: Any, classes: Mapping[str, type]) -> tuple[Site, ...]:
    """``[{name, kind, x_km, y_km, mtbf_h, mttr_h, relays}, ...]`` (a list: a sweep's sites replace the default's; a
    mapping would merge with them). A user site relays only its own pairs' key unless ``relays: true``."""
    del classes
    if not isinstance(value, list) or len(value) < 2:
        raise ConfigError(f"{path} must be a list of 2 or more sites, each {{name: ..., kind: {' | '.join(SITE_KINDS)}}}")
    sites = []
    for index, spec in enumerate(value):
        where = f"{path}[{index}]"
        spec = _entry(where, spec, SITE_KEYS, "a site")
        name = _site_name(f"{where}.name", spec.get("name"))
        if spec.get("kind") not in SITE_KINDS:
            hint = " (untrusted relays sit inside links: a midpoint_fibre span)" if spec.get("kind") in ("relay", "untrusted") else ""
            raise ConfigError(f"{where}.kind = {spec.get('kind')!r} is not one of: {', '.join(SITE_KINDS)}{hint}")
        coordinates = {k: _number(f"{where}.{k}", spec[k], Range()) for k in ("x_km", "y_km") if spec.get(k) is not None}
        relays = spec.get("relays", spec["kind"] != "user")
        if not isinstance(relays, bool) or (spec["kind"] != "user" and not relays):
            raise ConfigError(
                f"{where}.relays = {relays!r} must be true or false, and true for a {spec['kind']} site (it relays by being one)"
            )
        sites.append(Site(name, spec["kind"], **coordinates, **_reliability(where, spec), relays=relays))
    names = [s.name for s in sites]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path} lists the site {next(n for n in names if names.count(n) > 1)!r} twice")
    return tuple(sites)


def option_values(group: str, option: str, where: str) -> dict:
    """The values of config option ``option`` of ``group`` (``conf/<group>/<option>.yaml``)."""
    if not isinstance(option, str) or not (CONF_DIR / group / f"{option}.yaml").is_file():
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        raise ConfigError(f"{where} = {option!r} is not one of the {group} configs: {', '.join(options)}")
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{option}.yaml"), resolve=True)


def _group_values(group: str, value: Any, where: str) -> tuple[bool, dict, dict]:
    """(inherits the study's group, the option's values, the link's own values) of one group of a link entry."""
    if isinstance(value, str):
        return False, option_values(group, value, where), {}
    own = _mapping(where, value, f"a {group} config name, or {group} values with an optional 'use: NAME'")
    option = own.pop("use", None)
    if option is None:
        return True, {}, own
    return False, option_values(group, option, f"{where}.use"), own


def _parse_values(group: str, cls: type, values: Mapping[str, Any], where: str, classes: Mapping[str, type]):
    """Numeric values (their first, where a list makes an axis), static choices and axes of one group of a link."""
    fields = {f.name for f in dataclasses.fields(cls) if f.name != "type"}
    for key in values:
        if key not in fields:
            raise ConfigError(f"unknown key '{key}' in {where} ({group} values of {cls.types[0]}: {', '.join(sorted(fields))})")
    parsed = parse_group(group, cls, values, values.__getitem__, classes)
    if parsed.categorical_axes:
        raise ConfigError(f"{where}.{parsed.categorical_axes[0].name.split('.')[1]} is a list, but a link's choices are static: give one")
    return {path: float(v[0]) for path, v in parsed.numeric.items()}, parsed.static, parsed.numeric_axes


def parse_link(path: str, entry: Any, classes: Mapping[str, type]) -> tuple[NetworkLink, tuple[Axis, ...]]:
    """One entry of ``link.links`` (see the module docstring), and the axes of its swept values."""
    entry = _mapping(path, entry, "a, b, and the link's values")
    for end in ("a", "b"):
        if end not in entry:
            raise ConfigError(f"{path} lacks '{end}' (the sites it joins)")
    a, b = _site_name(f"{path}.a", entry["a"]), _site_name(f"{path}.b", entry["b"])
    name = entry.get("name", f"{a}-{b}")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}.name = {name!r} must be text")
    reliability = _reliability(path, entry)
    if entry.get("key_rate_bps") is not None:
        if extra := set(entry) - {"a", "b", "name", "key_rate_bps", "mtbf_h", "mttr_h"}:
            raise ConfigError(f"{path} gives key_rate_bps (a supply of known rate), so it takes no '{min(extra)}'")
        rate = _number(f"{path}.key_rate_bps", entry["key_rate_bps"], NON_NEGATIVE)
        return NetworkLink(a, b, name, (), (), (), rate, **reliability), ()
    link_values = {k: v for k, v in entry.items() if k not in LINK_KEYS}
    link_option = option_values("link", entry.get("link", "fibre"), f"{path}.link")
    groups = {"link": (False, link_option, link_values)}
    groups |= {g: _group_values(g, entry[g], f"{path}.{g}") if g in entry else (True, {}, {}) for g in EDGE_GROUPS}
    types = {}
    for group, (inherits, option, _own) in groups.items():
        type_name = None if inherits else option.get("type")
        try:
            types[group] = classes[group] if inherits else parameters.group_class(group, type_name)
        except KeyError:
            raise ConfigError(f"{path}.{group}: type {type_name!r} is not one of: {', '.join(parameters.registry(group))}") from None
    static_types = {f"{g}.type": types[g].types[0] if groups[g][0] else groups[g][1].get("type") for g in PHYSICS_GROUPS}
    try:
        check_compatible({**classes, **types}, static_types)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    values, static, inherits, axes = {}, {}, [], []
    for group, (inherit, option, own) in groups.items():
        if inherit:
            inherits.append(group)
            for key, item in own.items():
                field = next((f for f in parameters.numeric_fields(types[group]) if f.name == key), None)
                if field is None:
                    fields = ", ".join(f.name for f in parameters.numeric_fields(types[group]))
                    raise ConfigError(f"unknown key '{key}' in {path}.{group} (numeric {group} values it may override: {fields})")
                numbers = numeric_values(f"{path}.{group}.{key}", item, field.metadata["range"])
                values[f"{group}.{key}"] = float(numbers[0])
                if isinstance(item, list):
                    axes.append(Axis(f"{group}.{key}", numbers, {}))
            continue
        merged = {k: v for k, v in {**option, **own}.items() if k != "type"}
        where = f"{path}" if group == "link" else f"{path}.{group}"
        try:
            numbers, choices, group_axes = _parse_values(group, types[group], merged, where, classes)
        except ConfigError as error:
            raise ConfigError(str(error) if path in str(error) else f"{path}: {error}") from None  # name the link
        values |= numbers
        static |= choices | {f"{group}.type": static_types[f"{group}.type"]}
        axes += [axis for axis in group_axes if axis.name in numbers]
    if types["link"].arms is None or types["link"].scenario(static) != "point":
        raise ConfigError(
            f"{path}: link {static_types['link.type']} as configured is not a link evaluated at one point (a fibre span, a satellite "
            "at one elevation: set its elevation; a pass's supply enters as key_rate_bps)"
        )
    link_axes = tuple(_link_axis(name, axis, types) for axis in axes)
    swept = tuple((axis.name, link_axis.name) for axis, link_axis in zip(axes, link_axes))
    link = NetworkLink(a, b, name, tuple(inherits), tuple(values.items()), tuple(static.items()), None, **reliability, swept=swept)
    return link, link_axes


def _link_axis(name: str, axis: Axis, types: Mapping[str, type]) -> Axis:
    """The grid axis of a link's swept value ``group.field``: ``link.links.<name>.<group.field>``."""
    group, field_name = axis.name.split(".")
    meta = next(f.metadata for f in dataclasses.fields(types[group]) if f.name == field_name)
    attrs = {**cf_attrs(meta["units"]), "long_name": f"{meta['long_name']} of link {name}"}
    return Axis(f"link.links.{name}.{axis.name}", axis.values, attrs)


def parse_links(path: str, value: Any, classes: Mapping[str, type]) -> Structured:
    """The links and the grid axes their swept values make (a link value given as a list)."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path} must be a non-empty list of links, each with a, b (its sites) and its values")
    parsed = [parse_link(f"{path}[{i}]", entry, classes) for i, entry in enumerate(value)]
    links = tuple(link for link, _ in parsed)
    names = [link.name for link in links]
    if len(set(names)) != len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{path}: two links are named {repeated!r}; give parallel links a 'name' each")
    return Structured(links, tuple(axis for _, axes in parsed for axis in axes))


def parse_demands(path: str, value: Any, classes: Mapping[str, type]) -> tuple[Demand, ...]:
    """``[{a, b, share}, ...]``: user pairs that need key, each ``share`` x ``link.demand_bps`` (share 1 default)."""
    del classes
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path} must be a non-empty list of demands, each with a and b (two user sites)")
    demands = []
    for i, entry in enumerate(value):
        where = f"{path}[{i}]"
        entry = _entry(where, entry, DEMAND_KEYS, "a demand")
        for end in ("a", "b"):
            if end not in entry:
                raise ConfigError(f"{where} lacks '{end}' (the user sites that need key)")
        share = _number(f"{where}.share", entry.get("share", 1.0), NON_NEGATIVE)
        demands.append(Demand(_site_name(f"{where}.a", entry["a"]), _site_name(f"{where}.b", entry["b"]), share))
    labels = [d.label for d in demands]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{path} lists the demand {next(x for x in labels if labels.count(x) > 1)} twice")
    return tuple(demands)


class Network(Link):
    """A QKD network: sites, links (each a QKD link of its own kind, or a supply of known rate), user pairs'
    demands; key relay through trusted nodes (``qkdjax.network``), failures and repairs of links and sites."""

    types = ("network",)
    arms: ClassVar[int | None] = None  # every link has its own

    sites: Any = structure("sites: name -> kind (user, trusted, ground_station)", parse_sites)
    links: Any = structure("links between sites, each a QKD link or a supply of known rate", parse_links)
    demands: Any = structure("user pairs that need key", parse_demands)
    demand_bps: Any = number("bit/s", "key demand of each user pair (times its share)", NON_NEGATIVE, default=1000.0, role="demand")
    store_bits: Any = number("bit", "key store of each user pair at its sites", NON_NEGATIVE, default=1.0e10)
    store_initial_fill: Any = number(
        "1", "fraction of each key store full at the start (1: a network in service; 0: commissioning)", Range(0.0, 1.0), default=1.0
    )
    link_mtbf_h: Any = number("h", "mean time between failures of a link (its QKD devices and fibre)", MTBF, default=4380.0)
    link_mttr_h: Any = number("h", "mean time to repair a link", POSITIVE, default=12.0)
    node_mtbf_h: Any = number("h", "mean time between failures of a trusted node or ground station", MTBF, default=8760.0)
    node_mttr_h: Any = number("h", "mean time to repair a trusted node or ground station", POSITIVE, default=4.0)
    failure_shape: Any = number("1", "Weibull shape of the times to failure (1: exponential)", Range(0.2, 10.0), default=1.0)
    repair_log_sigma: Any = number("1", "log-sd of lognormal repair times (0: exponential)", Range(0.0, 3.0), default=0.0)

    @classmethod
    def scenario(cls, static):
        return "network"

    def failure_laws(self) -> list[tuple[Any, Any]]:
        """(mean time between failures, mean time to repair) in hours of the links, then the sites: each its own
        where it gives them, else the network's (user sites never fail unless they say so)."""
        links = [
            (self.link_mtbf_h if x.mtbf_h is None else x.mtbf_h, self.link_mttr_h if x.mttr_h is None else x.mttr_h) for x in self.links
        ]
        default_mtbf = lambda site: math.inf if site.kind == "user" else self.node_mtbf_h
        sites = [
            (default_mtbf(s) if s.mtbf_h is None else s.mtbf_h, self.node_mttr_h if s.mttr_h is None else s.mttr_h) for s in self.sites
        ]
        return links + sites

    @classmethod
    def check_grid(cls, static, numeric):
        """The graph is valid (sites known, no link to itself, every demand between connected user sites) and each
        link's own values keep the relations its classes require, with the study's values it inherits."""
        graph = network_graph(static)
        kinds = dict(zip(graph.sites, graph.kinds))
        linked = {site for edge in graph.edges for site in edge}
        for index, name in enumerate(graph.sites):
            if index not in linked:
                raise ConfigError(f"link.sites: site {name!r} has no link (link.links names no link to it)")
        for index, demand in enumerate(static["link.demands"]):
            for end in (demand.a, demand.b):
                if end not in kinds:
                    raise ConfigError(f"link.demands[{index}] names site {end!r}, which is not one of: {', '.join(graph.sites)}")
                if kinds[end] != "user":
                    raise ConfigError(f"link.demands[{index}]: {end!r} is a {kinds[end]} site; demands join user sites")
            if demand.a == demand.b:
                raise ConfigError(f"link.demands[{index}] joins site {demand.a!r} to itself")
            demand_cuts(graph, relaying(static), graph.sites.index(demand.a), graph.sites.index(demand.b))  # raises if not connected
        for index, link in enumerate(static["link.links"]):
            if link.fixed_rate:
                continue
            types = link.types(static)
            classes = parameters.study_classes(types)
            inherited = {p: v for p, v in numeric.items() if p.split(".")[0] in link.inherits}
            own = {p: np.asarray([v]) for p, v in link.values} | {p: numeric[axis] for p, axis in link.swept}
            try:
                check_relations({g: classes[g] for g in PHYSICS_GROUPS}, {**inherited, **own}, {**static, **dict(link.static), **types})
            except ConfigError as error:
                raise ConfigError(f"link.links[{index}] ({link.name}): {error}") from None


def network_graph(static: Mapping[str, Any]) -> Graph:
    """The validated key-relay graph of a network's static choices."""
    sites = static["link.sites"]
    return build_graph({s.name: s.kind for s in sites}, [(link.a, link.b) for link in static["link.links"]], what="link.links")


def relaying(static: Mapping[str, Any]) -> list[bool]:
    """Which sites pass on other pairs' key, in the graph's site order."""
    return [site.relays for site in static["link.sites"]]
