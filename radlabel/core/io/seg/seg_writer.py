"""DICOM SEG export through highdicom: BINARY, FRACTIONAL and LABELMAP.

Geometry is written from radlabel's own grid, never copied from the source files: each k-slice of the
segmentation is one plane with ``ImagePositionPatient = index_to_world(0, 0, k)``, the i/j axes as
``ImageOrientationPatient`` and (row, column) spacing as PixelSpacing; ``SpacingBetweenSlices`` is the
grid's k spacing (dcmqi otherwise takes the slice spacing from SliceThickness, which differs from the
spacing on many scanners). For series loaded as they are, the planes coincide with the source images and
highdicom adds per-frame references to them. For series that were resampled on load (gantry tilt,
irregular spacing), the SEG lies on the resampled grid in the same frame of reference and references the
source series as a whole: it then overlays the image exactly in world space (as the standard defines it)
and in every viewer that places SEG frames by position, which is the only way a tilted series can be
segmented on an orthogonal grid.

Empty frames are omitted (the standard allows it; readers place frames by position). A segment without
any voxel is still described in the SegmentSequence; a segmentation with no voxel at all gets one empty
frame so that the object stays valid.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from numpy.typing import NDArray
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radlabel import __version__
from radlabel.core.io.atomic import atomic_write
from radlabel.core.io.seg.common import ExportResult, check_same_grid, ordered_segments
from radlabel.core.io.seg.descriptions import segment_description
from radlabel.core.io.seg.errors import OverlappingSegmentsError, SegmentationExportError
from radlabel.core.io.seg.provenance import Provenance, write_private_block
from radlabel.core.io.seg.sources import source_headers
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.segmentation.model import Segment, Segmentation
from radlabel.core.volume import Volume


class SegKind(enum.StrEnum):
    BINARY = "BINARY"
    FRACTIONAL = "FRACTIONAL"
    LABELMAP = "LABELMAP"


def _ds(value: float) -> str:
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8g}"


class _Frames:
    """Per-plane views of the layers with segment numbers 1..N, without a full-size mask per segment."""

    def __init__(self, segmentation: Segmentation, segments: list[Segment]) -> None:
        self.segmentation = segmentation
        self.segments = segments
        k_n = segmentation.grid.shape[0]
        self.luts: dict[int, NDArray[Any]] = {}
        dtype = np.uint8 if len(segments) < 256 else np.uint16
        for number, segment in enumerate(segments, start=1):
            layer = segmentation.layers[segment.layer]
            lut = self.luts.setdefault(segment.layer, np.zeros(int(np.iinfo(layer.dtype).max) + 1, dtype))
            lut[segment.label_value] = number
        self.content = np.zeros(k_n, bool)
        self.present: set[int] = set()
        occupied_planes: dict[int, NDArray[np.bool_]] = {}
        for index, lut in self.luts.items():
            layer = segmentation.layers[index]
            planes = np.flatnonzero(layer.reshape(k_n, -1).any(axis=1))
            values = np.flatnonzero(np.bincount(layer[planes].ravel(), minlength=lut.size)[: lut.size])
            numbers = {int(lut[v]) for v in values if lut[v]}
            self.present |= {segments[n - 1].id for n in numbers}
            occupied_planes[index] = np.zeros(k_n, bool)
            occupied_planes[index][planes] = True
            self.content |= occupied_planes[index]
        self.overlapping: list[str] = []
        if len(self.luts) > 1:
            shared = np.flatnonzero(np.sum(list(occupied_planes.values()), axis=0) > 1)
            count = np.zeros((shared.size, *segmentation.grid.shape[1:]), np.uint8)
            for index, lut in self.luts.items():
                count += lut[segmentation.layers[index][shared]] > 0
            if np.any(count > 1):
                where = count > 1
                self.overlapping = [s.name for s in segments if np.any(self.mask(s, shared)[where])]

    def mask(self, segment: Segment, planes: NDArray[np.int64]) -> NDArray[np.bool_]:
        result: NDArray[np.bool_] = self.segmentation.layers[segment.layer][planes] == segment.label_value
        return result

    def numbers(self, planes: NDArray[np.int64]) -> NDArray[Any]:
        """Segment numbers on ``planes`` (segments do not overlap)."""
        result: NDArray[Any] | None = None
        for index, lut in self.luts.items():
            mapped = lut[self.segmentation.layers[index][planes]]
            if result is None:
                result = mapped
            else:
                np.copyto(result, mapped, where=mapped > 0)
        assert result is not None
        return result


def _check_probabilities(
    probabilities: dict[int, NDArray[Any]], segmentation: Segmentation, path: Path
) -> dict[int, NDArray[np.float32]]:
    checked = {}
    for segment_id, values in probabilities.items():
        if segment_id not in segmentation.segments:
            raise SegmentationExportError(
                f"a probability map is given for segment {segment_id}, which does not exist", path
            )
        array = np.asarray(values, dtype=np.float32)
        if array.shape != segmentation.grid.shape:
            raise SegmentationExportError(
                f"the probability map of segment {segment_id} has shape {array.shape}, the grid "
                f"{segmentation.grid.shape}",
                path,
            )
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise SegmentationExportError(
                f"the probability map of segment {segment_id} holds values outside 0..1", path
            )
        checked[segment_id] = array
    return checked


def export_dicom_seg(
    volume: Volume,
    segmentation: Segmentation,
    path: str | Path,
    *,
    kind: SegKind | str = SegKind.BINARY,
    probabilities: dict[int, NDArray[Any]] | None = None,
    provenance: Provenance | None = None,
    series_description: str | None = None,
    series_number: int = 300,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Write ``segmentation`` (on ``volume``'s grid; ``volume`` loaded from DICOM) as a DICOM SEG file.

    ``kind``: ``BINARY`` (1 bit, segments may overlap), ``FRACTIONAL`` (8 bit; ``probabilities`` maps segment
    ids to float arrays in [0, 1] on the grid, other segments are written as 0/1) or ``LABELMAP`` (the new
    Label Map Segmentation SOP class; refused with :class:`OverlappingSegmentsError` when segments overlap).
    ``provenance`` puts the reader's identity in ContentCreatorName and the audit head in
    ContentDescription (short) and the ``RADLABEL AUDIT`` private block (full).
    """
    target = Path(path).expanduser()
    report = Progress(progress, what="DICOM SEG export")
    kind = SegKind(str(kind).upper())
    provenance = provenance or Provenance.for_user()
    check_same_grid(volume, segmentation, target)
    segments = ordered_segments(segmentation)
    if not segments:
        raise SegmentationExportError("the segmentation has no segments to export", target)
    if probabilities and kind != SegKind.FRACTIONAL:
        raise SegmentationExportError("probability maps can only be written into a FRACTIONAL SEG", target)
    report.report(0.0, "reading the source DICOM headers")
    sources = source_headers(volume)
    report.report(0.2, "preparing frames")

    maps = _check_probabilities(probabilities or {}, segmentation, target)
    frames = _Frames(segmentation, segments)
    if kind == SegKind.LABELMAP and frames.overlapping:
        names = frames.overlapping
        raise OverlappingSegmentsError(
            f"segments overlap ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}), and a LABELMAP SEG "
            "holds one segment per voxel",
            target,
            "export as BINARY (the default), which keeps overlapping segments",
        )
    content = frames.content.copy()
    for values in maps.values():
        content |= values.reshape(values.shape[0], -1).any(axis=1)
    planes = np.flatnonzero(content)
    warnings: list[str] = []
    all_empty = planes.size == 0
    if all_empty:
        planes = np.array([0])
        warnings.append("the segmentation is empty; the SEG holds its segment descriptions and one empty frame")
    empty = [s.name for s in segments if s.id not in frames.present and s.id not in maps]
    if empty:
        warnings.append(f"segment(s) without voxels are described but have no frames: {', '.join(empty)}")

    pixel_array: NDArray[Any]
    if kind == SegKind.FRACTIONAL:
        pixel_array = np.zeros((planes.size, *segmentation.grid.shape[1:], len(segments)), np.float32)
        for n, segment in enumerate(segments):
            pixel_array[..., n] = maps[segment.id][planes] if segment.id in maps else frames.mask(segment, planes)
    elif frames.overlapping:
        pixel_array = np.stack([frames.mask(s, planes) for s in segments], axis=-1).astype(np.uint8)
    else:
        pixel_array = frames.numbers(planes)

    direction = volume.direction
    positions = volume.index_to_world(np.column_stack([np.zeros(planes.size), np.zeros(planes.size), planes]))
    plane_positions = [hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, list(p)) for p in positions]
    orientation = hd.PlaneOrientationSequence(
        hd.CoordinateSystemNames.PATIENT, [*direction[:, 0].tolist(), *direction[:, 1].tolist()]
    )
    spacing = volume.spacing
    measures = hd.PixelMeasuresSequence(
        pixel_spacing=[float(spacing[1]), float(spacing[0])],
        slice_thickness=float(spacing[2]),
        spacing_between_slices=float(spacing[2]),
    )
    report.report(0.4, "encoding the SEG")
    description = series_description or f"radlabel {kind.value} SEG"
    try:
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixel_array,
            segmentation_type=kind.value,
            segment_descriptions=[segment_description(s, n) for n, s in enumerate(segments, start=1)],
            series_instance_uid=generate_uid(),
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="radlabel",
            manufacturer_model_name="radlabel",
            software_versions=str(__version__),
            device_serial_number=f"radlabel-{__version__}",
            fractional_type="PROBABILITY",
            max_fractional_value=255,
            content_description=provenance.description(),
            content_creator_name=provenance.user,
            content_label="RADLABEL_SEG",
            transfer_syntax_uid=ExplicitVRLittleEndian,
            pixel_measures=measures,
            plane_orientation=orientation,
            plane_positions=plane_positions,
            omit_empty_frames=not all_empty,
            series_description=description[:64],
        )
    except (ValueError, TypeError) as exc:
        raise SegmentationExportError(f"highdicom refused the segmentation ({exc})", target) from exc
    _finish(seg, volume)
    write_private_block(seg, provenance)
    report.report(0.9, "writing the file")
    atomic_write(target, lambda p: seg.save_as(p, enforce_file_format=True))
    if volume.metadata.get("resampled"):
        warnings.append(
            "the image was resampled on load (gantry tilt or irregular spacing): the SEG lies on the resampled "
            "grid, in the series' frame of reference, and references the source series"
        )
    report.report(1.0, "SEG written")
    return ExportResult(
        path=target,
        format=f"DICOM SEG {kind.value}",
        segments=len(segments),
        frames=int(seg.NumberOfFrames),
        warnings=warnings,
        sop_instance_uid=str(seg.SOPInstanceUID),
    )


def _finish(seg: hd.seg.Segmentation, volume: Volume) -> None:
    """Corrections highdicom leaves to the caller."""
    # highdicom replaces the given pixel measures with the source's when the pixel spacing matches, which
    # drops SpacingBetweenSlices; dcmqi then stacks frames at SliceThickness. Write the grid's spacing.
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    measures.SpacingBetweenSlices = _ds(float(volume.spacing[2]))
    if "SliceThickness" not in measures or not measures.SliceThickness:
        measures.SliceThickness = _ds(float(volume.spacing[2]))
    # Patient module: DeidentificationMethod is Type 1C when PatientIdentityRemoved is YES; anonymisers
    # often drop it from the images, and the SEG copies the YES.
    if str(seg.get("PatientIdentityRemoved", "")).upper() == "YES" and not (
        seg.get("DeidentificationMethod") or seg.get("DeidentificationMethodCodeSequence")
    ):
        seg.DeidentificationMethod = "not stated in the source images"


__all__ = ["SegKind", "export_dicom_seg"]
