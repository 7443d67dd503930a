"""`radlabel stats IMAGE SEG` as a user runs it: real processes, exit codes, table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radlabel.cli import main
from radlabel.core.io.writers import save_volume
from radlabel.core.volume import Volume
from tests.core.synthetic import oblique_volume


def radlabel(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radlabel.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def synthetic_case(tmp_path: Path) -> Volume:
    """An oblique CT-like image, a two-label NRRD on its grid and a name sidecar, written to tmp_path."""
    image = oblique_volume()
    labels = np.zeros(image.array.shape, np.uint8)
    labels[2:5, 4:12, 5:15] = 1
    labels[1:3, 15:20, 2:6] = 2
    save_volume(image, tmp_path / "image.nii.gz")
    save_volume(Volume(labels, image.origin, image.spacing, image.direction), tmp_path / "labels.nrrd")
    (tmp_path / "labels.json").write_text(json.dumps({"1": "tumour", "2": "necrosis"}))
    return image


def test_stats_json_in_a_real_process(tmp_path: Path) -> None:
    image = synthetic_case(tmp_path)
    labels = np.zeros(image.array.shape, np.uint8)
    labels[2:5, 4:12, 5:15] = 1

    result = radlabel("stats", tmp_path / "image.nii.gz", tmp_path / "labels.nrrd", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    tumour, necrosis = data["segments"]
    expected = image.array[labels == 1].astype(float)
    assert tumour["name"] == "tumour" and tumour["voxel_count"] == 240
    assert tumour["mean"] == float(f"{expected.mean():.6g}") and tumour["min"] == expected.min()
    assert tumour["volume_ml"] == float(f"{240 * np.prod(image.spacing) / 1000:.6g}")
    assert necrosis["bbox_min_ijk"] == [2, 15, 1] and necrosis["bbox_max_ijk"] == [5, 19, 2]
    assert data["label_maps"] == [str(tmp_path / "labels.nrrd")]


def test_stats_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthetic_case(tmp_path)
    assert main(["stats", str(tmp_path / "image.nii.gz"), str(tmp_path / "labels.nrrd")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == ["1", "tumour", "240"] for line in lines), lines
    assert any(line.split()[:3] == ["2", "necrosis", "40"] for line in lines), lines
    assert "mean ± SD " in lines[3]  # NIfTI does not say CT: no units claimed


def test_stats_on_the_totalsegmentator_dicom_ct(shared_data: Path) -> None:
    case = shared_data / "totalsegmentator" / "ct_dicom_with_multilabel_seg"
    seg = case / "seg_nifti" / "example_seg_dicom.nii.gz"
    result = radlabel(
        "stats", case / "image_dicom", seg, "--label-names", case / "seg_nifti" / "label_names_total.json", "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["units"] == "HU" and data["axial_axis"] == "k" and len(data["segments"]) == 31
    by_name = {s["name"]: s for s in data["segments"]}
    direct = np.asarray(nib.load(str(seg)).dataobj)
    assert by_name["liver"]["voxel_count"] == int((direct == 5).sum())
    assert by_name["spleen"]["voxel_count"] == int((direct == 1).sum())
    assert by_name["aorta"]["longest_axial_diameter_mm"] > 20  # an abdominal aorta in mm, not in voxels


def test_label_map_of_another_scan_is_one_line_and_exit_2(shared_data: Path) -> None:
    ct = shared_data / "totalsegmentator" / "ct_nifti_with_multilabel_seg" / "example_ct_sm.nii.gz"
    other = shared_data / "totalsegmentator" / "ct_dicom_with_multilabel_seg" / "seg_nifti" / "example_seg_dicom.nii.gz"
    result = radlabel("stats", ct, other)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "does not overlap" in result.stderr and "example_seg_dicom.nii.gz" in result.stderr
    assert "example_ct_sm.nii.gz" in result.stderr


def test_unusable_label_maps_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthetic_case(tmp_path)
    image = nib.load(str(tmp_path / "image.nii.gz"))
    probability = np.full(image.shape, 0.25, np.float32)  # a probability map, not labels
    nib.save(nib.Nifti1Image(probability, image.affine), str(tmp_path / "prob.nii.gz"))
    for label_map, message in (("prob.nii.gz", "fractional"), ("missing.nii.gz", "missing.nii.gz")):
        assert main(["stats", str(tmp_path / "image.nii.gz"), str(tmp_path / label_map)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("radlabel: error: ")
    assert main(["stats", str(tmp_path / "image.nii.gz"), str(tmp_path / "labels.nrrd"), "--series", "nope"]) == 2
    assert "no series" in capsys.readouterr().err
