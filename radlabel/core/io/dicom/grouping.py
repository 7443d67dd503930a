"""Group frame records into series, and a series into one or more volumes on the same grid.

A SeriesInstanceUID is only the first key: scanners put localisers of three orientations, reformats of
another size, or a whole 4D acquisition (echoes, b-values, time points) under one UID. Files are split by
orientation and size into separate series, and repeated slice positions into separate volumes of one 4D
series, so no volume ever mixes planes from different acquisitions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radlabel.core.io.dicom.frames import FrameRecord

# Keys tried, in order, to tell the volumes of a 4D series apart when slice positions repeat.
_VOLUME_KEYS: tuple[tuple[str, ...], ...] = (
    ("b_value", "gradient"),
    ("EchoNumbers",),
    ("EchoTime",),
    ("ComplexImageComponent",),
    ("TemporalPositionIndex",),
    ("TemporalPositionIdentifier",),
    ("TriggerTime",),
    ("StackID",),
    ("AcquisitionNumber",),
    ("ImageType",),
    ("FrameType",),
)


@dataclass
class SeriesGroup:
    """Frames of one series that share orientation and size, split into volumes (each sorted later)."""

    uid: str
    series_uid: str
    volumes: list[list[FrameRecord]]
    volume_labels: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def first(self) -> FrameRecord:
        return self.volumes[0][0]


def _normal(record: FrameRecord) -> np.ndarray:
    return np.cross(record.orientation[:3], record.orientation[3:])


def _geometry_key(record: FrameRecord) -> tuple[Any, ...]:
    return (
        record.extra.get("series_number", 0),
        tuple(np.round(record.orientation, 3)),
        record.rows,
        record.cols,
        tuple(round(s, 4) for s in record.pixel_spacing),
    )


def group_series(records: list[FrameRecord]) -> list[SeriesGroup]:
    """Split records into series groups; a UID with several geometries gives ``uid``, ``uid.2``, ..."""
    by_uid: dict[str, list[FrameRecord]] = defaultdict(list)
    for record in records:
        by_uid[record.series_uid].append(record)
    groups: list[SeriesGroup] = []
    for series_uid, members in by_uid.items():
        by_geometry: dict[tuple[Any, ...], list[FrameRecord]] = defaultdict(list)
        for record in members:
            by_geometry[_geometry_key(record)].append(record)
        parts = sorted(by_geometry.values(), key=lambda part: (-len(part), min(r.instance_number for r in part)))
        note = ""
        if len(parts) > 1:
            sizes = ", ".join(
                f"{len(p)} x {p[0].cols}x{p[0].rows} {_axis_name(p[0])} #{p[0].extra.get('series_number', 0)}"
                for p in parts
            )
            note = (
                f"series {series_uid} mixes {len(parts)} series numbers or image geometries ({sizes}); "
                "split into separate series"
            )
        for index, part in enumerate(parts):
            uid = series_uid if index == 0 else f"{series_uid}.{index + 1}"
            group = split_volumes(uid, series_uid, part)
            if note:
                group.warnings.insert(0, note)
            groups.append(group)
    return groups


def _axis_name(record: FrameRecord) -> str:
    normal = np.abs(_normal(record))
    return ("sagittal", "coronal", "axial")[int(np.argmax(normal))]


def _position_key(record: FrameRecord) -> tuple[float, ...]:
    return tuple(np.round(record.position, 2))


def _unique_positions(records: list[FrameRecord]) -> bool:
    keys = [_position_key(r) for r in records]
    return len(set(keys)) == len(keys)


def split_volumes(uid: str, series_uid: str, records: list[FrameRecord]) -> SeriesGroup:
    """One volume when every position is unique; otherwise the 4D split that gives equal volumes."""
    if _unique_positions(records):
        return SeriesGroup(uid, series_uid, [records], [""])
    positions = {_position_key(r) for r in records}
    for keys in _VOLUME_KEYS:
        if not all(any(k in r.split_keys for k in keys) for r in records):
            continue
        parts: dict[tuple[Any, ...], list[FrameRecord]] = defaultdict(list)
        for record in records:
            parts[tuple(record.split_keys.get(k) for k in keys)].append(record)
        if len(parts) < 2:
            continue
        if all(_unique_positions(p) and {_position_key(r) for r in p} == positions for p in parts.values()):
            ordered = sorted(parts.items(), key=lambda item: _volume_order(item[1]))
            labels = [_label(keys, key) for key, _ in ordered]
            return SeriesGroup(uid, series_uid, [p for _, p in ordered], labels)
    return _split_by_occurrence(uid, series_uid, records, positions)


def _volume_order(records: list[FrameRecord]) -> tuple[Any, ...]:
    return (min(r.instance_number for r in records), min(r.acquisition_time for r in records))


def _label(keys: tuple[str, ...], values: tuple[Any, ...]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True) if v is not None)


def _split_by_occurrence(
    uid: str, series_uid: str, records: list[FrameRecord], positions: set[tuple[float, ...]]
) -> SeriesGroup:
    """No header tells the volumes apart: the n-th frame (in acquisition order) at each position is volume n."""
    at_position: dict[tuple[float, ...], list[FrameRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.acquisition_time, r.instance_number, r.frame or 0)):
        at_position[_position_key(record)].append(record)
    counts = {len(v) for v in at_position.values()}
    warnings = []
    if len(counts) != 1:
        warnings.append(
            f"series {series_uid}: slice positions repeat unevenly ({min(counts)} to {max(counts)} frames per "
            "position); kept the first frame at each position"
        )
        return SeriesGroup(uid, series_uid, [[v[0] for v in at_position.values()]], [""], warnings)
    n = counts.pop()
    volumes = [[frames[t] for frames in at_position.values()] for t in range(n)]
    warnings.append(
        f"series {series_uid}: {n} frames at each of {len(positions)} positions with no header that tells them "
        "apart; split into volumes by acquisition order"
    )
    return SeriesGroup(uid, series_uid, volumes, [f"t={t}" for t in range(n)], warnings)
