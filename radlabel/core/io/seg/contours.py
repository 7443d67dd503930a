"""Planar contours <-> 2D masks, exact in both directions.

**Mask -> contours** traces the boundary between segmented and unsegmented pixels along pixel edges
(vertices at pixel corners, collinear points merged). Outer boundaries and holes are separate closed loops.
**Contours -> mask** fills pixel centres with the even-odd rule over all loops of a slice (a pixel is
inside when a ray from its centre crosses the loops an odd number of times), which is how RTSTRUCT holes are
drawn (a loop inside another is a hole) and what rt-utils / OpenCV produce. Since no pixel centre lies on a
pixel edge, filling the traced loops gives back exactly the mask, whatever convention another reader uses
for points on the boundary.

Coordinates here are continuous pixel indices ``(x, y) = (i, j)`` of the slice.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Polygon = NDArray[np.float64]  # (N, 2) vertices (x, y), not repeated at the end


def mask_to_polygons(mask: NDArray[np.bool_]) -> list[Polygon]:
    """Closed loops along the pixel edges of ``mask`` (rows = y, columns = x)."""
    padded = np.pad(mask.astype(bool), 1)
    height, width = padded.shape
    inside = padded[1:-1, 1:-1]
    edges: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]] = []
    # Corner (cx, cy) of padded pixel (y, x) spans x..x+1, y..y+1; edges run clockwise on screen (y down).
    for dy, dx, start, end in (
        (-1, 0, (0, 0), (1, 0)),  # top: empty above
        (0, 1, (1, 0), (1, 1)),  # right
        (1, 0, (1, 1), (0, 1)),  # bottom
        (0, -1, (0, 1), (0, 0)),  # left
    ):
        neighbour = padded[1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx]
        ys, xs = np.nonzero(inside & ~neighbour)
        ys = ys + 1
        xs = xs + 1
        edges.append((xs + start[0], ys + start[1], xs + end[0], ys + end[1]))
    x0 = np.concatenate([e[0] for e in edges])
    y0 = np.concatenate([e[1] for e in edges])
    x1 = np.concatenate([e[2] for e in edges])
    y1 = np.concatenate([e[3] for e in edges])
    if x0.size == 0:
        return []
    stride = width + 1
    starts = (y0 * stride + x0).tolist()
    ends = (y1 * stride + x1).tolist()
    outgoing: dict[int, list[int]] = {}
    for index, key in enumerate(starts):
        outgoing.setdefault(key, []).append(index)
    used = [False] * len(starts)
    loops: list[Polygon] = []
    for first in range(len(starts)):
        if used[first]:
            continue
        keys = []
        edge = first
        while not used[edge]:
            used[edge] = True
            keys.append(starts[edge])
            candidates = [e for e in outgoing[ends[edge]] if not used[e]]
            if not candidates:
                break
            edge = candidates[0]
        points = np.array([[k % stride, k // stride] for k in keys], dtype=np.float64)
        loops.append(_merge_collinear(points) - 1.5)  # padded corner -> pixel-centre coordinates
    return loops


def _merge_collinear(points: NDArray[np.float64]) -> NDArray[np.float64]:
    before = np.roll(points, 1, axis=0)
    after = np.roll(points, -1, axis=0)
    cross = (points[:, 0] - before[:, 0]) * (after[:, 1] - points[:, 1]) - (points[:, 1] - before[:, 1]) * (
        after[:, 0] - points[:, 0]
    )
    keep = cross != 0
    return points[keep] if keep.any() else points


def fill_polygons(polygons: list[Polygon], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Even-odd fill of pixel centres ``(x, y)`` integer, ``0 <= x < shape[1]``, ``0 <= y < shape[0]``."""
    height, width = shape
    parity = np.zeros(shape, dtype=bool)
    columns = np.arange(width, dtype=np.float64)
    for polygon in polygons:
        if len(polygon) < 3:
            continue
        x0, y0 = polygon[:, 0], polygon[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        low = max(int(np.ceil(y0.min())), 0)
        high = min(int(np.floor(y0.max())), height - 1)
        for y in range(low, high + 1):
            crossing = ((y0 <= y) & (y < y1)) | ((y1 <= y) & (y < y0))
            if not crossing.any():
                continue
            xa, ya, xb, yb = x0[crossing], y0[crossing], x1[crossing], y1[crossing]
            xs = np.sort(xa + (y - ya) * (xb - xa) / (yb - ya))
            # centre x is inside when an odd number of crossings lie to its right
            right = xs.size - np.searchsorted(xs, columns, side="right")
            parity[y] ^= (right % 2).astype(bool)
    return parity


def polygon_area(polygon: Polygon) -> float:
    """Absolute shoelace area (pixel units squared)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


__all__ = ["fill_polygons", "mask_to_polygons", "polygon_area"]
