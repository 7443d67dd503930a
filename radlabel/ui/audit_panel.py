"""Audit panel: the case's hash-chained history (`Session.audit`) as a table, and a Verify button.

Each row is one record: time, user, action, segment, voxels (+added / −removed) and the model that made a
proposal. Verify recomputes the chain (`AuditLog.verify`) and says OK or names the first bad record.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from radlabel.ui.case_controller import CaseController

COLUMNS = ("Time (UTC)", "User", "Action", "Segment", "Voxels", "Model")
REFRESH_DELAY_MS = 250


def record_row(record: Any, names: dict[int, str]) -> tuple[str, ...]:
    """The table cells of one audit record."""
    payload = record.payload
    action = record.action
    label = payload.get("label")
    if label and action in ("edit", "undo", "redo"):
        action = f"{action}: {label}"
    details = payload.get("details") or {}
    segment_id = payload.get("segment_id", details.get("target_segment_id"))
    segment = names.get(segment_id, str(segment_id)) if segment_id is not None else ""
    added, removed = int(payload.get("voxels_added", 0) or 0), int(payload.get("voxels_removed", 0) or 0)
    voxels = " ".join(part for part in (f"+{added:,}" if added else "", f"−{removed:,}" if removed else "") if part)
    model = (payload.get("parameters") or {}).get("model") or details.get("model") or payload.get("model")
    model_text = f"{model.get('name', '')} {model.get('version', '')}".strip() if isinstance(model, dict) else ""
    if action == "export":
        segment = payload.get("format", "")
    return (record.time_utc[:19].replace("T", " "), record.user, action, segment, voxels, model_text)


class AuditPanel(QWidget):
    def __init__(self, controller: CaseController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table)
        row = QHBoxLayout()
        self.verify_button = QPushButton("Verify", self)
        self.verify_button.clicked.connect(self.verify)
        self.result = QLabel("", self)
        self.result.setWordWrap(True)
        row.addWidget(self.verify_button)
        row.addWidget(self.result, 1)
        layout.addLayout(row)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        controller.event.connect(lambda _event: self._timer.start())
        controller.session_changed.connect(self.refresh)

    def refresh(self) -> None:
        """Re-read the records (newest last, scrolled into view)."""
        session = self.controller.session
        records = list(session.audit.records()) if session is not None else []
        names = {s.id: s.name for s in session.segmentation.segments.values()} if session is not None else {}
        self.table.setRowCount(len(records))
        for n, record in enumerate(records):
            for column, text in enumerate(record_row(record, names)):
                self.table.setItem(n, column, QTableWidgetItem(text))
        if records:
            self.table.scrollToBottom()
        self.result.setText("")

    def verify(self) -> Any:
        session = self.controller.session
        if session is None:
            self.result.setText("No case is open.")
            return None
        result = session.audit.verify()
        if result.ok:
            self.result.setText(f"OK — {result.count} records, head {result.head_hash[:12]}")
        else:
            problem = result.problems[0] if result.problems else "the chain is broken"
            self.result.setText(f"FAILED at record {result.first_bad_seq}: {problem}")
        return result
