"""The sweep engine: map any ``study(values, key) -> metrics`` over a grid and assemble an xarray cube.

It knows nothing of physics. Numeric axes are flattened and evaluated by one ``jit(vmap(study))`` per chunk of
``chunk_size`` points, the chunk's grid values being gathered on the device from its flat indices (nothing of
grid size crosses from the host). Every chunk has the same shape, so a sweep compiles once per static choice;
categorical axes loop over such sweeps. Per-point random keys are ``fold_in(root, flat_index)``, so results do
not depend on the chunk size or device count.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
from collections.abc import Callable, Hashable, Mapping
import typing

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from qkdjax.config import Grid

Metrics = dict[str, jax.Array]
LANES = 8  # chunks are a multiple of this many points


class Output(typing.NamedTuple):
    """A cube variable: CF units and long name, and the per-point dims it has beyond the grid's (e.g. quantile)."""

    units: str
    long_name: str
    dims: tuple[str, ...] = ()


class StudyLike(Hashable, typing.Protocol):
    """What the engine needs of a study: ``study(values, key) -> metrics``, its outputs and their per-point dims."""

    outputs: Mapping[str, Output]
    coords: Mapping[str, tuple[np.ndarray, Mapping[str, str]]]
    evaluations_per_point: int  # Monte Carlo trials per point, to bound the memory of a chunk

    def __call__(self, values: Mapping[str, jax.Array], key: jax.Array) -> Metrics: ...


StudyFactory = Callable[[tuple[tuple[str, str | None], ...]], StudyLike]


def point_key(root_key: jax.Array, index: jax.Array) -> jax.Array:
    """Key of one grid point: the 64-bit flat index folded in as two 32-bit words (no collisions past 2^32)."""
    index = index.astype(jnp.uint64)
    return jax.random.fold_in(jax.random.fold_in(root_key, index >> 32), index & 0xFFFFFFFF)


@functools.partial(jax.jit, static_argnames=("study", "names", "shape", "chunk_size"))
def evaluate_chunk(study, names, shape, chunk_size, start, axis_values, fixed, root_key) -> Metrics:
    """Evaluate ``study`` on grid points ``start .. start + chunk_size`` (past the end: repeats of the last point)."""
    total = math.prod(shape)
    flat_index = start + jnp.arange(chunk_size, dtype=jnp.int64)
    # int32 index arithmetic is twice as fast on CPU; grids past 2^31 points need int64.
    index_dtype = jnp.int32 if total < 2**31 else jnp.int64
    grid_index = jnp.unravel_index(jnp.minimum(flat_index, total - 1).astype(index_dtype), shape)
    swept = {name: values[i] for name, values, i in zip(names, axis_values, grid_index)}

    def one_point(point_values, index):
        return study({**fixed, **point_values}, point_key(root_key, index))

    return jax.vmap(one_point)(swept, flat_index)


def evaluate_numeric_grid(study: StudyLike, grid: Grid, root_key: jax.Array, chunk_size: int, progress: tqdm) -> dict[str, np.ndarray]:
    """All metrics of ``study`` over the numeric axes of ``grid``, as arrays shaped like those axes (+ per-point dims).

    ``chunk_size`` counts evaluations (points x Monte Carlo trials), which is what bounds memory.
    """
    names = tuple(a.name for a in grid.numeric_axes)
    shape = tuple(len(a.values) for a in grid.numeric_axes)
    total = math.prod(shape)
    points = max(chunk_size // study.evaluations_per_point, 1)
    # Whole SIMD widths: XLA compiles a batch of one as scalar code whose last bits differ from the vector code.
    points = -(-min(points, total) // LANES) * LANES
    axis_values = tuple(jnp.asarray(a.values) for a in grid.numeric_axes)
    fixed = {k: jnp.float64(v) for k, v in grid.fixed.items()}
    run = functools.partial(evaluate_chunk, study, names, shape, points, axis_values=axis_values, fixed=fixed, root_key=root_key)

    results: dict[str, np.ndarray] = {}

    def collect(start: int, metrics: Metrics) -> None:
        n = min(points, total - start)
        for name, value in metrics.items():
            if name not in results:
                results[name] = np.empty((total, *value.shape[1:]), dtype=value.dtype)
            results[name][start : start + n] = np.asarray(value)[:n]
        progress.update(n)

    pending = None
    for start in range(0, total, points):
        metrics = run(jnp.int64(start))  # dispatched asynchronously: overlaps with collecting the previous chunk
        if pending is not None:
            collect(*pending)
        pending = (start, metrics)
    collect(*pending)
    return {name: values.reshape(shape + values.shape[1:]) for name, values in results.items()}


def run_grid(make_study: StudyFactory, grid: Grid, *, chunk_size: int, seed: int) -> xr.Dataset:
    """Evaluate a study over every point of ``grid`` and return the labelled cube.

    ``make_study(choices)`` builds the (hashable) study for one combination of static choices; its ``outputs``
    label the variables it returns.
    """
    numeric_dims = [a.name for a in grid.numeric_axes]
    coords = {a.name: xr.Variable(a.name, a.values, dict(a.attrs)) for a in (*grid.numeric_axes, *grid.categorical_axes)}
    root_key = jax.random.key(seed)
    combos = list(itertools.product(*(a.values for a in grid.categorical_axes)))
    cubes = []
    with tqdm(total=grid.size, unit="pt", unit_scale=True, disable=None, file=sys.stderr, desc="qkdjax") as progress:
        for combo_index, combo in enumerate(combos):
            choices = tuple(zip((a.name for a in grid.categorical_axes), combo))
            study = make_study(tuple(grid.static.items()) + choices)
            key = jax.random.fold_in(root_key, combo_index)
            arrays = evaluate_numeric_grid(study, grid, key, chunk_size, progress)
            outputs = study.outputs
            cube = xr.Dataset(
                {n: ([*numeric_dims, *outputs[n].dims], v, {"units": outputs[n].units, "long_name": outputs[n].long_name}) for n, v in arrays.items()}
            )
            used = {d for n in arrays for d in outputs[n].dims}
            cube = cube.assign_coords({d: xr.Variable(d, *study.coords[d]) for d in used})
            cubes.append(cube.expand_dims({name: [value] for name, value in choices}))
    cube = _combine(cubes, [len(a.values) for a in grid.categorical_axes], [a.name for a in grid.categorical_axes])
    categorical_dims = [a.name for a in grid.categorical_axes]
    return cube.assign_coords(coords).transpose(*categorical_dims, *numeric_dims, ...)


def _combine(cubes: list[xr.Dataset], sizes: list[int], dims: list[str]) -> xr.Dataset:
    """Combine per-choice cubes (in ``itertools.product`` order) along their categorical dims."""
    if not dims:
        return cubes[0]
    nested = np.empty(sizes, dtype=object)
    for index, cube in zip(np.ndindex(*sizes), cubes):
        nested[index] = cube
    return xr.combine_nested(nested.tolist(), concat_dim=dims, combine_attrs="override")
