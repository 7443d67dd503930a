"""The Tools panel driven like a user on the demo phantom: flood fill and lasso with the mouse, grow from seeds
(seeds painted with the brush, Initialize, Apply), fill between slices, smoothing, hollow and a logical
operation with their Apply buttons. Each checks what changed in the segmentation and that Ctrl+Z takes the
operation back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the window tests need the gui extra")

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QPushButton

from radlabel.ui.edit_tools import world_to_kji
from radlabel.ui.viewer_state import View
from tests.ui.helpers import activate, open_demo, wheel, widget_point

LESION = 1


def _screen_point(view: Any, world: Any) -> QPoint:
    return widget_point(view, tuple(view.scene.world_to_display(world)))


def _drag(qtbot: Any, view: Any, worlds: list[Any]) -> None:
    points = [_screen_point(view, w) for w in worlds]
    qtbot.mousePress(view.canvas, Qt.MouseButton.LeftButton, pos=points[0])
    for point in points[1:]:
        qtbot.mouseMove(view.canvas, point)
    qtbot.mouseRelease(view.canvas, Qt.MouseButton.LeftButton, pos=points[-1])


def _masks(session: Any) -> dict[int, np.ndarray]:
    return {sid: session.segmentation.mask(sid).copy() for sid in session.segmentation.segments}


def _same(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[sid], b[sid]) for sid in a)


def _kji(window: Any, world: Any) -> tuple[int, int, int]:
    k, j, i = np.rint(world_to_kji(window.state.volume, world)).astype(int)
    return int(k), int(j), int(i)


def _undo_with_keys(qtbot: Any, window: Any, before: dict[int, np.ndarray], steps: int = 1) -> None:
    """Ctrl+Z ``steps`` times gives ``before`` back, and not one step less."""
    session = window.controller.session
    activate(qtbot, window)
    canvas = window.slice_views[View.AXIAL].canvas
    for n in range(steps):
        assert not _same(_masks(session), before), f"restored after {n} of {steps} undo steps"
        qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _same(_masks(session), before)


def _apply(window: Any, key: str, text: str = "Apply") -> None:
    """Click the Apply button of a tool's page in the Tools panel."""
    window.tools_panel.buttons[key].click()
    buttons = [b for b in window.tools_panel.pages[key].findChildren(QPushButton) if b.text().startswith(text)]
    assert len(buttons) == 1, [b.text() for b in window.tools_panel.pages[key].findChildren(QPushButton)]
    buttons[0].click()


@pytest.fixture
def demo(qtbot: Any, window: Any) -> Any:
    open_demo(qtbot, window)
    window.show_panel("tools")
    return window


def test_flood_fill_and_lasso_with_the_mouse(qtbot, demo) -> None:
    window, tools = demo, demo.tools_panel
    session = window.controller.session
    lesion = session.segmentation.mask(LESION).copy()
    sid = window.segment_panel.add_segment("Liver")
    assert window.controller.current_segment_id == sid
    axial = window.slice_views[View.AXIAL]
    centre = window.state.cursor.copy()  # the demo opens on the lesion
    k = _kji(window, centre)[0]
    assert lesion[k].sum() > 100

    # flood fill: one click in the lesion fills the (darker) lesion on that slice
    activate(qtbot, window)
    qtbot.keyClick(axial.canvas, Qt.Key.Key_F)
    assert tools.active == "flood" and axial.tool is tools.flood_tool
    tools.flood_tolerance.setValue(20)
    before, steps = _masks(session), session.undo_stack.undo_count
    qtbot.mouseClick(axial.canvas, Qt.MouseButton.LeftButton, pos=_screen_point(axial, centre))
    filled = session.segmentation.mask(sid)
    assert session.undo_stack.undo_count == steps + 1
    assert set(np.nonzero(filled)[0]) == {k}  # 2D: the slice on show
    assert 100 < filled.sum() < 2 * lesion[k].sum()
    assert (filled & lesion).sum() > 0.5 * filled.sum()  # mostly the lesion, not the brighter liver
    assert not (session.segmentation.mask(LESION) & filled).any()  # overwrite "all segments"
    _undo_with_keys(qtbot, window, before)

    # lasso: a 20 x 20 mm square dragged beside the lesion is filled on that slice
    qtbot.keyClick(axial.canvas, Qt.Key.Key_L)
    assert tools.active == "lasso" and axial.tool is tools.lasso
    corner = centre + np.array([-45.0, -10.0, 0.0])
    outline = [corner + np.array([dx, dy, 0.0]) for dx, dy in ((0, 0), (10, 0), (20, 0), (20, 10), (20, 20))]
    outline += [corner + np.array([dx, dy, 0.0]) for dx, dy in ((10, 20), (0, 20), (0, 10), (0, 1))]
    before, steps = _masks(session), session.undo_stack.undo_count
    _drag(qtbot, axial, outline)
    drawn = session.segmentation.mask(sid)
    assert session.undo_stack.undo_count == steps + 1
    assert session.undo_stack.undo_label.startswith("Lasso") or "lasso" in session.undo_stack.undo_label.lower()
    assert set(np.nonzero(drawn)[0]) == {k}
    area = (20 / 0.9) ** 2  # voxels of 0.9 x 0.9 mm
    assert 0.75 * area < drawn.sum() < 1.25 * area
    _, js, is_ = np.nonzero(drawn)
    assert (js.max() - js.min() + 1) * 0.9 == pytest.approx(20, abs=2.5)
    assert (is_.max() - is_.min() + 1) * 0.9 == pytest.approx(20, abs=2.5)
    inside = _kji(window, corner + np.array([10.0, 10.0, 0.0]))
    assert drawn[inside] and not (drawn & lesion).any()
    assert "lasso" not in window.state.previews
    _undo_with_keys(qtbot, window, before)


def test_grow_from_seeds(qtbot, demo) -> None:
    window, tools = demo, demo.tools_panel
    session = window.controller.session
    lesion = session.segmentation.mask(LESION).copy()
    panel = window.segment_panel
    background = panel.add_segment("Background")
    tumour = panel.add_segment("Tumour")
    assert window.controller.current_segment_id == tumour
    axial = window.slice_views[View.AXIAL]
    centre = window.state.cursor.copy()
    k = _kji(window, centre)[0]
    # seeds: a small disc in the lesion (Tumour), a ring of strokes around it (Background)
    tools.select("paint")
    tools.paint_radius.setValue(2.0)
    _drag(qtbot, axial, [centre + np.array([dx, 0.0, 0.0]) for dx in (-2.0, 0.0, 2.0)])
    window.controller.set_current_segment(background)
    ring = [centre + 22.0 * np.array([np.cos(a), np.sin(a), 0.0]) for a in np.linspace(0, 2 * np.pi, 25)]
    _drag(qtbot, axial, ring)
    window.controller.set_current_segment(tumour)
    seeds = {tumour: session.segmentation.mask(tumour).sum(), background: session.segmentation.mask(background).sum()}
    assert seeds[tumour] > 5 and seeds[background] > 50
    before, steps = _masks(session), session.undo_stack.undo_count

    tools.select("grow")
    tools.grow_other.setCurrentIndex(tools.grow_other.findData(background))
    tools.grow_margin.setValue(10.0)
    tools.grow_init.click()
    assert not window.messages, window.messages
    assert "grow" in window.state.previews and tools._grow_result is not None  # a preview, no edit yet
    assert _same(_masks(session), before) and session.undo_stack.undo_count == steps
    tools.grow_apply.click()
    assert not window.messages, window.messages
    assert "grow" not in window.state.previews or not window.state.previews["grow"].visible
    grown = session.segmentation.mask(tumour)
    assert grown.sum() > 10 * seeds[tumour]
    on_slice = grown[k]
    assert (on_slice & lesion[k]).sum() > 0.6 * on_slice.sum()  # the lesion, not the liver round it
    assert (on_slice & lesion[k]).sum() > 0.6 * lesion[k].sum()
    assert session.segmentation.mask(background).sum() > seeds[background]
    # Apply writes both segments as one undo step
    assert session.undo_stack.undo_count == steps + 1
    assert session.undo_stack.undo_label.startswith("Grow from seeds")
    _undo_with_keys(qtbot, window, before, steps=1)


def test_fill_between_smoothing_hollow_and_logical(qtbot, demo) -> None:
    window, tools = demo, demo.tools_panel
    session = window.controller.session
    sid = window.segment_panel.add_segment("Liver")
    axial = window.slice_views[View.AXIAL]
    centre = window.state.cursor.copy()
    k0 = _kji(window, centre)[0]
    # two discs six slices apart, painted with the brush
    tools.select("paint")
    tools.paint_radius.setValue(6.0)
    stroke = [centre + np.array([-30.0 + dx, 0.0, 0.0]) for dx in (0.0, 1.0)]
    _drag(qtbot, axial, stroke)
    wheel(axial, 6)
    k1 = _kji(window, window.state.cursor)[0]
    assert abs(k1 - k0) == 6
    _drag(qtbot, axial, [p + (window.state.cursor - centre) for p in stroke])
    painted = session.segmentation.mask(sid).copy()
    assert sorted(set(np.nonzero(painted)[0])) == sorted({k0, k1})

    # fill between slices (along k): every slice in between gets a disc
    tools.fill_axis.setCurrentIndex(0)
    before, steps = _masks(session), session.undo_stack.undo_count
    _apply(window, "fill_between", "Fill between")
    filled = session.segmentation.mask(sid)
    assert session.undo_stack.undo_count == steps + 1
    low, high = sorted((k0, k1))
    assert sorted(set(np.nonzero(filled)[0])) == list(range(low, high + 1))
    for k in range(low + 1, high):
        assert filled[k].sum() > 0.5 * painted[k0].sum()
    assert np.array_equal(filled & painted, painted)
    _undo_with_keys(qtbot, window, before)

    window.controller.set_current_segment(LESION)
    lesion = session.segmentation.mask(LESION).copy()
    kc, jc, ic = (int(np.median(a)) for a in np.nonzero(lesion))
    assert lesion[kc, jc, ic]

    # smoothing (opening, 3 mm): takes from the lesion's surface, adds nothing
    tools.smoothing_method.setCurrentText("Opening")
    tools.smoothing_size.setValue(3.0)
    before, steps = _masks(session), session.undo_stack.undo_count
    _apply(window, "smoothing")
    opened = session.segmentation.mask(LESION)
    assert session.undo_stack.undo_count == steps + 1
    assert not (opened & ~lesion).any() and 0.5 * lesion.sum() < opened.sum() < lesion.sum()
    _undo_with_keys(qtbot, window, before)

    # hollow (2 mm shell inside): the surface stays, the core goes
    tools.hollow_mm.setValue(2.0)
    tools.hollow_side.setCurrentText("inside")
    before, steps = _masks(session), session.undo_stack.undo_count
    _apply(window, "hollow")
    shell = session.segmentation.mask(LESION)
    assert session.undo_stack.undo_count == steps + 1
    assert not (shell & ~lesion).any() and not shell[kc, jc, ic]
    assert 0.1 * lesion.sum() < shell.sum() < 0.8 * lesion.sum()
    surface = lesion & ~np.pad(lesion, 1)[1:-1, 1:-1, 2:]  # lesion voxels whose +i neighbour is outside
    assert shell[surface].all()
    _undo_with_keys(qtbot, window, before)

    # logical op: add the lesion to Liver (the two painted discs)
    window.controller.set_current_segment(sid)
    liver = session.segmentation.mask(sid).copy()
    assert np.array_equal(liver, painted)
    lesion = session.segmentation.mask(LESION).copy()
    tools.logical_op.setCurrentText("add")
    tools.logical_source.setCurrentIndex(tools.logical_source.findData(LESION))
    before, steps = _masks(session), session.undo_stack.undo_count
    _apply(window, "logical", "Apply to the selected")
    assert session.undo_stack.undo_count == steps + 1
    assert np.array_equal(session.segmentation.mask(sid), liver | lesion)
    _undo_with_keys(qtbot, window, before)
