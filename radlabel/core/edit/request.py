"""The contract between editing tools and the one edit path.

A tool (brush, threshold, flood fill, ...) is a plain function that looks at the volume and the
segmentation and returns a `Region`: a boolean mask inside a box of the grid, plus what to do with it
(`EditMode`). It never writes voxels. `radlabel.core.edit.apply.apply_region` then applies the masking
rules, changes the layers, and records the sparse diff used for undo/redo, the journal and the audit trail.
Boxes keep small edits (a brush dab) proportional to their size, never to the volume's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


class EditMode(enum.StrEnum):
    ADD = "add"  # voxels in the mask join the segment
    REMOVE = "remove"  # voxels in the mask leave the segment
    REPLACE = "replace"  # inside the box, the segment becomes exactly the mask


class Overwrite(enum.StrEnum):
    """What happens to other segments where a segment gains voxels (locked segments are never changed)."""

    ALL = "all"  # the voxel leaves every other segment
    VISIBLE = "visible"  # it leaves visible segments; hidden ones keep it (overlap)
    NONE = "none"  # other segments keep it: the voxel then belongs to both (overlap, another layer)


class Editable(enum.StrEnum):
    """Where an edit may change voxels at all."""

    EVERYWHERE = "everywhere"
    INSIDE_SEGMENT = "inside_segment"  # only inside `MaskingRules.segment_id`
    OUTSIDE_SEGMENTS = "outside_segments"  # only where no segment is
    OUTSIDE_VISIBLE = "outside_visible"  # only where no visible segment is


@dataclass(frozen=True)
class MaskingRules:
    """Masking settings as readers know them from Slicer's Segment Editor."""

    editable: Editable = Editable.EVERYWHERE
    segment_id: int | None = None  # for Editable.INSIDE_SEGMENT
    intensity_range: tuple[float, float] | None = None  # only voxels whose image value is in [low, high]
    overwrite: Overwrite = Overwrite.ALL


@dataclass
class Region:
    """A boolean ``mask`` whose element [0, 0, 0] is voxel ``offset`` = (k, j, i) of the grid."""

    offset: tuple[int, int, int]
    mask: NDArray[np.bool_]

    @property
    def box(self) -> tuple[slice, slice, slice]:
        k, j, i = self.offset
        dk, dj, di = self.mask.shape
        return (slice(k, k + dk), slice(j, j + dj), slice(i, i + di))

    @classmethod
    def whole(cls, mask: NDArray[np.bool_]) -> Region:
        return cls((0, 0, 0), mask)

    @classmethod
    def clipped(cls, offset: tuple[int, int, int], mask: NDArray[np.bool_], shape: tuple[int, int, int]) -> Region:
        """Cut a box that may stick out of the grid down to the part inside it."""
        start = np.array(offset)
        stop = start + np.array(mask.shape)
        low = np.maximum(start, 0)
        high = np.minimum(stop, np.array(shape))
        if np.any(high <= low):
            return cls((0, 0, 0), np.zeros((0, 0, 0), dtype=bool))
        inner = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(low, high, start, strict=True))
        return cls((int(low[0]), int(low[1]), int(low[2])), mask[inner])

    @property
    def is_empty(self) -> bool:
        return self.mask.size == 0 or not bool(self.mask.any())
