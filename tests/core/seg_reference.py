"""Independent readers of exported segmentations (dciodvfy, dcmqi, highdicom), compared in world space."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from radlabel.core import geometry
from radlabel.core.grid_match import match_grids, reorder_ijk
from radlabel.core.segmentation.model import Grid, Segmentation

#: dicom3tools 2022 (Debian 12) predates the Label Map Segmentation SOP class (Sup 243, 2024): it does not
#: know the IOD and applies the old rule "segment numbers start at 1" to the background segment 0 that
#: LABELMAP SEGs carry (dcmqi's own LABELMAP files get the same two errors).
LABELMAP_UNKNOWN_TO_DCIODVFY = (
    "Error - Information Object Not found",
    "Error - SegmentNumber not monotonically increasing from one by one - have SegmentSequence item number 1 "
    "(from one) with SegmentNumber of 0",
)


def tool(name: str) -> str:
    """Path of an external checker; fails in CI (where .ci/run installs it), skips elsewhere."""
    candidates = [shutil.which(name), str(Path(sys.executable).parent / name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    message = f"{name} is not installed (apt-get install dicom3tools / pip install dcmqi)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for ``path`` (the known LABELMAP gaps of this dciodvfy version removed)."""
    result = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120)
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
    errors = [line for line in lines if line.startswith("Error")]
    if str(pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID) == "1.2.840.10008.5.1.4.1.1.66.7":
        errors = [e for e in errors if e not in LABELMAP_UNKNOWN_TO_DCIODVFY]
    return errors


def _image_affine(image: sitk.Image) -> np.ndarray:
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    return geometry.affine_from(image.GetOrigin(), image.GetSpacing(), direction)


def _on_grid(array_kji: np.ndarray, affine_ijk: np.ndarray, grid: Grid, atol: float = 0.02) -> np.ndarray:
    k, j, i = array_kji.shape
    index_map = match_grids(affine_ijk, (i, j, k), grid.affine, tolerance_mm=atol)
    assert index_map is not None, f"grid differs:\n{np.round(affine_ijk, 4)}\nours\n{np.round(grid.affine, 4)}"
    size = (grid.shape[2], grid.shape[1], grid.shape[0])
    return reorder_ijk(array_kji.transpose(2, 1, 0), index_map, size).transpose(2, 1, 0)


def dcmqi_masks(
    path: Path, grid: Grid, workdir: Path, fractional: bool = False, merge: bool = False
) -> dict[str, np.ndarray]:
    """segimage2itkimage's reading of a SEG, one boolean mask per segment label, on ``grid``."""
    out = workdir / f"dcmqi_{path.stem}"
    out.mkdir(parents=True, exist_ok=True)
    options = ["--mergeSegments"] if merge else []
    result = subprocess.run(
        [tool("segimage2itkimage"), "--inputDICOM", str(path), "--outputDirectory", str(out), "-t", "nrrd", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((out / "meta.json").read_text())
    masks = {}
    for group, attributes in enumerate(meta["segmentAttributes"], start=1):
        image = sitk.ReadImage(str(out / f"{group}.nrrd"))
        array = sitk.GetArrayFromImage(image)
        placed = _on_grid(array, _image_affine(image), grid)
        for attribute in attributes:
            value = int(attribute["labelID"])
            if fractional:
                masks[attribute["SegmentLabel"]] = placed >= 128  # raw 0..255 values of MaximumFractionalValue 255
            else:
                masks[attribute["SegmentLabel"]] = placed == value
    return masks


def highdicom_masks(path: Path, grid: Grid) -> dict[str, np.ndarray]:
    """highdicom's reading of a SEG (``get_volume``), one boolean mask per segment label, on ``grid``."""
    seg = hd.seg.segread(path)
    masks = {}
    for number in seg.segment_numbers:
        label = seg.get_segment_description(number).segment_label
        try:
            volume = seg.get_volume(segment_numbers=[number], combine_segments=False)
        except (ValueError, RuntimeError, IndexError):
            masks[label] = np.zeros(grid.shape, bool)  # a described segment without frames
            continue
        array = volume.array[..., 0] if volume.array.ndim == 4 else volume.array
        affine_ijk = volume.affine[:, [2, 1, 0, 3]]  # highdicom indexes (slice, row, column)
        placed = _on_grid(array, affine_ijk, grid)
        masks[label] = placed >= 0.5 if placed.dtype.kind == "f" else placed > 0
    return masks


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(a & b) / total


def assert_same_segments(ours: Segmentation, theirs: dict[str, np.ndarray], who: str) -> None:
    names = {s.name for s in ours.segments.values()}
    assert names == set(theirs), f"{who}: segments {sorted(theirs)} != ours {sorted(names)}"
    for segment in ours.segments.values():
        score = dice(ours.mask(segment.id), theirs[segment.name])
        assert score == 1.0, f"{who}: segment {segment.name} Dice {score}"
