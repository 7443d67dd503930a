"""What a reader found in an input path: series (with geometry, before pixels are read) and bad files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core import geometry
from radlabel.core.progress import ProgressCallback
from radlabel.core.volume import Volume


@dataclass
class BadFile:
    """A file that was skipped, and why (one line, for the user)."""

    path: str
    reason: str


@dataclass
class SeriesInfo:
    """Header-level description of one series, enough for `radlabel info` and a series browser."""

    uid: str
    """Key that selects this series in this input: the SeriesInstanceUID, with ``.2``, ``.3`` ... appended
    when one DICOM series had to be split (different orientation or size); the file name for NIfTI/NRRD."""
    format: str
    description: str
    modality: str
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[tuple[float, ...], ...]
    n_volumes: int = 1
    volume_labels: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    series_instance_uid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def orientation(self) -> str:
        return geometry.orientation_code(np.array(self.direction))

    def to_json(self) -> dict[str, Any]:
        """Plain dict for `radlabel info --json`."""
        return {
            "uid": self.uid,
            "series_instance_uid": self.series_instance_uid,
            "format": self.format,
            "description": self.description,
            "modality": self.modality,
            "size": list(self.size),
            "spacing": [round(s, 6) for s in self.spacing],
            "origin": [round(o, 6) for o in self.origin],
            "direction": [list(map(float, row)) for row in self.direction],
            "orientation": self.orientation,
            "volumes": self.n_volumes,
            "volume_labels": self.volume_labels,
            "files": len(self.files),
            "warnings": self.warnings,
            **self.extra,
        }


@dataclass
class LoadedSeries:
    """The pixels of one series: one Volume, or several on the same grid for a 4D acquisition."""

    info: SeriesInfo
    volumes: list[Volume]
    warnings: list[str] = field(default_factory=list)

    @property
    def volume(self) -> Volume:
        """The first (for 3D series the only) volume."""
        return self.volumes[0]


def volume_on_grid(values: NDArray[Any], info: SeriesInfo, metadata: dict[str, Any], index: int) -> Volume:
    """Volume ``index`` of a ``[t, k, j, i]`` array on the series' grid; 4D series label each volume."""
    volume_metadata = dict(metadata)
    if values.shape[0] > 1:
        volume_metadata["volume_index"] = index
        volume_metadata["volume_label"] = info.volume_labels[index]
    return Volume(
        array=np.ascontiguousarray(values[index]),
        origin=np.array(info.origin),
        spacing=np.array(info.spacing),
        direction=np.array(info.direction),
        metadata=volume_metadata,
    )


SeriesLoader = Callable[[ProgressCallback | None], LoadedSeries]


@dataclass
class SeriesEntry:
    """A series found by a scan: its description plus the function that reads its pixels."""

    info: SeriesInfo
    loader: SeriesLoader

    def load(self, progress: ProgressCallback | None = None) -> LoadedSeries:
        return self.loader(progress)


@dataclass
class ScanResult:
    """Everything found under one input path."""

    path: str
    series: list[SeriesEntry] = field(default_factory=list)
    bad_files: list[BadFile] = field(default_factory=list)
    other_objects: list[BadFile] = field(default_factory=list)
    """Valid DICOM objects that are not images (SEG, RTSTRUCT, SR, ...), with what they are."""
