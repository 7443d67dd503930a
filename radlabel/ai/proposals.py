"""Headless review primitives: what "accept", "accept only on this slice" and the audit record need from a
`Proposal`, without a Session.

A proposal is never part of the segmentation: accepting it means turning it into a
`radlabel.core.edit.request.Region` (`proposal_to_region`, optionally `limit_to_slice`) and applying that
through the one edit path, with `proposal_summary` in the audit record. `compare_with_final` measures how much
the reader changed a proposal (for "accepted then edited" and for learning from corrections).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.ai.sdk import Proposal
from radlabel.core.edit.request import Region


def _empty_region() -> Region:
    return Region((0, 0, 0), np.zeros((0, 0, 0), dtype=bool))


def proposal_to_region(
    proposal: Proposal,
    threshold: float = 0.5,
    label: int | None = None,
    shape: tuple[int, int, int] | None = None,
) -> Region:
    """The voxels an "accept" adds: ``labels == label`` (any label > 0 when ``label`` is None) or, for a
    probability-only proposal, ``probabilities >= threshold``; in the proposal's box. With ``shape`` (the
    reference grid's), a box sticking out of the grid is cut to it."""
    if proposal.labels is not None and label is not None:
        mask: NDArray[np.bool_] = proposal.labels == label
    else:
        mask = proposal.mask(threshold)
    offset = (int(proposal.offset[0]), int(proposal.offset[1]), int(proposal.offset[2]))
    if mask.ndim != 3:
        raise ValueError(f"a proposal must be a 3D box, got shape {mask.shape}")
    if shape is not None:
        return Region.clipped(offset, np.ascontiguousarray(mask), shape)
    return Region(offset, np.ascontiguousarray(mask))


def limit_to_slice(region: Region, axis: int, index: int) -> Region:
    """The part of ``region`` on slice ``index`` along grid axis ``axis`` (0 = k, 1 = j, 2 = i, as in the
    ``[k, j, i]`` array and the SDK's prompts): "accept only inside the current slice". Empty when the region
    does not reach that slice."""
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0 (k), 1 (j) or 2 (i), got {axis}")
    start = region.offset[axis]
    local = index - start
    if not 0 <= local < region.mask.shape[axis]:
        return _empty_region()
    take: list[slice] = [slice(None)] * 3
    take[axis] = slice(local, local + 1)
    offset = list(region.offset)
    offset[axis] = index
    return Region((offset[0], offset[1], offset[2]), region.mask[tuple(take)].copy())


def proposal_summary(proposal: Proposal, threshold: float = 0.5, region: Region | None = None) -> dict[str, Any]:
    """The proposal part of an audit record (plain JSON): model identity, prompt, voxels, box, device and
    timing. ``region`` is what was actually accepted (e.g. one slice) when that differs from the proposal."""
    accepted = region if region is not None else proposal_to_region(proposal, threshold)
    probabilities = proposal.probabilities
    return {
        "model": proposal.model.to_json(),
        "prompt": list(proposal.prompt),
        "source": "labels" if proposal.labels is not None else "probabilities",
        "threshold": None if proposal.labels is not None else float(threshold),
        "voxels": int(np.count_nonzero(accepted.mask)),
        "proposal_voxels": int(np.count_nonzero(proposal.mask(threshold))),
        "box": {"offset_kji": list(proposal.offset), "shape_kji": list(_shape(proposal))},
        "label_names": {str(k): v for k, v in proposal.label_names.items()},
        "device": proposal.device,
        "timing": {k: round(float(v), 6) for k, v in proposal.timing.items()},
        "mean_probability": (
            float(probabilities[accepted_mask_in_box(proposal, accepted)].mean())
            if probabilities is not None and np.count_nonzero(accepted.mask)
            else None
        ),
    }


def _shape(proposal: Proposal) -> tuple[int, ...]:
    array = proposal.labels if proposal.labels is not None else proposal.probabilities
    assert array is not None
    return tuple(int(n) for n in array.shape)


def accepted_mask_in_box(proposal: Proposal, region: Region) -> NDArray[np.bool_]:
    """``region`` drawn into the proposal's box (voxels of the region outside the box are dropped)."""
    shape = _shape(proposal)
    inside = np.zeros(shape, dtype=bool)
    if region.mask.size == 0:
        return inside
    start = np.subtract(region.offset, proposal.offset)
    stop = start + np.array(region.mask.shape)
    low, high = np.maximum(start, 0), np.minimum(stop, shape)
    if np.any(high <= low):
        return inside
    source = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(low, high, start, strict=True))
    target = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    inside[target] = region.mask[source]
    return inside


def compare_with_final(proposal: Proposal, final: NDArray[np.bool_], threshold: float = 0.5) -> dict[str, Any]:
    """How the reader's final mask (``[k, j, i]`` on the reference grid) differs from the proposal: voxels
    proposed, kept, added and removed, and the Dice between them, for the audit trail's "accepted then
    edited" record and for learning from corrections. Only the proposal's box is compared."""
    if final.ndim != 3:
        raise ValueError(f"the final mask must be 3D [k, j, i], got shape {final.shape}")
    region = proposal_to_region(proposal, threshold, shape=(final.shape[0], final.shape[1], final.shape[2]))
    proposed = np.zeros(final.shape, dtype=bool)
    proposed[region.box] = region.mask
    box = Region(proposal.offset, np.ones(_shape(proposal), dtype=bool)).box
    mine, theirs = proposed[box], np.asarray(final[box], dtype=bool)
    kept = int(np.count_nonzero(mine & theirs))
    total = int(np.count_nonzero(mine)) + int(np.count_nonzero(theirs))
    return {
        "proposed": int(np.count_nonzero(mine)),
        "final": int(np.count_nonzero(theirs)),
        "kept": kept,
        "added": int(np.count_nonzero(theirs & ~mine)),
        "removed": int(np.count_nonzero(mine & ~theirs)),
        "dice": 1.0 if total == 0 else 2.0 * kept / total,
    }
