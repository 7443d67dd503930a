"""Files of a case folder, each replaced atomically: ``case.json`` and the saved ``segmentation.npz``.

``segmentation.npz`` is a zip (numpy's .npz layout, readable with ``numpy.load``): one ``layer_N.npy`` per
label-map layer and ``segmentation.json`` with the grid, the segment table and ``journal_seq``, the last journal
record the saved layers include. Keeping the table and that number in the same file as the voxels makes a save
one atomic step (write a temporary file, fsync, ``os.replace``, fsync the folder): a crash leaves either the old
or the new file, never a mix, and recovery knows exactly which journal records to replay on top.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.errors import CaseError
from radlabel.core.io import atomic
from radlabel.core.segmentation.model import Grid, Segment, Segmentation

SEGMENTATION_FORMAT = "radlabel-segmentation"
SEGMENTATION_VERSION = 1
_LAYER_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, fsync it, then rename it over ``path``."""

    def into(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            write(handle)

    atomic.atomic_write(path, into, durable=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False).encode()

    def write(handle: IO[bytes]) -> None:
        handle.write(text)

    atomic_write(path, write)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseError("the file is missing", path) from None
    except (OSError, ValueError) as exc:
        raise CaseError(f"the file cannot be read ({exc})", path) from None
    if not isinstance(data, dict):
        raise CaseError("the file does not hold a JSON object", path)
    return data


def grid_to_json(grid: Grid) -> dict[str, Any]:
    return {
        "shape": list(grid.shape),
        "origin": list(grid.origin),
        "spacing": list(grid.spacing),
        "direction": [list(row) for row in grid.direction],
    }


def grid_from_json(data: dict[str, Any]) -> Grid:
    k, j, i = (int(v) for v in data["shape"])
    ox, oy, oz = (float(v) for v in data["origin"])
    sx, sy, sz = (float(v) for v in data["spacing"])
    (a, b, c), (d, e, f), (g, h, m) = ([float(v) for v in row] for row in data["direction"])
    return Grid((k, j, i), (ox, oy, oz), (sx, sy, sz), ((a, b, c), (d, e, f), (g, h, m)))


def grids_match(a: Grid, b: Grid, tolerance: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(
        np.allclose(a.origin, b.origin, atol=tolerance)
        and np.allclose(a.spacing, b.spacing, atol=tolerance)
        and np.allclose(a.direction, b.direction, atol=tolerance)
    )


def save_segmentation(path: Path, segmentation: Segmentation, journal_seq: int) -> None:
    """Write layers + table + ``journal_seq`` as one file, atomically."""
    meta = {
        "format": SEGMENTATION_FORMAT,
        "version": SEGMENTATION_VERSION,
        "journal_seq": int(journal_seq),
        "grid": grid_to_json(segmentation.grid),
        "layers": [layer.dtype.str for layer in segmentation.layers],
        "segments": [segment.to_json() for segment in segmentation.segments.values()],
    }

    def write(handle: IO[bytes]) -> None:
        # Label maps are long runs of equal values: deflate level 1 shrinks them ~100x at disk speed.
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.writestr("segmentation.json", json.dumps(meta, indent=1))
            for n, layer in enumerate(segmentation.layers):
                with archive.open(f"layer_{n}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(layer), allow_pickle=False)

    atomic_write(path, write)


def load_segmentation(path: Path) -> tuple[Segmentation, int]:
    """Read a file `save_segmentation` wrote; returns the segmentation and its ``journal_seq``."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("segmentation.json"))
            if meta.get("format") != SEGMENTATION_FORMAT:
                raise CaseError("not a radlabel segmentation file", path)
            if int(meta.get("version", 0)) > SEGMENTATION_VERSION:
                raise CaseError(
                    f"written by a newer radlabel (format version {meta['version']})", path, "update radlabel"
                )
            grid = grid_from_json(meta["grid"])
            layers: list[NDArray[Any]] = []
            for n in range(len(meta["layers"])):
                with archive.open(f"layer_{n}.npy") as member:
                    array = np.lib.format.read_array(member, allow_pickle=False)
                if array.shape != grid.shape or array.dtype not in _LAYER_DTYPES:
                    raise CaseError(f"layer {n} has shape {array.shape} and type {array.dtype}, not a label map", path)
                layers.append(np.require(array, requirements=["C", "W"]))
            segments = {int(s["id"]): Segment.from_json(s) for s in meta["segments"]}
    except FileNotFoundError:
        raise CaseError("the saved segmentation is missing", path) from None
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise CaseError(f"the saved segmentation cannot be read ({exc})", path) from None
    if not layers:
        raise CaseError("the saved segmentation has no layer", path)
    for segment in segments.values():
        if not 0 <= segment.layer < len(layers):
            raise CaseError(f"segment {segment.id} refers to layer {segment.layer}, which is not in the file", path)
    segmentation = Segmentation(grid, layers, dict(sorted(segments.items())))
    return segmentation, int(meta["journal_seq"])
