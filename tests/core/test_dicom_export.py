"""write_dicom_series, checked against independent readers (SimpleITK/GDCM and pydicom) in world terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)

from radlabel.core.demo import make_demo_ct
from radlabel.core.errors import Cancelled, OutputError
from radlabel.core.io.dicom_export import write_dicom_series
from radlabel.core.volume import Volume

SPACING = (0.7, 1.3, 2.9)  # i, j, k (mm): every axis different, so a swap shows
SIZE_KJI = (7, 24, 20)


def _rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = [n for n in range(3) if n != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


@pytest.fixture(scope="module")
def oblique() -> Volume:
    """20 x 24 x 7 (i, j, k) int16 volume, rotated ~10 degrees about two axes, with random HU values."""
    direction = _rotation(0, 10.0) @ _rotation(1, -9.0)
    values = np.random.default_rng(7).integers(-1000, 2500, size=SIZE_KJI).astype(np.int16)
    return Volume(
        array=values,
        origin=np.array([-41.25, 17.5, -103.0]),
        spacing=np.array(SPACING),
        direction=direction,
        metadata={"modality": "CT", "description": "oblique test", "patient_name": "Test^Oblique"},
    )


def _read_sitk(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(names)
    return reader.Execute()


def _assert_same_grid(image: sitk.Image, volume: Volume) -> None:
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, atol=1e-3)
    np.testing.assert_allclose(np.array(image.GetDirection()).reshape(3, 3), volume.direction, atol=1e-3)
    assert image.GetSize() == volume.size


def test_oblique_volume_round_trips_through_simpleitk(tmp_path: Path, oblique: Volume) -> None:
    paths = write_dicom_series(oblique, tmp_path)
    assert len(paths) == 7
    assert [p.name for p in paths] == [f"IM{n:05d}.dcm" for n in range(1, 8)]
    assert sorted(tmp_path.iterdir()) == sorted(paths)
    image = _read_sitk(tmp_path)
    _assert_same_grid(image, oblique)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), oblique.array)


def test_pydicom_reads_every_file_with_the_expected_attributes(tmp_path: Path, oblique: Volume) -> None:
    paths = write_dicom_series(oblique, tmp_path, patient_id="P123", series_description="round trip")
    datasets = [pydicom.dcmread(p) for p in paths]
    sop_uids = {ds.SOPInstanceUID for ds in datasets}
    assert len(sop_uids) == len(paths)
    for k, ds in enumerate(datasets):
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.Modality == "CT"
        assert str(ds.PatientName) == "Test^Oblique"
        assert ds.PatientID == "P123"
        assert ds.SeriesDescription == "round trip"
        assert ds.InstanceNumber == k + 1
        assert (ds.Rows, ds.Columns) == (24, 20)
        # DICOM PixelSpacing is (row spacing = j, column spacing = i).
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([1.3, 0.7])
        assert float(ds.SliceThickness) == pytest.approx(2.9)
        assert float(ds.SpacingBetweenSlices) == pytest.approx(2.9)
        np.testing.assert_allclose(
            [float(v) for v in ds.ImageOrientationPatient],
            np.concatenate([oblique.direction[:, 0], oblique.direction[:, 1]]),
            atol=1e-6,
        )
        expected_position = oblique.index_to_world([[0, 0, k]])[0]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected_position, atol=1e-6)
        normal = np.cross(oblique.direction[:, 0], oblique.direction[:, 1])
        assert float(ds.SliceLocation) == pytest.approx(float(expected_position @ normal), abs=1e-6)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 1)
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
        np.testing.assert_array_equal(ds.pixel_array, oblique.array[k])
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1


def test_given_uids_are_used(tmp_path: Path, oblique: Volume) -> None:
    paths = write_dicom_series(oblique, tmp_path, study_uid="1.2.3.4", series_uid="1.2.3.4.5", series_number=7)
    ds = pydicom.dcmread(paths[3])
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber) == ("1.2.3.4", "1.2.3.4.5", 7)


def test_shuffled_names_still_read_in_position_order(tmp_path: Path, oblique: Volume) -> None:
    paths = write_dicom_series(oblique, tmp_path, shuffle=True, shuffle_seed=5)
    names = [p.name for p in paths]
    assert sorted(names) == [f"IM{n:05d}.dcm" for n in range(1, 8)]
    assert names != sorted(names), "file names should not follow slice order"
    # Name order really is a different slice order, so a name-sorting reader would fail.
    by_name = sorted(paths, key=lambda p: p.name)
    instance_numbers = [pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber for p in by_name]
    assert instance_numbers != sorted(instance_numbers)
    image = _read_sitk(tmp_path)
    _assert_same_grid(image, oblique)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), oblique.array)


@pytest.mark.parametrize(
    ("syntax", "uid"),
    [(ExplicitVRBigEndian, "1.2.840.10008.1.2.2"), (ImplicitVRLittleEndian, "1.2.840.10008.1.2")],
)
def test_other_transfer_syntaxes(tmp_path: Path, oblique: Volume, syntax: str, uid: str) -> None:
    paths = write_dicom_series(oblique, tmp_path, transfer_syntax=syntax)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == uid
        np.testing.assert_array_equal(ds.pixel_array, oblique.array[k])
    image = _read_sitk(tmp_path)
    _assert_same_grid(image, oblique)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), oblique.array)


def test_big_endian_pixel_bytes_are_big_endian(tmp_path: Path, oblique: Volume) -> None:
    paths = write_dicom_series(oblique, tmp_path, transfer_syntax=ExplicitVRBigEndian)
    raw = pydicom.dcmread(paths[0]).PixelData
    np.testing.assert_array_equal(np.frombuffer(raw, dtype=">i2").reshape(24, 20), oblique.array[0])


def test_unsigned_storage_with_rescale_intercept(tmp_path: Path, oblique: Volume) -> None:
    paths = write_dicom_series(oblique, tmp_path, rescale_intercept=-1024)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        assert ds.PixelRepresentation == 0
        assert float(ds.RescaleIntercept) == -1024.0
        assert float(ds.RescaleSlope) == 1.0
        stored = ds.pixel_array
        assert stored.dtype == np.uint16
        np.testing.assert_array_equal(stored.astype(np.int32), oblique.array[k].astype(np.int32) + 1024)
    image = _read_sitk(tmp_path)
    _assert_same_grid(image, oblique)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), oblique.array)


def test_per_slice_rescale_intercepts(tmp_path: Path, oblique: Volume) -> None:
    intercepts = [-1024.0 - 8 * k for k in range(7)]
    paths = write_dicom_series(oblique, tmp_path, rescale_intercept=intercepts, transfer_syntax=ExplicitVRBigEndian)
    assert [float(pydicom.dcmread(p).RescaleIntercept) for p in paths] == intercepts
    np.testing.assert_array_equal(sitk.GetArrayFromImage(_read_sitk(tmp_path)), oblique.array)


def test_intercept_that_does_not_fit_16_bits_is_refused(tmp_path: Path, oblique: Volume) -> None:
    with pytest.raises(OutputError, match="16 bits"):
        write_dicom_series(oblique, tmp_path, rescale_intercept=-70000)
    assert list(tmp_path.iterdir()) == []


def test_float_volume_gets_slope_and_intercept(tmp_path: Path, oblique: Volume) -> None:
    values = np.random.default_rng(3).normal(250.0, 80.0, size=SIZE_KJI).astype(np.float32)
    volume = Volume(values, oblique.origin, oblique.spacing, oblique.direction, {"modality": "MR"})
    paths = write_dicom_series(volume, tmp_path)
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == MRImageStorage
    assert ds.Modality == "MR"
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    assert slope != 1.0
    assert ds.pixel_array.min() >= -32768 and ds.pixel_array.max() <= 32767
    np.testing.assert_allclose(ds.pixel_array * slope + intercept, values[0], atol=slope / 2 + 1e-6)
    # The stored range is used: quantisation is no coarser than 1/65000 of the value range.
    assert slope <= (values.max() - values.min()) / 65000
    image = _read_sitk(tmp_path)
    _assert_same_grid(image, volume)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), values, atol=slope / 2 + 1e-4)


def test_cancellation_raises_and_leaves_no_partial_series(tmp_path: Path, oblique: Volume) -> None:
    calls: list[float] = []

    def progress(fraction: float, message: str) -> bool:
        calls.append(fraction)
        return len(calls) < 4

    with pytest.raises(Cancelled):
        write_dicom_series(oblique, tmp_path, progress=progress)
    assert len(calls) == 4
    assert list(tmp_path.glob("*.dcm")) == []


def test_progress_runs_from_zero_to_one(tmp_path: Path, oblique: Volume) -> None:
    seen: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        seen.append((fraction, message))

    write_dicom_series(oblique, tmp_path, progress=progress)
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert len(seen) >= 7


def test_refuses_modalities_it_cannot_write_as_3d(tmp_path: Path, oblique: Volume) -> None:
    with pytest.raises(OutputError, match="modality"):
        write_dicom_series(oblique, tmp_path, modality="OT")
    with pytest.raises(OutputError, match="transfer syntax"):
        write_dicom_series(oblique, tmp_path, transfer_syntax="1.2.840.10008.1.2.4.50")


def test_demo_phantom_round_trip(tmp_path: Path) -> None:
    volume, _ = make_demo_ct(shape=(24, 64, 64), spacing=(2.7, 2.7, 7.5))
    paths = write_dicom_series(volume, tmp_path, shuffle=True, rescale_intercept=-1024)
    ds = pydicom.dcmread(paths[0], stop_before_pixels=True)
    assert str(ds.PatientName) == "Demo^Phantom"
    assert ds.SeriesDescription == "radlabel demo phantom"
    image = _read_sitk(tmp_path)
    _assert_same_grid(image, volume)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)
