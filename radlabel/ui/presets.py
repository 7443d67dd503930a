"""Window/level presets: the CT windows radiologists use, and an automatic window for MR and other data.

Qt-free: the main window builds its menu from :data:`PRESETS`, tests call :func:`window_level_for` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.volume import Volume

AUTO = "Auto (1–99 %)"
"""Window from the 1st to the 99th percentile of the voxel values (the default for MR and non-CT data)."""


@dataclass(frozen=True)
class WindowPreset:
    name: str
    window: float
    level: float
    shortcut: str


CT_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("CT brain", 80.0, 40.0, "1"),
    WindowPreset("Soft tissue", 400.0, 40.0, "2"),
    WindowPreset("Lung", 1500.0, -600.0, "3"),
    WindowPreset("Bone", 1800.0, 400.0, "4"),
    WindowPreset("Liver", 160.0, 60.0, "5"),
)
AUTO_SHORTCUT = "6"
PRESET_NAMES: tuple[str, ...] = (*(p.name for p in CT_PRESETS), AUTO)

#: At most this many voxels are looked at for the automatic window (a strided sample): fast on any volume.
_AUTO_SAMPLE = 1_000_000


def auto_window_level(array: NDArray[Any]) -> tuple[float, float]:
    """(window, level) spanning the 1st..99th percentile of ``array`` (a strided sample of large volumes)."""
    step = max(1, int(np.ceil((array.size / _AUTO_SAMPLE) ** (1 / 3))))
    sample = np.asarray(array[::step, ::step, ::step] if array.ndim == 3 else array, dtype=np.float32).ravel()
    # Background padding (zeros around an MR, air outside a field of view) would pull the window down.
    lowest = sample.min()
    if np.mean(sample == lowest) > 0.1 and np.any(sample > lowest):
        sample = sample[sample > lowest]
    low, high = (float(v) for v in np.percentile(sample, [1.0, 99.0]))
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    window = max(high - low, 1.0)
    return window, (low + high) / 2.0


def window_level_for(name: str, volume: Volume) -> tuple[float, float]:
    """(window, level) of the preset called ``name`` on ``volume``."""
    if name == AUTO:
        return auto_window_level(volume.array)
    for preset in CT_PRESETS:
        if preset.name == name:
            return preset.window, preset.level
    raise KeyError(f"unknown window/level preset {name!r}; known: {', '.join(PRESET_NAMES)}")


def default_preset(volume: Volume) -> str:
    """Soft tissue for CT (values in HU), the automatic window for everything else."""
    return CT_PRESETS[1].name if str(volume.metadata.get("modality", "")).upper() == "CT" else AUTO
