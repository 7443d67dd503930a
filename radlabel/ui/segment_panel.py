"""Segment display panel: which segments are shown, fill opacity, fill/outline in slices, 3D surfaces.

Display settings only (they live in the viewer state, not in the segmentation). Adding, renaming, colouring,
locking and deleting segments go through the editing session and come with it (phase 2).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from radlabel.ui.viewer_state import Change, ViewerState


def _swatch(color: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


class SegmentPanel(QWidget):
    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.list = QListWidget(self)
        self.list.itemChanged.connect(self._on_item_changed)
        layout.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(lambda v: self.state.set_segment_display(segment_opacity=v / 100))
        row.addWidget(self.opacity)
        layout.addLayout(row)
        self.fill = QCheckBox("Fill in slices", self)
        self.outline = QCheckBox("Outline in slices", self)
        self.surfaces = QCheckBox("3D surfaces", self)
        for box, name in ((self.fill, "show_fill"), (self.outline, "show_outline"), (self.surfaces, "show_surfaces")):
            box.toggled.connect(lambda checked, name=name: self.state.set_segment_display(**{name: checked}))
            layout.addWidget(box)
        self._updating = False
        self._refresh_list()
        self._refresh_controls()
        self._unsubscribe = state.subscribe(self._on_state)

    def _on_state(self, changes: set[Change]) -> None:
        if Change.SEGMENTATION in changes:
            self._refresh_list()
        if Change.SEGMENT_DISPLAY in changes:
            self._refresh_controls()

    def _refresh_list(self) -> None:
        self._updating = True
        self.list.clear()
        segmentation = self.state.segmentation
        for segment in segmentation.segments.values() if segmentation is not None else []:
            item = QListWidgetItem(_swatch(segment.color), segment.name)
            item.setData(Qt.ItemDataRole.UserRole, segment.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            visible = segment.id not in self.state.hidden_segments
            item.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
            item.setToolTip(f"{segment.category.meaning} / {segment.type.meaning} ({segment.algorithm_type.value})")
            self.list.addItem(item)
        self._updating = False

    def _refresh_controls(self) -> None:
        self._updating = True
        for widget, value in (
            (self.opacity, round(self.state.segment_opacity * 100)),
            (self.fill, self.state.show_fill),
            (self.outline, self.state.show_outline),
            (self.surfaces, self.state.show_surfaces),
        ):
            widget.blockSignals(True)
            if isinstance(widget, QSlider):
                widget.setValue(int(value))
            else:
                widget.setChecked(bool(value))
            widget.blockSignals(False)
        for row in range(self.list.count()):
            item = self.list.item(row)
            visible = item.data(Qt.ItemDataRole.UserRole) not in self.state.hidden_segments
            self.list.blockSignals(True)
            item.setCheckState(Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
            self.list.blockSignals(False)
        self._updating = False

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        segment_id = int(item.data(Qt.ItemDataRole.UserRole))
        self.state.set_segment_visible(segment_id, item.checkState() == Qt.CheckState.Checked)
