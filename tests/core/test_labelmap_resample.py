"""Nearest-neighbour placement of a label map on another grid, against SimpleITK's ResampleImageFilter.

radlabel resamples label maps itself (labelmap_io._resample); SimpleITK is the reference here only. The label
maps hold a different value in every voxel, so choosing any other source voxel than ITK would show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from radlabel.core import geometry
from radlabel.core.io.loader import load
from radlabel.core.io.writers import save_volume
from radlabel.core.segmentation.labelmap_io import _resample, read_labelmap
from radlabel.core.segmentation.model import Grid
from radlabel.core.volume import Volume

OBLIQUE_MR = "dcm_qa/mr_ge_3d_t1_mprage_oblique/In"  # double-oblique MPRAGE, 130 x 256 x 256
TILTED_CT = "dcm_qa/ct_ge_gantry_tilt/In"  # 18.5 deg gantry tilt, resampled onto an orthogonal grid


def sitk_nearest(array: np.ndarray, affine: np.ndarray, grid: Grid) -> np.ndarray:
    origin, spacing, direction = geometry.decompose_affine(affine)
    image = sitk.GetImageFromArray(array)
    image.SetOrigin([float(v) for v in origin])
    image.SetSpacing([float(v) for v in spacing])
    image.SetDirection([float(v) for v in direction.reshape(-1)])
    k, j, i = grid.shape
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize((i, j, k))
    resampler.SetOutputOrigin([float(v) for v in grid.origin])
    resampler.SetOutputSpacing([float(v) for v in grid.spacing])
    resampler.SetOutputDirection([float(v) for row in grid.direction for v in row])
    resampler.SetInterpolator(sitk.sitkNearestNeighbor)
    resampler.SetDefaultPixelValue(0)
    return sitk.GetArrayFromImage(resampler.Execute(image))


def distinct_label_map(volume: Volume, spacing: tuple[float, float, float], angles: tuple[float, float, float]):
    """A label map on its own rotated grid covering the middle 80 % of ``volume``; every voxel a different
    value (1..65535 cycling), so any disagreement on which source voxel is nearest shows."""
    direction = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    k, j, i = volume.array.shape
    corners = np.array([[a, b, c] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)], float)
    world = volume.index_to_world(corners)
    local = world @ direction  # coordinates along the label map's axes
    low, high = local.min(axis=0), local.max(axis=0)
    low, high = low + 0.1 * (high - low), high - 0.1 * (high - low)
    size = np.maximum(np.ceil((high - low) / np.array(spacing)).astype(int), 1)
    values = (np.arange(int(np.prod(size)), dtype=np.int64) % 65535 + 1).astype(np.uint16)
    array = values.reshape(size[::-1])
    affine = geometry.affine_from(direction @ low, spacing, direction)
    return array, affine


@pytest.mark.parametrize("series", [OBLIQUE_MR, TILTED_CT])
@pytest.mark.parametrize(
    ("spacing", "angles"),
    [((1.3, 0.9, 2.2), (7.0, -4.0, 11.0)), ((0.7, 0.8, 0.9), (0.0, 0.0, 0.0))],
)
def test_resampling_equals_simpleitk_on_oblique_and_tilted_images(
    shared_data: Path, series: str, spacing: tuple[float, float, float], angles: tuple[float, float, float]
) -> None:
    volume = load(shared_data / series).volume
    grid = Grid.of(volume)
    array, affine = distinct_label_map(volume, spacing, angles)
    ours = _resample(array, affine, grid)
    theirs = sitk_nearest(array, affine, grid)
    assert ours.dtype == theirs.dtype
    covered = int(np.count_nonzero(theirs))
    assert covered > 0.2 * theirs.size  # the comparison covers a large part of the image, edges included
    assert int(np.count_nonzero(ours != theirs)) == 0


def test_read_labelmap_resamples_like_simpleitk(shared_data: Path, tmp_path: Path) -> None:
    """Through the public reader: a label map file on a different grid lands where SimpleITK puts it."""
    volume = load(shared_data / OBLIQUE_MR).volume
    grid = Grid.of(volume)
    array, affine = distinct_label_map(volume, (1.1, 1.7, 1.9), (-3.0, 9.0, 2.0))
    array = (array % 200 + 1).astype(np.uint8)  # whole labels, few enough to be segments
    origin, spacing, direction = geometry.decompose_affine(affine)
    path = save_volume(Volume(array, origin, spacing, direction), tmp_path / "labels.nrrd")
    result = read_labelmap(path, volume)
    assert result.match == "resampled"
    np.testing.assert_array_equal(result.segmentation.layers[0], sitk_nearest(array, affine, grid))


def test_ties_follow_itks_rounding_rule_exactly() -> None:
    """Where an image voxel centre lies exactly on a boundary between label voxels (continuous index x.5), ITK's
    rule is "round half up", with -0.5 inside the label map and n - 0.5 outside. ITK's own floating-point noise
    decides such ties either way; radlabel applies the rule as written."""
    grid = Grid(shape=(3, 4, 9), origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.0), direction=np.eye(3))
    # label voxels of 2 mm whose centres sit at x = 0.5, 2.5, ...: image centres 0, 1, 2 ... are at x.5 or x.0
    labels = np.arange(1, 4 * 3 * 2 + 1, dtype=np.uint8).reshape(2, 3, 4)
    affine = geometry.affine_from((0.5, 0.0, 0.0), (2.0, 1.0, 1.0), np.eye(3))
    row = _resample(labels, affine, grid)[0, 0]
    # continuous i = (x - 0.5) / 2 for x = 0..8: -0.25 0.25 0.75 1.25 ... 3.25, and 3.75 is past n - 0.5
    np.testing.assert_array_equal(row, [1, 1, 2, 2, 3, 3, 4, 4, 0])
    affine = geometry.affine_from((0.0, 0.0, 0.0), (2.0, 1.0, 1.0), np.eye(3))
    row = _resample(labels, affine, grid)[0, 0]
    # continuous i = x / 2: 0, 0.5 (tie -> 1), 1, 1.5 (-> 2), 2, 2.5 (-> 3), 3, 3.5 (= n - 0.5: outside), 4
    np.testing.assert_array_equal(row, [1, 2, 2, 3, 3, 4, 4, 0, 0])
    affine = geometry.affine_from((1.0, 0.0, 0.0), (2.0, 1.0, 1.0), np.eye(3))
    row = _resample(labels, affine, grid)[0, 0]
    # continuous i = (x - 1) / 2: x = 0 -> -0.5 (inside, voxel 0), 0.5 -> 1, ..., 3.5 (outside)
    np.testing.assert_array_equal(row, [1, 1, 2, 2, 3, 3, 4, 4, 0])
    # the same with noise far below a voxel's millionth: the rule, not the noise, decides
    noisy = geometry.affine_from((1.0 - 1e-12, 1e-13, 0.0), (2.0 + 1e-13, 1.0, 1.0), np.eye(3))
    np.testing.assert_array_equal(_resample(labels, noisy, grid)[0, 0], [1, 1, 2, 2, 3, 3, 4, 4, 0])


def test_label_map_outside_the_image_gives_zeros() -> None:
    grid = Grid(shape=(4, 5, 6), origin=(0.0, 0.0, 0.0), spacing=(1.0, 1.0, 1.0), direction=np.eye(3))
    labels = np.ones((2, 2, 2), np.uint8)
    far = geometry.affine_from((100.0, 0.0, 0.0), (1.0, 1.0, 1.0), np.eye(3))
    assert not _resample(labels, far, grid).any()
