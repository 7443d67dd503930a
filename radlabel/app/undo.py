"""The labelled undo/redo stack of a session.

It holds `EditDiff`s only (sparse and compressed, so its memory follows the voxels changed) and knows nothing
of segmentations: `Session` reverts or reapplies the diff the stack hands it. With ``max_bytes`` the oldest
steps are dropped when the total grows past it; the newest step always stays undoable.
"""

from __future__ import annotations

from collections import deque

from radlabel.core.edit.apply import EditDiff


class UndoStack:
    """Undo and redo lists of diffs with labels for menus and a memory total."""

    def __init__(self, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be positive (or None for no limit)")
        self.max_bytes = max_bytes
        self._undo: deque[EditDiff] = deque()
        self._redo: list[EditDiff] = []
        self._nbytes = 0
        self.dropped = 0
        """Steps dropped from the bottom because of ``max_bytes`` since the stack was made."""

    # -- state -------------------------------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        """Label of the step Undo would revert ("Paint Tumour, 1,204 voxels"), ``None`` when there is none."""
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    @property
    def undo_count(self) -> int:
        return len(self._undo)

    @property
    def redo_count(self) -> int:
        return len(self._redo)

    @property
    def nbytes(self) -> int:
        """Memory held by every diff on both lists."""
        return self._nbytes

    def undo_items(self) -> list[EditDiff]:
        """The undo list, oldest first (for a history panel)."""
        return list(self._undo)

    def redo_items(self) -> list[EditDiff]:
        """The redo list, next to redo first."""
        return list(reversed(self._redo))

    def __len__(self) -> int:
        return len(self._undo) + len(self._redo)

    # -- changes -----------------------------------------------------------------------------------------------

    def push(self, diff: EditDiff) -> list[EditDiff]:
        """Record a new step: clears the redo list; returns the old steps dropped to stay under ``max_bytes``."""
        for old in self._redo:
            self._nbytes -= old.nbytes
        self._redo.clear()
        self._undo.append(diff)
        self._nbytes += diff.nbytes
        return self.trim()

    def trim(self) -> list[EditDiff]:
        """Drop the oldest steps while over ``max_bytes`` (never the newest one)."""
        dropped: list[EditDiff] = []
        if self.max_bytes is None:
            return dropped
        while self._nbytes > self.max_bytes and len(self._undo) > 1:
            old = self._undo.popleft()
            self._nbytes -= old.nbytes
            dropped.append(old)
        self.dropped += len(dropped)
        return dropped

    def pop_undo(self) -> EditDiff:
        """The step to revert; it moves to the redo list. Raises IndexError when there is none."""
        if not self._undo:
            raise IndexError("nothing to undo")
        diff = self._undo.pop()
        self._redo.append(diff)
        return diff

    def pop_redo(self) -> EditDiff:
        """The step to reapply; it moves back to the undo list. Raises IndexError when there is none."""
        if not self._redo:
            raise IndexError("nothing to redo")
        diff = self._redo.pop()
        self._undo.append(diff)
        return diff

    def unpop_undo(self) -> None:
        """Put back the step `pop_undo` just gave (its revert failed)."""
        self._undo.append(self._redo.pop())

    def unpop_redo(self) -> None:
        """Put back the step `pop_redo` just gave (its reapply failed)."""
        self._redo.append(self._undo.pop())

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._nbytes = 0
