"""Volume writers: NIfTI through nibabel, NRRD and MetaImage as ITK writes them, chosen by file extension.

The geometry written is exactly the Volume's LPS grid (converted to RAS for NIfTI), in both NIfTI
transforms with code 1 (scanner), so every tool (nibabel, FSL, ITK, 3D Slicer, ITK-SNAP) places the voxels
where radlabel shows them whatever transform it prefers. NRRD and MetaImage files are written by
:mod:`radlabel.core.io.nrrd` and :mod:`radlabel.core.io.metaimage` in ITK's own layout (gzip/zlib-compressed,
numbers with 17 significant digits), and the tests read them back through SimpleITK. Single-file outputs are
written to a temporary name beside the target and renamed at the end, so a failed or cancelled save never
leaves a half-written file under the name the user asked for.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from radlabel.core import geometry
from radlabel.core.errors import Cancelled, OutputError
from radlabel.core.io.metaimage import write_metaimage
from radlabel.core.io.nrrd import write_nrrd
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.volume import Volume

#: Extension -> writer kind. ``.nhdr`` and ``.mhd`` write a detached data file next to the header.
EXTENSIONS: dict[str, str] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".nrrd": "itk",
    ".nhdr": "itk",
    ".mha": "itk",
    ".mhd": "itk",
}
_DETACHED = (".nhdr", ".mhd")
_SUPPORTED_TEXT = ", ".join(EXTENSIONS)
#: dtypes the formats cannot store, and what is stored instead (values unchanged).
_STORABLE: dict[np.dtype[Any], np.dtype[Any]] = {
    np.dtype(np.bool_): np.dtype(np.uint8),
    np.dtype(np.float16): np.dtype(np.float32),
}


def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in EXTENSIONS:  # ".nii.gz" is listed before ".nii"
        if name.endswith(ext) and len(name) > len(ext):
            return ext
    raise OutputError(
        f"cannot tell the output format from the file name; use one of the extensions {_SUPPORTED_TEXT}", path
    )


def _check_folder(path: Path) -> None:
    folder = path.parent
    if not folder.exists():
        raise OutputError(f"the folder {folder} does not exist", path)
    if not folder.is_dir():
        raise OutputError(f"{folder} is not a folder", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"the folder {folder} is not writable", path)
    if path.is_dir():
        raise OutputError("a folder with this name exists", path)


def _storable(array: NDArray[Any], path: Path) -> NDArray[Any]:
    target = _STORABLE.get(array.dtype)
    if array.dtype.kind not in "biuf":
        raise OutputError(f"voxels of type {array.dtype} cannot be written as an image", path)
    return array.astype(target) if target is not None else array


def _write_nifti(arrays: Sequence[NDArray[Any]], reference: Volume, target: Path, progress: Progress) -> None:
    """NIfTI data are [i, j, k(, t)] in Fortran order; nibabel takes care of the byte layout."""
    data = arrays[0].transpose(2, 1, 0) if len(arrays) == 1 else np.stack([a.transpose(2, 1, 0) for a in arrays], -1)
    progress.report(0.3, f"writing {target.name}")
    ras = geometry.lps_to_ras_affine(reference.affine)
    image = nib.Nifti1Image(data, ras, dtype=data.dtype)
    header = image.header
    header.set_sform(ras, code=1)
    header.set_qform(ras, code=1)
    header.set_xyzt_units("mm", "sec")
    header.set_slope_inter(1.0, 0.0)
    description = str(reference.metadata.get("description", "")).encode("ascii", "replace")[:79]
    header["descrip"] = description
    nib.save(image, str(target))


def _write_itk(arrays: Sequence[NDArray[Any]], reference: Volume, target: Path, progress: Progress) -> None:
    """4D data are joined along a 4th axis (spacing 1, origin 0), which ITK, Slicer and MITK read back."""
    write = write_nrrd if target.suffix.lower() in (".nrrd", ".nhdr") else write_metaimage
    data_file = _detached_data_file(target)
    try:
        write(
            target,
            list(arrays),
            reference.origin,
            reference.spacing,
            reference.direction,
            progress=lambda fraction: progress.report(fraction, f"writing {target.name}"),
        )
    except BaseException:
        if data_file is not None:
            _remove_quietly(data_file)
        raise


def _detached_data_file(target: Path) -> Path | None:
    """The voxel file written beside a ``.nhdr`` / ``.mhd`` header (so a failed save removes it too)."""
    suffix = target.suffix.lower()
    if suffix == ".nhdr":
        return target.with_name(target.name[: -len(target.suffix)] + ".raw.gz")
    if suffix == ".mhd":
        return target.with_suffix(".zraw")
    return None


def _save(
    arrays: Sequence[NDArray[Any]], reference: Volume, path: str | Path, callback: ProgressCallback | None
) -> Path:
    path = Path(path).expanduser()
    ext = _extension(path)
    _check_folder(path)
    progress = Progress(callback, what=f"saving {path.name}")
    progress.report(0.0, f"writing {path.name}")
    arrays = [_storable(np.ascontiguousarray(a), path) for a in arrays]
    dtype: np.dtype[Any] = np.result_type(*arrays)
    arrays = [a.astype(dtype, copy=False) for a in arrays]
    detached = ext in _DETACHED
    target = path if detached else path.with_name(f".{path.name[: -len(ext)]}.{uuid.uuid4().hex[:8]}.partial{ext}")
    write = _write_nifti if EXTENSIONS[ext] == "nifti" else _write_itk
    try:
        write(arrays, reference, target, progress.sub(0.0, 0.95))
        progress.report(1.0, f"wrote {path.name}")
        if target != path:
            os.replace(target, path)
    except Cancelled:
        _remove_quietly(target)
        raise
    except (OSError, RuntimeError, ValueError, nib.spatialimages.HeaderDataError) as exc:
        _remove_quietly(target)
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise OutputError(f"writing the file failed ({detail})", path) from None
    return path


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def save_volume(volume: Volume, path: str | Path, progress: ProgressCallback | None = None) -> Path:
    """Write one volume; the format follows the extension (.nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd).

    Returns the path written. Raises :class:`OutputError` for an unknown extension, a missing or
    unwritable folder, or a failed write, and :class:`Cancelled` (leaving no file) when the progress
    callback says stop.
    """
    return _save([volume.array], volume, path, progress)


def save_volumes(volumes: Sequence[Volume], path: str | Path, progress: ProgressCallback | None = None) -> Path:
    """Write a multi-volume series (4D acquisition) as one 4D file; one volume is written as 3D.

    All volumes must be on the same grid, because a 4D file has one geometry for all of them.
    """
    if not volumes:
        raise OutputError("there is no volume to write", path)
    first = volumes[0]
    for n, other in enumerate(volumes[1:], start=1):
        if not first.same_grid(other):
            raise OutputError(
                f"volume {n} is not on the grid of volume 0 (size {other.size} vs {first.size}, or a different "
                "position/orientation), and a 4D file has one grid for all volumes",
                path,
            )
    return _save([v.array for v in volumes], first, path, progress)


__all__ = ["EXTENSIONS", "save_volume", "save_volumes"]
