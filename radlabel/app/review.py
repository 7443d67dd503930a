"""Proposal review: an AI proposal is shown as a proposal until the reader accepts, rejects or edits it.

Each decision is one step of the session: accepting is an edit through the one edit path (undoable,
journalled, audited with the model identity and prompt), rejecting is an audit record. A segment made by
accepting a proposal is AUTOMATIC with the model's identity; once the reader edits it by hand it becomes
SEMIAUTOMATIC, and the audit trail records how the final mask differs from what the model proposed.
Probability maps of proposals are kept in the case folder (``proposals/``) for later uncertainty ranking.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from radlabel.ai.proposals import compare_with_final, limit_to_slice, proposal_summary, proposal_to_region
from radlabel.ai.sdk import Proposal
from radlabel.app.session import EventKind, Session, SessionEvent
from radlabel.core.edit.apply import EditDiff
from radlabel.core.edit.request import EditMode, MaskingRules
from radlabel.core.errors import EditError
from radlabel.core.segmentation.model import AlgorithmInfo, AlgorithmType

ACCEPT_TOOL = "ai-accept"
PROPOSALS_FOLDER = "proposals"


@dataclass
class PendingProposal:
    """The proposal under review."""

    id: str
    proposal: Proposal
    target_label: str
    segment_id: int | None
    created_utc: str
    probabilities_file: Path | None


class ProposalReview:
    """Review of one proposal at a time on a `Session` (the UI shows ``pending`` as a distinct overlay)."""

    def __init__(self, session: Session, threshold: float = 0.5) -> None:
        self.session = session
        self.threshold = threshold
        self.pending: PendingProposal | None = None
        self._accepted: dict[int, list[PendingProposal]] = {}
        self._unsubscribe = session.subscribe(self._on_event)

    def close(self) -> None:
        self._unsubscribe()

    def show(self, proposal: Proposal, target_label: str, segment_id: int | None = None) -> PendingProposal:
        """Put a new proposal under review (replacing an undecided one, which counts as rejected)."""
        if self.pending is not None:
            self.reject("replaced by a new proposal")
        proposal_id = uuid.uuid4().hex
        stored = self._store_probabilities(proposal_id, proposal)
        self.pending = PendingProposal(
            proposal_id, proposal, target_label, segment_id, datetime.now(UTC).isoformat(), stored
        )
        self.session.record(
            "proposal",
            {
                "proposal_id": proposal_id,
                "target_label": target_label,
                "target_segment_id": segment_id,
                "probabilities_file": stored.name if stored else None,
                **proposal_summary(proposal, self.threshold),
            },
        )
        return self.pending

    def accept(
        self,
        slice_only: tuple[int, int] | None = None,
        rules: MaskingRules = MaskingRules(),  # noqa: B008 - frozen dataclass
    ) -> EditDiff | None:
        """Add the proposal (or only its part on slice ``(axis, index)``) to its segment, as one undoable step."""
        pending = self._require_pending()
        proposal = pending.proposal
        shape = self.session.segmentation.grid.shape
        region = proposal_to_region(proposal, self.threshold, shape=shape)
        if slice_only is not None:
            region = limit_to_slice(region, *slice_only)
        segment_id = pending.segment_id
        model = proposal.model
        algorithm = AlgorithmInfo(model.name, model.version, model.weights_sha256)
        if segment_id is None or segment_id not in self.session.segmentation.segments:
            segment_id = self._new_segment(pending.target_label, algorithm).id
        else:
            segment = self.session.segmentation.segments[segment_id]
            had_voxels = bool(self.session.segmentation.mask(segment_id).any())
            kind = AlgorithmType.SEMIAUTOMATIC if had_voxels else AlgorithmType.AUTOMATIC
            if segment.algorithm_type != kind or segment.algorithm != algorithm:
                self.session.update_segment(segment_id, algorithm_type=kind, algorithm=algorithm)
        scope = "slice" if slice_only is not None else "whole"
        parameters: dict[str, Any] = {
            "proposal_id": pending.id,
            "scope": scope,
            "slice": list(slice_only) if slice_only else None,
            **proposal_summary(proposal, self.threshold, region),
        }
        name = self.session.segmentation.segments[segment_id].name
        diff = self.session.edit(
            ACCEPT_TOOL,
            parameters,
            region,
            EditMode.ADD,
            segment_id,
            rules,
            label=f"Accept {model.name} proposal for {name}" + (" (this slice)" if slice_only else ""),
        )
        self._accepted.setdefault(segment_id, []).append(pending)
        self.pending = None
        return diff

    def reject(self, reason: str = "") -> None:
        """Drop the proposal; the audit trail keeps that it was proposed and rejected."""
        pending = self._require_pending()
        self.session.record(
            "proposal-rejected",
            {"proposal_id": pending.id, "reason": reason, "model": pending.proposal.model.to_json()},
        )
        self.pending = None

    def provenance(self, segment_id: int) -> dict[str, Any]:
        """How much of a segment the AI drew and how much the reader changed, from the audit trail."""
        accepted = 0
        manual_added = 0
        manual_removed = 0
        for record in self.session.audit.records():
            payload = record.payload
            if payload.get("segment_id") != segment_id or record.action not in ("edit", "undo", "redo"):
                continue
            sign = -1 if record.action == "undo" else 1
            added, removed = int(payload.get("voxels_added", 0)), int(payload.get("voxels_removed", 0))
            if payload.get("tool") == ACCEPT_TOOL:
                accepted += sign * added
            else:
                manual_added += sign * added
                manual_removed += sign * removed
        final = int(self.session.segmentation.mask(segment_id).sum())
        return {
            "segment_id": segment_id,
            "voxels_accepted_from_ai": accepted,
            "voxels_added_by_reader": manual_added,
            "voxels_removed_by_reader": manual_removed,
            "voxels_final": final,
            "algorithm_type": self.session.segmentation.segments[segment_id].algorithm_type.value,
        }

    # -- internals ---------------------------------------------------------------------------------------------

    def _require_pending(self) -> PendingProposal:
        if self.pending is None:
            raise EditError("there is no proposal under review")
        return self.pending

    def _new_segment(self, name: str, algorithm: AlgorithmInfo) -> Any:
        from radlabel.core.segmentation.terminology import find

        entry = find(name)
        fields: dict[str, Any] = entry.to_segment_fields() if entry is not None else {}
        color = fields.pop("color", None)
        return self.session.add_segment(
            name, color, algorithm_type=AlgorithmType.AUTOMATIC, algorithm=algorithm, **fields
        )

    def _store_probabilities(self, proposal_id: str, proposal: Proposal) -> Path | None:
        if proposal.probabilities is None:
            return None
        folder = self.session.case_dir / PROPOSALS_FOLDER
        folder.mkdir(exist_ok=True)
        path = folder / f"{proposal_id}.npz"
        np.savez_compressed(
            path,
            probabilities=proposal.probabilities.astype(np.float16),
            offset_kji=np.array(proposal.offset),
        )
        return path

    def _on_event(self, event: SessionEvent) -> None:
        """A hand edit of an AI segment makes it SEMIAUTOMATIC and records proposal-versus-final."""
        diff = event.diff
        if event.kind is not EventKind.EDIT or diff is None or diff.tool == ACCEPT_TOOL or diff.segment_id is None:
            return
        segment = self.session.segmentation.segments.get(diff.segment_id)
        if segment is None or segment.algorithm_type is not AlgorithmType.AUTOMATIC:
            return
        self.session.update_segment(segment.id, algorithm_type=AlgorithmType.SEMIAUTOMATIC)
        final = self.session.segmentation.mask(segment.id)
        for pending in self._accepted.get(segment.id, []):
            self.session.record(
                "proposal-edited",
                {
                    "proposal_id": pending.id,
                    "segment_id": segment.id,
                    "model": pending.proposal.model.to_json(),
                    **compare_with_final(pending.proposal, final, self.threshold),
                },
            )
