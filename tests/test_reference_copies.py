"""The published figures the tests use are kept in tests/reference/, so a standalone clone runs every test; beside
the team's ../shared/reference/ they must be the same files."""

import json
import re

import pytest
from conftest import REFERENCE, REPO

SHARED = REPO.parent / "shared" / "reference"


@pytest.mark.parametrize("copy", sorted(REFERENCE.glob("*.json")), ids=lambda p: p.name)
def test_copy_matches_shared_reference(copy):
    shared = SHARED / copy.name
    if not shared.is_file():
        pytest.skip(f"{shared} is not beside this clone")
    assert json.loads(copy.read_text()) == json.loads(shared.read_text())


def test_every_reference_a_test_reads_is_copied():
    names = {name for test in REPO.glob("tests/test_*.py") for name in _references(test.read_text())}
    assert names, "no test reads reference data"
    assert names <= {p.stem for p in REFERENCE.glob("*.json")}


def _references(source: str) -> set[str]:
    return set(re.findall(r"""reference\(["']([a-z0-9_]+)["']\)""", source))
