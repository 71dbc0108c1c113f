"""``qkdjax report CUBE --out DIR``: PNG figures, a Markdown summary and the same as one HTML page, of any cube
qkdjax writes.

The summary holds the study's provenance and grid, headline answers (reach, required parameter values, the best
option of each categorical dim, bottlenecks, options meeting a demand, distance to the PLOB bound; for networks
the cheapest design, per-demand KPIs and the links), the figures and the resolved config. What it shows follows
from the cube's dims and variables, so it works for fibre, satellite (fixed elevations or passes), trusted-node and
network cubes alike. ``report.html`` is self-contained: the figures inline as ``data:`` URIs, the CSS inline, no
script, and a Content-Security-Policy that lets the browser load nothing else.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from qkdjax import __version__, analysis, plots
from qkdjax.montecarlo.estimates import Z_95
from qkdjax.units import units_of

MAX_ROWS = 24
MAIN_ROLES = ("distance", "elevation", "option", "demand")  # the dim a decision is read along, in this order


def grid_dims(cube: xr.Dataset) -> list[Hashable]:
    """The cube's swept dims with at least two values (not the per-point ``quantile``/``trial`` dims, nor a
    network's links, sites and demands)."""
    return [d for d in cube.dims if d not in (*plots.PER_POINT_DIMS, *plots.NETWORK_DIMS) and cube.sizes[d] > 1]


def numeric_dims(cube: xr.Dataset) -> list[Hashable]:
    return [d for d in grid_dims(cube) if np.issubdtype(cube[d].dtype, np.number)]


def categorical_dims(cube: xr.Dataset) -> list[Hashable]:
    return [d for d in grid_dims(cube) if not np.issubdtype(cube[d].dtype, np.number)]


def role_dims(cube: xr.Dataset, role: str) -> list[Hashable]:
    """The swept numeric dims with ``role`` (``qkdjax.analysis.with_role``)."""
    return [d for d in analysis.with_role(cube, role) if d in numeric_dims(cube)]


def role_variables(cube: xr.Dataset, role: str) -> list[Hashable]:
    return [v for v in analysis.with_role(cube, role) if v in cube.data_vars]


def main_dim(cube: xr.Dataset) -> Hashable | None:
    """The dim a decision is read along: a distance, elevation, option (node count, paths) or demand, else the
    first numeric dim."""
    dims = numeric_dims(cube)
    return next((d for role in MAIN_ROLES for d in role_dims(cube, role)), dims[0] if dims else None)


def _format(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def _cell(value) -> str:
    """``value`` formatted for a Markdown table cell: one line, with ``|``, ``*``, backquote and backslash escaped."""
    return re.sub(r"([\\`*|])", r"\\\1", _format(value).replace("\n", " "))


def thinned(sizes: Mapping[Hashable, int], max_rows: int = MAX_ROWS) -> dict[Hashable, np.ndarray]:
    """Positions to keep along each dim of ``sizes``: the longest dims subsampled (evenly, ends kept) until at most
    ``max_rows`` points are left."""
    keep = {dim: np.arange(size) for dim, size in sizes.items()}
    while keep and (total := math.prod(map(len, keep.values()))) > max_rows:
        dim = max(keep, key=lambda d: len(keep[d]))
        size = len(keep[dim])
        count = max(2, size * max_rows // total) if size > 2 else 1
        keep[dim] = keep[dim][np.unique(np.linspace(0, size - 1, count).round().astype(int))]
    return keep


def thin(data: xr.DataArray, max_rows: int = MAX_ROWS) -> xr.DataArray:
    """``data`` with its longest dims subsampled (evenly, ends kept) until it has at most ``max_rows`` values."""
    return data.isel(thinned(data.sizes, max_rows))


def _varies(values: np.ndarray, axis: int) -> bool:
    first = np.take(values, [0], axis=axis)
    same = (values == first) | (pd.isnull(values) & pd.isnull(first))
    return not same.all()


def drop_constant_dims(data: xr.DataArray) -> xr.DataArray:
    """``data`` without the dims along which neither it nor its non-index coords vary (their first slice)."""
    for dim in list(data.dims):
        arrays = [data, *(data[c] for c in data.coords if c not in data.dims and dim in data[c].dims)]
        if data.ndim > 1 and not any(_varies(a.values, a.get_axis_num(dim)) for a in arrays):
            data = data.isel({dim: 0}, drop=True)
    return data


def markdown_table(data: xr.DataArray, max_rows: int = MAX_ROWS) -> str:
    """A Markdown table of ``data`` (thinned to ``max_rows``): one column per dim, its non-index coords, the value.
    Dims along which nothing varies are left out."""
    data = thin(drop_constant_dims(data), max_rows)
    extra = [c for c in data.coords if c not in data.dims and data[c].dims == data.dims]
    header = [*map(_cell, data.dims), *map(_cell, extra), _cell(f"{data.name} [{units_of(data.attrs, '')}]")]
    rows = []
    for index in np.ndindex(*data.shape):
        point = data[dict(zip(data.dims, index))]
        rows.append([*(_cell(point[d].item()) for d in data.dims), *(_cell(point[c].item()) for c in extra), _cell(point.item())])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def _point_text(point: dict) -> str:
    return ", ".join(f"{k} = {_format(v)}" for k, v in point.items() if k != "value")


def best_design(cube: xr.Dataset) -> Iterator[str]:
    """The grid point with the highest key rate (and key supply per year, for satellite passes)."""
    for variable in ("key_rate", *role_variables(cube, "supply")):
        if variable in cube:
            best = analysis.best_point(drop_constant_dims(cube[variable]))
            units = units_of(cube[variable].attrs, "")
            yield f"- Highest {variable}: **{_format(best['value'])} {units}** at {_point_text(best) or 'the only point'}."


def goal_answers(target: float, answer, heading, body) -> Iterator[str]:
    """An answer (``answer(rate)``: a DataArray) for the key-rate target and for any positive key, under
    ``heading(goal, result)``, with ``body(result)`` its lines; the second only where it differs from the first."""
    shown = None
    for goal, value in ((f"key rate >= {target:g} bit/s", target), ("any positive key", np.finfo(float).tiny)):
        result = answer(value)
        yield heading(goal, result)
        if shown is not None and result.equals(shown):
            yield "The same: the key rate is still above the target where the key ends."
            continue
        yield from body(result)
        shown = result


def reach_answers(cube: xr.Dataset, target: float) -> Iterator[str]:
    """Maximal reach along the distance dim: for the key-rate target and for any positive key."""
    dim = next(iter(role_dims(cube, "distance")), None)
    if dim is None or "key_rate" not in cube:
        return

    def body(result):
        yield f"Range over the other dims: {_format(float(result.min()))} - {_format(float(result.max()))} {units_of(result.attrs)}."
        yield "`at_grid_edge`: met up to the grid's end (the true reach may be longer).\n"
        yield markdown_table(result)

    yield from goal_answers(
        target, lambda rate: analysis.reach(cube, rate, dim), lambda goal, _: f"\n### Maximal reach ({dim}) for {goal}\n", body
    )


def required_answers(cube: xr.Dataset, target: float) -> Iterator[str]:
    """The value of each swept parameter the key-rate target needs (its smallest value, or largest tolerable)."""
    if "key_rate" not in cube:
        return
    skip = {*role_dims(cube, "distance"), *role_dims(cube, "demand"), *role_dims(cube, "interference")}  # these have their own
    for dim in numeric_dims(cube):
        if dim in skip or dim not in drop_constant_dims(cube.key_rate).dims:
            continue  # distances have their reach; the key rate does not depend on demand
        result = analysis.required_value(cube, target, dim)
        yield f"\n### Required {dim} for key rate >= {target:g} bit/s\n"
        yield "The smallest value meeting the target where the rate grows with it, the largest where it falls; n/a: no value on the grid meets it.\n"
        yield markdown_table(result)


def tolerance_answers(cube: xr.Dataset, target: float) -> Iterator[str]:
    """How much interference (classical launch power in a lit fibre: role ``interference``) each design tolerates:
    the largest value on the grid still reaching the target, and still making key, with the most tolerant design."""
    if "key_rate" not in cube:
        return

    def body(result):
        yield "n/a: no value on the grid reaches it; `at_grid_edge`: tolerated up to the grid's end (perhaps beyond).\n"
        yield markdown_table(result, max_rows=4 * MAX_ROWS) if "design" not in result.dims else design_columns(result)

    for dim in role_dims(cube, "interference"):
        if dim in drop_constant_dims(cube.key_rate).dims:
            yield from goal_answers(
                target,
                lambda rate, dim=dim: analysis.required_value(cube, rate, dim, side="max"),
                lambda goal, result, dim=dim: f"\n### Largest {dim} tolerated for {goal} ({units_of(result.attrs)})\n",
                body,
            )


def design_columns(result: xr.DataArray) -> str:
    """A Markdown table of ``result`` with one column per design (``>=`` where the answer is the grid's edge) and
    the designs with the largest value at each point."""
    values = result.drop_vars("at_grid_edge").to_series().unstack("design")
    edges = result.at_grid_edge.broadcast_like(result).to_series().unstack("design")
    designs = list(values.columns)
    keys = [str(name) for name in values.index.names]
    lines = ["| " + " | ".join(map(_cell, [*keys, *designs, "most tolerant"])) + " |", "|" + "---|" * (len(keys) + len(designs) + 1)]
    for index, row in values.iterrows():
        labels = [_cell(v) for v in np.atleast_1d(index)]
        cells = [("n/a" if not np.isfinite(row[d]) else (">= " if edges.loc[index, d] else "") + _format(row[d])) for d in designs]
        best = ", ".join(d for d in designs if np.isfinite(row.max()) and row[d] == row.max()) or "n/a"
        lines.append("| " + " | ".join([*labels, *map(_cell, cells), _cell(best)]) + " |")
    return "\n".join(lines)


def option_answers(cube: xr.Dataset) -> Iterator[str]:
    """For each categorical dim: how often each option is best, and by what median factor over the runner-up."""
    for dim in categorical_dims(cube):
        if "key_rate" not in cube:
            return
        if dim not in cube.key_rate.dims:
            continue  # e.g. the designs of a network design study: their own variables
        present = [o for o in cube[dim].values if np.isfinite(cube.key_rate.sel({dim: o}).values).any()]
        if len(present) < 2:  # e.g. designs of which only one has a key rate (the others: a key supply)
            continue
        result = analysis.compare_options(cube.sel({dim: present}), dim)
        yield f"\n### Best {dim} (highest key rate)\n"
        best = result.best.values.ravel()
        advantage = result.advantage.values.ravel()
        for option in present:
            mine = advantage[(best == option) & np.isfinite(advantage)]
            share = np.mean(best == option)
            factor = f", median advantage x{np.median(mine):.3g} over the runner-up" if mine.size else ""
            yield f"- {option}: best at {share:.0%} of the points{factor}."


def bottleneck_answers(cube: xr.Dataset) -> Iterator[str]:
    """Chains: which hop limits the key and its loss. Satellite links: the dominant term of the loss budget."""
    for hop, loss in zip(role_variables(cube, "bottleneck"), role_variables(cube, "bottleneck_loss")):
        yield "\n### Bottleneck hop (the slowest hop limits the end-to-end key)\n"
        yield markdown_table(cube[loss].assign_coords({hop: cube[hop]}))
    terms = role_variables(cube, "loss_term")
    if terms:
        dominant = xr.concat([cube[t] for t in terms], dim="term").argmax("term")
        names = np.asarray(terms)[dominant.values]
        yield "\n### Dominant loss term\n"
        for name in terms:
            yield f"- {name}: largest at {np.mean(names == name):.0%} of the points."


def availability_answers(cube: xr.Dataset, probability: float) -> Iterator[str]:
    """Availability cubes: the smallest option (trusted nodes, paths) and the largest demand met with ``probability``."""
    if not role_variables(cube, "demand_met"):
        return
    for dim in role_dims(cube, "option"):
        yield f"\n### Smallest {dim} meeting the demand with probability >= {probability:g}\n"
        yield markdown_table(analysis.smallest_option_meeting_demand(cube, probability, dim))
    if role_dims(cube, "demand"):
        yield f"\n### Largest demand met with probability >= {probability:g}\n"
        yield markdown_table(analysis.largest_demand_met(cube, probability))


def design_answers(cube: xr.Dataset, target: float, probability: float) -> Iterator[str]:
    """Comparisons of key-relay designs (``compare``): per demand and detector, the design meeting it with the
    fewest trusted nodes (``qkdjax.analysis.least_trust_design``), and what each design trusts."""
    if "design" not in categorical_dims(cube) or not role_variables(cube, "trusted_nodes"):
        return
    supply = role_variables(cube, "supply")
    if supply and not role_variables(cube, "demand_met"):
        yield from supply_design_answers(cube, supply[0])
        return
    choice = analysis.least_trust_design(cube, probability=probability, target=target)
    yield f"\n### Which design: the {choice.best.attrs['long_name']}\n"
    yield (
        "Trusted nodes are sites whose staff and security the key depends on; an untrusted relay (the middle station "
        "of twin-field or MDI QKD) can be run by anyone and learns nothing. A tie in trusted nodes goes to the higher "
        "key rate.\n"
    )
    best = choice.best.values.ravel()
    for design in cube.design.values:
        share = np.mean(best == design)
        if share:
            yield f"- **{design}** is the answer at {share:.0%} of the points."
    if (best == "none").any():
        yield f"- No design meets it at {np.mean(best == 'none'):.0%} of the points."
    yield ""
    shown = choice.key_rate.assign_coords(best=choice.best, trusted_nodes=choice.trusted_nodes, untrusted_relays=choice.untrusted_relays)
    yield markdown_table(shown.rename("key_rate"), max_rows=4 * MAX_ROWS)
    yield "\nFewest trusted nodes each design needs (n/a: none on the grid suffices):\n"
    yield markdown_table(choice.trusted_nodes_needed.rename("trusted_nodes_needed"), max_rows=4 * MAX_ROWS)


def supply_design_answers(cube: xr.Dataset, supply: Hashable) -> Iterator[str]:
    """Designs compared by their key supply (satellites: key per year), with what each trusts."""
    units = units_of(cube[supply].attrs, "")
    result = analysis.compare_options(cube, "design", variable=supply)
    best = result.best.values.ravel()
    yield f"\n### Which design gives more key: {supply} [{units}], and what each trusts\n"
    nodes, relays = role_variables(cube, "trusted_nodes")[0], role_variables(cube, "untrusted_relays")
    for design in cube.design.values:
        one = cube.sel(design=design)
        trusted = int(np.nanmax(one[nodes].values))
        untrusted = int(np.nanmax(one[relays[0]].values)) if relays else 0
        share = np.mean(best == design)
        values = one[supply].values
        yield (
            f"- **{design}**: {_format(np.nanmin(values))} - {_format(np.nanmax(values))} {units}, trusting {trusted} node(s)"
            f" ({untrusted} untrusted); the most key at {share:.0%} of the points."
        )
    advantage = result.advantage.values.ravel()
    finite = advantage[np.isfinite(advantage)]
    if finite.size:
        yield f"- The better design gives x{np.median(finite):.3g} (median over the points) the other's key."
    yield ""
    yield markdown_table(cube[supply].assign_coords({str(nodes): cube[nodes]}), max_rows=4 * MAX_ROWS)


def interval_text(cube: xr.Dataset, name: Hashable) -> xr.DataArray:
    """Monte Carlo estimate ``name`` as text with its 95 % interval, ``value [low, high]``: the Wilson interval
    ``name_ci_low``, ``name_ci_high`` of a probability, ``value -+ 1.96 name_stderr`` of a mean."""
    value = cube[name]
    if f"{name}_ci_low" in cube:
        low, high = cube[f"{name}_ci_low"], cube[f"{name}_ci_high"]
    else:
        low, high = value - Z_95 * cube[f"{name}_stderr"], value + Z_95 * cube[f"{name}_stderr"]
    text = np.vectorize(lambda v, lo, hi: f"{_format(v)} [{_format(lo)}, {_format(hi)}]", otypes=[object])
    return value.copy(data=text(value.values, low.transpose(*value.dims).values, high.transpose(*value.dims).values))


def estimate_answers(cube: xr.Dataset) -> Iterator[str]:
    """Every Monte Carlo probability and mean with its 95 % interval."""
    names = [n for n in cube.data_vars if f"{n}_ci_low" in cube or f"{n}_stderr" in cube]
    if names:
        yield "\n### Monte Carlo estimates with 95 % intervals\n"
        yield "Probabilities with their Wilson score interval, means with +- 1.96 standard errors.\n"
    for name in names:
        yield markdown_table(interval_text(cube, name)) + "\n"


def optimum_answers(cube: xr.Dataset) -> Iterator[str]:
    """Cubes of optimised studies: the optimal parameters' ranges, the gain over the configured ones, convergence;
    and the answers of the inverse questions (``min.*``/``max.*``) the study solved at every point."""
    optimised = [name for name in cube.data_vars if str(name).startswith("opt.") and str(name).count(".") > 1]
    if optimised:
        yield "\n### Optimised protocol parameters (range over the points with key)\n"
        keyed = cube.key_rate > 0
        for name in optimised:
            values = cube[name].where(keyed).values
            values = values[np.isfinite(values)]
            if values.size:
                units = units_of(cube[name].attrs)
                yield f"- {name[4:]}: {values.min():.4g} - {values.max():.4g}{'' if units == '1' else ' ' + units}"
        gain = (cube.key_rate / cube["opt.initial_key_rate"]).where(cube["opt.initial_key_rate"] > 0).values
        gain = gain[np.isfinite(gain)]
        if gain.size:
            yield f"- Key rate / with the configured parameters: median x{np.median(gain):.3g}, max x{gain.max():.3g}."
        yield f"- Converged at {float(cube['opt.converged'].where(keyed).mean()):.1%} of the points with key."
    for name in (n for n in cube.data_vars if str(n).startswith(("min.", "max."))):
        yield f"\n### {cube[name].attrs.get('long_name', name)} ({name}, solved per point)\n"
        yield markdown_table(drop_constant_dims(cube[name]))


def plob_answers(cube: xr.Dataset) -> Iterator[str]:
    """How close the designs come to the PLOB repeaterless bound where they make key."""
    if not role_variables(cube, "bound") or not role_variables(cube, "rate_per_pulse"):
        return
    fraction = analysis.plob_fraction(cube).where(cube[role_variables(cube, "rate_per_pulse")[0]] > 0).values
    fraction = fraction[np.isfinite(fraction)]
    if fraction.size:
        yield f"\n- Key rate / PLOB bound where there is key: median {np.median(fraction):.3g}, max {fraction.max():.3g}."
    bound = role_variables(cube, "bound")[0]
    try:
        passes = analysis.crossing(cube, role_variables(cube, "rate_per_pulse")[0], bound)
    except ValueError:  # no distance dim
        return
    if np.isfinite(passes.values).any():
        yield f"\n### The key rate passes {bound} ({cube[bound].attrs.get('long_name', bound)}) beyond ({passes.attrs['units']})\n"
        yield markdown_table(drop_constant_dims(passes.drop_vars("at_grid_edge")))


def columns_table(columns: Mapping[str, xr.DataArray], last: Hashable, max_rows: int = 4 * MAX_ROWS) -> str:
    """A Markdown table with one column per entry of ``columns`` (header: the key; DataArrays broadcast against
    each other) and one row per point of their dims, ``last`` (e.g. ``demand``, where the columns have it) varying
    fastest and shown in full; the other dims are left out where no column varies along them and thinned to about
    ``max_rows`` rows."""
    arrays = xr.broadcast(*(a.reset_coords(drop=True) for a in columns.values()))
    grid = [d for d in arrays[0].dims if d != last]
    arrays = [a.transpose(*grid, ...) for a in arrays]
    for dim in list(grid):
        if not any(_varies(a.values, a.get_axis_num(dim)) for a in arrays):
            arrays = [a.isel({dim: 0}, drop=True) for a in arrays]
            grid.remove(dim)
    picks = thinned({d: arrays[0].sizes[d] for d in grid}, max(1, max_rows // arrays[0].sizes.get(last, 1)))
    arrays = [a.isel(picks) for a in arrays]
    labels = [arrays[0][d].values for d in arrays[0].dims]
    lines = ["| " + " | ".join(map(_cell, [*arrays[0].dims, *columns])) + " |", "|" + "---|" * (arrays[0].ndim + len(columns))]
    for index in np.ndindex(*arrays[0].shape):
        cells = [*(values[i] for values, i in zip(labels, index)), *(a.values[index] for a in arrays)]
        lines.append("| " + " | ".join(map(_cell, cells)) + " |")
    return "\n".join(lines)


def _units_text(attrs: Mapping) -> str:
    """The unit of a variable for a header: its currency (``EUR``, for costs of units ``1``) and/or ``units``."""
    units = units_of(attrs, "1")
    currency = str(attrs.get("currency", ""))
    return " ".join(part for part in (currency, "" if units == "1" else units) if part)


def _with_interval(cube: xr.Dataset, name: str) -> xr.DataArray:
    """``cube[name]``, as ``value [low, high]`` text where the cube has its 95 % interval."""
    return interval_text(cube, name) if f"{name}_ci_low" in cube or f"{name}_stderr" in cube else cube[name]


# (variable, header) of the per-demand KPI table of a network, in its order; "key / demand" and "key served" are derived
KPIS = (
    ("availability", "uptime"),
    ("mean_outage_h", "MTTR"),
    ("key_rate", "key rate"),
    ("demand_bps", "demand"),
    ("demand_met_probability", "P(demand met)"),
    ("protected_fraction", "QKD-protected"),
    ("cost_per_year", "cost / year"),
    ("cost_per_protected_link", "cost / protected link"),
    ("cost_per_key_bit", "cost / key bit"),
)
KPI_NOTES = (
    "uptime: `availability` of the end-to-end service; MTTR: `mean_outage_h`, the observed mean time to repair; key "
    "served: 1 - `unserved_fraction_mean`; QKD-protected: `protected_fraction`, the share of key exchanges protected "
    "by QKD key; [low, high]: 95 % interval."
)


def kpi_columns(cube: xr.Dataset) -> dict[str, xr.DataArray]:
    """The KPI table's columns (header: DataArray) for the KPI variables the cube has."""
    columns = {}
    for name, label in KPIS:
        if name in cube:
            units = _units_text(cube[name].attrs)
            columns[f"{label} [{units}]" if units else label] = _with_interval(cube, name)
        if name == "demand_bps" and "key_rate" in cube and name in cube:
            columns["key / demand"] = cube.key_rate / cube.demand_bps
        if name == "demand_met_probability" and "unserved_fraction_mean" in cube:
            columns["key served"] = 1 - cube.unserved_fraction_mean
    return columns


def design_view(cube: xr.Dataset) -> xr.Dataset | None:
    """The variables of the designs a network design study compared (``design_*``), without the prefix (with the
    cube's ``demand_bps``), or None."""
    names = [v for v in cube.data_vars if str(v).startswith("design_")]
    if not names:
        return None
    view = cube[names].rename({v: str(v).removeprefix("design_") for v in names})
    return view.assign(demand_bps=cube.demand_bps) if "demand_bps" in cube and "demand_bps" not in view else view


def network_answers(cube: xr.Dataset) -> Iterator[str]:
    """Network cubes: the cheapest design (``design_winner``/``design_runner_up`` attrs), the sites, KPIs per demand
    (and per design of a design study: ``design_*`` variables) and the links with the demands they bottleneck."""
    yield from cheapest_design_answers(cube)
    if not plots.is_network(cube):
        return
    kinds = cube.site_kind.values.astype(str)
    counts = ", ".join(plots.sites_text(k, np.sum(kinds == k)) for k in dict.fromkeys(kinds))
    demands = cube.sizes.get("demand", 0)
    yield f"\n### Sites, links and demands\n\n- {cube.sizes['site']} sites ({counts}), {cube.sizes['network_link']} links, {demands} demand(s)."
    designs = design_view(cube)
    columns = kpi_columns(cube) if "demand" in cube.dims else {}
    if columns:
        yield f"\n### Key performance per demand{' (every candidate link and site built)' if designs is not None else ''}\n"
        yield KPI_NOTES + "\n"
        yield columns_table(columns, "demand") + "\n"
    columns = kpi_columns(designs) if designs is not None and "demand" in designs.dims else {}
    if columns:
        yield "\n### Key performance of each design\n"
        yield columns_table(columns, "demand") + "\n"
    rate = plots.link_rate_variable(cube)
    links = {"site a": cube.link_site_a, "site b": cube.link_site_b, f"{rate} [{units_of(cube[rate].attrs, '')}]": cube[rate]}
    if "link_availability" in cube:
        links["link_availability"] = _with_interval(cube, "link_availability")
    if "min_cut_link" in cube and "demand" in cube.min_cut_link.dims:
        flags = cube.min_cut_link.transpose(..., "demand")
        names = cube.demand.values.astype(str)
        text = [", ".join(names[row > 0.5]) or "-" for row in flags.values.reshape(-1, len(names))]
        links["in the minimum cut of"] = flags.isel(demand=0, drop=True).copy(data=np.array(text, dtype=object).reshape(flags.shape[:-1]))
    yield "\n### Links\n"
    yield "A link in a demand's minimum cut is a bottleneck: the demand's key rate (max-flow) is the capacity of that cut.\n"
    yield columns_table(links, "network_link") + "\n"


DESIGNS = (("design_winner", "cheapest"), ("design_runner_up", "runner-up"))


def _money(value) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) and abs(value) >= 100 else _format(value)


def _currency(cube: xr.Dataset) -> str:
    """The currency of the cube's costs: ``cost_per_year``'s ``currency`` attr, else its unit's numerator (``EUR/year``)."""
    if "cost_per_year" not in cube:
        return ""
    units = units_of(cube.cost_per_year.attrs, "")
    return str(cube.cost_per_year.attrs.get("currency") or ("" if units == "1" else units.split("/")[0]))


def cheapest_design_answers(cube: xr.Dataset) -> Iterator[str]:
    """The cheapest design meeting the demands and its runner-up: attrs ``design_winner``, ``design_runner_up``
    (JSON: annual_cost, spans, sites, demand_met_probability, ci_low, ci_high)."""
    if "design_winner" not in cube.attrs:
        return
    designs = []
    for attr, label in DESIGNS:
        try:
            design = json.loads(cube.attrs.get(attr) or "null")
        except (TypeError, json.JSONDecodeError) as error:
            yield f"\n- The cube's {attr} attr is not JSON ({error}): left out."
            continue
        if isinstance(design, dict):
            designs.append((label, design))
    if not designs:
        return
    currency = _currency(cube)
    worst = ["worst_demand"] if any("worst_demand" in design for _, design in designs) else []  # whose probability it is
    header = [
        "design",
        f"annual cost{f' [{currency}]' if currency else ''}",
        "spans (A-B:option)",
        "sites opened",
        "P(demand met) [95 % CI]",
    ]
    yield "\n### Cheapest design\n"
    yield "| " + " | ".join(map(_cell, header + [k.replace("_", " ") for k in worst])) + " |"
    yield "|" + "---|" * (len(header) + len(worst))
    for label, design in designs:
        p, low, high = (design.get(k) for k in ("demand_met_probability", "ci_low", "ci_high"))
        spans, sites = (", ".join(map(str, design.get(k) or [])) or "-" for k in ("spans", "sites"))
        cells = [label, _money(design.get("annual_cost")), spans, sites, f"{_format(p)} [{_format(low)}, {_format(high)}]"]
        yield "| " + " | ".join(map(_cell, cells + [design.get(k) for k in worst])) + " |"
    costs = [design.get("annual_cost") for _, design in designs]
    if len(costs) == 2 and all(isinstance(c, (int, float)) for c in costs) and costs[0] > 0:
        extra = _money(costs[1] - costs[0]) + (f" {currency}" if currency else "")
        yield f"\nThe runner-up costs {extra} more per year ({costs[1] / costs[0] - 1:+.1%})."


Figures = list[tuple[str, Callable[[], object], str]]


def network_figures(cube: xr.Dataset) -> Figures:
    """The network figure, at the first grid point, for network cubes; then, for a network design study, one per
    design (``network_design`` order: the cheapest, the runner-up, ...) with only the links and sites it builds."""
    if not plots.is_network(cube):
        return []
    _, fixed = plots.network_point(cube)
    at = f" at the first grid point ({fixed})" if fixed else ""
    caption = (
        f"Sites and links{at}: sites by kind, links coloured by log10 key rate"
        + ("; red halo: links in a demand's minimum cut (its bottleneck)" if "min_cut_link" in cube else "")
        + ("; dashed: the links that fail most" if "link_availability" in cube else "")
    )
    figures: Figures = [("sites_and_links.png", lambda: plots.network_figure(cube), caption)]
    names: set[str] = set()
    for design in plots.design_names(cube):
        point, _ = plots.design_point(cube, design)
        built = int((point.design_built > 0.5).sum())
        sites = f", the {int((point.design_opened > 0.5).sum())} sites it has" if "design_opened" in point else ""
        caption = (
            f"Design {design}{at}: the {built} links it builds (of {cube.sizes['network_link']} candidates){sites}, "
            "coloured by log10 key rate; faint grey: the candidates it leaves out"
            + ("; dashed: the links of the design that fail most" if "link_availability" in cube else "")
        )
        name = "design_" + (re.sub(r"[^\w-]+", "_", design).strip("_") or "unnamed")
        name = name if name not in names else f"{name}_{len(names)}"
        names.add(name)
        figures.append((f"{name}.png", lambda d=design: plots.design_figure(cube, d), caption))
    return figures


def choose_figures(cube: xr.Dataset, target: float, probability: float) -> Figures:
    """(file name, function drawing the figure, caption) for the figures that suit the cube's dims and variables."""
    dim, numeric = main_dim(cube), numeric_dims(cube)
    figures: Figures = network_figures(cube)
    if dim is None:
        options = [d for d in categorical_dims(cube) if "key_rate" in cube and d in cube.key_rate.dims]
        if options:
            figures.append(("options.png", lambda: plots.options_bar(cube, options[0]), f"Key rate of each {options[0]}"))
        return figures
    per_pass, demand_met = role_variables(cube, "per_pass"), role_variables(cube, "demand_met")
    if "key_rate" in cube and dim in cube.key_rate.dims and not per_pass + demand_met:  # those have their own
        name = "rate_vs_distance.png" if dim in role_dims(cube, "distance") else "key_rate.png"
        figures.append((name, lambda: plots.rate_vs_distance(cube, dim), f"Key rate vs {dim} (PLOB bound dashed)"))
    heat = demand_met[0] if demand_met else "key_rate"
    others = [d for d in numeric if d != dim and heat in cube and d in cube[heat].dims]
    if others and dim in cube[heat].dims:
        level = probability if demand_met else target
        y = max(others, key=cube.sizes.get)
        draw = lambda: plots.heatmap(cube, dim, y, heat, level, log=not demand_met)
        figures.append((f"heatmap_{heat}.png", draw, f"{heat} over {dim} and {y}, contour at {level:g}"))
    if per_pass:
        figures.append(("pass_curves.png", lambda: plots.pass_curves(cube, dim), "Secret key per pass vs maximum elevation"))
    for name in (str(v)[: -len("_quantile")] for v in cube.data_vars if str(v).endswith("_quantile")):
        if name in cube and name not in per_pass:  # a pass's key has its pass curves
            figures.append(
                (f"{name}_quantiles.png", lambda n=name: plots.quantile_bands(cube, n, dim), f"Monte Carlo {name} quantile bands")
            )
    if demand_met and role_dims(cube, "demand"):
        figures.append(
            ("availability.png", lambda: plots.availability_vs_demand(cube, probability=probability), "Probability of meeting the demand")
        )
    terms = role_variables(cube, "loss_term") + role_variables(cube, "loss_total")
    if terms:
        figures.append(("loss_budget.png", lambda: plots.variables_vs(cube, terms, dim), "Loss budget"))
    return figures


def _provenance(cube: xr.Dataset, source: str | None) -> list[str]:
    attrs = cube.attrs
    lines = [f"# qkdjax report: {attrs.get('title', source or 'cube')}", ""]
    for label, value in (
        ("Cube", source),
        ("Rerun", attrs.get("rerun")),
        ("Created", attrs.get("created")),
        ("qkdjax", attrs.get("qkdjax_version")),
    ):
        if value:
            lines.append(f"- {label}: `{value}`")
    lines += ["", "## Grid", "", "| dim | values | range | units |", "|---|---|---|---|"]
    structure = plots.NETWORK_DIMS if plots.is_network(cube) else ()  # listed in the network's own tables
    for dim in (d for d in cube.dims if d not in structure):
        values = cube[dim].values
        span = (
            f"{_format(values.min())} - {_format(values.max())}" if np.issubdtype(values.dtype, np.number) else ", ".join(map(str, values))
        )
        lines.append("| " + " | ".join(map(_cell, (dim, len(values), span, units_of(cube[dim].attrs, "")))) + " |")
    return lines


def summary_lines(cube: xr.Dataset, target: float, probability: float) -> list[str]:
    """The headline answers of the report, as Markdown lines."""
    lines = ["", "## Headline answers", "", f"Key-rate target: {target:g} bit/s; demand probability: {probability:g}.", ""]
    for answers in (
        network_answers(cube), design_answers(cube, target, probability), best_design(cube), plob_answers(cube), optimum_answers(cube), reach_answers(cube, target), tolerance_answers(cube, target), required_answers(cube, target),
        option_answers(cube), bottleneck_answers(cube), availability_answers(cube, probability), estimate_answers(cube),
    ):  # fmt: skip
        lines.extend(answers)
    return lines


# --- HTML: our Markdown subset, converted by a small converter (every text escaped; no raw HTML passes through) ------
FENCE = re.compile(r"^\s*(`{3,})\s*([\w+-]*)\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
LIST_ITEM = re.compile(r"^\s*[-*]\s+(.*)$")
TABLE_RULE = re.compile(r"^\s*\|(\s*:?-+:?\s*\|)+\s*$")
IMAGE_ONLY = re.compile(r"!\[[^\]]*\]\([^)\s]+\)")
EMPHASIS_ONLY = re.compile(r"\*(?!\*)(?!\s)([^*]+)(?<!\s)\*")
INLINE = re.compile(
    r"`(?P<code>[^`]+)`"
    r"|!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)"
    r"|\*\*(?P<strong>(?!\s).+?(?<!\s))\*\*"
    r"|\*(?P<em>(?!\s)[^*]+?(?<!\s))\*"
    r"|\\(?P<escaped>[\\`*_|\[\]()!#<>-])"
)


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def inline_html(text: str, image_src: Callable[[str], str] = str) -> str:
    """HTML of one line of Markdown: `` `code` ``, ``![alt](path)`` (``src``: ``image_src(path)``), ``**strong**``,
    ``*emphasis*`` and backslash escapes; everything else escaped."""
    out, at = [], 0
    for match in INLINE.finditer(text):
        out.append(_escape(text[at : match.start()]))
        at = match.end()
        if match["code"] is not None:
            out.append(f"<code>{_escape(match['code'])}</code>")
        elif match["src"] is not None:
            out.append(f'<img src="{_escape(image_src(match["src"]))}" alt="{_escape(match["alt"])}">')
        elif match["strong"] is not None:
            out.append(f"<strong>{inline_html(match['strong'], image_src)}</strong>")
        elif match["em"] is not None:
            out.append(f"<em>{inline_html(match['em'], image_src)}</em>")
        else:
            out.append(_escape(match["escaped"]))
    return "".join(out) + _escape(text[at:])


def _table_cells(row: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def _html_table(rows: Sequence[str], image_src: Callable[[str], str]) -> str:
    """A pipe table: header, rule (``:---``, ``---:``, ``:---:`` align left, right, centre), body rows (padded or
    cut to the header's width)."""
    header, rule = _table_cells(rows[0]), _table_cells(rows[1])
    align = [
        "center" if r.startswith(":") and r.endswith(":") else "right" if r.endswith(":") else "left" if r.startswith(":") else ""
        for r in rule
    ] + [""] * len(header)
    style = [f' style="text-align:{a}"' if a else "" for a in align]

    def row(cells: list[str], tag: str) -> str:
        cells = (cells + [""] * len(header))[: len(header)]
        return "<tr>" + "".join(f"<{tag}{style[i]}>{inline_html(c, image_src)}</{tag}>" for i, c in enumerate(cells)) + "</tr>"

    body = "\n".join(row(_table_cells(r), "td") for r in rows[2:])
    return f"<table>\n<thead>\n{row(header, 'th')}\n</thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _table_starts(lines: Sequence[str], i: int) -> bool:
    return lines[i].lstrip().startswith("|") and i + 1 < len(lines) and bool(TABLE_RULE.match(lines[i + 1]))


def _block_starts(lines: Sequence[str], i: int) -> bool:
    return bool(FENCE.match(lines[i]) or HEADING.match(lines[i]) or LIST_ITEM.match(lines[i])) or _table_starts(lines, i)


def markdown_to_html(text: str, image_src: Callable[[str], str] = str) -> str:
    """HTML of the Markdown subset our summaries use: ATX headings, paragraphs, ``-`` lists (one line per item,
    indented lines continue it), pipe tables (``\\|`` for a ``|`` in a cell), fenced code blocks and the inline
    forms of ``inline_html``. All text is escaped: raw HTML in the Markdown shows as text. An image alone in a
    paragraph is a ``<figure>``, captioned by the next paragraph where that is all emphasis (``*caption*``)."""
    lines = text.splitlines()
    blocks: list[str | tuple[str, str]] = []  # ("p", text): paragraphs, rendered once the figures are found
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif fence := FENCE.match(line):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence[1]), len(lines))
            language = f' class="language-{_escape(fence[2])}"' if fence[2] else ""
            blocks.append(f"<pre><code{language}>{_escape(chr(10).join(lines[i + 1 : end]))}</code></pre>")
            i = end + 1
        elif heading := HEADING.match(line):
            level = len(heading[1])
            blocks.append(f"<h{level}>{inline_html(heading[2], image_src)}</h{level}>")
            i += 1
        elif _table_starts(lines, i):
            end = i + 2
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            blocks.append(_html_table(lines[i:end], image_src))
            i = end
        elif item := LIST_ITEM.match(line):
            items = [item[1]]
            i += 1
            while i < len(lines) and lines[i].strip():
                if item := LIST_ITEM.match(lines[i]):
                    items.append(item[1])
                elif lines[i].startswith((" ", "\t")):
                    items[-1] += " " + lines[i].strip()
                else:
                    break
                i += 1
            blocks.append("<ul>\n" + "\n".join(f"<li>{inline_html(t, image_src)}</li>" for t in items) + "\n</ul>")
        else:
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() and not _block_starts(lines, i):
                i += 1
            blocks.append(("p", " ".join(part.strip() for part in lines[start:i])))
    out = []
    for k, block in enumerate(blocks):
        if isinstance(block, str):
            out.append(block)
        elif IMAGE_ONLY.fullmatch(block[1]):
            following = blocks[k + 1] if k + 1 < len(blocks) else None
            caption = EMPHASIS_ONLY.fullmatch(following[1]) if isinstance(following, tuple) else None
            if caption:
                blocks[k + 1] = ""  # taken as this figure's caption
            figcaption = f"\n<figcaption>{inline_html(caption[1], image_src)}</figcaption>" if caption else ""
            out.append(f"<figure>\n{inline_html(block[1], image_src)}{figcaption}\n</figure>")
        else:
            out.append(f"<p>{inline_html(block[1], image_src)}</p>")
    return "\n".join(b for b in out if b) + "\n"


CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; background: #fff; margin: 0; }
main { max-width: 66rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #d0d7de; padding: .2rem .55rem; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
th { background: #f6f8fa; }
tbody tr:nth-child(even) { background: #f9fafb; }
code { font: .85em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f6f8fa; padding: .1em .3em; border-radius: 3px; }
pre { background: #f6f8fa; padding: .8rem 1rem; overflow-x: auto; border-radius: 4px; line-height: 1.35; }
pre code { padding: 0; background: none; }
figure { margin: 1.2rem 0; }
img { max-width: 100%; height: auto; }
figcaption { font-style: italic; color: #59636e; font-size: .9rem; }
@media print { table { display: table; } pre { white-space: pre-wrap; } }
"""
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"  # the page loads nothing from outside itself


def html_page(body: str, title: str) -> str:
    """A complete HTML5 page around ``body``: inline CSS, no script, a policy forbidding anything not inline."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="qkdjax {_escape(__version__)}">
<title>{_escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
{body}</main>
</body>
</html>
"""


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically: a temporary file in the same folder, then a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_report(cube: xr.Dataset, out_dir, *, target: float = 1.0, probability: float = 0.95, source: str | None = None) -> Path:
    """Write the figures (PNG), ``summary.md`` and ``report.html`` (the same, self-contained: figures inline) of
    ``cube`` into ``out_dir``, each file atomically; return the summary's path.

    ``target``: key-rate target (bit/s) for reach, required values and contours; ``probability``: how likely a
    chain must meet its demand. Raises ``ValueError`` for a non-positive target or a probability outside (0, 1].
    """
    analysis.check_positive("target", target)
    analysis.check_probability(probability)
    cube = cube.load()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = _provenance(cube, source) + summary_lines(cube, target, probability) + ["", "## Figures", ""]
    images = {}
    for name, draw, caption in choose_figures(cube, target, probability):
        buffer = BytesIO()
        draw().savefig(buffer, format="png", dpi=100)
        images[name] = buffer.getvalue()
        write_atomic(out / name, images[name])
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += ["## Config", "", "```yaml", cube.attrs.get("config", "(not recorded)").rstrip(), "```", ""]
    markdown = "\n".join(lines)
    body = markdown_to_html(markdown, lambda src: png_data_uri(images[src]) if src in images else src)
    write_atomic(out / "report.html", html_page(body, lines[0].removeprefix("# ")))
    return write_atomic(out / "summary.md", markdown)
