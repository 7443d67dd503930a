"""RTSTRUCT import: closed planar contours rasterised onto a loaded volume's grid.

Each CLOSED_PLANAR contour is mapped from world (LPS mm) to the volume's continuous voxel indices. Its plane
must be a slice plane of the grid (contours lying between slices, as on a series that was resampled on
load, go to the nearest slice with a warning); the contour is then filled on that slice with the even-odd
rule over all contours of the ROI on the slice (:mod:`contours`), so an inner contour is a hole. POINT and
OPEN contours enclose no area and are skipped with a warning.

References: the RTSTRUCT must reference the image's series, and every image a contour names must be one
of its slices (:class:`ReferenceMismatchError` otherwise). A FrameOfReferenceUID that differs from the
image's is accepted with a warning when all those image references match (rt-utils writes a new frame of
reference UID into its structure sets although the contours are in the image's space). Contour points that
lie more than one voxel outside the image raise :class:`ContourOutsideImageError`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from radlabel.core.io.nifti import one_line
from radlabel.core.io.seg.common import SegmentationImport, place_segments_in_layers
from radlabel.core.io.seg.contours import fill_polygons
from radlabel.core.io.seg.descriptions import _code
from radlabel.core.io.seg.errors import (
    ContourOutsideImageError,
    MalformedSegmentationError,
    ReferenceMismatchError,
    SegmentationImportError,
)
from radlabel.core.io.seg.placement import Piece, crop
from radlabel.core.io.seg.provenance import read_private_block
from radlabel.core.io.seg.sources import reference_summary, volume_name
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.segmentation import terminology
from radlabel.core.segmentation.model import (
    DEFAULT_COLORS,
    AlgorithmInfo,
    AlgorithmType,
    Grid,
    Segment,
    Segmentation,
)
from radlabel.core.volume import Volume

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
#: A contour whose points leave the image by more than this many voxels is an error, not a clip.
OUTSIDE_TOLERANCE_VOXELS = 1.0
#: Contour planes further than this (voxels) from a slice are "between slices".
PLANE_TOLERANCE_VOXELS = 0.1


def _check_references(ds: Dataset, volume: Volume, path: Path, warnings: list[str]) -> None:
    ref = reference_summary(volume)
    if not ref["series_instance_uid"]:
        warnings.append(
            f"{path.name}: the image has no DICOM identity to check references against; placed by world position"
        )
        return
    known = set(ref["sop_instance_uids"])
    series_uids: set[str] = set()
    frames_of_reference: set[str] = set()
    instances: list[str] = []
    for for_item in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames_of_reference.add(str(for_item.get("FrameOfReferenceUID", "")))
        for study in for_item.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                series_uids.add(str(series.get("SeriesInstanceUID", "")))
                instances += [
                    str(i.get("ReferencedSOPInstanceUID", "")) for i in series.get("ContourImageSequence", [])
                ]
    for roi_contour in ds.get("ROIContourSequence", []):
        for contour in roi_contour.get("ContourSequence", []):
            instances += [str(i.get("ReferencedSOPInstanceUID", "")) for i in contour.get("ContourImageSequence", [])]
    ours = ref["series_instance_uid"] in series_uids
    missing = sorted({u for u in instances if u and u not in known})
    if ours and missing:
        raise ReferenceMismatchError(
            f"the structure set references image {missing[0]}, which is not one of the {len(known)} slices of the "
            f"loaded series{f' ({len(missing)} such references)' if len(missing) > 1 else ''}",
            path,
            "load the complete series the contours were drawn on",
        )
    for_ok = (
        not ref["frame_of_reference_uid"]
        or not frames_of_reference
        or ref["frame_of_reference_uid"] in frames_of_reference
    )
    if not for_ok:
        if ours and instances and not missing:
            warnings.append(
                f"{path.name}: the structure set names frame of reference {', '.join(sorted(frames_of_reference))}, "
                "not the image's, but references this series' images; placed in the image's space"
            )
        else:
            raise ReferenceMismatchError(
                f"the structure set is in frame of reference {', '.join(sorted(frames_of_reference))}, the image "
                f"{volume_name(volume)} in {ref['frame_of_reference_uid']}",
                path,
                "open the series the contours were drawn on",
            )
    elif not ours and series_uids:
        warnings.append(
            f"{path.name}: the structure set references series {', '.join(sorted(series_uids))}, not the loaded "
            "series; it shares the frame of reference and was placed by world position"
        )


def _segment(roi: Dataset, roi_contour: Dataset | None, observation: Dataset | None, segment_id: int) -> Segment:
    name = str(roi.get("ROIName") or f"ROI {roi.get('ROINumber', segment_id)}")
    entry = terminology.find(name)
    color: tuple[int, int, int] | None = None
    if roi_contour is not None and roi_contour.get("ROIDisplayColor") is not None:
        values = [int(v) for v in roi_contour.ROIDisplayColor]
        if len(values) == 3:
            r, g, b = (min(max(v, 0), 255) for v in values)
            color = (r, g, b)
    fields: dict[str, Any] = {}
    if entry is not None:
        fields.update({k: v for k, v in entry.to_segment_fields().items() if k != "color"})
    if observation is not None:
        code = _code(observation.get("RTROIIdentificationCodeSequence"))
        if code is not None:
            fields["type"] = code
    algorithm_text = str(roi.get("ROIGenerationAlgorithm", "MANUAL")).upper()
    algorithm_type = (
        AlgorithmType(algorithm_text) if algorithm_text in AlgorithmType.__members__ else AlgorithmType.MANUAL
    )
    description = str(roi.get("ROIGenerationDescription", ""))
    return Segment(
        id=segment_id,
        name=name,
        color=color or (entry.color if entry else DEFAULT_COLORS[(segment_id - 1) % len(DEFAULT_COLORS)]),
        algorithm_type=algorithm_type,
        algorithm=AlgorithmInfo(description, "") if description and algorithm_type != AlgorithmType.MANUAL else None,
        notes=str(roi.get("ROIDescription", "")),
        **fields,
    )


def _points(contour: Dataset, roi_name: str, number: int, path: Path) -> NDArray[np.float64]:
    data = contour.get("ContourData")
    try:
        points = np.array([float(v) for v in data or []], dtype=np.float64)
    except (TypeError, ValueError):
        raise MalformedSegmentationError(
            f"ROI '{roi_name}' contour {number}: ContourData is not numeric", path
        ) from None
    if points.size == 0 or points.size % 3 or not np.all(np.isfinite(points)):
        raise MalformedSegmentationError(
            f"ROI '{roi_name}' contour {number}: ContourData must hold x, y, z triplets ({points.size} values)", path
        )
    declared = contour.get("NumberOfContourPoints")
    if declared not in (None, "") and int(declared) != points.size // 3:
        raise MalformedSegmentationError(
            f"ROI '{roi_name}' contour {number}: NumberOfContourPoints says {int(declared)}, ContourData holds "
            f"{points.size // 3} points",
            path,
        )
    return points.reshape(-1, 3)


def read_rtstruct(
    path: str | Path,
    reference: Volume,
    *,
    check_references: bool = True,
    progress: ProgressCallback | None = None,
) -> SegmentationImport:
    """Rasterise an RTSTRUCT file's closed contours onto ``reference``'s grid (one segment per ROI)."""
    source = Path(path)
    report = Progress(progress, what="reading the RTSTRUCT")
    try:
        ds = pydicom.dcmread(source)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise SegmentationImportError(f"not a readable DICOM file ({one_line(exc)})", source) from None
    if str(ds.get("SOPClassUID", "")) != RT_STRUCTURE_SET_STORAGE:
        raise SegmentationImportError(f"not an RT Structure Set (SOP class {ds.get('SOPClassUID', 'missing')})", source)
    try:
        return _read(ds, source, reference, check_references, report)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedSegmentationError(f"the structure set is incomplete ({one_line(exc)})", source) from None


def _read(ds: Dataset, path: Path, reference: Volume, check: bool, report: Progress) -> SegmentationImport:
    warnings: list[str] = []
    if check:
        _check_references(ds, reference, path, warnings)
    grid = Grid.of(reference)
    k_n, j_n, i_n = grid.shape
    inverse = np.linalg.inv(grid.affine)
    rois = {int(r.ROINumber): r for r in ds.get("StructureSetROISequence", [])}
    contours_by_roi = {int(c.ReferencedROINumber): c for c in ds.get("ROIContourSequence", [])}
    observations = {
        int(o.ReferencedROINumber): o for o in ds.get("RTROIObservationsSequence", []) if "ReferencedROINumber" in o
    }
    orphans = sorted(set(contours_by_roi) - set(rois))
    if orphans:
        raise MalformedSegmentationError(
            f"contours reference ROI number(s) {orphans} that the structure set does not define", path
        )
    between = 0
    skipped = 0
    clipped = 0
    segments: dict[int, Segment] = {}
    slices: dict[int, dict[int, list[NDArray[np.float64]]]] = {}
    for index, (number, roi) in enumerate(sorted(rois.items())):
        segment = _segment(roi, contours_by_roi.get(number), observations.get(number), number)
        segments[number] = segment
        per_slice: dict[int, list[NDArray[np.float64]]] = defaultdict(list)
        roi_contour = contours_by_roi.get(number)
        for c_index, contour in enumerate(roi_contour.get("ContourSequence", []) if roi_contour else [], start=1):
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).upper()
            if kind != "CLOSED_PLANAR":
                skipped += 1
                continue
            world = _points(contour, segment.name, c_index, path)
            ijk = world @ inverse[:3, :3].T + inverse[:3, 3]
            low = -0.5 - OUTSIDE_TOLERANCE_VOXELS
            high = np.array([i_n, j_n, k_n]) - 0.5 + OUTSIDE_TOLERANCE_VOXELS
            if np.any(ijk < low) or np.any(ijk > high):
                worst = world[int(np.argmax(np.max(np.maximum(low - ijk, ijk - high), axis=1)))]
                raise ContourOutsideImageError(
                    f"ROI '{segment.name}' contour {c_index} has points outside the image {volume_name(reference)} "
                    f"(e.g. {', '.join(f'{v:.1f}' for v in worst)} mm LPS)",
                    path,
                    "check that the structure set was drawn on this image",
                )
            k_values = ijk[:, 2]
            if np.ptp(k_values) > 2 * PLANE_TOLERANCE_VOXELS:
                raise MalformedSegmentationError(
                    f"ROI '{segment.name}' contour {c_index} is not parallel to the image's slices", path
                )
            k = int(np.rint(k_values.mean()))
            if abs(k_values.mean() - k) > PLANE_TOLERANCE_VOXELS:
                between += 1
            if not 0 <= k < k_n:
                clipped += 1
                continue
            per_slice[k].append(ijk[:, :2])
        slices[number] = per_slice
        report.report(0.8 * (index + 1) / max(len(rois), 1), f"rasterising {segment.name}")

    def pieces(number: int) -> list[Piece]:
        result = []
        for k, polygons in slices[number].items():
            piece = crop((slice(k, k + 1), slice(0, j_n), slice(0, i_n)), fill_polygons(polygons, (j_n, i_n))[None])
            if piece is not None:
                result.append(piece)
        return result

    layers, placement = place_segments_in_layers(grid.shape, ((n, pieces(n)) for n in sorted(segments)))
    for number, (layer, value) in placement.items():
        segments[number].layer = layer
        segments[number].label_value = value
    if between:
        warnings.append(
            f"{path.name}: {between} contour(s) lie between the image's slices and were drawn on the nearest slice"
        )
    if skipped:
        warnings.append(f"{path.name}: {skipped} point or open contour(s) enclose no area and were skipped")
    if clipped:
        warnings.append(f"{path.name}: {clipped} contour(s) lie just beyond the first or last slice and were left out")
    provenance = read_private_block(ds)
    report.report(1.0, "structure set read")
    return SegmentationImport(
        segmentation=Segmentation(grid, layers, segments),
        match="resampled" if between else "exact",
        format="RTSTRUCT",
        warnings=warnings,
        sources=[str(path)],
        provenance=provenance.to_json() if provenance else None,
    )


__all__ = ["RT_STRUCTURE_SET_STORAGE", "read_rtstruct"]
