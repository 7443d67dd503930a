"""Segment panel: the segments of the case with their statistics, and what can be done to them.

- Add (name and SNOMED CT code from the terminology list through a searchable picker, or a free name),
  rename, recolour, delete, lock and hide: each a step of the session (undoable, journalled, audited).
- Per-segment statistics (volume mL, mean intensity, longest axial diameter) computed off the GUI thread by
  `radlabel.core.stats.compute_stats`, only for the segments an edit touched, at most every
  ``STATS_DELAY_MS``.
- Display settings (fill opacity, fill / outline in slices, 3D surfaces) live in the viewer state.

The selected segment is the one the tools edit (`CaseController.current_segment_id`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from radlabel.ui.case_controller import CaseController
from radlabel.ui.loader_thread import BackgroundJob
from radlabel.ui.viewer_state import Change, ViewerState

if TYPE_CHECKING:  # the session modules load with the first case, not with the window
    from radlabel.app.session import SessionEvent

STATS_DELAY_MS = 300
#: A new case is measured once its first frame is on screen (`SegmentPanel.measure_now`, called by the
#: window), or after this long at worst: the measuring thread (and its SciPy import) would delay that frame.
NEW_CASE_STATS_FALLBACK_MS = 1000
COLUMNS = ("Segment", "mL", "Mean", "⌀ mm")


def _swatch(color: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


class TerminologyPicker(QDialog):
    """Choose a segment name and its codes from the terminology list (type to filter), or type a free name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from radlabel.core.segmentation.terminology import load_terminology

        self.setWindowTitle("Add segment")
        self.entries = load_terminology()
        layout = QVBoxLayout(self)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search (name, synonym or code) — or type a new name")
        self.search.textChanged.connect(self._filter)
        layout.addWidget(self.search)
        self.list = QListWidget(self)
        for entry in self.entries:
            item = QListWidgetItem(_swatch(entry.color), f"{entry.name}  ({entry.type.scheme} {entry.type.value})")
            item.setData(Qt.ItemDataRole.UserRole, entry.name)
            item.setToolTip(f"{entry.category.meaning} / {entry.type.meaning}")
            self.list.addItem(item)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        layout.addWidget(self.list)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(420, 480)

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        for row, entry in enumerate(self.entries):
            haystack = " ".join([*entry.names, entry.type.value, entry.type.meaning, entry.group]).lower()
            self.list.item(row).setHidden(not all(w in haystack for w in words))

    def chosen_name(self) -> str:
        item = self.list.currentItem()
        if item is not None and not item.isHidden():
            return str(item.data(Qt.ItemDataRole.UserRole))
        return self.search.text().strip()


class SegmentPanel(QWidget):
    def __init__(self, state: ViewerState, controller: CaseController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.controller = controller
        self.stats: dict[int, Any] = {}
        self._stale: set[int] = set()
        self._stats_job: BackgroundJob | None = None
        self._stats_timer = QTimer(self)
        self._stats_timer.setSingleShot(True)
        self._stats_timer.setInterval(STATS_DELAY_MS)
        self._stats_timer.timeout.connect(self._start_stats)
        self.errors: list[str] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.list = QTreeWidget(self)
        self.list.setColumnCount(len(COLUMNS))
        self.list.setHeaderLabels(list(COLUMNS))
        self.list.setRootIsDecorated(False)
        self.list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            self.list.header().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemDoubleClicked.connect(lambda _item, _column: self.choose_rename())
        layout.addWidget(self.list)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add…", self)
        self.add_button.clicked.connect(self.choose_add)
        self.rename_button = QPushButton("Rename…", self)
        self.rename_button.clicked.connect(self.choose_rename)
        self.color_button = QPushButton("Colour…", self)
        self.color_button.clicked.connect(self.choose_color)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.clicked.connect(self.delete_current)
        self.lock_button = QPushButton("Lock", self)
        self.lock_button.setCheckable(True)
        self.lock_button.clicked.connect(lambda checked: self.set_locked(checked))
        for button in (self.add_button, self.rename_button, self.color_button, self.delete_button, self.lock_button):
            button.setMinimumWidth(10)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.details = QLabel("", self)
        self.details.setWordWrap(True)
        layout.addWidget(self.details)

        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(lambda v: self.state.set_segment_display(segment_opacity=v / 100))
        row.addWidget(self.opacity)
        layout.addLayout(row)
        toggles = QHBoxLayout()
        self.fill = QCheckBox("Fill", self)
        self.outline = QCheckBox("Outline", self)
        self.surfaces = QCheckBox("3D surfaces", self)
        for box, name in ((self.fill, "show_fill"), (self.outline, "show_outline"), (self.surfaces, "show_surfaces")):
            box.toggled.connect(lambda checked, name=name: self.state.set_segment_display(**{name: checked}))
            toggles.addWidget(box)
        layout.addLayout(toggles)
        self._updating = False
        self._refresh_list()
        self._refresh_controls()
        self._unsubscribe = state.subscribe(self._on_state)
        controller.event.connect(self._on_session_event)
        controller.session_changed.connect(self._on_session_changed)
        controller.current_changed.connect(lambda _sid: self._select_current())

    # -- state -> widgets ----------------------------------------------------------------------------------

    def _on_state(self, changes: set[Change]) -> None:
        if Change.VOLUME in changes or (
            Change.SEGMENTATION in changes and self.state.segmentation is not self._shown_segmentation
        ):
            self._refresh_list()
            self.stats.clear()
            self._mark_stale(None, NEW_CASE_STATS_FALLBACK_MS)
        if Change.SEGMENT_DISPLAY in changes:
            self._refresh_controls()

    def _on_session_changed(self) -> None:
        self._refresh_list()

    def _on_session_event(self, event: SessionEvent) -> None:
        from radlabel.app.session import EventKind

        if event.kind in (EventKind.SAVED, EventKind.REVIEW):
            return
        self._refresh_list()
        diff = event.diff
        if event.kind in (EventKind.EDIT, EventKind.UNDO, EventKind.REDO, EventKind.SEGMENT_ADDED) and diff:
            if diff.segment_id is not None and event.box is not None:
                self._mark_stale({diff.segment_id})
            elif event.box is not None:
                self._mark_stale(None)
            elif event.kind is EventKind.SEGMENT_ADDED and diff.segment_id is not None:
                self._mark_stale({diff.segment_id})

    def _mark_stale(self, ids: set[int] | None, delay_ms: int = STATS_DELAY_MS) -> None:
        segmentation = self.state.segmentation
        if segmentation is None:
            return
        self._stale |= set(segmentation.segments) if ids is None else ids
        if self._stale and self._stats_job is None:
            self._stats_timer.start(delay_ms)

    def measure_now(self) -> None:
        """Start measuring what is waiting now (the window calls it once a new case's first frame is on screen)."""
        if self._stats_timer.isActive():
            self._stats_timer.stop()
            self._start_stats()

    @property
    def stats_pending(self) -> bool:
        return bool(self._stale) or self._stats_job is not None or self._stats_timer.isActive()

    def _start_stats(self) -> None:
        segmentation, volume = self.state.segmentation, self.state.volume
        if segmentation is None or volume is None or self._stats_job is not None:
            return
        ids = sorted(s for s in self._stale if s in segmentation.segments)
        self._stale.clear()
        if not ids:
            return

        def work(progress: Any) -> Any:
            from radlabel.core.stats import compute_stats

            return segmentation, compute_stats(segmentation, volume, ids)

        job = BackgroundJob(self, "Measuring segments", work, show_dialog=False)
        job.done.connect(self._on_stats)
        job.failed.connect(self._on_stats_failed)
        job.cancelled.connect(lambda: self._stats_finished())
        self._stats_job = job
        job.start()

    def _on_stats(self, result: Any) -> None:
        segmentation, report = result
        if segmentation is self.state.segmentation:
            for stats in report.segments:
                self.stats[stats.segment_id] = stats
            self._unit = report.units
            self._refresh_stats()
        self._stats_finished()

    def _on_stats_failed(self, message: str) -> None:
        self.errors.append(message)
        self._stats_finished()

    def _stats_finished(self) -> None:
        self._stats_job = None
        if self._stale:
            self._stats_timer.start(STATS_DELAY_MS)

    def _refresh_stats(self) -> None:
        for row in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(row)
            stats = self.stats.get(int(item.data(0, Qt.ItemDataRole.UserRole)))
            texts = ("", "", "")
            if stats is not None:
                texts = (
                    f"{stats.volume_ml:.2f}",
                    f"{stats.mean:.0f}" if stats.mean is not None else "–",
                    f"{stats.longest_axial_diameter_mm:.1f}" if stats.longest_axial_diameter_mm is not None else "–",
                )
            for column, text in enumerate(texts, start=1):
                item.setText(column, text)
        self._show_details()

    def _refresh_list(self) -> None:
        self._updating = True
        self._shown_segmentation = self.state.segmentation
        self.list.clear()
        segmentation = self.state.segmentation
        for segment in segmentation.segments.values() if segmentation is not None else []:
            name = f"{segment.name}  🔒" if segment.locked else segment.name
            item = QTreeWidgetItem([name, "", "", ""])
            item.setIcon(0, _swatch(segment.color))
            item.setData(0, Qt.ItemDataRole.UserRole, segment.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            visible = segment.id not in self.state.hidden_segments
            item.setCheckState(0, Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
            item.setToolTip(
                0,
                f"{segment.category.meaning} / {segment.type.meaning} ({segment.type.scheme} {segment.type.value})"
                f" — {segment.algorithm_type.value}",
            )
            self.list.addTopLevelItem(item)
        self._refresh_stats()
        self._select_current()
        self._updating = False

    def _select_current(self) -> None:
        current = self.controller.current_segment_id
        blocked = self.list.blockSignals(True)
        for row in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(row)
            if item.data(0, Qt.ItemDataRole.UserRole) == current:
                self.list.setCurrentItem(item)
        self.list.blockSignals(blocked)
        segment = self._current_segment()
        self.lock_button.setChecked(bool(segment and segment.locked))
        self._show_details()

    def _show_details(self) -> None:
        segment = self._current_segment()
        if segment is None:
            self.details.setText("No segment: Add… one to start drawing." if self.controller.session else "")
            return
        stats = self.stats.get(segment.id)
        unit = getattr(self, "_unit", "")
        text = f"<b>{segment.name}</b> — {segment.type.meaning} ({segment.type.scheme} {segment.type.value})"
        if stats is not None:
            text += f"<br>{stats.voxel_count:,} voxels, {stats.volume_ml:.2f} mL"
            if stats.mean is not None:
                text += f", mean {stats.mean:.0f} {unit}".rstrip()
            if stats.longest_axial_diameter_mm is not None:
                text += f", longest axial ⌀ {stats.longest_axial_diameter_mm:.1f} mm"
        self.details.setText(text)

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
        blocked = self.list.blockSignals(True)
        for row in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(row)
            visible = item.data(0, Qt.ItemDataRole.UserRole) not in self.state.hidden_segments
            item.setCheckState(0, Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)
        self.list.blockSignals(blocked)
        self._updating = False

    # -- widgets -> session --------------------------------------------------------------------------------

    def _current_segment(self) -> Any:
        segmentation = self.state.segmentation
        sid = self.controller.current_segment_id
        if segmentation is None or sid is None:
            return None
        return segmentation.segments.get(sid)

    def _on_current(self, item: QTreeWidgetItem | None, _previous: Any) -> None:
        if item is not None and not self._updating:
            self.controller.set_current_segment(int(item.data(0, Qt.ItemDataRole.UserRole)))
            segment = self._current_segment()
            self.lock_button.setChecked(bool(segment and segment.locked))
            self._show_details()

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._updating or column != 0:
            return
        segment_id = int(item.data(0, Qt.ItemDataRole.UserRole))
        visible = item.checkState(0) == Qt.CheckState.Checked
        if self.controller.session is not None and segment_id in self.controller.session.segmentation.segments:
            self.set_visible(segment_id, visible)
        else:
            self.state.set_segment_visible(segment_id, visible)

    def add_segment(self, name: str) -> int | None:
        """Add a segment named ``name``; its codes and colour come from the terminology when it knows the name."""
        from radlabel.core.segmentation.terminology import find

        session = self.controller.session
        if session is None or not name:
            return None
        entry = find(name)
        fields: dict[str, Any] = entry.to_segment_fields() if entry is not None else {}
        color = fields.pop("color", None)
        fields.pop("name", None)
        segment = self.controller.try_call(session.add_segment, name, color, **fields)
        if segment is None:
            return None
        self.controller.set_current_segment(segment.id)
        self._select_current()
        return int(segment.id)

    def choose_add(self) -> None:
        if self.controller.session is None:
            return
        picker = TerminologyPicker(self)
        if picker.exec() == QDialog.DialogCode.Accepted:
            self.add_segment(picker.chosen_name())

    def _update(self, segment_id: int | None = None, **fields: Any) -> None:
        session = self.controller.session
        sid = segment_id if segment_id is not None else self.controller.current_segment_id
        if session is None or sid is None:
            return
        self.controller.try_call(session.update_segment, sid, **fields)

    def rename(self, name: str, segment_id: int | None = None) -> None:
        if name:
            self._update(segment_id, name=name)

    def choose_rename(self) -> None:
        segment = self._current_segment()
        if segment is None:
            return
        name, ok = QInputDialog.getText(self, "Rename segment", "Name", text=segment.name)
        if ok:
            self.rename(name.strip())

    def set_color(self, color: tuple[int, int, int], segment_id: int | None = None) -> None:
        self._update(segment_id, color=tuple(int(c) for c in color))

    def choose_color(self) -> None:
        segment = self._current_segment()
        if segment is None:
            return
        color = QColorDialog.getColor(QColor(*segment.color), self, "Segment colour")
        if color.isValid():
            self.set_color((color.red(), color.green(), color.blue()))

    def set_locked(self, locked: bool, segment_id: int | None = None) -> None:
        self._update(segment_id, locked=bool(locked))

    def set_visible(self, segment_id: int, visible: bool) -> None:
        self._update(segment_id, visible=bool(visible))

    def delete_current(self) -> None:
        session = self.controller.session
        sid = self.controller.current_segment_id
        if session is not None and sid is not None:
            self.controller.try_call(session.delete_segment, sid)
            self.stats.pop(sid, None)

    def close_panel(self) -> None:
        self._stats_timer.stop()
        self._unsubscribe()
