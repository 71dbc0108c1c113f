"""The cheapest network design that meets the demands (``design.enabled``): candidates, a MILP, then the Monte Carlo.

The network of ``link=network`` lists the candidates: every link is a candidate (links joining the same two sites
are alternative technologies for one span: at most one is built) and every trusted node a candidate site; user
sites are always there (relaying other pairs' key only where they say ``relays: true``, as in the network
scenario). At the run's one grid point:

1. the key rate of every candidate link (the network study without trials: a point study of each link, optimised
   where ``optimize.enabled``);
2. the annualised cost of every candidate link and site from the price set (``cost=NAME``; ``qkdjax.costs``:
   the cost of ownership is linear in what is bought, so a design's cost is the sum of its items' costs, repairs
   at the expected failures a year);
3. the cheapest designs whose demands fit the links' key rates (``qkdjax.network.design``: a fixed-charge
   multicommodity flow MILP solved by HiGHS), the cheapest and ``design.designs - 1`` runners-up;
4. each design's key supply over the horizon (the network Monte Carlo with ``montecarlo.trials``): each demand
   must be met with probability ``design.probability``. With ``design.protection = auto`` the designs are sought
   again with ``single_span`` protection (every demand survives any one link failure) when the cheapest
   unprotected design misses it.

The cube is the candidate network's, with each design's choices and verified supply along a ``network_design``
dim, and the cheapest and the runner-up as JSON in its ``design_winner`` / ``design_runner_up`` attrs (the
cheapest of each protection tried in ``design_attempts``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np
import xarray as xr

from qkdjax import parameters
from qkdjax.config import ConfigError, Grid, Settings
from qkdjax.costs.annualised import Inventory
from qkdjax.network import design as milp
from qkdjax.network.relay import failures_per_year
from qkdjax.scenarios.network import link_inventory, site_inventory
from qkdjax.sweep import run_grid
from qkdjax.units import cf_attrs

DIM = "network_design"
MET_VARIABLES = ("demand_met_probability", "demand_met_probability_ci_low", "demand_met_probability_ci_high")


def check_design_run(grid: Grid, settings: Settings) -> None:
    """What a design run needs, before anything is computed (ConfigError, one line)."""
    if grid.static.get("link.type") != "network":
        raise ConfigError(f"design.enabled looks for the cheapest network: set link=network (not link.type {grid.static.get('link.type')})")
    if not parameters.group_class("cost", grid.static.get("cost.type")).priced:
        raise ConfigError("design.enabled compares designs by cost: choose a price set (cost=example, or your own in conf/cost/)")
    if grid.size != 1:
        axes = [a.name for a in (*grid.numeric_axes, *grid.categorical_axes) if len(a.values) > 1]
        raise ConfigError(f"design.enabled solves one design problem: give {', '.join(axes)} one value (a multirun solves several)")
    if settings.trials == 0:
        raise ConfigError("design.enabled checks each design's key supply by Monte Carlo: set montecarlo.trials > 0")
    if settings.output_format != "netcdf":
        raise ConfigError(f"design.enabled writes one netCDF cube: set output.format=netcdf (not {settings.output_format})")
    for site in grid.static["link.sites"]:
        if site.kind not in milp.SITE_KINDS:
            raise ConfigError(
                f"design.enabled: site {site.name!r} is a {site.kind}; candidate sites are {' or '.join(milp.SITE_KINDS)} sites"
            )


def problem(grid: Grid, link_rates: np.ndarray, protection: str | None) -> milp.Problem:
    """The MILP's candidates: spans with one option per candidate link, trusted sites, demands, annual costs."""
    static, values = grid.static, {**grid.fixed, **{a.name: a.values[0] for a in grid.numeric_axes}}
    p = parameters.build_params({**values, **static})
    network, cost = p.link, p.cost
    annual = lambda inventory: float(cost.cost_per_year(inventory))  # linear in what is bought
    laws = network.failure_laws()  # links, then sites
    spans: dict[frozenset, list] = {}
    ends: dict[frozenset, tuple[str, str]] = {}
    for link, rate, law in zip(network.links, link_rates, laws):
        inventory = link_inventory(link, static)._replace(failures_per_year=float(failures_per_year(*law)))
        pair = frozenset((link.a, link.b))
        ends.setdefault(pair, (link.a, link.b))
        spans.setdefault(pair, []).append(milp.Option(link.name, float(rate), annual(inventory)))
    sites = []
    for site, law in zip(network.sites, laws[len(network.links) :]):
        priced = site.kind != "user"  # user sites are the customers': the design neither opens nor pays for them
        inventory: Inventory = site_inventory(site.kind)._replace(failures_per_year=float(failures_per_year(*law)))
        sites.append(milp.Site(site.name, site.kind, annual(inventory) if priced else 0.0, relays=site.relays))
    demands = [milp.Demand(d.a, d.b, float(network.demand_bps * d.share)) for d in network.demands]
    return milp.Problem(tuple(sites), tuple(milp.Span(*ends[k], tuple(v)) for k, v in spans.items()), tuple(demands), protection=protection)


def design_grid(grid: Grid, design: milp.Design) -> Grid:
    """The grid of the network a design builds: its links and its sites (users and the trusted nodes it opens)."""
    built = {span.option for span in design.spans}
    links = tuple(link for link in grid.static["link.links"] if link.name in built)
    sites = tuple(s for s in grid.static["link.sites"] if s.kind == "user" or s.name in design.sites)
    return dataclasses.replace(grid, static={**grid.static, "link.links": links, "link.sites": sites})


def summary(design: milp.Design, verified: xr.Dataset, protection: str | None) -> dict:
    """What the report shows of a design: cost, what it builds, its worst demand's probability of being met."""
    worst = int(verified.demand_met_probability.argmin("demand"))
    met = {name: float(verified[name].isel(demand=worst)) for name in MET_VARIABLES}
    return {
        "annual_cost": design.annual_cost,
        "spans": [span.option for span in design.spans],  # the names of the links it builds
        "sites": list(design.sites),
        "protection": protection or "none",
        "worst_demand": str(verified.demand.values[worst]),
        "demand_met_probability": met["demand_met_probability"],
        "ci_low": met["demand_met_probability_ci_low"],
        "ci_high": met["demand_met_probability_ci_high"],
    }


def plan(make_study: Callable, grid: Grid, settings: Settings) -> xr.Dataset:
    """The candidates' cube with the cheapest designs and their verified supply (module docstring)."""
    check_design_run(grid, settings)

    def run(g: Grid, factory: Callable) -> xr.Dataset:  # the one grid point, without the grid's length-1 dims
        cube = run_grid(factory, g, chunk_size=settings.chunk_size, seed=settings.seed, common_keys=settings.common_random_numbers)
        return cube.isel({a.name: 0 for a in (*g.numeric_axes, *g.categorical_axes)})

    candidates = run(grid, lambda choices: make_study(choices, trials=0))
    rates = candidates.link_key_rate.values
    target = settings.design.probability
    protections = {"none": [None], "single_span": ["single_span"], "auto": [None, "single_span"]}[settings.design.protection]
    attempts = []  # the cheapest design of each protection tried
    for protection in protections:
        try:
            found = milp.cheapest_designs(problem(grid, rates, protection), settings.design.designs)
        except ConfigError:
            if protection is None or settings.design.protection != "auto":
                raise
            break  # no protected design: the unprotected ones stand, marked as missing the target
        designs, chosen = found, protection
        verified = [run(design_grid(grid, d), make_study) for d in designs]
        attempts.append(summary(designs[0], verified[0], protection))
        if float(verified[0].demand_met_probability.min()) >= target:
            break
    protection = chosen
    names = ["cheapest", *(f"runner_up_{i}" if len(designs) > 2 else "runner_up" for i in range(1, len(designs)))]
    cube = candidates.assign_coords({DIM: (DIM, np.asarray(names, dtype=object), {"long_name": "network design, cheapest first"})})
    built = [{span.option for span in d.spans} for d in designs]
    variables = {
        "design_cost_per_year": ((DIM,), [d.annual_cost for d in designs], "EUR/year", "annualised cost of the design (MILP objective)"),
        "design_built": ((DIM, "network_link"), [[float(n in b) for n in cube.network_link.values] for b in built], "1", "1 where the design builds the link"),
        "design_opened": ((DIM, "site"), [[float(k == "user" or s in d.sites) for s, k in zip(cube.site.values, cube.site_kind.values)] for d in designs], "1", "1 where the design has the site"),
        "design_key_rate": ((DIM, "demand"), [v.key_rate.values for v in verified], "bit/s", "end-to-end key rate of each demand in the design"),
        "design_availability": ((DIM, "demand"), [v.availability.values for v in verified], "1", "fraction of time each demand has a route in the design"),
        **{f"design_{n}": ((DIM, "demand"), [v[n].values for v in verified], "1", f"{verified[0][n].attrs['long_name']} (the design)") for n in MET_VARIABLES},
        "design_meets_target": ((DIM,), [float(v.demand_met_probability.min() >= target) for v in verified], "1", f"1 where every demand is met with probability >= {target:g}"),
    }  # fmt: skip
    for name, (dims, data, units, long_name) in variables.items():
        cube[name] = xr.Variable(dims, np.asarray(data, dtype=float), {**cf_attrs(units), "long_name": long_name})
    summaries = [summary(d, v, protection) for d, v in zip(designs, verified)]
    cube.attrs["design_winner"] = json.dumps(summaries[0])
    if len(summaries) > 1:
        cube.attrs["design_runner_up"] = json.dumps(summaries[1])
    cube.attrs["design_probability"] = target
    cube.attrs["design_attempts"] = json.dumps(attempts)
    return cube
