"""Plots and ``qkdjax report`` on real cubes (GYS, default, satellite pass, corridor), small grids, and on a
synthetic network cube laid out as the network scenario writes it."""

import json
import re

import numpy as np
import pytest
import xarray as xr
from conftest import refused, run_cli
from matplotlib.collections import LineCollection, PathCollection

import qkdjax
from qkdjax import analysis, plots
from qkdjax.cli import main
from qkdjax.report import columns_table, drop_constant_dims, markdown_table, thin, write_report

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


def test_report_writes_the_html_page_beside_the_summary_and_leaves_no_temporary_file(cubes, tmp_path):
    write_report(qkdjax.open_cube(cubes["gys_2005"]), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('<img src="data:image/png;base64,') == 1
    assert (
        "<h3>Maximal reach (link.distance_km) for any positive key</h3>" in page and "<td>vacuum_weak</td><td>no</td><td>140.5</td>" in page
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rate_vs_distance.png", "report.html", "summary.md"]  # no .tmp left


def test_table_cells_escape_the_markdown_they_would_break():
    data = xr.DataArray([1.0, 2.0], dims="option", coords={"option": ["a|b", "*c*"]}, name="key_rate", attrs={"units": "bit/s"})
    assert markdown_table(data).splitlines()[2:] == [r"| a\|b | 1 |", r"| \*c\* | 2 |"]


def test_thin_keeps_the_ends_of_the_longest_dims():
    data = xr.DataArray(np.arange(200.0).reshape(20, 10), dims=("a", "b"))
    thinned = thin(data, 24)
    assert thinned.sizes == {"a": 2, "b": 10} and thinned.values[:, [0, -1]].tolist() == [[0, 9], [190, 199]]  # corners kept


# --- Network cubes: the layout the network scenario writes --------------------------------------------------------
SITES = {"Alice": ("user", 0, 0), "Bob": ("user", 40, 0), "Carol": ("user", 20, 30), "T1": ("trusted", 20, -5), "T2": ("trusted", 15, 10), "OGS": ("ground_station", 45, 25)}  # fmt: skip
LINK_RATES = {"Alice-T1": 5e4, "T1-Bob": 2e3, "Alice-T2": 1e4, "T2-Bob": 8e3, "T2-Carol": 3e4, "T1-OGS": 1e5, "OGS-Carol": 500.0}
LINK_DOWN = [1e-3, 2e-2, 1e-3, 5e-3, 1e-3, 3e-2, 1e-2]  # unavailability of each link (design fibre; doubled with the satellite)
MIN_CUTS = {"Alice-Bob": ("T1-Bob", "T2-Bob"), "Alice-Carol": ("Alice-T2", "OGS-Carol")}
WINNER = {"annual_cost": 1.2e6, "spans": ["Alice-T1:fibre", "T1-Bob:fibre"], "sites": ["T1", "T2"], "worst_demand": "Alice-Carol", "demand_met_probability": 0.97, "ci_low": 0.955, "ci_high": 0.98}  # fmt: skip
RUNNER_UP = {**WINNER, "annual_cost": 1.5e6, "sites": ["T1", "T2", "OGS"], "demand_met_probability": 0.99, "ci_low": 0.98, "ci_high": 0.995}


def network_cube(coordinates: bool = True, monte_carlo: bool = True) -> xr.Dataset:
    """A cube of a 6-site network (3 users, 2 trusted nodes, a ground station; 7 links, 2 demands) over the grid
    ``design`` (the satellite links carry key in ``fibre+satellite`` only) x ``link.demand_bps``."""
    demand_grid = xr.DataArray(
        [1e3, 1e4], dims="link.demand_bps", attrs={"units": "bit/s", "long_name": "key demand", "qkdjax_role": "demand"}
    )
    satellite = xr.DataArray([0.0, 1.0], dims="design")
    links = xr.DataArray(list(LINK_RATES), dims="network_link")
    rate = xr.DataArray(list(LINK_RATES.values()), dims="network_link") * xr.where(links.str.contains("OGS"), satellite, 1.0)
    cut = xr.DataArray([[link in MIN_CUTS[d] for link in LINK_RATES] for d in MIN_CUTS], dims=("demand", "network_link"))
    key_rate = 1e4 + xr.DataArray([0.0, 500.0], dims="demand") * satellite  # max-flow: the minimum cut's capacity
    demand_bps = xr.DataArray([1.0, 0.5], dims="demand") * demand_grid
    variables = {
        "link_key_rate": rate.assign_attrs(units="bit/s", long_name="link key rate", qkdjax_role="link_rate"),
        "key_rate": key_rate.assign_attrs(units="bit/s", long_name="end-to-end key rate (max-flow)"),
        "demand_bps": demand_bps.assign_attrs(units="bit/s", long_name="key demand"),
        "min_cut_link": (cut * xr.ones_like(satellite)).assign_attrs(units="1", long_name="link in the demand's minimum cut"),
    }
    if monte_carlo:
        met = 0.97 - 0.1 * xr.DataArray([0.0, 1.0], dims="link.demand_bps") + 0.02 * satellite
        variables |= {
            "link_availability": (1 - xr.DataArray(LINK_DOWN, dims="network_link") * (1 + satellite)).assign_attrs(units="1"),
            "availability": (xr.DataArray([0.99, 0.98], dims="demand") + 0.005 * satellite).assign_attrs(units="1"),
            "mean_outage_h": (xr.DataArray([4.0, 6.5], dims="demand") - satellite).assign_attrs(units="h", long_name="mean time to repair"),
            "demand_met_probability": met.assign_attrs(units="1"),
            "demand_met_probability_ci_low": (met - 0.01).assign_attrs(units="1"),
            "demand_met_probability_ci_high": (met + 0.01).assign_attrs(units="1"),
            "unserved_fraction_mean": (0.25 * (1 - met)).assign_attrs(units="1"),
            "protected_fraction": xr.DataArray([0.9, 0.8], dims="demand").assign_attrs(units="1"),
            "cost_per_year": (1.2e6 + 3e5 * satellite).assign_attrs(units="1", currency="EUR", long_name="annual cost"),
            "cost_per_protected_link": (2e5 + 5e4 * satellite).assign_attrs(units="1", currency="EUR"),
            "cost_per_key_bit": (1e-4 * (1 + satellite)).assign_attrs(units="bit-1", currency="EUR"),
        }
    coords = {
        "network_link": list(LINK_RATES),
        "link_site_a": ("network_link", [link.split("-")[0] for link in LINK_RATES]),
        "link_site_b": ("network_link", [link.split("-")[1] for link in LINK_RATES]),
        "site": list(SITES),
        "site_kind": ("site", [kind for kind, _, _ in SITES.values()]),
        "demand": list(MIN_CUTS),
        "demand_site_a": ("demand", [d.split("-")[0] for d in MIN_CUTS]),
        "demand_site_b": ("demand", [d.split("-")[1] for d in MIN_CUTS]),
        "design": ["fibre", "fibre+satellite"],
        "link.demand_bps": demand_grid,
    }
    if coordinates:
        coords["site_x_km"] = ("site", [float(x) for _, x, _ in SITES.values()], {"units": "km", "long_name": "east"})
        coords["site_y_km"] = ("site", [float(y) for _, _, y in SITES.values()], {"units": "km", "long_name": "north"})
    attrs = {"title": "network <test> & co", "rerun": "qkdjax sweep=network", "config": "link:\n  type: network  # <b>not bold</b>\n"}
    if monte_carlo:
        attrs |= {"design_winner": json.dumps(WINNER), "design_runner_up": json.dumps(RUNNER_UP)}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def line_collections(ax):
    return [c for c in ax.collections if isinstance(c, LineCollection)]


@pytest.mark.parametrize("coordinates", [True, False], ids=["site coordinates", "spring layout"])
@pytest.mark.parametrize("monte_carlo", [True, False], ids=["monte carlo", "static"])
def test_network_figure_draws_sites_links_bottlenecks_and_failures(coordinates, monte_carlo):
    cube = network_cube(coordinates, monte_carlo)
    figure = plots.network_figure(cube)
    ax, bar = figure.axes
    halo, lines = line_collections(ax)
    assert len(lines.get_segments()) == len(LINK_RATES) and bar.get_ylabel() == "log10 link key rate [bit/s]"
    shown = np.log10([r if "OGS" not in link else np.nan for link, r in LINK_RATES.items()])  # design = fibre: no satellite key
    np.testing.assert_allclose(lines.get_array(), shown)
    assert len(halo.get_segments()) == 4  # the links in a minimum cut
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"3 users", "2 trusted nodes", "1 ground station", "bottleneck: in a demand's minimum cut", "no key"} <= set(legend)
    assert ax.get_title().endswith("\ndesign = fibre")  # the first grid point (link_key_rate does not vary with the demand)
    dashed = [i for i, style in enumerate(lines.get_linestyles()) if style[1] is not None]
    failing = [i for i, down in enumerate(LINK_DOWN) if down >= 0.5 * max(LINK_DOWN)]  # T1-Bob, T1-OGS
    assert dashed == (failing if monte_carlo else [])
    notes = [t.get_text() for t in ax.texts]
    assert ("cut of Alice-Bob\ndown 2.00%" in notes) == monte_carlo and "cut of Alice-Carol" in notes
    sites = np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])
    assert len(np.unique(sites, axis=0)) == len(SITES)
    if coordinates:
        assert ax.get_xlabel() == "east [km]" and [20.0, -5.0] in sites.tolist()
    else:
        assert "spring layout" in ax.get_title() and ax.get_xticks().size == 0


def test_network_figure_coloured_by_the_demands_each_link_bottlenecks():
    figure = plots.network_figure(network_cube(), colour_by="min_cut_link")
    _, lines = line_collections(figure.axes[0])
    np.testing.assert_array_equal(lines.get_array(), [0, 1, 1, 1, 0, 0, 1])
    assert figure.axes[1].get_ylabel().replace("\n", " ") == "demands with the link in their minimum cut"
    with pytest.raises(ValueError, match="colour_by = 'x'"):
        plots.network_figure(network_cube(), colour_by="x")
    with pytest.raises(ValueError, match="not a network cube"):
        plots.network_figure(network_cube().drop_vars("link_key_rate"))


def test_spring_layout_is_deterministic_and_keeps_sites_apart():
    edges = plots.link_ends(network_cube(coordinates=False))
    layout = plots.spring_layout(len(SITES), edges)
    np.testing.assert_array_equal(layout, plots.spring_layout(len(SITES), edges))
    distance = np.linalg.norm(layout[:, None] - layout[None], axis=-1)[np.triu_indices(len(SITES), 1)]
    assert np.abs(layout).max() == pytest.approx(1.0) and distance.min() > 0.2
    linked = np.mean([np.linalg.norm(layout[a] - layout[b]) for a, b in edges])
    assert linked < distance.mean()  # linked sites sit closer than sites on average
    assert plots.spring_layout(1, []).tolist() == [[0.0, 0.0]]


def test_network_report_gives_the_cheapest_design_kpis_and_links(tmp_path):
    text = write_report(network_cube(), tmp_path).read_text()
    cheapest = text.split("### Cheapest design")[1].split("\n### ")[0]
    assert "| cheapest | 1,200,000 | Alice-T1:fibre, T1-Bob:fibre | T1, T2 | 0.97 [0.955, 0.98] | Alice-Carol |" in cheapest
    assert "| runner-up | 1,500,000 |" in cheapest and "costs 300,000 EUR more per year (+25.0%)" in cheapest
    assert "- 6 sites (3 users, 2 trusted nodes, 1 ground station), 7 links, 2 demand(s)." in text
    kpis = text.split("### Key performance per demand")[1].split("\n### ")[0]
    header = "| design | link.demand_bps | demand | uptime | MTTR [h] | key rate [bit/s] | demand [bit/s] | key / demand | P(demand met) | key served | QKD-protected | cost / year [EUR] | cost / protected link [EUR] | cost / key bit [EUR bit-1] |"  # fmt: skip
    assert header in kpis
    assert (
        "| fibre+satellite | 1e+04 | Alice-Carol | 0.985 | 5.5 | 1.05e+04 | 5000 | 2.1 | 0.89 [0.88, 0.9] | 0.9725 | 0.8 | 1.5e+06 | 2.5e+05 | 0.0002 |"
        in kpis
    )
    links = text.split("### Links")[1].split("\n### ")[0]
    assert (
        "| fibre | T1-Bob | T1 | Bob | 2000 | 0.98 | Alice-Bob |" in links
        and "| fibre | T2-Carol | T2 | Carol | 3e+04 | 0.999 | - |" in links
    )
    assert "## Grid" in text and "| site |" not in text  # the network's dims are listed in its own tables
    assert (
        "![Sites and links at the first grid point (design = fibre): sites by kind" in text and "dashed: the links that fail most" in text
    )
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["sites_and_links.png"]  # the key rate does not vary along link.demand_bps


def test_network_report_without_monte_carlo_or_design_attrs(tmp_path):
    text = write_report(network_cube(coordinates=False, monte_carlo=False), tmp_path).read_text()
    assert "### Cheapest design" not in text and "dashed" not in text
    kpis = text.split("### Key performance per demand")[1].split("\n### ")[0]
    assert "| design | link.demand_bps | demand | key rate [bit/s] | demand [bit/s] | key / demand |" in kpis
    assert "| fibre | T1-OGS | T1 | OGS | 0 | - |" in text


def test_cubes_without_a_network_get_no_network_sections(cubes, tmp_path):
    text = summary_of(cubes["corridor"], tmp_path)
    assert "### Sites, links and demands" not in text and "### Links" not in text and not (tmp_path / "sites_and_links.png").exists()
    bad = network_cube().assign_attrs(design_winner="{not json", design_runner_up="null")
    assert "The cube's design_winner attr is not JSON" in write_report(bad, tmp_path / "bad").read_text()


def test_the_links_that_fail_most_are_the_worst_fifth_above_the_median():
    assert plots.failing_links(np.array(LINK_DOWN)).tolist() == [1, 5]
    assert plots.failing_links(np.full(6, 0.01)).tolist() == []  # all alike: none stands out
    assert plots.failing_links(np.array([np.nan, 0.2, 0.1, 0.0])).tolist() == [1]


def test_parallel_links_of_one_span_are_drawn_side_by_side_with_one_label():
    cube = network_cube()
    extra = cube.isel(network_link=[1]).assign_coords(network_link=["T1-Bob:tf"])  # a second technology on T1-Bob
    both = xr.concat([cube, extra], "network_link", data_vars="minimal", coords="minimal", compat="override")
    ax = plots.network_figure(both).axes[0]
    _, lines = line_collections(ax)
    first, second = lines.get_segments()[1], lines.get_segments()[-1]
    offset = second - first
    np.testing.assert_allclose(offset[0], offset[1])  # parallel
    assert np.linalg.norm(offset[0]) == pytest.approx(0.02 * 45) and abs(np.dot(offset[0], first[1] - first[0])) < 1e-9
    assert [t.get_text() for t in ax.texts].count("cut of Alice-Bob\ndown 2.00%") == 1


def test_network_design_cubes_get_a_kpi_table_per_design(tmp_path):
    cube = network_cube().isel(design=0, drop=True)
    designs = xr.DataArray(["cheapest", "runner_up"], dims="network_design")
    cube = cube.assign_coords(network_design=designs).assign(
        design_key_rate=xr.DataArray([[9e3, 8e3], [9.5e3, 8.5e3]], dims=("network_design", "demand"), attrs={"units": "bit/s"}),
        design_cost_per_year=xr.DataArray([1.2e6, 1.5e6], dims="network_design", attrs={"non_udunits_units": "EUR/year"}),
    )
    text = write_report(cube, tmp_path).read_text()
    assert "### Key performance per demand (every candidate link and site built)" in text
    table = text.split("### Key performance of each design")[1].split("\n### ")[0]
    assert (
        "| network_design | link.demand_bps | demand | key rate [bit/s] | demand [bit/s] | key / demand | cost / year [EUR/year] |" in table
    )
    assert "| runner_up | 1e+04 | Alice-Carol | 8500 | 5000 | 1.7 | 1.5e+06 |" in table


DESIGN_LINKS = {"cheapest": ("Alice-T1", "T1-Bob", "Alice-T2", "T2-Carol"), "runner_up": ("Alice-T2", "T2-Bob", "T2-Carol", "T1-OGS", "OGS-Carol")}  # fmt: skip
DESIGN_SITES = {"cheapest": ("Alice", "Bob", "Carol", "T1", "T2"), "runner_up": ("Alice", "Bob", "Carol", "T2", "OGS")}


def design_study_cube() -> xr.Dataset:
    """The network cube (with the satellite) as a network design study writes it: ``design_*`` variables along
    ``network_design``, the cheapest design first."""
    cube = network_cube().isel(design=1, drop=True)
    along = ("network_design", "demand")
    met = xr.DataArray([[0.99, 0.96], [0.995, 0.99]], dims=along, attrs={"units": "1"})
    return cube.assign_coords(network_design=list(DESIGN_LINKS)).assign(
        design_built=xr.DataArray([[float(link in built) for link in LINK_RATES] for built in DESIGN_LINKS.values()], dims=("network_design", "network_link")),
        design_opened=xr.DataArray([[float(site in sites) for site in SITES] for sites in DESIGN_SITES.values()], dims=("network_design", "site")),
        design_key_rate=xr.DataArray([[9e3, 8e3], [9.5e3, 8.5e3]], dims=along, attrs={"units": "bit/s"}),
        design_demand_met_probability=met,
        design_demand_met_probability_ci_low=met - 0.01,
        design_demand_met_probability_ci_high=(met + 0.01).clip(max=1.0),
        design_cost_per_year=xr.DataArray([1.2e6, 1.5e6], dims="network_design", attrs={"non_udunits_units": "EUR/year"}),
    )  # fmt: skip


def test_a_network_design_study_gets_a_figure_per_design_drawing_only_what_it_builds(tmp_path):
    cube = design_study_cube()
    for (design, built), sites, failing in zip(DESIGN_LINKS.items(), DESIGN_SITES.values(), ("down 4.00%", "down 6.00%")):
        ax = plots.design_figure(cube, design).axes[0]
        faint, lines = line_collections(ax)  # no halo: the minimum cuts are those of every candidate link
        assert len(lines.get_segments()) == len(built) and len(faint.get_segments()) == len(LINK_RATES) - len(built)
        np.testing.assert_allclose(lines.get_array(), np.log10([rate for link, rate in LINK_RATES.items() if link in built]))
        xy = {name: np.array(SITES[name][1:], dtype=float) for name in SITES}
        middles = {link: tuple((xy[link.split("-")[0]] + xy[link.split("-")[1]]) / 2) for link in LINK_RATES}
        labels = [t for t in ax.texts if t.get_text() not in SITES]  # the link labels: the failing link among those built
        assert [t.get_text() for t in labels] == [failing] and {tuple(t.xy) for t in labels} <= {middles[link] for link in built}
        assert [t.get_text() for t in ax.texts if t.get_text() in SITES and t.get_color() == "k"] == list(sites)
        legend = {t.get_text() for t in ax.get_legend().get_texts()}
        assert {"other candidate links", "other candidate sites", "3 users"} <= legend
        assert ("1 ground station" in legend) == ("OGS" in sites) and "bottleneck: in a demand's minimum cut" not in legend
    assert ax.get_title() == "design runner_up: annual cost 1,500,000 EUR/year\nworst demand Alice-Carol: P(met) 0.99 [0.98, 1]\n5 of 7 candidate links, 5 of 6 sites"  # fmt: skip
    assert plots.design_figure(cube, "cheapest").axes[0].get_title().splitlines()[:2] == [
        "design cheapest: annual cost 1,200,000 EUR/year",
        "worst demand Alice-Carol: P(met) 0.96 [0.95, 0.97]",
    ]
    with pytest.raises(ValueError, match="design 'x': not one of the cube's network_design"):
        plots.design_figure(cube, "x")
    with pytest.raises(ValueError, match="nowhere: not a network_link"):
        plots.network_figure(cube, links=["nowhere"])

    text = write_report(cube, tmp_path).read_text()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["design_cheapest.png", "design_runner_up.png", "sites_and_links.png"]
    captions = [line for line in text.splitlines() if line.startswith("![")]
    assert [c.split("(")[-1] for c in captions] == ["sites_and_links.png)", "design_cheapest.png)", "design_runner_up.png)"]
    assert "*Design cheapest: the 4 links it builds (of 7 candidates), the 5 sites it has, coloured by log10 key rate; faint grey" in text


def test_columns_table_keeps_every_row_of_the_last_dim_and_thins_the_others():
    grid = xr.DataArray(np.arange(30.0), dims="x", coords={"x": np.arange(30.0)})
    demand = xr.DataArray([1.0, 2.0, 3.0], dims="demand", coords={"demand": ["a", "b", "c"]})
    table = columns_table({"product": grid * demand, "constant": xr.DataArray(7.0)}, "demand", max_rows=12).splitlines()
    assert table[0] == "| x | demand | product | constant |" and len(table) == 2 + 4 * 3
    assert table[2] == "| 0 | a | 0 | 7 |" and table[-1] == "| 29 | c | 87 | 7 |"
