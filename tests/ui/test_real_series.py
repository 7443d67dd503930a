"""The window on real public series (../shared/data): a double-oblique MR, a gantry-tilted CT, a folder with
several series. The key check: a screen pixel and a world point correspond the same way in every view, and a
single bright voxel shows up exactly where each view says that voxel is."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the window tests need the gui extra")

from radlabel.core.io.loader import load
from radlabel.ui.viewer_state import PLANES, SLICE_VIEWS, View
from tests.ui.helpers import bright_spot, open_and_wait, wait_for_case

OBLIQUE_MR = Path("dcm_qa/mr_ge_3d_t1_mprage_oblique/In")
TILTED_CT = Path("dcm_qa/ct_ge_gantry_tilt/In")
SEVERAL_SERIES = Path("dcm_qa/pixel_12bit_signed_unsigned/In")


def test_oblique_mr_opens_in_world_space(qtbot, window, shared_data: Path) -> None:
    open_and_wait(qtbot, window, shared_data / OBLIQUE_MR)
    state = window.state
    assert state.volume.orientation.startswith("oblique") and state.volume.metadata["modality"] == "MR"
    assert state.preset == "Auto (1–99 %)"
    assert "LPS" in window.readout_text and "HU" not in window.readout_text
    assert window.slice_views[View.AXIAL].scene.letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert window.slice_views[View.SAGITTAL].scene.letters == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    # the axial view is a world axial plane, not the volume's k plane: scrolling moves along S by the
    # spacing of the volume axis closest to S (k, 1.2 mm), and the readout's voxel index changes in i, j and k
    # over the slices because the volume is double oblique
    step = state.slice_step(View.AXIAL)
    assert step == pytest.approx(state.volume.spacing[2])
    before = np.array(state.readout().ijk)
    state.move_slice(View.AXIAL, 20)
    moved = np.array(state.readout().ijk) - before
    assert moved[2] > 15 and (moved[0] != 0 or moved[1] != 0)
    for view in window.slice_views.values():
        assert view.capture().mean() > 2


def test_tilted_ct_opens_with_its_tilt_correction_reported(qtbot, window, shared_data: Path) -> None:
    open_and_wait(qtbot, window, shared_data / TILTED_CT)
    state = window.state
    assert state.volume.metadata["modality"] == "CT" and state.preset == "Soft tissue"
    assert any("tilt" in notice for notice in window.notices)
    assert "HU" in window.readout_text
    window.preset_actions["Bone"].trigger()
    for view in window.slice_views.values():
        assert view.capture().mean() > 2


def _vtk_world_at(scene, x: float, y: float, on_plane_through: np.ndarray) -> np.ndarray:
    """World point at display (x, y) from VTK's own camera (DisplayToWorld), projected on the slice plane."""
    renderer = scene.renderer
    renderer.SetDisplayPoint(x, y, 0.0)
    renderer.DisplayToWorld()
    w = np.array(renderer.GetWorldPoint(), float)
    point = w[:3] / w[3]
    normal = PLANES[scene.view].normal
    return point - ((point - on_plane_through) @ normal) * normal


@pytest.mark.parametrize("series", [OBLIQUE_MR, TILTED_CT], ids=["oblique_mr", "tilted_ct"])
def test_crosshair_world_point_and_a_bright_voxel_agree_in_all_views(
    qtbot, window, shared_data: Path, tmp_path: Path, series: Path
) -> None:
    open_and_wait(qtbot, window, shared_data / series)
    state = window.state
    volume = state.volume
    assert volume.orientation.startswith("oblique")
    top = float(np.iinfo(volume.array.dtype).max)
    size = np.array(volume.size)
    state.set_segment_display(show_crosshair=False)
    for scene in (v.scene for v in window.slice_views.values()):
        scene.set_annotations_visible(False)
    state.set_window_level(top, top / 2)  # everything real is dark, the planted voxel is white
    for fractions in ((0.5, 0.5, 0.5), (0.3, 0.62, 0.4)):
        i, j, k = (int(f * (n - 1)) for f, n in zip(fractions, size, strict=True))
        world = volume.index_to_world([i, j, k])[0]
        state.set_cursor(world)
        assert state.cursor == pytest.approx(world)
        window.render_all()
        before = {view: window.views[view].capture().astype(np.int16) for view in SLICE_VIEWS}
        original = volume.array[k, j, i]
        volume.array[k, j, i] = top
        state.volume_data_changed()
        window.render_all()
        for view in SLICE_VIEWS:
            scene = window.slice_views[view].scene
            x, y = scene.world_to_display(world)  # where the crosshair is drawn
            # the world point under the crosshair pixel, from the view's camera and reslice matrix ...
            assert scene.display_to_world(x, y) == pytest.approx(world, abs=1e-6)
            # ... and from VTK's own camera
            assert _vtk_world_at(scene, x, y, world) == pytest.approx(world, abs=0.02)
            # the planted voxel is what changed on screen; find it and compare
            changed = np.clip(window.views[view].capture().astype(np.int16) - before[view], 0, 255)
            bx, by, peak = bright_spot(changed.astype(np.uint8))
            tolerance = 1.0  # pixels; measured 0.1-0.6 px on both series
            distance = math.hypot(bx - x, by - y)
            print(f"{series.parts[1]} {view.value}: voxel seen at ({bx:.2f}, {by:.2f}), crosshair ({x:.2f}, {y:.2f})")
            assert peak > 30, (view, peak)
            assert distance <= tolerance, (view, (bx, by), (x, y), tolerance)
        volume.array[k, j, i] = original
        state.volume_data_changed()
    # the crosshair lines, when shown, cross at that same pixel in every view
    state.set_segment_display(show_crosshair=True)
    window.render_all()
    for view in SLICE_VIEWS:
        scene = window.slice_views[view].scene
        x, y = scene.world_to_display(state.cursor)
        pixels = window.views[view].capture().astype(int)
        column = pixels[int(y) + 20 : int(y) + 60, int(x) - 1 : int(x) + 2]
        row = pixels[int(y) - 1 : int(y) + 2, int(x) + 20 : int(x) + 60]
        # the vertical line runs through these 3 columns, the horizontal one through these 3 rows (a line
        # between two pixel columns may be shared between them)
        assert (column.max(axis=2).sum(axis=1) > 180).all(), view
        assert (row.max(axis=2).sum(axis=0) > 180).all(), view


def test_series_browser_lists_several_series_with_thumbnails(qtbot, window, shared_data: Path) -> None:
    path = shared_data / SEVERAL_SERIES
    window.open_path(path)
    qtbot.waitUntil(lambda: window.series_browser is not None and window.series_browser.isVisible(), timeout=30_000)
    browser = window.series_browser
    rows = browser.rows()
    assert len(rows) == 3
    for row in rows:
        assert row["Modality"] == "MR" and row["Size"] == "64 × 64 × 35" and row["Description"]
    qtbot.waitUntil(lambda: browser.thumbnails_done == 3, timeout=30_000)
    assert all(not browser.table.item(r, 0).icon().isNull() for r in range(3))
    browser.select(2)
    chosen = browser.selected_entry()
    browser.accept()
    wait_for_case(qtbot, window)
    expected = load(path, chosen.info.uid).volume
    assert np.array_equal(window.state.volume.array, expected.array)
    assert window.state.volume.same_grid(expected)
