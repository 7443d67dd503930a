"""Voxel <-> world geometry in DICOM patient space (LPS), with ITK's origin/spacing/direction convention.

An image grid is ``origin`` (mm, world position of voxel (0, 0, 0)'s centre), ``spacing`` (mm along the
i, j, k axes) and ``direction`` (3x3, columns are the unit vectors of the i, j, k axes). Arrays are indexed
``[k, j, i]``; every function here takes and returns indices in (i, j, k) order, so callers never mix the two.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# World axis letters the positive direction points *towards*, in LPS.
_POSITIVE = "LPS"
_NEGATIVE = "RAI"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: An axis more than this far (as a direction cosine) from a world axis makes the grid oblique.
OBLIQUE_TOLERANCE = 1e-3


def affine_from(origin: ArrayLike, spacing: ArrayLike, direction: ArrayLike) -> NDArray[np.float64]:
    """4x4 matrix mapping (i, j, k, 1) to LPS world (x, y, z, 1)."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, float) * np.asarray(spacing, float)[None, :]
    affine[:3, 3] = np.asarray(origin, float)
    return affine


def decompose_affine(
    affine: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Split a 4x4 voxel->LPS affine into origin, spacing and direction (columns normalised)."""
    a = np.asarray(affine, float)
    columns = a[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise ValueError("affine has a zero-length axis")
    return a[:3, 3].copy(), spacing, columns / spacing[None, :]


def index_to_world(affine: ArrayLike, ijk: ArrayLike) -> NDArray[np.float64]:
    """World positions (N, 3) of continuous voxel indices (N, 3) given in (i, j, k) order."""
    a = np.asarray(affine, float)
    points = np.atleast_2d(np.asarray(ijk, float))
    result: NDArray[np.float64] = points @ a[:3, :3].T + a[:3, 3]
    return result


def world_to_index(affine: ArrayLike, xyz: ArrayLike) -> NDArray[np.float64]:
    """Continuous voxel indices (N, 3) in (i, j, k) order of world points (N, 3)."""
    inverse = np.linalg.inv(np.asarray(affine, float))
    points = np.atleast_2d(np.asarray(xyz, float))
    result: NDArray[np.float64] = points @ inverse[:3, :3].T + inverse[:3, 3]
    return result


def axis_letter(vector: ArrayLike) -> str:
    """The LPS letter (L, R, P, A, S, I) of the world axis closest to ``vector``."""
    v = np.asarray(vector, float)
    axis = int(np.argmax(np.abs(v)))
    return _POSITIVE[axis] if v[axis] > 0 else _NEGATIVE[axis]


def is_oblique(direction: ArrayLike, tolerance: float = OBLIQUE_TOLERANCE) -> bool:
    """True when any grid axis is not aligned with a world axis."""
    d = np.abs(np.asarray(direction, float))
    return bool(np.any(np.abs(d.max(axis=0) - 1.0) > tolerance))


def orientation_code(direction: ArrayLike) -> str:
    """ITK-style code of the directions the i, j, k axes point towards, e.g. ``LPS`` or ``RAS``.

    Oblique grids get ``oblique(XYZ)`` where XYZ is the closest code, so a user sees both facts.
    """
    d = np.asarray(direction, float)
    code = "".join(axis_letter(d[:, n]) for n in range(3))
    return f"oblique({code})" if is_oblique(d) else code


def lps_to_ras_affine(affine: ArrayLike) -> NDArray[np.float64]:
    """Convert a voxel->LPS affine to voxel->RAS (as NIfTI stores it), or back (the map is its own inverse)."""
    result: NDArray[np.float64] = LPS_TO_RAS @ np.asarray(affine, float)
    return result
