"""The radlabel plugin ``monai_bundle``: whole-volume segmentation with a MONAI bundle or TorchScript model.

Which model: request option ``bundle`` (a bundle folder, or a TorchScript file whose config is option
``config`` or the file beside it with the suffix ``.json``), else the environment variable
``RADLABEL_MONAI_BUNDLE``, else the radlabel setting ``plugins.monai_bundle.bundle``. Importing this module is
cheap; torch and MONAI load in ``load``/``predict``. GPU when present, otherwise CPU, the same code path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.ai.sdk import (
    Capabilities,
    Dimension,
    InferenceRequest,
    ModelIdentity,
    PluginContext,
    PromptKind,
    Proposal,
    WeightsStatus,
    find_model_pack,
    model_packs,
    plugin_settings_or_empty,
    select_device,
    sha256_of,
)
from radlabel.core.errors import Cancelled, PluginWeightsError
from radlabel_monai import __version__
from radlabel_monai.errors import BundleError, ModelNotConfiguredError

ENV = "RADLABEL_MONAI_BUNDLE"
SETTING = "plugins.monai_bundle.bundle"
_TORCHSCRIPT_SUFFIXES = (".ts", ".pt", ".pth", ".zip")


def _pack_bundle(entry: dict[str, Any]) -> Path | None:
    """The folder of an installed ``monai-bundle`` model pack: the one named by ``[plugins.monai_bundle] pack``,
    else the only one installed (several without a name: none is chosen, the reader must say which)."""
    if entry.get("pack"):
        pack = find_model_pack(str(entry["pack"]))
        if pack is None:
            raise ModelNotConfiguredError(
                f"the model pack {entry['pack']!r} named by {SETTING.rsplit('.', 1)[0]}.pack is not installed",
                fix="install it with `radlabel models install PACK` (see `radlabel models list`)",
            )
        if pack.kind != "monai-bundle":
            raise BundleError(f"the model pack {pack.name!r} holds {pack.kind}, not a MONAI bundle", path=pack.path)
        return pack.path
    packs = model_packs("monai-bundle", "monai_bundle")
    return packs[0].path if len(packs) == 1 else None


def model_location(options: dict[str, Any], default: str | Path | None = None) -> tuple[Path | None, Path | None]:
    """(bundle folder or TorchScript file, its JSON config for TorchScript) from options, env, settings or an
    installed model pack, in that order."""
    given: Any = options.get("bundle") or default or os.environ.get(ENV)
    config: Any = options.get("config")
    if not given:
        entry = plugin_settings_or_empty("monai_bundle")
        given = entry.get("bundle") or entry.get("path") or _pack_bundle(entry)
        config = config or entry.get("config")
    if not given:
        return None, None
    path = Path(str(given)).expanduser()
    if path.is_file() and config is None:
        config = path.with_suffix(".json")
    return path, Path(str(config)).expanduser() if config else None


def _verify_pack(path: Path) -> None:
    """A bundle folder that is an installed model pack is loaded only when every file matches its manifest."""
    if not (path / "radlabel-pack.json").is_file():
        return
    pack = next((p for p in model_packs("monai-bundle") if p.path == path), None)
    problems = pack.verify() if pack is not None else []
    if problems:
        raise PluginWeightsError(
            f"the MONAI model pack {path} is damaged: {problems[0]}",
            "monai_bundle",
            "reinstall it with `radlabel models install PACK --force`",
        )


def _weights_file(path: Path) -> Path | None:
    if path.is_dir():
        for candidate in (path / "models" / "model.pt", path / "models" / "model.ts"):
            if candidate.is_file():
                return candidate
        return None
    return path if path.is_file() else None


class MonaiBundlePlugin:
    """Runs a MONAI bundle (``configs/inference.json`` + ``models/model.pt`` or ``.ts``) or a TorchScript file."""

    name = "monai_bundle"
    version = __version__

    def __init__(self, bundle: str | Path | None = None) -> None:
        self._default = bundle
        self._model: Any = None
        self._loaded_from: Path | None = None
        self._identity: ModelIdentity | None = None
        self._device = ""
        self.capabilities = Capabilities(
            prompt_kinds=frozenset({PromptKind.NONE}),
            dimensions=frozenset({Dimension.VOLUME_3D}),
        )

    @property
    def model(self) -> Any:
        """The loaded model (radlabel_monai.model.LoadedModel), None before ``load``."""
        return self._model

    def weights_status(self) -> WeightsStatus:
        path, _ = model_location({}, self._default)
        if path is None:
            return WeightsStatus(
                False, message=f"no MONAI bundle configured: set {SETTING} or the environment variable {ENV}"
            )
        weights = _weights_file(path)
        if weights is None:
            return WeightsStatus(False, location=str(path), message="no model.pt / model.ts at the configured path")
        return WeightsStatus(True, location=str(weights), sha256=sha256_of(weights), message="model configured")

    def load(self, context: PluginContext) -> None:
        self._ensure_loaded(context, {})

    def _ensure_loaded(self, context: PluginContext, options: dict[str, Any]) -> None:
        path, config = model_location(options, self._default)
        if path is None:
            raise ModelNotConfiguredError(
                "no MONAI bundle or TorchScript model is configured",
                fix=f"set {SETTING} in the radlabel settings or the environment variable {ENV}",
            )
        if not path.exists():
            raise ModelNotConfiguredError("the configured MONAI model does not exist", path=path)
        _verify_pack(path)
        device = getattr(context, "device", "") or select_device()
        if self._model is not None and self._loaded_from == path and self._device == device:
            return
        from radlabel_monai import model as model_module

        if path.is_dir():
            loaded = model_module.load_bundle(path, device)
        else:
            if config is None or not config.is_file():
                raise BundleError(
                    "a TorchScript model needs its JSON config (option 'config' or <model>.json)", path=path
                )
            loaded = model_module.load_torchscript(path, config, device)
        self._model, self._loaded_from, self._device = loaded, path, device
        self._identity = ModelIdentity(loaded.name, loaded.version or "unversioned", sha256_of(loaded.weights_path))
        self.capabilities = Capabilities(
            prompt_kinds=frozenset({PromptKind.NONE}),
            dimensions=frozenset({Dimension.VOLUME_3D}),
            modalities=frozenset(loaded.modalities),
            labels=tuple(name for index, name in sorted(loaded.label_names.items()) if index != 0),
        )

    def predict(self, request: InferenceRequest, context: PluginContext) -> Proposal:
        start = time.perf_counter()
        self._ensure_loaded(context, request.options)
        from radlabel_monai import model as model_module

        loaded = self._model
        assert self._identity is not None

        def progress(fraction: float, message: str) -> None:
            if context.cancelled:
                raise Cancelled("MONAI inference")
            context.progress(fraction, message)

        progress(0.0, "preprocessing")
        image = np.asarray(request.image)
        if image.ndim != 3:
            raise BundleError(f"the image must be a 3D [k, j, i] array, got shape {image.shape}")
        probabilities = model_module.run(
            loaded, image, request.origin, request.spacing, request.direction, self._device, progress
        )
        labels, foreground, names = _labels_and_probability(
            probabilities,
            loaded.activation,
            loaded.label_names,
            request.target_label,
            float(request.options.get("threshold", 0.5)),
        )
        offset, region = _bounding_region(labels > 0, foreground >= 0.01)
        progress(1.0, "done")
        return Proposal(
            offset=offset,
            model=self._identity,
            probabilities=np.ascontiguousarray(foreground[region]),
            labels=np.ascontiguousarray(labels[region]),
            label_names=names,
            device=self._device,
            timing={"total": time.perf_counter() - start},
            prompt=request.prompt_json(),
            extra={
                "plugin": f"radlabel-monai {__version__}",
                "activation": loaded.activation,
                "roi_size": list(loaded.roi_size),
                "weights": str(loaded.weights_path),
                "notes": list(loaded.notes),
            },
        )


def _labels_and_probability(
    probabilities: NDArray[np.float32], activation: str, label_names: dict[int, str], target: str, threshold: float
) -> tuple[NDArray[np.uint8], NDArray[np.float32], dict[int, str]]:
    """Label map (0 background), the probability kept for review, and the label names used in the map.

    Softmax outputs: label = argmax channel; the probability is the target label's channel when the request
    names one of the model's labels, else the foreground probability (1 - background). Sigmoid outputs:
    channel c (label c + 1 unless names say otherwise) where its probability passes ``threshold``.
    """
    channels = probabilities.shape[0]
    if activation == "softmax" and channels > 1:
        labels = np.argmax(probabilities, axis=0).astype(np.uint8)
        names = {c: label_names.get(c, f"label {c}") for c in range(1, channels)}
        chosen = [c for c, n in names.items() if target and n.lower() == target.lower()]
        foreground = probabilities[chosen[0]] if chosen else 1.0 - probabilities[0]
        if chosen:
            labels = (labels == chosen[0]).astype(np.uint8) * np.uint8(chosen[0])
        return labels, np.asarray(foreground, dtype=np.float32), names
    # sigmoid channel c is label c + 1; metadata that lists a background at 0 names channel c as c + 1
    shift = 1 if len(label_names) == channels + 1 else 0
    names = {c + 1: label_names.get(c + shift, f"label {c + 1}") for c in range(channels)}
    above = probabilities >= threshold
    best = np.argmax(np.where(above, probabilities, -1.0), axis=0)
    labels = np.where(above.any(axis=0), best + 1, 0).astype(np.uint8)
    return labels, np.asarray(probabilities.max(axis=0), dtype=np.float32), names


def _bounding_region(*masks: NDArray[np.bool_]) -> tuple[tuple[int, int, int], tuple[slice, slice, slice]]:
    union = np.logical_or.reduce(masks)
    if not union.any():
        return (0, 0, 0), (slice(0, 1), slice(0, 1), slice(0, 1))
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(union.any(axis=other))
        bounds.append((int(hits[0]), int(hits[-1]) + 1))
    offset = (bounds[0][0], bounds[1][0], bounds[2][0])
    return offset, (slice(*bounds[0]), slice(*bounds[1]), slice(*bounds[2]))


def create() -> MonaiBundlePlugin:
    """Entry point ``monai_bundle``."""
    return MonaiBundlePlugin()
