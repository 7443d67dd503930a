"""DICOM reader behaviour on series radlabel writes itself: sorting, containers, gaps, 4D, dtype, cancel."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radlabel.core import errors
from radlabel.core.io.dicom_export import write_dicom_series
from radlabel.core.io.loader import choose_series, load, scan

from .synthetic import oblique_volume


def test_shuffled_file_names_are_sorted_by_position(tmp_path: Path) -> None:
    volume = oblique_volume()
    paths = write_dicom_series(volume, tmp_path, shuffle=True)
    assert sorted(paths) != paths  # names are not in slice order
    loaded = load(tmp_path)
    assert loaded.volume.same_grid(volume)
    np.testing.assert_array_equal(loaded.volume.array, volume.array)
    assert loaded.volume.orientation.startswith("oblique")
    assert loaded.warnings == []


def test_instance_numbers_do_not_decide_the_order(tmp_path: Path) -> None:
    volume = oblique_volume()
    paths = write_dicom_series(volume, tmp_path)
    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = len(paths) - index if index % 2 else index + 100
        ds.save_as(path)
    np.testing.assert_array_equal(load(tmp_path).volume.array, volume.array)


def test_zip_dicomdir_and_gzip_inputs(tmp_path: Path) -> None:
    volume = oblique_volume()
    series = tmp_path / "series"
    paths = write_dicom_series(volume, series)
    archive = tmp_path / "case.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in paths:
            out.write(path, f"study/{path.name}")
    np.testing.assert_array_equal(load(archive).volume.array, volume.array)

    from pydicom.fileset import FileSet

    media = tmp_path / "media"
    fileset = FileSet()
    for path in paths:
        instance = pydicom.dcmread(path)
        instance.StudyID = "1"  # DICOMDIR study records require it
        fileset.add(instance)
    fileset.write(media)
    from_dicomdir = load(media / "DICOMDIR")
    np.testing.assert_array_equal(from_dicomdir.volume.array, volume.array)
    assert from_dicomdir.volume.same_grid(volume)

    single = tmp_path / "one.dcm.gz"
    with gzip.open(single, "wb") as out:
        out.write(paths[3].read_bytes())
    np.testing.assert_array_equal(load(single).volume.array[0], volume.array[3])


def test_missing_slice_is_reported_and_the_grid_stays_regular(tmp_path: Path) -> None:
    volume = oblique_volume()
    paths = write_dicom_series(volume, tmp_path)
    paths[3].unlink()
    loaded = load(tmp_path)
    assert any("1 slice(s) missing" in w for w in loaded.warnings)
    assert loaded.volume.size == volume.size
    assert loaded.volume.same_grid(volume)
    np.testing.assert_array_equal(loaded.volume.array[2], volume.array[2])
    np.testing.assert_array_equal(loaded.volume.array[4], volume.array[4])
    expected = np.rint((volume.array[2].astype(float) + volume.array[4]) / 2)
    np.testing.assert_allclose(loaded.volume.array[3], expected, atol=1)


def test_irregular_spacing_is_resampled_and_reported(tmp_path: Path) -> None:
    volume = oblique_volume(shape_kji=(6, 16, 16))
    paths = write_dicom_series(volume, tmp_path)
    normal = volume.direction[:, 2]
    for path in paths[3:]:
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [float(v) for v in np.array(ds.ImagePositionPatient) + normal * 1.3]
        ds.save_as(path)
    loaded = load(tmp_path)
    assert any("irregular slice spacing" in w for w in loaded.warnings)
    assert loaded.info.extra["resampled"] is True
    first, last = loaded.volume.index_to_world([[0, 0, 0], [0, 0, loaded.volume.size[2] - 1]])
    span = float(np.dot(last - first, normal))
    assert span == pytest.approx(5 * 2.5 + 1.3, abs=1e-6)
    np.testing.assert_array_equal(loaded.volume.array[0], volume.array[0])
    np.testing.assert_array_equal(loaded.volume.array[-1], volume.array[-1])


def test_series_of_mixed_sizes_is_split_and_convert_asks_which(tmp_path: Path) -> None:
    big = oblique_volume(shape_kji=(5, 24, 20))
    small = oblique_volume(shape_kji=(3, 12, 10), seed=1)
    write_dicom_series(big, tmp_path, series_uid="1.2.3.4", file_prefix="A")
    write_dicom_series(small, tmp_path, series_uid="1.2.3.4", file_prefix="B")
    result = scan(tmp_path)
    assert [s.info.uid for s in result.series] == ["1.2.3.4", "1.2.3.4.2"]
    assert all("split into separate series" in s.info.warnings[0] for s in result.series)
    with pytest.raises(errors.SeriesNotFoundError, match="holds 2 series"):
        choose_series(result, None)
    np.testing.assert_array_equal(choose_series(result, "1.2.3.4.2").load().volume.array, small.array)


def test_echoes_at_the_same_positions_become_one_4d_series(tmp_path: Path) -> None:
    first = oblique_volume(seed=1)
    second = oblique_volume(seed=2)
    for echo, volume in ((1, first), (2, second)):
        paths = write_dicom_series(volume, tmp_path, series_uid="1.2.3.5", file_prefix=f"E{echo}")
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.EchoNumbers = echo
            ds.save_as(path)
    loaded = load(tmp_path)
    assert loaded.info.n_volumes == 2
    assert loaded.info.volume_labels == ["EchoNumbers=1", "EchoNumbers=2"]
    np.testing.assert_array_equal(loaded.volumes[0].array, first.array)
    np.testing.assert_array_equal(loaded.volumes[1].array, second.array)


def test_ct_stored_unsigned_with_intercept_comes_back_as_int16_hu(tmp_path: Path) -> None:
    volume = oblique_volume()
    write_dicom_series(volume, tmp_path, rescale_intercept=-1024)
    loaded = load(tmp_path).volume
    assert loaded.array.dtype == np.int16
    np.testing.assert_array_equal(loaded.array, volume.array)


def test_big_endian_and_implicit_series(tmp_path: Path) -> None:
    volume = oblique_volume()
    for syntax in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2"):
        folder = tmp_path / syntax
        write_dicom_series(volume, folder, transfer_syntax=syntax)
        np.testing.assert_array_equal(load(folder).volume.array, volume.array)


def test_float_rescale_gives_float32(tmp_path: Path) -> None:
    volume = oblique_volume()
    paths = write_dicom_series(volume, tmp_path)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.RescaleSlope = "0.5"
        ds.save_as(path)
    loaded = load(tmp_path).volume
    assert loaded.array.dtype == np.float32
    np.testing.assert_allclose(loaded.array, volume.array * 0.5)


def test_loading_reports_progress_and_can_be_cancelled(tmp_path: Path) -> None:
    write_dicom_series(oblique_volume(shape_kji=(30, 16, 16)), tmp_path)
    seen: list[float] = []
    load(tmp_path, progress=lambda fraction, message: seen.append(fraction) is None)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)

    def stop_half_way(fraction: float, message: str) -> bool:
        return fraction < 0.5

    with pytest.raises(errors.Cancelled):
        load(tmp_path, progress=stop_half_way)


def test_folder_with_truncated_and_foreign_files(tmp_path: Path) -> None:
    volume = oblique_volume()
    paths = write_dicom_series(volume, tmp_path / "good")
    (tmp_path / "notes.txt").write_text("not an image")
    broken = tmp_path / "broken.dcm"
    shutil.copy(paths[0], broken)
    with open(broken, "r+b") as handle:
        handle.truncate(broken.stat().st_size - 100)
    result = scan(tmp_path)
    assert {Path(b.path).name: b.reason for b in result.bad_files}.keys() == {"notes.txt", "broken.dcm"}
    # the truncated copy shares the series: it is skipped, the series still loads whole
    np.testing.assert_array_equal(result.series[0].load().volume.array, volume.array)


def test_empty_and_missing_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.EmptyInputError, match="empty"):
        scan(empty)
    with pytest.raises(errors.UnreadablePathError, match="no such file"):
        scan(tmp_path / "missing")
    (empty / "a.txt").write_text("x")
    with pytest.raises(errors.EmptyInputError, match="no image series found in 1 file"):
        scan(empty)
