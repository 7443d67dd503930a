"""DICOM SEG / RTSTRUCT / label-map export: valid for dciodvfy, read back identically by highdicom, dcmqi and
radlabel in world space, on a tilted (resampled) CT, an oblique MR and a plain CT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from radlabel.core.audit import AuditLog
from radlabel.core.io.loader import load
from radlabel.core.io.seg import (
    MissingSourceImagesError,
    OverlappingSegmentsError,
    Provenance,
    export_segmentation,
    import_segmentation,
)
from radlabel.core.io.seg.provenance import PRIVATE_CREATOR, PRIVATE_GROUP, read_private_block
from radlabel.core.segmentation.labelmap_io import read_labelmap, sidecar_path
from radlabel.core.segmentation.model import AlgorithmInfo, AlgorithmType, CodedConcept, Grid, Segmentation
from radlabel.core.volume import Volume
from tests.core.seg_reference import assert_same_segments, dciodvfy_errors, dcmqi_masks, highdicom_masks

SERIES = {
    "tilted_ct": ("dcm_qa", "ct_ge_gantry_tilt", "In"),
    "oblique_mr": ("dcm_qa", "mr_ge_3d_t1_mprage_oblique", "In"),
    "ct_3slice": ("dcmqi", "ct_3slice_with_seg", "image_dicom"),
}
NEOPLASM = CodedConcept("108369006", "SCT", "Neoplasm")
LIVER = CodedConcept("10200004", "SCT", "Liver")
ORGAN = CodedConcept("123037004", "SCT", "Anatomical Structure")
WEIGHTS = "ab" * 32


@pytest.fixture(scope="module")
def volumes(shared_data: Path) -> dict[str, Volume]:
    return {name: load(shared_data.joinpath(*parts)).volume for name, parts in SERIES.items()}


def ball(
    shape: tuple[int, int, int], centre: tuple[float, float, float], radii: tuple[float, float, float]
) -> np.ndarray:
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return ((k - centre[0]) / radii[0]) ** 2 + ((j - centre[1]) / radii[1]) ** 2 + (
        (i - centre[2]) / radii[2]
    ) ** 2 <= 1


def small_segmentation(volume: Volume, overlap: bool = True) -> Segmentation:
    """Organ with a hole, an AI lesion inside it, an overlapping manual region and an empty segment."""
    seg = Segmentation.empty(volume)
    shape = seg.grid.shape
    kc, jc, ic = shape[0] / 2, shape[1] / 2, shape[2] / 2
    kr = max(1.0, min(3.0, shape[0] / 3))
    organ = ball(shape, (kc, jc, ic), (kr, 25, 30)) & ~ball(shape, (kc, jc, ic), (kr, 6, 6))
    lesion = ball(shape, (kc, jc + 12, ic), (max(kr - 1, 0.6), 6, 8))
    liver = seg.add_segment("liver", category=ORGAN, type=LIVER)
    tumour = seg.add_segment(
        "tumour",
        category=CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure"),
        type=NEOPLASM,
        algorithm_type=AlgorithmType.AUTOMATIC,
        algorithm=AlgorithmInfo("LiteMedSAM", "0.2.1", WEIGHTS),
    )
    seg.layers[0][organ & ~lesion] = liver.label_value
    seg.layers[0][lesion] = tumour.label_value
    if overlap:
        extra = seg.add_segment("review region", algorithm_type=AlgorithmType.SEMIAUTOMATIC)
        seg.layers.append(np.zeros(shape, np.uint8))
        seg.update_segment(extra.id, layer=1, label_value=1)
        seg.layers[1][ball(shape, (kc, jc + 8, ic + 10), (kr, 10, 10))] = 1
    seg.add_segment("nothing yet")
    return seg


@pytest.mark.parametrize("series", ["tilted_ct", "oblique_mr"])
@pytest.mark.parametrize("kind", ["BINARY", "FRACTIONAL", "LABELMAP"])
def test_seg_export_is_valid_and_reads_back_identically_everywhere(
    volumes: dict[str, Volume], tmp_path: Path, series: str, kind: str
) -> None:
    volume = volumes[series]
    seg = small_segmentation(volume, overlap=kind != "LABELMAP")
    tumour = next(s for s in seg.segments.values() if s.name == "tumour")
    probabilities = None
    if kind == "FRACTIONAL":
        core = seg.mask(tumour.id)
        shell = ndimage.binary_dilation(core, iterations=2) & ~core  # an AI map: confident core, unsure rim
        probabilities = {tumour.id: np.where(core, np.float32(0.8), np.where(shell, np.float32(0.2), np.float32(0)))}
    out = tmp_path / f"{series}_{kind}.dcm"
    provenance = Provenance(user="Doe^Jane", audit_head="c0ffee" * 10 + "abcd", audit_count=7, case="case-1")
    result = export_segmentation(volume, seg, out, kind=kind, probabilities=probabilities, provenance=provenance)
    assert result.format == f"DICOM SEG {kind}"
    assert dciodvfy_errors(out) == []

    grid = Grid.of(volume)
    back = import_segmentation(out, volume)
    assert back.match == "exact" and back.format == f"DICOM SEG {kind}"
    assert_same_segments(back.segmentation, {s.name: seg.mask(s.id) for s in seg.segments.values()}, "radlabel")
    assert_same_segments(seg, highdicom_masks(out, grid), "highdicom")
    assert_same_segments(seg, dcmqi_masks(out, grid, tmp_path, fractional=kind == "FRACTIONAL"), "dcmqi")

    again = back.segmentation.segments
    by_name = {s.name: s for s in again.values()}
    assert by_name["tumour"].type == NEOPLASM and by_name["tumour"].algorithm_type == AlgorithmType.AUTOMATIC
    assert by_name["tumour"].algorithm == AlgorithmInfo("LiteMedSAM", "0.2.1", WEIGHTS, "Artificial Intelligence")
    assert by_name["liver"].type == LIVER and by_name["liver"].color == seg.segments[1].color
    if kind == "FRACTIONAL":
        values = back.probabilities[by_name["tumour"].id]
        np.testing.assert_allclose(values, probabilities[tumour.id], atol=0.5 / 255 + 1e-6)  # type: ignore[index]

    ds = pydicom.dcmread(out)
    assert str(ds.ContentCreatorName) == "Doe^Jane"
    assert "c0ffeec0ffee" in ds.ContentDescription
    assert ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[0x01].value == provenance.audit_head
    assert read_private_block(ds) == provenance
    assert ds.FrameOfReferenceUID == volume.metadata["frame_of_reference_uid"]
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.metadata["series_instance_uid"]
    referenced = {i.ReferencedSOPInstanceUID for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(volume.metadata["sop_instance_uids"])
    assert int(ds.NumberOfFrames) < seg.grid.shape[0] * len(seg.segments)  # empty frames omitted


def test_frames_reference_their_source_images_when_the_series_was_not_resampled(
    volumes: dict[str, Volume], tmp_path: Path
) -> None:
    volume = volumes["oblique_mr"]
    out = tmp_path / "mr.dcm"
    export_segmentation(volume, small_segmentation(volume), out)
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    uids = volume.metadata["sop_instance_uids"]
    for frame in ds.PerFrameFunctionalGroupsSequence:
        position = np.array(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        k = int(np.rint(volume.world_to_index(position)[0][2]))
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == uids[k]
        assert source.SpatialLocationsPreserved == "YES"


def test_labelmap_seg_refuses_overlapping_segments(volumes: dict[str, Volume], tmp_path: Path) -> None:
    volume = volumes["ct_3slice"]
    out = tmp_path / "x.dcm"
    with pytest.raises(OverlappingSegmentsError, match=r"review region.*BINARY"):
        export_segmentation(volume, small_segmentation(volume), out, kind="LABELMAP")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_an_empty_segmentation_is_still_a_valid_seg(volumes: dict[str, Volume], tmp_path: Path) -> None:
    volume = volumes["ct_3slice"]
    seg = Segmentation.empty(volume)
    seg.add_segment("to do")
    out = tmp_path / "empty.dcm"
    result = export_segmentation(volume, seg, out)
    assert result.frames == 1 and any("empty" in w for w in result.warnings)
    assert dciodvfy_errors(out) == []
    back = import_segmentation(out, volume).segmentation
    assert [s.name for s in back.segments.values()] == ["to do"] and not back.mask(1).any()


def test_a_nifti_image_exports_to_label_maps_but_not_to_dicom(shared_data: Path, tmp_path: Path) -> None:
    image = shared_data / "pyradiomics" / "breast1_mri_lesion_label" / "nifti_converted_by_SimpleITK"
    volume = load(next(p for p in image.iterdir() if "image" in p.name)).volume
    seg = small_segmentation(volume, overlap=False)
    with pytest.raises(MissingSourceImagesError, match=r"not loaded from DICOM.*\.nii\.gz"):
        export_segmentation(volume, seg, tmp_path / "x.dcm")
    result = export_segmentation(volume, seg, tmp_path / "x.nii.gz", user="reader7")
    back = import_segmentation(result.path, volume)
    assert_same_segments(back.segmentation, {s.name: seg.mask(s.id) for s in seg.segments.values()}, "NIfTI")
    assert back.provenance is not None and back.provenance["user"] == "reader7"


def test_seg_nrrd_export_is_a_slicer_segmentation_with_layers_and_provenance(
    volumes: dict[str, Volume], tmp_path: Path
) -> None:
    volume = volumes["oblique_mr"]
    seg = small_segmentation(volume)
    case = tmp_path / "case"
    case.mkdir()
    with AuditLog.for_case(case, user="Doe^Jane") as log:
        log.append("edit", {"tool": "paint"})
        _, head = log.head()
    result = export_segmentation(volume, seg, tmp_path / "out.seg.nrrd", case=case, user="Doe^Jane")
    header = result.path.read_bytes().split(b"\n\n", 1)[0].decode()
    assert "dimension: 4" in header and "kinds: list domain domain domain" in header  # overlap -> 2 layers
    for key in ("Segment0_ID:=", "Segment0_Name:=liver", "Segment1_Color:=", "Segment2_Layer:=1", "Segment3_Extent:="):
        assert key in header
    assert f"radlabel_AuditHead:={head}" in header and "radlabel_User:=Doe^Jane" in header
    table = json.loads(sidecar_path(result.path).read_text())
    assert table["provenance"]["audit_head"] == head and table["provenance"]["audit_count"] == 1
    back = read_labelmap(result.path, volume).segmentation
    assert_same_segments(back, {s.name: seg.mask(s.id) for s in seg.segments.values()}, ".seg.nrrd")
    with AuditLog.for_case(case) as log:
        records = list(log.records())
        assert log.verify().ok
    assert records[-1].action == "export" and records[-1].prev_hash == head
    assert records[-1].payload["audit_head_in_file"] == head and records[-1].payload["format"] == "3D Slicer .seg.nrrd"


@pytest.mark.parametrize("series", ["tilted_ct", "oblique_mr"])
def test_rtstruct_export_is_valid_and_rasterises_back_exactly(
    volumes: dict[str, Volume], tmp_path: Path, series: str
) -> None:
    volume = volumes[series]
    seg = small_segmentation(volume)
    out = tmp_path / "rt.dcm"
    result = export_segmentation(volume, seg, out, rtstruct=True, user="Doe^Jane")
    assert result.format == "RTSTRUCT" and result.frames > 0
    assert dciodvfy_errors(out) == []
    back = import_segmentation(out, volume)
    assert back.format == "RTSTRUCT" and back.match == "exact"
    assert_same_segments(back.segmentation, {s.name: seg.mask(s.id) for s in seg.segments.values()}, "RTSTRUCT")
    ds = pydicom.dcmread(out)
    assert str(ds.OperatorsName) == "Doe^Jane"
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == volume.metadata["frame_of_reference_uid"]
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    if volume.metadata["resampled"]:
        assert "ContourImageSequence" not in contour and any("resampled" in w for w in result.warnings)
    else:
        assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID in volume.metadata["sop_instance_uids"]
