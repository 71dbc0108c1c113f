"""What a study needs of the machine, checked before anything is compiled: memory per chunk, the cube, disk.

The estimates are upper bounds from the study's own shape (points per chunk, evaluations per point, outputs and
their per-point dims), so a run that would exhaust memory or disk hours in is refused with one line at the start.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from qkdjax.config import ConfigError, Grid, Settings
from qkdjax.sweep import LANES, StudyLike, categorical_choices, choice_study, chunk_points, numeric_shape

# Working memory of one evaluation inside a compiled chunk: a 262,144-point fibre chunk peaks 0.38 GB above the
# process's baseline (1.45 kB per evaluation, measured on CPU); rounded up.
BYTES_PER_EVALUATION = 2048
FLOAT_BYTES = 8


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def output_bytes_per_point(study: StudyLike) -> int:
    """Bytes of one grid point's outputs (float64), per-point dims (quantiles, trials) included."""
    return FLOAT_BYTES * sum(math.prod(len(study.coords[d][0]) for d in output.dims) for output in study.outputs.values())


def working_bytes_per_point(study: StudyLike) -> int:
    """Working memory of one grid point in a compiled chunk: its evaluations, and an optimiser's step history."""
    steps = 0
    optimizer, inverse = getattr(study, "optimizer", None), getattr(study, "inverse", None)
    if optimizer is not None:
        steps = optimizer.starts * optimizer.steps + (inverse.optimize_steps if inverse is not None else 0)
    return study.evaluations_per_point * BYTES_PER_EVALUATION + FLOAT_BYTES * steps


def available_memory_bytes() -> int:
    """Memory a new allocation can get now: Linux's MemAvailable, else the free physical pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def device_memory_bytes() -> int:
    """Memory the chunks are computed in: the accelerators' free memory summed, or the host's for CPUs."""
    import jax

    stats = [device.memory_stats() for device in jax.local_devices()]
    if all(s and "bytes_limit" in s for s in stats):
        return sum(s["bytes_limit"] - s.get("bytes_in_use", 0) for s in stats)
    return available_memory_bytes()


def _free_disk_bytes(folder: Path) -> int:
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return shutil.disk_usage(existing).free


def check_resources(grid: Grid, settings: Settings, make_study: Callable, path: Path | None) -> None:
    """Refuse a study whose chunks, in-memory cube (netCDF or ``qkdjax.run``) or written cube cannot fit."""
    total = math.prod(numeric_shape(grid))
    studies = [choice_study(make_study, grid, choices) for choices in categorical_choices(grid)]
    chunk_bytes, chunk_of = 0, 0
    for study in studies:
        points = chunk_points(study, total, settings.chunk_size)
        # one chunk computing while the one before it is handed over
        needed = points * (working_bytes_per_point(study) + 2 * output_bytes_per_point(study))
        chunk_bytes, chunk_of = max((chunk_bytes, chunk_of), (needed, points))
    memory = device_memory_bytes()
    if chunk_bytes > memory:
        fix = (
            f"lower sweep.chunk_size (now {settings.chunk_size})"
            if chunk_of > LANES
            else f"even a chunk of {LANES} points is too large: lower montecarlo.trials, optimize.starts, optimize.steps or the sizes the study simulates (link.trusted_nodes, link.paths, the network's links)"
        )
        raise ConfigError(
            f"a chunk of {chunk_of} points needs about {_gib(chunk_bytes)} of memory, more than the {_gib(memory)} available: {fix}"
        )
    cube_bytes = total * sum(output_bytes_per_point(s) for s in studies)
    streamed = path is not None and settings.output_format == "zarr"
    if not streamed and cube_bytes > available_memory_bytes():
        raise ConfigError(
            f"the cube of {grid.size:.3g} points needs {_gib(cube_bytes)} in memory, more than the {_gib(available_memory_bytes())} "
            "available: stream it to disk with output.format=zarr (and split it over jobs with sweep.num_shards), or use fewer points"
        )
    # A resumed store was checked when it was made; what it holds already is not asked for again.
    if path is not None and not path.exists() and cube_bytes > _free_disk_bytes(path.parent):
        raise ConfigError(
            f"the cube of {grid.size:.3g} points needs up to {_gib(cube_bytes)} on disk, more than the "
            f"{_gib(_free_disk_bytes(path.parent))} free under output.dir = {settings.output_dir}: use fewer points or another output.dir"
        )
