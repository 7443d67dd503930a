"""Window tests run the real window (Qt xcb + VTK via GLX/Mesa) on a private Xvfb started once per session.

`qapp_args` is overridden so that pytest-qt creates its QApplication only after Xvfb is up and the platform
is set. The server is left running at the end of the session: it ends with the test process (stopping it
while VTK still holds X connections would make Xlib abort the process at exit).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from radlabel.ui.display import start_xvfb, xvfb_available


@pytest.fixture(scope="session")
def xvfb_display() -> str:
    if not xvfb_available():
        if os.environ.get("CI"):
            pytest.fail("Xvfb is missing in CI: the window tests must run there (apt-get install xvfb)")
        pytest.skip("Xvfb is not installed: the window tests need it (apt-get install xvfb)")
    server = start_xvfb()
    os.environ["DISPLAY"] = server.display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return server.display


@pytest.fixture(scope="session")
def qapp_args(xvfb_display: str) -> list[str]:
    return [sys.argv[0]]


@pytest.fixture
def settings(tmp_path: Path, qapp: object) -> object:
    """Settings in a temporary INI file, so tests never touch (or read) the user's recent files."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "radlabel.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot: object, settings: object) -> Iterator[object]:
    from PySide6.QtGui import QGuiApplication

    from radlabel.ui.main_window import MainWindow

    if QGuiApplication.platformName() != "xcb":
        pytest.fail(
            f"the QApplication runs on {QGuiApplication.platformName()!r}, not xcb under Xvfb: it was "
            "created before tests/ui started Xvfb"
        )
    main = MainWindow(settings=settings)  # type: ignore[arg-type]
    qtbot.addWidget(main)  # type: ignore[attr-defined]
    main.resize(1200, 800)
    main.show()
    qtbot.waitExposed(main)  # type: ignore[attr-defined]
    yield main
    for box in (main.message_box, main.recovery_box):
        if box is not None:
            box.close()
    main.close()


@pytest.fixture(autouse=True)
def cases_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cases (session folders) of the images tests open go to a temporary folder, never beside shared data."""
    folder = tmp_path / "cases"
    monkeypatch.setenv("RADLABEL_CASES_DIR", str(folder))
    return folder
