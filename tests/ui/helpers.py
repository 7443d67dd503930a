"""Shared helpers of the window tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

LOAD_TIMEOUT_MS = 60_000


def wait_for_case(qtbot: Any, window: Any, timeout: int = LOAD_TIMEOUT_MS, known_messages: int = 0) -> None:
    """Wait until a volume is on show and its case is open (no job running); fail on a new error message."""

    def finished() -> bool:
        return len(window.messages) > known_messages or (window.state.volume is not None and not window.busy)

    qtbot.waitUntil(finished, timeout=timeout)
    assert len(window.messages) == known_messages, window.messages
    window.render_all()


def open_and_wait(qtbot: Any, window: Any, path: Path, **kwargs: Any) -> None:
    known = len(window.messages)
    window.open_path(path, **kwargs)
    wait_for_case(qtbot, window, known_messages=known)


def open_demo(qtbot: Any, window: Any) -> None:
    known = len(window.messages)
    window.open_demo()
    wait_for_case(qtbot, window, known_messages=known)


def widget_point(view: Any, display_xy: tuple[float, float]) -> QPoint:
    """The Qt widget position of VTK display coordinates (pixel centres at +0.5, y up)."""
    canvas = view.canvas
    ratio = canvas.devicePixelRatioF()
    x, y = display_xy
    return QPoint(int(np.floor(x / ratio)), int(np.floor(canvas.height() - y / ratio)))


def wheel(view: Any, steps: int, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    canvas = view.canvas
    centre = QPointF(canvas.width() / 2, canvas.height() / 2)
    event = QWheelEvent(
        centre,
        canvas.mapToGlobal(centre),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, event)


def bright_spot(pixels: np.ndarray, fraction: float = 0.5) -> tuple[float, float, float]:
    """Intensity-weighted centre (x, y in display coordinates, pixel centres at +0.5) of the pixels brighter
    than ``fraction`` of the brightest one, and that brightest value."""
    grey = pixels.astype(np.float64).mean(axis=2)
    top = float(grey.max())
    rows, columns = np.nonzero(grey >= fraction * top)
    weights = grey[rows, columns]
    return (
        float(np.average(columns, weights=weights)) + 0.5,
        float(np.average(rows, weights=weights)) + 0.5,
        top,
    )


def activate(qtbot: Any, window: Any) -> None:
    """Make the window the active one, so its keyboard shortcuts work (Xvfb runs no window manager)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        QApplication.setActiveWindow(window)
    window.windowHandle().requestActivate()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
