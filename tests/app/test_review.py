"""The reader decides: proposals are accepted (whole or one slice), rejected or edited, each audited."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlabel.ai.sdk import ModelIdentity, Proposal
from radlabel.app.review import ProposalReview
from radlabel.app.session import Session
from radlabel.core.demo import make_demo_ct
from radlabel.core.edit.request import EditMode, Region
from radlabel.core.errors import EditError
from radlabel.core.io.writers import save_volume
from radlabel.core.segmentation.model import AlgorithmType

MODEL = ModelIdentity("TestNet", "2.1", "ab" * 32)


def make_session(tmp_path: Path) -> Session:
    volume, _ = make_demo_ct(shape=(10, 40, 40))
    source = save_volume(volume, tmp_path / "image.nii.gz")
    return Session.create(tmp_path / "case", volume, source, user="reader")


def cube_proposal() -> Proposal:
    probabilities = np.zeros((4, 10, 10), dtype=np.float32)
    probabilities[:, 2:8, 2:8] = 0.9
    probabilities[:, 0, 0] = 0.3  # below threshold: not accepted
    return Proposal(
        offset=(3, 10, 12),
        model=MODEL,
        probabilities=probabilities,
        prompt=[{"kind": "box", "ijk_min": [12, 10, 4], "ijk_max": [21, 19, 4], "axis": 0}],
    )


def test_accept_whole_creates_an_automatic_segment_with_model_identity(tmp_path: Path) -> None:
    with make_session(tmp_path) as session:
        review = ProposalReview(session)
        pending = review.show(cube_proposal(), "Liver lesion")
        assert (session.case_dir / "proposals" / f"{pending.id}.npz").exists()
        assert not session.segmentation.segments  # a proposal is not part of the segmentation
        diff = review.accept()
        assert diff is not None and diff.voxels_changed.added == 4 * 6 * 6
        (segment,) = session.segmentation.segments.values()
        assert segment.name == "Liver lesion" and segment.algorithm_type is AlgorithmType.AUTOMATIC
        assert segment.algorithm is not None and segment.algorithm.weights_sha256 == "ab" * 32
        mask = session.segmentation.mask(segment.id)
        assert mask[3:7, 12:18, 14:20].all() and mask.sum() == 144
        assert session.undo_stack.undo_label.startswith("Accept TestNet proposal for Liver lesion")
        session.undo()
        assert session.segmentation.mask(segment.id).sum() == 0
        actions = [r.action for r in session.audit.records()]
        assert actions[0] == "proposal" and "edit" in actions and actions[-1] == "undo"
        proposal_record = next(r for r in session.audit.records() if r.action == "proposal")
        assert proposal_record.payload["details"]["model"]["name"] == "TestNet"
        assert proposal_record.payload["details"]["prompt"][0]["kind"] == "box"


def test_accept_only_the_current_slice(tmp_path: Path) -> None:
    with make_session(tmp_path) as session:
        review = ProposalReview(session)
        review.show(cube_proposal(), "Liver lesion")
        review.accept(slice_only=(0, 5))
        (segment,) = session.segmentation.segments.values()
        mask = session.segmentation.mask(segment.id)
        assert mask.sum() == 36 and mask[5].sum() == 36


def test_reject_changes_nothing_and_is_audited(tmp_path: Path) -> None:
    with make_session(tmp_path) as session:
        review = ProposalReview(session)
        review.show(cube_proposal(), "Liver lesion")
        review.reject("missed the lesion")
        assert not session.segmentation.segments and review.pending is None
        record = list(session.audit.records())[-1]
        assert record.action == "proposal-rejected" and record.payload["details"]["reason"] == "missed the lesion"
        with pytest.raises(EditError):
            review.accept()


def test_editing_an_accepted_proposal_makes_it_semiautomatic_and_records_the_difference(tmp_path: Path) -> None:
    with make_session(tmp_path) as session:
        review = ProposalReview(session)
        review.show(cube_proposal(), "Liver lesion")
        review.accept()
        (segment,) = session.segmentation.segments.values()
        erase = np.zeros((4, 6, 1), dtype=bool) | True
        session.edit("erase", {"radius_mm": 1}, Region((3, 12, 14), erase), EditMode.REMOVE, segment.id)
        assert session.segmentation.segments[segment.id].algorithm_type is AlgorithmType.SEMIAUTOMATIC
        edited = next(r for r in session.audit.records() if r.action == "proposal-edited")
        details = edited.payload["details"]
        assert details["proposed"] == 144 and details["removed"] == 24 and details["added"] == 0
        provenance = review.provenance(segment.id)
        assert provenance["voxels_accepted_from_ai"] == 144
        assert provenance["voxels_removed_by_reader"] == 24 and provenance["voxels_final"] == 120
        assert session.audit.verify().ok


def test_accepting_into_a_segment_with_hand_drawn_voxels_is_semiautomatic(tmp_path: Path) -> None:
    with make_session(tmp_path) as session:
        segment = session.add_segment("Tumour")
        dab = np.ones((1, 2, 2), dtype=bool)
        session.edit("paint", {}, Region((0, 0, 0), dab), EditMode.ADD, segment.id)
        review = ProposalReview(session)
        review.show(cube_proposal(), "Tumour", segment_id=segment.id)
        review.accept()
        assert session.segmentation.segments[segment.id].algorithm_type is AlgorithmType.SEMIAUTOMATIC
        assert session.segmentation.mask(segment.id).sum() == 148
