"""Helpers for the editing-tool tests: small synthetic volumes, segmentations, and a reference applier.

`applied` is the meaning of (Region, EditMode) on one boolean mask, written out plainly so the tool tests do not
depend on the edit path (`radlabel.core.edit.apply`), which has its own tests.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Segmentation
from radlabel.core.volume import Volume


def volume(array: NDArray[np.generic], spacing_ijk: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Volume:
    """A volume on an identity-direction grid at the origin (``array`` is [k, j, i])."""
    return Volume(np.ascontiguousarray(array), origin=(0.0, 0.0, 0.0), spacing=spacing_ijk, direction=np.eye(3))


def blank(shape_kji: tuple[int, int, int], spacing_ijk: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Volume:
    return volume(np.zeros(shape_kji, dtype=np.int16), spacing_ijk)


def ball(
    shape_kji: tuple[int, int, int],
    spacing_ijk: tuple[float, float, float],
    centre_kji: tuple[float, float, float],
    radius_mm: float,
) -> NDArray[np.bool_]:
    """Voxels whose centres lie within ``radius_mm`` of ``centre_kji`` (voxel indices)."""
    sk, sj, si = spacing_ijk[2], spacing_ijk[1], spacing_ijk[0]
    k, j, i = np.ogrid[: shape_kji[0], : shape_kji[1], : shape_kji[2]]
    d2 = ((k - centre_kji[0]) * sk) ** 2 + ((j - centre_kji[1]) * sj) ** 2 + ((i - centre_kji[2]) * si) ** 2
    result: NDArray[np.bool_] = d2 <= radius_mm**2
    return result


def segmentation(reference: Volume, *masks: NDArray[np.bool_]) -> tuple[Segmentation, list[int]]:
    """A segmentation with one segment per mask (in layer 0, later masks win where they overlap)."""
    seg = Segmentation.empty(reference)
    ids = []
    for n, mask in enumerate(masks):
        segment = seg.add_segment(f"segment {n + 1}")
        seg.layers[0][mask] = segment.label_value
        ids.append(segment.id)
    return seg, ids


def applied(mask: NDArray[np.bool_], region: Region, mode: EditMode) -> NDArray[np.bool_]:
    """``mask`` after applying ``region`` with ``mode`` (no masking rules)."""
    out = mask.copy()
    if region.mask.size == 0:
        return out
    box = region.box
    if mode == EditMode.ADD:
        out[box] |= region.mask
    elif mode == EditMode.REMOVE:
        out[box] &= ~region.mask
    else:
        out[box] = region.mask
    return out


def full(region: Region, shape: tuple[int, int, int]) -> NDArray[np.bool_]:
    """The region as a full-grid mask (for comparisons)."""
    return applied(np.zeros(shape, dtype=bool), region, EditMode.ADD)


def dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    return float(2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def within_grid(region: Region, shape: tuple[int, int, int]) -> bool:
    start = np.array(region.offset)
    stop = start + np.array(region.mask.shape)
    return bool(np.all(start >= 0) and np.all(stop <= np.array(shape)))
