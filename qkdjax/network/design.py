"""The cheapest QKD key-relay network that serves given key demands: a fixed-charge multicommodity flow MILP.

Inputs. **Sites** are user sites (always there, at no cost in the design) and candidate trusted nodes (opening one
costs its ``annual_cost`` per year). An untrusted relay (the middle station of an MDI or twin-field span) holds no
key, so it is not a site: it sits inside a span. **Spans** are candidate undirected links between two sites, each
with one or more technology **options** ``(name, key_rate_bps, annual_cost)``; at most one option per span is
built. **Demands** ``(a, b, bps)`` ask for ``bps`` of end-to-end key between two user sites.

Key relay (one-time pad hop by hop through trusted nodes: M. Peev et al., New J. Phys. 11, 075001 (2009), SECOQC)
makes the key a pair of sites can share a flow: a built span gives ``key_rate_bps`` of key to its two ends, spent
by the demands that cross it in either direction, so its rate bounds the total, over both directions and all
demands, of the key relayed over it. Which sites may relay: an opened trusted node relays every demand; a user site
relays only its own demands (it is an end of them) unless it is flagged ``relays=True``; a closed trusted node
relays nothing, and no span to it is built (its terminal equipment would stand in a site that is not there).

Formulation (the fixed-charge multicommodity network design of B. Gendron, T. G. Crainic, A. Frangioni,
"Multicommodity capacitated network design", in Telecommunications Network Planning, Kluwer (1999), pp. 1-19; an
integer programme of this kind for QKD networks with trusted relays is Y. Cao, Y. Zhao, J. Wang, X. Yu, Z. Ma,
J. Zhang, "Cost-efficient quantum key distribution (QKD) over WDM networks", J. Opt. Commun. Netw. 11, 285
(2019)), in our words:

- binaries ``y_v`` (trusted site ``v`` opened) and ``z_ek`` (span ``e`` built with option ``k``); minimise
  ``sum_v cost_v y_v + sum_ek cost_ek z_ek``;
- ``sum_k z_ek <= 1`` per span, and ``sum_k z_ek <= y_v`` for each trusted end ``v`` of span ``e``;
- per scenario ``s`` and demand ``d``, continuous flows ``f_sde+`` (from the span's first site to its second) and
  ``f_sde-`` on every span, conserved at every site: the demand's source sends ``D_sd``, its sink receives it,
  every other site passes on what it gets. Arcs at a site that may not relay demand ``d`` carry none of it;
- capacity: ``sum_d (f_sde+ + f_sde-) <= sum_k min(R_ek, sum_d D_sd) z_ek`` per scenario and span, and the strong
  linking inequalities ``f_sde+ + f_sde- <= sum_k min(R_ek, D_sd) z_ek`` per scenario, demand and span (valid
  because a flow can always be freed of cycles, after which no span carries more of a demand than the demand; they
  tighten the LP relaxation, Gendron et al. above);
- degree at each end of a demand with ``bps > 0``: at least one built option of nonzero rate on the spans from it
  to sites that may pass the demand on, two under protection (the integer rounding of what the flows imply).

Scenario 0 is the intact network with ``D_0d = bps_d``. With ``protection="single_span"`` there is one more
scenario per candidate span ``j``, in which span ``j`` carries nothing and every demand is met at
``D_jd = protected_fraction * bps_d`` by rerouting all demands over the rest (survivable network design with one
flow copy per failure state and global rerouting: M. Pióro, D. Medhi, Routing, Flow, and Capacity Design in
Communication and Computer Networks, Morgan Kaufmann (2004)). A failure of an unbuilt span changes nothing,
so this is "any one built span fails". This is how an availability target enters the design: check the
availability of the result with the Monte Carlo of ``qkdjax.network.availability`` afterwards. Trusted-node
failures are not scenarios here.

Runners-up: after each solution ``x`` (all binaries), the integer ("no-good") cut
``sum_{i: x_i = 1} (1 - x_i) + sum_{i: x_i = 0} x_i >= 1`` excludes exactly that vector, and the problem is solved
again (G. Balas, R. Jeroslow, "Canonical cuts on the unit hypercube", SIAM J. Appl. Math. 23, 61 (1972)). Two
designs are distinct when they differ in any opened site or any span's option.

Solved with HiGHS through ``scipy.optimize.milp`` (sparse constraint matrix, flows in units of the largest demand),
each solve stopped at ``time_limit_s``. Size: ``(1 + S) D E`` flow variables for ``D`` demands, ``E`` spans and
``S = E`` failure scenarios under protection (0 without). On 2 CPU cores, 50 sites, 115 spans of 3 options and 5
demands take about 5 s a solve; with protection 30 sites and 63 spans take about 12 s a solve, while 50 sites and
115 spans stop at the time limit with a gap of 10-70 % (``Design.status``, ``Design.mip_gap``).
Inputs are checked before solving; every error is a one-line ``ConfigError`` (a ``ValueError``) that names the
parameter, its value and what is allowed, including a demand that no candidate design can serve.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from qkdjax.config import ConfigError

SITE_KINDS = ("user", "trusted")  # untrusted relays sit inside spans
PROTECTIONS = (None, "single_span")
TIME_LIMIT_S = 60.0  # per MILP solve
MIP_REL_GAP = 1e-6  # HiGHS stops when (best design - lower bound) / best design is below this


class Site(NamedTuple):
    """A site that holds key: ``kind`` "user" (always present, free) or "trusted" (a candidate node, opened at
    ``annual_cost`` per year). A user site relays other demands' key only with ``relays=True``."""

    name: str
    kind: str = "user"
    annual_cost: float = 0.0
    relays: bool = False


class Option(NamedTuple):
    """One way to build a span: a technology ``name``, its secret key rate (bit/s, both directions together) and
    its annual cost."""

    name: str
    key_rate_bps: float
    annual_cost: float


class Span(NamedTuple):
    """A candidate undirected span between sites ``a`` and ``b``; at most one of its ``options`` is built."""

    a: str
    b: str
    options: tuple[Option, ...]


class Demand(NamedTuple):
    """End-to-end key of ``bps`` bit/s wanted between user sites ``a`` and ``b``."""

    a: str
    b: str
    bps: float


@dataclasses.dataclass(frozen=True)
class Problem:
    """Sites, candidate spans, demands and the protection asked for; validated when made (ConfigError, one line)."""

    sites: tuple[Site, ...]
    spans: tuple[Span, ...]
    demands: tuple[Demand, ...]
    protection: str | None = None  # None or "single_span"
    protected_fraction: float = 1.0  # of each demand, met under any one span failure

    def __post_init__(self):
        object.__setattr__(self, "sites", tuple(Site(*s) for s in self.sites))
        object.__setattr__(self, "spans", tuple(Span(s[0], s[1], tuple(Option(*o) for o in s[2])) for s in self.spans))
        object.__setattr__(self, "demands", tuple(Demand(*d) for d in self.demands))
        for name, value in zip(("sites", "spans", "demands", "protected_fraction"), _validate(self)):
            object.__setattr__(self, name, value)  # numbers as Python floats, flags as bools

    @property
    def site_index(self) -> dict[str, int]:
        return {site.name: i for i, site in enumerate(self.sites)}


class BuiltSpan(NamedTuple):
    """A span of a design: its index in ``Problem.spans``, its ends and the option built."""

    span: int
    a: str
    b: str
    option: str
    key_rate_bps: float
    annual_cost: float


class Design(NamedTuple):
    """One solution. ``flow_bps[d][i]`` is demand ``d``'s key over ``spans[i]`` in the intact network (positive from
    ``a`` to ``b``); ``routed_bps[d]`` what it receives there (its ``bps``); ``max_rate_bps[d]`` the most it could
    get through this design were it alone. ``status`` is "optimal" (within ``mip_gap``), "time_limit" (the best
    design found when the time ran out, ``mip_gap`` its distance to the lower bound) or "stopped" (HiGHS stopped for
    another reason with a design in hand)."""

    annual_cost: float
    spans: tuple[BuiltSpan, ...]
    sites: tuple[str, ...]  # trusted sites opened
    routed_bps: tuple[float, ...]
    max_rate_bps: tuple[float, ...]
    flow_bps: tuple[tuple[float, ...], ...]
    status: str
    mip_gap: float


# ---------------------------------------------------------------------------------------------------- validation


def _number(value, what: str, strings: bool = False, allowed: str = "a finite number >= 0") -> float:
    """``value`` (a real scalar: Python, NumPy or a 0-d array; with ``strings`` also a string of one) as a float
    if it is finite and >= 0; else ConfigError."""
    number = math.nan
    if isinstance(value, str):
        if strings:
            try:
                number = float(value)
            except ValueError:
                pass
    elif not isinstance(value, (bool, np.bool_)):
        try:
            array = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything that is not an array of a number is refused below
            array = np.asarray(None)
        if array.ndim == 0 and array.dtype.kind in "iuf":
            number = float(array)
    if not (math.isfinite(number) and number >= 0):
        raise ConfigError(f"{what}: {value!r}, must be {allowed}")
    return number


def _validate(problem: Problem) -> tuple[tuple[Site, ...], tuple[Span, ...], tuple[Demand, ...], float]:
    """ConfigError (one line) on the first bad input; else the inputs with their numbers as floats."""
    kinds: dict[str, str] = {}
    sites, spans, demands = [], [], []
    for i, site in enumerate(problem.sites):
        what = f"sites[{i}]"
        if not isinstance(site.name, str) or not site.name:
            raise ConfigError(f"{what}.name: {site.name!r}, must be a non-empty string")
        if site.name in kinds:
            raise ConfigError(f"{what}.name: {site.name!r} appears twice; site names must be unique")
        if site.kind not in SITE_KINDS:
            raise ConfigError(
                f"{what}.kind: {site.kind!r} (site {site.name!r}), not one of: {', '.join(SITE_KINDS)} (untrusted relays sit inside spans)"
            )
        cost = _number(site.annual_cost, f"{what}.annual_cost (site {site.name!r})")
        if site.kind == "user" and cost != 0:
            raise ConfigError(
                f"{what}.annual_cost: {site.annual_cost!r} for user site {site.name!r}; user sites are always present and cost 0 here"
            )
        if not isinstance(site.relays, (bool, np.bool_)):
            raise ConfigError(f"{what}.relays: {site.relays!r} (site {site.name!r}), must be true or false")
        kinds[site.name] = site.kind
        sites.append(Site(site.name, site.kind, cost, bool(site.relays)))
    names = ", ".join(kinds)

    def known(name, what):
        if not isinstance(name, str) or name not in kinds:
            raise ConfigError(f"{what}: {name!r} is not a site; sites are: {names}")

    for i, span in enumerate(problem.spans):
        known(span.a, f"spans[{i}].a")
        known(span.b, f"spans[{i}].b")
        if span.a == span.b:
            raise ConfigError(f"spans[{i}]: joins site {span.a!r} to itself; a span joins two different sites")
        if not span.options:
            raise ConfigError(f"spans[{i}].options: empty (span {span.a} - {span.b}); give at least one option")
        seen, options = set(), []
        for k, option in enumerate(span.options):
            what = f"spans[{i}].options[{k}]"
            if not isinstance(option.name, str) or not option.name or option.name in seen:
                raise ConfigError(f"{what}.name: {option.name!r}, must be a non-empty string unlike the span's other option names")
            seen.add(option.name)
            options.append(
                Option(
                    option.name, _number(option.key_rate_bps, f"{what}.key_rate_bps"), _number(option.annual_cost, f"{what}.annual_cost")
                )
            )
        spans.append(Span(span.a, span.b, tuple(options)))
    for j, demand in enumerate(problem.demands):
        for end in ("a", "b"):
            name = getattr(demand, end)
            known(name, f"demands[{j}].{end}")
            if kinds[name] != "user":
                raise ConfigError(f"demands[{j}].{end}: {name!r} is a {kinds[name]} site; demands join user sites")
        if demand.a == demand.b:
            raise ConfigError(f"demands[{j}]: joins site {demand.a!r} to itself; a demand joins two different user sites")
        demands.append(Demand(demand.a, demand.b, _number(demand.bps, f"demands[{j}].bps")))
    if problem.protection not in PROTECTIONS:
        raise ConfigError(f"protection: {problem.protection!r}, not one of: None, 'single_span'")
    fraction = _number(problem.protected_fraction, "protected_fraction", allowed="a number in (0, 1]")
    if not 0 < fraction <= 1:
        raise ConfigError(f"protected_fraction: {problem.protected_fraction!r}, must be a number in (0, 1]")
    return tuple(sites), tuple(spans), tuple(demands), fraction


def problem_from_config(config: Mapping) -> Problem:
    """A Problem from plain dicts and lists, as they come from YAML::

        sites: {A: user, B: {kind: user, relays: true}, N1: {kind: trusted, annual_cost: 50000}}
        spans: [{a: A, b: N1, options: [{name: bb84, key_rate_bps: 2.0e4, annual_cost: 30000}]}, ...]
        demands: [{a: A, b: B, bps: 1.0e4}]
        protection: single_span        # optional; null (default) for none
        protected_fraction: 0.5        # optional; default 1

    Numbers may be strings ("2e4", which YAML 1.1 reads as a string). ConfigError (one line) on anything else."""

    def fields(value, what: str, allowed: Sequence[str], required: Sequence[str]) -> Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{what}: {value!r}, must be a mapping with keys {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                raise ConfigError(f"{what}.{key}: unknown key; allowed: {', '.join(allowed)}")
        for key in required:
            if key not in value:
                raise ConfigError(f"{what}.{key}: missing; required: {', '.join(required)}")
        return value

    def items(value, what: str) -> Sequence:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise ConfigError(f"{what}: {value!r}, must be a list")
        return value

    top = fields(config, "config", ("sites", "spans", "demands", "protection", "protected_fraction"), ("sites", "spans", "demands"))
    if not isinstance(top["sites"], Mapping):
        raise ConfigError(f"sites: {top['sites']!r}, must be a mapping of site name to kind or {{kind, annual_cost, relays}}")
    sites = []
    for name, spec in top["sites"].items():
        if isinstance(spec, str):
            spec = {"kind": spec}
        spec = fields(spec, f"sites.{name}", ("kind", "annual_cost", "relays"), ("kind",))
        cost = _number(spec.get("annual_cost", 0.0), f"sites.{name}.annual_cost", strings=True)
        sites.append(Site(str(name), spec["kind"], cost, spec.get("relays", False)))
    spans = []
    for i, spec in enumerate(items(top["spans"], "spans")):
        spec = fields(spec, f"spans[{i}]", ("a", "b", "options"), ("a", "b", "options"))
        options = []
        for k, option in enumerate(items(spec["options"], f"spans[{i}].options")):
            what = f"spans[{i}].options[{k}]"
            option = fields(option, what, ("name", "key_rate_bps", "annual_cost"), ("name", "key_rate_bps", "annual_cost"))
            rate = _number(option["key_rate_bps"], f"{what}.key_rate_bps", strings=True)
            options.append(Option(option["name"], rate, _number(option["annual_cost"], f"{what}.annual_cost", strings=True)))
        spans.append(Span(spec["a"], spec["b"], tuple(options)))
    demands = []
    for j, spec in enumerate(items(top["demands"], "demands")):
        spec = fields(spec, f"demands[{j}]", ("a", "b", "bps"), ("a", "b", "bps"))
        demands.append(Demand(spec["a"], spec["b"], _number(spec["bps"], f"demands[{j}].bps", strings=True)))
    fraction = top.get("protected_fraction", 1.0)
    if isinstance(fraction, str):
        fraction = _number(fraction, "protected_fraction", strings=True, allowed="a number in (0, 1]")
    return Problem(tuple(sites), tuple(spans), tuple(demands), top.get("protection"), fraction)


# ---------------------------------------------------------------------------------------------------- max-flow LP


def _relays(problem: Problem, demand: Demand, opened: np.ndarray) -> np.ndarray:
    """Which sites may pass on demand ``demand``'s key: its ends, opened trusted sites, users with ``relays``."""
    return np.array(
        [
            (s.kind == "trusted" and opened[i]) or (s.kind == "user" and (s.relays or s.name in (demand.a, demand.b)))
            for i, s in enumerate(problem.sites)
        ]
    )


def _max_flow(problem: Problem, demand: Demand, capacity: np.ndarray, opened: np.ndarray) -> float:
    """Most key (bit/s) demand ``demand`` can get alone over spans of rates ``capacity`` with trusted sites
    ``opened``: an LP max-flow (each span two opposite arcs of its rate; a maximum flow never uses both)."""
    index = problem.site_index
    ends = np.array([(index[s.a], index[s.b]) for s in problem.spans], dtype=int).reshape(-1, 2)
    relays = _relays(problem, demand, opened)
    n_sites, n_spans = len(problem.sites), len(problem.spans)
    if n_spans == 0:
        return 0.0
    unit = max(float(np.max(capacity)), 1.0)
    usable = relays[ends[:, 0]] & relays[ends[:, 1]]
    upper = np.where(usable, capacity / unit, 0.0)
    tail = np.concatenate([ends[:, 0], ends[:, 1]])
    head = np.concatenate([ends[:, 1], ends[:, 0]])
    arcs = np.arange(2 * n_spans)
    source, sink = index[demand.a], index[demand.b]
    # Rows: conservation at every site; the last column is the flow value F, which leaves the source, enters the sink.
    rows = np.concatenate([tail, head, [source, sink]])
    cols = np.concatenate([arcs, arcs, [2 * n_spans, 2 * n_spans]])
    vals = np.concatenate([np.ones(2 * n_spans), -np.ones(2 * n_spans), [-1.0, 1.0]])
    a_eq = sp.csr_array((vals, (rows, cols)), shape=(n_sites, 2 * n_spans + 1))
    c = np.zeros(2 * n_spans + 1)
    c[-1] = -1.0
    bounds = np.column_stack([np.zeros(2 * n_spans + 1), np.concatenate([upper, upper, [np.inf]])])
    result = linprog(c, A_eq=a_eq, b_eq=np.zeros(n_sites), bounds=bounds, method="highs")
    if result.status != 0:  # pragma: no cover - an LP with the zero flow feasible and bounded arcs always solves
        raise RuntimeError(f"max-flow LP failed: {result.message}")
    return max(-result.fun, 0.0) * unit + 0.0  # + 0.0: no -0.0


def _check_servable(problem: Problem) -> None:
    """ConfigError naming the first demand that no candidate design can serve, even alone with everything built."""
    fastest = np.array([max(o.key_rate_bps for o in s.options) for s in problem.spans])
    opened = np.ones(len(problem.sites), dtype=bool)
    for j, demand in enumerate(problem.demands):
        what = f"demands[{j}] ({demand.a} - {demand.b}, {demand.bps:g} bps)"
        best = _max_flow(problem, demand, fastest, opened)
        if best < demand.bps * (1 - 1e-9):
            raise ConfigError(
                f"{what}: no candidate design serves it; with every span at its fastest option and every trusted site open it gets at most {best:g} bps"
            )
        if problem.protection == "single_span":
            need = problem.protected_fraction * demand.bps
            for i, span in enumerate(problem.spans):
                failed = fastest.copy()
                failed[i] = 0.0
                left = _max_flow(problem, demand, failed, opened)
                if left < need * (1 - 1e-9):
                    raise ConfigError(
                        f"{what}: no candidate design protects it; with spans[{i}] ({span.a} - {span.b}) failed it gets at most {left:g} bps, "
                        f"below protected_fraction * bps = {need:g} bps"
                    )


# ---------------------------------------------------------------------------------------------------- the MILP


class _Model(NamedTuple):
    c: np.ndarray
    integrality: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    matrix: sp.csr_array
    row_lower: np.ndarray
    row_upper: np.ndarray
    trusted: np.ndarray  # site index of each y variable
    choices: np.ndarray  # [n_z, 2]: (span, option) of each z variable
    unit: float  # bit/s per flow unit
    n_binary: int


def _model(problem: Problem) -> _Model:
    index = problem.site_index
    sites, spans, demands = problem.sites, problem.spans, problem.demands
    n_sites, n_spans, n_demands = len(sites), len(spans), len(demands)
    trusted = np.array([i for i, s in enumerate(sites) if s.kind == "trusted"], dtype=int)
    y_of = {int(v): t for t, v in enumerate(trusted)}
    choices = np.array([(e, k) for e, s in enumerate(spans) for k in range(len(s.options))], dtype=int).reshape(-1, 2)
    n_y, n_z = len(trusted), len(choices)
    n_binary = n_y + n_z
    ends = np.array([(index[s.a], index[s.b]) for s in spans], dtype=int).reshape(-1, 2)
    bps = np.array([d.bps for d in demands])
    unit = max(float(bps.max(initial=0.0)), 1.0)
    rate = np.array([spans[e].options[k].key_rate_bps for e, k in choices]) / unit
    cost = np.array([spans[e].options[k].annual_cost for e, k in choices])

    # Scenarios: 0 intact, 1 + j span j failed. D[s, d] the demand met in each.
    failed = [-1] + (list(range(n_spans)) if problem.protection == "single_span" else [])
    n_scen = len(failed)
    need = np.tile(bps / unit, (n_scen, 1))
    need[1:] *= problem.protected_fraction

    # Flow variables f[s, d, e, dir], dir 0: a -> b, 1: b -> a; flat index n_binary + ((s*D + d)*E + e)*2 + dir.
    n_flow = n_scen * n_demands * n_spans * 2
    s_, d_, e_, r_ = (g.ravel() for g in np.indices((n_scen, n_demands, n_spans, 2)))
    flow = n_binary + np.arange(n_flow)
    upper_flow = np.full(n_flow, np.inf)
    upper_flow[np.asarray(failed)[s_] == e_] = 0.0
    allowed = np.array([_relays(problem, d, np.ones(n_sites, dtype=bool)) for d in demands], dtype=bool).reshape(n_demands, n_sites)
    upper_flow[~(allowed[d_, ends[e_, 0]] & allowed[d_, ends[e_, 1]])] = 0.0

    rows, cols, vals, lo, hi = [], [], [], [], []
    n_rows = 0

    def block(r, c, v, lower, upper):
        nonlocal n_rows
        rows.append(np.asarray(r) + n_rows)
        cols.append(np.asarray(c))
        vals.append(np.asarray(v, dtype=float))
        lo.append(np.asarray(lower, dtype=float))
        hi.append(np.asarray(upper, dtype=float))
        n_rows += len(lo[-1])

    # Conservation, row (s*D + d)*V + v: out - in = +D at the source, -D at the sink, 0 elsewhere.
    tail = np.where(r_ == 0, ends[e_, 0], ends[e_, 1])
    head = np.where(r_ == 0, ends[e_, 1], ends[e_, 0])
    base = (s_ * n_demands + d_) * n_sites
    rhs = np.zeros((n_scen, n_demands, n_sites))
    for j, d in enumerate(demands):
        rhs[:, j, index[d.a]] += need[:, j]
        rhs[:, j, index[d.b]] -= need[:, j]
    block(
        np.concatenate([base + tail, base + head]),
        np.concatenate([flow, flow]),
        np.concatenate([np.ones(n_flow), -np.ones(n_flow)]),
        rhs.ravel(),
        rhs.ravel(),
    )
    # Capacity, row s*E + e: sum_d f - sum_k min(R_k, sum_d D) z_k <= 0.
    z_span = choices[:, 0]
    s_z, z_z = (g.ravel() for g in np.indices((n_scen, n_z)))
    block(
        np.concatenate([s_ * n_spans + e_, s_z * n_spans + z_span[z_z]]),
        np.concatenate([flow, n_y + z_z]),
        np.concatenate([np.ones(n_flow), -np.minimum(rate[z_z], need.sum(axis=1)[s_z])]),
        np.full(n_scen * n_spans, -np.inf),
        np.zeros(n_scen * n_spans),
    )
    # Strong linking, row (s*D + d)*E + e: f+ + f- - sum_k min(R_k, D_sd) z_k <= 0.
    s_l, d_l, z_l = (g.ravel() for g in np.indices((n_scen, n_demands, n_z)))
    block(
        np.concatenate([(s_ * n_demands + d_) * n_spans + e_, (s_l * n_demands + d_l) * n_spans + z_span[z_l]]),
        np.concatenate([flow, n_y + z_l]),
        np.concatenate([np.ones(n_flow), -np.minimum(rate[z_l], need[s_l, d_l])]),
        np.full(n_scen * n_demands * n_spans, -np.inf),
        np.zeros(n_scen * n_demands * n_spans),
    )
    # One option per span; a span to a trusted site only if it is opened.
    block(z_span, n_y + np.arange(n_z), np.ones(n_z), np.full(n_spans, -np.inf), np.ones(n_spans))
    r_t, c_t, v_t = [], [], []  # row 2e + p: span e's options <= y of its end p, where that end is a trusted site
    for e in range(n_spans):
        options = n_y + np.flatnonzero(z_span == e)
        for p in (0, 1):
            if int(ends[e, p]) in y_of:
                r_t += [2 * e + p] * (len(options) + 1)
                c_t += [*options, y_of[int(ends[e, p])]]
                v_t += [1.0] * len(options) + [-1.0]
    block(np.asarray(r_t, dtype=int), np.asarray(c_t, dtype=int), v_t, np.full(2 * n_spans, -np.inf), np.zeros(2 * n_spans))
    # Degree at the ends of a demand, row 2d + p: its key leaves (enters) over at least one built span of nonzero rate
    # to a site that may pass it on, two under protection (the integer rounding of what the flows imply).
    r_g, c_g, v_g, lo_g = [], [], [], []
    for j, d in enumerate(demands):
        for p, end in enumerate((index[d.a], index[d.b])):
            other = np.where(ends[z_span, 0] == end, ends[z_span, 1], ends[z_span, 0])
            mine = np.flatnonzero(((ends[z_span, 0] == end) | (ends[z_span, 1] == end)) & allowed[j, other] & (rate > 0))
            r_g += [2 * j + p] * len(mine)
            c_g += list(n_y + mine)
            v_g += [1.0] * len(mine)
            lo_g += [0.0 if d.bps == 0 else 1.0 + (n_scen > 1)]
    block(np.asarray(r_g, dtype=int), np.asarray(c_g, dtype=int), v_g, lo_g, np.full(2 * n_demands, np.inf))

    matrix = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_binary + n_flow),
    )
    c = np.concatenate([[sites[v].annual_cost for v in trusted], cost, np.zeros(n_flow)])
    integrality = np.concatenate([np.ones(n_binary), np.zeros(n_flow)])
    lower = np.zeros(n_binary + n_flow)
    upper = np.concatenate([np.ones(n_binary), upper_flow])
    return _Model(c, integrality, lower, upper, matrix, np.concatenate(lo), np.concatenate(hi), trusted, choices, unit, n_binary)


def _design(problem: Problem, model: _Model, x: np.ndarray, status: str, gap: float) -> Design:
    n_y, n_spans, n_demands = len(model.trusted), len(problem.spans), len(problem.demands)
    binary = x[: model.n_binary] > 0.5
    opened_sites = model.trusted[binary[:n_y]]
    opened = np.array([s.kind == "user" for s in problem.sites])
    opened[opened_sites] = True
    built, capacity = [], np.zeros(n_spans)
    for e, k in model.choices[binary[n_y:]]:
        span, option = problem.spans[e], problem.spans[e].options[k]
        built.append(BuiltSpan(int(e), span.a, span.b, option.name, option.key_rate_bps, option.annual_cost))
        capacity[e] = option.key_rate_bps
    cost = sum(problem.sites[v].annual_cost for v in opened_sites) + sum(b.annual_cost for b in built)
    nominal = x[model.n_binary : model.n_binary + n_demands * n_spans * 2].reshape(n_demands, n_spans, 2)
    net = (nominal[..., 0] - nominal[..., 1]) * model.unit
    net[np.abs(net) < 1e-9 * model.unit] = 0.0  # solver noise
    return Design(
        annual_cost=float(cost),
        spans=tuple(built),
        sites=tuple(problem.sites[v].name for v in opened_sites),
        routed_bps=tuple(float(d.bps) for d in problem.demands),
        max_rate_bps=tuple(_max_flow(problem, d, capacity, opened) for d in problem.demands),
        flow_bps=tuple(tuple(float(net[d, b.span]) for b in built) for d in range(n_demands)),
        status=status,
        mip_gap=gap,
    )


def cheapest_designs(
    problem: Problem, count: int = 2, *, time_limit_s: float = TIME_LIMIT_S, mip_rel_gap: float = MIP_REL_GAP
) -> list[Design]:
    """The cheapest design and then up to ``count - 1`` runners-up, each the cheapest design distinct from all
    before it (a no-good cut per design found), in order of annual cost. Fewer when no further design serves the
    demands, or when a runner-up's solve runs out of ``time_limit_s`` (per solve) before finding one (a warning
    says so). ConfigError (one line) on invalid arguments or when no design serves the demands."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"count: {count!r}, must be an integer >= 1")
    for name, value in (("time_limit_s", time_limit_s), ("mip_rel_gap", mip_rel_gap)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 or (name == "mip_rel_gap" and value == 0)):
            raise ConfigError(f"{name}: {value!r}, must be a number > 0" + (" (or 0)" if name == "mip_rel_gap" else ""))
    _check_servable(problem)
    model = _model(problem)
    if not len(model.c):  # nothing to choose (no trusted sites, no spans): the empty design, the only one
        return [_design(problem, model, np.zeros(0), "optimal", 0.0)]
    found: list[np.ndarray] = []  # the binary vectors of the designs so far, each excluded by a no-good cut
    designs: list[Design] = []
    for _ in range(count):
        constraints = [LinearConstraint(model.matrix, model.row_lower, model.row_upper)]
        if found:
            ones = np.stack(found)
            cuts = sp.csr_array(np.where(ones, -1.0, 1.0))
            cuts.resize((len(found), len(model.c)))  # the flows are not in the cuts
            constraints.append(LinearConstraint(cuts, 1.0 - ones.sum(axis=1), np.inf))
        result = milp(
            model.c,
            integrality=model.integrality,
            bounds=Bounds(model.lower, model.upper),
            constraints=constraints,
            options={"time_limit": float(time_limit_s), "mip_rel_gap": float(mip_rel_gap), "disp": False},
        )
        if result.x is None:
            if result.status == 2 and not designs:
                protected = (
                    f" with protection='single_span' at protected_fraction={problem.protected_fraction:g}" if problem.protection else ""
                )
                raise ConfigError(
                    f"demands: no candidate design serves all {len(problem.demands)} demands at once{protected} "
                    "(each can be served alone); lower demands[*].bps or add spans, options or trusted sites"
                )
            if result.status == 2:
                break
            message = f"no design found within time_limit_s={time_limit_s:g} ({result.message})"
            if not designs:
                raise RuntimeError(f"{message}; raise time_limit_s")
            warnings.warn(f"runner-up {len(designs)}: {message}; returning {len(designs)} design(s)", stacklevel=2)
            break
        status = {0: "optimal", 1: "time_limit"}.get(result.status, "stopped")
        gap = float(result.mip_gap) if getattr(result, "mip_gap", None) is not None else math.nan
        designs.append(_design(problem, model, result.x, status, gap))
        found.append(result.x[: model.n_binary] > 0.5)
    return designs
