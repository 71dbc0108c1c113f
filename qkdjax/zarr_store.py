"""Streaming sweeps into a Zarr store: chunk by chunk, resumable, shardable over cluster array jobs.

Layout. The engine evaluates, for each combination of categorical values (``combo``), the numeric grid flattened
in C order, in chunks of ``points`` consecutive points. The store keeps every variable over ``(combo, point,
*per-point dims)`` with Zarr chunks of ``(1, points, ...)``: each engine chunk is exactly one Zarr chunk, so a
region write never touches another chunk's bytes and concurrent shards never write the same object. The N-d
labelled cube is a lazy reshape of that (``open_store``). ``chunk_done[combo, chunk]`` (one Zarr chunk per
entry) is set after a chunk's data are written: a rerun skips what is recorded, and ``missing_chunks`` lists
what is not. Before it, ``chunk_crc32c[combo, chunk, variable]`` records the CRC-32C of each variable's stored
(compressed) chunk file, and the ``qkdjax_coordinate_crc32c`` attr those of the coordinates: ``finalize``,
``open_store`` and a resume check every recorded chunk against its file, so a truncated, altered or deleted file
(which Zarr would read as garbage, or as its fill value) is named and never shown as data, and a resume
recomputes it. Checking reads the compressed bytes without decoding them. The store's ``qkdjax_fingerprint``
attr identifies the run (config and layout): a rerun with a different config is refused, before anything is
compiled, instead of mixing two studies in one store.

Memory stays bounded by a few chunks whatever the grid size: the device computes one chunk while the host copies
the previous one and writer threads compress and write up to ``WRITERS`` more.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask.array
import google_crc32c  # a dependency of zarr (its crc32c codec)
import jax
import numcodecs  # a dependency of zarr (its Blosc codec)
import numpy as np
import xarray as xr
import zarr

from qkdjax.config import Grid
from qkdjax.io import StoreError, one_line
from qkdjax.sweep import (
    StudyFactory,
    StudyLike,
    categorical_choices,
    choice_key,
    choice_study,
    chunk_evaluator,
    chunk_points,
    numeric_shape,
    output_shapes,
    point_coords,
    progress_bar,
    stream_chunks,
    variable_attrs,
)

DONE = "chunk_done"
CHECKSUMS = "chunk_crc32c"
LAYOUT_ATTR = "qkdjax_layout"
FINGERPRINT_ATTR = "qkdjax_fingerprint"
COORD_CHECKSUMS_ATTR = "qkdjax_coordinate_crc32c"
WRITERS = 2  # chunks being written at once
VERIFIERS = 8  # chunk files read and checked at once
_INTERNAL_ATTRS = (LAYOUT_ATTR, FINGERPRINT_ATTR, COORD_CHECKSUMS_ATTR)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a cube's grid is cut into chunks: categorical combinations x chunks of the flat numeric grid."""

    categorical: tuple[tuple[str, tuple[str, ...], Mapping[str, str]], ...]  # (name, values, attrs)
    numeric: tuple[str, ...]
    shape: tuple[int, ...]  # numeric axes' lengths
    points: int  # grid points per chunk

    @property
    def combos(self) -> int:
        return math.prod(len(values) for _, values, _ in self.categorical)

    @property
    def total(self) -> int:
        """Points of one combination's numeric grid."""
        return math.prod(self.shape)

    @property
    def chunks_per_combo(self) -> int:
        return -(-self.total // self.points)

    def chunk_ids(self, shard: int = 0, num_shards: int = 1) -> list[tuple[int, int]]:
        """``(combo, chunk)`` of shard ``shard`` of ``num_shards``: one contiguous run of the grid's chunks."""
        count = self.combos * self.chunks_per_combo
        first, last = shard * count // num_shards, (shard + 1) * count // num_shards
        return [divmod(i, self.chunks_per_combo) for i in range(first, last)]

    def points_in(self, chunk: int) -> int:
        return min(self.points, self.total - chunk * self.points)

    def describe(self, combo: int, first: int, last: int) -> str:
        """``chunks 3-4 (points 24-39) of protocol.decoy=none``: where chunks lie in the grid, for messages."""
        chunks = f"chunk {first}" if first == last else f"chunks {first}-{last}"
        where = f"{chunks} (points {first * self.points}-{last * self.points + self.points_in(last) - 1})"
        sizes = [len(values) for _, values, _ in self.categorical]
        choice = [f"{name}={values[i]}" for (name, values, _), i in zip(self.categorical, np.unravel_index(combo, sizes))]
        return f"{where} of {','.join(choice)}" if choice else where

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Layout:
        data = json.loads(text)
        categorical = tuple((name, tuple(values), attrs) for name, values, attrs in data["categorical"])
        return cls(categorical, tuple(data["numeric"]), tuple(data["shape"]), data["points"])


def grid_layout(grid: Grid, study: StudyLike, chunk_size: int) -> Layout:
    shape = numeric_shape(grid)
    categorical = tuple((a.name, tuple(str(v) for v in a.values), dict(a.attrs)) for a in grid.categorical_axes)
    return Layout(categorical, tuple(a.name for a in grid.numeric_axes), shape, chunk_points(study, math.prod(shape), chunk_size))


def fingerprint(identity: str, layout: Layout) -> str:
    """Hash of what determines a store's contents: the run's identity (its config) and its layout."""
    return hashlib.sha256(f"{identity}\n{layout.to_json()}".encode()).hexdigest()


def _template(grid: Grid, study: StudyLike, layout: Layout, shapes: Mapping[str, jax.ShapeDtypeStruct]) -> xr.Dataset:
    """The store's full layout as a lazy Dataset: coordinates, attrs and empty variables chunked like the engine."""
    outputs = study.outputs
    variables = {}
    for name, spec in shapes.items():
        shape = (layout.combos, layout.total, *spec.shape[1:])
        data = dask.array.empty(shape, dtype=spec.dtype, chunks=(1, layout.points, *spec.shape[1:]))
        variables[name] = (("combo", "point", *outputs[name].dims), data, variable_attrs(outputs[name]))
    variables[DONE] = (("combo", "chunk"), dask.array.zeros((layout.combos, layout.chunks_per_combo), dtype=np.uint8, chunks=1))
    checksums = dask.array.zeros((layout.combos, layout.chunks_per_combo, len(shapes)), dtype=np.uint32, chunks=(1, 1, len(shapes)))
    variables[CHECKSUMS] = (("combo", "chunk", "variable"), checksums, {"variables": list(shapes)})
    coords = {a.name: xr.Variable(a.name, a.values, dict(a.attrs)) for a in grid.numeric_axes}
    coords |= point_coords(study, {d for name in shapes for d in outputs[name].dims})
    return xr.Dataset(variables, coords=coords)


def create_store(path: Path, template: xr.Dataset, attrs: Mapping[str, str]) -> None:
    """Write the store's layout (metadata and coordinates, no data) at ``path`` atomically, unless one is there.

    The layout is written to a temporary folder and renamed into place: shards starting at once race for the
    rename, and the losers find the winner's store (same fingerprint) and write into it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        # Blosc LZ4 with byte shuffle: 3x faster to write than zarr's default Zstd, files 10 % larger.
        compressors = [zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")]
        encoding = {name: {"chunks": var.data.chunksize, "compressors": compressors} for name, var in template.data_vars.items()}
        encoding[DONE]["fill_value"] = encoding[CHECKSUMS]["fill_value"] = 0
        encoding |= {name: {"_FillValue": None} for name in template.coords}  # CF: coordinates have no missing values
        # Every chunk gets a file, even one equal to the fill value: a missing file is then always damage.
        template.assign_attrs(attrs).to_zarr(
            tmp, compute=False, encoding=encoding, consolidated=False, zarr_format=3, write_empty_chunks=True
        )
        group = zarr.open_group(tmp, mode="r+", use_consolidated=False)
        group.attrs[COORD_CHECKSUMS_ATTR] = {name: _array_checksums(tmp, group[name]) for name in template.coords}
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open_group(path: Path, mode: str = "r") -> zarr.Group:
    try:
        group = zarr.open_group(path, mode=mode, use_consolidated=False)
    except (FileNotFoundError, NotADirectoryError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        raise StoreError(f"{path} is not a qkdjax Zarr store") from None
    except (ValueError, TypeError, KeyError) as error:  # a damaged zarr.json
        raise StoreError(f"{path} is damaged: its metadata cannot be read ({one_line(error)})") from None
    if LAYOUT_ATTR not in group.attrs:
        raise StoreError(f"{path} is not a qkdjax Zarr store (no {LAYOUT_ATTR} attribute)")
    if COORD_CHECKSUMS_ATTR not in group.attrs:
        raise StoreError(f"{path} has no chunk checksums (an older qkdjax wrote it): delete it and rerun")
    return group


def _array(group: zarr.Group, path: Path, name: str) -> zarr.Array:
    try:
        return group[name]
    except (KeyError, ValueError, TypeError) as error:
        raise StoreError(f"{path} is damaged: its array {name} cannot be opened ({one_line(error)})") from None


def _read(group: zarr.Group, path: Path, name: str) -> np.ndarray:
    """The whole of a bookkeeping array (done marks, checksums), or a ``StoreError`` naming it."""
    try:
        return _array(group, path, name)[...]
    except (ValueError, TypeError, RuntimeError, OSError) as error:  # a damaged chunk of it (Blosc cannot decode)
        raise StoreError(f"{path} is damaged: its {name} array cannot be read ({one_line(error)})") from None


def _chunk_file(root: Path, array: zarr.Array, coords: tuple[int, ...]) -> Path:
    return root / array.path / array.metadata.encode_chunk_key(coords)


def _file_checksum(root: Path, array: zarr.Array, coords: tuple[int, ...]) -> int | None:
    """CRC-32C of the stored bytes of one chunk of ``array``; ``None`` if its file is missing."""
    try:
        return google_crc32c.value(_chunk_file(root, array, coords).read_bytes())
    except FileNotFoundError:
        return None


def _array_checksums(root: Path, array: zarr.Array) -> list[int | None]:
    return [_file_checksum(root, array, coords) for coords in np.ndindex(array.cdata_shape)]


def _grid_chunk(array: zarr.Array, combo: int, chunk: int) -> tuple[int, ...]:
    """Zarr chunk coordinates of engine chunk ``chunk`` of combination ``combo`` (per-point dims are whole)."""
    return (combo, chunk, *(0,) * (array.ndim - 2))


def _damage(found: int | None, recorded: int) -> str | None:
    if found is None:
        return "file missing"
    return None if found == recorded else "fails its checksum"


def damaged_chunks(group: zarr.Group, path: Path, ids: list[tuple[int, int]]) -> dict[tuple[int, int], list[str]]:
    """Of the chunks ``ids`` (recorded done), those whose stored files differ from their checksums: what is wrong."""
    names = _array(group, path, CHECKSUMS).attrs["variables"]
    recorded = _read(group, path, CHECKSUMS)
    arrays = [_array(group, path, name) for name in names]

    def check(ids: tuple[int, int]) -> list[str]:
        combo, chunk = ids
        found = [_file_checksum(path, a, _grid_chunk(a, combo, chunk)) for a in arrays]
        return [f"{name} {why}" for name, f, r in zip(names, found, recorded[combo, chunk]) if (why := _damage(f, r))]

    with ThreadPoolExecutor(max_workers=VERIFIERS) as pool:  # file reads and CRC-32C release the GIL
        return {ids: bad for ids, bad in zip(ids, pool.map(check, ids)) if bad}


def check_coordinates(group: zarr.Group, path: Path) -> None:
    """Refuse a store whose coordinate files differ from the checksums recorded when it was created."""
    for name, recorded in group.attrs[COORD_CHECKSUMS_ATTR].items():
        array = _array(group, path, name)
        for coords, found, expected in zip(np.ndindex(array.cdata_shape), _array_checksums(path, array), recorded):
            if why := _damage(found, expected):
                raise StoreError(f"{path} is damaged: chunk {coords} of coordinate {name} {why} (delete the store and rerun)")


def check_fingerprint(group: zarr.Group, path: Path, expected: str) -> None:
    found = group.attrs.get(FINGERPRINT_ATTR)
    if found != expected:
        raise StoreError(
            f"{path} holds another run's results (config or sweep.chunk_size differ): delete it, or choose another "
            "output.name or output.dir to keep both"
        )


def done_chunks(group: zarr.Group, path: Path) -> np.ndarray:
    """``done[combo, chunk]``: whether each chunk's data are recorded as written."""
    return _read(group, path, DONE).astype(bool)


def stream_grid(
    make_study: StudyFactory,
    grid: Grid,
    path: str | os.PathLike,
    *,
    chunk_size: int,
    seed: int,
    common_keys: bool = True,
    attrs: Mapping[str, str],
    identity: str,
    shard: int = 0,
    num_shards: int = 1,
) -> Path:
    """Evaluate shard ``shard`` of ``num_shards`` of ``grid`` into the Zarr store at ``path``, chunk by chunk.

    Creates the store if needed; chunks already recorded as done are skipped, so rerunning an interrupted command
    finishes the store, and the result is the same whatever was interrupted. A recorded chunk whose files fail
    verification is recomputed. ``identity`` (the run's config as text) must match the store's, which is checked
    before anything is traced or compiled.
    """
    path = Path(path)
    studies = [choice_study(make_study, grid, choices) for choices in categorical_choices(grid)]
    layout = grid_layout(grid, studies[0], chunk_size)
    expected = fingerprint(identity, layout)
    if not path.exists():
        template = _template(grid, studies[0], layout, output_shapes(studies[0], grid))
        create_store(path, template, {**attrs, LAYOUT_ATTR: layout.to_json(), FINGERPRINT_ATTR: expected})
    group = _open_group(path, mode="r+")
    check_fingerprint(group, path, expected)
    done = done_chunks(group, path)
    mine = layout.chunk_ids(shard, num_shards)
    damaged = damaged_chunks(group, path, [ids for ids in mine if done[ids]])
    arrays = {name: array.with_config({"write_empty_chunks": True}) for name, array in group.arrays()}
    if damaged:
        print(f"qkdjax: {path}: recomputing {_listed(_describe_damaged(layout, damaged))}", file=sys.stderr)
        for ids in damaged:
            arrays[DONE][ids] = 0  # done again only once rewritten and checksummed
    todo = [ids for ids in mine if not done[ids] or ids in damaged]
    total, left = (sum(layout.points_in(chunk) for _, chunk in ids) for ids in (mine, todo))
    names = arrays[CHECKSUMS].attrs["variables"]
    root_key = jax.random.key(seed)
    # Chunks are compressed and written by threads while the device computes the next ones; at most WRITERS
    # chunks wait on the host, so memory stays bounded.
    with progress_bar(total, initial=total - left) as progress, ThreadPoolExecutor(max_workers=WRITERS) as writer:
        written, pending = len(mine) - len(todo), collections.deque()
        for combo in sorted({combo for combo, _ in todo}):
            run = chunk_evaluator(studies[combo], grid, choice_key(root_key, combo, common_keys), layout.points, common_keys)
            chunks = [chunk for c, chunk in todo if c == combo]
            starts = [chunk * layout.points for chunk in chunks]
            for chunk, (start, metrics) in zip(chunks, stream_chunks(run, starts, layout.points, layout.total)):
                if len(pending) == WRITERS:
                    pending.popleft().result()
                pending.append(writer.submit(write_chunk, path, arrays, names, combo, chunk, start, metrics))
                written += 1
                progress.set_postfix_str(f"chunks {written}/{len(mine)}", refresh=False)
                progress.update(layout.points_in(chunk))
        for future in pending:
            future.result()
    return path


def write_chunk(
    root: Path, arrays: Mapping[str, zarr.Array], names: list[str], combo: int, chunk: int, start: int, metrics: Mapping[str, np.ndarray]
) -> None:
    """Write one chunk's metrics into its region, then the checksums of their files, then record it as done.

    A whole chunk is encoded here (``chunk_encoder``) and written as one file, a temporary one renamed, its
    checksum taken from the bytes in memory: twice Zarr's rate, which goes through its event loop and then reads
    the file back for the checksum. The grid's last, partial chunk goes through Zarr (it pads the file).
    A kill before the done mark leaves the chunk to redo.
    """
    checksums = []
    for name in names:
        array, values = arrays[name], metrics[name]
        coords = _grid_chunk(array, combo, chunk)
        encode = chunk_encoder(array)
        if encode is not None and values.shape == array.chunks[1:]:
            data = encode(values)
            _write_file(_chunk_file(root, array, coords), data)
            checksums.append(google_crc32c.value(data))
        else:
            array[combo, start : start + len(values)] = values
            checksums.append(_file_checksum(root, array, coords))
    arrays[CHECKSUMS][combo, chunk] = checksums
    arrays[DONE][combo, chunk] = 1


@functools.cache
def _blosc(cname: str, clevel: int, shuffle: str, blocksize: int) -> numcodecs.Blosc:
    modes = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE, "bitshuffle": numcodecs.Blosc.BITSHUFFLE}
    return numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=modes[shuffle], blocksize=blocksize)


def chunk_encoder(array: zarr.Array) -> Callable[[np.ndarray], bytes] | None:
    """The bytes Zarr stores for a whole chunk of ``array`` (little-endian values, one Blosc frame), or None for
    another codec chain (Zarr then writes). Blosc (numcodecs, the library Zarr's codec calls) releases the GIL."""
    codecs = array.metadata.codecs
    if len(codecs) != 2 or not isinstance(codecs[0], zarr.codecs.BytesCodec) or not isinstance(codecs[1], zarr.codecs.BloscCodec):
        return None
    blosc, dtype = codecs[1], array.dtype.newbyteorder("<")
    codec = _blosc(blosc.cname.value, blosc.clevel, blosc.shuffle.value, blosc.blocksize)
    return lambda values: codec.encode(np.ascontiguousarray(values, dtype=dtype)[None])


def _write_file(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all: a temporary file in the same folder, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _listed(items: list[str], limit: int = 20) -> str:
    return "; ".join(items[:limit]) + (f"; ... ({len(items) - limit} more)" if len(items) > limit else "")


def _describe_damaged(layout: Layout, damaged: Mapping[tuple[int, int], list[str]]) -> list[str]:
    """``chunk 3 (points 480-639) of protocol.decoy=infinite (key_rate file missing)`` for each damaged chunk."""
    return [f"{layout.describe(combo, chunk, chunk)} ({', '.join(bad)})" for (combo, chunk), bad in sorted(damaged.items())]


def _missing_runs(layout: Layout, done: np.ndarray) -> list[str]:
    """The runs of consecutive chunks not recorded as done, described for a message."""
    runs: list[list[int]] = []  # [combo, first chunk, last chunk]
    for combo, chunk in np.argwhere(~done).tolist():
        if runs and runs[-1][0] == combo and runs[-1][2] == chunk - 1:
            runs[-1][2] = chunk
        else:
            runs.append([combo, chunk, chunk])
    return [layout.describe(*run) for run in runs]


def missing_chunks(path: str | os.PathLike) -> list[str]:
    """The runs of consecutive chunks of the store at ``path`` whose data are not written, described for a message."""
    path = Path(path)
    group = _open_group(path)
    return _missing_runs(Layout.from_json(group.attrs[LAYOUT_ATTR]), done_chunks(group, path))


def verify_store(path: str | os.PathLike, *, allow_incomplete: bool = False) -> None:
    """Check the store at ``path``: coordinates and every recorded chunk against their checksums, and (unless
    ``allow_incomplete``) that every chunk is recorded. Raises ``StoreError`` naming what is missing or damaged."""
    path = Path(path)
    group = _open_group(path)
    layout = Layout.from_json(group.attrs[LAYOUT_ATTR])
    check_coordinates(group, path)
    done = done_chunks(group, path)
    problems = []
    if missing := ([] if allow_incomplete else _missing_runs(layout, done)):
        problems.append(f"lacks {_listed(missing)}")
    if damaged := damaged_chunks(group, path, [tuple(ids) for ids in np.argwhere(done).tolist()]):
        problems.append(f"has damaged {_listed(_describe_damaged(layout, damaged))}")
    if problems:
        redo = " (a rerun recomputes damaged chunks)" if damaged else ""
        raise StoreError(f"{path} {' and '.join(problems)}: rerun the shards that write them{redo}")


def finalize(path: str | os.PathLike) -> Path:
    """Verify every chunk of the store (``verify_store``) and consolidate its metadata. Raises ``StoreError``."""
    verify_store(path)
    return consolidate(path)


def consolidate(path: str | os.PathLike) -> Path:
    """Consolidate the metadata of a verified store (so readers open it with one read)."""
    with warnings.catch_warnings():  # consolidated metadata is a Zarr v3 extension that zarr-python warns about
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(path)
    return Path(path)


def open_store(path: str | os.PathLike, *, allow_incomplete: bool = False, verify: bool = True) -> xr.Dataset:
    """The labelled N-d cube of a Zarr store, lazily (Dask): dims as in the netCDF cube, no data loaded.

    First verifies the store (``verify_store``: reads every chunk's compressed bytes, not decoded) unless
    ``verify=False`` (a store just verified). Refuses an incomplete store (its missing chunks would read as NaN)
    unless ``allow_incomplete``, and a damaged one always.
    """
    if verify:
        verify_store(path, allow_incomplete=allow_incomplete)
    with warnings.catch_warnings():  # a shard's store is read before finalize consolidates it
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        flat = xr.open_zarr(path, consolidated=None, chunks={})
    layout = Layout.from_json(flat.attrs[LAYOUT_ATTR])
    cat_dims = [name for name, _, _ in layout.categorical]
    cat_shape = tuple(len(values) for _, values, _ in layout.categorical)
    variables = {}
    for name, var in flat.data_vars.items():
        if name in (DONE, CHECKSUMS):
            continue
        extra = var.dims[2:]
        data = var.data.reshape(cat_shape + layout.shape + var.shape[2:])
        variables[name] = ((*cat_dims, *layout.numeric, *extra), data, var.attrs)
    coords = {name: xr.Variable(name, np.asarray(values, dtype=object), attrs) for name, values, attrs in layout.categorical}
    coords |= {name: flat[name].variable for name in flat.coords}
    attrs = {k: v for k, v in flat.attrs.items() if k not in _INTERNAL_ATTRS}
    cube = xr.Dataset(variables, coords=coords, attrs=attrs)
    cube.encoding["source"] = str(path)
    return cube
