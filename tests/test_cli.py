"""The command line as users run it: default study, named sweeps, multirun and merge (subprocesses, slow), and
what ``merge`` and ``report`` refuse (in-process)."""

import os
import re

import numpy as np
import pytest
import xarray as xr
from conftest import refused, run_cli

import qkdjax


@pytest.mark.slow
def test_default_study_writes_its_cube_and_prints_the_path(tmp_path):
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / result.stdout.strip().splitlines()[-1]
    assert path == tmp_path / "results" / "default.nc" and path.is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"results"}  # nothing else in the working directory
    cube = qkdjax.open_cube(path)
    assert cube.key_rate.size >= 10_000
    assert np.all(cube.key_rate.values >= 0)


@pytest.mark.slow
def test_named_sweep_with_overrides(tmp_path):
    result = run_cli("sweep=gys_2005", "link.distance_km=[50,100]", "output.dir=out", "output.name=gys", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "out/gys.nc"
    cube = qkdjax.open_cube(tmp_path / "out" / "gys.nc")
    assert dict(cube.sizes) == {"protocol.decoy": 2, "link.distance_km": 2}
    assert cube.attrs["rerun"] == "qkdjax sweep=gys_2005 link.distance_km=[50,100] output.dir=out output.name=gys"


@pytest.mark.slow
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


@pytest.mark.slow
def test_merge_reports_missing_cubes(tmp_path):
    result = run_cli("merge", "nope.nc", "--out", "m.nc", cwd=tmp_path)
    assert result.returncode == 2
    assert "qkdjax: error: no such cube: nope.nc" in result.stderr


CUBES = {
    "apd": ("link.distance_km=[10,20]", "detector=ingaas_apd"),
    "snspd": ("link.distance_km=[10,20]", "detector=snspd"),
    "snspd_farther": ("link.distance_km=[30,40]", "detector=snspd"),
    "apd_overlapping": ("link.distance_km=[20,30]", "detector=ingaas_apd"),
    "snspd_one_efficiency": ("link.distance_km=[10,20]", "detector=snspd", "detector.efficiency=0.1"),
}


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cubes")
    return {name: qkdjax.write_netcdf(qkdjax.run(*overrides), folder / f"{name}.nc") for name, overrides in CUBES.items()}


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("apd", "snspd_farther"), r"they hold 80 points of channel_transmittance, their merged grid 160 \(the rest would be NaN\)"),
        (("apd", "apd_overlapping"), r"they overlap in link.distance_km"),
        (
            ("apd", "snspd_one_efficiency"),
            r"channel_transmittance is over \(link.distance_km, link.attenuation_db_per_km, detector.efficiency\)",
        ),
        (("apd", "apd"), r"cubes do not form one grid"),
    ],
)
def test_merge_refuses_cubes_that_do_not_form_one_grid(cubes, tmp_path, capsys, names, message):
    out = tmp_path / "merged.nc"
    assert re.search(message, refused(capsys, "merge", *(str(cubes[n]) for n in names), "--out", str(out)))
    assert not list(tmp_path.iterdir())


def test_merge_refuses_to_write_over_one_of_its_inputs(cubes, tmp_path, capsys):
    before = cubes["apd"].read_bytes()
    os.symlink(cubes["apd"], tmp_path / "link.nc")
    for out in (cubes["apd"], cubes["apd"].parent / ".." / cubes["apd"].parent.name / "apd.nc", tmp_path / "link.nc"):
        assert "is one of the cubes to merge" in refused(capsys, "merge", str(cubes["apd"]), str(cubes["snspd_farther"]), "--out", str(out))
    assert cubes["apd"].read_bytes() == before


def test_a_merged_cube_opens_but_is_not_merged_again(cubes, tmp_path, capsys):
    merged = tmp_path / "merged.nc"
    qkdjax.cli.main(["merge", str(cubes["apd"]), str(cubes["snspd"]), "--out", str(merged)])
    assert capsys.readouterr().out.strip() == str(merged)
    assert qkdjax.open_cube(merged).attrs["qkdjax_version"] == qkdjax.open_cube(cubes["apd"]).attrs["qkdjax_version"]
    line = refused(capsys, "merge", str(merged), str(cubes["snspd_farther"]), "--out", str(tmp_path / "again.nc"))
    assert f"{merged} is not a cube of one qkdjax run (merge the cubes it came from)" in line


UNREADABLE = {
    "truncated": (lambda cube: cube.read_bytes()[: len(cube.read_bytes()) // 2], "is not a readable netCDF file (Unable to"),
    "random bytes": (lambda cube: np.random.default_rng(0).bytes(4096), "is not a readable netCDF file"),
    "empty": (lambda cube: b"", "is not a readable netCDF file"),
}


@pytest.mark.parametrize("case", [*UNREADABLE, "not written by qkdjax"])
def test_report_and_merge_refuse_files_they_cannot_read_or_that_qkdjax_did_not_write(cubes, tmp_path, capsys, case):
    bad = tmp_path / "bad.nc"
    if case in UNREADABLE:
        content, message = UNREADABLE[case]
        bad.write_bytes(content(cubes["apd"]))
    else:
        xr.Dataset({"key_rate": ("x", np.ones(3))}).to_netcdf(bad, engine="h5netcdf")
        message = "was not written by qkdjax (it has no qkdjax_version or config attribute)"
    assert f"{bad} {message}" in refused(capsys, "report", str(bad), "--out", str(tmp_path / "report"))
    assert f"{bad} {message}" in refused(capsys, "merge", str(cubes["apd"]), str(bad), "--out", str(tmp_path / "m.nc"))
    assert [p.name for p in tmp_path.iterdir()] == ["bad.nc"]


@pytest.mark.slow
def test_merge_refuses_a_fibre_and_a_satellite_cube(cubes, tmp_path, capsys):
    satellite = qkdjax.write_netcdf(qkdjax.run("sweep=satquma_downlink", "link.elevation_deg=[30,60]"), tmp_path / "satellite.nc")
    line = refused(capsys, "merge", str(cubes["apd"]), str(satellite), "--out", str(tmp_path / "merged.nc"))
    assert f"cubes do not form one grid: atmospheric_loss_db is absent in {cubes['apd']} but over (link.elevation_deg) in dB" in line
    assert [p.name for p in tmp_path.iterdir()] == ["satellite.nc"]
