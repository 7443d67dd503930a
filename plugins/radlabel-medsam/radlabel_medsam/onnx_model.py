"""LiteMedSAM on ONNX Runtime: the same ``Model`` protocol as ``radlabel_medsam.model.SamModel``, without torch.

No torch import anywhere in this module (hospital CPU workstations run LiteMedSAM without PyTorch). The model
pack is made by ``python -m radlabel_medsam.onnx_export OUT_DIR``; ``load_onnx_pack`` reads its manifest,
checks the format and name, verifies every file's SHA-256 before a session is created, and refuses anything
else with the plugin's typed errors. onnxruntime itself is imported only when sessions are created, so
reading and verifying a pack (``weights_status``) stays cheap.

What numpy does around the two graphs reproduces ``SamModel.decode``: the prompt token list the torch
PromptEncoder builds (box only: the two corners; points and box: points then corners, no padding; points
only: points plus one padding token, label -1), the mask pick (output 0, or the best IoU of outputs 1..3 for
multimask), the crop of the logits to the image part of the input, torch's bilinear resize
(``align_corners=False``) and the sigmoid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.ai.sdk import sha256_of
from radlabel_medsam.errors import ModelPackError, WeightsHashError, WeightsMissingError

PACK_FORMAT = "radlabel-model-pack/1"
PACK_NAME = "litemedsam-onnx"
MANIFEST = "radlabel-pack.json"
PLUGIN = "litemedsam"
EXPORT_COMMAND = "python -m radlabel_medsam.onnx_export DIR"

IMAGE_SIZE = 256  # LiteMedSAM's input side
LOW_RES = 256  # side of the mask decoder's low-resolution logits
EMBEDDING_SHAPE = (1, 256, 64, 64)
ENCODER_INPUT = "image"
ENCODER_OUTPUT = "embedding"
DECODER_INPUTS = ("embedding", "point_coords", "point_labels")
DECODER_OUTPUTS = ("low_res_masks", "iou_predictions")

# Token labels of the decoder graph, as SAM's prompt encoder uses them.
PADDING, NEGATIVE, POSITIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = -1.0, 0.0, 1.0, 2.0, 3.0


# ---------------------------------------------------------------------------------------------------- the pack


@dataclass(frozen=True)
class OnnxPack:
    """A verified model pack: its folder, manifest, files by role and the identity of the source weights."""

    path: Path
    manifest: dict[str, Any]
    files: dict[str, Path]
    source_sha256: str
    source_package: str

    @property
    def encoder(self) -> Path:
        return self.files["encoder"]

    @property
    def decoder(self) -> Path:
        return self.files["decoder"]


def _pack_fix(folder: Path) -> str:
    return f"make the pack again with `{EXPORT_COMMAND}` (or reinstall it) and point onnx_pack at {folder}"


def _manifest_error(manifest_path: Path, problem: str, fix: str | None = None) -> ModelPackError:
    return ModelPackError(
        f"{manifest_path}: {problem}", PLUGIN, path=manifest_path, fix=fix or _pack_fix(manifest_path.parent)
    )


def read_onnx_pack(pack_dir: str | Path) -> OnnxPack:
    """Read and verify a LiteMedSAM ONNX pack: manifest format and name, then every file's SHA-256.

    Raises WeightsMissingError (no folder, manifest or file), ModelPackError (a manifest this plugin cannot
    read) or WeightsHashError (a file that is not the one the manifest pins); nothing is loaded before.
    """
    folder = Path(pack_dir).expanduser()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise WeightsMissingError(
            f"no LiteMedSAM ONNX model pack at {folder} ({MANIFEST} not found)",
            PLUGIN,
            path=folder,
            fix=f"make one with `{EXPORT_COMMAND}` or set [plugins.litemedsam] onnx_pack to its folder",
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _manifest_error(manifest_path, f"cannot read the model pack manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise _manifest_error(manifest_path, "the model pack manifest is not a JSON object")
    if manifest.get("format") != PACK_FORMAT:
        raise _manifest_error(
            manifest_path,
            f"model pack format {manifest.get('format')!r} is not {PACK_FORMAT!r}",
            "use a pack made for this radlabel-medsam version: " + _pack_fix(folder),
        )
    if manifest.get("name") != PACK_NAME:
        raise _manifest_error(
            manifest_path,
            f"model pack {manifest.get('name')!r} is not {PACK_NAME!r}",
            f"point onnx_pack at the folder of the {PACK_NAME} pack",
        )
    source = manifest.get("source")
    entries = manifest.get("files")
    if not isinstance(source, dict) or not isinstance(source.get("sha256"), str) or not isinstance(entries, list):
        raise _manifest_error(manifest_path, "the model pack manifest lacks 'source.sha256' or 'files'")
    files: dict[str, Path] = {}
    root = folder.resolve()
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("path", "role", "sha256")):
            raise _manifest_error(manifest_path, f"malformed file entry {entry!r}")
        path = (folder / entry["path"]).resolve()
        if root not in path.parents:  # a manifest may only name files inside its own folder
            raise _manifest_error(manifest_path, f"file {entry['path']!r} lies outside the pack")
        if not path.is_file():
            raise WeightsMissingError(f"model pack file {path} is missing", PLUGIN, path=path, fix=_pack_fix(folder))
        actual = sha256_of(path)
        if actual != entry["sha256"].lower():
            raise WeightsHashError(
                f"model pack file {path} has SHA-256 {actual}, expected {entry['sha256']} "
                f"({MANIFEST}); refusing to load it",
                PLUGIN,
                path=path,
                fix=_pack_fix(folder),
            )
        files[entry["role"]] = path
    missing = {"encoder", "decoder"} - set(files)
    if missing:
        raise _manifest_error(manifest_path, f"the manifest names no {' and no '.join(sorted(missing))} file")
    return OnnxPack(
        path=folder,
        manifest=manifest,
        files=files,
        source_sha256=source["sha256"].lower(),
        source_package=str(source.get("package", "")),
    )


def load_onnx_pack(pack_dir: str | Path, device: str = "cpu") -> OnnxSamModel:
    """The LiteMedSAM ONNX model of a verified pack (see ``read_onnx_pack`` for what is checked and raised)."""
    return OnnxSamModel(read_onnx_pack(pack_dir), device)


# ---------------------------------------------------------------------------------------------------- numpy parts


def prompt_tokens(
    box: NDArray[np.float32] | None,
    points: NDArray[np.float32] | None,
    labels: NDArray[np.int64] | None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(coords [1, N, 2], labels [1, N]) as the torch PromptEncoder orders its sparse tokens.

    Points (label 1 positive, 0 negative) come first; with a box its two corners follow (labels 2 and 3) and
    no padding token; without a box one padding token (label -1) ends the list, as ``_embed_points(pad=True)``
    appends it. The padding token's coordinates are irrelevant: its encoding is replaced.
    """
    coords: list[NDArray[np.float32]] = []
    token_labels: list[NDArray[np.float32]] = []
    if points is not None and len(points):
        xy = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        given = np.ones(len(xy)) if labels is None else np.asarray(labels).reshape(-1)
        coords.append(xy)
        token_labels.append(given.astype(np.float32))
        if box is None:
            coords.append(np.zeros((1, 2), dtype=np.float32))
            token_labels.append(np.array([PADDING], dtype=np.float32))
    if box is not None:
        coords.append(np.asarray(box, dtype=np.float32).reshape(2, 2))
        token_labels.append(np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], dtype=np.float32))
    if not coords:
        raise ValueError("a prompt needs a box or at least one point")
    return np.concatenate(coords)[None], np.concatenate(token_labels)[None]


def _linear_taps(in_size: int, out_size: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
    """Source indices and weights of torch's linear interpolation, ``align_corners=False``, along one axis.

    Half-pixel centres: source = (out + 0.5) * in / out - 0.5, clamped at 0 below; the upper neighbour is
    clamped to the last index. As torch's CPU kernel: the scale is a float32 ratio, the source position is
    rounded to float32 once after the multiply-add (computed in float64 here), so the weights are torch's.
    """
    scale = float(np.float32(in_size) / np.float32(out_size))
    source = ((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    source = np.maximum(source, np.float32(0.0))
    lower = np.minimum(source.astype(np.intp), in_size - 1)  # floor: source is not negative
    upper = np.minimum(lower + 1, in_size - 1)
    weight_upper = (source - lower.astype(np.float32)).astype(np.float32)
    return lower, upper, weight_upper


def resize_bilinear(image: NDArray[np.float32], out_hw: tuple[int, int]) -> NDArray[np.float32]:
    """A 2D array resized like ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``.

    Separable (columns, then rows), which is the same sum as torch's four-tap formula.
    """
    source = np.asarray(image, dtype=np.float32)
    rows0, rows1, row_weight = _linear_taps(source.shape[0], out_hw[0])
    cols0, cols1, col_weight = _linear_taps(source.shape[1], out_hw[1])
    across = source[:, cols0] * (np.float32(1.0) - col_weight) + source[:, cols1] * col_weight
    result = across[rows0] * (np.float32(1.0) - row_weight)[:, None] + across[rows1] * row_weight[:, None]
    return np.ascontiguousarray(result, dtype=np.float32)


def _sigmoid(logits: NDArray[np.float32]) -> NDArray[np.float32]:
    # exp of a negative magnitude only: no overflow warnings for large logits
    positive = logits >= 0
    exp = np.exp(-np.abs(logits))
    result = np.where(positive, 1.0 / (1.0 + exp), exp / (1.0 + exp))
    return result.astype(np.float32)


def _cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # the cores this process may use (containers, taskset)
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------------- the model


class OnnxSamModel:
    """LiteMedSAM's encoder and prompt decoder as two ONNX Runtime sessions (``radlabel_medsam.engine.Model``).

    ``device`` "cuda" uses ONNX Runtime's CUDA provider when the installed onnxruntime has it, else the CPU;
    ``self.device`` says which one runs.
    """

    name = "LiteMedSAM"
    backend = "onnx"
    image_size = IMAGE_SIZE
    keep_aspect = True

    def __init__(self, pack: OnnxPack, device: str = "cpu") -> None:
        import onnxruntime as ort

        self.pack = pack
        self.encoder_calls = 0
        self.decoder_calls = 0
        providers = ["CPUExecutionProvider"]
        self.device = "cpu"
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
            self.device = "cuda"
        options = ort.SessionOptions()
        # All cores for one request: the worker runs one prediction at a time, and the encoder dominates.
        options.intra_op_num_threads = _cpu_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._encoder = ort.InferenceSession(str(pack.encoder), sess_options=options, providers=providers)
        self._decoder = ort.InferenceSession(str(pack.decoder), sess_options=options, providers=providers)

    def encode(self, image01: NDArray[np.float32]) -> NDArray[np.float32]:
        """Embedding [1, 256, 64, 64] of a prepared ``256 x 256`` image in [0, 1] (grey, fed to all 3 channels)."""
        plane = np.asarray(image01, dtype=np.float32).reshape(self.image_size, self.image_size)
        tensor = np.ascontiguousarray(np.broadcast_to(plane, (1, 3, self.image_size, self.image_size)))
        self.encoder_calls += 1
        (embedding,) = self._encoder.run([ENCODER_OUTPUT], {ENCODER_INPUT: tensor})
        return np.asarray(embedding, dtype=np.float32)

    def decode_all(
        self,
        embedding: NDArray[np.float32],
        box: NDArray[np.float32] | None,
        points: NDArray[np.float32] | None,
        labels: NDArray[np.int64] | None,
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """All four low-resolution mask logits [1, 4, 256, 256] and IoU predictions [1, 4]."""
        coords, token_labels = prompt_tokens(box, points, labels)
        feeds = {DECODER_INPUTS[0]: np.asarray(embedding, dtype=np.float32)}
        feeds[DECODER_INPUTS[1]], feeds[DECODER_INPUTS[2]] = coords, token_labels
        self.decoder_calls += 1
        masks, iou = self._decoder.run(list(DECODER_OUTPUTS), feeds)
        return np.asarray(masks, dtype=np.float32), np.asarray(iou, dtype=np.float32)

    def decode(
        self,
        embedding: NDArray[np.float32],
        box: NDArray[np.float32] | None,
        points: NDArray[np.float32] | None,
        labels: NDArray[np.int64] | None,
        valid_hw: tuple[int, int],
        out_hw: tuple[int, int],
        multimask: bool = False,
    ) -> tuple[NDArray[np.float32], float]:
        """Probabilities (``out_hw``) of the best mask and its predicted IoU, as ``SamModel.decode`` gives them."""
        masks, iou = self.decode_all(embedding, box, points, labels)
        # The graph returns every output; SAM's multimask_output=False keeps output 0, True outputs 1..3.
        best = 1 + int(np.argmax(iou[0, 1:])) if multimask else 0
        valid_h = max(1, min(LOW_RES, round(valid_hw[0] * LOW_RES / self.image_size)))
        valid_w = max(1, min(LOW_RES, round(valid_hw[1] * LOW_RES / self.image_size)))
        logits = masks[0, best, :valid_h, :valid_w]
        probabilities = _sigmoid(resize_bilinear(logits, out_hw))
        return probabilities, float(iou[0, best])
