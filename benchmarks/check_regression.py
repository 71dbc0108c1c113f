"""Check that the working tree writes every sweep's cube bit-identical to an earlier commit's.

Usage: python benchmarks/check_regression.py --against COMMIT [--sweeps NAME ...] [--cache DIR]

The earlier commit is checked out in a detached worktree (under the cache directory) and run with
``PYTHONPATH`` pointing there, so both runs use this environment's libraries; its cubes are kept in the cache,
keyed by the commit's hash, and reused. Coordinates, variables and their attributes must match bit for bit
(NaN equal to NaN); attributes added on purpose since (``ALLOWED_NEW_ATTRS``) are listed, not failed. Global
attributes (provenance: the config, the git hash, the time) are not compared; a changed config (apart from
``output`` and ``compile_cache``) is shown for information. One line per sweep with both run times (the earlier one blank once cached); a sweep the earlier
commit lacks is listed as new. Exit status 1 if any cube differs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parent.parent
ALLOWED_NEW_ATTRS = {"qkdjax_role"}


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def run_sweep(sweep: str, code_dir: Path, out_dir: Path, cache_dir: Path) -> tuple[Path, float]:
    """Write ``sweep``'s cube with the code in ``code_dir``; return the file and the wall time in seconds."""
    env = dict(os.environ, PYTHONPATH=str(code_dir), QKDJAX_CACHE_DIR=str(cache_dir))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "qkdjax", f"sweep={sweep}", f"output.dir={out_dir}", "output.format=netcdf"],
        check=False,
        cwd=code_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"sweep {sweep} failed in {code_dir}: {proc.stderr.strip().splitlines()[-1:]}")
    return out_dir / f"{sweep}.nc", elapsed


def same_array(a: xr.DataArray, b: xr.DataArray) -> bool:
    if a.dims != b.dims or a.shape != b.shape or a.dtype != b.dtype:
        return False
    x, y = np.asarray(a.values), np.asarray(b.values)
    if x.dtype.kind == "f":  # bit for bit (-0.0 is not 0.0), except that any NaN equals any NaN
        nan = np.isnan(x)
        return bool(np.array_equal(nan, np.isnan(y)) and np.array_equal(x[~nan].view(np.uint8), y[~nan].view(np.uint8)))
    return bool(np.array_equal(x, y))


def compare(base: xr.Dataset, new: xr.Dataset) -> tuple[list[str], set[str]]:
    """Differences between two cubes (empty: identical) and the allowed attributes new ones carry."""
    problems, added = [], set()
    for kind, old_map, new_map in (("coord", base.coords, new.coords), ("variable", base.data_vars, new.data_vars)):
        if set(old_map) != set(new_map):
            problems.append(f"{kind}s differ: only before {sorted(set(old_map) - set(new_map))}, now {sorted(set(new_map) - set(old_map))}")
        for name in sorted(set(old_map) & set(new_map)):
            a, b = old_map[name], new_map[name]
            if not same_array(a, b):
                problems.append(f"{kind} {name}: values differ")
            extra = set(b.attrs) - set(a.attrs)
            added |= extra & ALLOWED_NEW_ATTRS
            for key in sorted((set(a.attrs) | set(b.attrs)) - ALLOWED_NEW_ATTRS):
                if str(a.attrs.get(key)) != str(b.attrs.get(key)):
                    problems.append(f"{kind} {name}: attribute {key} {a.attrs.get(key)!r} -> {b.attrs.get(key)!r}")
    return problems, added


def study_config(cube: xr.Dataset) -> list[dict]:
    """The cube's resolved config (one document per design of a comparison) without where the run wrote
    (``output``, ``compile_cache``: each run's own)."""
    configs = [c or {} for c in yaml.safe_load_all(cube.attrs.get("config", "{}"))]
    return [{key: value for key, value in config.items() if key not in ("output", "compile_cache")} for config in configs]


def baseline_worktree(commit: str, cache: Path) -> Path:
    tree = cache / f"tree-{commit}"
    if not tree.exists():
        git("worktree", "add", "--detach", str(tree), commit)
    return tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="commit (or ref) whose cubes are the reference")
    parser.add_argument("--sweeps", nargs="*", help="sweep names (default: every sweeps/*.yaml)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "qkdjax-regression")
    args = parser.parse_args(argv)
    commit = git("rev-parse", args.against)
    sweeps = args.sweeps or sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))
    cache = args.cache.resolve()
    base_dir, new_dir = cache / f"cubes-{commit}", Path(tempfile.mkdtemp(prefix="qkdjax-regression-"))
    base_dir.mkdir(parents=True, exist_ok=True)
    tree = baseline_worktree(commit, cache)
    failed = False
    print(f"{'sweep':<20} {'before s':>9} {'now s':>7}  result")
    for sweep in sweeps:
        if not (tree / "sweeps" / f"{sweep}.yaml").exists():
            print(f"{sweep:<20} {'':>9} {'':>7}  new since {args.against}: nothing to compare")
            continue
        base_file, base_s = base_dir / f"{sweep}.nc", float("nan")
        if not base_file.exists():
            base_file, base_s = run_sweep(sweep, tree, base_dir, cache / "jax-cache-base")
        new_file, new_s = run_sweep(sweep, REPO, new_dir, cache / "jax-cache-new")
        with xr.open_dataset(base_file) as base, xr.open_dataset(new_file) as new:
            problems, added = compare(base.load(), new.load())
            config_changed = study_config(base) != study_config(new)
        failed |= bool(problems)
        verdict = "bit-identical" if not problems else "DIFFERS"
        notes = [f"new attrs {sorted(added)}"] * bool(added) + ["config text changed"] * config_changed
        before = "" if np.isnan(base_s) else f"{base_s:.1f}"
        print(f"{sweep:<20} {before:>9} {new_s:>7.1f}  {verdict}{'; ' + ', '.join(notes) if notes else ''}")
        for problem in problems:
            print(f"    {problem}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
