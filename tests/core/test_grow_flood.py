"""The grow-from-seeds flood equals ITK's MorphologicalWatershedFromMarkers voxel for voxel, ties included.

SimpleITK is the reference here only; radlabel floods with numpy (grow.flood_from_markers).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radlabel.core.edit import brush
from radlabel.core.edit.grow import GrowFromSeeds, flood_from_markers
from tests.core.edit_support import ball, volume


def itk_flood(feature: np.ndarray, markers: np.ndarray) -> np.ndarray:
    result = sitk.MorphologicalWatershedFromMarkers(
        sitk.GetImageFromArray(feature), sitk.GetImageFromArray(markers), markWatershedLine=False, fullyConnected=False
    )
    return sitk.GetArrayFromImage(result)


@pytest.mark.parametrize("seed", range(40))
def test_random_volumes_with_many_ties(seed: int) -> None:
    """Few grey levels and several markers make ties everywhere: queue order decides, and it must be ITK's."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 14, 3))
    feature = rng.integers(0, int(rng.integers(1, 6)), shape).astype(np.uint8)
    markers = np.zeros(shape, np.uint8)
    for label in range(1, int(rng.integers(2, 8))):
        markers[tuple(int(rng.integers(0, s)) for s in shape)] = label
    np.testing.assert_array_equal(flood_from_markers(feature, markers), itk_flood(feature, markers))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_large_marker_regions_and_full_level_range(dtype: type) -> None:
    rng = np.random.default_rng(5)
    feature = rng.integers(0, 256, (20, 30, 25)).astype(np.uint8)
    markers = np.zeros(feature.shape, dtype)
    markers[:3] = 1
    markers[-2:, :, :5] = 2
    markers[8:12, 10:20, 10:15] = 300 if dtype == np.uint16 else 254
    markers[5, 5, 5] = 255  # the top uint8 value (the flood's border label) is a label like any other
    np.testing.assert_array_equal(flood_from_markers(feature, markers), itk_flood(feature, markers))


def test_markers_without_free_voxels_are_returned_unchanged() -> None:
    markers = np.ones((3, 4, 5), np.uint8)
    feature = np.zeros((3, 4, 5), np.uint8)
    np.testing.assert_array_equal(flood_from_markers(feature, markers), markers)
    assert flood_from_markers(feature, np.zeros_like(markers)).max() == 0


def test_the_grow_tools_feature_image_floods_as_in_itk() -> None:
    """The real thing: the edge image GrowFromSeeds computes for two touching blobs, and its seed markers."""
    spacing, shape = (0.8, 0.8, 1.5), (40, 80, 110)
    rng = np.random.default_rng(7)
    a = ball(shape, spacing, (20, 40, 38), 12.0)
    b = ball(shape, spacing, (20, 40, 65), 12.0)
    array = np.where(a & ~b, 100.0, 0.0) + np.where(b, 200.0, 0.0) + rng.normal(0, 10, shape)
    vol = volume(array.astype(np.int16), spacing)
    seeds = {
        1: brush.dab(vol, (20, 40, 38), 3.0),
        2: brush.dab(vol, (20, 40, 65), 3.0),
        3: brush.stroke(vol, [(20, 15, 15), (20, 15, 90), (20, 65, 90), (20, 65, 15), (20, 15, 15)], 2.0),
    }
    grower = GrowFromSeeds(vol, multiresolution_above=10**9)
    grower.update(seeds)
    assert grower.box is not None and grower._feature is not None
    used = [(sid, region, region.box) for sid, region in seeds.items()]
    markers = grower._markers(grower.box, used)
    np.testing.assert_array_equal(flood_from_markers(grower._feature, markers), itk_flood(grower._feature, markers))
