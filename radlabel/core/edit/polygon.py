"""Polygon and lasso fill on one slice of any of the three grid axes.

Points are voxel coordinates ``(row, column)`` of the 2D slice as numpy shows it: for ``axis`` 0 the slice
``array[k]`` has rows j and columns i; for ``axis`` 1 the slice ``array[:, j]`` has rows k and columns i; for
``axis`` 2 the slice ``array[:, :, i]`` has rows k and columns j. Continuous coordinates are fine (a lasso from
mouse positions); the polygon is closed automatically.

A pixel is filled when its centre lies inside the polygon (even-odd rule) or the outline passes through it
(the pixels nearest to the outline, so a drawn lasso is filled including its line). The region is one voxel
thick along ``axis``, in the polygon's bounding box, for ``EditMode.ADD``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from radlabel.core.edit.common import check_axis, empty_region, shape_of
from radlabel.core.edit.errors import InvalidPolygonError, OutsideGridError
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Grid, Segmentation
from radlabel.core.volume import Volume

MODE = EditMode.ADD
"""Mode to apply polygon regions with."""


def polygon_fill(
    grid: Volume | Grid | Segmentation,
    axis: int,
    index: int,
    points: Sequence[Sequence[float]],
) -> Region:
    """Fill the polygon through ``points`` (row, column) on slice ``index`` of ``axis`` (0 = k, 1 = j, 2 = i).

    Parts of the polygon outside the slice are cut off. Raises `InvalidAxisError`, `OutsideGridError` for a
    slice index outside the grid and `InvalidPolygonError` for fewer than three points or non-numbers.
    """
    axis = check_axis(axis)
    shape = shape_of(grid)
    if not isinstance(index, int | np.integer) or not 0 <= int(index) < shape[axis]:
        raise OutsideGridError(f"slice {index!r} of axis {axis} is outside the grid (0..{shape[axis] - 1})")
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidPolygonError("polygon points must be (row, column) number pairs") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise InvalidPolygonError(f"a polygon needs at least three (row, column) points, got {len(pts)}")
    if not np.all(np.isfinite(pts)):
        raise InvalidPolygonError("polygon points must be finite numbers")
    plane = tuple(n for a, n in enumerate(shape) if a != axis)
    rows, cols = int(plane[0]), int(plane[1])

    r0 = max(0, math.floor(float(pts[:, 0].min()) + 0.5))
    r1 = min(rows - 1, math.floor(float(pts[:, 0].max()) + 0.5))
    c0 = max(0, math.floor(float(pts[:, 1].min()) + 0.5))
    c1 = min(cols - 1, math.floor(float(pts[:, 1].max()) + 0.5))
    if r1 < r0 or c1 < c0:
        return empty_region()
    filled = _scanline(pts, r0, r1, c0, c1) | _outline(pts, r0, r1, c0, c1)
    offset = [0, 0, 0]
    offset[axis] = int(index)
    others = [a for a in range(3) if a != axis]
    offset[others[0]], offset[others[1]] = r0, c0
    mask = np.expand_dims(filled, axis)
    return Region((offset[0], offset[1], offset[2]), mask)


def _scanline(pts: NDArray[np.float64], r0: int, r1: int, c0: int, c1: int) -> NDArray[np.bool_]:
    """Pixels whose centres are inside (even-odd rule), rows r0..r1 and columns c0..c1."""
    start, stop = pts, np.roll(pts, -1, axis=0)
    y = np.arange(r0, r1 + 1, dtype=np.float64)[:, None]
    ya, yb = start[None, :, 0], stop[None, :, 0]
    crosses = (np.minimum(ya, yb) <= y) & (y < np.maximum(ya, yb))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = start[None, :, 1] + (y - ya) * (stop[None, :, 1] - start[None, :, 1]) / (yb - ya)
    x = np.where(crosses, x, np.inf)
    x.sort(axis=1)
    width = c1 - c0 + 1
    counts = np.zeros((x.shape[0], width + 1), dtype=np.int32)
    left, right = x[:, 0::2], x[:, 1::2]
    pairs = min(left.shape[1], right.shape[1])
    left, right = left[:, :pairs], right[:, :pairs]
    valid = np.isfinite(left) & np.isfinite(right)
    row_idx = np.broadcast_to(np.arange(x.shape[0])[:, None], left.shape)[valid]
    a = np.clip(np.ceil(left[valid] - 1e-9).astype(np.int64) - c0, 0, width)
    b = np.clip(np.floor(right[valid] + 1e-9).astype(np.int64) - c0 + 1, 0, width)
    keep = b > a
    np.add.at(counts, (row_idx[keep], a[keep]), 1)
    np.add.at(counts, (row_idx[keep], b[keep]), -1)
    result: NDArray[np.bool_] = np.cumsum(counts, axis=1)[:, :width] > 0
    return result


def _outline(pts: NDArray[np.float64], r0: int, r1: int, c0: int, c1: int) -> NDArray[np.bool_]:
    """Pixels nearest to points of the outline (sampled every half pixel), rows r0..r1, columns c0..c1."""
    result = np.zeros((r1 - r0 + 1, c1 - c0 + 1), dtype=bool)
    start, stop = pts, np.roll(pts, -1, axis=0)
    samples = []
    for a, b in zip(start, stop, strict=True):
        n = max(1, math.ceil(2 * float(np.max(np.abs(b - a)))))
        t = np.linspace(0.0, 1.0, n + 1)[:, None]
        samples.append(a + (b - a) * t)
    pixels = np.floor(np.concatenate(samples) + 0.5).astype(np.int64)
    inside = (pixels[:, 0] >= r0) & (pixels[:, 0] <= r1) & (pixels[:, 1] >= c0) & (pixels[:, 1] <= c1)
    result[pixels[inside, 0] - r0, pixels[inside, 1] - c0] = True
    return result


__all__ = ["MODE", "polygon_fill"]
