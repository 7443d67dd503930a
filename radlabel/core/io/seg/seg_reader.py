"""DICOM SEG import onto a loaded volume: every frame placed by its own world geometry.

Handles the three segmentation types (BINARY, FRACTIONAL, LABELMAP), overlapping segments (extra layers),
sparse frames, frames in any order or orientation that coincides with the image's voxels, and the encodings
found in practice: native little/big endian, 1-bit frames that do not end on a byte boundary, JPEG 2000, RLE
(also 1-bit, which pydicom's RLE decoders refuse) and the Deflated Image Frame Compression transfer syntax
(decoded here; pydicom 3.0 does not know it).

Placement: when every frame's pixel centres are voxel centres of the image (possibly flipped, permuted,
cropped or sparse), frames are copied exactly. Otherwise (another grid, the original slices of a tilted
series that was resampled on load, ...) the frames are resampled by nearest neighbour with a warning; a SEG
that misses the image entirely raises :class:`NoOverlapError`.

References: the SEG's FrameOfReferenceUID must be the image's; when the SEG references the image's series,
every instance it references must be one of the image's slices. A SEG of another series in the same frame
of reference is placed by world position with a warning. Nothing passed in is modified.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import iter_pixels
from pydicom.uid import RLELossless

from radlabel.core.errors import UnsupportedTransferSyntaxError
from radlabel.core.io.nifti import one_line
from radlabel.core.io.seg.common import SegmentationImport, place_segments_in_layers
from radlabel.core.io.seg.descriptions import segment_from_description
from radlabel.core.io.seg.errors import (
    MalformedSegmentationError,
    NoOverlapError,
    ReferenceMismatchError,
    SegmentationImportError,
)
from radlabel.core.io.seg.placement import FramePlane, Piece, assemble, exact_map, place_exact, resample_frames
from radlabel.core.io.seg.provenance import read_private_block
from radlabel.core.io.seg.sources import reference_summary, volume_name
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.segmentation.model import Grid, Segmentation
from radlabel.core.volume import Volume

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
SEG_SOP_CLASSES = (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
DEFLATED_IMAGE_FRAME_COMPRESSION = "1.2.840.10008.1.2.8.1"


# ----------------------------------------------------------------------------------------------------------
# Header
# ----------------------------------------------------------------------------------------------------------


def _group(ds: Dataset, frame: int, name: str) -> Dataset | None:
    """Functional group ``name`` of frame ``frame`` (per-frame first, then shared)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame) and name in per_frame[frame]:
        sequence = per_frame[frame].get(name)
        return sequence[0] if sequence else None
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and name in shared[0]:
        sequence = shared[0].get(name)
        return sequence[0] if sequence else None
    return None


def _floats(value: Any, count: int, what: str, path: Path) -> NDArray[np.float64]:
    try:
        array = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.size != count or not np.all(np.isfinite(array)):
        raise MalformedSegmentationError(f"{what} must hold {count} numbers, it holds {value!r}", path)
    return array


def _frame_planes(ds: Dataset, count: int, volume: Volume, path: Path) -> list[FramePlane]:
    rows, cols = int(ds.Rows), int(ds.Columns)
    positions_by_uid = {
        str(uid): np.asarray(pos, float)
        for uid, pos in zip(
            volume.metadata.get("sop_instance_uids") or [], volume.metadata.get("source_positions") or [], strict=False
        )
    }
    planes = []
    for n in range(count):
        orientation = _group(ds, n, "PlaneOrientationSequence")
        measures = _group(ds, n, "PixelMeasuresSequence")
        position = _group(ds, n, "PlanePositionSequence")
        if orientation is None or "ImageOrientationPatient" not in orientation:
            raise MalformedSegmentationError(f"frame {n + 1} has no ImageOrientationPatient", path)
        if measures is None or "PixelSpacing" not in measures:
            raise MalformedSegmentationError(f"frame {n + 1} has no PixelSpacing", path)
        iop = _floats(orientation.ImageOrientationPatient, 6, f"frame {n + 1} ImageOrientationPatient", path)
        spacing = _floats(measures.PixelSpacing, 2, f"frame {n + 1} PixelSpacing", path)
        if position is not None and "ImagePositionPatient" in position:
            ipp = _floats(position.ImagePositionPatient, 3, f"frame {n + 1} ImagePositionPatient", path)
        else:
            # No position: only the referenced source image can say where the frame is.
            uid = _frame_source_uids(ds, n)
            known = [positions_by_uid[u] for u in uid if u in positions_by_uid]
            if not known:
                raise MalformedSegmentationError(
                    f"frame {n + 1} has neither a position nor a reference to one of the image's slices", path
                )
            ipp = known[0]
        row_c, col_c = iop[:3], iop[3:]
        if abs(np.linalg.norm(row_c) - 1) > 1e-2 or abs(np.linalg.norm(col_c) - 1) > 1e-2 or abs(row_c @ col_c) > 1e-2:
            raise MalformedSegmentationError(
                f"frame {n + 1}: ImageOrientationPatient is not two unit vectors at 90 deg", path
            )
        if np.any(spacing <= 0):
            raise MalformedSegmentationError(f"frame {n + 1}: PixelSpacing must be positive", path)
        planes.append(
            FramePlane(
                ipp,
                row_c / np.linalg.norm(row_c),
                col_c / np.linalg.norm(col_c),
                float(spacing[0]),
                float(spacing[1]),
                rows,
                cols,
            )
        )
    return planes


def _frame_source_uids(ds: Dataset, frame: int) -> list[str]:
    derivation = _group(ds, frame, "DerivationImageSequence")
    if derivation is None:
        return []
    return [str(item.get("ReferencedSOPInstanceUID", "")) for item in derivation.get("SourceImageSequence", [])]


def _frame_segment_numbers(ds: Dataset, count: int, labelmap: bool, path: Path) -> list[int]:
    if labelmap:
        return [0] * count
    numbers = []
    for n in range(count):
        ident = _group(ds, n, "SegmentIdentificationSequence")
        if ident is None or "ReferencedSegmentNumber" not in ident:
            raise MalformedSegmentationError(f"frame {n + 1} does not say which segment it belongs to", path)
        numbers.append(int(ident.ReferencedSegmentNumber))
    return numbers


def _check_references(ds: Dataset, volume: Volume, count: int, path: Path, warnings: list[str]) -> None:
    ref = reference_summary(volume)
    image = volume_name(volume)
    seg_for = str(ds.get("FrameOfReferenceUID", ""))
    if not ref["frame_of_reference_uid"] or not ref["series_instance_uid"]:
        warnings.append(
            f"{path.name}: the image has no DICOM identity to check references against; placed by world position"
        )
        return
    if seg_for and seg_for != ref["frame_of_reference_uid"]:
        raise ReferenceMismatchError(
            f"the SEG is in frame of reference {seg_for}, the image {image} in {ref['frame_of_reference_uid']}: "
            "its coordinates do not apply to this image",
            path,
            "open the series the SEG was drawn on",
        )
    known = set(ref["sop_instance_uids"])
    referenced_series = list(ds.get("ReferencedSeriesSequence", []))
    for study in ds.get("StudiesContainingOtherReferencedInstancesSequence", []):
        referenced_series.extend(study.get("ReferencedSeriesSequence", []))
    other_instances: set[str] = set()
    ours = False
    for item in referenced_series:
        uids = [str(i.get("ReferencedSOPInstanceUID", "")) for i in item.get("ReferencedInstanceSequence", [])]
        if str(item.get("SeriesInstanceUID", "")) == ref["series_instance_uid"]:
            ours = True
            missing = [u for u in uids if u not in known]
            if missing:
                raise ReferenceMismatchError(
                    f"the SEG references image {missing[0]} of series {ref['series_instance_uid']}, which is not "
                    f"one of the {len(known)} slices of the loaded image"
                    + (f" ({len(missing)} such references)" if len(missing) > 1 else ""),
                    path,
                    "load the complete series the SEG was drawn on",
                )
        else:
            other_instances.update(uids)
    if ours:
        for n in range(count):
            for uid in _frame_source_uids(ds, n):
                if uid and uid not in known and uid not in other_instances:
                    raise ReferenceMismatchError(
                        f"frame {n + 1} is derived from image {uid}, which is neither in the loaded series nor among "
                        "the SEG's referenced instances",
                        path,
                    )
    elif referenced_series:
        named = ", ".join(sorted({str(i.get("SeriesInstanceUID", "")) for i in referenced_series}))
        warnings.append(
            f"{path.name}: the SEG references series {named}, not the loaded series {ref['series_instance_uid']}; "
            "it shares the frame of reference and was placed by world position"
        )


# ----------------------------------------------------------------------------------------------------------
# Pixels
# ----------------------------------------------------------------------------------------------------------


def _packbits(data: bytes) -> bytes:
    """Decode one PackBits (DICOM RLE) segment."""
    out = bytearray()
    index, size = 0, len(data)
    while index < size:
        header = data[index]
        index += 1
        if header < 128:
            out += data[index : index + header + 1]
            index += header + 1
        elif header > 128:
            if index < size:
                out += bytes([data[index]]) * (257 - header)
            index += 1
    return bytes(out)


def _native_frame(raw: bytes, rows: int, cols: int, bits: int, frame: int, path: Path) -> NDArray[Any]:
    pixels = rows * cols
    if bits == 1:
        needed = math.ceil(pixels / 8)
        if len(raw) < needed:
            raise MalformedSegmentationError(
                f"frame {frame + 1} decodes to {len(raw)} bytes, {needed} are needed", path
            )
        bits_array = np.unpackbits(np.frombuffer(raw, np.uint8, count=needed), bitorder="little")[:pixels]
        return bits_array.reshape(rows, cols)
    dtype = np.dtype(np.uint8) if bits == 8 else np.dtype("<u2")
    needed = pixels * dtype.itemsize
    if len(raw) < needed:
        raise MalformedSegmentationError(f"frame {frame + 1} decodes to {len(raw)} bytes, {needed} are needed", path)
    return np.frombuffer(raw, dtype, count=pixels).reshape(rows, cols)


def _iter_frames(ds: Dataset, count: int, path: Path) -> Iterator[NDArray[Any]]:
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
    if "PixelData" not in ds:
        raise MalformedSegmentationError("the SEG holds no pixel data", path)
    if syntax == DEFLATED_IMAGE_FRAME_COMPRESSION or (syntax == RLELossless and bits == 1):
        for n, fragment in enumerate(generate_frames(ds.PixelData, number_of_frames=count)):
            if syntax == DEFLATED_IMAGE_FRAME_COMPRESSION:
                try:
                    raw = zlib.decompress(fragment, -15)
                except zlib.error as exc:
                    raise MalformedSegmentationError(f"frame {n + 1} cannot be inflated ({exc})", path) from None
            else:
                segments = int.from_bytes(fragment[:4], "little")
                if segments != 1:
                    raise MalformedSegmentationError(f"1-bit RLE frame {n + 1} has {segments} segments, not 1", path)
                raw = _packbits(fragment[int.from_bytes(fragment[4:8], "little") :])
            yield _native_frame(raw, rows, cols, bits, n, path)
        return
    transfer = pydicom.uid.UID(syntax)
    if not transfer.is_encapsulated:
        needed = math.ceil(rows * cols * count * bits / 8)
        if len(ds.PixelData) < needed:
            frames_there = len(ds.PixelData) * 8 // max(rows * cols * bits, 1)
            raise MalformedSegmentationError(
                f"the pixel data hold {frames_there} frame(s) of {cols}x{rows}, the header announces {count}: "
                "frames are missing",
                path,
            )
    try:
        for frame in iter_pixels(ds, raw=True):
            yield frame if frame.ndim == 2 else frame.reshape(rows, cols)
    except (NotImplementedError, RuntimeError) as exc:
        raise UnsupportedTransferSyntaxError(
            f"the SEG's pixel data ({transfer.name or syntax}) cannot be decoded ({one_line(exc)})", path
        ) from None
    except (ValueError, KeyError, IndexError) as exc:
        raise MalformedSegmentationError(f"the SEG's pixel data cannot be decoded ({one_line(exc)})", path) from None


# ----------------------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------------------


def _half_gap(ds: Dataset, planes: list[FramePlane], grid: Grid) -> float:
    measures = _group(ds, 0, "PixelMeasuresSequence")
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = measures.get(keyword) if measures is not None else None
        if value not in (None, ""):
            try:
                if float(value) > 0:
                    return float(value) / 2 + 1e-3
            except (TypeError, ValueError):
                pass
    normal = planes[0].normal
    w = np.unique(np.round([float(p.position @ normal) for p in planes], 4))
    if w.size > 1:
        return float(np.min(np.diff(w))) / 2 + 1e-3
    return float(max(grid.spacing)) / 2 + 1e-3


def read_dicom_seg(
    path: str | Path,
    reference: Volume,
    *,
    check_references: bool = True,
    progress: ProgressCallback | None = None,
) -> SegmentationImport:
    """Read a DICOM SEG file onto ``reference``'s grid as a new :class:`Segmentation`.

    Raises :class:`MalformedSegmentationError` (broken file), :class:`ReferenceMismatchError` (another frame of
    reference, or instances that are not the image's; skip with ``check_references=False``),
    :class:`NoOverlapError` and :class:`UnsupportedTransferSyntaxError`.
    """
    source = Path(path)
    report = Progress(progress, what="reading the DICOM SEG")
    try:
        ds = pydicom.dcmread(source)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise SegmentationImportError(f"not a readable DICOM file ({one_line(exc)})", source) from None
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in SEG_SOP_CLASSES:
        raise SegmentationImportError(
            f"not a DICOM SEG (SOP class {sop_class or 'missing'}, modality {ds.get('Modality', '?')})", source
        )
    try:
        return _read(ds, source, reference, check_references, report)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedSegmentationError(f"the SEG is incomplete or inconsistent ({one_line(exc)})", source) from None


def _read(ds: Dataset, path: Path, reference: Volume, check: bool, report: Progress) -> SegmentationImport:
    grid = Grid.of(reference)
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    labelmap = seg_type == "LABELMAP" or str(ds.SOPClassUID) == LABEL_MAP_SEGMENTATION_STORAGE
    if seg_type not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise MalformedSegmentationError(f"unknown SegmentationType {seg_type!r}", path)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != count:
        raise MalformedSegmentationError(
            f"the header announces {count} frames but describes {len(per_frame)}: frames were removed or added", path
        )
    descriptions = {int(item.SegmentNumber): item for item in ds.get("SegmentSequence", [])}
    if not descriptions:
        raise MalformedSegmentationError("the SEG describes no segments (SegmentSequence is empty)", path)
    warnings: list[str] = []
    if check:
        _check_references(ds, reference, count, path, warnings)
    planes = _frame_planes(ds, count, reference, path)
    numbers = _frame_segment_numbers(ds, count, labelmap, path)
    undescribed = sorted({n for n in numbers if n not in descriptions})
    if undescribed and not labelmap:
        raise MalformedSegmentationError(f"frames belong to segment(s) {undescribed} that are not described", path)
    padding = ds.get("PixelPaddingValue")
    padding = int(padding) if padding is not None and int(padding) not in descriptions else None
    fractional = seg_type == "FRACTIONAL"
    max_value = float(ds.get("MaximumFractionalValue", 255) or 255) if fractional else 1.0
    mappings = [exact_map(p, grid) for p in planes]
    exact = all(m is not None for m in mappings)
    report.report(0.1, "decoding frames")

    pieces: dict[int, list[Piece]] = {}
    pending: list[tuple[FramePlane, NDArray[Any], Any]] = []
    lost = 0
    total = 0
    decoded = 0
    for n, frame in enumerate(_iter_frames(ds, count, path)):
        decoded += 1
        if n >= count:
            break
        values: NDArray[Any]
        if fractional:
            values = (frame.astype(np.float32) / np.float32(max_value)).clip(0.0, 1.0)
        elif labelmap:
            values = frame.astype(np.uint16)
            if padding is not None:
                values = np.where(values == padding, 0, values)
        else:
            values = frame.astype(bool)
        total += int(np.count_nonzero(values))
        if exact:
            mapping = mappings[n]
            assert mapping is not None
            piece, outside = place_exact(values, mapping, grid.shape)
            lost += outside
            if piece is not None:
                _split(piece, numbers[n], labelmap, pieces)
        else:
            if np.any(values):
                pending.append((planes[n], values, numbers[n]))
        if n % 32 == 0:
            report.report(0.1 + 0.6 * (n + 1) / count, f"decoding frame {n + 1} of {count}")
    if decoded < count:
        raise MalformedSegmentationError(f"the pixel data hold {decoded} frame(s), the header announces {count}", path)
    if not exact:
        _check_coplanar([p for p, _, _ in pending], path)
        resampled = resample_frames(pending, grid, _half_gap(ds, planes, grid))
        for key, items in resampled.items():
            for piece in items:
                _split(piece, key, labelmap, pieces)
        placed = sum(int(np.count_nonzero(v)) for items in pieces.values() for _, v in items)
        if total and not placed:
            raise _no_overlap(path, reference)
        warnings.append(
            f"{path.name}: the SEG's frames do not lie on the image's voxels; they were resampled onto the image "
            "grid (nearest neighbour)"
        )
    elif total and lost == total:
        raise _no_overlap(path, reference)
    elif lost:
        warnings.append(f"{path.name}: {lost} segmented pixel(s) lie outside the image and were left out")
    report.report(0.75, "building segments")
    return _build(ds, path, grid, descriptions, pieces, fractional, warnings, exact)


def _split(piece: Piece, key: int, labelmap: bool, pieces: dict[int, list[Piece]]) -> None:
    box, values = piece
    if not labelmap:
        pieces.setdefault(key, []).append(piece)
        return
    for number in np.unique(values):
        if number:
            pieces.setdefault(int(number), []).append((box, values == number))


def _check_coplanar(planes: list[FramePlane], path: Path) -> None:
    if not planes:
        return
    normal = planes[0].normal
    for plane in planes[1:]:
        if abs(abs(float(plane.normal @ normal)) - 1.0) > 1e-4:
            raise MalformedSegmentationError(
                "the SEG's frames lie in several orientations and do not coincide with the image's voxels; radlabel "
                "resamples only SEGs whose frames are parallel",
                path,
            )


def _no_overlap(path: Path, reference: Volume) -> NoOverlapError:
    return NoOverlapError(
        f"no segmented voxel of the SEG lies inside the image {volume_name(reference)}",
        path,
        "check that the SEG was drawn on this image",
    )


def _build(
    ds: Dataset,
    path: Path,
    grid: Grid,
    descriptions: dict[int, Dataset],
    pieces: dict[int, list[Piece]],
    fractional: bool,
    warnings: list[str],
    exact: bool,
) -> SegmentationImport:
    numbers = sorted(n for n in descriptions if n > 0)
    undescribed = sorted(set(pieces) - set(numbers))
    if undescribed:
        warnings.append(f"{path.name}: pixel values {undescribed} have no segment description and were left out")

    def binary(items: list[Piece]) -> list[Piece]:
        return [(box, values >= 0.5) for box, values in items] if fractional else items

    layers, placement = place_segments_in_layers(grid.shape, ((n, binary(pieces.get(n, []))) for n in numbers))
    segments = {
        number: segment_from_description(descriptions[number], number, *placement[number]) for number in numbers
    }
    probabilities = (
        {n: assemble(pieces[n], grid.shape, np.float32) for n in numbers if pieces.get(n)} if fractional else {}
    )
    kind = "LABELMAP" if str(ds.SOPClassUID) == LABEL_MAP_SEGMENTATION_STORAGE else str(ds.get("SegmentationType"))
    provenance = read_private_block(ds)
    return SegmentationImport(
        segmentation=Segmentation(grid, layers, segments),
        match="exact" if exact else "resampled",
        format=f"DICOM SEG {kind}",
        warnings=warnings,
        sources=[str(path)],
        probabilities=probabilities,
        provenance=provenance.to_json() if provenance else None,
    )


__all__ = ["SEG_SOP_CLASSES", "read_dicom_seg"]
