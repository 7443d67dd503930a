"""Slice segmentation, embedding cache and 3D propagation on top of a SamModel. No torch import here.

A ``Segmenter`` works on one request's volume: it picks the region to encode (the whole slice, or a crop around
a small box: adaptive zoom), looks the embedding up in the cache, runs the encoder only on a miss, then the
decoder for the prompts, and maps the probabilities back onto the slice's pixel grid.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from radlabel_medsam.errors import PromptError
from radlabel_medsam.preprocess import (
    Crop,
    Normalisation,
    ZoomRule,
    expand_box,
    extract_plane,
    iou,
    mask_box,
    plane_spacing,
    prepare_input,
)

EMBEDDING_CACHE_KEY = "radlabel_medsam.embeddings"
DEFAULT_CACHE_ENTRIES = 48  # LiteMedSAM embeddings are 4 MiB each


class Model(Protocol):
    """What the segmenter needs from a network (radlabel_medsam.model.SamModel)."""

    name: str
    image_size: int
    keep_aspect: bool
    encoder_calls: int

    def encode(self, image01: NDArray[np.float32]) -> Any: ...

    def decode(
        self,
        embedding: Any,
        box: NDArray[np.float32] | None,
        points: NDArray[np.float32] | None,
        labels: NDArray[np.int64] | None,
        valid_hw: tuple[int, int],
        out_hw: tuple[int, int],
        multimask: bool = False,
    ) -> tuple[NDArray[np.float32], float]: ...


@dataclass
class SliceResult:
    """Probabilities on a whole slice (zero outside the encoded crop) and how they were made."""

    index: int
    probabilities: NDArray[np.float32]
    crop: Crop
    zoomed: bool
    cache_hit: bool
    iou_prediction: float
    box: tuple[int, int, int, int] | None
    timing: dict[str, float] = field(default_factory=dict)

    def mask(self) -> NDArray[np.bool_]:
        result: NDArray[np.bool_] = self.probabilities >= 0.5
        return result


@dataclass(frozen=True)
class PropagationRule:
    """How propagation chooses each slice's box and when it stops in one direction.

    Box: the previous slice's mask bounding box enlarged by ``margin_px`` (at least) or ``margin_fraction`` of
    its longest side. Where the new mask touches a side of that box (the object grows), that side moves out by
    ``grow_fraction`` of the box and the decoder runs again (same embedding), up to ``refine_steps`` times and
    never past ``max_growth`` times the previous box's size.

    Stop when the new mask is smaller than ``min_area_px``, keeps less than ``min_area_ratio`` of the previous
    slice's area, overlaps it with IoU below ``min_iou``, the decoder's own IoU estimate is below
    ``min_predicted_iou``, or fewer than ``min_tissue_match`` of its pixels have intensities within the seed
    mask's 5-95 % range (widened by ``tissue_tolerance`` of the [0, 1] scale): the box has left the object.

    Measured on ../shared/data: LiteMedSAM keeps proposing a plausible blob in a box after the object has ended
    (area, IoU with the previous slice and the decoder's IoU estimate hardly change), while the share of mask
    pixels with the seed's intensities falls from above 0.75 inside the object to below 0.5 within a slice of
    its end (BraTS tumour, breast lesion, kidney); that test stops propagation, the others catch collapses.
    """

    min_area_px: int = 4
    min_area_ratio: float = 0.3
    min_iou: float = 0.2
    min_predicted_iou: float = 0.5
    min_tissue_match: float = 0.5
    tissue_tolerance: float = 0.05
    margin_px: int = 2
    margin_fraction: float = 0.05
    grow_fraction: float = 0.15
    refine_steps: int = 3
    max_growth: float = 1.6
    max_slices: int = 400

    def margin(self, box: tuple[int, int, int, int]) -> int:
        longest = max(box[2] - box[0] + 1, box[3] - box[1] + 1)
        return max(self.margin_px, round(self.margin_fraction * longest))


def _cache_of(store: dict[str, Any]) -> OrderedDict[tuple[Any, ...], Any]:
    cache = store.get(EMBEDDING_CACHE_KEY)
    if not isinstance(cache, OrderedDict):
        cache = OrderedDict()
        store[EMBEDDING_CACHE_KEY] = cache
    return cache


class Segmenter:
    """Segments slices of one volume with one model, caching image embeddings in ``store``."""

    def __init__(
        self,
        model: Model,
        model_key: str,
        image: NDArray[Any],
        spacing_ijk: tuple[float, float, float],
        normalisation: Normalisation,
        volume_key: str,
        zoom: ZoomRule,
        store: dict[str, Any],
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        upsample_mode: str = "area",
    ) -> None:
        self.model = model
        self.model_key = model_key
        self.image = image
        self.spacing_ijk = spacing_ijk
        self.normalisation = normalisation
        self.volume_key = volume_key
        self.zoom = zoom
        self.cache = _cache_of(store)
        self.cache_entries = cache_entries
        self.upsample_mode = upsample_mode

    # ------------------------------------------------------------------------------------------ one slice

    def _embedding(self, axis: int, index: int, raw_plane: NDArray[Any], crop: Crop) -> tuple[Any, Any, bool, float]:
        spacing = plane_spacing(self.spacing_ijk, axis)
        region = np.ascontiguousarray(raw_plane[crop.r0 : crop.r1, crop.c0 : crop.c1])
        content = hashlib.blake2b(region.tobytes(), digest_size=12).hexdigest()
        key = (
            self.model_key,
            self.volume_key,
            axis,
            index,
            crop.as_tuple(),
            self.normalisation.key,
            self.upsample_mode,
            spacing,
            content,
        )
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.move_to_end(key)
            embedding, model_input = cached
            return embedding, model_input, True, 0.0
        normalised = self.normalisation.apply(region)
        whole = Crop(0, region.shape[0], 0, region.shape[1])
        local = prepare_input(
            normalised, whole, spacing, self.model.image_size, self.model.keep_aspect, self.upsample_mode
        )
        start = time.perf_counter()
        embedding = self.model.encode(local.image)
        elapsed = time.perf_counter() - start
        self.cache[key] = (embedding, local)
        while len(self.cache) > self.cache_entries:
            self.cache.popitem(last=False)
        return embedding, local, False, elapsed

    def segment(
        self,
        axis: int,
        index: int,
        box: tuple[int, int, int, int] | None = None,
        points_rc: NDArray[np.int64] | None = None,
        point_labels: NDArray[np.int64] | None = None,
        multimask: bool | None = None,
        crop_box: tuple[int, int, int, int] | None = None,
    ) -> SliceResult:
        """Probabilities on slice ``index`` along ``axis`` for a box (x0, y0, x1, y1) and/or points (row, col).

        ``crop_box`` (default: the box) is the box the zoom rule decides the encoded region from; propagation
        keeps it fixed while it enlarges the prompt box, so the refinement reuses the cached embedding.
        """
        if box is None and (points_rc is None or len(points_rc) == 0):
            raise PromptError("a slice prompt needs a box or at least one point")
        t0 = time.perf_counter()
        raw_plane = extract_plane(self.image, axis, index)
        height, width = raw_plane.shape
        spacing = plane_spacing(self.spacing_ijk, axis)
        decide = crop_box if crop_box is not None else box
        crop = self.zoom.crop_for(decide, (height, width), spacing) if decide is not None else None
        zoomed = crop is not None
        if crop is None:
            crop = Crop(0, height, 0, width)
        embedding, local, hit, encode_s = self._embedding(axis, index, raw_plane, crop)
        t1 = time.perf_counter()
        model_box = None
        if box is not None:
            shifted = (box[0] - crop.c0, box[1] - crop.r0, box[2] - crop.c0, box[3] - crop.r0)
            model_box = local.box_to_model(shifted)
        model_points = None
        if points_rc is not None and len(points_rc):
            shifted_points = np.asarray(points_rc, dtype=np.int64).reshape(-1, 2) - np.array([crop.r0, crop.c0])
            model_points = local.points_to_model(shifted_points)
        if multimask is None:
            multimask = box is None and model_points is not None and len(model_points) == 1
        probabilities, predicted_iou = self.model.decode(
            embedding,
            model_box,
            model_points,
            None if point_labels is None else np.asarray(point_labels, dtype=np.int64),
            (local.new_h, local.new_w),
            (crop.height, crop.width),
            multimask,
        )
        full = np.zeros((height, width), dtype=np.float32)
        full[crop.r0 : crop.r1, crop.c0 : crop.c1] = probabilities
        t2 = time.perf_counter()
        timing = {"prepare+encode": t1 - t0, "encode": encode_s, "decode": t2 - t1}
        return SliceResult(index, full, crop, zoomed, hit, predicted_iou, box, timing)

    # ------------------------------------------------------------------------------------------ propagation

    def _tissue_range(self, axis: int, index: int, mask: NDArray[np.bool_]) -> tuple[float, float]:
        values = self.normalisation.apply(extract_plane(self.image, axis, index)[mask])
        low, high = np.percentile(values, (5.0, 95.0)) if values.size else (0.0, 1.0)
        return float(low), float(high)

    def _tissue_match(self, axis: int, index: int, mask: NDArray[np.bool_], bounds: tuple[float, float]) -> float:
        values = self.normalisation.apply(extract_plane(self.image, axis, index)[mask])
        if values.size == 0:
            return 0.0
        return float(np.mean((values >= bounds[0]) & (values <= bounds[1])))

    def _follow(
        self, axis: int, index: int, previous: NDArray[np.bool_], rule: PropagationRule
    ) -> tuple[SliceResult, NDArray[np.bool_]]:
        """Segment slice ``index`` from the previous slice's mask, enlarging the box where the object grows."""
        shape = previous.shape
        box0 = mask_box(previous)
        assert box0 is not None
        box = expand_box(box0, rule.margin(box0), shape)
        crop_box = box
        width0, height0 = box[2] - box[0] + 1, box[3] - box[1] + 1
        result = self.segment(axis, index, box=box, crop_box=crop_box)
        mask = result.mask()
        for _ in range(rule.refine_steps):
            found = mask_box(mask)
            if found is None:
                break
            x0, y0, x1, y1 = box
            grow_x = max(rule.margin_px, round(rule.grow_fraction * (x1 - x0 + 1)))
            grow_y = max(rule.margin_px, round(rule.grow_fraction * (y1 - y0 + 1)))
            limit_x = round((rule.max_growth - 1.0) * width0 / 2.0)
            limit_y = round((rule.max_growth - 1.0) * height0 / 2.0)
            new = (
                max(0, x0 - grow_x, box[0] - limit_x) if found[0] <= x0 else x0,
                max(0, y0 - grow_y, box[1] - limit_y) if found[1] <= y0 else y0,
                min(shape[1] - 1, x1 + grow_x, box[2] + limit_x) if found[2] >= x1 else x1,
                min(shape[0] - 1, y1 + grow_y, box[3] + limit_y) if found[3] >= y1 else y1,
            )
            new = (
                max(new[0], crop_box[0] - limit_x),
                max(new[1], crop_box[1] - limit_y),
                min(new[2], crop_box[2] + limit_x),
                min(new[3], crop_box[3] + limit_y),
            )
            if new == box:
                break
            box = new
            result = self.segment(axis, index, box=box, crop_box=crop_box)
            mask = result.mask()
        return result, mask

    def propagate(
        self,
        axis: int,
        seed_index: int,
        seed_mask: NDArray[np.bool_],
        rule: PropagationRule,
        limits: tuple[int, int] | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> tuple[dict[int, SliceResult], dict[str, str]]:
        """Slice by slice away from ``seed_index`` in both directions, each box from the previous mask.

        Returns the accepted slices (seed excluded) and why each direction stopped ("+" and "-").
        """
        if not seed_mask.any():
            raise PromptError("the seed mask for propagation is empty")
        count = self.image.shape[axis]
        lo, hi = limits if limits is not None else (0, count - 1)
        lo, hi = max(0, lo), min(count - 1, hi)
        lo, hi = max(lo, seed_index - rule.max_slices), min(hi, seed_index + rule.max_slices)
        total = max(1, hi - lo)
        tissue = self._tissue_range(axis, seed_index, seed_mask)
        bounds = (tissue[0] - rule.tissue_tolerance, tissue[1] + rule.tissue_tolerance)
        results: dict[int, SliceResult] = {}
        reasons: dict[str, str] = {}
        done = 0
        for step, sign in ((1, "+"), (-1, "-")):
            previous = seed_mask
            previous_area = int(seed_mask.sum())
            index = seed_index + step
            reason = "end of volume" if limits is None else "end of range"
            while lo <= index <= hi:
                if progress is not None:
                    progress(done / total, f"slice {index}")
                result, mask = self._follow(axis, index, previous, rule)
                area = int(mask.sum())
                done += 1
                if area < rule.min_area_px:
                    reason = f"mask empty on slice {index}"
                    break
                if area < rule.min_area_ratio * previous_area:
                    reason = f"area fell to {area / previous_area:.2f} of the previous slice on slice {index}"
                    break
                overlap = iou(mask, previous)
                if overlap < rule.min_iou:
                    reason = f"IoU with the previous slice {overlap:.2f} on slice {index}"
                    break
                if result.iou_prediction < rule.min_predicted_iou:
                    reason = f"predicted IoU {result.iou_prediction:.2f} on slice {index}"
                    break
                match = self._tissue_match(axis, index, mask, bounds)
                if match < rule.min_tissue_match:
                    reason = f"only {match:.2f} of the mask matches the seed's intensities on slice {index}"
                    break
                results[index] = result
                previous, previous_area = mask, area
                index += step
            reasons[sign] = reason
        if progress is not None:
            progress(1.0, "propagation done")
        return results, reasons
