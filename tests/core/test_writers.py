"""Volume writers: round trips through our readers and independent ones (nibabel, SimpleITK), errors, cancel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from radlabel.core import errors, geometry
from radlabel.core.io.itk_image import load_itk_image
from radlabel.core.io.nifti import load_nifti
from radlabel.core.io.series import LoadedSeries
from radlabel.core.io.writers import save_volume, save_volumes
from radlabel.core.volume import Volume

ALL_EXTENSIONS = [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"]


def oblique(dtype: type = np.int16, seed: int = 0, shape: tuple[int, int, int] = (6, 9, 11)) -> Volume:
    """Rotated by a few degrees about all three axes, anisotropic spacing, a distinct value per voxel."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        array = rng.integers(-1000, 3000, shape).astype(dtype)
    else:
        array = (rng.standard_normal(shape) * 123.456).astype(dtype)
    direction = Rotation.from_euler("xyz", [4.0, -3.0, 6.5], degrees=True).as_matrix()
    return Volume(
        array,
        origin=(-41.25, 17.5, 103.125),
        spacing=(0.72, 0.95, 2.6),
        direction=direction,
        metadata={"description": "synthetic oblique"},
    )


def corners(volume: Volume) -> np.ndarray:
    i, j, k = (s - 1 for s in volume.size)
    return np.array([[a, b, c] for a in (0, i) for b in (0, j) for c in (0, k)], float)


def read_back(path: Path) -> LoadedSeries:
    return load_nifti(path) if path.name.endswith((".nii", ".nii.gz")) else load_itk_image(path)


def independent_affine_and_kji(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """LPS affine and [k, j, i] arrays as nibabel (NIfTI) or SimpleITK (NRRD/MHA) read the file."""
    if path.name.endswith((".nii", ".nii.gz")):
        image = nib.load(str(path))
        data = np.asarray(image.dataobj)
        frames = [data] if data.ndim == 3 else [data[..., t] for t in range(data.shape[3])]
        return geometry.LPS_TO_RAS @ image.affine, [f.transpose(2, 1, 0) for f in frames]
    image = sitk.ReadImage(str(path))
    dimension = image.GetDimension()
    direction = np.array(image.GetDirection()).reshape(dimension, dimension)[:3, :3]
    affine = geometry.affine_from(image.GetOrigin()[:3], image.GetSpacing()[:3], direction)
    data = sitk.GetArrayFromImage(image)
    return affine, [data] if dimension == 3 else list(data)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("extension", ALL_EXTENSIONS)
def test_round_trip_keeps_world_geometry_and_values(tmp_path: Path, extension: str, dtype: type) -> None:
    volume = oblique(dtype)
    path = save_volume(volume, tmp_path / f"out{extension}")
    assert path == tmp_path / f"out{extension}" and path.is_file()
    # through our reader
    ours = read_back(path).volume
    np.testing.assert_allclose(ours.index_to_world(corners(volume)), volume.index_to_world(corners(volume)), atol=1e-4)
    assert ours.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(ours.array, volume.array)
    # through an independent reader
    affine, arrays = independent_affine_and_kji(path)
    np.testing.assert_allclose(
        geometry.index_to_world(affine, corners(volume)), volume.index_to_world(corners(volume)), atol=1e-4
    )
    assert len(arrays) == 1
    assert arrays[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(arrays[0], volume.array)
    # no temporary files left behind
    leftovers = [p.name for p in tmp_path.iterdir() if "partial" in p.name]
    assert leftovers == []


def test_nifti_header_has_scanner_qform_and_sform_that_agree(tmp_path: Path) -> None:
    volume = oblique()
    path = save_volume(volume, tmp_path / "h.nii.gz")
    header = nib.load(str(path)).header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1
    assert header.get_xyzt_units() == ("mm", "sec")
    assert header["descrip"].item() == b"synthetic oblique"
    points = corners(volume)
    for transform in (header.get_qform(), header.get_sform()):
        world = geometry.index_to_world(geometry.lps_to_ras_affine(transform), points)
        np.testing.assert_allclose(world, volume.index_to_world(points), atol=1e-4)
    # ITK's NIfTI reader (a third reader, with its own qform/sform rules) agrees too.
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-4)
    np.testing.assert_allclose(np.array(image.GetDirection()).reshape(3, 3), volume.direction, atol=1e-5)


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
def test_save_volumes_writes_4d(tmp_path: Path, extension: str) -> None:
    first = oblique(np.int16, seed=1)
    others = [Volume(oblique(np.int16, seed=s).array, first.origin, first.spacing, first.direction) for s in (2, 3)]
    volumes = [first, *others]
    path = save_volumes(volumes, tmp_path / f"four{extension}")
    loaded = read_back(path)
    assert len(loaded.volumes) == 3 and loaded.info.n_volumes == 3
    affine, arrays = independent_affine_and_kji(path)
    assert len(arrays) == 3
    for original, ours, theirs in zip(volumes, loaded.volumes, arrays, strict=True):
        assert ours.same_grid(original, tolerance_mm=1e-4)
        np.testing.assert_array_equal(ours.array, original.array)
        np.testing.assert_array_equal(theirs, original.array)
    np.testing.assert_allclose(
        geometry.index_to_world(affine, corners(first)), first.index_to_world(corners(first)), atol=1e-4
    )


def test_save_volumes_refuses_different_grids(tmp_path: Path) -> None:
    first = oblique()
    moved = Volume(first.array.copy(), first.origin + 1.0, first.spacing, first.direction)
    with pytest.raises(errors.OutputError, match="volume 1 is not on the grid") as caught:
        save_volumes([first, moved], tmp_path / "bad.nii.gz")
    assert "bad.nii.gz" in str(caught.value)
    assert not (tmp_path / "bad.nii.gz").exists()


def test_single_volume_list_is_written_as_3d(tmp_path: Path) -> None:
    path = save_volumes([oblique()], tmp_path / "one.nii")
    assert nib.load(str(path)).ndim == 3


def test_bool_mask_is_written_as_uint8(tmp_path: Path) -> None:
    volume = oblique()
    mask = Volume(volume.array > 500, volume.origin, volume.spacing, volume.direction)
    for extension in (".nii.gz", ".nrrd"):
        loaded = read_back(save_volume(mask, tmp_path / f"mask{extension}")).volume
        assert loaded.array.dtype == np.uint8
        np.testing.assert_array_equal(loaded.array, mask.array.astype(np.uint8))


def test_existing_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "v.mha"
    save_volume(oblique(seed=1), path)
    second = oblique(seed=2)
    save_volume(second, path)
    np.testing.assert_array_equal(load_itk_image(path).volume.array, second.array)


# ------------------------------------------------------------------------------------------ errors


def test_unknown_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(errors.OutputError) as caught:
        save_volume(oblique(), tmp_path / "volume.png")
    message = str(caught.value)
    assert "volume.png" in message and ".nii.gz" in message and ".nrrd" in message and ".mha" in message


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd"])
def test_unwritable_destinations(tmp_path: Path, extension: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(errors.OutputError, match="is not a folder") as caught:
        save_volume(oblique(), blocker / f"out{extension}")
    assert f"out{extension}" in str(caught.value)
    with pytest.raises(errors.OutputError, match="does not exist") as caught:
        save_volume(oblique(), tmp_path / "missing" / f"out{extension}")
    assert f"out{extension}" in str(caught.value)
    (tmp_path / f"dir{extension}").mkdir()
    with pytest.raises(errors.OutputError, match="folder with this name"):
        save_volume(oblique(), tmp_path / f"dir{extension}")


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
def test_cancel_leaves_no_file(tmp_path: Path, extension: str) -> None:
    calls: list[float] = []

    def cancel_on_second_call(fraction: float, message: str) -> bool:
        calls.append(fraction)
        return len(calls) < 2

    with pytest.raises(errors.Cancelled):
        save_volume(oblique(), tmp_path / f"c{extension}", cancel_on_second_call)
    assert list(tmp_path.iterdir()) == []

    seen: list[float] = []
    save_volume(oblique(), tmp_path / f"c{extension}", lambda f, m: seen.append(f) is None)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
