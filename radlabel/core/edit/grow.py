"""Grow from seeds: several segments' seed strokes compete for the voxels around them.

The reader paints a few strokes in each structure (and in the background, as a segment of its own); every voxel
of the computation box then goes to the segment whose seeds reach it first when the image is flooded from all
seeds at once along rising edge strength: a marker-based watershed on the gradient magnitude of the
Gaussian-smoothed image. The flood (`flood_from_markers`) is ITK's MorphologicalWatershedFromMarkers (face
connectivity, no watershed line) reproduced voxel for voxel, ties included, in numpy. Boundaries settle on the
strongest edges between seeds, so two touching organs of different brightness separate along their interface.

As in Slicer, the computation covers only the seeds' bounding box grown by a margin (``margin_mm``), not the
volume, and its result replaces the segments inside that box only. `GrowFromSeeds` keeps the expensive part
(the edge-strength image of the box) between calls, so after the reader adds or moves a stroke `update` runs
only the competition. The box is snapped outward to multiples of ``snap`` voxels, so small changes of the
seeds keep the same box (and the cache); an update gives exactly what a fresh run with the same seeds gives,
because both compute on the same box from the same image.

Large boxes (more than ``multiresolution_above`` voxels) are flooded in two passes: first on a grid coarsened
2x along every axis with voxels of 1.25 mm or less (the coarse edge strength of a block is its strongest
voxel), then at full resolution only where the coarse answer is in doubt: the coarse voxels on both sides of
every coarse boundary, and blocks where a seed disagrees with the coarse answer. Everywhere else keeps the
coarse answer. On the demo CT's liver the two passes agree with a single full-resolution flood on 99.7 % of
the box (Dice with the true liver 0.992 against 0.986 for the single pass) at a fraction of its cost.

Each segment's result is a `Region` covering the whole computation box, for ``EditMode.REPLACE``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core.edit.common import (
    Box,
    box_offset,
    box_shape,
    check_length,
    make_box,
    mask_box,
    pad_box,
    region_box,
    segment_crop,
    shape_of,
    spacing_kji,
    union_box,
)
from radlabel.core.edit.errors import EditParameterError, NoSeedsError, OutsideGridError
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Segmentation
from radlabel.core.volume import Volume

MODE = EditMode.REPLACE
"""Mode to apply grow-from-seeds regions with."""

Labels = NDArray[np.unsignedinteger[Any]]
_G = TypeVar("_G", bound=np.generic)

_TRUNCATE = 3.0  # Gaussian support in sigmas, used to pad the box exactly
_COARSE_SPACING_MM = 1.25  # axes with voxels up to this size are halved on the coarse pass
_BAND_GROWTH = 0  # coarse voxels added around the coarse boundary for the fine pass (0: just the boundary)


class GrowFromSeeds:
    """Grow-from-seeds on one volume, keeping its edge-strength image between updates.

    ``margin_mm``: how far around the seeds' bounding box the segments may grow. ``sigma_mm``: smoothing of the
    image before its gradient is taken (larger ignores more noise, blurs thin structures). ``levels``: the edge
    strength s is compressed into this many levels (``levels * s / (s + median s)``, at most 255) before
    flooding. ``snap``: the box's sides lie on multiples of this many voxels. ``multiresolution_above``: boxes of
    more voxels are flooded in two passes (see the module documentation).
    """

    def __init__(
        self,
        volume: Volume,
        *,
        margin_mm: float = 10.0,
        sigma_mm: float = 1.0,
        levels: int = 64,
        snap: int = 8,
        multiresolution_above: int = 1_000_000,
    ) -> None:
        self.volume = volume
        self.margin_mm = check_length("grow margin", margin_mm, allow_zero=True)
        self.sigma_mm = check_length("smoothing sigma", sigma_mm)
        if not 2 <= int(levels) <= 255:
            raise EditParameterError(f"levels must be between 2 and 255, got {levels!r}")
        self.levels = int(levels)
        self.snap = max(1, int(snap))
        self.multiresolution_above = int(multiresolution_above)
        self._box: Box | None = None
        self._feature: NDArray[np.uint8] | None = None
        self._coarse_feature: NDArray[np.uint8] | None = None
        self._factors: tuple[int, int, int] = (1, 1, 1)

    @property
    def box(self) -> Box | None:
        """The computation box of the last update (``None`` before the first)."""
        return self._box

    @property
    def cached(self) -> bool:
        """Whether an edge-strength image is kept (the next update in the same box reuses it)."""
        return self._feature is not None

    def reset(self) -> None:
        """Drop the cached edge-strength image (e.g. after the image itself changed)."""
        self._box = None
        self._feature = None
        self._coarse_feature = None

    def update(self, seeds: Mapping[int, Region]) -> dict[int, tuple[Region, EditMode]]:
        """Grow the segments from ``seeds`` (segment id -> its seed voxels).

        Needs non-empty seeds for at least two segments (one is usually the background); segments with empty
        seeds are left out. Where seeds of two segments overlap, the later one in ``seeds`` wins. Returns, per
        segment id, the segment's voxels in the computation box with ``EditMode.REPLACE`` (the regions
        partition the box). Raises `NoSeedsError` and `OutsideGridError` (a seed region
        off the grid).
        """
        shape = shape_of(self.volume)
        used: list[tuple[int, Region, Box]] = []
        for segment_id, region in seeds.items():
            _check_region(region, shape, segment_id)
            tight = region_box(region)
            if tight is not None:
                used.append((int(segment_id), region, tight))
        if len(used) < 2:
            raise NoSeedsError(
                f"grow from seeds needs seeds in at least two segments, got {len(used)}",
                fix="paint a few strokes in each structure and in the background (as its own segment)",
            )
        box = self._computation_box([tight for _, _, tight in used], shape)
        if box != self._box or self._feature is None:
            self._prepare(box)
        assert self._feature is not None
        markers = self._markers(box, used)
        if self._coarse_feature is not None:
            labels = self._two_pass(markers)
        else:
            labels = flood_from_markers(self._feature, markers)
        offset = box_offset(box)
        return {sid: (Region(offset, labels == n), EditMode.REPLACE) for n, (sid, _, _) in enumerate(used, start=1)}

    # ----------------------------------------------------------------------------------------------------------

    def _computation_box(self, boxes: list[Box], shape: tuple[int, int, int]) -> Box:
        seeds_box: Box | None = None
        for b in boxes:
            seeds_box = union_box(seeds_box, b)
        assert seeds_box is not None
        spacing = spacing_kji(self.volume)
        pad = [math.ceil(self.margin_mm / s - 1e-9) for s in spacing]
        low = [(s.start - p) // self.snap * self.snap for s, p in zip(seeds_box, pad, strict=True)]
        high = [-(-(s.stop + p) // self.snap) * self.snap for s, p in zip(seeds_box, pad, strict=True)]
        return make_box(low, high, shape)

    def _prepare(self, box: Box) -> None:
        """Edge strength of ``box``: gradient magnitude of the smoothed image, compressed into levels."""
        self.reset()
        spacing = spacing_kji(self.volume)
        shape = shape_of(self.volume)
        sigmas = [self.sigma_mm / s for s in spacing]
        # the smoothing reaches int(truncate * sigma + 0.5) voxels and the central difference one more: with that
        # much of the image around the box, every value inside it is exactly what a larger box would give
        pad = [int(_TRUNCATE * sg + 0.5) + 1 for sg in sigmas]
        outer = make_box(
            [b.start - p for b, p in zip(box, pad, strict=True)],
            [b.stop + p for b, p in zip(box, pad, strict=True)],
            shape,
        )
        smooth = self.volume.array[outer].astype(np.float32)
        for axis, sigma in enumerate(sigmas):
            ndimage.gaussian_filter1d(smooth, sigma, axis=axis, output=smooth, mode="nearest", truncate=_TRUNCATE)
        # one more voxel of nearest-value padding serves the central differences at the grid's edge
        smooth = np.pad(smooth, 1, mode="edge")
        inner = [slice(b.start - o.start + 1, b.stop - o.start + 1) for b, o in zip(box, outer, strict=True)]
        strength = np.zeros(box_shape(box), dtype=np.float32)
        for axis in range(3):
            ahead, behind = list(inner), list(inner)
            ahead[axis] = slice(inner[axis].start + 1, inner[axis].stop + 1)
            behind[axis] = slice(inner[axis].start - 1, inner[axis].stop - 1)
            difference = smooth[tuple(ahead)] - smooth[tuple(behind)]
            difference *= np.float32(0.5 / spacing[axis])
            difference *= difference
            strength += difference
        np.sqrt(strength, out=strength)
        # Watershed depends only on the order of the edge strengths. Compress them into levels with resolution
        # where most voxels are (noise and soft edges), keeping strong edges apart at the top: level =
        # levels * s / (s + typical s), typical s being the median of a sample of the box.
        sample = strength.reshape(-1)[:: max(1, strength.size // 200_000)]
        typical = np.float32(max(float(np.median(sample)), 1e-6))
        scaled = strength / (strength + typical)
        scaled *= np.float32(self.levels - 1e-3)
        feature = scaled.astype(np.uint8)
        self._box = box
        self._feature = feature
        factors = tuple(2 if s <= _COARSE_SPACING_MM else 1 for s in spacing)
        self._factors = (factors[0], factors[1], factors[2])
        if feature.size > self.multiresolution_above and any(f > 1 for f in factors):
            self._coarse_feature = _block_max(feature, self._factors)

    def _markers(self, box: Box, used: list[tuple[int, Region, Box]]) -> Labels:
        dtype = np.uint8 if len(used) < 255 else np.uint16
        markers = np.zeros(box_shape(box), dtype=dtype)
        for n, (_, region, _) in enumerate(used, start=1):
            # the seed region lies within the grid; its box may stick out of the computation box only by
            # False voxels (the box holds every seed's tight box), so crop both to their intersection
            both = make_box(
                [max(r.start, b.start) for r, b in zip(region.box, box, strict=True)],
                [min(r.stop, b.stop) for r, b in zip(region.box, box, strict=True)],
                shape_of(self.volume),
            )
            src = tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(both, region.box, strict=True))
            dst = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(both, box, strict=True))
            np.copyto(markers[dst], dtype(n), where=region.mask[src])
        return markers

    def _two_pass(self, markers: Labels) -> Labels:
        assert self._feature is not None and self._coarse_feature is not None
        f = self._factors
        coarse = flood_from_markers(self._coarse_feature, _block_max(markers, f))
        up = _upsample(coarse, f, markers.shape)
        # band: coarse voxels on a label boundary, and blocks where a seed disagrees with the coarse answer
        edge = np.zeros(coarse.shape, dtype=bool)
        for axis in range(3):
            differs = np.diff(coarse, axis=axis) != 0
            a: list[slice] = [slice(None)] * 3
            b: list[slice] = [slice(None)] * 3
            a[axis] = slice(None, -1)
            b[axis] = slice(1, None)
            edge[tuple(a)] |= differs
            edge[tuple(b)] |= differs
        edge |= _block_max(((markers != 0) & (markers != up)).view(np.uint8), f).astype(bool)
        if _BAND_GROWTH:
            edge = ndimage.binary_dilation(edge, structure=np.ones((3, 3, 3), dtype=bool), iterations=_BAND_GROWTH)
        band = _upsample(edge, f, markers.shape)
        fine_markers = up.copy()
        fine_markers[band] = 0
        np.copyto(fine_markers, markers, where=markers != 0)
        return _watershed_in_band(self._feature, fine_markers, band)


_NO_OWNER = np.iinfo(np.int32).max


def flood_from_markers(feature: NDArray[np.uint8], markers: Labels) -> Labels:
    """Marker-based watershed: every unlabelled voxel gets the label whose flood reaches it first.

    Exactly ITK's ``MorphologicalWatershedFromMarkers(markWatershedLine=False, fullyConnected=False)``: a
    hierarchical queue over the 256 levels of ``feature``, FIFO within a level, 6-connected. Marker voxels next
    to an unlabelled voxel enter the queue at their own level, in raster order (i fastest). Popping a voxel at
    level h gives *all* its still unlabelled neighbours its label at once (in ITK's neighbour order -k, -j, -i,
    +i, +j, +k); a neighbour with level <= h joins the current queue, a higher one waits in the queue of its own
    level. So ties are settled by queue order, as in ITK.

    The queue is processed one breadth-first generation at a time with numpy: FIFO order means generation g + 1
    is popped after all of generation g, and within a generation the pops' order is the push order. A voxel
    reached by several voxels of a generation takes the first one's label, and the new voxels keep the order in
    which ITK pushes them, which is what later ties depend on. Returns the labels (same dtype as ``markers``);
    ``markers`` (non-negative integers, 0 = unlabelled) is not changed.
    """
    if markers.size and int(markers.max()) == np.iinfo(markers.dtype).max:
        # the top value is the border's below; make room for it
        if markers.dtype == np.uint64:
            raise ValueError("marker labels must be below 2**64 - 1")
        wider = flood_from_markers(feature, markers.astype(np.uint64))
        return wider.astype(markers.dtype)
    k, j, i = feature.shape
    padded_shape = (k + 2, j + 2, i + 2)
    levels_padded = np.zeros(padded_shape, dtype=np.uint8)
    levels_padded[1:-1, 1:-1, 1:-1] = feature
    # a border of a label that is never a marker's stops the flood at the box's faces without bounds checks
    wall = np.iinfo(markers.dtype).max
    labels_padded = np.full(padded_shape, wall, dtype=markers.dtype)
    labels_padded[1:-1, 1:-1, 1:-1] = markers
    level = levels_padded.reshape(-1)
    label = labels_padded.reshape(-1)
    row, plane = i + 2, (i + 2) * (j + 2)
    offsets = np.array([-plane, -row, -1, 1, row, plane], dtype=np.intp)

    # the first queue entries: marker voxels with an unlabelled face neighbour
    free = labels_padded == 0
    near_free = np.zeros(padded_shape, dtype=bool)
    for axis in range(3):
        lo: list[slice] = [slice(None)] * 3
        hi: list[slice] = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        near_free[tuple(hi)] |= free[tuple(lo)]
        near_free[tuple(lo)] |= free[tuple(hi)]
    near_free &= ~free
    near_free &= labels_padded != wall
    queues: list[list[NDArray[np.intp]]] = [[] for _ in range(256)]

    def enqueue(voxels: NDArray[np.intp]) -> None:
        """Append voxels (in push order) to the queues of their levels, keeping their order within each."""
        voxel_levels = level[voxels]
        ordered = voxels[np.argsort(voxel_levels, kind="stable")]
        counts = np.bincount(voxel_levels, minlength=256)
        ends = np.cumsum(counts)
        for value in np.flatnonzero(counts):
            queues[value].append(ordered[ends[value] - counts[value] : ends[value]])

    enqueue(np.flatnonzero(near_free))
    if not any(queues):
        return markers.copy()
    owner = np.full(level.size, _NO_OWNER, dtype=np.int32)  # scratch: first claimant of a voxel in a generation
    positions = np.arange(6 * max(1, int(np.count_nonzero(free))), dtype=np.int32)
    for h in range(256):
        if not queues[h]:
            continue
        current = np.concatenate(queues[h]) if len(queues[h]) > 1 else queues[h][0]
        queues[h] = []
        waiting: list[NDArray[np.intp]] = []
        while current.size:
            neighbours = (current[:, None] + offsets).reshape(-1)  # pop order, then ITK's neighbour order
            reached = np.flatnonzero(label[neighbours] == 0)
            if reached.size == 0:
                break
            candidates = neighbours[reached]
            order = positions[: candidates.size]
            np.minimum.at(owner, candidates, order)
            first = owner[candidates] == order
            new = candidates[first]
            owner[new] = _NO_OWNER
            label[new] = label[current[reached[first] // 6]]
            low = level[new] <= h
            waiting.append(new[~low])
            current = new[low]
        if waiting:
            enqueue(np.concatenate(waiting))
    result: Labels = labels_padded[1:-1, 1:-1, 1:-1].copy()
    return result


def _watershed_in_band(feature: NDArray[np.uint8], markers: Labels, band: NDArray[np.bool_]) -> Labels:
    """`flood_from_markers` where ``band`` holds the only unlabelled voxels: flooded in the band's bounding box only."""
    result = markers.copy()
    box = mask_box(band)
    if box is None:
        return result
    box = pad_box(box, (1, 1, 1), (int(band.shape[0]), int(band.shape[1]), int(band.shape[2])))
    result[box] = flood_from_markers(np.ascontiguousarray(feature[box]), np.ascontiguousarray(markers[box]))
    return result


def _block_max(array: NDArray[_G], factors: tuple[int, int, int]) -> NDArray[_G]:
    """Maximum over blocks of ``factors`` voxels (1 or 2 per axis; the last block of an odd axis is one voxel)."""
    result = array
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        n = result.shape[axis]
        even: list[slice] = [slice(None)] * 3
        odd: list[slice] = [slice(None)] * 3
        even[axis] = slice(0, n - 1, 2)
        odd[axis] = slice(1, n, 2)
        pairs = np.maximum(result[tuple(even)], result[tuple(odd)])
        if n % 2:
            last: list[slice] = [slice(None)] * 3
            last[axis] = slice(n - 1, n)
            pairs = np.concatenate([pairs, result[tuple(last)]], axis=axis)
        result = pairs
    return result


def _upsample(array: NDArray[_G], factors: tuple[int, int, int], shape: tuple[int, ...]) -> NDArray[_G]:
    result = array
    for axis, f in enumerate(factors):
        if f > 1:
            result = np.repeat(result, f, axis=axis)
    cropped: NDArray[_G] = result[: shape[0], : shape[1], : shape[2]]
    return cropped


def _check_region(region: Region, shape: tuple[int, int, int], segment_id: int) -> None:
    start = np.array(region.offset)
    stop = start + np.array(region.mask.shape)
    if region.mask.size and (np.any(start < 0) or np.any(stop > np.array(shape))):
        raise OutsideGridError(
            f"seeds of segment {segment_id} ({start.tolist()}..{stop.tolist()}) stick out of the grid {list(shape)}",
            fix="clip seed regions with Region.clipped",
        )


def seeds_from_segmentation(segmentation: Segmentation, segment_ids: list[int] | None = None) -> dict[int, Region]:
    """The seeds as a segmentation holds them: each segment's voxels in its bounding box.

    ``segment_ids`` None takes every segment. Empty segments are left out.
    """
    ids = list(segmentation.segments) if segment_ids is None else [int(s) for s in segment_ids]
    seeds: dict[int, Region] = {}
    for segment_id in ids:
        crop = segment_crop(segmentation, segment_id)
        if crop is not None:
            seeds[segment_id] = Region(box_offset(crop[0]), crop[1])
    return seeds


def grow_from_seeds(
    volume: Volume,
    seeds: Mapping[int, Region],
    *,
    margin_mm: float = 10.0,
    sigma_mm: float = 1.0,
) -> dict[int, tuple[Region, EditMode]]:
    """One-off grow from seeds (no cache): `GrowFromSeeds(volume, ...).update(seeds)`."""
    return GrowFromSeeds(volume, margin_mm=margin_mm, sigma_mm=sigma_mm).update(seeds)


__all__ = ["MODE", "GrowFromSeeds", "flood_from_markers", "grow_from_seeds", "seeds_from_segmentation"]
