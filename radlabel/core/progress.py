"""Progress reporting and cancellation for long operations (loading, resampling, export, inference).

A long operation takes an optional ``progress`` callback ``(fraction, message) -> bool | None``. The
operation calls it now and then with ``fraction`` in [0, 1]; when the callback returns ``False`` the
operation stops and raises :class:`radlabel.core.errors.Cancelled`. A GUI wires the callback to a progress
bar and a Cancel button (the callback runs on the worker thread, so it must only post to the GUI).
"""

from __future__ import annotations

from collections.abc import Callable

from radlabel.core.errors import Cancelled

ProgressCallback = Callable[[float, str], "bool | None"]


class Progress:
    """Maps a sub-task's [0, 1] onto a slice of the caller's range and checks for cancellation."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        start: float = 0.0,
        end: float = 1.0,
        what: str = "loading",
    ) -> None:
        self._callback = callback
        self._start = start
        self._end = end
        self.what = what

    def report(self, fraction: float, message: str = "") -> None:
        """Report ``fraction`` of this task done; raise ``Cancelled`` when the callback says stop."""
        if self._callback is None:
            return
        overall = self._start + (self._end - self._start) * min(max(fraction, 0.0), 1.0)
        if self._callback(overall, message) is False:
            raise Cancelled(self.what)

    def sub(self, start: float, end: float) -> Progress:
        """A progress for a sub-task covering ``[start, end]`` of this one."""
        span = self._end - self._start
        return Progress(self._callback, self._start + span * start, self._start + span * end, self.what)

    def report_callback(self) -> ProgressCallback | None:
        """This progress as a plain callback for functions that take one (``None`` when nobody listens)."""
        if self._callback is None:
            return None

        def callback(fraction: float, message: str) -> bool:
            try:
                self.report(fraction, message)
            except Cancelled:
                return False
            return True

        return callback
