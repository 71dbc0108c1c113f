"""Where qkdjax's configs live: ``conf/`` and ``sweeps/`` inside the installed wheel, else at the source tree's root."""

from __future__ import annotations

from pathlib import Path


def resource_dir(name: str) -> Path:
    """``conf/`` or ``sweeps/``: inside the installed wheel, else at the root of the source tree."""
    packaged = Path(__file__).parent / "_resources" / name
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / name


CONF_DIR = resource_dir("conf")
SWEEPS_DIR = resource_dir("sweeps")
