"""Threshold: inclusive ranges, boxes, CT presets on a synthetic CT, Otsu."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.core.edit import threshold as th
from radlabel.core.edit.errors import InvalidRangeError, OutsideGridError, UnknownPresetError
from radlabel.core.edit.request import EditMode
from tests.core.edit_support import volume

TISSUES = {"air": -1000, "lung": -850, "fat": -100, "soft_tissue": 40, "bone": 700}


def _ct() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Five slabs of tissue along i with +-15 HU noise."""
    rng = np.random.default_rng(3)
    array = np.zeros((6, 10, 50), dtype=np.int16)
    masks = {}
    for n, (name, hu) in enumerate(TISSUES.items()):
        array[:, :, n * 10 : (n + 1) * 10] = hu
        mask = np.zeros(array.shape, dtype=bool)
        mask[:, :, n * 10 : (n + 1) * 10] = True
        masks[name] = mask
    array += rng.integers(-15, 16, size=array.shape).astype(np.int16)
    return array, masks


def test_threshold_is_inclusive_and_covers_the_box() -> None:
    array = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    vol = volume(array)
    region = th.threshold(vol, 10, 20)
    assert region.offset == (0, 0, 0) and region.mask.shape == array.shape
    np.testing.assert_array_equal(region.mask, (array >= 10) & (array <= 20))
    assert region.mask.sum() == 11
    box = (slice(1, 3), slice(2, 6), slice(0, 4))
    boxed = th.threshold(vol, 0, 1000, box)
    assert boxed.offset == (1, 2, 0) and boxed.mask.shape == (2, 4, 4) and boxed.mask.all()
    assert th.MODE == EditMode.REPLACE


def test_fractional_bounds_on_integer_images() -> None:
    array = np.array([[[9, 10, 11, 12]]], dtype=np.int16)
    region = th.threshold(volume(array), 9.5, 11.5)
    assert region.mask.ravel().tolist() == [False, True, True, False]


@pytest.mark.parametrize("preset", ["bone", "soft_tissue", "fat", "lung"])
def test_ct_presets_pick_their_tissue(preset: str) -> None:
    array, masks = _ct()
    region = th.threshold_preset(volume(array), preset)
    expected = masks[preset] | (masks["air"] if preset == "lung" else False)
    np.testing.assert_array_equal(region.mask, expected)


def test_preset_ranges_are_the_documented_ones() -> None:
    assert th.CT_PRESETS == {
        "bone": (226.0, 3071.0),
        "soft_tissue": (-29.0, 150.0),
        "lung": (-1024.0, -400.0),
        "fat": (-190.0, -30.0),
    }
    array, _ = _ct()
    assert th.threshold_preset(volume(array), "Soft tissue").mask.sum() == 600  # names are forgiving


def test_otsu_separates_two_classes_in_a_box() -> None:
    rng = np.random.default_rng(0)
    array = (rng.normal(20, 8, size=(20, 30, 30))).astype(np.int16)
    obj = np.zeros(array.shape, dtype=bool)
    obj[5:15, 8:20, 10:25] = True
    array[obj] += 180
    vol = volume(array)
    box = (slice(2, 18), slice(4, 26), slice(5, 28))
    level = th.otsu_level(vol, box)
    assert array[box][~obj[box]].max() <= level < array[box][obj[box]].min()
    region = th.otsu(vol, box)
    assert region.offset == (2, 4, 5)
    np.testing.assert_array_equal(region.mask, obj[box])
    dark = th.otsu(vol, box, bright=False)
    np.testing.assert_array_equal(dark.mask, ~obj[box])
    flat = volume(np.full((3, 3, 3), 7, dtype=np.int16))
    assert th.otsu_level(flat) == 7.0


def test_bad_parameters() -> None:
    vol = volume(np.zeros((4, 4, 4), dtype=np.int16))
    with pytest.raises(InvalidRangeError):
        th.threshold(vol, 10, 0)
    with pytest.raises(UnknownPresetError):
        th.threshold_preset(vol, "brain")
    with pytest.raises(OutsideGridError):
        th.threshold(vol, 0, 1, (slice(5, 8), slice(0, 4), slice(0, 4)))
