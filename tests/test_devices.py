"""Several devices: each chunk is split over all local devices, and the cube is the same bit for bit as on one.

Four CPU devices are faked in a subprocess (``--xla_force_host_platform_device_count=4``, which must be set
before JAX starts); the cubes it writes are compared here, on one device.
"""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import qkdjax

# Asymptotic with a categorical axis (160-point chunks: 40 per device), and a finite-key Monte Carlo (random keys).
ASYMPTOTIC = ("link.distance_km=${linspace:0,240,61}", "protocol.decoy=[infinite,vacuum_weak]", "sweep.chunk_size=160")
MONTE_CARLO = (
    "sweep=lim_2014",
    "optimize.enabled=false",  # the device split is under test, not the optimiser
    "montecarlo.trials=16",
    "protocol.block_size=[1e5,1e6]",
    "link.distance_km=[10,50,90]",
    "sweep.chunk_size=64",
)

SCRIPT = """
import sys, jax, qkdjax
assert jax.local_device_count() == 4, jax.devices()
out = sys.argv[1]
qkdjax.write_netcdf(qkdjax.run(*{asymptotic}), f"{{out}}/asymptotic.nc")
qkdjax.write_netcdf(qkdjax.run(*{monte_carlo}), f"{{out}}/monte_carlo.nc")
qkdjax.run(*{asymptotic}, "output.format=zarr", f"output.dir={{out}}", "output.name=store", write=True)
"""


def assert_same_values(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name, strict=True)


@pytest.mark.slow
def test_four_devices_give_the_one_device_cube_bit_for_bit(tmp_path):
    assert jax.local_device_count() == 1
    script = SCRIPT.format(asymptotic=ASYMPTOTIC, monte_carlo=MONTE_CARLO)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(tmp_path)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    one_device = qkdjax.run(*ASYMPTOTIC)
    assert_same_values(qkdjax.open_cube(tmp_path / "asymptotic.nc"), one_device)
    assert_same_values(qkdjax.open_cube(tmp_path / "monte_carlo.nc"), qkdjax.run(*MONTE_CARLO))
    assert_same_values(qkdjax.open_cube(tmp_path / "store.zarr").load(), one_device)
