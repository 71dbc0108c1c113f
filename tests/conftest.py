import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

# The tests' compiled programs go to a cache of their own (shared with the CLI subprocesses), not the user's.
os.environ["QKDJAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="qkdjax-test-cache-")
atexit.register(shutil.rmtree, os.environ["QKDJAX_CACHE_DIR"], ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "reference"  # copies of ../shared/reference/ (test_reference_copies.py)


def reference(name: str) -> dict:
    """A published parameter set and its numbers, from the copy of ../shared/reference/NAME.json in tests/reference/."""
    return json.loads((REFERENCE / f"{name}.json").read_text())


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the ``qkdjax`` command as a user would, in ``cwd``."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "qkdjax", *args], cwd=cwd, capture_output=True, text=True, env=env)


# One fibre + InGaAs + WCP point, in the flat "group.field" form the sweep engine passes to a study.
BASE_POINT = {
    "link.distance_km": 50.0,
    "link.attenuation_db_per_km": 0.2,
    "link.extra_loss_db": 0.0,
    "detector.efficiency": 0.1,
    "detector.dark_count_prob": 6e-7,
    "detector.afterpulse_prob": 0.0,
    "detector.dead_time_ns": 0.0,
    "detector.misalignment": 0.01,
    "source.rep_rate_hz": 1e9,
    "source.mu_signal": 0.5,
    "source.mu_decoy": 0.1,
    "source.mu_weak": 0.0,
    "source.p_signal": 0.8,
    "source.p_decoy": 0.1,
    "protocol.p_key_basis": 0.5,
    "protocol.ec_efficiency": 1.16,
    "protocol.eps_sec": 1e-10,
    "protocol.eps_cor": 1e-15,
    "protocol.qber_abort": 0.11,
}
ASYMPTOTIC = (("link.type", "fibre"), ("protocol.block_size", None), ("protocol.eps_sec_per_key_bit", None))


def evaluate(values: dict, decoy: str = "vacuum_weak") -> dict:
    """Metrics of the fibre study at points given as (broadcastable) arrays, evaluated with vmap."""
    import jax.numpy as jnp
    import numpy as np

    from qkdjax.study import make_study

    arrays = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in {**BASE_POINT, **values}.items()}
    shape = jnp.broadcast_shapes(*(a.shape for a in arrays.values()))
    flat = {k: jnp.broadcast_to(a, shape).ravel() for k, a in arrays.items()}
    study = make_study((*ASYMPTOTIC, ("protocol.decoy", decoy)))
    keys = jax.random.split(jax.random.key(0), flat["link.distance_km"].size)
    out = jax.vmap(study)(flat, keys)
    return {k: np.asarray(v).reshape(shape) for k, v in out.items()}


def refused(capsys, *argv: str) -> str:
    """Run ``qkdjax *argv`` in-process; assert it fails as promised (exit 2, one line on stderr, nothing on stdout)."""
    from qkdjax.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    captured = capsys.readouterr()
    assert exit_info.value.code == 2, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith("qkdjax: error: ")
    return line
