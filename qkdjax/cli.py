"""Command line and Python entry points: ``qkdjax [overrides]``, ``qkdjax merge``, and ``qkdjax.run``.

The Hydra app composes ``conf/config.yaml`` with a sweep from ``sweeps/`` (registered in Hydra's ConfigStore as
the group ``sweep``, so ``sweep=NAME`` works from any directory), validates it, runs it and writes the cube.
``qkdjax.run`` composes the same config with the same overrides and runs the same function.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import jax
import xarray as xr
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from qkdjax import parameters
from qkdjax.config import (
    ConfigError,
    Grid,
    Settings,
    check_study,
    config_yaml,
    omegaconf_error,
    parse_compare,
    parse_grid,
    parse_overrides,
    parse_settings,
    unknown_key_error,
)
from qkdjax.io import StoreError, merge_cubes, one_line, open_cube, write_netcdf
from qkdjax.paths import CONF_DIR, SWEEPS_DIR
from qkdjax.resources import check_resources
from qkdjax.study import make_study
from qkdjax.sweep import run_grid

# Config group -> its options (Hydra's own groups under conf/hydra/ are Hydra's to check; sweeps: see check_overrides).


def config_groups(*conf_dirs: Path) -> dict[str, list[str]]:
    """Config group -> the option names its YAMLs offer, over ``conf_dirs`` (qkdjax's own first)."""
    groups: dict[str, set[str]] = {}
    for conf_dir in (CONF_DIR, *conf_dirs):
        for folder in (p for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra"):
            groups.setdefault(folder.name, set()).update(q.stem for q in folder.glob("*.yaml"))
    return {group: sorted(options) for group, options in groups.items()}


def search_dirs(overrides) -> list[Path]:
    """The existing folders that ``hydra.searchpath=[file://DIR, ...]`` adds: a plug-in's own configs (e.g. its
    ``protocol/NAME.yaml``)."""
    from qkdjax.config import parse_overrides

    found = []
    for override in parse_overrides([o for o in overrides if o.startswith("hydra.searchpath=")]):
        for entry in override.value() or []:
            folder = Path(str(entry).removeprefix("file://"))
            if folder.is_dir():
                found.append(folder)
    return found


def version() -> str:
    try:
        return metadata.version("qkdjax")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@functools.cache
def register_sweeps() -> None:
    """Offer every ``sweeps/NAME.yaml`` as the choice ``sweep=NAME`` (merged at the top level of the config)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for path in sorted(SWEEPS_DIR.glob("*.yaml")):
        try:
            node = OmegaConf.load(path)
        except (yaml.YAMLError, OmegaConfBaseException) as error:
            raise ConfigError(f"sweep file {path} is not valid YAML: {one_line(error)}") from None
        if not isinstance(node, DictConfig):
            raise ConfigError(f"sweep file {path} must be a mapping of config values, not {type(node).__name__}")
        store.store(group="sweep", name=path.stem, node=node, package="_global_")


@functools.cache
def _primary_config() -> DictConfig:
    return OmegaConf.load(CONF_DIR / "config.yaml")


def check_overrides(overrides) -> None:
    """Reject bad override syntax, unknown keys and unknown group choices with one clear line (before Hydra's own,
    longer error)."""
    from qkdjax.config import check_override_keys

    sweeps = sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))
    check_override_keys(overrides, _primary_config(), {**config_groups(*search_dirs(overrides)), "sweep": sweeps})


def _cube_name(settings, hydra_cfg) -> str:
    name = settings.output_name or hydra_cfg.runtime.choices.get("sweep") or "qkdjax"
    if str(hydra_cfg.mode) != "RunMode.MULTIRUN":
        return name
    # One cube per multirun job, named by what the job overrides (escaped: a range stays unresolved, as written);
    # shards of one grid share one store.
    overridden = hydra_cfg.job.override_dirname
    if overridden or settings.num_shards == 1:
        suffix = re.sub(r"[^A-Za-z0-9._=,-]+", "_", overridden) or str(hydra_cfg.job.num)
        name = f"{name}.{suffix[:120]}"
    return name


# write_netcdf and create_store write ".NAME.<32 hex digits>.tmp" first, then rename it to NAME.
TEMPORARY_NAME_BYTES = len("..") + 32 + len(".tmp")


def cube_path(settings: Settings, hydra_cfg: DictConfig) -> Path:
    return Path(settings.output_dir) / f"{_cube_name(settings, hydra_cfg)}.{'zarr' if settings.output_format == 'zarr' else 'nc'}"


def check_output_path(path: Path, settings: Settings) -> None:
    """The cube's file name fits the file system, and its folder exists or can be made, and can be written."""
    folder = path.parent
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"output.dir = {settings.output_dir!r} lies under {existing}, which is a file, not a folder")
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    name_bytes = len(os.fsencode(path.name)) + TEMPORARY_NAME_BYTES
    if name_bytes > name_max:
        name = settings.output_name or "the sweep's name"
        raise ConfigError(
            f"output.name: the cube's file name {path.name[:60]}... is {name_bytes - TEMPORARY_NAME_BYTES} bytes; with the "
            f"{TEMPORARY_NAME_BYTES} of its temporary name it must fit the file system's {name_max}: shorten {name} by "
            f"{name_bytes - name_max} characters or more"
        )
    try:  # a real write is the only sure test (a read-only mount, /proc, permissions); nothing is left behind
        os.rmdir(tempfile.mkdtemp(prefix=".qkdjax-probe-", dir=existing))
    except OSError as error:
        raise ConfigError(f"output.dir = {settings.output_dir!r} cannot be made or written under {existing}: {error.strerror}") from None


SHARD_KEYS = ("sweep.shard", "sweep.num_shards")


def measured_tables(grid: Grid) -> str:
    """The tables the study reads (``parameters.table`` fields, e.g. a CSV file's atmosphere) as JSON: a file's
    path is in the config, its contents only here, so a changed file is a different study."""
    types = {group: grid.static.get(f"{group}.type") for group in parameters.GROUPS}
    tables = {path: value for path, value in grid.static.items() if value is not None and "table" in parameters.field(path, types).metadata}
    return json.dumps(tables)


def run_identity(cfg: DictConfig, grid: Grid) -> str:
    """The config as YAML without what does not change the results (output place and format, shard, compile
    cache), and the tables it reads."""
    config = yaml.safe_load(config_yaml(cfg))
    config.pop("output", None)
    config.pop("compile_cache", None)
    for key in SHARD_KEYS:
        config["sweep"].pop(key.split(".")[1], None)
    return yaml.safe_dump({**config, "tables": measured_tables(grid)}, sort_keys=True)


def provenance(cfg: DictConfig, hydra_cfg: DictConfig, grid: Grid) -> dict[str, str]:
    """Global attrs of a cube: version, config, the tables it read, Hydra choices and the command that reruns it
    (shards: all of it)."""
    return provenance_attrs(cfg, hydra_cfg) | {"tables": measured_tables(grid)}


def provenance_attrs(cfg: DictConfig, hydra_cfg: DictConfig) -> dict[str, str]:
    """``provenance`` without the tables the grid reads."""
    # Unresolved: a range override stays `${linspace:..}` (resolved, 1e8 points made a 100 MB attr).
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    overrides = [o for o in task if o.split("=")[0].lstrip("+~") not in SHARD_KEYS]
    choices = {k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra")}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rerun = " ".join(["qkdjax", *overrides])
    return {
        "title": f"qkdjax study {choices.get('sweep')}",
        "qkdjax_version": version(),
        "jax_version": jax.__version__,
        "created": created,
        "history": f"{created}: {rerun}",  # CF: one line per program that made or changed the cube
        "config": config_yaml(cfg),
        "choices": json.dumps(choices),
        "overrides": json.dumps(overrides),
        "rerun": rerun,
        "Conventions": "CF-1.10",
    }


def study_factory(settings: Settings) -> Callable:
    """``make_study(choices)``: the study of one combination of static choices, with the run's settings."""
    return functools.partial(
        make_study,
        trials=settings.trials,
        keep_trials=settings.keep_trials,
        supply_horizon_h=settings.supply_horizon_h,
        supply_steps=settings.supply_steps,
        optimizer=settings.optimizer,
        inverse=settings.inverse,
    )


def check_run(
    cfg: DictConfig, hydra_cfg: DictConfig, *, write: bool, grid: Grid | None = None, here: bool = True
) -> tuple[Grid, Settings, Callable]:
    """Every check of the study ``cfg`` describes, before anything is compiled, computed or written: the config,
    the output path (``write``) and what this machine must hold (``here``: the run is on this machine). Returns
    the grid, the settings and the study factory; raises ``ConfigError``. ``grid``: the config's grid, parsed
    already (the jobs of one multirun)."""
    try:
        grid = grid or parse_grid(cfg)
        settings = parse_settings(cfg)
        check_study(grid, settings)
    except OmegaConfBaseException as error:
        raise omegaconf_error(error) from None
    if settings.num_shards > 1 and not write:
        raise ConfigError(f"sweep.num_shards = {settings.num_shards} writes a shared store: run with write=True")
    make_study = study_factory(settings)
    path = cube_path(settings, hydra_cfg) if write else None
    if path is not None:
        check_output_path(path, settings)
    if here:
        check_resources(grid, settings, make_study, path)
    return grid, settings, make_study


def use_compile_cache(directory: str | None) -> None:
    """Keep every program JAX compiles in ``directory`` (None: no persistent cache), so a rerun loads them.

    Even the smallest programs are kept: a study compiles many of well under JAX's default threshold of 1 s.
    JAX opens its cache once per process, so a change of folder (``qkdjax.run`` with another ``compile_cache.dir``)
    resets it.
    """
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir != directory:
        compilation_cache.set_cache_dir(directory)
        compilation_cache.reset_cache()
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def execute(cfg: DictConfig, hydra_cfg: DictConfig, *, write: bool) -> tuple[xr.Dataset, Path | None]:
    """Validate, run and (optionally) write the study that ``cfg`` describes. Raises ``ConfigError`` first."""
    if parse_compare(cfg):
        return execute_designs(cfg, hydra_cfg, write=write)
    grid, settings, make_study = check_run(cfg, hydra_cfg, write=write)
    use_compile_cache(settings.compile_cache_dir)
    if write and settings.output_format == "zarr":
        return _stream(make_study, grid, settings, cfg, hydra_cfg)
    if settings.design is not None:
        from qkdjax.network.planning import plan

        cube = plan(make_study, grid, settings)
    else:
        cube = run_grid(make_study, grid, chunk_size=settings.chunk_size, seed=settings.seed, common_keys=settings.common_random_numbers)
    cube.attrs.update(provenance(cfg, hydra_cfg, grid))
    if not write:
        return cube, None
    return cube, write_netcdf(cube, cube_path(settings, hydra_cfg))


def _stream(make_study, grid, settings, cfg: DictConfig, hydra_cfg: DictConfig) -> tuple[xr.Dataset, Path]:
    """Stream the study (or this job's shard of it) into ``output.dir/NAME.zarr``; a lone run also finalizes it."""
    from qkdjax.zarr_store import finalize, open_store, stream_grid

    path = cube_path(settings, hydra_cfg)
    stream_grid(
        make_study,
        grid,
        path,
        chunk_size=settings.chunk_size,
        seed=settings.seed,
        common_keys=settings.common_random_numbers,
        attrs=provenance(cfg, hydra_cfg, grid),
        identity=run_identity(cfg, grid),
        shard=settings.shard,
        num_shards=settings.num_shards,
    )
    if settings.num_shards == 1:
        finalize(path)  # verifies every chunk: the cube below need not again
    return open_store(path, allow_incomplete=settings.num_shards > 1, verify=False), path


def design_configs(cfg: DictConfig, hydra_cfg: DictConfig, *, write: bool) -> dict[str, tuple[DictConfig, DictConfig]]:
    """The config of every design that ``compare`` names, each composed from the run's overrides and the design's
    own and checked (``check_run``), before any is computed. Raises ``ConfigError`` naming the design."""
    settings = parse_settings(cfg)
    if settings.output_format == "zarr" or settings.num_shards > 1:
        raise ConfigError("compare merges its designs' cubes in memory: use output.format=netcdf and sweep.num_shards=1")
    if write:
        check_output_path(cube_path(settings, hydra_cfg), settings)
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    designs = {}
    for name, overrides in parse_compare(cfg).items():
        try:
            design_cfg, design_hydra = compose_config(*task, *overrides, "~compare")
            check_run(design_cfg, design_hydra, write=False, here=True)
        except ConfigError as error:
            raise ConfigError(f"compare.{name}: {error}") from None
        designs[name] = design_cfg, design_hydra
    return designs


def execute_designs(cfg: DictConfig, hydra_cfg: DictConfig, *, write: bool) -> tuple[xr.Dataset, Path | None]:
    """Run every design of ``compare`` with the same seed (common random numbers) and merge their cubes along a
    ``design`` dim (``merge_cubes``); write the merged cube as the run's one cube."""
    designs = design_configs(cfg, hydra_cfg, write=write)
    cubes = [execute(design_cfg, design_hydra, write=False)[0] for design_cfg, design_hydra in designs.values()]
    cube = merge_cubes(cubes, designs=list(designs))
    whole = provenance_attrs(cfg, hydra_cfg)
    cube.attrs.update({k: v for k, v in whole.items() if k != "config"})  # config: each design's (merge_cubes)
    if not write:
        return cube, None
    return cube, write_netcdf(cube, cube_path(parse_settings(cfg), hydra_cfg))


def compose_config(*overrides: str) -> tuple[DictConfig, DictConfig]:
    """The study config and Hydra's own config that ``qkdjax *overrides`` would run with."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    register_sweeps()
    check_overrides(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="qkdjax"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as error:  # Hydra's own multi-line messages
        raise _override_error(overrides, error) from None
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, hydra_cfg


def _override_error(overrides: tuple[str, ...], error: BaseException) -> ConfigError:
    """Hydra's compose error as one line; an override of a field that the group's chosen type lacks (e.g.
    ``protocol.block_size`` with ``protocol=tf_sns``) names the type and what it accepts."""
    found = re.search(r"Could not override '(\w+)\.(\w+)'", str(error))
    if found and found[1] in parameters.GROUPS:
        group, key = found.groups()
        rest = [o for o in overrides if o.split("=")[0].lstrip("+~") != f"{group}.{key}"]
        cfg, _ = compose_config(*rest)
        cls = parameters.group_class(group, cfg[group].get("type"))
        if key in {f.name for f in dataclasses.fields(cls)}:  # a field the group's YAML leaves at its default
            return ConfigError(f"{group}.{key} is not in the {group} config file: set it with +{group}.{key}=VALUE")
        return unknown_key_error(group, key, cls)
    return ConfigError(f"cannot compose the config: {one_line(error)}")


def run(*overrides: str, write: bool = False) -> xr.Dataset:
    """Run exactly what ``qkdjax *overrides`` runs and return the cube (written to disk only if ``write``).

    Example: ``qkdjax.run("sweep=gys_2005", "link.distance_km=[50,100]")``.
    """
    return execute(*compose_config(*overrides), write=write)[0]


LOCAL_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # runs the jobs in this process
MAX_JOBS = 10_000  # jobs of one multirun: each is composed and checked before the first one runs


def multirun_jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of every job that ``qkdjax --multirun overrides`` launches (Hydra's basic sweeper's split)."""
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep
    from hydra.errors import HydraException

    register_sweeps()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="qkdjax"):
        parsed = parse_overrides(overrides, GlobalHydra.instance().config_loader())
    jobs = 1
    for override in parsed:
        sweep = override.value() if override.is_sweep_override() else None
        if sweep is not None and override.is_hydra_override():
            raise ConfigError(f"{override.input_line}: a multirun cannot sweep Hydra's own settings")
        if isinstance(sweep, ChoiceSweep):
            jobs *= len(sweep.list)
        elif isinstance(sweep, RangeSweep):  # counted before Hydra lists every value
            jobs *= max(math.ceil((sweep.stop - sweep.start) / sweep.step), 0)
    if jobs > MAX_JOBS:
        raise ConfigError(f"this multirun launches {jobs} jobs, more than {MAX_JOBS}: sweep fewer values, or sweep a list axis in one job")
    try:
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except HydraException as error:
        raise ConfigError(f"cannot list the multirun's jobs: {one_line(error)}") from None


def check_jobs(overrides: list[str], *, multirun: bool) -> bool:
    """Compose and check every job that ``qkdjax [--multirun] overrides`` would run, before any runs (and before
    Hydra makes its folders). Jobs with the same physics groups (the shards of one grid) share one grid check.
    Jobs a launcher sends to other machines (SLURM) check memory and disk there, before compiling. Returns whether
    the run compares designs (``compare``), which runs here, outside Hydra's app."""
    from hydra.types import RunMode

    grids: dict[str, Grid] = {}
    for num, job in enumerate(multirun_jobs(overrides) if multirun else [overrides]):
        cfg, hydra_cfg = compose_config(*job)
        if parse_compare(cfg):
            if multirun:
                raise ConfigError("compare runs its designs in one process and merges them: run it without --multirun")
            design_configs(cfg, hydra_cfg, write=True)
            return True
        if multirun:  # what the job's cube is called in a multirun
            with open_dict(hydra_cfg):
                hydra_cfg.mode, hydra_cfg.job.num = RunMode.MULTIRUN, num
        here = OmegaConf.select(hydra_cfg, "launcher._target_") == LOCAL_LAUNCHER
        physics = OmegaConf.to_yaml({group: cfg.get(group) for group in parameters.GROUPS})
        grids[physics] = check_run(cfg, hydra_cfg, write=True, grid=grids.get(physics), here=here)[0]
    return False


def _hydra_arguments(argv: list[str]) -> argparse.Namespace:
    """Hydra's own command line (flags and overrides), its usage errors as one line."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.prog = "qkdjax"
    parser.error = functools.partial(_usage_error, parser)
    return parser.parse_args(argv)


def _usage_error(parser: argparse.ArgumentParser, message: str) -> None:
    _fail(f"{parser.prog}: {message} (see {parser.prog} --help)")


class _Parser(argparse.ArgumentParser):
    """The subcommands' parser, its usage errors as one line."""

    def error(self, message: str) -> None:
        _usage_error(self, message)


def _fail(message: str) -> None:
    print(f"qkdjax: error: {message}", file=sys.stderr)
    sys.exit(2)


def remove_run(run_dir: Path, output_dir: Path) -> None:
    """Remove what a failed run made: Hydra's folder of this run, and the folders between it and ``output_dir``
    (included) that it leaves empty. A Zarr store stays: it resumes."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for folder in run_dir.absolute().parents:
        if not folder.is_relative_to(output_dir.absolute()):
            break
        try:
            folder.rmdir()  # only an empty one
        except OSError:
            break


def _hydra_app() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def app(cfg: DictConfig) -> None:
        hydra_cfg = HydraConfig.get()
        made = functools.partial(remove_run, Path(hydra_cfg.runtime.output_dir), Path(str(cfg.output.dir)))
        try:
            _, path = execute(cfg, hydra_cfg, write=True)
        except (ConfigError, StoreError) as error:
            made()
            _fail(str(error))
        except BaseException:
            made()
            raise
        print(path)

    register_sweeps()
    app()


def merge_main(argv: list[str]) -> None:
    parser = _Parser(prog="qkdjax merge", description="Combine cubes of a multirun or of shards.")
    parser.add_argument("cubes", nargs="+", type=Path, help="cubes written by qkdjax: netCDF files or (finalized) Zarr stores")
    parser.add_argument("--out", required=True, type=Path, help="path of the merged cube")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.cubes if not p.exists()]
    if missing:
        _fail(f"no such cube: {', '.join(missing)}")
    if any(args.out.resolve() == p.resolve() or (args.out.exists() and args.out.samefile(p)) for p in args.cubes):
        _fail(f"--out {args.out} is one of the cubes to merge: give another path")
    try:
        merged = merge_cubes([open_cube(p) for p in args.cubes])  # every input read and checked before writing
    except ValueError as error:
        _fail(str(error))
    try:
        print(write_netcdf(merged, args.out))
    except OSError as error:
        _fail(f"cannot write --out {args.out}: {one_line(error)}")


def report_main(argv: list[str]) -> None:
    parser = _Parser(
        prog="qkdjax report", description="Figures (PNG), a Markdown summary and the same as one self-contained HTML page, of a cube."
    )
    parser.add_argument("cube", type=Path, help="cube written by qkdjax (netCDF file or Zarr store)")
    parser.add_argument("--out", required=True, type=Path, help="folder for summary.md, report.html and the figures")
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
    except ValueError as error:  # StoreError: unreadable, damaged, or not written by qkdjax
        _fail(one_line(error))
    try:
        path = write_report(cube, args.out, target=args.target, probability=args.probability, source=str(args.cube))
    except ValueError as error:
        _fail(str(error))
    print(path)


def finalize_main(argv: list[str]) -> None:
    parser = _Parser(prog="qkdjax finalize", description="Check that every chunk of Zarr stores is written; consolidate their metadata.")
    parser.add_argument("stores", nargs="+", type=Path, help="Zarr stores written by shards (output.format=zarr)")
    args = parser.parse_args(argv)
    from qkdjax.zarr_store import consolidate, verify_store

    errors = []
    for store in args.stores:  # every store checked before any is consolidated
        try:
            verify_store(store)
        except StoreError as error:
            errors.append(str(error))
    if errors:
        _fail("; ".join(errors))
    for store in args.stores:
        print(consolidate(store))


SUBCOMMANDS = {"merge": merge_main, "report": report_main, "finalize": finalize_main}


def main(argv: list[str] | None = None) -> None:
    """Console entry point: ``qkdjax merge ...``, ``qkdjax report ...``, ``qkdjax finalize ...`` or the Hydra app."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = _hydra_arguments(argv)
    # Help, config printing, reruns and other config folders or names are Hydra's to answer; every run is checked here.
    shows = args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.experimental_rerun
    if not (shows or args.config_path or args.config_dir or args.config_name):
        try:
            if check_jobs(args.overrides, multirun=args.multirun):
                print(execute(*compose_config(*args.overrides), write=True)[1])
                return None
        except (ConfigError, StoreError) as error:
            _fail(str(error))
    sys.argv = [sys.argv[0], *argv]
    _hydra_app()
