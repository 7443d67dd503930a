"""Session: one open case with events, undoable segment changes, atomic saves and reopening."""

from __future__ import annotations

import getpass
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from radlabel.app import storage
from radlabel.app.session import SEGMENTATION_FILE, EventKind, Session, SessionEvent
from radlabel.core.demo import make_demo_ct
from radlabel.core.edit.request import EditMode, MaskingRules, Overwrite, Region
from radlabel.core.errors import CaseError, EditError, JournalError, LockedSegmentError, OutputError
from radlabel.core.io.writers import save_volume
from radlabel.core.volume import Volume


def cube(start: tuple[int, int, int], size: int = 3) -> Region:
    return Region(start, np.ones((size, size, size), dtype=bool))


@pytest.fixture
def session(tmp_path: Path, ct_source: tuple[Volume, Path]) -> Iterator[Session]:
    volume, source = ct_source
    s = Session.create(tmp_path / "case", volume, source, user="dr.reader")
    yield s
    s.close()


def test_events_carry_what_where_when_and_who(session: Session) -> None:
    events: list[SessionEvent] = []
    unsubscribe = session.subscribe(events.append)
    tumour = session.add_segment("Tumour", (255, 0, 0))
    before = datetime.now(UTC)
    diff = session.edit("paint", {"radius_mm": 5.0}, cube((2, 3, 4)), EditMode.ADD, tumour.id)
    assert diff is not None and diff.label == "Paint Tumour, 27 voxels"
    session.undo()
    session.redo()
    session.update_segment(tumour.id, name="Lesion")
    session.save()
    assert [e.kind for e in events] == [
        EventKind.SEGMENT_ADDED,
        EventKind.EDIT,
        EventKind.UNDO,
        EventKind.REDO,
        EventKind.SEGMENT_UPDATED,
        EventKind.SAVED,
    ]
    edit = events[1]
    assert edit.diff is diff and edit.box == (slice(2, 5), slice(3, 6), slice(4, 7))
    assert edit.user == "dr.reader" and edit.case_id == session.case_id
    assert edit.time_utc.tzinfo is not None and before <= edit.time_utc <= datetime.now(UTC) + timedelta(seconds=1)
    assert [e.seq for e in events] == sorted({e.seq for e in events})  # journal order
    record = events[2].to_json()
    assert record["kind"] == "undo" and record["tool"] == "paint" and record["parameters"] == {"radius_mm": 5.0}
    assert record["voxels_added"] == 27 and record["box"] == [[2, 3, 4], [5, 6, 7]]
    assert (
        events[4].box is None
        and events[4].diff is not None
        and events[4].diff.label == "Rename segment Tumour to Lesion"
    )
    unsubscribe()
    session.undo()
    assert len(events) == 6


def test_the_default_user_is_the_os_login(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    volume, source = ct_source
    with Session.create(tmp_path / "case", volume, source) as session:
        assert session.user == getpass.getuser()


def test_a_failing_listener_does_not_stop_the_others(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[EventKind] = []

    def broken(event: SessionEvent) -> None:
        raise RuntimeError("view crashed")

    session.subscribe(broken)
    session.subscribe(lambda e: seen.append(e.kind))
    session.add_segment("Liver")
    assert seen == [EventKind.SEGMENT_ADDED]
    assert "listener failed" in caplog.text


def test_segment_changes_are_undoable(session: Session) -> None:
    liver = session.add_segment("Liver")
    tumour = session.add_segment("Tumour")
    session.edit("paint", {}, cube((0, 0, 0), 4), "add", liver.id)
    session.edit("paint", {}, cube((2, 2, 2), 4), "add", tumour.id, MaskingRules(overwrite=Overwrite.NONE))
    assert len(session.segmentation.layers) == 2
    labels = session.segmentation.label_map().copy()
    session.update_segment(liver.id, color=(1, 2, 3), locked=True)
    with pytest.raises(LockedSegmentError):
        session.edit("erase", {}, cube((0, 0, 0)), EditMode.REMOVE, liver.id)
    with pytest.raises(LockedSegmentError):
        session.delete_segment(liver.id)
    session.update_segment(liver.id, locked=False)
    session.delete_segment(liver.id)
    assert liver.id not in session.segmentation.segments
    assert session.undo_stack.undo_label == "Delete segment Liver"
    session.undo()
    session.undo()
    assert session.segmentation.segments[liver.id].locked
    session.undo()
    assert session.segmentation.segments[liver.id].color == liver.color
    assert np.array_equal(session.segmentation.label_map(), labels)
    session.undo()  # the overlapping paint
    assert len(session.segmentation.layers) == 1


def test_bad_edits_change_nothing(session: Session) -> None:
    seg = session.add_segment("Tumour")
    with pytest.raises(EditError, match="JSON"):
        session.edit("paint", {"when": object()}, cube((0, 0, 0)), "add", seg.id)
    with pytest.raises(EditError, match="outside the grid"):
        session.edit("paint", {}, cube((11, 0, 0)), "add", seg.id)
    assert session.undo_stack.undo_count == 1
    assert session.edit("paint", {}, Region((0, 0, 0), np.zeros((2, 2, 2), bool)), "add", seg.id) is None
    assert session.undo_stack.undo_count == 1


def test_a_change_that_cannot_be_journalled_is_not_applied(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    seg = session.add_segment("Tumour")
    session.edit("paint", {}, cube((0, 0, 0)), "add", seg.id)
    labels = session.segmentation.label_map().copy()
    events: list[SessionEvent] = []
    session.subscribe(events.append)

    def disk_full(*args: object, **kwargs: object) -> int:
        raise JournalError("the edit could not be written to the journal (database or disk is full)")

    monkeypatch.setattr(session.journal, "append", disk_full)
    with pytest.raises(JournalError):
        session.edit("paint", {}, cube((4, 4, 4)), "add", seg.id, MaskingRules(overwrite="none"))
    with pytest.raises(JournalError):
        session.undo()
    with pytest.raises(JournalError):
        session.add_segment("Liver")
    assert np.array_equal(session.segmentation.label_map(), labels)
    assert list(session.segmentation.segments) == [seg.id] and len(session.segmentation.layers) == 1
    assert session.undo_stack.undo_count == 2 and events == []


def test_save_reopen_and_undo_across_the_save(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    volume, source = ct_source
    case = tmp_path / "case"
    with Session.create(case, volume, source) as session:
        seg = session.add_segment("Tumour")
        session.edit("paint", {}, cube((1, 1, 1)), "add", seg.id)
        assert session.modified
        session.save()
        assert not session.modified
        session.edit("paint", {}, cube((5, 5, 5)), "add", seg.id)
        assert session.modified
        labels = session.segmentation.label_map().copy()
        assert not list(case.glob(".*tmp")), "a save leaves no temporary file"
    with Session.open(case) as reopened:
        assert reopened.recovered_steps == 1 and reopened.modified and reopened.warnings == []
        assert np.array_equal(reopened.segmentation.label_map(), labels)
        assert np.array_equal(reopened.volume.array, volume.array)
        assert reopened.undo_stack.undo_count == 3
        reopened.undo()
        reopened.undo()  # reaches the edit before the save
        assert not reopened.segmentation.label_map().any()
        reopened.save()
    with Session.open(case) as again:
        assert again.recovered_steps == 0 and not again.modified
        assert not again.segmentation.label_map().any()
        assert again.undo_stack.undo_count == 1 and again.undo_stack.redo_count == 2
        again.redo()
        again.redo()
        assert np.array_equal(again.segmentation.label_map(), labels)


def test_a_failed_save_keeps_the_previous_file(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    seg = session.add_segment("Tumour")
    session.edit("paint", {}, cube((1, 1, 1)), "add", seg.id)
    session.save()
    path = session.case_dir / SEGMENTATION_FILE
    saved = path.read_bytes()
    session.edit("paint", {}, cube((6, 6, 6)), "add", seg.id)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(OutputError, match="No space left"):
        session.save()
    assert path.read_bytes() == saved
    assert not list(session.case_dir.glob(".*tmp"))
    assert session.modified
    monkeypatch.undo()
    loaded, seq = storage.load_segmentation(path)
    assert loaded.mask(seg.id).sum() == 27 and seq == 2  # add + first paint


def test_one_session_per_case_and_no_case_over_a_case(session: Session, ct_source: tuple[Volume, Path]) -> None:
    volume, source = ct_source
    with pytest.raises(CaseError, match="open in another radlabel session"):
        Session.open(session.case_dir)
    with pytest.raises(CaseError, match="a case exists"):
        Session.create(session.case_dir, volume, source)
    session.close()
    with pytest.raises(CaseError, match="closed"):
        session.add_segment("Liver")
    Session.open(session.case_dir).close()


def test_open_finds_a_moved_image_or_refuses_a_wrong_one(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    volume, source = ct_source
    image = tmp_path / "images" / "ct.nrrd"
    image.parent.mkdir()
    shutil.copy(source, image)
    with Session.create(tmp_path / "case", volume, image) as session:
        session.add_segment("Tumour")
    moved = tmp_path / "elsewhere.nrrd"
    image.rename(moved)
    with pytest.raises(CaseError, match="is missing"):
        Session.open(tmp_path / "case")
    with Session.open(tmp_path / "case", source_path=moved) as session:
        assert list(session.segmentation.segments) == [1]
    with Session.open(tmp_path / "case") as session:  # the new place was remembered
        assert session.case_info["source"]["path"] == str(moved)
    other, _ = make_demo_ct((10, 16, 20))
    save_volume(other, moved)
    with pytest.raises(CaseError, match="not on the grid"):
        Session.open(tmp_path / "case")
    with pytest.raises(CaseError, match="missing"):
        Session.open(tmp_path / "nowhere")


def test_the_case_folder_moves_with_its_image(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    volume, source = ct_source
    study = tmp_path / "study"
    (study / "case").mkdir(parents=True)
    shutil.copy(source, study / "ct.nrrd")
    with Session.create(study / "case", volume, study / "ct.nrrd") as session:
        session.add_segment("Tumour")
    study.rename(tmp_path / "archive")
    with Session.open(tmp_path / "archive" / "case") as session:
        assert list(session.segmentation.segments) == [1]
        assert Path(session.case_info["source"]["path"]) == (tmp_path / "archive" / "ct.nrrd").resolve()


def test_an_undo_memory_limit_drops_the_oldest_steps(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    volume, source = ct_source
    case = tmp_path / "case"
    with Session.create(case, volume, source, max_undo_bytes=6_000) as session:
        seg = session.add_segment("Tumour")
        for n in range(10):
            session.edit("paint", {}, cube((n, n, n), 2), "add", seg.id)
        assert session.undo_stack.nbytes <= 6_000 and session.undo_stack.dropped > 0
        kept = session.undo_stack.undo_count
        labels = session.segmentation.label_map().copy()
    with Session.open(case, max_undo_bytes=6_000) as session:
        assert session.undo_stack.undo_count == kept
        assert np.array_equal(session.segmentation.label_map(), labels)
    with Session.open(case) as session:  # the journal keeps every step; only memory was limited
        assert session.undo_stack.undo_count == 11


def test_every_change_review_and_undo_is_in_the_verified_audit_trail(tmp_path: Path) -> None:
    from radlabel.core.audit import AuditLog
    from radlabel.core.demo import make_demo_ct
    from radlabel.core.edit.request import EditMode, Region
    from radlabel.core.io.writers import save_volume

    volume, lesion = make_demo_ct(shape=(8, 32, 32))
    source = save_volume(volume, tmp_path / "image.nii.gz")
    with Session.create(tmp_path / "case", volume, source, user="dr.who") as session:
        segment = session.add_segment("Liver lesion")
        session.edit("paint", {"radius_mm": 5}, Region.whole(lesion | True), EditMode.ADD, segment.id)
        session.record("proposal-rejected", {"model": {"name": "m", "version": "1"}})
        session.undo()
        session.save()
    with AuditLog.for_case(tmp_path / "case") as log:
        records = list(log.records())
        assert log.verify().ok
    assert [r.action for r in records] == ["segment-added", "edit", "proposal-rejected", "undo", "saved"]
    assert all(r.user == "dr.who" for r in records)
    edit = records[1].payload
    assert edit["tool"] == "paint" and edit["parameters"] == {"radius_mm": 5}
    assert edit["voxels_added"] == 8 * 32 * 32 and edit["segment_id"] == segment.id
    assert records[2].payload["details"]["model"]["name"] == "m"


def test_several_edits_are_one_undo_step_and_survive_reopening(tmp_path: Path) -> None:
    import numpy as np

    from radlabel.core.demo import make_demo_ct
    from radlabel.core.edit.request import EditMode, MaskingRules, Overwrite, Region
    from radlabel.core.io.writers import save_volume

    volume, _ = make_demo_ct(shape=(8, 32, 32))
    source = save_volume(volume, tmp_path / "image.nii.gz")
    rng = np.random.default_rng(3)
    with Session.create(tmp_path / "case", volume, source) as session:
        a, b = session.add_segment("A"), session.add_segment("B")
        session.edit("paint", {}, Region((0, 0, 0), rng.random((8, 32, 32)) > 0.7), EditMode.ADD, a.id)
        before = [layer.copy() for layer in session.segmentation.layers]
        steps = [
            (Region((1, 2, 3), rng.random((5, 20, 20)) > 0.5), EditMode.REPLACE, a.id),
            (Region((0, 5, 5), rng.random((6, 20, 20)) > 0.4), EditMode.ADD, b.id),  # overlaps A: new layer
            (Region((2, 0, 0), rng.random((3, 32, 32)) > 0.8), EditMode.REMOVE, a.id),
        ]
        combined = session.edit_many(
            "grow-from-seeds", {"margin_mm": 10}, steps, MaskingRules(overwrite=Overwrite.NONE)
        )
        assert combined is not None and session.undo_stack.undo_label.startswith("Grow from seeds")
        after = [layer.copy() for layer in session.segmentation.layers]
        assert len(after) == 2 and len(before) == 1
        session.undo()
        assert len(session.segmentation.layers) == 1
        np.testing.assert_array_equal(session.segmentation.layers[0], before[0])
        session.redo()
        for ours, theirs in zip(session.segmentation.layers, after, strict=True):
            np.testing.assert_array_equal(ours, theirs)
    with Session.open(tmp_path / "case") as reopened:
        for ours, theirs in zip(reopened.segmentation.layers, after, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        reopened.undo()
        np.testing.assert_array_equal(reopened.segmentation.layers[0], before[0])


def test_discard_recovered_goes_back_to_the_saved_state(tmp_path: Path, ct_source: tuple[Volume, Path]) -> None:
    volume, source = ct_source
    case = tmp_path / "case"
    with Session.create(case, volume, source) as session:
        seg = session.add_segment("Tumour")
        session.edit("paint", {}, cube((1, 1, 1)), "add", seg.id)
        session.save()
        saved = session.segmentation.label_map().copy()
        session.edit("paint", {}, cube((5, 5, 5)), "add", seg.id)
        session.edit("paint", {}, cube((9, 9, 9)), "add", seg.id)
        session.undo()
    with Session.open(case) as reopened:
        assert reopened.recovered_steps == 3
        assert reopened.discard_recovered() is True
        assert np.array_equal(reopened.segmentation.label_map(), saved)
        actions = [r.action for r in reopened.audit.records()]
        assert actions[-4:] == ["redo", "undo", "undo", "recovery-discarded"]  # the undo redone, both paints undone
        reopened.redo()  # the work is still there to bring back
        assert reopened.segmentation.label_map().sum() > saved.sum()


def test_discard_recovered_refuses_when_an_undo_was_followed_by_an_edit(
    tmp_path: Path, ct_source: tuple[Volume, Path]
) -> None:
    volume, source = ct_source
    case = tmp_path / "case"
    with Session.create(case, volume, source) as session:
        seg = session.add_segment("Tumour")
        session.save()
        session.edit("paint", {}, cube((5, 5, 5)), "add", seg.id)
        session.undo()
        session.edit("paint", {}, cube((9, 9, 9)), "add", seg.id)
    with Session.open(case) as reopened:
        before = reopened.segmentation.label_map().copy()
        with pytest.raises(EditError, match="cannot be discarded one by one"):
            reopened.discard_recovered()
        assert np.array_equal(reopened.segmentation.label_map(), before)
