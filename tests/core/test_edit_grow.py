"""Grow from seeds: touching blobs separate, updates equal fresh runs, the cache is reused."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.core.edit import brush
from radlabel.core.edit.errors import NoSeedsError, OutsideGridError
from radlabel.core.edit.grow import GrowFromSeeds, grow_from_seeds, seeds_from_segmentation
from radlabel.core.edit.request import EditMode, Region
from tests.core.edit_support import ball, dice, full, segmentation, volume

SPACING = (0.8, 0.8, 1.5)  # (i, j, k) mm
SHAPE = (40, 80, 110)
CENTRE_A = (20, 40, 38)
CENTRE_B = (20, 40, 65)  # 21.6 mm to the right of A: the two 12 mm balls overlap along a flat interface


@pytest.fixture(scope="module")
def case() -> tuple[object, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    a = ball(SHAPE, SPACING, CENTRE_A, 12.0)
    b = ball(SHAPE, SPACING, CENTRE_B, 12.0)
    a &= ~b
    array = np.zeros(SHAPE, dtype=np.float32)
    array[a] = 100
    array[b] = 200
    array += rng.normal(0, 10, SHAPE).astype(np.float32)
    return volume(array.astype(np.int16), SPACING), a, b


def _seeds(vol: object, shift: int = 0) -> dict[int, Region]:
    """Two dabs in the blobs (moved by ``shift`` voxels along j) and a background stroke around both."""
    ring = [(20, 15, 15), (20, 15, 90), (20, 65, 90), (20, 65, 15), (20, 15, 15)]
    background = brush.stroke(vol, ring, 2.0)  # type: ignore[arg-type]
    above = brush.dab(vol, (3, 40, 50), 3.0)  # type: ignore[arg-type]
    below = brush.dab(vol, (37, 40, 50), 3.0)  # type: ignore[arg-type]
    bg = full(background, SHAPE) | full(above, SHAPE) | full(below, SHAPE)
    return {
        1: brush.dab(vol, (CENTRE_A[0], CENTRE_A[1] + shift, CENTRE_A[2]), 3.0),  # type: ignore[arg-type]
        2: brush.dab(vol, (CENTRE_B[0], CENTRE_B[1] - shift, CENTRE_B[2]), 3.0),  # type: ignore[arg-type]
        3: Region.whole(bg),
    }


def test_touching_blobs_of_different_intensity_separate(case: tuple) -> None:
    vol, a, b = case
    result = grow_from_seeds(vol, _seeds(vol))
    assert set(result) == {1, 2, 3}
    assert all(mode == EditMode.REPLACE for _, mode in result.values())
    grown_a, grown_b = full(result[1][0], SHAPE), full(result[2][0], SHAPE)
    assert dice(grown_a, a) > 0.95
    assert dice(grown_b, b) > 0.95
    # the regions partition the computation box
    stack = np.stack([r.mask for r, _ in result.values()])
    assert np.all(stack.sum(axis=0) == 1)


def test_update_with_moved_seeds_equals_a_fresh_run_and_reuses_the_cache(case: tuple) -> None:
    vol, _, _ = case
    grower = GrowFromSeeds(vol, margin_mm=4.0)
    calls = []
    prepare = grower._prepare

    def counting(box: object) -> None:
        calls.append(box)
        prepare(box)  # type: ignore[arg-type]

    grower._prepare = counting  # type: ignore[method-assign]
    grower.update(_seeds(vol))
    moved = _seeds(vol, shift=3)
    updated = grower.update(moved)
    assert len(calls) == 1  # the edge-strength image was reused
    fresh = GrowFromSeeds(vol, margin_mm=4.0).update(moved)
    for segment_id in fresh:
        assert updated[segment_id][0].offset == fresh[segment_id][0].offset
        np.testing.assert_array_equal(updated[segment_id][0].mask, fresh[segment_id][0].mask)
    # and an update whose seeds leave the box recomputes, still equal to a fresh run
    far = dict(moved)
    far[3] = Region.whole(full(moved[3], SHAPE) | full(brush.dab(vol, (20, 78, 108), 2.0), SHAPE))
    updated = grower.update(far)
    assert len(calls) == 2
    fresh = GrowFromSeeds(vol, margin_mm=4.0).update(far)
    for segment_id in fresh:
        np.testing.assert_array_equal(updated[segment_id][0].mask, fresh[segment_id][0].mask)


def test_two_pass_flood_agrees_with_the_single_pass(case: tuple) -> None:
    vol, a, b = case
    seeds = _seeds(vol)
    single = GrowFromSeeds(vol, multiresolution_above=10**9).update(seeds)
    double = GrowFromSeeds(vol, multiresolution_above=0).update(seeds)
    assert dice(full(double[1][0], SHAPE), a) > 0.95
    assert dice(full(double[2][0], SHAPE), b) > 0.95
    agree = np.mean([np.mean(single[s][0].mask == double[s][0].mask) for s in single])
    assert agree > 0.99


def test_the_computation_stays_in_the_seeds_box_plus_margin(case: tuple) -> None:
    vol, _, _ = case
    seeds = {1: brush.dab(vol, (20, 40, 38), 2.0), 2: brush.dab(vol, (20, 40, 48), 2.0)}
    grower = GrowFromSeeds(vol, margin_mm=4.0, snap=1)
    result = grower.update(seeds)
    box = grower.box
    assert box is not None
    assert (box[0].start, box[0].stop) == (20 - 1 - 3, 20 + 1 + 3 + 1)  # +-1 slice dab, 4 mm = 3 slices
    assert (box[2].start, box[2].stop) == (38 - 2 - 5, 48 + 2 + 5 + 1)  # +-2 columns, 4 mm = 5 columns
    assert result[1][0].mask.shape == tuple(s.stop - s.start for s in box)


def test_seeds_from_a_segmentation(case: tuple) -> None:
    vol, _, _ = case
    seeds = _seeds(vol)
    seg, ids = segmentation(vol, *(full(seeds[n], SHAPE) for n in (1, 2, 3)))
    read = seeds_from_segmentation(seg)
    assert sorted(read) == ids
    for n, segment_id in zip((1, 2, 3), ids, strict=True):
        np.testing.assert_array_equal(full(read[segment_id], SHAPE), full(seeds[n], SHAPE))


def test_needs_two_seeded_segments(case: tuple) -> None:
    vol, _, _ = case
    with pytest.raises(NoSeedsError):
        grow_from_seeds(vol, {1: brush.dab(vol, (20, 40, 38), 2.0)})
    with pytest.raises(NoSeedsError):
        grow_from_seeds(vol, {1: brush.dab(vol, (20, 40, 38), 2.0), 2: Region((0, 0, 0), np.zeros((2, 2, 2), bool))})
    with pytest.raises(OutsideGridError):
        grow_from_seeds(vol, {1: Region((-1, 0, 0), np.ones((2, 2, 2), bool)), 2: brush.dab(vol, (5, 5, 5), 1.0)})
