"""Fixtures for the AI tests: settings isolated from the machine's files, requests on synthetic volumes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radlabel.ai.sdk import InferenceRequest, Prompt
from radlabel.core.errors import Cancelled
from radlabel.core.settings import AISettings, Settings

MISBEHAVING = "tests.ai.misbehaving"
EXTRA_PLUGINS = (
    f"misbehaving={MISBEHAVING}:create",
    f"wrong-hash={MISBEHAVING}:create_wrong_hash",
    f"crash-on-load={MISBEHAVING}:create_crash_on_load",
)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No user or site settings of this machine, no extra plugins from the environment."""
    monkeypatch.setenv("RADLABEL_SETTINGS", str(tmp_path / "no-user-settings.toml"))
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(tmp_path / "no-site-settings.toml"))
    monkeypatch.delenv("RADLABEL_EXTRA_PLUGINS", raising=False)
    yield


def ai_settings(tmp_dir: Path, **ai: Any) -> Settings:
    """Settings with the misbehaving test plugins and a weights file for ``wrong-hash`` in ``tmp_dir``."""
    weights = tmp_dir / "wrong.pth"
    weights.write_bytes(b"not the published weights")
    return Settings(
        ai=AISettings(extra_plugins=EXTRA_PLUGINS, **ai),
        plugins={"wrong-hash": {"checkpoint": str(weights)}},
    )


def make_request(image: np.ndarray, prompts: list[Prompt] | None = None, **options: Any) -> InferenceRequest:
    return InferenceRequest(
        image=image,
        origin=(0.0, 0.0, 0.0),
        spacing=(1.0, 1.0, 2.5),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        modality="CT",
        prompts=list(prompts or []),
        target_label="lesion",
        options=dict(options),
    )


def bimodal_volume(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 7x96x96 int16 CT-like volume: a bright irregular blob (about 120 HU) in soft tissue (about 20 HU),
    with noise; returns (volume, the blob's mask)."""
    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[0:7, 0:96, 0:96]
    blob = ((j - 45) / 18.0) ** 2 + ((i - 50) / 13.0) ** 2 + 0.3 * np.sin(i / 3.0) <= 1.0
    blob &= np.abs(k - 3) <= 2
    volume = np.where(blob, 120, 20) + rng.normal(0, 8, blob.shape)
    return volume.astype(np.int16), blob


@dataclass
class RecordingContext:
    """A `PluginContext` for calling a plugin in this process: records every progress report and, with
    ``cancel_after``, reports cancellation once that many progress reports were made."""

    device: str = "cpu"
    cache: dict[str, Any] = field(default_factory=dict)
    cancel_after: int | None = None
    calls: list[tuple[float, str]] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.calls) >= self.cancel_after

    def progress(self, fraction: float, message: str = "") -> None:
        self.calls.append((fraction, message))
        if self.cancelled:
            raise Cancelled("test")
