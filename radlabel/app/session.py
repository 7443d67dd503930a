"""One open case: reference volume + segmentation + undo stack + journal + listeners. No Qt.

A case is a folder:

- ``case.json``: which image the case annotates (path, series, volume of a 4D series), its grid, the case id.
- ``segmentation.npz``: the last saved segmentation, with the number of the last journal record it includes.
- ``journal.sqlite``: every step since the case was created (`radlabel.app.journal`).

Every change goes through a `Session` method: the change is applied in memory (voxel edits through
`radlabel.core.edit.apply.apply_region`, the one edit path), written to the journal (durable when the method
returns; if that fails the change is taken back and `JournalError` raised), pushed on the undo stack, and then
announced to the subscribers as a `SessionEvent` (the views redraw the event's box; the audit trail records it).
`Session.open` reloads the image, the saved segmentation, and replays the journal after it, so a crash loses no
edit and the undo stack comes back as it was. A session is used from one thread at a time (it holds a lock).
"""

from __future__ import annotations

import enum
import getpass
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from radlabel.app import storage
from radlabel.app.journal import Journal, JournalOp
from radlabel.app.undo import UndoStack
from radlabel.core.audit import AuditLog
from radlabel.core.edit import apply as edits
from radlabel.core.edit.apply import DiffKind, EditDiff
from radlabel.core.edit.request import EditMode, MaskingRules, Region
from radlabel.core.errors import CaseError, EditError, RadlabelError
from radlabel.core.progress import ProgressCallback
from radlabel.core.segmentation.model import Grid, Segment, Segmentation
from radlabel.core.volume import Volume

log = logging.getLogger(__name__)

CASE_FILE = "case.json"
SEGMENTATION_FILE = "segmentation.npz"
JOURNAL_FILE = Journal.FILE_NAME
CASE_FORMAT = "radlabel-case"
CASE_VERSION = 1


class EventKind(enum.StrEnum):
    EDIT = "edit"
    UNDO = "undo"
    REDO = "redo"
    SEGMENT_ADDED = "segment-added"
    SEGMENT_UPDATED = "segment-updated"
    SEGMENT_DELETED = "segment-deleted"
    SEGMENT_MOVED = "segment-moved"
    SAVED = "saved"
    REVIEW = "review"  # no voxels changed: a proposal shown or rejected, an export, ... (``details`` says what)


_EVENT_OF_DIFF = {
    DiffKind.EDIT: EventKind.EDIT,
    DiffKind.SEGMENT_ADDED: EventKind.SEGMENT_ADDED,
    DiffKind.SEGMENT_UPDATED: EventKind.SEGMENT_UPDATED,
    DiffKind.SEGMENT_DELETED: EventKind.SEGMENT_DELETED,
    DiffKind.SEGMENT_MOVED: EventKind.SEGMENT_MOVED,
}


@dataclass(frozen=True)
class SessionEvent:
    """One applied change: what (``kind`` and ``diff``), where (``box``), when (UTC), who, and its journal record.

    For UNDO and REDO, ``diff`` is the step undone or redone. ``box`` bounds the voxels that changed (``None``
    when none did, e.g. a rename).
    """

    kind: EventKind
    diff: EditDiff | None
    box: tuple[slice, slice, slice] | None
    time_utc: datetime
    user: str
    seq: int
    case_id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for the audit trail and logs."""
        diff = self.diff
        return {
            "kind": self.kind.value,
            "time_utc": self.time_utc.isoformat(),
            "user": self.user,
            "case_id": self.case_id,
            "seq": self.seq,
            "label": diff.label if diff else None,
            "tool": diff.tool if diff else None,
            "parameters": dict(diff.parameters) if diff else None,
            "segment_id": diff.segment_id if diff else None,
            "voxels_added": diff.voxels_changed.added if diff else 0,
            "voxels_removed": diff.voxels_changed.removed if diff else 0,
            "box": [list(diff.box[0]), list(diff.box[1])] if diff and diff.box else None,
            "details": dict(self.details),
        }


Listener = Callable[[SessionEvent], None]


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers and services)
        return "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


class Session:
    """An open case. Make one with `Session.create` or `Session.open`; close it (or use ``with``)."""

    def __init__(
        self,
        case_dir: Path,
        case_info: dict[str, Any],
        volume: Volume,
        segmentation: Segmentation,
        journal: Journal,
        saved_seq: int,
        user: str | None,
        max_undo_bytes: int | None,
    ) -> None:
        self.case_dir = case_dir
        self.case_info = case_info
        self.case_id: str = case_info["case_id"]
        self.volume = volume
        self.segmentation = segmentation
        self.journal = journal
        self.user = user or _default_user()
        self.undo_stack = UndoStack(max_undo_bytes)
        self.warnings: list[str] = []
        """What `open` had to tell (a damaged journal tail it ignored, ...)."""
        self.recovered_steps = 0
        """Journal steps `open` replayed on top of the saved segmentation (work not saved before a crash)."""
        self._saved_seq = saved_seq
        self._changed_seq = saved_seq
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._closed = False
        self.audit = AuditLog.for_case(case_dir, self.user)
        """The case's hash-chained audit trail: every change, review decision and export is appended here."""

    # -- opening -----------------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        case_dir: str | Path,
        volume: Volume,
        source_path: str | Path,
        *,
        series_uid: str | None = None,
        segmentation: Segmentation | None = None,
        user: str | None = None,
        max_undo_bytes: int | None = None,
    ) -> Session:
        """Start a new case for ``volume``, read from ``source_path`` (``series_uid`` picks the series there).

        ``segmentation`` (on the volume's grid) is the starting state, e.g. an imported one; empty by default.
        Raises `CaseError` when ``case_dir`` already holds a case.
        """
        folder = Path(case_dir).expanduser().absolute()
        if (folder / CASE_FILE).exists():
            raise CaseError("a case exists in this folder", folder, "open it, or choose an empty folder")
        source = Path(source_path).expanduser().absolute()
        grid = Grid.of(volume)
        if segmentation is None:
            segmentation = Segmentation.empty(grid)
        elif not storage.grids_match(segmentation.grid, grid):
            raise CaseError("the segmentation is not on the volume's grid", folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CaseError(f"the case folder cannot be created ({exc.strerror or exc})", folder) from None
        try:
            relative: str | None = os.path.relpath(source, folder)
        except ValueError:  # another drive (Windows)
            relative = None
        info: dict[str, Any] = {
            "format": CASE_FORMAT,
            "version": CASE_VERSION,
            "case_id": uuid.uuid4().hex,
            "created_utc": _now().isoformat(),
            "source": {
                "path": str(source),
                "relative_path": relative,
                "series_uid": series_uid,
                "volume_index": int(volume.metadata.get("volume_index", 0)),
            },
            "grid": storage.grid_to_json(grid),
        }
        journal_path = folder / JOURNAL_FILE
        for stale in (journal_path, journal_path.with_name(journal_path.name + "-wal")):
            stale.unlink(missing_ok=True)  # left by an earlier case folder without case.json
        storage.save_segmentation(folder / SEGMENTATION_FILE, segmentation, journal_seq=0)
        journal = Journal(journal_path, info["case_id"])
        storage.write_json(folder / CASE_FILE, info)  # last: a folder with case.json is a complete case
        return cls(folder, info, volume, segmentation, journal, 0, user, max_undo_bytes)

    @classmethod
    def open(
        cls,
        case_dir: str | Path,
        *,
        source_path: str | Path | None = None,
        user: str | None = None,
        max_undo_bytes: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Session:
        """Reopen a case: reload its image, the saved segmentation, and every journalled step after it.

        ``source_path`` points at the image when it has moved (and is remembered). Steps the journal holds are
        replayed, so edits made before a crash come back, and so does the undo stack. A damaged journal tail is
        dropped with a message in ``warnings``. Raises `CaseError` when the folder is not a case, the image cannot
        be loaded or is not on the case's grid, or another session has the case open.
        """
        folder = Path(case_dir).expanduser().absolute()
        info = storage.read_json(folder / CASE_FILE)
        if info.get("format") != CASE_FORMAT or "case_id" not in info:
            raise CaseError("not a radlabel case file", folder / CASE_FILE)
        if int(info.get("version", 0)) > CASE_VERSION:
            raise CaseError("the case was written by a newer radlabel", folder / CASE_FILE, "update radlabel")
        grid = storage.grid_from_json(info["grid"])
        volume, moved = _load_source(folder, info, source_path, progress)
        if not storage.grids_match(Grid.of(volume), grid):
            raise CaseError(
                f"the image {info['source']['path']} is not on the grid the case was drawn on "
                f"(size {volume.array.shape} vs {grid.shape}, or a different position)",
                folder,
                "open the case with the image it was created for",
            )
        seg_path = folder / SEGMENTATION_FILE
        if seg_path.exists():
            segmentation, saved_seq = storage.load_segmentation(seg_path)
            if not storage.grids_match(segmentation.grid, grid):
                raise CaseError("the saved segmentation is not on the case's grid", seg_path)
        else:
            segmentation, saved_seq = Segmentation.empty(grid), 0
        journal = Journal(folder / JOURNAL_FILE, info["case_id"])
        session = cls(folder, info, volume, segmentation, journal, saved_seq, user, max_undo_bytes)
        try:
            if moved:
                storage.write_json(folder / CASE_FILE, info)
            session._replay()
        except BaseException:
            session.close()
            raise
        return session

    def _replay(self) -> None:
        """Rebuild the undo stack from the whole journal; reapply the steps after the saved segmentation."""
        records, warnings = self.journal.read()
        self.warnings.extend(warnings)
        stack = UndoStack()  # unlimited while replaying: an undo may reach a step a limit would have dropped
        applied = 0
        for record in records:
            live = record.seq > self._saved_seq
            try:
                if record.op == JournalOp.DO:
                    assert record.diff is not None
                    if live:
                        edits.reapply(self.segmentation, record.diff)
                    stack.push(record.diff)
                elif record.op == JournalOp.UNDO:
                    diff = stack.pop_undo()
                    if live:
                        try:
                            edits.revert(self.segmentation, diff)
                        except EditError:
                            stack.unpop_undo()
                            raise
                elif record.op == JournalOp.REDO:
                    diff = stack.pop_redo()
                    if live:
                        try:
                            edits.reapply(self.segmentation, diff)
                        except EditError:
                            stack.unpop_redo()
                            raise
            except (EditError, IndexError) as exc:
                self.warnings.append(
                    f"journal record {record.seq} ({record.op.value} '{record.label}') does not fit the saved "
                    f"segmentation ({exc}); the work is restored up to the step before it"
                )
                self.warnings.append(self.journal.discard_from(record.seq))
                break
            if live and record.op != JournalOp.SAVE:
                applied += 1
                self._changed_seq = record.seq
        self.journal.continue_after(self._saved_seq)
        stack.max_bytes = self.undo_stack.max_bytes
        stack.trim()
        self.undo_stack = stack
        self.recovered_steps = applied
        for warning in self.warnings:
            log.warning("%s: %s", self.case_dir, warning)

    # -- state -------------------------------------------------------------------------------------------------

    @property
    def modified(self) -> bool:
        """True when there are changes since the last save (they are in the journal either way)."""
        return self._changed_seq > self._saved_seq

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(event)`` after each applied change (on the thread that made it); returns unsubscribe.

        An exception in a callback is logged and does not stop the others or undo the change.
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    # -- changes -----------------------------------------------------------------------------------------------

    def edit(
        self,
        tool: str,
        params: Mapping[str, Any] | None,
        region: Region,
        mode: EditMode | str,
        segment_id: int,
        rules: MaskingRules = MaskingRules(),  # noqa: B008 - frozen dataclass, safe as a default
        *,
        label: str | None = None,
    ) -> EditDiff | None:
        """Apply a tool's region to a segment (the one edit path); returns the diff, ``None`` when nothing changed.

        ``params`` are the tool's parameters as JSON-able data; they are journalled and reach the audit trail as
        given. Raises `EditError` / `LockedSegmentError` for an edit that cannot be made and `JournalError` when
        it cannot be journalled (the segmentation is then unchanged).
        """
        parameters = _json_parameters(params)
        with self._lock:
            self._check_open()
            diff = edits.apply_region(
                self.segmentation,
                self.volume.array,
                segment_id,
                region,
                mode,
                rules,
                tool=tool,
                parameters=parameters,
                label=label,
            )
            if diff is not None:
                self._commit(diff)
            return diff

    def edit_many(
        self,
        tool: str,
        params: Mapping[str, Any] | None,
        steps: Sequence[tuple[Region, EditMode | str, int]],
        rules: MaskingRules = MaskingRules(),  # noqa: B008 - frozen dataclass, safe as a default
        *,
        label: str | None = None,
    ) -> EditDiff | None:
        """Several ``(region, mode, segment_id)`` edits as ONE undo step (e.g. grow-from-seeds writing each
        competing segment). If any of them fails, none is kept."""
        parameters = _json_parameters(params)
        with self._lock:
            self._check_open()
            applied: list[EditDiff] = []
            try:
                for region, mode, segment_id in steps:
                    diff = edits.apply_region(
                        self.segmentation, self.volume.array, segment_id, region, mode, rules,
                        tool=tool, parameters=parameters,
                    )  # fmt: skip
                    if diff is not None:
                        applied.append(diff)
            except BaseException:
                for diff in reversed(applied):
                    edits.revert(self.segmentation, diff, check=False)
                raise
            if not applied:
                return None
            voxels = sum(d.voxels_changed.total for d in applied)
            combined = edits.combine(
                applied, label or f"{tool.replace('-', ' ').capitalize()}, {voxels:,} voxels", tool, parameters
            )
            self._commit(combined)
            return combined

    def add_segment(self, name: str, color: tuple[int, int, int] | None = None, **fields: Any) -> Segment:
        """Add an empty segment (undoable); ``fields`` are other `Segment` fields (category, type, ...)."""
        with self._lock:
            self._check_open()
            diff = edits.add_segment(self.segmentation, name, color, **fields)
            self._commit(diff)
            assert diff.segment_id is not None
            return self.segmentation.segments[diff.segment_id]

    def update_segment(self, segment_id: int, **fields: Any) -> Segment:
        """Rename, recolour, lock/unlock, hide/show, change codes or notes (undoable); voxels are untouched."""
        with self._lock:
            self._check_open()
            diff = edits.update_segment(self.segmentation, segment_id, **fields)
            if diff is not None:
                self._commit(diff)
            return self.segmentation.segments[segment_id]

    def delete_segment(self, segment_id: int) -> None:
        """Delete a segment and its voxels (undoable). A locked segment raises `LockedSegmentError`."""
        with self._lock:
            self._check_open()
            self._commit(edits.delete_segment(self.segmentation, segment_id))

    def move_segment(self, segment_id: int, layer: int | None = None) -> Segment:
        """Move a segment to another layer (``None``: a new one), e.g. before drawing an overlapping segment."""
        with self._lock:
            self._check_open()
            diff = edits.move_segment(self.segmentation, segment_id, layer)
            if diff is not None:
                self._commit(diff)
            return self.segmentation.segments[segment_id]

    def undo(self) -> EditDiff | None:
        """Revert the last step; returns it (``None`` when there is nothing to undo)."""
        return self._travel(undo=True)

    def redo(self) -> EditDiff | None:
        """Reapply the last undone step; returns it (``None`` when there is nothing to redo)."""
        return self._travel(undo=False)

    def _travel(self, undo: bool) -> EditDiff | None:
        """Undo or redo one step: change the segmentation, journal it, announce it; all or nothing."""
        stack = self.undo_stack
        pop, unpop = (stack.pop_undo, stack.unpop_undo) if undo else (stack.pop_redo, stack.unpop_redo)
        go, back = (edits.revert, edits.reapply) if undo else (edits.reapply, edits.revert)
        op, kind, verb = (JournalOp.UNDO, EventKind.UNDO, "Undo") if undo else (JournalOp.REDO, EventKind.REDO, "Redo")
        with self._lock:
            self._check_open()
            if not (stack.can_undo if undo else stack.can_redo):
                return None
            diff = pop()
            try:
                go(self.segmentation, diff)
            except BaseException:
                unpop()
                raise
            try:
                seq, when = self._journal(op, None, f"{verb} {diff.label}")
            except BaseException:
                back(self.segmentation, diff, check=False)
                unpop()
                raise
            self._emit(kind, diff, seq, when)
            return diff

    def save(self) -> Path:
        """Write the segmentation atomically (with the journal position it includes) and checkpoint the journal."""
        with self._lock:
            self._check_open()
            seq = self.journal.last_seq
            path = self.case_dir / SEGMENTATION_FILE
            storage.save_segmentation(path, self.segmentation, journal_seq=seq)
            self._saved_seq = seq
            self._changed_seq = seq
            marker, when = self._journal(JournalOp.SAVE, None, "Save")
            self.journal.checkpoint()
            self._emit(EventKind.SAVED, None, marker, when)
            return path

    def close(self) -> None:
        """Release the case (unsaved work stays in the journal and comes back on `open`)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.journal.close()
                self.audit.close()
                self._listeners.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CaseError("the case is closed", self.case_dir)

    def _journal(self, op: JournalOp, diff: EditDiff | None, label: str) -> tuple[int, datetime]:
        when = _now()
        return self.journal.append(op, diff, self.user, when, label), when

    def _commit(self, diff: EditDiff) -> None:
        """Journal a change already applied in memory (taking it back if that fails), stack it, announce it."""
        try:
            seq, when = self._journal(JournalOp.DO, diff, diff.label)
        except BaseException:
            edits.revert(self.segmentation, diff, check=False)
            raise
        self.undo_stack.push(diff)
        self._changed_seq = seq
        self._emit(_EVENT_OF_DIFF[diff.kind], diff, seq, when)

    def discard_recovered(self) -> bool:
        """Take back the steps `open` replayed after the last save: the case goes back to its saved state.

        The steps are walked back in reverse (a replayed edit or redo is undone, a replayed undo is redone), so
        the journal and the audit trail record each one and Redo can still bring them back; a
        ``recovery-discarded`` record follows. Returns whether the segmentation now equals the saved one.
        Raises `EditError`, changing nothing, when an undo among the steps was followed by a new edit (that
        dropped what the walk would need; Undo still takes the steps back one by one).
        """
        steps = self.recovered_steps
        saved, saved_seq = storage.load_segmentation(self.case_dir / SEGMENTATION_FILE)
        records, _ = self.journal.read()
        live = [r for r in records if r.seq > saved_seq and r.op is not JournalOp.SAVE]
        undone = False
        for record in live:
            undone = undone or record.op is JournalOp.UNDO
            if record.op is JournalOp.DO and undone:
                raise EditError(
                    "the recovered steps cannot be discarded one by one (an undo among them was followed by a new "
                    "edit); they are kept, and Undo still takes them back step by step"
                )
        for record in reversed(live):
            if self._travel(undo=record.op is not JournalOp.UNDO) is None:
                raise EditError(f"could not take back '{record.label}'; the steps before it are kept")
        current = self.segmentation
        same = len(saved.layers) == len(current.layers) and all(
            np.array_equal(a, b) for a, b in zip(saved.layers, current.layers, strict=True)
        )
        same = same and saved.segments == current.segments
        self.record("recovery-discarded", {"steps": steps, "saved_journal_seq": saved_seq, "exact": same})
        return same

    def record(self, action: str, details: Mapping[str, Any]) -> None:
        """Announce and audit something that changes no voxels (a proposal shown or rejected, an export, ...)."""
        with self._lock:
            self._check_open()
            self._emit(EventKind.REVIEW, None, self.journal.last_seq, _now(), {"action": action, **details})

    def _emit(
        self,
        kind: EventKind,
        diff: EditDiff | None,
        seq: int,
        when: datetime,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        if kind in (EventKind.UNDO, EventKind.REDO):
            self._changed_seq = seq
        event = SessionEvent(
            kind, diff, diff.slices if diff else None, when, self.user, seq, self.case_id, dict(details or {})
        )
        action = str(event.details.get("action", kind.value)) if kind is EventKind.REVIEW else kind.value
        try:
            self.audit.append(action, event.to_json(), user=self.user)
        except Exception as exc:  # the change itself stands; the reader must learn the trail has a hole
            log.exception("the audit trail could not record %s", action)
            self.warnings.append(f"the audit trail could not record '{action}': {exc}")
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("a session listener failed on %s", kind.value)


def _json_parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Tool parameters as given, checked to be JSON data: they are journalled and audited verbatim."""
    parameters = dict(params or {})
    try:
        json.dumps(parameters)
    except (TypeError, ValueError) as exc:
        raise EditError(f"tool parameters must be JSON data ({exc})") from None
    return parameters


def _load_source(
    folder: Path, info: dict[str, Any], override: str | Path | None, progress: ProgressCallback | None
) -> tuple[Volume, bool]:
    """The case's reference volume; ``True`` when it came from a new place (``info`` is updated)."""
    from radlabel.core.io.loader import load  # the readers import pydicom & co.; only opening needs them

    source = info["source"]
    candidates: list[Path] = []
    if override is not None:
        candidates.append(Path(override).expanduser().absolute())
    else:
        candidates.append(Path(source["path"]))
        if source.get("relative_path"):
            candidates.append((folder / source["relative_path"]).resolve())
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise CaseError(
            f"the case's image {source['path']} is missing",
            folder,
            "move it back, or open the case with the image's new location",
        )
    try:
        loaded = load(path, source.get("series_uid"), progress)
    except RadlabelError as exc:
        raise CaseError(f"the case's image cannot be loaded: {exc}", folder) from None
    index = int(source.get("volume_index", 0))
    if index >= len(loaded.volumes):
        raise CaseError(f"the case's image has no volume {index}", path)
    moved = path != Path(source["path"])
    if moved:
        source["path"] = str(path)
        try:
            source["relative_path"] = os.path.relpath(path, folder)
        except ValueError:
            source["relative_path"] = None
    return loaded.volumes[index], moved


__all__ = ["EventKind", "Listener", "Session", "SessionEvent"]
