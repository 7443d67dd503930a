"""Smoothed 3D surfaces of segments for the 3D view.

Each visible segment's mask is cropped to its bounding box (plus one voxel) and meshed with
`vtkSurfaceNets3D` (smoothed surface nets; VTK >= 9.3) or, where that filter is missing, discrete marching
cubes + windowed-sinc smoothing. Meshing happens in the grid's unrotated frame (origin + spacing * index);
the actor's matrix applies the direction, so surfaces land in LPS world space like the slices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer

from radlabel.core.segmentation.model import Segmentation
from radlabel.ui.vtk_image import image_from_array, vtk_matrix

try:  # VTK >= 9.3
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D
except ImportError:  # pragma: no cover - older VTK
    vtkSurfaceNets3D = None  # noqa: N816


def direction_matrix(origin: Any, direction: Any) -> NDArray[np.float64]:
    """4x4 map from the unrotated frame (origin + spacing * index) to LPS world."""
    d = np.asarray(direction, float)
    o = np.asarray(origin, float)
    matrix = np.eye(4)
    matrix[:3, :3] = d
    matrix[:3, 3] = o - d @ o
    return matrix


def mesh_mask(mask: NDArray[np.bool_], origin: Any, spacing: Any) -> Any:
    """A smoothed surface (vtkPolyData with normals) of a boolean [k, j, i] mask, in the unrotated frame."""
    nonzero = np.nonzero(mask)
    if nonzero[0].size == 0:
        return None
    lo = [max(int(a.min()) - 1, 0) for a in nonzero]
    hi = [min(int(a.max()) + 2, n) for a, n in zip(nonzero, mask.shape, strict=True)]
    crop = np.zeros(tuple(h - low + 2 for low, h in zip(lo, hi, strict=True)), np.uint8)
    crop[1:-1, 1:-1, 1:-1] = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    spacing = np.asarray(spacing, float)
    # crop index 0 is voxel lo - 1 (one padding voxel on each side keeps the surface closed)
    start = np.asarray(origin, float) + spacing * (np.array([lo[2], lo[1], lo[0]], float) - 1.0)
    image = image_from_array(crop, start, spacing, name="mask")
    if vtkSurfaceNets3D is not None:
        nets = vtkSurfaceNets3D()
        nets.SetInputData(image)
        nets.SetValue(0, 1.0)
        nets.SetOutputMeshTypeToTriangles()
        nets.SmoothingOn()
        nets.SetNumberOfIterations(25)
        nets.Update()
        surface = nets.GetOutput()
    else:  # pragma: no cover - older VTK
        from vtkmodules.vtkFiltersCore import vtkWindowedSincPolyDataFilter
        from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

        cubes = vtkDiscreteFlyingEdges3D()
        cubes.SetInputData(image)
        cubes.SetValue(0, 1.0)
        smooth = vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(cubes.GetOutputPort())
        smooth.SetNumberOfIterations(20)
        smooth.SetPassBand(0.05)
        smooth.NormalizeCoordinatesOn()
        smooth.Update()
        surface = smooth.GetOutput()
    normals = vtkPolyDataNormals()
    normals.SetInputData(surface)
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.Update()
    return normals.GetOutput()


def compute_meshes(segmentation: Segmentation | None) -> dict[int, Any]:
    """Smoothed surface (vtkPolyData or None) of every segment; no rendering, so it may run off the GUI thread."""
    if segmentation is None:
        return {}
    grid = segmentation.grid
    return {
        segment.id: mesh_mask(segmentation.mask(segment.id), grid.origin, grid.spacing)
        for segment in list(segmentation.segments.values())
    }


class SegmentSurfaces:
    """One actor per segment; rebuilt when the segmentation changes, shown/hidden with the display settings."""

    def __init__(self, renderer: vtkRenderer) -> None:
        self._renderer = renderer
        self.actors: dict[int, vtkActor] = {}
        self._matrix = vtkMatrix4x4()

    def rebuild(self, segmentation: Segmentation | None) -> None:
        self.show_meshes(segmentation, compute_meshes(segmentation))

    def show_meshes(self, segmentation: Segmentation | None, meshes: dict[int, Any]) -> None:
        """Replace the actors by ``meshes`` (from `compute_meshes`, which may run on another thread)."""
        for actor in self.actors.values():
            self._renderer.RemoveViewProp(actor)
        self.actors = {}
        if segmentation is None:
            return
        grid = segmentation.grid
        vtk_matrix(direction_matrix(grid.origin, grid.direction), self._matrix)
        for segment in segmentation.segments.values():
            surface = meshes.get(segment.id)
            if surface is None or surface.GetNumberOfPoints() == 0:
                continue
            mapper = vtkPolyDataMapper()
            mapper.SetInputData(surface)
            mapper.ScalarVisibilityOff()
            actor = vtkActor()
            actor.SetMapper(mapper)
            actor.SetUserMatrix(self._matrix)
            prop = actor.GetProperty()
            prop.SetColor(*(c / 255 for c in segment.color))
            prop.SetSpecular(0.3)
            prop.SetSpecularPower(20)
            self.actors[segment.id] = actor
            self._renderer.AddViewProp(actor)

    def set_visibility(self, show: bool, hidden: set[int]) -> None:
        for segment_id, actor in self.actors.items():
            actor.SetVisibility(show and segment_id not in hidden)
