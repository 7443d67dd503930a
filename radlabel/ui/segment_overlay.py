"""Segments in a slice view: a filled, semi-transparent colour overlay and a crisp outline.

Each label layer is sampled on the image's plane and output grid (`radlabel.ui.plane_sampler`), but with
nearest-neighbour interpolation, so the overlay lies exactly on the image. The fill is an RGBA image coloured through a
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
from vtkmodules.vtkRenderingCore import vtkActor, vtkImageActor, vtkPolyDataMapper, vtkRenderer

from radlabel.core.segmentation.model import Segmentation
from radlabel.ui.plane_sampler import PlaneSampler

OUTLINE_WIDTH = 2.0


def label_boxes(
    labels: NDArray[Any], values: list[int], within: tuple[slice, slice] | None = None
) -> dict[int, tuple[slice, slice]]:
    """Bounding box (rows, columns) of each of ``values`` present in a 2D label image.

    ``within`` is a box known to hold every label (`_nonzero_box`), so only that part is scanned. NumPy only:
    SciPy's ``find_objects`` would add its import (~0.5 s) to the first frame that shows a segment.
    """
    if not values:
        return {}
    box = within if within is not None else _nonzero_box(labels)
    if box is None:
        return {}
    crop = labels[box]
    result: dict[int, tuple[slice, slice]] = {}
    if len(values) <= 8:  # a few segments per layer, the usual case: one pass each over the crop
        for value in values:
            inside = crop == value
            rows = np.flatnonzero(inside.any(axis=1))
            if rows.size:
                columns = np.flatnonzero(inside[rows[0] : rows[-1] + 1].any(axis=0))
                result[value] = _shift((rows, columns), box)
        return result
    # many labels (a whole-body label map): one pass, per-label minima and maxima of the voxel positions
    rows, columns = np.nonzero(crop)
    found = crop[rows, columns].astype(np.int64)
    top = int(max(values)) + 1
    keep = found < top
    rows, columns, found = rows[keep], columns[keep], found[keep]
    low_r, low_c = np.full(top, crop.shape[0]), np.full(top, crop.shape[1])
    high_r, high_c = np.full(top, -1), np.full(top, -1)
    np.minimum.at(low_r, found, rows)
    np.minimum.at(low_c, found, columns)
    np.maximum.at(high_r, found, rows)
    np.maximum.at(high_c, found, columns)
    for value in values:
        if 0 < value < top and high_r[value] >= 0:
            result[value] = _shift(
                (np.array([low_r[value], high_r[value]]), np.array([low_c[value], high_c[value]])), box
            )
    return result


def _shift(found: tuple[NDArray[Any], NDArray[Any]], box: tuple[slice, slice]) -> tuple[slice, slice]:
    """Rows and columns (first and last index found in a crop) as slices of the full image."""
    rows, columns = found
    r0, c0 = box[0].start, box[1].start
    return slice(r0 + int(rows[0]), r0 + int(rows[-1]) + 1), slice(c0 + int(columns[0]), c0 + int(columns[-1]) + 1)


class Outlines:
    """Outline of each labelled region of a 2D label image, as lines in plane coordinates with RGB colours.

    Each segment present is contoured on its own bounding box. The VTK objects are kept from one call to the
    next (a slice step re-contours the same few segments), which saves their creation and garbage collection.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[vtkImageData, vtkDiscreteFlyingEdges2D]] = []

    def build(
        self,
        labels: NDArray[Any],
        colors: dict[int, tuple[int, int, int]],
        origin: tuple[float, ...],
        spacing: tuple[float, ...],
        within: tuple[slice, slice] | None = None,
    ) -> list[vtkPolyData]:
        """The lines of each of ``colors``' label values present (``within``: a box known to hold them all)."""
        result = []
        for n, (value, (rows, columns)) in enumerate(label_boxes(labels, list(colors), within).items()):
            if n == len(self._parts):
                contour = vtkDiscreteFlyingEdges2D()
                contour.SetValue(0, 1.0)
                contour.ComputeScalarsOff()
                self._parts.append((vtkImageData(), contour))
            image, contour = self._parts[n]
            crop = np.zeros((rows.stop - rows.start + 2, columns.stop - columns.start + 2), np.uint8)
            np.equal(labels[rows, columns], value, out=crop[1:-1, 1:-1], casting="unsafe")
            image.SetDimensions(crop.shape[1], crop.shape[0], 1)
            image.SetOrigin(origin[0] + (columns.start - 1) * spacing[0], origin[1] + (rows.start - 1) * spacing[1], 0)
            image.SetSpacing(spacing[0], spacing[1], 1.0)
            image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(crop.reshape(-1), deep=False))
            image._radlabel_buffer = crop  # type: ignore[attr-defined]  # keeps the pixels alive
            contour.SetInputData(image)
            contour.Update()
            lines = vtkPolyData()
            lines.ShallowCopy(contour.GetOutput())  # the filter reuses its output on the next call
            rgb = np.broadcast_to(np.array(colors[value], np.uint8), (lines.GetNumberOfPoints(), 3))
            scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(rgb), deep=True)
            scalars.SetName("colors")
            lines.GetPointData().SetScalars(scalars)
            result.append(lines)
        return result


class SliceSegmentOverlay:
    """Fill and outline actors of all segments for one slice view.

    The fill image covers only the box of the slice that holds labels, not the whole plane: its texture is
    uploaded again after every change, which for a brush stroke or a small lesion is a few kilobytes instead
    of a plane's worth (1 MB for 512 x 512).
    """

    def __init__(
        self,
        renderer: vtkRenderer,
        reslice_axes: vtkMatrix4x4,
        fill_matrix: vtkMatrix4x4,
        outline_matrix: vtkMatrix4x4,
    ) -> None:
        self._axes = reslice_axes
        self._samplers: list[PlaneSampler] = []
        self._images: list[vtkImageData] = []
        self._fill_image = vtkImageData()
        self.fill_box: tuple[slice, slice] | None = None
        """Rows and columns of the output grid the fill image covers (None: nothing filled)."""
        self.fill_actor = vtkImageActor()
        self.fill_actor.SetInputData(self._fill_image)
        self.fill_actor.SetUserMatrix(fill_matrix)
        self.fill_actor.GetProperty().SetInterpolationTypeToNearest()
        # The fill image is cropped to its labels: its quad must reach the outer edges of its edge pixels
        # (by default it stops at their centres, which would halve them, and a one-row box would vanish).
        self.fill_actor.GetMapper().BorderOn()
        self.fill_actor.VisibilityOff()
        renderer.AddViewProp(self.fill_actor)
        self._outlines: list[Outlines] = []
        self._append = vtkAppendPolyData()
        self._outline_mapper = vtkPolyDataMapper()
        self._outline_mapper.SetInputConnection(self._append.GetOutputPort())
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
        self._samplers = [PlaneSampler(image, self._axes, linear=False) for image in images]
        self._outlines = [Outlines() for _ in images]
        if self._geometry is not None:
            self.set_output_grid(*self._geometry)

    def set_output_grid(self, origin: tuple[float, ...], spacing: tuple[float, ...], extent: tuple[int, ...]) -> None:
        """The 2D output grid (plane coordinates) the image reslice uses, so both line up pixel for pixel."""
        self._geometry = (origin, spacing, extent)
        for sampler in self._samplers:
            sampler.set_output_grid(origin, spacing, extent)

    def update(
        self,
        segmentation: Segmentation | None,
        visible_ids: list[int],
        opacity: float,
        show_fill: bool,
        show_outline: bool,
        plane: NDArray[np.float64],
    ) -> None:
        """Recompute the overlay for the plane whose matrix is ``plane`` (the reslice axes' content); call it
        after the plane or the labels changed."""
        if segmentation is None or not self._samplers or self._geometry is None:
            self.fill_actor.VisibilityOff()
            self.outline_actor.VisibilityOff()
            return
        visible = set(visible_ids)
        alpha = round(float(np.clip(opacity, 0.0, 1.0)) * 255)
        origin, spacing, _ = self._geometry
        fills: list[tuple[NDArray[Any], tuple[slice, slice], NDArray[np.uint8]]] = []
        lines: list[vtkPolyData] = []
        for index, sampler in enumerate(self._samplers):
            in_layer = [s for s in segmentation.segments.values() if s.layer == index]
            shown = [s for s in in_layer if s.id in visible]
            if not shown:
                continue
            labels = _labels_2d(sampler.update(plane))
            box = _nonzero_box(labels)
            if box is None:
                continue
            top = max(s.label_value for s in in_layer)
            if show_fill and alpha > 0:
                table = np.zeros((top + 1, 4), np.uint8)
                for segment in shown:
                    table[segment.label_value, :3] = segment.color
                    table[segment.label_value, 3] = alpha
                fills.append((np.minimum(labels[box], top), box, table))
            if show_outline:
                colors = {s.label_value: s.color for s in shown}
                lines += self._outlines[index].build(labels, colors, origin, spacing, box)
        self.fill_actor.SetVisibility(self._show_fill(fills, origin, spacing))
        lines = [part for part in lines if part.GetNumberOfPoints()]
        if lines:
            self._append.RemoveAllInputs()
            for part in lines:
                self._append.AddInputData(part)
        self.outline_actor.SetVisibility(bool(lines))

    def _show_fill(
        self,
        fills: list[tuple[NDArray[Any], tuple[slice, slice], NDArray[np.uint8]]],
        origin: tuple[float, ...],
        spacing: tuple[float, ...],
    ) -> bool:
        """Colour the labels of each layer into one RGBA image over the union of their boxes; False if empty."""
        if not fills:
            self.fill_box = None
            return False
        if len(fills) == 1:  # one layer, the usual case: its colours are the image
            labels, whole, table = fills[0]
            rgba = table[labels]
        else:
            union: tuple[slice, slice] | None = None
            for _, box, _ in fills:
                union = _union(union, box)
            assert union is not None
            whole = union
            rgba = np.zeros((whole[0].stop - whole[0].start, whole[1].stop - whole[1].start, 4), np.uint8)
            for labels, box, table in fills:
                colored = table[labels]
                painted = colored[..., 3] > 0
                target = rgba[
                    box[0].start - whole[0].start : box[0].stop - whole[0].start,
                    box[1].start - whole[1].start : box[1].stop - whole[1].start,
                ]
                target[painted] = colored[painted]
        if not rgba[..., 3].any():
            self.fill_box = None
            return False
        image = self._fill_image
        image.SetDimensions(rgba.shape[1], rgba.shape[0], 1)
        image.SetOrigin(origin[0] + whole[1].start * spacing[0], origin[1] + whole[0].start * spacing[1], 0.0)
        image.SetSpacing(spacing[0], spacing[1], 1.0)
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(rgba.reshape(-1, 4), deep=False))
        image._radlabel_buffer = rgba  # type: ignore[attr-defined]  # keeps the pixels alive with the image
        image.Modified()
        self.fill_box = whole
        return True

    def fill_rgba(self) -> NDArray[np.uint8] | None:
        """The fill colours on the whole output grid (rows, columns, 4), for tests; None when nothing is filled."""
        if self._geometry is None or self.fill_box is None:
            return None
        extent = self._geometry[2]
        full = np.zeros((extent[3] - extent[2] + 1, extent[1] - extent[0] + 1, 4), np.uint8)
        full[self.fill_box] = self._fill_image._radlabel_buffer  # type: ignore[attr-defined]
        return full


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
