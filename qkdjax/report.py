"""``qkdjax report CUBE --out DIR``: PNG figures and a Markdown summary of any cube qkdjax writes.

The summary holds the study's provenance and grid, headline answers (reach, required parameter values, the best
option of each categorical dim, bottlenecks, options meeting a demand, distance to the PLOB bound), the figures
and the resolved config. What it shows follows from the cube's dims and variables, so it works for fibre,
satellite (fixed elevations or passes) and trusted-node cubes alike.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from qkdjax import analysis, plots
from qkdjax.montecarlo.estimates import Z_95
from qkdjax.units import units_of

MAX_ROWS = 24
MAIN_ROLES = ("distance", "elevation", "option", "demand")  # the dim a decision is read along, in this order


def grid_dims(cube: xr.Dataset) -> list[Hashable]:
    """The cube's swept dims with at least two values (not the per-point ``quantile``/``trial`` dims)."""
    return [d for d in cube.dims if d not in plots.PER_POINT_DIMS and cube.sizes[d] > 1]


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
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def thin(data: xr.DataArray, max_rows: int = MAX_ROWS) -> xr.DataArray:
    """``data`` with its longest dims subsampled (evenly, ends kept) until it has at most ``max_rows`` values."""
    while data.size > max_rows and data.ndim:
        dim = max(data.dims, key=data.sizes.get)
        keep = max(2, data.sizes[dim] * max_rows // data.size) if data.sizes[dim] > 2 else 1
        data = data.isel({dim: np.unique(np.linspace(0, data.sizes[dim] - 1, keep).round().astype(int))})
    return data


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
    header = [*map(str, data.dims), *extra, f"{data.name} [{units_of(data.attrs, '')}]"]
    rows = []
    for index in np.ndindex(*data.shape):
        point = data[dict(zip(data.dims, index))]
        rows.append([*(_format(point[d].item()) for d in data.dims), *(_format(point[c].item()) for c in extra), _format(point.item())])
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
    lines = ["| " + " | ".join([*keys, *designs, "most tolerant"]) + " |", "|" + "---|" * (len(keys) + len(designs) + 1)]
    for index, row in values.iterrows():
        labels = [_format(v) for v in np.atleast_1d(index)]
        cells = [("n/a" if not np.isfinite(row[d]) else (">= " if edges.loc[index, d] else "") + _format(row[d])) for d in designs]
        best = ", ".join(d for d in designs if np.isfinite(row.max()) and row[d] == row.max()) or "n/a"
        lines.append("| " + " | ".join([*labels, *cells, best]) + " |")
    return "\n".join(lines)


def option_answers(cube: xr.Dataset) -> Iterator[str]:
    """For each categorical dim: how often each option is best, and by what median factor over the runner-up."""
    for dim in categorical_dims(cube):
        if "key_rate" not in cube:
            return
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


Figures = list[tuple[str, Callable[[], object], str]]


def choose_figures(cube: xr.Dataset, target: float, probability: float) -> Figures:
    """(file name, function drawing the figure, caption) for the figures that suit the cube's dims and variables."""
    dim, numeric = main_dim(cube), numeric_dims(cube)
    figures: Figures = []
    if dim is None:
        options = categorical_dims(cube)
        if options and "key_rate" in cube:
            figures.append(("options.png", lambda: plots.options_bar(cube, options[0]), f"Key rate of each {options[0]}"))
        return figures
    per_pass, demand_met = role_variables(cube, "per_pass"), role_variables(cube, "demand_met")
    if "key_rate" in cube and not per_pass + demand_met:  # those have their own
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
    for dim in cube.dims:
        values = cube[dim].values
        span = (
            f"{_format(values.min())} - {_format(values.max())}" if np.issubdtype(values.dtype, np.number) else ", ".join(map(str, values))
        )
        lines.append(f"| {dim} | {len(values)} | {span} | {units_of(cube[dim].attrs, '')} |")
    return lines


def summary_lines(cube: xr.Dataset, target: float, probability: float) -> list[str]:
    """The headline answers of the report, as Markdown lines."""
    lines = ["", "## Headline answers", "", f"Key-rate target: {target:g} bit/s; demand probability: {probability:g}.", ""]
    for answers in (
        design_answers(cube, target, probability), best_design(cube), plob_answers(cube), optimum_answers(cube), reach_answers(cube, target), tolerance_answers(cube, target), required_answers(cube, target),
        option_answers(cube), bottleneck_answers(cube), availability_answers(cube, probability), estimate_answers(cube),
    ):  # fmt: skip
        lines.extend(answers)
    return lines


def write_report(cube: xr.Dataset, out_dir, *, target: float = 1.0, probability: float = 0.95, source: str | None = None) -> Path:
    """Write the figures (PNG) and ``summary.md`` of ``cube`` into ``out_dir``; return the summary's path.

    ``target``: key-rate target (bit/s) for reach, required values and contours; ``probability``: how likely a
    chain must meet its demand. Raises ``ValueError`` for a non-positive target or a probability outside (0, 1].
    """
    analysis.check_positive("target", target)
    analysis.check_probability(probability)
    cube = cube.load()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = _provenance(cube, source) + summary_lines(cube, target, probability) + ["", "## Figures", ""]
    for name, draw, caption in choose_figures(cube, target, probability):
        draw().savefig(out / name, dpi=100)
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += ["## Config", "", "```yaml", cube.attrs.get("config", "(not recorded)").rstrip(), "```", ""]
    path = out / "summary.md"
    path.write_text("\n".join(lines))
    return path
