"""From the slices of one volume to a regular grid: sorting, spacing, gantry tilt and gaps.

Slices are sorted by their position along the slice normal (never by file name or InstanceNumber). When
the slice origins do not lie on one straight line along the normal (gantry tilt: the stack is sheared) or
the gaps between them differ (variable spacing, missing slices), no (origin, spacing, direction) grid can
hold them. Then a regular orthogonal grid is planned that covers every slice, and the reader resamples onto
it the way dcm2niix does (tilt correction + spacing equalisation), and says so in the warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from radlabel.core.errors import InconsistentSeriesError
from radlabel.core.io.dicom.frames import FrameRecord

#: Positions may deviate from a regular stack by this much (mm) before the stack counts as irregular;
#: scanners round positions to a few decimals.
POSITION_TOLERANCE_MM = 0.05


@dataclass
class GridPlan:
    """The regular grid a volume is delivered on, and how each sorted source slice maps onto it."""

    records: list[FrameRecord]
    origin: NDArray[np.float64]
    spacing: NDArray[np.float64]  # (i, j, k)
    direction: NDArray[np.float64]  # columns: row direction, column direction, slice normal
    size: tuple[int, int, int]  # (i, j, k) of the delivered grid
    resample: bool = False
    # Per source slice: offsets (mm) of its origin from the grid origin along i, j and k.
    slice_offsets: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)


def orthonormal_axes(orientation: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row, column and normal unit vectors; small non-orthogonality in headers is removed (Gram-Schmidt)."""
    row = orientation[:3] / np.linalg.norm(orientation[:3])
    col = orientation[3:] - row * float(np.dot(orientation[3:], row))
    col = col / np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


def plan_grid(records: list[FrameRecord], label: str) -> GridPlan:
    """Sort slices along the normal and plan the regular grid they are delivered on."""
    first = records[0]
    if np.linalg.norm(first.orientation[:3]) < 1e-6 or np.linalg.norm(first.orientation[3:]) < 1e-6:
        raise InconsistentSeriesError("ImageOrientationPatient is zero", first.source.name)
    axes = orthonormal_axes(first.orientation)
    normal = axes[:, 2]
    row_spacing, col_spacing = first.pixel_spacing
    depth = np.array([float(np.dot(r.position, normal)) for r in records])
    order = np.argsort(depth, kind="stable")
    records = [records[i] for i in order]
    positions = np.array([r.position for r in records])
    depth = depth[order]
    n = len(records)
    warnings: list[str] = []
    if not all(r.extra.get("has_geometry", True) for r in records):
        warnings.append("some slices have no ImagePositionPatient/ImageOrientationPatient")

    if n == 1:
        thickness = first.spacing_between_slices or first.slice_thickness or 1.0
        return GridPlan(
            records,
            positions[0],
            np.array([col_spacing, row_spacing, thickness]),
            axes,
            (first.cols, first.rows, 1),
        )

    gaps = np.diff(depth)
    if np.any(gaps < 1e-3):
        duplicates = int(np.sum(gaps < 1e-3))
        raise InconsistentSeriesError(
            f"{duplicates} slice(s) share a position with another slice and no header tells them apart",
            first.source.name,
        )
    relative = positions - positions[0]
    in_plane = np.column_stack([relative @ axes[:, 0], relative @ axes[:, 1]])
    span = depth[-1] - depth[0]
    regular_step = span / (n - 1)
    deviation = np.abs(depth - depth[0] - regular_step * np.arange(n))
    sheared = float(np.max(np.linalg.norm(in_plane, axis=1))) > POSITION_TOLERANCE_MM
    irregular = float(np.max(deviation)) > POSITION_TOLERANCE_MM

    if not sheared and not irregular:
        spacing = np.array([col_spacing, row_spacing, regular_step])
        return GridPlan(records, positions[0], spacing, axes, (first.cols, first.rows, n))

    plan_notes: dict[str, object] = {"source_gaps_mm": [round(float(g), 4) for g in gaps]}
    if sheared:
        tilt = math.degrees(math.atan2(float(np.linalg.norm(in_plane[-1])), span))
        header_tilt = first.gantry_tilt
        warnings.append(
            f"slices are sheared by {tilt:.2f} deg (gantry tilt {header_tilt:g} deg in the header); "
            "resampled to an orthogonal grid (tilt correction)"
        )
        plan_notes["tilt_degrees"] = round(tilt, 3)
    step, missing = _target_step(gaps, span, n)
    if irregular:
        if missing:
            warnings.append(
                f"{missing} slice(s) missing (gap in slice positions, regular spacing "
                f"{step:.3f} mm); the gap was filled by interpolation"
            )
        else:
            described = ", ".join(f"{g:.2f}" for g in sorted({round(float(g), 2) for g in gaps}))
            warnings.append(
                f"irregular slice spacing (gaps {described} mm); resampled to a regular "
                f"{step:.3f} mm spacing (spacing equalisation)"
            )
    if not sheared:
        # offsets below the tolerance are header rounding, not a shear: do not grow the grid for them
        in_plane = np.zeros_like(in_plane)
    k_count = round(span / step) + 1
    step = span / (k_count - 1)
    # The delivered grid must cover every source slice's footprint after the shear.
    low = in_plane.min(axis=0)
    high = in_plane.max(axis=0)
    extra_cols = math.ceil((high[0] - low[0]) / col_spacing - 1e-3)
    extra_rows = math.ceil((high[1] - low[1]) / row_spacing - 1e-3)
    origin = positions[0] + axes[:, 0] * low[0] + axes[:, 1] * low[1]
    offsets = np.column_stack([in_plane[:, 0] - low[0], in_plane[:, 1] - low[1], depth - depth[0]])
    plan = GridPlan(
        records,
        origin,
        np.array([col_spacing, row_spacing, step]),
        axes,
        (first.cols + extra_cols, first.rows + extra_rows, k_count),
        resample=True,
        slice_offsets=offsets,
        warnings=warnings,
        notes=plan_notes,
    )
    return plan


def _target_step(gaps: NDArray[np.float64], span: float, n: int) -> tuple[float, int]:
    """Spacing of the equalised grid, and how many slices look missing from a regular stack.

    When every gap is a whole multiple of the smallest common gap, the stack is regular with holes: keep
    that gap. Otherwise use the smallest gap, but at most twice as many slices as the source has (a single
    tiny gap must not blow the volume up).
    """
    base = float(np.median(gaps))
    ratios = gaps / base
    if np.all(np.abs(ratios - np.round(ratios)) < 0.05) and np.all(np.round(ratios) >= 1):
        missing = int(np.sum(np.round(ratios) - 1))
        return base, missing
    return max(float(gaps.min()), span / (2 * (n - 1))), 0
