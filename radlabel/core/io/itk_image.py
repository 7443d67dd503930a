"""NRRD (``.nrrd``, ``.nhdr``) and MetaImage (``.mha``, ``.mhd``) reader, through SimpleITK.

ITK already works in LPS with the same origin/spacing/direction convention as :class:`Volume` (it is where
that convention comes from), and it converts NRRD files written in other spaces (e.g. RAS) to LPS itself,
so geometry is taken over unchanged. What this module adds is what ITK does not do for a user: refusing
images that are not grey-scale volumes with a clear reason, orthogonalising (and reporting) sheared
grids, compact dtypes, and one-line error messages instead of multi-line C++ exception texts.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from radlabel.core.errors import CorruptPixelDataError, InputError, UnreadablePathError, UnsupportedFormatError
from radlabel.core.io.nifti import check_readable_file, compact_array, nearest_orthonormal, out_size_text
from radlabel.core.io.series import LoadedSeries, SeriesEntry, SeriesInfo, volume_on_grid
from radlabel.core.progress import Progress, ProgressCallback

#: File suffix -> (format name shown to users, ITK ImageIO that must read it).
FORMATS: dict[str, tuple[str, str]] = {
    ".nrrd": ("NRRD", "NrrdImageIO"),
    ".nhdr": ("NRRD", "NrrdImageIO"),
    ".mha": ("MetaImage", "MetaImageIO"),
    ".mhd": ("MetaImage", "MetaImageIO"),
}
SUFFIXES = tuple(FORMATS)

_METAIMAGE_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}
_MET_TYPE_SIZES = {
    "MET_CHAR": 1,
    "MET_UCHAR": 1,
    "MET_SHORT": 2,
    "MET_USHORT": 2,
    "MET_INT": 4,
    "MET_UINT": 4,
    "MET_LONG": 4,
    "MET_ULONG": 4,
    "MET_LONG_LONG": 8,
    "MET_ULONG_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}
_COMPLEX_IDS = {sitk.sitkComplexFloat32, sitk.sitkComplexFloat64}
_NUMPY_DTYPES = {
    sitk.sitkUInt8: "uint8",
    sitk.sitkInt8: "int8",
    sitk.sitkUInt16: "uint16",
    sitk.sitkInt16: "int16",
    sitk.sitkUInt32: "uint32",
    sitk.sitkInt32: "int32",
    sitk.sitkUInt64: "uint64",
    sitk.sitkInt64: "int64",
    sitk.sitkFloat32: "float32",
    sitk.sitkFloat64: "float64",
}


def _format_of(path: Path) -> tuple[str, str | None]:
    fmt = FORMATS.get(path.suffix.lower())
    return fmt if fmt else ("ITK image", None)


def _itk_detail(exc: BaseException) -> str:
    """The informative last line of a SimpleITK exception, without source locations and object addresses."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [
        line
        for line in lines
        if not line.startswith("Exception thrown in SimpleITK") and not re.search(r"\.(cxx|hxx|h):\d+:?$", line)
    ]
    last = lines[-1] if lines else type(exc).__name__
    last = re.sub(r"^\[\w+\]\s*\w+:\s*", "", last)
    last = re.sub(r"^(s?itk::)?(ITK )?ERROR:\s*", "", last)
    last = re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", last)
    return last


def _reader(path: Path, image_io: str | None) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if image_io:
        reader.SetImageIO(image_io)
    return reader


def _metaimage_fields(path: Path) -> tuple[dict[str, str], int]:
    """``Key = Value`` header fields of a MetaImage file and the byte offset where its data begin."""
    fields: dict[str, str] = {}
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    offset = 0
    for raw_line in head.splitlines(keepends=True):
        offset += len(raw_line)
        key, sep, value = raw_line.decode("latin-1").partition("=")
        if not sep:
            break
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    return fields, offset


def _metaimage_shortfall(path: Path) -> tuple[int, int] | None:
    """(available, expected) data bytes of a MetaImage whose data are short, when the header says enough.

    ITK only prints this to the console and raises a misleading "No such file or directory", so the numbers
    are worked out here from the header for a useful message.
    """
    try:
        fields, offset = _metaimage_fields(path)
        data_file = fields.get("ElementDataFile", "")
        if data_file.upper() == "LOCAL":
            available = path.stat().st_size - offset
        elif data_file and "%" not in data_file and data_file.upper() != "LIST":
            available = (path.parent / data_file).stat().st_size
        else:
            return None
        if fields.get("CompressedData", "False").lower() == "true":
            if "CompressedDataSize" not in fields:
                return None
            expected = int(fields["CompressedDataSize"])
        else:
            dims = [int(v) for v in fields["DimSize"].split()]
            channels = int(fields.get("ElementNumberOfChannels", "1"))
            expected = int(np.prod(dims)) * channels * _MET_TYPE_SIZES[fields["ElementType"]]
    except (OSError, KeyError, ValueError):
        return None
    return (available, expected) if available < expected else None


def _data_error(path: Path, fmt: str, exc: BaseException) -> InputError:
    """Typed, one-line error for a failure while reading voxel data."""
    text = str(exc)
    match = re.search(r"expected (\d+) bytes but received (\d+)", text)
    if match:
        expected, available = int(match.group(1)), int(match.group(2))
        return _truncated(path, available, expected)
    match = re.search(r"fread got only (\d+) (\d+)-sized things, not (\d+)", text)
    if match:
        got, item, wanted = (int(g) for g in match.groups())
        return _truncated(path, got * item, wanted * item)
    if fmt == "MetaImage":
        shortfall = _metaimage_shortfall(path)
        if shortfall:
            return _truncated(path, *shortfall)
    return CorruptPixelDataError(f"the {fmt} image data cannot be read ({_itk_detail(exc)})", path)


def _truncated(path: Path, available: int, expected: int) -> CorruptPixelDataError:
    return CorruptPixelDataError(
        f"the file ends after {max(available, 0)} of {expected} bytes of image data "
        "(it is truncated, e.g. an interrupted download or copy)",
        path,
    )


def _embed3(values: tuple[float, ...], dimension: int, fill: float) -> NDArray[np.float64]:
    out = np.full(3, fill)
    n = min(dimension, 3)
    out[:n] = values[:n]
    return out


def _detached_data_file(path: Path) -> Path | None:
    """The separate voxel file a ``.mhd`` / ``.nhdr`` header names (None when data are inline or a list)."""
    suffix = path.suffix.lower()
    name = ""
    if suffix == ".mhd":
        try:
            name = _metaimage_fields(path)[0].get("ElementDataFile", "")
        except OSError:
            return None
        if name.upper() in ("LOCAL", "LIST") or "%" in name:
            return None
    elif suffix == ".nhdr":
        with open(path, "rb") as f:
            head = f.read(1 << 16).decode("latin-1")
        match = re.search(r"^data ?file:\s*(\S.*?)\s*$", head, flags=re.MULTILINE)
        if not match or match.group(1).upper().startswith("LIST") or " " in match.group(1):
            return None
        name = match.group(1)
    if not name:
        return None
    data = Path(name)
    return data if data.is_absolute() else path.parent / data


def _scan(path: Path) -> tuple[SeriesInfo, dict[str, Any]]:
    check_readable_file(path, "NRRD/MetaImage")
    fmt, image_io = _format_of(path)
    data_file = _detached_data_file(path)
    if data_file is not None and not data_file.is_file():
        raise UnreadablePathError(f"the voxel data file {data_file.name} that the header names is missing", path)
    reader = _reader(path, image_io)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if fmt == "MetaImage":
            raise UnsupportedFormatError(
                "not a MetaImage file, or its header is damaged (expected 'Key = Value' lines with NDims, "
                "DimSize and ElementType)",
                path,
            ) from None
        raise UnsupportedFormatError(f"not a readable {fmt} file ({_itk_detail(exc)})", path) from None

    dimension = reader.GetDimension()
    size_nd = tuple(int(s) for s in reader.GetSize())
    components = reader.GetNumberOfComponents()
    pixel_id = reader.GetPixelID()
    pixel_text = sitk.GetPixelIDValueAsString(pixel_id)
    if components != 1 or pixel_id in _COMPLEX_IDS:
        raise InputError(
            f"the voxels are {pixel_text} values with {components} component(s) each (a vector, colour or "
            "complex image); radlabel reads grey-scale volumes only (a 4D scalar image is read as a series "
            "of volumes)",
            path,
        )
    if dimension not in (2, 3, 4):
        raise InputError(f"the image has {dimension} dimensions; radlabel reads 2D, 3D and 4D images only", path)
    if any(s <= 0 for s in size_nd):
        raise InputError(f"the header gives an empty image (size {size_nd})", path)

    warnings: list[str] = []
    full_direction = np.asarray(reader.GetDirection(), float).reshape(dimension, dimension)
    direction = np.eye(3)
    n = min(dimension, 3)
    direction[:n, :n] = full_direction[:n, :n]
    if dimension == 4 and (np.abs(full_direction[:3, 3]).max() > 1e-6 or np.abs(full_direction[3, :3]).max() > 1e-6):
        warnings.append("the 4th (time) axis is tilted into space in the header; only the 3D part is used")
    spacing = _embed3(tuple(reader.GetSpacing()), dimension, 1.0)
    origin = _embed3(tuple(reader.GetOrigin()), dimension, 0.0)
    size = (int(size_nd[0]), int(size_nd[1]), int(size_nd[2]) if dimension >= 3 else 1)
    n_volumes = int(size_nd[3]) if dimension == 4 else 1
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise InputError(f"the header gives a zero or invalid voxel size {spacing.tolist()}", path)
    if abs(abs(np.linalg.det(direction)) - 1.0) > 0.5:
        raise InputError("the header's axis directions are degenerate (two axes point the same way)", path)
    direction, shear_warning = nearest_orthonormal(direction, spacing, size)
    if shear_warning:
        warnings.append(shear_warning)

    header = {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}
    modality = _METAIMAGE_MODALITIES.get(header.get("Modality", ""), "")
    description = header.get("NRRD_content", "")
    metadata: dict[str, Any] = {
        "format": fmt,
        "source": str(path),
        "description": description,
        "modality": modality,
        "stored_dtype": _NUMPY_DTYPES.get(pixel_id, pixel_text),
        "header": {k: v for k, v in header.items() if len(v) < 1000},
    }
    info = SeriesInfo(
        uid=path.name,
        format=fmt,
        description=description,
        modality=modality,
        size=size,
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=tuple(tuple(float(v) for v in row) for row in direction),
        n_volumes=n_volumes,
        volume_labels=[f"t={t}" for t in range(n_volumes)],
        warnings=warnings,
        files=[str(path)] + ([str(data_file)] if data_file is not None else []),
        extra={"stored_dtype": metadata["stored_dtype"]},
    )
    return info, metadata


def _load(path: Path, info: SeriesInfo, metadata: dict[str, Any], callback: ProgressCallback | None) -> LoadedSeries:
    progress = Progress(callback, what=f"loading {path.name}")
    progress.report(0.0, f"reading {path.name}")
    fmt, image_io = _format_of(path)
    check_readable_file(path, fmt)
    try:
        image = _reader(path, image_io).Execute()
    except RuntimeError as exc:
        raise _data_error(path, fmt, exc) from None
    except MemoryError:
        nbytes = int(np.prod(info.size)) * info.n_volumes * 8
        raise InputError(f"not enough memory to load the image (up to {out_size_text(nbytes)})", path) from None
    progress.report(0.8, f"converting {path.name}")
    array = compact_array(sitk.GetArrayFromImage(image))
    del image
    i, j, k = info.size
    array = array.reshape((info.n_volumes, k, j, i))
    volumes = []
    for t in range(info.n_volumes):
        volumes.append(volume_on_grid(array, info, metadata, t))
        progress.report(0.8 + 0.2 * (t + 1) / info.n_volumes, f"converting {path.name}")
    return LoadedSeries(info=info, volumes=volumes, warnings=list(info.warnings))


def is_itk_image_path(path: str | Path) -> bool:
    """True when the file name has a NRRD or MetaImage extension (the loader dispatches on it)."""
    return Path(path).suffix.lower() in FORMATS


def scan_itk_image(path: str | Path) -> list[SeriesEntry]:
    """Describe a NRRD/MetaImage file from its header alone (no voxel data read).

    Returns one entry (a 4D scalar image is one series of ``n_volumes`` volumes). Raises an
    :class:`radlabel.core.errors.InputError` subclass for a missing, unreadable or damaged file and for
    vector, colour or complex images.
    """
    path = Path(path)
    info, metadata = _scan(path)
    return [SeriesEntry(info=info, loader=functools.partial(_load, path, info, metadata))]


def load_itk_image(path: str | Path, progress: ProgressCallback | None = None) -> LoadedSeries:
    """Scan and load in one call, for scripts and tests that do not need the header-only step."""
    return scan_itk_image(path)[0].load(progress)


__all__ = ["FORMATS", "SUFFIXES", "is_itk_image_path", "load_itk_image", "scan_itk_image"]
