"""Shared pieces of the editing tools: boxes, spacing in array order, parameter checks, segment crops.

Array order is ``[k, j, i]`` everywhere in this package; ``Volume.spacing`` and ``Grid.spacing`` are (i, j, k),
so every tool converts once with `spacing_kji`. A *box* is a tuple of three slices with explicit integer
start and stop, inside the grid.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.edit.errors import (
    InvalidAxisError,
    InvalidConnectivityError,
    InvalidLengthError,
    InvalidRangeError,
    OutsideGridError,
    UnknownSegmentError,
)
from radlabel.core.edit.request import Region
from radlabel.core.segmentation.model import Grid, Segmentation
from radlabel.core.volume import Volume

Box = tuple[slice, slice, slice]
Shape = tuple[int, int, int]
Spacing = tuple[float, float, float]

AXIS_NAMES = ("k", "j", "i")


def spacing_kji(grid: Volume | Grid | Segmentation) -> Spacing:
    """Voxel size (mm) in array order ``(k, j, i)``."""
    if isinstance(grid, Segmentation):
        grid = grid.grid
    s = [float(v) for v in grid.spacing]
    return (s[2], s[1], s[0])


def shape_of(grid: Volume | Grid | Segmentation) -> Shape:
    """Grid shape ``(nk, nj, ni)``."""
    if isinstance(grid, Volume):
        k, j, i = grid.array.shape
        return (int(k), int(j), int(i))
    if isinstance(grid, Segmentation):
        grid = grid.grid
    return (int(grid.shape[0]), int(grid.shape[1]), int(grid.shape[2]))


def empty_region() -> Region:
    """A region that changes nothing."""
    return Region((0, 0, 0), np.zeros((0, 0, 0), dtype=bool))


def box_offset(box: Box) -> tuple[int, int, int]:
    """The box's first voxel (k, j, i)."""
    return (int(box[0].start), int(box[1].start), int(box[2].start))


def box_shape(box: Box) -> Shape:
    """The box's size (nk, nj, ni)."""
    return (int(box[0].stop - box[0].start), int(box[1].stop - box[1].start), int(box[2].stop - box[2].start))


def make_box(low: Sequence[int], high: Sequence[int], shape: Shape) -> Box:
    """The box ``[low, high)`` clipped to the grid."""
    lo = [max(0, int(a)) for a in low]
    hi = [min(int(n), int(b)) for b, n in zip(high, shape, strict=True)]
    return (slice(lo[0], max(lo[0], hi[0])), slice(lo[1], max(lo[1], hi[1])), slice(lo[2], max(lo[2], hi[2])))


def pad_box(box: Box, pad: Sequence[int], shape: Shape) -> Box:
    """``box`` grown by ``pad`` voxels per axis (k, j, i), clipped to the grid."""
    return make_box(
        [s.start - p for s, p in zip(box, pad, strict=True)],
        [s.stop + p for s, p in zip(box, pad, strict=True)],
        shape,
    )


def union_box(a: Box | None, b: Box | None) -> Box | None:
    """The smallest box holding both (``None`` stands for nothing)."""
    if a is None:
        return b
    if b is None:
        return a
    return (
        slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
        slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
        slice(min(a[2].start, b[2].start), max(a[2].stop, b[2].stop)),
    )


def mask_box(mask: NDArray[np.bool_], offset: Sequence[int] = (0, 0, 0)) -> Box | None:
    """Bounding box of the True voxels of ``mask`` (in grid indices when ``offset`` is the mask's offset)."""
    ks = np.flatnonzero(mask.any(axis=(1, 2)))
    if ks.size == 0:
        return None
    slab = mask[ks[0] : ks[-1] + 1]
    js = np.flatnonzero(slab.any(axis=(0, 2)))
    iis = np.flatnonzero(slab.any(axis=(0, 1)))
    k0, j0, i0 = (int(v) for v in offset)
    return (
        slice(k0 + int(ks[0]), k0 + int(ks[-1]) + 1),
        slice(j0 + int(js[0]), j0 + int(js[-1]) + 1),
        slice(i0 + int(iis[0]), i0 + int(iis[-1]) + 1),
    )


def region_box(region: Region) -> Box | None:
    """Grid box of the True voxels of a region (``None`` when it is empty)."""
    if region.mask.size == 0:
        return None
    return mask_box(region.mask, region.offset)


def check_segment(segmentation: Segmentation, segment_id: int) -> None:
    """Raise `UnknownSegmentError` unless the segmentation has that segment."""
    if segment_id not in segmentation.segments:
        known = ", ".join(str(s) for s in segmentation.segments) or "none"
        raise UnknownSegmentError(f"there is no segment {segment_id} (segments: {known})")


def segment_box(segmentation: Segmentation, segment_id: int) -> Box | None:
    """Bounding box of a segment's voxels, ``None`` for an empty segment.

    One pass over the segment's layer (the segmentation keeps no bounding boxes); everything after it works in
    the box.
    """
    check_segment(segmentation, segment_id)
    segment = segmentation.segments[segment_id]
    layer = segmentation.layers[segment.layer]
    value = segment.label_value
    ks = np.flatnonzero(_any_equal(layer, value))
    if ks.size == 0:
        return None
    slab = layer[ks[0] : ks[-1] + 1] == value
    js = np.flatnonzero(slab.any(axis=(0, 2)))
    iis = np.flatnonzero(slab.any(axis=(0, 1)))
    return (
        slice(int(ks[0]), int(ks[-1]) + 1),
        slice(int(js[0]), int(js[-1]) + 1),
        slice(int(iis[0]), int(iis[-1]) + 1),
    )


def _any_equal(layer: NDArray[Any], value: int) -> NDArray[np.bool_]:
    """Per slice k: does the slice hold ``value``? In slabs, so no full-volume boolean array is made."""
    result = np.zeros(layer.shape[0], dtype=bool)
    step = max(1, 4_000_000 // max(1, layer.shape[1] * layer.shape[2]))
    for k0 in range(0, layer.shape[0], step):
        result[k0 : k0 + step] = (layer[k0 : k0 + step] == value).any(axis=(1, 2))
    return result


def segment_crop(
    segmentation: Segmentation, segment_id: int, pad: Sequence[int] = (0, 0, 0)
) -> tuple[Box, NDArray[np.bool_]] | None:
    """The segment's mask inside its bounding box grown by ``pad`` voxels (clipped); ``None`` when empty."""
    box = segment_box(segmentation, segment_id)
    if box is None:
        return None
    box = pad_box(box, pad, shape_of(segmentation))
    return box, segmentation.mask_in(segment_id, box)


def check_length(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A positive (or, with ``allow_zero``, non-negative) finite length in mm."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidLengthError(f"{name} must be a length in mm, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise InvalidLengthError(f"{name} must be a finite length in mm {bound}, got {value!r}")
    return v


def check_axis(axis: int) -> int:
    """The axis as an int 0, 1 or 2; raises `InvalidAxisError` otherwise."""
    if not isinstance(axis, int | np.integer) or int(axis) not in (0, 1, 2):
        raise InvalidAxisError(
            f"slice axis must be 0 (k), 1 (j) or 2 (i), got {axis!r}",
            fix="use 0 for slices of constant k, 1 for constant j, 2 for constant i",
        )
    return int(axis)


def check_index(index: Sequence[float], shape: Shape, what: str = "seed") -> tuple[int, int, int]:
    """A voxel index (k, j, i) inside the grid; continuous indices are rounded to the nearest voxel."""
    try:
        values = [float(v) for v in index]
    except (TypeError, ValueError):
        raise OutsideGridError(f"{what} must be a voxel index (k, j, i), got {index!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise OutsideGridError(f"{what} must be a voxel index (k, j, i), got {index!r}")
    rounded = [math.floor(v + 0.5) for v in values]
    if any(not 0 <= r < n for r, n in zip(rounded, shape, strict=True)):
        raise OutsideGridError(
            f"{what} {tuple(rounded)} lies outside the grid of size {shape} (k, j, i)",
            fix="pick a voxel inside the image",
        )
    return (rounded[0], rounded[1], rounded[2])


def check_range(low: float, high: float, what: str = "intensity range") -> tuple[float, float]:
    """``(low, high)`` as floats; raises `InvalidRangeError` when they are not numbers or ``low > high``."""
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        raise InvalidRangeError(f"{what} must be two numbers, got {low!r}, {high!r}") from None
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise InvalidRangeError(f"{what} [{low}, {high}] is empty", fix="give the lower bound first")
    return lo, hi


def in_range(values: NDArray[Any], low: float, high: float) -> NDArray[np.bool_]:
    """``low <= values <= high``, compared in the array's own dtype (integer images: twice as fast as floats)."""
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        lo = max(math.ceil(low), int(info.min)) if math.isfinite(low) else (int(info.min) if low < 0 else None)
        hi = min(math.floor(high), int(info.max)) if math.isfinite(high) else (int(info.max) if high > 0 else None)
        if lo is None or hi is None or lo > hi:
            return np.zeros(values.shape, dtype=bool)
        typed_lo, typed_hi = values.dtype.type(lo), values.dtype.type(hi)
        result: NDArray[np.bool_] = values >= typed_lo
        result &= values <= typed_hi
        return result
    result = values >= low
    result &= values <= high
    return result


def structure(connectivity: int, axis: int | None = None) -> NDArray[np.bool_]:
    """3x3x3 neighbourhood for 6 (faces), 18 (edges) or 26 (corners) connectivity; on a slice (``axis``
    given) only the in-plane neighbours: 6 gives 4-connectivity and 18/26 give 8-connectivity."""
    rank = {6: 1, 18: 2, 26: 3}.get(int(connectivity)) if isinstance(connectivity, int | np.integer) else None
    if rank is None:
        raise InvalidConnectivityError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    offsets = np.indices((3, 3, 3)) - 1
    result: NDArray[np.bool_] = np.abs(offsets).sum(axis=0) <= rank
    if axis is not None:
        flat = np.zeros_like(result)
        index: list[slice | int] = [slice(None)] * 3
        index[axis] = 1
        flat[tuple(index)] = result[tuple(index)]
        result = flat
    return result


@functools.lru_cache(maxsize=64)
def ellipsoid(radius_mm: float, spacing: Spacing, axis: int | None = None) -> NDArray[np.bool_]:
    """Voxel offsets within ``radius_mm`` of the centre voxel, as a boolean kernel centred in its array.

    With ``axis`` the kernel is the disc in the plane perpendicular to that axis (thickness one voxel). The
    array is cached and read-only: callers must not write to it.
    """
    half = [math.floor(radius_mm / s + 1e-9) for s in spacing]
    if axis is not None:
        half[axis] = 0
    grids = np.ogrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1, -half[2] : half[2] + 1]
    d2 = sum((g.astype(np.float64) * s) ** 2 for g, s in zip(grids, spacing, strict=True))
    kernel: NDArray[np.bool_] = np.asarray(d2 <= radius_mm * radius_mm + 1e-9)
    kernel.setflags(write=False)
    return kernel


def radius_voxels(length_mm: float, spacing: Spacing) -> tuple[int, int, int]:
    """How many voxels ``length_mm`` spans along each axis (rounded up)."""
    return (
        math.ceil(length_mm / spacing[0] - 1e-9),
        math.ceil(length_mm / spacing[1] - 1e-9),
        math.ceil(length_mm / spacing[2] - 1e-9),
    )


__all__ = [
    "AXIS_NAMES",
    "Box",
    "Shape",
    "Spacing",
    "box_offset",
    "box_shape",
    "check_axis",
    "check_index",
    "check_length",
    "check_range",
    "check_segment",
    "ellipsoid",
    "empty_region",
    "in_range",
    "make_box",
    "mask_box",
    "pad_box",
    "radius_voxels",
    "region_box",
    "segment_box",
    "segment_crop",
    "shape_of",
    "spacing_kji",
    "structure",
]
