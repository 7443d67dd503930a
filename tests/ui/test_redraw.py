"""Which views a change redraws, and in which order: the view the user works in draws in its next paint, the
views that only follow it on idle ticks after it, and edits or previews whose box misses a view's plane leave
that view alone. Frames are counted (VTK's EndEvent); no timings (those live in benchmarks/gui.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the window tests need the gui extra")

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from radlabel.core.edit.request import EditMode, Region
from radlabel.ui.viewer_state import View
from radlabel.ui.vtk_canvas import later_queue, read_frame, renders_waiting
from tests.ui.helpers import open_demo, wheel


class Frames:
    """The order in which the views present frames."""

    def __init__(self, window: Any) -> None:
        self.order: list[View] = []
        for view, widget in window.views.items():
            widget.canvas.render_window.AddObserver("EndEvent", lambda *_args, view=view: self.order.append(view))

    def count(self, view: View) -> int:
        return self.order.count(view)


def _settle(qtbot: Any, window: Any) -> None:
    """Run the event loop until every view has drawn what it owes."""

    def idle() -> bool:
        return not renders_waiting() and not any(w.canvas.paint_pending for w in window.views.values())

    qtbot.waitUntil(idle, timeout=10000)
    qtbot.wait(20)  # nothing else comes


def _mouse(view: Any, kind: QEvent.Type, world: np.ndarray) -> None:
    canvas = view.canvas
    x, y = view.scene.world_to_display(world)
    local = QPointF(float(np.floor(x)), float(np.floor(canvas.height() - y)))
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else Qt.MouseButton.LeftButton
    event = QMouseEvent(kind, local, canvas.mapToGlobal(local), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, event)


def test_a_slice_change_draws_its_view_first_and_the_others_on_idle_ticks(qtbot, window) -> None:
    open_demo(qtbot, window)
    _settle(qtbot, window)
    frames = Frames(window)
    axial = window.slice_views[View.AXIAL]
    wheel(axial, 1)
    # the axial image changed: drawn in the next paint; the others only follow (crosshair, 3D plane)
    assert axial.canvas.paint_pending
    followers = {window.views[v].canvas for v in (View.CORONAL, View.SAGITTAL, View.THREE_D)}
    assert set(later_queue().pending) == followers
    _settle(qtbot, window)
    assert frames.order[0] is View.AXIAL
    assert sorted(frames.order) == sorted(View)  # every view once: nothing skipped, nothing twice
    # the coronal frame drawn on the idle tick has the axial (red) crosshair line at the new slice
    coronal = window.slice_views[View.CORONAL]
    pixels = read_frame(coronal.canvas.render_window).astype(int)  # the last frame, not a new one
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
    row = int(np.argmax(red.sum(axis=1)))
    _, y = coronal.scene.world_to_display(window.state.cursor)
    assert red[row].sum() > 50 and abs(row + 0.5 - y) <= 1.0


def test_an_edit_redraws_only_the_views_whose_plane_it_crosses(qtbot, window) -> None:
    open_demo(qtbot, window)
    _settle(qtbot, window)
    frames = Frames(window)
    k, j, i = window.state.nearest_voxel(window.state.cursor)[0][::-1]
    mask = np.ones((1, 4, 4), bool)
    # on the axial slice on show, 20 voxels away from the coronal and sagittal planes
    window.controller.edit("paint", {}, Region((k, j + 20, i + 20), mask), EditMode.ADD)
    _settle(qtbot, window)
    assert frames.count(View.AXIAL) == 1
    assert frames.count(View.CORONAL) == 0 and frames.count(View.SAGITTAL) == 0
    overlay = window.slice_views[View.AXIAL].scene.overlay
    fill = overlay.fill_rgba()
    assert fill is not None and overlay.fill_box is not None
    # the fill texture covers the labels on the slice, not the whole plane
    assert overlay.fill_box[0].stop - overlay.fill_box[0].start < fill.shape[0] // 2
    # an edit on the coronal plane (elsewhere on it): the coronal view redraws, the sagittal one does not
    frames.order.clear()
    window.controller.edit("paint", {}, Region((k - 10, j, i + 20), mask), EditMode.ADD)
    _settle(qtbot, window)
    assert frames.count(View.CORONAL) == 1 and frames.count(View.SAGITTAL) == 0


def test_a_brush_move_draws_the_stroke_where_it_is(qtbot, window) -> None:
    open_demo(qtbot, window)
    window.tools_panel.select("paint")
    window.tools_panel.paint_radius.setValue(3.0)
    axial = window.slice_views[View.AXIAL]
    start = window.state.cursor + np.array([30.0, 30.0, 0.0])  # away from the coronal and sagittal planes
    _mouse(axial, QEvent.Type.MouseButtonPress, start)
    _settle(qtbot, window)
    frames = Frames(window)
    _mouse(axial, QEvent.Type.MouseMove, start + np.array([4.0, 2.0, 0.0]))
    _settle(qtbot, window)
    assert frames.order == [View.AXIAL]  # the stroke misses the other planes: no other view draws
    preview = axial.scene.previews["stroke"].fill_rgba()
    assert preview is not None and (preview[..., 3] > 0).sum() > 20
    _mouse(axial, QEvent.Type.MouseButtonRelease, start + np.array([4.0, 2.0, 0.0]))
    _settle(qtbot, window)
    assert window.tools_panel.brush.last_diff is not None
    assert "stroke" not in window.state.previews
