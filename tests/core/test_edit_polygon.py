"""Polygon / lasso fill on slices of the three axes."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.core.edit.errors import InvalidAxisError, InvalidPolygonError, OutsideGridError
from radlabel.core.edit.polygon import MODE, polygon_fill
from radlabel.core.edit.request import EditMode
from tests.core.edit_support import blank, full

SPACING = (0.7, 0.8, 2.5)  # (i, j, k)
SHAPE = (20, 30, 40)


def _even_odd(points: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Reference point-in-polygon test of every pixel centre (even-odd rule, ray along +column)."""
    y, x = np.mgrid[:rows, :cols].astype(float)
    inside = np.zeros((rows, cols), dtype=bool)
    for (y0, x0), (y1, x1) in zip(points, np.roll(points, -1, axis=0), strict=True):
        crosses = (y0 <= y) != (y1 <= y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return inside


def test_square_fill_area() -> None:
    vol = blank(SHAPE, SPACING)
    square = [(2, 2), (2, 10), (10, 10), (10, 2)]
    region = polygon_fill(vol, 0, 5, square)
    assert MODE == EditMode.ADD
    mask = full(region, SHAPE)
    assert mask.sum() == 81  # pixel centres 2..10 inclusive, both ways
    assert mask.sum() * 0.8 * 0.7 == pytest.approx(81 * 0.56)
    assert mask[5].sum() == 81 and mask.sum(axis=(1, 2))[5] == mask.sum()
    assert region.offset == (5, 2, 2) and region.mask.shape == (1, 9, 9)


@pytest.mark.parametrize(("axis", "index"), [(0, 3), (1, 7), (2, 11)])
def test_each_axis_places_rows_and_columns(axis: int, index: int) -> None:
    vol = blank(SHAPE, SPACING)
    region = polygon_fill(vol, axis, index, [(1, 3), (1, 6), (4, 6), (4, 3)])
    mask = full(region, SHAPE)
    select = [slice(None)] * 3
    select[axis] = index
    plane = mask[tuple(select)]
    expected = np.zeros(plane.shape, dtype=bool)
    expected[1:5, 3:7] = True
    np.testing.assert_array_equal(plane, expected)
    assert mask.sum() == 16


def test_concave_lasso_matches_the_even_odd_rule_plus_its_outline() -> None:
    rng = np.random.default_rng(5)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radii = rng.uniform(4, 12, 40)
    points = np.stack([15 + radii * np.sin(angles), 20 + radii * np.cos(angles)], axis=1)  # a spiky lasso
    vol = blank(SHAPE, SPACING)
    plane = full(polygon_fill(vol, 0, 0, points), SHAPE)[0]
    inside = _even_odd(points, 30, 40)
    assert plane[inside].all()  # every pixel whose centre is inside
    # anything more lies on the outline: within half a pixel diagonal of a segment of the lasso
    extra = np.argwhere(plane & ~inside)
    for pixel in extra:
        d = min(_distance(pixel, a, b) for a, b in zip(points, np.roll(points, -1, axis=0), strict=True))
        assert d <= 0.71


def _distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-12), 0, 1)
    return float(np.linalg.norm(p - (a + t * ab)))


def test_polygon_is_clipped_to_the_slice() -> None:
    vol = blank(SHAPE, SPACING)
    region = polygon_fill(vol, 0, 0, [(-5, -5), (-5, 4), (4, 4), (4, -5)])
    assert region.offset == (0, 0, 0) and full(region, SHAPE).sum() == 25
    assert polygon_fill(vol, 0, 0, [(-9, -9), (-9, -5), (-5, -5)]).is_empty


def test_bad_parameters() -> None:
    vol = blank(SHAPE, SPACING)
    with pytest.raises(InvalidPolygonError):
        polygon_fill(vol, 0, 0, [(1, 1), (2, 2)])
    with pytest.raises(InvalidPolygonError):
        polygon_fill(vol, 0, 0, [(1, 1), (2, 2), (3, float("nan"))])
    with pytest.raises(OutsideGridError):
        polygon_fill(vol, 0, 20, [(1, 1), (2, 2), (3, 1)])
    with pytest.raises(InvalidAxisError):
        polygon_fill(vol, 3, 0, [(1, 1), (2, 2), (3, 1)])
