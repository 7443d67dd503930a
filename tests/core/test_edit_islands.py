"""Islands: exactly the small blobs go; keep largest; split; connectivity."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.core.edit.errors import InvalidConnectivityError, InvalidLengthError, UnknownSegmentError
from radlabel.core.edit.islands import MODE, keep_largest_island, remove_small_islands, split_islands
from radlabel.core.edit.request import EditMode
from tests.core.edit_support import applied, blank, full, segmentation

SPACING = (0.5, 0.5, 2.0)  # voxel = 0.5 mm³
SHAPE = (20, 40, 60)


def _blobs() -> tuple[np.ndarray, list[np.ndarray]]:
    """Cubes of 1, 8, 27, 64 and 125 voxels (0.5, 4, 13.5, 32 and 62.5 mm³), apart from each other."""
    mask = np.zeros(SHAPE, dtype=bool)
    blobs = []
    for n, side in enumerate((1, 2, 3, 4, 5)):
        blob = np.zeros(SHAPE, dtype=bool)
        blob[2 : 2 + side, 5 : 5 + side, 3 + 11 * n : 3 + 11 * n + side] = True
        mask |= blob
        blobs.append(blob)
    return mask, blobs


@pytest.mark.parametrize(("limit", "removed"), [(0.5, 0), (0.6, 1), (4.0, 1), (4.1, 2), (32.0, 3), (100.0, 5)])
def test_remove_small_islands_removes_exactly_the_small_blobs(limit: float, removed: int) -> None:
    mask, blobs = _blobs()
    seg, (sid,) = segmentation(blank(SHAPE, SPACING), mask)
    region = remove_small_islands(seg, sid, limit)
    assert MODE == EditMode.REMOVE
    expected = mask.copy()
    for blob in blobs[:removed]:
        expected &= ~blob
    np.testing.assert_array_equal(applied(mask, region, EditMode.REMOVE), expected)


def test_keep_largest_island() -> None:
    mask, blobs = _blobs()
    seg, (sid,) = segmentation(blank(SHAPE, SPACING), mask)
    np.testing.assert_array_equal(applied(mask, keep_largest_island(seg, sid), EditMode.REMOVE), blobs[-1])
    single, _ = segmentation(blank(SHAPE, SPACING), blobs[2])
    assert keep_largest_island(single, 1).is_empty


def test_split_islands_largest_first() -> None:
    mask, blobs = _blobs()
    seg, (sid,) = segmentation(blank(SHAPE, SPACING), mask)
    parts = split_islands(seg, sid)
    assert [p.mask.sum() for p in parts] == [125, 64, 27, 8, 1]
    for part, blob in zip(parts, reversed(blobs), strict=True):
        np.testing.assert_array_equal(full(part, SHAPE), blob)
        assert part.mask.all()  # each in its own tight box
    assert len(split_islands(seg, sid, min_volume_mm3=13.5)) == 3


def test_connectivity_decides_what_an_island_is() -> None:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[2:4, 2:4, 2:4] = True
    mask[4:6, 4:6, 4:6] = True  # touches the first cube at one corner only
    seg, (sid,) = segmentation(blank(SHAPE, SPACING), mask)
    assert len(split_islands(seg, sid, connectivity=6)) == 2
    assert len(split_islands(seg, sid, connectivity=18)) == 2
    assert len(split_islands(seg, sid, connectivity=26)) == 1


def test_bad_parameters() -> None:
    mask, _ = _blobs()
    seg, (sid,) = segmentation(blank(SHAPE, SPACING), mask)
    with pytest.raises(InvalidLengthError):
        remove_small_islands(seg, sid, -1.0)
    with pytest.raises(InvalidConnectivityError):
        keep_largest_island(seg, sid, connectivity=4)
    with pytest.raises(UnknownSegmentError):
        split_islands(seg, 99)
