"""The segmentation data model (DESIGN.md): label-map layers on the reference grid + a segment table.

Each segment lives in one layer (a uint8/uint16 array ``[k, j, i]`` with the reference volume's shape) under
its own label value. Segments that never overlap share layer 0; when a voxel must belong to two segments,
one of them moves to another layer, so a single-layer file opens as one layer and overlapping segments
stay exact. Voxel changes go through `radlabel.core.edit.apply` only (undo, audit and views hang there);
this module holds the data and read access.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core import geometry
from radlabel.core.volume import Volume


@dataclass(frozen=True)
class CodedConcept:
    """A DICOM coded concept, e.g. ``CodedConcept("108369006", "SCT", "Neoplasm")``."""

    value: str
    scheme: str
    meaning: str

    def to_json(self) -> dict[str, str]:
        return {"value": self.value, "scheme": self.scheme, "meaning": self.meaning}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> CodedConcept:
        return cls(str(data["value"]), str(data["scheme"]), str(data["meaning"]))


class AlgorithmType(enum.StrEnum):
    """DICOM SEG Segment Algorithm Type."""

    MANUAL = "MANUAL"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    AUTOMATIC = "AUTOMATIC"


@dataclass(frozen=True)
class AlgorithmInfo:
    """Which model drew a segment (DICOM Algorithm Identification)."""

    name: str
    version: str
    weights_sha256: str = ""
    family: str = "Artificial Intelligence"

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "family": self.family,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> AlgorithmInfo:
        return cls(
            str(data["name"]),
            str(data["version"]),
            str(data.get("weights_sha256", "")),
            str(data.get("family", "Artificial Intelligence")),
        )


TISSUE = CodedConcept("85756007", "SCT", "Tissue")
ABNORMAL = CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure")  # current DICOM meaning


@dataclass
class Segment:
    """One row of the segment table."""

    id: int
    name: str
    color: tuple[int, int, int]
    category: CodedConcept = TISSUE
    type: CodedConcept = TISSUE
    algorithm_type: AlgorithmType = AlgorithmType.MANUAL
    algorithm: AlgorithmInfo | None = None
    notes: str = ""
    locked: bool = False
    visible: bool = True
    layer: int = 0
    label_value: int = 1
    type_modifier: CodedConcept | None = None
    """E.g. laterality (SCT 7771000 Left) for "Left kidney" (DICOM SegmentedPropertyTypeModifierCodeSequence)."""
    anatomic_region: CodedConcept | None = None
    """Where a finding lies, e.g. Lung for a lung nodule (DICOM AnatomicRegionSequence)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "color": list(self.color),
            "category": self.category.to_json(),
            "type": self.type.to_json(),
            "algorithm_type": self.algorithm_type.value,
            "algorithm": self.algorithm.to_json() if self.algorithm else None,
            "notes": self.notes,
            "locked": self.locked,
            "visible": self.visible,
            "layer": self.layer,
            "label_value": self.label_value,
            "type_modifier": self.type_modifier.to_json() if self.type_modifier else None,
            "anatomic_region": self.anatomic_region.to_json() if self.anatomic_region else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            color=tuple(int(c) for c in data["color"]),  # type: ignore[arg-type]
            category=CodedConcept.from_json(data["category"]),
            type=CodedConcept.from_json(data["type"]),
            algorithm_type=AlgorithmType(data.get("algorithm_type", "MANUAL")),
            algorithm=AlgorithmInfo.from_json(data["algorithm"]) if data.get("algorithm") else None,
            notes=str(data.get("notes", "")),
            locked=bool(data.get("locked", False)),
            visible=bool(data.get("visible", True)),
            layer=int(data.get("layer", 0)),
            label_value=int(data.get("label_value", data["id"])),
            type_modifier=CodedConcept.from_json(data["type_modifier"]) if data.get("type_modifier") else None,
            anatomic_region=CodedConcept.from_json(data["anatomic_region"]) if data.get("anatomic_region") else None,
        )


@dataclass(frozen=True)
class Grid:
    """The reference geometry a segmentation lives on (shape in [k, j, i] order, like the arrays)."""

    shape: tuple[int, int, int]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]

    @classmethod
    def of(cls, volume: Volume) -> Grid:
        k, j, i = volume.array.shape
        return cls(
            (k, j, i),
            tuple(float(v) for v in volume.origin),  # type: ignore[arg-type]
            tuple(float(v) for v in volume.spacing),  # type: ignore[arg-type]
            tuple(tuple(float(v) for v in row) for row in volume.direction),  # type: ignore[arg-type]
        )

    @property
    def affine(self) -> NDArray[np.float64]:
        return geometry.affine_from(self.origin, self.spacing, self.direction)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))


DEFAULT_COLORS = [
    (230, 60, 60),
    (60, 180, 75),
    (60, 120, 230),
    (245, 200, 40),
    (170, 80, 200),
    (70, 210, 210),
    (240, 130, 40),
    (210, 80, 150),
]


@dataclass
class Segmentation:
    """Label-map layers on ``grid`` plus the segment table (ordered by id)."""

    grid: Grid
    layers: list[NDArray[np.uint8] | NDArray[np.uint16]] = field(default_factory=list)
    segments: dict[int, Segment] = field(default_factory=dict)

    @classmethod
    def empty(cls, reference: Volume | Grid) -> Segmentation:
        grid = reference if isinstance(reference, Grid) else Grid.of(reference)
        return cls(grid, [np.zeros(grid.shape, dtype=np.uint8)], {})

    def mask(self, segment_id: int) -> NDArray[np.bool_]:
        """Boolean mask of one segment (a new array)."""
        segment = self.segments[segment_id]
        result: NDArray[np.bool_] = self.layers[segment.layer] == segment.label_value
        return result

    def mask_in(self, segment_id: int, region: tuple[slice, slice, slice]) -> NDArray[np.bool_]:
        """Boolean mask of one segment inside a box, cheap for small edits on large volumes."""
        segment = self.segments[segment_id]
        result: NDArray[np.bool_] = self.layers[segment.layer][region] == segment.label_value
        return result

    def occupied(self, region: tuple[slice, slice, slice] | None = None) -> NDArray[np.bool_]:
        """Voxels that belong to any segment."""
        box = region if region is not None else (slice(None),) * 3
        result = np.zeros(self.layers[0][box].shape, dtype=bool)
        for layer in self.layers:
            result |= layer[box] != 0
        return result

    def next_id(self) -> int:
        return max(self.segments, default=0) + 1

    def free_label(self, layer: int) -> int:
        used = {s.label_value for s in self.segments.values() if s.layer == layer}
        value = 1
        while value in used:
            value += 1
        return value

    def add_segment(self, name: str, color: tuple[int, int, int] | None = None, **fields: Any) -> Segment:
        """Append an empty segment in layer 0 (the table change is itself recorded by the session)."""
        segment_id = self.next_id()
        label = self.free_label(0)
        if label > np.iinfo(self.layers[0].dtype).max:
            self.layers[0] = self.layers[0].astype(np.uint16)
        segment = Segment(
            id=segment_id,
            name=name,
            color=color or DEFAULT_COLORS[(segment_id - 1) % len(DEFAULT_COLORS)],
            layer=0,
            label_value=label,
            **fields,
        )
        self.segments[segment_id] = segment
        return segment

    def update_segment(self, segment_id: int, **fields: Any) -> Segment:
        """Change table fields (name, colour, codes, flags); voxels are untouched."""
        self.segments[segment_id] = replace(self.segments[segment_id], **fields)
        return self.segments[segment_id]

    def copy(self) -> Segmentation:
        return Segmentation(
            self.grid, [layer.copy() for layer in self.layers], {k: replace(v) for k, v in self.segments.items()}
        )

    def label_map(self) -> NDArray[np.uint16]:
        """A single-layer map of segment ids (overlaps resolved by the later segment), for export and display."""
        result = np.zeros(self.grid.shape, dtype=np.uint16)
        for segment in self.segments.values():
            result[self.layers[segment.layer] == segment.label_value] = segment.id
        return result
