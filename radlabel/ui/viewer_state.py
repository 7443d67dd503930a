"""What the viewer shows, as plain data the views observe: world cursor, window/level, layout, zoom and pan
per view, segment display settings. No Qt, no VTK: tests (and scripts) drive and check it directly.

Slice views are defined in **world** space (LPS), not in voxel space: the axial view always looks along the
patient's S-I axis whatever the acquisition's orientation, so oblique and tilted volumes are resliced, never
shown in their own index planes. :data:`PLANES` holds each view's screen axes in LPS.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radlabel.core.segmentation.model import Segmentation
from radlabel.core.volume import Volume
from radlabel.ui import presets


class View(enum.StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"
    THREE_D = "3d"


SLICE_VIEWS = (View.AXIAL, View.CORONAL, View.SAGITTAL)


class Layout(enum.StrEnum):
    GRID_2X2 = "2x2"
    ROW_1X3 = "1x3"
    SINGLE_1X1 = "1x1"


class Change(enum.Enum):
    """What changed; listeners get the set of changes of one update."""

    VOLUME = "volume"  # a new volume (and grid)
    VOLUME_DATA = "volume_data"  # voxel values of the same volume
    SEGMENTATION = "segmentation"  # segments or their voxels
    SEGMENT_DISPLAY = "segment_display"  # opacity, fill/outline/surfaces, hidden segments
    CURSOR = "cursor"
    POINTER = "pointer"  # world point under the mouse
    WINDOW = "window"
    LAYOUT = "layout"
    CAMERA = "camera"  # zoom or pan of a view
    PREVIEW = "preview"  # a preview overlay (AI proposal, brush stroke in progress, grow-from-seeds result)


@dataclass(frozen=True)
class Plane:
    """Screen axes of a slice view in LPS world space.

    ``right``/``up`` are the world directions of screen +x/+y; ``slice_axis`` is the positive LPS axis along
    which slice numbers grow (so slice n of an unrotated volume is voxel index n - 1); ``normal`` points
    from the plane towards the viewer.
    """

    right: tuple[float, float, float]
    up: tuple[float, float, float]
    slice_axis: tuple[float, float, float]

    @property
    def normal(self) -> NDArray[np.float64]:
        key = (self.right, self.up)
        normal = _NORMALS.get(key)
        if normal is None:  # computed once per plane: every slice step asks for it several times
            normal = _NORMALS[key] = np.cross(np.asarray(self.right, float), np.asarray(self.up, float))
        return normal.copy()  # callers may change it


_NORMALS: dict[tuple[tuple[float, float, float], tuple[float, float, float]], NDArray[np.float64]] = {}


#: Radiological convention: patient's right on screen left; axial seen from the feet, coronal from the
#: front, sagittal from the patient's left (nose to the screen's left).
PLANES: dict[View, Plane] = {
    View.AXIAL: Plane(right=(1.0, 0.0, 0.0), up=(0.0, -1.0, 0.0), slice_axis=(0.0, 0.0, 1.0)),
    View.CORONAL: Plane(right=(1.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), slice_axis=(0.0, 1.0, 0.0)),
    View.SAGITTAL: Plane(right=(0.0, 1.0, 0.0), up=(0.0, 0.0, 1.0), slice_axis=(1.0, 0.0, 0.0)),
}

#: View colours (Slicer's convention): axial red, coronal green, sagittal yellow.
VIEW_COLORS: dict[View, tuple[float, float, float]] = {
    View.AXIAL: (0.93, 0.33, 0.33),
    View.CORONAL: (0.43, 0.78, 0.38),
    View.SAGITTAL: (0.93, 0.84, 0.33),
    View.THREE_D: (0.55, 0.65, 0.85),
}


def plane_matrix(view: View, cursor: ArrayLike) -> NDArray[np.float64]:
    """4x4 map from plane coordinates (u, v, w) to LPS world for the slice of ``view`` through ``cursor``.

    Columns: right, up, normal (towards the viewer), origin. The origin is the plane point closest to the
    world origin, so ``u = world . right`` and ``v = world . up`` for every point of the plane.
    """
    plane = PLANES[view]
    right, up, normal = np.asarray(plane.right, float), np.asarray(plane.up, float), plane.normal
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = right, up, normal
    matrix[:3, 3] = normal * float(np.dot(normal, np.asarray(cursor, float)))
    return matrix


@dataclass
class Preview:
    """A temporary overlay drawn over the segments: a proposal under review, a brush stroke being drawn.

    ``segmentation`` is on the volume's grid; ``opacity`` is its fill opacity (0: outline only).
    """

    segmentation: Segmentation
    opacity: float = 0.25
    outline: bool = True


@dataclass
class Readout:
    """What the status bar says about one world point."""

    world: NDArray[np.float64]
    ijk: tuple[int, int, int]
    inside: bool
    value: float | None
    unit: str
    segments: list[str] = field(default_factory=list)
    source: str = "cursor"

    def text(self) -> str:
        x, y, z = (float(c) for c in self.world)
        i, j, k = self.ijk
        parts = [f"{self.source.capitalize()}: voxel (i, j, k) = ({i}, {j}, {k})"]
        parts.append(f"LPS (x, y, z) = ({x:.1f}, {y:.1f}, {z:.1f}) mm")
        if not self.inside:
            parts.append("outside the volume")
        elif self.value is not None:
            number = f"{self.value:.0f}" if float(self.value).is_integer() else f"{self.value:.4g}"
            parts.append(f"{number} {self.unit}".rstrip())
        if self.segments:
            parts.append(", ".join(self.segments))
        return "  ·  ".join(parts)


Listener = Callable[[set[Change]], None]
#: Index box [k, j, i] of the voxels a change touched.
Box = tuple[slice, slice, slice]


def box_is_empty(box: Box) -> bool:
    return any(s.stop <= s.start for s in box)


def union_box(a: Box | None, b: Box | None) -> Box | None:
    """The box holding both (``None`` = everywhere, so it wins; an empty box adds nothing)."""
    if a is None or b is None:
        return None
    if box_is_empty(a):
        return b
    if box_is_empty(b):
        return a
    return (
        slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
        slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)),
        slice(min(a[2].start, b[2].start), max(a[2].stop, b[2].stop)),
    )


class ViewerState:
    """The observable viewer state. Mutate it through its methods; listeners get the set of changes."""

    def __init__(self) -> None:
        self.volume: Volume | None = None
        self.segmentation: Segmentation | None = None
        self.title = ""
        self.cursor = np.zeros(3)
        self.pointer: NDArray[np.float64] | None = None
        self.window, self.level = 400.0, 40.0
        self.preset = ""
        self.layout = Layout.GRID_2X2
        self.single_view = View.AXIAL
        self.zoom: dict[View, float] = dict.fromkeys(View, 1.0)
        self.pan: dict[View, tuple[float, float]] = dict.fromkeys(View, (0.0, 0.0))
        self.segment_opacity = 0.4
        self.show_fill = True
        self.show_outline = True
        self.show_surfaces = True
        self.show_crosshair = True
        self.hidden_segments: set[int] = set()
        self.changed_box: Box | None = None
        self.preview_box: Box | None = None
        self.previews: dict[str, Preview] = {}
        self.focus_view: View | None = None
        """The slice view the user works in (last wheel, key or press there): it draws a change in its next
        paint, the other views on an idle tick after it. Not something the views show, so no change is sent."""
        self._listeners: list[Listener] = []
        self._pending: set[Change] | None = None
        self._corners: tuple[Volume, NDArray[np.float64]] | None = None

    # -- observation ---------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(changes)`` after every update; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Collect the changes of several calls into one notification."""
        outer = self._pending is not None
        if not outer:
            self._pending = set()
        try:
            yield
        finally:
            if not outer:
                changes, self._pending = self._pending, None
                if changes:
                    self._notify(changes)

    def _emit(self, *changes: Change) -> None:
        if self._pending is not None:
            self._pending.update(changes)
        else:
            self._notify(set(changes))

    def _notify(self, changes: set[Change]) -> None:
        for listener in list(self._listeners):
            listener(changes)

    def set_focus_view(self, view: View | None) -> None:
        self.focus_view = view

    # -- case ----------------------------------------------------------------------------------------------

    def set_volume(self, volume: Volume, segmentation: Segmentation | None = None, title: str = "") -> None:
        """Show a new volume: cursor to its centre, default window for its modality, views reset."""
        with self.batch():
            self.volume = volume
            self.title = title or str(volume.metadata.get("description", ""))
            self.cursor = self.voxel_world(tuple(n // 2 for n in volume.size))  # a voxel centre
            self.pointer = None
            self.previews = {}
            self.preview_box = None
            self.zoom = dict.fromkeys(View, 1.0)
            self.pan = dict.fromkeys(View, (0.0, 0.0))
            self.apply_preset(presets.default_preset(volume))
            self._emit(Change.VOLUME, Change.CURSOR, Change.CAMERA, Change.POINTER, Change.PREVIEW)
            self.set_segmentation(segmentation)

    def set_segmentation(self, segmentation: Segmentation | None) -> None:
        shape = tuple(segmentation.grid.shape) if segmentation is not None else None
        if shape is not None and self.volume is not None and shape != tuple(self.volume.array.shape):
            raise ValueError("the segmentation is not on the grid of the volume shown")
        self.segmentation = segmentation
        self.hidden_segments = (
            {s.id for s in segmentation.segments.values() if not s.visible} if segmentation is not None else set()
        )
        self.changed_box = None
        self._emit(Change.SEGMENTATION, Change.SEGMENT_DISPLAY)

    def _pending_has(self, change: Change) -> bool:
        return self._pending is not None and change in self._pending

    def segmentation_changed(self, box: Box | None = None) -> None:
        """Segments or their voxels changed: the hook the editing session's events call after every edit.

        ``box`` ([k, j, i] slices) is where voxels changed, so views whose plane misses it neither reslice nor
        render; ``None`` means anywhere (a segment renamed, recoloured, ...). The label layers are shared with
        VTK without copies, so slice views re-read just the plane they show.
        """
        self.changed_box = union_box(self.changed_box, box) if self._pending_has(Change.SEGMENTATION) else box
        self._emit(Change.SEGMENTATION)

    def sync_segment_visibility(self) -> None:
        """Take the hidden segments from the segmentation's own ``visible`` flags (after a session change)."""
        if self.segmentation is not None:
            hidden = {s.id for s in self.segmentation.segments.values() if not s.visible}
            if hidden != self.hidden_segments:
                self.hidden_segments = hidden
                self._emit(Change.SEGMENT_DISPLAY)

    def set_preview(self, key: str, preview: Preview | None) -> None:
        """Show (or with ``None`` remove) the preview overlay ``key`` ("proposal", "stroke", "grow", ...)."""
        if preview is None:
            if self.previews.pop(key, None) is None:
                return
        else:
            self.previews[key] = preview
        self.preview_box = None
        self._emit(Change.PREVIEW)

    def preview_changed(self, key: str, box: Box | None = None) -> None:
        """The voxels of preview ``key`` were changed in place, within ``box`` ([k, j, i]; ``None``: anywhere).

        A brush stroke calls this on every mouse move; views whose plane misses the box are left alone.
        """
        if key in self.previews:
            self.preview_box = union_box(self.preview_box, box) if self._pending_has(Change.PREVIEW) else box
            self._emit(Change.PREVIEW)

    def volume_data_changed(self) -> None:
        """Voxel values of the shown volume were changed in place."""
        self._emit(Change.VOLUME_DATA)

    # -- geometry helpers ----------------------------------------------------------------------------------

    def voxel_world(self, ijk: ArrayLike) -> NDArray[np.float64]:
        assert self.volume is not None
        return self.volume.index_to_world(np.asarray(ijk, float))[0]

    def _centre_corners(self) -> NDArray[np.float64]:
        volume = self.volume
        assert volume is not None
        cached = self._corners
        if cached is None or cached[0] is not volume:  # asked on every slice step by every view
            n = np.array(volume.size, float) - 1
            corners = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
            cached = self._corners = (volume, volume.index_to_world(corners))
        return cached[1]

    def slice_step(self, view: View) -> float:
        """mm between slices of ``view``: the spacing of the volume axis closest to the view's normal."""
        if self.volume is None:
            return 1.0
        axis = np.asarray(PLANES[view].slice_axis, float)
        closest = int(np.argmax(np.abs(self.volume.direction.T @ axis)))
        return float(self.volume.spacing[closest])

    def slice_range(self, view: View) -> tuple[float, float]:
        """Lowest and highest slice position (mm along the slice axis) that meets a voxel centre."""
        axis = np.asarray(PLANES[view].slice_axis, float)
        positions = self._centre_corners() @ axis
        return float(positions.min()), float(positions.max())

    def slice_position(self, view: View) -> float:
        return float(np.dot(self.cursor, PLANES[view].slice_axis))

    def slice_number(self, view: View) -> tuple[int, int]:
        """(n, count) with n counted from 1 along the view's slice axis, as the slice annotation shows it."""
        if self.volume is None:
            return (0, 0)
        low, high = self.slice_range(view)
        step = self.slice_step(view)
        count = int(np.floor((high - low) / step + 0.5)) + 1
        n = int(np.floor((self.slice_position(view) - low) / step + 0.5)) + 1
        return (n, count)

    def nearest_voxel(self, world: ArrayLike) -> tuple[tuple[int, int, int], bool]:
        assert self.volume is not None
        ijk = self.volume.world_to_index(np.asarray(world, float))[0]
        index = np.rint(ijk).astype(int)
        inside = bool(np.all(index >= 0) and np.all(index < np.array(self.volume.size)))
        return (int(index[0]), int(index[1]), int(index[2])), inside

    # -- cursor and slices ---------------------------------------------------------------------------------

    def set_cursor(self, world: ArrayLike) -> None:
        """Move the linked cursor (all slice views pass through it), kept within the volume's box."""
        point = np.asarray(world, float).reshape(3)
        if self.volume is not None:
            corners = self._centre_corners()
            point = np.clip(point, corners.min(axis=0), corners.max(axis=0))
        if not np.array_equal(point, self.cursor):
            self.cursor = point
            self._emit(Change.CURSOR)

    def move_slice(self, view: View, steps: float) -> None:
        """Move the slice of ``view`` by ``steps`` slice spacings along its slice axis."""
        if self.volume is None or view not in PLANES:
            return
        axis = np.asarray(PLANES[view].slice_axis, float)
        low, high = self.slice_range(view)
        position = float(np.clip(self.slice_position(view) + steps * self.slice_step(view), low, high))
        point = self.cursor + axis * (position - self.slice_position(view))
        if not np.array_equal(point, self.cursor):
            self.cursor = point
            self._emit(Change.CURSOR)

    def set_pointer(self, world: ArrayLike | None) -> None:
        self.pointer = None if world is None else np.asarray(world, float).reshape(3)
        self._emit(Change.POINTER)

    def readout(self, world: ArrayLike | None = None) -> Readout | None:
        """Voxel index, LPS position, value and segments at ``world`` (default: pointer, else cursor)."""
        if self.volume is None:
            return None
        source = "cursor"
        if world is None:
            if self.pointer is not None:
                world, source = self.pointer, "mouse"
            else:
                world = self.cursor
        point = np.asarray(world, float).reshape(3)
        ijk, inside = self.nearest_voxel(point)
        value: float | None = None
        names: list[str] = []
        if inside:
            i, j, k = ijk
            value = float(self.volume.array[k, j, i])
            if self.segmentation is not None:
                for segment in self.segmentation.segments.values():
                    if self.segmentation.layers[segment.layer][k, j, i] == segment.label_value:
                        names.append(segment.name)
        unit = "HU" if str(self.volume.metadata.get("modality", "")).upper() == "CT" else ""
        return Readout(point, ijk, inside, value, unit, names, source)

    # -- window / level ------------------------------------------------------------------------------------

    def set_window_level(self, window: float, level: float, preset: str = "") -> None:
        window = max(float(window), 1e-3)
        if (window, float(level), preset) != (self.window, self.level, self.preset):
            self.window, self.level, self.preset = window, float(level), preset
            self._emit(Change.WINDOW)

    def apply_preset(self, name: str) -> None:
        if self.volume is None:
            return
        window, level = presets.window_level_for(name, self.volume)
        self.set_window_level(window, level, name)

    # -- layout and cameras --------------------------------------------------------------------------------

    def set_layout(self, layout: Layout | str, single_view: View | str | None = None) -> None:
        self.layout = Layout(layout)
        if single_view is not None:
            self.single_view = View(single_view)
        self._emit(Change.LAYOUT)

    def visible_views(self) -> list[View]:
        if self.layout is Layout.GRID_2X2:
            return [View.AXIAL, View.THREE_D, View.CORONAL, View.SAGITTAL]
        if self.layout is Layout.ROW_1X3:
            return list(SLICE_VIEWS)
        return [self.single_view]

    def set_zoom(self, view: View, zoom: float) -> None:
        self.zoom[view] = float(np.clip(zoom, 0.05, 80.0))
        self._emit(Change.CAMERA)

    def set_pan(self, view: View, pan: tuple[float, float]) -> None:
        self.pan[view] = (float(pan[0]), float(pan[1]))
        self._emit(Change.CAMERA)

    def reset_cameras(self) -> None:
        self.zoom = dict.fromkeys(View, 1.0)
        self.pan = dict.fromkeys(View, (0.0, 0.0))
        self._emit(Change.CAMERA)

    # -- segment display -----------------------------------------------------------------------------------

    def set_segment_display(self, **settings: Any) -> None:
        """Change ``segment_opacity``, ``show_fill``, ``show_outline``, ``show_surfaces`` or ``show_crosshair``."""
        allowed = {"segment_opacity", "show_fill", "show_outline", "show_surfaces", "show_crosshair"}
        for name, value in settings.items():
            if name not in allowed:
                raise AttributeError(f"not a segment display setting: {name}")
            setattr(self, name, float(value) if name == "segment_opacity" else bool(value))
        self._emit(Change.SEGMENT_DISPLAY)

    def set_segment_visible(self, segment_id: int, visible: bool) -> None:
        if visible:
            self.hidden_segments.discard(segment_id)
        else:
            self.hidden_segments.add(segment_id)
        self._emit(Change.SEGMENT_DISPLAY)

    def jump_to_segment(self, segment_id: int | None = None) -> bool:
        """Move the cursor into a segment (the first non-empty one by default): the voxel of the segment
        nearest to its centroid. Returns False when there is no such voxel."""
        if self.segmentation is None or self.volume is None:
            return False
        ids = [segment_id] if segment_id is not None else list(self.segmentation.segments)
        for sid in ids:
            voxels = np.argwhere(self.segmentation.mask(sid))  # [k, j, i]
            if voxels.size == 0:
                continue
            centroid = voxels.mean(axis=0)
            nearest = voxels[int(np.argmin(((voxels - centroid) ** 2).sum(axis=1)))]
            self.set_cursor(self.voxel_world(nearest[::-1].astype(float)))
            return True
        return False

    def visible_segment_ids(self) -> list[int]:
        if self.segmentation is None:
            return []
        return [sid for sid in self.segmentation.segments if sid not in self.hidden_segments]
