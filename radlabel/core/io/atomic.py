"""Atomic file replacement: a failed or cancelled write never leaves half a file where a good one was."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radlabel.core.errors import OutputError


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (POSIX; Windows has no folder handle to sync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], Any], durable: bool = False) -> None:
    """Call ``write(temporary_path)`` beside ``path``, then rename the result over ``path``.

    ``durable`` also fsyncs the file and its folder, so the new content survives a power cut (case files);
    exports skip that cost. Write errors become `OutputError`; the temporary file is always removed.
    """
    if not path.parent.is_dir():
        raise OutputError(f"the folder {path.parent} does not exist", path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        write(temporary)
        if durable:
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
        if durable:
            fsync_folder(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise OutputError(f"writing the file failed ({exc.strerror or exc})", path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
