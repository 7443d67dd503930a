"""MetaImage (``.mha``, ``.mhd``) headers and files, read and written as ITK's MetaImageIO (MetaIO) does.

Reading (:func:`read_metaimage_header`) follows MetaIO's rules, checked against SimpleITK 2.5
(``tests/core/test_nrrd_metaimage.py``):

- ``Key = Value`` (or ``Key: Value``) lines, keys case-sensitive, up to ``ElementDataFile``; ``NDims``,
  ``DimSize``, ``ElementType`` and ``ElementDataFile`` are required. Unknown keys are kept as metadata.
- origin: ``Origin``, else ``Offset``, else ``Position`` (MetaIO reads all three and the later wins in that
  order); direction: ``TransformMatrix``, else ``Rotation``, else ``Orientation``, as NDims x NDims values of
  which each group of NDims is one axis' direction (ITK's column); ``AnatomicalOrientation`` is ignored for
  geometry, as ITK ignores it. Spacing: ``ElementSpacing``, else ``ElementSize``, else 1. A negative spacing
  is a reversed axis: the spacing is made positive and the direction column flipped, which keeps ITK's
  index-to-world map.
- ``BinaryDataByteOrderMSB`` (or the older ``ElementByteOrderMSB``; the former wins), ``BinaryData = False``
  (text values), ``CompressedData`` (zlib; ``CompressedDataSize`` or the rest of the file),
  ``ElementNumberOfChannels`` (components), ``HeaderSize`` (data offset; -1: the data end the file).
- ``ElementDataFile``: ``LOCAL`` (after the header), a file (relative to the header; ``.gz``/``.Z`` tried as
  MetaIO does, meaning compressed), ``LIST [nD]`` followed by one file per slab, or a ``%d`` pattern with
  ``min max step``.

Writing (:func:`write_metaimage`) produces ITK's layout: binary, little endian, zlib-compressed with
``CompressedDataSize``, ``TransformMatrix``/``Offset``/``ElementSpacing`` with 17 significant digits, data in
the ``.mha`` (``ElementDataFile = LOCAL``) or in a ``.zraw`` file beside a ``.mhd``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radlabel.core.errors import InputError, UnsupportedFormatError
from radlabel.core.io.voxel_files import (
    DataPiece,
    Encoding,
    ImageHeader,
    check_dimensions,
    compressed_blocks,
    header_numbers,
)

FORMAT = "MetaImage"
_MAX_HEADER_BYTES = 16 << 20

#: MetaIO element types -> numpy (MET_LONG/MET_ULONG are 4 bytes in MetaIO, whatever the platform's long).
_TYPES = {
    "MET_ASCII_CHAR": "i1",
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i4",
    "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}
# MET_<type>_ARRAY is the same element type (ITK makes a vector pixel of ElementNumberOfChannels of them)
_TYPES.update({f"{name}_ARRAY": code for name, code in list(_TYPES.items()) if name != "MET_ASCII_CHAR"})
_WRITE_TYPES = {"i1": "MET_CHAR", "u1": "MET_UCHAR", "i2": "MET_SHORT", "u2": "MET_USHORT", "i4": "MET_INT"}
_WRITE_TYPES.update({"u4": "MET_UINT", "i8": "MET_LONG_LONG", "u8": "MET_ULONG_LONG", "f4": "MET_FLOAT"})
_WRITE_TYPES["f8"] = "MET_DOUBLE"

MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}


def _true(value: str) -> bool:
    """MetaIO's boolean: the first character is T, t or 1."""
    return value[:1] in ("T", "t", "1")


def _header(path: Path) -> tuple[dict[str, str], int]:
    """Header fields (in file order) and the byte offset just after the ``ElementDataFile`` line."""
    with open(path, "rb") as f:
        raw = f.read(1 << 16)
        while b"ElementDataFile" not in raw or raw.find(b"\n", raw.find(b"ElementDataFile")) == -1:
            more = f.read(1 << 20)
            if not more or len(raw) > _MAX_HEADER_BYTES:
                break
            raw += more
    fields: dict[str, str] = {}
    position = 0
    while position < len(raw):
        end = raw.find(b"\n", position)
        if end == -1:
            end = len(raw)
        line = raw[position:end]
        position = end + 1
        text = line.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        match = re.match(r"([^=:]*?)\s*[=:]\s*(.*)$", text)
        if not match or not match.group(1):
            break  # not a header line: the header is damaged (or this is not a MetaImage); judged below
        key, value = match.group(1), match.group(2).rstrip()
        fields[key] = value
        if key == "ElementDataFile":
            return fields, min(position, len(raw))
    if "NDims" not in fields:
        raise UnsupportedFormatError(
            "not a MetaImage file, or its header is damaged (expected 'Key = Value' lines with NDims, DimSize and "
            "ElementType)",
            path,
        )
    raise UnsupportedFormatError("the MetaImage header has no 'ElementDataFile' line (where the voxels are)", path)


def _numbers(fields: dict[str, str], key: str, count: int, path: Path, integer: bool = False) -> list[float] | None:
    if key not in fields:
        return None
    words = fields[key].split()
    if len(words) < count:
        raise UnsupportedFormatError(f"the MetaImage field {key} has {len(words)} value(s), {count} needed", path)
    # MetaIO reads exactly `count` values and ignores the rest of the line
    return header_numbers(words[:count], f"the MetaImage field {key}", path, integer)


def _first(fields: dict[str, str], keys: Sequence[str], count: int, path: Path) -> list[float] | None:
    """The value of the first key present (the one MetaIO applies last)."""
    for key in keys:
        values = _numbers(fields, key, count, path)
        if values is not None:
            return values
    return None


def _listed_names(path: Path, offset: int) -> list[str]:
    """The file names on the lines after ``ElementDataFile = LIST``."""
    with open(path, "rb") as f:
        f.seek(offset)
        text = f.read(_MAX_HEADER_BYTES).decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _data_pieces(
    fields: dict[str, str], path: Path, data_offset: int, dims: list[int], elements_per_voxel: int
) -> list[DataPiece]:
    """Where the voxels are. A data file that does not exist stays in the list (the caller names it)."""
    compressed = _true(fields.get("CompressedData", "False"))
    binary = _true(fields.get("BinaryData", "True"))
    header_size = int((_numbers(fields, "HeaderSize", 1, path, integer=True) or [0])[0])
    compressed_size = _numbers(fields, "CompressedDataSize", 1, path, integer=True)
    total = int(np.prod(dims, dtype=np.int64)) * elements_per_voxel
    spec = fields["ElementDataFile"]

    def piece(file: Path, offset: int, elements: int, zipped: bool) -> DataPiece:
        encoding: Encoding = "zlib" if (zipped and binary) else ("raw" if binary else "ascii")
        if header_size > 0:
            offset = header_size  # from the start of the file holding the data (MetaIO seeks from the beginning)
        skip = -1 if header_size == -1 else 0
        if skip == -1 and encoding != "raw":
            raise UnsupportedFormatError(
                "HeaderSize = -1 (data at the end of the file) needs uncompressed binary data", path
            )
        size = int(compressed_size[0]) if (compressed_size and encoding == "zlib" and compressed_size[0] > 0) else None
        return DataPiece(file, offset, encoding, elements, byte_skip=skip, compressed_size=size)

    def resolve(name: str) -> Path:
        file = Path(name).expanduser()
        return file if file.is_absolute() else path.parent / file

    if spec.upper() == "LOCAL":
        return [piece(path, data_offset, total, compressed)]
    words = spec.split()
    if words and words[0] == "LIST":
        file_dims = len(dims) - 1
        if len(words) > 1:
            number = re.match(r"\d+", words[1])
            file_dims = int(number.group(0)) if number else 0
        if file_dims == 0 or file_dims > len(dims):
            file_dims = len(dims) - 1
        count = int(np.prod(dims[file_dims:], dtype=np.int64))
        names = _listed_names(path, data_offset)[:count]
        if len(names) < count:
            raise UnsupportedFormatError(
                f"ElementDataFile = LIST names {len(names)} file(s), the image needs {count}", path
            )
        files = [resolve(n) for n in names]
        per_file = total // count
        return [piece(f, 0, per_file, compressed) for f in files]
    if "%" in spec:
        numbers = [w for w in words[1:] if re.fullmatch(r"-?\d+(\.\d*)?", w)]
        pattern = " ".join(words[: len(words) - len(numbers)]) if numbers else spec
        last_dim = dims[-1]
        first, step = 1, 1
        last = last_dim
        if len(numbers) >= 1:
            first = int(float(numbers[0]))
            last = first + last_dim - 1
        if len(numbers) >= 2:
            last = int(float(numbers[1]))
            step = (last - first) // last_dim or 1
        if len(numbers) >= 3:
            step = int(float(numbers[2]))
        if step <= 0:
            raise UnsupportedFormatError(f"the ElementDataFile pattern '{spec}' has a step of {step}", path)
        try:
            names = [pattern % n for n in range(first, last + 1, step)][:last_dim]
        except (TypeError, ValueError):
            raise UnsupportedFormatError(f"the ElementDataFile pattern '{pattern}' is not a %d pattern", path) from None
        if len(names) < last_dim:
            raise UnsupportedFormatError(
                f"the ElementDataFile pattern '{spec}' names {len(names)} file(s), the image needs {last_dim}", path
            )
        files = [resolve(n) for n in names]
        per_file = total // last_dim
        return [piece(f, 0, per_file, compressed) for f in files]
    file = resolve(spec)
    zipped = compressed
    if not file.is_file():
        # MetaIO falls back to the name + .gz / .Z and then takes the data as compressed
        for extension in (".gz", ".Z"):
            candidate = file.with_name(file.name + extension)
            if candidate.is_file():
                file, zipped = candidate, True
                break
    return [piece(file, 0, total, zipped)]


def read_metaimage_header(path: str | Path) -> ImageHeader:
    """Parse a MetaImage header into the image ITK would make of it (no voxel data read).

    Raises :class:`UnsupportedFormatError` for files that are not MetaImage or whose header is damaged (missing
    required keys, wrong counts, unknown element type), :class:`InputError` for images ITK cannot represent. A
    data file that does not exist is left in ``pieces`` (:attr:`ImageHeader.data_files`) for the caller to name.
    """
    path = Path(path)
    fields, data_offset = _header(path)
    for required in ("NDims", "DimSize", "ElementType"):
        if required not in fields:
            raise UnsupportedFormatError(f"the MetaImage header lacks the required field {required}", path)
    ndims = int((_numbers(fields, "NDims", 1, path, integer=True) or [0])[0])
    if not 1 <= ndims <= 10:
        raise UnsupportedFormatError(f"the MetaImage NDims {ndims} is not between 1 and 10", path)
    dims = [int(v) for v in _numbers(fields, "DimSize", ndims, path, integer=True) or []]
    element_type = fields["ElementType"]
    if element_type not in _TYPES:
        raise UnsupportedFormatError(
            f"the MetaImage ElementType '{element_type}' is not a numeric voxel type (MET_UCHAR, MET_SHORT, "
            "MET_FLOAT, ...)",
            path,
        )
    dtype = np.dtype(_TYPES[element_type])
    channels = int((_numbers(fields, "ElementNumberOfChannels", 1, path, integer=True) or [1])[0])
    if channels < 1:
        raise UnsupportedFormatError(f"the MetaImage ElementNumberOfChannels is {channels}", path)

    spacing = np.array(_first(fields, ("ElementSpacing", "ElementSize"), ndims, path) or [1.0] * ndims)
    origin = np.array(_first(fields, ("Origin", "Offset", "Position"), ndims, path) or [0.0] * ndims)
    matrix = _first(fields, ("TransformMatrix", "Rotation", "Orientation"), ndims * ndims, path)
    # MetaIO stores the matrix row by row and ITK takes row a as the direction of axis a (a column of its matrix)
    direction = np.array(matrix, float).reshape(ndims, ndims).T if matrix else np.eye(ndims)
    if not (np.all(np.isfinite(spacing)) and np.all(np.isfinite(origin)) and np.all(np.isfinite(direction))):
        raise InputError("the MetaImage header gives a spacing, offset or matrix that is not a finite number", path)
    if np.any(spacing == 0):
        raise InputError(f"the header gives a zero voxel size {spacing.tolist()}", path)
    flipped = spacing < 0
    direction[:, flipped] *= -1.0
    spacing = np.abs(spacing)

    check_dimensions(tuple(dims), channels, dtype, path)
    msb = _true(fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")))
    pieces = _data_pieces(fields, path, data_offset, dims, channels)
    return ImageHeader(
        path=path,
        format=FORMAT,
        dimension=ndims,
        size=tuple(dims),
        components=channels,
        dtype=dtype,
        spacing=tuple(float(v) for v in spacing),
        origin=tuple(float(v) for v in origin),
        direction=direction,
        byte_order=">" if msb else "<",
        pieces=pieces,
        fields=dict(fields),
    )


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    text = f"{float(value):.17g}"
    return "0" if text == "-0" else text


def _orientation_code(direction: NDArray[np.float64]) -> str:
    """MetaIO's AnatomicalOrientation for an LPS direction matrix: per axis, the side it starts from (ITK writes
    ``RAI`` for the identity), from the closest world axis. Informational only; readers use the matrix."""
    start = {(0, 1): "R", (0, -1): "L", (1, 1): "A", (1, -1): "P", (2, 1): "I", (2, -1): "S"}
    letters = []
    for column in range(3):
        world = int(np.argmax(np.abs(direction[:, column])))
        letters.append(start[(world, 1 if direction[world, column] > 0 else -1)])
    return "".join(letters)


def write_metaimage(
    path: str | Path,
    arrays: Sequence[NDArray[Any]],
    origin: ArrayLike,
    spacing: ArrayLike,
    direction: ArrayLike,
    *,
    compression_level: int = 2,
    progress: Callable[[float], None] | None = None,
) -> list[Path]:
    """Write ``arrays`` (each ``[k, j, i]``, one dtype) on one LPS grid as ITK does; several arrays make a 4D image
    (4th axis: spacing 1, offset 0). A ``.mhd`` name puts the data in ``<stem>.zraw`` beside it. Returns the files
    written."""
    path = Path(path)
    arrays = list(arrays)
    k, j, i = arrays[0].shape
    element_type = _WRITE_TYPES[arrays[0].dtype.newbyteorder("=").str[1:]]
    four = len(arrays) > 1
    ndims = 4 if four else 3
    matrix = np.eye(ndims)
    matrix[:3, :3] = np.asarray(direction, float)
    offset = [*np.asarray(origin, float), 0.0][:ndims]
    spacings = [*np.asarray(spacing, float), 1.0][:ndims]
    sizes = [i, j, k, len(arrays)][:ndims]
    blocks = list(compressed_blocks(arrays, 15, compression_level, progress))
    compressed_size = sum(len(b) for b in blocks)
    detached = path.suffix.lower() == ".mhd"
    data_path = path.with_suffix(".zraw") if detached else path
    lines = [
        "ObjectType = Image",
        f"NDims = {ndims}",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = True",
        f"CompressedDataSize = {compressed_size}",
        # row a of MetaIO's matrix is axis a's direction (ITK's column a)
        "TransformMatrix = " + " ".join(_number(v) for v in matrix.T.reshape(-1)),
        "Offset = " + " ".join(_number(v) for v in offset),
        "CenterOfRotation = " + " ".join(["0"] * ndims),
    ]
    if not four:
        lines.append(f"AnatomicalOrientation = {_orientation_code(matrix)}")
    lines += [
        "ElementSpacing = " + " ".join(_number(v) for v in spacings),
        "DimSize = " + " ".join(str(s) for s in sizes),
        f"ElementType = {element_type}",
        f"ElementDataFile = {data_path.name if detached else 'LOCAL'}",
    ]
    header = ("\n".join(lines) + "\n").encode("ascii")
    with open(data_path, "wb") as data:
        if not detached:
            data.write(header)
        for block in blocks:
            data.write(block)
    if detached:
        path.write_bytes(header)
        return [path, data_path]
    return [path]


__all__ = ["FORMAT", "MODALITIES", "read_metaimage_header", "write_metaimage"]
