"""Paint and erase brush: a sphere (3D) or a disc on one slice, sized in millimetres.

The brush is round in millimetres, not in voxels: on a grid of 0.7 x 0.7 x 2.5 mm a 10 mm sphere spans
29 x 29 x 9 voxels. A voxel belongs to the brush when its centre lies within the radius of the brush centre.
A disc brush (``axis`` 0, 1 or 2) lies on the slice of constant k, j or i through the centre: the views cut the
grid along its axes, so the slice a reader paints on is always one of those.

Both functions return a `Region` in the brush's box only (a 10 mm dab costs the same on any volume size). The
caller applies it with ``EditMode.ADD`` to paint and ``EditMode.REMOVE`` to erase. ``intensity_range`` limits
the brush to voxels whose image value lies in ``[low, high]`` (a threshold brush); for an eraser it limits
what is erased.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from radlabel.core.edit.common import (
    check_axis,
    check_index,
    check_length,
    check_range,
    ellipsoid,
    shape_of,
    spacing_kji,
)
from radlabel.core.edit.errors import OutsideGridError
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.volume import Volume

PAINT = EditMode.ADD
"""Mode to apply a brush region with to paint."""
ERASE = EditMode.REMOVE
"""Mode to apply a brush region with to erase."""


def dab(
    volume: Volume,
    centre: Sequence[float],
    radius_mm: float,
    *,
    axis: int | None = None,
    intensity_range: tuple[float, float] | None = None,
) -> Region:
    """One brush dab: the voxels whose centres lie within ``radius_mm`` of voxel ``centre`` (k, j, i).

    ``axis`` None gives a sphere; 0, 1 or 2 a disc on the slice of constant k, j or i through the centre.
    Returns the brush's voxels (restricted to ``intensity_range`` when given) in the brush's box, clipped to
    the grid. Raises `InvalidLengthError` for a radius that is not positive and `OutsideGridError` for a centre
    outside the grid.
    """
    return stroke(volume, [centre], radius_mm, axis=axis, intensity_range=intensity_range)


def stroke(
    volume: Volume,
    points: Sequence[Sequence[float]],
    radius_mm: float,
    *,
    axis: int | None = None,
    intensity_range: tuple[float, float] | None = None,
) -> Region:
    """A brush dragged through ``points`` (voxel indices (k, j, i), continuous values allowed).

    Between consecutive points the brush is placed at every voxel on the straight line (no two placements
    more than one voxel apart along any axis), so a fast drag that reports few points leaves no gaps. With
    ``axis`` the stroke stays on the slice of the first point (the other points are projected onto it).
    Returns the union of all placements, in the stroke's box. Raises as `dab` does.
    """
    radius = check_length("brush radius", radius_mm)
    shape = shape_of(volume)
    spacing = spacing_kji(volume)
    if axis is not None:
        axis = check_axis(axis)
    limits = check_range(*intensity_range) if intensity_range is not None else None
    if len(points) == 0:
        raise OutsideGridError("a brush stroke needs at least one point")
    checked = [check_index(p, shape, "brush centre") for p in points]
    anchors = np.array([[float(v) for v in p] for p in points], dtype=np.float64)
    if axis is not None:
        anchors[:, axis] = checked[0][axis]
    centres = _line_voxels(anchors)

    kernel = ellipsoid(radius, spacing, axis)
    half = np.array(kernel.shape) // 2
    low = centres.min(axis=0) - half
    high = centres.max(axis=0) + half + 1
    if len(centres) == 1:
        mask: NDArray[np.bool_] = kernel.copy()
    else:
        mask = np.zeros(tuple(int(v) for v in high - low), dtype=bool)
        dk, dj, di = kernel.shape
        for c in centres - centres.min(axis=0):
            k, j, i = (int(v) for v in c)
            mask[k : k + dk, j : j + dj, i : i + di] |= kernel
    region = Region.clipped((int(low[0]), int(low[1]), int(low[2])), mask, shape)
    if limits is not None and region.mask.size:
        values = volume.array[region.box]
        region = Region(region.offset, region.mask & (values >= limits[0]) & (values <= limits[1]))
    return region


def _line_voxels(anchors: NDArray[np.float64]) -> NDArray[np.int64]:
    """Voxels (rounded) along the polyline through ``anchors``, at most one voxel apart per axis, no repeats."""
    pieces = [np.floor(anchors[:1] + 0.5)]
    for a, b in itertools.pairwise(anchors):
        steps = max(1, math.ceil(float(np.max(np.abs(b - a)))))
        t = np.linspace(0.0, 1.0, steps + 1)[1:, None]
        pieces.append(np.floor(a + (b - a) * t + 0.5))
    line = np.concatenate(pieces).astype(np.int64)
    keep = np.ones(len(line), dtype=bool)
    keep[1:] = np.any(line[1:] != line[:-1], axis=1)
    return line[keep]


__all__ = ["ERASE", "PAINT", "dab", "stroke"]
