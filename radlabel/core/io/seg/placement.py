"""Put 2D frames given in world coordinates onto a reference grid: exactly when their pixels are the grid's
voxels, else by nearest-neighbour resampling.

A frame is an image plane: ``position`` (world centre of its first pixel), row/column cosines and pixel
spacing, as DICOM SEG frames (and the images RTSTRUCT contours are drawn on) define them. Placed data are
kept as **pieces**: a box of the reference array (``[k, j, i]`` slices) and the values inside it, cropped
to what is non-zero, so a SEG with many small segments never needs one full-size array per segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.segmentation.model import Grid

Box = tuple[slice, slice, slice]
Piece = tuple[Box, NDArray[Any]]

#: A frame whose pixel centres are this close (in voxels) to reference voxel centres is placed exactly.
EXACT_TOLERANCE_VOXELS = 0.05


@dataclass(frozen=True)
class FramePlane:
    """Geometry of one 2D frame.

    ``world(r, c) = position + c * col_spacing * row_cosine + r * row_spacing * col_cosine``.
    """

    position: NDArray[np.float64]
    row_cosine: NDArray[np.float64]  # direction of increasing column index (first 3 values of IOP)
    col_cosine: NDArray[np.float64]  # direction of increasing row index (last 3 values of IOP)
    row_spacing: float  # PixelSpacing[0]: distance between rows
    col_spacing: float  # PixelSpacing[1]: distance between columns
    rows: int
    cols: int

    @property
    def normal(self) -> NDArray[np.float64]:
        result: NDArray[np.float64] = np.cross(self.row_cosine, self.col_cosine)
        return result


@dataclass(frozen=True)
class ExactMap:
    """Frame pixel (r, c) -> reference index: ``offset + r * row_step + c * col_step`` (i, j, k), integer."""

    offset: NDArray[np.int64]
    row_axis: int
    row_sign: int
    col_axis: int
    col_sign: int
    fixed_axis: int


def exact_map(frame: FramePlane, grid: Grid, tolerance: float = EXACT_TOLERANCE_VOXELS) -> ExactMap | None:
    """The integer index map when every pixel centre of ``frame`` is a voxel centre of ``grid``, else None."""
    inverse = np.linalg.inv(grid.affine)
    linear = inverse[:3, :3]
    offset = linear @ frame.position + inverse[:3, 3]
    row_step = linear @ (frame.col_cosine * frame.row_spacing)
    col_step = linear @ (frame.row_cosine * frame.col_spacing)
    steps = []
    for step in (row_step, col_step):
        axis = int(np.argmax(np.abs(step)))
        unit = np.zeros(3)
        unit[axis] = np.sign(step[axis])
        # the error accumulated over the frame's extent must stay within tolerance
        extent = max(frame.rows, frame.cols)
        if np.max(np.abs(step - unit)) * extent > tolerance:
            return None
        steps.append((axis, int(unit[axis])))
    (row_axis, row_sign), (col_axis, col_sign) = steps
    if row_axis == col_axis:
        return None
    rounded = np.rint(offset)
    if np.max(np.abs(offset - rounded)) > tolerance:
        return None
    fixed = 3 - row_axis - col_axis
    return ExactMap(rounded.astype(np.int64), row_axis, row_sign, col_axis, col_sign, fixed)


def crop(box: Box, values: NDArray[Any]) -> Piece | None:
    """The piece cut down to its non-zero values (None when there are none)."""
    nonzero = values != 0
    if not nonzero.any():
        return None
    spans = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.nonzero(nonzero.any(axis=other))[0]
        spans.append(slice(int(hits[0]), int(hits[-1]) + 1))
    inner = (spans[0], spans[1], spans[2])
    new_box = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, inner, strict=True))
    return (new_box[0], new_box[1], new_box[2]), values[inner]


def place_exact(frame: NDArray[Any], mapping: ExactMap, shape_kji: tuple[int, int, int]) -> tuple[Piece | None, int]:
    """The frame as a piece of the reference array, and how many non-zero pixels fell outside it."""
    size_ijk = (shape_kji[2], shape_kji[1], shape_kji[0])
    fixed = int(mapping.offset[mapping.fixed_axis])
    nonzero_total = int(np.count_nonzero(frame))
    if not 0 <= fixed < size_ijk[mapping.fixed_axis]:
        return None, nonzero_total
    data = frame
    ranges = {}
    for axis_in_frame, (axis, sign) in enumerate(
        ((mapping.row_axis, mapping.row_sign), (mapping.col_axis, mapping.col_sign))
    ):
        n = frame.shape[axis_in_frame]
        indices = mapping.offset[axis] + sign * np.arange(n)
        valid = (indices >= 0) & (indices < size_ijk[axis])
        if not valid.any():
            return None, nonzero_total
        keep = np.nonzero(valid)[0]  # contiguous: indices are a run of consecutive integers
        cut = [slice(None), slice(None)]
        cut[axis_in_frame] = slice(int(keep[0]), int(keep[-1]) + 1)
        data = data[tuple(cut)]
        if sign < 0:
            data = np.flip(data, axis=axis_in_frame)
        chosen = indices[keep]
        ranges[axis] = slice(int(chosen.min()), int(chosen.max()) + 1)
    ranges[mapping.fixed_axis] = slice(fixed, fixed + 1)
    # data axes are (row_axis, col_axis) in (i, j, k) numbering; the array is [k, j, i].
    array_axes = [2 - mapping.row_axis, 2 - mapping.col_axis]
    block = np.expand_dims(data, axis=-1)  # axes: row, col, fixed
    array_axes.append(2 - mapping.fixed_axis)
    block = np.transpose(block, np.argsort(array_axes))
    box: Box = (ranges[2], ranges[1], ranges[0])
    lost = nonzero_total - int(np.count_nonzero(block))
    return crop(box, block), lost


def frame_key(frame: FramePlane, tolerance_mm: float = 1e-3) -> tuple[Any, ...]:
    """Frames with the same key lie in the same plane with the same pixel lattice."""
    return (
        tuple(np.round(frame.row_cosine, 4)),
        tuple(np.round(frame.col_cosine, 4)),
        round(float(frame.position @ frame.normal) / tolerance_mm),
    )


def resample_frames(
    frames: list[tuple[FramePlane, NDArray[Any], Any]], grid: Grid, half_gap_mm: float
) -> dict[Any, list[Piece]]:
    """Nearest-neighbour resampling of coplanar-orientation frames onto ``grid``.

    ``frames`` are ``(plane, values, key)``; a reference voxel takes the value of the pixel nearest to it in
    the frame plane nearest to it, when that plane is within ``half_gap_mm`` along the normal (frames of
    the same ``key`` are the same channel, e.g. the same segment). Returns pieces per key.
    """
    result: dict[Any, list[Piece]] = {}
    if not frames:
        return result
    first = frames[0][0]
    row_c, col_c, normal = first.row_cosine, first.col_cosine, first.normal
    w_of = np.array([float(f.position @ normal) for f, _, _ in frames])
    planes = np.unique(np.round(w_of, 4))
    members: dict[int, list[int]] = {}
    for index, w in enumerate(w_of):
        members.setdefault(int(np.argmin(np.abs(planes - w))), []).append(index)
    affine = grid.affine
    k_n, j_n, i_n = grid.shape
    # U, V, W (mm along row cosine, column cosine, normal) of voxel (i, j, k) are affine in (i, j, k).
    basis = np.stack([row_c, col_c, normal])  # 3 x 3
    steps = basis @ affine[:3, :3]  # columns: change of (U, V, W) per i, j, k
    start = basis @ affine[:3, 3]
    jj, ii = np.meshgrid(np.arange(j_n), np.arange(i_n), indexing="ij")
    low, high = planes.min() - half_gap_mm, planes.max() + half_gap_mm
    for k in range(k_n):
        w_slice = start[2] + steps[2, 0] * ii + steps[2, 1] * jj + steps[2, 2] * k
        if w_slice.max() < low or w_slice.min() > high:
            continue
        nearest = np.clip(np.searchsorted(planes, w_slice), 1, len(planes) - 1) if len(planes) > 1 else None
        if nearest is None:
            plane_index = np.zeros(w_slice.shape, np.int64)
        else:
            below, above = planes[nearest - 1], planes[nearest]
            plane_index = np.where(np.abs(w_slice - below) <= np.abs(w_slice - above), nearest - 1, nearest)
        within = np.abs(w_slice - planes[plane_index]) <= half_gap_mm
        if not within.any():
            continue
        u = start[0] + steps[0, 0] * ii + steps[0, 1] * jj + steps[0, 2] * k
        v = start[1] + steps[1, 0] * ii + steps[1, 1] * jj + steps[1, 2] * k
        slices: dict[Any, NDArray[Any]] = {}
        for p in np.unique(plane_index[within]):
            region = within & (plane_index == p)
            for index in members.get(int(p), []):
                plane, values, key = frames[index]
                c = np.rint((u[region] - float(plane.position @ row_c)) / plane.col_spacing).astype(np.int64)
                r = np.rint((v[region] - float(plane.position @ col_c)) / plane.row_spacing).astype(np.int64)
                inside = (c >= 0) & (c < plane.cols) & (r >= 0) & (r < plane.rows)
                if not inside.any():
                    continue
                target = slices.get(key)
                if target is None:
                    target = slices[key] = np.zeros((j_n, i_n), values.dtype)
                rows_idx, cols_idx = np.nonzero(region)
                target[rows_idx[inside], cols_idx[inside]] = values[r[inside], c[inside]]
        for key, plane_values in slices.items():
            piece = crop((slice(k, k + 1), slice(0, j_n), slice(0, i_n)), plane_values[None])
            if piece is not None:
                result.setdefault(key, []).append(piece)
    return result


def assemble(pieces: Iterable[Piece], shape: tuple[int, int, int], dtype: Any) -> NDArray[Any]:
    """A full array from pieces (later pieces win where they overlap, except for zeros)."""
    array = np.zeros(shape, dtype)
    for box, values in pieces:
        target = array[box]
        np.copyto(target, values.astype(dtype, copy=False), where=values != 0)
    return array


__all__ = ["ExactMap", "FramePlane", "Piece", "assemble", "crop", "exact_map", "place_exact", "resample_frames"]
