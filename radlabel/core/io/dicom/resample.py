"""Resample a sheared / irregularly spaced slice stack onto the regular grid of a `GridPlan`."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core.io.dicom.slice_geometry import GridPlan
from radlabel.core.progress import Progress


def resample_to_plan(stack: NDArray[Any], plan: GridPlan, progress: Progress) -> NDArray[Any]:
    """Linear interpolation along the slice normal between the two nearest source slices, each shifted in
    plane to where its origin really lies (tilt correction). Voxels no source slice covers get the stack's
    minimum (air for CT), never 0, which would read as water."""
    size_i, size_j, size_k = plan.size
    spacing_i, spacing_j, spacing_k = plan.spacing
    depths = plan.slice_offsets[:, 2]
    fill = float(stack.min()) if stack.size else 0.0
    result = np.empty((size_k, size_j, size_i), dtype=stack.dtype)
    shifted_cache: dict[int, NDArray[np.float32]] = {}

    def placed(index: int) -> NDArray[np.float32]:
        if index not in shifted_cache:
            offset_i, offset_j = plan.slice_offsets[index, 0], plan.slice_offsets[index, 1]
            # target (j, i) samples source (j - offset_j/spacing_j, i - offset_i/spacing_i)
            shifted_cache.clear() if len(shifted_cache) > 2 else None
            shifted_cache[index] = ndimage.affine_transform(
                stack[index].astype(np.float32),
                np.eye(2),
                offset=(-offset_j / spacing_j, -offset_i / spacing_i),
                output_shape=(size_j, size_i),
                order=1,
                mode="constant",
                cval=fill,
            )
        return shifted_cache[index]

    for k in range(size_k):
        depth = k * spacing_k
        upper = int(np.searchsorted(depths, depth - 1e-6))
        upper = min(max(upper, 1), len(depths) - 1)
        lower = upper - 1
        width = depths[upper] - depths[lower]
        weight = float(np.clip((depth - depths[lower]) / width, 0.0, 1.0))
        plane = placed(lower) * (1.0 - weight) + placed(upper) * weight if weight > 0 else placed(lower)
        if np.issubdtype(result.dtype, np.integer):
            plane = np.rint(plane)
        result[k] = plane
        progress.report((k + 1) / size_k, "resampling to a regular grid")
    return result
