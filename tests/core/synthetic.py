"""Small synthetic volumes for reader tests (the project's own data; real data come from `shared_data`)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from radlabel.core.volume import Volume


def oblique_volume(shape_kji: tuple[int, int, int] = (7, 24, 20), seed: int = 0, dtype: type = np.int16) -> Volume:
    """A volume rotated ~10 deg about two axes, anisotropic spacing, distinct values in every voxel."""
    rng = np.random.default_rng(seed)
    array = rng.integers(-1000, 2000, size=shape_kji).astype(dtype)
    direction = Rotation.from_euler("xy", [10, -7], degrees=True).as_matrix()
    return Volume(
        array,
        origin=(-40.5, 12.25, 80.0),
        spacing=(0.8, 0.7, 2.5),
        direction=direction,
        metadata={"modality": "CT", "description": "synthetic oblique"},
    )
