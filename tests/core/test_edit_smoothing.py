"""Smoothing: median, opening, closing, Gaussian, joint smoothing without overlaps or gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radlabel.core.edit import smoothing
from radlabel.core.edit.errors import EditParameterError, InvalidLengthError
from radlabel.core.edit.request import EditMode
from tests.core.edit_support import applied, ball, blank, segmentation, within_grid

SPACING = (1.0, 1.0, 1.0)
SHAPE = (30, 40, 40)


def _cube() -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[8:22, 10:30, 10:30] = True
    return mask


def _smoothed(function, mask: np.ndarray, size: float, spacing=SPACING) -> np.ndarray:  # type: ignore[no-untyped-def]
    seg, (sid,) = segmentation(blank(mask.shape, spacing), mask)
    region = function(seg, sid, size)
    assert within_grid(region, mask.shape)
    return applied(mask, region, smoothing.MODE)


def test_kernel_sizes_in_mm() -> None:
    assert smoothing.kernel_half_sizes(3.0, (2.5, 0.7, 0.7)) == (0, 2, 2)  # 1 x 5 x 5 voxels
    assert smoothing.kernel_half_sizes(3.0, (1.0, 1.0, 1.0)) == (1, 1, 1)
    assert smoothing.MODE == EditMode.REPLACE


def test_median_removes_specks_and_fills_pits() -> None:
    cube = _cube()
    noisy = cube.copy()
    noisy[15, 20, 20] = False  # a one-voxel hole inside
    noisy[3, 3, 3] = True  # a speck outside
    noisy[15, 5, 20] = True  # a speck near the cube
    result = _smoothed(smoothing.median_smoothing, noisy, 3.0)
    assert result[15, 20, 20] and not result[3, 3, 3] and not result[15, 5, 20]
    inner = np.zeros(SHAPE, dtype=bool)
    inner[9:21, 11:29, 11:29] = True
    assert result[inner].all()
    assert not result[~cube].any()
    assert result.sum() < cube.sum()  # edges of a box kernel round the cube's edges off


def test_opening_removes_thin_parts_and_closing_fills_gaps() -> None:
    cube = _cube()
    spiked = cube.copy()
    spiked[15, 20, 30:38] = True  # a one-voxel-thin spike
    opened = _smoothed(smoothing.opening, spiked, 3.0)
    assert not opened[15, 20, 31:38].any()
    inner = np.zeros(SHAPE, dtype=bool)
    inner[9:21, 11:29, 11:29] = True
    assert opened[inner].all()

    split = cube.copy()
    split[:, :, 19] = False  # a one-voxel gap through the cube
    split[15, 20, 15] = False  # and a hole
    closed = _smoothed(smoothing.closing, split, 3.0)
    assert closed[9:21, 11:29, 19].all() and closed[15, 20, 15]  # (a notch stays where the gap meets the surface)
    assert not closed[~cube].any()


def test_gaussian_keeps_a_sphere_and_drops_a_lone_voxel() -> None:
    spacing = (0.8, 0.8, 2.0)
    shape = (30, 60, 60)
    sphere = ball(shape, spacing, (15, 30, 30), 15.0)
    sphere[2, 2, 2] = True
    result = _smoothed(smoothing.gaussian_smoothing, sphere, 1.5, spacing)
    assert not result[2, 2, 2]
    volume = result.sum() * 0.8 * 0.8 * 2.0
    assert volume == pytest.approx(4 / 3 * math.pi * 15**3, rel=0.03)
    assert np.count_nonzero(result ^ sphere) < 0.1 * sphere.sum()


def test_joint_smoothing_keeps_segments_apart_and_without_gaps() -> None:
    rng = np.random.default_rng(4)
    a = np.zeros(SHAPE, dtype=bool)
    a[5:25, 8:32, 5:20] = True
    b = np.zeros(SHAPE, dtype=bool)
    b[5:25, 8:32, 20:35] = True
    # a jagged interface: columns of A reach into B and back
    jag = rng.random((20, 24)) < 0.5
    a[5:25, 8:32, 20] |= jag
    b[5:25, 8:32, 20] &= ~jag
    vol = blank(SHAPE, SPACING)
    seg, (ida, idb) = segmentation(vol, a, b)
    result = smoothing.joint_smoothing(seg, [ida, idb], 2.0)
    assert all(mode == EditMode.REPLACE for _, mode in result.values())
    new_a = applied(a, result[ida][0], EditMode.REPLACE)
    new_b = applied(b, result[idb][0], EditMode.REPLACE)
    assert not (new_a & new_b).any()
    # no gap opens between them: every voxel well inside the union still belongs to one of them
    union_inner = np.zeros(SHAPE, dtype=bool)
    union_inner[8:22, 11:29, 8:32] = True
    assert (new_a | new_b)[union_inner].all()
    # and the interface got smoother: fewer faces where A meets B
    assert _contacts(new_a, new_b) < 0.8 * _contacts(a, b)
    with pytest.raises(EditParameterError):
        smoothing.joint_smoothing(seg, [ida, ida], 1.0)


def _contacts(a: np.ndarray, b: np.ndarray) -> int:
    total = 0
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(None, -1)
        hi[axis] = slice(1, None)
        total += int(np.count_nonzero(a[tuple(lo)] & b[tuple(hi)]) + np.count_nonzero(b[tuple(lo)] & a[tuple(hi)]))
    return total


def test_bad_sizes() -> None:
    seg, (sid,) = segmentation(blank(SHAPE), _cube())
    with pytest.raises(InvalidLengthError):
        smoothing.median_smoothing(seg, sid, 0)
    with pytest.raises(InvalidLengthError):
        smoothing.gaussian_smoothing(seg, sid, -2)
