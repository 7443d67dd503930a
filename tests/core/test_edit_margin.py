"""Margin and hollow: distances in mm on anisotropic voxels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radlabel.core.edit import margin as mg
from radlabel.core.edit.errors import InvalidLengthError
from radlabel.core.edit.request import EditMode
from tests.core.edit_support import applied, ball, blank, segmentation, within_grid

GRIDS = [((1.0, 1.0, 1.0), (44, 44, 44)), ((0.7, 0.7, 2.5), (20, 64, 64))]


def _sphere(spacing, shape, radius):  # type: ignore[no-untyped-def]
    centre = tuple(n / 2 - 0.3 for n in shape)
    mask = ball(shape, spacing, centre, radius)
    seg, (sid,) = segmentation(blank(shape, spacing), mask)
    return seg, sid, mask, float(np.prod(spacing))


@pytest.mark.parametrize(("spacing", "shape"), GRIDS)
@pytest.mark.parametrize(("radius", "margin"), [(10.0, 5.0), (12.0, 3.0)])
def test_grow_sphere_by_margin(spacing, shape, radius: float, margin: float) -> None:  # type: ignore[no-untyped-def]
    seg, sid, mask, voxel = _sphere(spacing, shape, radius)
    region = mg.grow(seg, sid, margin)
    assert mg.MODE == EditMode.REPLACE and within_grid(region, shape)
    grown = applied(mask, region, mg.MODE)
    assert grown[mask].all()
    r = radius + margin
    assert grown.sum() * voxel == pytest.approx(4 / 3 * math.pi * r**3, rel=0.03)


@pytest.mark.parametrize(("spacing", "shape"), GRIDS)
def test_shrink_sphere_by_margin(spacing, shape) -> None:  # type: ignore[no-untyped-def]
    seg, sid, mask, voxel = _sphere(spacing, shape, 15.0)
    shrunk = applied(mask, mg.margin(seg, sid, -5.0), mg.MODE)
    assert not shrunk[~mask].any()
    # shrinking is less exact than growing on a lattice (see the margin module's notes): 5 %, not 3 %
    assert shrunk.sum() * voxel == pytest.approx(4 / 3 * math.pi * 10.0**3, rel=0.05)


@pytest.mark.parametrize(("spacing", "shape"), GRIDS)
@pytest.mark.parametrize(
    ("side", "inner", "outer"),
    [(mg.ShellSide.INSIDE, 11.0, 15.0), (mg.ShellSide.OUTSIDE, 15.0, 19.0), (mg.ShellSide.CENTRED, 13.0, 17.0)],
)
def test_hollow_shell_volume(spacing, shape, side, inner: float, outer: float) -> None:  # type: ignore[no-untyped-def]
    seg, sid, mask, voxel = _sphere(spacing, shape, 15.0)
    shell = applied(mask, mg.hollow(seg, sid, 4.0, side), mg.MODE)
    expected = 4 / 3 * math.pi * (outer**3 - inner**3)
    assert shell.sum() * voxel == pytest.approx(expected, rel=0.05)
    centre = tuple(int(n / 2) for n in shape)
    assert not shell[centre]


def test_zero_margin_and_bad_lengths() -> None:
    seg, sid, _, _ = _sphere((1.0, 1.0, 1.0), (20, 20, 20), 5.0)
    assert mg.margin(seg, sid, 0).is_empty
    with pytest.raises(InvalidLengthError):
        mg.grow(seg, sid, -1)
    with pytest.raises(InvalidLengthError):
        mg.hollow(seg, sid, 0)
    with pytest.raises(InvalidLengthError):
        mg.margin(seg, sid, float("inf"))
    seg.add_segment("empty")
    assert mg.grow(seg, 2, 3.0).is_empty
