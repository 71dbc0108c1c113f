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

from qkdjax.units import units_of

PROVENANCE_ATTRS = ("qkdjax_version", "config")  # what every cube qkdjax writes carries


class StoreError(ValueError):
    """A cube or Zarr store that cannot be resumed or read: another run's, incomplete, damaged or not qkdjax's.

    One line, naming the file.
    """


def one_line(error: BaseException | str) -> str:
    """A library's multi-line message (Hydra's, YAML's, HDF5's) on one line, with the first line of its cause."""
    cause = str(getattr(error, "__cause__", None) or "").strip()
    text = " ".join(str(error).split()) or type(error).__name__
    return text + (f" ({cause.splitlines()[0]})" if cause else "")


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
    so cubes larger than memory can be sliced and reduced; an incomplete or damaged store is refused. A file that
    cannot be read, or that qkdjax did not write (no provenance attrs), raises ``StoreError``.
    """
    if Path(path).is_dir():
        from qkdjax.zarr_store import open_store

        cube = open_store(path)
    else:
        try:
            with xr.open_dataset(path, engine="h5netcdf") as opened:
                cube = opened.load()
        # h5py reports a truncated or altered file as any of these, depending on which bytes are damaged.
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError) as error:
            raise StoreError(f"{path} is not a readable netCDF file ({one_line(error)})") from None
    missing = [name for name in PROVENANCE_ATTRS if name not in cube.attrs]
    if missing:
        raise StoreError(f"{path} was not written by qkdjax (it has no {' or '.join(missing)} attribute)")
    return cube


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


def _label(cube: xr.Dataset, index: int) -> str:
    return cube.encoding.get("source", f"cube {index + 1}")


def _signature(cube: xr.Dataset) -> dict[str, tuple]:
    """What cubes of one study share: each variable's dims and units."""
    return {name: (var.dims, units_of(var.attrs, "")) for name, var in cube.data_vars.items()}


def _shown(signature: tuple | None) -> str:
    return "absent" if signature is None else f"over ({', '.join(signature[0])}) in {signature[1]}"


def merge_cubes(cubes: Sequence[xr.Dataset], designs: Sequence[str] | None = None) -> xr.Dataset:
    """Combine cubes of a multirun (or of grid shards) into one, by coordinates.

    Each setting that differs between the cubes becomes a new dim (``detector``, or a dotted config path); the
    result carries every input's config. Cubes merge when they form one grid: written by qkdjax (not merged
    cubes themselves), with the same variables over the same dims in the same units, and coordinates that tile
    the merged grid, each of its points from exactly one cube (so it has no NaN the inputs lacked). Otherwise
    raises ``ValueError`` naming the cube that does not fit.

    ``designs``: one name per cube, the designs of a comparison (``compare``), merged along a new ``design`` dim
    instead. Designs share their grid; a variable that only some of them define (e.g. the optimised value of one
    protocol's parameter) is NaN for the others and lists its designs in its ``designs`` attr.
    """
    if len(cubes) < 2:
        raise ValueError(f"merge needs at least two cubes, got {len(cubes)}")
    for i, cube in enumerate(cubes):
        if "merged_dims" in cube.attrs or not {"config", "choices"} <= cube.attrs.keys():
            raise ValueError(f"{_label(cube, i)} is not a cube of one qkdjax run (merge the cubes it came from)")
    first = _signature(cubes[0])
    for i, cube in enumerate(cubes[1:], 1):
        signature = _signature(cube)
        shared = first.keys() & signature.keys() if designs else first.keys() | signature.keys()
        if differing := sorted(n for n in shared if first.get(n) != signature.get(n)):
            name = differing[0]
            raise ValueError(
                f"cubes do not form one grid: {name} is {_shown(first.get(name))} in {_label(cubes[0], 0)} "
                f"but {_shown(signature.get(name))} in {_label(cube, i)}"
            )
    if designs is not None:
        return _merge_designs(cubes, list(designs))
    varying = varying_settings(cubes)
    expanded = [c.expand_dims({dim: [values[i]] for dim, values in varying.items()}) for i, c in enumerate(cubes)]
    try:
        merged = xr.combine_by_coords(expanded, join="outer", combine_attrs="drop_conflicts")
    except ValueError as error:
        raise ValueError(f"cubes do not form one grid: {one_line(error)}") from None
    repeated = [dim for dim, index in merged.indexes.items() if not index.is_unique]
    if repeated:
        raise ValueError(f"cubes do not form one grid: they overlap in {', '.join(repeated)} (a point in two cubes)")
    name = next(iter(first))
    held, spanned = sum(c[name].size for c in cubes), merged[name].size
    if held != spanned:
        raise ValueError(
            f"cubes do not form one grid: they hold {held} points of {name}, their merged grid {spanned} (the rest would be NaN)"
        )
    for dim in varying:
        merged[dim].attrs.setdefault("long_name", f"Hydra choice of {dim}" if "." not in dim else dim)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    histories = [c.attrs["history"] for c in cubes if "history" in c.attrs]
    merged.attrs.update(
        config="---\n".join(c.attrs["config"] for c in cubes),
        qkdjax_version=" ".join(dict.fromkeys(c.attrs.get("qkdjax_version", "unknown") for c in cubes)),
        merged_dims=json.dumps(list(varying)),
        created=created,
        history="\n".join([*histories, f"{created}: qkdjax merge of {len(cubes)} cubes along {', '.join(varying) or 'their grids'}"]),
    )
    return merged


def _merge_designs(cubes: Sequence[xr.Dataset], designs: list[str]) -> xr.Dataset:
    """``cubes`` of one grid, one per design, along a new ``design`` dim (``merge_cubes``)."""
    if len(set(designs)) != len(cubes):
        raise ValueError(f"designs {designs} must be {len(cubes)} distinct names, one per cube")
    for design, cube in zip(designs[1:], cubes[1:]):
        if cube.sizes != cubes[0].sizes or not all(cube.indexes[dim].equals(index) for dim, index in cubes[0].indexes.items()):
            raise ValueError(f"the designs do not share one grid: {design}'s cube has other coordinates than {designs[0]}'s")
    merged = xr.concat(cubes, dim="design", data_vars="all", coords="minimal", join="exact", combine_attrs="drop_conflicts")
    merged = merged.assign_coords(design=("design", designs, {"long_name": "design compared (compare)"}))
    for name in merged.data_vars:
        holders = [design for design, cube in zip(designs, cubes) if name in cube]
        if len(holders) < len(designs):
            merged[name].attrs["designs"] = " ".join(holders)  # NaN for the other designs
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    merged.attrs.update(
        config="---\n".join(c.attrs["config"] for c in cubes),
        design_overrides=json.dumps({design: json.loads(c.attrs["overrides"]) for design, c in zip(designs, cubes)}),
        created=created,
    )
    return merged
