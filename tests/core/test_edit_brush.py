"""Brush: round in mm on anisotropic voxels, disc on any slice axis, threshold brush, gapless strokes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage

from radlabel.core.edit import brush
from radlabel.core.edit.errors import InvalidAxisError, InvalidLengthError, InvalidRangeError, OutsideGridError
from radlabel.core.edit.request import EditMode
from radlabel.core.errors import InputError
from tests.core.edit_support import ball, blank, full, volume, within_grid

ANISO = (0.7, 0.7, 2.5)  # (i, j, k) mm


@pytest.mark.parametrize("radius", [8.0, 12.0, 15.0])
def test_sphere_volume_on_anisotropic_voxels(radius: float) -> None:
    vol = blank((40, 100, 100), ANISO)
    region = brush.dab(vol, (20, 50, 50), radius)
    painted_mm3 = region.mask.sum() * 0.7 * 0.7 * 2.5
    assert painted_mm3 == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.02)
    # round in mm: the same extent along every axis, although voxels are 3.6x longer along k
    k, j, i = (np.flatnonzero(region.mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    for extent, step in ((np.ptp(k) * 2.5, 2.5), (np.ptp(j) * 0.7, 0.7), (np.ptp(i) * 0.7, 0.7)):
        assert 2 * radius - 2 * step < extent <= 2 * radius + 1e-9
    assert region.mask.shape == (2 * int(radius / 2.5) + 1, 2 * int(radius / 0.7) + 1, 2 * int(radius / 0.7) + 1)


def test_dab_is_exactly_the_voxels_within_the_radius() -> None:
    vol = blank((30, 60, 60), ANISO)
    region = brush.dab(vol, (12, 25, 33), 6.0)
    np.testing.assert_array_equal(full(region, (30, 60, 60)), ball((30, 60, 60), ANISO, (12, 25, 33), 6.0))


def test_dab_near_the_edge_is_clipped_to_the_grid() -> None:
    vol = blank((10, 20, 20), ANISO)
    region = brush.dab(vol, (0, 0, 19), 5.0)
    assert within_grid(region, (10, 20, 20))
    np.testing.assert_array_equal(full(region, (10, 20, 20)), ball((10, 20, 20), ANISO, (0, 0, 19), 5.0))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_disc_lies_on_one_slice_and_is_round_in_mm(axis: int) -> None:
    shape = (40, 80, 80)
    vol = blank(shape, ANISO)
    centre = (20, 40, 40)
    region = brush.dab(vol, centre, 10.0, axis=axis)
    assert region.mask.shape[axis] == 1 and region.offset[axis] == centre[axis]
    spacing_kji = (2.5, 0.7, 0.7)
    in_plane = [a for a in range(3) if a != axis]
    area = region.mask.sum() * spacing_kji[in_plane[0]] * spacing_kji[in_plane[1]]
    assert area == pytest.approx(math.pi * 100, rel=0.04)
    expected = ball(shape, ANISO, centre, 10.0)
    index = [slice(None)] * 3
    index[axis] = slice(centre[axis], centre[axis] + 1)
    np.testing.assert_array_equal(full(region, shape)[tuple(index)], expected[tuple(index)])


def test_coronal_disc_extends_equally_in_mm_along_k_and_i() -> None:
    vol = blank((40, 40, 80), ANISO)
    region = brush.dab(vol, (20, 20, 40), 10.0, axis=1)
    plane = region.mask[:, 0, :]
    rows = np.flatnonzero(plane.any(axis=1))
    cols = np.flatnonzero(plane.any(axis=0))
    assert np.ptp(rows) * 2.5 == pytest.approx(20.0, abs=2.5)
    assert np.ptp(cols) * 0.7 == pytest.approx(20.0, abs=0.7)


def test_threshold_brush_paints_only_in_range() -> None:
    array = np.zeros((20, 40, 40), dtype=np.int16)
    array[:, :, :20] = 100
    array[5:8, 10:12, 5:9] = 300  # out of range inside the bright half
    vol = volume(array, (1.0, 1.0, 1.0))
    region = brush.dab(vol, (6, 10, 20), 8.0, intensity_range=(50, 150))
    values = array[region.box]
    assert np.all((values[region.mask] >= 50) & (values[region.mask] <= 150))
    plain = brush.dab(vol, (6, 10, 20), 8.0)
    np.testing.assert_array_equal(region.mask, plain.mask & (values >= 50) & (values <= 150))
    assert region.mask.sum() > 0 and region.mask.sum() < plain.mask.sum()


def test_fast_drag_leaves_no_gaps() -> None:
    shape = (30, 80, 120)
    vol = blank(shape, ANISO)
    points = [(5, 10, 5), (25, 70, 110), (25, 10, 110)]  # three events for a drag across the whole volume
    region = brush.stroke(vol, points, 1.5)
    mask = full(region, shape)
    _, islands = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert islands == 1
    # every voxel on the straight lines between the events is painted
    for a, b in itertools.pairwise(points):
        for t in np.linspace(0, 1, 400):
            voxel = tuple(round(a[n] + (b[n] - a[n]) * t) for n in range(3))
            assert mask[voxel]
    # and the stroke is exactly the union of dabs at those voxels
    dabs = np.zeros(shape, dtype=bool)
    for a, b in itertools.pairwise(points):
        steps = int(np.max(np.abs(np.subtract(b, a))))
        for t in np.linspace(0, 1, steps + 1):
            voxel = tuple(int(np.floor(a[n] + (b[n] - a[n]) * t + 0.5)) for n in range(3))
            dabs |= full(brush.dab(vol, voxel, 1.5), shape)
    np.testing.assert_array_equal(mask, dabs)


def test_stroke_on_a_slice_stays_on_that_slice() -> None:
    vol = blank((30, 60, 60), ANISO)
    region = brush.stroke(vol, [(7, 10, 10), (9, 50, 50)], 3.0, axis=0)
    assert region.mask.shape[0] == 1 and region.offset[0] == 7


def test_paint_and_erase_modes() -> None:
    assert brush.PAINT == EditMode.ADD
    assert brush.ERASE == EditMode.REMOVE


def test_bad_parameters_raise_input_errors() -> None:
    vol = blank((10, 10, 10))
    with pytest.raises(InvalidLengthError):
        brush.dab(vol, (5, 5, 5), -1.0)
    with pytest.raises(InvalidLengthError):
        brush.dab(vol, (5, 5, 5), float("nan"))
    with pytest.raises(OutsideGridError):
        brush.dab(vol, (5, 5, 10), 2.0)
    with pytest.raises(OutsideGridError):
        brush.stroke(vol, [], 2.0)
    with pytest.raises(InvalidAxisError):
        brush.dab(vol, (5, 5, 5), 2.0, axis=3)
    with pytest.raises(InvalidRangeError):
        brush.dab(vol, (5, 5, 5), 2.0, intensity_range=(10, 0))
    with pytest.raises(InputError):
        brush.dab(vol, (-1, 5, 5), 2.0)
