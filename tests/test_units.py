"""Cubes other tools read right: every ``units`` attribute of every reference sweep parses under UDUNITS-2 (through
cf-units) to what it means, units UDUNITS lacks are marked as such, and files carry CF ``history`` and coordinates
without ``_FillValue``."""

import math

import cf_units
import h5py
import numpy as np
import pytest
from conftest import REPO

from qkdjax import analysis
from qkdjax.cli import compose_config, design_configs, study_factory
from qkdjax.config import parse_compare, parse_grid, parse_settings
from qkdjax.io import open_cube, write_netcdf
from qkdjax.sweep import categorical_choices, choice_study, variable_attrs
from qkdjax.units import NON_UDUNITS, NON_UDUNITS_ATTR

# What each unit string used by qkdjax means, in SI base units (written here, independently of UDUNITS).
MEANING = {
    "1": ("1", 1.0),
    "bit": ("1", 1.0),
    "bit/s": ("s-1", 1.0),
    "Hz": ("s-1", 1.0),
    "bit/d": ("s-1", 1 / 86400),
    "1/d": ("s-1", 1 / 86400),
    "bit/Julian_year": ("s-1", 1 / (365.25 * 86400)),
    "1/Julian_year": ("s-1", 1 / (365.25 * 86400)),
    "Julian_year": ("s", 365.25 * 86400),
    "s": ("s", 1.0),
    "ns": ("s", 1e-9),
    "h": ("s", 3600.0),
    "m": ("m", 1.0),
    "km": ("m", 1e3),
    "nm": ("m", 1e-9),
    "m/s": ("m s-1", 1.0),
    "degree": ("rad", math.pi / 180),
    "urad": ("rad", 1e-6),
    "km-1 nm-1": ("m-2", 1e-12),
    "dBm": ("W", 10**0.1 * 1e-3),  # logarithmic: 1 dBm is 1.26 mW
}
SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


def sweep_attrs(name: str) -> dict[str, dict]:
    """Attributes of every variable and numeric coordinate of sweep ``name``'s cube (of each design it compares),
    without computing it (string coordinates, the categorical axes and designs, have no units)."""
    cfg, hydra_cfg = compose_config(f"sweep={name}")
    if parse_compare(cfg):
        designs = design_configs(cfg, hydra_cfg, write=False).values()
        return {n: a for design_cfg, _ in designs for n, a in config_attrs(design_cfg).items()}
    return config_attrs(cfg)


def config_attrs(cfg) -> dict[str, dict]:
    grid, settings = parse_grid(cfg), parse_settings(cfg)
    attrs = {axis.name: dict(axis.attrs) for axis in grid.numeric_axes}
    for choices in categorical_choices(grid):
        study = choice_study(study_factory(settings), grid, choices)
        attrs |= {n: variable_attrs(output) for n, output in study.outputs.items()}
        attrs |= {d: dict(coord_attrs) for d, (values, coord_attrs) in study.coords.items() if values.dtype != object}
        attrs |= {n: dict(a) for n, (_, values, a) in study.labels.items() if values.dtype != object}
    return attrs


def check_units(name: str, attrs: dict) -> None:
    if "units" not in attrs:
        assert attrs.get(NON_UDUNITS_ATTR) in NON_UDUNITS, f"{name} has no unit"
        return
    units = attrs["units"]
    assert units in MEANING, f"{name}: unit {units!r} is not in this test's table"
    si, factor = MEANING[units]
    assert cf_units.Unit(units).convert(1.0, si) == pytest.approx(factor, rel=1e-12), name


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_unit_of_a_reference_sweep_parses_to_its_meaning(sweep):
    attrs = sweep_attrs(sweep)
    assert len(attrs) > 5
    for name, variable_attrs_ in attrs.items():
        check_units(name, variable_attrs_)


@pytest.mark.parametrize("units", sorted(NON_UDUNITS))
def test_units_marked_non_udunits_are_unknown_to_udunits(units):
    with pytest.raises(ValueError):
        cf_units.Unit(units)


def test_the_strings_udunits_misreads_are_not_used():
    # UDUNITS reads bit/a as bit per are (100 m^2) and m-2/3 as a third of m^-2.
    assert cf_units.Unit("bit/a").convert(1.0, "m-2") == pytest.approx(0.01)
    assert cf_units.Unit("m-2/3").convert(1.0, "m-2") == pytest.approx(1 / 3)
    used = {a.get("units") for sweep in SWEEPS for a in sweep_attrs(sweep).values()}
    assert not used & {"bit/a", "m-2/3", "dB", "dB/km"}


def test_written_cube_is_cf(tmp_path):
    import qkdjax

    cube = qkdjax.run("link.distance_km=[0,25,50]", "link.attenuation_db_per_km=[0.16,0.2]", "detector.efficiency=0.1")
    path = write_netcdf(cube, tmp_path / "cube.nc")
    with h5py.File(path) as f:
        for name in ("link.distance_km", "link.attenuation_db_per_km"):
            assert "_FillValue" not in f[name].attrs, name
            assert "units" in f[name].attrs or NON_UDUNITS_ATTR in f[name].attrs
    opened = open_cube(path)
    assert opened.attrs["history"].endswith(
        "qkdjax link.distance_km=[0,25,50] link.attenuation_db_per_km=[0.16,0.2] detector.efficiency=0.1"
    )
    assert opened["link.attenuation_db_per_km"].attrs[NON_UDUNITS_ATTR] == "dB/km"
    reach = analysis.reach(opened, 1.0)
    check_units("reach", reach.attrs)
    assert np.all(np.isfinite(reach.values))
