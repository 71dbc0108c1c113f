"""Reading, writing and merging result cubes."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import xarray as xr
import yaml


class StoreError(ValueError):
    """A Zarr store that cannot be resumed or read: another run's, or incomplete. One line, naming the store."""


def write_netcdf(cube: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``cube`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    A reader never sees a half-written file and an interrupted write leaves any previous file untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    encoding = {name: {"zlib": True, "complevel": 1} for name in cube.data_vars}
    encoding |= {name: {"_FillValue": None} for name in cube.coords}  # CF: coordinates have no missing values
    try:
        cube.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def open_cube(path: str | os.PathLike) -> xr.Dataset:
    """Open a cube written by qkdjax: a netCDF file loaded into memory (file closed), or a Zarr store lazily.

    A Zarr store (``output.format=zarr``, a folder) opens as the same labelled N-d cube backed by Dask arrays,
    so cubes larger than memory can be sliced and reduced; an incomplete store is refused.
    """
    if Path(path).is_dir():
        from qkdjax.zarr_store import open_store

        return open_store(path)
    with xr.open_dataset(path, engine="h5netcdf") as cube:
        return cube.load()


def _flatten(node, prefix=()) -> dict[str, object]:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flatten(value, (*prefix, str(key))).items()}
    return {".".join(prefix): json.dumps(node)}


def varying_settings(cubes: Sequence[xr.Dataset]) -> dict[str, list]:
    """What differs between the runs behind ``cubes``: Hydra group choices first, then single config values.

    A differing group choice (``detector=snspd``) names the dim; config values under such a group follow from
    the choice and are not dims of their own. Values that are already dims of the cubes are left to the merge.
    """
    choices = [json.loads(c.attrs["choices"]) for c in cubes]
    configs = [_flatten(yaml.safe_load(c.attrs["config"])) for c in cubes]
    varying = {}
    for group in choices[0]:
        values = [c.get(group) for c in choices]
        if len(set(values)) > 1:
            varying[group] = values
    for key in configs[0]:
        values = [c.get(key) for c in configs]
        group = key.split(".")[0]
        if len(set(values)) > 1 and group not in varying and key not in cubes[0].dims and group != "output":
            varying[key] = [json.loads(v) for v in values]
    return varying


def merge_cubes(cubes: Sequence[xr.Dataset]) -> xr.Dataset:
    """Combine cubes of a multirun (or of grid shards) into one, by coordinates.

    Each setting that differs between the cubes becomes a new dim (``detector``, or a dotted config path); the
    result carries every input's config.
    """
    if len(cubes) < 2:
        raise ValueError(f"merge needs at least two cubes, got {len(cubes)}")
    varying = varying_settings(cubes)
    expanded = [c.expand_dims({dim: [values[i]] for dim, values in varying.items()}) for i, c in enumerate(cubes)]
    try:
        merged = xr.combine_by_coords(expanded, combine_attrs="drop_conflicts")
    except ValueError as error:
        raise ValueError(f"cubes do not form one grid: {error}") from None
    for dim in varying:
        merged[dim].attrs.setdefault("long_name", f"Hydra choice of {dim}" if "." not in dim else dim)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    histories = [c.attrs["history"] for c in cubes if "history" in c.attrs]
    merged.attrs.update(
        config="---\n".join(c.attrs["config"] for c in cubes),
        merged_dims=json.dumps(list(varying)),
        created=created,
        history="\n".join([*histories, f"{created}: qkdjax merge of {len(cubes)} cubes along {', '.join(varying) or 'their grids'}"]),
    )
    return merged
