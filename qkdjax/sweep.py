"""The sweep engine: map any ``study(values, key) -> metrics`` over a grid and assemble an xarray cube.

It knows nothing of physics. Numeric axes are flattened and evaluated by one ``jit(vmap(study))`` per chunk of
``chunk_size`` points, the chunk's grid values being gathered on the device from its flat indices (nothing of
grid size crosses from the host). Every chunk has the same shape, so a sweep compiles once per static choice;
categorical axes loop over such sweeps. With several local devices each chunk is split evenly over them.
Random keys: with common random numbers (the default) every point of every categorical combination gets the
root key itself, so a study's trial ``t`` sees the same random streams wherever it is evaluated; otherwise each
point gets ``fold_in(root, flat_index)`` of its combination's root ``fold_in(root, combo_index)``. Either way a
point's key depends on its place in the grid only, so results do not depend on the chunk size or device count. ``stream_chunks`` hands chunks over one by one: the in-memory cube and the Zarr store (``zarr_store``)
are both filled from it.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import typing
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from qkdjax.config import Grid
from qkdjax.units import ROLE_ATTR, cf_attrs

Metrics = dict[str, jax.Array]
LANES = 8  # chunks are a multiple of this many points


class Output(typing.NamedTuple):
    """A cube variable: CF units and long name, the per-point dims it has beyond the grid's (e.g. quantile), and
    its role (``qkdjax.units.ROLE_ATTR``), by which reports and ``qkdjax.analysis`` find it whatever the protocol
    or link: ``rate`` (the key rate, bit/s), ``rate_per_pulse``, ``bound`` (the repeaterless bound per channel
    use), ``supply`` (key per year), ``per_pass`` (key per satellite pass), ``demand_met`` (probability that a
    demand is met), ``loss_term``/``loss_total`` (a loss budget's terms and total), ``bottleneck``/
    ``bottleneck_loss`` (the hop limiting a chain and its loss), ``trusted_nodes``/``untrusted_relays`` (what a
    chain's key depends on)."""

    units: str
    long_name: str
    dims: tuple[str, ...] = ()
    role: str | None = None


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


@functools.partial(jax.jit, static_argnames=("study", "names", "shape", "chunk_size", "common_keys"))
def evaluate_chunk(study, names, shape, chunk_size, common_keys, start, axis_values, fixed, root_key) -> Metrics:
    """Evaluate ``study`` on grid points ``start .. start + chunk_size`` (past the end: repeats of the last point),
    each with ``root_key`` (``common_keys``) or its own ``point_key``."""
    total = math.prod(shape)
    flat_index = start + jnp.arange(chunk_size, dtype=jnp.int64)
    # int32 index arithmetic is twice as fast on CPU; grids past 2^31 points need int64.
    index_dtype = jnp.int32 if total < 2**31 else jnp.int64
    grid_index = jnp.unravel_index(jnp.minimum(flat_index, total - 1).astype(index_dtype), shape)
    swept = {name: values[i] for name, values, i in zip(names, axis_values, grid_index)}

    def one_point(point_values, index):
        return study({**fixed, **point_values}, root_key if common_keys else point_key(root_key, index))

    return jax.vmap(one_point)(swept, flat_index)


def chunk_points(study: StudyLike, total: int, chunk_size: int) -> int:
    """Grid points per chunk: ``chunk_size`` evaluations (points x Monte Carlo trials), in whole SIMD widths.

    XLA compiles a batch of one as scalar code whose last bits differ from the vector code, hence ``LANES``.
    """
    points = max(chunk_size // study.evaluations_per_point, 1)
    return -(-min(points, total) // LANES) * LANES


def numeric_shape(grid: Grid) -> tuple[int, ...]:
    return tuple(len(a.values) for a in grid.numeric_axes)


def chunk_evaluator(study: StudyLike, grid: Grid, root_key: jax.Array, points: int, common_keys: bool) -> Callable[[int], Metrics]:
    """``run(start)``: the metrics of (at least) the ``points`` grid points from flat index ``start``, dispatched async.

    With several local devices the chunk is split evenly over them: each device runs the one-device program on its
    slice (whole SIMD widths; extra points past the chunk are dropped by ``stream_chunks``) and the slices form
    one array sharded over a 1-D mesh. So the results are those of one device bit for bit (a ``shard_map`` of
    the chunk compiles to code whose last bits differ), and chunks, and the stores they fill, do not depend on the
    device count.
    """
    devices = jax.local_devices()
    per_device = -(-points // (LANES * len(devices))) * LANES
    run, inputs = _chunk_program(study, grid, root_key, per_device, common_keys)
    if len(devices) == 1:
        return lambda start: run(jnp.int64(start), *inputs)
    placed = [jax.device_put(inputs, device) for device in devices]
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.asarray(devices), ("points",)), jax.sharding.PartitionSpec("points"))

    def run_sharded(start: int) -> Metrics:
        slices = [run(jax.device_put(np.int64(start + i * per_device), d), *placed[i]) for i, d in enumerate(devices)]
        return jax.tree.map(lambda *parts: _assemble(parts, sharding), *slices)

    return run_sharded


def _chunk_program(
    study: StudyLike, grid: Grid, root_key: jax.Array, points: int, common_keys: bool
) -> tuple[Callable[..., Metrics], tuple]:
    """``evaluate_chunk`` bound to ``study`` and the grid's static layout, and its array inputs."""
    names = tuple(a.name for a in grid.numeric_axes)
    inputs = (tuple(jnp.asarray(a.values) for a in grid.numeric_axes), {k: jnp.float64(v) for k, v in grid.fixed.items()}, root_key)
    return functools.partial(evaluate_chunk, study, names, numeric_shape(grid), points, common_keys), inputs


def output_shapes(study: StudyLike, grid: Grid) -> Metrics:
    """Shapes (``[points, *per-point dims]``) and dtypes of a chunk's metrics, without computing any."""
    run, inputs = _chunk_program(study, grid, jax.random.key(0), LANES, common_keys=True)
    return jax.eval_shape(run, jnp.int64(0), *inputs)


def _assemble(parts: typing.Sequence[jax.Array], sharding: jax.sharding.NamedSharding) -> jax.Array:
    """One array sharded along its first axis from the per-device slices ``parts`` (in mesh order)."""
    shape = (sum(p.shape[0] for p in parts), *parts[0].shape[1:])
    return jax.make_array_from_single_device_arrays(shape, sharding, list(parts))


def stream_chunks(
    run: Callable[[int], Metrics], starts: Iterable[int], points: int, total: int
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(start, metrics as NumPy arrays)`` for each chunk start, in order, trimmed at the end of the grid.

    Chunk ``k + 1`` is dispatched before chunk ``k`` is handed over, so the device computes while the caller
    stores; at most two chunks are alive at once, whatever the grid size.
    """
    pending = None
    for start in starts:
        metrics = run(start)
        if pending is not None:
            yield _to_host(*pending, points, total)
        pending = (start, metrics)
    if pending is not None:
        yield _to_host(*pending, points, total)


def _to_host(start: int, metrics: Metrics, points: int, total: int) -> tuple[int, dict[str, np.ndarray]]:
    n = min(points, total - start)
    return start, {name: np.asarray(value)[:n] for name, value in metrics.items()}


def evaluate_numeric_grid(
    study: StudyLike, grid: Grid, root_key: jax.Array, chunk_size: int, common_keys: bool, progress: tqdm
) -> dict[str, np.ndarray]:
    """All metrics of ``study`` over the numeric axes of ``grid``, as arrays shaped like those axes (+ per-point dims).

    ``chunk_size`` counts evaluations (points x Monte Carlo trials), which is what bounds memory.
    """
    shape = numeric_shape(grid)
    total = math.prod(shape)
    points = chunk_points(study, total, chunk_size)
    run = chunk_evaluator(study, grid, root_key, points, common_keys)
    results: dict[str, np.ndarray] = {}
    for start, metrics in stream_chunks(run, range(0, total, points), points, total):
        n = min(points, total - start)
        for name, value in metrics.items():
            if name not in results:
                results[name] = np.empty((total, *value.shape[1:]), dtype=value.dtype)
            results[name][start : start + n] = value
        progress.update(n)
    return {name: values.reshape(shape + values.shape[1:]) for name, values in results.items()}


def categorical_choices(grid: Grid) -> list[tuple[tuple[str, str], ...]]:
    """Every combination of the categorical axes' values, in ``itertools.product`` order, as (name, value) pairs."""
    names = [a.name for a in grid.categorical_axes]
    return [tuple(zip(names, combo)) for combo in itertools.product(*(a.values for a in grid.categorical_axes))]


def choice_study(make_study: StudyFactory, grid: Grid, choices: tuple[tuple[str, str], ...]) -> StudyLike:
    """The study of one combination of categorical choices."""
    return make_study(tuple(grid.static.items()) + choices)


def choice_key(root_key: jax.Array, combo_index: int, common_keys: bool) -> jax.Array:
    """Root key of the numeric sweep of the ``combo_index``-th categorical combination (``root_key`` itself with
    ``common_keys``)."""
    return root_key if common_keys else jax.random.fold_in(root_key, combo_index)


def point_coords(study: StudyLike, used: set[str]) -> dict[str, xr.Variable]:
    """Coordinates of the per-point dims the outputs ``used``, and the study's ``labels`` if it has any: non-index
    coordinates, name -> (dim, values, attrs), which may add a dim (a network's sites)."""
    coords = {d: xr.Variable(d, *study.coords[d]) for d in used}
    labels = getattr(study, "labels", {})
    return coords | {name: xr.Variable(dim, values, dict(attrs)) for name, (dim, values, attrs) in labels.items()}


def variable_attrs(output: Output) -> dict[str, str]:
    return {**cf_attrs(output.units), "long_name": output.long_name, **({ROLE_ATTR: output.role} if output.role else {})}


def progress_bar(total: int, initial: int = 0) -> tqdm:
    """Points done, points/s and ETA on a terminal; quiet when stderr is not one (batch logs)."""
    return tqdm(total=total, initial=initial, unit="pt", unit_scale=True, disable=None, file=sys.stderr, desc="qkdjax")


def run_grid(make_study: StudyFactory, grid: Grid, *, chunk_size: int, seed: int, common_keys: bool = True) -> xr.Dataset:
    """Evaluate a study over every point of ``grid`` and return the labelled cube.

    ``make_study(choices)`` builds the (hashable) study for one combination of static choices; its ``outputs``
    label the variables it returns. ``common_keys``: every point gets the key of ``seed`` (common random
    numbers), else a key of its own.
    """
    numeric_dims = [a.name for a in grid.numeric_axes]
    coords = {a.name: xr.Variable(a.name, a.values, dict(a.attrs)) for a in (*grid.numeric_axes, *grid.categorical_axes)}
    root_key = jax.random.key(seed)
    cubes = []
    with progress_bar(grid.size) as progress:
        for combo_index, choices in enumerate(categorical_choices(grid)):
            study = choice_study(make_study, grid, choices)
            key = choice_key(root_key, combo_index, common_keys)
            arrays = evaluate_numeric_grid(study, grid, key, chunk_size, common_keys, progress)
            outputs = study.outputs
            cube = xr.Dataset({n: ([*numeric_dims, *outputs[n].dims], v, variable_attrs(outputs[n])) for n, v in arrays.items()})
            cube = cube.assign_coords(point_coords(study, {d for n in arrays for d in outputs[n].dims}))
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
