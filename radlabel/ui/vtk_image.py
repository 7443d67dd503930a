"""numpy <-> VTK without copies: volumes and label layers as vtkImageData that share the numpy buffer.

A Volume becomes a vtkImageData with origin, spacing and **direction matrix** set, so VTK filters that honour
the direction (vtkImageReslice with an identity output direction) place every voxel where it is in LPS.
The numpy array must stay alive and keep its buffer: edits in place followed by :func:`mark_modified` are
seen by every pipeline that reads the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkDataArray
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4


def image_from_array(
    array: NDArray[Any],
    origin: ArrayLike,
    spacing: ArrayLike,
    direction: ArrayLike | None = None,
    name: str = "values",
) -> vtkImageData:
    """A vtkImageData over ``array[k, j, i]`` (shared memory when the array is C-contiguous)."""
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    data = np.ascontiguousarray(array)
    image = vtkImageData()
    k, j, i = data.shape
    image.SetDimensions(i, j, k)
    image.SetOrigin(*(float(v) for v in np.asarray(origin, float)))
    image.SetSpacing(*(float(v) for v in np.asarray(spacing, float)))
    if direction is not None:
        image.SetDirectionMatrix(*(float(v) for v in np.asarray(direction, float).ravel()))
    scalars = numpy_support.numpy_to_vtk(data.reshape(-1), deep=False)
    scalars.SetName(name)
    image.GetPointData().SetScalars(scalars)
    image._radlabel_buffer = data  # type: ignore[attr-defined]  # keeps the numpy buffer alive with the image
    return image


def mark_modified(image: vtkImageData) -> None:
    """Tell VTK that the numpy buffer under ``image`` was changed in place."""
    scalars: vtkDataArray = image.GetPointData().GetScalars()
    scalars.Modified()
    image.Modified()


def array_2d(image: vtkImageData) -> NDArray[Any]:
    """The (rows, columns[, components]) array of a 2D vtkImageData (a view, row 0 at the bottom)."""
    nx, ny, _ = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    values = numpy_support.vtk_to_numpy(scalars)
    components = scalars.GetNumberOfComponents()
    return values.reshape((ny, nx, components) if components > 1 else (ny, nx))


def vtk_matrix(matrix: ArrayLike, target: vtkMatrix4x4 | None = None) -> vtkMatrix4x4:
    """A vtkMatrix4x4 holding ``matrix`` (written into ``target`` when given)."""
    m = np.asarray(matrix, float)
    result = target if target is not None else vtkMatrix4x4()
    result.DeepCopy(m.ravel().tolist())
    return result


class CaseImages:
    """The VTK images of the case on show (volume + one image per segmentation layer), shared by all views.

    It subscribes to the state when created; create it before the views so that it has synced when their
    listeners run (listeners are called in subscription order).
    """

    def __init__(self, state: Any) -> None:
        from radlabel.ui.viewer_state import Change

        self._change = Change
        self.volume_image: vtkImageData | None = None
        self.layer_images: list[vtkImageData] = []
        self._volume_array: NDArray[Any] | None = None
        self._layer_arrays: list[NDArray[Any]] = []
        self.layers_rebuilt = False
        self.sync(state, set(Change))
        state.subscribe(lambda changes: self.sync(state, changes))

    def sync(self, state: Any, changes: set[Any]) -> None:
        Change = self._change  # noqa: N806
        volume = state.volume
        if volume is None:
            self.volume_image, self._volume_array = None, None
        elif volume.array is not self._volume_array:
            self._volume_array = volume.array
            self.volume_image = image_from_array(volume.array, volume.origin, volume.spacing, volume.direction)
        elif Change.VOLUME_DATA in changes and self.volume_image is not None:
            mark_modified(self.volume_image)
        if Change.SEGMENTATION in changes or Change.VOLUME in changes:
            self._sync_layers(state)

    def _sync_layers(self, state: Any) -> None:
        segmentation = state.segmentation
        layers = list(segmentation.layers) if segmentation is not None else []
        same = len(layers) == len(self._layer_arrays) and all(
            a is b for a, b in zip(layers, self._layer_arrays, strict=True)
        )
        self.layers_rebuilt = not same
        if same:
            for image in self.layer_images:
                mark_modified(image)
            return
        self._layer_arrays = layers
        grid = segmentation.grid if segmentation is not None else None
        self.layer_images = (
            [image_from_array(layer, grid.origin, grid.spacing, grid.direction, name="labels") for layer in layers]
            if grid is not None
            else []
        )
