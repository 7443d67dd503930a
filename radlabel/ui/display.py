"""A display for screenshots and tests: use $DISPLAY, else start a private Xvfb, else Qt's offscreen platform.

Qt-free (subprocess only), so the test fixtures and `radlabel open --screenshot` share one implementation.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

#: Set to ``x11``, ``xvfb`` or ``offscreen`` to force how ``--screenshot`` renders (default: the first that works).
BACKEND_VARIABLE = "RADLABEL_SCREENSHOT_BACKEND"


@dataclass
class Xvfb:
    """A private X server. It ends when the process that started it ends (Linux parent-death signal), after
    every X client of that process (Qt, VTK's own connections) has closed; ``stop()`` ends it sooner."""

    display: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def xvfb_available() -> bool:
    return sys.platform.startswith("linux") and shutil.which("Xvfb") is not None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_xvfb(screen: str = "1920x1200x24", timeout: float = 15.0) -> Xvfb:
    """Start Xvfb on a free display number (chosen by the server itself with ``-displayfd``).

    Stopping it while the process still holds X connections makes Xlib abort the process at exit ("XIO:
    fatal IO error"), so callers normally leave it running: it ends with their process.
    """
    binary = shutil.which("Xvfb")
    if binary is None:
        raise RuntimeError("Xvfb is not installed (Debian/Ubuntu: apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    command = [binary, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"]
    process = subprocess.Popen(
        command, pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent
    )
    os.close(write_fd)
    # Xvfb writes the number and then a newline in a second write: read up to the newline, or closing
    # the pipe early makes that second write fail and the server quit.
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while not received.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([read_fd], [], [], max(remaining, 0.0))
            chunk = os.read(read_fd, 64) if ready else b""
            if not chunk:
                break
            received += chunk
    finally:
        os.close(read_fd)
    number = received.decode().strip() if received.endswith(b"\n") else ""
    if not number:
        process.kill()
        raise RuntimeError(f"Xvfb did not start within {timeout:.0f} s")
    return Xvfb(f":{number}", process)


def screenshot_backend() -> str:
    """``x11`` when a display is there, else ``xvfb`` when Xvfb is installed, else ``offscreen`` (EGL)."""
    forced = os.environ.get(BACKEND_VARIABLE, "").strip().lower()
    if forced in ("x11", "xvfb", "offscreen"):
        return forced
    if os.environ.get("DISPLAY") or not sys.platform.startswith("linux"):
        return "x11"
    if xvfb_available():
        return "xvfb"
    return "offscreen"


def has_display() -> bool:
    """Whether a window can be shown (always on Windows/macOS; on Linux when X11 or Wayland is there)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(
        os.environ.get("DISPLAY")
        or os.environ.get("WAYLAND_DISPLAY")
        or os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal", "vnc", "eglfs", "linuxfb"))
    )
