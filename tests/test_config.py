"""Bad input is one clear error naming the parameter, the value and what is allowed, before anything runs."""

import re

import numpy as np
import pytest
from conftest import run_cli

import qkdjax
from qkdjax import parameters
from qkdjax.config import ConfigError

BAD_INPUTS = [
    (["detector.efficiency=1.5"], "detector.efficiency = 1.5 is outside the allowed range (0, 1]"),
    (["detector.efficiency=0"], "detector.efficiency = 0 is outside the allowed range (0, 1]"),
    (["detector.efficiency=[0.1,1.2]"], "detector.efficiency = 1.2 is outside the allowed range (0, 1]"),
    (["link.distance_km=-1"], "link.distance_km = -1 is outside the allowed range [0, inf)"),
    (["link.attenuation_db_per_km=-0.2"], "link.attenuation_db_per_km = -0.2 is outside the allowed range [0, inf)"),
    (["source.mu_signal=0"], "source.mu_signal = 0 is outside the allowed range (0, inf)"),
    (["source.mu_decoy=-0.1"], "source.mu_decoy = -0.1 is outside the allowed range (0, inf)"),
    (["source.rep_rate_hz=0"], "source.rep_rate_hz = 0 is outside the allowed range (0, inf)"),
    (["source.mu_decoy=0.6"], "source.mu_decoy < source.mu_signal is required, but source.mu_decoy = 0.6, source.mu_signal = 0.5"),
    (["source.mu_decoy=[0.1,0.5]"], "source.mu_decoy < source.mu_signal is required, but source.mu_decoy = 0.5"),
    (
        ["source.mu_decoy=0.3", "source.mu_weak=0.25"],
        "source.mu_signal > source.mu_decoy + source.mu_weak is required, but source.mu_signal = 0.5, source.mu_decoy = 0.3, source.mu_weak = 0.25",
    ),
    (["source.p_decoy=0.3"], "source.p_signal + source.p_decoy <= 1 is required, but source.p_signal = 0.8, source.p_decoy = 0.3"),
    (["source.p_signal=1.2"], "source.p_signal = 1.2 is outside the allowed range (0, 1]"),
    (["detector.dark_count_prob=abc"], "detector.dark_count_prob = 'abc' is not a number"),
    (["protocol.decoy=two_decoys"], "protocol.decoy = 'two_decoys' is not one of: infinite, vacuum_weak, none"),
    (["montecarlo.common_random_numbers=maybe"], "montecarlo.common_random_numbers = 'maybe' must be true or false"),
    (
        ["link.distanc_km=5"],
        "unknown config key 'link.distanc_km' (did you mean link.distance_km? link accepts, by link.type: fibre: attenuation_db_per_km, classical_",
    ),
    (["+link.fiber_type=smf28"], "unknown config key 'link.fiber_type' (link accepts: classical_channels, classical_counter_channels,"),
    (["link.distance_km=${linspace:0,250}"], "link.distance_km: malformed range: linspace got 2 argument(s)"),
    (["link.distance_km=${logspace:0,2,0}"], "link.distance_km: malformed range: logspace:0,2,0"),
    (["link.distance_km=${linspace:0,250,2.5}"], "link.distance_km: malformed range: linspace:0,250,2.5"),
    (["link.distance_km=[]"], "link.distance_km = [] is an empty sweep axis"),
    (["link.distance_km=[10,10]"], "link.distance_km repeats values"),
    (["sweep.chunk_size=0"], "sweep.chunk_size = 0 must be an integer >= 1"),
    (["output.format=csv"], "output.format = 'csv' is not one of: netcdf"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_bad_input_is_a_clear_error(overrides, message):
    with pytest.raises(ConfigError) as error:
        qkdjax.run(*overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [BAD_INPUTS[0], BAD_INPUTS[8], BAD_INPUTS[14], BAD_INPUTS[16]],
    ids=["range", "relation", "unknown key", "malformed range"],
)
def test_command_line_rejects_bad_input_and_writes_nothing(tmp_path, overrides, message):
    result = run_cli(*overrides, f"output.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("qkdjax: error: ") and message in last
    assert not list(tmp_path.rglob("*.nc"))
    assert result.stdout == ""


CLASSES = {cls for group in parameters.GROUPS for cls in parameters.registry(group).values()}
RANGES = {f"{cls.__name__}.{f.name}": f.metadata["range"] for cls in CLASSES for f in parameters.numeric_fields(cls)}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_a_range_prints_a_closed_end_exactly_where_it_accepts_that_end(name):
    allowed = RANGES[name]
    left, right = re.search(r"([\[(]).*([\])])$", str(allowed)).groups()
    assert (left == "[") == bool(allowed.contains(np.array([allowed.low]))[0])
    assert (right == "]") == bool(allowed.contains(np.array([allowed.high]))[0])


def test_a_component_that_never_fails_is_accepted():
    assert str(parameters.field("link.hop_mtbf_h", {"link": "corridor"}).metadata["range"]) == "(0, inf]"
    assert str(parameters.field("link.distance_km", {"link": "fibre"}).metadata["range"]) == "[0, inf)"


def test_a_range_axis_larger_than_memory_is_refused_before_numpy_allocates_it(monkeypatch):
    from qkdjax import resources

    monkeypatch.setattr(resources, "available_memory_bytes", lambda: 2**30)  # 1 GiB: 16.8 million values at most
    with pytest.raises(ConfigError, match=r"linspace:0,1,20000000 has 2e\+07 values, which take about 1.19 GiB to parse"):
        qkdjax.run("link.distance_km=${linspace:0,1,20000000}")
    with pytest.raises(ConfigError, match=r"logspace:-3,0,20000000 has 2e\+07 values"):
        qkdjax.run("detector.dark_count_prob=${logspace:-3,0,20000000}")
