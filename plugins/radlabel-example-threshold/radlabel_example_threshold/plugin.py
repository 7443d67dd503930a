"""The example radlabel plugin: a real, tiny segmenter without a model.

- Box prompt: the Otsu threshold of the voxels inside the box (on its slice, or in a 3D box); the side of the
  threshold that touches less of the box's border is the object, so bright and dark objects both work.
- Point prompt: the connected region around the clicked voxel (on its slice, or in 3D) whose values lie
  within a tolerance of the clicked value; negative points remove the region around them.

Its "weights" are ``parameters.json`` (shipped in this package, or a file named in the settings); their
SHA-256 is checked before use and recorded with every proposal, exactly as a model's weights would be.
Only numpy/scipy and radlabel's public SDK are used; there is nothing to import lazily here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.ai.sdk import (
    BoxPrompt,
    Capabilities,
    Dimension,
    InferenceRequest,
    InputError,
    ModelIdentity,
    PluginContext,
    PluginWeightsError,
    PointPrompt,
    PromptKind,
    Proposal,
    WeightsStatus,
    cache_key,
    plugin_settings,
    verify_weights,
)

NAME = "example-threshold"
VERSION = "0.1.0"
PARAMETERS = Path(__file__).with_name("parameters.json")
# SHA-256 of the parameters.json shipped with this version (a real plugin pins its weights the same way).
PARAMETERS_SHA256 = "eabb51501efd2d035fe8fbc215702c6d4b470c21763c4946f70186d1a0875d60"

Part = tuple[tuple[int, int, int], NDArray[np.bool_]]  # (offset (k, j, i), mask)


def otsu_threshold(values: NDArray[Any], bins: int = 256) -> float:
    """Otsu's threshold of ``values`` on a ``bins``-bin histogram: the upper class is ``values >= t``."""
    data = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(data.min()), float(data.max())
    if high <= low:
        return high
    counts, edges = np.histogram(data, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2.0
    weight_low = np.cumsum(counts).astype(np.float64)
    weight_high = weight_low[-1] - weight_low
    sums = np.cumsum(counts * centres)
    mean_low = sums / np.maximum(weight_low, 1.0)
    mean_high = (sums[-1] - sums) / np.maximum(weight_high, 1.0)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    cut = int(np.argmax(between[:-1]))  # the lower class is bins 0..cut
    return float(edges[cut + 1])


def _kji(ijk: tuple[int, int, int]) -> tuple[int, int, int]:
    return (int(ijk[2]), int(ijk[1]), int(ijk[0]))


class ExampleThresholdPlugin:
    """See the module docstring. ``create()`` is the entry point's factory."""

    name = NAME
    version = VERSION
    sdk_version = "1.1"
    capabilities = Capabilities(
        prompt_kinds=frozenset({PromptKind.BOX, PromptKind.POINT}),
        dimensions=frozenset({Dimension.SLICE_2D, Dimension.VOLUME_3D}),
        modalities=frozenset(),  # any
        labels=(),  # whatever the prompt targets
        devices=frozenset({"cpu"}),  # numpy only: never ask for a GPU
    )

    def __init__(self) -> None:
        self.parameters: dict[str, Any] = {}
        self.sha256 = ""

    # -- weights ----------------------------------------------------------------------------------------

    def _parameters_file(self) -> tuple[Path, str]:
        """The packaged parameters, or ``[plugins.example-threshold] parameters = ...`` with its
        ``parameters_sha256`` from the settings."""
        options = plugin_settings(NAME)
        if "parameters" in options:
            expected = str(options.get("parameters_sha256", ""))
            if not expected:
                raise PluginWeightsError(
                    f"settings give parameters {options['parameters']} without parameters_sha256",
                    NAME,
                    'add parameters_sha256 = "<sha256 of the file>" under [plugins.example-threshold]',
                )
            return Path(str(options["parameters"])).expanduser(), expected
        return PARAMETERS, PARAMETERS_SHA256

    def weights_status(self) -> WeightsStatus:
        try:
            path, expected = self._parameters_file()
            digest = verify_weights(path, expected, NAME)
        except PluginWeightsError as exc:
            return WeightsStatus(present=False, message=str(exc))
        return WeightsStatus(present=True, location=str(path), sha256=digest)

    def load(self, context: PluginContext) -> None:
        path, expected = self._parameters_file()
        self.sha256 = verify_weights(path, expected, NAME)  # raises PluginWeightsError on a mismatch
        self.parameters = json.loads(path.read_text(encoding="utf-8"))
        context.progress(1.0, "parameters loaded")

    # -- inference --------------------------------------------------------------------------------------

    def predict(self, request: InferenceRequest, context: PluginContext) -> Proposal:
        boxes = [p for p in request.prompts if isinstance(p, BoxPrompt)]
        points = [p for p in request.prompts if isinstance(p, PointPrompt)]
        if not boxes and not any(p.positive for p in points):
            raise InputError(f"{NAME} needs a box or a positive point prompt")
        context.progress(0.0, "thresholding")
        started = time.perf_counter()
        image = request.image
        parts: list[Part] = []
        removed: list[Part] = []
        details: dict[str, Any] = {}
        for box in boxes:
            offset, mask, threshold = self._box(image, box, context)
            parts.append((offset, mask))
            details.setdefault("thresholds", []).append(threshold)
        for number, point in enumerate(points, start=1):
            context.progress(number / (len(points) + 1), "growing")
            offset, mask, tolerance = self._grow(image, point, request.options, context)
            (parts if point.positive else removed).append((offset, mask))
            details.setdefault("tolerances", []).append(tolerance)
        offset, labels = _combine(parts, removed, image.shape)
        context.progress(1.0, "done")
        return Proposal(
            offset=offset,
            model=ModelIdentity(NAME, VERSION, self.sha256),
            labels=labels,
            label_names={1: request.target_label or "object"},
            device=context.device,
            timing={"threshold": time.perf_counter() - started},
            prompt=request.prompt_json(),
            extra=details,
        )

    def _box(
        self, image: NDArray[Any], box: BoxPrompt, context: PluginContext
    ) -> tuple[tuple[int, int, int], NDArray[np.bool_], float]:
        a, b = _kji(box.ijk_min), _kji(box.ijk_max)
        low = [max(0, min(x, y)) for x, y in zip(a, b, strict=True)]
        high = [min(n - 1, max(x, y)) for x, y, n in zip(a, b, image.shape, strict=True)]
        if box.axis is not None:  # one slice: the box's index along its axis
            low[box.axis] = high[box.axis] = a[box.axis]
            if not 0 <= a[box.axis] < image.shape[box.axis]:
                raise InputError(f"the box's slice {a[box.axis]} is outside the image")
        if any(h < lo for lo, h in zip(low, high, strict=True)):
            raise InputError(f"the box {box.ijk_min}..{box.ijk_max} lies outside the image")
        region = image[low[0] : high[0] + 1, low[1] : high[1] + 1, low[2] : high[2] + 1]
        bins = int(self.parameters.get("otsu_bins", 256))
        key = cache_key("otsu", region, bins)  # same pixels, same answer: no need to compute it twice
        threshold = context.cache.get(key)
        if threshold is None:
            threshold = otsu_threshold(region, bins)
            context.cache[key] = threshold
        mask = np.asarray(region >= threshold)
        border = np.zeros(region.shape, dtype=bool)
        for axis in range(3):
            if axis != box.axis and region.shape[axis] > 1:
                index: list[Any] = [slice(None)] * 3
                index[axis] = [0, -1]
                border[tuple(index)] = True
        if border.any() and mask[border].mean() > 0.5:
            mask = ~mask  # the dark side is the object (e.g. a hypodense lesion in bright liver)
        return (low[0], low[1], low[2]), mask, float(threshold)

    def _grow(
        self, image: NDArray[Any], point: PointPrompt, options: dict[str, Any], context: PluginContext
    ) -> tuple[tuple[int, int, int], NDArray[np.bool_], float]:
        seed = _kji(point.ijk)
        if not all(0 <= s < n for s, n in zip(seed, image.shape, strict=True)):
            raise InputError(f"the point {point.ijk} is outside the image")
        if point.axis is None:
            plane, offset, local = image, (0, 0, 0), seed
        else:
            index: list[Any] = [slice(None)] * 3
            index[point.axis] = slice(seed[point.axis], seed[point.axis] + 1)
            plane = image[tuple(index)]
            offset_list = [0, 0, 0]
            offset_list[point.axis] = seed[point.axis]
            offset = (offset_list[0], offset_list[1], offset_list[2])
            local_list = list(seed)
            local_list[point.axis] = 0
            local = (local_list[0], local_list[1], local_list[2])
        if "tolerance" in options:
            tolerance = float(options["tolerance"])
        else:
            p_low, p_high = self.parameters.get("grow_range_percentiles", [1, 99])
            key = cache_key("range", plane, p_low, p_high)
            span = context.cache.get(key)
            if span is None:
                low, high = np.percentile(plane, [p_low, p_high])
                span = float(high - low)
                context.cache[key] = span
            tolerance = float(self.parameters.get("grow_tolerance_fraction", 0.1)) * span
        value = float(image[seed])
        allowed = np.abs(plane.astype(np.float64) - value) <= tolerance
        components, _ = ndimage.label(allowed)  # face connectivity
        mask = components == components[local]
        return offset, mask, tolerance


def _combine(
    parts: list[Part], removed: list[Part], shape: tuple[int, ...]
) -> tuple[tuple[int, int, int], NDArray[np.uint8]]:
    """Union of ``parts`` minus ``removed``, cropped to its bounding box (a 1-voxel empty box if nothing)."""
    if not parts:
        return (0, 0, 0), np.zeros((1, 1, 1), dtype=np.uint8)
    low = np.min([offset for offset, _ in parts], axis=0)
    high = np.max([np.add(offset, mask.shape) for offset, mask in parts], axis=0)
    union = np.zeros(tuple(int(n) for n in high - low), dtype=bool)
    for offset, mask in parts:
        start = np.subtract(offset, low)
        union[tuple(slice(int(s), int(s) + n) for s, n in zip(start, mask.shape, strict=True))] |= mask
    for offset, mask in removed:
        start = np.subtract(offset, low)
        stop = start + np.array(mask.shape)
        lo, hi = np.maximum(start, 0), np.minimum(stop, union.shape)
        if np.all(hi > lo):
            inner = tuple(slice(int(x - s), int(y - s)) for x, y, s in zip(lo, hi, start, strict=True))
            union[tuple(slice(int(x), int(y)) for x, y in zip(lo, hi, strict=True))] &= ~mask[inner]
    found = np.argwhere(union)
    if found.size == 0:
        first = tuple(int(v) for v in low)
        return (first[0], first[1], first[2]), np.zeros((1, 1, 1), dtype=np.uint8)
    a, b = found.min(axis=0), found.max(axis=0) + 1
    crop = union[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
    origin = low + a
    return (int(origin[0]), int(origin[1]), int(origin[2])), crop.astype(np.uint8)


def create() -> ExampleThresholdPlugin:
    """The entry point's factory: cheap (parameters load in ``load``, in the worker)."""
    return ExampleThresholdPlugin()
