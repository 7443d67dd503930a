"""NRRD / MetaImage reader: geometry and values against SimpleITK on real files, 4D, refusals, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from radlabel.core import errors, geometry
from radlabel.core.io.itk_image import load_itk_image, scan_itk_image
from radlabel.core.io.nifti import load_nifti
from radlabel.core.volume import Volume

# The NRRD files of ../shared/data/MANIFEST.md section 3.
SECTION3_NRRD = [
    "pyradiomics/brain1_gbm_t1gd_tumour_label/brain1_image.nrrd",
    "pyradiomics/brain1_gbm_t1gd_tumour_label/brain1_label.nrrd",
    "pyradiomics/breast1_mri_lesion_label/breast1_image.nrrd",
    "pyradiomics/breast1_mri_lesion_label/breast1_label.nrrd",
]


def sitk_affine(image: sitk.Image) -> np.ndarray:
    """SimpleITK's own index->physical map, built from its matrix calls (an independent reference)."""
    affine = np.eye(4)
    for column in range(3):
        index = [0, 0, 0]
        index[column] = 1
        affine[:3, column] = np.subtract(
            image.TransformContinuousIndexToPhysicalPoint(index),
            image.TransformContinuousIndexToPhysicalPoint((0, 0, 0)),
        )
    affine[:3, 3] = image.TransformContinuousIndexToPhysicalPoint((0, 0, 0))
    return affine


def assert_same_as_sitk(volume: Volume, image: sitk.Image, samples: int = 300) -> None:
    """Same world geometry (1e-4 mm) and the same value at the same world positions."""
    np.testing.assert_allclose(volume.affine, sitk_affine(image), atol=1e-4, rtol=0)
    reference = sitk.GetArrayViewFromImage(image)
    rng = np.random.default_rng(2)
    ijk = rng.integers(0, volume.size, size=(samples, 3))
    for (i, j, k), world in zip(ijk, volume.index_to_world(ijk), strict=True):
        theirs = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in world)))
        assert np.allclose(theirs, np.round(theirs), atol=1e-3)
        ti, tj, tk = np.round(theirs).astype(int)
        assert volume.array[k, j, i] == reference[tk, tj, ti]


@pytest.mark.parametrize("relative", SECTION3_NRRD)
def test_real_nrrd_matches_simpleitk_in_world_space(shared_data: Path, relative: str) -> None:
    path = shared_data / relative
    loaded = load_itk_image(path)
    image = sitk.ReadImage(str(path))
    volume = loaded.volume
    assert loaded.info.format == "NRRD" and loaded.info.uid == path.name
    assert loaded.warnings == []
    assert volume.size == image.GetSize()
    assert volume.array.dtype == sitk.GetArrayViewFromImage(image).dtype
    assert volume.array.flags.c_contiguous
    assert_same_as_sitk(volume, image)


@pytest.mark.parametrize("relative", SECTION3_NRRD)
def test_nrrd_and_its_simpleitk_nifti_conversion_are_the_same_volume(shared_data: Path, relative: str) -> None:
    path = shared_data / relative
    nrrd = load_itk_image(path).volume
    converted = path.parent / "nifti_converted_by_SimpleITK" / (path.stem + ".nii.gz")
    ours_nifti = load_nifti(converted).volume
    assert nrrd.same_grid(ours_nifti, tolerance_mm=1e-4)
    np.testing.assert_array_equal(nrrd.array, ours_nifti.array)
    # and the NRRD voxels sit where nibabel puts the NIfTI's voxels
    ras = nib.load(str(converted)).affine
    np.testing.assert_allclose(nrrd.affine, geometry.lps_to_ras_affine(ras), atol=1e-4)


def test_breast_crop_keeps_its_far_origin(shared_data: Path) -> None:
    info = scan_itk_image(shared_data / "pyradiomics/breast1_mri_lesion_label/breast1_image.nrrd")[0].info
    assert info.size == (45, 120, 21)
    np.testing.assert_allclose(info.origin, (-116.54304, -48.144654, 9.45), atol=1e-5)
    assert info.orientation == "LPS"


def _write_nrrd(path: Path, space: str, directions: str, data: np.ndarray, encoding: str = "raw") -> Path:
    k, j, i = data.shape
    header = (
        f"NRRD0004\ntype: short\ndimension: 3\nspace: {space}\nsizes: {i} {j} {k}\n"
        f"space directions: {directions}\nkinds: domain domain domain\nendian: little\n"
        f"encoding: {encoding}\nspace origin: (10,20,30)\n\n"
    )
    payload = data.astype("<i2").tobytes()
    path.write_bytes(header.encode() + (gzip.compress(payload) if encoding == "gzip" else payload))
    return path


def test_ras_space_nrrd_is_converted_to_lps(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = _write_nrrd(tmp_path / "ras.nrrd", "right-anterior-superior", "(1,0,0) (0,2,0) (0,0,3)", data)
    volume = load_itk_image(path).volume
    np.testing.assert_allclose(volume.origin, (-10, -20, 30))
    np.testing.assert_allclose(volume.spacing, (1, 2, 3))
    np.testing.assert_allclose(volume.direction, np.diag([-1.0, -1.0, 1.0]), atol=1e-12)
    assert volume.orientation == "RAS"
    np.testing.assert_array_equal(volume.array, data)


def test_sheared_nrrd_is_orthogonalised_with_a_warning(tmp_path: Path) -> None:
    data = np.zeros((4, 5, 6), np.int16)
    path = _write_nrrd(tmp_path / "shear.nrrd", "left-posterior-superior", "(1,0,0) (0.2,2,0) (0,0,3)", data)
    loaded = load_itk_image(path)
    assert len(loaded.warnings) == 1 and "sheared" in loaded.warnings[0] and "5.71°" in loaded.warnings[0]
    direction = loaded.volume.direction
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-9)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_4d_scalar_image_is_a_series_of_volumes(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(3)
    arrays = [rng.integers(-100, 100, (4, 5, 6)).astype(np.int16) for _ in range(3)]
    frames = []
    for array in arrays:
        frame = sitk.GetImageFromArray(array)
        frame.SetSpacing((0.5, 0.6, 2.0))
        frame.SetOrigin((1.0, 2.0, 3.0))
        frames.append(frame)
    path = tmp_path / f"four{suffix}"
    sitk.WriteImage(sitk.JoinSeries(frames), str(path), True)
    entry = scan_itk_image(path)[0]
    assert entry.info.n_volumes == 3 and entry.info.size == (6, 5, 4)
    loaded = entry.load()
    assert [v.metadata["volume_label"] for v in loaded.volumes] == ["t=0", "t=1", "t=2"]
    for volume, array, frame in zip(loaded.volumes, arrays, frames, strict=True):
        np.testing.assert_array_equal(volume.array, array)
        assert_same_as_sitk(volume, frame, samples=20)


def test_vector_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "field.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.float32), isVector=True), str(path))
    with pytest.raises(errors.InputError, match="3 component") as caught:
        scan_itk_image(path)
    assert "field.nrrd" in str(caught.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.arange(120, dtype=np.float64) - 60, np.int16),
        (np.arange(120, dtype=np.float64) * 1000, np.int32),
        (np.arange(120, dtype=np.float64) / 3, np.float32),
        (np.arange(120, dtype=np.uint16), np.uint16),
    ],
)
def test_compact_dtype(tmp_path: Path, values: np.ndarray, expected: type) -> None:
    path = tmp_path / "v.mha"
    sitk.WriteImage(sitk.GetImageFromArray(values.reshape(4, 5, 6)), str(path))
    volume = load_itk_image(path).volume
    assert volume.array.dtype == np.dtype(expected)
    np.testing.assert_allclose(volume.array, values.reshape(4, 5, 6), rtol=1e-6)


def test_progress_and_cancel(shared_data: Path) -> None:
    path = shared_data / "pyradiomics/breast1_mri_lesion_label/breast1_label.nrrd"
    seen: list[float] = []
    load_itk_image(path, lambda fraction, message: seen.append(fraction) is None)
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    with pytest.raises(errors.Cancelled):
        load_itk_image(path, lambda fraction, message: False)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_truncated_nrrd_says_how_much_is_missing(tmp_path: Path, encoding: str) -> None:
    data = np.arange(40 * 50 * 60, dtype=np.int16).reshape(40, 50, 60)
    full = _write_nrrd(tmp_path / "full.nrrd", "left-posterior-superior", "(1,0,0) (0,1,0) (0,0,1)", data, encoding)
    cut = tmp_path / "cut.nrrd"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size - 3000])
    entry = scan_itk_image(cut)[0]
    with pytest.raises(errors.CorruptPixelDataError) as caught:
        entry.load()
    message = str(caught.value)
    assert message.startswith(f"{cut}: the file ends after ") and "\n" not in message
    assert f"of {data.nbytes} bytes of image data" in message


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_metaimage_says_how_much_is_missing(tmp_path: Path, compress: bool) -> None:
    full = tmp_path / "full.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(24000, dtype=np.int16).reshape(20, 30, 40)), str(full), compress)
    cut = tmp_path / "cut.mha"
    raw = full.read_bytes()
    cut.write_bytes(raw[: len(raw) - 500])
    with pytest.raises(errors.CorruptPixelDataError, match=r"cut\.mha: the file ends after \d+ of \d+ bytes") as caught:
        load_itk_image(cut)
    if not compress:
        assert "ends after 47500 of 48000 bytes" in str(caught.value)


@pytest.mark.parametrize("name", ["x.nrrd", "x.mha", "x.nhdr", "x.mhd"])
def test_text_file_is_not_an_image(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("hello, this is not an image\n")
    with pytest.raises(errors.UnsupportedFormatError) as caught:
        scan_itk_image(path)
    assert name in str(caught.value) and "\n" not in str(caught.value)


def test_missing_detached_data_file(tmp_path: Path) -> None:
    path = tmp_path / "image.mhd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(path))
    (tmp_path / "image.raw").unlink()
    with pytest.raises(errors.UnreadablePathError, match=r"image\.raw"):
        scan_itk_image(path)
    with pytest.raises(errors.UnreadablePathError, match="does not exist"):
        scan_itk_image(tmp_path / "none.nrrd")
