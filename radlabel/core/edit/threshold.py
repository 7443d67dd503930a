"""Threshold: the voxels whose image value lies in a range, in the whole grid or in a box.

Regions from this module are meant for ``EditMode.REPLACE``: inside the box (the whole grid when no box is
given) the segment becomes exactly the thresholded voxels, as Slicer's Threshold effect does. Apply with
``EditMode.ADD`` to keep what the segment already had.

CT presets (`CT_PRESETS`, values in HU, both bounds included):

=============  ================  ===========================================================================
preset         range (HU)        what it picks
=============  ================  ===========================================================================
bone           226 .. 3071       cortical and trabecular bone (the usual "Bone (CT)" preset of Mimics / Slicer);
                                 contrast-filled vessels above ~250 HU come with it
soft_tissue    -29 .. 150        muscle and solid organs, unenhanced or enhanced (the body-composition range
                                 of the Alberta protocol for skeletal muscle)
lung           -1024 .. -400     aerated lung down to the lowest CT value (emphysema and noise reach -1000);
                                 air outside the body and in the bowel is in range too, so follow it with
                                 flood fill or "keep largest island"
fat            -190 .. -30       adipose tissue (subcutaneous and visceral fat, the standard range)
=============  ================  ===========================================================================

`otsu` picks the threshold itself (Otsu's method on the histogram of a box) and keeps the bright or the dark
class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.edit.common import Box, box_offset, check_range, make_box, shape_of
from radlabel.core.edit.errors import OutsideGridError, UnknownPresetError
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.volume import Volume

MODE = EditMode.REPLACE
"""Mode to apply threshold regions with."""

CT_PRESETS: dict[str, tuple[float, float]] = {
    "bone": (226.0, 3071.0),
    "soft_tissue": (-29.0, 150.0),
    "lung": (-1024.0, -400.0),
    "fat": (-190.0, -30.0),
}
"""CT threshold presets in HU (low, high), both included; see the module documentation for their sources."""


def threshold(volume: Volume, low: float, high: float, box: Box | None = None) -> Region:
    """The voxels with ``low <= value <= high`` inside ``box`` (the whole grid when ``None``).

    Returns a region covering exactly ``box`` (apply with REPLACE). Raises `InvalidRangeError` when
    ``low > high`` and `OutsideGridError` for a box that does not overlap the grid.
    """
    lo, hi = check_range(low, high)
    box = _check_box(volume, box)
    values = volume.array[box]
    mask: NDArray[np.bool_] = (values >= lo) & (values <= hi)
    return Region(box_offset(box), mask)


def threshold_preset(volume: Volume, preset: str, box: Box | None = None) -> Region:
    """`threshold` with one of `CT_PRESETS` (``bone``, ``soft_tissue``, ``lung``, ``fat``; HU).

    Raises `UnknownPresetError` for another name.
    """
    key = str(preset).strip().lower().replace(" ", "_").replace("-", "_")
    if key not in CT_PRESETS:
        raise UnknownPresetError(
            f"unknown threshold preset {preset!r}", fix=f"use one of {', '.join(sorted(CT_PRESETS))}"
        )
    low, high = CT_PRESETS[key]
    return threshold(volume, low, high, box)


def otsu_level(volume: Volume, box: Box | None = None, bins: int = 256) -> float:
    """Otsu's threshold of the values in ``box``: values above it form the bright class.

    The histogram has ``bins`` bins over the values' range (one bin per value for integer images with a
    smaller range). For a box of one value that value is returned.
    """
    box = _check_box(volume, box)
    values = volume.array[box]
    if values.size == 0:
        raise OutsideGridError("the box for Otsu's threshold is empty")
    vmin, vmax = float(values.min()), float(values.max())
    if vmin == vmax:
        return vmin
    flat = values.ravel()
    if np.issubdtype(values.dtype, np.integer) and vmax - vmin + 1 <= bins:
        counts = np.bincount((flat - int(vmin)).astype(np.int64), minlength=int(vmax - vmin) + 1)
        upper = np.arange(counts.size, dtype=np.float64) + vmin  # a class boundary after value v is v itself
        centres = upper
    else:
        counts, edges = np.histogram(flat, bins=bins, range=(vmin, vmax))
        centres = (edges[:-1] + edges[1:]) / 2
        upper = edges[1:]
    weights = counts.astype(np.float64)
    w0 = np.cumsum(weights)
    w1 = w0[-1] - w0
    m0 = np.cumsum(weights * centres)
    mean0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mean1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    best = int(np.argmax(between[:-1]))
    return float(upper[best])


def otsu(volume: Volume, box: Box | None = None, *, bright: bool = True) -> Region:
    """The bright (``value > level``) or dark class of Otsu's threshold of the values in ``box``.

    Returns a region covering ``box`` (apply with REPLACE).
    """
    box = _check_box(volume, box)
    level = otsu_level(volume, box)
    values = volume.array[box]
    mask: NDArray[np.bool_] = values > level if bright else values <= level
    return Region(box_offset(box), mask)


def _check_box(volume: Volume, box: Box | None) -> Box:
    shape = shape_of(volume)
    if box is None:
        return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
    try:
        starts: list[Any] = [s.start if s.start is not None else 0 for s in box]
        stops: list[Any] = [s.stop if s.stop is not None else n for s, n in zip(box, shape, strict=True)]
    except (AttributeError, TypeError, ValueError):
        raise OutsideGridError(f"a box is three slices (k, j, i), got {box!r}") from None
    clipped = make_box(starts, stops, shape)
    if any(s.stop <= s.start for s in clipped):
        raise OutsideGridError(f"the box {box!r} does not overlap the grid of size {shape} (k, j, i)")
    return clipped


__all__ = ["CT_PRESETS", "MODE", "otsu", "otsu_level", "threshold", "threshold_preset"]
