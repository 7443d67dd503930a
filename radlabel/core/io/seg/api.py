"""One entry point for segmentation files: :func:`export_segmentation` and :func:`import_segmentation`.

Export picks the format from the file name (``.dcm`` -> DICOM SEG, or RTSTRUCT with ``rtstruct=True``;
``.nii.gz`` / ``.nii`` / ``.nrrd`` / ``.seg.nrrd`` / ``.mha`` -> label map + JSON sidecar). Import recognises
NIfTI / NRRD / MetaImage label maps by name and DICOM SEG / RTSTRUCT by SOP class. Both are plain functions
over one case (reference volume + segmentation), so a batch engine can map them over a dataset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pydicom
from numpy.typing import NDArray

from radlabel.core.errors import OutputError, UnreadablePathError
from radlabel.core.io.loader import volume_format
from radlabel.core.io.nifti import one_line
from radlabel.core.io.seg.common import ExportResult, SegmentationImport
from radlabel.core.io.seg.errors import SegmentationExportError, SegmentationImportError
from radlabel.core.io.seg.labelmap_export import export_labelmap, read_sidecar_provenance
from radlabel.core.io.seg.provenance import Provenance, record_export
from radlabel.core.io.seg.rtstruct_reader import RT_STRUCTURE_SET_STORAGE, read_rtstruct
from radlabel.core.io.seg.rtstruct_writer import export_rtstruct
from radlabel.core.io.seg.seg_reader import SEG_SOP_CLASSES, read_dicom_seg
from radlabel.core.io.seg.seg_writer import SegKind, export_dicom_seg
from radlabel.core.progress import ProgressCallback
from radlabel.core.segmentation.labelmap_io import LABELMAP_SUFFIXES, LabelNames, read_labelmap
from radlabel.core.segmentation.model import Segmentation
from radlabel.core.volume import Volume

DICOM_SUFFIXES = (".dcm", ".dicom")


def output_kind(path: str | Path, rtstruct: bool = False) -> str:
    """``"seg"``, ``"rtstruct"`` or ``"labelmap"`` for an output file name, or an :class:`OutputError`."""
    name = Path(path).name.lower()
    if rtstruct:
        return "rtstruct"
    if name.endswith(DICOM_SUFFIXES):
        return "seg"
    if any(name.endswith(s) and len(name) > len(s) for s in LABELMAP_SUFFIXES):
        return "labelmap"
    raise OutputError(
        "cannot tell the output format from the file name: use .dcm (DICOM SEG, or RTSTRUCT with --rtstruct), "
        ".nii.gz, .nii, .nrrd, .seg.nrrd or .mha",
        path,
    )


def export_segmentation(
    volume: Volume,
    segmentation: Segmentation,
    path: str | Path,
    *,
    rtstruct: bool = False,
    kind: SegKind | str = SegKind.BINARY,
    probabilities: dict[int, NDArray[Any]] | None = None,
    user: str | None = None,
    case: str | Path | None = None,
    provenance: Provenance | None = None,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Write ``segmentation`` (on ``volume``'s grid) to ``path`` in the format its name says.

    With ``case`` (a case folder holding ``audit.sqlite``, or that file), the audit head is written into the
    export and an ``export`` record is appended to the log afterwards; the log must verify first.
    """
    target = Path(path).expanduser()
    what = output_kind(target, rtstruct)
    kind = SegKind(str(kind).upper())
    if provenance is None:
        provenance = Provenance.from_case(case, user) if case is not None else Provenance.for_user(user)
    if what != "seg" and (kind != SegKind.BINARY or probabilities):
        raise SegmentationExportError(
            "FRACTIONAL and LABELMAP are DICOM SEG types; "
            f"{target.name} is {'an RTSTRUCT' if rtstruct else 'a label map'}",
            target,
        )
    if what == "seg":
        result = export_dicom_seg(
            volume,
            segmentation,
            target,
            kind=kind,
            probabilities=probabilities,
            provenance=provenance,
            progress=progress,
        )
    elif what == "rtstruct":
        result = export_rtstruct(volume, segmentation, target, provenance=provenance, progress=progress)
    else:
        result = export_labelmap(segmentation, target, provenance=provenance, progress=progress)
    if case is not None:
        record = record_export(
            case,
            provenance,
            result.path,
            {
                "format": result.format,
                "segments": [{"id": s.id, "name": s.name} for s in segmentation.segments.values()],
                "source_series": volume.metadata.get("series_instance_uid", ""),
                "sop_instance_uid": result.sop_instance_uid,
            },
        )
        result = replace(result, warnings=[*result.warnings], audit_record=record.to_json())
    return result


def _sop_class(source: Path) -> tuple[str, str]:
    """SOP class (and modality when cheap) of a DICOM file, from its file meta when it has one."""
    try:
        meta = pydicom.filereader.read_file_meta_info(source)
        sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
        if sop_class:
            modality = (
                "" if sop_class in SEG_SOP_CLASSES or sop_class == RT_STRUCTURE_SET_STORAGE else _modality(source)
            )
            return sop_class, modality
    except (OSError, pydicom.errors.InvalidDicomError):
        pass
    try:
        header = pydicom.dcmread(source, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise SegmentationImportError(
            f"not a segmentation file radlabel reads ({one_line(exc)}); use a DICOM SEG or RTSTRUCT, or a NIfTI / NRRD "
            "/ .seg.nrrd / MetaImage label map",
            source,
        ) from None
    return str(header.get("SOPClassUID", "")), str(header.get("Modality", ""))


def _modality(source: Path) -> str:
    try:
        return str(pydicom.dcmread(source, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality", ""))
    except (OSError, pydicom.errors.InvalidDicomError):
        return ""


def import_segmentation(
    path: str | Path,
    reference: Volume,
    *,
    label_names: LabelNames | None = None,
    check_references: bool = True,
    progress: ProgressCallback | None = None,
) -> SegmentationImport:
    """Read a segmentation file onto ``reference``'s grid (a new :class:`Segmentation`; inputs untouched)."""
    source = Path(path).expanduser()
    if volume_format(source) is not None or source.name.lower().endswith(LABELMAP_SUFFIXES):
        result = read_labelmap(source, reference, label_names=label_names, progress=progress)
        name = source.name.lower()
        fmt = "3D Slicer .seg.nrrd" if name.endswith(".seg.nrrd") else ("NIfTI" if ".nii" in name else "label map")
        return SegmentationImport(
            segmentation=result.segmentation,
            match=result.match,
            format=fmt,
            warnings=result.warnings,
            sources=result.sources,
            provenance=read_sidecar_provenance(source),
        )
    if not source.is_file():
        raise UnreadablePathError(
            "the segmentation file does not exist" if not source.exists() else "not a file", source
        )
    sop_class, modality = _sop_class(source)
    if sop_class in SEG_SOP_CLASSES:
        return read_dicom_seg(source, reference, check_references=check_references, progress=progress)
    if sop_class == RT_STRUCTURE_SET_STORAGE:
        return read_rtstruct(source, reference, check_references=check_references, progress=progress)
    raise SegmentationImportError(
        f"a DICOM {modality or '?'} object, not a DICOM SEG or RTSTRUCT (SOP class {sop_class or 'missing'})",
        source,
    )


__all__ = ["export_segmentation", "import_segmentation", "output_kind"]
