"""SimpleITK is a test/development dependency only: the application never imports it (bundle size, see
pyproject.toml). The I/O, label-map and editing modules that used it are checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "radlabel.core.io.loader",
    "radlabel.core.io.itk_image",
    "radlabel.core.io.writers",
    "radlabel.core.segmentation.labelmap_io",
    "radlabel.core.edit.grow",
    "radlabel.core.geometry",
    "radlabel.app.session",
    "radlabel.cli",
]


def test_run_time_modules_do_not_import_simpleitk() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'SimpleITK' not in sys.modules, sorted(m for m in sys.modules if 'itk' in m.lower())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
