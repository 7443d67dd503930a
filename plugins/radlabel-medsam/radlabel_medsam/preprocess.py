"""Image preparation for the SAM-family models: numpy only (no torch), so it is cheap to import and test.

Conventions. A volume is ``array[k, j, i]``. A slice along array axis ``axis`` (0: ``array[k]``,
1: ``array[:, j]``, 2: ``array[:, :, i]``) is a 2D *plane* whose rows and columns are the two remaining array
axes in order. Plane coordinates are ``(row, col)``; boxes on a plane are ``(x0, y0, x1, y1)`` = (col, row)
corners, inclusive pixel indices, as SAM expects.

Intensities follow MedSAM's own data preparation: CT clipped to a window (soft tissue L40/W400 unless another
preset is chosen), MR (and anything that is not CT) clipped to the 0.5-99.5 percentiles of the non-zero
voxels of the whole volume, then scaled to [0, 1]; the model input is then resized (longest side to the
model size with area interpolation), min-max normalised and zero-padded to a square.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel_medsam.errors import PromptError

# CT window presets: name -> (level, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "soft_tissue": (40.0, 400.0),
    "brain": (40.0, 80.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "liver": (60.0, 160.0),
}
_WINDOW_ALIASES = {"soft tissue": "soft_tissue", "soft-tissue": "soft_tissue", "abdomen": "soft_tissue"}
DEFAULT_WINDOW = "soft_tissue"
MR_PERCENTILES = (0.5, 99.5)
_PERCENTILE_SAMPLE = 8_000_000  # voxels; larger volumes are sampled on a regular stride


@dataclass(frozen=True)
class Normalisation:
    """How raw voxel values become [0, 1]: clip to ``[lower, upper]`` and scale.

    ``zero_background`` keeps voxels that are exactly 0 in the source at 0 (MedSAM's MR preparation, where 0
    is the background outside the head or body).
    """

    kind: str  # "window:<preset>", "window:custom" or "percentile"
    lower: float
    upper: float
    zero_background: bool = False

    @property
    def key(self) -> tuple[str, float, float, bool]:
        return (self.kind, round(self.lower, 4), round(self.upper, 4), self.zero_background)

    def apply(self, raw: NDArray[Any]) -> NDArray[np.float32]:
        values = raw.astype(np.float32, copy=False)
        span = max(self.upper - self.lower, 1e-6)
        scaled = (np.clip(values, self.lower, self.upper) - np.float32(self.lower)) / np.float32(span)
        if self.zero_background:
            scaled = np.where(values == 0, np.float32(0.0), scaled)
        return scaled.astype(np.float32, copy=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "lower": self.lower, "upper": self.upper, "zero_background": self.zero_background}


def window_normalisation(window: Any) -> Normalisation:
    """A CT window from a preset name or a ``(level, width)`` pair."""
    if isinstance(window, str):
        name = _WINDOW_ALIASES.get(window.strip().lower(), window.strip().lower())
        if name not in WINDOW_PRESETS:
            raise PromptError(
                f"unknown CT window preset {window!r}",
                fix=f"use one of {', '.join(sorted(WINDOW_PRESETS))} or a [level, width] pair",
            )
        level, width = WINDOW_PRESETS[name]
        kind = f"window:{name}"
    else:
        try:
            level, width = (float(v) for v in window)
        except (TypeError, ValueError) as exc:
            raise PromptError(f"window must be a preset name or [level, width], got {window!r}") from exc
        if width <= 0:
            raise PromptError(f"window width must be positive, got {width}")
        kind = "window:custom"
    return Normalisation(kind, level - width / 2.0, level + width / 2.0)


def volume_fingerprint(image: NDArray[Any]) -> str:
    """A cheap identity for a volume: shape, dtype and a strided sample of about 64^3 voxels."""
    steps = [max(1, n // 64) for n in image.shape]
    sample = np.ascontiguousarray(image[:: steps[0], :: steps[1], :: steps[2]])
    digest = hashlib.blake2b(sample.tobytes(), digest_size=12)
    digest.update(repr((image.shape, str(image.dtype))).encode())
    return digest.hexdigest()


def percentile_normalisation(image: NDArray[Any]) -> Normalisation:
    """MR: the 0.5-99.5 percentiles of the non-zero voxels of the whole volume (all voxels if none is 0)."""
    flat = image.reshape(-1)
    if flat.size > _PERCENTILE_SAMPLE:
        flat = flat[:: math.ceil(flat.size / _PERCENTILE_SAMPLE)]
    values = flat[flat != 0]
    has_zero_background = values.size < flat.size
    if values.size == 0:
        values = flat
    lower, upper = (float(v) for v in np.percentile(values.astype(np.float32), MR_PERCENTILES))
    if upper <= lower:
        lower, upper = float(values.min()), float(values.max())
    return Normalisation("percentile", lower, upper, zero_background=has_zero_background)


def choose_normalisation(image: NDArray[Any], modality: str, options: dict[str, Any]) -> Normalisation:
    """CT window by preset (``options["window"]``, default soft tissue), percentiles otherwise.

    ``options["window"] = "percentile"`` forces the percentile rule on any modality; a window given for a
    non-CT image is used as asked. With no modality, an integer volume reaching below -500 is taken as CT.
    """
    window = options.get("window")
    if isinstance(window, str) and window.strip().lower() in ("percentile", "percentiles", "auto", "mr"):
        return percentile_normalisation(image)
    if window is not None:
        return window_normalisation(window)
    modality = (modality or "").upper()
    looks_ct = modality == "CT" or (
        not modality and np.issubdtype(image.dtype, np.integer) and image.size and image.min() < -500
    )
    if looks_ct:
        return window_normalisation(DEFAULT_WINDOW)
    return percentile_normalisation(image)


# ---------------------------------------------------------------------------------------------------- planes


def plane_axes(axis: int) -> tuple[int, int]:
    """The array axes (row axis, column axis) of a slice along array axis ``axis``."""
    if axis not in (0, 1, 2):
        raise PromptError(f"slice axis must be 0 (k), 1 (j) or 2 (i), got {axis!r}")
    rows, cols = (a for a in (0, 1, 2) if a != axis)
    return rows, cols


def extract_plane(image: NDArray[Any], axis: int, index: int) -> NDArray[Any]:
    """The 2D slice ``index`` along array axis ``axis`` (a view)."""
    if not 0 <= index < image.shape[axis]:
        raise PromptError(f"slice {index} is outside the volume (axis {axis} has {image.shape[axis]} slices)")
    return np.take(image, index, axis=axis)


def plane_spacing(spacing_ijk: tuple[float, float, float], axis: int) -> tuple[float, float]:
    """Pixel spacing (row, col) in mm of a slice along ``axis``; ``spacing_ijk`` is (i, j, k)."""
    rows, cols = plane_axes(axis)
    return float(spacing_ijk[2 - rows]), float(spacing_ijk[2 - cols])


def ijk_to_plane(ijk: tuple[int, int, int], axis: int) -> tuple[int, int, int]:
    """(slice index, row, col) of voxel ``ijk`` (i, j, k) on a slice along array axis ``axis``."""
    kji = (int(ijk[2]), int(ijk[1]), int(ijk[0]))
    rows, cols = plane_axes(axis)
    return kji[axis], kji[rows], kji[cols]


def plane_box_from_prompt(
    ijk_min: tuple[int, int, int], ijk_max: tuple[int, int, int], axis: int, shape: tuple[int, ...]
) -> tuple[int, tuple[int, int, int, int]]:
    """(slice index, (x0, y0, x1, y1)) of a box prompt on a slice along ``axis``, clipped to the plane."""
    s0, r0, c0 = ijk_to_plane(ijk_min, axis)
    s1, r1, c1 = ijk_to_plane(ijk_max, axis)
    if s0 != s1:
        raise PromptError(f"a box on a slice along axis {axis} must have one slice index, got {s0}..{s1}")
    rows, cols = plane_axes(axis)
    y0, y1 = sorted((r0, r1))
    x0, x1 = sorted((c0, c1))
    y0, y1 = max(0, y0), min(shape[rows] - 1, y1)
    x0, x1 = max(0, x0), min(shape[cols] - 1, x1)
    if y1 < y0 or x1 < x0:
        raise PromptError("the box lies outside the image")
    return s0, (x0, y0, x1, y1)


def place_plane(
    values: NDArray[Any], axis: int, index: int, row_range: tuple[int, int], col_range: tuple[int, int]
) -> tuple[tuple[int, int, int], NDArray[Any]]:
    """Offset (k, j, i) and the 3D array (one slice thick along ``axis``) of a 2D region of a plane."""
    offset = [0, 0, 0]
    rows, cols = plane_axes(axis)
    offset[axis] = index
    offset[rows] = row_range[0]
    offset[cols] = col_range[0]
    block = np.expand_dims(values, axis=axis)
    return (offset[0], offset[1], offset[2]), block


# ---------------------------------------------------------------------------------------------------- resize


def _area_matrix(n_in: int, n_out: int) -> NDArray[np.float64]:
    """Resampling weights (n_out x n_in) of OpenCV's INTER_AREA along one axis.

    Shrinking: each output pixel is the mean of the input pixels it covers, weighted by the covered fraction.
    Enlarging: OpenCV's area mode is a linear interpolation whose weight is zero except across the input
    pixel boundaries (a "sharp" linear), reproduced here so results match the upstream preprocessing.
    """
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    if n_in == n_out:
        np.fill_diagonal(weights, 1.0)
        return weights
    scale = n_in / n_out
    if scale > 1.0:
        starts = np.arange(n_out) * scale
        ends = starts + scale
        for out in range(n_out):
            first, last = math.floor(starts[out]), min(math.ceil(ends[out]), n_in)
            for src in range(first, last):
                overlap = min(ends[out], src + 1) - max(starts[out], src)
                if overlap > 0:
                    weights[out, src] = overlap / scale
        return weights
    inv = n_out / n_in
    for out in range(n_out):
        src = math.floor(out * scale)
        frac = (out + 1) - (src + 1) * inv
        frac = 0.0 if frac <= 0 else frac - math.floor(frac)
        lo, hi = min(max(src, 0), n_in - 1), min(max(src + 1, 0), n_in - 1)
        weights[out, lo] += 1.0 - frac
        weights[out, hi] += frac
    return weights


def _linear_matrix(n_in: int, n_out: int) -> NDArray[np.float64]:
    """Bilinear weights (half-pixel centres, like ``align_corners=False``) along one axis."""
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    for out in range(n_out):
        pos = min(max((out + 0.5) * scale - 0.5, 0.0), n_in - 1.0)
        lo = math.floor(pos)
        hi = min(lo + 1, n_in - 1)
        frac = pos - lo
        weights[out, lo] += 1.0 - frac
        weights[out, hi] += frac
    return weights


_MATRIX_CACHE: dict[tuple[str, int, int], NDArray[np.float32]] = {}


def resize_matrix(n_in: int, n_out: int, mode: str = "area") -> NDArray[np.float32]:
    """Cached (n_out x n_in) resampling matrix; ``mode`` "area" (OpenCV INTER_AREA) or "linear"."""
    key = (mode, n_in, n_out)
    matrix = _MATRIX_CACHE.get(key)
    if matrix is None:
        build = _area_matrix if mode == "area" else _linear_matrix
        matrix = build(n_in, n_out).astype(np.float32)
        if len(_MATRIX_CACHE) > 256:
            _MATRIX_CACHE.clear()
        _MATRIX_CACHE[key] = matrix
    return matrix


def resize2d(image: NDArray[Any], height: int, width: int, mode: str = "area") -> NDArray[np.float32]:
    """Separable resize of a 2D float image to ``height`` x ``width``."""
    rows = resize_matrix(image.shape[0], height, mode)
    cols = resize_matrix(image.shape[1], width, mode)
    result: NDArray[np.float32] = rows @ image.astype(np.float32, copy=False) @ cols.T
    return result


# ---------------------------------------------------------------------------------------------------- model input


@dataclass(frozen=True)
class Crop:
    """A rectangle of a plane: rows ``r0:r1``, columns ``c0:c1`` (exclusive ends)."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def height(self) -> int:
        return self.r1 - self.r0

    @property
    def width(self) -> int:
        return self.c1 - self.c0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.r0, self.r1, self.c0, self.c1)


@dataclass(frozen=True)
class ModelInput:
    """A crop of a plane prepared for the encoder, and how to map coordinates to and from it.

    ``image`` is ``size x size`` float32 in [0, 1]; the crop occupies its top-left ``new_h x new_w``
    (LiteMedSAM: longest side resized, zero padding) or all of it (MedSAM: resized to a square).
    """

    image: NDArray[np.float32]
    crop: Crop
    new_h: int
    new_w: int
    size: int

    @property
    def scale_y(self) -> float:
        return self.new_h / self.crop.height

    @property
    def scale_x(self) -> float:
        return self.new_w / self.crop.width

    def box_to_model(self, box: tuple[float, float, float, float]) -> NDArray[np.float32]:
        """A plane box (x0, y0, x1, y1) to model-input coordinates (MedSAM scales corner indices)."""
        x0, y0, x1, y1 = box
        return np.array(
            [
                (x0 - self.crop.c0) * self.scale_x,
                (y0 - self.crop.r0) * self.scale_y,
                (x1 - self.crop.c0) * self.scale_x,
                (y1 - self.crop.r0) * self.scale_y,
            ],
            dtype=np.float32,
        )

    def points_to_model(self, points_rc: NDArray[Any]) -> NDArray[np.float32]:
        """Plane points (row, col) to model-input (x, y), at pixel centres."""
        rc = np.asarray(points_rc, dtype=np.float64).reshape(-1, 2)
        x = (rc[:, 1] - self.crop.c0 + 0.5) * self.scale_x - 0.5
        y = (rc[:, 0] - self.crop.r0 + 0.5) * self.scale_y - 0.5
        return np.stack([x, y], axis=1).astype(np.float32)


def prepare_input(
    plane01: NDArray[np.float32],
    crop: Crop,
    pixel_spacing: tuple[float, float],
    size: int,
    keep_aspect: bool = True,
    upsample_mode: str = "area",
) -> ModelInput:
    """Resize a crop of a normalised plane to the model size, min-max normalise and pad.

    With ``keep_aspect`` the longest *physical* side becomes ``size`` (for square pixels this is MedSAM's
    "longest side to 256"; for a coronal or sagittal slice of thick slices it also makes the pixels square
    so the model sees the anatomy's real shape), the rest is zero padding. Without it the crop is stretched
    to ``size x size`` (MedSAM ViT-B's preprocessing).
    """
    region = plane01[crop.r0 : crop.r1, crop.c0 : crop.c1]
    height, width = region.shape
    if keep_aspect:
        extent_h, extent_w = height * pixel_spacing[0], width * pixel_spacing[1]
        scale = size / max(extent_h, extent_w)
        new_h = max(1, min(size, int(extent_h * scale + 0.5)))
        new_w = max(1, min(size, int(extent_w * scale + 0.5)))
    else:
        new_h = new_w = size
    mode_h = "area" if new_h <= height else upsample_mode
    mode_w = "area" if new_w <= width else upsample_mode
    rows = resize_matrix(height, new_h, mode_h)
    cols = resize_matrix(width, new_w, mode_w)
    resized = rows @ region.astype(np.float32, copy=False) @ cols.T
    low, high = float(resized.min()), float(resized.max())
    resized = (resized - low) / max(high - low, 1e-8)
    image = np.zeros((size, size), dtype=np.float32)
    image[:new_h, :new_w] = resized
    return ModelInput(image=image, crop=crop, new_h=new_h, new_w=new_w, size=size)


# ---------------------------------------------------------------------------------------------------- zoom


@dataclass(frozen=True)
class ZoomRule:
    """When and how to encode a crop around a small box instead of the whole slice.

    Zoom when the box's longest physical side is under ``max_fraction`` of the slice's longest physical side
    (the box would cover fewer than ``max_fraction * 256`` pixels of LiteMedSAM's input). The crop is a
    square (in mm) centred on the box, ``context`` times the box's longest side and at least ``min_side_px``
    pixels, moved inside the slice where it would cross an edge.

    The defaults were chosen by Dice on 249 reference boxes of ../shared/data (pyradiomics brain1/breast1,
    BraTS whole tumour/core, TotalSegmentator organs at 3 mm and small vessels/glands on the 512 x 512 CT):
    context 3 beat 2 and 4; zooming only below 1/8 of the slice gave the best mean Dice (0.880 against
    0.851 never and 0.858 always zooming); above it, zoom cost Dice on mid-sized objects. On objects under
    300 px the mean went from 0.820 to 0.869, on the 512 x 512 CT from 0.43 to 0.74 (adrenal gland),
    0.52 to 0.82 (inferior vena cava).
    """

    enabled: bool = True
    max_fraction: float = 0.125
    context: float = 3.0
    min_side_px: int = 32

    def crop_for(
        self, box: tuple[int, int, int, int], plane_shape: tuple[int, int], pixel_spacing: tuple[float, float]
    ) -> Crop | None:
        """The crop to encode for ``box`` (x0, y0, x1, y1), or None for the whole slice."""
        if not self.enabled:
            return None
        height, width = plane_shape
        sy, sx = pixel_spacing
        x0, y0, x1, y1 = box
        box_mm = max((x1 - x0 + 1) * sx, (y1 - y0 + 1) * sy)
        plane_mm = max(height * sy, width * sx)
        if box_mm >= self.max_fraction * plane_mm:
            return None
        side_mm = max(self.context * box_mm, self.min_side_px * min(sx, sy))
        side_r = min(height, math.ceil(side_mm / sy))
        side_c = min(width, math.ceil(side_mm / sx))
        if side_r >= height and side_c >= width:
            return None
        centre_r, centre_c = (y0 + y1 + 1) / 2.0, (x0 + x1 + 1) / 2.0
        r0 = round(centre_r - side_r / 2.0)
        c0 = round(centre_c - side_c / 2.0)
        r0 = min(max(r0, 0), height - side_r)
        c0 = min(max(c0, 0), width - side_c)
        return Crop(r0, r0 + side_r, c0, c0 + side_c)


def zoom_rule_from_options(options: dict[str, Any], default: ZoomRule) -> ZoomRule:
    """``options["zoom"]``: False/True, or a dict of ZoomRule fields overriding the default."""
    value = options.get("zoom")
    if value is None:
        return default
    if isinstance(value, bool):
        return ZoomRule(value, default.max_fraction, default.context, default.min_side_px)
    if isinstance(value, dict):
        return ZoomRule(
            enabled=bool(value.get("enabled", True)),
            max_fraction=float(value.get("max_fraction", default.max_fraction)),
            context=float(value.get("context", default.context)),
            min_side_px=int(value.get("min_side_px", default.min_side_px)),
        )
    raise PromptError(f"option 'zoom' must be true, false or a dict, got {value!r}")


# ---------------------------------------------------------------------------------------------------- masks


def mask_box(mask: NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1) of a 2D mask, None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def expand_box(box: tuple[int, int, int, int], margin: int, plane_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    height, width = plane_shape
    return max(0, x0 - margin), max(0, y0 - margin), min(width - 1, x1 + margin), min(height - 1, y1 + margin)


def dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else int(np.logical_and(a, b).sum()) / union
