"""Run slow work (scanning, loading, building the demo) off the GUI thread, with a progress dialog and Cancel.

A :class:`BackgroundJob` runs ``work(progress)`` on Qt's global thread pool. ``progress`` is the core's
progress callback: the worker calls it with (fraction, message); it posts them to the GUI and returns False
once the user pressed Cancel, which makes the core raise ``Cancelled``. Results, typed errors and
cancellation come back as signals on the GUI thread. Unexpected exceptions become an error message too (the
traceback goes to stderr): a bad file never takes the window down.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from radlabel.core.errors import Cancelled, RadlabelError

Work = Callable[[Callable[[float, str], bool]], Any]

#: A job that ends sooner than this never shows its progress dialog.
DIALOG_DELAY_MS = 400


class _Signals(QObject):
    progress = Signal(float, str)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()


class _Runnable(QRunnable):
    def __init__(self, work: Work, signals: _Signals, cancel: threading.Event, finished: threading.Event) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._work = work
        self._signals = signals
        self._cancel = cancel
        self._finished = finished

    def _progress(self, fraction: float, message: str) -> bool:
        self._signals.progress.emit(float(fraction), str(message))
        return not self._cancel.is_set()

    def run(self) -> None:
        try:
            result = self._work(self._progress)
        except Cancelled:
            self._signals.cancelled.emit()
        except RadlabelError as exc:
            self._signals.failed.emit(str(exc))
        except Exception as exc:  # an unexpected bug must not kill the window: report it
            traceback.print_exc(file=sys.stderr)
            self._signals.failed.emit(f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            if self._cancel.is_set():
                self._signals.cancelled.emit()
            else:
                self._signals.done.emit(result)
        finally:
            self._finished.set()


class BackgroundJob(QObject):
    """One piece of work on a worker thread. Connect to ``done``/``failed``/``cancelled``, then ``start()``."""

    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    progress = Signal(float, str)

    def __init__(self, parent: QWidget | None, title: str, work: Work, show_dialog: bool = True) -> None:
        super().__init__(parent)
        self.title = title
        self._work = work
        self._cancel = threading.Event()
        self.finished = threading.Event()
        self._signals = _Signals()
        self._signals.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._signals.done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)
        self._signals.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self._signals.cancelled.connect(self._on_cancelled, Qt.ConnectionType.QueuedConnection)
        self.dialog: QProgressDialog | None = None
        if show_dialog:
            dialog = QProgressDialog(title, "Cancel", 0, 1000, parent)
            dialog.setWindowTitle("radlabel")
            dialog.setWindowModality(Qt.WindowModality.WindowModal)
            dialog.setMinimumDuration(DIALOG_DELAY_MS)
            dialog.setAutoClose(False)
            dialog.setAutoReset(False)
            dialog.canceled.connect(self.cancel)
            dialog.setValue(0)
            self.dialog = dialog
        self.running = False

    def start(self) -> None:
        self.running = True
        QThreadPool.globalInstance().start(_Runnable(self._work, self._signals, self._cancel, self.finished))

    def cancel(self) -> None:
        """Ask the worker to stop at its next progress report."""
        self._cancel.set()
        if self.dialog is not None:
            self.dialog.setLabelText(f"{self.title}\nCancelling…")

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.emit(fraction, message)
        dialog = self.dialog
        if dialog is not None and not self._cancel.is_set():
            if message:
                dialog.setLabelText(f"{self.title}\n{message[:80]}")
            # a modal QProgressDialog processes events in setValue: the job may finish in there
            dialog.setValue(round(1000 * min(max(fraction, 0.0), 1.0)))

    def _close_dialog(self) -> None:
        self.running = False
        if self.dialog is not None:
            self.dialog.canceled.disconnect(self.cancel)
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None

    def _on_done(self, result: object) -> None:
        self._close_dialog()
        self.done.emit(result)

    def _on_failed(self, message: str) -> None:
        self._close_dialog()
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._close_dialog()
        self.cancelled.emit()
