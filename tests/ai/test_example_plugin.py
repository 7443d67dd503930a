"""The example plugin in-process (as docs/plugin-sdk.md recommends testing a plugin): dark and bright
objects, 3D boxes, negative points, bad prompts, weights from the settings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radlabel.ai import sdk
from radlabel.ai.sdk import BoxPrompt, Cancelled, InputError, Plugin, PluginWeightsError, PointPrompt
from radlabel.core.settings import Settings

from .conftest import bimodal_volume, make_request

example = pytest.importorskip("radlabel_example_threshold.plugin")


@dataclass
class Context:
    device: str = "cpu"
    cache: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[float, str]] = field(default_factory=list)
    cancelled: bool = False

    def progress(self, fraction: float, message: str = "") -> None:
        self.calls.append((fraction, message))
        if self.cancelled:
            raise Cancelled("proposal")


def loaded() -> Any:
    plugin = example.create()
    assert isinstance(plugin, Plugin)
    plugin.load(Context())
    return plugin


def grid(proposal: sdk.Proposal, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    k, j, i = proposal.offset
    dk, dj, di = proposal.mask().shape
    out[k : k + dk, j : j + dj, i : i + di] = proposal.mask()
    return out


def test_dark_object_in_a_bright_box() -> None:
    volume, blob = bimodal_volume()
    inverted = (140 - volume).astype(np.int16)  # a hypodense lesion in bright tissue
    proposal = loaded().predict(make_request(inverted, [BoxPrompt((28, 20, 3), (72, 70, 3))]), Context())
    got = grid(proposal, volume.shape)
    assert 2 * (got & blob).sum() / (got.sum() + blob[3].sum()) > 0.99


def test_3d_box_and_cache_reuse() -> None:
    volume, blob = bimodal_volume()
    plugin, context = loaded(), Context()
    request = make_request(volume, [BoxPrompt((28, 20, 0), (72, 70, 6), axis=None)])
    first = plugin.predict(request, context)
    assert len(context.cache) == 1
    second = plugin.predict(request, context)
    assert len(context.cache) == 1 and np.array_equal(first.labels, second.labels)
    got = grid(first, volume.shape)
    assert 2 * (got & blob).sum() / (got.sum() + blob.sum()) > 0.99


def test_negative_point_removes_its_region() -> None:
    image = np.zeros((3, 20, 20), dtype=np.int16)
    image[1, 2:8, 2:8] = 100
    image[1, 12:18, 12:18] = 100
    prompts = [PointPrompt((4, 4, 1)), PointPrompt((14, 14, 1)), PointPrompt((15, 15, 1), positive=False)]
    proposal = loaded().predict(make_request(image, prompts, tolerance=20), Context())
    got = grid(proposal, image.shape)
    assert got.sum() == 36 and got[1, 2:8, 2:8].all()  # the second square was taken back


def test_bad_prompts_are_input_errors() -> None:
    plugin = loaded()
    image = np.zeros((2, 8, 8), dtype=np.int16)
    with pytest.raises(InputError, match="needs a box or a positive point"):
        plugin.predict(make_request(image, [PointPrompt((1, 1, 0), positive=False)]), Context())
    with pytest.raises(InputError, match="outside the image"):
        plugin.predict(make_request(image, [BoxPrompt((20, 20, 0), (30, 30, 0))]), Context())
    with pytest.raises(InputError, match="outside the image"):
        plugin.predict(make_request(image, [PointPrompt((1, 1, 5))]), Context())


def test_cancel_through_progress() -> None:
    image = np.zeros((2, 8, 8), dtype=np.int16)
    with pytest.raises(Cancelled):
        loaded().predict(make_request(image, [BoxPrompt((0, 0, 0), (7, 7, 0))]), Context(cancelled=True))


def test_parameters_from_settings_are_hash_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parameters = tmp_path / "p.json"
    parameters.write_text('{"otsu_bins": 64}', encoding="utf-8")
    digest = hashlib.sha256(parameters.read_bytes()).hexdigest()
    good = Settings(plugins={"example-threshold": {"parameters": str(parameters), "parameters_sha256": digest}})
    monkeypatch.setattr(sdk, "_settings_object", good)
    plugin = loaded()
    assert plugin.parameters == {"otsu_bins": 64} and plugin.sha256 == digest
    bad = Settings(plugins={"example-threshold": {"parameters": str(parameters), "parameters_sha256": "0" * 64}})
    monkeypatch.setattr(sdk, "_settings_object", bad)
    assert not example.create().weights_status().present
    with pytest.raises(PluginWeightsError, match="refusing to load"):
        example.create().load(Context())
    unpinned = Settings(plugins={"example-threshold": {"parameters": str(parameters)}})
    monkeypatch.setattr(sdk, "_settings_object", unpinned)
    with pytest.raises(PluginWeightsError, match="without parameters_sha256"):
        example.create().load(Context())


def test_otsu_matches_brute_force_on_two_classes() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 5, 500), rng.normal(100, 5, 300)])
    t = example.otsu_threshold(values)
    assert ((values >= t) == (values > 50)).all()  # any threshold in the gap between the classes
