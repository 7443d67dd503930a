"""The one edit path: masking rules with known answers, overlap layers, sparse diffs, exact revert/reapply."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

from radlabel.core.edit import apply as apply_module
from radlabel.core.edit.apply import (
    DiffKind,
    EditDiff,
    add_segment,
    apply_region,
    delete_segment,
    move_segment,
    reapply,
    revert,
    update_segment,
)
from radlabel.core.edit.request import Editable, EditMode, MaskingRules, Overwrite, Region
from radlabel.core.errors import EditError, LockedSegmentError
from radlabel.core.segmentation.model import Grid, Segmentation

SHAPE = (12, 16, 20)


def make_grid(shape: tuple[int, int, int] = SHAPE) -> Grid:
    return Grid(shape, (0.0, 0.0, 0.0), (1.0, 1.0, 2.0), ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


def box_region(start: tuple[int, int, int], stop: tuple[int, int, int]) -> Region:
    return Region(start, np.ones(tuple(b - a for a, b in zip(start, stop, strict=True)), dtype=bool))


def full_mask(start: tuple[int, int, int], stop: tuple[int, int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]] = True
    return mask


def snapshot(seg: Segmentation) -> tuple[list[np.ndarray], dict[int, object]]:
    return [layer.copy() for layer in seg.layers], {k: dataclasses.replace(v) for k, v in seg.segments.items()}


def assert_same(seg: Segmentation, snap: tuple[list[np.ndarray], dict[int, object]]) -> None:
    layers, segments = snap
    assert len(seg.layers) == len(layers)
    for mine, theirs in zip(seg.layers, layers, strict=True):
        assert mine.dtype == theirs.dtype
        assert np.array_equal(mine, theirs)
    assert seg.segments == segments
    assert list(seg.segments) == list(segments)


@pytest.fixture
def seg() -> Segmentation:
    """Segment 1 'Liver' fills [0:6, 0:8, 0:10]; segment 2 'Tumour' is empty."""
    s = Segmentation.empty(make_grid())
    add_segment(s, "Liver")
    add_segment(s, "Tumour")
    apply_region(s, None, 1, box_region((0, 0, 0), (6, 8, 10)), EditMode.ADD)
    return s


# -- masking rules, each with a known answer ------------------------------------------------------------------


def test_add_everywhere_labels_and_counts(seg: Segmentation) -> None:
    mask = np.zeros((4, 7, 43), dtype=bool)
    mask.reshape(-1)[:1204] = True
    seg2 = Segmentation.empty(Grid((4, 7, 43), (0, 0, 0), (1, 1, 1), ((1, 0, 0), (0, 1, 0), (0, 0, 1))))
    add_segment(seg2, "Tumour")
    diff = apply_region(seg2, None, 1, Region((0, 0, 0), mask), EditMode.ADD, tool="paint", parameters={"r": 5})
    assert diff is not None
    assert diff.label == "Paint Tumour, 1,204 voxels"
    assert diff.tool == "paint" and diff.parameters == {"r": 5} and diff.segment_id == 1
    assert diff.voxels_changed == (1204, 0)
    assert seg2.mask(1).sum() == 1204


def test_overwrite_all_takes_voxels_from_other_segments(seg: Segmentation) -> None:
    diff = apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD)
    assert diff is not None
    tumour = full_mask((4, 6, 8), (8, 10, 12))
    assert np.array_equal(seg.mask(2), tumour)
    assert np.array_equal(seg.mask(1), full_mask((0, 0, 0), (6, 8, 10)) & ~tumour)
    assert len(seg.layers) == 1
    assert diff.box == ((4, 6, 8), (8, 10, 12))


def test_overwrite_none_overlaps_on_a_second_layer_and_undo_removes_it(seg: Segmentation) -> None:
    before = snapshot(seg)
    diff = apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, MaskingRules(overwrite="none"))
    assert diff is not None
    assert len(seg.layers) == 2 and seg.layers[1].dtype == np.uint8
    assert seg.segments[2].layer == 1
    assert np.array_equal(seg.mask(1), full_mask((0, 0, 0), (6, 8, 10)))  # kept
    assert np.array_equal(seg.mask(2), full_mask((4, 6, 8), (8, 10, 12)))
    assert seg.occupied()[5, 7, 9] and seg.mask(1)[5, 7, 9] and seg.mask(2)[5, 7, 9]
    after = snapshot(seg)
    revert(seg, diff)
    assert_same(seg, before)  # layer 1 gone, segment 2 back in layer 0
    reapply(seg, diff)
    assert_same(seg, after)


def test_overwrite_visible_keeps_hidden_segments(seg: Segmentation) -> None:
    add_segment(seg, "Kidney")
    apply_region(seg, None, 3, box_region((8, 0, 0), (12, 8, 10)), EditMode.ADD)
    update_segment(seg, 3, visible=False)
    paint = box_region((4, 4, 4), (10, 6, 6))
    apply_region(seg, None, 2, paint, EditMode.ADD, MaskingRules(overwrite=Overwrite.VISIBLE))
    painted = full_mask((4, 4, 4), (10, 6, 6))
    assert np.array_equal(seg.mask(2), painted)
    assert np.array_equal(seg.mask(1), full_mask((0, 0, 0), (6, 8, 10)) & ~painted)  # visible: taken
    assert np.array_equal(seg.mask(3), full_mask((8, 0, 0), (12, 8, 10)))  # hidden: kept (overlap)
    assert seg.segments[2].layer != seg.segments[3].layer


def test_inside_segment_only(seg: Segmentation) -> None:
    rules = MaskingRules(editable=Editable.INSIDE_SEGMENT, segment_id=1)
    apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, rules)
    assert np.array_equal(seg.mask(2), full_mask((4, 6, 8), (6, 8, 10)))


def test_outside_segments_only(seg: Segmentation) -> None:
    rules = MaskingRules(editable=Editable.OUTSIDE_SEGMENTS)
    apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, rules)
    liver = full_mask((0, 0, 0), (6, 8, 10))
    assert np.array_equal(seg.mask(2), full_mask((4, 6, 8), (8, 10, 12)) & ~liver)
    assert np.array_equal(seg.mask(1), liver)


def test_outside_visible_segments_only(seg: Segmentation) -> None:
    update_segment(seg, 1, visible=False)
    rules = MaskingRules(editable=Editable.OUTSIDE_VISIBLE, overwrite=Overwrite.ALL)
    apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, rules)
    painted = full_mask((4, 6, 8), (8, 10, 12))
    assert np.array_equal(seg.mask(2), painted)  # the hidden liver does not mask the edit
    assert np.array_equal(seg.mask(1), full_mask((0, 0, 0), (6, 8, 10)) & ~painted)  # and ALL overwrites it
    update_segment(seg, 1, visible=True)
    seg_visible = Segmentation.empty(make_grid())
    add_segment(seg_visible, "Liver")
    add_segment(seg_visible, "Tumour")
    apply_region(seg_visible, None, 1, box_region((0, 0, 0), (6, 8, 10)), EditMode.ADD)
    apply_region(seg_visible, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, rules)
    assert np.array_equal(seg_visible.mask(2), painted & ~full_mask((0, 0, 0), (6, 8, 10)))


def test_intensity_range_limits_the_edit(seg: Segmentation) -> None:
    image = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE) % 200 - 100  # -100 .. 99 HU
    rules = MaskingRules(intensity_range=(-20, 30))
    apply_region(seg, image, 2, box_region((6, 8, 10), (12, 16, 20)), EditMode.ADD, rules)
    expected = full_mask((6, 8, 10), (12, 16, 20)) & (image >= -20) & (image <= 30)
    assert expected.any()
    assert np.array_equal(seg.mask(2), expected)
    with pytest.raises(EditError, match="needs the reference image"):
        apply_region(seg, None, 2, box_region((0, 0, 0), (2, 2, 2)), EditMode.ADD, rules)
    with pytest.raises(EditError, match="is empty"):
        apply_region(
            seg, image, 2, box_region((0, 0, 0), (2, 2, 2)), EditMode.ADD, MaskingRules(intensity_range=(5, 1))
        )


def test_remove_and_replace(seg: Segmentation) -> None:
    apply_region(seg, None, 2, box_region((6, 8, 10), (10, 12, 14)), EditMode.ADD)
    diff = apply_region(seg, None, 1, box_region((0, 0, 0), (12, 16, 20)), EditMode.REMOVE)
    assert diff is not None and diff.voxels_changed == (0, 6 * 8 * 10)
    assert not seg.mask(1).any()
    assert np.array_equal(seg.mask(2), full_mask((6, 8, 10), (10, 12, 14)))  # others untouched
    # REPLACE: inside the box the segment becomes exactly the mask; outside the box it stays
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[0, 0, :] = True
    apply_region(seg, None, 2, Region((6, 8, 10), mask), EditMode.REPLACE)
    expected = np.zeros(SHAPE, dtype=bool)
    expected[6, 8, 10:14] = True
    assert np.array_equal(seg.mask(2), expected)
    # REPLACE with an empty mask clears the box
    apply_region(seg, None, 2, Region((6, 8, 10), np.zeros((1, 1, 4), dtype=bool)), EditMode.REPLACE)
    assert not seg.mask(2).any()


def test_replace_respects_the_editable_area(seg: Segmentation) -> None:
    image = np.zeros(SHAPE, dtype=np.int16)
    image[:, :, 5:] = 100
    rules = MaskingRules(intensity_range=(50, 150))
    apply_region(seg, image, 1, Region((0, 0, 0), np.zeros((6, 8, 10), dtype=bool)), EditMode.REPLACE, rules)
    # only the voxels with intensity in range were cleared; the others are outside the editable area
    assert np.array_equal(seg.mask(1), full_mask((0, 0, 0), (6, 8, 5)))


# -- locked segments --------------------------------------------------------------------------------------------


def test_locked_target_raises_and_changes_nothing(seg: Segmentation) -> None:
    update_segment(seg, 1, locked=True)
    before = snapshot(seg)
    with pytest.raises(LockedSegmentError, match="'Liver' is locked"):
        apply_region(seg, None, 1, box_region((6, 6, 6), (8, 8, 8)), EditMode.ADD)
    with pytest.raises(LockedSegmentError):
        delete_segment(seg, 1)
    assert_same(seg, before)


def test_locked_other_segment_is_never_overwritten(seg: Segmentation) -> None:
    update_segment(seg, 1, locked=True)
    liver = full_mask((0, 0, 0), (6, 8, 10))
    painted = full_mask((4, 6, 8), (8, 10, 12))
    apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, MaskingRules(overwrite="all"))
    assert np.array_equal(seg.mask(1), liver)
    assert np.array_equal(seg.mask(2), painted & ~liver)  # the locked liver masks the paint
    assert len(seg.layers) == 1
    # with Overwrite.NONE the tumour may overlap the locked liver, which still keeps every voxel
    apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, MaskingRules(overwrite="none"))
    assert np.array_equal(seg.mask(1), liver)
    assert np.array_equal(seg.mask(2), painted)


# -- errors and no-ops ------------------------------------------------------------------------------------------


def test_bad_requests(seg: Segmentation) -> None:
    before = snapshot(seg)
    with pytest.raises(EditError, match="no segment with id 9"):
        apply_region(seg, None, 9, box_region((0, 0, 0), (1, 1, 1)), EditMode.ADD)
    with pytest.raises(EditError, match="outside the grid"):
        apply_region(seg, None, 2, box_region((10, 0, 0), (13, 1, 1)), EditMode.ADD)
    with pytest.raises(EditError, match="segment_id"):
        apply_region(seg, None, 2, box_region((0, 0, 0), (1, 1, 1)), "add", MaskingRules(editable="inside_segment"))
    with pytest.raises(EditError, match="unknown edit mode"):
        apply_region(seg, None, 2, box_region((0, 0, 0), (1, 1, 1)), "paint")
    with pytest.raises(EditError, match="move_segment"):
        update_segment(seg, 1, layer=3)
    assert_same(seg, before)
    assert apply_region(seg, None, 1, box_region((0, 0, 0), (2, 2, 2)), EditMode.ADD) is None  # already there
    assert apply_region(seg, None, 2, Region((0, 0, 0), np.zeros((2, 2, 2), bool)), EditMode.ADD) is None
    assert update_segment(seg, 1, name="Liver") is None
    assert_same(seg, before)


def test_an_error_half_way_leaves_the_segmentation_as_it_was(
    seg: Segmentation, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(seg)

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("out of memory while encoding")

    monkeypatch.setattr(apply_module.LayerDelta, "encode", broken)
    with pytest.raises(MemoryError):
        apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD, MaskingRules(overwrite="none"))
    assert_same(seg, before)


# -- diffs -------------------------------------------------------------------------------------------------------


def test_diff_serialises_exactly_and_detects_damage(seg: Segmentation) -> None:
    diff = apply_region(
        seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), "add", MaskingRules(overwrite="none"), parameters={"a": [1]}
    )
    assert diff is not None
    data = diff.to_bytes()
    again = EditDiff.from_bytes(data)
    assert again == diff
    assert again.segment_changes[0].after == seg.segments[2]
    for damaged in (data[:-10], data[:20], data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]):
        with pytest.raises(EditError):
            EditDiff.from_bytes(damaged)
    after = snapshot(seg)
    revert(seg, again)
    reapply(seg, again)
    assert_same(seg, after)


def test_revert_refuses_a_segmentation_out_of_step(seg: Segmentation) -> None:
    diff = apply_region(seg, None, 2, box_region((4, 6, 8), (8, 10, 12)), EditMode.ADD)
    assert diff is not None
    revert(seg, diff)
    with pytest.raises(EditError, match="out of step"):
        revert(seg, diff)
    with pytest.raises(EditError, match="out of step"):
        reapply(seg, diff)
        reapply(seg, diff)


def test_table_changes_are_diffs_and_undo_exactly(seg: Segmentation) -> None:
    steps: list[tuple[EditDiff, object, object]] = []

    def step(change: object) -> None:
        before = snapshot(seg)
        diff = change()  # type: ignore[operator]
        assert diff is not None
        steps.append((diff, before, snapshot(seg)))

    step(lambda: add_segment(seg, "Lesion", (1, 2, 3)))
    step(lambda: apply_region(seg, None, 3, box_region((2, 2, 2), (4, 4, 4)), "add", MaskingRules(overwrite="none")))
    step(lambda: update_segment(seg, 3, name="Lymph node", color=(9, 9, 9), locked=True, visible=False))
    step(lambda: update_segment(seg, 3, locked=False))
    step(lambda: move_segment(seg, 2, None))
    step(lambda: delete_segment(seg, 3))
    step(lambda: delete_segment(seg, 1))
    kinds = [d.kind for d, _, _ in steps]
    assert kinds == [
        DiffKind.SEGMENT_ADDED,
        DiffKind.EDIT,
        DiffKind.SEGMENT_UPDATED,
        DiffKind.SEGMENT_UPDATED,
        DiffKind.SEGMENT_MOVED,
        DiffKind.SEGMENT_DELETED,
        DiffKind.SEGMENT_DELETED,
    ]
    assert steps[2][0].label == "Rename segment Lesion to Lymph node"
    assert steps[6][0].voxels_changed == (0, 6 * 8 * 10)  # the lesion overlapped, liver kept all
    assert 1 not in seg.segments and not seg.layers[0].any()
    for diff, before, _ in reversed(steps):
        revert(seg, EditDiff.from_bytes(diff.to_bytes()))
        assert_same(seg, before)  # type: ignore[arg-type]
    for diff, _, after in steps:
        reapply(seg, diff)
        assert_same(seg, after)  # type: ignore[arg-type]


def test_many_segments_widen_layer_zero_and_undo_narrows_it() -> None:
    seg = Segmentation.empty(make_grid((2, 2, 2)))
    for n in range(255):
        add_segment(seg, f"s{n}")
    assert seg.layers[0].dtype == np.uint8
    diff = add_segment(seg, "s255")
    assert seg.layers[0].dtype == np.uint16 and seg.segments[256].label_value == 256
    revert(seg, diff)
    assert seg.layers[0].dtype == np.uint8 and 256 not in seg.segments


def test_a_dab_on_a_large_volume_works_in_its_box_only() -> None:
    seg = Segmentation.empty(make_grid((300, 512, 512)))
    add_segment(seg, "Tumour")
    k, j, i = np.mgrid[-5:6, -5:6, -5:6]
    ball = k**2 + j**2 + i**2 <= 25
    apply_region(seg, None, 1, Region((100, 200, 200), ball), EditMode.ADD)  # warm up
    tracemalloc.start()
    try:
        diff = apply_region(seg, None, 1, Region((150, 300, 300), ball), EditMode.ADD, tool="paint")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert diff is not None and diff.voxels_changed.added == int(ball.sum())
    # zlib's deflate state is ~270 kB whatever the input; the rest follows the box (11^3), not the 78 MB volume
    assert peak < 1_000_000, f"a 515-voxel dab allocated {peak} bytes at peak (volume: 78 MB)"
    assert diff.nbytes < 2_000


# -- random edits against an independent model -------------------------------------------------------------------


class Model:
    """Each segment as its own boolean mask: the rules written straight from their definition."""

    def __init__(self) -> None:
        self.masks: dict[int, np.ndarray] = {}
        self.locked: dict[int, bool] = {}
        self.visible: dict[int, bool] = {}

    def apply(self, target: int, region: Region, mode: EditMode, rules: MaskingRules, image: np.ndarray) -> None:
        box = region.box
        others = [s for s in self.masks if s != target]
        area = np.ones(region.mask.shape, dtype=bool)
        if rules.editable == Editable.INSIDE_SEGMENT:
            area &= self.masks[rules.segment_id][box]  # type: ignore[index]
        elif rules.editable == Editable.OUTSIDE_SEGMENTS:
            for o in others:
                area &= ~self.masks[o][box]
        elif rules.editable == Editable.OUTSIDE_VISIBLE:
            for o in others:
                if self.visible[o]:
                    area &= ~self.masks[o][box]
        if rules.intensity_range is not None:
            low, high = rules.intensity_range
            area &= (image[box] >= low) & (image[box] <= high)
        effective = region.mask & area
        old = self.masks[target][box].copy()
        gain = np.zeros_like(old)
        lose = np.zeros_like(old)
        if mode == EditMode.ADD:
            gain = effective & ~old
        elif mode == EditMode.REMOVE:
            lose = effective & old
        else:
            gain = effective & ~old
            lose = old & ~region.mask & area

        def taken(o: int) -> bool:
            return rules.overwrite == Overwrite.ALL or (rules.overwrite == Overwrite.VISIBLE and self.visible[o])

        for o in others:
            if taken(o) and self.locked[o]:
                gain &= ~self.masks[o][box]
        for o in others:
            if taken(o) and not self.locked[o]:
                self.masks[o][box] &= ~gain
        self.masks[target][box] |= gain
        self.masks[target][box] &= ~lose


def random_rules(rng: np.random.Generator, segments: list[int]) -> MaskingRules:
    editable = Editable(rng.choice([e.value for e in Editable]))
    return MaskingRules(
        editable=editable,
        segment_id=int(rng.choice(segments)) if editable == Editable.INSIDE_SEGMENT else None,
        intensity_range=(float(rng.integers(-100, 0)), float(rng.integers(0, 100))) if rng.random() < 0.3 else None,
        overwrite=Overwrite(rng.choice([o.value for o in Overwrite])),
    )


def random_region(rng: np.random.Generator) -> Region:
    size = [int(rng.integers(1, n // 2 + 1)) for n in SHAPE]
    start = [int(rng.integers(0, n - s + 1)) for n, s in zip(SHAPE, size, strict=True)]
    return Region((start[0], start[1], start[2]), rng.random(size) < 0.6)


def test_200_random_edits_match_the_model_and_undo_redo_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(-100, 100, SHAPE).astype(np.int16)
    seg = Segmentation.empty(make_grid())
    model = Model()
    history: list[tuple[EditDiff, object, object]] = []
    for name in ("Liver", "Tumour", "Necrosis", "Vessel"):
        diff = add_segment(seg, name)
        model.masks[diff.segment_id], model.locked[diff.segment_id], model.visible[diff.segment_id] = (  # type: ignore[index]
            np.zeros(SHAPE, dtype=bool),
            False,
            True,
        )
    ids = list(seg.segments)
    locked_refusals = 0
    while len(history) < 200:
        before = snapshot(seg)
        if rng.random() < 0.1:  # flip a flag: lock/unlock or hide/show
            sid = int(rng.choice(ids))
            flag = "locked" if rng.random() < 0.5 else "visible"
            value = not getattr(seg.segments[sid], flag)
            diff = update_segment(seg, sid, **{flag: value})
            getattr(model, flag)[sid] = value
        else:
            target = int(rng.choice(ids))
            region, mode = random_region(rng), EditMode(rng.choice([m.value for m in EditMode]))
            rules = random_rules(rng, ids)
            if seg.segments[target].locked:
                with pytest.raises(LockedSegmentError):
                    apply_region(seg, image, target, region, mode, rules)
                assert_same(seg, before)
                locked_refusals += 1
                continue
            diff = apply_region(seg, image, target, region, mode, rules)
            model.apply(target, region, mode, rules, image)
        for sid in ids:
            assert np.array_equal(seg.mask(sid), model.masks[sid]), f"segment {sid} after step {len(history)}"
        if diff is not None:
            history.append((diff, before, snapshot(seg)))
    assert locked_refusals > 0
    assert max(len(after[0]) for _, _, after in history) >= 2, "overlap never needed a second layer"  # type: ignore[index]
    final = snapshot(seg)
    for diff, before, _ in reversed(history):
        revert(seg, diff)
        assert_same(seg, before)  # type: ignore[arg-type]
    for diff, _, after in history:
        reapply(seg, diff)
        assert_same(seg, after)  # type: ignore[arg-type]
    assert_same(seg, final)
