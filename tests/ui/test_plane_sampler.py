"""The numpy shortcut of `PlaneSampler` gives exactly what `vtkImageReslice` gives, and is taken only when valid."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("vtkmodules", reason="the window tests need the gui extra")

from radlabel.core.volume import Volume
from radlabel.ui.plane_sampler import PlaneSampler
from radlabel.ui.slice_view import SliceScene
from radlabel.ui.viewer_state import SLICE_VIEWS, ViewerState, plane_matrix
from radlabel.ui.vtk_image import CaseImages, array_2d, image_from_array, vtk_matrix

#: Signed permutations of the axes (axis-aligned grids), and one rotation (oblique: the reslice is used).
DIRECTIONS = {
    "identity": np.eye(3),
    "flipped": np.diag([-1.0, 1.0, -1.0]),
    "permuted": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),
}


def _volume(direction: np.ndarray) -> Volume:
    rng = np.random.default_rng(1)
    array = rng.integers(-1000, 1000, size=(9, 12, 14)).astype(np.int16)
    return Volume(array, (3.0, -7.0, 11.0), (0.8, 1.1, 2.5), direction)


def _samplers(volume: Volume, view: object, linear: bool, cursor: np.ndarray) -> tuple[PlaneSampler, PlaneSampler]:
    """A sampler that may take the shortcut and one that must reslice, both on the grid the view would use."""
    state = ViewerState()
    state.set_volume(volume)
    scene = SliceScene(view, state, CaseImages(state))  # type: ignore[arg-type]
    assert scene.output_grid is not None
    matrix = plane_matrix(view, cursor)  # type: ignore[arg-type]
    axes = vtk_matrix(matrix)
    pair = []
    for _ in range(2):
        image = image_from_array(volume.array, volume.origin, volume.spacing, volume.direction)
        sampler = PlaneSampler(image, axes, linear, background=-1024.0)
        sampler.set_output_grid(*scene.output_grid)
        pair.append(sampler)
    pair[1]._array = None  # no numpy array: always the reslice filter
    return pair[0], pair[1]


def _same(fast: PlaneSampler, slow: PlaneSampler, matrix: np.ndarray) -> None:
    a, b = fast.update(matrix), slow.update(matrix)
    assert a.GetOrigin() == pytest.approx(b.GetOrigin())
    assert a.GetSpacing() == pytest.approx(b.GetSpacing())
    assert a.GetExtent() == b.GetExtent()
    np.testing.assert_array_equal(array_2d(a), array_2d(b))


@pytest.mark.parametrize("name", list(DIRECTIONS))
@pytest.mark.parametrize("view", SLICE_VIEWS)
def test_shortcut_equals_the_reslice_on_voxel_centres(name: str, view: object) -> None:
    volume = _volume(DIRECTIONS[name])
    for ijk in ([0, 0, 0], [5, 7, 4], [13, 11, 8]):
        cursor = volume.index_to_world(np.array([ijk], float))[0]
        matrix = plane_matrix(view, cursor)  # type: ignore[arg-type]
        for linear in (True, False):
            fast, slow = _samplers(volume, view, linear, cursor)
            _same(fast, slow, matrix)
            assert fast.used_fast_path and not slow.used_fast_path


@pytest.mark.parametrize("view", SLICE_VIEWS)
def test_between_slices_labels_take_the_nearest_and_images_interpolate(view: object) -> None:
    volume = _volume(DIRECTIONS["permuted"])
    cursor = volume.index_to_world(np.array([[5.3, 6.6, 3.45]]))[0]
    matrix = plane_matrix(view, cursor)  # type: ignore[arg-type]
    fast, slow = _samplers(volume, view, False, cursor)
    _same(fast, slow, matrix)
    assert fast.used_fast_path  # nearest neighbour: still a slice of the array
    fast, slow = _samplers(volume, view, True, cursor)
    _same(fast, slow, matrix)
    assert not fast.used_fast_path  # linear between slices: the reslice filter


def test_an_oblique_grid_is_resliced() -> None:
    angle = np.radians(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    volume = _volume(rotation)
    cursor = volume.index_to_world(np.array([[6.0, 6.0, 4.0]]))[0]
    for view in SLICE_VIEWS:
        fast, slow = _samplers(volume, view, False, cursor)
        _same(fast, slow, plane_matrix(view, cursor))
        assert not fast.used_fast_path
