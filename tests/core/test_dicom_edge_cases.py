"""What each malformed or unusual file of ../shared/data does (see pydicom/edge_cases/PROBE_RESULTS.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlabel.core import errors
from radlabel.core.geometry import lps_to_ras_affine
from radlabel.core.grid_match import match_grids
from radlabel.core.io.loader import load, scan


def edge(shared_data: Path, name: str) -> Path:
    return shared_data / "pydicom" / "edge_cases" / name


MR_SMALL_VARIANTS = [
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
    "zipMR.gz",
]


@pytest.mark.parametrize("name", MR_SMALL_VARIANTS)
def test_every_encoding_of_mr_small_gives_the_same_image(shared_data: Path, name: str) -> None:
    reference = load(edge(shared_data, "MR_small.dcm")).volume
    volume = load(edge(shared_data, name)).volume
    assert volume.array.dtype == np.int16
    assert volume.array.dtype.byteorder in ("=", "|")
    np.testing.assert_array_equal(volume.array, reference.array)
    assert volume.same_grid(reference)
    assert (int(volume.array.min()), int(volume.array.max())) == (127, 2145)


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("MR_truncated.dcm", errors.CorruptPixelDataError, "truncated: 8130 of 8192 bytes"),
        ("no_meta.dcm", errors.UnsupportedFormatError, "not a DICOM"),
        ("meta_missing_tsyntax.dcm", errors.UnsupportedTransferSyntaxError, "Transfer Syntax UID"),
        ("rtstruct.dcm", errors.NoPixelDataError, "RTSTRUCT"),
        ("ExplVR_BigEndNoMeta.dcm", errors.NoPixelDataError, "RTPLAN"),
        ("JPEG-lossy.dcm", errors.CorruptPixelDataError, "decoder failed"),
        ("PROBE_RESULTS.md", errors.UnsupportedFormatError, "not a DICOM, NIfTI"),
    ],
)
def test_malformed_file_gives_a_typed_one_line_error(
    shared_data: Path, name: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as caught:
        load(edge(shared_data, name))
    message = str(caught.value)
    assert name in message and words in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "dtype", "low", "high"),
    [
        ("JPGExtended.dcm", np.int16, 0, 264),
        ("JPEG2000.dcm", np.int16, -30, 245),
        ("image_dfl.dcm", np.uint8, 0, 255),
        ("badVR.dcm", None, None, None),
    ],
)
def test_unusual_but_valid_files_load(shared_data: Path, name: str, dtype: object, low: int, high: int) -> None:
    loaded = load(edge(shared_data, name))
    array = loaded.volume.array
    assert array.size > 0
    if dtype is not None:
        assert array.dtype == dtype
        assert (int(array.min()), int(array.max())) == (low, high)


def test_folder_with_bad_files_loads_the_good_series_and_lists_the_bad(shared_data: Path) -> None:
    result = scan(shared_data / "pydicom" / "edge_cases")
    bad = {Path(b.path).name for b in result.bad_files}
    assert {"MR_truncated.dcm", "no_meta.dcm", "meta_missing_tsyntax.dcm"} <= bad
    assert {Path(o.path).name for o in result.other_objects} >= {"rtstruct.dcm", "ExplVR_BigEndNoMeta.dcm"}
    assert result.series
    mr = next(s for s in result.series if s.info.modality == "MR")
    assert mr.load().volume.array.shape[-2:] == (64, 64)


@pytest.mark.parametrize("name", ["emri_small.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm"])
def test_enhanced_mr_encodings_decode_identically(shared_data: Path, name: str) -> None:
    folder = shared_data / "pydicom_data" / "enhanced_multiframe"
    if not (folder / name).exists():
        pytest.fail(f"expected {name} in {folder}: {sorted(p.name for p in folder.iterdir())}")
    reference = load(folder / "emri_small.dcm")
    loaded = load(folder / name)
    assert sum(v.array.shape[0] for v in loaded.volumes) == 10
    for ours, theirs in zip(loaded.volumes, reference.volumes, strict=True):
        np.testing.assert_array_equal(ours.array, theirs.array)


def test_totalsegmentator_jpeg2000_ct_lies_on_its_label_grid(shared_data: Path) -> None:
    """Another tool's NIfTI label map of this DICOM series must land on our CT grid voxel for voxel."""
    import nibabel as nib

    case = shared_data / "totalsegmentator" / "ct_dicom_with_multilabel_seg"
    loaded = load(case / "image_dicom")
    volume = loaded.volume
    assert volume.size == (512, 512, 20)
    label = nib.load(str(case / "seg_nifti" / "example_seg_dicom.nii.gz"))
    index_map = match_grids(lps_to_ras_affine(label.affine), label.shape[:3], volume.affine, tolerance_mm=1e-2)
    assert index_map is not None
    assert volume.array.min() > -1100 and volume.array.max() < 4000  # HU after rescale


def test_every_dicom_folder_in_shared_data_scans(shared_data: Path) -> None:
    """No real folder makes the scanner crash; each yields at least one series or names its bad files."""
    roots = [
        shared_data / "dcmqi",
        shared_data / "highdicom",
        shared_data / "rt_utils",
        shared_data / "pydicom_data",
    ]
    for root in roots:
        result = scan(root)
        assert result.series, root
        for entry in result.series:
            loaded = entry.load()
            assert all(np.isfinite(v.array).all() for v in loaded.volumes)
