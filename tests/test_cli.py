"""The command line as users run it: default study, named sweeps, multirun and merge (subprocesses)."""

import numpy as np
import pytest
from conftest import run_cli

import qkdjax

pytestmark = pytest.mark.slow


def test_default_study_writes_its_cube_and_prints_the_path(tmp_path):
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / result.stdout.strip().splitlines()[-1]
    assert path == tmp_path / "results" / "default.nc" and path.is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"results"}  # nothing else in the working directory
    cube = qkdjax.open_cube(path)
    assert cube.key_rate.size >= 10_000
    assert np.all(cube.key_rate.values >= 0)


def test_named_sweep_with_overrides(tmp_path):
    result = run_cli("sweep=gys_2005", "link.distance_km=[50,100]", "output.dir=out", "output.name=gys", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "out/gys.nc"
    cube = qkdjax.open_cube(tmp_path / "out" / "gys.nc")
    assert dict(cube.sizes) == {"protocol.decoy": 2, "link.distance_km": 2}
    assert cube.attrs["rerun"] == "qkdjax sweep=gys_2005 link.distance_km=[50,100] output.dir=out output.name=gys"


def test_multirun_writes_one_cube_per_choice_and_merge_combines_them(tmp_path):
    result = run_cli("--multirun", "detector=ingaas_apd,snspd", "link.distance_km=[0,100]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cubes = sorted((tmp_path / "results").glob("*.nc"))
    assert [c.name for c in cubes] == [
        "default.detector=ingaas_apd,link.distance_km=_0,100_.nc",
        "default.detector=snspd,link.distance_km=_0,100_.nc",
    ]
    merged_path = tmp_path / "merged.nc"
    result = run_cli("merge", *map(str, cubes), "--out", str(merged_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(merged_path)
    merged = qkdjax.open_cube(merged_path)
    assert list(merged.detector.values) == ["ingaas_apd", "snspd"]
    snspd = merged.key_rate.sel(detector="snspd", drop=True)
    np.testing.assert_array_equal(snspd.values, qkdjax.open_cube(cubes[1]).key_rate.values)
    assert (snspd > merged.key_rate.sel(detector="ingaas_apd", drop=True)).all()


def test_merge_reports_missing_cubes(tmp_path):
    result = run_cli("merge", "nope.nc", "--out", "m.nc", cwd=tmp_path)
    assert result.returncode == 2
    assert "qkdjax: error: no such cube: nope.nc" in result.stderr
