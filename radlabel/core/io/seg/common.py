"""Small helpers shared by the SEG, RTSTRUCT and label-map import/export modules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from radlabel.core.io.seg.errors import SegmentationExportError
from radlabel.core.io.seg.placement import Piece
from radlabel.core.segmentation.model import Grid, Segment, Segmentation
from radlabel.core.volume import Volume

#: Voxel centres closer than this (mm) are the same point (as in labelmap_io).
GRID_TOLERANCE_MM = 0.01


@dataclass
class SegmentationImport:
    """A segmentation file read onto a reference grid; the reference and any open segmentation are untouched."""

    segmentation: Segmentation
    match: Literal["exact", "resampled"]
    """``exact``: the file's voxels are the image's; ``resampled``: nearest neighbour (with a warning)."""
    format: str
    """``DICOM SEG BINARY`` / ``FRACTIONAL`` / ``LABELMAP``, ``RTSTRUCT``, ``NIfTI``, ``NRRD`` ..."""
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    probabilities: dict[int, NDArray[np.float32]] = field(default_factory=dict)
    """FRACTIONAL SEG: segment id -> values in [0, 1] on the reference grid (the binary segment is >= 0.5)."""
    provenance: dict[str, Any] | None = None
    """What a radlabel export wrote about its origin (identity, audit head), when the file holds it."""


@dataclass
class ExportResult:
    path: Path
    format: str
    segments: int
    frames: int = 0
    warnings: list[str] = field(default_factory=list)
    sop_instance_uid: str = ""
    audit_record: dict[str, Any] | None = None
    """The ``export`` record appended to the case's audit log, when the export was made for a case."""


def check_same_grid(volume: Volume, segmentation: Segmentation, path: str | Path) -> None:
    grid = Grid.of(volume)
    if grid.shape != segmentation.grid.shape or not np.allclose(
        _corners(grid), _corners(segmentation.grid), atol=GRID_TOLERANCE_MM
    ):
        raise SegmentationExportError(
            "the segmentation does not lie on the image's grid (different shape or geometry)",
            path,
            "import it onto the image first (radlabel import-seg), which resamples it",
        )


def _corners(grid: Grid) -> NDArray[np.float64]:
    k, j, i = (n - 1 for n in grid.shape)
    corners = np.array([[a, b, c] for a in (0, i) for b in (0, j) for c in (0, k)], float)
    affine = grid.affine
    result: NDArray[np.float64] = corners @ affine[:3, :3].T + affine[:3, 3]
    return result


def ordered_segments(segmentation: Segmentation) -> list[Segment]:
    return [segmentation.segments[key] for key in sorted(segmentation.segments)]


def place_segments_in_layers(
    shape: tuple[int, int, int], segments: Iterable[tuple[int, list[Piece]]]
) -> tuple[list[NDArray[np.uint8] | NDArray[np.uint16]], dict[int, tuple[int, int]]]:
    """Layers for segments given as pieces: each segment goes into the first layer it does not overlap.

    ``segments`` yields ``(segment id, pieces)``, pieces being boolean boxes of the grid (an empty list for
    an empty segment), so no full-size mask per segment is ever built. Returns the layers and, per segment
    id, its ``(layer, label value)``. Label values are the smallest free value of the layer from the
    segment id on, so non-overlapping segments numbered 1..N keep label values 1..N in layer 0.
    """
    layers: list[NDArray[Any]] = [np.zeros(shape, np.uint8)]
    used: list[set[int]] = [set()]
    placement: dict[int, tuple[int, int]] = {}
    for segment_id, pieces in segments:
        index = next(
            (n for n, layer in enumerate(layers) if not any(np.any(layer[box][values]) for box, values in pieces)),
            None,
        )
        if index is None:
            layers.append(np.zeros(shape, np.uint8))
            used.append(set())
            index = len(layers) - 1
        value = segment_id if segment_id not in used[index] and segment_id > 0 else 1
        while value in used[index]:
            value += 1
        if value > 255 and layers[index].dtype == np.uint8:
            layers[index] = layers[index].astype(np.uint16)
        for box, values in pieces:
            layers[index][box][values] = value
        used[index].add(value)
        placement[segment_id] = (index, value)
    return layers, placement
