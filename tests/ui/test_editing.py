"""Phase 2 of the window: the case (session), painting with the mouse, labelled undo, the segment and tools
panels, the AI panel against the example threshold plugin, export and the audit panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the window tests need the gui extra")

from PySide6.QtCore import QPoint, Qt

from radlabel.app.session import Session
from radlabel.ui.viewer_state import View
from tests.ui.helpers import activate, open_and_wait, open_demo, wheel, widget_point

EXAMPLE_PLUGIN = "example-threshold"
TILTED_CT = Path("dcm_qa/ct_ge_gantry_tilt/In")


def _drag(qtbot, view, points: list[QPoint]) -> None:
    qtbot.mousePress(view.canvas, Qt.MouseButton.LeftButton, pos=points[0])
    for point in points[1:]:
        qtbot.mouseMove(view.canvas, point)
    qtbot.mouseRelease(view.canvas, Qt.MouseButton.LeftButton, pos=points[-1])


def _screen_point(view, world) -> QPoint:
    return widget_point(view, tuple(view.scene.world_to_display(world)))


def test_paint_with_the_mouse_undo_redo_and_save(qtbot, window) -> None:
    open_demo(qtbot, window)
    session = window.controller.session
    assert session is not None and session.volume is window.state.volume
    assert window.state.segmentation is session.segmentation
    lesion = session.segmentation.segments[1]
    assert lesion.name == "Liver lesion"
    axial = window.slice_views[View.AXIAL]
    wheel(axial, 3)  # scroll a few slices first
    before = session.segmentation.mask(1).copy()
    activate(qtbot, window)
    qtbot.keyClick(axial.canvas, Qt.Key.Key_B)  # the paint brush
    assert window.tools_panel.active == "paint" and axial.tool is window.tools_panel.brush
    window.tools_panel.paint_radius.setValue(4.0)
    # a stroke to the right of the lesion, in the slice on show
    start = window.state.cursor + np.array([-40.0, 0.0, 0.0])
    points = [_screen_point(axial, start + np.array([dx, 0.0, 0.0])) for dx in (0.0, 5.0, 10.0, 15.0, 20.0)]
    _drag(qtbot, axial, points)
    after = session.segmentation.mask(1)
    added = after & ~before
    assert added.sum() > 100
    k_index = window.state.readout().ijk[2]
    assert set(np.nonzero(added)[0]) == {k_index}  # a disc on the slice on show
    assert session.undo_stack.undo_label.startswith("Paint Liver lesion")
    assert window.undo_action.text().startswith("&Undo Paint Liver lesion") and "voxels" in window.undo_action.text()
    assert "stroke" not in window.state.previews  # the preview went with the release
    # Ctrl+Z undoes the stroke, Ctrl+Shift+Z brings it back
    activate(qtbot, window)
    qtbot.keyClick(axial.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(session.segmentation.mask(1), before)
    assert window.redo_action.text().startswith("&Redo Paint Liver lesion")
    qtbot.keyClick(axial.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(session.segmentation.mask(1), after)
    # the erase brush takes it away again
    window.tool_actions["erase"].trigger()
    window.tools_panel.erase_radius.setValue(6.0)
    _drag(qtbot, axial, points)
    assert not (session.segmentation.mask(1) & added).any()
    # statistics follow the edits (computed off the GUI thread)
    qtbot.waitUntil(lambda: not window.segment_panel.stats_pending and 1 in window.segment_panel.stats, timeout=20000)
    assert window.segment_panel.list.topLevelItem(0).text(1) != ""
    # saving writes the segmentation; reopening the case gives it back with nothing to recover
    window.save_case()
    assert not session.modified
    folder = session.case_dir
    saved = session.segmentation.mask(1)
    window.controller.attach(None)
    with Session.open(folder) as reopened:
        assert reopened.recovered_steps == 0
        assert np.array_equal(reopened.segmentation.mask(1), saved)


def test_segment_panel_and_tools(qtbot, window) -> None:
    open_demo(qtbot, window)
    session = window.controller.session
    panel, tools = window.segment_panel, window.tools_panel
    sid = panel.add_segment("Liver")  # name, codes and colour from the terminology
    segment = session.segmentation.segments[sid]
    assert segment.type.meaning == "Liver" and segment.type.scheme == "SCT"
    assert window.controller.current_segment_id == sid
    panel.rename("Liver parenchyma")
    panel.set_color((10, 200, 10))
    assert session.segmentation.segments[sid].name == "Liver parenchyma"
    assert session.segmentation.segments[sid].color == (10, 200, 10)
    assert panel.list.topLevelItemCount() == 2
    # threshold (soft tissue preset) then margin, islands, smoothing: each one step
    tools.select("threshold")
    tools.threshold_preset.setCurrentText("Soft tissue")
    assert tools.apply_threshold() is not None
    assert session.segmentation.mask(sid).sum() > 1000
    tools.margin_mm.setValue(-1.0)
    tools.apply_margin()
    tools.apply_islands()
    assert session.undo_stack.undo_count >= 5
    # lock: an edit of a locked segment is refused with a message, the window stays usable
    panel.set_locked(True)
    known = len(window.messages)
    tools.apply_margin()
    assert len(window.messages) == known + 1 and "lock" in window.messages[-1][1].lower()
    window.message_box.accept()
    panel.set_locked(False)
    # hide and delete go through the session too (undoable)
    panel.set_visible(sid, False)
    assert sid in window.state.hidden_segments
    window.controller.undo()
    assert sid not in window.state.hidden_segments
    panel.delete_current()
    assert sid not in session.segmentation.segments
    window.controller.undo()
    assert sid in session.segmentation.segments


def test_ai_panel_proposal_accept_audit_and_export(qtbot, window, tmp_path: Path) -> None:
    open_demo(qtbot, window)
    session = window.controller.session
    panel = window.ai_panel
    window.show_panel("ai")  # lists the plugins (off the GUI thread)
    qtbot.waitUntil(lambda: EXAMPLE_PLUGIN in panel.plugins, timeout=20000)
    panel.plugin_combo.setCurrentText(EXAMPLE_PLUGIN)
    panel.target.setText("Lesion")
    panel.into_selected.setChecked(False)
    # a box around the lesion, drawn in the axial view
    panel.set_prompt_mode("box")
    axial = window.slice_views[View.AXIAL]
    assert axial.tool is panel.prompt_tool
    centre = window.state.cursor
    corners = [centre + np.array([-25.0, -25.0, 0.0]), centre + np.array([0.0, 0.0, 0.0])]
    corners.append(centre + np.array([25.0, 25.0, 0.0]))
    _drag(qtbot, axial, [_screen_point(axial, c) for c in corners])
    assert panel.box is not None and panel.box.axis == 0
    assert panel.run()
    assert panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: panel.pending is not None or bool(panel.errors), timeout=60000)
    assert not panel.errors, panel.errors
    assert "proposal" in window.state.previews  # the cyan proposal overlay
    assert panel.accept_button.isEnabled()
    lesion = session.segmentation.mask(1)
    diff = panel.accept()
    assert diff is not None and diff.voxels_changed.added > 50
    new = session.segmentation.segments[diff.segment_id]
    assert new.name == "Lesion" and new.algorithm_type.value == "AUTOMATIC"
    assert new.algorithm is not None and new.algorithm.name == EXAMPLE_PLUGIN
    # the proposal is the phantom's lesion on that slice (overwrite "all": those voxels left "Liver lesion")
    accepted = session.segmentation.mask(new.id)
    assert (accepted & lesion).sum() > 0.5 * accepted.sum()
    assert "proposal" not in window.state.previews
    records = list(session.audit.records())
    proposals = [r for r in records if r.action == "proposal"]
    assert proposals and proposals[-1].payload["details"]["model"]["name"] == EXAMPLE_PLUGIN
    edits = [r for r in records if r.action == "edit" and r.payload["tool"] == "ai-accept"]
    assert edits and edits[-1].payload["parameters"]["model"]["name"] == EXAMPLE_PLUGIN
    assert edits[-1].payload["parameters"]["model"]["weights_sha256"]
    # export to NIfTI with the audit head, then the audit panel lists it all and verifies
    out = tmp_path / "export" / "lesion.nii.gz"
    out.parent.mkdir()
    known = len(window.messages)
    window.export_to(out)
    qtbot.waitUntil(lambda: bool(window.exports) or len(window.messages) > known, timeout=30000)
    assert window.exports and out.exists(), window.messages
    sidecar = [p for p in out.parent.iterdir() if p.suffix == ".json"]
    assert sidecar and "provenance" in sidecar[0].read_text()
    assert any(r.action == "export" for r in session.audit.records())
    window.audit_panel.refresh()
    table = window.audit_panel.table
    actions = [table.item(n, 2).text() for n in range(table.rowCount())]
    assert "proposal" in actions and "export" in actions
    assert any(a.startswith("edit: Accept example-threshold proposal") for a in actions)
    models = {table.item(n, 5).text() for n in range(table.rowCount())}
    assert any(m.startswith(EXAMPLE_PLUGIN) for m in models)
    window.audit_panel.verify_button.click()
    assert window.audit_panel.result.text().startswith("OK")
    # a plugin that fails: a message, and the window goes on working
    known = len(window.messages)
    panel.set_box((40, 40, 40), (50, 50, 40), 0)
    assert panel.run("no-such-plugin")
    qtbot.waitUntil(lambda: len(window.messages) > known, timeout=30000)
    assert "no-such-plugin" in window.messages[-1][1]
    window.message_box.accept()
    assert not panel.running and panel.run_button.isEnabled()
    number = window.state.slice_number(View.AXIAL)[0]
    wheel(axial, 1)
    assert window.state.slice_number(View.AXIAL)[0] == number + 1


def test_real_dicom_series_case_paint_and_dicom_seg(qtbot, window, shared_data: Path, tmp_path: Path) -> None:
    open_and_wait(qtbot, window, shared_data / TILTED_CT)
    session = window.controller.session
    assert session is not None and str(session.case_dir).startswith(str(tmp_path))  # not beside shared data
    panel = window.segment_panel
    sid = panel.add_segment("Brain")
    axial = window.slice_views[View.AXIAL]
    wheel(axial, -2)
    window.tools_panel.select("paint")
    window.tools_panel.paint_radius.setValue(8.0)
    centre = window.state.cursor
    _drag(qtbot, axial, [_screen_point(axial, centre + np.array([dx, 0.0, 0.0])) for dx in (-10.0, 0.0, 10.0)])
    assert session.segmentation.mask(sid).sum() > 50
    out = tmp_path / "seg.dcm"
    known = len(window.messages)
    window.export_to(out)
    qtbot.waitUntil(lambda: bool(window.exports) or len(window.messages) > known, timeout=60000)
    assert window.exports, window.messages
    import pydicom

    dataset = pydicom.dcmread(out)
    assert dataset.Modality == "SEG" and dataset.SegmentSequence[0].SegmentLabel == "Brain"
    assert "radlabel audit" in dataset.ContentDescription
    # reopening the image reopens its case, and the journalled (unsaved) stroke comes back
    folder = session.case_dir
    window.controller.attach(None)
    open_and_wait(qtbot, window, shared_data / TILTED_CT)
    reopened = window.controller.session
    assert reopened is not None and reopened.case_dir == folder
    assert reopened.recovered_steps >= 2 and reopened.segmentation.mask(sid).sum() > 50
    assert any("Recovered" in notice for notice in window.notices)
