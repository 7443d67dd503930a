"""Import of DICOM SEG / RTSTRUCT files made by other tools onto loaded images, matched in world space, and the
clear errors malformed files give (without touching the image or an open segmentation)."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from radlabel.core.demo import make_demo_ct
from radlabel.core.io.dicom_export import write_dicom_series
from radlabel.core.io.loader import load
from radlabel.core.io.seg import (
    ContourOutsideImageError,
    MalformedSegmentationError,
    MissingSourceImagesError,
    NoOverlapError,
    ReferenceMismatchError,
    export_segmentation,
    import_segmentation,
)
from radlabel.core.io.seg.contours import polygon_area
from radlabel.core.segmentation.labelmap_io import read_labelmap
from radlabel.core.segmentation.model import Grid, Segmentation
from radlabel.core.volume import Volume
from tests.core.seg_reference import assert_same_segments, dciodvfy_errors, dcmqi_masks, dice, highdicom_masks

DCMQI = ("dcmqi", "ct_3slice_with_seg")
BRAINLAB = ("dcmqi", "brainlab_seg_24x38x3_with_labelmap_seg")
HIGHDICOM = ("highdicom", "seg_ct_small_binary_fractional")
LIVER_VARIANTS = ["liver_deflate.dcm", "liver_j2k.dcm", "liver_rle.dcm", "liver_expb.dcm", "liver_nonbyte_aligned.dcm"]


@pytest.fixture(scope="module")
def images(shared_data: Path) -> dict[str, Volume]:
    return {
        "dcmqi": load(shared_data.joinpath(*DCMQI, "image_dicom")).volume,
        "brainlab": load(shared_data.joinpath(*BRAINLAB, "image")).volume,
        "highdicom": load(shared_data.joinpath(*HIGHDICOM, "image_dicom_from_pydicom")).volume,
        "ct_small": load(shared_data.joinpath(*HIGHDICOM, "image_dicom_from_pydicom_CT_small")).volume,
    }


def test_dcmqi_liver_seg_equals_its_nrrd_voxel_for_voxel(shared_data: Path, images: dict[str, Volume]) -> None:
    volume = images["dcmqi"]
    imported = import_segmentation(shared_data.joinpath(*DCMQI, "seg_dicom", "liver.dcm"), volume)
    assert imported.match == "exact" and imported.format == "DICOM SEG BINARY" and not imported.warnings
    (segment,) = imported.segmentation.segments.values()
    assert segment.name == "Liver" and segment.type.meaning == "Liver"  # dcmqi wrote the old SRT code T-62000
    nrrd = read_labelmap(shared_data.joinpath(*DCMQI, "labels_nrrd", "liver_seg.nrrd"), volume)
    assert nrrd.match == "exact"
    reference = nrrd.segmentation.label_map() > 0
    assert reference.sum() == 107098
    np.testing.assert_array_equal(imported.segmentation.mask(segment.id), reference)


@pytest.mark.parametrize("name", LIVER_VARIANTS)
def test_every_encoding_of_the_liver_seg_imports_to_the_same_mask(
    shared_data: Path, images: dict[str, Volume], name: str
) -> None:
    volume = images["dcmqi"]
    expected = import_segmentation(shared_data.joinpath(*DCMQI, "seg_dicom", "liver.dcm"), volume).segmentation
    imported = import_segmentation(shared_data / "pydicom_data" / "seg_liver_encoding_variants" / name, volume)
    assert imported.match == "exact"
    np.testing.assert_array_equal(imported.segmentation.mask(1), expected.mask(1))


def test_partial_overlaps_seg_gives_layers_equal_to_dcmqi_label_maps(
    shared_data: Path, images: dict[str, Volume]
) -> None:
    volume = images["dcmqi"]
    imported = import_segmentation(shared_data.joinpath(*DCMQI, "seg_dicom", "partial_overlaps.dcm"), volume)
    seg = imported.segmentation
    assert len(seg.layers) > 1 and len(seg.segments) == 5
    labels = shared_data.joinpath(*DCMQI, "labels_nrrd")
    reference = read_labelmap(
        [labels / f"partial_overlaps-{n}.nrrd" for n in (1, 2, 3)],
        volume,
        label_names=shared_data.joinpath(*DCMQI, "seg_meta_json", "seg-example_partial_overlaps.json"),
    ).segmentation
    assert_same_segments(seg, {s.name: reference.mask(s.id) for s in reference.segments.values()}, "dcmqi NRRD")


@pytest.mark.parametrize("name", ["sparse-labelmap-noppv.dcm", "sparse-labelmap-ppv5.dcm"])
def test_sparse_labelmap_segs_with_and_without_padding_value(
    shared_data: Path, images: dict[str, Volume], name: str
) -> None:
    volume = images["brainlab"]
    imported = import_segmentation(shared_data.joinpath(*BRAINLAB, "labelmap_seg", name), volume)
    assert imported.format == "DICOM SEG LABELMAP" and imported.match == "exact"
    assert [s.name for s in imported.segmentation.segments.values()] == ["Liver"]  # background 0 is not a segment
    mask = imported.segmentation.mask(1)
    # dcmqi's NRRD of the padded file fills the missing frame with the padding value 5; that is no segment.
    reference = read_labelmap(shared_data.joinpath(*BRAINLAB, "labelmap_seg", "sparse_labelmap_noppv_seg.nrrd"), volume)
    np.testing.assert_array_equal(mask, reference.segmentation.label_map() == 1)
    assert mask.sum(axis=(1, 2)).tolist() == [315, 0, 315]


@pytest.mark.parametrize(
    "name",
    [
        "seg_image_ct_binary.dcm",
        "seg_image_ct_binary_overlap.dcm",
        "seg_image_ct_binary_fractional.dcm",
        "seg_image_ct_true_fractional.dcm",
        "seg_image_ct_binary_single_frame.dcm",
    ],
)
def test_highdicom_segs_import_as_highdicom_reads_them(shared_data: Path, images: dict[str, Volume], name: str) -> None:
    path = shared_data.joinpath(*HIGHDICOM, "seg_dicom", name)
    volume = images["ct_small" if "single" in name else "highdicom"]
    imported = import_segmentation(path, volume)
    assert imported.match == "exact"
    seg = imported.segmentation
    assert_same_segments(seg, highdicom_masks(path, Grid.of(volume)), "highdicom")
    if "overlap" in name:
        assert len(seg.layers) == 2
    if "true_fractional" in name:
        reference = hd.seg.segread(path).get_volume(segment_numbers=[1])
        values = imported.probabilities[1]
        assert 0.0 < float(values[values > 0].min()) < 0.5 < float(values.max()) <= 1.0
        np.testing.assert_allclose(
            np.sort(values[values > 0]), np.sort(reference.array[reference.array > 0]), atol=1e-6
        )


def test_brainlab_binary_seg_imports(shared_data: Path, images: dict[str, Volume]) -> None:
    imported = import_segmentation(shared_data.joinpath(*BRAINLAB, "seg", "label.seg"), images["brainlab"])
    assert imported.segmentation.mask(1).sum() == 315


def test_totalsegmentator_labels_round_trip_through_a_seg(shared_data: Path, tmp_path: Path) -> None:
    case = shared_data / "totalsegmentator" / "ct_dicom_with_multilabel_seg"
    volume = load(case / "image_dicom").volume
    nifti = case / "seg_nifti" / "example_seg_dicom.nii.gz"
    names = json.loads((case / "seg_nifti" / "label_names_total.json").read_text())
    on_dicom = import_segmentation(nifti, volume, label_names=case / "seg_nifti" / "label_names_total.json")
    seg = on_dicom.segmentation
    assert on_dicom.match == "exact"
    # independent: NIfTI voxel (i, 511 - row, k) is DICOM (column, row, slice sorted by z) (MANIFEST.md)
    raw = np.asarray(nib.load(str(nifti)).dataobj).astype(np.int32)
    present = sorted(int(v) for v in np.unique(raw) if v)
    assert len(present) == 31
    expected = raw[:, ::-1, :].transpose(2, 1, 0)
    by_name = {s.name: s for s in seg.segments.values()}
    for value in present:
        np.testing.assert_array_equal(seg.mask(by_name[names[str(value)]].id), expected == value)

    # The series was anonymised by emptying its Study/Series/SOP Instance UIDs: no SEG can reference it.
    with pytest.raises(MissingSourceImagesError, match="no StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID"):
        export_segmentation(volume, seg, tmp_path / "refused.dcm")
    # A copy with UIDs restored (SOP Instance UID from the file meta) carries all 31 labels through a SEG.
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    (tmp_path / "ct").mkdir()
    for source in sorted((case / "image_dicom").iterdir()):
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.save_as(tmp_path / "ct" / source.name)
    volume = load(tmp_path / "ct").volume
    assert Grid.of(volume) == seg.grid
    out = tmp_path / "total.dcm"
    export_segmentation(volume, seg, out)
    assert dciodvfy_errors(out) == []
    back = import_segmentation(out, volume)
    assert back.match == "exact"
    assert_same_segments(back.segmentation, {s.name: seg.mask(s.id) for s in seg.segments.values()}, "radlabel")
    assert_same_segments(seg, dcmqi_masks(out, Grid.of(volume), tmp_path, merge=True), "dcmqi")


def test_rtstruct_phantom_rasterises_to_the_polygon_area(shared_data: Path) -> None:
    case = shared_data / "rt_utils" / "ct_phantom_2slice_with_rtstruct"
    volume = load(case / "image_dicom").volume
    imported = import_segmentation(case / "rtstruct" / "rt.dcm", volume)
    assert imported.format == "RTSTRUCT" and imported.match == "exact"
    assert any("frame of reference" in w for w in imported.warnings)  # rt-utils writes its own FoR UID
    (segment,) = imported.segmentation.segments.values()
    assert segment.name == "ROI-1" and segment.color == (162, 136, 95)
    mask = imported.segmentation.mask(segment.id)
    k = int(np.rint(volume.world_to_index([[0.0, 0.0, 60.0]])[0][2]))
    assert mask.sum() == mask[k].sum() > 0
    # the 8-point contour lies inside the square: a hole (even-odd), as rt-utils/OpenCV fill it
    contours = pydicom.dcmread(case / "rtstruct" / "rt.dcm").ROIContourSequence[0].ContourSequence
    areas = [polygon_area(np.array(c.ContourData, float).reshape(-1, 3)[:, :2]) for c in contours]
    area_mm2 = areas[0] - areas[1]
    pixel = float(volume.spacing[0] * volume.spacing[1])
    rows, cols = np.nonzero(mask[k])
    one_row = max(np.ptp(rows), np.ptp(cols)) + 1
    assert abs(mask.sum() - area_mm2 / pixel) <= one_row


# ----------------------------------------------------------------------------------------------------------
# Other grids, no overlap
# ----------------------------------------------------------------------------------------------------------


def _series(tmp_path: Path, name: str, volume: Volume, study: str, frame: str) -> Volume:
    write_dicom_series(volume, tmp_path / name, study_uid=study, frame_of_reference_uid=frame)
    return load(tmp_path / name).volume


def test_a_seg_on_another_grid_is_resampled_nearest_neighbour(tmp_path: Path) -> None:
    ct, _ = make_demo_ct(shape=(14, 56, 48), spacing=(1.7, 1.7, 3.0))
    k, j, i = np.ogrid[:14, :56, :48]
    lesion = ((k - 6.2) / 4) ** 2 + ((j - 27.3) / 12) ** 2 + ((i - 21.6) / 10) ** 2 <= 1
    study, frame = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    a = _series(tmp_path, "a", ct, study, frame)
    seg = Segmentation.empty(a)
    seg.add_segment("lesion")
    seg.layers[0][lesion] = 1
    out = tmp_path / "a.dcm"
    export_segmentation(a, seg, out)
    other = Volume(
        np.zeros((11, 40, 37), np.int16),
        ct.origin + np.array([2.1, -1.3, 1.1]),
        [2.3, 2.2, 4.1],
        ct.direction,
        dict(ct.metadata),
    )
    b = _series(tmp_path, "b", other, study, frame)
    imported = import_segmentation(out, b)
    assert imported.match == "resampled"
    assert any("references series" in w for w in imported.warnings)
    assert any("nearest neighbour" in w for w in imported.warnings)
    k, j, i = np.indices(b.array.shape)
    centres = b.index_to_world(np.column_stack([i.ravel(), j.ravel(), k.ravel()]))
    nearest = np.rint(a.world_to_index(centres)).astype(int)
    inside = np.all((nearest >= 0) & (nearest < np.array(a.size)), axis=1)
    expected = np.zeros(centres.shape[0], bool)
    expected[inside] = lesion[nearest[inside, 2], nearest[inside, 1], nearest[inside, 0]]
    result = imported.segmentation.mask(1).ravel()
    assert expected.sum() > 50 and dice(result, expected) == 1.0

    far = Volume(np.zeros((5, 20, 20), np.int16), ct.origin + np.array([0, 0, 900.0]), [2.0, 2.0, 3.0], ct.direction)
    c = _series(tmp_path, "c", far, study, frame)
    with pytest.raises(NoOverlapError, match=r"a\.dcm: no segmented voxel"):
        import_segmentation(out, c)


# ----------------------------------------------------------------------------------------------------------
# Malformed files
# ----------------------------------------------------------------------------------------------------------


def _edited_copy(source: Path, tmp_path: Path, edit: object) -> Path:
    ds = pydicom.dcmread(source)
    edit(ds)  # type: ignore[operator]
    out = tmp_path / f"edited_{source.name}"
    ds.save_as(out)
    return out


def _drop_frame_description(ds: pydicom.Dataset) -> None:
    del ds.PerFrameFunctionalGroupsSequence[1]


def _truncate_pixels(ds: pydicom.Dataset) -> None:
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]


def _wrong_instance(ds: pydicom.Dataset) -> None:
    ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID = "1.2.3.4.5.6.7"


def _wrong_frame_of_reference(ds: pydicom.Dataset) -> None:
    ds.FrameOfReferenceUID = "1.2.3.4.5.6.8"


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (_wrong_instance, ReferenceMismatchError, "references image 1.2.3.4.5.6.7"),
        (_wrong_frame_of_reference, ReferenceMismatchError, "frame of reference 1.2.3.4.5.6.8"),
        (_drop_frame_description, MalformedSegmentationError, "announces 3 frames but describes 2"),
        (_truncate_pixels, MalformedSegmentationError, "frames are missing"),
    ],
)
def test_malformed_segs_give_typed_errors_and_touch_nothing(
    shared_data: Path, images: dict[str, Volume], tmp_path: Path, edit: object, error: type, message: str
) -> None:
    volume = images["dcmqi"]
    before = volume.array.copy()
    open_case = import_segmentation(shared_data.joinpath(*DCMQI, "seg_dicom", "liver.dcm"), volume).segmentation
    kept = open_case.copy()
    bad = _edited_copy(shared_data.joinpath(*DCMQI, "seg_dicom", "liver.dcm"), tmp_path, edit)
    with pytest.raises(error, match=message) as raised:
        import_segmentation(bad, volume)
    assert str(bad) in str(raised.value) and "\n" not in str(raised.value)
    np.testing.assert_array_equal(volume.array, before)
    np.testing.assert_array_equal(open_case.layers[0], kept.layers[0])


def _rtstruct(shared_data: Path) -> tuple[Volume, Path]:
    case = shared_data / "rt_utils" / "ct_phantom_2slice_with_rtstruct"
    return load(case / "image_dicom").volume, case / "rtstruct" / "rt.dcm"


def _contour_image(ds: pydicom.Dataset) -> None:
    ds.ROIContourSequence[0].ContourSequence[0].ContourImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.9"


def _contour_outside(ds: pydicom.Dataset) -> None:
    data = [float(v) for v in ds.ROIContourSequence[0].ContourSequence[1].ContourData]
    data[0] += 5000.0
    ds.ROIContourSequence[0].ContourSequence[1].ContourData = data


def _point_count(ds: pydicom.Dataset) -> None:
    ds.ROIContourSequence[0].ContourSequence[0].NumberOfContourPoints = 7


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (_contour_image, ReferenceMismatchError, "references image 1.2.3.9"),
        (_contour_outside, ContourOutsideImageError, "ROI 'ROI-1' contour 2 has points outside the image"),
        (_point_count, MalformedSegmentationError, "NumberOfContourPoints says 7"),
    ],
)
def test_malformed_rtstructs_give_typed_errors(
    shared_data: Path, tmp_path: Path, edit: object, error: type, message: str
) -> None:
    volume, path = _rtstruct(shared_data)
    before = volume.array.copy()
    bad = _edited_copy(path, tmp_path, edit)
    with pytest.raises(error, match=message) as raised:
        import_segmentation(bad, volume)
    assert str(bad) in str(raised.value)
    np.testing.assert_array_equal(volume.array, before)


def test_an_image_file_is_not_a_segmentation(shared_data: Path, images: dict[str, Volume]) -> None:
    image = shared_data.joinpath(*DCMQI, "image_dicom", "01.dcm")
    with pytest.raises(Exception, match=r"01\.dcm: a DICOM CT object, not a DICOM SEG or RTSTRUCT"):
        import_segmentation(image, images["dcmqi"])
