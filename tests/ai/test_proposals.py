"""Review primitives: proposal -> Region, accept only on one slice, audit summary, proposal vs final."""

from __future__ import annotations

import numpy as np

from radlabel.ai.proposals import compare_with_final, limit_to_slice, proposal_summary, proposal_to_region
from radlabel.ai.sdk import ModelIdentity, Proposal

MODEL = ModelIdentity("m", "1.0", "ab" * 32)


def probability_proposal() -> Proposal:
    probabilities = np.zeros((3, 4, 5), dtype=np.float32)
    probabilities[:, 1:3, 1:4] = 0.8
    probabilities[1, 0, 0] = 0.4
    return Proposal(
        offset=(2, 10, 20),
        model=MODEL,
        probabilities=probabilities,
        prompt=[{"kind": "box", "ijk_min": [20, 10, 3], "ijk_max": [24, 13, 3], "axis": 0}],
        timing={"predict": 0.25},
    )


def test_proposal_to_region_thresholds_probabilities() -> None:
    region = proposal_to_region(probability_proposal())
    assert region.offset == (2, 10, 20)
    assert region.mask.shape == (3, 4, 5) and region.mask.sum() == 18
    assert proposal_to_region(probability_proposal(), threshold=0.3).mask.sum() == 19


def test_proposal_to_region_labels_and_clipping() -> None:
    labels = np.zeros((2, 2, 2), dtype=np.uint8)
    labels[0, 0, 0] = 1
    labels[1, 1, 1] = 2
    proposal = Proposal(offset=(9, 0, 0), model=MODEL, labels=labels)
    assert proposal_to_region(proposal).mask.sum() == 2
    assert proposal_to_region(proposal, label=2).mask.sum() == 1
    clipped = proposal_to_region(proposal, shape=(10, 5, 5))  # the box sticks out along k
    assert clipped.offset == (9, 0, 0) and clipped.mask.shape == (1, 2, 2) and clipped.mask.sum() == 1


def test_limit_to_slice_on_each_axis() -> None:
    region = proposal_to_region(probability_proposal())
    on_k = limit_to_slice(region, 0, 3)
    assert on_k.offset == (3, 10, 20) and on_k.mask.shape == (1, 4, 5) and on_k.mask.sum() == 6
    on_j = limit_to_slice(region, 1, 11)
    assert on_j.offset == (2, 11, 20) and on_j.mask.shape == (3, 1, 5) and on_j.mask.sum() == 9
    on_i = limit_to_slice(region, 2, 20)
    assert on_i.mask.sum() == 0
    assert limit_to_slice(region, 0, 99).is_empty
    full = np.zeros((8, 20, 30), dtype=bool)
    full[on_k.box] = on_k.mask
    assert full.sum() == 6 and full[3].sum() == 6


def test_summary_is_plain_json_with_model_and_prompt() -> None:
    import json

    proposal = probability_proposal()
    summary = proposal_summary(proposal)
    json.dumps(summary)
    assert summary["model"] == MODEL.to_json()
    assert summary["prompt"][0]["kind"] == "box"
    assert summary["voxels"] == 18 and summary["proposal_voxels"] == 18
    assert summary["source"] == "probabilities" and summary["threshold"] == 0.5
    assert abs(summary["mean_probability"] - 0.8) < 1e-6
    one_slice = limit_to_slice(proposal_to_region(proposal), 0, 2)
    assert proposal_summary(proposal, region=one_slice)["voxels"] == 6


def test_compare_with_final_counts_edits() -> None:
    proposal = probability_proposal()
    final = np.zeros((8, 20, 30), dtype=bool)
    region = proposal_to_region(proposal)
    final[region.box] = region.mask
    final[2, 11, 21] = False  # the reader erased one voxel
    final[4, 13, 24] = True  # and painted one
    diff = compare_with_final(proposal, final)
    assert diff["proposed"] == 18 and diff["kept"] == 17 and diff["removed"] == 1 and diff["added"] == 1
    assert abs(diff["dice"] - 34 / 36) < 1e-9
