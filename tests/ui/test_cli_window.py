"""The window from the command line: `radlabel demo|open ... --screenshot`, start-up cost, no Qt in the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6", reason="the window tests need the gui extra")

from radlabel.core.io.writers import save_volume
from radlabel.core.volume import Volume
from radlabel.ui.cases import demo_case


def _run(args: list[str], env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radlabel.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _image(path: Path) -> np.ndarray:
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull()
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, : 3 * width].reshape(height, width, 3)


def test_cli_imports_no_qt() -> None:
    code = "import radlabel.cli, sys; assert 'PySide6' not in sys.modules and 'vtkmodules' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_demo_headless_prints_the_case() -> None:
    result = _run(["demo", "--headless"], dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "lesion" in result.stdout and "CT 192x192x96" in result.stdout


def test_demo_screenshot_with_a_label_map(xvfb_display: str, tmp_path: Path) -> None:
    volume, segmentation = demo_case()
    labels = save_volume(
        Volume(segmentation.layers[0] * 2, volume.origin, volume.spacing, volume.direction), tmp_path / "lesion.nrrd"
    )
    out = tmp_path / "demo.png"
    env = dict(os.environ, DISPLAY=xvfb_display)
    result = _run(["demo", "--screenshot", str(out), "--layout", "1x3", "--segment", str(labels)], env)
    assert result.returncode == 0, result.stderr
    pixels = _image(out)
    assert pixels.shape[:2] == (800, 1280)
    assert pixels.mean() > 20
    # the label map's segment colour (segment 2's default colour) is in the picture
    green = (np.abs(pixels.astype(int) - np.array([60, 180, 75])).sum(axis=-1) < 60).sum()
    assert green > 30


def test_open_screenshot_of_a_real_series(xvfb_display: str, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "mr.png"
    env = dict(os.environ, DISPLAY=xvfb_display)
    source = shared_data / "dcm_qa" / "mr_ge_3d_t1_mprage_oblique" / "In"
    result = _run(["open", str(source), "--screenshot", str(out), "--layout", "1x1"], env)
    assert result.returncode == 0, result.stderr
    assert _image(out).mean() > 10


def test_screenshot_without_any_display_uses_offscreen_rendering(tmp_path: Path) -> None:
    out = tmp_path / "offscreen.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["RADLABEL_SCREENSHOT_BACKEND"] = "offscreen"
    result = _run(["demo", "--screenshot", str(out)], env)
    assert result.returncode == 0, result.stderr
    pixels = _image(out)
    # the four view quadrants hold rendered images, not black placeholders
    height, width = pixels.shape[:2]
    view = pixels[int(height * 0.15) : int(height * 0.45), int(width * 0.05) : int(width * 0.35)]
    assert view.mean() > 15


def test_open_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"garbage" * 100)
    result = _run(["open", str(bad), "--screenshot", str(tmp_path / "x.png")], dict(os.environ))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.dcm" in result.stderr


def test_window_appears_fast_and_without_ai_libraries(xvfb_display: str) -> None:
    script = (
        "import time, sys; t0 = time.perf_counter(); "
        "from radlabel.ui.app import create_application; app = create_application(); "
        "from radlabel.ui.main_window import MainWindow; w = MainWindow(); w.show(); app.processEvents(); "
        "w.render_all(); print(time.perf_counter() - t0); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'segment_anything')]; "
        "assert not heavy, heavy"
    )
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    seconds = float(result.stdout.strip().splitlines()[-1])
    print(f"window shown in {seconds:.2f} s (process {time.perf_counter() - started:.2f} s)")
    assert seconds < 5.0  # about a second on a desktop; generous for loaded CI machines
