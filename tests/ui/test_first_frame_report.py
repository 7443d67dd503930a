"""`$RADLABEL_FIRST_FRAME_FILE`: the window reports when the opened case is first on screen in every view
(benchmarks/installers.py times installed applications with it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def test_demo_window_writes_its_first_frame_time(xvfb_display: str, tmp_path: Path) -> None:
    report = tmp_path / "frame"
    env = {
        **os.environ,
        "DISPLAY": xvfb_display,
        "QT_QPA_PLATFORM": "xcb",
        "RADLABEL_FIRST_FRAME_FILE": str(report),
        "RADLABEL_CASES_DIR": str(tmp_path / "cases"),
    }
    started = time.time()
    process = subprocess.Popen([sys.executable, "-m", "radlabel.cli", "--demo"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = started + 120
        while not (report.exists() and report.read_text().strip()) and time.time() < deadline:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            time.sleep(0.05)
        reported = float(report.read_text().split()[0])
    finally:
        process.kill()
        process.wait()
    assert started < reported < time.time()
