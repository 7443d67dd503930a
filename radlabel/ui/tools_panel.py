"""Tools panel: every editing operation with its options, and the masking settings.

Mouse tools (paint, erase, flood fill, lasso) take over the left mouse button in the slice views; the others
act on the selected segment with an Apply button. Every operation is a core tool (`radlabel.core.edit`)
whose region goes through `CaseController.edit` -> `Session.edit` (undoable, journalled, audited).
Grow from seeds paints seeds into two segments (the structure and its surroundings), then Initialize /
Update shows the result as a preview and Apply writes both segments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from radlabel.core.edit.request import Editable, EditMode, MaskingRules, Overwrite, Region
from radlabel.ui.case_controller import CaseController
from radlabel.ui.edit_tools import BrushSettings, BrushTool, ClickTool, LassoTool, ScratchLayer, view_axis
from radlabel.ui.viewer_state import ViewerState

#: (key, label, shortcut) of each tool, in the panel's order.
TOOLS: tuple[tuple[str, str, str], ...] = (
    ("navigate", "Navigate", "N"),
    ("paint", "Paint", "B"),
    ("erase", "Erase", "E"),
    ("lasso", "Lasso", "L"),
    ("flood", "Flood fill", "F"),
    ("threshold", "Threshold", "T"),
    ("grow", "Grow from seeds", "G"),
    ("fill_between", "Fill between slices", ""),
    ("islands", "Islands", ""),
    ("smoothing", "Smoothing", ""),
    ("margin", "Margin", ""),
    ("hollow", "Hollow", ""),
    ("logical", "Logical ops", ""),
)
THRESHOLD_PRESETS = {"Bone": (226.0, 3071.0), "Soft tissue": (-29.0, 150.0), "Lung": (-1024.0, -400.0)}
THRESHOLD_PRESETS["Fat"] = (-190.0, -30.0)


def _spin(low: float, high: float, value: float, step: float = 1.0, decimals: int = 1, suffix: str = "") -> Any:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    return box


class ToolsPanel(QWidget):
    """See the module docstring. ``tool_changed`` carries the mouse tool for the slice views (or None)."""

    tool_changed = Signal(object)

    def __init__(self, state: ViewerState, controller: CaseController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.controller = controller
        self.active = "navigate"
        self.brush = BrushTool(state, controller, self.brush_settings)
        self.flood_tool = ClickTool(state, self._flood_at)
        self.lasso = LassoTool(state, controller, lambda: self.lasso_erase.isChecked())
        self.grow_preview = ScratchLayer(state, "grow", opacity=0.35, outline=True)
        self._grower: Any = None
        self._grow_result: dict[int, tuple[Region, EditMode]] | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        grid = QGridLayout()
        self.buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        group.setExclusive(True)
        for n, (key, label, shortcut) in enumerate(TOOLS):
            button = QToolButton(self)
            button.setText(label)
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setSizePolicy(button.sizePolicy().horizontalPolicy(), button.sizePolicy().verticalPolicy())
            button.setMinimumWidth(60)
            if shortcut:
                button.setToolTip(f"{label} ({shortcut})")
            button.clicked.connect(lambda _checked=False, key=key: self.select(key))
            group.addButton(button)
            grid.addWidget(button, n // 3, n % 3)
            self.buttons[key] = button
        layout.addLayout(grid)
        self.stack = QStackedWidget(self)
        self.pages: dict[str, QWidget] = {}
        for key, _label, _shortcut in TOOLS:
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 4, 0, 4)
            getattr(self, f"_page_{key}")(form)
            self.stack.addWidget(page)
            self.pages[key] = page
        options = QGroupBox("Options", self)
        QVBoxLayout(options).addWidget(self.stack)
        layout.addWidget(options)
        layout.addWidget(self._masking_box())
        layout.addStretch(1)
        self.buttons["navigate"].setChecked(True)
        controller.session_changed.connect(self._on_session_changed)
        controller.event.connect(lambda _event: self._refresh_segment_combos())

    # -- pages ---------------------------------------------------------------------------------------------

    def _page_navigate(self, form: QFormLayout) -> None:
        form.addRow(QLabel("Mouse navigates: click = cursor, drag = window/level."))

    def _brush_options(self, form: QFormLayout, erase: bool) -> None:
        radius = _spin(0.5, 100.0, 5.0, 0.5, 1, " mm")
        sphere = QCheckBox("Sphere (3D) instead of a disc on the slice")
        form.addRow("Radius", radius)
        form.addRow(sphere)
        if erase:
            self.erase_radius, self.erase_sphere = radius, sphere
        else:
            self.paint_radius, self.paint_sphere = radius, sphere
            self.brush_range = QCheckBox("Only intensities in")
            self.brush_low = _spin(-5000, 50000, -100, 10, 0)
            self.brush_high = _spin(-5000, 50000, 300, 10, 0)
            row = QHBoxLayout()
            for widget in (self.brush_range, self.brush_low, self.brush_high):
                row.addWidget(widget)
            form.addRow(row)

    def _page_paint(self, form: QFormLayout) -> None:
        self._brush_options(form, erase=False)

    def _page_erase(self, form: QFormLayout) -> None:
        self._brush_options(form, erase=True)

    def _page_lasso(self, form: QFormLayout) -> None:
        form.addRow(QLabel("Drag a closed outline on a slice; it is filled on release."))
        self.lasso_erase = QCheckBox("Erase inside instead")
        form.addRow(self.lasso_erase)

    def _page_flood(self, form: QFormLayout) -> None:
        self.flood_tolerance = _spin(0, 5000, 60, 5, 0, " ±")
        self.flood_neighbourhood = _spin(0, 20, 0, 0.5, 1, " mm")
        self.flood_3d = QCheckBox("In 3D (else on the clicked slice)")
        form.addRow("Tolerance", self.flood_tolerance)
        form.addRow("Neighbourhood", self.flood_neighbourhood)
        form.addRow(self.flood_3d)
        form.addRow(QLabel("Click a voxel to fill around it."))

    def _page_threshold(self, form: QFormLayout) -> None:
        self.threshold_preset = QComboBox()
        self.threshold_preset.addItems(["Custom", *THRESHOLD_PRESETS])
        self.threshold_preset.currentTextChanged.connect(self._on_threshold_preset)
        self.threshold_low = _spin(-5000, 50000, -29, 10, 0)
        self.threshold_high = _spin(-5000, 50000, 150, 10, 0)
        apply = QPushButton("Apply")
        apply.clicked.connect(self.apply_threshold)
        form.addRow("CT preset", self.threshold_preset)
        form.addRow("Low", self.threshold_low)
        form.addRow("High", self.threshold_high)
        form.addRow(apply)

    def _page_grow(self, form: QFormLayout) -> None:
        self.grow_other = QComboBox()
        self.grow_margin = _spin(0, 100, 10, 1, 0, " mm")
        form.addRow(QLabel("Paint seeds into the selected segment and into\nanother one (e.g. background)."))
        form.addRow("Other segment", self.grow_other)
        form.addRow("Margin", self.grow_margin)
        row = QHBoxLayout()
        self.grow_init = QPushButton("Initialize / Update")
        self.grow_init.clicked.connect(self.grow_update)
        self.grow_apply = QPushButton("Apply")
        self.grow_apply.clicked.connect(self.grow_apply_result)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.grow_cancel)
        for button in (self.grow_init, self.grow_apply, cancel):
            row.addWidget(button)
        form.addRow(row)

    def _page_fill_between(self, form: QFormLayout) -> None:
        self.fill_axis = QComboBox()
        self.fill_axis.addItems(["k (axial)", "j (coronal)", "i (sagittal)"])
        apply = QPushButton("Fill between slices")
        apply.clicked.connect(self.apply_fill_between)
        form.addRow("Slices along", self.fill_axis)
        form.addRow(apply)

    def _page_islands(self, form: QFormLayout) -> None:
        self.islands_mode = QComboBox()
        self.islands_mode.addItems(["Keep largest island", "Remove small islands"])
        self.islands_min = _spin(0, 1e6, 100, 10, 0, " mm³")
        apply = QPushButton("Apply")
        apply.clicked.connect(self.apply_islands)
        form.addRow(self.islands_mode)
        form.addRow("Minimum size", self.islands_min)
        form.addRow(apply)

    def _page_smoothing(self, form: QFormLayout) -> None:
        self.smoothing_method = QComboBox()
        self.smoothing_method.addItems(["Median", "Opening", "Closing", "Gaussian"])
        self.smoothing_size = _spin(0.1, 50, 3, 0.5, 1, " mm")
        apply = QPushButton("Apply")
        apply.clicked.connect(self.apply_smoothing)
        form.addRow("Method", self.smoothing_method)
        form.addRow("Kernel / sigma", self.smoothing_size)
        form.addRow(apply)

    def _page_margin(self, form: QFormLayout) -> None:
        self.margin_mm = _spin(-100, 100, 2, 0.5, 1, " mm")
        apply = QPushButton("Apply")
        apply.clicked.connect(self.apply_margin)
        form.addRow("Grow (+) / shrink (−)", self.margin_mm)
        form.addRow(apply)

    def _page_hollow(self, form: QFormLayout) -> None:
        self.hollow_mm = _spin(0.1, 50, 2, 0.5, 1, " mm")
        self.hollow_side = QComboBox()
        self.hollow_side.addItems(["inside", "outside", "centred"])
        apply = QPushButton("Apply")
        apply.clicked.connect(self.apply_hollow)
        form.addRow("Shell thickness", self.hollow_mm)
        form.addRow("Shell side", self.hollow_side)
        form.addRow(apply)

    def _page_logical(self, form: QFormLayout) -> None:
        self.logical_op = QComboBox()
        self.logical_op.addItems(["copy", "add", "subtract", "intersect", "invert", "clear"])
        self.logical_source = QComboBox()
        apply = QPushButton("Apply to the selected segment")
        apply.clicked.connect(self.apply_logical)
        form.addRow("Operation", self.logical_op)
        form.addRow("Source segment", self.logical_source)
        form.addRow(apply)

    def _masking_box(self) -> QGroupBox:
        box = QGroupBox("Masking", self)
        form = QFormLayout(box)
        self.editable = QComboBox()
        for text, value in (
            ("Everywhere", Editable.EVERYWHERE),
            ("Inside the selected segment", Editable.INSIDE_SEGMENT),
            ("Outside all segments", Editable.OUTSIDE_SEGMENTS),
            ("Outside visible segments", Editable.OUTSIDE_VISIBLE),
        ):
            self.editable.addItem(text, value)
        self.mask_range = QCheckBox("Intensity range")
        self.mask_low = _spin(-5000, 50000, -100, 10, 0)
        self.mask_high = _spin(-5000, 50000, 300, 10, 0)
        self.overwrite = QComboBox()
        for text, value in (
            ("All segments", Overwrite.ALL),
            ("Visible segments", Overwrite.VISIBLE),
            ("None (overlap)", Overwrite.NONE),
        ):
            self.overwrite.addItem(text, value)
        form.addRow("Editable area", self.editable)
        row = QHBoxLayout()
        for widget in (self.mask_range, self.mask_low, self.mask_high):
            row.addWidget(widget)
        form.addRow(row)
        form.addRow("Overwrite", self.overwrite)
        for combo in (self.editable, self.overwrite):
            combo.currentIndexChanged.connect(lambda _n: self._update_rules())
        self.mask_range.toggled.connect(lambda _c: self._update_rules())
        self.mask_low.valueChanged.connect(lambda _v: self._update_rules())
        self.mask_high.valueChanged.connect(lambda _v: self._update_rules())
        return box

    def _update_rules(self) -> None:
        intensity = (self.mask_low.value(), self.mask_high.value()) if self.mask_range.isChecked() else None
        self.controller.set_rules(
            MaskingRules(
                editable=self.editable.currentData(),
                segment_id=None,
                intensity_range=intensity,
                overwrite=self.overwrite.currentData(),
            )
        )

    # -- tool selection ------------------------------------------------------------------------------------

    def select(self, key: str) -> None:
        """Make ``key`` (see `TOOLS`) the active tool: its options show and mouse tools take the left button."""
        self.active = key
        self.buttons[key].setChecked(True)
        self.stack.setCurrentWidget(self.pages[key])
        mouse = {"paint": self.brush, "erase": self.brush, "flood": self.flood_tool, "lasso": self.lasso}.get(key)
        self.tool_changed.emit(mouse)

    def brush_settings(self) -> BrushSettings:
        erase = self.active == "erase"
        if erase:
            return BrushSettings(self.erase_radius.value(), self.erase_sphere.isChecked(), None, True)
        intensity = (self.brush_low.value(), self.brush_high.value()) if self.brush_range.isChecked() else None
        return BrushSettings(self.paint_radius.value(), self.paint_sphere.isChecked(), intensity, False)

    def _on_session_changed(self) -> None:
        self._grower = None
        self._grow_result = None
        self._refresh_segment_combos()

    def _refresh_segment_combos(self) -> None:
        session = self.controller.session
        for combo in (self.grow_other, self.logical_source):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for segment in session.segmentation.segments.values() if session is not None else []:
                combo.addItem(segment.name, segment.id)
            index = combo.findData(current)
            combo.setCurrentIndex(index if index >= 0 else (1 if combo.count() > 1 else 0))
            combo.blockSignals(False)

    # -- operations ----------------------------------------------------------------------------------------

    def _run(self, tool: str, params: dict[str, Any], compute: Callable[[Any, int], Any], mode: EditMode | None) -> Any:
        """Compute a region for the selected segment and apply it; errors become messages."""

        def go() -> Any:
            session = self.controller.require_session()
            sid = self.controller.require_segment()
            result = compute(session, sid)
            region, edit_mode = result if isinstance(result, tuple) else (result, mode)
            return self.controller.edit(tool, params, region, edit_mode, sid)

        return self.controller.try_call(go)

    def _on_threshold_preset(self, name: str) -> None:
        if name in THRESHOLD_PRESETS:
            low, high = THRESHOLD_PRESETS[name]
            self.threshold_low.setValue(low)
            self.threshold_high.setValue(high)

    def apply_threshold(self) -> Any:
        from radlabel.core.edit import threshold

        low, high = self.threshold_low.value(), self.threshold_high.value()
        preset = self.threshold_preset.currentText()
        params = {"low": low, "high": high, "preset": None if preset == "Custom" else preset}
        return self._run("threshold", params, lambda s, _sid: threshold.threshold(s.volume, low, high), threshold.MODE)

    def _flood_at(self, view: Any, kji: Any) -> Any:
        from radlabel.core.edit import flood

        seed = tuple(int(v) for v in np.rint(kji))
        axis = None if self.flood_3d.isChecked() else view_axis(self.state.volume, view.view)  # type: ignore[arg-type]
        tolerance = self.flood_tolerance.value()
        neighbourhood = self.flood_neighbourhood.value()
        params = {"seed_kji": list(seed), "tolerance": tolerance, "axis": axis, "neighbourhood_mm": neighbourhood}
        return self._run(
            "flood-fill",
            params,
            lambda s, _sid: flood.flood_fill(s.volume, seed, tolerance, axis=axis, neighbourhood_mm=neighbourhood),
            flood.MODE,
        )

    def grow_update(self) -> None:
        """Initialize (first time) or update the grow-from-seeds preview from the seeds painted so far."""
        from radlabel.core.edit.grow import GrowFromSeeds, seeds_from_segmentation

        def go() -> None:
            session = self.controller.require_session()
            sid = self.controller.require_segment()
            other = self.grow_other.currentData()
            if other is None or other == sid:
                from radlabel.core.errors import EditError

                raise EditError("choose another segment with seeds (e.g. a background segment)")
            if self._grower is None or self._grower.volume is not session.volume:
                self._grower = GrowFromSeeds(session.volume, margin_mm=self.grow_margin.value())
            self._grower.margin_mm = self.grow_margin.value()
            seeds = seeds_from_segmentation(session.segmentation, [sid, int(other)])
            self._grow_result = self._grower.update(seeds)
            segments = session.segmentation.segments
            colors = {n: segments[s].color for n, s in enumerate(self._grow_result, start=1)}
            self.grow_preview.clear(hide=False)
            for n, (region, _mode) in enumerate(self._grow_result.values(), start=1):
                self.grow_preview.paint(region, n, colors)

        self.controller.try_call(go)

    def grow_apply_result(self) -> None:
        result = self._grow_result
        if result is None:
            self.grow_update()
            result = self._grow_result
        if result is None:
            return
        params = {"margin_mm": self.grow_margin.value(), "segments": [int(s) for s in result]}
        steps = [(region, mode, sid) for sid, (region, mode) in result.items()]
        self.controller.try_call(self.controller.edit_many, "grow-from-seeds", params, steps)
        self.grow_cancel()

    def grow_cancel(self) -> None:
        self._grow_result = None
        self.grow_preview.clear()

    def apply_fill_between(self) -> Any:
        from radlabel.core.edit import interpolate

        axis = self.fill_axis.currentIndex()
        return self._run(
            "fill-between-slices",
            {"axis": axis},
            lambda s, sid: interpolate.fill_between_slices(s.segmentation, sid, axis),
            interpolate.MODE,
        )

    def apply_islands(self) -> Any:
        from radlabel.core.edit import islands

        if self.islands_mode.currentIndex() == 0:
            return self._run(
                "keep-largest-island", {}, lambda s, sid: islands.keep_largest_island(s.segmentation, sid), islands.MODE
            )
        size = self.islands_min.value()
        return self._run(
            "remove-small-islands",
            {"min_volume_mm3": size},
            lambda s, sid: islands.remove_small_islands(s.segmentation, sid, size),
            islands.MODE,
        )

    def apply_smoothing(self) -> Any:
        from radlabel.core.edit import smoothing

        method = self.smoothing_method.currentText().lower()
        size = self.smoothing_size.value()
        function = {
            "median": smoothing.median_smoothing,
            "opening": smoothing.opening,
            "closing": smoothing.closing,
            "gaussian": smoothing.gaussian_smoothing,
        }[method]
        return self._run(
            f"smoothing-{method}", {"size_mm": size}, lambda s, sid: function(s.segmentation, sid, size), smoothing.MODE
        )

    def apply_margin(self) -> Any:
        from radlabel.core.edit import margin

        mm = self.margin_mm.value()
        return self._run(
            "margin", {"margin_mm": mm}, lambda s, sid: margin.margin(s.segmentation, sid, mm), margin.MODE
        )

    def apply_hollow(self) -> Any:
        from radlabel.core.edit import margin

        mm, side = self.hollow_mm.value(), self.hollow_side.currentText()
        return self._run(
            "hollow",
            {"thickness_mm": mm, "side": side},
            lambda s, sid: margin.hollow(s.segmentation, sid, mm, side),
            margin.MODE,
        )

    def apply_logical(self) -> Any:
        from radlabel.core.edit import logical

        op = self.logical_op.currentText()
        source = self.logical_source.currentData()
        return self._run(
            f"logical-{op}",
            {"op": op, "source": source},
            lambda s, sid: logical.logical(s.segmentation, op, sid, source),
            None,
        )
