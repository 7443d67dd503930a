"""NIfTI-1 / NIfTI-2 reader (``.nii``, ``.nii.gz``).

nibabel parses the header and decides the geometry (its sform > qform > fallback precedence), so a file
means here exactly what it means in nibabel, FSL, ANTs and ITK. The voxel data are read by this module in
chunks of slices straight from the (possibly gzipped) file, because that is what lets a long load report
progress, be cancelled, and say precisely how many bytes a truncated file is missing; the values are the
ones nibabel gives (same bytes, same ``scl_slope``/``scl_inter``), which the tests check against nibabel.

The two helpers :func:`nearest_orthonormal` and :func:`compact_array` are shared with the ITK reader.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.fileholders import FileHolder
from numpy.typing import ArrayLike, NDArray

from radlabel.core import geometry
from radlabel.core.errors import (
    CorruptPixelDataError,
    InputError,
    UnreadablePathError,
    UnsupportedFormatError,
)
from radlabel.core.io.series import LoadedSeries, SeriesEntry, SeriesInfo, volume_on_grid
from radlabel.core.progress import Progress, ProgressCallback

FORMAT = "NIfTI"
SUFFIXES = (".nii", ".nii.gz")

#: Bytes of raw voxel data read per step; small enough that progress and Cancel respond quickly.
CHUNK_BYTES = 4 * 1024 * 1024

#: Axes further than this from perpendicular (degrees) are reported as sheared.
SHEAR_WARNING_DEGREES = 0.01

#: sform and qform placing a corner voxel further apart than this (mm) disagree; below it is float rounding.
QFORM_SFORM_TOLERANCE_MM = 0.1

_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI1_HEADER_SIZE = 348
_NIFTI2_HEADER_SIZE = 540
_SPACE_UNIT_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001}
_AFFINE_SOURCE_NAMES = {"sform": "sform", "qform": "qform", "fallback": "pixdim only (no qform/sform)"}


# --------------------------------------------------------------------------------------------------------
# Helpers shared with the ITK reader
# --------------------------------------------------------------------------------------------------------


def nearest_orthonormal(
    direction: ArrayLike, spacing: ArrayLike, size: ArrayLike
) -> tuple[NDArray[np.float64], str | None]:
    """Replace a sheared direction matrix by the nearest orthonormal one, and say how much that moves voxels.

    A Volume (and every viewer, resampler and DICOM writer downstream) needs perpendicular axes. Silently
    orthogonalising would misplace voxels without anyone knowing, so the caller gets a warning line with the
    largest axis angle error and the largest voxel displacement it causes (``None`` when the shear is
    negligible).
    """
    d = np.asarray(direction, float).reshape(3, 3)
    gram = d.T @ d
    if np.max(np.abs(gram - np.eye(3))) <= 1e-6:
        return d, None
    u, _, vt = np.linalg.svd(d)
    orthonormal: NDArray[np.float64] = u @ vt
    cosines = np.clip(np.abs(gram[np.triu_indices(3, 1)]), 0.0, 1.0)
    worst_degrees = float(np.max(90.0 - np.degrees(np.arccos(cosines))))
    extent = np.maximum(np.asarray(size, float) - 1.0, 0.0)
    corners = np.array([[a, b, c] for a in (0, extent[0]) for b in (0, extent[1]) for c in (0, extent[2])])
    sp = np.asarray(spacing, float)
    shift = np.linalg.norm(corners @ ((d - orthonormal) * sp[None, :]).T, axis=1)
    worst_mm = float(np.max(shift))
    if worst_degrees < SHEAR_WARNING_DEGREES:
        return orthonormal, None
    warning = (
        f"the voxel axes are sheared (up to {worst_degrees:.3g}° from perpendicular); radlabel uses the nearest "
        f"perpendicular grid, which moves voxels by up to {worst_mm:.3g} mm at the far corner"
    )
    return orthonormal, warning


def compact_array(array: NDArray[Any]) -> NDArray[Any]:
    """Float64 voxels as int16/int32 when they are whole numbers that fit, else float32.

    float64 doubles the memory of every view, undo diff and AI input for no precision a scanner ever
    produced; label maps and HU images saved as float64 by scripts are really integers.
    """
    if array.dtype != np.float64:
        return array
    if array.size and np.all(np.isfinite(array)) and np.array_equal(array, np.round(array)):
        low, high = float(array.min()), float(array.max())
        for candidate in (np.int16, np.int32):
            limits = np.iinfo(candidate)
            if limits.min <= low and high <= limits.max:
                return array.astype(candidate)
    return array.astype(np.float32)


def one_line(text: object) -> str:
    """The first non-empty line of an exception text, because error messages shown to users are one line."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return type(text).__name__ if isinstance(text, BaseException) else ""


def check_readable_file(path: Path, what: str) -> None:
    """Raise UnreadablePathError for a missing, folder or permission-denied path, before a library does."""
    if not path.exists():
        raise UnreadablePathError("the file does not exist", path)
    if path.is_dir():
        raise UnreadablePathError(f"this is a folder, not a {what} file", path)
    if not os.access(path, os.R_OK):
        raise UnreadablePathError("the file cannot be read (permission denied)", path)


# --------------------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Header:
    """What the scan learned from the header, kept so the load does not parse it again."""

    image_class: type[nib.Nifti1Image]
    shape: tuple[int, ...]  # (i, j, k, t)
    disk_dtype: np.dtype[Any]
    offset: int
    slope: float
    inter: float
    compressed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _open_stream(path: Path) -> Iterator[io.BufferedIOBase]:
    """Open the file, transparently gunzipping it when its bytes (not its name) say it is gzip."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after the optional gzip wrapper
    except OSError as exc:
        raise UnreadablePathError(f"the file cannot be read ({exc.strerror or exc})", path) from None
    try:
        magic = raw.read(2)
        raw.seek(0)
        if magic == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream
        else:
            yield raw
    finally:
        raw.close()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _header_class(first: bytes, path: Path) -> type[nib.Nifti1Image]:
    """NIfTI-1 or NIfTI-2 from the sizeof_hdr field, in either byte order."""
    if len(first) < 4:
        raise UnsupportedFormatError(
            f"not a NIfTI file: it holds only {len(first)} bytes, less than a NIfTI header", path
        )
    for order in ("<", ">"):
        size = int(np.frombuffer(first[:4], dtype=f"{order}i4")[0])
        if size == _NIFTI1_HEADER_SIZE:
            return nib.Nifti1Image
        if size == _NIFTI2_HEADER_SIZE:
            return nib.Nifti2Image
    raise UnsupportedFormatError("not a NIfTI file: its first 4 bytes are not the NIfTI header size (348 or 540)", path)


def _read_image(path: Path) -> tuple[nib.Nifti1Image, bool]:
    """Header-only nibabel image of ``path`` (no voxel data read) and whether the file is gzipped."""
    check_readable_file(path, "NIfTI")
    compressed = _is_gzip(path)
    try:
        with _open_stream(path) as stream:
            first = _read_exact(stream, 4)
            klass = _header_class(first, path)
            header_size = _NIFTI1_HEADER_SIZE if klass is nib.Nifti1Image else _NIFTI2_HEADER_SIZE
            got = len(first) + len(_read_exact(stream, header_size - len(first)))
            if got < header_size:
                raise InputError(f"the file ends inside the NIfTI header ({got} of {header_size} bytes)", path)
            stream.seek(0)
            # from_file_map reads the header and extensions; the array proxy it makes is never used.
            holder = FileHolder(fileobj=stream)
            image = klass.from_file_map({"header": holder, "image": holder}, mmap=False)
    except EOFError:
        raise InputError("the file ends inside the NIfTI header (it is truncated)", path) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"the compressed file is damaged ({one_line(exc)})", path) from None
    except InputError:
        raise
    except OSError as exc:
        raise UnreadablePathError(f"the file cannot be read ({exc.strerror or one_line(exc)})", path) from None
    except Exception as exc:  # nibabel's header parsing raises many types; the user needs one message
        raise InputError(f"invalid NIfTI header ({one_line(exc)})", path) from None
    return image, compressed


def _grid_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int, int]:
    """(i, j, k, t) from the NIfTI dims: trailing singleton dimensions dropped, 2D padded to one slice."""
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    while len(dims) < 3:
        dims.append(1)
    if len(dims) > 4:
        raise InputError(
            f"the image has {len(dims)} dimensions (shape {tuple(shape)}); radlabel reads 3D and 4D NIfTI only "
            "(5D files hold vector or tensor fields, not images)",
            path,
        )
    if any(d <= 0 for d in dims):
        raise InputError(f"the header gives an empty image (shape {tuple(shape)})", path)
    return dims[0], dims[1], dims[2], dims[3] if len(dims) == 4 else 1


def _affine_source(header: nib.Nifti1Header) -> str:
    """Which transform nibabel's ``img.affine`` comes from (its precedence: sform, then qform)."""
    if int(header["sform_code"]) > 0:
        return "sform"
    if int(header["qform_code"]) > 0:
        return "qform"
    return "fallback"


def _corner_distance(a: NDArray[np.float64], b: NDArray[np.float64], size: tuple[int, int, int]) -> float:
    extent = np.array(size, float) - 1.0
    corners = np.array([[x, y, z] for x in (0, extent[0]) for y in (0, extent[1]) for z in (0, extent[2])])
    return float(
        np.max(np.linalg.norm(geometry.index_to_world(a, corners) - geometry.index_to_world(b, corners), axis=1))
    )


def _scan(path: Path) -> tuple[SeriesInfo, _Header]:
    image, compressed = _read_image(path)
    header = image.header
    proxy: Any = image.dataobj  # nibabel's ArrayProxy: offset, dtype, slope, inter
    nx, ny, nz, nt = _grid_shape(tuple(int(d) for d in proxy.shape), path)
    size = (nx, ny, nz)
    disk_dtype = np.dtype(proxy.dtype)
    if disk_dtype.fields is not None or disk_dtype.kind not in "biuf":
        kind = "RGB colour" if disk_dtype.fields is not None else f"{disk_dtype} ({disk_dtype.kind})"
        raise InputError(f"the voxels are {kind} values; radlabel reads grey-scale (scalar) NIfTI only", path)

    warnings: list[str] = []
    source = _affine_source(header)
    ras = np.asarray(image.affine, float)
    if source == "fallback":
        warnings.append(
            "the header has no orientation (qform_code and sform_code are both 0); voxel sizes are used with "
            "nibabel's default axes, so left/right and the position in the patient are unknown"
        )
    qform_code, sform_code = int(header["qform_code"]), int(header["sform_code"])
    if qform_code > 0 and sform_code > 0:
        disagreement = _corner_distance(
            np.asarray(header.get_qform(), float), np.asarray(header.get_sform(), float), size
        )
        if disagreement > QFORM_SFORM_TOLERANCE_MM:
            warnings.append(
                f"the sform and qform disagree by up to {disagreement:.3g} mm; the sform is used "
                "(as nibabel, FSL and ITK do)"
            )

    lps = geometry.lps_to_ras_affine(ras)
    space_unit, _ = header.get_xyzt_units()
    scale = _SPACE_UNIT_TO_MM.get(space_unit, 1.0)
    if scale != 1.0:
        lps[:3, :] *= scale
        warnings.append(f"positions and voxel sizes are stored in {space_unit}s; converted to mm")
    columns = lps[:3, :3]
    if np.any(np.linalg.norm(columns, axis=0) <= 0) or not np.all(np.isfinite(lps)):
        raise InputError("the header gives a zero or invalid voxel size, so the image has no geometry", path)
    origin, spacing, direction = geometry.decompose_affine(lps)
    direction, shear_warning = nearest_orthonormal(direction, spacing, size)
    if shear_warning:
        warnings.append(shear_warning)

    raw_description = header["descrip"].item()
    description = raw_description.split(b"\x00")[0].decode("latin-1").strip()
    intent_name = header.get_intent()[0]
    slope, inter = float(proxy.slope), float(proxy.inter)
    metadata: dict[str, Any] = {
        "format": FORMAT,
        "source": str(path),
        "description": description,
        "modality": "",
        "qform_code": qform_code,
        "sform_code": sform_code,
        "affine_source": source,
        "intent": intent_name,
        "stored_dtype": str(disk_dtype.newbyteorder("=")),
        "scl_slope": slope,
        "scl_inter": inter,
        "nifti_version": 2 if isinstance(image, nib.Nifti2Image) else 1,
    }
    info = SeriesInfo(
        uid=path.name,
        format=FORMAT,
        description=description,
        modality="",
        size=size,
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=tuple(tuple(float(v) for v in row) for row in direction),
        n_volumes=nt,
        volume_labels=[f"t={t}" for t in range(nt)],
        warnings=warnings,
        files=[str(path)],
        extra={
            "stored_dtype": metadata["stored_dtype"],
            "affine_source": _AFFINE_SOURCE_NAMES[source],
            "qform_code": qform_code,
            "sform_code": sform_code,
        },
    )
    parsed = _Header(
        image_class=type(image),
        shape=(nx, ny, nz, nt),
        disk_dtype=disk_dtype,
        offset=int(proxy.offset),
        slope=slope,
        inter=inter,
        compressed=compressed,
        metadata=metadata,
    )
    if not compressed:
        _check_file_length(path, parsed)
    return info, parsed


def _data_bytes(header: _Header) -> int:
    nx, ny, nz, nt = header.shape
    return nx * ny * nz * nt * header.disk_dtype.itemsize


def _truncated(path: Path, available: int, expected: int) -> CorruptPixelDataError:
    return CorruptPixelDataError(
        f"the file ends after {max(available, 0)} of {expected} bytes of image data "
        "(it is truncated, e.g. an interrupted download or copy)",
        path,
    )


def _check_file_length(path: Path, header: _Header) -> None:
    """An uncompressed file's length tells at scan time, for free, whether all voxels are there."""
    expected = _data_bytes(header)
    available = path.stat().st_size - header.offset
    if available < expected:
        raise _truncated(path, available, expected)


def _decompressed_length(path: Path) -> int:
    """How many bytes of a damaged gzip file can still be decompressed (for an exact error message)."""
    total = 0
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                total += len(decompressor.decompress(chunk))
            except zlib.error:
                break
            if decompressor.eof:
                break
    return total


# --------------------------------------------------------------------------------------------------------
# Voxel data
# --------------------------------------------------------------------------------------------------------


def _target_dtype(header: _Header) -> np.dtype[Any]:
    """The dtype chunks are collected in; the final dtype is settled after all values are known."""
    native = header.disk_dtype.newbyteorder("=")
    unscaled = header.slope == 1.0 and float(header.inter).is_integer()
    if native.kind in "biu" and unscaled:
        return native
    if native == np.float64 and unscaled and header.inter == 0.0:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _read_exact(stream: io.BufferedIOBase, count: int) -> bytes:
    parts = []
    remaining = count
    while remaining > 0:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _read_voxels(path: Path, header: _Header, progress: Progress) -> NDArray[Any]:
    """All voxels as ``[t, k, j, i]`` in the collection dtype, read slice-chunk by slice-chunk.

    NIfTI stores i fastest (Fortran order of [i, j, k, t]), so the bytes of consecutive slices are exactly
    a C-ordered ``[k, j, i]`` block: no transpose pass over the data is needed.
    """
    nx, ny, nz, nt = header.shape
    target = _target_dtype(header)
    slice_bytes = nx * ny * header.disk_dtype.itemsize
    slices_per_chunk = max(1, CHUNK_BYTES // slice_bytes)
    expected = _data_bytes(header)
    try:
        out = np.empty((nt, nz, ny, nx), dtype=target)
    except MemoryError:
        raise InputError(
            f"not enough memory to load the image ({out_size_text(nt * nz * ny * nx * target.itemsize)})", path
        ) from None
    scaled = target == np.float32 and not (header.slope == 1.0 and header.inter == 0.0)
    done = 0
    with _open_stream(path) as stream:
        try:
            stream.seek(header.offset)
            for t in range(nt):
                for k0 in range(0, nz, slices_per_chunk):
                    k1 = min(nz, k0 + slices_per_chunk)
                    wanted = (k1 - k0) * slice_bytes
                    data = _read_exact(stream, wanted)
                    if len(data) < wanted:
                        raise _truncated(path, done + len(data), expected)
                    done += wanted
                    chunk = np.frombuffer(data, dtype=header.disk_dtype).reshape(k1 - k0, ny, nx)
                    if scaled:
                        out[t, k0:k1] = chunk.astype(np.float64) * header.slope + header.inter
                    else:
                        out[t, k0:k1] = chunk
                    progress.report(done / expected, f"reading {path.name}")
        except EOFError:
            # gzip stream cut short: count what is there so the message says how much is missing.
            raise _truncated(path, _decompressed_length(path) - header.offset, expected) from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise CorruptPixelDataError(f"the compressed image data are damaged ({one_line(exc)})", path) from None
        except OSError as exc:
            raise UnreadablePathError(f"reading the file failed ({exc.strerror or one_line(exc)})", path) from None
    return out


def out_size_text(nbytes: int) -> str:
    """Human size for memory messages."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _finish_values(raw: NDArray[Any], header: _Header) -> NDArray[Any]:
    """Apply an integral intercept without overflow and pick the compact final dtype."""
    if raw.dtype.kind in "biu" and header.inter != 0.0:
        inter = int(header.inter)
        low, high = int(raw.min()) + inter, int(raw.max()) + inter
        for candidate in (raw.dtype, np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64)):
            limits = np.iinfo(candidate)
            if limits.min <= low and high <= limits.max:
                return raw.astype(candidate) + candidate.type(inter)
    return compact_array(raw)


def _load(path: Path, info: SeriesInfo, header: _Header, callback: ProgressCallback | None) -> LoadedSeries:
    progress = Progress(callback, what=f"loading {path.name}")
    progress.report(0.0, f"reading {path.name}")
    try:
        values = _finish_values(_read_voxels(path, header, progress.sub(0.0, 0.95)), header)
    except MemoryError:
        raise InputError(
            f"not enough memory to load the image ({out_size_text(_data_bytes(header))} on disk)", path
        ) from None
    volumes = []
    for t in range(values.shape[0]):
        volumes.append(volume_on_grid(values, info, header.metadata, t))
        progress.report(0.95 + 0.05 * (t + 1) / values.shape[0], f"reading {path.name}")
    return LoadedSeries(info=info, volumes=volumes, warnings=list(info.warnings))


# --------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------


def is_nifti_path(path: str | Path) -> bool:
    """True when the file name has a NIfTI extension (the loader dispatches on it)."""
    name = Path(path).name.lower()
    return name.endswith(SUFFIXES)


def scan_nifti(path: str | Path) -> list[SeriesEntry]:
    """Describe a NIfTI file from its header alone, so a series browser can list it without reading voxels.

    Returns one entry (a 4D file is one series with ``n_volumes`` volumes). Raises a
    :class:`radlabel.core.errors.InputError` subclass for a missing, non-NIfTI, damaged or (uncompressed)
    truncated file, or a 5D+ / colour image.
    """
    path = Path(path)
    info, header = _scan(path)
    return [SeriesEntry(info=info, loader=functools.partial(_load, path, info, header))]


def load_nifti(path: str | Path, progress: ProgressCallback | None = None) -> LoadedSeries:
    """Scan and load in one call, for scripts and tests that do not need the header-only step."""
    return scan_nifti(path)[0].load(progress)


__all__ = [
    "FORMAT",
    "SUFFIXES",
    "compact_array",
    "is_nifti_path",
    "load_nifti",
    "nearest_orthonormal",
    "scan_nifti",
]
