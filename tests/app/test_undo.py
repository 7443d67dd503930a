"""The undo stack: labels, limits, memory that follows the voxels changed, exact undo/redo through a session."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from radlabel.app.session import Session
from radlabel.app.undo import UndoStack
from radlabel.core.edit.apply import EditDiff, add_segment, apply_region
from radlabel.core.edit.request import Editable, EditMode, MaskingRules, Overwrite, Region
from radlabel.core.errors import LockedSegmentError
from radlabel.core.segmentation.model import Grid, Segmentation
from radlabel.core.volume import Volume

from .conftest import CASE_SHAPE


def make_diff(label: str, size: int = 10) -> EditDiff:
    seg = Segmentation.empty(Grid((4, 8, 8), (0, 0, 0), (1, 1, 1), ((1, 0, 0), (0, 1, 0), (0, 0, 1))))
    add_segment(seg, "S")
    mask = np.zeros((4, 8, 8), dtype=bool)
    mask.reshape(-1)[:size] = True
    diff = apply_region(seg, None, 1, Region((0, 0, 0), mask), EditMode.ADD, label=label)
    assert diff is not None
    return diff


def test_labels_counts_and_redo_cleared_by_a_new_step() -> None:
    stack = UndoStack()
    assert not stack.can_undo and not stack.can_redo and stack.undo_label is None and stack.redo_label is None
    a, b, c = make_diff("Paint A"), make_diff("Paint B"), make_diff("Erase C")
    stack.push(a)
    stack.push(b)
    assert stack.undo_label == "Paint B" and stack.undo_count == 2
    assert stack.pop_undo() is b
    assert stack.undo_label == "Paint A" and stack.redo_label == "Paint B"
    assert stack.nbytes == a.nbytes + b.nbytes  # redo steps still hold memory
    assert stack.pop_redo() is b and stack.pop_undo() is b
    stack.push(c)  # a new step drops the redo list
    assert not stack.can_redo and stack.undo_items() == [a, c]
    assert stack.nbytes == a.nbytes + c.nbytes
    with pytest.raises(IndexError):
        stack.pop_redo()


def test_max_bytes_drops_the_oldest_steps_but_never_the_newest() -> None:
    diffs = [make_diff(f"Step {n}", size=30 + n) for n in range(10)]
    limit = sum(d.nbytes for d in diffs[-3:])
    stack = UndoStack(max_bytes=limit)
    dropped: list[EditDiff] = []
    for diff in diffs:
        dropped += stack.push(diff)
    assert stack.nbytes <= limit
    assert stack.undo_items() == diffs[len(dropped) :]
    assert dropped == diffs[: len(dropped)] and stack.dropped == len(dropped) >= 7
    tiny = UndoStack(max_bytes=1)
    tiny.push(diffs[0])
    tiny.push(diffs[1])
    assert tiny.undo_items() == [diffs[1]]  # the newest step stays undoable even over the limit


def test_memory_after_100_dabs_on_a_ct_sized_volume() -> None:
    """Issue 4: undo-stack memory after 100 dabs <= 1 % of a volume copy per dab (300x512x512 uint8)."""
    shape = (300, 512, 512)
    volume_bytes = int(np.prod(shape))  # one uint8 copy: 78.6 MB
    seg = Segmentation.empty(Grid(shape, (0, 0, 0), (0.8, 0.8, 1.0), ((1, 0, 0), (0, 1, 0), (0, 0, 1))))
    add_segment(seg, "Tumour")
    add_segment(seg, "Liver")
    k, j, i = np.mgrid[-6:7, -6:7, -6:7]
    ball = (k * 1.0) ** 2 + (j * 0.8) ** 2 + (i * 0.8) ** 2 <= 5.0**2  # a 10 mm brush
    rng = np.random.default_rng(1)
    stack = UndoStack()
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for n in range(100):
            offset = (int(rng.integers(0, 287)), int(rng.integers(0, 499)), int(rng.integers(0, 499)))
            diff = apply_region(seg, None, 1 + n % 2, Region(offset, ball), EditMode.ADD, tool="paint")
            assert diff is not None
            stack.push(diff)
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_dab_reported = stack.nbytes / 100
    per_dab_measured = (held - start) / 100
    assert per_dab_reported <= 0.01 * volume_bytes
    assert per_dab_measured <= 0.01 * volume_bytes
    # in fact far below: the compressed diff of a ~500-voxel dab is about a kilobyte
    assert per_dab_reported < 3_000 and per_dab_measured < 3_000, (per_dab_reported, per_dab_measured)


# -- exact undo/redo through a session (stack + journal + segmentation) ------------------------------------------


def random_step(rng: np.random.Generator, session: Session, image: np.ndarray) -> object:
    ids = list(session.segmentation.segments)
    if rng.random() < 0.08:
        sid = int(rng.choice(ids))
        flag = "locked" if rng.random() < 0.5 else "visible"
        return session.update_segment(sid, **{flag: not getattr(session.segmentation.segments[sid], flag)})
    size = [int(rng.integers(1, n // 2 + 1)) for n in CASE_SHAPE]
    start = [int(rng.integers(0, n - s + 1)) for n, s in zip(CASE_SHAPE, size, strict=True)]
    region = Region((start[0], start[1], start[2]), rng.random(size) < 0.6)
    editable = Editable(rng.choice([e.value for e in Editable]))
    rules = MaskingRules(
        editable=editable,
        segment_id=int(rng.choice(ids)) if editable == Editable.INSIDE_SEGMENT else None,
        intensity_range=(-200.0, 100.0) if rng.random() < 0.3 else None,
        overwrite=Overwrite(rng.choice([o.value for o in Overwrite])),
    )
    mode = EditMode(rng.choice([m.value for m in EditMode]))
    target = int(rng.choice(ids))
    try:
        return session.edit("paint", {"step": int(rng.integers(1 << 30))}, region, mode, target, rules)
    except LockedSegmentError:
        return None


def state(session: Session) -> tuple[list[tuple[str, bytes]], dict[int, object]]:
    seg = session.segmentation
    return [(layer.dtype.str, layer.tobytes()) for layer in seg.layers], dict(seg.segments)


def test_undo_200_random_edits_bit_for_bit_then_redo_them_exactly(
    tmp_path: Path, ct_source: tuple[Volume, Path]
) -> None:
    volume, source = ct_source
    rng = np.random.default_rng(11)
    session = Session.create(tmp_path / "case", volume, source)
    for name in ("Liver", "Tumour", "Necrosis"):
        session.add_segment(name)
    states = [state(session)]
    while session.undo_stack.undo_count < 203:
        if random_step(rng, session, volume.array) is not None:
            states.append(state(session))
        assert len(states) == session.undo_stack.undo_count - 2
    assert max(len(s[0]) for s in states) >= 2, "no edit needed an overlap layer"
    for expected in reversed(states[:-1]):
        assert session.undo() is not None
        assert state(session) == expected
    assert session.undo_stack.undo_count == 3  # the three added segments
    for expected in states[1:]:
        assert session.redo() is not None
        assert state(session) == expected
    assert session.redo() is None
    # the same history comes back from the journal: undo it all again after reopening
    session.close()
    reopened = Session.open(tmp_path / "case")
    try:
        assert state(reopened) == states[-1]
        for expected in reversed(states[:-1]):
            reopened.undo()
            assert state(reopened) == expected
    finally:
        reopened.close()
