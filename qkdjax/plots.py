"""Figures of result cubes (matplotlib, no pyplot state): key rate vs distance with the PLOB bound, heatmaps with a
target contour, Monte Carlo quantile bands, satellite pass curves, availability vs demand, QKD networks (sites, links
coloured by key rate, bottlenecks and the links that fail most; or the links and sites one design of a network
design study builds).

Each function takes a cube, draws on ``ax`` (or a new figure) and returns the ``Figure``. Axis labels come from
the variables' and coordinates' ``long_name`` and ``units`` attrs. Dims a figure does not show are fixed at their
middle grid value (the median for ``quantile``; the network figure: the first) and named in the title.
"""

from __future__ import annotations

import textwrap
from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from qkdjax import analysis
from qkdjax.units import units_of

PER_POINT_DIMS = ("quantile", "trial")
MAX_LINES = 8


def axis_label(data: xr.DataArray) -> str:
    """``long_name [units]`` of a variable or coordinate (its name when it has no long_name)."""
    name = data.attrs.get("long_name", data.name)
    units = units_of(data.attrs, "")
    return textwrap.fill(f"{name} [{units}]" if units not in (None, "") else str(name), 45)


def value_label(dim: Hashable, value, coord: xr.DataArray) -> str:
    """``dim = value units`` for legends and titles."""
    text = f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)
    units = units_of(coord.attrs, "")
    return f"{dim} = {text} {units}".rstrip() if units != "1" else f"{dim} = {text}"


def _axes(ax) -> tuple[Figure, object]:
    if ax is not None:
        return ax.figure, ax
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    return figure, figure.subplots()


def fix_other_dims(data: xr.DataArray, keep: Sequence[Hashable]) -> tuple[xr.DataArray, str]:
    """``data`` with every dim not in ``keep`` fixed at its middle value (``quantile``: the median), and a text
    naming the values chosen."""
    chosen = {}
    for dim in data.dims:
        if dim in keep:
            continue
        values = data[dim].values
        chosen[dim] = 0.5 if dim == "quantile" and 0.5 in values else values[len(values) // 2]
    fixed = data.sel(chosen)
    return fixed, ", ".join(value_label(d, v, data[d]) for d, v in chosen.items())


def choose_hue(data: xr.DataArray, x: Hashable) -> Hashable | None:
    """A dim to draw as a family of lines: the first non-per-point dim other than ``x`` with 2-8 values."""
    for dim in data.dims:
        if dim != x and dim not in PER_POINT_DIMS and 1 < data.sizes[dim] <= MAX_LINES:
            return dim
    return None


def _family(data: xr.DataArray, x: Hashable, hue: Hashable | None) -> list[tuple[str, xr.DataArray]]:
    """(legend label, 1-D line along ``x``) for each value of ``hue`` (one unlabelled line without a hue)."""
    if hue is None:
        return [("", data)]
    return [(value_label(hue, v, data[hue]), data.sel({hue: v})) for v in data[hue].values]


def _positive(values: np.ndarray) -> np.ndarray:
    """Values for log axes: non-positive and infinite values become NaN (not drawn)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _finish(figure: Figure, ax, data: xr.DataArray, x: Hashable, title: str, fixed: str) -> Figure:
    ax.set_xlabel(axis_label(data[x]))
    ax.set_ylabel(axis_label(data))
    ax.set_title(textwrap.fill(title, 70) + (f"\n{fixed}" if fixed else ""), fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return figure


def _lines(cube: xr.Dataset, variable: str, x: Hashable, hue: Hashable | None, ax, logy: bool, extra_keep=()):
    """Draw ``variable`` along ``x``, one line per ``hue`` value; returns (figure, ax, data, hue, fixed text)."""
    figure, ax = _axes(ax)
    data = cube[variable]
    hue = hue if hue is not None else choose_hue(data, x)
    data, fixed = fix_other_dims(data, [x, *([hue] if hue else []), *extra_keep])
    for label, line in _family(data, x, hue):
        y = _positive(line.values) if logy else line.values
        ax.plot(line[x].values, y, label=label or None)
    if logy:
        ax.set_yscale("log")
    return figure, ax, data, hue, fixed


def rate_vs_distance(
    cube: xr.Dataset, dim: Hashable | None = None, hue: Hashable | None = None, target: float | None = None, ax=None
) -> Figure:
    """Key rate per pulse (bit) vs ``dim`` (default the cube's distance dim) for a family of designs with the
    PLOB bound dashed (when the cube has a ``bound`` variable, e.g. ``plob_bound_per_pulse``; else ``key_rate``
    in bit/s), and the ``target`` (same units) as a dotted line."""
    dim = analysis.role_dim(cube, "distance") if dim is None else dim
    bounds = [v for v in analysis.with_role(cube, "bound") if v in cube.data_vars]
    variable = analysis.role_variable(cube, "rate_per_pulse") if bounds else "key_rate"
    figure, ax, _, hue, fixed = _lines(cube, variable, dim, hue, ax, logy=True)
    if bounds:
        bound, _ = fix_other_dims(cube[bounds[0]], [dim, *([hue] if hue else [])])
        for i, (_, line) in enumerate(_family(bound, dim, hue)):
            ax.plot(line[dim].values, _positive(line.values), "--", color=f"C{i}", lw=0.8, label="PLOB bound" if i == 0 else None)
    if target is not None:
        ax.axhline(target, color="k", ls=":", lw=1, label=f"target {target:g}")
    return _finish(figure, ax, cube[variable], dim, f"{cube[variable].attrs.get('long_name', variable)} vs {dim}", fixed)


def heatmap(
    cube: xr.Dataset, x: Hashable, y: Hashable, variable: str = "key_rate", target: float | None = None, ax=None, log: bool = True
) -> Figure:
    """``variable`` over two numeric dims (log colour scale unless ``log`` is False) with the ``target`` contour
    (units of ``variable``)."""
    figure, ax = _axes(ax)
    data, fixed = fix_other_dims(cube[variable], [x, y])
    z = data.transpose(y, x).values.astype(float)
    shown = _positive(z) if log else np.where(np.isfinite(z), z, np.nan)
    finite = shown[np.isfinite(shown)]
    norm = LogNorm(finite.min(), finite.max()) if log and finite.size and finite.min() < finite.max() else None
    mesh = ax.pcolormesh(data[x].values, data[y].values, shown, norm=norm, shading="nearest")
    figure.colorbar(mesh, ax=ax, label=axis_label(data))
    if target is not None and finite.size and np.nanmin(z) < target < np.nanmax(z) and min(z.shape) > 1:
        contour = ax.contour(data[x].values, data[y].values, z, levels=[target], colors="white", linewidths=1.5)
        ax.clabel(contour, fmt=f"{target:g}", fontsize=7)
    ax.set_ylabel(axis_label(data[y]))
    ax.set_xlabel(axis_label(data[x]))
    ax.set_title(
        f"{data.attrs.get('long_name', variable)}" + (f", target {target:g} contour" if target else "") + (f"\n{fixed}" if fixed else ""),
        fontsize=9,
    )
    return figure


def quantile_bands(cube: xr.Dataset, name: str, dim: Hashable, hue: Hashable | None = None, ax=None, logy: bool = True) -> Figure:
    """Monte Carlo distribution of ``name`` along ``dim``: the mean (``name_mean``, else the median) as lines and
    the band between the lowest and highest quantile of ``name_quantile`` (e.g. 5 % - 95 %), per ``hue``."""
    centre = f"{name}_mean" if f"{name}_mean" in cube else f"{name}_quantile"
    figure, ax, _data, hue, fixed = _lines(cube, centre, dim, hue, ax, logy)
    quantiles, _ = fix_other_dims(cube[f"{name}_quantile"], [dim, "quantile", *([hue] if hue else [])])
    low, high = quantiles["quantile"].values.min(), quantiles["quantile"].values.max()
    for i, (_, band) in enumerate(_family(quantiles, dim, hue)):
        lower, upper = band.sel(quantile=low).values, band.sel(quantile=high).values
        if logy:
            lower, upper = _positive(lower), _positive(upper)
        ax.fill_between(band[dim].values, lower, upper, color=f"C{i}", alpha=0.2, lw=0)
    title = f"{cube[f'{name}_quantile'].attrs.get('long_name', name)}: mean and {low:g}-{high:g} quantile band"
    return _finish(figure, ax, cube[centre], dim, title, fixed)


def pass_curves(cube: xr.Dataset, dim: Hashable | None = None, hue: Hashable | None = None, ax=None) -> Figure:
    """Secret key per pass (bit; the ``per_pass`` variable) vs the pass's maximum elevation (default: the cube's
    elevation dim): the mean-transmittance pass, and with a turbulence Monte Carlo its mean and quantile band."""
    dim = analysis.role_dim(cube, "elevation") if dim is None else dim
    name = analysis.role_variable(cube, "per_pass")
    if f"{name}_quantile" in cube:
        return quantile_bands(cube, name, dim, hue, ax)
    figure, ax, _, _, fixed = _lines(cube, name, dim, hue, ax, logy=True)
    return _finish(figure, ax, cube[name], dim, "secret key per pass", fixed)


def availability_vs_demand(
    cube: xr.Dataset, dim: Hashable | None = None, hue: Hashable | None = None, probability: float | None = None, ax=None
) -> Figure:
    """Probability that the key supply meets the demand (the ``demand_met`` variable) vs the demand (default the
    cube's demand dim; bit/s, log axis), one line per option (``hue``, e.g. ``link.trusted_nodes``), with the
    required ``probability`` dotted."""
    dim = analysis.role_dim(cube, "demand") if dim is None else dim
    name = analysis.role_variable(cube, "demand_met")
    figure, ax, _, _, fixed = _lines(cube, name, dim, hue, ax, logy=False)
    for line in ax.get_lines():
        line.set_marker("o")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    if probability is not None:
        ax.axhline(probability, color="k", ls=":", lw=1, label=f"required {probability:g}")
    return _finish(figure, ax, cube[name], dim, "probability that the demand is met", fixed)


def variables_vs(cube: xr.Dataset, variables: Sequence[str], dim: Hashable, ax=None, logy: bool = False) -> Figure:
    """Several variables of the same units (e.g. the loss budget in dB) vs ``dim``, one line each."""
    figure, ax = _axes(ax)
    fixed = ""
    for variable in variables:
        data, fixed = fix_other_dims(cube[variable], [dim])
        ax.plot(data[dim].values, _positive(data.values) if logy else data.values, label=data.attrs.get("long_name", variable))
    if logy:
        ax.set_yscale("log")
    first = cube[variables[0]]
    figure = _finish(figure, ax, first, dim, ", ".join(variables), fixed)
    ax.set_ylabel(f"[{units_of(first.attrs, '')}]")
    return figure


def options_bar(cube: xr.Dataset, dim: Hashable, variable: str = "key_rate", ax=None) -> Figure:
    """``variable`` of each option of a categorical ``dim`` as bars, the other dims fixed."""
    figure, ax = _axes(ax)
    data, fixed = fix_other_dims(cube[variable], [dim])
    ax.bar([str(v) for v in data[dim].values], data.values)
    figure = _finish(figure, ax, data, dim, f"{data.attrs.get('long_name', variable)} by {dim}", fixed)
    ax.set_xlabel(str(dim))
    return figure


# --- Networks ------------------------------------------------------------------------------------------------------
# A network cube has a dim of links (``network_link``, ends ``link_site_a``/``link_site_b``), of sites (``site``,
# kind ``site_kind``, optional position ``site_x_km``/``site_y_km``) and of demands (``demand``, ends
# ``demand_site_a``/``demand_site_b``); these describe each grid point's network, they are not swept.
NETWORK_DIMS = ("network_link", "site", "demand")
SITE_STYLES = {"user": ("o", "C0", "user"), "trusted": ("s", "C1", "trusted node"), "ground_station": ("^", "C2", "ground station")}
BOTTLENECK_COLOUR = "tab:red"
NETWORK_COLOURS = ("link_key_rate", "min_cut_link")
FAINT = "0.8"  # links and sites a figure leaves out (e.g. those a design does not build)
DESIGN_DIM = "network_design"  # the designs of a network design study (``design_*`` variables along it)


def is_network(cube: xr.Dataset) -> bool:
    """Whether ``cube`` describes a network: links between named sites and a key rate per link."""
    needed = ("link_site_a", "link_site_b", "site_kind")
    return {"network_link", "site"} <= set(cube.dims) and all(c in cube.coords for c in needed) and link_rate_variable(cube) is not None


def link_rate_variable(cube: xr.Dataset) -> str | None:
    """The per-link key rate: the variable with role ``link_rate`` (else ``link_key_rate``), or None."""
    names = [v for v in analysis.with_role(cube, "link_rate") if v in cube.data_vars and "network_link" in cube[v].dims]
    return str(names[0]) if names else ("link_key_rate" if "link_key_rate" in cube.data_vars else None)


def first_point(data: xr.Dataset | xr.DataArray, keep: Sequence[Hashable]) -> tuple[xr.Dataset | xr.DataArray, str]:
    """``data`` at the first value of every dim not in ``keep`` (``quantile``: the median), and a text naming the
    values of the dims along which something in ``data`` varies."""
    chosen = {}
    for dim in data.dims:
        if dim not in keep:
            values = data[dim].values
            chosen[dim] = int(np.flatnonzero(values == 0.5)[0]) if dim == "quantile" and 0.5 in values else 0
    arrays = data.data_vars.values() if isinstance(data, xr.Dataset) else [data]
    varies = [d for d in chosen if any(d in a.dims and _varies_along(a, d) for a in arrays)]
    return data.isel(chosen), ", ".join(value_label(d, data[d].values[chosen[d]], data[d]) for d in varies)


def _varies_along(data: xr.DataArray, dim: Hashable) -> bool:
    first = data.isel({dim: 0})
    return not bool(((data == first) | (data.isnull() & first.isnull())).all())


def spring_layout(n_sites: int, edges: Sequence[tuple[int, int]], iterations: int = 300) -> np.ndarray:
    """Deterministic 2-d positions ``[n_sites, 2]`` in [-1, 1] of a graph: Fruchterman-Reingold forces (linked
    sites attract, all repel) from a start on the unit circle, with a step bound falling linearly to zero (T. M. J.
    Fruchterman, E. M. Reingold, Softw. Pract. Exp. 21, 1129 (1991))."""
    angle = 2 * np.pi * np.arange(n_sites) / max(n_sites, 1)
    pos = np.column_stack([np.cos(angle), np.sin(angle)])
    if n_sites < 3:
        return pos * (n_sites > 1)
    adjacency = np.zeros((n_sites, n_sites))
    for i, j in edges:
        adjacency[i, j] = adjacency[j, i] = 1.0
    k = 2.0 / np.sqrt(n_sites)  # ideal distance in a 2 x 2 box
    for step in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        distance = np.maximum(np.linalg.norm(delta, axis=-1), 1e-3)
        push = (k**2 / distance**2 - adjacency * distance / k)[..., None] * delta  # repulsion k^2/d, attraction d^2/k
        move = push.sum(axis=1)
        length = np.maximum(np.linalg.norm(move, axis=-1, keepdims=True), 1e-12)
        pos = pos + move / length * np.minimum(length, 0.1 * (1 - step / iterations))
    pos = pos - pos.mean(axis=0)
    return pos / np.abs(pos).max()


def site_positions(cube: xr.Dataset) -> tuple[np.ndarray, bool]:
    """Positions ``[site, 2]`` of the sites: ``site_x_km``/``site_y_km`` (True), else a spring layout of the
    links (False)."""
    if "site_x_km" in cube.coords and "site_y_km" in cube.coords:
        return np.column_stack([cube.site_x_km.values, cube.site_y_km.values]).astype(float), True
    return spring_layout(cube.sizes["site"], link_ends(cube)), False


def link_ends(cube: xr.Dataset) -> list[tuple[int, int]]:
    """(site index, site index) of each link; ValueError naming a link whose end is not a site."""
    index = {str(name): i for i, name in enumerate(cube.site.values)}
    ends = []
    for link, a, b in zip(cube.network_link.values, cube.link_site_a.values, cube.link_site_b.values):
        missing = [str(s) for s in (a, b) if str(s) not in index]
        if missing:
            raise ValueError(f"link {link!r} ends at {', '.join(missing)}, not a site of the cube ({', '.join(index)})")
        ends.append((index[str(a)], index[str(b)]))
    return ends


def parallel_links(ends: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The links grouped by span (the same two sites, either way round; e.g. two technologies for one span)."""
    spans: dict[frozenset, list[int]] = {}
    for i, (a, b) in enumerate(ends):
        spans.setdefault(frozenset((a, b)), []).append(i)
    return list(spans.values())


def spread_parallel(xy: np.ndarray, ends: Sequence[tuple[int, int]], spans: list[list[int]], gap: float) -> np.ndarray:
    """Line segments ``[link, 2, 2]`` between the sites, the links of one span side by side ``gap`` apart."""
    segments = np.array([[xy[a], xy[b]] for a, b in ends], dtype=float).reshape(-1, 2, 2)
    for members in spans:
        a, b = ends[members[0]]
        along = xy[b] - xy[a]
        normal = np.array([-along[1], along[0]]) / max(np.linalg.norm(along), 1e-12)
        for k, i in enumerate(members):
            segments[i] += (k - (len(members) - 1) / 2) * gap * normal
    return segments


def network_point(cube: xr.Dataset) -> tuple[xr.Dataset, str]:
    """What the network figure shows (link key rate, minimum cuts, link availability) at the cube's first grid
    point, and a text naming that point (``first_point``)."""
    names = [v for v in (link_rate_variable(cube), "min_cut_link", "link_availability") if v in cube]
    return first_point(cube[names], NETWORK_DIMS)


def sites_text(kind: str, count: int) -> str:
    """``3 users``, ``1 trusted node``: how many sites of a kind."""
    name = SITE_STYLES.get(kind, ("", "", kind))[2]
    return f"{count} {name}{'s' if count != 1 else ''}"


def failing_links(unavailability: np.ndarray) -> np.ndarray:
    """Indices of the links that fail most: the fifth (at least one) with the largest unavailability, of those down
    longer than the median link (none where all are alike)."""
    down = np.where(np.isfinite(unavailability), unavailability, -np.inf)
    count = max(1, int(np.ceil(len(down) / 5)))
    top = np.argsort(-down, kind="stable")[:count]
    return np.sort(top[down[top] > np.median(down)])


def _short_list(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1}"


def selection(names: np.ndarray, chosen, dim: str) -> np.ndarray:
    """Boolean mask over ``names`` (the values of ``dim``) of ``chosen``: None (all), names, a mask (bools or 0/1,
    one per name) or a DataArray along ``dim`` (aligned by its coordinate, missing values: not chosen)."""
    if chosen is None:
        return np.ones(len(names), dtype=bool)
    if isinstance(chosen, xr.DataArray):
        if chosen.dims != (dim,):
            raise ValueError(f"a selection of {dim} as a DataArray needs the dims ({dim},), not {chosen.dims}")
        chosen = chosen.reindex({dim: names}, fill_value=0) if dim in chosen.coords else chosen
    values = np.asarray(chosen)
    if values.size == 0:
        return np.zeros(len(names), dtype=bool)
    if values.dtype.kind in "biuf":
        if values.shape != (len(names),):
            raise ValueError(f"a mask of {dim} needs {len(names)} values, one per {dim}, not the shape {values.shape}")
        return np.nan_to_num(values.astype(float)) > 0.5
    known = [str(n) for n in names]
    missing = [str(v) for v in values.ravel() if str(v) not in known]
    if missing:
        raise ValueError(f"{', '.join(missing)}: not a {dim} of the cube ({', '.join(known)})")
    return np.isin(known, [str(v) for v in values.ravel()])


def network_figure(
    cube: xr.Dataset, colour_by: str = "link_key_rate", ax=None, *, links=None, sites=None, title: str | None = None
) -> Figure:
    """The network at the cube's first grid point: sites as markers by kind (users, trusted nodes, ground
    stations), links as lines coloured by ``colour_by``: ``"link_key_rate"`` (log10 of the link's key rate,
    colour bar; no key: grey) or ``"min_cut_link"`` (how many demands have the link in their minimum cut). The
    bottleneck links (in a demand's minimum cut, ``min_cut_link``) get a red halo and the demands' names; with
    ``link_availability`` the links that fail most (``failing_links``) are dashed and labelled with their
    unavailability. Labels are left off links shorter than a fifth of the map. Sites sit at ``site_x_km``/``site_y_km``, else on a spring layout.

    ``links``/``sites`` select what is drawn (``selection``: names, a mask, or a 0/1 DataArray such as one design's
    ``design_built``/``design_opened``; None: all): the others are drawn faint grey, unlabelled, where they would
    be, and the colour scale stays that of every link, so figures of different selections compare. The failing
    links are the worst of those selected; with some links left out the minimum cuts (of every link) are not
    shown. ``title`` replaces the first line of the title (what the links are coloured by)."""
    if colour_by not in NETWORK_COLOURS:
        raise ValueError(f"colour_by = {colour_by!r}: give one of {', '.join(NETWORK_COLOURS)}")
    if not is_network(cube):
        raise ValueError("not a network cube: it needs dims network_link and site, link_site_a/b, site_kind and link_key_rate")
    rate_name = link_rate_variable(cube)
    if colour_by == "min_cut_link" and "min_cut_link" not in cube:
        raise ValueError("colour_by = 'min_cut_link' needs the cube's min_cut_link variable")
    shown, opened = selection(cube.network_link.values, links, "network_link"), selection(cube.site.values, sites, "site")
    subset = not shown.all()
    if colour_by == "min_cut_link" and subset:
        raise ValueError("colour_by = 'min_cut_link' shows the minimum cuts with every link: give no selection of links")
    point, fixed = network_point(cube)
    ax = Figure(figsize=(6.4, 5.6), layout="constrained").subplots() if ax is None else ax
    figure = ax.figure
    xy, in_km = site_positions(cube)
    ends = link_ends(cube)
    extent = np.ptp(xy, axis=0).max() if len(xy) > 1 else 1.0
    spans = parallel_links(ends)
    segments = spread_parallel(xy, ends, spans, gap=0.02 * extent)
    handles = []

    if subset:  # the links left out: faint, below the rest
        ax.add_collection(LineCollection(segments[~shown], colors=FAINT, linewidths=1.0, zorder=0.5))
        handles.append(Line2D([], [], color=FAINT, lw=1.0, label="other candidate links"))
    cut = None if subset or "min_cut_link" not in point else point["min_cut_link"].transpose("network_link", "demand").values > 0.5
    notes: list[list[str]] = [[] for _ in ends]
    if cut is not None and cut.any():
        halo = LineCollection(segments[cut.any(axis=1)], colors=BOTTLENECK_COLOUR, linewidths=9, alpha=0.3, zorder=1)
        ax.add_collection(halo)
        handles.append(Line2D([], [], color=BOTTLENECK_COLOUR, lw=6, alpha=0.3, label="bottleneck: in a demand's minimum cut"))
        demands = [str(d) for d in point.demand.values]
        for i, row in enumerate(cut):
            if row.any():
                notes[i].append("cut of " + _short_list([d for d, c in zip(demands, row) if c]))

    styles = ["-"] * len(ends)
    if "link_availability" in point:
        down = 1.0 - point["link_availability"].transpose("network_link").values.astype(float)
        failing = np.flatnonzero(shown)[failing_links(down[shown])] if shown.any() else np.array([], dtype=int)
        for i in failing:
            styles[i] = "--"
            notes[i].append(f"down {down[i]:.2%}")
        if failing.size:
            low, high = down[failing].min(), down[failing].max()
            span = f"{high:.2%}" if low == high else f"{low:.2%} - {high:.2%}"
            handles.append(Line2D([], [], color="k", ls="--", lw=1.5, label=f"fails most: down {span} of the time"))

    if colour_by == "link_key_rate":
        rate = point[rate_name].transpose("network_link").values.astype(float)
        values = np.log10(_positive(rate))
        finite = values[np.isfinite(values)]  # the scale of every link, selected or not
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        norm = Normalize(low - 0.5, high + 0.5) if low == high else Normalize(low, high)
        cmap, label = colormaps["viridis"].with_extremes(bad="lightgrey"), f"log10 {axis_label(cube[rate_name])}"
        if not np.isfinite(values[shown]).all():
            handles.append(Line2D([], [], color="lightgrey", lw=2.5, label="no key"))
    else:
        values = cut.sum(axis=1).astype(float)
        count = cut.shape[1]
        norm = BoundaryNorm(np.arange(-0.5, count + 1), count + 1)
        cmap = ListedColormap(["0.7", *colormaps["Reds"](np.linspace(0.45, 1.0, count))])  # grey: in no minimum cut
        label = "demands with the link in their minimum cut"
    chosen = [styles[i] for i in np.flatnonzero(shown)]
    lines = LineCollection(segments[shown], array=values[shown], cmap=cmap, norm=norm, linewidths=2.5, linestyles=chosen or "-", zorder=2)
    ax.add_collection(lines)
    bar = figure.colorbar(lines, ax=ax, label=textwrap.fill(label, 40))
    if colour_by == "min_cut_link":
        bar.set_ticks(np.arange(cut.shape[1] + 1))

    for members in spans:  # one label per span: what its links' notes say
        text = "\n".join(dict.fromkeys(note for i in members for note in notes[i]))
        a, b = ends[members[0]]
        if text and np.linalg.norm(xy[b] - xy[a]) >= 0.2 * extent:  # short spans: no room for a label
            middle = (xy[a] + xy[b]) / 2
            ax.annotate(text, middle, xytext=(0, 5), textcoords="offset points", ha="center", fontsize=6, color="0.2", zorder=4)
    kinds = cube.site_kind.values.astype(str)
    for kind in dict.fromkeys(kinds):
        marker, colour, label = SITE_STYLES.get(kind, ("D", "0.5", kind))
        mine, left_out = (kinds == kind) & opened, (kinds == kind) & ~opened
        if mine.any():
            handles.append(
                ax.scatter(*xy[mine].T, marker=marker, s=70, c=colour, edgecolors="k", zorder=3, label=sites_text(kind, mine.sum()))
            )
        if left_out.any():
            ax.scatter(*xy[left_out].T, marker=marker, s=50, c="none", edgecolors=FAINT, zorder=2.5)
    if not opened.all():
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec=FAINT, label="other candidate sites"))
    for name, (x, y), here in zip(cube.site.values, xy, opened):
        ax.annotate(str(name), (x, y), xytext=(5, -9), textcoords="offset points", fontsize=7, zorder=5, color="k" if here else FAINT)

    ax.autoscale_view()
    ax.margins(0.12)
    if in_km:
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(axis_label(cube.site_x_km))
        ax.set_ylabel(axis_label(cube.site_y_km))
        ax.grid(True, alpha=0.3)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    what = "log10 link key rate" if colour_by == "link_key_rate" else "the demands each link bottlenecks"
    layout = "" if in_km else "\nsites on a spring layout (no site coordinates)"
    headline = "\n".join(textwrap.fill(line, 70) for line in (title or f"QKD network, links coloured by {what}").splitlines())
    ax.set_title(headline + layout + (f"\n{fixed}" if fixed else ""), fontsize=9)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1 if in_km else -0.02), ncol=3)
    return figure


# --- Designs of a network design study: ``design_built`` [network_design, network_link], ``design_opened``
# [network_design, site], ``design_cost_per_year``, ``design_demand_met_probability`` (``_ci_low``/``_ci_high``) ...
def design_names(cube: xr.Dataset) -> list[str]:
    """The designs whose links the network cube records (``design_built`` along ``network_design``), in coordinate
    order; none for other cubes."""
    if not is_network(cube) or "design_built" not in cube or not {DESIGN_DIM, "network_link"} <= set(cube.design_built.dims):
        return []
    return [str(d) for d in cube[DESIGN_DIM].values]


def design_point(cube: xr.Dataset, design: str) -> tuple[xr.Dataset, str]:
    """The ``design_*`` variables of one design at the cube's first grid point (``first_point``), and a text naming
    that point."""
    names = design_names(cube)
    if str(design) not in names:
        raise ValueError(f"design {design!r}: not one of the cube's {DESIGN_DIM} ({', '.join(names) or 'none'})")
    variables = [v for v in cube.data_vars if str(v).startswith("design_") and DESIGN_DIM in cube[v].dims]
    return first_point(cube[variables].isel({DESIGN_DIM: names.index(str(design))}), NETWORK_DIMS)


def design_title(cube: xr.Dataset, design: str) -> str:
    """``design cheapest: 1,607,049 EUR/year``, ``worst demand A-B: P(met) 0.97 [0.955, 0.98]`` (95 % interval; without
    the probability: the lowest key rate) and how many candidate links and sites the design has, one per line."""
    point, _ = design_point(cube, design)
    first = f"design {design}"
    if "design_cost_per_year" in point:
        attrs = point.design_cost_per_year.attrs
        units = " ".join(p for p in (str(attrs.get("currency", "")), units_of(attrs, "")) if p and p != "1")
        first += f": annual cost {float(point.design_cost_per_year):,.0f}" + (f" {units}" if units else "")
    lines = [first]
    worst = next((v for v in ("design_demand_met_probability", "design_key_rate") if v in point and "demand" in point[v].dims), None)
    if worst is not None and bool(point[worst].notnull().any()):
        values = point[worst].transpose("demand").values.astype(float)
        i = int(np.nanargmin(values))
        demand = point.demand.values[i]
        if worst == "design_key_rate":
            lines.append(f"worst demand {demand}: key rate {values[i]:.3g} {units_of(point[worst].attrs, '')}".rstrip())
        else:
            ends = [float(point[f"{worst}_{e}"].transpose("demand").values[i]) for e in ("ci_low", "ci_high") if f"{worst}_{e}" in point]
            interval = f" [{ends[0]:.4g}, {ends[1]:.4g}]" if len(ends) == 2 else ""
            lines.append(f"worst demand {demand}: P(met) {values[i]:.4g}{interval}")
    built = selection(cube.network_link.values, point.design_built, "network_link")
    count = f"{built.sum()} of {built.size} candidate links"
    if "design_opened" in point:
        opened = selection(cube.site.values, point.design_opened, "site")
        count += f", {opened.sum()} of {opened.size} sites"
    return "\n".join([*lines, count])


def design_figure(cube: xr.Dataset, design: str, ax=None) -> Figure:
    """The network figure (``network_figure``) of one design of a network design study: only the links it builds
    (``design_built``) and the sites it has (``design_opened``; without it every site), the others faint grey, links
    coloured by their key rate, titled with the design's name, annual cost and worst demand (``design_title``)."""
    point, fixed = design_point(cube, design)
    title = design_title(cube, design)
    if fixed and fixed != network_point(cube)[1]:  # the design varies along a grid dim the links do not
        title += f"\ndesign at {fixed}"
    return network_figure(cube, ax=ax, links=point.design_built, sites=point.get("design_opened"), title=title)
