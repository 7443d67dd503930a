"""Work recovered from the journal is offered in a dialog (keep / discard), which never blocks; the demo is
made while the window starts; a screenshot waits for the statistics; the first frame imports nothing heavy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the window tests need the gui extra")

from PySide6.QtWidgets import QMessageBox

from radlabel.core.demo import make_demo_ct
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.io.writers import save_volume
from radlabel.ui import cases
from tests.ui.helpers import open_and_wait, open_demo


def _image(tmp_path: Path) -> Path:
    volume, _ = make_demo_ct(shape=(12, 40, 48))
    return save_volume(volume, tmp_path / "small.nii.gz")


def _paint(window: Any, k: int, corner: int) -> None:
    mask = np.ones((1, 4, 4), bool)
    window.controller.edit("paint", {}, Region((k, corner, corner), mask), EditMode.ADD)


def _case_with_unsaved_work(qtbot: Any, window: Any, image: Path) -> tuple[np.ndarray, np.ndarray]:
    """Open ``image``'s case, paint and save, paint twice more without saving, close it; the saved and the
    final mask of the new segment."""
    open_and_wait(qtbot, window, image)
    session = window.controller.session
    sid = window.segment_panel.add_segment("Liver")
    _paint(window, 5, 4)
    window.save_case()
    saved = session.segmentation.mask(sid).copy()
    _paint(window, 6, 10)
    _paint(window, 7, 16)
    final = session.segmentation.mask(sid).copy()
    window.controller.attach(None)  # closed without saving: the two steps are only in the journal
    return saved, final


def _reopen(qtbot: Any, window: Any, image: Path) -> QMessageBox:
    open_and_wait(qtbot, window, image)
    assert window.controller.session.recovered_steps == 2
    box = window.recovery_box
    assert box is not None and box.isVisible()  # open(), not exec(): the test goes on while it shows
    assert "2 steps recovered from the journal" in box.text()
    return box


def _button(box: QMessageBox, text: str) -> Any:
    return next(b for b in box.buttons() if b.text() == text)


def _actions(session: Any) -> list[str]:
    return [record.action for record in session.audit.records()]


def test_recovered_steps_can_be_kept(qtbot, window, tmp_path: Path) -> None:
    image = _image(tmp_path)
    _, final = _case_with_unsaved_work(qtbot, window, image)
    box = _reopen(qtbot, window, image)
    _button(box, "Keep").click()
    qtbot.waitUntil(lambda: window.recovery_box is None)
    session = window.controller.session
    sid = next(iter(session.segmentation.segments))
    assert np.array_equal(session.segmentation.mask(sid), final)
    assert _actions(session)[-1] == "recovery-kept"


def test_recovered_steps_can_be_discarded_back_to_the_saved_state(qtbot, window, tmp_path: Path) -> None:
    image = _image(tmp_path)
    saved, final = _case_with_unsaved_work(qtbot, window, image)
    box = _reopen(qtbot, window, image)
    _button(box, "Discard").click()
    qtbot.waitUntil(lambda: window.recovery_box is None)
    session = window.controller.session
    sid = next(iter(session.segmentation.segments))
    assert np.array_equal(session.segmentation.mask(sid), saved)
    assert window.state.segmentation is session.segmentation  # the views show the saved state
    # audited: each step taken back, then the decision; and Redo still brings the work back
    assert _actions(session)[-3:] == ["undo", "undo", "recovery-discarded"]
    assert not window.messages
    window.controller.redo()
    window.controller.redo()
    assert np.array_equal(session.segmentation.mask(sid), final)


def test_screenshots_never_ask(qtbot, window, tmp_path: Path) -> None:
    image = _image(tmp_path)
    _case_with_unsaved_work(qtbot, window, image)
    window.ask_about_recovery = False
    open_and_wait(qtbot, window, image)
    assert window.controller.session.recovered_steps == 2
    assert window.recovery_box is None
    assert any("Recovered 2" in notice for notice in window.notices)


def test_the_screenshot_waits_for_the_statistics(qtbot, window) -> None:
    from PySide6.QtWidgets import QApplication

    from radlabel.ui.app import wait_for_background

    volume, segmentation = cases.demo_case()
    window.set_case(volume, segmentation, title="demo")
    assert window.segment_panel.list.topLevelItem(0).text(1) == ""  # measured after the first frame
    assert wait_for_background(QApplication.instance(), window)
    row = window.segment_panel.list.topLevelItem(0)
    assert float(row.text(1)) > 1.0 and row.text(2) != "" and float(row.text(3)) > 10.0  # mL, mean, diameter
    assert not window.view_3d.surfaces_pending and window.view_3d.scene.surfaces.actors


def test_the_demo_made_ahead_is_used_once(qtbot, window) -> None:
    cases.prefetch_demo()
    cases.prefetch_demo()  # a second call while one is on its way starts nothing
    first = cases.demo_case()
    second = cases.demo_case()  # made anew: the first one's arrays may be edited by now
    assert first[0].array is not second[0].array
    np.testing.assert_array_equal(first[0].array, second[0].array)
    open_demo(qtbot, window)
    assert window.state.volume.array.shape == first[0].array.shape


def test_the_first_frame_imports_no_heavy_module(xvfb_display: str) -> None:
    """Readers, statistics, SciPy and the AI registry load after the demo's first frame, not before it."""
    script = textwrap.dedent(
        """
        import sys, time
        from radlabel.ui.app import start
        app, window = start(demo=True, size=(1280, 800))
        seen = {}
        heavy = ("scipy", "SimpleITK", "highdicom", "pydicom", "nibabel", "torch", "monai")
        late = ("radlabel.ai.registry", "radlabel.core.io.loader", "radlabel.core.stats")

        def rendered(view):
            if window.state.volume is not None and view not in seen:
                seen[view] = sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in late)

        for view in window.state.visible_views():
            canvas = window.views[view].canvas
            canvas.render_window.AddObserver("EndEvent", lambda *_a, view=view: rendered(view))
        started = time.monotonic()
        while len(seen) < len(window.state.visible_views()) and time.monotonic() - started < 60:
            app.processEvents()
            time.sleep(0.002)
        print(sorted({m for found in seen.values() for m in found}), len(seen))
        """
    )
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[] 4", result.stdout
