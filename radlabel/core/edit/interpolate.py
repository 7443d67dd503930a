"""Fill between slices: a segment drawn on a few non-adjacent slices becomes a solid by shape interpolation.

For each pair of consecutive drawn slices (slices along ``axis`` that hold any voxel of the segment) with empty
slices between them, the signed distance maps of the two shapes (in mm, negative inside) are blended linearly
by slice position and the blend's inside becomes the shape of each slice in between. Two concentric discs of
different radii give a cone frustum; two shifted discs of one radius give a slanted cylinder. Slices before the
first and after the last drawn slice are left alone, and so are the drawn slices themselves.

The work covers only the box spanning the drawn shapes (a shape blended from two others lies inside their
union, so nothing outside that box can change). The region holds only the filled voxels, for ``EditMode.ADD``.
As in Slicer's "Fill between slices", every non-empty slice counts as drawn: draw, fill, then keep editing.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core.edit.common import box_offset, check_axis, empty_region, segment_crop, spacing_kji
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Segmentation

MODE = EditMode.ADD
"""Mode to apply fill-between-slices regions with."""


def fill_between_slices(segmentation: Segmentation, segment_id: int, axis: int = 0) -> Region:
    """The voxels that fill the empty slices between the drawn slices of a segment along ``axis``.

    ``axis`` 0 interpolates between slices of constant k (axial slices of an axial scan), 1 between slices of
    constant j, 2 between slices of constant i. Returns the new voxels only (empty when there is no gap to fill).
    Raises `UnknownSegmentError` and `InvalidAxisError`.
    """
    axis = check_axis(axis)
    pad = [1, 1, 1]
    pad[axis] = 0  # one empty voxel around each shape in plane: its inside distances then are right
    crop = segment_crop(segmentation, segment_id, pad)
    if crop is None:
        return empty_region()
    box, mask = crop
    stack = np.moveaxis(mask, axis, 0)
    spacing = spacing_kji(segmentation)
    in_plane = tuple(s for a, s in enumerate(spacing) if a != axis)
    drawn = np.flatnonzero(stack.any(axis=(1, 2)))
    filled = np.zeros(stack.shape, dtype=bool)
    distances: dict[int, NDArray[np.float32]] = {}

    def signed(n: int) -> NDArray[np.float32]:
        if n not in distances:
            distances[n] = _signed_distance(stack[n], in_plane)
        return distances[n]

    for a, b in itertools.pairwise(drawn):
        if b - a < 2:
            continue
        first, last = signed(int(a)), signed(int(b))
        for n in range(int(a) + 1, int(b)):
            w = np.float32((n - a) / (b - a))
            filled[n] = (first * (1 - w) + last * w) <= 0
    if not filled.any():
        return empty_region()
    return Region(box_offset(box), np.ascontiguousarray(np.moveaxis(filled, 0, axis)))


def _signed_distance(shape2d: NDArray[np.bool_], spacing: tuple[float, ...]) -> NDArray[np.float32]:
    """Signed distance (mm) to the shape's outline, negative inside.

    The outline is taken half a pixel beyond the outermost pixel centres (distances to the nearest pixel centre on
    the other side, less half a pixel), so a blend moves the outline by fractions of a pixel, not in whole-pixel
    jumps, and each drawn shape is exactly the negative part of its own map.
    """
    if shape2d.all():
        return np.full(shape2d.shape, -1e6, dtype=np.float32)
    half = 0.5 * min(spacing)
    outside = ndimage.distance_transform_edt(~shape2d, sampling=spacing)
    inside = ndimage.distance_transform_edt(shape2d, sampling=spacing)
    result: NDArray[np.float32] = np.where(shape2d, half - inside, outside - half).astype(np.float32)
    return result


__all__ = ["MODE", "fill_between_slices"]
