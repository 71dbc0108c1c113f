"""Decisions from result cubes: reach, required parameter values, margins, option comparisons, availability.

Every function takes a cube (``xarray.Dataset``, in memory or dask-backed) or one of its variables, works along
the dim it is given and keeps every other dim, so one call answers the question for every design in the cube.
Results are labelled ``xarray.DataArray``/``Dataset`` objects with ``units`` and ``long_name`` attrs; lazy inputs
give lazy results (``apply_ufunc(..., dask="parallelized")``, ``where``, ``idxmax``), nothing is loaded early.

Crossing points are interpolated linearly in log(rate) between the last grid point that meets the target and the
first that does not: key rates fall exponentially with distance, so this is exact for ``rate = exp(-a d)``. A
rate that falls to zero (the key's cut-off) gives the last grid point with the key, the conservative answer.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from qkdjax.units import ROLE_ATTR, cf_attrs, units_of

DEFAULT_VARIABLE = "key_rate"


def with_role(cube: xr.Dataset | xr.DataArray, role: str) -> list[Hashable]:
    """Names of the coordinates and variables of ``cube`` whose ``qkdjax_role`` is ``role`` (``distance``,
    ``demand``, ``rate``, ``bound``, ...; ``qkdjax.sweep.Output``): how reports find what a cube holds without
    knowing which protocol or link wrote it."""
    names = [*cube.coords, *(cube.data_vars if isinstance(cube, xr.Dataset) else ())]
    return [name for name in names if cube[name].attrs.get(ROLE_ATTR) == role]


def role_dim(cube: xr.Dataset | xr.DataArray, role: str) -> Hashable:
    """The dim of ``cube`` with ``role`` (e.g. ``distance``: ``link.distance_km``); ValueError if it has none."""
    dims = [name for name in with_role(cube, role) if name in cube.dims]
    if not dims:
        raise ValueError(f"the cube has no {role} dim (dims: {', '.join(map(str, cube.dims))}): pass dim=")
    return dims[0]


def role_variable(cube: xr.Dataset, role: str) -> str:
    """The variable of ``cube`` with ``role`` (e.g. ``demand_met``); ValueError if it has none."""
    names = [name for name in with_role(cube, role) if name in cube.data_vars]
    if not names:
        raise ValueError(f"the cube has no {role} variable (variables: {', '.join(map(str, cube.data_vars))}): pass variable=")
    return str(names[0])


def _variable(cube: xr.Dataset | xr.DataArray, variable: str | None) -> xr.DataArray:
    """The DataArray ``cube[variable]`` (``cube`` itself when it is a DataArray and ``variable`` is None)."""
    if isinstance(cube, xr.DataArray) and variable is None:
        return cube
    variable = variable or DEFAULT_VARIABLE
    if isinstance(cube, xr.DataArray):
        cube = cube.to_dataset(name=cube.name or DEFAULT_VARIABLE)
    if variable not in cube.data_vars:
        raise ValueError(f"variable = {variable!r} is not in the cube (variables: {', '.join(map(str, cube.data_vars))})")
    return cube[variable]


def _check_dim(data: xr.DataArray | xr.Dataset, dim: Hashable) -> None:
    if dim not in data.dims:
        raise ValueError(f"dim = {dim!r} is not a dim of the cube (dims: {', '.join(map(str, data.dims))})")


def check_positive(name: str, value: float) -> None:
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} = {value!r} must be a finite number > 0")


def check_probability(probability: float) -> None:
    if not 0 < probability <= 1:
        raise ValueError(f"probability = {probability!r} must be in (0, 1]")


def _units(data: xr.DataArray) -> str:
    return units_of(data.attrs)


def _long_name(data: xr.DataArray) -> str:
    return str(data.attrs.get("long_name", data.name))


def _last_crossing(x: np.ndarray, log_rate: np.ndarray, log_target: float) -> tuple[np.ndarray, np.ndarray]:
    """Largest ``x`` (ascending, last axis) with ``log_rate >= log_target``, interpolated linearly in log rate.

    Returns (the crossing, in the units of ``x``; NaN where the target is never met, and whether it sits at the last
    grid point, i.e. the target is met up to the end of the grid and the true answer may lie beyond it).
    """
    log_rate = np.where(np.isnan(log_rate), -np.inf, log_rate)
    feasible = log_rate >= log_target
    n = x.size
    last = n - 1 - np.argmax(feasible[..., ::-1], axis=-1)
    after = np.minimum(last + 1, n - 1)
    at_last = np.take_along_axis(log_rate, last[..., None], -1)[..., 0]
    at_after = np.take_along_axis(log_rate, after[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(after > last, (at_last - log_target) / (at_last - at_after), 0.0)
    crossing = x[last] + fraction * (x[after] - x[last])
    return np.where(feasible.any(-1), crossing, np.nan), feasible[..., -1]


def _first_crossing(x: np.ndarray, log_rate: np.ndarray, log_target: float) -> tuple[np.ndarray, np.ndarray]:
    """Smallest ``x`` with ``log_rate >= log_target``: ``_last_crossing`` of the reversed axis."""
    return _last_crossing(x[::-1], log_rate[..., ::-1], log_target)


def _crossing(rate: xr.DataArray, target: float, dim: Hashable, side: str) -> tuple[xr.DataArray, xr.DataArray]:
    """The crossing of ``rate`` with ``target`` along ``dim`` (``side`` "max": largest value, "min": smallest,
    "auto": "min" where the rate grows along ``dim``, else "max"), and the at-grid-edge flag."""
    _check_dim(rate, dim)
    check_positive("target", target)
    if side not in ("min", "max", "auto"):
        raise ValueError(f"side = {side!r} is not one of 'min', 'max', 'auto'")
    if not np.issubdtype(rate[dim].dtype, np.number):
        raise ValueError(f"dim = {dim!r} is categorical; a crossing needs a numeric dim (compare_options compares options)")
    rate = rate.sortby(dim)
    if rate.chunks is not None:
        rate = rate.chunk({dim: -1})
    x = rate[dim].values.astype(float)
    log_target = float(np.log(target))

    def crossing(log_rate):
        last, last_edge = _last_crossing(x, log_rate, log_target)
        first, first_edge = _first_crossing(x, log_rate, log_target)
        if side == "max":
            return last, last_edge
        if side == "min":
            return first, first_edge
        grows = log_rate[..., -1] > log_rate[..., 0]  # a flat rate: the largest value tolerated
        return np.where(grows, first, last), np.where(grows, first_edge, last_edge)

    with np.errstate(divide="ignore"):
        log_rate = np.log(rate.where(rate > 0, 0.0))
    value, edge = xr.apply_ufunc(
        crossing, log_rate, input_core_dims=[[dim]], output_core_dims=[[], []],
        dask="parallelized", output_dtypes=[float, bool],
    )  # fmt: skip
    return value, edge


def _label_crossing(value, edge, rate, target, dim, relation: str) -> xr.DataArray:
    coord = rate[dim]
    value = value.assign_coords(at_grid_edge=edge)
    value.coords["at_grid_edge"].attrs["long_name"] = "the answer is the grid's end: the true value may lie beyond it"
    value.name = f"{relation}_{dim}"
    value.attrs = {
        **cf_attrs(_units(coord)),
        "long_name": f"{relation} {_long_name(coord)} with {rate.name} >= {target:g} {_units(rate)}",
        "target": target,
        "variable": str(rate.name),
    }
    return value


def reach(cube, target: float, dim: Hashable | None = None, variable: str | None = None) -> xr.DataArray:
    """Maximal reach: the largest value of ``dim`` (default the cube's distance dim, e.g. ``link.distance_km``,
    in its units, e.g. km) where ``variable`` (default ``key_rate``, bit/s) is at least ``target`` (same units),
    for every other point.

    Interpolated in log(rate) between grid points; NaN where the target is never met. Where it is met up to the
    end of the grid the result is the grid's last value and the coordinate ``at_grid_edge`` is True.
    """
    rate = _variable(cube, variable)
    dim = role_dim(cube, "distance") if dim is None else dim
    value, edge = _crossing(rate, target, dim, "max")
    return _label_crossing(value, edge, rate, target, dim, "max")


def crossing(
    cube: xr.Dataset, variable: str = "key_rate_per_pulse", bound: str = "plob_bound_per_pulse", dim: Hashable | None = None
) -> xr.DataArray:
    """The smallest value of ``dim`` (default the distance dim) where ``variable`` reaches ``bound`` (default: the
    key per pulse and the PLOB repeaterless bound): where a twin-field design starts to beat every point-to-point
    protocol. Interpolated in log(rate / bound) between grid points; NaN where it never does."""
    rate, limit = _variable(cube, variable), _variable(cube, bound)
    dim = role_dim(cube, "distance") if dim is None else dim
    ratio = (rate / limit).where(limit > 0, 0.0)
    ratio.name = str(rate.name)
    value, edge = _crossing(ratio, 1.0, dim, "min")
    value = value.assign_coords(at_grid_edge=edge)
    value.coords["at_grid_edge"].attrs["long_name"] = "the answer is the grid's end: the true value may lie beyond it"
    value.name = f"crossing_{dim}"
    value.attrs = {**cf_attrs(_units(rate[dim])), "long_name": f"smallest {_long_name(rate[dim])} with {rate.name} >= {bound}"}
    return value


def required_value(cube, target: float, dim: Hashable, variable: str | None = None, side: str = "auto") -> xr.DataArray:
    """The value of the parameter ``dim`` (in its units) that ``variable`` (default ``key_rate``) needs to reach
    ``target``: the smallest value meeting it where the rate grows with ``dim`` (e.g. ``detector.efficiency``),
    the largest where it falls (e.g. ``detector.dark_count_prob``), judged per point from the rate at the two
    ends of the grid; ``side`` "min"/"max" forces one.

    NaN where no grid value meets the target; ``at_grid_edge`` marks answers at the grid's first/last value.
    """
    rate = _variable(cube, variable)
    value, edge = _crossing(rate, target, dim, side)
    return _label_crossing(value, edge, rate, target, dim, "required")


def margin(cube, target: float, variable: str | None = None) -> xr.DataArray:
    """``variable / target`` (units 1): above 1 the design meets the target, by that factor."""
    check_positive("target", target)
    rate = _variable(cube, variable)
    out = rate / target
    out.name = f"{rate.name}_margin"
    out.attrs = {"units": "1", "long_name": f"{rate.name} / target ({target:g} {_units(rate)})", "target": target}
    return out


def feasible(cube, target: float, variable: str | None = None) -> xr.DataArray:
    """Boolean mask: ``variable >= target`` at each point."""
    out = margin(cube, target, variable) >= 1
    out.name = f"{_variable(cube, variable).name}_feasible"
    out.attrs = {"long_name": f"{_variable(cube, variable).name} >= {target:g}", "target": target}
    return out


def plob_fraction(cube: xr.Dataset) -> xr.DataArray:
    """``key_rate_per_pulse / plob_bound_per_pulse`` (the variables with roles ``rate_per_pulse`` and ``bound``;
    units 1): how close each design comes to the repeaterless bound (0 where the bound is infinite, at zero loss)."""
    rate = _variable(cube, role_variable(cube, "rate_per_pulse"))
    bound = _variable(cube, role_variable(cube, "bound"))
    out = (rate / bound).where(bound > 0)
    out.name = "plob_fraction"
    out.attrs = {"units": "1", "long_name": "key rate / PLOB repeaterless bound"}
    return out


def compare_options(cube, dim: Hashable, variable: str | None = None, higher_is_better: bool = True) -> xr.Dataset:
    """The best option along ``dim`` (categorical, e.g. ``protocol.decoy`` or ``detector``) at every other point.

    Returns a Dataset: ``best`` (the option's label), ``best_value`` and ``runner_up_value`` (units of
    ``variable``), and ``advantage`` (best / runner-up, units 1; inf where only the best has a positive value).
    """
    values = _variable(cube, variable)
    _check_dim(values, dim)
    if values.sizes[dim] < 2:
        raise ValueError(f"dim = {dim!r} has {values.sizes[dim]} option; comparing needs at least two")
    sign = 1.0 if higher_is_better else -1.0
    score = (sign * values).fillna(-np.inf)
    best = score.idxmax(dim)
    best_value = values.max(dim) if higher_is_better else values.min(dim)
    others = values.where(values[dim] != best)
    runner_up = others.max(dim) if higher_is_better else others.min(dim)
    with np.errstate(divide="ignore", invalid="ignore"):
        advantage = best_value / runner_up if higher_is_better else runner_up / best_value
    units, name = _units(values), values.name
    return xr.Dataset(
        {
            "best": best.assign_attrs(long_name=f"option of {dim} with the {'highest' if higher_is_better else 'lowest'} {name}"),
            "best_value": best_value.assign_attrs(units=units, long_name=f"{name} of the best option"),
            "runner_up_value": runner_up.assign_attrs(units=units, long_name=f"{name} of the second-best option"),
            "advantage": advantage.assign_attrs(units="1", long_name="best / second-best (ratio)"),
        }
    ).drop_vars(dim, errors="ignore")


def meets_demand(cube: xr.Dataset, probability: float, variable: str | None = None) -> xr.DataArray:
    """Boolean mask of availability cubes: the demand is met with at least ``probability`` (0-1) at each point
    (``variable`` default: the cube's ``demand_met`` variable, e.g. ``demand_met_probability``)."""
    check_probability(probability)
    variable = role_variable(cube, "demand_met") if variable is None else variable
    out = _variable(cube, variable) >= probability
    out.name = "meets_demand"
    out.attrs = {"long_name": f"{variable} >= {probability:g}", "probability": probability}
    return out


def _demand_edge(cube: xr.Dataset, probability: float, dim: Hashable, largest: bool) -> xr.DataArray:
    """The smallest (or ``largest``) value of ``dim`` (its units) at which the demand is met with at least
    ``probability``, per other point; NaN where it never is."""
    mask = meets_demand(cube, probability)
    _check_dim(mask, dim)
    ordered = mask.sortby(dim, ascending=not largest)
    out = ordered.idxmax(dim).where(ordered.any(dim))
    out.name = f"{'max' if largest else 'min'}_{dim}"
    words = "largest" if largest else "smallest"
    out.attrs = {
        **cf_attrs(_units(cube[dim])),
        "long_name": f"{words} {_long_name(cube[dim])} meeting the demand with probability >= {probability:g}",
    }
    return out


def smallest_option_meeting_demand(cube: xr.Dataset, probability: float, dim: Hashable) -> xr.DataArray:
    """The smallest value of the option ``dim`` (e.g. ``link.trusted_nodes``, ``link.paths``) whose chain meets
    its demand with at least ``probability`` (0-1), per other point (e.g. per demand); NaN where none does."""
    return _demand_edge(cube, probability, dim, largest=False)


def largest_demand_met(cube: xr.Dataset, probability: float, dim: Hashable | None = None) -> xr.DataArray:
    """The largest demand on the grid ``dim`` (bit/s; default the cube's demand dim, e.g. ``link.demand_bps``)
    met with at least ``probability`` (0-1), per other point; NaN where even the smallest demand is not met."""
    return _demand_edge(cube, probability, role_dim(cube, "demand") if dim is None else dim, largest=True)


def _scalar(value):
    """A NumPy scalar as the Python number it holds (strings and other objects as they are)."""
    return value.item() if isinstance(value, np.generic) else value


def best_point(cube, variable: str | None = None) -> dict[str, object]:
    """The grid point with the highest ``variable``: its coordinates by dim and the value (``"value"``, in the
    variable's units). Loads the variable."""
    values = _variable(cube, variable).compute()
    data = np.asarray(values.values, dtype=float)
    index = np.unravel_index(int(np.argmax(np.where(np.isnan(data), -np.inf, data))), data.shape)
    coords = {str(d): _scalar(values[d].values[i]) for d, i in zip(values.dims, index)}
    return {**coords, "value": float(data[index])}


def least_trust_design(
    cube: xr.Dataset, probability: float | None = None, target: float | None = None, dim: Hashable = "design"
) -> xr.Dataset:
    """Comparisons of designs (``compare``, a ``dim`` of design names) of key relay: per other point (a demand, a
    detector), the design that meets the need with the fewest trusted nodes (sites whose staff and security the
    key depends on), a tie going to the larger key rate.

    The need: the demand met with at least ``probability`` (cubes with a key-supply Monte Carlo), else a key rate
    of at least ``target`` bit/s. Returns a Dataset over the other points: ``best`` (the design; "none" where no
    design meets the need), ``trusted_nodes``, ``untrusted_relays`` and ``key_rate`` of its cheapest option, and
    ``trusted_nodes_needed`` per design (NaN where it never meets the need).
    """
    _check_dim(cube, dim)
    nodes = cube[role_variable(cube, "trusted_nodes")]
    if with_role(cube, "demand_met") and probability is not None:
        meets = meets_demand(cube, probability)
        need = f"the demand met with probability >= {probability:g}"
    elif target is not None:
        check_positive("target", target)
        meets, need = cube[DEFAULT_VARIABLE] >= target, f"a key rate >= {target:g} bit/s"
    else:
        raise ValueError("give probability= (cubes with a key-supply Monte Carlo) or target= (bit/s)")
    options = [d for d in nodes.dims if d != dim and d in cube.indexes and with_role(cube[d], "option")]
    needed = nodes.where(meets).min(options)  # NaN: never
    cheapest = meets & (nodes == needed)
    rate = cube[DEFAULT_VARIABLE].where(cheapest).max(options)
    # Fewest nodes first; the rate's share of the largest (< 1/2) breaks ties without crossing to another count.
    score = needed.fillna(np.inf) - 0.5 * (rate / (rate.max(dim) + 1.0)).fillna(0.0)
    best = score.idxmin(dim).where(np.isfinite(needed).any(dim), "none")
    chosen = cube[dim] == best  # nowhere where none meets the need: NaN below
    relays = cube[role_variable(cube, "untrusted_relays")].where(cheapest & chosen).max([*options, dim])
    return xr.Dataset(
        {
            "best": best.assign_attrs(long_name=f"design needing the fewest trusted nodes for {need}"),
            "trusted_nodes": needed.where(chosen).max(dim).assign_attrs(units="1", long_name="trusted nodes of the best design"),
            "untrusted_relays": relays.assign_attrs(units="1", long_name="untrusted relays of the best design"),
            "key_rate": rate.where(chosen).max(dim).assign_attrs(units="bit/s", long_name="key rate of the best design with those nodes"),
            "trusted_nodes_needed": needed.assign_attrs(units="1", long_name=f"fewest trusted nodes for {need}"),
        }
    )
