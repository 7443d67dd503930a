"""Read DICOM headers into one `FrameRecord` per 2D image plane (classic file, enhanced frame, mosaic tile).

Every later step (grouping into series, sorting, geometry, pixel reading) works on these records only, so
classic, enhanced multi-frame and mosaic files of the same acquisition go through the same code and give
the same volume.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radlabel.core.errors import (
    CorruptPixelDataError,
    InputError,
    NoPixelDataError,
    NotDicomError,
    UnsupportedTransferSyntaxError,
)
from radlabel.core.io.dicom.sources import DicomSource

NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": ("<", 8),  # implicit VR little endian: tag + 4-byte length
    "1.2.840.10008.1.2.1": ("<", 12),  # explicit VR little endian: tag + VR + 2 reserved + length
    "1.2.840.10008.1.2.2": (">", 12),  # explicit VR big endian (retired, still seen)
}
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@dataclass
class FrameRecord:
    """Header facts about one 2D image plane, enough to place it in space and read its pixels."""

    source: DicomSource
    series_uid: str
    study_uid: str
    modality: str
    description: str
    rows: int
    cols: int
    position: NDArray[np.float64]
    orientation: NDArray[np.float64]  # 6 values: row direction, column direction
    pixel_spacing: tuple[float, float]  # (between rows, between columns) as DICOM orders them
    slope: float
    intercept: float
    bits_allocated: int
    bits_stored: int
    signed: bool
    transfer_syntax: str
    frame: int | None = None  # index in a multi-frame file
    n_frames: int = 1
    mosaic_tile: tuple[int, int, int] | None = None  # (tile index, tiles per side, tile count)
    pixel_offset: int | None = None  # byte offset of native pixel data in the file
    pixel_length: int | None = None
    instance_number: int = 0
    acquisition_time: str = ""
    slice_thickness: float | None = None
    spacing_between_slices: float | None = None
    gantry_tilt: float = 0.0
    split_keys: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    sop_instance_uid: str = ""

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.cols * self.bits_allocated // 8 if self.mosaic_tile is None else 0


def _float(value: Any, default: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if math.isfinite(result) else default


def _floats(value: Any, count: int) -> NDArray[np.float64] | None:
    try:
        array = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.size == count and np.all(np.isfinite(array)) else None


def read_header(source: DicomSource) -> tuple[Dataset, int | None, int | None]:
    """Parse everything before the pixel data; return the dataset and the pixel data's value offset/length."""
    try:
        stream = source.open()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", source.name) from exc
    with stream:
        ds: Dataset
        try:
            ds = pydicom.dcmread(stream, stop_before_pixels=True)
        except InvalidDicomError:
            ds = _read_without_preamble(stream, source)
        except Exception as exc:
            raise NotDicomError(f"not a readable DICOM file ({_short(exc)})", source.name) from exc
        offset, length = _pixel_element(stream, ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and len(meta) and "TransferSyntaxUID" not in meta:
        raise UnsupportedTransferSyntaxError(
            "the file meta has no Transfer Syntax UID (0002,0010), so the data set cannot be decoded",
            source.name,
            "re-export the file from the PACS or scanner",
        )
    return ds, offset, length


def _read_without_preamble(stream: Any, source: DicomSource) -> Dataset:
    """Old files may lack the 128-byte preamble and file meta; accept them only if they look like DICOM."""
    stream.seek(0)
    head = stream.read(8)
    groups = {int.from_bytes(head[:2], order) for order in ("little", "big")} if len(head) >= 2 else set()
    if not groups & {0x0002, 0x0008}:
        raise NotDicomError("not a DICOM file (no DICM preamble and no DICOM header)", source.name)
    stream.seek(0)
    try:
        ds = pydicom.dcmread(stream, force=True, stop_before_pixels=True)
    except Exception as exc:
        raise NotDicomError(f"not a readable DICOM file ({_short(exc)})", source.name) from exc
    if "SOPClassUID" not in ds and "Rows" not in ds:
        raise NotDicomError("not a DICOM file (no DICM preamble; header is not valid DICOM)", source.name)
    return ds


def _pixel_element(stream: Any, ds: Dataset) -> tuple[int | None, int | None]:
    """Offset and length of the native Pixel Data value, read from the element header after the header."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    layout = NATIVE_SYNTAXES.get(syntax)
    if layout is None:
        return None, None
    order, header_size = layout
    start = stream.tell()
    element = stream.read(header_size)
    if len(element) < 8:
        return None, None
    byteorder: Literal["little", "big"] = "little" if order == "<" else "big"
    group = int.from_bytes(element[0:2], byteorder)
    elem = int.from_bytes(element[2:4], byteorder)
    if (group << 16 | elem) not in PIXEL_DATA_TAGS:
        return None, None
    if header_size == 12 and element[4:6] not in (b"OB", b"OW", b"OF", b"OD", b"UN"):
        # Explicit VR with a short-form VR would be malformed for pixel data; let pydicom handle it.
        return None, None
    length = int.from_bytes(element[-4:], byteorder)
    if length == 0xFFFFFFFF:
        return None, None
    return start + header_size, length


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def _first(seq_item: Dataset | None, keyword: str) -> Dataset | None:
    if seq_item is None:
        return None
    value = seq_item.get(keyword)
    if value is None or len(value) == 0:
        return None
    item: Dataset = value[0]
    return item


def records_from_dataset(ds: Dataset, source: DicomSource, offset: int | None, length: int | None) -> list[FrameRecord]:
    """Records for every image plane of one DICOM object; raises NoPixelDataError for non-images."""
    if "Rows" not in ds or "Columns" not in ds:
        modality = str(ds.get("Modality", "") or "")
        kind = modality or str(getattr(ds.get("SOPClassUID", ""), "name", "") or "object")
        raise NoPixelDataError(f"DICOM {kind} without an image", source.name)
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not syntax:
        raise UnsupportedTransferSyntaxError(
            "the file meta has no Transfer Syntax UID (0002,0010), so its pixel data cannot be decoded",
            source.name,
            "re-export the file from the PACS or scanner",
        )
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        photometric = ds.get("PhotometricInterpretation", "")
        raise NoPixelDataError(f"colour image ({photometric}) is not a greyscale volume", source.name)
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.66"):
        raise NoPixelDataError("DICOM SEG (a segmentation, open it on its image with import-seg)", source.name)

    rows, cols = int(ds.Rows), int(ds.Columns)
    n_frames = int(_float(ds.get("NumberOfFrames", 1), 1.0) or 1)
    bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
    if bits_allocated not in (8, 16, 32):
        raise NoPixelDataError(f"{bits_allocated}-bit pixels are not a greyscale volume", source.name)
    expected = rows * cols * (bits_allocated // 8) * n_frames
    if offset is not None and length is not None:
        available = _available_bytes(source, offset, length)
        if available < expected:
            raise CorruptPixelDataError(
                f"pixel data are truncated: {available} of {expected} bytes present", source.name
            )

    base = FrameRecord(
        source=source,
        series_uid=str(ds.get("SeriesInstanceUID", "") or "no-series-uid"),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        description=str(ds.get("SeriesDescription", "") or ""),
        rows=rows,
        cols=cols,
        position=np.zeros(3),
        orientation=np.array([1.0, 0, 0, 0, 1, 0]),
        pixel_spacing=(1.0, 1.0),
        slope=_float(ds.get("RescaleSlope", 1), 1.0) or 1.0,
        intercept=_float(ds.get("RescaleIntercept", 0), 0.0),
        bits_allocated=bits_allocated,
        bits_stored=int(ds.get("BitsStored", bits_allocated) or bits_allocated),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        transfer_syntax=syntax,
        n_frames=n_frames,
        pixel_offset=offset,
        pixel_length=length,
        instance_number=int(_float(ds.get("InstanceNumber", 0), 0.0)),
        acquisition_time=str(ds.get("AcquisitionTime", "") or ds.get("ContentTime", "") or ""),
        slice_thickness=_float(ds.get("SliceThickness"), 0.0) or None,
        spacing_between_slices=_float(ds.get("SpacingBetweenSlices"), 0.0) or None,
        gantry_tilt=_float(ds.get("GantryDetectorTilt", 0), 0.0),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
    )
    base.extra = {
        "patient_name": str(ds.get("PatientName", "") or ""),
        "patient_id": str(ds.get("PatientID", "") or ""),
        "study_description": str(ds.get("StudyDescription", "") or ""),
        "series_number": int(_float(ds.get("SeriesNumber", 0), 0.0)),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "patient_position": str(ds.get("PatientPosition", "") or ""),
        "sop_class_uid": sop_class,
    }
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_records(ds, base)
    _classic_geometry(ds, base)
    base.split_keys = _classic_split_keys(ds)
    if _is_mosaic(ds):
        return _mosaic_records(ds, base)
    if n_frames > 1:
        return _classic_multiframe_records(ds, base)
    return [base]


def _available_bytes(source: DicomSource, offset: int, length: int) -> int:
    if source.is_plain_file and source.path is not None:
        return max(0, min(length, source.path.stat().st_size - offset))
    return length


def _classic_geometry(ds: Dataset, record: FrameRecord) -> None:
    position = _floats(ds.get("ImagePositionPatient"), 3)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing = _floats(ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing"), 2)
    record.extra["has_geometry"] = position is not None and orientation is not None
    if position is not None:
        record.position = position
    if orientation is not None:
        record.orientation = orientation
    if spacing is not None and np.all(spacing > 0):
        record.pixel_spacing = (float(spacing[0]), float(spacing[1]))


def _classic_split_keys(ds: Dataset) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    bvalue = ds.get("DiffusionBValue")
    if bvalue is None and (0x0043, 0x1039) in ds:  # GE stores b in Slop_int_6 (plus 1e9 on some versions)
        raw = ds[(0x0043, 0x1039)].value
        first = raw[0] if isinstance(raw, list | tuple | pydicom.multival.MultiValue) else raw
        bvalue = _float(first, 0.0) % 1e9
    if bvalue is None and (0x0019, 0x100C) in ds:  # Siemens
        bvalue = _float(ds[(0x0019, 0x100C)].value, 0.0)
    if bvalue is not None:
        keys["b_value"] = round(_float(bvalue, 0.0), 1)
    gradient = _floats(ds.get("DiffusionGradientOrientation"), 3)
    if gradient is None and all((0x0019, e) in ds for e in (0x10BB, 0x10BC, 0x10BD)):
        gradient = _floats([ds[(0x0019, e)].value for e in (0x10BB, 0x10BC, 0x10BD)], 3)
    if gradient is None and (0x0019, 0x100E) in ds:
        gradient = _floats(ds[(0x0019, 0x100E)].value, 3)
    if gradient is not None:
        keys["gradient"] = tuple(round(float(g), 4) for g in gradient)
    for keyword in (
        "EchoNumbers",
        "EchoTime",
        "TemporalPositionIdentifier",
        "TriggerTime",
        "AcquisitionNumber",
    ):
        value = ds.get(keyword)
        if value not in (None, ""):
            keys[keyword] = str(value)
    image_type = ds.get("ImageType")
    if image_type:
        keys["ImageType"] = "\\".join(str(v) for v in image_type)
    return keys


def _is_mosaic(ds: Dataset) -> bool:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "MOSAIC" in image_type and str(ds.get("Manufacturer", "")).upper().startswith("SIEMENS")


def _mosaic_records(ds: Dataset, base: FrameRecord) -> list[FrameRecord]:
    """Siemens mosaic: many slices tiled in one image; place each tile the way the scanner describes it."""
    with warnings.catch_warnings():
        # nibabel warns that its DICOM *readers* are experimental; we only use its CSA header parser.
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import csareader

    header: dict[str, Any] | None
    try:
        header = csareader.get_csa_header(ds, "image")
    except Exception:
        header = None
    count = csareader.get_n_mosaic(header) if header else None
    if count is None and (0x0019, 0x100A) in ds:
        count = int(ds[(0x0019, 0x100A)].value)
    if not count:
        raise InputError("Siemens mosaic without NumberOfImagesInMosaic", base.source.name)
    normal = csareader.get_slice_normal(header) if header else None
    row_dir, col_dir = base.orientation[:3], base.orientation[3:]
    if normal is None:
        normal = np.cross(row_dir, col_dir)
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    per_side = math.ceil(math.sqrt(count))
    tile_rows, tile_cols = base.rows // per_side, base.cols // per_side
    row_spacing, col_spacing = base.pixel_spacing
    # ImagePositionPatient of a mosaic describes the whole mosaic; shift to the centre-aligned first tile.
    first = (
        base.position
        + row_dir * col_spacing * (base.cols - tile_cols) / 2.0
        + col_dir * row_spacing * (base.rows - tile_rows) / 2.0
    )
    step = base.spacing_between_slices or base.slice_thickness or 1.0
    records = []
    for tile in range(count):
        record = _copy(base)
        record.rows, record.cols = tile_rows, tile_cols
        record.position = first + normal * step * tile
        record.mosaic_tile = (tile, per_side, count)
        record.pixel_offset = None
        records.append(record)
    return records


def _classic_multiframe_records(ds: Dataset, base: FrameRecord) -> list[FrameRecord]:
    """Legacy multi-frame (NM, US, old MR): frames stacked along the normal by SliceThickness/spacing."""
    vector = ds.get("SliceVector")
    row_dir, col_dir = base.orientation[:3], base.orientation[3:]
    normal = np.cross(row_dir, col_dir)
    step = base.spacing_between_slices or base.slice_thickness or 1.0
    records = []
    for index in range(base.n_frames):
        record = _copy(base)
        record.frame = index
        record.position = base.position + normal * step * index
        if vector is not None:
            record.split_keys = {**base.split_keys, "SliceVector": int(vector[index])}
        records.append(record)
    return records


def _enhanced_records(ds: Dataset, base: FrameRecord) -> list[FrameRecord]:
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    records = []
    for index in range(base.n_frames):
        frame_groups = per_frame[index] if index < len(per_frame) else None

        def group(keyword: str, frame_groups: Dataset | None = frame_groups) -> Dataset | None:
            return _first(frame_groups, keyword) or _first(shared, keyword)

        record = _copy(base)
        record.frame = index
        plane = group("PlanePositionSequence")
        orient = group("PlaneOrientationSequence")
        measures = group("PixelMeasuresSequence")
        transform = group("PixelValueTransformationSequence")
        content = group("FrameContentSequence")
        position = _floats(plane.get("ImagePositionPatient") if plane else None, 3)
        orientation = _floats(orient.get("ImageOrientationPatient") if orient else None, 6)
        record.extra = {**base.extra, "has_geometry": position is not None and orientation is not None}
        if position is not None:
            record.position = position
        if orientation is not None:
            record.orientation = orientation
        if measures is not None:
            spacing = _floats(measures.get("PixelSpacing"), 2)
            if spacing is not None and np.all(spacing > 0):
                record.pixel_spacing = (float(spacing[0]), float(spacing[1]))
            record.slice_thickness = _float(measures.get("SliceThickness"), 0.0) or None
            record.spacing_between_slices = _float(measures.get("SpacingBetweenSlices"), 0.0) or None
        if transform is not None:
            record.slope = _float(transform.get("RescaleSlope", 1), 1.0) or 1.0
            record.intercept = _float(transform.get("RescaleIntercept", 0), 0.0)
        record.split_keys = _enhanced_split_keys(group, content)
        if content is not None:
            record.instance_number = index
            record.acquisition_time = str(content.get("FrameAcquisitionDateTime", "") or "")
        records.append(record)
    return records


def _enhanced_split_keys(group: Any, content: Dataset | None) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if content is not None:
        for keyword in ("StackID", "TemporalPositionIndex"):
            value = content.get(keyword)
            if value not in (None, ""):
                keys[keyword] = str(value)
    echo = group("MREchoSequence")
    if echo is not None and echo.get("EffectiveEchoTime") is not None:
        keys["EchoTime"] = str(echo.get("EffectiveEchoTime"))
    diffusion = group("MRDiffusionSequence")
    if diffusion is not None:
        keys["b_value"] = round(_float(diffusion.get("DiffusionBValue"), 0.0), 1)
        direction = _first(diffusion, "DiffusionGradientDirectionSequence")
        gradient = _floats(direction.get("DiffusionGradientOrientation") if direction else None, 3)
        if gradient is not None:
            keys["gradient"] = tuple(round(float(g), 4) for g in gradient)
    frame_type = group("MRImageFrameTypeSequence") or group("CTImageFrameTypeSequence")
    if frame_type is not None:
        keys["FrameType"] = "\\".join(str(v) for v in (frame_type.get("FrameType") or []))
        component = frame_type.get("ComplexImageComponent")
        if component:
            keys["ComplexImageComponent"] = str(component)
    return keys


def _copy(record: FrameRecord) -> FrameRecord:
    return FrameRecord(**{**record.__dict__, "extra": dict(record.extra), "split_keys": dict(record.split_keys)})
