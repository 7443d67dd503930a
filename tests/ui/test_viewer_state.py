"""The viewer state without any window: slices in world space, cursor, presets, readout."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.core.volume import Volume
from radlabel.ui import presets
from radlabel.ui.cases import demo_case
from radlabel.ui.viewer_state import PLANES, Change, Layout, View, ViewerState, plane_matrix


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_planes_follow_the_radiological_convention() -> None:
    # axial seen from the feet: patient's left on screen right, anterior up
    assert PLANES[View.AXIAL].right == (1.0, 0.0, 0.0) and PLANES[View.AXIAL].up == (0.0, -1.0, 0.0)
    # each view's normal points towards its viewer: feet, front, patient's left
    assert np.allclose(PLANES[View.AXIAL].normal, [0, 0, -1])
    assert np.allclose(PLANES[View.CORONAL].normal, [0, -1, 0])
    assert np.allclose(PLANES[View.SAGITTAL].normal, [1, 0, 0])
    matrix = plane_matrix(View.CORONAL, [3.0, -7.0, 11.0])
    point = matrix @ np.array([3.0, 11.0, 0.0, 1.0])
    assert np.allclose(point[:3], [3.0, -7.0, 11.0])  # (u, v) = (x, z) on the plane through y = -7


def test_demo_state_slices_cursor_and_readout() -> None:
    volume, segmentation = demo_case()
    state = ViewerState()
    seen: list[set[Change]] = []
    state.subscribe(seen.append)
    state.set_volume(volume, segmentation)
    assert len(seen) == 1 and Change.VOLUME in seen[0]  # one batched notification
    assert state.preset == "Soft tissue" and (state.window, state.level) == (400.0, 40.0)
    k_count = volume.array.shape[0]
    assert state.slice_number(View.AXIAL)[1] == k_count
    assert state.slice_step(View.AXIAL) == pytest.approx(volume.spacing[2])
    before = state.slice_number(View.AXIAL)[0]
    state.move_slice(View.AXIAL, 1)
    assert state.slice_number(View.AXIAL)[0] == before + 1
    state.move_slice(View.AXIAL, 10_000)
    assert state.slice_number(View.AXIAL)[0] == k_count  # clamped to the last slice
    assert state.jump_to_segment()
    readout = state.readout()
    assert readout is not None and readout.inside and readout.unit == "HU"
    assert readout.segments == ["Liver lesion"]
    i, j, k = readout.ijk
    assert readout.value == volume.array[k, j, i]
    assert "LPS" in readout.text() and "HU" in readout.text()


def test_slice_step_of_an_oblique_volume_is_the_closest_axis_spacing() -> None:
    direction = _rotation(np.array([1.0, 0.3, 0.0]), np.radians(25))
    volume = Volume(np.zeros((20, 30, 40), np.int16), np.zeros(3), np.array([0.5, 0.7, 2.0]), direction)
    state = ViewerState()
    state.set_volume(volume)
    assert state.slice_step(View.AXIAL) == pytest.approx(2.0)
    assert state.slice_step(View.SAGITTAL) == pytest.approx(0.5)
    z0 = state.cursor[2]
    state.move_slice(View.AXIAL, -1)
    assert state.cursor[2] == pytest.approx(z0 - 2.0)
    assert state.preset == presets.AUTO  # not CT: automatic window


def test_presets_and_automatic_window() -> None:
    volume, _ = demo_case()
    assert presets.window_level_for("Lung", volume) == (1500.0, -600.0)
    assert presets.window_level_for("CT brain", volume) == (80.0, 40.0)
    assert presets.window_level_for("Bone", volume) == (1800.0, 400.0)
    assert presets.window_level_for("Liver", volume) == (160.0, 60.0)
    ramp = np.arange(1000, dtype=np.int16).reshape(10, 10, 10)
    window, level = presets.auto_window_level(ramp)
    assert window == pytest.approx(np.percentile(ramp[ramp > 0], 99) - np.percentile(ramp[ramp > 0], 1), rel=0.02)
    assert level == pytest.approx(500, abs=10)
    with pytest.raises(KeyError):
        presets.window_level_for("nope", volume)


def test_layouts_and_display_settings() -> None:
    state = ViewerState()
    state.set_layout(Layout.ROW_1X3)
    assert state.visible_views() == [View.AXIAL, View.CORONAL, View.SAGITTAL]
    state.set_layout("1x1", View.SAGITTAL)
    assert state.visible_views() == [View.SAGITTAL]
    state.set_segment_display(segment_opacity=0.7, show_outline=False)
    assert state.segment_opacity == 0.7 and not state.show_outline
    with pytest.raises(AttributeError):
        state.set_segment_display(colour=1)
