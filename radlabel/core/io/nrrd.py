"""NRRD (``.nrrd``, ``.nhdr``) headers and files, read and written as ITK's NrrdImageIO (teem) does.

Reading (:func:`read_nrrd_header`) follows the NRRD format (teem's reader) and ITK's interpretation of it, which
SimpleITK 2.5 was checked against field by field (``tests/core/test_nrrd_metaimage.py``):

- axes whose kind is ``domain``, ``space``, ``time`` or unknown (``???``/``none``/absent) are image axes; at most
  one other axis (``list``, ``vector``, ``RGB-color``, ...) is the pixel's components, moved to be the fastest
  axis as ITK does. A ``space`` (or ``space dimension``) must match the number of image axes, so a 4D file is
  either ``space dimension: 4`` (what ITK writes) or has no space at all; ITK refuses other combinations and so
  does this reader, with a message saying why.
- spacing = length of the axis' space direction, direction = the unit vector; without a space, ``spacings``
  (NaN -> 1). Origin = ``space origin``; without a space, teem's cell-centred origin from ``axis mins``.
- ``right-anterior-superior`` and ``left-anterior-superior`` coordinates are converted to LPS, as ITK does. ITK
  leaves the 4D ``...-time`` variants unconverted, which puts such an image in the mirror position; this reader
  converts their three spatial coordinates too, because the header's meaning is unambiguous. Spaces that are not
  tied to the patient (``scanner-xyz``, ``3D-right-handed``) are taken as LPS, as ITK does, with a warning.
- data inline after the blank line or in ``data file``\\ (s): one name, ``LIST`` of names, or a ``%d`` pattern;
  ``line skip`` / ``byte skip`` (``-1``: data at the end of a raw file); encodings raw, ascii/text, hex, gzip,
  bzip2; little/big endian.

Writing (:func:`write_nrrd`) produces what ITK writes: 3D in ``left-posterior-superior`` space, 4D with
``space dimension: 4`` (4th axis: spacing 1, origin 0), gzip-compressed little-endian data, inline (``.nrrd``)
or in a ``.raw.gz`` file beside a ``.nhdr`` header, numbers with 17 significant digits (exact round trip).
"""

from __future__ import annotations

import math
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

FORMAT = "NRRD"
_MAGIC = re.compile(rb"NRRD000[1-5]")
_MAX_HEADER_BYTES = 64 << 20

#: teem's type names (``nrrdType``) -> numpy element type.
_TYPES: dict[str, str] = {}
for _names, _dtype in (
    (("signed char", "int8", "int8_t"), "i1"),
    (("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    (("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    (("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    (("int", "signed int", "int32", "int32_t"), "i4"),
    (("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    (
        ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"),
        "i8",
    ),
    (("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    (("float",), "f4"),
    (("double",), "f8"),
):
    for _name in _names:
        _TYPES[_name] = _dtype
_WRITE_TYPES = {"i1": "int8", "u1": "uint8", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint"}
_WRITE_TYPES.update({"i8": "int64", "u8": "uint64", "f4": "float", "f8": "double"})

_ENCODINGS: dict[str, Encoding] = {
    "raw": "raw",
    "txt": "ascii",
    "text": "ascii",
    "ascii": "ascii",
    "hex": "hex",
    "gz": "gzip",
    "gzip": "gzip",
    "bz2": "bzip2",
    "bzip2": "bzip2",
}

#: teem's space names (and abbreviations), normalised by `_norm`, -> (canonical name, dimension, flip of x/y to LPS,
#: tied to the patient).
_SPACES: dict[str, tuple[str, int, tuple[float, float], bool]] = {}
for _canonical, _short, _dim, _flip, _anatomical in (
    ("right-anterior-superior", "ras", 3, (-1.0, -1.0), True),
    ("left-anterior-superior", "las", 3, (1.0, -1.0), True),
    ("left-posterior-superior", "lps", 3, (1.0, 1.0), True),
    ("right-anterior-superior-time", "rast", 4, (-1.0, -1.0), True),
    ("left-anterior-superior-time", "last", 4, (1.0, -1.0), True),
    ("left-posterior-superior-time", "lpst", 4, (1.0, 1.0), True),
    ("scanner-xyz", "", 3, (1.0, 1.0), False),
    ("scanner-xyz-time", "", 4, (1.0, 1.0), False),
    ("3D-right-handed", "", 3, (1.0, 1.0), False),
    ("3D-left-handed", "", 3, (1.0, 1.0), False),
    ("3D-right-handed-time", "", 4, (1.0, 1.0), False),
    ("3D-left-handed-time", "", 4, (1.0, 1.0), False),
):
    for _key in (_canonical, _short):
        if _key:
            _SPACES[re.sub(r"[\s_-]", "", _key.lower())] = (_canonical, _dim, _flip, _anatomical)

#: teem's axis kinds; image ("domain") kinds and unknown count as image axes, all others are components.
_DOMAIN_KINDS = {"domain", "space", "time"}
_UNKNOWN_KINDS = {"???", "none", ""}
_RANGE_KINDS = {
    k.lower()
    for k in (
        "list",
        "point",
        "vector",
        "covariant-vector",
        "normal",
        "stub",
        "scalar",
        "complex",
        "2-vector",
        "3-color",
        "RGB-color",
        "HSV-color",
        "XYZ-color",
        "4-color",
        "RGBA-color",
        "3-vector",
        "3-gradient",
        "3-normal",
        "4-vector",
        "quaternion",
        "2D-symmetric-matrix",
        "2D-masked-symmetric-matrix",
        "2D-matrix",
        "2D-masked-matrix",
        "3D-symmetric-matrix",
        "3D-masked-symmetric-matrix",
        "3D-matrix",
        "3D-masked-matrix",
    )
}

#: Field spellings teem accepts -> the name used here (lower case, single spaces).
_FIELD_ALIASES = {
    "centerings": "centers",
    "lineskip": "line skip",
    "byteskip": "byte skip",
    "datafile": "data file",
    "blocksize": "block size",
    "axismins": "axis mins",
    "axismaxs": "axis maxs",
    "oldmin": "old min",
    "oldmax": "old max",
    "spacedimension": "space dimension",
    "spaceunits": "space units",
    "spaceorigin": "space origin",
    "spacedirections": "space directions",
    "measurementframe": "measurement frame",
    "sampleunits": "sample units",
}


#: Every field teem knows (ITK refuses a header with any other ``name: value`` line).
_FIELDS = {
    "content",
    "number",
    "type",
    "block size",
    "dimension",
    "space",
    "space dimension",
    "sizes",
    "spacings",
    "thicknesses",
    "axis mins",
    "axis maxs",
    "space directions",
    "centers",
    "kinds",
    "labels",
    "units",
    "min",
    "max",
    "old min",
    "old max",
    "endian",
    "encoding",
    "line skip",
    "byte skip",
    "sample units",
    "space units",
    "space origin",
    "measurement frame",
    "data file",
}


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]", "", text.lower())


def _unescape(value: str) -> str:
    """teem's key/value escapes: ``\\n`` is a newline, ``\\\\`` a backslash."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


# --------------------------------------------------------------------------------------------------------
# Header text
# --------------------------------------------------------------------------------------------------------


def _header_lines(path: Path) -> tuple[list[str], int, bool]:
    """The header's lines (without the magic), the byte offset where inline data start, and whether the header
    ended with a blank line (``False``: it runs to the end of the file, as a detached ``.nhdr`` may)."""
    with open(path, "rb") as f:
        raw = f.read(1 << 20)
        if not _MAGIC.match(raw):
            raise UnsupportedFormatError("not a NRRD file (it does not start with 'NRRD0001' ... 'NRRD0005')", path)
        while True:
            end = raw.find(b"\n\n")
            crlf = raw.find(b"\r\n\r\n")
            if crlf != -1 and (end == -1 or crlf < end):
                end = crlf
            if end != -1:
                break
            more = f.read(1 << 20)
            if not more:
                break
            raw += more
            if len(raw) > _MAX_HEADER_BYTES:
                raise UnsupportedFormatError("the NRRD header does not end (no blank line in the first 64 MB)", path)
    if end == -1:
        head, data_offset, blank = raw, len(raw), False
    else:
        sep = 4 if raw[end : end + 4] == b"\r\n\r\n" else 2
        head, data_offset, blank = raw[:end], end + sep, True
    lines = []
    for line in head.split(b"\n")[1:]:
        line = line.rstrip(b"\r")
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("latin-1"))
    return lines, data_offset, blank


def _parse_lines(lines: list[str], path: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(fields, key/value pairs, names after ``data file: LIST``)."""
    fields: dict[str, str] = {}
    pairs: dict[str, str] = {}
    listed: list[str] = []
    in_list = False
    for line in lines:
        if in_list:
            if line.strip():
                listed.append(line.strip())
            continue
        if not line.strip() or line.startswith("#"):
            continue
        pair = line.find(":=")
        colon = line.find(":")
        if colon <= 0:
            raise UnsupportedFormatError(
                f"the NRRD header line '{line[:60]}' is neither 'field: value' nor 'key:=value'", path
            )
        if pair > 0 and (pair == colon or ": " not in line[:pair]):
            # key/value pairs split at the first ":=" (keys may hold ':'; field lines have ": " before any ":=")
            pairs[_unescape(line[:pair])] = _unescape(line[pair + 2 :])
            continue
        name = " ".join(line[:colon].lower().split())
        name = _FIELD_ALIASES.get(name.replace(" ", ""), name)
        if name not in _FIELDS:
            raise UnsupportedFormatError(f"the NRRD header has the unknown field '{line[:colon]}'", path)
        value = line[colon + 1 :].strip()
        if name in fields:
            raise UnsupportedFormatError(f"the NRRD header gives the field '{name}' twice", path)
        fields[name] = value
        if name == "data file" and value.split()[:1] and value.split()[0].upper() == "LIST":
            in_list = True
    return fields, pairs, listed


def _numbers(fields: dict[str, str], name: str, count: int, path: Path, integer: bool = False) -> list[float]:
    words = fields[name].split()
    if len(words) != count:
        raise UnsupportedFormatError(f"the NRRD field '{name}' has {len(words)} value(s), {count} expected", path)
    return header_numbers(words, f"the NRRD field '{name}'", path, integer)


def _vector(text: str, length: int, name: str, path: Path) -> list[float] | None:
    """``(x,y,z)`` -> floats; ``none`` -> None."""
    if text.lower() == "none":
        return None
    match = re.fullmatch(r"\(([^()]*)\)", text)
    parts = match.group(1).split(",") if match else []
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != length or not match:
        raise UnsupportedFormatError(
            f"the NRRD field '{name}' holds '{text}', expected a vector of {length} numbers", path
        )
    return values


def _vectors(text: str, count: int, length: int, name: str, path: Path) -> list[list[float] | None]:
    words = re.findall(r"\([^()]*\)|[^\s()]+", text)
    if len(words) != count:
        raise UnsupportedFormatError(
            f"the NRRD field '{name}' has {len(words)} entries, the image has {count} axes", path
        )
    return [_vector(w, length, name, path) for w in words]


# --------------------------------------------------------------------------------------------------------
# Header -> image model
# --------------------------------------------------------------------------------------------------------


def _data_pieces(
    fields: dict[str, str], listed: list[str], path: Path, data_offset: int, blank: bool, total: int
) -> list[DataPiece]:
    encoding = _ENCODINGS.get(fields.get("encoding", "").lower())
    if encoding is None:
        raise UnsupportedFormatError(
            f"the NRRD encoding '{fields.get('encoding', '')}' is not one of raw, ascii, hex, gzip, bzip2", path
        )
    line_skip = int(_numbers(fields, "line skip", 1, path, integer=True)[0]) if "line skip" in fields else 0
    byte_skip = int(_numbers(fields, "byte skip", 1, path, integer=True)[0]) if "byte skip" in fields else 0
    if line_skip < 0 or byte_skip < -1:
        raise UnsupportedFormatError("the NRRD 'line skip' / 'byte skip' is negative", path)
    if byte_skip == -1 and encoding != "raw":
        raise UnsupportedFormatError("'byte skip: -1' (data at the end of the file) needs raw encoding", path)
    names: list[str]
    spec = fields.get("data file")
    if spec is None:
        if not blank and path.suffix.lower() == ".nhdr":
            raise UnsupportedFormatError("the NRRD header names no 'data file' and holds no data", path)
        names = []
    else:
        words = spec.split()
        if words and words[0].upper() == "LIST":
            names = listed
            if not names:
                raise UnsupportedFormatError("'data file: LIST' is not followed by any file names", path)
        elif len(words) >= 4 and "%" in words[0] and all(re.fullmatch(r"-?\d+", w) for w in words[1:4]):
            first, last, step = (int(w) for w in words[1:4])
            if step == 0 or (last - first) * step < 0:
                raise UnsupportedFormatError(f"the NRRD 'data file' range '{spec}' is empty", path)
            try:
                names = [words[0] % n for n in range(first, last + (1 if step > 0 else -1), step)]
            except (TypeError, ValueError):
                raise UnsupportedFormatError(
                    f"the NRRD 'data file' pattern '{words[0]}' is not a %d pattern", path
                ) from None
        else:
            names = [spec]
    if not names:
        return [DataPiece(path, data_offset, encoding, total, line_skip, byte_skip)]
    if total % len(names):
        raise UnsupportedFormatError(
            f"the image's {total} values cannot be split evenly over the {len(names)} data files", path
        )
    pieces = []
    for name in names:
        file = Path(name)
        if not file.is_absolute():
            file = path.parent / file
        pieces.append(DataPiece(file, 0, encoding, total // len(names), line_skip, byte_skip))
    return pieces


def read_nrrd_header(path: str | Path) -> ImageHeader:
    """Parse a NRRD header into the image ITK would make of it (no voxel data read).

    Raises :class:`UnsupportedFormatError` for files that are not NRRD or whose header is damaged, and
    :class:`InputError` for images the header describes in a way ITK cannot represent.
    """
    path = Path(path)
    lines, data_offset, blank = _header_lines(path)
    fields, pairs, listed = _parse_lines(lines, path)
    for required in ("type", "dimension", "sizes", "encoding"):
        if required not in fields:
            raise UnsupportedFormatError(f"the NRRD header lacks the required field '{required}'", path)
    type_name = " ".join(fields["type"].lower().split())
    if type_name == "block":
        raise InputError("the NRRD type 'block' (opaque blocks) is not an image ITK or radlabel can read", path)
    if type_name not in _TYPES:
        raise UnsupportedFormatError(f"the NRRD type '{fields['type']}' is not a known type", path)
    dimension = int(_numbers(fields, "dimension", 1, path, integer=True)[0])
    if not 1 <= dimension <= 16:
        raise UnsupportedFormatError(f"the NRRD dimension {dimension} is not between 1 and 16", path)
    sizes = [int(s) for s in _numbers(fields, "sizes", dimension, path, integer=True)]
    dtype = np.dtype(_TYPES[type_name])

    encoding = _ENCODINGS.get(fields["encoding"].lower())
    endian = fields.get("endian", "").lower()
    if endian not in ("", "little", "big"):
        raise UnsupportedFormatError(f"the NRRD endian '{fields['endian']}' is neither little nor big", path)
    if not endian and dtype.itemsize > 1 and encoding not in ("ascii", None):
        raise UnsupportedFormatError("the NRRD header lacks 'endian' (needed for multi-byte types)", path)
    byte_order: Any = ">" if endian == "big" else "<"

    # axes: image (domain) axes and at most one component axis
    kinds = fields["kinds"].split() if "kinds" in fields else [""] * dimension
    if len(kinds) != dimension:
        raise UnsupportedFormatError(
            f"the NRRD field 'kinds' has {len(kinds)} entries, the image has {dimension} axes", path
        )
    domain, rng = [], []
    for axis, kind in enumerate(kinds):
        k = kind.lower()
        if k in _DOMAIN_KINDS or k in _UNKNOWN_KINDS:
            domain.append(axis)
        elif k in _RANGE_KINDS:
            rng.append(axis)
        else:
            raise UnsupportedFormatError(f"the NRRD kind '{kind}' is not a known kind", path)
    if len(rng) > 1:
        raise InputError(
            f"the NRRD file has {len(rng)} non-spatial axes ({', '.join(kinds[a] for a in rng)}); ITK and radlabel "
            "read at most one (the voxel's components)",
            path,
        )
    components = sizes[rng[0]] if rng else 1

    # space
    if "space" in fields and "space dimension" in fields:
        raise UnsupportedFormatError("the NRRD header gives both 'space' and 'space dimension'", path)
    space_name, flip, anatomical = "", (1.0, 1.0), True
    space_dim = 0
    if "space" in fields:
        known = _SPACES.get(_norm(fields["space"]))
        if known is None:
            raise UnsupportedFormatError(f"the NRRD space '{fields['space']}' is not a known space", path)
        space_name, space_dim, flip, anatomical = known
    elif "space dimension" in fields:
        space_dim = int(_numbers(fields, "space dimension", 1, path, integer=True)[0])
        if space_dim < 1:
            raise UnsupportedFormatError("the NRRD 'space dimension' is less than 1", path)
    warnings: list[str] = []
    if space_dim and space_dim != len(domain):
        raise InputError(
            f"the NRRD file has {len(domain)} image axes in a {space_dim}D space ('{fields.get('space', space_dim)}'); "
            "ITK reads NRRD files only when the two agree (a 4D series needs 'space dimension: 4' or a 'list' axis)",
            path,
        )
    if space_name and not anatomical:
        warnings.append(
            f"the NRRD space is '{space_name}', which is not tied to the patient's axes; it is taken as "
            "left-posterior-superior (LPS), as ITK does"
        )
    lps = np.ones(max(space_dim, 1))
    lps[:2] = flip[: min(2, len(lps))]

    n = len(domain)
    spacing = np.ones(n)
    direction = np.eye(n)
    origin = np.zeros(n)
    if space_dim:
        if "spacings" in fields:
            raise UnsupportedFormatError(
                "the NRRD header gives 'spacings' together with a space; ITK needs 'space directions' instead", path
            )
        if "space directions" not in fields:
            raise UnsupportedFormatError("the NRRD header gives a space but no 'space directions'", path)
        vectors = _vectors(fields["space directions"], dimension, space_dim, "space directions", path)
        for index, axis in enumerate(domain):
            vector = vectors[axis]
            if vector is None:
                raise InputError(f"NRRD axis {axis} is an image axis but its space direction is 'none'", path)
            length = math.sqrt(sum(v * v for v in vector))
            if not math.isfinite(length) or length == 0.0:
                raise InputError(f"the space direction of NRRD axis {axis} has zero or invalid length", path)
            spacing[index] = length
            # teem scales by the reciprocal (not a division): the same bits as ITK gets
            direction[:, index] = np.asarray(vector) * (1.0 / length) * lps
        for axis in rng:
            if vectors[axis] is not None:
                raise UnsupportedFormatError(
                    f"NRRD axis {axis} ({kinds[axis]}) holds components but has a space direction", path
                )
        if "space origin" in fields:
            given = _vector(fields["space origin"], space_dim, "space origin", path)
            if given is not None and all(math.isfinite(v) for v in given):
                origin = np.asarray(given) * lps
            elif given is not None and not all(math.isnan(v) for v in given):
                raise InputError(f"the NRRD space origin {fields['space origin']} is not a position", path)
    else:
        if "space directions" in fields or "space origin" in fields:
            raise UnsupportedFormatError("the NRRD header gives space directions/origin but no 'space'", path)
        spacing, origin = _spacing_and_origin_without_space(fields, sizes, domain, dimension, path)

    size = tuple(sizes[a] for a in domain)
    check_dimensions(size, components, dtype, path)
    total = int(np.prod(sizes, dtype=np.int64))
    pieces = _data_pieces(fields, listed, path, data_offset, blank, total)

    file_shape = tuple(reversed(sizes))
    component_axis = None
    if rng and rng[0] != 0:
        component_axis = dimension - 1 - rng[0]
    text_fields = {f"NRRD_{name}": value for name, value in fields.items()}
    if space_name:
        text_fields["NRRD_space"] = "left-posterior-superior" if anatomical else space_name
    text_fields.update(pairs)
    return ImageHeader(
        path=path,
        format=FORMAT,
        dimension=n,
        size=size,
        components=components,
        dtype=dtype,
        spacing=tuple(float(v) for v in spacing),
        origin=tuple(float(v) for v in origin),
        direction=direction,
        byte_order=byte_order,
        pieces=pieces,
        fields=text_fields,
        warnings=warnings,
        file_shape=file_shape,
        component_axis=component_axis,
    )


def _spacing_and_origin_without_space(
    fields: dict[str, str], sizes: list[int], domain: list[int], dimension: int, path: Path
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """teem's ``nrrdSpacingCalculate`` / ``nrrdOriginCalculate`` (cell centring by default), as ITK uses them."""
    nan = float("nan")
    spacings = _numbers(fields, "spacings", dimension, path) if "spacings" in fields else [nan] * dimension
    mins = _numbers(fields, "axis mins", dimension, path) if "axis mins" in fields else [nan] * dimension
    maxs = _numbers(fields, "axis maxs", dimension, path) if "axis maxs" in fields else [nan] * dimension
    centers = fields["centers"].split() if "centers" in fields else ["???"] * dimension
    if len(centers) != dimension:
        raise UnsupportedFormatError(f"the NRRD field 'centers' has {len(centers)} entries for {dimension} axes", path)
    spacing = np.array([spacings[a] if math.isfinite(spacings[a]) else 1.0 for a in domain])
    origin = np.zeros(len(domain))
    # teem tests only the first image axis for a minimum (sic), and every axis for a maximum or spacing
    located = domain and math.isfinite(mins[domain[0]])
    if located and all(math.isfinite(maxs[a]) or math.isfinite(spacings[a]) for a in domain):
        for index, axis in enumerate(domain):
            cell = centers[axis].lower() != "node"
            step = spacings[axis]
            if not math.isfinite(step):
                step = (maxs[axis] - mins[axis]) / (sizes[axis] if cell else sizes[axis] - 1)
            origin[index] = mins[axis] + (step / 2 if cell else 0.0)
        if not np.all(np.isfinite(origin)):
            raise InputError(
                "the NRRD 'axis mins' give a minimum for some axes only, so the image has no defined position",
                path,
            )
    return spacing, origin


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    """17 significant digits, as ITK writes them: every double reads back bit for bit."""
    text = f"{float(value):.17g}"
    return "0" if text == "-0" else text


def write_nrrd(
    path: str | Path,
    arrays: Sequence[NDArray[Any]],
    origin: ArrayLike,
    spacing: ArrayLike,
    direction: ArrayLike,
    *,
    content: str = "",
    compression_level: int = 2,
    progress: Callable[[float], None] | None = None,
) -> list[Path]:
    """Write ``arrays`` (each ``[k, j, i]``, one dtype, native or any byte order) on one LPS grid as ITK does.

    One array gives a 3D file, several a 4D one (``space dimension: 4``; the 4th axis has spacing 1 and origin 0,
    as ``SimpleITK.JoinSeries`` makes it). A ``.nhdr`` name writes the header there and the gzip data to
    ``<name>.raw.gz`` beside it. Returns the files written.
    """
    path = Path(path)
    arrays = list(arrays)
    k, j, i = arrays[0].shape
    dtype = arrays[0].dtype
    type_name = _WRITE_TYPES[dtype.newbyteorder("=").str[1:]]
    origin3 = np.asarray(origin, float)
    axes = np.asarray(direction, float) * np.asarray(spacing, float)[None, :]
    four = len(arrays) > 1

    def vec(values: Sequence[float] | NDArray[Any]) -> str:
        return "(" + ",".join(_number(v) for v in values) + ")"

    if four:
        directions = [vec([*axes[:, a], 0.0]) for a in range(3)] + [vec([0.0, 0.0, 0.0, 1.0])]
        space_lines = ["space dimension: 4"]
        origin_text = vec([*origin3, 0.0])
        sizes = f"{i} {j} {k} {len(arrays)}"
    else:
        directions = [vec(axes[:, a]) for a in range(3)]
        space_lines = ["space: left-posterior-superior"]
        origin_text = vec(origin3)
        sizes = f"{i} {j} {k}"
    detached = path.suffix.lower() == ".nhdr"
    data_path = path.with_name(path.name[: -len(path.suffix)] + ".raw.gz") if detached else path
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        f"type: {type_name}",
        f"dimension: {4 if four else 3}",
        *space_lines,
        f"sizes: {sizes}",
        f"space directions: {' '.join(directions)}",
        f"kinds: {' '.join(['domain'] * (4 if four else 3))}",
        "endian: little",
        "encoding: gzip",
        f"space origin: {origin_text}",
    ]
    if content:
        lines.insert(3, f"content: {' '.join(content.split())}")
    if detached:
        lines.append(f"data file: {data_path.name}")
    header = ("\n".join(lines) + "\n" + ("" if detached else "\n")).encode("utf-8")
    with open(data_path, "wb") as data:
        if not detached:
            data.write(header)
        for block in compressed_blocks(arrays, 31, compression_level, progress):
            data.write(block)
    if detached:
        path.write_bytes(header)
        return [path, data_path]
    return [path]


__all__ = ["FORMAT", "read_nrrd_header", "write_nrrd"]
