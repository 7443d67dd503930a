"""`radlabel info` and `radlabel convert` as a user runs them: real processes, exit codes, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from radlabel.core.geometry import lps_to_ras_affine
from radlabel.core.io.dicom_export import write_dicom_series
from radlabel.core.io.loader import load
from tests.core.synthetic import oblique_volume


def radlabel(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radlabel.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_info_lists_series_with_geometry_and_warnings(shared_data: Path) -> None:
    result = radlabel("info", shared_data / "dcm_qa" / "ct_ge_gantry_tilt" / "In")
    assert result.returncode == 0, result.stderr
    assert "1.2.826.0.1.3680043.9.4245.3115138630835728997848661150714813892" in result.stdout
    assert "CT" in result.stdout and "512x611x55" in result.stdout and "oblique(LPS)" in result.stdout
    assert "tilt correction" in result.stdout


def test_info_json_on_a_4d_series_and_a_folder_with_bad_files(shared_data: Path) -> None:
    dwi = json.loads(radlabel("info", shared_data / "dcm_qa" / "mr_ge_dwi_oblique" / "In", "--json").stdout)
    (series,) = dwi["series"]
    assert series["modality"] == "MR" and series["volumes"] == 7 and series["size"] == [256, 256, 2]
    assert series["orientation"].startswith("oblique")
    edge = json.loads(radlabel("info", shared_data / "pydicom" / "edge_cases", "--json").stdout)
    bad = {Path(b["path"]).name for b in edge["bad_files"]}
    assert {"MR_truncated.dcm", "no_meta.dcm", "meta_missing_tsyntax.dcm"} <= bad
    assert edge["series"]


def test_info_on_nifti_gives_its_orientation(shared_data: Path) -> None:
    path = shared_data / "totalsegmentator" / "ct_nifti_with_multilabel_seg" / "example_ct_sm.nii.gz"
    info = json.loads(radlabel("info", path, "--json").stdout)
    assert info["series"][0]["format"] == "NIfTI"
    assert info["series"][0]["orientation"] == "RAS"


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_convert_keeps_world_geometry(shared_data: Path, tmp_path: Path, suffix: str) -> None:
    source = shared_data / "dcm_qa" / "mr_ge_3d_t1_mprage_oblique" / "In"
    out = tmp_path / f"out{suffix}"
    result = radlabel("convert", source, "-o", out)
    assert result.returncode == 0, result.stderr
    volume = load(source).volume
    if suffix == ".nii.gz":
        image = nib.load(str(out))
        np.testing.assert_allclose(lps_to_ras_affine(image.affine), volume.affine, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), volume.array)
    else:
        image = sitk.ReadImage(str(out))
        np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-4)
        np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), volume.direction, atol=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)


def test_convert_4d_series_to_4d_nifti(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "dwi.nii.gz"
    assert radlabel("convert", shared_data / "dcm_qa" / "mr_ge_dwi_oblique" / "In", "-o", out).returncode == 0
    assert nib.load(str(out)).shape == (256, 256, 2, 7)


def test_convert_asks_which_series_when_there_are_several(tmp_path: Path) -> None:
    write_dicom_series(oblique_volume(shape_kji=(4, 8, 8)), tmp_path / "in", series_uid="1.2.3.1", file_prefix="A")
    write_dicom_series(oblique_volume(shape_kji=(3, 6, 6)), tmp_path / "in", series_uid="1.2.3.2", file_prefix="B")
    result = radlabel("convert", tmp_path / "in", "-o", tmp_path / "x.nii.gz")
    assert result.returncode == 2
    assert "holds 2 series" in result.stderr and "--series" in result.stderr
    chosen = radlabel("convert", tmp_path / "in", "--series", "1.2.3.2", "-o", tmp_path / "x.nii.gz")
    assert chosen.returncode == 0, chosen.stderr
    assert nib.load(str(tmp_path / "x.nii.gz")).shape == (6, 6, 3)


def _bad_inputs(shared_data: Path, tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "notes.dcm"
    text.write_text("hello")
    edge = shared_data / "pydicom" / "edge_cases"
    return {
        "non-DICOM file": text,
        "truncated pixel data": edge / "MR_truncated.dcm",
        "missing transfer syntax": edge / "meta_missing_tsyntax.dcm",
        "empty folder": empty,
        "unreadable path": tmp_path / "does-not-exist",
        "damaged JPEG": edge / "JPEG-lossy.dcm",
    }


@pytest.mark.parametrize(
    "case",
    [
        "non-DICOM file",
        "truncated pixel data",
        "missing transfer syntax",
        "empty folder",
        "unreadable path",
        "damaged JPEG",
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(shared_data: Path, tmp_path: Path, case: str) -> None:
    path = _bad_inputs(shared_data, tmp_path)[case]
    command = "convert" if case == "damaged JPEG" else "info"
    extra = ["-o", str(tmp_path / "x.nii.gz")] if command == "convert" else []
    result = radlabel(command, path, *extra)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_imports_no_qt_vtk_or_torch(shared_data: Path) -> None:
    script = (
        "import sys; from radlabel.cli import main; "
        f"main(['info', {str(shared_data / 'dcm_qa' / 'mr_siemens_t1_sag_hfs' / 'In')!r}]); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'vtk', 'vtkmodules', 'torch', 'monai')]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
