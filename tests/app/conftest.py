"""A small synthetic case source: the demo CT phantom written as NRRD (the case reloads it on open)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radlabel.core.demo import make_demo_ct
from radlabel.core.io.writers import save_volume
from radlabel.core.volume import Volume

CASE_SHAPE = (12, 16, 20)


@pytest.fixture(scope="session")
def ct_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Volume, Path]:
    """(volume, path of the .nrrd it was written to); shape [k, j, i] = CASE_SHAPE, int16 HU."""
    volume, _ = make_demo_ct(CASE_SHAPE, spacing=(1.5, 1.5, 3.0))
    path = save_volume(volume, tmp_path_factory.mktemp("source") / "ct.nrrd")
    return volume, path
