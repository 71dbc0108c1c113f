"""Plots and ``qkdjax report`` on real cubes (GYS, default, satellite pass, corridor), small grids."""

import re

import numpy as np
import pytest
import xarray as xr
from conftest import refused, run_cli

import qkdjax
from qkdjax import analysis, plots
from qkdjax.cli import main
from qkdjax.report import drop_constant_dims, markdown_table, write_report

CUBES = {
    "gys_2005": ("sweep=gys_2005",),
    "default": ("sweep=default", "link.distance_km=${linspace:0,250,126}", "detector.efficiency=[0.05,0.1,0.2]"),
    "satquma_downlink": ("sweep=satquma_downlink",),
    "satellite_pass": (  # compiling the pass study takes ~20 s: its test is marked slow
        "sweep=satellite_pass", "montecarlo.trials=4", "link.max_elevation_deg=[30,60,90]",
        "link.receiver_radius_m=[0.25,0.5]", "link.pointing_jitter_urad=[0.0,1.0]",
    ),
    "corridor": ("sweep=corridor", "montecarlo.trials=4", "supply.time_step_s=3600", "link.trusted_nodes=[0,1,2,3]"),
    "gys_optimised": (
        "sweep=gys_2005", "link.distance_km=[20,60,100]", "protocol.decoy=infinite", "optimize.enabled=true",
        "optimize.params=[source.mu_signal]", "inverse.target_key_rate=0", "inverse.solve=[link.distance_km]",
    ),
}  # fmt: skip


class CubeFiles(dict):
    """Cube paths by name, each run on first use and written as netCDF (as ``qkdjax`` would write it)."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def __missing__(self, name):
        self[name] = qkdjax.write_netcdf(qkdjax.run(*CUBES[name]), self.folder / f"{name}.nc")
        return self[name]


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    return CubeFiles(tmp_path_factory.mktemp("cubes"))


def summary_of(path, out):
    main(["report", str(path), "--out", str(out)])
    return (out / "summary.md").read_text()


def test_report_command_prints_the_summary_path_last(cubes, tmp_path, capsys):
    main(["report", str(cubes["gys_2005"]), "--out", str(tmp_path / "gys")])
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "gys" / "summary.md")


def test_gys_report_gives_the_published_reach(cubes, tmp_path):
    text = summary_of(cubes["gys_2005"], tmp_path)
    positive = text.split("for any positive key")[1]
    assert re.search(r"\| infinite \| no \| 142 \|", positive) and re.search(r"\| vacuum_weak \| no \| 140.5 \|", positive)
    assert "- infinite: best at 100% of the points" in text
    assert (tmp_path / "rate_vs_distance.png").stat().st_size > 10_000
    assert "sweep=gys_2005" in text and "mu_signal: 0.48" in text  # rerun command and config


@pytest.mark.parametrize(
    ("name", "figures", "headlines"),
    [
        ("default", {"rate_vs_distance.png", "heatmap_key_rate.png"}, ["Maximal reach (link.distance_km)", "Required detector.efficiency"]),
        ("satquma_downlink", {"loss_budget.png", "key_rate.png"}, ["Required link.elevation_deg", "diffraction_loss_db: largest at 100%"]),
        pytest.param(
            "satellite_pass",
            {"pass_curves.png", "heatmap_key_rate.png"},
            ["Highest key_per_year", "Required link.max_elevation_deg"],
            marks=pytest.mark.slow,
        ),
        ("corridor", {"availability.png", "heatmap_demand_met_probability.png"}, ["Bottleneck hop", "Smallest link.trusted_nodes meeting"]),
    ],
)
def test_report_picks_figures_and_answers_from_the_dims(cubes, tmp_path, name, figures, headlines):
    text = summary_of(cubes[name], tmp_path)
    assert {p.name for p in tmp_path.glob("*.png")} == figures
    for figure in figures:
        assert f"]({figure})" in text
    for headline in headlines:
        assert headline in text


def test_report_shows_every_monte_carlo_estimate_with_its_interval(cubes, tmp_path):
    cube = qkdjax.open_cube(cubes["corridor"])
    text = summary_of(cubes["corridor"], tmp_path).split("### Monte Carlo estimates with 95 % intervals")[1]
    for name in ("availability", "demand_met_probability", "unserved_bits_mean", "unserved_fraction_mean", "longest_starvation_h_mean"):
        assert f"| {name} [" in text
    point = cube.sel({"link.trusted_nodes": 2.0, "link.demand_bps": 1e5})
    p, low, high = (float(point[f"demand_met_probability{s}"]) for s in ("", "_ci_low", "_ci_high"))
    assert low < high and f"| 1e+05 | 2 | {p:.4g} [{low:.4g}, {high:.4g}] |" in text
    mean, stderr = float(point.unserved_fraction_mean), float(point.unserved_fraction_mean_stderr)
    assert f"{mean:.4g} [{mean - 1.96 * stderr:.4g}, {mean + 1.96 * stderr:.4g}]" in text


def test_report_numbers_agree_with_the_analysis(cubes, tmp_path):
    cube = qkdjax.open_cube(cubes["default"])
    text = summary_of(cubes["default"], tmp_path)
    reach = analysis.reach(cube, 1.0).sel({"link.attenuation_db_per_km": 0.2, "detector.efficiency": 0.1})
    assert f"| 0.2 | 0.1 | no | {float(reach):.4g} |" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.nc", "--out", "x"], "no such cube: missing.nc"),
        (["{gys}", "--out", "x", "--target", "-1"], "target = -1.0 must be"),
        (["{gys}", "--out", "x", "--probability", "2"], "probability = 2.0 must be in (0, 1]"),
    ],
)
def test_bad_input_exits_2_with_one_line(cubes, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", *(a.format(gys=cubes["gys_2005"]) for a in args)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == error.splitlines()[0] and message in error


@pytest.mark.slow
def test_report_command_in_a_subprocess(cubes, tmp_path):
    result = run_cli("report", str(cubes["gys_2005"]), "--out", "gys", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "gys/summary.md" and (tmp_path / "gys" / "rate_vs_distance.png").is_file()
    missing = run_cli("report", "nope.nc", "--out", "x", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip() == "qkdjax: error: no such cube: nope.nc"


def test_not_a_cube_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "bad.nc").write_text("not netCDF")
    assert f"{tmp_path / 'bad.nc'} is not a readable netCDF file" in refused(
        capsys, "report", str(tmp_path / "bad.nc"), "--out", str(tmp_path)
    )


def test_plots_label_axes_from_attrs(cubes):
    cube = qkdjax.open_cube(cubes["default"])
    ax = plots.rate_vs_distance(cube, target=1e-6).axes[0]
    assert ax.get_xlabel() == "fibre length [km]" and "[bit]" in ax.get_ylabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "PLOB bound" in labels and "link.attenuation_db_per_km = 0.16 dB/km" in labels
    heat = plots.heatmap(cube, "link.distance_km", "detector.efficiency", target=100.0)
    assert heat.axes[1].get_ylabel() == "secret key rate [bit/s]"  # colour bar
    corridor = qkdjax.open_cube(cubes["corridor"])
    ax = plots.availability_vs_demand(corridor, probability=0.9).axes[0]
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 4 + 1


def test_quantile_band_spans_the_quantiles():
    elevation = xr.DataArray([30.0, 60.0, 90.0], dims="link.max_elevation_deg", attrs={"units": "degree", "qkdjax_role": "elevation"})
    quantile = xr.DataArray([0.05, 0.5, 0.95], dims="quantile")
    mean = 1e5 * elevation / 30.0
    cube = xr.Dataset(
        {
            "key_per_pass": mean.assign_attrs(units="bit", long_name="key per pass", qkdjax_role="per_pass"),
            "key_per_pass_mean": mean.assign_attrs(units="bit", long_name="mean key per pass"),
            "key_per_pass_quantile": (mean * (0.5 + quantile)).assign_attrs(units="bit", long_name="key per pass"),
        }
    ).assign_coords({"link.max_elevation_deg": elevation, "quantile": quantile})
    ax = plots.pass_curves(cube).axes[0]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose([band.min(), band.max()], [0.55e5, 1.45e5 * 3])
    assert ax.get_ylabel() == "mean key per pass [bit]" and ax.get_xlabel() == "link.max_elevation_deg [degree]"


def test_tables_leave_out_dims_nothing_varies_along(cubes):
    corridor = qkdjax.open_cube(cubes["corridor"])
    assert drop_constant_dims(corridor.bottleneck_loss_db).dims == ("link.trusted_nodes",)
    table = markdown_table(corridor.bottleneck_loss_db)
    assert table.splitlines()[0] == "| link.trusted_nodes | bottleneck_loss_db [dB] |" and len(table.splitlines()) == 2 + 4


def test_cubes_without_a_numeric_dim(tmp_path):
    point = qkdjax.run("link.distance_km=50", "link.attenuation_db_per_km=0.2", "detector.efficiency=0.1")
    assert "Highest key_rate: **" in write_report(point, tmp_path / "point").read_text()
    options = qkdjax.run(
        "link.distance_km=50", "protocol.decoy=[infinite,vacuum_weak,none]", "link.attenuation_db_per_km=0.2", "detector.efficiency=0.1"
    )
    text = write_report(options, tmp_path / "options").read_text()
    assert "at protocol.decoy = infinite" in text and "- none: best at 0% of the points." in text
    assert (tmp_path / "options" / "options.png").is_file()


def test_write_report_returns_the_summary(cubes, tmp_path):
    assert write_report(qkdjax.open_cube(cubes["corridor"]), tmp_path / "new" / "dir") == tmp_path / "new" / "dir" / "summary.md"


def test_report_of_an_optimised_study_gives_the_optimum_and_the_inverse_answers(cubes, tmp_path):
    summary = summary_of(cubes["gys_optimised"], tmp_path)
    mu = re.search(r"- source.mu_signal: ([0-9.]+) - ([0-9.]+)", summary)
    assert mu and 0.46 < float(mu.group(1)) <= float(mu.group(2)) < 0.49  # GYS: about 0.48 (Ma et al. 2005)
    assert "Converged at 100.0% of the points with key" in summary
    table = summary.split("(max.link.distance_km, solved per point)")[1].split("\n### ")[0]
    reach = [float(r) for r in re.findall(r"^\|.* \| ([0-9.]+) \|$", table, re.MULTILINE)]
    assert reach and all(140 < r < 144 for r in reach)  # the optimised GYS link's reach
