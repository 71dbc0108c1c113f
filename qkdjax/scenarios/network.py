"""QKD networks (``link=network``): every link's key rate (a point study of its own link, detector, source and
protocol; links of one kind vmapped together), each demand's end-to-end rate by key relay (max-flow through
trusted nodes, ``qkdjax.network.relay``), the key supply over simulated years with failures and repairs, and the
cost of ownership of the design (``qkdjax.costs``)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qkdjax import optimize, parameters
from qkdjax.config import ConfigError
from qkdjax.costs.annualised import FAMILIES, Inventory
from qkdjax.links.network import PHYSICS_GROUPS, NetworkLink, network_graph, relaying
from qkdjax.montecarlo.estimates import probability_outputs, stderr_output
from qkdjax.network import relay
from qkdjax.network.availability import Reliability
from qkdjax.network.graph import demand_cuts
from qkdjax.numerics import safe_divide
from qkdjax.scenarios import point
from qkdjax.study import Study
from qkdjax.sweep import Output

DEMAND, LINK, SITE = "demand", "network_link", "site"
SECONDS_PER_YEAR = relay.HOURS_PER_YEAR * 3600.0

RATE_OUTPUTS: Mapping[str, Output] = {
    "key_rate": Output("bit/s", "end-to-end secret key rate of each demand (max-flow of its share of the links)", (DEMAND,), "rate"),
    "key_rate_alone": Output("bit/s", "end-to-end secret key rate each demand would get with the network to itself", (DEMAND,)),
    "demand_bps": Output("bit/s", "key demand of each user pair", (DEMAND,)),
    "link_key_rate": Output("bit/s", "secret key rate of each link", (LINK,), "link_rate"),
    "link_length_km": Output("km", "fibre length of each link (0: none, e.g. a satellite)", (LINK,)),
    "min_cut_link": Output("1", "1 on the links of each demand's minimum cut (its bottleneck)", (DEMAND, LINK), "bottleneck"),
    "trusted_nodes": Output("1", "trusted nodes of the network", (), "trusted_nodes"),
    "untrusted_relays": Output("1", "untrusted relays (middle stations of the links)", (), "untrusted_relays"),
}
SUPPLY_OUTPUTS: Mapping[str, Output] = {
    "availability": Output("1", "fraction of time each demand has a relay route (uptime, mean over trials)", (DEMAND,), "uptime"),
    **{k: o._replace(dims=(DEMAND,)) for k, o in stderr_output("availability", "1", "availability").items()},
    "mean_outage_h": Output("h", "mean time to restore each demand's route (observed MTTR; 0 where no outage was seen)", (DEMAND,), "mttr"),
    **{
        k: o._replace(dims=(DEMAND,))
        for k, o in probability_outputs(
            "demand_met_probability", "probability that the demand is met over the horizon", "demand_met"
        ).items()
    },
    "unserved_bits_mean": Output("bit", "expected demanded key not served over the horizon", (DEMAND,)),
    **{k: o._replace(dims=(DEMAND,)) for k, o in stderr_output("unserved_bits_mean", "bit", "expected unserved key").items()},
    "unserved_fraction_mean": Output("1", "expected share of the demand not served (falls back to another key exchange)", (DEMAND,)),
    **{k: o._replace(dims=(DEMAND,)) for k, o in stderr_output("unserved_fraction_mean", "1", "expected unserved share").items()},
    "protected_fraction": Output("1", "expected share of key exchanges that QKD key protects", (DEMAND,), "protected"),
    "longest_starvation_h_mean": Output("h", "mean longest interval without enough key", (DEMAND,)),
    **{k: o._replace(dims=(DEMAND,)) for k, o in stderr_output("longest_starvation_h_mean", "h", "mean longest starvation").items()},
    "longest_starvation_h_q95": Output("h", "95 % quantile of the longest interval without enough key", (DEMAND,)),
    "first_starvation_h_quantile": Output("h", "quantiles of the time to the first starvation (horizon: never)", (DEMAND, "quantile")),
    "link_availability": Output("1", "fraction of time each link makes key (it and both its sites up)", (LINK,)),
    "failures_per_year": Output("1/Julian_year", "failures of links and sites per year (mean over trials)"),
}
COST_OUTPUTS: Mapping[str, Output] = {
    "capex": Output("EUR", "capital expenditure of the design"),
    "cost_per_year": Output("EUR/year", "annualised cost of ownership", (), "cost"),
    "cost_per_protected_link": Output("EUR/year", "annualised cost per user pair the network protects"),
    "cost_per_key_bit": Output("EUR/bit", "annualised cost per delivered key bit (inf where none is delivered)"),
}


class LinkGroup(NamedTuple):
    """Links computed by one vmapped program: the same classes, static choices, inherited groups and value names."""

    indices: np.ndarray
    inherits: tuple[str, ...]
    static: tuple[tuple[str, Any], ...]
    values: dict[str, np.ndarray]  # group.field -> [links of the group]
    swept: tuple[tuple[str, int, str], ...]  # (group.field, position in the group, grid axis) of swept values

    def link_values(self, grid_values: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """``values`` with each swept entry the grid's value at this point."""
        stacked = {name: jnp.asarray(v) for name, v in self.values.items()}
        for name, position, axis in self.swept:
            stacked[name] = stacked[name].at[position].set(grid_values[axis])
        return stacked


class Layout(NamedTuple):
    """What a network's static choices fix, computed once on the host."""

    links: tuple[NetworkLink, ...]
    ends: np.ndarray  # [E, 2] site indices
    groups: tuple[LinkGroup, ...]
    fixed_rates: tuple[np.ndarray, np.ndarray]  # indices and rates of supplies of known rate
    cuts: relay.Cuts
    demand_shares: np.ndarray  # [D]
    link_shares: np.ndarray  # [D, E]
    uses: np.ndarray  # [D, E]: 1 where the link lies on a route of the demand
    inventory: Inventory  # expected failures filled in per point


def text(values) -> np.ndarray:
    """Strings as a coordinate's values (object dtype: xarray writes them as variable-length strings)."""
    return np.asarray(values, dtype=object)


def link_inventory(link: NetworkLink, static: Mapping[str, Any]) -> Inventory:
    """What one link adds to a design's price: its terminal pair, its untrusted relay, its fibre (dark or lit)."""
    terminal_pairs = np.zeros(len(FAMILIES))
    if link.fixed_rate:  # a supply bought as a service: its ground stations are sites
        return Inventory(terminal_pairs, 0, 0, 0, 0.0, 0.0, 0.0)
    classes = parameters.study_classes(link.types(static))
    if classes["protocol"].cost_family in FAMILIES:
        terminal_pairs[FAMILIES.index(classes["protocol"].cost_family)] = 1
    length = link.value("link.distance_km")
    lit = lit_fibre(link)
    return Inventory(terminal_pairs, 0, classes["link"].arms - 1, 0, 0.0 if lit else length, length if lit else 0.0, 0.0)


def lit_fibre(link: NetworkLink) -> bool:
    """Whether the link's fibre carries classical channels too (a leased wavelength, not a dark fibre)."""
    own = dict(link.static)
    return any(own.get(f"link.{k}") is not None for k in ("classical_channels", "classical_counter_channels"))


def site_inventory(kind: str) -> Inventory:
    """What one site adds to a design's price (user sites: nothing; they are the customers')."""
    return Inventory(np.zeros(len(FAMILIES)), int(kind == "trusted"), 0, int(kind == "ground_station"), 0.0, 0.0, 0.0)


class NetworkStudy(Study):
    """Link key rates, each demand's key relay and, with ``trials``, the key supply over simulated horizons; costs
    with a price set (``cost=NAME``)."""

    name = "network"

    @classmethod
    def check(cls, static, classes, settings):
        cls.refuse_point_settings(settings, "networks", optimises=True)
        if classes["cost"].priced:
            for number, link in enumerate(static["link.links"]):
                protocol = parameters.study_classes(link.types(static))["protocol"]
                if not link.fixed_rate and protocol.cost_family not in FAMILIES:
                    raise ConfigError(
                        f"link.links[{number}] ({link.name}): protocol {protocol.types[0]} has no price in cost.type "
                        f"{static.get('cost.type')} (families priced: {', '.join(FAMILIES)})"
                    )

    @functools.cached_property
    def layout(self) -> Layout:
        static = self.static
        graph = network_graph(static)
        links = static["link.links"]
        demands = static["link.demands"]
        relays = relaying(static)
        per_demand = [demand_cuts(graph, relays, graph.sites.index(d.a), graph.sites.index(d.b)).astype(float) for d in demands]
        cuts = relay.Cuts.stack(per_demand)
        shares = np.asarray([d.share for d in demands])
        return Layout(
            links, np.asarray(graph.edges, dtype=np.int32).reshape(-1, 2), self._groups(links),
            (np.asarray([i for i, x in enumerate(links) if x.fixed_rate], int), np.asarray([x.key_rate_bps for x in links if x.fixed_rate])),
            cuts, shares, cuts.shares(shares), cuts.matrix.any(axis=1).astype(float), self._inventory(links, graph),
        )  # fmt: skip

    def _groups(self, links) -> tuple[LinkGroup, ...]:
        grouped: dict[tuple, list[int]] = {}
        for index, link in enumerate(links):
            if not link.fixed_rate:
                signature = (link.inherits, link.static, tuple(name for name, _ in link.values), tuple(link.types(self.static).items()))
                grouped.setdefault(signature, []).append(index)
        groups = []
        for (inherits, static, names, _), indices in grouped.items():
            values = {name: np.asarray([dict(links[i].values)[name] for i in indices]) for name in names}
            swept = tuple((name, k, axis) for k, i in enumerate(indices) for name, axis in links[i].swept)
            groups.append(LinkGroup(np.asarray(indices), inherits, static, values, swept))
        return tuple(groups)

    def _inventory(self, links, graph) -> Inventory:
        counted = [link_inventory(link, self.static) for link in links] + [site_inventory(kind) for kind in graph.kinds]
        return Inventory(*(sum(items) for items in zip(*counted)))

    @property
    def outputs(self) -> Mapping[str, Output]:
        cost = COST_OUTPUTS if self.classes["cost"].priced else {}
        return {**RATE_OUTPUTS, **(SUPPLY_OUTPUTS if self.trials else {}), **cost}

    @property
    def coords(self):
        static = self.static
        links, demands, sites = static["link.links"], static["link.demands"], static["link.sites"]
        return {
            **super().coords,
            DEMAND: (text([d.label for d in demands]), {"long_name": "user pair that needs key"}),
            LINK: (text([x.name for x in links]), {"long_name": "link of the network"}),
            SITE: (text([s.name for s in sites]), {"long_name": "site of the network"}),
        }

    @property
    def labels(self) -> dict[str, tuple[str, np.ndarray, Mapping[str, str]]]:
        """Non-index coordinates: the ends of links and demands, what each link is, each site's kind and place."""
        static = self.static
        links, demands, sites = static["link.links"], static["link.demands"], static["link.sites"]
        kinds = [
            ("supply", "key supply of known rate")
            if x.fixed_rate
            else (x.types(static)["link.type"], x.types(static)["protocol.type"] or parameters.BASES["protocol"].default_type)
            for x in links
        ]
        labels = {
            "site": (SITE, text([s.name for s in sites]), {"long_name": "site of the network"}),
            "site_kind": (SITE, text([s.kind for s in sites]), {"long_name": "kind of site (user, trusted, ground_station)"}),
            "link_site_a": (LINK, text([x.a for x in links]), {"long_name": "site at one end of the link"}),
            "link_site_b": (LINK, text([x.b for x in links]), {"long_name": "site at the other end of the link"}),
            "link_type": (LINK, text([k[0] for k in kinds]), {"long_name": "link model"}),
            "link_protocol": (LINK, text([k[1] for k in kinds]), {"long_name": "protocol of the link"}),
            "demand_site_a": (DEMAND, text([d.a for d in demands]), {"long_name": "user site at one end of the demand"}),
            "demand_site_b": (DEMAND, text([d.b for d in demands]), {"long_name": "user site at the other end of the demand"}),
        }
        if all(s.x_km is not None and s.y_km is not None for s in sites):
            labels |= {f"site_{axis}_km": (SITE, np.asarray([getattr(s, f"{axis}_km") for s in sites]), {"units": "km"}) for axis in "xy"}
        return labels

    @property
    def evaluations_per_point(self) -> int:
        layout = self.layout
        return max(self.trials, 1) * (len(layout.links) + len(layout.ends) + len(layout.demand_shares))

    def link_lengths_km(self, values: Mapping[str, jax.Array]) -> jax.Array:
        """``[E]`` fibre length of every link at this grid point (swept lengths included)."""
        links = self.layout.links
        lengths = jnp.asarray([link.value("link.distance_km") for link in links])
        for i, link in enumerate(links):
            axis = dict(link.swept).get("link.distance_km")
            if axis is not None:
                lengths = lengths.at[i].set(values[axis])
        return lengths

    def link_rates(self, values: Mapping[str, jax.Array]) -> jax.Array:
        """``[E]`` secret key rate of every link, optimised where the optimiser's parameters are the link's."""
        layout = self.layout
        rates = jnp.zeros(len(layout.links)).at[layout.fixed_rates[0]].set(layout.fixed_rates[1])
        for group in layout.groups:
            inherited = {k: v for k, v in {**values, **self.static}.items() if k.split(".")[0] in group.inherits}
            own_static = dict(group.static)
            optimizer = self._link_optimizer({**inherited, **own_static})

            def one(own, inherited=inherited, own_static=own_static, optimizer=optimizer):
                p = parameters.build_params({**inherited, **own, **own_static})
                if optimizer is None:
                    return p.protocol.key_rate(p)
                return optimize.optimise(p, optimizer, point.margin_per_pulse, optimize.rate_only(point.key_rate)).key_rate

            rates = rates.at[group.indices].set(jax.vmap(one)(group.link_values(values)))
        return rates

    def _link_optimizer(self, values: Mapping[str, Any]) -> optimize.Optimizer | None:
        """The optimiser restricted to the parameters a link's classes have (None: it has none of them)."""
        if self.optimizer is None:
            return None
        classes = {g: parameters.group_class(g, values.get(f"{g}.type")) for g in PHYSICS_GROUPS}
        allowed = set(parameters.flagged_paths(classes, "optimisable"))
        kept = [(n, b) for n, b in zip(self.optimizer.params, self.optimizer.bounds) if n in allowed]
        if not kept:
            return None
        return dataclasses.replace(self.optimizer, params=tuple(n for n, _ in kept), bounds=tuple(b for _, b in kept))

    def reliability(self, link) -> Reliability:
        """Failure and repair laws of the links, then the sites (``Network.failure_laws``)."""
        mtbf, mttr = zip(*link.failure_laws())
        n = len(mtbf)
        return Reliability(
            jnp.stack([jnp.asarray(v, jnp.float64) for v in mtbf]), jnp.stack([jnp.asarray(v, jnp.float64) for v in mttr]),
            jnp.full(n, link.failure_shape), jnp.full(n, link.repair_log_sigma),
        )  # fmt: skip

    def __call__(self, values, key):
        layout = self.layout
        p = self.params(values)
        rates = self.link_rates(values)
        shared = layout.link_shares * rates
        demand_bps = p.link.demand_bps * layout.demand_shares
        key_rate = layout.cuts.flows(shared)
        lengths = self.link_lengths_km(values)
        lit = np.asarray([lit_fibre(link) for link in layout.links])
        inventory = layout.inventory._replace(
            dark_fibre_km=jnp.sum(jnp.where(lit, 0.0, lengths)), lit_fibre_km=jnp.sum(jnp.where(lit, lengths, 0.0))
        )
        metrics = {
            "key_rate": key_rate,
            "link_length_km": lengths,
            "key_rate_alone": layout.cuts.flows(layout.uses * rates),
            "demand_bps": demand_bps,
            "link_key_rate": rates,
            "min_cut_link": layout.cuts.bottleneck(shared),
            "trusted_nodes": jnp.float64(layout.inventory.trusted_nodes),
            "untrusted_relays": jnp.float64(layout.inventory.untrusted_relays),
        }
        reliability = self.reliability(p.link)
        served_bps = jnp.where(demand_bps > 0, jnp.minimum(key_rate, demand_bps), key_rate)
        failures_per_year = jnp.sum(relay.failures_per_year(reliability.mtbf_h, reliability.mttr_h))
        if self.trials:
            trials = relay.sample_trials(
                key, rates, layout.ends, reliability, layout.cuts, layout.link_shares, p.link.store_bits, demand_bps,
                self.supply_horizon_h, self.supply_steps, trials=self.trials, initial_fill=p.link.store_initial_fill,
            )  # fmt: skip
            metrics |= relay.summarise(trials, self.supply_horizon_h)
            served_bps = jnp.where(demand_bps > 0, metrics["protected_fraction"] * demand_bps, key_rate)
            failures_per_year = metrics["failures_per_year"]
        if self.classes["cost"].priced:
            metrics |= self.costs(p.cost, inventory._replace(failures_per_year=failures_per_year), served_bps)
        return metrics

    def costs(self, cost, inventory: Inventory, served_bps) -> dict[str, jax.Array]:
        """Cost of ownership per year, per protected user pair and per delivered key bit."""
        per_year = cost.cost_per_year(inventory)
        delivered_bits = jnp.sum(served_bps) * SECONDS_PER_YEAR
        return {
            "capex": cost.capex(inventory),
            "cost_per_year": per_year,
            "cost_per_protected_link": per_year / len(self.layout.demand_shares),
            "cost_per_key_bit": jnp.where(delivered_bits > 0, safe_divide(per_year, delivered_bits), jnp.inf),
        }
