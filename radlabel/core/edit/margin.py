"""Margin (grow or shrink a segment by a distance in mm) and hollow (turn a segment into a shell).

Distances are Euclidean in mm (``scipy.ndimage.distance_transform_edt`` with ``sampling`` = the voxel size), so
a 5 mm margin is 5 mm in every direction on anisotropic voxels. The work covers the segment's bounding box
grown by the margin.

Voxelised shapes end between voxel centres, not on them: a painted sphere of radius r holds the voxel centres
within r, and its outermost centres lie on average a fraction of a voxel inside r. A margin measured from voxel
centres alone therefore comes out short (about -4 % in volume for a 10 mm sphere grown by 5 mm on 1 mm voxels).
The margin is measured instead from the estimated surface: a voxel joins when its distance to the nearest
segment voxel is at most ``margin + GROW_BIAS * h`` and leaves (on shrink) when its distance to the nearest
outside voxel is at most ``margin + SHRINK_BIAS * h``, ``h`` being the voxel size along the direction to that
nearest voxel. The two fractions were calibrated on spheres of 10 and 15 mm radius with random sub-voxel centres,
grown and shrunk by 2, 3 and 5 mm on 1 mm, 0.8 x 0.8 x 1.5 mm and 0.7 x 0.7 x 2.5 mm grids: the mean volume error
is then below 0.5 %; single cases stay within 3 % when growing and within 10 % when shrinking a small shape by
a few voxels (the voxel lattice itself allows no better there).

Regions from this module cover the work box, for ``EditMode.REPLACE``.
"""

from __future__ import annotations

import enum

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core.edit.common import (
    Spacing,
    box_offset,
    check_length,
    empty_region,
    radius_voxels,
    segment_crop,
    spacing_kji,
)
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Segmentation

MODE = EditMode.REPLACE
"""Mode to apply margin and hollow regions with."""

GROW_BIAS = 0.25
"""Fraction of a voxel (along the direction of growth) between the outermost voxel centres and the surface."""
SHRINK_BIAS = 0.2
"""The same, seen from outside the shape (for shrinking)."""


class ShellSide(enum.StrEnum):
    """Where `hollow` puts the shell relative to the segment's surface."""

    INSIDE = "inside"  # the shell is the outer layer of the segment
    OUTSIDE = "outside"  # the shell wraps the segment
    CENTRED = "centred"  # half inside, half outside


def grow(segmentation: Segmentation, segment_id: int, margin_mm: float) -> Region:
    """The segment grown by ``margin_mm`` in every direction. Raises `InvalidLengthError` for margin <= 0."""
    m = check_length("margin", margin_mm)
    spacing = spacing_kji(segmentation)
    crop = segment_crop(segmentation, segment_id, [r + 1 for r in radius_voxels(m, spacing)])
    if crop is None:
        return empty_region()
    box, mask = crop
    return Region(box_offset(box), _grown(mask, spacing, m))


def shrink(segmentation: Segmentation, segment_id: int, margin_mm: float) -> Region:
    """The segment shrunk by ``margin_mm`` from every side (parts thinner than twice the margin vanish).

    The grid's edge is not a side: a segment cut by the image's border does not shrink away from it.
    """
    m = check_length("margin", margin_mm)
    spacing = spacing_kji(segmentation)
    crop = segment_crop(segmentation, segment_id, (1, 1, 1))
    if crop is None:
        return empty_region()
    box, mask = crop
    return Region(box_offset(box), _shrunk(mask, spacing, m))


def margin(segmentation: Segmentation, segment_id: int, margin_mm: float) -> Region:
    """Grow (``margin_mm`` > 0) or shrink (< 0) a segment, as Slicer's Margin effect. Zero changes nothing."""
    try:
        value = float(margin_mm)
    except (TypeError, ValueError):
        value = float("nan")
    check_length("margin", abs(value) if value == value else margin_mm, allow_zero=True)
    if value == 0:
        return empty_region()
    if value > 0:
        return grow(segmentation, segment_id, value)
    return shrink(segmentation, segment_id, -value)


def hollow(
    segmentation: Segmentation,
    segment_id: int,
    thickness_mm: float,
    side: ShellSide | str = ShellSide.INSIDE,
) -> Region:
    """The segment replaced by a shell of ``thickness_mm`` along its surface (inside, outside or centred).

    A solid sphere of radius r hollowed inside by t becomes the shell between radii r - t and r.
    """
    t = check_length("shell thickness", thickness_mm)
    side = ShellSide(side)
    spacing = spacing_kji(segmentation)
    crop = segment_crop(segmentation, segment_id, [r + 1 for r in radius_voxels(t, spacing)])
    if crop is None:
        return empty_region()
    box, mask = crop
    if side == ShellSide.INSIDE:
        shell = mask & ~_shrunk(mask, spacing, t)
    elif side == ShellSide.OUTSIDE:
        shell = _grown(mask, spacing, t) & ~mask
    else:
        shell = _grown(mask, spacing, t / 2) & ~_shrunk(mask, spacing, t / 2)
    return Region(box_offset(box), shell)


def _grown(mask: NDArray[np.bool_], spacing: Spacing, m: float) -> NDArray[np.bool_]:
    if not mask.any():
        return mask.copy()
    distance, nearest = ndimage.distance_transform_edt(~mask, sampling=spacing, return_indices=True)
    result: NDArray[np.bool_] = distance <= m
    limit = m + GROW_BIAS * max(spacing)
    _widen(result, distance, nearest, spacing, m, GROW_BIAS, limit, accept=True)
    return result


def _shrunk(mask: NDArray[np.bool_], spacing: Spacing, m: float) -> NDArray[np.bool_]:
    if mask.all():
        return mask.copy()
    distance, nearest = ndimage.distance_transform_edt(mask, sampling=spacing, return_indices=True)
    result: NDArray[np.bool_] = distance > m
    limit = m + SHRINK_BIAS * max(spacing)
    _widen(result, distance, nearest, spacing, m, SHRINK_BIAS, limit, accept=False)
    return result


def _widen(
    result: NDArray[np.bool_],
    distance: NDArray[np.float64],
    nearest: NDArray[np.int32],
    spacing: Spacing,
    m: float,
    bias: float,
    limit: float,
    *,
    accept: bool,
) -> None:
    """Decide the voxels whose distance lies in (m, limit]: they join (``accept``) or leave the result when their
    distance is within ``m + bias * h``, h the voxel size along the direction to their nearest voxel."""
    candidates = np.nonzero((distance > m) & (distance <= limit))
    if candidates[0].size == 0:
        return
    dist = distance[candidates]
    h2 = np.zeros(dist.shape, dtype=np.float64)
    for a in range(3):
        delta = (candidates[a] - nearest[a][candidates]) * spacing[a]
        h2 += (delta / dist * spacing[a]) ** 2
    near = dist <= m + bias * np.sqrt(h2)
    result[tuple(c[near] for c in candidates)] = accept


__all__ = ["GROW_BIAS", "MODE", "SHRINK_BIAS", "ShellSide", "grow", "hollow", "margin", "shrink"]
