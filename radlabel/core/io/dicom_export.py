"""Write a :class:`~radlabel.core.volume.Volume` as a classic single-frame DICOM series (CT or MR Image Storage).

Today this is a data generator: tests, the demo and ``benchmarks/load.py`` use it to make DICOM series whose
geometry and values are known exactly (oblique grids, shuffled file names, the three uncompressed transfer
syntaxes, the unsigned-with-intercept storage many CT scanners use), so readers can be checked against the
truth rather than against another reader. It is also the seed of radlabel's DICOM image export: the files
are valid CT / MR Image Storage instances with proper File Meta Information, new UIDs and the Image Plane
module written from the volume's LPS geometry.

Speed matters (a 512x512x300 series is a benchmark input), so one template dataset is built and only the
per-slice attributes change between files; pixel bytes are written straight from the array.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from radlabel import __version__ as _radlabel_version
from radlabel.core.errors import Cancelled, OutputError
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.volume import Volume

#: Transfer syntaxes :func:`write_dicom_series` can write (all uncompressed).
SUPPORTED_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
)

_SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage}

#: Soft-tissue window (centre, width) written into CT series.
CT_SOFT_TISSUE_WINDOW = (40.0, 400.0)

_INT16_MIN, _INT16_MAX = -32768, 32767


@dataclass(frozen=True)
class _Encoding:
    """How stored pixel values relate to the volume's values: ``value = stored * slope + intercept[k]``.

    Stored values are made slice by slice while writing, so no second full-size array is ever held.
    """

    signed: bool
    slope: str  # DS strings exactly as written, so the values used to quantise are the ones a reader sees
    intercepts: list[str]
    exact: bool  # integer data with integer intercepts and slope 1: stored = value - intercept, no rounding

    def stored(self, plane: NDArray[Any], k: int, dtype: np.dtype[Any]) -> NDArray[Any]:
        intercept = float(self.intercepts[k])
        if self.exact:
            if intercept == 0:
                return plane.astype(dtype, copy=False)
            return (plane.astype(np.int32) - int(intercept)).astype(dtype)
        low, high = (_INT16_MIN, _INT16_MAX) if self.signed else (0, 65535)
        values = np.rint((plane.astype(np.float64) - intercept) / float(self.slope))
        return np.clip(values, low, high).astype(dtype)


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike[str],
    *,
    series_description: str | None = None,
    patient_name: str | None = None,
    patient_id: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    modality: str | None = None,
    series_number: int = 1,
    transfer_syntax: str = ExplicitVRLittleEndian,
    shuffle: bool = False,
    shuffle_seed: int = 0,
    rescale_intercept: float | Sequence[float] | None = None,
    window: tuple[float, float] | None = None,
    file_prefix: str = "IM",
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Write ``volume`` as one DICOM file per slice into ``folder`` and return the paths in slice (k) order.

    - ``modality`` defaults to ``volume.metadata["modality"]`` and then to ``"CT"``; only CT and MR are
      written (CT / MR Image Storage), since a stack of Secondary Capture images carries no geometry a viewer
      may rely on.
    - Patient name / ID and the description default to ``volume.metadata`` (``patient_name``,
      ``patient_id``, ``description``); UIDs not given are generated. The series UID is never taken from the
      metadata: a written series is a new series.
    - Slice ``k`` gets ``ImagePositionPatient = volume.index_to_world([0, 0, k])`` and the orientation of the
      i and j direction columns. A grid whose k axis points against i x j is written as it is; readers will
      then sort the slices the other way round, which is the same image in world space.
    - Values: int16-compatible integer data are stored as signed 16 bit with slope 1, intercept 0. Other data
      (float, wide integers) get one slope/intercept that maps their range onto int16, written in the files.
      ``rescale_intercept`` (one value, or one per slice) stores ``value - intercept`` instead, unsigned
      where the result is non-negative, as most CT scanners do with ``-1024``.
    - ``shuffle=True`` assigns the file names ``IM00001.dcm ...`` in a random (``shuffle_seed``) order, so
      that a test can prove a reader sorts by position rather than by name.
    - ``transfer_syntax`` is one of :data:`SUPPORTED_TRANSFER_SYNTAXES`.
    - Files with the same names are overwritten. On cancellation (``progress`` returned ``False``) or a write
      error, the files written so far are removed, so no partial series is left for a reader to pick up.
    """
    out = Path(folder)
    n_slices, rows, columns = volume.array.shape
    mod = (modality or str(volume.metadata.get("modality") or "CT")).upper()
    if mod not in _SOP_CLASS:
        raise OutputError(
            f"cannot write modality {mod!r} as a DICOM image series",
            out,
            fix="pass modality='CT' or modality='MR'",
        )
    syntax = UID(str(transfer_syntax))
    if syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        raise OutputError(
            f"transfer syntax {syntax} is not supported for writing",
            out,
            fix="use Explicit VR Little Endian, Implicit VR Little Endian or Explicit VR Big Endian",
        )
    if rows > 65535 or columns > 65535:
        raise OutputError(f"slices of {rows}x{columns} exceed the DICOM limit of 65535 rows/columns", out)

    report = Progress(progress, what="DICOM export")
    report.report(0.0, "preparing DICOM export")
    encoding = _encode(volume.array, rescale_intercept, out)
    little = syntax != ExplicitVRBigEndian
    pixel_dtype = np.dtype(("<" if little else ">") + ("i2" if encoding.signed else "u2"))

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror or exc})", out) from exc

    meta = volume.metadata
    template = _template(
        volume,
        modality=mod,
        series_description=series_description
        if series_description is not None
        else str(meta.get("description") or "radlabel export"),
        patient_name=patient_name if patient_name is not None else str(meta.get("patient_name") or "Anonymous"),
        patient_id=patient_id if patient_id is not None else str(meta.get("patient_id") or "RADLABEL"),
        study_uid=study_uid or str(meta.get("study_instance_uid") or generate_uid()),
        series_uid=series_uid or generate_uid(),
        frame_of_reference_uid=frame_of_reference_uid or generate_uid(),
        series_number=series_number,
        encoding=encoding,
        window=window if window is not None else _default_window(mod, volume.array),
    )
    template.file_meta.TransferSyntaxUID = syntax

    width = max(5, len(str(n_slices)))
    order = np.arange(n_slices)
    if shuffle:
        order = np.random.default_rng(shuffle_seed).permutation(n_slices)
    paths = [out / f"{file_prefix}{int(order[k]) + 1:0{width}d}.dcm" for k in range(n_slices)]

    positions = volume.index_to_world(np.column_stack([np.zeros(n_slices), np.zeros(n_slices), np.arange(n_slices)]))
    normal = np.cross(volume.direction[:, 0], volume.direction[:, 1])
    written: list[Path] = []
    try:
        for k in range(n_slices):
            report.report(k / n_slices, f"writing slice {k + 1} of {n_slices}")
            sop_uid = generate_uid()
            template.file_meta.MediaStorageSOPInstanceUID = sop_uid
            template.SOPInstanceUID = sop_uid
            template.InstanceNumber = k + 1
            template.ImagePositionPatient = [_ds(v) for v in positions[k]]
            template.SliceLocation = _ds(float(positions[k] @ normal))
            template.RescaleIntercept = encoding.intercepts[k]
            template.PixelData = encoding.stored(volume.array[k], k, pixel_dtype).tobytes()
            written.append(paths[k])
            dcmwrite(paths[k], template, enforce_file_format=True)
        report.report(1.0, f"wrote {n_slices} DICOM files")
    except Cancelled:
        _remove(written)
        raise
    except OSError as exc:
        _remove(written)
        raise OutputError(f"cannot write DICOM file ({exc.strerror or exc})", exc.filename or out) from exc
    return paths


def _encode(array: NDArray[Any], rescale_intercept: float | Sequence[float] | None, out: Path) -> _Encoding:
    """Choose signedness, slope and intercepts so that ``stored * slope + intercept`` gives back ``array``
    (exactly for integer data, to within half a quantisation step for float data)."""
    n = array.shape[0]
    integral = array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)
    if array.size == 0:
        return _Encoding(signed=True, slope="1", intercepts=["0"] * n, exact=integral)
    flat = array.reshape(n, -1)
    if rescale_intercept is not None:
        values = np.broadcast_to(np.asarray(rescale_intercept, dtype=np.float64), (n,))
        texts = [_ds(float(v)) for v in values]
        exact_values = np.array([float(t) for t in texts])
        exact = bool(integral and np.all(exact_values == np.round(exact_values)))
        # Per-slice ranges decide the storage without building the stored array.
        low = float(np.min(flat.min(axis=1).astype(np.float64) - exact_values))
        high = float(np.max(flat.max(axis=1).astype(np.float64) - exact_values))
        if not exact:
            low, high = math.floor(low + 0.5), math.floor(high + 0.5)
        if low >= 0 and high <= 65535:
            return _Encoding(signed=False, slope="1", intercepts=texts, exact=exact)
        if low >= _INT16_MIN and high <= _INT16_MAX:
            return _Encoding(signed=True, slope="1", intercepts=texts, exact=exact)
        raise OutputError(
            f"values minus rescale intercept span {low:g}..{high:g}, which does not fit 16 bits",
            out,
            fix="choose another rescale intercept or leave it unset",
        )

    if integral:
        low_i, high_i = int(flat.min()), int(flat.max())
        if low_i >= _INT16_MIN and high_i <= _INT16_MAX:
            return _Encoding(signed=True, slope="1", intercepts=["0"] * n, exact=True)
        if low_i >= 0 and high_i <= 65535:
            return _Encoding(signed=False, slope="1", intercepts=["0"] * n, exact=True)

    low, high = float(flat.min()), float(flat.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise OutputError("the volume holds NaN or infinite values, which DICOM cannot store", out)
    if low == high:
        slope_text, intercept_text = "1", _ds(low)
    else:
        # Centre the range on zero and leave one step of headroom so that rounding never overflows int16.
        slope_text = _ds((high - low) / (_INT16_MAX - _INT16_MIN - 2), round_up=True)
        intercept_text = _ds((high + low) / 2)
    return _Encoding(signed=True, slope=slope_text, intercepts=[intercept_text] * n, exact=False)


def _ds(value: float, round_up: bool = False) -> str:
    """A DICOM Decimal String (at most 16 characters) for ``value``; never smaller than it if ``round_up``."""
    if value == 0 or not math.isfinite(value):
        return "0"
    for digits in range(15, 0, -1):
        text = f"{value:.{digits}g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        if len(text) <= 16:
            if round_up and float(text) < value:
                continue
            return text
    return f"{value:.1e}"


def _default_window(modality: str, array: NDArray[Any]) -> tuple[float, float]:
    if modality == "CT":
        return CT_SOFT_TISSUE_WINDOW
    if array.size == 0:
        return (0.0, 1.0)
    # MR has no absolute scale: a window over the bulk of the values is what a viewer would open with.
    sample = array[:: max(1, array.shape[0] // 16)].astype(np.float64, copy=False)
    low, high = np.percentile(sample, [1.0, 99.0])
    return ((low + high) / 2, max(float(high - low), 1.0))


def _template(
    volume: Volume,
    *,
    modality: str,
    series_description: str,
    patient_name: str,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    frame_of_reference_uid: str,
    series_number: int,
    encoding: _Encoding,
    window: tuple[float, float],
) -> Dataset:
    """The attributes shared by every slice of the series."""
    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sop_class = _SOP_CLASS[modality]
    _, rows, columns = volume.array.shape

    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = sop_class
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    file_meta.ImplementationVersionName = f"RADLABEL_{_radlabel_version}"[:16]

    ds = Dataset()
    ds.file_meta = file_meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if modality == "CT" else ["DERIVED", "SECONDARY"]
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = sop_class
    ds.StudyDate, ds.SeriesDate, ds.ContentDate = date, date, date
    ds.StudyTime, ds.SeriesTime, ds.ContentTime = time, time, time
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "radlabel"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series_description[:64]
    ds.ManufacturerModelName = "radlabel"
    ds.SoftwareVersions = str(_radlabel_version)
    ds.PatientName = patient_name
    ds.PatientID = patient_id[:64]
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    if modality == "CT":
        ds.KVP = ""
    else:
        # Type 1/2 attributes of the MR Image module; "RM" (research mode) is honest for a derived image.
        ds.ScanningSequence = "RM"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime = ""
        ds.EchoTime = ""
        ds.EchoTrainLength = ""
    spacing = volume.spacing
    ds.SliceThickness = _ds(float(spacing[2]))
    ds.SpacingBetweenSlices = _ds(float(spacing[2]))
    ds.PatientPosition = str(volume.metadata.get("patient_position") or "HFS")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ""
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = ["0", "0", "0"]
    direction = volume.direction
    ds.ImageOrientationPatient = [_ds(float(v)) for v in (*direction[:, 0], *direction[:, 1])]
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = "0"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    # DICOM PixelSpacing is (row spacing, column spacing): the distance between rows (j) comes first.
    ds.PixelSpacing = [_ds(float(spacing[1])), _ds(float(spacing[0]))]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if encoding.signed else 0
    ds.BurnedInAnnotation = "NO"
    ds.WindowCenter = _ds(float(window[0]))
    ds.WindowWidth = _ds(float(window[1]))
    ds.RescaleIntercept = encoding.intercepts[0] if encoding.intercepts else "0"
    ds.RescaleSlope = encoding.slope
    if modality == "CT":
        ds.RescaleType = "HU"
    ds.add_new(0x7FE00010, "OW", b"")
    return ds


def _remove(paths: list[Path]) -> None:
    for path in paths:
        # Best effort: the error being reported matters more than a file that cannot be removed.
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
