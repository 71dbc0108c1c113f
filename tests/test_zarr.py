"""Zarr cubes: streamed chunk by chunk, resumable after a kill, shardable into one store, opened lazily."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import dask.array
import jax
import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import refused, run_cli

import qkdjax
from qkdjax import zarr_store
from qkdjax.config import ConfigError
from qkdjax.io import StoreError
from qkdjax.zarr_store import finalize, missing_chunks

# 2 decoy choices x 61 distances x 4 attenuations x 5 efficiencies; 160-point chunks: 8 chunks per choice, the last short.
GRID = ("link.distance_km=${linspace:0,240,61}", "protocol.decoy=[infinite,vacuum_weak]", "sweep.chunk_size=160")


def zarr_run(tmp_path, *overrides, name="cube"):
    return qkdjax.run(*GRID, "output.format=zarr", f"output.dir={tmp_path}", f"output.name={name}", *overrides, write=True)


def assert_same_values(a: xr.Dataset, b: xr.Dataset) -> None:
    """Every variable and coordinate bitwise equal (attrs such as ``created`` may differ)."""
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        assert a[name].dims == b[name].dims, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name, strict=True)


@pytest.fixture(scope="module")
def in_memory():
    return qkdjax.run(*GRID)


@pytest.mark.device
def test_zarr_store_opens_as_the_in_memory_cube_whatever_the_chunk_size(tmp_path, in_memory):
    for chunk_size in (160, 1000):
        cube = zarr_run(tmp_path, f"sweep.chunk_size={chunk_size}", name=f"c{chunk_size}")
        assert (tmp_path / f"c{chunk_size}.zarr" / "zarr.json").is_file()
        assert isinstance(cube.key_rate.data, dask.array.Array)
        assert_same_values(cube, in_memory)
        assert cube.attrs["choices"] == in_memory.attrs["choices"]
        assert cube.key_rate.attrs == in_memory.key_rate.attrs
        assert cube["link.distance_km"].attrs == in_memory["link.distance_km"].attrs


@pytest.mark.parametrize(
    "overrides",
    [
        (
            "sweep=lim_2014",
            "optimize.enabled=false",
            "montecarlo.trials=16",
            "protocol.block_size=[1e5,1e6]",
            "link.distance_km=[10,50,90]",
            "sweep.chunk_size=64",
        ),
        ("link.distance_km=10", "link.attenuation_db_per_km=0.2", "detector.efficiency=0.1", "protocol.decoy=[infinite,none]"),
    ],
    ids=["monte_carlo_quantiles", "no_numeric_axis"],
)
def test_stores_of_other_shapes_open_as_their_cubes(tmp_path, overrides):
    cube = qkdjax.run(*overrides, "output.format=zarr", f"output.dir={tmp_path}", write=True)
    assert_same_values(cube, qkdjax.run(*overrides))


def test_each_engine_chunk_is_one_zarr_chunk(tmp_path):
    zarr_run(tmp_path)
    group = zarr.open_group(tmp_path / "cube.zarr", mode="r")
    assert group["key_rate"].shape == (2, 61 * 4 * 5) and group["key_rate"].chunks == (1, 160)
    assert group["chunk_done"][...].all()


@pytest.mark.parametrize(("dtype", "chunk_shape"), [("f8", (1, 8)), ("f8", (1, 8, 3)), ("u1", (1, 8)), ("i8", (1, 8, 2))])
def test_chunks_encoded_here_are_the_bytes_zarr_writes(tmp_path, dtype, chunk_shape):
    group = zarr.open_group(tmp_path / "s.zarr", mode="w", zarr_format=3)
    blosc = [zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")]
    ours, theirs = (
        group.create_array(name, shape=(2, 24, *chunk_shape[2:]), chunks=chunk_shape, dtype=dtype, compressors=blosc) for name in "ab"
    )
    values = (np.random.default_rng(0).random(chunk_shape[1:]) * 200).astype(dtype)
    theirs[1, 8:16] = values
    coords = (1, 1, *(0,) * (len(chunk_shape) - 2))
    chunk_file = zarr_store._chunk_file(tmp_path / "s.zarr", ours, coords)
    zarr_store._write_file(chunk_file, zarr_store.chunk_encoder(ours)(values))
    assert chunk_file.read_bytes() == zarr_store._chunk_file(tmp_path / "s.zarr", theirs, coords).read_bytes()
    np.testing.assert_array_equal(ours[1, 8:16], values)


def test_rerun_of_a_finished_store_computes_nothing(tmp_path):
    zarr_run(tmp_path)
    key_rate = tmp_path / "cube.zarr" / "key_rate"
    before = {p: p.stat().st_mtime_ns for p in key_rate.rglob("*")}
    zarr_run(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in key_rate.rglob("*")} == before


def test_resuming_with_another_config_is_refused_before_compiling(tmp_path):
    zarr_run(tmp_path)
    compiled = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        with pytest.raises(StoreError, match=r"cube\.zarr holds another run's results"):
            zarr_run(tmp_path, "detector.efficiency=[0.1,0.3]")
        with pytest.raises(StoreError, match="another run's results"):
            zarr_run(tmp_path, "sweep.chunk_size=320")
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiled == []


def test_shards_fill_one_store_and_finalize_lists_what_is_missing(tmp_path, in_memory):
    store = tmp_path / "cube.zarr"
    for shard in (2, 0):
        zarr_run(tmp_path, "sweep.num_shards=3", f"sweep.shard={shard}")
    assert missing_chunks(store) == [
        "chunks 5-7 (points 800-1219) of protocol.decoy=infinite",
        "chunks 0-1 (points 0-319) of protocol.decoy=vacuum_weak",
    ]
    with pytest.raises(StoreError, match=r"lacks chunks 5-7 \(points 800-1219\) of protocol.decoy=infinite; chunks 0-1"):
        finalize(store)
    with pytest.raises(StoreError, match=r"lacks chunks 5-7 \(points 800-1219\)"):
        qkdjax.open_cube(store)
    zarr_run(tmp_path, "sweep.num_shards=3", "sweep.shard=1")
    assert finalize(store) == store
    assert "consolidated_metadata" in (store / "zarr.json").read_text()
    cube = qkdjax.open_cube(store)
    assert_same_values(cube, in_memory)
    assert "sweep.shard" not in cube.attrs["rerun"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("sweep.num_shards=0",), r"sweep.num_shards = 0 must be an integer >= 1"),
        (("sweep.num_shards=2",), r"sweep.shard is not set, but sweep.num_shards = 2: give sweep.shard in 0..1"),
        (("sweep.num_shards=2", "sweep.shard=2"), r"sweep.shard = 2 must be an integer in \[0, sweep.num_shards = 2\)"),
        (("sweep.shard=-1",), r"sweep.shard = -1 must be an integer in \[0, sweep.num_shards = 1\)"),
        (("sweep.num_shards=2", "sweep.shard=0", "output.format=netcdf"), r"set output.format=zarr \(not 'netcdf'\)"),
        (("output.format=hdf5",), r"output.format = 'hdf5' is not one of: netcdf, zarr"),
    ],
)
def test_shard_settings_are_checked(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        qkdjax.run("link.distance_km=[10]", f"output.dir={tmp_path}", *overrides, write=True)


def test_analysis_of_a_lazy_cube_matches_the_in_memory_one(tmp_path, in_memory):
    cube = zarr_run(tmp_path)
    reach = cube["link.distance_km"].where(cube.key_rate > 0).max("link.distance_km")
    assert isinstance(reach.data, dask.array.Array)  # nothing loaded yet
    expected = in_memory["link.distance_km"].where(in_memory.key_rate > 0).max("link.distance_km")
    xr.testing.assert_identical(reach.compute(), expected)
    point = {"link.distance_km": 100.0, "link.attenuation_db_per_km": 0.2, "detector.efficiency": 0.1, "protocol.decoy": "infinite"}
    assert float(cube.key_rate.sel(point)) == float(in_memory.key_rate.sel(point))


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_store(tmp_path):
    """kill -9 a CLI run once some chunks are recorded; rerunning the command finishes an identical store."""
    args = ["link.distance_km=${linspace:0,250,2001}", "output.format=zarr", "output.name=big", "sweep.chunk_size=160"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "qkdjax", *args]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_dir = tmp_path / "results" / "big.zarr" / "chunk_done" / "c"
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline and len(list(done_dir.rglob("*")) if done_dir.is_dir() else []) < 12:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    store = tmp_path / "results" / "big.zarr"
    recorded = zarr.open_group(store, mode="r")["chunk_done"][...]
    print(f"killed after {recorded.sum()} of {recorded.size} chunks")
    assert 0 < recorded.sum() < recorded.size, "the kill came before any chunk or after the last"
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "results/big.zarr"
    assert "pt/s" not in result.stderr  # no progress bar in a batch log
    uninterrupted = qkdjax.run(*args, f"output.dir={tmp_path}/fresh", write=True)
    assert_same_values(qkdjax.open_cube(store).load(), uninterrupted.load())


@pytest.mark.slow
def test_shards_as_an_array_of_jobs_through_the_submitit_launcher(tmp_path, in_memory):
    """What hydra/launcher=slurm does on a cluster, with submitit's local launcher: 3 shard jobs, then finalize."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    shards = ("--multirun", "hydra/launcher=submitit_local", "output.format=zarr", "sweep.num_shards=3", "sweep.shard=range(3)")
    result = run_cli(*shards, *GRID, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [store] = (tmp_path / "results").glob("*.zarr")  # the shards' one shared store
    assert not missing_chunks(store)
    result = run_cli("finalize", str(store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(store)
    assert_same_values(qkdjax.open_cube(store).load(), in_memory)


def test_finalize_command_checks_every_store_before_consolidating_any(tmp_path, capsys):
    zarr_run(tmp_path, "sweep.num_shards=2", "sweep.shard=1")
    zarr_run(tmp_path, name="complete")
    complete = tmp_path / "complete.zarr" / "zarr.json"
    before = complete.read_bytes()
    line = refused(capsys, "finalize", str(complete.parent), str(tmp_path / "cube.zarr"))
    assert "cube.zarr lacks chunks 0-7 (points 0-1219) of protocol.decoy=infinite: rerun the shards" in line
    assert complete.read_bytes() == before  # the good store is not consolidated either


def test_slurm_launcher_preset_composes_with_its_fields():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from qkdjax.cli import compose_config

    _, hydra_cfg = compose_config("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30")
    launcher = hydra_cfg.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_node) == ("gpu", 30, 1)
    assert launcher.array_parallelism > 0


def test_merge_combines_zarr_stores_of_a_multirun(tmp_path):
    grid = ("link.distance_km=[10,20]", "output.format=zarr", f"output.dir={tmp_path}")
    for detector in ("ingaas_apd", "snspd"):
        qkdjax.run(*grid, f"detector={detector}", f"output.name={detector}", write=True)
    out = tmp_path / "merged.nc"
    result = run_cli("merge", str(tmp_path / "ingaas_apd.zarr"), str(tmp_path / "snspd.zarr"), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    merged = qkdjax.open_cube(out)
    assert list(merged.detector.values) == ["ingaas_apd", "snspd"]
    expected = qkdjax.run("link.distance_km=[10,20]", "detector=snspd").key_rate
    np.testing.assert_array_equal(merged.key_rate.sel(detector="snspd", drop=True).values, expected.values)


# Damage done to a finished store: (file under the store, what is done to it, what finalize says of it).
DAMAGE = {
    "truncated": ("key_rate/c/1/3", lambda f: f.write_bytes(f.read_bytes()[:50]), "chunk 3 (points 480-639) of protocol.decoy=vacuum_weak (key_rate fails its checksum)"),
    "altered": ("qber/c/0/7", lambda f: f.write_bytes(f.read_bytes()[:-1] + b"x"), "chunk 7 (points 1120-1219) of protocol.decoy=infinite (qber fails its checksum)"),
    "deleted": ("gain/c/0/0", lambda f: f.unlink(), "chunk 0 (points 0-159) of protocol.decoy=infinite (gain file missing)"),
    "coordinate": ("link.distance_km/c/0", lambda f: f.unlink(), "chunk (0,) of coordinate link.distance_km file missing"),
    "done mark": ("chunk_done/c/1/2", lambda f: f.write_bytes(b"\x00\x01"), "is damaged: its chunk_done array cannot be read"),
    "array metadata": ("key_rate/zarr.json", lambda f: f.unlink(), "its array key_rate cannot be opened"),
    "store metadata": ("zarr.json", lambda f: f.write_bytes(b"{not json"), "is damaged: its metadata cannot be read"),
    "not a store": ("zarr.json", lambda f: f.unlink(), "is not a qkdjax Zarr store"),
}  # fmt: skip


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    zarr_run(folder)
    return folder / "cube.zarr"


def damaged_copy(finished_store, tmp_path, damage):
    store = tmp_path / "cube.zarr"
    shutil.copytree(finished_store, store)
    file, harm, _ = DAMAGE[damage]
    harm(store / file)
    return store


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_store_is_named_in_one_line_and_never_read(finished_store, tmp_path, capsys, damage):
    store = damaged_copy(finished_store, tmp_path, damage)
    files = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    message = DAMAGE[damage][2]
    assert message in refused(capsys, "finalize", str(store))
    assert message in refused(capsys, "report", str(store), "--out", str(tmp_path / "report"))
    assert message in refused(capsys, "merge", str(store), str(finished_store), "--out", str(tmp_path / "m.nc"))
    with pytest.raises(StoreError, match=re.escape(message)):
        qkdjax.open_cube(store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr"]  # no report, no merged cube
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == files  # not consolidated


@pytest.mark.parametrize("damage", ["truncated", "altered", "deleted"])
def test_a_resume_recomputes_damaged_chunks_to_the_same_values(finished_store, tmp_path, in_memory, damage, capsys):
    store = damaged_copy(finished_store, tmp_path, damage)
    cube = zarr_run(tmp_path)
    assert f"recomputing {DAMAGE[damage][2]}" in capsys.readouterr().err
    assert_same_values(cube.load(), in_memory)
    assert_same_values(qkdjax.open_cube(store).load(), in_memory)
