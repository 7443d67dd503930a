"""Per-segment measurements against shapes with known answers, and against independent tools on real data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from radlabel.core.errors import InputError
from radlabel.core.io.loader import load
from radlabel.core.segmentation.labelmap_io import read_labelmap
from radlabel.core.segmentation.model import Segmentation
from radlabel.core.stats import (
    axial_axis,
    compute_stats,
    diameters_2d,
    format_table,
    measure_files,
    surface_area,
)
from radlabel.core.volume import Volume


def grid(
    size_ijk: tuple[int, int, int],
    spacing: tuple[float, float, float],
    direction: NDArray[np.float64] | None = None,
    origin: tuple[float, float, float] = (-40.0, -35.0, -30.0),
    modality: str = "CT",
) -> Volume:
    i, j, k = size_ijk
    values = np.zeros((k, j, i), np.int16)
    return Volume(values, origin, spacing, np.eye(3) if direction is None else direction, {"modality": modality})


def world_centres(volume: Volume) -> NDArray[np.float64]:
    """World position of every voxel centre, shaped [k, j, i, 3]."""
    i, j, k = volume.size
    ijk = np.stack(np.meshgrid(np.arange(i), np.arange(j), np.arange(k), indexing="ij"), axis=-1).reshape(-1, 3)
    return volume.index_to_world(ijk).reshape(i, j, k, 3).transpose(2, 1, 0, 3)


def with_mask(volume: Volume, mask: NDArray[np.bool_], name: str = "lesion") -> Segmentation:
    segmentation = Segmentation.empty(volume)
    segment = segmentation.add_segment(name)
    segmentation.layers[0][mask] = segment.label_value
    return segmentation


# --------------------------------------------------------------------------------------------------------
# Known shapes
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [8.0, 15.0])
def test_sphere_on_anisotropic_voxels(radius: float) -> None:
    volume = grid((90, 80, 30), (0.7, 0.9, 2.5))
    centre = np.array([1.3, 0.4, -0.6])  # not on a voxel centre
    mask = np.linalg.norm(world_centres(volume) - centre, axis=-1) <= radius
    (stats,) = compute_stats(with_mask(volume, mask), volume).segments
    true_volume = 4.0 / 3.0 * math.pi * radius**3
    assert abs(stats.volume_ml * 1000.0 - true_volume) / true_volume < 0.02
    assert stats.voxel_count == mask.sum()
    one_voxel = max(volume.spacing[:2])
    assert stats.longest_axial_diameter_mm is not None and stats.perpendicular_diameter_mm is not None
    assert abs(stats.longest_axial_diameter_mm - 2 * radius) <= one_voxel
    # voxel centres come within spacing / sqrt(2) of any point, so a width may lose up to sqrt(2) voxels
    assert abs(stats.perpendicular_diameter_mm - 2 * radius) <= math.sqrt(2) * one_voxel
    assert stats.perpendicular_diameter_mm <= stats.longest_axial_diameter_mm
    # measured on the slice through the centre (z = -30 + 2.5 k closest to -0.6 -> k = 12)
    assert stats.axial_slice == 12
    assert stats.surface_area_mm2 is not None
    assert abs(stats.surface_area_mm2 / (4 * math.pi * radius**2) - 1.0) < 0.06
    assert stats.centroid_mm is not None and np.allclose(stats.centroid_mm, centre, atol=0.3)


def test_ellipse_gives_its_axes_and_their_directions() -> None:
    volume = grid((120, 100, 5), (0.5, 0.5, 3.0))
    angle = math.radians(30.0)
    rotation = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    xy = world_centres(volume)[..., :2] - [2.0, -1.0]
    u, v = np.moveaxis(xy @ rotation.T, -1, 0)  # coordinates along the rotated axes
    mask = (u / 20.0) ** 2 + (v / 8.0) ** 2 <= 1.0
    mask[[0, 1, 3, 4]] = False  # one slice only
    (stats,) = compute_stats(with_mask(volume, mask), volume).segments
    assert stats.longest_axial_diameter_mm is not None and stats.perpendicular_diameter_mm is not None
    assert abs(stats.longest_axial_diameter_mm - 40.0) <= 0.5
    assert abs(stats.perpendicular_diameter_mm - 16.0) <= 0.5
    assert stats.long_axis_mm is not None and stats.short_axis_mm is not None
    long_axis = np.subtract(stats.long_axis_mm[1], stats.long_axis_mm[0])
    short_axis = np.subtract(stats.short_axis_mm[1], stats.short_axis_mm[0])
    expected = np.array([math.cos(angle), math.sin(angle), 0.0])
    assert abs(abs(long_axis @ expected) / np.linalg.norm(long_axis) - 1.0) < 0.01
    assert abs(short_axis @ long_axis) / (np.linalg.norm(short_axis) * np.linalg.norm(long_axis)) < 0.05
    assert stats.axial_slice == 2


def test_box_gives_exact_counts_bounding_box_and_square_diagonals() -> None:
    volume = grid((30, 25, 12), (0.8, 0.8, 2.0))
    mask = np.zeros(volume.array.shape, bool)
    mask[3:8, 4:15, 10:21] = True  # k 3..7, j 4..14, i 10..20
    (stats,) = compute_stats(with_mask(volume, mask), volume).segments
    assert stats.voxel_count == 5 * 11 * 11
    assert stats.volume_ml == pytest.approx(5 * 11 * 11 * 0.8 * 0.8 * 2.0 / 1000.0)
    assert stats.bbox_min_ijk == (10, 4, 3) and stats.bbox_max_ijk == (20, 14, 7)
    assert stats.bbox_min_mm == pytest.approx((-40.0 + 0.8 * 9.5, -35.0 + 0.8 * 3.5, -30.0 + 2.0 * 2.5))
    assert stats.bbox_max_mm == pytest.approx((-40.0 + 0.8 * 20.5, -35.0 + 0.8 * 14.5, -30.0 + 2.0 * 7.5))
    # a square of 11 x 11 voxel centres 0.8 mm apart: both diagonals 8 * sqrt(2) mm
    assert stats.longest_axial_diameter_mm == pytest.approx(8.0 * math.sqrt(2))
    assert stats.perpendicular_diameter_mm == pytest.approx(8.0 * math.sqrt(2))
    true_surface = 2 * (8.8 * 8.8 + 2 * 8.8 * 10.0)
    assert stats.surface_area_mm2 == pytest.approx(true_surface, rel=0.03)


def test_mean_sd_min_max_on_a_known_image() -> None:
    volume = grid((20, 20, 6), (1.0, 1.0, 1.0))
    k, j, i = np.indices(volume.array.shape)
    volume.array[:] = (i + 10 * j - 100 * k).astype(np.int16)
    mask = np.zeros(volume.array.shape, bool)
    mask[2:4, 5:7, 3:6] = True
    values = np.array([ii + 10 * jj - 100 * kk for kk in (2, 3) for jj in (5, 6) for ii in (3, 4, 5)], float)
    report = compute_stats(with_mask(volume, mask), volume)
    (stats,) = report.segments
    assert report.units == "HU"
    assert stats.mean == pytest.approx(values.mean()) and stats.sd == pytest.approx(values.std())
    assert (stats.min, stats.max) == (values.min(), values.max())
    mr = grid((20, 20, 6), (1.0, 1.0, 1.0), modality="MR")
    assert compute_stats(with_mask(mr, mask), mr).units == ""
    (no_image,) = compute_stats(with_mask(volume, mask)).segments
    assert no_image.mean is None and no_image.voxel_count == 12


def test_axial_axis_is_the_one_closest_to_world_z() -> None:
    assert axial_axis(np.eye(3)) == 2
    coronal = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, -1.0, 0]])  # j runs towards feet
    sagittal = np.array([[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0]])
    assert axial_axis(coronal) == 1 and axial_axis(sagittal) == 1
    tilted = Rotation.from_euler("x", 40, degrees=True).as_matrix()
    assert axial_axis(tilted) == 2


def test_coronal_grid_measures_on_axial_planes() -> None:
    """A cylinder along world z, on a coronal grid: its axial cross-section is a disc of 2r."""
    coronal = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, -1.0, 0]])
    volume = grid((80, 60, 70), (0.6, 1.5, 0.6), coronal, origin=(-24.0, 20.0, 40.0))
    centres = world_centres(volume)
    mask = (np.hypot(centres[..., 0] - 0.3, centres[..., 1] - 0.1) <= 10.0) & (np.abs(centres[..., 2]) < 20)
    report = compute_stats(with_mask(volume, mask), volume)
    (stats,) = report.segments
    assert report.axial_axis == "j"
    assert stats.longest_axial_diameter_mm == pytest.approx(20.0, abs=0.6)
    assert stats.perpendicular_diameter_mm == pytest.approx(20.0, abs=0.6 * math.sqrt(2))
    assert stats.long_axis_mm is not None
    assert stats.long_axis_mm[0][2] == pytest.approx(stats.long_axis_mm[1][2])  # both ends on one axial plane


def test_oblique_grid_sphere() -> None:
    direction = Rotation.from_euler("xy", [12, -9], degrees=True).as_matrix()
    volume = grid((60, 60, 24), (0.8, 0.8, 2.0), direction, origin=(-24.0, -26.0, -20.0))
    centre = volume.index_to_world([[30, 30, 12]])[0] + [0.2, -0.3, 0.1]
    mask = np.linalg.norm(world_centres(volume) - centre, axis=-1) <= 12.0
    (stats,) = compute_stats(with_mask(volume, mask), volume).segments
    assert abs(stats.volume_ml * 1000 / (4 / 3 * math.pi * 12.0**3) - 1) < 0.02
    assert stats.longest_axial_diameter_mm == pytest.approx(24.0, abs=0.8)


def test_empty_segment_and_a_segment_in_a_second_layer() -> None:
    volume = grid((10, 10, 4), (1.0, 1.0, 1.0))
    segmentation = Segmentation.empty(volume)
    segmentation.add_segment("never drawn")
    second = segmentation.add_segment("overlapping")
    segmentation.layers.append(np.zeros(volume.array.shape, np.uint8))
    segmentation.update_segment(second.id, layer=1, label_value=7)
    segmentation.layers[1][1, 2:5, 2:5] = 7
    segmentation.layers[0][1, 2:5, 2:5] = 2  # a stray label no segment claims in layer 0
    empty, drawn = compute_stats(segmentation, volume).segments
    assert empty.voxel_count == 0 and empty.volume_ml == 0.0 and empty.longest_axial_diameter_mm is None
    assert empty.surface_area_mm2 is None and empty.bbox_min_ijk is None
    assert (
        drawn.voxel_count == 9 and drawn.layer == 1 and drawn.longest_axial_diameter_mm == pytest.approx(math.sqrt(8))
    )


def test_diameters_of_degenerate_hulls() -> None:
    assert diameters_2d(np.array([[1.0, 1.0]]))[:2] == (0.0, 0.0)
    long, short, ends, _ = diameters_2d(np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]]))
    assert long == pytest.approx(3 * math.sqrt(2)) and short == 0.0
    assert sorted(map(tuple, ends.tolist())) == [(0.0, 0.0), (3.0, 3.0)]
    long, short, _, _ = diameters_2d(np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 1.0], [2.0, -1.0]]))
    assert (long, short) == (pytest.approx(4.0), pytest.approx(2.0))


def test_surface_of_a_thin_one_slice_disc_is_not_lost() -> None:
    volume = grid((64, 64, 3), (0.7, 0.7, 5.0))
    centres = world_centres(volume)
    mask = (np.hypot(centres[..., 0] + 17.6, centres[..., 1] + 12.6) <= 20.0) & (np.arange(3) == 1)[:, None, None]
    area = surface_area(mask, volume.spacing)
    disc = 2 * math.pi * 20.0**2 + 2 * math.pi * 20.0 * 5.0
    assert abs(area / disc - 1.0) < 0.15


def test_image_on_another_grid_and_unknown_segments_are_refused() -> None:
    volume = grid((10, 10, 4), (1.0, 1.0, 1.0))
    segmentation = with_mask(volume, np.ones(volume.array.shape, bool))
    with pytest.raises(InputError, match="not on the segmentation's grid"):
        compute_stats(segmentation, grid((10, 10, 5), (1.0, 1.0, 1.0)))
    with pytest.raises(InputError, match="no segment with id 9"):
        compute_stats(segmentation, volume, segment_ids=[9])


def test_json_and_table() -> None:
    volume = grid((10, 10, 4), (1.0, 1.0, 1.0))
    mask = np.zeros(volume.array.shape, bool)
    mask[1:3, 2:6, 2:6] = True
    report = compute_stats(with_mask(volume, mask, "Tumour"), volume)
    data = json.loads(json.dumps(report.to_json()))
    (row,) = data["segments"]
    assert row["voxel_count"] == 32 and row["bbox_min_ijk"] == [2, 2, 1] and data["units"] == "HU"
    assert "convex hull" in data["diameter_method"] and "marching tetrahedra" in data["surface_method"]
    table = format_table(report)
    assert "Tumour" in table and "32" in table and "mean ± SD (HU)" in table


# --------------------------------------------------------------------------------------------------------
# Real data, with independent references
# --------------------------------------------------------------------------------------------------------


def test_brain_tumour_stats_agree_with_simpleitk(shared_data: Path) -> None:
    folder = shared_data / "pyradiomics" / "brain1_gbm_t1gd_tumour_label"
    report = measure_files(folder / "brain1_image.nrrd", folder / "brain1_label.nrrd")
    (stats,) = report.segments
    image = sitk.ReadImage(str(folder / "brain1_image.nrrd"))
    label = sitk.ReadImage(str(folder / "brain1_label.nrrd"))
    reference = sitk.LabelStatisticsImageFilter()
    reference.Execute(image, sitk.Cast(label, sitk.sitkUInt8))
    assert stats.voxel_count == reference.GetCount(1) == 4137
    assert stats.volume_ml == pytest.approx(4137 * np.prod(image.GetSpacing()) / 1000.0)
    assert stats.mean == pytest.approx(reference.GetMean(1))
    assert stats.sd == pytest.approx(reference.GetSigma(1) * math.sqrt((4137 - 1) / 4137))  # ITK: sample SD
    assert (stats.min, stats.max) == (reference.GetMinimum(1), reference.GetMaximum(1))
    box = reference.GetBoundingBox(1)  # (i0, i1, j0, j1, k0, k1)
    assert stats.bbox_min_ijk == (box[0], box[2], box[4]) and stats.bbox_max_ijk == (box[1], box[3], box[5])
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.ComputeFeretDiameterOn()
    shape.Execute(sitk.Cast(label, sitk.sitkUInt8))
    assert stats.centroid_mm == pytest.approx(shape.GetCentroid(1), abs=1e-6)
    assert stats.longest_axial_diameter_mm is not None and stats.perpendicular_diameter_mm is not None
    assert 0 < stats.perpendicular_diameter_mm <= stats.longest_axial_diameter_mm <= shape.GetFeretDiameter(1)
    assert report.units == ""  # an MR image in NRRD: no units known


def test_totalsegmentator_liver_on_the_dicom_ct(shared_data: Path) -> None:
    case = shared_data / "totalsegmentator" / "ct_dicom_with_multilabel_seg"
    seg_path = case / "seg_nifti" / "example_seg_dicom.nii.gz"
    ct = load(case / "image_dicom").volume
    segmentation = read_labelmap(seg_path, ct, case / "seg_nifti" / "label_names_total.json").segmentation
    report = compute_stats(segmentation, ct, segment_ids=[5])
    (liver,) = report.segments
    nifti = nib.load(str(seg_path))
    count = int((np.asarray(nifti.dataobj) == 5).sum())
    assert liver.name == "liver" and report.units == "HU" and liver.voxel_count == count
    assert liver.volume_ml == pytest.approx(count * abs(np.linalg.det(nifti.affine[:3, :3])) / 1000.0)
    assert liver.mean is not None and 0 < liver.mean < 200  # soft tissue in HU
