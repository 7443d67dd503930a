"""Mouse tools of the slice views (`SliceView.set_tool`): brush and eraser, click (flood fill), lasso, and the
scratch layers that show a stroke or a prompt while it is being drawn.

A tool gets world points (LPS, on the view's plane) and turns them into voxel indices (k, j, i) of the case's
grid; the edit itself is one call of the core tool (`radlabel.core.edit.brush.stroke`, ...) and one
`Session.edit` through the `CaseController` when the mouse is released, so a stroke is one undo step.
While the mouse moves, the stroke is painted into a scratch layer shown as a preview overlay (cheap: only the
new part of the stroke is computed, and the views reslice one plane).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.edit.request import EditMode, Region
from radlabel.core.errors import RadlabelError
from radlabel.core.segmentation.model import Grid, Segment, Segmentation
from radlabel.core.volume import Volume
from radlabel.ui.case_controller import CaseController
from radlabel.ui.viewer_state import PLANES, Preview, View, ViewerState


def view_axis(volume: Volume | Grid, view: View) -> int:
    """The grid axis (0 = k, 1 = j, 2 = i) closest to the normal of ``view``: the slices a 2D tool works on."""
    direction = np.asarray(volume.direction, float)
    axis_ijk = int(np.argmax(np.abs(direction.T @ PLANES[view].normal)))
    return 2 - axis_ijk


def world_to_kji(volume: Volume, world: Any) -> NDArray[np.float64]:
    """Continuous (k, j, i) index of a world point."""
    ijk: NDArray[np.float64] = volume.world_to_index(np.asarray(world, float).reshape(1, 3))[0]
    return ijk[::-1].copy()


def start_stroke(
    state: ViewerState, controller: CaseController, world: Any
) -> tuple[Volume, NDArray[np.float64]] | bool:
    """What a drawing tool needs on mouse press: the volume and the (k, j, i) point, or the press's result
    (False: no volume, let navigation have it; True: consumed, e.g. no segment to draw into, reported)."""
    volume = state.volume
    if volume is None:
        return False
    try:
        controller.require_segment()
    except RadlabelError as exc:
        controller.error.emit(str(exc))
        return True
    return volume, world_to_kji(volume, world)


def inside(shape: tuple[int, ...], kji: NDArray[np.float64]) -> bool:
    return bool(np.all(kji > -0.5) and np.all(kji < np.array(shape) - 0.5))


class ScratchLayer:
    """A full-grid uint8 layer for previews (stroke in progress, prompts), cleared by the box it was painted in.

    ``colors`` maps label values to RGB; the layer is shown as the preview overlay ``key``.
    """

    def __init__(self, state: ViewerState, key: str, opacity: float = 0.4, outline: bool = False) -> None:
        self.state = state
        self.key = key
        self.opacity = opacity
        self.outline = outline
        self.array: NDArray[np.uint8] | None = None
        self.segmentation: Segmentation | None = None
        self._box: list[list[int]] | None = None  # [low kji, high kji]

    def _ensure(self, colors: dict[int, tuple[int, int, int]]) -> Segmentation:
        volume = self.state.volume
        assert volume is not None
        if self.array is None or self.array.shape != volume.array.shape or self.segmentation is None:
            self.array = np.zeros(volume.array.shape, np.uint8)
            self.segmentation = Segmentation(Grid.of(volume), [self.array], {})
            self._box = None
        segments = {
            value: Segment(id=value, name=f"{self.key} {value}", color=color, label_value=value)
            for value, color in colors.items()
        }
        self.segmentation.segments = segments
        return self.segmentation

    def paint(self, region: Region, value: int, colors: dict[int, tuple[int, int, int]]) -> None:
        """Set ``value`` where ``region`` is true; show the layer."""
        segmentation = self._ensure(colors)
        changed: tuple[slice, slice, slice] | None = None
        if region.mask.size:
            assert self.array is not None
            view = self.array[region.box]
            view[region.mask] = value
            low = list(region.offset)
            high = [o + n for o, n in zip(region.offset, region.mask.shape, strict=True)]
            changed = (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))
            if self._box is None:
                self._box = [low, high]
            else:
                self._box = [
                    [min(a, b) for a, b in zip(self._box[0], low, strict=True)],
                    [max(a, b) for a, b in zip(self._box[1], high, strict=True)],
                ]
        if self.key in self.state.previews:
            # an empty region changed nothing: an empty box (no view redraws)
            self.state.preview_changed(self.key, changed if changed is not None else (slice(0, 0),) * 3)
        else:
            self.state.set_preview(self.key, Preview(segmentation, self.opacity, self.outline))

    def clear(self, hide: bool = True) -> None:
        cleared: tuple[slice, slice, slice] = (slice(0, 0),) * 3
        if self.array is not None and self._box is not None:
            low, high = self._box
            self.array[low[0] : high[0], low[1] : high[1], low[2] : high[2]] = 0
            cleared = (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))
        self._box = None
        if hide:
            self.state.set_preview(self.key, None)
        elif self.key in self.state.previews:
            self.state.preview_changed(self.key, cleared)


@dataclass
class BrushSettings:
    radius_mm: float = 5.0
    sphere: bool = False  # False: a disc on the slice the view shows
    intensity_range: tuple[float, float] | None = None
    erase: bool = False


class BrushTool:
    """Paint (or erase) by dragging in a slice view; one session edit per stroke."""

    name = "brush"

    def __init__(
        self,
        state: ViewerState,
        controller: CaseController,
        settings: Callable[[], BrushSettings],
    ) -> None:
        self.state = state
        self.controller = controller
        self.settings = settings
        self.scratch = ScratchLayer(state, "stroke", opacity=0.6)
        self.points: list[NDArray[np.float64]] = []
        self.axis: int | None = None
        self._current: BrushSettings | None = None
        self.last_diff: Any = None

    def _stroke(self, points: list[NDArray[np.float64]]) -> Region:
        from radlabel.core.edit import brush

        volume = self.state.volume
        assert volume is not None and self._current is not None
        return brush.stroke(
            volume,
            [tuple(float(v) for v in p) for p in points],
            self._current.radius_mm,
            axis=self.axis,
            intensity_range=self._current.intensity_range,
        )

    def _colors(self) -> dict[int, tuple[int, int, int]]:
        assert self._current is not None
        if self._current.erase:
            return {1: (30, 30, 30)}
        session = self.controller.session
        sid = self.controller.current_segment_id
        if session is not None and sid in session.segmentation.segments:
            return {1: session.segmentation.segments[sid].color}
        return {1: (255, 255, 0)}

    def press(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        started = start_stroke(self.state, self.controller, world)
        if not isinstance(started, tuple):
            return started
        volume, kji = started
        if not inside(volume.array.shape, kji):
            return True
        self._current = self.settings()
        self.axis = None if self._current.sphere else view_axis(volume, view.view)
        self.points = [kji]
        self.scratch.paint(self._stroke([kji]), 1, self._colors())
        return True

    def move(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        volume = self.state.volume
        if volume is None or not self.points:
            return True
        kji = world_to_kji(volume, world)
        if not inside(volume.array.shape, kji):
            return True
        last = self.points[-1]
        self.points.append(kji)
        self.scratch.paint(self._stroke([last, kji]), 1, self._colors())
        return True

    def release(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        if not self.points or self._current is None:
            return True
        points, self.points = self.points, []
        settings = self._current
        try:
            region = self._stroke(points)
            params = {
                "radius_mm": settings.radius_mm,
                "shape": "sphere" if settings.sphere else "disc",
                "axis": self.axis,
                "intensity_range": list(settings.intensity_range) if settings.intensity_range else None,
                "points_kji": [[round(float(v), 2) for v in p] for p in points],
            }
            mode = EditMode.REMOVE if settings.erase else EditMode.ADD
            self.last_diff = self.controller.try_call(
                self.controller.edit, "erase" if settings.erase else "paint", params, region, mode
            )
        finally:
            self.scratch.clear()
        return True


class ClickTool:
    """A click on a slice calls ``on_click(view, kji)`` (flood fill); dragging still navigates."""

    def __init__(self, state: ViewerState, on_click: Callable[[Any, NDArray[np.float64]], None]) -> None:
        self.state = state
        self.on_click = on_click

    def press(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        volume = self.state.volume
        if volume is None:
            return False
        kji = world_to_kji(volume, world)
        if inside(volume.array.shape, kji):
            self.on_click(view, kji)
        return True

    def move(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        return True

    def release(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        return True


class LassoTool:
    """Draw a closed outline by dragging; on release the polygon is filled on that slice (`polygon_fill`)."""

    def __init__(
        self, state: ViewerState, controller: CaseController, erase: Callable[[], bool] = lambda: False
    ) -> None:
        self.state = state
        self.controller = controller
        self.erase = erase
        self.scratch = ScratchLayer(state, "lasso", opacity=0.3, outline=True)
        self.points: list[NDArray[np.float64]] = []
        self.axis = 0
        self.index = 0

    def _region(self) -> Region:
        from radlabel.core.edit.polygon import polygon_fill

        volume = self.state.volume
        assert volume is not None
        others = [a for a in range(3) if a != self.axis]
        rows_cols = [(float(p[others[0]]), float(p[others[1]])) for p in self.points]
        return polygon_fill(volume, self.axis, self.index, rows_cols)

    def press(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        started = start_stroke(self.state, self.controller, world)
        if not isinstance(started, tuple):
            return started
        volume, kji = started
        self.axis = view_axis(volume, view.view)
        self.index = int(np.clip(np.rint(kji[self.axis]), 0, volume.array.shape[self.axis] - 1))
        self.points = [kji]
        return True

    def move(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        volume = self.state.volume
        if volume is None or not self.points:
            return True
        self.points.append(world_to_kji(volume, world))
        if len(self.points) >= 3:
            self.scratch.clear(hide=False)
            self.scratch.paint(self._region(), 1, {1: (255, 255, 255)})
        return True

    def release(self, view: Any, world: NDArray[np.float64], event: Any) -> bool:
        points, self.scratch_points = self.points, None
        try:
            if len(points) >= 3:
                region = self._region()
                erase = self.erase()
                params = {"axis": self.axis, "index": self.index, "points": len(points), "erase": erase}
                self.controller.try_call(
                    self.controller.edit,
                    "lasso",
                    params,
                    region,
                    EditMode.REMOVE if erase else EditMode.ADD,
                )
        finally:
            self.points = []
            self.scratch.clear()
        return True
