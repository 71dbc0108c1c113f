"""qkdjax: GPU-accelerated Monte Carlo studies of quantum key distribution links.

Import order matters: float64 is switched on before any array is made, because key rates of 1e-12 bit/pulse
and transmittances of 1e-20 do not survive float32. XLA's CPU backend, unless ``XLA_FLAGS`` says otherwise, is
set (before it starts) to emit fusions the classic way: studies compile in about half the time (an optimised
finite-key study: 3.7 -> 2.1 s) for 0-10 % slower evaluation (``benchmarks/bench_compile.py``, README).
Long CPU runs may prefer ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=true``. GPUs are unaffected.
"""

import os

import jax

if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_use_fusion_emitters=false".strip()
jax.config.update("jax_enable_x64", True)

from qkdjax import analysis  # numpy/xarray only; qkdjax.plots needs the plot extra
from qkdjax.cli import run, version
from qkdjax.io import merge_cubes, open_cube, write_netcdf

__version__ = version()
__all__ = ["__version__", "analysis", "merge_cubes", "open_cube", "run", "write_netcdf"]
