"""RTSTRUCT export: one ROI per segment, closed planar contours traced along the voxel edges of each slice.

Contours are exact (:mod:`contours`): filling them with any point-in-polygon rule gives back the segment's
voxels. Each contour references the image it lies on (ContourImageSequence); the structure set references
the series and its frame of reference. For a series that was resampled on load (gantry tilt, irregular
spacing) the contours lie on the resampled slices, which are not the original images, so they reference the
series but no single image (a warning says so).

Identity and audit head: OperatorsName and StructureSetDescription (which is long enough for the full hash),
a short form in StructureSetName, and the ``RADLABEL AUDIT`` private block.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from radlabel import __version__
from radlabel.core.io.atomic import atomic_write
from radlabel.core.io.seg.common import ExportResult, check_same_grid, ordered_segments
from radlabel.core.io.seg.contours import mask_to_polygons
from radlabel.core.io.seg.errors import SegmentationExportError
from radlabel.core.io.seg.provenance import Provenance, write_private_block
from radlabel.core.io.seg.rtstruct_reader import RT_STRUCTURE_SET_STORAGE
from radlabel.core.io.seg.sources import source_headers
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.segmentation.model import Segment, Segmentation
from radlabel.core.volume import Volume

DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"
_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _item(**values: object) -> Dataset:
    ds = Dataset()
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


def _distinct_images(uids: list[str], frames: list[int | None]) -> list[int]:
    """Slice indices of the distinct (instance, frame) pairs, in slice order."""
    seen: set[tuple[str, int | None]] = set()
    result = []
    for k, key in enumerate(zip(uids, frames, strict=True)):
        if key not in seen:
            seen.add(key)
            result.append(k)
    return result


def _roi_description(segment: Segment) -> str:
    if segment.algorithm is None:
        return ""
    text = f"{segment.algorithm.name} {segment.algorithm.version}".strip()
    if segment.algorithm.weights_sha256:
        text += f" sha256:{segment.algorithm.weights_sha256}"
    return text[:64]


def export_rtstruct(
    volume: Volume,
    segmentation: Segmentation,
    path: str | Path,
    *,
    provenance: Provenance | None = None,
    series_description: str | None = None,
    series_number: int = 301,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Write ``segmentation`` (on the grid of DICOM-loaded ``volume``) as an RT Structure Set."""
    target = Path(path).expanduser()
    report = Progress(progress, what="RTSTRUCT export")
    provenance = provenance or Provenance.for_user()
    check_same_grid(volume, segmentation, target)
    segments = ordered_segments(segmentation)
    if not segments:
        raise SegmentationExportError("the segmentation has no segments to export", target)
    sources = source_headers(volume, "an RTSTRUCT")
    first = sources[0]
    meta = volume.metadata
    resampled = bool(meta.get("resampled"))
    uids = [str(u) for u in meta["sop_instance_uids"]]
    frames = list(meta.get("source_frames") or [None] * len(uids))
    class_of = {str(s.SOPInstanceUID): str(s.SOPClassUID) for s in sources}
    multi = {str(s.SOPInstanceUID) for s in sources if int(s.get("NumberOfFrames", 1) or 1) > 1}
    frame_of_reference = str(first.get("FrameOfReferenceUID") or meta.get("frame_of_reference_uid") or "")
    if not frame_of_reference:
        raise SegmentationExportError("the source images have no FrameOfReferenceUID to reference", target)

    def image_item(k: int) -> Dataset:
        uid = uids[k]
        item = _item(ReferencedSOPClassUID=class_of.get(uid, str(first.SOPClassUID)), ReferencedSOPInstanceUID=uid)
        if uid in multi and frames[k] is not None:
            item.ReferencedFrameNumber = int(frames[k]) + 1
        return item

    now = _dt.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(RT_STRUCTURE_SET_STORAGE)
    sop_uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = f"RADLABEL_{__version__}"[:16]
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = sop_uid
    for keyword in _PATIENT_STUDY:
        if keyword in first:
            setattr(ds, keyword, first.get(keyword))
        elif keyword in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "StudyDate",
            "StudyTime",
            "ReferringPhysicianName",
            "StudyID",
            "AccessionNumber",
        ):
            setattr(ds, keyword, "")
    if str(ds.get("PatientIdentityRemoved", "")).upper() == "YES" and not (
        ds.get("DeidentificationMethod") or ds.get("DeidentificationMethodCodeSequence")
    ):
        ds.DeidentificationMethod = "not stated in the source images"
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = (series_description or "radlabel RTSTRUCT")[:64]
    ds.SeriesDate, ds.SeriesTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.OperatorsName = provenance.user
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PositionReferenceIndicator = str(first.get("PositionReferenceIndicator", "") or "")
    ds.Manufacturer = "radlabel"
    ds.ManufacturerModelName = "radlabel"
    ds.SoftwareVersions = str(__version__)
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "RADLABEL"
    ds.StructureSetName = provenance.description()
    text = f"Exported by radlabel {__version__}; reader {provenance.user}"
    if provenance.audit_head:
        text += f"; audit head {provenance.audit_head} ({provenance.audit_count} records, case {provenance.case})"
    ds.StructureSetDescription = text[:1024]
    ds.StructureSetDate, ds.StructureSetTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.ReferencedFrameOfReferenceSequence = [
        _item(
            FrameOfReferenceUID=frame_of_reference,
            RTReferencedStudySequence=[
                _item(
                    ReferencedSOPClassUID=DETACHED_STUDY_MANAGEMENT,
                    ReferencedSOPInstanceUID=str(first.StudyInstanceUID),
                    RTReferencedSeriesSequence=[
                        _item(
                            SeriesInstanceUID=str(first.SeriesInstanceUID),
                            ContourImageSequence=[image_item(k) for k in _distinct_images(uids, frames)],
                        )
                    ],
                )
            ],
        )
    ]

    affine = volume.affine
    roi_items, contour_items, observation_items = [], [], []
    total = 0
    for index, segment in enumerate(segments, start=1):
        mask = segmentation.mask(segment.id)
        contours: list[Dataset] = []
        for k in np.nonzero(mask.any(axis=(1, 2)))[0]:
            for polygon in mask_to_polygons(mask[k]):
                ijk = np.column_stack([polygon, np.full(len(polygon), float(k))])
                world = ijk @ affine[:3, :3].T + affine[:3, 3]
                item = _item(
                    ContourGeometricType="CLOSED_PLANAR",
                    NumberOfContourPoints=len(world),
                    ContourNumber=len(contours) + 1,
                    ContourData=[_number(v) for v in world.reshape(-1)],
                )
                if not resampled:
                    item.ContourImageSequence = [image_item(int(k))]
                contours.append(item)
        total += len(contours)
        roi = _item(
            ROINumber=index,
            ReferencedFrameOfReferenceUID=frame_of_reference,
            ROIName=segment.name[:64],
            ROIGenerationAlgorithm=segment.algorithm_type.value,
        )
        if _roi_description(segment):
            roi.ROIGenerationDescription = _roi_description(segment)
        if segment.notes.strip():
            roi.ROIDescription = segment.notes.strip()[:1024]
        roi_items.append(roi)
        roi_contour = _item(ReferencedROINumber=index, ROIDisplayColor=[int(c) for c in segment.color])
        if contours:
            roi_contour.ContourSequence = contours
        contour_items.append(roi_contour)
        observation_items.append(
            _item(
                ObservationNumber=index,
                ReferencedROINumber=index,
                RTROIInterpretedType="",
                ROIInterpreter="",
                RTROIIdentificationCodeSequence=[
                    _item(
                        CodeValue=segment.type.value,
                        CodingSchemeDesignator=segment.type.scheme,
                        CodeMeaning=segment.type.meaning[:64] or segment.type.value,
                    )
                ],
            )
        )
        report.report(0.9 * index / len(segments), f"tracing {segment.name}")
    ds.StructureSetROISequence = roi_items
    ds.ROIContourSequence = contour_items
    ds.RTROIObservationsSequence = observation_items
    ds.ApprovalStatus = "UNAPPROVED"
    write_private_block(ds, provenance)
    atomic_write(target, lambda p: ds.save_as(p, enforce_file_format=True))
    warnings = []
    if resampled:
        warnings.append(
            "the image was resampled on load: contours lie on the resampled slices and reference the series, not "
            "individual images"
        )
    empty = [s.name for s in segments if not segmentation.mask(s.id).any()]
    if empty:
        warnings.append(f"ROI(s) without contours (no voxels): {', '.join(empty)}")
    report.report(1.0, "RTSTRUCT written")
    return ExportResult(target, "RTSTRUCT", len(segments), total, warnings, sop_uid)


__all__ = ["export_rtstruct"]
