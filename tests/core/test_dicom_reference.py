"""Every dcm_qa case of ../shared/data against dcm2niix, compared in world space (voxel centre and value)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlabel.core.grid_match import sample_at_world
from radlabel.core.io.dicom import scan_dicom
from radlabel.core.io.series import LoadedSeries

from .reference import assert_same_in_world, reference_volumes


def load_single(path: Path) -> LoadedSeries:
    result = scan_dicom(path)
    assert len(result.series) == 1, [s.info.uid for s in result.series]
    assert not result.bad_files
    return result.series[0].load()


CASES = {
    "mr_siemens_t1_sag_hfs": ("In", "Ref_regen/t1_fl2d_sag_20220407150138.nii.gz"),
    "mr_siemens_xa30_enhanced_t1w": ("In", "Ref/5_anat-T1w_acq-tfl.nii"),
    "mr_ge_3d_t1_mprage_oblique": ("In", "Ref_regen/3D_Ax_T1_MP-RAGE_R22_5.nii.gz"),
    "mr_philips_pcasl_classic_vs_enhanced/classic": ("In/classic", "Ref/1901_WIP_3DpCASL_cl.nii.gz"),
    "mr_philips_pcasl_classic_vs_enhanced/enhanced": ("In/enhanced", "Ref/1901_WIP_3DpCASL_enh_real.nii.gz"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_series_matches_dcm2niix_in_world_space(shared_data: Path, case: str) -> None:
    folder = shared_data / "dcm_qa" / case.split("/")[0]
    inputs, reference = CASES[case]
    loaded = load_single(folder / inputs)
    affine, arrays = reference_volumes(folder / reference)
    assert len(loaded.volumes) == len(arrays)
    for volume, ref in zip(loaded.volumes, arrays, strict=True):
        assert volume.array.dtype in (np.int16, np.uint16, np.uint8, np.float32)
        assert_same_in_world(volume, affine, ref)
    assert loaded.warnings == []


def test_philips_classic_and_enhanced_give_the_same_volume(shared_data: Path) -> None:
    folder = shared_data / "dcm_qa" / "mr_philips_pcasl_classic_vs_enhanced" / "In"
    classic = load_single(folder / "classic").volume
    enhanced = load_single(folder / "enhanced").volume
    assert classic.same_grid(enhanced, tolerance_mm=1e-4)
    np.testing.assert_array_equal(classic.array, enhanced.array)


def test_every_volume_of_the_4d_dwi_matches(shared_data: Path) -> None:
    folder = shared_data / "dcm_qa" / "mr_ge_dwi_oblique"
    loaded = load_single(folder / "In")
    affine, arrays = reference_volumes(folder / "Ref" / "Ax_DWI_TENSOR_R2_1.nii")
    assert len(loaded.volumes) == len(arrays) == 7
    bvals = [float(b) for b in (folder / "Ref" / "Ax_DWI_TENSOR_R2_1.bval").read_text().split()]
    labels = loaded.info.volume_labels
    assert [float(label.split("b_value=")[1].split(",")[0]) for label in labels] == bvals
    for volume, ref in zip(loaded.volumes, arrays, strict=True):
        assert_same_in_world(volume, affine, ref)


@pytest.mark.parametrize("number", range(1, 10))
def test_every_transfer_syntax_decodes_to_the_reference(shared_data: Path, number: int) -> None:
    folder = shared_data / "dcm_qa" / "transfer_syntaxes"
    loaded = load_single(folder / "In" / f"{number}.dcm")
    affine, arrays = reference_volumes(folder / "Ref" / f"{number}.nii")
    assert_same_in_world(loaded.volume, affine, arrays[0])


@pytest.mark.parametrize(
    ("name", "series"),
    [("12bitUnsigned.dcm", 2), ("12bitUnsigned_0x0F0F.dcm", 3), ("12bitSigned_0x0F0F.dcm", 4)],
)
def test_12_bit_pixels_match_the_reference(shared_data: Path, name: str, series: int) -> None:
    folder = shared_data / "dcm_qa" / "pixel_12bit_signed_unsigned"
    loaded = load_single(folder / "In" / name)
    affine, arrays = reference_volumes(folder / "Ref" / f"{series}.nii")
    assert_same_in_world(loaded.volume, affine, arrays[0])
    low, high = (-2048, 2047) if "Signed" in name else (0, 4095)
    assert low <= loaded.volume.array.min() and loaded.volume.array.max() <= high


def test_12_bit_series_in_one_folder_are_told_apart_by_series_number(shared_data: Path) -> None:
    result = scan_dicom(shared_data / "dcm_qa" / "pixel_12bit_signed_unsigned" / "In")
    assert len(result.series) == 3
    assert all(s.info.n_volumes == 1 for s in result.series)


def test_gantry_tilt_is_corrected_like_dcm2niix(shared_data: Path) -> None:
    folder = shared_data / "dcm_qa" / "ct_ge_gantry_tilt"
    loaded = load_single(folder / "In")
    volume = loaded.volume
    text = " ".join(loaded.warnings)
    assert "tilt" in text and "irregular slice spacing" in text
    assert loaded.info.extra["resampled"] is True
    # The delivered grid is orthogonal and regular: its k axis is the slice normal.
    assert (
        abs(float(np.dot(volume.direction[:, 2], np.cross(volume.direction[:, 0], volume.direction[:, 1]))) - 1) < 1e-9
    )
    affine, arrays = reference_volumes(folder / "Ref_regen" / "_2_Tilt_Eq_1.nii.gz")
    reference = arrays[0]
    rng = np.random.default_rng(0)
    ijk = np.column_stack([rng.uniform(0, n - 1, 200_000) for n in reference.shape]).round()
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    ours = sample_at_world(volume.array, volume.affine, world, order=1)
    theirs = reference[tuple(ijk.astype(int).T)]
    inside = np.isfinite(ours)
    assert inside.mean() > 0.9
    correlation = np.corrcoef(ours[inside], theirs[inside])[0, 1]
    assert correlation >= 0.99, correlation
