"""Flood fill: the connected region around a clicked voxel whose values stay within a tolerance of its value.

Work grows with the filled region, not with the volume: the fill runs in a box around the seed, and only when
the filled region reaches a side of the box (one that is not the grid's edge) does that side move out and the
fill run again. Each voxel's in-range test is done once however often the box grows; only the connected-
component labelling is repeated. A fill that stays inside a 150 mm organ never looks at the rest of a
512 x 512 x 300 scan.

Regions from this module are meant for ``EditMode.ADD``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core.edit.common import (
    Box,
    box_offset,
    box_shape,
    check_axis,
    check_index,
    check_length,
    in_range,
    make_box,
    mask_box,
    shape_of,
    spacing_kji,
    structure,
)
from radlabel.core.edit.errors import InvalidRangeError
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.volume import Volume

MODE = EditMode.ADD
"""Mode to apply flood-fill regions with."""

INITIAL_HALF_SIZE = 32
"""Half size (voxels per axis) of the first box around the seed."""
GROWTH_STEP = 32
GROWTH_FRACTION = 0.5
"""A side of the box that the filled region reaches moves out by this fraction of the box's size along that
axis, at least `GROWTH_STEP` voxels."""


def flood_fill(
    volume: Volume,
    seed: Sequence[float],
    tolerance: float | tuple[float, float],
    *,
    axis: int | None = None,
    connectivity: int = 6,
    neighbourhood_mm: float = 0.0,
) -> Region:
    """Voxels connected to ``seed`` (k, j, i) through voxels whose value is within ``tolerance`` of the seed's.

    ``tolerance`` is one number (``value - t .. value + t``) or ``(below, above)``; both bounds are included.
    ``axis`` None fills in 3D; 0, 1 or 2 fills on the slice of constant k, j or i through the seed only.
    ``connectivity`` 6 joins face neighbours, 18 also edge neighbours and 26 also corner neighbours (on a slice:
    6 gives 4-connectivity, 18 and 26 give 8-connectivity). ``neighbourhood_mm`` > 0 makes the fill robust to
    noise, like the neighbourhood size of Slicer's flood-filling effect: a voxel counts as in range when more
    than half of the voxels within that distance (a box of +/- the distance along each axis) are in range, so
    single noisy voxels neither stop the fill nor open a leak.

    Returns the filled voxels in their bounding box; the seed itself is always included. Raises
    `OutsideGridError` for a seed outside the grid, `InvalidRangeError` for a negative tolerance,
    `InvalidAxisError` and `InvalidConnectivityError` for bad ``axis`` / ``connectivity``.
    """
    shape = shape_of(volume)
    centre = check_index(seed, shape, "flood-fill seed")
    if axis is not None:
        axis = check_axis(axis)
    struct = structure(connectivity, axis)
    below, above = _tolerance(tolerance)
    radius = check_length("neighbourhood", neighbourhood_mm, allow_zero=True)
    value = float(volume.array[centre])
    spacing = spacing_kji(volume)
    reach = [int(radius / s + 1e-9) for s in spacing]
    if axis is not None:
        reach[axis] = 0

    box, filled = _flood(volume.array, centre, value - below, value + above, reach, struct, axis)
    return Region(box_offset(box), filled)


def _flood(
    array: NDArray[Any],
    centre: tuple[int, ...],
    low: float,
    high: float,
    reach: list[int],
    struct: NDArray[np.bool_],
    axis: int | None,
) -> tuple[Box, NDArray[np.bool_]]:
    """The seed's component in ``array``: its tight box and mask. Starts in a box around the seed and moves
    every side the component reaches outwards until it reaches none (or the grid's edge)."""
    shape = (int(array.shape[0]), int(array.shape[1]), int(array.shape[2]))
    lo = [c - INITIAL_HALF_SIZE for c in centre]
    hi = [c + INITIAL_HALF_SIZE + 1 for c in centre]
    if axis is not None:
        lo[axis], hi[axis] = centre[axis], centre[axis] + 1
    candidates = _Candidates(array, low, high, reach)
    while True:
        box = make_box(lo, hi, shape)
        inside = candidates.grow_to(box)
        local = (centre[0] - box[0].start, centre[1] - box[1].start, centre[2] - box[2].start)
        inside[local] = True
        labels, _ = ndimage.label(inside, structure=struct)
        filled: NDArray[np.bool_] = labels == labels[local]
        grow = False
        for a in range(3):
            step = max(GROWTH_STEP, int((box[a].stop - box[a].start) * GROWTH_FRACTION))
            if box[a].start > 0 and filled.take(0, axis=a).any():
                lo[a] = box[a].start - step
                grow = True
            if box[a].stop < shape[a] and filled.take(-1, axis=a).any():
                hi[a] = box[a].stop + step
                grow = True
        if not grow:
            tight = mask_box(filled, box_offset(box))
            assert tight is not None  # the seed is always filled
            inner = tuple(slice(t.start - b.start, t.stop - b.start) for t, b in zip(tight, box, strict=True))
            return tight, filled[inner]


class _Candidates:
    """The in-range test of the voxels of a growing box; each voxel is tested once however often the box grows."""

    def __init__(self, array: NDArray[Any], low: float, high: float, reach: list[int]) -> None:
        self.array = array
        self.low = low
        self.high = high
        self.reach = reach
        self.box: Box | None = None
        self.inside: NDArray[np.bool_] = np.zeros((0, 0, 0), dtype=bool)

    def grow_to(self, box: Box) -> NDArray[np.bool_]:
        """The in-range mask of ``box`` (which holds the previous box), as a new array the caller may change."""
        result = np.empty(box_shape(box), dtype=bool)
        old = self.box
        if old is None:
            result[...] = self._test(box)
        else:
            inner = tuple(slice(o.start - b.start, o.stop - b.start) for o, b in zip(old, box, strict=True))
            result[inner] = self.inside
            for piece in _difference(box, old):
                part = tuple(slice(p.start - b.start, p.stop - b.start) for p, b in zip(piece, box, strict=True))
                result[part] = self._test(piece)
        self.box = box
        self.inside = result.copy()
        return result

    def _test(self, box: Box) -> NDArray[np.bool_]:
        if not any(self.reach):
            return in_range(self.array[box], self.low, self.high)
        # more than half of the neighbourhood in range: count in-range voxels with box sums, reading the
        # neighbourhood of the box's border voxels from the image as well
        reach = self.reach
        shape = (int(self.array.shape[0]), int(self.array.shape[1]), int(self.array.shape[2]))
        outer = make_box(
            [s.start - r for s, r in zip(box, reach, strict=True)],
            [s.stop + r for s, r in zip(box, reach, strict=True)],
            shape,
        )
        total = int(np.prod([2 * r + 1 for r in reach]))
        dtype = np.uint8 if total < 256 else np.uint16 if total < 65536 else np.uint32
        counts = in_range(self.array[outer], self.low, self.high).view(np.uint8).astype(dtype)
        for axis, r in enumerate(reach):
            counts = _box_sum(counts, axis, r)
        inner = tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer, strict=True))
        result: NDArray[np.bool_] = np.greater(counts[inner], total // 2)
        return result


def _box_sum(counts: NDArray[Any], axis: int, r: int) -> NDArray[Any]:
    """Sum over ``2 r + 1`` neighbours along ``axis`` (edge voxels repeated beyond the array's ends)."""
    if r == 0:
        return counts
    n = counts.shape[axis]
    pad = [(0, 0)] * 3
    pad[axis] = (r, r)
    padded = np.pad(counts, pad, mode="edge")
    index: list[slice] = [slice(None)] * 3
    index[axis] = slice(0, n)
    out = padded[tuple(index)].copy()
    for shift in range(1, 2 * r + 1):
        index[axis] = slice(shift, shift + n)
        out += padded[tuple(index)]
    return out


def _difference(box: Box, old: Box) -> list[Box]:
    """``box`` minus ``old`` (which it holds) as up to six boxes."""
    pieces: list[Box] = []
    outer = list(box)
    for axis in range(3):
        for part in (slice(box[axis].start, old[axis].start), slice(old[axis].stop, box[axis].stop)):
            if part.stop > part.start:
                piece = list(outer)
                piece[axis] = part
                pieces.append((piece[0], piece[1], piece[2]))
        outer[axis] = old[axis]
    return pieces


def _tolerance(tolerance: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(tolerance, tuple | list):
        if len(tolerance) != 2:
            raise InvalidRangeError(f"tolerance must be one number or (below, above), got {tolerance!r}")
        below, above = tolerance
    else:
        below = above = tolerance
    try:
        b, a = float(below), float(above)
    except (TypeError, ValueError):
        raise InvalidRangeError(f"tolerance must be numbers, got {tolerance!r}") from None
    if not (b >= 0 and a >= 0):
        raise InvalidRangeError(
            f"tolerance must not be negative, got {tolerance!r}", fix="give how far from the seed's value (>= 0)"
        )
    return b, a


__all__ = ["GROWTH_STEP", "INITIAL_HALF_SIZE", "MODE", "flood_fill"]
