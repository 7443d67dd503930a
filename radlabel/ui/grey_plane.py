"""A slice view's image on screen: the plane's values through window/level into a grey texture on one quad.

`vtkImageSlice` does the same, but after each slice step it rebuilds its texture through a threaded filter
and a new textured polygon, ~3 ms more per frame than replacing the pixels of a plain texture in software
OpenGL. Here the window/level mapping is a numpy table lookup (one entry per possible value for 8- and 16-bit
data, arithmetic for others, with the same formula as `vtkImageProperty`), and the quad covers the plane's
pixels edge to edge, so texel centres are pixel centres and bilinear filtering looks as the image slice did.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersSources import vtkPlaneSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer, vtkTexture

#: Integer types mapped through a table with one entry per bit pattern.
_TABLE_TYPES = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16)}


def window_level(values: NDArray[Any], window: float, level: float, out: NDArray[np.uint8] | None = None) -> Any:
    """``values`` mapped to grey levels 0..255: ``level - window / 2`` is black, ``level + window / 2`` white."""
    if values.dtype in _TABLE_TYPES:
        table = _table(values.dtype.str, float(window), float(level))
        unsigned = values.view(np.dtype(f"u{values.dtype.itemsize}"))
        return np.take(table, unsigned, out=out, mode="clip")  # "clip" is free here; "raise" buffers `out`
    low, scale = _low_and_scale(window, level)
    grey = np.clip((values.astype(np.float32) - np.float32(low)) * np.float32(scale) + np.float32(0.5), 0, 255)
    if out is None:
        return grey.astype(np.uint8)
    np.copyto(out, grey, casting="unsafe")
    return out


def _low_and_scale(window: float, level: float) -> tuple[float, float]:
    window = max(float(window), 1e-6)
    return float(level) - window / 2, 255.0 / window


@functools.lru_cache(maxsize=8)
def _table(dtype: str, window: float, level: float) -> NDArray[np.uint8]:
    """Grey level of every bit pattern of ``dtype``, indexed by the pattern read as unsigned."""
    kind = np.dtype(dtype)
    patterns = np.arange(2 ** (8 * kind.itemsize), dtype=np.uint64).astype(f"u{kind.itemsize}")
    values = patterns.view(kind).astype(np.float64)
    low, scale = _low_and_scale(window, level)
    table: NDArray[np.uint8] = np.clip((values - low) * scale + 0.5, 0, 255).astype(np.uint8)
    return table


class GreyPlane:
    """The image actor of a slice view: a quad in plane coordinates carrying the windowed plane as a texture."""

    def __init__(self, renderer: vtkRenderer, user_matrix: vtkMatrix4x4) -> None:
        self._quad = vtkPlaneSource()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self._quad.GetOutputPort())
        self._image = vtkImageData()
        self._pixels: NDArray[np.uint8] | None = None
        self.texture = vtkTexture()
        self.texture.SetInputData(self._image)
        self.texture.InterpolateOn()  # as the image property's linear interpolation
        self.texture.RepeatOff()
        self.texture.EdgeClampOn()
        self.texture.SetColorModeToDirectScalars()
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.SetTexture(self.texture)
        self.actor.GetProperty().LightingOff()
        self.actor.SetUserMatrix(user_matrix)
        self.actor.VisibilityOff()
        renderer.AddViewProp(self.actor)

    def set_grid(self, origin: tuple[float, ...], spacing: tuple[float, ...], extent: tuple[int, ...]) -> None:
        """The plane's output grid (as `PlaneSampler.set_output_grid`): the quad spans its pixels' outer edges."""
        nu, nv = extent[1] - extent[0] + 1, extent[3] - extent[2] + 1
        (u0, v0), (su, sv) = origin[:2], spacing[:2]
        left, bottom = u0 - su / 2, v0 - sv / 2
        self._quad.SetOrigin(left, bottom, 0.0)
        self._quad.SetPoint1(left + nu * su, bottom, 0.0)
        self._quad.SetPoint2(left, bottom + nv * sv, 0.0)
        self._pixels = np.zeros((nv, nu), np.uint8)
        self._image.SetDimensions(nu, nv, 1)
        self._image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(self._pixels.reshape(-1), deep=False))

    def show(self, values: NDArray[Any], window: float, level: float) -> None:
        """Window the plane's ``values`` (rows, columns; row 0 at the bottom) into the texture."""
        if self._pixels is None or values.shape != self._pixels.shape:
            return
        window_level(values, window, level, out=self._pixels)
        self._image.GetPointData().GetScalars().Modified()
        self._image.Modified()
