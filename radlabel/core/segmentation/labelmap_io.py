"""Label-map files <-> :class:`Segmentation`: NIfTI, NRRD, 3D Slicer ``.seg.nrrd`` and MetaImage.

Reading (:func:`read_labelmap`) places a label map on a reference volume's grid by **world geometry**, never
by array order:

- the file's voxel centres are the reference's voxel centres, possibly with axes permuted or flipped, or a
  cropped part of the grid (3D Slicer crops ``.seg.nrrd`` to the segments' extent) -> the voxels are moved
  exactly (``match == "exact"``);
- a different grid that overlaps the image -> nearest-neighbour resampling onto the image grid (ITK's
  convention: the nearest voxel centre, exact halves rounded up, voxels outside the label map 0), with a warning
  (``match == "resampled"``);
- no overlap -> :class:`InputError` naming both files.

Segment names, colours and codes come from, in rising priority: the ``.seg.nrrd`` header
(``Segment{N}_Name/_Color/_LabelValue/_Layer/_Tags``), a JSON sidecar beside the file (same stem +
``.json``), and the ``label_names`` argument (a mapping or a JSON file). The JSON may be radlabel's own
segment table (what :func:`write_labelmap` writes), a plain ``{"1": "liver", ...}`` map (TotalSegmentator's
``label_names_*.json``), an nnU-Net ``dataset.json`` (``"labels"``), or dcmqi segment metadata
(``"segmentAttributes"``, one group per input file). Unnamed labels become "Segment N". Names that match the
terminology list (:mod:`radlabel.core.segmentation.terminology`) get its DICOM codes and, when the file gives
none, its colour.

A single-layer file opens as one layer; a 4D NIfTI/NRRD or a multi-layer ``.seg.nrrd`` as several layers.
Several files read together (dcmqi's ``partial_overlaps-1/2/3.nrrd``) share a layer where their voxels do
not overlap and get their own layer where they do.

Writing (:func:`write_labelmap`) puts all segments in one layer when none overlap (else one layer per
overlap level, as a 4D file), writes NIfTI / NRRD / MetaImage through :mod:`radlabel.core.io.writers` or a
3D Slicer ``.seg.nrrd`` (header keys as Slicer writes them), and a JSON sidecar with the full segment table,
so that a round trip restores names, colours, codes, layers and label values.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from radlabel.core import geometry
from radlabel.core.errors import InputError, OutputError, UnsupportedFormatError
from radlabel.core.grid_match import match_grids, reorder_ijk
from radlabel.core.io.atomic import atomic_write
from radlabel.core.io.nifti import check_readable_file, nearest_orthonormal, one_line
from radlabel.core.io.nrrd import read_nrrd_header
from radlabel.core.io.voxel_files import ImageHeader
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.segmentation import terminology
from radlabel.core.segmentation.model import (
    DEFAULT_COLORS,
    TISSUE,
    AlgorithmInfo,
    AlgorithmType,
    CodedConcept,
    Grid,
    Segment,
    Segmentation,
)
from radlabel.core.volume import Volume

#: Voxel centres closer than this (mm) count as the same point: float32 affines of NIfTI files differ
#: from DICOM positions by ~1e-4 mm over a 500 mm field of view.
GRID_TOLERANCE_MM = 0.01

SIDECAR_FORMAT = "radlabel-segment-table"
SEG_NRRD_SUFFIX = ".seg.nrrd"
#: File name endings a label map may have (longest first, so ``.seg.nrrd`` wins over ``.nrrd``).
LABELMAP_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_NRRD_SUFFIXES = (".nrrd", ".nhdr")
_MAX_LABEL = 65535

LabelNames = Mapping[int, str] | Mapping[str, Any] | str | Path


# --------------------------------------------------------------------------------------------------------
# Segment descriptions from headers and sidecars
# --------------------------------------------------------------------------------------------------------


@dataclass
class LabelInfo:
    """What a header or sidecar says about one label value (every field optional)."""

    name: str | None = None
    color: tuple[int, int, int] | None = None
    category: CodedConcept | None = None
    type: CodedConcept | None = None
    type_modifier: CodedConcept | None = None
    anatomic_region: CodedConcept | None = None
    algorithm_type: AlgorithmType | None = None
    algorithm: AlgorithmInfo | None = None
    segment: Segment | None = None
    """The full row, when the source is radlabel's own segment table."""
    declared: bool = False
    """True when the source declares a segment (kept even if it has no voxel), not only a name."""
    order: int | None = None
    """Position in the source's own segment list (``Segment{N}`` of a ``.seg.nrrd``), which orders the ids."""

    def merged_over(self, base: LabelInfo) -> LabelInfo:
        """This info with fields it lacks taken from ``base``."""
        values = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(base, name)
            for name in (
                "name",
                "color",
                "category",
                "type",
                "type_modifier",
                "anatomic_region",
                "algorithm_type",
                "algorithm",
                "segment",
                "order",
            )
        }
        return LabelInfo(**values, declared=self.declared or base.declared)


LabelKey = tuple[int | None, int]
"""(layer, label value); layer ``None`` means "this label value in any layer" (plain name maps)."""


def _lookup(table: Mapping[LabelKey, LabelInfo], layer: int, value: int) -> LabelInfo | None:
    return table.get((layer, value)) or table.get((None, value))


def _int_label(key: Any, where: str, path: str) -> int:
    try:
        value = int(str(key).strip())
    except ValueError:
        raise InputError(f"{where}: '{key}' is not a label value (a whole number)", path) from None
    if not 0 <= value <= _MAX_LABEL:
        raise InputError(f"{where}: label value {value} is outside 0-{_MAX_LABEL}", path)
    return value


def _dicom_code(data: Any) -> CodedConcept | None:
    if not isinstance(data, dict):
        return None
    value, scheme = data.get("CodeValue"), data.get("CodingSchemeDesignator")
    if not value or not scheme:
        return None
    return CodedConcept(str(value), str(scheme), str(data.get("CodeMeaning", "")))


def _rgb(data: Any) -> tuple[int, int, int] | None:
    if isinstance(data, list | tuple) and len(data) == 3 and all(isinstance(c, int | float) for c in data):
        r, g, b = (round(float(c)) for c in data)
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    return None


def _dcmqi_groups(data: dict[str, Any], path: str) -> list[dict[LabelKey, LabelInfo]]:
    groups = data["segmentAttributes"]
    if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
        raise InputError("'segmentAttributes' must be a list of lists (dcmqi segment metadata)", path)
    result = []
    for n, group in enumerate(groups):
        table: dict[LabelKey, LabelInfo] = {}
        for item in group:
            if not isinstance(item, dict) or "labelID" not in item:
                raise InputError(f"segmentAttributes group {n}: every segment needs a 'labelID'", path)
            value = _int_label(item["labelID"], f"segmentAttributes group {n}", path)
            algorithm_type = item.get("SegmentAlgorithmType")
            algorithm_name = item.get("SegmentAlgorithmName")
            table[(None, value)] = LabelInfo(
                name=item.get("SegmentLabel") or item.get("SegmentDescription"),
                color=_rgb(item.get("recommendedDisplayRGBValue")),
                category=_dicom_code(item.get("SegmentedPropertyCategoryCodeSequence")),
                type=_dicom_code(item.get("SegmentedPropertyTypeCodeSequence")),
                type_modifier=_dicom_code(item.get("SegmentedPropertyTypeModifierCodeSequence")),
                anatomic_region=_dicom_code(item.get("AnatomicRegionSequence")),
                algorithm_type=AlgorithmType(str(algorithm_type))
                if algorithm_type in AlgorithmType.__members__
                else None,
                algorithm=AlgorithmInfo(str(algorithm_name), "") if algorithm_name else None,
                declared=True,
            )
        result.append(table)
    return result


def _plain_names(data: Mapping[Any, Any], path: str, where: str) -> dict[LabelKey, LabelInfo]:
    table: dict[LabelKey, LabelInfo] = {}
    for key, item in data.items():
        value = _int_label(key, where, path)
        if value == 0:
            continue  # background
        if isinstance(item, str):
            table[(None, value)] = LabelInfo(name=item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            table[(None, value)] = LabelInfo(name=item["name"], color=_rgb(item.get("color")))
        else:
            raise InputError(f"{where}: label {value} must map to a name (or an object with a 'name')", path)
    return table


def parse_label_names(data: Any, path: str = "label names") -> list[dict[LabelKey, LabelInfo]]:
    """Label descriptions from a decoded JSON document or a mapping, one table per group (dcmqi has several).

    Accepted: radlabel's segment table, ``{"1": "liver"}`` (TotalSegmentator), ``{"1": {"name": ..,
    "color": [r, g, b]}}``, nnU-Net ``{"labels": {"liver": 1}}`` or ``{"labels": {"1": "liver"}}``, and dcmqi
    ``{"segmentAttributes": [[{"labelID": 1, "SegmentLabel": ..}, ..], ..]}``.
    """
    if not isinstance(data, Mapping):
        raise InputError("label names must be a JSON object (label value -> name)", path)
    if data.get("format") == SIDECAR_FORMAT:
        segments = data.get("segments")
        if not isinstance(segments, list):
            raise InputError("a radlabel segment table needs a 'segments' list", path)
        table: dict[LabelKey, LabelInfo] = {}
        for item in segments:
            try:
                segment = Segment.from_json(item)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"a segment in the table is incomplete ({one_line(exc)})", path) from None
            table[(segment.layer, segment.label_value)] = LabelInfo(
                name=segment.name, color=segment.color, segment=segment, declared=True
            )
        return [table]
    if "segmentAttributes" in data:
        return _dcmqi_groups(dict(data), path)
    if "labels" in data and isinstance(data["labels"], Mapping):
        labels = data["labels"]
        if labels and all(isinstance(v, int) and not isinstance(v, bool) for v in labels.values()):
            return [_plain_names({v: k for k, v in labels.items()}, path, "'labels'")]
        return [_plain_names(labels, path, "'labels'")]
    return [_plain_names(data, path, "label names")]


def read_label_names(source: LabelNames) -> list[dict[LabelKey, LabelInfo]]:
    """:func:`parse_label_names` of a JSON file (path) or of a mapping given directly."""
    if isinstance(source, str | Path):
        path = Path(source)
        check_readable_file(path, "JSON")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not a valid JSON file ({one_line(exc)})", path) from None
        return parse_label_names(data, str(path))
    return parse_label_names(source)


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a label map: same folder and stem, ``.json`` (``liver.nii.gz`` -> ``liver.json``)."""
    p = Path(path)
    name = p.name
    for suffix in LABELMAP_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return p.with_name(name[: -len(suffix)] + ".json")
    return p.with_name(p.stem + ".json")


# --------------------------------------------------------------------------------------------------------
# 3D Slicer .seg.nrrd header
# --------------------------------------------------------------------------------------------------------


def _slicer_code(text: str) -> CodedConcept | None:
    parts = text.split("^")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return CodedConcept(parts[1], parts[0], parts[2] if len(parts) > 2 else "")


def _slicer_terminology(tags: str) -> dict[str, CodedConcept | None]:
    """Codes from a Slicer ``Segment{N}_Tags`` value (``...|TerminologyEntry:ctx~SCT^123^Name~...|``)."""
    for tag in tags.split("|"):
        if tag.startswith("TerminologyEntry:"):
            fields = tag[len("TerminologyEntry:") :].split("~")
            fields += [""] * (7 - len(fields))
            return {
                "category": _slicer_code(fields[1]),
                "type": _slicer_code(fields[2]),
                "type_modifier": _slicer_code(fields[3]),
                "anatomic_region": _slicer_code(fields[5]),
            }
    return {}


def _slicer_segments(keys: Mapping[str, str], n_layers: int, path: str) -> dict[LabelKey, LabelInfo]:
    """Segment descriptions from ``Segment{N}_*`` header keys (numbered from 0, as Slicer writes them)."""
    numbers = sorted({int(m.group(1)) for k in keys if (m := re.fullmatch(r"Segment(\d+)_\w+", k))})
    has_layers = any(k.endswith("_Layer") for k in keys)
    table: dict[LabelKey, LabelInfo] = {}
    for number in numbers:
        prefix = f"Segment{number}_"
        # Slicer before 4.11 wrote one binary layer per segment, without _Layer/_LabelValue keys.
        layer = int(keys.get(prefix + "Layer", "0")) if has_layers else (number if n_layers > 1 else 0)
        value = _int_label(keys.get(prefix + "LabelValue", "1"), prefix + "LabelValue", path)
        if not 0 <= layer < n_layers:
            raise InputError(f"{prefix}Layer is {layer}, but the file has {n_layers} layer(s)", path)
        color = None
        with contextlib.suppress(ValueError):
            rgb = [float(c) for c in keys.get(prefix + "Color", "").split()]
            if len(rgb) == 3:
                color = _rgb([c * 255.0 for c in rgb])
        codes = _slicer_terminology(keys.get(prefix + "Tags", ""))
        table[(layer, value)] = LabelInfo(
            name=keys.get(prefix + "Name") or keys.get(prefix + "ID"),
            color=color,
            category=codes.get("category"),
            type=codes.get("type"),
            type_modifier=codes.get("type_modifier"),
            anatomic_region=codes.get("anatomic_region"),
            declared=True,
            order=number,
        )
    return table


# --------------------------------------------------------------------------------------------------------
# Reading one file onto its own grid
# --------------------------------------------------------------------------------------------------------


@dataclass
class _RawLabelMap:
    path: Path
    layers: list[NDArray[Any]]  # [k, j, i] on the file's grid, uint8/uint16
    affine: NDArray[np.float64]  # voxel -> LPS
    header_table: dict[LabelKey, LabelInfo] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int, int]:
        k, j, i = self.layers[0].shape
        return (i, j, k)


def _label_array(array: NDArray[Any], path: Path) -> NDArray[Any]:
    """Whole-number labels 0..65535 as uint8/uint16, or a clear error."""
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(
                "the voxels hold fractional values, so this is not a label map (a probability map or an image?); "
                "a label map holds whole-number labels",
                path,
            )
    elif array.dtype.kind not in "iu":
        raise InputError(f"voxels of type {array.dtype} cannot be labels", path)
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = array.min(), array.max()
    if low < 0:
        raise InputError(
            f"the label map holds negative values (down to {low}); labels are 0 (background) or more", path
        )
    if high > _MAX_LABEL:
        raise InputError(f"the label map holds values up to {high}; radlabel reads labels up to {_MAX_LABEL}", path)
    return array.astype(np.uint8 if high <= 255 else np.uint16, copy=False)


def _seg_nrrd_keys(path: Path) -> tuple[ImageHeader, dict[str, str]] | None:
    """The NRRD header and its key/value pairs when ``path`` is a 3D Slicer segmentation (or a vector NRRD)."""
    try:
        header = read_nrrd_header(path)
    except OSError as exc:
        raise UnsupportedFormatError(f"not a readable NRRD file ({exc.strerror or exc})", path) from None
    keys = header.fields
    is_slicer = any(k.startswith(("Segment0_", "Segmentation_")) for k in keys)
    if is_slicer or path.name.lower().endswith(SEG_NRRD_SUFFIX) or header.components > 1:
        return header, keys
    return None


def _read_seg_nrrd(path: Path, header: ImageHeader, keys: dict[str, str]) -> _RawLabelMap:
    dimension = header.dimension
    if dimension not in (3, 4):
        raise InputError(f"a segmentation NRRD must be 3D or 4D, this one is {dimension}D", path)
    for data_file in header.data_files:
        if not data_file.is_file():
            raise InputError(f"the voxel data file {data_file.name} that the header names is missing", path)
    array = header.read()
    if dimension == 4:  # 4D scalar: [t, k, j, i] with the 4th NRRD axis as layers
        stack = [array[t] for t in range(array.shape[0])]
    elif header.components > 1:  # "kinds: list domain domain domain" -> [k, j, i, c]
        stack = [array[..., c] for c in range(array.shape[-1])]
    else:
        stack = [array]
    layers = [np.ascontiguousarray(_label_array(a, path)) for a in stack]
    n = 3
    direction = np.asarray(header.direction, float)[:n, :n]
    spacing = np.asarray(header.spacing, float)[:n]
    origin = np.asarray(header.origin, float)[:n]
    direction, shear_warning = nearest_orthonormal(direction, spacing, layers[0].shape[::-1])
    raw = _RawLabelMap(
        path=path,
        layers=layers,
        affine=geometry.affine_from(origin, spacing, direction),
        header_table=_slicer_segments(keys, len(layers), str(path)),
        warnings=[f"{path.name}: {w}" for w in header.warnings],
    )
    if shear_warning:
        raw.warnings.append(f"{path.name}: {shear_warning}")
    return raw


def _read_volume_file(path: Path, progress: Progress) -> _RawLabelMap:
    from radlabel.core.io.loader import scan, volume_format

    if volume_format(path) is None:
        raise UnsupportedFormatError(
            "not a label-map file: radlabel reads label maps from NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr, "
            "3D Slicer .seg.nrrd) and MetaImage (.mha, .mhd) files",
            path,
        )
    if path.name.lower().endswith(_NRRD_SUFFIXES):
        check_readable_file(path, "NRRD")
        slicer = _seg_nrrd_keys(path)
        if slicer is not None:
            return _read_seg_nrrd(path, *slicer)
    loaded = scan(path).series[0].load(progress.report_callback())
    first = loaded.volume
    layers = [np.ascontiguousarray(_label_array(v.array, path)) for v in loaded.volumes]
    return _RawLabelMap(path=path, layers=layers, affine=first.affine, warnings=list(loaded.warnings))


# --------------------------------------------------------------------------------------------------------
# Placing a label map on the reference grid
# --------------------------------------------------------------------------------------------------------


def _corners(high: NDArray[np.float64], low: float = 0.0) -> NDArray[np.float64]:
    """The 8 corners of the index box ``[low, high]`` (i, j, k)."""
    return np.array([[a, b, c] for a in (low, high[0]) for b in (low, high[1]) for c in (low, high[2])], float)


def _extent_text(affine: NDArray[np.float64], size: tuple[int, int, int]) -> str:
    world = geometry.index_to_world(affine, _corners(np.array(size) - 0.5, low=-0.5))
    low, high = world.min(axis=0), world.max(axis=0)
    return "(" + ", ".join(f"{lo:.1f}..{hi:.1f}" for lo, hi in zip(low, high, strict=True)) + ") mm LPS"


def _no_overlap(raw: _RawLabelMap, grid: Grid, reference_name: str) -> InputError:
    ref_size = (grid.shape[2], grid.shape[1], grid.shape[0])
    return InputError(
        f"the label map does not overlap the image {reference_name}: the label map covers "
        f"{_extent_text(raw.affine, raw.size)}, the image {_extent_text(grid.affine, ref_size)}",
        raw.path,
        "check that the label map was drawn on this image (same patient, same scan)",
    )


def _grid_text(affine: NDArray[np.float64], size: tuple[int, int, int]) -> str:
    _, spacing, direction = geometry.decompose_affine(affine)
    return (
        f"{'x'.join(str(s) for s in size)} voxels of {'x'.join(f'{s:.4g}' for s in spacing)} mm, "
        f"{geometry.orientation_code(direction)}"
    )


#: Continuous indices this close below a half-voxel boundary count as on it, so the boundary case follows ITK's
#: rule (round half up; ``-0.5`` is inside, ``n - 0.5`` outside) instead of the sign of floating-point noise.
_HALF_TOLERANCE = 1e-9


def _resample(array: NDArray[Any], affine: NDArray[np.float64], grid: Grid) -> NDArray[Any]:
    """Nearest-neighbour resampling of ``array`` (``[k, j, i]`` on ``affine``) onto ``grid``, as ITK's
    ResampleImageFilter with a NearestNeighborInterpolateImageFunction and default value 0 does it.

    Each output voxel centre is mapped to the source's continuous index c; it is inside when
    ``-0.5 <= c < n - 0.5`` on every axis (ITK's IsInsideBuffer) and takes the value at ``floor(c + 0.5)``
    (ITK's RoundHalfIntegerUp); outside it is 0. With ``f = floor(c + 0.5)`` both tests are ``0 <= f < n``.
    Only the output box that the source's extent can reach is computed, one slice at a time.
    """
    result = np.zeros(grid.shape, dtype=array.dtype)
    source_size = array.shape[::-1]  # (i, j, k)
    # output index (i, j, k, 1) -> source continuous index + 0.5 (+ tolerance): floor() of it is the voxel
    index_map = np.linalg.solve(affine, grid.affine)[:3]
    index_map[:, 3] += 0.5 + _HALF_TOLERANCE
    # the output voxels whose centres can fall inside the source: its extent's corners in output indices, +-1
    back = np.linalg.solve(grid.affine, affine)
    extent = np.array(source_size, float) - 0.5
    corners = np.array(
        [[a, b, c, 1.0] for a in (-0.5, extent[0]) for b in (-0.5, extent[1]) for c in (-0.5, extent[2])]
    )
    reach = corners @ back[:3].T
    out_size = grid.shape[::-1]
    low = [max(int(np.floor(reach[:, axis].min())) - 1, 0) for axis in range(3)]
    high = [min(int(np.ceil(reach[:, axis].max())) + 2, out_size[axis]) for axis in range(3)]
    if any(lo >= hi for lo, hi in zip(low, high, strict=True)):
        return result
    i_out = np.arange(low[0], high[0], dtype=np.float64)
    j_out = np.arange(low[1], high[1], dtype=np.float64)
    # the in-slice part of each source coordinate, [j, i], shared by every slice
    planes = [index_map[axis, 1] * j_out[:, None] + index_map[axis, 0] * i_out[None, :] for axis in range(3)]
    flat_source = array.reshape(-1)
    strides = (1, source_size[0], source_size[0] * source_size[1])
    for k in range(low[2], high[2]):
        flat = np.zeros(planes[0].shape, dtype=np.int64)
        inside = np.ones(planes[0].shape, dtype=bool)
        for axis in range(3):
            voxel = np.floor(planes[axis] + (index_map[axis, 3] + k * index_map[axis, 2])).astype(np.int64)
            inside &= (voxel >= 0) & (voxel < source_size[axis])
            voxel *= strides[axis]
            flat += voxel
        if inside.any():
            result[k, low[1] : high[1], low[0] : high[0]][inside] = flat_source[flat[inside]]
    return result


def _place(
    raw: _RawLabelMap, grid: Grid, reference_name: str, progress: Progress
) -> tuple[list[NDArray[Any]], Literal["exact", "resampled"], list[str]]:
    """The file's layers on the reference grid, how they got there, and warnings."""
    ref_size = (grid.shape[2], grid.shape[1], grid.shape[0])
    warnings: list[str] = []
    index_map = match_grids(raw.affine, raw.size, grid.affine, tolerance_mm=GRID_TOLERANCE_MM)
    if index_map is not None:
        mapped = _corners(np.array(raw.size) - 1.0) @ index_map.matrix.T + index_map.offset
        low, high = mapped.min(axis=0), mapped.max(axis=0)
        if np.any(high < 0) or np.any(low > np.array(ref_size) - 1):
            raise _no_overlap(raw, grid, reference_name)
        placed = []
        for n, layer in enumerate(raw.layers):
            moved = reorder_ijk(layer.transpose(2, 1, 0), index_map, ref_size).transpose(2, 1, 0)
            placed.append(np.ascontiguousarray(moved))
            progress.report((n + 1) / len(raw.layers), f"placing {raw.path.name}")
        lost = sum(int(np.count_nonzero(a)) - int(np.count_nonzero(b)) for a, b in zip(raw.layers, placed, strict=True))
        if lost:
            warnings.append(
                f"{raw.path.name}: {lost} labelled voxel(s) lie outside the image {reference_name} and were left out"
            )
        return placed, "exact", warnings

    coverage = _resample(np.ones(raw.layers[0].shape, np.uint8), raw.affine, grid)
    covered = int(np.count_nonzero(coverage))
    if covered == 0:
        raise _no_overlap(raw, grid, reference_name)
    placed = []
    for n, layer in enumerate(raw.layers):
        placed.append(_resample(layer, raw.affine, grid))
        progress.report((n + 1) / len(raw.layers), f"resampling {raw.path.name}")
    text = (
        f"{raw.path.name}: the label map's grid ({_grid_text(raw.affine, raw.size)}) is not the image's "
        f"({_grid_text(grid.affine, ref_size)}); it was resampled onto the image grid (nearest neighbour)"
    )
    if covered < coverage.size:
        text += f" and covers {100.0 * covered / coverage.size:.3g} % of the image"
    warnings.append(text)
    return placed, "resampled", warnings


# --------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------


def _merge_into(
    layers: list[NDArray[Any]], used: list[set[int]], layer: NDArray[Any], labels: set[int], allow_merge: bool
) -> tuple[int, dict[int, int]]:
    """Put ``layer`` (holding ``labels``) into the first layer it does not overlap, else a new layer.

    Returns the layer index and the label renumbering (old -> new) that avoids clashes in that layer.
    """
    occupied = layer != 0
    for index, target in enumerate(layers if allow_merge else []):
        if np.any(occupied & (target != 0)):
            continue
        taken = set(used[index])
        remap: dict[int, int] = {}
        for value in sorted(labels):
            new = value
            while new in taken:
                new += 1
            remap[value] = new
            taken.add(new)
        if max(remap.values(), default=0) > np.iinfo(target.dtype).max:
            target = layers[index] = target.astype(np.uint16)
        if any(k != v for k, v in remap.items()):
            lut = np.arange(max(labels) + 1 if labels else 1, dtype=np.uint32)
            for old, new in remap.items():
                lut[old] = new
            target[occupied] = lut[layer[occupied]].astype(target.dtype)
        else:
            target[occupied] = layer[occupied]
        used[index] |= set(remap.values())
        return index, remap
    layers.append(layer.copy() if allow_merge else layer)
    used.append(set(labels))
    return len(layers) - 1, {v: v for v in labels}


# --------------------------------------------------------------------------------------------------------
# Public API: reading
# --------------------------------------------------------------------------------------------------------


def _present_labels(layer: NDArray[Any]) -> set[int]:
    """Label values that occur in a layer (one pass, no sort and no copy of the volume)."""
    if not layer.any():
        return set()
    return {n + 1 for n, box in enumerate(ndimage.find_objects(layer)) if box is not None}


@dataclass
class LabelMapImport:
    """A label map read onto a reference grid."""

    segmentation: Segmentation
    match: Literal["exact", "resampled"]
    """``exact``: the file's voxels are the image's (maybe reordered or cropped); ``resampled``: nearest neighbour."""
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    layer: int
    value: int
    info: LabelInfo


def _segment_from(pending: _Pending, segment_id: int) -> Segment:
    info = pending.info
    if info.segment is not None:
        return replace(info.segment, id=segment_id, layer=pending.layer, label_value=pending.value)
    name = (info.name or "").strip() or f"Segment {segment_id}"
    entry = terminology.find(name)
    color = info.color or (entry.color if entry else DEFAULT_COLORS[(segment_id - 1) % len(DEFAULT_COLORS)])
    fields: dict[str, Any] = {}
    if info.type is not None:
        fields.update(category=info.category or TISSUE, type=info.type)
        fields.update(type_modifier=info.type_modifier, anatomic_region=info.anatomic_region)
    elif entry is not None:
        fields.update({k: v for k, v in entry.to_segment_fields().items() if k != "color"})
    if info.algorithm_type is not None:
        fields["algorithm_type"] = info.algorithm_type
    if info.algorithm is not None:
        fields["algorithm"] = info.algorithm
    return Segment(id=segment_id, name=name, color=color, layer=pending.layer, label_value=pending.value, **fields)


def _reference_name(reference: Volume | Grid, given: str | None) -> str:
    if given:
        return given
    if isinstance(reference, Volume):
        for key in ("source", "description", "series_instance_uid"):
            if reference.metadata.get(key):
                return str(reference.metadata[key])
    return "(reference grid)"


def read_labelmap(
    paths: str | Path | Sequence[str | Path],
    reference: Volume | Grid,
    label_names: LabelNames | None = None,
    reference_name: str | None = None,
    progress: ProgressCallback | None = None,
) -> LabelMapImport:
    """Read one label-map file (or several, combined) onto ``reference``'s grid as a :class:`Segmentation`.

    ``label_names`` overrides names from the file header and sidecar: a mapping ``{1: "liver"}`` or a JSON
    file in any of the formats :func:`parse_label_names` accepts. ``reference_name`` names the image in
    messages (default: the volume's source file or description). Raises :class:`InputError` subclasses for
    unreadable files, values that are not labels, and label maps that do not overlap the image.
    """
    files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if not files:
        raise InputError("no label-map file given")
    grid = reference if isinstance(reference, Grid) else Grid.of(reference)
    name = _reference_name(reference, reference_name)
    overall = Progress(progress, what="reading the label map")

    explicit: list[dict[LabelKey, LabelInfo]] = []
    if label_names is not None:
        explicit = read_label_names(label_names)
        if len(explicit) not in (1, len(files)):
            where = str(label_names) if isinstance(label_names, str | Path) else "label names"
            raise InputError(
                f"the label names hold {len(explicit)} segment groups for {len(files)} label-map file(s); "
                "give one group, or one per file in the same order",
                where,
            )

    layers: list[NDArray[Any]] = []
    used: list[set[int]] = []
    pending: list[_Pending] = []
    warnings: list[str] = []
    matches: list[str] = []
    for index, path in enumerate(files):
        step = overall.sub(index / len(files), (index + 1) / len(files))
        raw = _read_volume_file(path, step.sub(0.0, 0.6))
        warnings.extend(raw.warnings)
        table = dict(raw.header_table)
        side = sidecar_path(path)
        if side.is_file():
            for key, info in read_label_names(side)[0].items():
                table[key] = info.merged_over(table.get(key, LabelInfo()))
        if explicit:
            for key, info in explicit[index if len(explicit) > 1 else 0].items():
                table[key] = info.merged_over(table.get(key, LabelInfo()))
        placed, match, place_warnings = _place(raw, grid, name, step.sub(0.6, 1.0))
        first_of_file = len(pending)
        matches.append(match)
        warnings.extend(place_warnings)
        for file_layer, (source_layer, layer) in enumerate(zip(raw.layers, placed, strict=True)):
            present_before = _present_labels(source_layer)
            present_after = _present_labels(layer)
            declared = {
                value
                for (key_layer, value), info in table.items()
                if info.declared and value and (key_layer == file_layer or (key_layer is None and len(raw.layers) == 1))
            }
            labels = present_before | declared
            target, remap = _merge_into(layers, used, layer, labels, allow_merge=index > 0)
            for value in sorted(labels):
                info = _lookup(table, file_layer, value) or LabelInfo()
                if value in present_before and value not in present_after:
                    label_name = info.name or f"label {value}"
                    warnings.append(
                        f"{path.name}: segment '{label_name}' has no voxel left on the image grid (it lies outside "
                        "the image or is thinner than the image's voxels)"
                    )
                pending.append(_Pending(target, remap[value], info))
        # ids follow the file's own segment order where it has one (Slicer's Segment0, Segment1, ...)
        pending[first_of_file:] = sorted(
            pending[first_of_file:], key=lambda p: (p.info.order is None, p.info.order or 0, p.layer, p.value)
        )
    if not layers:
        layers.append(np.zeros(grid.shape, np.uint8))

    segments = _assign_ids(pending, single_file=len(files) == 1, single_layer=len(layers) == 1)
    segmentation = Segmentation(grid, layers, {s.id: s for s in segments})
    overall.report(1.0, "label map read")
    match_kind: Literal["exact", "resampled"] = "resampled" if "resampled" in matches else "exact"
    return LabelMapImport(segmentation, match_kind, warnings, [str(p) for p in files])


def _assign_ids(pending: list[_Pending], single_file: bool, single_layer: bool) -> list[Segment]:
    """Segment ids: the table's own ids (radlabel sidecar), else the label value (one layer), else 1..N."""
    own = [p.info.segment.id for p in pending if p.info.segment is not None]
    if single_file and own and len(own) == len(pending) and len(set(own)) == len(own):
        ids = own
    elif single_layer and len({p.value for p in pending}) == len(pending):
        ids = [p.value for p in pending]
    else:
        ids = list(range(1, len(pending) + 1))
    ordered = sorted(zip(ids, pending, strict=True), key=lambda item: item[0])
    return [_segment_from(p, segment_id) for segment_id, p in ordered]


# --------------------------------------------------------------------------------------------------------
# Public API: writing
# --------------------------------------------------------------------------------------------------------


def _flat_layers(segmentation: Segmentation) -> tuple[list[NDArray[Any]], dict[int, tuple[int, int]]]:
    """As few layers as the overlaps allow (one when no voxel is in two segments), and where each segment went."""
    layers: list[NDArray[Any]] = []
    used: list[set[int]] = []
    placement: dict[int, tuple[int, int]] = {}
    by_layer: dict[int, list[Segment]] = {}
    for segment in segmentation.segments.values():
        by_layer.setdefault(segment.layer, []).append(segment)
    for source_index, layer in enumerate(segmentation.layers):
        members = by_layer.get(source_index, [])
        keep = np.isin(layer, [s.label_value for s in members]) if members else np.zeros(layer.shape, bool)
        cleaned = np.where(keep, layer, 0).astype(layer.dtype)
        labels = {s.label_value for s in members}
        target, remap = _merge_into(layers, used, cleaned, labels, allow_merge=True)
        for segment in members:
            placement[segment.id] = (target, remap[segment.label_value])
    if not layers:
        layers.append(np.zeros(segmentation.grid.shape, np.uint8))
    return layers, placement


def _nrrd_float(value: float) -> str:
    return repr(float(value))


def _write_seg_nrrd(path: Path, layers: list[NDArray[Any]], segments: list[Segment], grid: Grid) -> None:
    dtype = np.uint16 if any(a.dtype == np.uint16 for a in layers) else np.uint8
    k, j, i = grid.shape
    affine = grid.affine
    axes = " ".join("(" + ",".join(_nrrd_float(v) for v in affine[:3, n]) + ")" for n in range(3))
    multi = len(layers) > 1
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        f"type: {'unsigned short' if dtype == np.uint16 else 'unsigned char'}",
        f"dimension: {4 if multi else 3}",
        "space: left-posterior-superior",
        f"sizes: {f'{len(layers)} ' if multi else ''}{i} {j} {k}",
        f"space directions: {'none ' if multi else ''}{axes}",
        f"kinds: {'list ' if multi else ''}domain domain domain",
        "endian: little",
        "encoding: gzip",
        "space origin: (" + ",".join(_nrrd_float(v) for v in grid.origin) + ")",
        "Segmentation_ContainedRepresentationNames:=Binary labelmap|",
        "Segmentation_MasterRepresentation:=Binary labelmap",
        "Segmentation_ReferenceImageExtentOffset:=0 0 0",
    ]
    for number, segment in enumerate(segments):
        prefix = f"Segment{number}_"
        mask = layers[segment.layer] == segment.label_value
        extent = "0 -1 0 -1 0 -1"
        if mask.any():
            spans = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in (2, 1, 0)]
            extent = " ".join(f"{int(s[0])} {int(s[-1])}" for s in spans)

        def code(concept: CodedConcept | None) -> str:
            return f"{concept.scheme}^{concept.value}^{concept.meaning}" if concept else "^^"

        entry = "~".join(
            [
                "Segmentation category and type - radlabel",
                code(segment.category),
                code(segment.type),
                code(segment.type_modifier),
                "Anatomic codes - DICOM master list",
                code(segment.anatomic_region),
                "^^",
            ]
        )
        clean = re.sub(r"[\r\n]+", " ", segment.name)
        tags = re.sub(r"[|\r\n]+", " ", entry)
        lines += [
            f"{prefix}Color:=" + " ".join(f"{c / 255.0:.6g}" for c in segment.color),
            f"{prefix}ColorAutoGenerated:=0",
            f"{prefix}Extent:={extent}",
            f"{prefix}ID:=Segment_{segment.id}",
            f"{prefix}LabelValue:={segment.label_value}",
            f"{prefix}Layer:={segment.layer}",
            f"{prefix}Name:={clean}",
            f"{prefix}NameAutoGenerated:=0",
            f"{prefix}Tags:=TerminologyEntry:{tags}|",
        ]
    header = ("\n".join(lines) + "\n\n").encode("utf-8")
    data = layers[0] if not multi else np.stack(layers, axis=-1)  # [k, j, i(, layer)]: NRRD's first axis fastest
    payload = np.ascontiguousarray(data.astype(np.dtype(dtype).newbyteorder("<"), copy=False)).tobytes()
    with open(path, "wb") as f:
        f.write(header)
        f.write(gzip.compress(payload, compresslevel=6))


def write_labelmap(
    segmentation: Segmentation,
    path: str | Path,
    sidecar: bool = True,
    progress: ProgressCallback | None = None,
) -> Path:
    """Write the label map (NIfTI, NRRD, MetaImage by extension; ``.seg.nrrd`` for 3D Slicer) + JSON sidecar.

    All segments share one layer unless voxels overlap; then the file is 4D, one volume per layer (for
    ``.seg.nrrd`` the Slicer multi-layer layout). The sidecar (:func:`sidecar_path`) holds the segment table,
    including the layer and label value each segment has in the written file. Returns the label-map path.
    """
    from radlabel.core.io.writers import EXTENSIONS, save_volume, save_volumes

    target = Path(path).expanduser()
    name = target.name.lower()
    is_seg_nrrd = name.endswith(SEG_NRRD_SUFFIX)
    if not is_seg_nrrd and not any(name.endswith(ext) and len(name) > len(ext) for ext in EXTENSIONS):
        raise OutputError(
            "cannot tell the label-map format from the file name; use .nii.gz, .nii, .nrrd, .seg.nrrd, .nhdr, .mha "
            "or .mhd",
            target,
        )
    if not target.parent.is_dir():
        raise OutputError(f"the folder {target.parent} does not exist", target)
    layers, placement = _flat_layers(segmentation)
    segments = [
        replace(s, layer=placement[s.id][0], label_value=placement[s.id][1]) for s in segmentation.segments.values()
    ]
    grid = segmentation.grid
    if is_seg_nrrd:
        atomic_write(target, lambda p: _write_seg_nrrd(p, layers, segments, grid))
    else:
        origin, spacing, direction = np.array(grid.origin), np.array(grid.spacing), np.array(grid.direction)
        volumes = [Volume(layer, origin, spacing, direction) for layer in layers]
        if len(volumes) == 1:
            save_volume(volumes[0], target, progress)
        else:
            save_volumes(volumes, target, progress)
    if sidecar:
        table = {
            "format": SIDECAR_FORMAT,
            "version": 1,
            "label_map": target.name,
            "layers": len(layers),
            "segments": [s.to_json() for s in segments],
        }
        text = json.dumps(table, indent=2, ensure_ascii=False) + "\n"
        atomic_write(sidecar_path(target), lambda p: Path(p).write_text(text, encoding="utf-8"))
    return target


__all__ = [
    "GRID_TOLERANCE_MM",
    "LabelInfo",
    "LabelMapImport",
    "parse_label_names",
    "read_label_names",
    "read_labelmap",
    "sidecar_path",
    "write_labelmap",
]
