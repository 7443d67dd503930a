"""Start the desktop application: `radlabel --demo`, `radlabel open PATH`, and offscreen screenshots.

``run(paths, demo=..., screenshot=OUT.png)`` renders the window without showing it to anyone: under the
current X display, else under a private Xvfb it starts, else on Qt's offscreen platform with EGL rendering.
Nothing here imports torch or MONAI: the window appears in about a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radlabel.core.errors import RadlabelError
from radlabel.ui import display

SCREENSHOT_SIZE = (1280, 800)


def _prepare_platform(screenshot: bool) -> display.Xvfb | None:
    """Choose the Qt platform before the QApplication exists; start Xvfb for a screenshot when needed."""
    if not screenshot:
        if not display.has_display():
            raise RadlabelError(
                "no display to show the window on (DISPLAY is not set)",
                fix="run it on a desktop, under `xvfb-run`, or use --screenshot OUT.png",
            )
        return None
    backend = display.screenshot_backend()
    if backend == "xvfb":
        try:
            xvfb = display.start_xvfb()
        except RuntimeError:
            backend = "offscreen"
        else:
            os.environ["DISPLAY"] = xvfb.display
            os.environ["QT_QPA_PLATFORM"] = "xcb"
            return xvfb
    if backend == "offscreen":
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        os.environ.pop("DISPLAY", None)  # VTK then renders through EGL
    elif sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    return None


def create_application(argv: Sequence[str] | None = None) -> Any:
    """The QApplication (created once), in a dark Fusion style as reading rooms expect."""
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        return app
    app = QApplication(list(argv) if argv is not None else [sys.argv[0]])
    app.setOrganizationName("radlabel")
    app.setApplicationName("radlabel")
    app.setStyle("Fusion")
    palette = QPalette()
    dark, base, text = QColor(45, 47, 52), QColor(30, 31, 35), QColor(225, 225, 225)
    for role, color in (
        (QPalette.ColorRole.Window, dark),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, dark),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, dark),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.ToolTipBase, base),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Highlight, QColor(70, 110, 170)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.PlaceholderText, QColor(140, 140, 140)),
    ):
        palette.setColor(role, color)
    app.setPalette(palette)
    return app


def _load_case(path: str, series: str | None, segment: str | None) -> tuple[Any, Any, str]:
    from radlabel.core.io.loader import choose_series, scan
    from radlabel.ui.cases import load_labelmap

    entry = choose_series(scan(path), series)
    loaded = entry.load()
    segmentation = load_labelmap(segment, loaded.volume)[0] if segment else None
    return loaded.volume, segmentation, entry.info.description or Path(path).name


def run(
    paths: Sequence[str | Path] = (),
    demo: bool = False,
    screenshot: str | Path | None = None,
    layout: str = "2x2",
    segment: str | Path | None = None,
    series: str | None = None,
    size: tuple[int, int] = SCREENSHOT_SIZE,
) -> int:
    """Open the window on ``paths[0]`` or the demo case; with ``screenshot`` save a PNG (window ``size``)
    and exit instead."""
    _prepare_platform(screenshot is not None)  # a private Xvfb, if any, ends with this process
    app = create_application()
    from radlabel.ui.main_window import MainWindow

    window = MainWindow()
    window.set_layout(layout)
    if screenshot is not None:
        return _screenshot(app, window, paths, demo, Path(screenshot), segment, series, size)
    window.show()
    _warm_up_imports()
    if demo:
        window.open_demo()
    elif paths:
        window.open_path(str(paths[0]), series_uid=series, segment=str(segment) if segment else None)
    return int(app.exec())


def _screenshot(
    app: Any,
    window: Any,
    paths: Sequence[str | Path],
    demo: bool,
    out: Path,
    segment: str | Path | None,
    series: str | None,
    size: tuple[int, int],
) -> int:
    from radlabel.ui.cases import demo_case

    if demo:
        volume, segmentation = demo_case()
        title = "radlabel demo phantom"
        if segment:
            from radlabel.ui.cases import load_labelmap

            segmentation = load_labelmap(segment, volume)[0]
    elif paths:
        volume, segmentation, title = _load_case(str(paths[0]), series, str(segment) if segment else None)
    else:
        raise RadlabelError("nothing to show: give a PATH or --demo for the screenshot")
    window.resize(*size)
    window.show()
    window.set_case(volume, segmentation, title=title)
    for _ in range(5):
        app.processEvents()
    _wait_for_surfaces(app, window)
    written = window.save_screenshot(out)
    window.close()
    app.processEvents()
    print(f"wrote {written}")
    return 0


def _wait_for_surfaces(app: Any, window: Any, timeout_s: float = 60.0) -> None:
    """Let the 3D segment surfaces (meshed off the GUI thread) reach the view before a screenshot."""
    import time

    deadline = time.monotonic() + timeout_s
    while window.view_3d.surfaces_pending and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    app.processEvents()


def _warm_up_imports() -> None:
    """Import the readers (pydicom, SciPy) on a background thread while the user looks at the empty window."""
    import threading

    def work() -> None:
        import radlabel.core.demo
        import radlabel.core.io.loader  # noqa: F401

    threading.Thread(target=work, name="radlabel-warm-up", daemon=True).start()
