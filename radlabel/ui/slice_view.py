"""An axial, coronal or sagittal slice view in **world** space (LPS).

The volume is a vtkImageData with its direction matrix; a vtkImageReslice whose reslice axes are the view's
world axes (:func:`radlabel.ui.viewer_state.plane_matrix`) samples the plane through the cursor, so an
oblique or tilted acquisition is shown in true patient orientation. The 2D result lives in *plane
coordinates* (u, v) = (world . right, world . up); every actor of the view carries the same plane matrix, so
the scene is in world millimetres and a screen pixel maps to a world point by a fixed affine map
(:meth:`SliceScene.display_to_world`) that tests can check against the rendered pixels. On an axis-aligned
grid the plane is a slice of the array, which `radlabel.ui.plane_sampler` copies without the reslice filter.

A state change redraws only what it changes (:class:`Redraw`): the view the user works in draws in its next
paint, the others on idle ticks after it (`radlabel.ui.vtk_canvas`), and edits or previews whose box misses
a view's plane leave that view alone.

:class:`SliceScene` is the VTK part (no Qt); :class:`SliceView` is the Qt widget with mouse and keyboard.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget
from vtkmodules.vtkCommonCore import vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkActor2D,
    vtkImageProperty,
    vtkPolyDataMapper,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkTextActor,
)

from radlabel.core import geometry
from radlabel.ui.grey_plane import GreyPlane
from radlabel.ui.plane_sampler import PlaneSampler
from radlabel.ui.segment_overlay import SliceSegmentOverlay
from radlabel.ui.viewer_state import (
    PLANES,
    SLICE_VIEWS,
    VIEW_COLORS,
    Box,
    Change,
    Layout,
    View,
    ViewerState,
    box_is_empty,
    plane_matrix,
)
from radlabel.ui.vtk_canvas import make_canvas
from radlabel.ui.vtk_image import CaseImages, array_2d, image_from_array, mark_modified, vtk_matrix

#: Camera distance from the plane (mm); overlays sit slightly in front of the image, towards the viewer.
CAMERA_DISTANCE = 500.0
_FILL_OFFSET, _OUTLINE_OFFSET, _CROSSHAIR_OFFSET = 0.05, 0.1, 0.15
_PREVIEW_FILL_OFFSET, _PREVIEW_OUTLINE_OFFSET = 0.07, 0.12
#: Half the depth (mm) around the plane the camera keeps; the overlays' offsets are far smaller.
CLIP_HALF_DEPTH = 10.0
#: Largest reslice output (pixels per side); larger planes get a coarser output spacing.
MAX_OUTPUT_PIXELS = 2048
#: Half-gap of the crosshair around the cursor (screen pixels), so the voxel under it stays visible.
CROSSHAIR_GAP_PX = 7.0
_FONT = "Arial"


class Redraw(enum.IntEnum):
    """What a state change means for one view's pixels."""

    NONE = 0
    CROSSHAIR = 1  # only the crosshair lines moved: the frame may wait for an idle tick
    CONTENT = 2  # the image, segments, previews, texts or camera changed: draw it in the next paint


def _text_actor(size: int, color: tuple[float, float, float], bold: bool = False) -> vtkTextActor:
    actor = vtkTextActor()
    prop = actor.GetTextProperty()
    prop.SetFontSize(size)
    prop.SetColor(*color)
    prop.SetBold(bold)
    prop.SetShadow(True)
    prop.SetShadowOffset(1, -1)
    return actor


class SliceScene:
    """The VTK pipeline of one slice view: image, segments, crosshair, letters, slice text, scale bar."""

    def __init__(self, view: View, state: ViewerState, images: CaseImages) -> None:
        self.view = view
        self.state = state
        self.images = images
        self.plane = PLANES[view]
        self.right = np.asarray(self.plane.right, float)
        self.up = np.asarray(self.plane.up, float)
        self.normal = self.plane.normal
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        # The overlays are ordered by their offsets towards the camera; order-independent translucency
        # would add two offscreen passes per frame (a third of a frame's cost in software OpenGL).
        self.renderer.UseOITOff()
        self.renderer.GetCullers().RemoveAllItems()  # every prop is in view: culling only costs time
        self.camera = self.renderer.GetActiveCamera()
        self.camera.ParallelProjectionOn()
        self.size = (1, 1)
        self.matrix = np.eye(4)
        self.axes = vtkMatrix4x4()
        self._fill_matrix, self._outline_matrix, self._crosshair_matrix = vtkMatrix4x4(), vtkMatrix4x4(), vtkMatrix4x4()
        self._preview_fill_matrix, self._preview_outline_matrix = vtkMatrix4x4(), vtkMatrix4x4()
        #: Preview overlays (proposal, brush stroke, ...) by key, with the VTK images of their layers.
        self.previews: dict[str, SliceSegmentOverlay] = {}
        self._preview_images: dict[str, tuple[list[Any], list[Any]]] = {}
        self.bounds_uv = (-100.0, 100.0, -100.0, 100.0)
        self.output_grid: tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]] | None = None
        self.show_annotations = True
        self._camera: tuple[float, tuple[float, float]] | None = None
        self._crosshair_key: tuple[Any, ...] | None = None
        self._annotations_key: tuple[Any, ...] | None = None

        self.plane_image = vtkImageData()
        """The image on the plane through the cursor (the 3D view shows it too); see `ensure_plane`."""
        self.sampler: PlaneSampler | None = None
        self._plane_stale = True
        self.image_property = vtkImageProperty()
        """Window/level of the image (the 3D view's planes draw with it)."""
        self.image_property.SetInterpolationTypeToLinear()
        self.grey = GreyPlane(self.renderer, self.axes)
        self.image_actor = self.grey.actor
        self._grey_stale = True

        self.overlay = SliceSegmentOverlay(self.renderer, self.axes, self._fill_matrix, self._outline_matrix)
        self._build_crosshair()
        self._build_annotations()
        self._update_volume()

    # -- construction --------------------------------------------------------------------------------------

    def _build_crosshair(self) -> None:
        self._cross_points = vtkPoints()
        self._cross_points.SetNumberOfPoints(8)
        lines = vtkCellArray()
        colors = vtkUnsignedCharArray()
        colors.SetNumberOfComponents(3)
        others = [v for v in SLICE_VIEWS if v is not self.view]
        for n in range(4):
            lines.InsertNextCell(2)
            lines.InsertCellPoint(2 * n)
            lines.InsertCellPoint(2 * n + 1)
            rgb = VIEW_COLORS[others[n // 2]]
            colors.InsertNextTuple3(*(int(255 * c) for c in rgb))
        self._cross_polydata = vtkPolyData()
        self._cross_polydata.SetPoints(self._cross_points)
        self._cross_polydata.SetLines(lines)
        self._cross_polydata.GetCellData().SetScalars(colors)
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self._cross_polydata)
        mapper.SetColorModeToDirectScalars()
        mapper.SetScalarModeToUseCellData()
        self._cross_mapper = mapper
        self.crosshair_actor = vtkActor()
        self.crosshair_actor.SetMapper(mapper)
        self.crosshair_actor.SetUserMatrix(self._crosshair_matrix)
        self.crosshair_actor.GetProperty().SetLineWidth(1.0)
        self.crosshair_actor.GetProperty().LightingOff()
        self.crosshair_actor.VisibilityOff()
        self.renderer.AddViewProp(self.crosshair_actor)
        self._cross_others = others

    def _build_annotations(self) -> None:
        letter_color = (1.0, 0.85, 0.55)
        self._letters = {side: _text_actor(17, letter_color, bold=True) for side in ("left", "right", "top", "bottom")}
        letters = {
            "left": geometry.axis_letter(-self.right),
            "right": geometry.axis_letter(self.right),
            "top": geometry.axis_letter(self.up),
            "bottom": geometry.axis_letter(-self.up),
        }
        for side, actor in self._letters.items():
            actor.SetInput(letters[side])
            prop = actor.GetTextProperty()
            prop.SetJustificationToCentered()
            prop.SetVerticalJustificationToCentered()
            self.renderer.AddViewProp(actor)
        self.letters = letters
        self._title = _text_actor(14, VIEW_COLORS[self.view], bold=True)
        self._slice_text = _text_actor(13, (0.92, 0.92, 0.92))
        self._window_text = _text_actor(13, (0.92, 0.92, 0.92))
        self._window_text.GetTextProperty().SetJustificationToRight()
        for actor in (self._title, self._slice_text):
            actor.GetTextProperty().SetVerticalJustificationToTop()
        self._window_text.GetTextProperty().SetVerticalJustificationToTop()
        self._title.SetInput(self.view.value.capitalize())
        self._scale_text = _text_actor(12, (0.92, 0.92, 0.92))
        self._scale_text.GetTextProperty().SetJustificationToCentered()
        self._scale_points = vtkPoints()
        self._scale_points.SetNumberOfPoints(6)
        bar = vtkCellArray()
        for a, b in ((0, 1), (2, 3), (4, 5)):
            bar.InsertNextCell(2)
            bar.InsertCellPoint(a)
            bar.InsertCellPoint(b)
        self._scale_polydata = vtkPolyData()
        self._scale_polydata.SetPoints(self._scale_points)
        self._scale_polydata.SetLines(bar)
        scale_mapper = vtkPolyDataMapper2D()
        scale_mapper.SetInputData(self._scale_polydata)
        self._scale_mapper = scale_mapper
        self._scale_bar = vtkActor2D()
        self._scale_bar.SetMapper(scale_mapper)
        self._scale_bar.GetProperty().SetColor(0.92, 0.92, 0.92)
        self._scale_bar.GetProperty().SetLineWidth(2.0)
        self._annotation_actors = [
            *self._letters.values(),
            self._title,
            self._slice_text,
            self._window_text,
            self._scale_text,
            self._scale_bar,
        ]
        for actor in self._annotation_actors:
            self.renderer.AddViewProp(actor)

    # -- state -> pipeline ---------------------------------------------------------------------------------

    def update(self, changes: set[Change]) -> Redraw:
        """Bring the pipeline up to date with the state (cheap when little changed); say what must be redrawn.

        Only what this view shows is recomputed: a cursor move along another view's normal moves just the
        crosshair here, and an edit or a brush stroke whose box misses this plane changes nothing here.
        """
        if Change.VOLUME in changes:
            self._update_volume()
        state = self.state
        if state.volume is None:
            return Redraw.CONTENT if Change.VOLUME in changes else Redraw.NONE
        new_volume = Change.VOLUME in changes
        moved = False
        redraw = Redraw.CONTENT if new_volume or Change.VOLUME_DATA in changes else Redraw.NONE
        if Change.VOLUME_DATA in changes:
            self._plane_stale = True
        if changes & {Change.CURSOR, Change.VOLUME}:
            moved = self._update_plane()
            if moved:
                redraw = Redraw.CONTENT
                self._plane_stale = True
            elif state.show_crosshair:
                redraw = max(redraw, Redraw.CROSSHAIR)
        if Change.WINDOW in changes or new_volume:
            self.image_property.SetColorWindow(state.window)
            self.image_property.SetColorLevel(state.level)
            self._grey_stale = True
            redraw = Redraw.CONTENT
        if Change.SEGMENTATION in changes or new_volume:
            self.overlay.set_layer_images(self.images.layer_images)
        if moved or new_volume or (Change.PREVIEW in changes and self.meets(state.preview_box)):
            self._update_previews(Change.PREVIEW in changes)
            redraw = Redraw.CONTENT
        if (
            moved
            or changes & {Change.SEGMENT_DISPLAY, Change.VOLUME}
            or (Change.SEGMENTATION in changes and self.meets(state.changed_box))
        ):
            self.overlay.update(
                state.segmentation,
                state.visible_segment_ids(),
                state.segment_opacity,
                state.show_fill,
                state.show_outline,
                self.matrix,
            )
            redraw = Redraw.CONTENT
        camera = (state.zoom[self.view], state.pan[self.view])
        if camera != self._camera:
            self._camera = camera
            redraw = Redraw.CONTENT
        if moved or new_volume or Change.WINDOW in changes:
            self._update_texts()
        return redraw

    def meets(self, box: Box | None) -> bool:
        """Does the plane on show pass through the voxels of ``box`` ([k, j, i]; ``None``: anywhere)?"""
        volume = self.state.volume
        if box is None or volume is None:
            return True
        if box_is_empty(box):
            return False
        k, j, i = box
        corners = np.array(
            [
                [a, b, c]
                for a in (i.start - 0.5, i.stop - 0.5)
                for b in (j.start - 0.5, j.stop - 0.5)
                for c in (k.start - 0.5, k.stop - 0.5)
            ]
        )
        depth = volume.index_to_world(corners) @ self.normal
        plane = float(self.normal @ self.state.cursor)
        return bool(depth.min() - 1e-6 <= plane <= depth.max() + 1e-6)

    def _update_volume(self) -> None:
        volume = self.state.volume
        has_volume = volume is not None and self.images.volume_image is not None
        self.image_actor.SetVisibility(has_volume)
        for actor in self._annotation_actors:
            actor.SetVisibility(has_volume and self.show_annotations)
        if not has_volume:
            self.crosshair_actor.VisibilityOff()
            return
        assert volume is not None and self.images.volume_image is not None
        background = float(np.min(volume.array[:: max(1, volume.array.shape[0] // 8)]))
        self.sampler = PlaneSampler(self.images.volume_image, self.axes, True, background, self.plane_image)
        self._plane_stale = True
        # Plane bounds: the volume's voxel-edge corners projected on the view's screen axes.
        n = np.array(volume.size, float)
        edges = np.array(
            [[a, b, c] for a in (-0.5, n[0] - 0.5) for b in (-0.5, n[1] - 0.5) for c in (-0.5, n[2] - 0.5)]
        )
        world = volume.index_to_world(edges)
        u, v = world @ self.right, world @ self.up
        self.bounds_uv = (float(u.min()), float(u.max()), float(v.min()), float(v.max()))
        # Output spacing: that of the volume axes closest to the screen axes (the native grid when the
        # volume is not rotated), coarser only for very large planes.
        closest = np.argmax(np.abs(volume.direction.T @ np.stack([self.right, self.up], axis=1)), axis=0)
        su, sv = (float(volume.spacing[a]) for a in closest)
        su = max(su, (self.bounds_uv[1] - self.bounds_uv[0]) / MAX_OUTPUT_PIXELS)
        sv = max(sv, (self.bounds_uv[3] - self.bounds_uv[2]) / MAX_OUTPUT_PIXELS)
        # Align the output grid with the projection of voxel (0, 0, 0)'s centre.
        first = volume.index_to_world([0.0, 0.0, 0.0])[0]
        u_first, v_first = float(first @ self.right), float(first @ self.up)
        u0 = u_first + math.floor((self.bounds_uv[0] - u_first) / su) * su
        v0 = v_first + math.floor((self.bounds_uv[2] - v_first) / sv) * sv
        nu = math.ceil((self.bounds_uv[1] - u0) / su) + 1
        nv = math.ceil((self.bounds_uv[3] - v0) / sv) + 1
        self.output_grid = ((u0, v0, 0.0), (su, sv, 1.0), (0, nu - 1, 0, nv - 1, 0, 0))
        self.sampler.set_output_grid(*self.output_grid)
        self.grey.set_grid(*self.output_grid)
        self.overlay.set_output_grid(*self.output_grid)
        for preview in self.previews.values():
            preview.set_output_grid(*self.output_grid)
        self.matrix = np.zeros((4, 4))  # forces _update_plane to write the matrices

    def _update_plane(self) -> bool:
        matrix = plane_matrix(self.view, self.state.cursor)
        if np.array_equal(matrix, self.matrix):
            return False
        self.matrix = matrix
        vtk_matrix(matrix, self.axes)
        for target, offset in (
            (self._fill_matrix, _FILL_OFFSET),
            (self._outline_matrix, _OUTLINE_OFFSET),
            (self._crosshair_matrix, _CROSSHAIR_OFFSET),
            (self._preview_fill_matrix, _PREVIEW_FILL_OFFSET),
            (self._preview_outline_matrix, _PREVIEW_OUTLINE_OFFSET),
        ):
            shifted = matrix.copy()
            shifted[:3, 3] += self.normal * offset
            vtk_matrix(shifted, target)
        return True

    def _update_previews(self, data_changed: bool) -> None:
        """Draw the state's preview overlays on this plane (hide those that are gone)."""
        for key, overlay in self.previews.items():
            if key not in self.state.previews:
                overlay.fill_actor.VisibilityOff()
                overlay.outline_actor.VisibilityOff()
        for key, preview in self.state.previews.items():
            overlay = self.previews.get(key)
            if overlay is None:
                overlay = SliceSegmentOverlay(
                    self.renderer, self.axes, self._preview_fill_matrix, self._preview_outline_matrix
                )
                if self.output_grid is not None:
                    overlay.set_output_grid(*self.output_grid)
                self.previews[key] = overlay
            segmentation = preview.segmentation
            arrays, images = self._preview_images.get(key, ([], []))
            if len(arrays) != len(segmentation.layers) or any(
                a is not b for a, b in zip(arrays, segmentation.layers, strict=True)
            ):
                grid = segmentation.grid
                arrays = list(segmentation.layers)
                images = [image_from_array(a, grid.origin, grid.spacing, grid.direction, "labels") for a in arrays]
                self._preview_images[key] = (arrays, images)
            elif data_changed:
                for image in images:
                    mark_modified(image)
            overlay.set_layer_images(images)
            overlay.update(
                segmentation,
                list(segmentation.segments),
                preview.opacity,
                preview.opacity > 0,
                preview.outline,
                self.matrix,
            )

    def set_annotations_visible(self, visible: bool) -> None:
        """Letters, texts and scale bar on or off (tests hide them to look at the pixels alone)."""
        self.show_annotations = visible
        has_volume = self.state.volume is not None
        for actor in self._annotation_actors:
            actor.SetVisibility(visible and has_volume)

    def _update_texts(self) -> None:
        state = self.state
        n, count = state.slice_number(self.view)
        axis_name = "xyz"[int(np.argmax(np.abs(self.plane.slice_axis)))]
        self._slice_text.SetInput(f"Slice {n} / {count}\n{axis_name} = {state.slice_position(self.view):.1f} mm")
        preset = f"\n{state.preset}" if state.preset else ""
        self._window_text.SetInput(f"W {state.window:.0f}  L {state.level:.0f}{preset}")

    # -- camera and screen mapping -------------------------------------------------------------------------

    def fit_scale(self) -> float:
        """Parallel scale (half the view height in mm) that shows the whole plane at zoom 1."""
        width, height = self.size
        half_u = (self.bounds_uv[1] - self.bounds_uv[0]) / 2
        half_v = (self.bounds_uv[3] - self.bounds_uv[2]) / 2
        return max(half_v, half_u * height / max(width, 1)) * 1.04

    def focal_uv(self) -> tuple[float, float]:
        pan = self.state.pan[self.view]
        return (
            (self.bounds_uv[0] + self.bounds_uv[1]) / 2 + pan[0],
            (self.bounds_uv[2] + self.bounds_uv[3]) / 2 + pan[1],
        )

    def parallel_scale(self) -> float:
        return self.fit_scale() / self.state.zoom[self.view]

    def mm_per_pixel(self) -> float:
        return 2.0 * self.parallel_scale() / max(self.size[1], 1)

    def ensure_plane(self) -> None:
        """Sample the image on the plane on show, if it moved or the voxels changed since the last time.

        Done when a frame needs it (this view's or the 3D view's), not on every cursor change: a hidden view
        costs nothing."""
        if self._plane_stale and self.sampler is not None:
            self._plane_stale = False
            self._grey_stale = True
            self.sampler.update(self.matrix)

    def before_render(self, width: int, height: int) -> None:
        """Camera, crosshair, letters and scale bar for a viewport of ``width`` x ``height`` pixels."""
        self.size = (max(int(width), 1), max(int(height), 1))
        if self.state.volume is None:
            return
        self.ensure_plane()
        if self._grey_stale and self.plane_image.GetPointData().GetScalars() is not None:
            self._grey_stale = False
            self.grey.show(array_2d(self.plane_image), self.state.window, self.state.level)
        fu, fv = self.focal_uv()
        focal = self.matrix[:3, :3] @ np.array([fu, fv, 0.0]) + self.matrix[:3, 3]
        self.camera.SetFocalPoint(*focal)
        self.camera.SetPosition(*(focal + self.normal * CAMERA_DISTANCE))
        self.camera.SetViewUp(*self.up)
        self.camera.SetParallelScale(self.parallel_scale())
        # Everything lies within a fraction of a millimetre of the plane: a fixed range spares VTK the bounds
        # of every prop on each frame.
        self.camera.SetClippingRange(CAMERA_DISTANCE - CLIP_HALF_DEPTH, CAMERA_DISTANCE + CLIP_HALF_DEPTH)
        self._place_crosshair()
        self._place_annotations()

    def world_to_display(self, world: ArrayLike) -> NDArray[np.float64]:
        """VTK display coordinates (x right, y up, pixel centres at +0.5) of a world point projected on the view."""
        d = np.asarray(world, float).reshape(3)
        fu, fv = self.focal_uv()
        mm = self.mm_per_pixel()
        width, height = self.size
        return np.array([width / 2 + (d @ self.right - fu) / mm, height / 2 + (d @ self.up - fv) / mm])

    def display_to_world(self, x: float, y: float) -> NDArray[np.float64]:
        """The world point (on the current slice plane) shown at display coordinates (x, y)."""
        fu, fv = self.focal_uv()
        mm = self.mm_per_pixel()
        width, height = self.size
        u = fu + (x - width / 2) * mm
        v = fv + (y - height / 2) * mm
        result: NDArray[np.float64] = self.matrix[:3, :3] @ np.array([u, v, 0.0]) + self.matrix[:3, 3]
        return result

    def _place_crosshair(self) -> None:
        visible = self.state.show_crosshair and self.state.volume is not None
        self.crosshair_actor.SetVisibility(visible)
        if not visible:
            return
        cursor = self.state.cursor
        cu, cv = float(cursor @ self.right), float(cursor @ self.up)
        mm = self.mm_per_pixel()
        key = (cu, cv, mm, self.size, self.bounds_uv)
        if key == self._crosshair_key:  # unchanged lines: no new vertex buffer for the frame
            return
        self._crosshair_key = key
        gap = CROSSHAIR_GAP_PX * mm
        reach = (
            4.0 * max(self.size) * mm
            + (self.bounds_uv[1] - self.bounds_uv[0])
            + (self.bounds_uv[3] - self.bounds_uv[2])
        )
        for n, other in enumerate(self._cross_others):
            direction = np.cross(self.normal, PLANES[other].normal)
            du, dv = float(direction @ self.right), float(direction @ self.up)
            length = math.hypot(du, dv) or 1.0
            du, dv = du / length, dv / length
            for m, sign in enumerate((-1.0, 1.0)):
                near = (cu + sign * gap * du, cv + sign * gap * dv, 0.0)
                far = (cu + sign * reach * du, cv + sign * reach * dv, 0.0)
                index = 4 * n + 2 * m
                self._cross_points.SetPoint(index, *near)
                self._cross_points.SetPoint(index + 1, *far)
        self._cross_points.Modified()
        self._cross_polydata.Modified()

    def _place_annotations(self) -> None:
        width, height = self.size
        mm = self.mm_per_pixel()
        if (self.size, mm) == self._annotations_key:  # placed for this size and zoom already
            return
        self._annotations_key = (self.size, mm)
        margin = 10
        self._letters["left"].SetDisplayPosition(margin + 4, height // 2)
        self._letters["right"].SetDisplayPosition(width - margin - 4, height // 2)
        self._letters["top"].SetDisplayPosition(width // 2, height - margin - 6)
        self._letters["bottom"].SetDisplayPosition(width // 2, margin + 6)
        self._title.SetDisplayPosition(margin, height - margin)
        self._slice_text.SetDisplayPosition(margin, height - margin - 20)
        self._window_text.SetDisplayPosition(width - margin, height - margin)
        # Scale bar: a round length (1, 2 or 5 x 10^n mm) of at most a fifth of the view width.
        target = width * mm / 5
        exponent = math.floor(math.log10(max(target, 1e-6)))
        length_mm = 1.0 * 10**exponent
        for factor in (1.0, 2.0, 5.0, 10.0):
            if factor * 10**exponent <= target:
                length_mm = factor * 10**exponent
        length_px = length_mm / mm
        x1, y = width - margin - 8, margin + 14
        x0 = x1 - length_px
        for index, point in enumerate(((x0, y), (x1, y), (x0, y - 4), (x0, y + 4), (x1, y - 4), (x1, y + 4))):
            self._scale_points.SetPoint(index, point[0], point[1], 0.0)
        self._scale_points.Modified()
        self._scale_polydata.Modified()
        self._scale_text.SetInput(f"{length_mm:g} mm")
        self._scale_text.SetDisplayPosition(int((x0 + x1) / 2), y + 6)
        self.scale_bar_mm = length_mm
        self.scale_bar_px = length_px


class InteractionTool(Protocol):
    """A tool that takes over the left mouse button in slice views (phase 2: brush, scissors, AI prompts).

    Each method gets the view and the world point (LPS, on the view's plane) and returns True when it
    consumed the event; otherwise the view navigates as usual.
    """

    def press(self, view: SliceView, world: NDArray[np.float64], event: Any) -> bool: ...
    def move(self, view: SliceView, world: NDArray[np.float64], event: Any) -> bool: ...
    def release(self, view: SliceView, world: NDArray[np.float64], event: Any) -> bool: ...


class Drag(enum.Enum):
    NONE = "none"
    CLICK = "click"  # left press: a click sets the cursor, a drag becomes window/level
    WINDOW = "window"
    CURSOR = "cursor"  # shift + left: drag the crosshair
    PAN = "pan"  # middle, or ctrl + left
    ZOOM = "zoom"  # right
    TOOL = "tool"


#: Pixels the mouse must move before a left press becomes a window/level drag instead of a click.
CLICK_SLOP_PX = 3.0


class SliceView(QFrame):
    """A slice view widget: the canvas plus mouse/keyboard navigation bound to the shared state.

    Mouse: click = move the linked cursor; shift+drag = drag the cursor; left drag = window/level;
    right drag = zoom; middle drag or ctrl+left drag = pan; wheel or arrow/page keys = next/previous slice;
    ctrl+wheel = zoom about the mouse; double click = this view alone (1x1) and back.
    """

    def __init__(self, view: View, state: ViewerState, images: CaseImages, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.state = state
        self.scene = SliceScene(view, state, images)
        self.tool: InteractionTool | None = None
        self.setObjectName(f"view_{view.value}")
        r, g, b = (int(255 * c) for c in VIEW_COLORS[view])
        self.setStyleSheet(f"QFrame#view_{view.value} {{ border: 1px solid rgb({r}, {g}, {b}); }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        self.canvas = make_canvas(self, self)
        self.canvas.render_window.AddRenderer(self.scene.renderer)
        layout.addWidget(self.canvas)
        self._drag = Drag.NONE
        self._press_xy = (0.0, 0.0)
        self._press_world = np.zeros(3)
        self._start: dict[str, Any] = {}
        self._last_xy: tuple[float, float] | None = None
        self._wheel_rest = 0.0
        self._unsubscribe = state.subscribe(self._on_state)
        self.scene.update(set(Change))

    # -- rendering -----------------------------------------------------------------------------------------

    def _on_state(self, changes: set[Change]) -> None:
        if changes == {Change.POINTER}:
            return
        redraw = self.scene.update(changes)
        if redraw is Redraw.NONE:
            return
        # The view the user works in draws now; the others follow on idle ticks (see vtk_canvas), except
        # when a new case comes up: every view shows it in the same first frame.
        focus = self.state.focus_view
        if Change.VOLUME in changes or focus is self.view or (focus is None and redraw is Redraw.CONTENT):
            self.canvas.request_render()
        else:
            self.canvas.request_render_later()

    def before_render(self, width: int, height: int) -> None:
        self.scene.before_render(width, height)

    def render_now(self) -> None:
        self.canvas.render_now()

    def capture(self) -> NDArray[np.uint8]:
        """The rendered view as (rows, columns, 3) uint8, row 0 at the bottom (VTK display order)."""
        return self.canvas.capture()

    # -- events --------------------------------------------------------------------------------------------

    def _display_xy(self, event: Any) -> tuple[float, float]:
        ratio = self.canvas.devicePixelRatioF()
        pos = event.position()
        return (pos.x() + 0.5) * ratio, (self.canvas.height() - pos.y() - 0.5) * ratio

    def mouse_press(self, event: Any) -> bool:
        self.canvas.setFocus(Qt.FocusReason.MouseFocusReason)
        self.state.set_focus_view(self.view)
        if self.state.volume is None:
            return True
        x, y = self._display_xy(event)
        world = self.scene.display_to_world(x, y)
        self._press_xy, self._press_world = (x, y), world
        self._start = {
            "window": self.state.window,
            "level": self.state.level,
            "zoom": self.state.zoom[self.view],
            "pan": self.state.pan[self.view],
            "mm": self.scene.mm_per_pixel(),
        }
        button, modifiers = event.button(), event.modifiers()
        if button == Qt.MouseButton.LeftButton and self.tool is not None and self.tool.press(self, world, event):
            self._drag = Drag.TOOL
        elif button == Qt.MouseButton.LeftButton and modifiers & Qt.KeyboardModifier.ShiftModifier:
            self._drag = Drag.CURSOR
            self.state.set_cursor(world)
        elif button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and modifiers & Qt.KeyboardModifier.ControlModifier
        ):
            self._drag = Drag.PAN
        elif button == Qt.MouseButton.RightButton:
            self._drag = Drag.ZOOM
        elif button == Qt.MouseButton.LeftButton:
            self._drag = Drag.CLICK
        return True

    def mouse_move(self, event: Any) -> bool:
        if self.state.volume is None:
            return True
        x, y = self._display_xy(event)
        self._last_xy = (x, y)
        world = self.scene.display_to_world(x, y)
        dx, dy = x - self._press_xy[0], y - self._press_xy[1]
        if self._drag is Drag.CLICK and math.hypot(dx, dy) > CLICK_SLOP_PX:
            self._drag = Drag.WINDOW
        handler = {
            Drag.TOOL: lambda: self.tool.move(self, world, event) if self.tool else None,
            Drag.CURSOR: lambda: self.state.set_cursor(world),
            Drag.WINDOW: lambda: self._drag_window(dx, dy),
            Drag.PAN: lambda: self._drag_pan(dx, dy),
            Drag.ZOOM: lambda: self._drag_zoom(dy),
        }.get(self._drag)
        if handler is not None:
            handler()
        self.state.set_pointer(self.scene.display_to_world(x, y))
        return True

    def mouse_release(self, event: Any) -> bool:
        if self.state.volume is None:
            return True
        x, y = self._display_xy(event)
        world = self.scene.display_to_world(x, y)
        if self._drag is Drag.TOOL and self.tool is not None:
            self.tool.release(self, world, event)
        elif self._drag is Drag.CLICK:
            self.state.set_cursor(self._press_world)
        self._drag = Drag.NONE
        return True

    def mouse_double_click(self, event: Any) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return True
        if self.state.layout is Layout.SINGLE_1X1:
            self.state.set_layout(getattr(self, "_previous_layout", Layout.GRID_2X2))
        else:
            self._previous_layout = self.state.layout
            self.state.set_layout(Layout.SINGLE_1X1, self.view)
        return True

    def wheel(self, event: Any) -> bool:
        self.state.set_focus_view(self.view)
        self._wheel_rest += event.angleDelta().y() / 120.0
        steps = int(self._wheel_rest)
        if steps == 0:
            return True
        self._wheel_rest -= steps
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            x, y = self._display_xy(event)
            self.zoom_about(1.2**steps, x, y)
        else:
            self.state.move_slice(self.view, steps)
            self._refresh_pointer()
        return True

    def key_press(self, event: Any) -> bool:
        self.state.set_focus_view(self.view)
        key = event.key()
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_PageUp: 5,
            Qt.Key.Key_PageDown: -5,
        }.get(key)
        if steps is not None:
            self.state.move_slice(self.view, steps)
            self._refresh_pointer()
            return True
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.state.set_zoom(self.view, self.state.zoom[self.view] * 1.2)
            return True
        if key == Qt.Key.Key_Minus:
            self.state.set_zoom(self.view, self.state.zoom[self.view] / 1.2)
            return True
        event.ignore()
        return True

    def leave(self) -> None:
        self._last_xy = None
        if self.state.pointer is not None:
            self.state.set_pointer(None)

    # -- navigation ----------------------------------------------------------------------------------------

    def _refresh_pointer(self) -> None:
        """After the slice moved under a still mouse, the readout follows the new point under it."""
        if self._last_xy is not None:
            self.state.set_pointer(self.scene.display_to_world(*self._last_xy))

    def _drag_window(self, dx: float, dy: float) -> None:
        per_pixel = max(self._start["window"], 1.0) / 200.0
        self.state.set_window_level(self._start["window"] + dx * per_pixel, self._start["level"] - dy * per_pixel)

    def _drag_pan(self, dx: float, dy: float) -> None:
        pu, pv = self._start["pan"]
        mm = self._start["mm"]
        self.state.set_pan(self.view, (pu - dx * mm, pv - dy * mm))

    def _drag_zoom(self, dy: float) -> None:
        self.state.set_zoom(self.view, self._start["zoom"] * math.exp(dy * 0.01))

    def zoom_about(self, factor: float, x: float, y: float) -> None:
        """Zoom by ``factor`` keeping the point under display (x, y) where it is."""
        before = self.scene.display_to_world(x, y)
        old = self.state.zoom[self.view]
        with self.state.batch():
            self.state.set_zoom(self.view, old * factor)
            new = self.state.zoom[self.view]
            fu, fv = self.scene.focal_uv()
            bu, bv = float(before @ self.scene.right), float(before @ self.scene.up)
            keep = 1.0 - old / new
            pu, pv = self.state.pan[self.view]
            self.state.set_pan(self.view, (pu + (bu - fu) * keep, pv + (bv - fv) * keep))

    def set_tool(self, tool: InteractionTool | None) -> None:
        """Hook for editing tools and AI prompts (phase 2): left mouse goes to ``tool`` first."""
        self.tool = tool

    def close_view(self) -> None:
        self._unsubscribe()
        self.canvas.close()
