"""benchmarks/check_regression.py compares cubes bit for bit: values, NaNs, dtypes and attributes."""

import importlib.util

import numpy as np
import xarray as xr
from conftest import REPO

spec = importlib.util.spec_from_file_location("check_regression", REPO / "benchmarks" / "check_regression.py")
check_regression = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_regression)


def cube(values, **attrs):
    rate = xr.DataArray(np.asarray(values, dtype=float), dims="link.distance_km", attrs={"units": "bit/s", **attrs})
    return xr.Dataset({"key_rate": rate}, coords={"link.distance_km": [0.0, 10.0, 20.0]}, attrs={"config": "a"})


def test_identical_cubes_with_nans_and_new_roles_pass():
    base, new = cube([1.0, np.nan, 0.0]), cube([1.0, np.nan, 0.0], qkdjax_role="rate").assign_attrs(config="b")
    assert check_regression.compare(base, new) == ([], {"qkdjax_role"})


def test_any_difference_is_reported():
    base = cube([1.0, 2.0, 0.0])
    assert check_regression.compare(base, cube([1.0, np.nextafter(2.0, 3.0), 0.0]))[0] == ["variable key_rate: values differ"]
    assert check_regression.compare(base, cube([1.0, 2.0, -0.0]))[0] == ["variable key_rate: values differ"]  # the sign bit
    problems, _ = check_regression.compare(base, cube([1.0, 2.0, 0.0], units="bit"))
    assert problems == ["variable key_rate: attribute units 'bit/s' -> 'bit'"]
    assert "variables differ" in check_regression.compare(base, base.rename({"key_rate": "rate"}))[0][0]
