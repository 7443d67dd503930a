"""Logical operations: truth tables over the four cases (only target, only source, both, neither)."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.core.edit.errors import EditParameterError, UnknownSegmentError
from radlabel.core.edit.logical import LogicalOp, logical
from radlabel.core.edit.request import EditMode
from radlabel.core.segmentation.model import Segmentation
from tests.core.edit_support import applied, blank, within_grid

SHAPE = (8, 20, 20)

# target, source -> target after the operation
TRUTH = {
    LogicalOp.COPY: {(0, 0): 0, (0, 1): 1, (1, 0): 0, (1, 1): 1},
    LogicalOp.ADD: {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 1},
    LogicalOp.SUBTRACT: {(0, 0): 0, (0, 1): 0, (1, 0): 1, (1, 1): 0},
    LogicalOp.INTERSECT: {(0, 0): 0, (0, 1): 0, (1, 0): 0, (1, 1): 1},
    LogicalOp.INVERT: {(0, 0): 1, (0, 1): 1, (1, 0): 0, (1, 1): 0},
    LogicalOp.CLEAR: {(0, 0): 0, (0, 1): 0, (1, 0): 0, (1, 1): 0},
}


def _overlapping() -> tuple[Segmentation, np.ndarray, np.ndarray, dict[tuple[int, int], tuple[slice, ...]]]:
    """Target (layer 0) and source (layer 1) overlap; four blocks hold the four cases."""
    target = np.zeros(SHAPE, dtype=bool)
    source = np.zeros(SHAPE, dtype=bool)
    cases = {
        (1, 0): (slice(2, 6), slice(2, 6), slice(2, 6)),
        (0, 1): (slice(2, 6), slice(12, 16), slice(12, 16)),
        (1, 1): (slice(2, 6), slice(2, 6), slice(12, 16)),
        (0, 0): (slice(2, 6), slice(12, 16), slice(2, 6)),
    }
    for (t, s), block in cases.items():
        target[block] = bool(t)
        source[block] = bool(s)
    seg = Segmentation.empty(blank(SHAPE))
    seg.add_segment("target")
    seg.add_segment("source")
    seg.layers.append(np.zeros(SHAPE, dtype=np.uint8))
    seg.update_segment(2, layer=1, label_value=1)
    seg.layers[0][target] = 1
    seg.layers[1][source] = 1
    return seg, target, source, cases


@pytest.mark.parametrize("op", list(LogicalOp))
def test_truth_table(op: LogicalOp) -> None:
    seg, target, source, cases = _overlapping()
    region, mode = logical(seg, op, 1, None if op in (LogicalOp.INVERT, LogicalOp.CLEAR) else 2)
    assert isinstance(mode, EditMode) and within_grid(region, SHAPE)
    result = applied(target, region, mode)
    for case, block in cases.items():
        assert result[block].all() == bool(TRUTH[op][case]), (op, case)
        assert result[block].any() == bool(TRUTH[op][case]), (op, case)
    elsewhere = np.ones(SHAPE, dtype=bool)
    for block in cases.values():
        elsewhere[block] = False
    assert result[elsewhere].all() == (op == LogicalOp.INVERT)
    assert result[elsewhere].any() == (op == LogicalOp.INVERT)
    np.testing.assert_array_equal(seg.mask(2), source)  # the source never changes


def test_ops_work_in_the_segments_boxes() -> None:
    seg, _, _, _ = _overlapping()
    region, _ = logical(seg, "add", 1, 2)
    assert region.offset == (2, 2, 12) and region.mask.shape == (4, 14, 4)  # the source's box
    region, _ = logical(seg, LogicalOp.CLEAR, 1)
    assert region.offset == (2, 2, 2) and region.mask.shape == (4, 4, 14)  # the target's box


def test_empty_segments() -> None:
    seg, _, _, _ = _overlapping()
    seg.add_segment("empty")
    assert logical(seg, LogicalOp.INTERSECT, 3, 1)[0].is_empty
    copy, mode = logical(seg, LogicalOp.COPY, 1, 3)
    assert mode == EditMode.REPLACE and not copy.mask.any() and copy.mask.shape == (4, 4, 14)


def test_bad_parameters() -> None:
    seg, _, _, _ = _overlapping()
    with pytest.raises(EditParameterError):
        logical(seg, "xor", 1, 2)
    with pytest.raises(EditParameterError):
        logical(seg, LogicalOp.ADD, 1)
    with pytest.raises(UnknownSegmentError):
        logical(seg, LogicalOp.ADD, 1, 9)
