"""`radlabel segment`: a plugin's proposal accepted and exported from the command line, fully audited."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from radlabel.core.audit import AuditLog
from radlabel.core.demo import make_demo_ct
from radlabel.core.io.writers import save_volume


def radlabel(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radlabel.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_segment_with_a_box_exports_the_proposal_and_audits_it(tmp_path: Path) -> None:
    volume, lesion = make_demo_ct(shape=(24, 64, 64))
    image = save_volume(volume, tmp_path / "ct.nii.gz")
    k = int(np.argmax(lesion.sum(axis=(1, 2))))
    js, is_ = np.nonzero(lesion[k])
    box = f"{is_.min() - 2},{js.min() - 2},{k},{is_.max() + 2},{js.max() + 2},{k}"
    out = tmp_path / "out" / "lesion.nii.gz"
    out.parent.mkdir()
    result = radlabel(
        "segment", image, "--plugin", "example-threshold", "--box", box, "--label", "Liver lesion",
        "-o", out, "--user", "dr.test",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    mask = np.asarray(nib.load(str(out)).dataobj).transpose(2, 1, 0) > 0
    assert mask.sum() > 0 and set(np.nonzero(mask)[0]) == {k}
    dice = 2 * (mask[k] & lesion[k]).sum() / (mask[k].sum() + lesion[k].sum())
    assert dice > 0.5  # a threshold in the box finds the hypodense lesion roughly
    table = json.loads((tmp_path / "out" / "lesion.json").read_text())
    (segment,) = table["segments"]
    assert segment["algorithm_type"] == "AUTOMATIC" and segment["algorithm"]["name"] == "example-threshold"
    assert segment["anatomic_region"]["meaning"] == "Liver"
    with AuditLog.for_case(tmp_path / "out" / "lesion.radlabel") as log:
        actions = [r.action for r in log.records()]
        assert log.verify().ok
        proposal = next(r for r in log.records() if r.action == "proposal")
    assert actions == ["proposal", "segment-added", "edit", "saved", "export"]
    assert proposal.user == "dr.test" and proposal.payload["details"]["prompt"][0]["kind"] == "box"


def test_segment_without_a_prompt_or_with_an_unknown_plugin_fails_cleanly(tmp_path: Path) -> None:
    volume, _ = make_demo_ct(shape=(8, 32, 32))
    image = save_volume(volume, tmp_path / "ct.nii.gz")
    no_prompt = radlabel("segment", image, "--plugin", "example-threshold", "--label", "x", "-o", tmp_path / "o.nii.gz")
    assert no_prompt.returncode == 2 and "--box" in no_prompt.stderr and "Traceback" not in no_prompt.stderr
    unknown = radlabel(
        "segment", image, "--plugin", "nope", "--box", "1,1,1,5,5,1", "--label", "x", "-o", tmp_path / "o.nii.gz"
    )
    assert unknown.returncode == 2 and "nope" in unknown.stderr and "Traceback" not in unknown.stderr
