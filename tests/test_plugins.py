"""Protocol plug-ins: a protocol defined here (one class, one YAML) runs through the config checks, the engine,
the analysis and the report with no change to qkdjax; and the core modules name no protocol or link type."""

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import qkdjax
from qkdjax import analysis, parameters
from qkdjax.cli import main
from qkdjax.config import ConfigError
from qkdjax.detectors.threshold import ThresholdDetector
from qkdjax.parameters import PROBABILITY, Protocol, number
from qkdjax.physics.bounds import plob_bound
from qkdjax.sources.wcp_decoy import WCPDecoy
from qkdjax.sweep import Output

CORE = ("sweep.py", "config.py", "optimize.py", "cli.py", "report.py", "analysis.py")
PACKAGE = Path(qkdjax.__file__).parent


class ToyProtocol(Protocol):
    """``bits_per_detection`` secret bits from every detected signal pulse: ``R = b (1 - exp(-mu eta))`` per
    pulse, below PLOB for ``mu <= 1`` since ``1 - exp(-mu eta) <= eta < -log2(1 - eta)``."""

    types = ("toy_test",)
    needs: ClassVar[Mapping[str, type]] = {"source": WCPDecoy, "detector": ThresholdDetector}
    bits_per_detection: Any = number("1", "secret bits per detected signal pulse", PROBABILITY, optimisable=True)

    @classmethod
    def outputs(cls, static):
        return {
            "key_rate": Output("bit/s", "secret key rate", role="rate"),
            "key_rate_per_pulse": Output("bit", "secret key bits per pulse", role="rate_per_pulse"),
            "plob_bound_per_pulse": Output("bit", "PLOB bound per channel use", role="bound"),
        }

    def margin_per_pulse(self, p):
        return self.bits_per_detection * -jnp.expm1(-p.source.mu_signal * p.link.transmittance() * p.detector.efficiency)

    def key_rate(self, p):
        return self.margin_per_pulse(p) * p.source.rep_rate_hz

    def metrics(self, p):
        per_pulse = self.margin_per_pulse(p)
        metrics = {"key_rate": per_pulse * p.source.rep_rate_hz, "key_rate_per_pulse": per_pulse}
        return metrics | {"plob_bound_per_pulse": plob_bound(p.link.transmittance())}, None


@pytest.fixture(scope="module")
def toy_conf(tmp_path_factory):
    conf = tmp_path_factory.mktemp("plugin_conf")
    (conf / "protocol").mkdir()
    (conf / "protocol" / "toy.yaml").write_text("type: toy_test\nbits_per_detection: 0.25\n")
    return (f"hydra.searchpath=[file://{conf}]", "protocol=toy")


GRID = ("link.distance_km=${linspace:0,200,41}", "link.attenuation_db_per_km=0.2", "detector.efficiency=[0.1,0.2]")


def test_a_protocol_defined_outside_qkdjax_runs_through_the_engine(toy_conf):
    cube = qkdjax.run(*toy_conf, *GRID, "source.mu_signal=0.5")
    eta = 10 ** (-0.02 * cube["link.distance_km"]) * cube["detector.efficiency"]
    expected = 0.25 * -np.expm1(-0.5 * eta) * yaml.safe_load(cube.attrs["config"])["source"]["rep_rate_hz"]
    np.testing.assert_allclose(cube.key_rate.transpose(*expected.dims), expected, rtol=1e-12)
    assert cube.key_rate.attrs["qkdjax_role"] == "rate" and cube["link.distance_km"].attrs["qkdjax_role"] == "distance"
    reach = analysis.reach(cube, 1e5)  # the distance dim found by its role
    assert reach.dims == ("detector.efficiency",) and np.all(np.diff(reach.values) > 0)


def test_a_plugin_protocol_is_checked_optimised_and_reported(toy_conf, tmp_path):
    with pytest.raises(ConfigError, match=r"protocol.bits_per_detection = 1.5 is outside the allowed range \[0, 1\]"):
        qkdjax.run(*toy_conf, "protocol.bits_per_detection=1.5")
    with pytest.raises(ConfigError, match="protocol.type toy_test has no finite-key analysis"):
        qkdjax.run(*toy_conf, "montecarlo.trials=10")
    optimised = qkdjax.run(*toy_conf, "link.distance_km=[50]", "optimize.enabled=true", "optimize.params=[protocol.bits_per_detection]",
                           "+optimize.bounds.protocol.bits_per_detection=[0.01,0.99]")  # fmt: skip
    assert float(optimised["opt.protocol.bits_per_detection"].min()) > 0.97  # the rate grows with it: the box's end
    assert bool((optimised.key_rate > 3.8 * optimised["opt.initial_key_rate"]).all())
    assert main([*toy_conf, *GRID, f"output.dir={tmp_path}"]) in (0, None)
    assert main(["report", str(tmp_path / "default.nc"), "--out", str(tmp_path / "report")]) in (0, None)
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "Maximal reach (link.distance_km)" in summary and (tmp_path / "report" / "rate_vs_distance.png").exists()


def code_words(path: Path) -> set[str]:
    """Identifiers and string constants of a module, without its docstrings and comments."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node) is not None
    }
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", node.value))
        elif isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
    return words


@pytest.mark.parametrize("module", CORE)
def test_core_modules_name_no_protocol_or_link_type(module):
    types = {name for group in parameters.GROUPS for name in parameters.registry(group)}
    classes = {cls.__name__ for group in parameters.GROUPS for cls in parameters.registry(group).values()}
    named = code_words(PACKAGE / module) & (types | classes | {"bb84", "mdi", "satellite", "fibre", "corridor", "chain"})
    assert not named, f"{module} names {sorted(named)}"
