"""NRRD / MetaImage readers and writers against SimpleITK, the reference: same geometry, same voxels.

SimpleITK is a test dependency only; radlabel reads and writes these formats itself (radlabel.core.io.nrrd,
radlabel.core.io.metaimage). Every file is compared at two levels: the parsed image (`read_header` + `read`,
which must equal what `SimpleITK.ReadImage` gives: dimension, size, components, dtype, affine, every voxel) and,
for grey-scale images, the Volume the loader returns.
"""

from __future__ import annotations

import bz2
import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from radlabel.core import errors
from radlabel.core.io.itk_image import load_itk_image, read_header, scan_itk_image
from radlabel.core.io.metaimage import write_metaimage
from radlabel.core.io.nifti import compact_array
from radlabel.core.io.nrrd import write_nrrd
from radlabel.core.io.writers import save_volume, save_volumes
from radlabel.core.volume import Volume
from tests.conftest import find_shared_data

SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
AFFINE_TOLERANCE = 1e-6


def _itk_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in SUFFIXES)


_ROOT = find_shared_data()
SHARED_FILES = _itk_files(_ROOT) if _ROOT is not None else []


def sitk_affine(image: sitk.Image) -> np.ndarray:
    """(d+1)x(d+1) index -> physical matrix as SimpleITK reports it (direction x spacing, origin)."""
    d = image.GetDimension()
    affine = np.eye(d + 1)
    affine[:d, :d] = np.array(image.GetDirection()).reshape(d, d) * np.array(image.GetSpacing())[None, :]
    affine[:d, d] = image.GetOrigin()
    return affine


def header_affine(path: Path) -> tuple[np.ndarray, np.ndarray]:
    header = read_header(path)
    d = header.dimension
    affine = np.eye(d + 1)
    affine[:d, :d] = header.direction * np.array(header.spacing)[None, :]
    affine[:d, d] = header.origin
    return affine, header.read()


def assert_reads_like_sitk(path: Path) -> float:
    """Our image = SimpleITK's image of ``path`` (geometry within AFFINE_TOLERANCE, voxels identical); returns the
    largest affine difference. Grey-scale 2D-4D images are also compared through the loader's Volumes."""
    image = sitk.ReadImage(str(path))
    theirs = sitk.GetArrayFromImage(image)
    header = read_header(path)
    assert header.dimension == image.GetDimension()
    assert header.size == image.GetSize()
    assert header.components == image.GetNumberOfComponentsPerPixel()
    affine, ours = header_affine(path)
    difference = float(np.max(np.abs(affine - sitk_affine(image))))
    assert difference <= AFFINE_TOLERANCE, f"{path.name}: affine differs by {difference}"
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    if header.components == 1 and header.dimension in (2, 3, 4):
        loaded = load_itk_image(path)
        frames = [theirs] if header.dimension < 4 else list(theirs)
        assert len(loaded.volumes) == len(frames)
        d = min(header.dimension, 3)
        for volume, frame in zip(loaded.volumes, frames, strict=True):
            # the loader stores float64 compactly (as it did with SimpleITK's arrays)
            np.testing.assert_array_equal(volume.array, compact_array(frame).reshape(volume.array.shape))
            np.testing.assert_allclose(volume.affine[:d, :d], sitk_affine(image)[:d, :d], atol=AFFINE_TOLERANCE, rtol=0)
            np.testing.assert_allclose(volume.origin[:d], image.GetOrigin()[:d], atol=AFFINE_TOLERANCE, rtol=0)
    return difference


# ------------------------------------------------------------------------------------------ real files


def test_every_shared_nrrd_and_metaimage_file_is_compared(shared_data: Path) -> None:
    found = _itk_files(shared_data)
    assert len(found) >= 13
    assert found == SHARED_FILES


@pytest.mark.parametrize("relative", SHARED_FILES)
def test_shared_file_reads_exactly_as_simpleitk_reads_it(shared_data: Path, relative: str) -> None:
    assert assert_reads_like_sitk(shared_data / relative) == 0.0  # the same doubles, not just close ones


# ------------------------------------------------------------------------------------------ written by SimpleITK

OBLIQUE = Rotation.from_euler("xyz", [8.0, -13.0, 21.5], degrees=True).as_matrix()
DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64, np.float32, np.float64]


def _values(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -30000), min(info.max, 60000), shape, endpoint=True).astype(dtype)
    return (rng.standard_normal(shape) * 1e3).astype(dtype)


def _sitk_image(array: np.ndarray, vector: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=vector)
    d = image.GetDimension()
    image.SetSpacing([0.7, 1.3, 2.5, 1.0][:d])
    image.SetOrigin([-120.25, 33.5, -7.125, 0.0][:d])
    direction = np.eye(d)
    direction[: min(d, 3), : min(d, 3)] = (
        OBLIQUE[: min(d, 3), : min(d, 3)] if d >= 3 else np.array([[0.6, -0.8], [0.8, 0.6]])
    )
    image.SetDirection(direction.reshape(-1).tolist())
    return image


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_oblique_3d_files_written_by_simpleitk(tmp_path: Path, suffix: str, compress: bool, dtype: type) -> None:
    path = tmp_path / f"image{suffix}"
    sitk.WriteImage(_sitk_image(_values((5, 7, 9), dtype)), str(path), compress)
    assert assert_reads_like_sitk(path) <= 1e-12


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_2d_4d_and_vector_files_written_by_simpleitk(tmp_path: Path, suffix: str) -> None:
    flat = tmp_path / f"flat{suffix}"
    sitk.WriteImage(_sitk_image(_values((7, 9), np.int16)), str(flat), True)
    assert_reads_like_sitk(flat)
    frames = [_sitk_image(_values((4, 5, 6), np.int16, seed)) for seed in range(3)]
    series = tmp_path / f"series{suffix}"
    sitk.WriteImage(sitk.JoinSeries(frames), str(series), True)
    assert_reads_like_sitk(series)
    assert load_itk_image(series).info.n_volumes == 3
    vector = tmp_path / f"vector{suffix}"
    sitk.WriteImage(_sitk_image(_values((4, 5, 6, 3), np.float32), vector=True), str(vector), False)
    assert_reads_like_sitk(vector)
    with pytest.raises(errors.InputError, match="3 component"):
        scan_itk_image(vector)


def test_detached_and_external_data_files_written_by_simpleitk(tmp_path: Path) -> None:
    for name, data_name in (("raw.mhd", "raw.raw"), ("zipped.mhd", "zipped.zraw"), ("head.nhdr", "head.raw.gz")):
        path = tmp_path / name
        sitk.WriteImage(_sitk_image(_values((5, 6, 7), np.int16)), str(path), name != "raw.mhd")
        assert (tmp_path / data_name).is_file()
        assert_reads_like_sitk(path)
        assert scan_itk_image(path)[0].info.files == [str(path), str(tmp_path / data_name)]


# ------------------------------------------------------------------------------------------ hand-written headers

DATA = np.arange(2 * 3 * 4, dtype=np.int16).reshape(4, 3, 2) * 37 - 400  # [k, j, i]


def _nrrd(path: Path, fields: str, payload: bytes = b"", magic: str = "NRRD0004") -> Path:
    path.write_bytes(f"{magic}\n{fields}\n".encode() + payload)
    return path


def _mha(path: Path, fields: str, payload: bytes = b"") -> Path:
    path.write_bytes(fields.encode() + payload)
    return path


# oblique, perpendicular axes of 1.5, 2 and 3 mm
_LPS = (
    "space: left-posterior-superior\nspace directions: (0,1.2,0.9) (2,0,0) (0,-1.8,2.4)\nspace origin: (10,-20,30.5)\n"
)
_GEOMETRY_3D = "type: short\ndimension: 3\nsizes: 2 3 4\n"

NRRD_CASES: dict[str, Callable[[Path], Path]] = {
    "big_endian": lambda d: _nrrd(
        d / "a.nrrd", _GEOMETRY_3D + _LPS + "endian: big\nencoding: raw\n", DATA.astype(">i2").tobytes()
    ),
    "ascii": lambda d: _nrrd(
        d / "a.nrrd", _GEOMETRY_3D + _LPS + "encoding: ascii\n", " ".join(map(str, DATA.ravel())).encode() + b"\n"
    ),
    "text_float": lambda d: _nrrd(
        d / "a.nrrd", "type: float\ndimension: 2\nsizes: 3 2\nencoding: text\n", b"1 2.5 -3e2\n4.25 nan 6\n"
    ),
    "hex": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D + _LPS + "endian: little\nencoding: hex\n",
        DATA.astype("<i2").tobytes().hex().encode(),
    ),
    "gzip_two_members": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D + _LPS + "endian: little\nencoding: gz\n",
        gzip.compress(DATA.tobytes()[:20]) + gzip.compress(DATA.tobytes()[20:]),
    ),
    "gzip_byte_skip": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D + _LPS + "endian: little\nencoding: gzip\nbyte skip: 5\n",
        gzip.compress(b"12345" + DATA.tobytes()),
    ),
    "raw_data_at_end": lambda d: _nrrd(
        d / "a.nrrd", _GEOMETRY_3D + _LPS + "endian: little\nencoding: raw\nbyte skip: -1\n", b"junk" + DATA.tobytes()
    ),
    "crlf_and_comments": lambda d: (
        (d / "a.nrrd").write_bytes(
            ("NRRD0004\n# comment\n" + _GEOMETRY_3D + _LPS + "endian: little\nencoding: raw\nmy key:=my value\n\n")
            .replace("\n", "\r\n")
            .encode()
            + DATA.tobytes()
        )
        and d / "a.nrrd"
    ),
    "right_anterior_superior": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D
        + _LPS.replace("left-posterior-superior", "right-anterior-superior")
        + "endian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "left_anterior_superior": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D + _LPS.replace("left-posterior-superior", "LAS") + "endian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "scanner_xyz": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D + _LPS.replace("left-posterior-superior", "scanner-xyz") + "endian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "no_space_spacings_and_mins": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D
        + "spacings: 1.5 2.5 3.5\naxis mins: 1 2 3\ncenters: cell node ???\nendian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "no_space_maxs": lambda d: _nrrd(
        d / "a.nrrd",
        _GEOMETRY_3D + "axis mins: 1 2 3\naxis maxs: 4 8 16\ncenters: node cell cell\nendian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "no_space_nan_spacing": lambda d: _nrrd(
        d / "a.nrrd", _GEOMETRY_3D + "spacings: 1.5 NaN 3\nendian: little\nencoding: raw\n", DATA.tobytes()
    ),
    "space_dimension_2": lambda d: _nrrd(
        d / "a.nrrd",
        "type: short\ndimension: 2\nspace dimension: 2\nsizes: 4 6\nspace directions: (0.6,0.8) (-1.6,1.2)\n"
        "space origin: (10,20)\nendian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "list_axis_first": lambda d: _nrrd(
        d / "a.nrrd",
        "type: short\ndimension: 4\nsizes: 2 2 3 2\nkinds: list domain domain domain\n"
        + _LPS.replace("space directions: ", "space directions: none ")
        + "endian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "vector_axis_last": lambda d: _nrrd(
        d / "a.nrrd",
        "type: short\ndimension: 4\nsizes: 2 3 2 2\nkinds: space space space vector\n"
        + _LPS.replace("(0,-1.8,2.4)", "(0,-1.8,2.4) none")
        + "endian: little\nencoding: raw\n",
        DATA.tobytes(),
    ),
    "detached_header": lambda d: (
        (d / "a.raw").write_bytes(b"skip me\nand me\nXY" + DATA.tobytes())
        and _nrrd(
            d / "a.nhdr",
            _GEOMETRY_3D + _LPS + "endian: little\nencoding: raw\nline skip: 2\nbyte skip: 2\ndata file: a.raw\n",
        )
    ),
    "detached_list": lambda d: (
        [(d / f"s{n}.raw").write_bytes(DATA[n].tobytes()) for n in range(4)]
        and _nrrd(
            d / "a.nhdr",
            _GEOMETRY_3D + _LPS + "endian: little\nencoding: raw\ndata file: LIST\ns0.raw\ns1.raw\ns2.raw\ns3.raw",
        )
    ),
    "detached_pattern_gzip": lambda d: (
        [(d / f"p{n:02d}.gz").write_bytes(gzip.compress(DATA[n].tobytes())) for n in range(4)]
        and _nrrd(d / "a.nhdr", _GEOMETRY_3D + _LPS + "endian: little\nencoding: gzip\ndata file: p%02d.gz 0 3 1 2\n")
    ),
    "nrrd0001_int64": lambda d: _nrrd(
        d / "a.nrrd",
        "type: int64\ndimension: 3\nsizes: 2 3 4\nendian: little\nencoding: raw\n",
        DATA.astype("<i8").tobytes(),
        magic="NRRD0001",
    ),
}


@pytest.mark.parametrize("case", sorted(NRRD_CASES))
def test_nrrd_edge_cases_read_as_simpleitk_reads_them(tmp_path: Path, case: str) -> None:
    path = NRRD_CASES[case](tmp_path)
    assert_reads_like_sitk(path)


def _bzip2_nrrd(d: Path) -> Path:
    return _nrrd(d / "b.nrrd", _GEOMETRY_3D + _LPS + "endian: little\nencoding: bzip2\n", bz2.compress(DATA.tobytes()))


def test_bzip2_nrrd_reads_like_its_gzip_twin_in_simpleitk(tmp_path: Path) -> None:
    """SimpleITK's NrrdIO is built without bzip2 ("bzip2 encoding not available"); radlabel reads it, and the image
    equals the gzip-encoded twin as SimpleITK reads that."""
    twin = _nrrd(
        tmp_path / "g.nrrd", _GEOMETRY_3D + _LPS + "endian: little\nencoding: gzip\n", gzip.compress(DATA.tobytes())
    )
    assert_reads_like_sitk(twin)
    ours, voxels = header_affine(_bzip2_nrrd(tmp_path))
    np.testing.assert_array_equal(ours, sitk_affine(sitk.ReadImage(str(twin))))
    np.testing.assert_array_equal(voxels, DATA)


_MHA_3D = "ObjectType = Image\nNDims = 3\nDimSize = 2 3 4\n"
_MHA_GEOMETRY = "TransformMatrix = 0 0.6 0.8 1 0 0 0 0.8 -0.6\nOffset = 10 -20 30.5\nElementSpacing = 1.5 2 3\n"

MHA_CASES: dict[str, Callable[[Path], Path]] = {
    "big_endian": lambda d: _mha(
        d / "a.mha",
        _MHA_3D + _MHA_GEOMETRY + "BinaryDataByteOrderMSB = True\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        DATA.astype(">i2").tobytes(),
    ),
    "element_byte_order_msb": lambda d: _mha(
        d / "a.mha",
        _MHA_3D + "ElementByteOrderMSB = True\nElementType = MET_USHORT\nElementDataFile = LOCAL\n",
        DATA.astype(">u2").tobytes(),
    ),
    "ascii": lambda d: _mha(
        d / "a.mha",
        _MHA_3D + _MHA_GEOMETRY + "BinaryData = False\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n",
        " ".join(f"{v / 8}" for v in DATA.ravel()).encode() + b"\n",
    ),
    "compressed": lambda d: _mha(
        d / "a.mha",
        _MHA_3D
        + _MHA_GEOMETRY
        + f"CompressedData = True\nCompressedDataSize = {len(zlib.compress(DATA.tobytes()))}\n"
        + "ElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        zlib.compress(DATA.tobytes()),
    ),
    "rotation_position_element_size": lambda d: _mha(
        d / "a.mha",
        _MHA_3D + "Position = 7 8 9\nRotation = 0 0 1 1 0 0 0 1 0\nElementSize = 0.5 0.25 4\n"
        "ElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        DATA.tobytes(),
    ),
    "origin_wins_over_offset_and_position": lambda d: _mha(
        d / "a.mha",
        _MHA_3D + "Position = 7 8 9\nOrigin = 1 2 3\nOffset = 4 5 6\nOrientation = 0 1 0 1 0 0 0 0 1\n"
        "TransformMatrix = 0 0 1 0 1 0 1 0 0\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        DATA.tobytes(),
    ),
    "negative_spacing": lambda d: _mha(
        d / "a.mha",
        _MHA_3D + "ElementSpacing = -1 2 -3\nTransformMatrix = 0 1 0 1 0 0 0 0 1\n"
        "ElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        DATA.tobytes(),
    ),
    "colons_crlf_and_extra_keys": lambda d: _mha(
        d / "a.mha",
        (
            _MHA_3D + "Comment: a = b\nModality = MET_MOD_CT\nAnatomicalOrientation = LPI\nElementType: MET_CHAR\n"
        ).replace("\n", "\r\n")
        + "ElementDataFile = LOCAL\r\n",
        DATA.astype(np.int8).tobytes(),
    ),
    "header_size": lambda d: _mha(
        d / "a.mha",
        _MHA_3D + "HeaderSize = 200\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        b"",
    ),
    "header_size_minus_one": lambda d: (
        (d / "e.raw").write_bytes(b"some header" + DATA.tobytes())
        and _mha(d / "a.mhd", _MHA_3D + "HeaderSize = -1\nElementType = MET_SHORT\nElementDataFile = e.raw\n")
    ),
    "external_gz_fallback": lambda d: (
        (d / "z.raw.gz").write_bytes(zlib.compress(DATA.tobytes()))
        and _mha(d / "a.mhd", _MHA_3D + _MHA_GEOMETRY + "ElementType = MET_SHORT\nElementDataFile = z.raw\n")
    ),
    "list_2d": lambda d: (
        [(d / f"s{n}.raw").write_bytes(DATA[n].tobytes()) for n in range(4)]
        and _mha(
            d / "a.mhd",
            _MHA_3D + "ElementType = MET_SHORT\nElementDataFile = LIST 2D\ns0.raw\ns1.raw\ns2.raw\ns3.raw\n",
        )
    ),
    "pattern": lambda d: (
        [(d / f"slice{n:03d}.raw").write_bytes(DATA[n].tobytes()) for n in range(4)]
        and _mha(d / "a.mhd", _MHA_3D + "ElementType = MET_SHORT\nElementDataFile = slice%03d.raw 0 3 1\n")
    ),
    "channels": lambda d: _mha(
        d / "a.mha",
        "NDims = 3\nDimSize = 2 3 2\nElementNumberOfChannels = 2\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        DATA.tobytes(),
    ),
    "four_d": lambda d: _mha(
        d / "a.mha",
        "NDims = 4\nDimSize = 2 3 2 2\nElementSpacing = 1 2 3 4\nOffset = 1 2 3 4\n"
        "TransformMatrix = 0 1 0 0 1 0 0 0 0 0 1 0 0 0 0 1\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        DATA.tobytes(),
    ),
    "long_types": lambda d: _mha(
        d / "a.mha", _MHA_3D + "ElementType = MET_LONG\nElementDataFile = LOCAL\n", DATA.astype("<i4").tobytes()
    ),
}


def _pad_header_size(path: Path) -> None:
    """Fill the 'header_size' case up to byte 200, where its HeaderSize says the data start."""
    raw = path.read_bytes()
    path.write_bytes(raw + b"x" * (200 - len(raw)) + DATA.tobytes())


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_metaimage_edge_cases_read_as_simpleitk_reads_them(tmp_path: Path, case: str) -> None:
    path = MHA_CASES[case](tmp_path)
    if case == "header_size":
        _pad_header_size(path)
    assert_reads_like_sitk(path)


def test_metadata_description_and_modality(tmp_path: Path) -> None:
    path = MHA_CASES["colons_crlf_and_extra_keys"](tmp_path)
    info = scan_itk_image(path)[0].info
    assert info.modality == "CT"
    nrrd = _nrrd(
        tmp_path / "c.nrrd", "content: my scan\n" + _GEOMETRY_3D + "endian: little\nencoding: raw\n", DATA.tobytes()
    )
    loaded = load_itk_image(nrrd)
    assert loaded.info.description == "my scan"
    assert loaded.volume.metadata["stored_dtype"] == "int16"


# ------------------------------------------------------------------------------------------ deliberate differences


def test_time_variant_ras_space_is_converted_unlike_itk(tmp_path: Path) -> None:
    """ITK leaves 'right-anterior-superior-time' coordinates unconverted (the image lands mirrored through the
    S axis); the header's meaning is unambiguous, so radlabel converts them like the 3D RAS space."""
    fields = (
        "type: short\ndimension: 4\nspace: right-anterior-superior-time\nsizes: 2 3 2 2\n"
        "space directions: (1,0,0,0) (0,2,0,0) (0,0,3,0) (0,0,0,1)\nspace origin: (10,20,30,0)\n"
        "endian: little\nencoding: raw\n"
    )
    path = _nrrd(tmp_path / "rast.nrrd", fields, DATA.tobytes())
    ours, _ = header_affine(path)
    itk = sitk_affine(sitk.ReadImage(str(path)))
    mirror = np.diag([-1.0, -1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(ours, mirror @ itk)
    volume = load_itk_image(path).volumes[0]
    np.testing.assert_array_equal(volume.origin, [-10.0, -20.0, 30.0])
    assert volume.orientation == "RAS"


def test_compressed_local_data_without_size_are_read(tmp_path: Path) -> None:
    """ITK reads the wrong bytes when CompressedDataSize is missing in a .mha (it inflates from the file's start);
    radlabel inflates from the end of the header, where the data are."""
    payload = zlib.compress(DATA.tobytes())
    path = _mha(
        tmp_path / "a.mha",
        _MHA_3D + "CompressedData = True\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
        payload,
    )
    np.testing.assert_array_equal(load_itk_image(path).volume.array, DATA)


# ------------------------------------------------------------------------------------------ bad files


def _short(path: Path, cut: int) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - cut])
    return path


def _gzip_nrrd(d: Path) -> Path:
    data = np.arange(40 * 50 * 60, dtype=np.int16).reshape(40, 50, 60)
    return _nrrd(
        d / "bad.nrrd",
        "type: short\ndimension: 3\nsizes: 60 50 40\nendian: little\nencoding: gzip\n",
        gzip.compress(data.tobytes()),
    )


def _damage_middle(path: Path) -> Path:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    return path


BAD_CASES: dict[str, tuple[Callable[[Path], Path], type[errors.InputError], str]] = {
    "nrrd_truncated_raw": (
        lambda d: _short(NRRD_CASES["big_endian"](d), 5),
        errors.CorruptPixelDataError,
        "ends after 43 of 48 bytes",
    ),
    "nrrd_truncated_gzip": (lambda d: _short(_gzip_nrrd(d), 3000), errors.CorruptPixelDataError, "of 240000 bytes"),
    "nrrd_truncated_bzip2": (
        lambda d: _short(_bzip2_nrrd(d), 40),
        errors.CorruptPixelDataError,
        "ends after 0 of 48 bytes",
    ),
    "nrrd_damaged_gzip": (lambda d: _damage_middle(_gzip_nrrd(d)), errors.CorruptPixelDataError, "damaged|ends after"),
    "nrrd_truncated_ascii": (
        lambda d: _nrrd(d / "bad.nrrd", _GEOMETRY_3D + "encoding: ascii\n", b"1 2 3\n"),
        errors.CorruptPixelDataError,
        "3 of 24 values",
    ),
    "nrrd_ascii_not_numbers": (
        lambda d: _nrrd(d / "bad.nrrd", "type: float\ndimension: 2\nsizes: 3 1\nencoding: ascii\n", b"1 two 3\n"),
        errors.CorruptPixelDataError,
        "'two'",
    ),
    "nrrd_unknown_type": (
        lambda d: _nrrd(d / "bad.nrrd", "type: quaternion\ndimension: 3\nsizes: 2 3 4\nencoding: raw\n"),
        errors.UnsupportedFormatError,
        "type 'quaternion'",
    ),
    "nrrd_missing_sizes": (
        lambda d: _nrrd(d / "bad.nrrd", "type: short\ndimension: 3\nendian: little\nencoding: raw\n", DATA.tobytes()),
        errors.UnsupportedFormatError,
        "'sizes'",
    ),
    "nrrd_wrong_number_of_sizes": (
        lambda d: _nrrd(d / "bad.nrrd", "type: short\ndimension: 3\nsizes: 2 3\nendian: little\nencoding: raw\n"),
        errors.UnsupportedFormatError,
        "'sizes' has 2 value",
    ),
    "nrrd_negative_size": (
        lambda d: _nrrd(d / "bad.nrrd", "type: short\ndimension: 3\nsizes: 2 -3 4\nendian: little\nencoding: raw\n"),
        errors.InputError,
        "empty image",
    ),
    "nrrd_unknown_encoding": (
        lambda d: _nrrd(d / "bad.nrrd", _GEOMETRY_3D + "endian: little\nencoding: zstd\n"),
        errors.UnsupportedFormatError,
        "encoding 'zstd'",
    ),
    "nrrd_missing_endian": (
        lambda d: _nrrd(d / "bad.nrrd", _GEOMETRY_3D + "encoding: raw\n", DATA.tobytes()),
        errors.UnsupportedFormatError,
        "'endian'",
    ),
    "nrrd_unknown_field": (
        lambda d: _nrrd(d / "bad.nrrd", _GEOMETRY_3D + "colour: blue\nendian: little\nencoding: raw\n"),
        errors.UnsupportedFormatError,
        "unknown field 'colour'",
    ),
    "nrrd_directions_count": (
        lambda d: _nrrd(
            d / "bad.nrrd",
            _GEOMETRY_3D + "space: LPS\nspace directions: (1,0,0) (0,1,0)\nendian: little\nencoding: raw\n",
        ),
        errors.UnsupportedFormatError,
        "has 2 entries",
    ),
    "nrrd_short_direction_vector": (
        lambda d: _nrrd(
            d / "bad.nrrd",
            _GEOMETRY_3D + "space: LPS\nspace directions: (1,0) (0,1,0) (0,0,1)\nendian: little\nencoding: raw\n",
        ),
        errors.UnsupportedFormatError,
        "vector of 3 numbers",
    ),
    "nrrd_zero_direction": (
        lambda d: _nrrd(
            d / "bad.nrrd",
            _GEOMETRY_3D + "space: LPS\nspace directions: (0,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: raw\n",
        ),
        errors.InputError,
        "zero or invalid length",
    ),
    "nrrd_time_axis_in_3d_space": (
        lambda d: _nrrd(
            d / "bad.nrrd",
            "type: short\ndimension: 4\nspace: LPS\nsizes: 2 3 2 2\nkinds: space space space time\n"
            "space directions: (1,0,0) (0,1,0) (0,0,1) none\nendian: little\nencoding: raw\n",
        ),
        errors.InputError,
        "4 image axes in a 3D space",
    ),
    "nrrd_two_component_axes": (
        lambda d: _nrrd(
            d / "bad.nrrd",
            "type: short\ndimension: 3\nsizes: 2 3 4\nkinds: list vector domain\nendian: little\nencoding: raw\n",
        ),
        errors.InputError,
        "2 non-spatial axes",
    ),
    "nrrd_missing_data_file": (
        lambda d: _nrrd(d / "bad.nhdr", _GEOMETRY_3D + "endian: little\nencoding: raw\ndata file: gone.raw\n"),
        errors.UnreadablePathError,
        "gone.raw",
    ),
    "nrrd_short_data_file": (
        lambda d: (
            (d / "short.raw").write_bytes(DATA.tobytes()[:30])
            and _nrrd(d / "bad.nhdr", _GEOMETRY_3D + "endian: little\nencoding: raw\ndata file: short.raw\n")
        ),
        errors.CorruptPixelDataError,
        "voxel data file short.raw ends after 30 of 48 bytes",
    ),
    "nrrd_header_only": (
        lambda d: _nrrd(d / "bad.nrrd", _GEOMETRY_3D + "endian: little\nencoding: raw"),
        errors.CorruptPixelDataError,
        "ends after 0 of 48",
    ),
    "nrrd_garbage": (
        lambda d: (d / "bad.nrrd").write_bytes(bytes(range(256)) * 4) and d / "bad.nrrd",
        errors.UnsupportedFormatError,
        "not a NRRD file",
    ),
    "nrrd_empty_file": (
        lambda d: (d / "bad.nrrd").write_bytes(b"") or d / "bad.nrrd",
        errors.UnsupportedFormatError,
        "not a NRRD file",
    ),
    "nrrd_block_type": (
        lambda d: _nrrd(d / "bad.nrrd", "type: block\nblock size: 4\ndimension: 1\nsizes: 2\nencoding: raw\n"),
        errors.InputError,
        "block",
    ),
    "nrrd_gzip_claims_a_huge_image": (
        lambda d: _nrrd(
            d / "bad.nrrd",
            "type: short\ndimension: 3\nsizes: 1000 1000 1000\nendian: little\nencoding: gzip\n",
            gzip.compress(DATA.tobytes()),
        ),
        errors.CorruptPixelDataError,
        "ends after 48 of 2000000000 bytes",
    ),
    "nrrd_raw_claims_a_huge_image": (
        lambda d: _nrrd(
            d / "bad.nrrd",
            "type: short\ndimension: 3\nsizes: 1000 1000 1000\nendian: little\nencoding: raw\n",
            DATA.tobytes(),
        ),
        errors.CorruptPixelDataError,
        "ends after 48 of 2000000000 bytes",
    ),
    "mha_missing_ndims": (
        lambda d: _mha(
            d / "bad.mha", "DimSize = 2 3 4\nElementType = MET_SHORT\nElementDataFile = LOCAL\n", DATA.tobytes()
        ),
        errors.UnsupportedFormatError,
        "NDims",
    ),
    "mha_missing_element_type": (
        lambda d: _mha(d / "bad.mha", _MHA_3D + "ElementDataFile = LOCAL\n", DATA.tobytes()),
        errors.UnsupportedFormatError,
        "ElementType",
    ),
    "mha_missing_data_file_key": (
        lambda d: _mha(d / "bad.mha", _MHA_3D + "ElementType = MET_SHORT\n"),
        errors.UnsupportedFormatError,
        "ElementDataFile",
    ),
    "mha_short_dim_size": (
        lambda d: _mha(d / "bad.mha", "NDims = 3\nDimSize = 2 3\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"),
        errors.UnsupportedFormatError,
        "DimSize has 2 value",
    ),
    "mha_unknown_type": (
        lambda d: _mha(d / "bad.mha", _MHA_3D + "ElementType = MET_COMPLEX\nElementDataFile = LOCAL\n"),
        errors.UnsupportedFormatError,
        "MET_COMPLEX",
    ),
    "mha_zero_spacing": (
        lambda d: _mha(
            d / "bad.mha", _MHA_3D + "ElementSpacing = 1 0 1\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
        ),
        errors.InputError,
        "zero voxel size",
    ),
    "mha_truncated_raw": (
        lambda d: _short(MHA_CASES["big_endian"](d), 8),
        errors.CorruptPixelDataError,
        "ends after 40 of 48 bytes",
    ),
    "mha_truncated_compressed": (
        lambda d: _short(MHA_CASES["compressed"](d), 6),
        errors.CorruptPixelDataError,
        "ends after|damaged",
    ),
    "mha_damaged_compressed": (
        lambda d: _mha(
            d / "bad.mha",
            _MHA_3D + "CompressedData = True\nElementType = MET_SHORT\nElementDataFile = LOCAL\n",
            b"x\x9c" + bytes(range(200)),
        ),
        errors.CorruptPixelDataError,
        "damaged",
    ),
    "mha_missing_external_file": (
        lambda d: _mha(d / "bad.mhd", _MHA_3D + "ElementType = MET_SHORT\nElementDataFile = nothere.raw\n"),
        errors.UnreadablePathError,
        "nothere.raw",
    ),
    "mha_list_too_short": (
        lambda d: _mha(d / "bad.mhd", _MHA_3D + "ElementType = MET_SHORT\nElementDataFile = LIST\na.raw\n"),
        errors.UnsupportedFormatError,
        "names 1 file",
    ),
    "mha_text_file": (
        lambda d: (d / "bad.mha").write_text("hello, this is not an image\n") and d / "bad.mha",
        errors.UnsupportedFormatError,
        "not a MetaImage",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_raise_one_line_typed_errors_naming_the_file(tmp_path: Path, case: str) -> None:
    make, error, fragment = BAD_CASES[case]
    path = make(tmp_path)
    with pytest.raises(error, match=fragment) as caught:
        load_itk_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.parametrize("source", ["nrrd_gzip", "nrrd_raw", "mha_zlib", "mha_raw"])
def test_damaged_variants_never_crash(tmp_path: Path, source: str) -> None:
    """Cut or flip bytes anywhere (header or data): either the file still reads or an InputError says why."""
    volume = Volume(DATA, origin=(1, 2, 3), spacing=(0.5, 0.7, 2), direction=OBLIQUE)
    original = tmp_path / ("good.nrrd" if source.startswith("nrrd") else "good.mha")
    save_volume(volume, original)
    if source.endswith("raw"):  # a raw variant of the same header
        if source.startswith("nrrd"):
            raw = original.read_bytes().split(b"\n\n", 1)[0].replace(b"encoding: gzip", b"encoding: raw")
            original.write_bytes(raw + b"\n\n" + DATA.tobytes())
        else:
            head = original.read_bytes().split(b"ElementDataFile = LOCAL\n", 1)[0]
            head = head.replace(b"CompressedData = True", b"CompressedData = False")
            original.write_bytes(head + b"ElementDataFile = LOCAL\n" + DATA.tobytes())
    data = original.read_bytes()
    rng = np.random.default_rng(11)
    variant = tmp_path / original.name.replace("good", "variant")
    outcomes = {"read": 0, "refused": 0}
    for n in range(150):
        mutated = bytearray(data)
        if n % 3 == 0:
            mutated = mutated[: int(rng.integers(0, len(mutated)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                mutated[int(rng.integers(0, len(mutated)))] = int(rng.integers(0, 256))
        variant.write_bytes(bytes(mutated))
        try:
            load_itk_image(variant)
            outcomes["read"] += 1
        except errors.InputError as exc:
            assert str(exc).startswith(str(variant)) and "\n" not in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and outcomes["read"] > 0


# ------------------------------------------------------------------------------------------ writers


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", [*DTYPES, np.bool_])
def test_written_files_read_back_in_simpleitk_with_the_same_geometry(tmp_path: Path, suffix: str, dtype: type) -> None:
    array = _values((6, 7, 8), np.uint8) % 2 == 1 if dtype == np.bool_ else _values((6, 7, 8), dtype)
    volume = Volume(array, origin=(-41.25, 17.5, 103.125), spacing=(0.72, 0.95, 2.6), direction=OBLIQUE)
    path = save_volume(volume, tmp_path / f"out{suffix}")
    image = sitk.ReadImage(str(path))
    assert image.GetSize() == volume.size
    np.testing.assert_allclose(sitk_affine(image), volume.affine, atol=1e-12, rtol=0)
    stored = sitk.GetArrayFromImage(image)
    expected = array.astype(np.uint8) if dtype == np.bool_ else array
    assert stored.dtype == expected.dtype
    np.testing.assert_array_equal(stored, expected)
    assert_reads_like_sitk(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_written_4d_files_read_back_in_simpleitk(tmp_path: Path, suffix: str) -> None:
    frames = [Volume(_values((4, 5, 6), np.int16, s), (1, 2, 3), (0.5, 0.6, 2.0), OBLIQUE) for s in range(3)]
    path = save_volumes(frames, tmp_path / f"four{suffix}")
    image = sitk.ReadImage(str(path))
    assert image.GetDimension() == 4 and image.GetSize() == (6, 5, 4, 3)
    np.testing.assert_allclose(sitk_affine(image)[:3, :3], frames[0].affine[:3, :3], atol=1e-12, rtol=0)
    np.testing.assert_allclose(image.GetOrigin(), (1, 2, 3, 0), atol=1e-12, rtol=0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), np.stack([f.array for f in frames]))
    assert_reads_like_sitk(path)


def test_writers_store_every_double_exactly(tmp_path: Path) -> None:
    """17 significant digits: a grid read back is the grid written, bit for bit (NRRD keeps spacing x direction,
    so its split into spacing and direction may move the last bit, as ITK's does)."""
    direction = Rotation.from_euler("xyz", [0.1, 33.3, -71.7], degrees=True).as_matrix()
    origin = (np.pi * 100, -np.e * 10, 1 / 3)
    spacing = (0.1 + 0.2, 2 / 3, np.sqrt(2))
    arrays = [_values((2, 3, 4), np.float32)]
    mha = tmp_path / "x.mha"
    write_metaimage(mha, arrays, origin, spacing, direction)
    header = read_header(mha)
    assert header.origin == tuple(float(v) for v in origin)
    assert header.spacing == tuple(float(v) for v in spacing)
    np.testing.assert_array_equal(header.direction, direction)
    nrrd = tmp_path / "x.nrrd"
    write_nrrd(nrrd, arrays, origin, spacing, direction)
    header = read_header(nrrd)
    assert header.origin == tuple(float(v) for v in origin)
    np.testing.assert_allclose(
        header.direction * np.array(header.spacing), direction * np.array(spacing), atol=0, rtol=1e-15
    )
