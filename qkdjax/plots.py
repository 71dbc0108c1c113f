"""Figures of result cubes (matplotlib, no pyplot state): key rate vs distance with the PLOB bound, heatmaps with a
target contour, Monte Carlo quantile bands, satellite pass curves, availability vs demand.

Each function takes a cube, draws on ``ax`` (or a new figure) and returns the ``Figure``. Axis labels come from
the variables' and coordinates' ``long_name`` and ``units`` attrs. Dims a figure does not show are fixed at their
middle grid value (the median for ``quantile``) and named in the title.
"""

from __future__ import annotations

import textwrap
from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

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
