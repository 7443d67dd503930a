"""Shared fixtures. `shared_data` is the one way tests find ../shared/data (see its MANIFEST.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = [
    os.environ.get("RADLABEL_SHARED_DATA", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),
]


def find_shared_data() -> Path | None:
    for candidate in _CANDIDATES:
        if candidate and (Path(candidate) / "MANIFEST.md").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real public test data; CI has it beside the checkout, so there these tests always run."""
    root = find_shared_data()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/data is missing in CI: the real-data tests must run there")
        pytest.skip("real test data (../shared/data or $RADLABEL_SHARED_DATA) is not on this machine")
    return root
