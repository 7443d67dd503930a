"""NIfTI reader: geometry and values against nibabel on real files, dtype rules, warnings, errors, progress."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radlabel.core import errors, geometry
from radlabel.core.io import nifti
from radlabel.core.io.nifti import load_nifti, scan_nifti
from radlabel.core.volume import Volume

# Section 3 of ../shared/data/MANIFEST.md: every NIfTI there must load exactly as nibabel places it.
SECTION3_NIFTI = [
    "pyradiomics/brain1_gbm_t1gd_tumour_label/nifti_converted_by_SimpleITK/brain1_image.nii.gz",
    "pyradiomics/brain1_gbm_t1gd_tumour_label/nifti_converted_by_SimpleITK/brain1_label.nii.gz",
    "pyradiomics/breast1_mri_lesion_label/nifti_converted_by_SimpleITK/breast1_image.nii.gz",
    "pyradiomics/breast1_mri_lesion_label/nifti_converted_by_SimpleITK/breast1_label.nii.gz",
    "deepmedic_brats2015/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz",
    "deepmedic_brats2015/brats_2013_pat0001_1/T1c_subtrMeanDivStd.nii.gz",
    "deepmedic_brats2015/brats_2013_pat0001_1/OTMultiClass.nii.gz",
    "deepmedic_brats2015/brats_2013_pat0001_1/brainmask.nii.gz",
    "totalsegmentator/ct_nifti_with_multilabel_seg/example_ct_sm.nii.gz",
    "totalsegmentator/ct_nifti_with_multilabel_seg/example_seg.nii.gz",
    "niivue_images/ct_pitch_rotated_no_shear/CT_pitch.nii.gz",
    "monai/anatomical_with_label/anatomical.nii",
    "monai/anatomical_with_label/anatomical_label.nii.gz",
]
SECTION3_DIRS = [
    "pyradiomics",
    "deepmedic_brats2015",
    "totalsegmentator/ct_nifti_with_multilabel_seg",
    "niivue_images",
    "monai",
]
DWI_4D = "dcm_qa/mr_ge_dwi_oblique/Ref/Ax_DWI_TENSOR_R2_1.nii"


def grid_corners(size: tuple[int, int, int]) -> np.ndarray:
    i, j, k = (s - 1 for s in size)
    return np.array([[a, b, c] for a in (0, i) for b in (0, j) for c in (0, k)], float)


def assert_same_as_nibabel(volume: Volume, image: nib.Nifti1Image, data: np.ndarray, samples: int = 300) -> None:
    """Geometry to 1e-4 mm and values at the same world positions, found through nibabel's own inverse."""
    reference_lps = geometry.LPS_TO_RAS @ image.affine
    rng = np.random.default_rng(1)
    ijk = np.vstack([grid_corners(volume.size), rng.integers(0, volume.size, size=(samples, 3))])
    world = volume.index_to_world(ijk)
    np.testing.assert_allclose(world, geometry.index_to_world(reference_lps, ijk), atol=1e-4, rtol=0)
    # Back through nibabel's RAS affine: LPS world -> RAS world -> nibabel voxel index.
    ras = world * np.array([-1.0, -1.0, 1.0])
    theirs = ras @ np.linalg.inv(image.affine)[:3, :3].T + np.linalg.inv(image.affine)[:3, 3]
    rounded = np.round(theirs).astype(int)
    np.testing.assert_allclose(theirs, rounded, atol=1e-3)
    ours_values = volume.array[ijk[:, 2].astype(int), ijk[:, 1].astype(int), ijk[:, 0].astype(int)]
    their_values = data[rounded[:, 0], rounded[:, 1], rounded[:, 2]]
    if np.issubdtype(data.dtype, np.integer):
        np.testing.assert_array_equal(ours_values, their_values)
    else:
        np.testing.assert_allclose(ours_values, their_values, rtol=1e-6, atol=0)


def test_section3_list_is_complete(shared_data: Path) -> None:
    found = sorted(
        str(p.relative_to(shared_data))
        for folder in SECTION3_DIRS
        for p in (shared_data / folder).rglob("*")
        if p.name.endswith((".nii", ".nii.gz"))
    )
    assert found == sorted(SECTION3_NIFTI)


@pytest.mark.parametrize("relative", SECTION3_NIFTI)
def test_real_nifti_matches_nibabel_in_world_space(shared_data: Path, relative: str) -> None:
    path = shared_data / relative
    loaded = load_nifti(path)
    image = nib.load(str(path))
    data = np.asarray(image.dataobj)
    volume = loaded.volume
    assert len(loaded.volumes) == 1
    assert volume.array.flags.c_contiguous
    assert volume.array.dtype != np.float64
    assert volume.array.dtype.isnative
    assert volume.size == image.shape[:3]
    assert loaded.info.uid == path.name
    assert volume.metadata["format"] == "NIfTI"
    assert volume.metadata["qform_code"] == int(image.header["qform_code"])
    assert volume.metadata["sform_code"] == int(image.header["sform_code"])
    assert loaded.warnings == []  # none of these files is sheared or lacks an orientation
    if data.dtype.kind in "iu":
        assert volume.array.dtype == data.dtype.newbyteorder("=")
    assert_same_as_nibabel(volume, image, data)


def test_big_endian_int16_is_loaded_as_native_int16(shared_data: Path) -> None:
    path = shared_data / "monai/anatomical_with_label/anatomical.nii"
    image = nib.load(str(path))
    assert image.header.endianness == ">"
    volume = load_nifti(path).volume
    assert volume.array.dtype == np.dtype(np.int16)
    assert volume.array.dtype.byteorder in "=|"
    np.testing.assert_array_equal(volume.array, np.asarray(image.dataobj).transpose(2, 1, 0))
    assert volume.metadata["description"] == "spm - 3D normalized"


def test_qform_only_file_uses_the_qform(shared_data: Path) -> None:
    path = shared_data / "monai/anatomical_with_label/anatomical_label.nii.gz"
    header = nib.load(str(path)).header
    assert int(header["sform_code"]) == 0 and int(header["qform_code"]) > 0
    entry = scan_nifti(path)[0]
    assert entry.info.extra["affine_source"] == "qform"
    volume = entry.load().volume
    assert volume.metadata["affine_source"] == "qform"
    np.testing.assert_allclose(volume.affine, geometry.lps_to_ras_affine(header.get_qform()), atol=1e-6)
    # ... and it lands on the image it labels.
    assert volume.same_grid(load_nifti(path.parent / "anatomical.nii").volume, tolerance_mm=1e-4)


def test_pitched_ct_keeps_its_rotation(shared_data: Path) -> None:
    path = shared_data / "niivue_images/ct_pitch_rotated_no_shear/CT_pitch.nii.gz"
    loaded = load_nifti(path)
    volume = loaded.volume
    assert volume.orientation.startswith("oblique")
    assert loaded.warnings == []
    ras = nib.load(str(path)).affine
    expected = (geometry.LPS_TO_RAS @ ras)[:3, :3] / np.linalg.norm(ras[:3, :3], axis=0)
    np.testing.assert_allclose(volume.direction, expected, atol=1e-6)
    # The j axis is pitched about 16.5 degrees out of the axial plane (atan(0.2308 / 0.779)).
    pitch = np.degrees(np.arcsin(abs(volume.direction[2, 1])))
    assert 15.0 < pitch < 18.0
    np.testing.assert_allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-6)


def test_deepmedic_mixed_qform_sform_codes_follow_nibabel(shared_data: Path) -> None:
    folder = shared_data / "deepmedic_brats2015/brats_2013_pat0001_1"
    codes = {}
    for path in sorted(folder.glob("*.nii.gz")):
        header = nib.load(str(path)).header
        info = scan_nifti(path)[0].info
        codes[path.name] = (int(header["qform_code"]), int(header["sform_code"]))
        # sform_code > 0 in all four files, so nibabel (and we) take the sform, whatever the qform says.
        assert info.extra["affine_source"] == "sform"
        affine = geometry.affine_from(info.origin, info.spacing, info.direction)
        np.testing.assert_allclose(affine, geometry.lps_to_ras_affine(header.get_sform()), atol=1e-6)
    assert codes["OTMultiClass.nii.gz"] == (2, 1)
    assert codes["T1c_subtrMeanDivStd.nii.gz"] == (0, 2)
    assert len(set(codes.values())) > 1


def test_scaled_int32_mask_becomes_float32_with_nibabel_values(shared_data: Path) -> None:
    """brainmask.nii.gz stores int32 with scl_slope 2**-32 and scl_inter 0.5: a 0/1 mask after scaling."""
    path = shared_data / "deepmedic_brats2015/brats_2013_pat0001_1/brainmask.nii.gz"
    volume = load_nifti(path).volume
    assert volume.metadata["stored_dtype"] == "int32"
    assert volume.metadata["scl_slope"] == pytest.approx(2.0**-32)
    assert volume.metadata["scl_inter"] == 0.5
    assert volume.array.dtype == np.float32
    reference = nib.load(str(path)).get_fdata().transpose(2, 1, 0)
    np.testing.assert_allclose(volume.array, reference, rtol=1e-6, atol=1e-7)
    assert set(np.unique(np.round(volume.array, 4))) == {0.0, 1.0}


def test_real_4d_nifti_gives_one_volume_per_time_point(shared_data: Path) -> None:
    path = shared_data / DWI_4D
    image = nib.load(str(path))
    data = np.asarray(image.dataobj)
    entry = scan_nifti(path)[0]
    assert entry.info.n_volumes == data.shape[3] == 7
    assert entry.info.volume_labels == [f"t={t}" for t in range(7)]
    loaded = entry.load()
    assert len(loaded.volumes) == 7
    for t, volume in enumerate(loaded.volumes):
        assert volume.metadata["volume_label"] == f"t={t}"
        assert volume.same_grid(loaded.volumes[0])
        assert_same_as_nibabel(volume, image, data[..., t], samples=50)


# ------------------------------------------------------------------------------------------ synthetic


def _save(tmp_path: Path, name: str, data: np.ndarray, affine: np.ndarray | None = None, **fields: object) -> Path:
    """Write with nibabel, then set raw header ``fields`` (nibabel recomputes scaling on save, so patch after)."""
    image = nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine, dtype=data.dtype)
    path = tmp_path / name
    nib.save(image, str(path))
    if fields:
        raw = bytearray(path.read_bytes())
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw)))
        for key, value in fields.items():
            header[key] = value
        raw[:348] = header.binaryblock
        path.write_bytes(bytes(raw))
    return path


def test_sheared_affine_is_orthogonalised_with_a_warning(tmp_path: Path) -> None:
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[0, 1] = 0.1  # j axis leans 2.9 degrees towards x
    affine[:3, 3] = [5.0, -7.0, 11.0]
    path = _save(tmp_path, "sheared.nii.gz", np.zeros((30, 40, 5), np.int16), affine)
    info = scan_nifti(path)[0].info
    assert len(info.warnings) == 1
    warning = info.warnings[0]
    assert "sheared" in warning and "2.86°" in warning and "mm" in warning
    loaded = load_nifti(path)
    assert loaded.warnings == info.warnings
    volume = loaded.volume
    np.testing.assert_allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-9)
    np.testing.assert_allclose(volume.origin, [-5.0, 7.0, 11.0])  # voxel (0, 0, 0) does not move
    assert volume.spacing[1] == pytest.approx(np.hypot(2.0, 0.1))


def test_unsheared_file_has_no_warning(tmp_path: Path) -> None:
    path = _save(tmp_path, "plain.nii", np.zeros((3, 4, 5), np.int16))
    assert scan_nifti(path)[0].info.warnings == []


def test_missing_orientation_and_metre_units_are_reported(tmp_path: Path) -> None:
    path = _save(tmp_path, "bare.nii", np.zeros((3, 4, 5), np.int16), qform_code=0, sform_code=0)
    assert any("no orientation" in w for w in scan_nifti(path)[0].info.warnings)
    path = _save(tmp_path, "metres.nii", np.zeros((3, 4, 5), np.int16), np.diag([0.002, 0.002, 0.003, 1]), xyzt_units=1)
    info = scan_nifti(path)[0].info
    assert info.spacing == pytest.approx((2.0, 2.0, 3.0))
    assert any("meter" in w for w in info.warnings)


@pytest.mark.parametrize(
    ("stored", "slope", "inter", "expected_dtype"),
    [
        (np.arange(60, dtype=np.uint16) * 50, 1.0, -1024.0, np.int16),  # CT stored unsigned + intercept
        (np.arange(60, dtype=np.int16), 1.0, 0.0, np.int16),
        (np.arange(60, dtype=np.uint8), 1.0, 0.0, np.uint8),
        (np.arange(60, dtype=np.int16), 0.5, 0.0, np.float32),
        (np.arange(60, dtype=np.int16), 1.0, 0.25, np.float32),
        (np.arange(60, dtype=np.float64) * 100, 1.0, 0.0, np.int16),  # whole numbers stored as float64
        (np.arange(60, dtype=np.float64) * 1000, 1.0, 0.0, np.int32),
        (np.arange(60, dtype=np.float64) + 0.5, 1.0, 0.0, np.float32),
        (np.arange(60, dtype=np.float32), 1.0, 0.0, np.float32),
    ],
)
def test_values_are_scaled_as_nibabel_does_into_a_compact_dtype(
    tmp_path: Path, stored: np.ndarray, slope: float, inter: float, expected_dtype: type
) -> None:
    path = _save(tmp_path, "v.nii", stored.reshape(3, 4, 5), scl_slope=slope, scl_inter=inter)
    volume = load_nifti(path).volume
    assert volume.array.dtype == np.dtype(expected_dtype)
    reference = nib.load(str(path)).get_fdata().transpose(2, 1, 0)
    np.testing.assert_allclose(volume.array, reference, rtol=1e-6)


def test_5d_is_refused_but_trailing_singleton_dimensions_are_ignored(tmp_path: Path) -> None:
    path = _save(tmp_path, "field.nii.gz", np.zeros((3, 4, 5, 1, 3), np.float32))
    with pytest.raises(errors.InputError, match="5 dimensions") as caught:
        scan_nifti(path)
    assert "field.nii.gz" in str(caught.value)
    path = _save(tmp_path, "padded.nii.gz", np.zeros((3, 4, 5, 1, 1), np.int16))
    assert load_nifti(path).volume.size == (3, 4, 5)


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    source = _save(tmp_path, "a.nii", np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    misnamed = tmp_path / "b.nii"
    misnamed.write_bytes(gzip.compress(source.read_bytes()))
    np.testing.assert_array_equal(load_nifti(misnamed).volume.array, load_nifti(source).volume.array)


def test_progress_is_reported_and_cancel_stops_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nifti, "CHUNK_BYTES", 3 * 4 * 2)  # one slice per chunk
    path = _save(tmp_path, "four_d.nii.gz", np.arange(3 * 4 * 5 * 4, dtype=np.int16).reshape(3, 4, 5, 4))
    seen: list[float] = []
    loaded = load_nifti(path, lambda fraction, message: seen.append(fraction) is None)
    assert len(loaded.volumes) == 4
    assert len(seen) > 20 and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)

    calls: list[float] = []

    def cancel_after_three(fraction: float, message: str) -> bool:
        calls.append(fraction)
        return len(calls) < 3

    with pytest.raises(errors.Cancelled):
        load_nifti(path, cancel_after_three)
    assert len(calls) == 3


# ------------------------------------------------------------------------------------------ bad input


def test_truncated_gz_scans_but_load_says_how_much_is_missing(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "totalsegmentator/ct_nifti_with_multilabel_seg/example_ct_sm.nii.gz"
    cut = tmp_path / "cut_ct.nii.gz"
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    entry = scan_nifti(cut)[0]  # header only: the scan does not notice
    assert entry.info.size == (122, 101, 30)
    with pytest.raises(errors.CorruptPixelDataError) as caught:
        entry.load()
    message = str(caught.value)
    assert "cut_ct.nii.gz" in message and "\n" not in message
    assert f"of {122 * 101 * 30 * 2} bytes of image data" in message


def test_truncated_uncompressed_nifti_fails_at_scan(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "monai/anatomical_with_label/anatomical.nii"
    cut = tmp_path / "cut.nii"
    cut.write_bytes(source.read_bytes()[:30000])
    with pytest.raises(errors.CorruptPixelDataError, match=r"cut\.nii: the file ends after 29648 of 67650 bytes"):
        scan_nifti(cut)


@pytest.mark.parametrize(
    ("content", "error", "text"),
    [
        (b"this is a text file, not an image\n", errors.UnsupportedFormatError, "not a NIfTI file"),
        (b"", errors.UnsupportedFormatError, "not a NIfTI file"),
        (None, errors.InputError, "ends inside the NIfTI header"),
        (gzip.compress(b"garbage inside gzip"), errors.UnsupportedFormatError, "not a NIfTI file"),
    ],
)
def test_non_nifti_files_raise_typed_one_line_errors(
    tmp_path: Path, content: bytes | None, error: type[Exception], text: str
) -> None:
    path = tmp_path / "x.nii"
    if content is None:
        content = _save(tmp_path, "ok.nii", np.zeros((2, 2, 2), np.int16)).read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(error) as caught:
        scan_nifti(path)
    assert text in str(caught.value) and "x.nii" in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(errors.UnreadablePathError, match="does not exist"):
        scan_nifti(tmp_path / "nothing.nii")
    with pytest.raises(errors.UnreadablePathError, match="folder"):
        scan_nifti(tmp_path)


def test_nifti2_is_read(tmp_path: Path) -> None:
    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    affine = np.diag([-1.5, 2.0, 3.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    path = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti2Image(data, affine, dtype=np.int16), str(path))
    volume = load_nifti(path).volume
    assert volume.metadata["nifti_version"] == 2
    np.testing.assert_allclose(volume.affine, geometry.lps_to_ras_affine(affine))
    np.testing.assert_array_equal(volume.array, data.transpose(2, 1, 0))
