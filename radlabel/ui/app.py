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
    if screenshot is None:
        app, _window = start(paths, demo=demo, layout=layout, segment=segment, series=series)
        return int(app.exec())
    if demo:
        from radlabel.ui.cases import prefetch_demo

        prefetch_demo()
    _prepare_platform(True)  # a private Xvfb, if any, ends with this process
    app = create_application()
    from radlabel.ui.main_window import MainWindow

    window = MainWindow()
    window.ask_about_recovery = False  # nothing may wait for a click; recovered steps are kept
    window.set_layout(layout)
    return _screenshot(app, window, paths, demo, Path(screenshot), segment, series, size)


def start(
    paths: Sequence[str | Path] = (),
    demo: bool = False,
    layout: str = "2x2",
    segment: str | Path | None = None,
    series: str | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[Any, Any]:
    """Show the window and start opening ``paths[0]`` or the demo case; returns the QApplication and the
    `MainWindow` before the event loop runs (`run` enters it; `benchmarks/gui.py` times this same path)."""
    if demo:
        from radlabel.ui.cases import prefetch_demo

        prefetch_demo()  # first: the phantom is made while Qt, VTK and the window load
    _prepare_platform(False)
    app = create_application()
    from radlabel.ui.main_window import MainWindow

    window = MainWindow()
    window.set_layout(layout)
    if size is not None:
        window.resize(*size)
    window.show()
    _report_first_frame(window)
    if demo:
        # once the demo's case is attached: before, the imports would slow its first frame and its case folder
        window.controller.session_changed.connect(_warm_up_imports)
        window.open_demo()
    else:
        _warm_up_imports()
        if paths:
            window.open_path(str(paths[0]), series_uid=series, segment=str(segment) if segment else None)
    return app, window


FIRST_FRAME_VARIABLE = "RADLABEL_FIRST_FRAME_FILE"


def _report_first_frame(window: Any) -> None:
    """With ``$RADLABEL_FIRST_FRAME_FILE`` set, write the wall-clock time (``time.time()``) into that file
    once every visible view has presented a frame of the opened image: how `benchmarks/installers.py` times
    the start of an installed application, which it cannot instrument from inside."""
    target = os.environ.get(FIRST_FRAME_VARIABLE)
    if not target:
        return
    import time

    views = list(window.state.visible_views())
    shown: set[Any] = set()

    def rendered(view: Any) -> None:
        if window.state.volume is None or view in shown:
            return  # the empty window's frames do not count
        shown.add(view)
        if len(shown) == len(views):
            Path(target).write_text(f"{time.time():.6f}\n", encoding="utf-8")

    for view in views:
        window.views[view].canvas.render_window.AddObserver("EndEvent", lambda *_a, view=view: rendered(view))


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
    if not wait_for_background(app, window):
        print("warning: the 3D surfaces or the segment statistics were not ready in time", file=sys.stderr)
    written = window.save_screenshot(out)
    window.close()
    app.processEvents()
    print(f"wrote {written}")
    return 0


#: How long a screenshot waits for the work the window does off the GUI thread after the first frame.
BACKGROUND_TIMEOUT_S = 60.0


def wait_for_background(app: Any, window: Any, timeout_s: float = BACKGROUND_TIMEOUT_S) -> bool:
    """Let the work the window starts after a case's first frame reach the screen: the 3D segment surfaces and
    the segment table's statistics (mL, mean, diameter). False when it was still running after ``timeout_s``."""
    import time

    deadline = time.monotonic() + timeout_s
    while window.view_3d.surfaces_pending or window.segment_panel.stats_pending:
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.005)
    app.processEvents()
    return True


_warmed_up = False


def _warm_up_imports() -> None:
    """Import the readers (pydicom, SciPy) on a background thread while the user looks at the window."""
    import threading

    global _warmed_up
    if _warmed_up:
        return
    _warmed_up = True

    def work() -> None:
        import radlabel.core.io.loader
        import radlabel.core.stats  # noqa: F401

    threading.Thread(target=work, name="radlabel-warm-up", daemon=True).start()
