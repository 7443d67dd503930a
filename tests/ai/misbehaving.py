"""Test-only plugins that misbehave on request, loaded through settings ``ai.extra_plugins`` /
``$RADLABEL_EXTRA_PLUGINS`` (not collected by pytest: no ``test_`` prefix).

``misbehaving`` does what ``request.options["behaviour"]`` says: ok, crash (os._exit(3)), segfault, raise,
hang (sleeps without reporting progress), slow (reports progress until cancelled), network (connects to
192.0.2.1, a documentation address that is never routed), network-swallowed (tries urllib and ignores the
failure), keep-view (keeps a view of the shared input in its cache), bad-box (a proposal off the grid).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from radlabel.ai.sdk import (
    Capabilities,
    Dimension,
    InferenceRequest,
    ModelIdentity,
    PluginContext,
    PromptKind,
    Proposal,
    WeightsStatus,
    plugin_settings,
    sha256_of,
    verify_weights,
)

EXPECTED_SHA256 = "0" * 64  # what the wrong-hash plugin "publishes"; its file never matches


class Misbehaving:
    name = "misbehaving"
    version = "9.9"
    sdk_version = "1.1"
    capabilities = Capabilities(
        prompt_kinds=frozenset({PromptKind.NONE}),
        dimensions=frozenset({Dimension.VOLUME_3D}),
        devices=frozenset({"cpu"}),
    )

    def weights_status(self) -> WeightsStatus:
        return WeightsStatus(present=True, message="no weights")

    def load(self, context: PluginContext) -> None:
        context.progress(0.5, "loading nothing")

    def predict(self, request: InferenceRequest, context: PluginContext) -> Proposal:
        behaviour = request.options.get("behaviour", "ok")
        context.progress(0.0, behaviour)
        if behaviour == "crash":
            os._exit(3)
        if behaviour == "segfault":
            ctypes.string_at(0)
        if behaviour == "raise":
            raise ValueError("the model does not like this image")
        if behaviour == "hang":
            while True:
                time.sleep(3600)
        if behaviour == "slow":
            for step in range(100_000):
                context.progress(step / 100_000, "working")  # raises Cancelled once cancelled
                time.sleep(0.01)
        if behaviour == "network":
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(("192.0.2.1", 9))
        if behaviour == "network-swallowed":
            with contextlib.suppress(Exception):  # a careless library that falls back silently
                urllib.request.urlopen("http://example.com/weights.pth", timeout=5)
        if behaviour == "keep-view":
            context.cache["image"] = request.image[0]
        image = request.image
        probabilities = (image >= image.mean()).astype(np.float32) * 0.9
        offset = (0, 0, 0) if behaviour != "bad-box" else (image.shape[0], 0, 0)
        mask_prompts = [p for p in request.prompts if hasattr(p, "mask")]
        return Proposal(
            offset=offset,
            model=ModelIdentity(self.name, self.version, "none"),
            probabilities=probabilities,
            label_names={1: "thing"},
            timing={"total": 123.0, "decode": 0.5},
            extra={
                "cache_entries": len(context.cache),
                "mask_prompt_voxels": [int(p.mask.sum()) for p in mask_prompts],
                "scores": np.arange(3, dtype=np.float32),
                "pid": os.getpid(),
            },
        )


class WrongHash(Misbehaving):
    """Declares weights whose published SHA-256 its file does not have; ``load`` must refuse them."""

    name = "wrong-hash"

    def _path(self) -> Path:
        return Path(str(plugin_settings(self.name)["checkpoint"]))

    def weights_status(self) -> WeightsStatus:
        path = self._path()  # a naive status: present, whatever the content
        return WeightsStatus(present=path.is_file(), location=str(path), sha256=sha256_of(path))

    def load(self, context: PluginContext) -> None:
        verify_weights(self._path(), EXPECTED_SHA256, self.name)
        raise AssertionError("weights with a wrong hash were accepted")


class CrashOnLoad(Misbehaving):
    name = "crash-on-load"

    def load(self, context: PluginContext) -> None:
        os._exit(7)


def create() -> Misbehaving:
    return Misbehaving()


def create_wrong_hash() -> WrongHash:
    return WrongHash()


def create_crash_on_load() -> CrashOnLoad:
    return CrashOnLoad()


def create_broken() -> Any:
    raise RuntimeError("factory exploded")


def create_not_a_plugin() -> Any:
    return object()


class FutureSdk(Misbehaving):
    name = "future-sdk"
    sdk_version = "2.0"


def create_future_sdk() -> FutureSdk:
    return FutureSdk()
