"""NRRD (``.nrrd``, ``.nhdr``) and MetaImage (``.mha``, ``.mhd``) reader.

The headers are parsed by :mod:`radlabel.core.io.nrrd` and :mod:`radlabel.core.io.metaimage` into the image
ITK's readers make of them (LPS, with ITK's origin/spacing/direction convention, which is where
:class:`Volume`'s comes from; NRRD files in RAS or LAS space converted to LPS), and checked against SimpleITK in
the tests: same affine, same voxels, same dtype. What this module adds is what a plain reader does not do for a
user: refusing images that are not grey-scale volumes with a clear reason, orthogonalising (and reporting)
sheared grids, compact dtypes, and one-line error messages.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.errors import InputError, UnreadablePathError, UnsupportedFormatError
from radlabel.core.io.metaimage import MODALITIES, read_metaimage_header
from radlabel.core.io.nifti import check_readable_file, compact_array, nearest_orthonormal, out_size_text
from radlabel.core.io.nrrd import read_nrrd_header
from radlabel.core.io.series import LoadedSeries, SeriesEntry, SeriesInfo, volume_on_grid
from radlabel.core.io.voxel_files import ImageHeader
from radlabel.core.progress import Progress, ProgressCallback

#: File suffix -> (format name shown to users, radlabel module that reads it). The shape is the one this table had
#: when SimpleITK read the files (the second entry was the ITK ImageIO), kept for callers that unpack it.
FORMATS: dict[str, tuple[str, str]] = {
    ".nrrd": ("NRRD", "radlabel.core.io.nrrd"),
    ".nhdr": ("NRRD", "radlabel.core.io.nrrd"),
    ".mha": ("MetaImage", "radlabel.core.io.metaimage"),
    ".mhd": ("MetaImage", "radlabel.core.io.metaimage"),
}
SUFFIXES = tuple(FORMATS)


def read_header(path: str | Path) -> ImageHeader:
    """The NRRD or MetaImage header of ``path`` (by suffix; other names by the file's first bytes)."""
    path = Path(path)
    known = FORMATS.get(path.suffix.lower())
    if known is not None:
        fmt = known[0]
    else:
        with open(path, "rb") as f:
            fmt = "NRRD" if f.read(4) == b"NRRD" else "MetaImage"
    return read_nrrd_header(path) if fmt == "NRRD" else read_metaimage_header(path)


def _values_text(header: ImageHeader) -> str:
    return f"{header.dtype} values with {header.components} component(s) each"


def _embed3(values: tuple[float, ...], dimension: int, fill: float) -> NDArray[np.float64]:
    out = np.full(3, fill)
    n = min(dimension, 3)
    out[:n] = values[:n]
    return out


def _scan(path: Path) -> tuple[SeriesInfo, dict[str, Any], ImageHeader]:
    check_readable_file(path, "NRRD/MetaImage")
    fmt = FORMATS.get(path.suffix.lower(), ("ITK image", ""))[0]
    try:
        header = read_header(path)
    except (OSError, UnicodeError) as exc:
        raise UnsupportedFormatError(f"not a readable {fmt} file ({exc})", path) from None
    for data_file in header.data_files:
        if not data_file.is_file():
            raise UnreadablePathError(f"the voxel data file {data_file.name} that the header names is missing", path)

    dimension = header.dimension
    size_nd = header.size
    if header.components != 1:
        raise InputError(
            f"the voxels are {_values_text(header)} (a vector, colour or complex image); radlabel reads "
            "grey-scale volumes only (a 4D scalar image is read as a series of volumes)",
            path,
        )
    if dimension not in (2, 3, 4):
        raise InputError(f"the image has {dimension} dimensions; radlabel reads 2D, 3D and 4D images only", path)

    warnings: list[str] = list(header.warnings)
    full_direction = header.direction
    direction = np.eye(3)
    n = min(dimension, 3)
    direction[:n, :n] = full_direction[:n, :n]
    if dimension == 4 and (np.abs(full_direction[:3, 3]).max() > 1e-6 or np.abs(full_direction[3, :3]).max() > 1e-6):
        warnings.append("the 4th (time) axis is tilted into space in the header; only the 3D part is used")
    spacing = _embed3(header.spacing, dimension, 1.0)
    origin = _embed3(header.origin, dimension, 0.0)
    size = (int(size_nd[0]), int(size_nd[1]), int(size_nd[2]) if dimension >= 3 else 1)
    n_volumes = int(size_nd[3]) if dimension == 4 else 1
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise InputError(f"the header gives a zero or invalid voxel size {spacing.tolist()}", path)
    if not np.all(np.isfinite(origin)):
        raise InputError(f"the header gives an invalid position {origin.tolist()}", path)
    if not np.all(np.isfinite(direction)) or abs(abs(np.linalg.det(direction)) - 1.0) > 0.5:
        raise InputError("the header's axis directions are degenerate (two axes point the same way)", path)
    direction, shear_warning = nearest_orthonormal(direction, spacing, size)
    if shear_warning:
        warnings.append(shear_warning)

    modality = MODALITIES.get(header.fields.get("Modality", ""), "")
    description = header.fields.get("NRRD_content", "")
    stored_dtype = str(header.dtype)
    metadata: dict[str, Any] = {
        "format": header.format,
        "source": str(path),
        "description": description,
        "modality": modality,
        "stored_dtype": stored_dtype,
        "header": {k: v for k, v in header.fields.items() if len(v) < 1000},
    }
    info = SeriesInfo(
        uid=path.name,
        format=header.format,
        description=description,
        modality=modality,
        size=size,
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=tuple(tuple(float(v) for v in row) for row in direction),
        n_volumes=n_volumes,
        volume_labels=[f"t={t}" for t in range(n_volumes)],
        warnings=warnings,
        files=[str(path)] + [str(f) for f in header.data_files],
        extra={"stored_dtype": stored_dtype},
    )
    return info, metadata, header


def _load(
    path: Path, info: SeriesInfo, metadata: dict[str, Any], header: ImageHeader, callback: ProgressCallback | None
) -> LoadedSeries:
    progress = Progress(callback, what=f"loading {path.name}")
    progress.report(0.0, f"reading {path.name}")
    check_readable_file(path, header.format)
    reading = progress.sub(0.0, 0.8)
    try:
        stored: NDArray[Any] = header.read(lambda fraction: reading.report(fraction, f"reading {path.name}"))
    except MemoryError:
        nbytes = header.nbytes * (2 if header.dtype == np.float64 else 1)
        raise InputError(f"not enough memory to load the image (up to {out_size_text(nbytes)})", path) from None
    except OSError as exc:
        raise UnreadablePathError(f"the image data cannot be read ({exc.strerror or exc})", path) from None
    progress.report(0.8, f"converting {path.name}")
    array = compact_array(stored)
    del stored
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
    info, metadata, header = _scan(path)
    return [SeriesEntry(info=info, loader=functools.partial(_load, path, info, metadata, header))]


def load_itk_image(path: str | Path, progress: ProgressCallback | None = None) -> LoadedSeries:
    """Scan and load in one call, for scripts and tests that do not need the header-only step."""
    return scan_itk_image(path)[0].load(progress)


__all__ = ["FORMATS", "SUFFIXES", "is_itk_image_path", "load_itk_image", "read_header", "scan_itk_image"]
