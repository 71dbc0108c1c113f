"""The sweep engine: cube layout, labels, provenance, determinism and compile-once behaviour."""

import dataclasses
import json
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
import yaml

import qkdjax
from qkdjax.config import Axis, Grid
from qkdjax.protocols.bb84_decoy import ASYMPTOTIC_OUTPUTS as OUTPUTS
from qkdjax.sweep import Output, evaluate_chunk, point_key, run_grid


def test_default_cube_layout_and_labels():
    cube = qkdjax.run()
    assert dict(cube.sizes) == {"link.distance_km": 501, "link.attenuation_db_per_km": 4, "detector.efficiency": 5}
    assert cube.sizes["link.distance_km"] * 4 * 5 >= 10_000
    assert cube["link.distance_km"].attrs == {"units": "km", "long_name": "fibre length", "qkdjax_role": "distance"}
    assert cube["link.attenuation_db_per_km"].attrs["non_udunits_units"] == "dB/km"
    assert set(cube.data_vars) == set(OUTPUTS)
    for name, attrs in OUTPUTS.items():
        assert cube[name].attrs == {
            "units": attrs.units,
            "long_name": attrs.long_name,
            **({"qkdjax_role": attrs.role} if attrs.role else {}),
        }
        assert cube[name].dtype == np.float64
    assert cube.key_rate.attrs["units"] == "bit/s"
    point = cube.sel({"link.distance_km": 100.0, "link.attenuation_db_per_km": 0.2, "detector.efficiency": 0.1})
    assert float(point.channel_transmittance) == pytest.approx(0.01, rel=1e-12)
    np.testing.assert_array_equal(cube.key_rate, cube.key_rate_per_pulse * 1e9)


def test_cube_carries_its_config_and_version():
    cube = qkdjax.run("link.distance_km=[10,20]")
    config = yaml.safe_load(cube.attrs["config"])
    assert config["link"]["distance_km"] == [10.0, 20.0]
    assert config["detector"]["efficiency"] == [0.05, 0.1, 0.15, 0.2, 0.25]
    assert cube.attrs["qkdjax_version"] == qkdjax.__version__
    assert json.loads(cube.attrs["choices"])["sweep"] == "default"
    assert cube.attrs["rerun"] == "qkdjax link.distance_km=[10,20]"
    assert "created" in cube.attrs


def test_each_point_equals_a_run_of_that_point_alone():
    cube = qkdjax.run("link.distance_km=[0,75,150]", "detector.efficiency=[0.1,0.2]")
    # one-point axes, traced like the grid's: as plain scalars they are compile-time constants, which XLA folds
    # in its own order (the last bit of the key rate may differ)
    alone = qkdjax.run("link.distance_km=[75]", "detector.efficiency=[0.2]", "link.attenuation_db_per_km=0.18")
    point = cube.sel({"link.distance_km": 75.0, "detector.efficiency": 0.2, "link.attenuation_db_per_km": 0.18})
    for name in OUTPUTS:
        assert float(point[name]) == float(alone[name].squeeze())


def test_categorical_axes_keep_the_given_order():
    cube = qkdjax.run(
        "protocol.decoy=[vacuum_weak,none,infinite]", "link.distance_km=[30]", "link.attenuation_db_per_km=0.2", "detector.efficiency=0.1"
    )
    assert next(iter(cube.dims)) == "protocol.decoy"
    assert list(cube["protocol.decoy"].values) == ["vacuum_weak", "none", "infinite"]
    rates = cube.key_rate.squeeze()
    assert float(rates.sel({"protocol.decoy": "infinite"})) > float(rates.sel({"protocol.decoy": "vacuum_weak"})) > 0


@pytest.mark.device
def test_same_cube_whatever_the_chunk_size():
    reference = qkdjax.run("sweep.chunk_size=4096")
    for chunk_size in (1, 999, 1_000_000):
        other = qkdjax.run(f"sweep.chunk_size={chunk_size}")
        for name in OUTPUTS:
            np.testing.assert_array_equal(other[name].values, reference[name].values)


def test_second_sweep_of_the_same_shape_does_not_recompile():
    qkdjax.run("link.distance_km=${linspace:0,100,101}", "sweep.chunk_size=64")
    compiled = evaluate_chunk._cache_size()
    qkdjax.run("link.distance_km=${linspace:100,200,101}", "sweep.chunk_size=64", "source.mu_signal=0.6")
    assert evaluate_chunk._cache_size() == compiled


def test_point_keys_are_distinct_beyond_32_bits():
    root = jax.random.key(0)
    keys = [point_key(root, jnp.int64(i)) for i in (0, 1, 2**32, 2**32 + 1)]
    data = {tuple(np.asarray(jax.random.key_data(k)).tolist()) for k in keys}
    assert len(data) == 4


@dataclasses.dataclass(frozen=True)
class UniformDraw:
    """A study that draws one uniform from its key and ignores its parameters."""

    choices: tuple
    outputs: ClassVar = {"u": Output("1", "a uniform")}
    coords: ClassVar = {}
    evaluations_per_point: ClassVar = 1

    def __call__(self, values, key):
        return {"u": jax.random.uniform(key) + 0.0 * values["x"]}


DRAW_GRID = Grid({}, {}, (Axis("x", np.arange(21.0), {}),), (Axis("option", np.array(["a", "b", "c"], dtype=object), {}),))


@pytest.mark.parametrize("common_keys", [True, False])
def test_common_keys_give_every_point_and_option_the_same_key_and_otherwise_each_its_own(common_keys):
    cube = run_grid(UniformDraw, DRAW_GRID, chunk_size=8, seed=3, common_keys=common_keys)
    draws = cube.u.values.ravel()
    assert len(np.unique(draws)) == (1 if common_keys else draws.size)
    for chunk_size in (1, 1000):
        other = run_grid(UniformDraw, DRAW_GRID, chunk_size=chunk_size, seed=3, common_keys=common_keys)
        np.testing.assert_array_equal(other.u.values, cube.u.values)
    assert not np.any(run_grid(UniformDraw, DRAW_GRID, chunk_size=8, seed=4, common_keys=common_keys).u.values == draws[0])


def test_write_is_atomic_and_round_trips(tmp_path):
    cube = qkdjax.run("link.distance_km=[10,20]")
    path = qkdjax.write_netcdf(cube, tmp_path / "cube.nc")
    assert [p.name for p in tmp_path.iterdir()] == ["cube.nc"]  # no temporary file left behind
    back = qkdjax.open_cube(path)
    xr.testing.assert_identical(back, cube)


def test_run_writes_when_asked(tmp_path):
    qkdjax.run("link.distance_km=[10]", f"output.dir={tmp_path}", "output.name=one", write=True)
    assert (tmp_path / "one.nc").is_file()


def test_merge_combines_cubes_along_the_varied_setting():
    a = qkdjax.run("link.distance_km=[10,20]", "detector=ingaas_apd")
    b = qkdjax.run("link.distance_km=[10,20]", "detector=snspd")
    merged = qkdjax.merge_cubes([a, b])
    assert merged.sizes["detector"] == 2
    xr.testing.assert_equal(merged.sel(detector="snspd", drop=True).key_rate, b.key_rate)
    c = qkdjax.run("link.distance_km=[10,20]", "link.extra_loss_db=3")
    merged = qkdjax.merge_cubes([a, c])
    assert list(merged["link.extra_loss_db"].values) == [0.0, 3.0]
