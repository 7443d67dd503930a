"""Flood fill: stops at intensity edges, respects connectivity, grows beyond its first box, 2D on a slice."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.core.edit.errors import InvalidConnectivityError, InvalidRangeError, OutsideGridError
from radlabel.core.edit.flood import INITIAL_HALF_SIZE, flood_fill
from tests.core.edit_support import ball, full, volume


def test_fill_stops_at_the_intensity_edge() -> None:
    rng = np.random.default_rng(1)
    shape = (40, 50, 50)
    obj = ball(shape, (1.0, 1.0, 2.0), (20, 25, 25), 15.0)
    array = np.where(obj, 100, 0).astype(np.int16) + rng.integers(-5, 6, size=shape).astype(np.int16)
    vol = volume(array, (1.0, 1.0, 2.0))
    region = flood_fill(vol, (20, 25, 25), 20)
    np.testing.assert_array_equal(full(region, shape), obj)
    # the region comes in the object's own box, not the volume's
    assert region.mask.shape == tuple(np.ptp(np.nonzero(obj)[a]) + 1 for a in range(3))


def test_tolerance_can_be_asymmetric() -> None:
    array = np.zeros((1, 1, 9), dtype=np.int16)
    array[0, 0, :] = [0, 40, 45, 48, 50, 53, 55, 60, 0]
    vol = volume(array)
    assert full(flood_fill(vol, (0, 0, 4), (5, 5)), array.shape).sum() == 5  # 45..55
    assert full(flood_fill(vol, (0, 0, 4), (2, 10)), array.shape)[0, 0].tolist() == [
        False,
        False,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(("connectivity", "expected"), [(6, 1), (18, 2), (26, 3)])
def test_connectivity(connectivity: int, expected: int) -> None:
    """Cube A; cube B touches it along an edge; cube C touches B only at a corner."""
    array = np.zeros((12, 12, 12), dtype=np.int16)
    array[0:3, 0:3, 0:3] = 1  # A
    array[3:6, 3:6, 0:3] = 1  # B: shares an edge with A (k=2/3, j=2/3), no face
    array[6:9, 6:9, 3:6] = 1  # C: shares only a corner with B
    vol = volume(array)
    filled = full(flood_fill(vol, (1, 1, 1), 0, connectivity=connectivity), array.shape)
    assert filled.sum() == 27 * expected


def test_fill_grows_beyond_its_first_box() -> None:
    length = 6 * INITIAL_HALF_SIZE
    array = np.zeros((9, 9, length), dtype=np.int16)
    array[4, 4, :] = 5
    array[:, :, length // 2] = 5  # a wall across the bar, far from the seed
    vol = volume(array)
    region = flood_fill(vol, (4, 4, 3), 1)
    filled = full(region, array.shape)
    np.testing.assert_array_equal(filled, array == 5)


def test_fill_on_one_slice_only() -> None:
    array = np.zeros((10, 20, 20), dtype=np.int16)
    array[:, 5:15, 5:15] = 50  # a bar through every slice
    vol = volume(array)
    for axis, seed in ((0, (4, 10, 10)), (1, (4, 10, 10)), (2, (4, 10, 10))):
        region = flood_fill(vol, seed, 10, axis=axis)
        assert region.mask.shape[axis] == 1 and region.offset[axis] == seed[axis]
        index = [slice(None)] * 3
        index[axis] = seed[axis]
        np.testing.assert_array_equal(full(region, array.shape)[tuple(index)], (array == 50)[tuple(index)])
        assert full(region, array.shape).sum() == (array == 50)[tuple(index)].sum()


def test_neighbourhood_ignores_noise_and_thin_bridges() -> None:
    rng = np.random.default_rng(2)
    array = np.zeros((20, 30, 60), dtype=np.int16)
    array[4:16, 5:25, 5:25] = 100  # object A
    array[4:16, 5:25, 35:55] = 100  # object B
    array[10, 15, 25:35] = 100  # a one-voxel bridge between them
    speckle = (rng.random(array.shape) < 0.05) & (array == 100)
    speckle[10, 15, 25:35] = False
    array[speckle] = 0  # dropouts inside the objects
    vol = volume(array)
    plain = full(flood_fill(vol, (10, 15, 15), 10), array.shape)
    assert plain[10, 15, 45]  # leaks through the bridge
    robust = full(flood_fill(vol, (10, 15, 15), 10, neighbourhood_mm=1.0), array.shape)
    assert not robust[:, :, 30:].any()  # not through the bridge
    obj_a = np.zeros(array.shape, dtype=bool)
    obj_a[4:16, 5:25, 5:25] = True
    inner = np.zeros(array.shape, dtype=bool)
    inner[5:15, 6:24, 6:24] = True
    assert robust[inner].all()  # dropouts filled
    assert not robust[~obj_a].any()


def test_bad_parameters() -> None:
    vol = volume(np.zeros((5, 5, 5), dtype=np.int16))
    with pytest.raises(OutsideGridError):
        flood_fill(vol, (5, 0, 0), 1)
    with pytest.raises(InvalidRangeError):
        flood_fill(vol, (1, 1, 1), -1)
    with pytest.raises(InvalidRangeError):
        flood_fill(vol, (1, 1, 1), (1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(InvalidConnectivityError):
        flood_fill(vol, (1, 1, 1), 1, connectivity=8)
