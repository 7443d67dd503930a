"""Smoothing of segment masks: median, opening, closing, Gaussian, and joint smoothing of several segments.

Sizes are in mm. A kernel of ``kernel_mm`` spans ``2 * round((kernel_mm / spacing + 1) / 2) - 1`` voxels along
each axis (the nearest odd count, as Slicer's smoothing effect does), so on 0.7 x 0.7 x 2.5 mm voxels a 3 mm
kernel is 5 x 5 x 1 voxels: thick slices are not smoothed across when the kernel is thinner than a slice.
Median uses that box; opening and closing use the ellipsoid inscribed in it.

All work happens in the segment's bounding box grown by the kernel's reach, and each function returns a region
covering that box, for ``EditMode.REPLACE``. `joint_smoothing` returns one such region per segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core.edit.common import (
    Box,
    Spacing,
    box_offset,
    check_length,
    check_segment,
    empty_region,
    pad_box,
    segment_box,
    segment_crop,
    shape_of,
    spacing_kji,
    union_box,
)
from radlabel.core.edit.errors import EditParameterError
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Segmentation

MODE = EditMode.REPLACE
"""Mode to apply smoothing regions with."""

_TRUNCATE = 4.0


def kernel_half_sizes(kernel_mm: float, spacing: Spacing) -> tuple[int, int, int]:
    """Half size (voxels) of a ``kernel_mm`` kernel along k, j, i (0: the kernel is one voxel thick)."""
    half = [max(0, int(np.floor((kernel_mm / s + 1) / 2 + 0.5)) - 1) for s in spacing]
    return (half[0], half[1], half[2])


def _ellipsoid_element(half: tuple[int, int, int]) -> NDArray[np.bool_]:
    grids = np.ogrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1, -half[2] : half[2] + 1]
    d2 = sum((g / h) ** 2 if h > 0 else np.zeros_like(g, dtype=float) for g, h in zip(grids, half, strict=True))
    element: NDArray[np.bool_] = np.asarray(d2 <= 1.0 + 1e-9)
    return element


def _crop(segmentation: Segmentation, segment_id: int, pad: Sequence[int]) -> tuple[Box, NDArray[np.bool_]] | None:
    return segment_crop(segmentation, segment_id, [p + 1 for p in pad])


def _kernel_operation(
    segmentation: Segmentation,
    segment_id: int,
    kernel_mm: float,
    reach: int,
    operate: Callable[[NDArray[np.bool_], tuple[int, int, int]], NDArray[np.bool_]],
) -> Region:
    """Run ``operate(mask, half_sizes)`` on the segment's box, padded by ``reach`` kernel half-sizes so the
    operation sees background round the segment. A kernel under one voxel leaves the segment as it is."""
    half = kernel_half_sizes(check_length("kernel size", kernel_mm), spacing_kji(segmentation))
    crop = _crop(segmentation, segment_id, [reach * h for h in half])
    if crop is None:
        return empty_region()
    box, mask = crop
    if not any(half):
        return Region(box_offset(box), mask)
    return Region(box_offset(box), operate(mask, half))


def median_smoothing(segmentation: Segmentation, segment_id: int, kernel_mm: float) -> Region:
    """The segment after a median filter of ``kernel_mm`` (a voxel stays in when most of its box is in).

    Removes specks and fills pits smaller than about half the kernel; keeps edges and corners larger than it.
    """

    def median(mask: NDArray[np.bool_], half: tuple[int, int, int]) -> NDArray[np.bool_]:
        # for a binary image the median of an odd-sized box is "more than half are in": a box mean, much faster
        mean = ndimage.uniform_filter(mask.astype(np.float32), size=[2 * h + 1 for h in half], mode="constant")
        result: NDArray[np.bool_] = mean > 0.5
        return result

    return _kernel_operation(segmentation, segment_id, kernel_mm, 1, median)


def opening(segmentation: Segmentation, segment_id: int, kernel_mm: float) -> Region:
    """The segment after morphological opening (erode, then dilate): removes parts thinner than the kernel."""

    def open_(mask: NDArray[np.bool_], half: tuple[int, int, int]) -> NDArray[np.bool_]:
        result: NDArray[np.bool_] = ndimage.binary_opening(mask, structure=_ellipsoid_element(half))
        return result

    return _kernel_operation(segmentation, segment_id, kernel_mm, 1, open_)


def closing(segmentation: Segmentation, segment_id: int, kernel_mm: float) -> Region:
    """The segment after morphological closing (dilate, then erode): fills gaps and holes narrower than the
    kernel."""

    def close(mask: NDArray[np.bool_], half: tuple[int, int, int]) -> NDArray[np.bool_]:
        element = _ellipsoid_element(half)
        # dilate and erode separately: binary_closing's erosion treats the array's border as background
        dilated = ndimage.binary_dilation(mask, structure=element)
        result: NDArray[np.bool_] = ndimage.binary_erosion(dilated, structure=element, border_value=1)
        return result

    return _kernel_operation(segmentation, segment_id, kernel_mm, 2, close)


def gaussian_smoothing(segmentation: Segmentation, segment_id: int, sigma_mm: float) -> Region:
    """The segment after Gaussian smoothing of its mask (``sigma_mm`` along each axis) cut again at 0.5.

    Rounds corners and smooths staircase edges; shapes thinner than about a sigma vanish.
    """
    sigma = check_length("smoothing sigma", sigma_mm)
    spacing = spacing_kji(segmentation)
    sigmas = [sigma / s for s in spacing]
    reach = [int(_TRUNCATE * sg + 0.5) for sg in sigmas]
    crop = _crop(segmentation, segment_id, reach)
    if crop is None:
        return empty_region()
    box, mask = crop
    blurred = ndimage.gaussian_filter(mask.astype(np.float32), sigmas, mode="constant", truncate=_TRUNCATE)
    return Region(box_offset(box), blurred >= 0.5)


def joint_smoothing(
    segmentation: Segmentation, segment_ids: Sequence[int], sigma_mm: float
) -> dict[int, tuple[Region, EditMode]]:
    """Smooth several segments together so that they stay without overlap and without gaps between them.

    Each segment's mask (and the background: everything in none of them) is Gaussian-smoothed; every voxel of
    the common box then goes to whichever is strongest there (the background on a tie). Where two segments
    touched they still touch, along a smoothed interface. Segments that overlapped no longer do. Returns, per
    segment id, its voxels in the common box, for REPLACE.
    """
    sigma = check_length("smoothing sigma", sigma_mm)
    ids = [int(s) for s in segment_ids]
    if not ids or len(set(ids)) != len(ids):
        raise EditParameterError(f"joint smoothing needs distinct segment ids, got {list(segment_ids)!r}")
    for segment_id in ids:
        check_segment(segmentation, segment_id)
    spacing = spacing_kji(segmentation)
    sigmas = [sigma / s for s in spacing]
    reach = [int(_TRUNCATE * sg + 0.5) + 1 for sg in sigmas]
    box: Box | None = None
    for segment_id in ids:
        box = union_box(box, segment_box(segmentation, segment_id))
    if box is None:
        return {segment_id: (empty_region(), EditMode.REPLACE) for segment_id in ids}
    box = pad_box(box, reach, shape_of(segmentation))
    masks = [segmentation.mask_in(segment_id, box) for segment_id in ids]
    background = np.ones(masks[0].shape, dtype=bool)
    for mask in masks:
        background &= ~mask
    best = ndimage.gaussian_filter(background.astype(np.float32), sigmas, mode="constant", cval=1.0, truncate=_TRUNCATE)
    winner = np.zeros(best.shape, dtype=np.uint16)
    for n, mask in enumerate(masks, start=1):
        score = ndimage.gaussian_filter(mask.astype(np.float32), sigmas, mode="constant", truncate=_TRUNCATE)
        better = score > best
        winner[better] = n
        np.maximum(best, score, out=best)
    offset = box_offset(box)
    return {segment_id: (Region(offset, winner == n), EditMode.REPLACE) for n, segment_id in enumerate(ids, start=1)}


__all__ = [
    "MODE",
    "closing",
    "gaussian_smoothing",
    "joint_smoothing",
    "kernel_half_sizes",
    "median_smoothing",
    "opening",
]
