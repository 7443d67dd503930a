"""Decide whether two image grids hold the same voxel centres, and move arrays between them exactly.

Two files of the same image may store it with axes permuted or flipped (NIfTI writers flip rows, DICOM
SEG frames may run the other way along the normal). Comparing arrays by index order is then wrong; this
module compares grids in world space and gives the exact index mapping when one exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage


@dataclass(frozen=True)
class IndexMap:
    """``target_index = permutation/flip of source_index + offset``, all in (i, j, k) order."""

    matrix: NDArray[np.int64]  # 3x3 signed permutation
    offset: NDArray[np.int64]  # 3
    max_error_mm: float


def match_grids(
    source_affine: ArrayLike,
    source_size: tuple[int, int, int],
    target_affine: ArrayLike,
    tolerance_mm: float = 1e-3,
) -> IndexMap | None:
    """Index map from source voxels to target voxels when every source centre is a target centre."""
    source = np.asarray(source_affine, float)
    target = np.asarray(target_affine, float)
    relative = np.linalg.inv(target) @ source
    matrix = np.rint(relative[:3, :3])
    if not (np.all(np.abs(matrix).sum(axis=0) == 1) and np.all(np.abs(matrix).sum(axis=1) == 1)):
        return None
    offset = np.rint(relative[:3, 3])
    size = np.asarray(source_size) - 1
    corners = np.array([[a, b, c] for a in (0, size[0]) for b in (0, size[1]) for c in (0, size[2])], float)
    exact = corners @ source[:3, :3].T + source[:3, 3]
    mapped = (corners @ matrix.T + offset) @ target[:3, :3].T + target[:3, 3]
    error = float(np.max(np.linalg.norm(exact - mapped, axis=1)))
    if error > tolerance_mm:
        return None
    return IndexMap(matrix.astype(np.int64), offset.astype(np.int64), error)


def reorder_ijk(array_ijk: NDArray[Any], index_map: IndexMap, target_size: tuple[int, int, int]) -> NDArray[Any]:
    """Place an (i, j, k)-indexed source array on the target grid (entries outside the source stay 0)."""
    matrix = index_map.matrix
    permutation = [int(np.nonzero(matrix[row])[0][0]) for row in range(3)]
    flipped = np.transpose(array_ijk, permutation)
    for axis in range(3):
        if matrix[axis, permutation[axis]] < 0:
            flipped = np.flip(flipped, axis=axis)
    # after the flips, the source voxel with the smallest target index lands at `start`.
    start = np.array(
        [
            index_map.offset[axis]
            + (
                matrix[axis, permutation[axis]] * (array_ijk.shape[permutation[axis]] - 1)
                if matrix[axis, permutation[axis]] < 0
                else 0
            )
            for axis in range(3)
        ]
    )
    result = np.zeros(target_size, dtype=array_ijk.dtype)
    lo = np.maximum(start, 0)
    hi = np.minimum(start + np.array(flipped.shape), np.array(target_size))
    if np.any(hi <= lo):
        return result
    src = tuple(slice(int(lo[a] - start[a]), int(hi[a] - start[a])) for a in range(3))
    dst = tuple(slice(int(lo[a]), int(hi[a])) for a in range(3))
    result[dst] = flipped[src]
    return result


def sample_at_world(
    array_kji: NDArray[Any], affine: ArrayLike, points_xyz: ArrayLike, order: int = 1, fill: float = np.nan
) -> NDArray[np.float64]:
    """Values of a [k, j, i] array with voxel->world ``affine`` at world points (N, 3); outside -> ``fill``."""
    inverse = np.linalg.inv(np.asarray(affine, float))
    points = np.atleast_2d(np.asarray(points_xyz, float))
    ijk = points @ inverse[:3, :3].T + inverse[:3, 3]
    coordinates = ijk[:, ::-1].T  # map_coordinates wants (k, j, i)
    values: NDArray[np.float64] = ndimage.map_coordinates(
        array_kji.astype(np.float32), coordinates, order=order, mode="constant", cval=np.nan
    ).astype(np.float64)
    inside = np.all((ijk > -0.5) & (ijk < np.array(array_kji.shape[::-1]) - 0.5), axis=1)
    values[~inside] = fill
    return values
