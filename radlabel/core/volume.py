"""The image volume: a voxel array plus its exact place in patient space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radlabel.core import geometry


@dataclass(eq=False)
class Volume:
    """A 3D image: ``array[k, j, i]`` plus origin, spacing (i, j, k) and direction in LPS (see DESIGN.md).

    Voxel values are in real units (CT in HU) and a compact dtype. ``metadata`` carries what readers know
    about the source (modality, series UID, description, patient position, ...) as plain JSON-able values.
    """

    array: NDArray[Any]
    origin: NDArray[np.float64]
    spacing: NDArray[np.float64]
    direction: NDArray[np.float64]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        self.spacing = np.asarray(self.spacing, dtype=np.float64).reshape(3)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if self.array.ndim != 3:
            raise ValueError(f"a Volume array must be 3D [k, j, i], got shape {self.array.shape}")
        if np.any(self.spacing <= 0):
            raise ValueError(f"spacing must be positive, got {self.spacing.tolist()}")
        if abs(abs(np.linalg.det(self.direction)) - 1.0) > 1e-3:
            raise ValueError("direction must be an orthonormal 3x3 matrix (columns = i, j, k axes)")

    @property
    def size(self) -> tuple[int, int, int]:
        """Grid size in (i, j, k) order (columns, rows, slices)."""
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def affine(self) -> NDArray[np.float64]:
        """4x4 map from (i, j, k, 1) to LPS world (mm)."""
        return geometry.affine_from(self.origin, self.spacing, self.direction)

    @property
    def orientation(self) -> str:
        """Orientation code such as ``LPS``, ``RAS`` or ``oblique(LPS)``."""
        return geometry.orientation_code(self.direction)

    def index_to_world(self, ijk: ArrayLike) -> NDArray[np.float64]:
        """World (LPS, mm) of continuous (i, j, k) indices, shape (N, 3)."""
        return geometry.index_to_world(self.affine, ijk)

    def world_to_index(self, xyz: ArrayLike) -> NDArray[np.float64]:
        """Continuous (i, j, k) indices of LPS world points, shape (N, 3)."""
        return geometry.world_to_index(self.affine, xyz)

    def same_grid(self, other: Volume, tolerance_mm: float = 1e-3) -> bool:
        """True when both volumes have the same shape and every voxel centre coincides within tolerance."""
        if self.array.shape != other.array.shape:
            return False
        size = np.array(self.size) - 1
        corners = np.array([[a, b, c] for a in (0, size[0]) for b in (0, size[1]) for c in (0, size[2])])
        return bool(np.allclose(self.index_to_world(corners), other.index_to_world(corners), atol=tolerance_mm))
