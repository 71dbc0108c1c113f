"""qkdjax: GPU-accelerated Monte Carlo studies of quantum key distribution links.

Import order matters: float64 is switched on before any array is made, because key rates of 1e-12 bit/pulse
and transmittances of 1e-20 do not survive float32.
"""

import jax

jax.config.update("jax_enable_x64", True)

from qkdjax import analysis  # numpy/xarray only; qkdjax.plots needs the plot extra
from qkdjax.cli import run, version
from qkdjax.io import merge_cubes, open_cube, write_netcdf

__version__ = version()
__all__ = ["__version__", "analysis", "merge_cubes", "open_cube", "run", "write_netcdf"]
