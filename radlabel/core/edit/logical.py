"""Logical operations between segment masks: copy, add, subtract, intersect, invert, clear.

``target`` is the segment that changes; ``source`` the one it is combined with (unchanged). Each operation works
in the bounding boxes of the segments involved (only `INVERT` necessarily covers the whole grid) and returns a
`Region` with the mode to apply it with:

==========  =====================================  ==========================  =========
operation   target becomes                         region                      mode
==========  =====================================  ==========================  =========
COPY        source                                 source, in both boxes       REPLACE
ADD         target OR source                       source                      ADD
SUBTRACT    target AND NOT source                  source                      REMOVE
INTERSECT   target AND source                      target AND NOT source       REMOVE
INVERT      NOT target                             NOT target, whole grid      REPLACE
CLEAR       empty                                  target                      REMOVE
==========  =====================================  ==========================  =========
"""

from __future__ import annotations

import enum

import numpy as np

from radlabel.core.edit.common import (
    box_offset,
    check_segment,
    empty_region,
    segment_box,
    segment_crop,
    shape_of,
    union_box,
)
from radlabel.core.edit.errors import EditParameterError
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.segmentation.model import Segmentation


class LogicalOp(enum.StrEnum):
    COPY = "copy"
    ADD = "add"
    SUBTRACT = "subtract"
    INTERSECT = "intersect"
    INVERT = "invert"
    CLEAR = "clear"


NEEDS_SOURCE = frozenset({LogicalOp.COPY, LogicalOp.ADD, LogicalOp.SUBTRACT, LogicalOp.INTERSECT})
"""Operations that combine the target with a source segment."""


def logical(
    segmentation: Segmentation, op: LogicalOp | str, target: int, source: int | None = None
) -> tuple[Region, EditMode]:
    """The region and mode that make ``target`` the result of ``op`` (see the table in the module docstring).

    Raises `UnknownSegmentError` for an unknown id and `EditParameterError` for an unknown operation or a
    missing source.
    """
    try:
        op = LogicalOp(op)
    except ValueError:
        raise EditParameterError(
            f"unknown logical operation {op!r}", fix=f"use one of {', '.join(o.value for o in LogicalOp)}"
        ) from None
    check_segment(segmentation, target)
    if op in NEEDS_SOURCE:
        if source is None:
            raise EditParameterError(f"logical operation '{op.value}' needs a source segment")
        check_segment(segmentation, source)

    if op == LogicalOp.INVERT:
        shape = shape_of(segmentation)
        whole = (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
        return Region((0, 0, 0), ~segmentation.mask_in(target, whole)), EditMode.REPLACE
    if op == LogicalOp.CLEAR:
        return _crop_region(segmentation, target), EditMode.REMOVE
    assert source is not None
    if op == LogicalOp.ADD:
        return _crop_region(segmentation, source), EditMode.ADD
    if op == LogicalOp.SUBTRACT:
        return _crop_region(segmentation, source), EditMode.REMOVE
    if op == LogicalOp.INTERSECT:
        box = segment_box(segmentation, target)
        if box is None:
            return empty_region(), EditMode.REMOVE
        outside = segmentation.mask_in(target, box) & ~segmentation.mask_in(source, box)
        return Region(box_offset(box), outside), EditMode.REMOVE
    # COPY
    box = union_box(segment_box(segmentation, target), segment_box(segmentation, source))
    if box is None:
        return empty_region(), EditMode.REPLACE
    return Region(box_offset(box), segmentation.mask_in(source, box)), EditMode.REPLACE


def _crop_region(segmentation: Segmentation, segment_id: int) -> Region:
    crop = segment_crop(segmentation, segment_id)
    if crop is None:
        return Region((0, 0, 0), np.zeros((0, 0, 0), dtype=bool))
    return Region(box_offset(crop[0]), crop[1])


__all__ = ["NEEDS_SOURCE", "LogicalOp", "logical"]
