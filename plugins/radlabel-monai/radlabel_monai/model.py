"""Loading a MONAI bundle or a TorchScript model, and running it on a radlabel volume.

Imports torch and MONAI at import time; the plugin imports this module only in ``load``.

A bundle folder holds ``configs/inference.json`` (network definition, preprocessing, inferer),
``configs/metadata.json`` (label names in ``network_data_format.outputs.pred.channel_def``) and
``models/model.pt`` (a state dict, read with ``weights_only=True``) or ``models/model.ts`` (TorchScript).
Only the ``network_def``, ``preprocessing``, ``inferer`` and ``postprocessing`` items are looked at; the
bundle's data loading, evaluator and ``run`` sections are never executed. A bundle's config may contain Python
expressions and TorchScript is code: run only models you trust, like any other program.

The volume goes in as MONAI expects a loaded image (channel added, RAS affine from our LPS geometry), through
the bundle's preprocessing without its loader, sliding-window inference, the activation, and the inverse of the
preprocessing (orientation and spacing changes are undone), so probabilities land on our ``[k, j, i]`` grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Invertd,
    NormalizeIntensityd,
    Orientationd,
    ScaleIntensityRanged,
    Spacingd,
)
from numpy.typing import NDArray

from radlabel_monai.errors import BundleError

_LOADERS = ("LoadImaged", "LoadImage")
_NOT_PREPROCESSING = ("SaveImaged", "SaveImage")


@dataclass
class LoadedModel:
    """A network ready to run, with everything needed to feed it and read its output."""

    name: str
    version: str
    network: Callable[[torch.Tensor], Any]
    preprocessing: Compose
    image_key: str
    roi_size: tuple[int, ...]
    sw_batch_size: int
    overlap: float
    blend_mode: str
    activation: str  # "softmax", "sigmoid" or "none"
    label_names: dict[int, str]
    weights_path: Path
    in_channels: int = 1
    modalities: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- bundle


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path.name}: {exc}", path=path) from exc
    if not isinstance(loaded, dict):
        raise BundleError("the config is not a JSON object", path=path)
    return loaded


def _target_name(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("_target_", "")).rsplit(".", 1)[-1]
    return ""


def _raw(parser: ConfigParser, value: Any) -> Any:
    """Follow a plain ``"@id"`` reference to its raw config (no evaluation)."""
    while isinstance(value, str) and value.startswith("@") and value[1:] in parser:
        value = parser.get(value[1:])
    return value


def _channel_def(metadata: dict[str, Any]) -> tuple[dict[int, str], str, tuple[str, ...]]:
    """Label names, input key and modalities from a bundle's metadata."""
    formats = metadata.get("network_data_format", {}) if isinstance(metadata, dict) else {}
    inputs = formats.get("inputs", {}) if isinstance(formats, dict) else {}
    outputs = formats.get("outputs", {}) if isinstance(formats, dict) else {}
    image_key = next(iter(inputs), "image") if isinstance(inputs, dict) and inputs else "image"
    names: dict[int, str] = {}
    if isinstance(outputs, dict) and outputs:
        first = outputs.get("pred") or next(iter(outputs.values()))
        channel_def = first.get("channel_def", {}) if isinstance(first, dict) else {}
        for key, value in (channel_def or {}).items():
            try:
                names[int(key)] = str(value)
            except (TypeError, ValueError):
                continue
    modality = ""
    if isinstance(inputs, dict) and inputs:
        description = inputs.get(image_key, {})
        if isinstance(description, dict):
            modality = str(description.get("modality", ""))
    return names, image_key, (modality,) if modality else ()


def load_bundle(folder: Path, device: str) -> LoadedModel:
    """A MONAI bundle folder: ``configs/inference.json`` (+ ``metadata.json``), ``models/model.pt`` or ``.ts``."""
    folder = folder.resolve()
    config_path = folder / "configs" / "inference.json"
    if not config_path.is_file():
        raise BundleError("not a MONAI bundle: configs/inference.json is missing", path=folder)
    metadata_path = folder / "configs" / "metadata.json"
    metadata = _read_json(metadata_path) if metadata_path.is_file() else {}
    parser = ConfigParser()
    parser.read_config(str(config_path))
    parser["bundle_root"] = str(folder)
    parser["device"] = f"$torch.device('{device}')"
    label_names, image_key, modalities = _channel_def(metadata)
    notes: list[str] = []

    weights_pt = folder / "models" / "model.pt"
    weights_ts = folder / "models" / "model.ts"
    if weights_pt.is_file() and "network_def" in parser:
        try:
            network = parser.get_parsed_content("network_def", instantiate=True)
        except Exception as exc:
            raise BundleError(f"cannot build the bundle's network_def: {exc}", path=config_path) from exc
        state = torch.load(weights_pt, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        try:
            network.load_state_dict(state)
        except RuntimeError as exc:
            raise BundleError(f"models/model.pt does not fit network_def: {exc}", path=weights_pt) from exc
        weights = weights_pt
    elif weights_ts.is_file():
        network = torch.jit.load(str(weights_ts), map_location="cpu")
        weights = weights_ts
    else:
        raise BundleError("the bundle has neither models/model.pt (with network_def) nor models/model.ts", path=folder)
    network = network.to(device).eval()

    preprocessing = _bundle_preprocessing(parser, image_key, notes)
    roi, batch, overlap, mode = _bundle_inferer(parser, metadata, image_key)
    activation = _bundle_activation(parser, len(label_names))
    name = str(metadata.get("name") or folder.name)
    version = str(metadata.get("version") or "")
    in_channels = _input_channels(metadata, image_key)
    return LoadedModel(
        name=name,
        version=version,
        network=network,
        preprocessing=preprocessing,
        image_key=image_key,
        roi_size=roi,
        sw_batch_size=batch,
        overlap=overlap,
        blend_mode=mode,
        activation=activation,
        label_names=label_names,
        weights_path=weights,
        in_channels=in_channels,
        modalities=modalities,
        notes=notes,
    )


def _bundle_preprocessing(parser: ConfigParser, image_key: str, notes: list[str]) -> Compose:
    """The bundle's ``preprocessing`` Compose without its image loader (we hand it a loaded image)."""
    if "preprocessing" not in parser:
        notes.append("no preprocessing in the bundle: channel-first only")
        return Compose([EnsureChannelFirstd(keys=image_key), EnsureTyped(keys=image_key)])
    raw = _raw(parser, parser.get("preprocessing"))
    if isinstance(raw, dict) and _target_name(raw) == "Compose":
        transforms = _raw(parser, raw.get("transforms"))
        if isinstance(transforms, list):
            kept = [_raw(parser, t) for t in transforms]
            kept = [t for t in kept if _target_name(t) not in _LOADERS + _NOT_PREPROCESSING]
            parser["radlabel_preprocessing"] = {**raw, "transforms": kept}
            try:
                composed = parser.get_parsed_content("radlabel_preprocessing", instantiate=True)
            except Exception as exc:
                raise BundleError(f"cannot build the bundle's preprocessing: {exc}") from exc
            if not isinstance(composed, Compose):
                raise BundleError("the bundle's preprocessing is not a Compose")
            return composed
    raise BundleError("the bundle's preprocessing is not a Compose of transforms radlabel can read")


def _bundle_inferer(
    parser: ConfigParser, metadata: dict[str, Any], image_key: str
) -> tuple[tuple[int, ...], int, float, str]:
    roi: Any = None
    batch, overlap, mode = 1, 0.25, "constant"
    raw = _raw(parser, parser.get("inferer")) if "inferer" in parser else None
    if isinstance(raw, dict) and _target_name(raw) == "SlidingWindowInferer":
        roi = _raw(parser, raw.get("roi_size"))
        batch = int(_raw(parser, raw.get("sw_batch_size", 1)))
        overlap = float(_raw(parser, raw.get("overlap", 0.25)))
        mode = str(_raw(parser, raw.get("mode", "constant")))
    if not isinstance(roi, list | tuple):
        formats = metadata.get("network_data_format", {})
        description = formats.get("inputs", {}).get(image_key, {}) if isinstance(formats, dict) else {}
        roi = description.get("spatial_shape") if isinstance(description, dict) else None
    if not isinstance(roi, list | tuple) or not all(isinstance(v, int | float) for v in roi):
        raise BundleError("the bundle names no sliding-window size (inferer.roi_size or the input's spatial_shape)")
    return tuple(int(v) for v in roi), batch, overlap, mode


def _bundle_activation(parser: ConfigParser, n_labels: int) -> str:
    if "postprocessing" in parser:
        raw = _raw(parser, parser.get("postprocessing"))
        transforms = _raw(parser, raw.get("transforms")) if isinstance(raw, dict) else None
        for item in transforms if isinstance(transforms, list) else []:
            item = _raw(parser, item)
            if _target_name(item) in ("Activationsd", "Activations"):
                if item.get("softmax") is True:
                    return "softmax"
                if item.get("sigmoid") is True:
                    return "sigmoid"
    return "softmax" if n_labels != 1 else "sigmoid"


def _input_channels(metadata: dict[str, Any], image_key: str) -> int:
    formats = metadata.get("network_data_format", {})
    description = formats.get("inputs", {}).get(image_key, {}) if isinstance(formats, dict) else {}
    value = description.get("num_channels", 1) if isinstance(description, dict) else 1
    return int(value) if isinstance(value, int | float) else 1


# ---------------------------------------------------------------------------------------------------- TorchScript


def load_torchscript(model_path: Path, config_path: Path, device: str) -> LoadedModel:
    """A TorchScript file plus a small JSON config::

    {"spatial_size": [96, 96, 96], "labels": {"1": "spleen"}, "activation": "softmax",
     "pixdim": [1.5, 1.5, 2.0], "axcodes": "RAS",
     "intensity": {"a_min": -57, "a_max": 164, "b_min": 0, "b_max": 1, "clip": true}
                  or {"normalize": "nonzero"},
     "overlap": 0.25, "sw_batch_size": 4, "name": "...", "version": "..."}
    """
    config = _read_json(config_path)
    if "spatial_size" not in config:
        raise BundleError("the model config needs spatial_size (the sliding-window size)", path=config_path)
    key = "image"
    transforms: list[Any] = [EnsureChannelFirstd(keys=key)]
    if config.get("axcodes"):
        transforms.append(Orientationd(keys=key, axcodes=str(config["axcodes"])))
    if config.get("pixdim"):
        transforms.append(Spacingd(keys=key, pixdim=[float(v) for v in config["pixdim"]], mode="bilinear"))
    intensity = config.get("intensity") or {}
    if "a_min" in intensity:
        transforms.append(
            ScaleIntensityRanged(
                keys=key,
                a_min=float(intensity["a_min"]),
                a_max=float(intensity["a_max"]),
                b_min=float(intensity.get("b_min", 0.0)),
                b_max=float(intensity.get("b_max", 1.0)),
                clip=bool(intensity.get("clip", True)),
            )
        )
    elif intensity.get("normalize"):
        transforms.append(NormalizeIntensityd(keys=key, nonzero=intensity["normalize"] == "nonzero"))
    transforms.append(EnsureTyped(keys=key))
    labels = {int(k): str(v) for k, v in (config.get("labels") or {}).items()}
    network = torch.jit.load(str(model_path), map_location="cpu").to(device).eval()
    n_out = int(config.get("out_channels", len(labels) + 1))
    return LoadedModel(
        name=str(config.get("name") or model_path.stem),
        version=str(config.get("version") or ""),
        network=network,
        preprocessing=Compose(transforms),
        image_key=key,
        roi_size=tuple(int(v) for v in config["spatial_size"]),
        sw_batch_size=int(config.get("sw_batch_size", 1)),
        overlap=float(config.get("overlap", 0.25)),
        blend_mode=str(config.get("mode", "constant")),
        activation=str(config.get("activation") or ("softmax" if n_out > 1 else "sigmoid")),
        label_names=labels,
        weights_path=model_path,
        in_channels=int(config.get("in_channels", 1)),
        modalities=tuple(config.get("modalities", ())),
    )


# ---------------------------------------------------------------------------------------------------- inference


def lps_affine(
    origin: Sequence[float], spacing: Sequence[float], direction: Sequence[Sequence[float]]
) -> NDArray[np.float64]:
    """4x4 matrix from (i, j, k) voxel indices to LPS millimetres; ``direction`` columns are the axes."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, dtype=np.float64).reshape(3, 3) @ np.diag(
        np.asarray(spacing, dtype=np.float64)
    )
    affine[:3, 3] = np.asarray(origin, dtype=np.float64)
    return affine


def _window_count(shape: Sequence[int], roi: Sequence[int], overlap: float, batch: int) -> int:
    count = 1
    for size, window in zip(shape, roi, strict=False):
        window = min(window, size) if window > 0 else size
        interval = max(1, int(window * (1 - overlap)))
        count *= 1 if size <= window else math.ceil((size - window) / interval) + 1
    return max(1, math.ceil(count / batch))


def run(
    model: LoadedModel,
    image_kji: NDArray[Any],
    origin: Sequence[float],
    spacing: Sequence[float],
    direction: Sequence[Sequence[float]],
    device: str,
    progress: Callable[[float, str], None] | None = None,
) -> NDArray[np.float32]:
    """Per-channel probabilities ``[c, k, j, i]`` on the input grid."""
    affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps_affine(origin, spacing, direction)
    volume = np.ascontiguousarray(np.asarray(image_kji).transpose(2, 1, 0), dtype=np.float32)  # (i, j, k)
    meta = {
        "original_channel_dim": "no_channel",
        "original_affine": affine_ras,
        "spatial_shape": np.asarray(volume.shape),
        "filename_or_obj": "radlabel-volume",
        "space": "RAS",
    }
    image = MetaTensor(torch.from_numpy(volume), affine=torch.as_tensor(affine_ras), meta=meta)
    data = model.preprocessing({model.image_key: image})
    prepared = data[model.image_key]
    if not isinstance(prepared, MetaTensor):
        raise BundleError("the preprocessing lost the image geometry (not a MetaTensor)")
    if prepared.shape[0] != model.in_channels:
        raise BundleError(
            f"the model expects {model.in_channels} input channels, preprocessing gave {prepared.shape[0]}"
        )
    total = _window_count(prepared.shape[1:], model.roi_size, model.overlap, model.sw_batch_size)
    calls = [0]

    def predictor(batch: torch.Tensor) -> Any:
        if progress is not None:
            progress(0.05 + 0.85 * calls[0] / total, "sliding-window inference")
        calls[0] += 1
        return model.network(batch)

    with torch.inference_mode():
        logits = sliding_window_inference(
            prepared.unsqueeze(0).to(device),
            roi_size=model.roi_size,
            sw_batch_size=model.sw_batch_size,
            predictor=predictor,
            overlap=model.overlap,
            mode=model.blend_mode,
        )
        logits = logits[0].float()
        if model.activation == "softmax":
            probabilities = torch.softmax(logits, dim=0)
        elif model.activation == "sigmoid":
            probabilities = torch.sigmoid(logits)
        else:
            probabilities = logits
    if progress is not None:
        progress(0.92, "mapping back to the image grid")
    pred = MetaTensor(probabilities.cpu(), meta=dict(prepared.meta))
    pred.applied_operations = list(prepared.applied_operations)
    prepared_cpu = prepared.cpu() if hasattr(prepared, "cpu") else prepared
    inverter = Invertd(
        keys="pred", transform=model.preprocessing, orig_keys=model.image_key, nearest_interp=False, to_tensor=True
    )
    restored = inverter({model.image_key: prepared_cpu, "pred": pred})["pred"]
    array = np.asarray(restored.detach().cpu().numpy() if hasattr(restored, "detach") else restored, dtype=np.float32)
    if array.shape[1:] != volume.shape:
        raise BundleError(
            f"the preprocessing could not be inverted: probabilities are {array.shape[1:]}, the image {volume.shape}"
        )
    result: NDArray[np.float32] = np.ascontiguousarray(array.transpose(0, 3, 2, 1))
    return result
