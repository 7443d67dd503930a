"""The real main window under Xvfb: demo case, navigation, presets, linked crosshair, overlays, layouts,
drag and drop, recent files and error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the window tests need the gui extra")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QPushButton

from radlabel.core.io.writers import save_volume
from radlabel.core.volume import Volume
from radlabel.ui.viewer_state import VIEW_COLORS, Layout, View
from tests.ui.helpers import open_demo, wait_for_case, wheel, widget_point


def _colour_near(pixels: np.ndarray, x: float, y: float, colour: tuple[int, int, int], radius: int = 2) -> bool:
    rows, columns = pixels.shape[:2]
    c, r = int(np.floor(x)), int(np.floor(y))
    patch = pixels[max(r - radius, 0) : min(r + radius + 1, rows), max(c - radius, 0) : min(c + radius + 1, columns)]
    return bool(np.any(np.all(np.abs(patch.astype(int) - np.array(colour)) <= 40, axis=-1)))


def test_demo_opens_with_the_lesion_shown_in_every_view(qtbot, window) -> None:
    open_demo(qtbot, window)
    state = window.state
    assert state.volume.metadata["modality"] == "CT" and state.volume.metadata["demo"]
    (segment,) = state.segmentation.segments.values()
    assert segment.name == "Liver lesion"
    assert "Liver lesion" in window.readout_text  # the cursor starts inside the lesion
    assert "HU" in window.readout_text and "LPS" in window.readout_text
    colour = np.array(segment.color)
    for view in (View.AXIAL, View.CORONAL, View.SAGITTAL):
        pixels = window.views[view].capture()
        x, y = window.slice_views[view].scene.world_to_display(state.cursor)
        box = pixels[int(y) - 25 : int(y) + 25, int(x) - 25 : int(x) + 25].astype(int)
        tinted = np.abs(box - colour).sum(axis=-1) < 90  # the outline is drawn in the segment colour
        assert tinted.sum() > 20, view
    assert window.view_3d.scene.surfaces.actors  # a smoothed 3D surface of the lesion
    assert window.view_3d.capture().mean() > 10
    assert window.segment_panel.list.topLevelItemCount() == 1


def test_scroll_and_keys_change_the_slice_and_the_readout(qtbot, window) -> None:
    open_demo(qtbot, window)
    state, axial = window.state, window.slice_views[View.AXIAL]
    number, count = state.slice_number(View.AXIAL)
    readout = window.readout_text
    z = state.cursor[2]
    wheel(axial, 1)
    assert state.slice_number(View.AXIAL) == (number + 1, count)
    assert state.cursor[2] == pytest.approx(z + state.volume.spacing[2])
    assert window.readout_text != readout
    k = state.readout().ijk[2]
    qtbot.keyClick(axial.canvas, Qt.Key.Key_Down)
    qtbot.keyClick(axial.canvas, Qt.Key.Key_Down)
    assert state.slice_number(View.AXIAL)[0] == number - 1
    assert state.readout().ijk[2] == k - 2
    assert f"Slice {number - 1} / {count}" in axial.scene._slice_text.GetInput()
    coronal_before = state.slice_number(View.CORONAL)
    wheel(window.slice_views[View.CORONAL], -3)
    assert state.slice_number(View.CORONAL)[0] == coronal_before[0] - 3
    zoom = state.zoom[View.AXIAL]
    wheel(axial, 2, Qt.KeyboardModifier.ControlModifier)
    assert state.zoom[View.AXIAL] == pytest.approx(zoom * 1.44)


def test_presets_change_the_window(qtbot, window) -> None:
    open_demo(qtbot, window)
    axial = window.slice_views[View.AXIAL]
    soft = axial.capture()
    window.preset_actions["Lung"].trigger()
    assert (window.state.window, window.state.level) == (1500.0, -600.0)
    assert axial.scene.image_property.GetColorWindow() == 1500.0
    assert axial.scene.image_property.GetColorLevel() == -600.0
    assert window.preset_combo.currentText() == "Lung"
    lung = axial.capture()
    assert lung.mean() > soft.mean() + 10  # soft tissue is bright in a lung window
    assert window.preset_actions["CT brain"].shortcut() == QKeySequence("1")
    window.preset_actions["CT brain"].trigger()
    assert (window.state.window, window.state.level) == (80.0, 40.0)
    window.preset_combo.textActivated.emit("Bone")
    assert window.state.preset == "Bone"


def test_mouse_drag_window_level_zoom_and_pan(qtbot, window) -> None:
    open_demo(qtbot, window)
    state, axial = window.state, window.slice_views[View.AXIAL]
    start = widget_point(axial, (200.0, 200.0))
    cursor = state.cursor.copy()
    qtbot.mousePress(axial.canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(axial.canvas, start + type(start)(60, 0))
    qtbot.mouseRelease(axial.canvas, Qt.MouseButton.LeftButton, pos=start + type(start)(60, 0))
    assert state.window > 400.0 and state.preset == ""  # a drag is window/level, not a click
    assert np.array_equal(state.cursor, cursor)
    qtbot.mousePress(axial.canvas, Qt.MouseButton.RightButton, pos=start)
    qtbot.mouseMove(axial.canvas, start + type(start)(0, -50))
    qtbot.mouseRelease(axial.canvas, Qt.MouseButton.RightButton, pos=start + type(start)(0, -50))
    assert state.zoom[View.AXIAL] > 1.2
    qtbot.mousePress(axial.canvas, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(axial.canvas, start + type(start)(30, 0))
    qtbot.mouseRelease(axial.canvas, Qt.MouseButton.MiddleButton, pos=start + type(start)(30, 0))
    assert state.pan[View.AXIAL][0] < 0  # the image follows the mouse to the right
    window.reset_view_action.trigger()
    assert state.zoom[View.AXIAL] == 1.0 and state.pan[View.AXIAL] == (0.0, 0.0)


def test_click_in_one_view_moves_the_crosshair_in_the_others(qtbot, window) -> None:
    open_demo(qtbot, window)
    state = window.state
    axial = window.slice_views[View.AXIAL]
    target = (int(axial.scene.size[0] * 0.3) + 0.5, int(axial.scene.size[1] * 0.6) + 0.5)  # a pixel centre
    expected = axial.scene.display_to_world(*target)
    qtbot.mouseClick(axial.canvas, Qt.MouseButton.LeftButton, pos=widget_point(axial, target))
    assert state.cursor == pytest.approx(expected, abs=1e-6)
    assert "Cursor" in window.readout_text or "Mouse" in window.readout_text
    window.render_all()
    # the coronal view now shows the slice through the clicked point, and its vertical (sagittal) line
    # and the sagittal view's vertical (coronal) line pass through it
    assert state.slice_position(View.CORONAL) == pytest.approx(expected[1])
    assert state.slice_position(View.SAGITTAL) == pytest.approx(expected[0])
    for view, other in ((View.CORONAL, View.SAGITTAL), (View.SAGITTAL, View.CORONAL)):
        scene = window.slice_views[view].scene
        pixels = window.views[view].capture()
        x, y = scene.world_to_display(state.cursor)
        colour = tuple(int(255 * c) for c in VIEW_COLORS[other])
        assert _colour_near(pixels, x, y + 40, colour), (view, x, y)
        assert _colour_near(pixels, x, y - 40, colour), (view, x, y)
    # shift-drag moves the cursor continuously
    start = widget_point(axial, target)
    qtbot.mousePress(axial.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, pos=start)
    qtbot.mouseMove(axial.canvas, start + type(start)(25, 10))
    assert state.cursor[0] > expected[0]
    qtbot.mouseRelease(axial.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, pos=start)


def test_segment_display_controls(qtbot, window) -> None:
    open_demo(qtbot, window)
    state, axial = window.state, window.slice_views[View.AXIAL]
    overlay = axial.scene.overlay
    assert overlay.fill_actor.GetVisibility()
    window.segment_panel.opacity.setValue(0)
    assert state.segment_opacity == 0.0 and not overlay.fill_actor.GetVisibility()
    assert overlay.outline_actor.GetVisibility()  # outline stays
    window.segment_panel.outline.setChecked(False)
    assert not overlay.outline_actor.GetVisibility()
    window.segment_panel.surfaces.setChecked(False)
    assert not any(a.GetVisibility() for a in window.view_3d.scene.surfaces.actors.values())
    window.segment_panel.surfaces.setChecked(True)
    window.segment_panel.list.topLevelItem(0).setCheckState(0, Qt.CheckState.Unchecked)
    assert state.hidden_segments == {1}
    assert not state.segmentation.segments[1].visible  # hiding is a step of the case (undoable)
    assert not any(a.GetVisibility() for a in window.view_3d.scene.surfaces.actors.values())


def test_label_map_opens_as_segments_and_one_off_the_image_is_refused(qtbot, window, tmp_path: Path) -> None:
    open_demo(qtbot, window)
    volume = window.state.volume
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[40:50, 90:100, 60:70] = 3
    labels[44:54, 60:80, 110:130] = 5
    path = save_volume(Volume(labels, volume.origin, volume.spacing, volume.direction), tmp_path / "labels.nii.gz")
    window.open_labelmap(path)
    segmentation = window.state.segmentation  # the case's: the label map's segments were added to it
    assert [s.name for s in segmentation.segments.values()] == ["Liver lesion", "Segment 3", "Segment 5"]
    imported = [s for s in segmentation.segments.values() if s.name != "Liver lesion"]
    assert np.array_equal(segmentation.mask(imported[0].id), labels == 3)
    assert window.state.readout().segments == ["Segment 3"]  # the cursor jumped into the first segment
    # both outlines are in the axial slice through the cursor, each in its segment's colour
    window.state.set_segment_display(show_fill=False)
    window.render_all()
    pixels = window.slice_views[View.AXIAL].capture().astype(int)
    for segment in imported:
        near = np.abs(pixels - np.array(segment.color)).sum(axis=-1) < 30
        assert near.sum() > 40, segment.name
    grid = (volume.origin, volume.spacing, volume.direction)  # a label map 5 m away from the image
    elsewhere = save_volume(Volume(labels, grid[0] + 5000.0, *grid[1:]), tmp_path / "elsewhere.nrrd")
    window.open_labelmap(elsewhere)
    qtbot.waitUntil(lambda: window.message_box is not None and window.message_box.isVisible())
    assert "elsewhere.nrrd" in window.messages[-1][1] and "does not overlap" in window.messages[-1][1]
    window.message_box.accept()
    assert window.state.segmentation is segmentation


def test_layouts(qtbot, window) -> None:
    open_demo(qtbot, window)
    window.layout_actions[Layout.ROW_1X3].trigger()
    assert window.view_3d.isHidden() and all(v.isVisible() for v in window.slice_views.values())
    window.set_layout(Layout.SINGLE_1X1, View.CORONAL)
    assert [v for v, w in window.views.items() if w.isVisible()] == [View.CORONAL]
    window.set_layout(Layout.GRID_2X2)
    assert all(w.isVisible() for w in window.views.values())
    sagittal = window.slice_views[View.SAGITTAL]
    qtbot.mouseDClick(sagittal.canvas, Qt.MouseButton.LeftButton, pos=sagittal.canvas.rect().center())
    assert window.state.layout is Layout.SINGLE_1X1 and window.state.single_view is View.SAGITTAL
    qtbot.mouseDClick(sagittal.canvas, Qt.MouseButton.LeftButton, pos=sagittal.canvas.rect().center())
    assert window.state.layout is Layout.GRID_2X2


def test_bad_file_gives_a_message_not_a_crash(qtbot, window, tmp_path: Path) -> None:
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"this is not an image" * 50)
    window.open_path(bad)
    qtbot.waitUntil(lambda: bool(window.messages), timeout=30_000)
    kind, text = window.messages[-1]
    assert kind == "error" and "scan.dcm" in text and "not a DICOM" in text
    box = window.message_box
    assert box is not None and box.isVisible() and "scan.dcm" in box.text()
    box.accept()
    qtbot.waitUntil(lambda: window.message_box is None)
    open_demo(qtbot, window)  # the window still works
    missing = tmp_path / "missing"
    window.open_path(missing)
    qtbot.waitUntil(lambda: len(window.messages) == 2, timeout=30_000)
    assert "missing" in window.messages[-1][1]


def test_drop_a_file_and_recent_files(qtbot, window, tmp_path: Path) -> None:
    open_demo(qtbot, window)
    path = save_volume(window.state.volume, tmp_path / "case.nrrd")
    window.state.volume = None
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, buttons, keys)
    assert QApplication.sendEvent(window, enter) and enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, buttons, keys))
    wait_for_case(qtbot, window)
    assert window.case_path == str(path)
    assert window.recent_files()[0] == str(path.resolve())
    actions = [a.text() for a in window.recent_menu.actions()]
    assert str(path.resolve()) in actions


def test_cancel_stops_loading(qtbot, window, tmp_path: Path) -> None:
    import threading

    from radlabel.core.demo import make_demo_ct
    from radlabel.core.io.dicom_export import write_dicom_series
    from radlabel.core.io.loader import load

    volume, _ = make_demo_ct(shape=(40, 64, 64))
    folder = tmp_path / "series"
    write_dicom_series(volume, folder)
    first_report = threading.Event()
    pressed = threading.Event()

    def work(progress):
        def gated(fraction: float, message: str) -> bool:
            first_report.set()
            pressed.wait(10)
            return progress(fraction, message)

        return load(folder, progress=gated)

    job = window._start_job("Loading test series", work)
    qtbot.waitUntil(first_report.is_set)
    job.dialog.findChild(QPushButton).click()  # the progress dialog's real Cancel button
    pressed.set()
    qtbot.waitUntil(lambda: not window.jobs, timeout=30_000)
    assert window.state.volume is None and not window.messages
    assert window.notices[-1] == "Loading test series: cancelled"
