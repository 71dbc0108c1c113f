"""JAX's persistent compilation cache: a rerun of a study loads its programs instead of compiling them again."""

import jax
import numpy as np
from jax import monitoring

import qkdjax
from qkdjax.cli import compose_config, use_compile_cache
from qkdjax.config import parse_settings

STUDY = ("link.distance_km=[0,20,40]", "detector.efficiency=0.1", "link.attenuation_db_per_km=0.2")


def test_rerun_loads_compiled_programs_from_the_cache(tmp_path):
    previous = jax.config.jax_compilation_cache_dir
    hits = []

    def count(event, **_):
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    monitoring.register_event_listener(count)
    try:
        first = qkdjax.run(*STUDY, f"compile_cache.dir={tmp_path}")
        assert any(tmp_path.iterdir()), "nothing was cached"
        jax.clear_caches()  # forget the programs in memory, as a new process would
        second = qkdjax.run(*STUDY, f"compile_cache.dir={tmp_path}")
    finally:
        monitoring.unregister_event_listener(count)
        use_compile_cache(previous)
    assert hits
    for name in first.data_vars:
        np.testing.assert_array_equal(first[name].values, second[name].values)


def test_compile_cache_default_folder_and_off_switch(monkeypatch, tmp_path):
    monkeypatch.delenv("QKDJAX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert parse_settings(compose_config()[0]).compile_cache_dir == str(tmp_path / "qkdjax" / "jax")
    monkeypatch.setenv("QKDJAX_CACHE_DIR", str(tmp_path / "mine"))
    assert parse_settings(compose_config()[0]).compile_cache_dir == str(tmp_path / "mine")
    assert parse_settings(compose_config("compile_cache.enabled=false")[0]).compile_cache_dir is None
