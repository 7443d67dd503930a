"""Compare a loaded Volume with a reference NIfTI (dcm2niix output) in world coordinates."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from radlabel.core.geometry import lps_to_ras_affine
from radlabel.core.grid_match import match_grids, reorder_ijk
from radlabel.core.volume import Volume


def reference_volumes(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """LPS affine and the list of (i, j, k) arrays (one per volume) of a reference NIfTI, scaled."""
    image = nib.load(str(path))
    data = np.asarray(image.get_fdata(dtype=np.float64))
    arrays = [data] if data.ndim == 3 else [data[..., t] for t in range(data.shape[3])]
    return lps_to_ras_affine(image.affine), arrays


def assert_same_in_world(volume: Volume, ref_affine: np.ndarray, ref_ijk: np.ndarray, atol: float = 1e-3) -> None:
    """Every reference voxel centre is one of ours (within atol mm) and holds the same value."""
    index_map = match_grids(ref_affine, ref_ijk.shape, volume.affine, tolerance_mm=atol)
    assert index_map is not None, (
        f"grids differ:\nours\n{np.round(volume.affine, 4)}\nreference\n{np.round(ref_affine, 4)}"
    )
    assert ref_ijk.size == volume.array.size, f"sizes differ: ours {volume.size}, reference {ref_ijk.shape}"
    placed = reorder_ijk(ref_ijk, index_map, volume.size)
    ours = volume.array.transpose(2, 1, 0).astype(np.float64)
    scale = max(1.0, float(np.abs(placed).max()))
    np.testing.assert_allclose(ours, placed, rtol=0, atol=1e-4 * scale)
