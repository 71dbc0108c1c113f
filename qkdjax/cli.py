"""Command line and Python entry points: ``qkdjax [overrides]``, ``qkdjax merge``, and ``qkdjax.run``.

The Hydra app composes ``conf/config.yaml`` with a sweep from ``sweeps/`` (registered in Hydra's ConfigStore as
the group ``sweep``, so ``sweep=NAME`` works from any directory), validates it, runs it and writes the cube.
``qkdjax.run`` composes the same config with the same overrides and runs the same function.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import jax
import xarray as xr
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from qkdjax.config import ConfigError, check_study, config_yaml, parse_grid, parse_settings
from qkdjax.io import StoreError, merge_cubes, open_cube, write_netcdf
from qkdjax.study import Study
from qkdjax.sweep import run_grid


def _resource_dir(name: str) -> Path:
    """``conf/`` or ``sweeps/``: inside the installed wheel, else at the root of the source tree."""
    packaged = Path(__file__).parent / "_resources" / name
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / name


CONF_DIR = _resource_dir("conf")
SWEEPS_DIR = _resource_dir("sweeps")
CONFIG_GROUPS = {p.name for p in CONF_DIR.iterdir() if p.is_dir()} | {"sweep"}


def version() -> str:
    try:
        return metadata.version("qkdjax")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def register_sweeps() -> None:
    """Offer every ``sweeps/NAME.yaml`` as the choice ``sweep=NAME`` (merged at the top level of the config)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for path in sorted(SWEEPS_DIR.glob("*.yaml")):
        store.store(group="sweep", name=path.stem, node=OmegaConf.load(path), package="_global_")


def check_overrides(overrides) -> None:
    """Reject unknown keys in command-line overrides with one clear line (before Hydra's own, longer error)."""
    from qkdjax.config import check_override_keys

    check_override_keys(overrides, OmegaConf.load(CONF_DIR / "config.yaml"), CONFIG_GROUPS)


def _cube_name(settings, hydra_cfg) -> str:
    name = settings.output_name or hydra_cfg.runtime.choices.get("sweep") or "qkdjax"
    overridden = hydra_cfg.job.override_dirname
    # One cube per multirun job, named by what the job overrides; shards of one grid share one store.
    if str(hydra_cfg.mode) == "RunMode.MULTIRUN" and (overridden or settings.num_shards == 1):
        suffix = re.sub(r"[^A-Za-z0-9._=,-]+", "_", overridden) or str(hydra_cfg.job.num)
        name = f"{name}.{suffix[:120]}"
    return name


SHARD_KEYS = ("sweep.shard", "sweep.num_shards")


def run_identity(cfg: DictConfig) -> str:
    """The config as YAML without what does not change the results (output place and format, shard)."""
    config = yaml.safe_load(config_yaml(cfg))
    config.pop("output", None)
    for key in SHARD_KEYS:
        config["sweep"].pop(key.split(".")[1], None)
    return yaml.safe_dump(config, sort_keys=True)


def provenance(cfg: DictConfig, hydra_cfg: DictConfig) -> dict[str, str]:
    """Global attrs of a cube: version, config, Hydra choices and the command that reruns it (shards: all of it)."""
    # Unresolved: a range override stays `${linspace:..}` (resolved, 1e8 points made a 100 MB attr).
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    overrides = [o for o in task if o.split("=")[0].lstrip("+~") not in SHARD_KEYS]
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    return {
        "title": f"qkdjax study {choices.get('sweep')}",
        "qkdjax_version": version(),
        "jax_version": jax.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config_yaml(cfg),
        "choices": json.dumps(choices),
        "overrides": json.dumps(overrides),
        "rerun": " ".join(["qkdjax", *overrides]),
        "Conventions": "CF-1.10",
    }


def execute(cfg: DictConfig, hydra_cfg: DictConfig, *, write: bool) -> tuple[xr.Dataset, Path | None]:
    """Validate, run and (optionally) write the study that ``cfg`` describes. Raises ``ConfigError`` first."""
    grid = parse_grid(cfg)
    settings = parse_settings(cfg)
    check_study(grid, settings)
    make_study = functools.partial(
        Study,
        trials=settings.trials,
        keep_trials=settings.keep_trials,
        supply_horizon_h=settings.supply_horizon_h,
        supply_steps=settings.supply_steps,
        optimizer=settings.optimizer,
        inverse=settings.inverse,
    )
    if write and settings.output_format == "zarr":
        return _stream(make_study, grid, settings, cfg, hydra_cfg)
    if settings.num_shards > 1:
        raise ConfigError(f"sweep.num_shards = {settings.num_shards} writes a shared store: run with write=True")
    cube = run_grid(make_study, grid, chunk_size=settings.chunk_size, seed=settings.seed, common_keys=settings.common_random_numbers)
    cube.attrs.update(provenance(cfg, hydra_cfg))
    if not write:
        return cube, None
    path = Path(settings.output_dir) / f"{_cube_name(settings, hydra_cfg)}.nc"
    return cube, write_netcdf(cube, path)


def _stream(make_study, grid, settings, cfg: DictConfig, hydra_cfg: DictConfig) -> tuple[xr.Dataset, Path]:
    """Stream the study (or this job's shard of it) into ``output.dir/NAME.zarr``; a lone run also finalizes it."""
    from qkdjax.zarr_store import finalize, open_store, stream_grid

    path = Path(settings.output_dir) / f"{_cube_name(settings, hydra_cfg)}.zarr"
    stream_grid(
        make_study,
        grid,
        path,
        chunk_size=settings.chunk_size,
        seed=settings.seed,
        common_keys=settings.common_random_numbers,
        attrs=provenance(cfg, hydra_cfg),
        identity=run_identity(cfg),
        shard=settings.shard,
        num_shards=settings.num_shards,
    )
    if settings.num_shards == 1:
        finalize(path)
    return open_store(path, allow_incomplete=settings.num_shards > 1), path


def compose_config(*overrides: str) -> tuple[DictConfig, DictConfig]:
    """The study config and Hydra's own config that ``qkdjax *overrides`` would run with."""
    from hydra import compose, initialize_config_dir

    check_overrides(overrides)
    register_sweeps()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="qkdjax"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, hydra_cfg


def run(*overrides: str, write: bool = False) -> xr.Dataset:
    """Run exactly what ``qkdjax *overrides`` runs and return the cube (written to disk only if ``write``).

    Example: ``qkdjax.run("sweep=gys_2005", "link.distance_km=[50,100]")``.
    """
    return execute(*compose_config(*overrides), write=write)[0]


def _fail(message: str) -> None:
    print(f"qkdjax: error: {message}", file=sys.stderr)
    sys.exit(2)


def _hydra_app() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def app(cfg: DictConfig) -> None:
        try:
            _, path = execute(cfg, HydraConfig.get(), write=True)
        except (ConfigError, StoreError) as error:
            _fail(str(error))
        print(path)

    register_sweeps()
    app()


def merge_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="qkdjax merge", description="Combine cubes of a multirun or of shards.")
    parser.add_argument("cubes", nargs="+", type=Path, help="cubes written by qkdjax: netCDF files or (finalized) Zarr stores")
    parser.add_argument("--out", required=True, type=Path, help="path of the merged cube")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.cubes if not p.exists()]
    if missing:
        _fail(f"no such cube: {', '.join(missing)}")
    try:
        merged = merge_cubes([open_cube(p) for p in args.cubes])
    except ValueError as error:
        _fail(str(error))
    print(write_netcdf(merged, args.out))


def report_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="qkdjax report", description="Figures (PNG) and a Markdown summary of a cube.")
    parser.add_argument("cube", type=Path, help="cube written by qkdjax (netCDF file or Zarr store)")
    parser.add_argument("--out", required=True, type=Path, help="folder for summary.md and the figures")
    parser.add_argument("--target", type=float, default=1.0, help="key-rate target in bit/s (default 1)")
    parser.add_argument("--probability", type=float, default=0.95, help="required probability of meeting a demand")
    args = parser.parse_args(argv)
    if not args.cube.exists():
        _fail(f"no such cube: {args.cube}")
    try:
        from qkdjax.report import write_report  # matplotlib only when reporting
    except ImportError as error:
        _fail(f"qkdjax report needs matplotlib ({error}): pip install 'qkdjax[plot]'")
    try:
        cube = open_cube(args.cube)
    except (OSError, ValueError) as error:
        _fail(f"cannot read {args.cube} as a cube: {error}")
    try:
        path = write_report(cube, args.out, target=args.target, probability=args.probability, source=str(args.cube))
    except ValueError as error:
        _fail(str(error))
    print(path)


def finalize_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="qkdjax finalize", description="Check that every chunk of Zarr stores is written; consolidate their metadata."
    )
    parser.add_argument("stores", nargs="+", type=Path, help="Zarr stores written by shards (output.format=zarr)")
    args = parser.parse_args(argv)
    from qkdjax.zarr_store import finalize

    errors = []
    for store in args.stores:
        try:
            print(finalize(store))
        except StoreError as error:
            errors.append(str(error))
    if errors:
        _fail("; ".join(errors))


SUBCOMMANDS = {"merge": merge_main, "report": report_main, "finalize": finalize_main}


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``qkdjax merge ...``, ``qkdjax report ...``, ``qkdjax finalize ...`` or the Hydra app."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    try:
        check_overrides([a for a in argv if "=" in a and not a.startswith("-")])
    except ConfigError as error:
        _fail(str(error))
    sys.argv = [sys.argv[0], *argv]
    _hydra_app()
