"""Segments in a slice view: a filled, semi-transparent colour overlay and a crisp outline.

Each label layer is resliced with the image's reslice axes and output grid, but with nearest-neighbour
interpolation, so the overlay lies exactly on the image. The fill is an RGBA image coloured through a
per-layer colour table (numpy). The outline is drawn as lines, so it stays sharp at any zoom: each segment
present in the slice is contoured on its own bounding box (`vtkDiscreteFlyingEdges2D`; one filter with
several values would give every line the same label) and the lines carry the segment's colour.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersCore import vtkAppendPolyData
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges2D
from vtkmodules.vtkImagingCore import vtkImageReslice
from vtkmodules.vtkRenderingCore import vtkActor, vtkImageActor, vtkPolyDataMapper, vtkRenderer

from radlabel.core.segmentation.model import Segmentation
from radlabel.ui.vtk_image import image_from_array

OUTLINE_WIDTH = 2.0


def _layer_reslice(image: vtkImageData, axes: vtkMatrix4x4) -> vtkImageReslice:
    reslice = vtkImageReslice()
    reslice.SetInputData(image)
    reslice.SetResliceAxes(axes)
    reslice.SetOutputDirection(1, 0, 0, 0, 1, 0, 0, 0, 1)
    reslice.SetOutputDimensionality(2)
    reslice.SetInterpolationModeToNearestNeighbor()
    reslice.SetBackgroundLevel(0)
    return reslice


def label_boxes(labels: NDArray[Any], values: list[int]) -> dict[int, tuple[slice, slice]]:
    """Bounding box (rows, columns) of each of ``values`` present in a 2D label image, in one pass."""
    from scipy import ndimage  # imported on first use: not needed to show the window

    if not values:
        return {}
    top = max(values)
    clipped = np.where(labels <= top, labels, 0)
    boxes = ndimage.find_objects(clipped.astype(np.int32), max_label=top)
    return {value: boxes[value - 1] for value in values if boxes[value - 1] is not None}


def contour_lines(
    labels: NDArray[Any],
    colors: dict[int, tuple[int, int, int]],
    origin: tuple[float, ...],
    spacing: tuple[float, ...],
) -> vtkPolyData:
    """Outline of each labelled region of a 2D label image, as lines in plane coordinates with RGB colours."""
    append = vtkAppendPolyData()
    parts = []
    for value, (rows, columns) in label_boxes(labels, list(colors)).items():
        crop = np.pad((labels[rows, columns] == value).astype(np.uint8), 1)
        start = (
            origin[0] + (columns.start - 1) * spacing[0],
            origin[1] + (rows.start - 1) * spacing[1],
            0.0,
        )
        image = image_from_array(crop[None], start, (spacing[0], spacing[1], 1.0))
        contour = vtkDiscreteFlyingEdges2D()
        contour.SetInputData(image)
        contour.SetValue(0, 1.0)
        contour.ComputeScalarsOff()
        contour.Update()
        lines = contour.GetOutput()
        rgb = np.tile(np.array(colors[value], np.uint8), (lines.GetNumberOfPoints(), 1))
        scalars = numpy_support.numpy_to_vtk(rgb, deep=True)
        scalars.SetName("colors")
        lines.GetPointData().SetScalars(scalars)
        parts.append(lines)
        append.AddInputData(lines)
    if not parts:
        return vtkPolyData()
    append.Update()
    return append.GetOutput()


class SliceSegmentOverlay:
    """Fill and outline actors of all segments for one slice view."""

    def __init__(
        self,
        renderer: vtkRenderer,
        reslice_axes: vtkMatrix4x4,
        fill_matrix: vtkMatrix4x4,
        outline_matrix: vtkMatrix4x4,
    ) -> None:
        self._axes = reslice_axes
        self._reslices: list[vtkImageReslice] = []
        self._images: list[vtkImageData] = []
        self._rgba: NDArray[np.uint8] | None = None
        self._painted: tuple[slice, slice] | None = None
        self._fill_image = vtkImageData()
        self.fill_actor = vtkImageActor()
        self.fill_actor.SetInputData(self._fill_image)
        self.fill_actor.SetUserMatrix(fill_matrix)
        self.fill_actor.GetProperty().SetInterpolationTypeToNearest()
        self.fill_actor.VisibilityOff()
        renderer.AddViewProp(self.fill_actor)
        self._outline_mapper = vtkPolyDataMapper()
        self._outline_mapper.SetInputData(vtkPolyData())
        self._outline_mapper.SetColorModeToDirectScalars()
        self._outline_mapper.SetScalarModeToUsePointData()
        self.outline_actor = vtkActor()
        self.outline_actor.SetMapper(self._outline_mapper)
        self.outline_actor.SetUserMatrix(outline_matrix)
        self.outline_actor.GetProperty().SetLineWidth(OUTLINE_WIDTH)
        self.outline_actor.GetProperty().LightingOff()
        self.outline_actor.VisibilityOff()
        renderer.AddViewProp(self.outline_actor)
        self._geometry: tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]] | None = None

    def set_layer_images(self, images: list[vtkImageData]) -> None:
        """Use these label images (one per layer); rebuilds the per-layer reslices when they changed."""
        if len(images) == len(self._images) and all(a is b for a, b in zip(images, self._images, strict=True)):
            return
        self._images = list(images)
        self._reslices = [_layer_reslice(image, self._axes) for image in images]
        if self._geometry is not None:
            self.set_output_grid(*self._geometry)

    def set_output_grid(self, origin: tuple[float, ...], spacing: tuple[float, ...], extent: tuple[int, ...]) -> None:
        """The 2D output grid (plane coordinates) the image reslice uses, so both line up pixel for pixel."""
        self._geometry = (origin, spacing, extent)
        for reslice in self._reslices:
            reslice.SetOutputOrigin(*origin)
            reslice.SetOutputSpacing(*spacing)
            reslice.SetOutputExtent(*extent)
        nx, ny = extent[1] - extent[0] + 1, extent[3] - extent[2] + 1
        self._rgba = np.zeros((ny, nx, 4), np.uint8)
        self._painted = None
        self._fill_image = vtkImageData()
        self._fill_image.SetDimensions(nx, ny, 1)
        self._fill_image.SetOrigin(*origin)
        self._fill_image.SetSpacing(*spacing)
        scalars = numpy_support.numpy_to_vtk(self._rgba.reshape(-1, 4), deep=False)
        self._fill_image.GetPointData().SetScalars(scalars)
        self.fill_actor.SetInputData(self._fill_image)

    def update(
        self,
        segmentation: Segmentation | None,
        visible_ids: list[int],
        opacity: float,
        show_fill: bool,
        show_outline: bool,
    ) -> None:
        """Recompute the overlay for the current plane (call after the plane or the labels changed)."""
        if segmentation is None or not self._reslices or self._rgba is None or self._geometry is None:
            self.fill_actor.VisibilityOff()
            self.outline_actor.VisibilityOff()
            return
        visible = set(visible_ids)
        alpha = round(float(np.clip(opacity, 0.0, 1.0)) * 255)
        origin, spacing, _ = self._geometry
        if self._painted is not None:  # clear only what the last update painted
            self._rgba[self._painted] = 0
            self._painted = None
        any_fill = False
        outlines = vtkAppendPolyData()
        any_outline = False
        for index, reslice in enumerate(self._reslices):
            in_layer = [s for s in segmentation.segments.values() if s.layer == index]
            shown = [s for s in in_layer if s.id in visible]
            if not shown:
                continue
            reslice.Update()
            labels = _labels_2d(reslice.GetOutput())
            box = _nonzero_box(labels)
            if box is None:
                continue
            top = max(s.label_value for s in in_layer)
            if show_fill and alpha > 0:
                table = np.zeros((top + 1, 4), np.uint8)
                for segment in shown:
                    table[segment.label_value, :3] = segment.color
                    table[segment.label_value, 3] = alpha
                rgba = table[np.minimum(labels[box], top)]
                painted = rgba[..., 3] > 0
                if painted.any():
                    any_fill = True
                    self._rgba[box][painted] = rgba[painted]
                    self._painted = _union(self._painted, box)
            if show_outline:
                colors = {s.label_value: s.color for s in shown}
                lines = contour_lines(labels, colors, origin, spacing)
                if lines.GetNumberOfPoints():
                    outlines.AddInputData(lines)
                    any_outline = True
        self._fill_image.GetPointData().GetScalars().Modified()
        self._fill_image.Modified()
        self.fill_actor.SetVisibility(any_fill)
        if any_outline:
            outlines.Update()
            self._outline_mapper.SetInputData(outlines.GetOutput())
        self.outline_actor.SetVisibility(any_outline)


def _labels_2d(image: vtkImageData) -> NDArray[Any]:
    nx, ny, _ = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(ny, nx)


def _nonzero_box(labels: NDArray[Any]) -> tuple[slice, slice] | None:
    """Rows and columns that hold any label (None when the slice is empty)."""
    rows = np.flatnonzero(labels.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(labels[rows[0] : rows[-1] + 1].any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def _union(a: tuple[slice, slice] | None, b: tuple[slice, slice]) -> tuple[slice, slice]:
    if a is None:
        return b
    return (
        slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
        slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
    )
