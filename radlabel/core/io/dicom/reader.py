"""DICOM input to series and volumes: scan headers, group, plan grids, then read pixels on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.errors import (
    Cancelled,
    EmptyInputError,
    InconsistentSeriesError,
    NoPixelDataError,
    RadlabelError,
)
from radlabel.core.io.dicom.frames import FrameRecord, read_header, records_from_dataset
from radlabel.core.io.dicom.grouping import SeriesGroup, group_series
from radlabel.core.io.dicom.pixels import PixelReader
from radlabel.core.io.dicom.resample import resample_to_plan
from radlabel.core.io.dicom.slice_geometry import GridPlan, plan_grid
from radlabel.core.io.dicom.sources import DicomSource, iter_sources
from radlabel.core.io.series import BadFile, LoadedSeries, ScanResult, SeriesEntry, SeriesInfo
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.volume import Volume


def scan_sources(
    sources: list[DicomSource], path: str, progress: Progress
) -> tuple[list[SeriesEntry], list[BadFile], list[BadFile]]:
    """Parse headers of ``sources``; return the series found, bad files and non-image DICOM objects."""
    records: list[FrameRecord] = []
    bad: list[BadFile] = []
    other: list[BadFile] = []
    for index, source in enumerate(sources):
        try:
            ds, offset, length = read_header(source)
            records.extend(records_from_dataset(ds, source, offset, length))
        except NoPixelDataError as exc:
            other.append(BadFile(source.name, exc.problem))
        except RadlabelError as exc:
            bad.append(BadFile(source.name, exc.problem))
        if index % 16 == 0 or index == len(sources) - 1:
            progress.report((index + 1) / len(sources), f"reading headers ({index + 1}/{len(sources)})")
    entries: list[SeriesEntry] = []
    for group in group_series(records):
        try:
            entries.append(_entry(group))
        except InconsistentSeriesError as exc:
            bad.append(BadFile(exc.path or group.uid, f"series {group.uid}: {exc.problem}"))
    entries.sort(key=lambda e: (e.info.extra.get("series_number", 0), e.info.uid))
    return entries, bad, other


def scan_dicom(path: str | Path, progress: ProgressCallback | None = None) -> ScanResult:
    """Find every DICOM series under ``path`` (file, folder, zip or DICOMDIR) without reading pixels."""
    sources = iter_sources(path)
    entries, bad, other = scan_sources(sources, str(path), Progress(progress, what="scanning"))
    result = ScanResult(path=str(path), series=entries, bad_files=bad, other_objects=other)
    if not entries and len(sources) == 1 and (bad or other):
        # A single file: its own problem is the answer.
        problem = (bad or other)[0]
        error_type = NoPixelDataError if other and not bad else RadlabelError
        raise error_type(problem.reason, problem.path)
    if not entries:
        first = (bad or other)[0] if (bad or other) else None
        detail = f"; first problem: {Path(first.path).name}: {first.reason}" if first else ""
        raise EmptyInputError(f"no image series found in {len(sources)} file(s){detail}", path)
    return result


def _entry(group: SeriesGroup) -> SeriesEntry:
    plans = [plan_grid(records, group.uid) for records in group.volumes]
    first_plan = plans[0]
    for label, plan in zip(group.volume_labels[1:], plans[1:], strict=True):
        if plan.size != first_plan.size or not np.allclose(plan.origin, first_plan.origin, atol=1e-2):
            raise InconsistentSeriesError(f"volume {label} lies on a different grid than the first", group.uid)
    first = group.first
    warnings = list(group.warnings) + first_plan.warnings
    info = SeriesInfo(
        uid=group.uid,
        format="DICOM",
        description=first.description,
        modality=first.modality,
        size=first_plan.size,
        spacing=tuple(float(s) for s in first_plan.spacing),  # type: ignore[arg-type]
        origin=tuple(float(o) for o in first_plan.origin),  # type: ignore[arg-type]
        direction=tuple(tuple(float(v) for v in row) for row in first_plan.direction),
        n_volumes=len(group.volumes),
        volume_labels=[label for label in group.volume_labels if label],
        warnings=warnings,
        files=sorted({r.source.name for records in group.volumes for r in records}),
        series_instance_uid=group.series_uid,
        extra={
            "series_number": first.extra.get("series_number", 0),
            "patient_name": first.extra.get("patient_name", ""),
            "study_description": first.extra.get("study_description", ""),
            "resampled": first_plan.resample,
            **({"gantry_tilt": first.gantry_tilt} if first.gantry_tilt else {}),
        },
    )

    def load(progress: ProgressCallback | None) -> LoadedSeries:
        return _load(info, group, plans, Progress(progress, what=f"loading series {group.uid}"))

    return SeriesEntry(info=info, loader=load)


def _load(info: SeriesInfo, group: SeriesGroup, plans: list[GridPlan], progress: Progress) -> LoadedSeries:
    reader = PixelReader()
    volumes = []
    share = 1.0 / len(plans)
    for index, plan in enumerate(plans):
        part = progress.sub(index * share, (index + 1) * share)
        stack = _read_stack(plan.records, reader, part.sub(0.0, 0.8 if plan.resample else 1.0))
        if plan.resample:
            stack = resample_to_plan(stack, plan, part.sub(0.8, 1.0))
        volumes.append(Volume(stack, plan.origin, plan.spacing, plan.direction, _metadata(info, plan, index)))
    return LoadedSeries(info=info, volumes=volumes, warnings=list(info.warnings))


def _metadata(info: SeriesInfo, plan: GridPlan, index: int) -> dict[str, Any]:
    first = plan.records[0]
    return {
        "format": "DICOM",
        "modality": info.modality,
        "series_instance_uid": info.series_instance_uid,
        "series_key": info.uid,
        "description": info.description,
        "study_instance_uid": first.study_uid,
        "frame_of_reference_uid": first.extra.get("frame_of_reference_uid", ""),
        "patient_name": first.extra.get("patient_name", ""),
        "patient_id": first.extra.get("patient_id", ""),
        "patient_position": first.extra.get("patient_position", ""),
        "manufacturer": first.extra.get("manufacturer", ""),
        "volume_label": info.volume_labels[index] if index < len(info.volume_labels) else "",
        "sop_instance_uids": [r.sop_instance_uid for r in plan.records],
        "source_files": [r.source.name for r in plan.records],
        "source_frames": [r.frame for r in plan.records],
        "source_positions": [r.position.round(5).tolist() for r in plan.records],
        "resampled": plan.resample,
        **plan.notes,
    }


def _output_dtype(records: list[FrameRecord]) -> np.dtype[Any]:
    """Compact dtype that holds every rescaled value: integers stay integers (int16 where they fit)."""
    integral = all(r.slope == 1.0 and float(r.intercept).is_integer() for r in records)
    if not integral:
        return np.dtype(np.float32)
    first = records[0]
    if first.bits_allocated == 8 and not first.signed and all(r.intercept == 0 for r in records):
        return np.dtype(np.uint8)
    if first.bits_allocated == 32:
        return np.dtype(np.int32)
    return np.dtype(np.int16)


def _read_stack(records: list[FrameRecord], reader: PixelReader, progress: Progress) -> NDArray[Any]:
    first = records[0]
    dtype = _output_dtype(records)
    stack: NDArray[Any] = np.empty((len(records), first.rows, first.cols), dtype=dtype)
    for k, record in enumerate(records):
        plane = reader.read(record)
        if plane.shape != (first.rows, first.cols):
            raise InconsistentSeriesError(
                f"image is {plane.shape[1]}x{plane.shape[0]} but the series is {first.cols}x{first.rows}",
                record.source.name,
            )
        if dtype.kind == "f":
            stack[k] = plane.astype(np.float32) * np.float32(record.slope) + np.float32(record.intercept)
        else:
            if record.intercept == 0 and plane.dtype == stack.dtype:
                values = plane
            else:
                values = plane.astype(np.int64 if stack.dtype == np.int32 else np.int32) + int(record.intercept)
            info = np.iinfo(stack.dtype)
            if values.min() < info.min or values.max() > info.max:
                stack = _widen(stack, values)
            stack[k] = values
        if k % 8 == 0 or k == len(records) - 1:
            progress.report((k + 1) / len(records), f"reading pixels ({k + 1}/{len(records)})")
    return stack


def _widen(stack: NDArray[Any], values: NDArray[Any]) -> NDArray[Any]:
    """A slice held values the optimistic dtype cannot: move everything to the next integer type that can."""
    current = np.iinfo(stack.dtype)
    low, high = min(int(values.min()), current.min), max(int(values.max()), current.max)
    for candidate in (np.int16, np.int32):
        limits = np.iinfo(candidate)
        if limits.min <= low and high <= limits.max:
            return stack.astype(candidate)
    return stack.astype(np.int64)


__all__ = ["Cancelled", "scan_dicom", "scan_sources"]
