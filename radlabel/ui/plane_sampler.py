"""One plane of a volume (or label layer) on a slice view's output grid, as the vtkImageData its mappers read.

A slice view samples the world plane through the cursor (`radlabel.ui.slice_view`). In general that is a
`vtkImageReslice` (linear for images, nearest neighbour for labels), which handles oblique and tilted grids.
When the grid is axis-aligned in LPS (a signed permutation of the world axes, as most CT and many MR series
are), the output grid's pixels are voxel centres and the plane holds voxel centres (always true for labels,
whose nearest neighbour is a slice), the plane *is* a slice of the numpy array: it is copied with numpy
slicing (~0.2 ms for 512 x 512 instead of ~2 ms through the reslice filter) into a buffer the output image
shares. Both paths give the same image (values, origin, spacing, extent), so the fast one is only a shortcut;
`tests/ui/test_plane_sampler.py` compares them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkImagingCore import vtkImageReslice

#: How far (in voxels) the plane or a grid may be from voxel centres and still count as on them.
ON_GRID_TOLERANCE = 1e-4

Grid2D = tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]


class PlaneSampler:
    """Samples ``image`` on the plane of ``axes`` (a view's reslice axes) into :attr:`output`."""

    def __init__(
        self,
        image: vtkImageData,
        axes: vtkMatrix4x4,
        linear: bool,
        background: float = 0.0,
        output: vtkImageData | None = None,
    ) -> None:
        self.image = image
        self.axes = axes
        self.linear = linear
        self.background = background
        self.reslice = vtkImageReslice()
        self.reslice.SetInputData(image)
        self.reslice.SetResliceAxes(axes)
        self.reslice.SetOutputDirection(1, 0, 0, 0, 1, 0, 0, 0, 1)
        self.reslice.SetOutputDimensionality(2)
        if linear:
            self.reslice.SetInterpolationModeToLinear()
        else:
            self.reslice.SetInterpolationModeToNearestNeighbor()
        self.reslice.SetBackgroundLevel(background)
        self.output = output if output is not None else vtkImageData()
        """What the mappers read; refreshed in place by `update` (``output`` when given, so mappers that read
        it keep reading it when the sampler is replaced)."""
        self.used_fast_path = False
        self._grid: Grid2D | None = None
        self._buffer: NDArray[Any] | None = None
        self._array: NDArray[Any] | None = getattr(image, "_radlabel_buffer", None)
        # voxel index (i, j, k) of a world point: (world - origin) @ _to_index.T
        direction = np.array([image.GetDirectionMatrix().GetElement(r, c) for r in range(3) for c in range(3)])
        direction = direction.reshape(3, 3)
        spacing = np.array(image.GetSpacing(), float)
        self._origin = np.array(image.GetOrigin(), float)
        self._to_index = (direction / spacing).T  # rows: index axes; D^T scaled by 1/spacing
        self._axis_aligned = bool(np.all(np.isclose(np.abs(direction), np.round(np.abs(direction)), atol=1e-9)))

    def set_background(self, level: float) -> None:
        self.background = level
        self.reslice.SetBackgroundLevel(level)

    def set_output_grid(self, origin: tuple[float, ...], spacing: tuple[float, ...], extent: tuple[int, ...]) -> None:
        """The 2D output grid in plane coordinates (u, v): origin, spacing and extent, as `vtkImageReslice` takes."""
        self._grid = (tuple(origin), tuple(spacing), tuple(extent))
        self.reslice.SetOutputOrigin(*origin)
        self.reslice.SetOutputSpacing(*spacing)
        self.reslice.SetOutputExtent(*extent)
        self._buffer = None

    def update(self, plane: NDArray[np.float64]) -> vtkImageData:
        """Sample the plane whose 4x4 matrix (columns right, up, normal, origin) is ``plane``; it must be the
        matrix held in the reslice axes. Returns :attr:`output`."""
        if self._grid is None:
            return self.output
        if self._fast(plane):
            self.used_fast_path = True
            return self.output
        self.used_fast_path = False
        self.reslice.Update()
        self.output.ShallowCopy(self.reslice.GetOutput())
        self._buffer = None  # the output now holds the reslice's pixels
        return self.output

    # -- the numpy path ------------------------------------------------------------------------------------

    def _fast(self, plane: NDArray[np.float64]) -> bool:
        array = self._array
        if array is None or not self._axis_aligned or self._grid is None:
            return False
        (u0, v0, _), (su, sv, _), extent = self._grid
        nu, nv = extent[1] - extent[0] + 1, extent[3] - extent[2] + 1
        # index of output pixel (c, r): start + c * step_c + r * step_r
        start = (plane[:3, :3] @ np.array([u0, v0, 0.0]) + plane[:3, 3] - self._origin) @ self._to_index.T
        step_c = (plane[:3, 0] * su) @ self._to_index.T
        step_r = (plane[:3, 1] * sv) @ self._to_index.T
        axis_c, axis_r = int(np.argmax(np.abs(step_c))), int(np.argmax(np.abs(step_r)))
        axis_n = 3 - axis_c - axis_r
        if axis_c == axis_r or not (_unit(step_c, axis_c) and _unit(step_r, axis_r)):
            return False
        if not (_whole(start[axis_c]) and _whole(start[axis_r])):
            return False
        depth = float(start[axis_n])
        index_n = math.floor(depth + 0.5)
        if self.linear and not _whole(depth):
            return False  # between slices: linear interpolation, which the reslice does
        size = array.shape[::-1]  # (i, j, k) sizes
        if not 0 <= index_n < size[axis_n]:
            return False  # outside the volume: all background; rare, let the reslice say so
        rows = _span(round(start[axis_r]), round(step_r[axis_r]), nv, size[axis_r])
        columns = _span(round(start[axis_c]), round(step_c[axis_c]), nu, size[axis_c])
        buffer = self._ensure_buffer(nu, nv, array.dtype)
        buffer.fill(self.background)
        if rows is not None and columns is not None:
            # numpy axes are (k, j, i): index axis a is numpy axis 2 - a
            index: list[Any] = [slice(None)] * 3
            index[2 - axis_n] = index_n
            index[2 - axis_r] = rows[1]
            index[2 - axis_c] = columns[1]
            part = array[tuple(index)]
            if 2 - axis_r > 2 - axis_c:  # numpy keeps axis order: rows must come first
                part = part.T
            buffer[rows[0], columns[0]] = part
        scalars = self.output.GetPointData().GetScalars()
        scalars.Modified()
        self.output.Modified()
        return True

    def _ensure_buffer(self, nu: int, nv: int, dtype: Any) -> NDArray[Any]:
        if self._buffer is not None and self._buffer.shape == (nv, nu) and self._buffer.dtype == dtype:
            return self._buffer
        assert self._grid is not None
        buffer = np.empty((nv, nu), dtype)
        output = vtkImageData()
        output.SetOrigin(*self._grid[0])
        output.SetSpacing(*self._grid[1])
        output.SetExtent(*self._grid[2])
        scalars = numpy_support.numpy_to_vtk(buffer.reshape(-1), deep=False)
        scalars.SetName("values")
        output.GetPointData().SetScalars(scalars)
        self.output.ShallowCopy(output)
        self._buffer = buffer
        self.output._radlabel_buffer = buffer  # type: ignore[attr-defined]  # keeps the pixels alive
        return buffer


def _unit(step: NDArray[np.float64], axis: int) -> bool:
    """One voxel along ``axis`` per output pixel, nothing along the others."""
    others = [a for a in range(3) if a != axis]
    return bool(abs(abs(step[axis]) - 1.0) < ON_GRID_TOLERANCE and np.all(np.abs(step[others]) < ON_GRID_TOLERANCE))


def _whole(value: float) -> bool:
    return abs(value - round(value)) < ON_GRID_TOLERANCE


def _span(start: int, step: int, count: int, size: int) -> tuple[slice, slice] | None:
    """Output pixels n in [0, count) whose source index start + step * n is in [0, size), as (output slice,
    source slice); None when there are none."""
    if step > 0:
        first = max(0, -start)
        last = min(count - 1, size - 1 - start)
    else:
        first = max(0, start - (size - 1))
        last = min(count - 1, start)
    if last < first:
        return None
    source_first, source_last = start + step * first, start + step * last
    if step > 0:
        source = slice(source_first, source_last + 1)
    else:
        source = slice(source_first, source_last - 1 if source_last > 0 else None, -1)
    return slice(first, last + 1), source
