"""SDK helpers: weights verification, digests, cache keys, device choice."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from radlabel.ai import sdk
from radlabel.ai.registry import choose_device
from radlabel.core.errors import PluginWeightsError


def test_verify_weights_accepts_the_published_hash(tmp_path: Path) -> None:
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"weights" * 1000)
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert sdk.verify_weights(weights, expected.upper(), "my-model") == expected


def test_verify_weights_refuses_a_wrong_hash(tmp_path: Path) -> None:
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"tampered")
    with pytest.raises(PluginWeightsError) as caught:
        sdk.verify_weights(weights, "ab" * 32, "my-model")
    message = str(caught.value)
    assert "plugin 'my-model'" in message and str(weights) in message
    assert hashlib.sha256(b"tampered").hexdigest() in message and "refusing to load" in message
    assert caught.value.plugin == "my-model"


def test_verify_weights_missing_file_says_where_to_configure(tmp_path: Path) -> None:
    with pytest.raises(PluginWeightsError, match=r"not found.*\[plugins\.my-model\]"):
        sdk.verify_weights(tmp_path / "absent.pth", "00" * 32, "my-model")


def test_sha256_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"one")
    assert sdk.sha256_of(weights) == hashlib.sha256(b"one").hexdigest()
    weights.write_bytes(b"two!")
    os.utime(weights, ns=(1, 1))  # even a reset mtime: the size differs
    assert sdk.sha256_of(weights) == hashlib.sha256(b"two!").hexdigest()


def test_cache_key_depends_on_content_shape_and_dtype() -> None:
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert sdk.cache_key("emb", a) == sdk.cache_key("emb", a.copy())
    assert sdk.cache_key("emb", a) != sdk.cache_key("emb", a.reshape(4, 3))
    assert sdk.cache_key("emb", a) != sdk.cache_key("emb", a.astype(np.int32))
    assert sdk.cache_key("emb", a) != sdk.cache_key("emb", a + 1)
    assert sdk.cache_key("emb", a[:, ::2]) == sdk.cache_key("emb", np.ascontiguousarray(a[:, ::2]))


def test_device_choice() -> None:
    any_device = sdk.Capabilities(frozenset({sdk.PromptKind.BOX}), frozenset({sdk.Dimension.SLICE_2D}))
    cpu_only = sdk.Capabilities(
        frozenset({sdk.PromptKind.BOX}), frozenset({sdk.Dimension.SLICE_2D}), devices=frozenset({"cpu"})
    )
    assert choose_device(any_device, "auto", "cuda") == "cuda"
    assert choose_device(any_device, "cpu", "cuda") == "cpu"
    assert choose_device(any_device, "cuda:1", "cuda") == "cuda:1"
    assert choose_device(cpu_only, "auto", "cuda") == "cpu"
    assert sdk.select_device("cpu") == "cpu"
    assert "devices" in any_device.to_json()
