"""Choose one series when a file, folder or zip holds several: a table with a thumbnail of each series' middle
slice, its description, modality, size, spacing and orientation.

Thumbnails are made off the GUI thread, one series at a time, so the list is usable at once. Small series are
read whole (and kept, so opening one of them costs nothing more); for large DICOM series only the middle
file by name is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from radlabel.core.io.series import LoadedSeries, ScanResult, SeriesEntry
from radlabel.ui.loader_thread import BackgroundJob

THUMBNAIL_SIZE = 72
#: Series with at most this many voxels are read whole for their thumbnail (and kept for opening).
READ_WHOLE_VOXELS = 16_000_000


def to_uint8(plane: NDArray[Any]) -> NDArray[np.uint8]:
    """A 2D array windowed from its 1st to 99th percentile, as 8-bit grey."""
    values = np.asarray(plane, dtype=np.float32)
    low, high = np.percentile(values, [1.0, 99.0])
    if high <= low:
        low, high = float(values.min()), float(values.max()) + 1.0
    scaled = np.clip((values - low) / (high - low) * 255.0, 0, 255)
    return np.ascontiguousarray(scaled.astype(np.uint8))


def middle_slice(entry: SeriesEntry, progress: Callable[[float, str], bool]) -> tuple[Any, LoadedSeries | None]:
    """(8-bit middle slice [rows, columns] with its (column, row) spacing, loaded series or None)."""
    info = entry.info
    i, j, k = info.size
    if i * j * k * max(info.n_volumes, 1) <= READ_WHOLE_VOXELS:
        loaded = entry.load(progress)
        volume = loaded.volume
        return (to_uint8(volume.array[volume.array.shape[0] // 2]), info.spacing[:2]), loaded
    if info.format.upper() == "DICOM" and info.files and "!" not in info.files[len(info.files) // 2]:
        import pydicom

        dataset = pydicom.dcmread(info.files[len(info.files) // 2])
        pixels = np.asarray(dataset.pixel_array)
        if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4):
            pixels = pixels[pixels.shape[0] // 2]
        if pixels.ndim == 3:
            pixels = pixels.mean(axis=-1)
        return (to_uint8(pixels), info.spacing[:2]), None
    return None, None


def thumbnail_pixmap(plane: NDArray[np.uint8], spacing: tuple[float, float], size: int = THUMBNAIL_SIZE) -> QPixmap:
    rows, columns = plane.shape
    image = QImage(plane.data, columns, rows, columns, QImage.Format.Format_Grayscale8).copy()
    width_mm, height_mm = columns * float(spacing[0]), rows * float(spacing[1])
    scale = size / max(width_mm, height_mm)
    target = QSize(max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    return QPixmap.fromImage(
        image.scaled(target, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
    )


class SeriesBrowser(QDialog):
    """Pick one of the series of a scan. ``selected_entry()`` after ``accepted``."""

    COLUMNS = ("Preview", "Description", "Modality", "Size", "Spacing (mm)", "Orientation", "Volumes", "Files")

    def __init__(self, result: ScanResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = result
        self.loaded: dict[str, LoadedSeries] = {}
        self.thumbnails_done = 0
        self.setWindowTitle("Choose a series")
        self.resize(820, 420)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{result.path} holds {len(result.series)} series. Choose the one to open:"))
        table = QTableWidget(len(result.series), len(self.COLUMNS), self)
        table.setHorizontalHeaderLabels(list(self.COLUMNS))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIZE + 8)
        table.verticalHeader().hide()
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.setColumnWidth(0, THUMBNAIL_SIZE + 16)
        for row, entry in enumerate(result.series):
            info = entry.info
            cells = (
                "",
                info.description or "(no description)",
                info.modality or "?",
                " × ".join(str(n) for n in info.size),
                " × ".join(f"{s:.3g}" for s in info.spacing),
                info.orientation,
                str(info.n_volumes),
                str(len(info.files)),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{info.uid}\n" + "\n".join(info.warnings))
                table.setItem(row, column, item)
        table.selectRow(0)
        table.doubleClicked.connect(lambda _index: self.accept())
        layout.addWidget(table)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._jobs: list[BackgroundJob] = []
        self._next = 0
        self._closed = False
        self._start_next_thumbnail()

    def rows(self) -> list[dict[str, str]]:
        """The table as text (for tests and accessibility)."""
        return [
            {
                name: self.table.item(row, column).text()
                for column, name in enumerate(self.COLUMNS)
                if self.table.item(row, column) is not None
            }
            for row in range(self.table.rowCount())
        ]

    def select(self, row: int) -> None:
        self.table.selectRow(row)

    def selected_entry(self) -> SeriesEntry:
        rows = self.table.selectionModel().selectedRows()
        return self.result.series[rows[0].row() if rows else 0]

    def _start_next_thumbnail(self) -> None:
        if self._closed or self._next >= len(self.result.series):
            return
        row = self._next
        self._next += 1
        entry = self.result.series[row]
        job = BackgroundJob(self, "thumbnail", lambda progress: middle_slice(entry, progress), show_dialog=False)
        job.done.connect(lambda result, row=row: self._on_thumbnail(row, result))
        job.failed.connect(lambda _message: self._on_thumbnail(row, (None, None)))
        job.cancelled.connect(lambda: None)
        self._jobs.append(job)
        job.start()

    def _on_thumbnail(self, row: int, result: tuple[Any, LoadedSeries | None]) -> None:
        picture, loaded = result
        if picture is not None:
            plane, spacing = picture
            self.table.item(row, 0).setIcon(QIcon(thumbnail_pixmap(plane, spacing)))
        if loaded is not None:
            self.loaded[self.result.series[row].info.uid] = loaded
        self.thumbnails_done += 1
        self._start_next_thumbnail()

    def done(self, code: int) -> None:
        """Close; thumbnails still being made are cancelled."""
        self._closed = True
        for job in self._jobs:
            job.cancel()
        super().done(code)
