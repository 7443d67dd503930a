"""Islands: the connected pieces of a segment; keep the largest, remove the small ones, or split them apart.

Everything runs in the segment's bounding box. ``connectivity`` 6 joins face neighbours only (the usual choice:
two blobs touching at a corner are two islands), 18 also edge neighbours, 26 also corner neighbours.

`keep_largest_island` and `remove_small_islands` return the voxels to take away (``EditMode.REMOVE``), so the
rest of the segment is untouched; `split_islands` returns one region per island, each meant for
``EditMode.ADD`` into a segment of its own.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core.edit.common import (
    Box,
    box_offset,
    check_length,
    empty_region,
    segment_crop,
    spacing_kji,
    structure,
)
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Segmentation

MODE = EditMode.REMOVE
"""Mode to apply `keep_largest_island` / `remove_small_islands` regions with (`split_islands`: ADD)."""


def _islands(
    segmentation: Segmentation, segment_id: int, connectivity: int
) -> tuple[Box, NDArray[np.int32], NDArray[np.int64]] | None:
    """Island labels (1..n) in the segment's box and the voxel count of each label (index 0: background)."""
    struct = structure(connectivity)
    crop = segment_crop(segmentation, segment_id)
    if crop is None:
        return None
    box, mask = crop
    labels, count = ndimage.label(mask, structure=struct)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    return box, labels, sizes


def keep_largest_island(segmentation: Segmentation, segment_id: int, connectivity: int = 6) -> Region:
    """Every voxel of the segment outside its largest island (the first in scan order on a tie).

    Apply with REMOVE. Empty when the segment has at most one island.
    """
    found = _islands(segmentation, segment_id, connectivity)
    if found is None:
        return empty_region()
    box, labels, sizes = found
    if sizes.size <= 2:
        return empty_region()
    largest = int(np.argmax(sizes[1:])) + 1
    return Region(box_offset(box), (labels != 0) & (labels != largest))


def remove_small_islands(
    segmentation: Segmentation, segment_id: int, min_volume_mm3: float, connectivity: int = 6
) -> Region:
    """The islands whose volume is below ``min_volume_mm3`` (voxel count x voxel volume).

    An island of exactly ``min_volume_mm3`` stays. Apply with REMOVE. Raises `InvalidLengthError` for a
    negative size.
    """
    limit = check_length("minimum island volume (mm³)", min_volume_mm3, allow_zero=True)
    found = _islands(segmentation, segment_id, connectivity)
    if found is None:
        return empty_region()
    box, labels, sizes = found
    voxel_mm3 = float(np.prod(spacing_kji(segmentation)))
    small = sizes * voxel_mm3 < limit
    small[0] = False
    if not small.any():
        return empty_region()
    return Region(box_offset(box), small[labels])


def split_islands(
    segmentation: Segmentation, segment_id: int, connectivity: int = 6, min_volume_mm3: float = 0.0
) -> list[Region]:
    """One region per island of at least ``min_volume_mm3``, largest first, each in its own bounding box.

    Make a segment for each (or keep the first in the source segment and remove the others from it) and apply
    with ADD.
    """
    limit = check_length("minimum island volume (mm³)", min_volume_mm3, allow_zero=True)
    found = _islands(segmentation, segment_id, connectivity)
    if found is None:
        return []
    box, labels, sizes = found
    voxel_mm3 = float(np.prod(spacing_kji(segmentation)))
    order = [int(n) for n in np.argsort(-sizes[1:], kind="stable") + 1 if sizes[n] * voxel_mm3 >= limit]
    objects = ndimage.find_objects(labels)
    offset = box_offset(box)
    regions = []
    for n in order:
        sub = objects[n - 1]
        assert sub is not None
        island = labels[sub] == n
        start = (offset[0] + sub[0].start, offset[1] + sub[1].start, offset[2] + sub[2].start)
        regions.append(Region(start, island))
    return regions


__all__ = ["MODE", "keep_largest_island", "remove_small_islands", "split_islands"]
