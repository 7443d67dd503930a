"""Fill between slices: two discs give the interpolated cone; only gaps are filled; any axis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radlabel.core.edit.errors import InvalidAxisError
from radlabel.core.edit.interpolate import MODE, fill_between_slices
from radlabel.core.edit.request import EditMode
from tests.core.edit_support import applied, ball, blank, full, segmentation

SPACING = (0.7, 0.7, 2.5)


def _discs(shape: tuple[int, int, int], axis: int, slices: list[tuple[int, float, tuple[float, float]]]) -> np.ndarray:
    """Discs (slice index, radius mm, in-plane centre) on slices of ``axis``."""
    mask = np.zeros(shape, dtype=bool)
    for index, radius, (u, v) in slices:
        centre = [0.0, 0.0, 0.0]
        centre[axis] = index
        others = [a for a in range(3) if a != axis]
        centre[others[0]], centre[others[1]] = u, v
        sphere = ball(shape, SPACING, (centre[0], centre[1], centre[2]), radius)
        select = [slice(None)] * 3
        select[axis] = index
        mask[tuple(select)] = sphere[tuple(select)]
    return mask


def test_two_discs_give_the_interpolated_cone() -> None:
    shape = (50, 90, 90)
    drawn = _discs(shape, 0, [(10, 24.0, (45.3, 44.6)), (40, 12.0, (45.3, 44.6))])
    vol = blank(shape, SPACING)
    seg, (sid,) = segmentation(vol, drawn)
    region = fill_between_slices(seg, sid, axis=0)
    assert MODE == EditMode.ADD
    result = applied(drawn, region, MODE)
    areas = result.sum(axis=(1, 2)) * 0.7 * 0.7
    for k in range(11, 40):
        radius = 24.0 + (12.0 - 24.0) * (k - 10) / 30  # the frustum's radius is linear in the slice index
        assert areas[k] == pytest.approx(math.pi * radius**2, rel=0.05), k
    equivalent = np.sqrt(areas[10:41] / math.pi)
    slope, intercept = np.polyfit(np.arange(10, 41), equivalent, 1)
    assert slope == pytest.approx(-12.0 / 30, rel=0.05)
    assert np.max(np.abs(equivalent - (slope * np.arange(10, 41) + intercept))) < 0.5  # mm
    # drawn slices unchanged, nothing outside them, the region holds only new voxels
    np.testing.assert_array_equal(result[10], drawn[10])
    np.testing.assert_array_equal(result[40], drawn[40])
    assert not result[:10].any() and not result[41:].any()
    assert not (full(region, shape) & drawn).any()
    # the work box spans the drawn shapes only
    assert region.offset[0] >= 10 and region.offset[0] + region.mask.shape[0] <= 41
    assert region.mask.shape[1] <= 2 * 24 / 0.7 + 3


@pytest.mark.parametrize("axis", [1, 2])
def test_shifted_discs_on_other_axes_move_along_a_line(axis: int) -> None:
    """Two 10 mm discs 2.5 mm apart along k and 4.2 mm along the other in-plane axis."""
    shape = (40, 60, 60)
    drawn = _discs(shape, axis, [(10, 10.0, (18, 20)), (50, 10.0, (19, 26))])
    seg, (sid,) = segmentation(blank(shape, SPACING), drawn)
    result = applied(drawn, fill_between_slices(seg, sid, axis=axis), EditMode.ADD)
    in_plane = [s for a, s in enumerate((2.5, 0.7, 0.7)) if a != axis]
    for n in range(11, 50):
        select = [slice(None)] * 3
        select[axis] = n
        plane = result[tuple(select)]
        # blending distance maps of shifted shapes narrows the middle a little (an ellipse, not a disc)
        assert plane.sum() * in_plane[0] * in_plane[1] == pytest.approx(math.pi * 100, rel=0.1)
        rows, cols = np.nonzero(plane)
        t = (n - 10) / 40
        assert rows.mean() == pytest.approx(18 + 1 * t, abs=0.5)
        assert cols.mean() == pytest.approx(20 + 6 * t, abs=0.5)


def test_several_gaps_and_nothing_to_fill() -> None:
    shape = (30, 40, 40)
    drawn = _discs(shape, 0, [(2, 6.0, (20, 20)), (5, 6.0, (20, 20)), (6, 6.0, (20, 20)), (12, 4.0, (20, 20))])
    seg, (sid,) = segmentation(blank(shape, SPACING), drawn)
    region = fill_between_slices(seg, sid)
    filled = full(region, shape).any(axis=(1, 2))
    assert np.flatnonzero(filled).tolist() == [3, 4, 7, 8, 9, 10, 11]
    adjacent = _discs(shape, 0, [(2, 6.0, (20, 20)), (3, 6.0, (20, 20))])
    seg, (sid,) = segmentation(blank(shape, SPACING), adjacent)
    assert fill_between_slices(seg, sid).is_empty
    seg.add_segment("empty")
    assert fill_between_slices(seg, 2).is_empty
    with pytest.raises(InvalidAxisError):
        fill_between_slices(seg, sid, axis=-1)
