"""The open case as the window sees it: the `Session` (edits, undo, journal, audit), the proposal review, the
segment being edited and the masking settings, and the bridge from session events to the views.

Every change goes through the session; its events (on whichever thread made the change) reach the GUI thread
as the Qt signal :attr:`CaseController.event`, after the viewer state has been told which box changed
(`ViewerState.segmentation_changed`), so the views redraw just that part.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from radlabel.core.edit.request import Editable, EditMode, MaskingRules, Region
from radlabel.core.errors import RadlabelError
from radlabel.ui.viewer_state import ViewerState

if TYPE_CHECKING:  # the session, journal and review modules load with the first case, not with the window
    from radlabel.app.review import ProposalReview
    from radlabel.app.session import Session, SessionEvent
    from radlabel.core.edit.apply import EditDiff


@functools.cache
def _voxel_events() -> frozenset[Any]:
    """The session events that change voxels or segments."""
    from radlabel.app.session import EventKind

    return frozenset(
        {
            EventKind.EDIT,
            EventKind.UNDO,
            EventKind.REDO,
            EventKind.SEGMENT_ADDED,
            EventKind.SEGMENT_UPDATED,
            EventKind.SEGMENT_DELETED,
            EventKind.SEGMENT_MOVED,
        }
    )


class CaseController(QObject):
    """Holds the session of the case on show; see the module docstring."""

    event = Signal(object)  # SessionEvent, on the GUI thread, after the views were told
    session_changed = Signal()  # another case (or none)
    current_changed = Signal(object)  # the segment id being edited (or None)
    error = Signal(str)  # an edit that could not be made (locked segment, ...)
    _relay = Signal(object)

    def __init__(self, state: ViewerState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.session: Session | None = None
        self.review: ProposalReview | None = None
        self.current_segment_id: int | None = None
        self.rules = MaskingRules()
        self._unsubscribe: Any = None
        self._relay.connect(self._on_event)  # queued when a worker thread made the change

    # -- case ----------------------------------------------------------------------------------------------

    def attach(self, session: Session | None) -> None:
        """Make ``session`` the open case (closing the previous one; its unsaved work stays in its journal)."""
        self.close()
        self.session = session
        if session is not None:
            from radlabel.app.review import ProposalReview

            self._unsubscribe = session.subscribe(self._relay.emit)
            self.review = ProposalReview(session)
            ids = list(session.segmentation.segments)
            self.current_segment_id = ids[0] if ids else None
        self.session_changed.emit()
        self.current_changed.emit(self.current_segment_id)

    def close(self) -> None:
        if self.review is not None:
            self.review.close()
            self.review = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.session is not None:
            self.session.close()
            self.session = None
        self.current_segment_id = None

    def _on_event(self, event: SessionEvent) -> None:
        if event.kind in _voxel_events() and self.session is not None:
            from radlabel.app.session import EventKind

            deleted = event.kind is EventKind.SEGMENT_DELETED and event.diff is not None
            if deleted and event.diff.segment_id == self.current_segment_id:  # type: ignore[union-attr]
                self.set_current_segment(next(iter(self.session.segmentation.segments), None))
            if self.state.segmentation is self.session.segmentation:
                self.state.segmentation_changed(event.box)
                self.state.sync_segment_visibility()
        self.event.emit(event)

    # -- the segment being edited and masking ---------------------------------------------------------------

    def set_current_segment(self, segment_id: int | None) -> None:
        if segment_id != self.current_segment_id:
            self.current_segment_id = segment_id
            self.current_changed.emit(segment_id)

    def set_rules(self, rules: MaskingRules) -> None:
        self.rules = rules

    def effective_rules(self) -> MaskingRules:
        """The masking rules, with the "inside segment" target defaulting to the current segment."""
        rules = self.rules
        if rules.editable is Editable.INSIDE_SEGMENT and rules.segment_id is None:
            return MaskingRules(rules.editable, self.current_segment_id, rules.intensity_range, rules.overwrite)
        return rules

    # -- changes -------------------------------------------------------------------------------------------

    def require_session(self) -> Session:
        if self.session is None:
            raise RadlabelError("no case is open: open an image first")
        return self.session

    def require_segment(self) -> int:
        session = self.require_session()
        if self.current_segment_id is None or self.current_segment_id not in session.segmentation.segments:
            raise RadlabelError("no segment to edit: add one in the Segments panel first")
        return self.current_segment_id

    def edit(
        self,
        tool: str,
        params: Mapping[str, Any],
        region: Region,
        mode: EditMode | str,
        segment_id: int | None = None,
        *,
        rules: MaskingRules | None = None,
        label: str | None = None,
    ) -> EditDiff | None:
        """One edit of the current (or given) segment through the session, with the masking settings."""
        session = self.require_session()
        target = segment_id if segment_id is not None else self.require_segment()
        return session.edit(
            tool, params, region, mode, target, rules if rules is not None else self.effective_rules(), label=label
        )

    def edit_many(
        self, tool: str, params: Mapping[str, Any], steps: list[tuple[Region, EditMode, int]]
    ) -> EditDiff | None:
        """Several segments' edits as one undo step (grow from seeds), with the masking settings."""
        session = self.require_session()
        return session.edit_many(tool, params, steps, self.effective_rules())

    def try_call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``function``; a `RadlabelError` becomes the :attr:`error` signal (the window shows it)."""
        try:
            return function(*args, **kwargs)
        except RadlabelError as exc:
            self.error.emit(str(exc))
            return None

    def undo(self) -> EditDiff | None:
        if self.session is None:
            return None
        return self.try_call(self.session.undo)

    def redo(self) -> EditDiff | None:
        if self.session is None:
            return None
        return self.try_call(self.session.redo)

    def discard_recovered(self) -> bool:
        """`Session.discard_recovered` with the views redrawn once; False (and `error`) when the case is not
        exactly as last saved afterwards or the steps could not be taken back."""
        session = self.require_session()
        with self.state.batch():
            same = self.try_call(session.discard_recovered)
        if same is False:
            self.error.emit("the case is not exactly as last saved after discarding; Redo brings the steps back")
        return bool(same)

    def keep_recovered(self) -> None:
        """Record that the user kept the steps `Session.open` replayed after the last save."""
        session = self.require_session()
        self.try_call(session.record, "recovery-kept", {"steps": session.recovered_steps})

    def undo_text(self) -> tuple[str, str]:
        """Texts of the Edit menu's undo and redo items: "Undo Paint Tumour, 1,204 voxels"."""
        stack = self.session.undo_stack if self.session is not None else None
        undo = stack.undo_label if stack is not None else None
        redo = stack.redo_label if stack is not None else None
        return (f"&Undo {undo}" if undo else "&Undo", f"&Redo {redo}" if redo else "&Redo")
