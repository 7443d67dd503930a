"""The 3D view: the three slice planes where they are in the patient, segment surfaces, optional volume
rendering, an outline of the volume and an orientation cube (L/R, A/P, S/I).

The planes reuse the slice views' plane images and window/level (nothing is computed twice); the scene
is in LPS world millimetres like the slice views. Mouse: VTK's trackball camera (left rotate, right/wheel
zoom, middle pan).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget
from vtkmodules.vtkFiltersSources import vtkCubeSource
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkImageSlice,
    vtkImageSliceMapper,
    vtkPolyDataMapper,
    vtkRenderer,
)

from radlabel.ui.segment_surfaces import SegmentSurfaces, direction_matrix
from radlabel.ui.slice_view import SliceScene
from radlabel.ui.viewer_state import VIEW_COLORS, Change, View, ViewerState
from radlabel.ui.vtk_canvas import QtVtkCanvas, make_canvas
from radlabel.ui.vtk_image import CaseImages, vtk_matrix


class VolumeScene:
    """VTK content of the 3D view."""

    def __init__(self, state: ViewerState, images: CaseImages, slices: list[SliceScene]) -> None:
        self.state = state
        self.images = images
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.08, 0.09, 0.11)
        self.renderer.SetBackground2(0.22, 0.24, 0.29)
        self.renderer.GradientBackgroundOn()
        self.renderer.UseOITOff()  # opaque surfaces and planes; the pass would cost a third of each frame
        self.planes: list[vtkImageSlice] = []
        self.slices = slices
        for scene in slices:
            mapper = vtkImageSliceMapper()
            mapper.SetInputData(scene.plane_image)
            actor = vtkImageSlice()
            actor.SetMapper(mapper)
            actor.SetProperty(scene.image_property)
            actor.SetUserMatrix(scene.axes)
            actor.VisibilityOff()
            self.renderer.AddViewProp(actor)
            self.planes.append(actor)
        self._box_source = vtkCubeSource()
        box_mapper = vtkPolyDataMapper()
        box_mapper.SetInputConnection(self._box_source.GetOutputPort())
        self._box_mapper = box_mapper
        self.box = vtkActor()
        self.box.SetMapper(box_mapper)
        self.box.GetProperty().SetRepresentationToWireframe()
        self.box.GetProperty().SetColor(*VIEW_COLORS[View.THREE_D])
        self.box.GetProperty().LightingOff()
        self.box.VisibilityOff()
        self.renderer.AddViewProp(self.box)
        self.surfaces = SegmentSurfaces(self.renderer)
        self.volume_rendering = False
        self._volume_actor: Any = None
        self.camera_needs_reset = True

    def update(self, changes: set[Change], surfaces: bool = True) -> None:
        """Bring the scene up to date; ``surfaces=False`` leaves the segment surfaces to the caller (the view
        meshes them off the GUI thread)."""
        state = self.state
        volume = state.volume
        if Change.VOLUME in changes:
            for plane in self.planes:
                plane.SetVisibility(volume is not None)
            self.box.SetVisibility(volume is not None)
            if volume is not None:
                n = np.array(volume.size, float)
                self._box_source.SetBounds(
                    float(volume.origin[0] - volume.spacing[0] / 2),
                    float(volume.origin[0] + (n[0] - 0.5) * volume.spacing[0]),
                    float(volume.origin[1] - volume.spacing[1] / 2),
                    float(volume.origin[1] + (n[1] - 0.5) * volume.spacing[1]),
                    float(volume.origin[2] - volume.spacing[2] / 2),
                    float(volume.origin[2] + (n[2] - 0.5) * volume.spacing[2]),
                )
                self.box.SetUserMatrix(vtk_matrix(direction_matrix(volume.origin, volume.direction)))
            if self._volume_actor is not None:
                self.renderer.RemoveViewProp(self._volume_actor)
                self._volume_actor = None
            if self.volume_rendering:
                self._build_volume_rendering()
            self.camera_needs_reset = True
        if surfaces and (Change.SEGMENTATION in changes or Change.VOLUME in changes):
            self.surfaces.rebuild(state.segmentation)
        if changes & {Change.SEGMENTATION, Change.SEGMENT_DISPLAY, Change.VOLUME}:
            self.surfaces.set_visibility(state.show_surfaces, state.hidden_segments)

    def set_volume_rendering(self, enabled: bool) -> None:
        self.volume_rendering = enabled
        if enabled and self._volume_actor is None and self.state.volume is not None:
            self._build_volume_rendering()
        if self._volume_actor is not None:
            self._volume_actor.SetVisibility(enabled)
        for plane in self.planes:
            plane.SetVisibility(self.state.volume is not None and not enabled)

    def _build_volume_rendering(self) -> None:
        """Ray-cast volume rendering (GPU mapper where OpenGL allows, CPU otherwise), imported on first use."""
        import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401
        from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
        from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkVolume, vtkVolumeProperty
        from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

        from radlabel.ui.vtk_image import image_from_array

        volume = self.state.volume
        assert volume is not None
        # The ray caster gets the unrotated frame and the direction goes in the prop's matrix.
        image = image_from_array(volume.array, volume.origin, volume.spacing)
        mapper = vtkSmartVolumeMapper()
        mapper.SetInputData(image)
        low, high = float(np.percentile(volume.array[::4, ::4, ::4], 50)), float(volume.array.max())
        if str(volume.metadata.get("modality", "")).upper() == "CT":
            low, high = 150.0, max(high, 1200.0)
        colors = vtkColorTransferFunction()
        colors.AddRGBPoint(low, 0.55, 0.25, 0.15)
        colors.AddRGBPoint((low + high) / 2, 0.95, 0.85, 0.7)
        colors.AddRGBPoint(high, 1.0, 1.0, 1.0)
        opacity = vtkPiecewiseFunction()
        opacity.AddPoint(low, 0.0)
        opacity.AddPoint((low + high) / 2, 0.15)
        opacity.AddPoint(high, 0.6)
        prop = vtkVolumeProperty()
        prop.SetColor(colors)
        prop.SetScalarOpacity(opacity)
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOn()
        actor = vtkVolume()
        actor.SetMapper(mapper)
        actor.SetProperty(prop)
        actor.SetUserMatrix(vtk_matrix(direction_matrix(volume.origin, volume.direction)))
        self._volume_parts = (image, mapper, colors, opacity, prop)
        self._volume_actor = actor
        self.renderer.AddViewProp(actor)

    def before_render(self, width: int, height: int) -> None:
        if self.state.volume is not None:
            for scene in self.slices:
                scene.ensure_plane()
        if self.camera_needs_reset and self.state.volume is not None:
            self.reset_camera()

    def reset_camera(self) -> None:
        """Look at the patient from the front (anterior), head up."""
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(0.0, 0.0, 0.0)
        camera.SetPosition(0.0, -1.0, 0.0)
        camera.SetViewUp(0.0, 0.0, 1.0)
        camera.Azimuth(-30.0)
        camera.Elevation(15.0)
        camera.OrthogonalizeViewUp()
        self.renderer.ResetCamera()
        camera.Zoom(1.25)
        self.renderer.ResetCameraClippingRange()
        self.camera_needs_reset = False


SURFACE_DELAY_MS = 500
#: A new case's surfaces are meshed once its first frame is on screen (`VolumeView.mesh_now`, called by the
#: window), or after this long at worst: meshing on a worker thread would compete with that frame.
NEW_SURFACE_FALLBACK_MS = 1000


class VolumeView(QFrame):
    """The 3D view widget."""

    def __init__(
        self, state: ViewerState, images: CaseImages, slices: list[SliceScene], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.view = View.THREE_D
        self.state = state
        self.scene = VolumeScene(state, images, slices)
        self.setObjectName("view_3d")
        r, g, b = (int(255 * c) for c in VIEW_COLORS[View.THREE_D])
        self.setStyleSheet(f"QFrame#view_3d {{ border: 1px solid rgb({r}, {g}, {b}); }}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(1, 1, 1, 1)
        self.canvas = make_canvas(self, self)
        self.canvas.render_window.AddRenderer(self.scene.renderer)
        layout.addWidget(self.canvas)
        self._marker: Any = None
        if isinstance(self.canvas, QtVtkCanvas):
            self._style = vtkInteractorStyleTrackballCamera()
            self.canvas.interactor.SetInteractorStyle(self._style)
            self._add_orientation_marker()
        #: Surfaces are rebuilt at most every SURFACE_DELAY_MS after edits (a brush stroke must not wait for
        #: marching cubes over the whole segment); a new volume rebuilds them at once.
        self._surface_timer = QTimer(self)
        self._surface_timer.setSingleShot(True)
        self._surface_timer.setInterval(SURFACE_DELAY_MS)
        self._surface_timer.timeout.connect(self._rebuild_surfaces)
        #: A new volume or segmentation is meshed right after the first frame that shows it.
        self._new_surface_timer = QTimer(self)
        self._new_surface_timer.setSingleShot(True)
        self._new_surface_timer.setInterval(NEW_SURFACE_FALLBACK_MS)
        self._new_surface_timer.timeout.connect(self._rebuild_surfaces)
        self._shown_segmentation = state.segmentation
        self._surface_job: Any = None
        self._surface_again = False
        self._unsubscribe = state.subscribe(self._on_state)
        self.scene.update(set(Change))

    def _rebuild_surfaces(self) -> None:
        """Mesh the segments on a worker thread; the actors change on the GUI thread when it is done."""
        if self._surface_job is not None:  # one at a time: a newer edit reschedules when this one ends
            self._surface_again = True
            return
        from radlabel.ui.loader_thread import BackgroundJob
        from radlabel.ui.segment_surfaces import compute_meshes

        segmentation = self.state.segmentation
        job = BackgroundJob(self, "Segment surfaces", lambda _progress: compute_meshes(segmentation), False)
        job.done.connect(lambda meshes: self._show_surfaces(segmentation, meshes))
        job.failed.connect(lambda _message: self._surfaces_finished())
        job.cancelled.connect(self._surfaces_finished)
        self._surface_job = job
        job.start()

    def mesh_now(self) -> None:
        """Mesh a new case's surfaces now (its first frame is on screen) rather than at the fallback time."""
        if self._new_surface_timer.isActive():
            self._new_surface_timer.stop()
            self._rebuild_surfaces()

    def _show_surfaces(self, segmentation: Any, meshes: dict[int, Any]) -> None:
        if segmentation is self.state.segmentation:
            self.scene.surfaces.show_meshes(segmentation, meshes)
            self.scene.surfaces.set_visibility(self.state.show_surfaces, self.state.hidden_segments)
            self.canvas.request_render_later()
        self._surfaces_finished()

    def _surfaces_finished(self) -> None:
        self._surface_job = None
        if self._surface_again:
            self._surface_again = False
            self._surface_timer.start()

    @property
    def surfaces_pending(self) -> bool:
        return self._surface_timer.isActive() or self._new_surface_timer.isActive() or self._surface_job is not None

    def _add_orientation_marker(self) -> None:
        from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
        from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor

        cube = vtkAnnotatedCubeActor()
        # LPS: +x is the patient's left, +y posterior, +z superior.
        cube.SetXPlusFaceText("L")
        cube.SetXMinusFaceText("R")
        cube.SetYPlusFaceText("P")
        cube.SetYMinusFaceText("A")
        cube.SetZPlusFaceText("S")
        cube.SetZMinusFaceText("I")
        cube.SetFaceTextScale(0.6)
        cube.GetCubeProperty().SetColor(0.3, 0.35, 0.45)
        cube.GetTextEdgesProperty().SetColor(0.9, 0.9, 0.9)
        marker = vtkOrientationMarkerWidget()
        marker.SetOrientationMarker(cube)
        marker.SetInteractor(self.canvas.interactor)
        marker.SetViewport(0.0, 0.0, 0.2, 0.2)
        marker.SetEnabled(1)
        marker.InteractiveOff()
        self._marker = (marker, cube)

    def _on_state(self, changes: set[Change]) -> None:
        if not changes & {
            Change.VOLUME,
            Change.VOLUME_DATA,
            Change.CURSOR,
            Change.WINDOW,
            Change.SEGMENTATION,
            Change.SEGMENT_DISPLAY,
        }:
            return
        same = self.state.segmentation is self._shown_segmentation
        self._shown_segmentation = self.state.segmentation
        if Change.SEGMENTATION in changes and Change.VOLUME not in changes and same:  # an edit: rebuild later
            changes = changes - {Change.SEGMENTATION}
            if not self._surface_timer.isActive():
                self._surface_timer.start()
        if changes & {Change.VOLUME, Change.SEGMENTATION}:  # another case: its surfaces come off the GUI thread
            self.scene.surfaces.show_meshes(self.state.segmentation, {})
            self._surface_timer.stop()
            self._new_surface_timer.start()
        if changes:
            self.scene.update(changes, surfaces=False)
        # The 3D view follows what the slice views show: it draws on an idle tick, after them; a new case
        # is drawn with them.
        if Change.VOLUME in changes:
            self.canvas.request_render()
        else:
            self.canvas.request_render_later()

    # canvas handler: the 3D view leaves the mouse to VTK's trackball style
    def before_render(self, width: int, height: int) -> None:
        self.scene.before_render(width, height)

    def mouse_press(self, event: Any) -> bool:
        return False

    def mouse_move(self, event: Any) -> bool:
        return False

    def mouse_release(self, event: Any) -> bool:
        return False

    def mouse_double_click(self, event: Any) -> bool:
        return False

    def wheel(self, event: Any) -> bool:
        return False

    def key_press(self, event: Any) -> bool:
        event.ignore()
        return True

    def leave(self) -> None:
        pass

    def render_now(self) -> None:
        self.canvas.render_now()

    def capture(self) -> NDArray[np.uint8]:
        return self.canvas.capture()

    def set_volume_rendering(self, enabled: bool) -> None:
        self.scene.set_volume_rendering(enabled)
        self.canvas.request_render()

    def close_view(self) -> None:
        self._surface_timer.stop()
        self._new_surface_timer.stop()
        self._unsubscribe()
        self.canvas.close()
