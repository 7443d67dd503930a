"""A synthetic abdominal CT with one liver lesion and its exact mask, for the demo, tests and benchmarks.

The project ships no patient data (DESIGN.md, "Test data"), so the demo and many tests run on this phantom.
It is generated, not stored: deterministic for a given seed, in HU, int16, on an LPS grid centred on the
world origin. Anatomy is drawn in millimetres relative to the field of view, so any shape and spacing give
a plausible body; the lesion keeps its ~12 mm radius (shrunk only if the liver would not hold it).

The values are those of an unenhanced scan (liver ~60 HU, lesion ~15 HU, kidneys ~30 HU) with mildly
correlated noise of SD ~10 HU, so the lesion is plain at a soft-tissue window but a global threshold also
picks up soft tissue, kidneys and noise: good enough to exercise AI prompts, editing tools and label QA.

Only numpy is used: the window builds the phantom while it starts, and importing SciPy alone would take
longer than making the whole phantom (~0.1 s).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from radlabel.core.volume import Volume

DEMO_LESION_NAME = "Liver lesion"
DEMO_DESCRIPTION = "radlabel demo phantom"
DEMO_PATIENT_NAME = "Demo^Phantom"
DEMO_PATIENT_ID = "RADLABEL-DEMO"

#: Nominal lesion radius (mm).
LESION_RADIUS_MM = 12.0
#: Target standard deviation of the image noise (HU).
NOISE_SD_HU = 10.0
#: In-plane blur (voxels) that stands in for the scanner's point spread and softens edges (partial volume).
_BLUR_SIGMA = 0.7
#: The blur kernel reaches this many sigmas (as `scipy.ndimage.gaussian_filter1d` does by default).
_BLUR_TRUNCATE = 4.0


class DemoTissue(IntEnum):
    """Tissue codes of :func:`demo_tissue_map`."""

    AIR = 0
    FAT = 1
    SOFT_TISSUE = 2
    LIVER = 3
    KIDNEY = 4
    BONE = 5
    DISC = 6
    SPINAL_CANAL = 7
    LUNG = 8
    LESION = 9


#: Mean HU of each tissue before blur and noise.
TISSUE_HU: dict[DemoTissue, float] = {
    DemoTissue.AIR: -1000.0,
    DemoTissue.FAT: -100.0,
    DemoTissue.SOFT_TISSUE: 40.0,
    DemoTissue.LIVER: 60.0,
    DemoTissue.KIDNEY: 30.0,
    DemoTissue.BONE: 700.0,
    DemoTissue.DISC: 90.0,
    DemoTissue.SPINAL_CANAL: 15.0,
    DemoTissue.LUNG: -850.0,
    DemoTissue.LESION: 15.0,
}


def _grid(
    shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32], NDArray[np.float64]]:
    """Broadcastable LPS coordinates (mm) of voxel centres: x (1,1,ni), y (1,nj,1), z (nk,1,1), and origin."""
    nk, nj, ni = shape
    sizes = np.array([ni, nj, nk], dtype=float)
    origin = -(sizes - 1) / 2 * np.asarray(spacing, dtype=float)
    x = (origin[0] + np.arange(ni) * spacing[0]).astype(np.float32)[None, None, :]
    y = (origin[1] + np.arange(nj) * spacing[1]).astype(np.float32)[None, :, None]
    z = (origin[2] + np.arange(nk) * spacing[2]).astype(np.float32)[:, None, None]
    return x, y, z, origin


_Box = tuple[slice, slice, slice]


def _box(
    x: NDArray[np.float32],
    y: NDArray[np.float32],
    z: NDArray[np.float32],
    centre: tuple[float, float, float],
    reach: tuple[float, float, float],
) -> _Box | None:
    """Index box [k, j, i] of the voxels within ``reach`` (mm, per axis) of ``centre``; None when empty."""
    slices = []
    for coords, c, r in (
        (z[:, 0, 0], centre[2], reach[2]),
        (y[0, :, 0], centre[1], reach[1]),
        (x[0, 0, :], centre[0], reach[0]),
    ):
        inside = np.nonzero(np.abs(coords - c) <= r)[0]
        if inside.size == 0:
            return None
        slices.append(slice(int(inside[0]), int(inside[-1]) + 1))
    return (slices[0], slices[1], slices[2])


def _paint_ellipsoid(
    labels: NDArray[np.uint8],
    grid: tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
    centre: tuple[float, float, float],
    semi: tuple[float, float, float],
    value: DemoTissue,
    within: NDArray[np.bool_] | None = None,
    over: DemoTissue | None = None,
) -> None:
    """Set ``value`` inside an axis-aligned ellipsoid, only where ``within`` holds and (if given) the label
    is ``over``. Works on the ellipsoid's bounding box: the full grid would cost ~10x more on large shapes."""
    x, y, z = grid
    box = _box(x, y, z, centre, semi)
    if box is None:
        return
    d = (
        ((x[..., box[2]] - centre[0]) / semi[0]) ** 2
        + ((y[:, box[1], :] - centre[1]) / semi[1]) ** 2
        + ((z[box[0]] - centre[2]) / semi[2]) ** 2
    )
    mask = d <= 1.0
    region = labels[box]
    if within is not None:
        mask &= within[box]
    if over is not None:
        mask &= region == over
    np.copyto(region, np.uint8(value), where=mask)


def _anatomy(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Tissue label map [k, j, i] and the grid origin."""
    x, y, z, origin = _grid(shape, spacing)
    grid = (x, y, z)
    nk, nj, ni = shape
    half = np.array([ni, nj, nk], dtype=float) * np.asarray(spacing, dtype=float) / 2
    # LPS: +x is the patient's left, +y posterior, +z superior; slice 0 is the most inferior.
    a, b, zr = float(0.9 * half[0]), float(0.76 * half[1]), float(half[2])

    # Elliptical torso that narrows a little towards the chest, with a rim of subcutaneous fat.
    fat = max(0.09 * min(a, b), 2.0 * max(spacing[0], spacing[1]))
    taper_sq = ((1.0 - 0.04 * (z / zr)) ** 2).astype(np.float32)
    body = (x / a) ** 2 + (y / b) ** 2 <= taper_sq
    inner = (x / (a - fat)) ** 2 + (y / (b - fat)) ** 2 <= taper_sq
    # FAT = 1 and SOFT_TISSUE = 2, and inner lies within body, so their sum is the label map so far.
    labels = body.astype(np.uint8)
    labels += inner

    # Lungs fill the upper part of the field; the liver dome pushes into the right lung base below.
    for side in (-1.0, 1.0):
        _paint_ellipsoid(
            labels, grid, (side * 0.45 * a, 0.05 * b, 0.85 * zr), (0.36 * a, 0.7 * b, 0.5 * zr), DemoTissue.LUNG, inner
        )
    liver_c = (-0.42 * a, -0.05 * b, 0.15 * zr)
    liver_s = (0.40 * a, 0.60 * b, 0.48 * zr)
    _paint_ellipsoid(labels, grid, liver_c, liver_s, DemoTissue.LIVER, inner)

    # Kidneys sit in perirenal fat, which is what makes them stand out on an unenhanced scan.
    for side in (-1.0, 1.0):
        centre = (side * 0.40 * a, 0.32 * b, -0.30 * zr)
        semi = (0.15 * a, 0.22 * b, 0.22 * zr)
        margin = 0.06 * b
        perirenal = (semi[0] + margin, semi[1] + margin, semi[2] + margin)
        _paint_ellipsoid(labels, grid, centre, perirenal, DemoTissue.FAT, inner)
        _paint_ellipsoid(labels, grid, centre, semi, DemoTissue.KIDNEY, inner)

    # Mesenteric fat and a few bowel gas pockets in the left anterior abdomen, below the liver; their
    # places come from the seed so that different seeds give visibly different cases.
    rng = np.random.default_rng([seed, 2])
    below_liver = liver_c[2] - 0.3 * liver_s[2]
    for n in range(7):
        centre = (rng.uniform(0.0, 0.55) * a, rng.uniform(-0.65, -0.1) * b, rng.uniform(-0.8, 0.0) * zr)
        size = float(rng.uniform(0.06, 0.12) * b)
        semi = (size, size * 0.8, min(size * 2.0, max(below_liver - centre[2], 1e-3)))
        tissue = DemoTissue.AIR if n < 3 else DemoTissue.FAT
        _paint_ellipsoid(labels, grid, centre, semi, tissue, inner, over=DemoTissue.SOFT_TISSUE)

    # Vertebral column: bodies separated by discs, a ring-shaped arch around the canal, a spinous process.
    # The column runs through every slice, so it is drawn as 2D masks repeated along k.
    vb_r, vb_y = 0.19 * b, 0.40 * b
    canal_r = 0.09 * b
    canal_y = vb_y + vb_r + canal_r + 0.02 * b
    arch_r = canal_r + 0.07 * b
    x2, y2 = x[0], y[0]
    vertebral_body = np.hypot(x2, y2 - vb_y) <= vb_r
    r_canal = np.hypot(x2, y2 - canal_y)
    process = (np.abs(x2) <= 0.035 * b) & (y2 > canal_y) & (y2 <= canal_y + arch_r + 0.08 * b)
    bone_2d = vertebral_body | (r_canal <= arch_r) | process
    column = labels[:, bone_2d]
    column[inner[:, bone_2d]] = DemoTissue.BONE
    level = 30.0  # mm between vertebral levels
    disc = np.abs(((z[:, 0, 0] - origin[2]) % level) - level / 2) < 3.0
    column[np.ix_(disc, vertebral_body[bone_2d])] = DemoTissue.DISC
    labels[:, bone_2d] = column
    labels[:, r_canal <= canal_r] = DemoTissue.SPINAL_CANAL

    _paint_lesion(labels, grid, liver_c, liver_s, spacing, seed)
    return labels, origin


def _paint_lesion(
    labels: NDArray[np.uint8],
    grid: tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
    liver_c: tuple[float, float, float],
    liver_s: tuple[float, float, float],
    spacing: tuple[float, float, float],
    seed: int,
) -> None:
    """A roughly spherical lesion whose radius varies with direction (lobulated, like a real metastasis),
    drawn only over liver so that it is inside the liver by construction."""
    x, y, z = grid
    rng = np.random.default_rng([seed, 1])
    # Off the liver centre so it is not on the slice/row/column a naive test would look at first.
    centre = tuple(float(c + f * s) for c, f, s in zip(liver_c, (-0.10, -0.12, 0.20), liver_s, strict=True))
    # Keep the whole lesion (with its bumps, up to +20 %) well inside the liver ellipsoid.
    radius = min(LESION_RADIUS_MM, float(min(liver_s)) * 0.55 / 1.2)
    radius = max(radius, 1.5 * max(spacing))
    reach = radius * 1.25
    box = _box(x, y, z, (centre[0], centre[1], centre[2]), (reach, reach, reach))
    if box is None:
        return
    dx = (x[..., box[2]] - centre[0]).astype(np.float64)
    dy = (y[:, box[1], :] - centre[1]).astype(np.float64)
    dz = (z[box[0]] - centre[2]).astype(np.float64)
    r = np.sqrt(dx**2 + dy**2 + dz**2)
    safe = np.maximum(r, 1e-6)
    ux, uy, uz = dx / safe, dy / safe, dz / safe
    bumps = np.zeros(r.shape)
    for _ in range(4):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        freq = int(rng.integers(2, 5))
        cos_angle = np.clip(ux * v[0] + uy * v[1] + uz * v[2], -1.0, 1.0)
        bumps += 0.05 * np.cos(freq * np.arccos(cos_angle) + rng.uniform(0, 2 * np.pi))
    region = labels[box]
    np.copyto(region, np.uint8(DemoTissue.LESION), where=(r <= radius * (1.0 + bumps)) & (region == DemoTissue.LIVER))


def demo_tissue_map(
    shape: tuple[int, int, int] = (96, 192, 192),
    spacing: tuple[float, float, float] = (0.9, 0.9, 2.5),
    seed: int = 0,
) -> NDArray[np.uint8]:
    """The phantom's tissue labels [k, j, i] (values of :class:`DemoTissue`), on the grid of :func:`make_demo_ct`."""
    labels, _ = _anatomy(_check_shape(shape), _check_spacing(spacing), seed)
    return labels


def make_demo_ct(
    shape: tuple[int, int, int] = (96, 192, 192),
    spacing: tuple[float, float, float] = (0.9, 0.9, 2.5),
    seed: int = 0,
) -> tuple[Volume, NDArray[np.bool_]]:
    """A synthetic abdominal CT (HU, int16) and the exact mask of its liver lesion.

    ``shape`` is [k, j, i] (slices, rows, columns); ``spacing`` is (i, j, k) in mm, as everywhere in radlabel.
    The grid is LPS with identity direction and its centre at the world origin. The same arguments always
    give the same volume. The mask has the volume's shape and marks the voxels drawn as lesion.
    """
    shape = _check_shape(shape)
    spacing = _check_spacing(spacing)
    labels, origin = _anatomy(shape, spacing, seed)
    lut = np.array([TISSUE_HU[DemoTissue(n)] for n in range(len(DemoTissue))], dtype=np.float32)

    # Real CT noise is spatially correlated and edges are soft; one in-plane blur of image + noise gives
    # both. One 1D pass keeps sum(kernel**2) of the noise variance, two keep its square, so raw noise of
    # SD NOISE_SD_HU / sum(kernel**2) ends up with SD NOISE_SD_HU. The raw noise is uniform (a third of the
    # cost of normal samples): the blur averages about eight independent samples into each voxel, which
    # makes it nearly Gaussian.
    kernel = _gaussian_kernel(_BLUR_SIGMA)
    noise_scale = np.float32(NOISE_SD_HU / float(np.sum(kernel**2)) * np.sqrt(12.0))
    rng = np.random.default_rng([seed, 0])
    array = np.empty(shape, dtype=np.int16)
    # Slabs of slices keep the float work cache-sized and peak memory low on benchmark-sized volumes
    # (the blur is in-plane, so slabs do not interact).
    slab = 16
    for k0 in range(0, shape[0], slab):
        part = lut[labels[k0 : k0 + slab]]
        noise = rng.random(part.shape, dtype=np.float32)
        noise -= np.float32(0.5)
        noise *= noise_scale
        part += noise
        for axis in (1, 2):
            _blur_axis(part, kernel, axis, scratch=noise)
        np.rint(part, out=part)
        np.clip(part, -1024, 3071, out=part)
        array[k0 : k0 + slab] = part

    metadata: dict[str, Any] = {
        "modality": "CT",
        "description": DEMO_DESCRIPTION,
        "patient_name": DEMO_PATIENT_NAME,
        "patient_id": DEMO_PATIENT_ID,
        "demo": True,
    }
    volume = Volume(array=array, origin=origin, spacing=np.array(spacing), direction=np.eye(3), metadata=metadata)
    return volume, labels == DemoTissue.LESION


def _gaussian_kernel(sigma: float) -> NDArray[np.float64]:
    radius = int(_BLUR_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    result: NDArray[np.float64] = weights / weights.sum()
    return result


def _blur_axis(
    values: NDArray[np.float32], kernel: NDArray[np.float64], axis: int, scratch: NDArray[np.float32]
) -> None:
    """Convolve ``values`` in place along ``axis`` with a symmetric ``kernel``, edges repeated (SciPy's
    ``mode="nearest"``); ``scratch`` is a buffer of the same shape."""
    radius = len(kernel) // 2
    size = values.shape[axis]
    widths = [(0, 0)] * values.ndim
    widths[axis] = (radius, radius)
    padded = np.pad(values, widths, mode="edge")

    def shifted(start: int) -> NDArray[np.float32]:
        index = [slice(None)] * values.ndim
        index[axis] = slice(start, start + size)
        return padded[tuple(index)]

    np.multiply(shifted(radius), np.float32(kernel[radius]), out=values)
    for offset in range(1, radius + 1):  # symmetric: one multiply per pair of taps
        np.add(shifted(radius - offset), shifted(radius + offset), out=scratch)
        scratch *= np.float32(kernel[radius + offset])
        values += scratch


def _check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(int(n) < 8 for n in shape):
        raise ValueError(f"demo shape must be three sizes [k, j, i] of at least 8, got {shape}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _check_spacing(spacing: tuple[float, float, float]) -> tuple[float, float, float]:
    if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
        raise ValueError(f"demo spacing must be three positive sizes (i, j, k) in mm, got {spacing}")
    return (float(spacing[0]), float(spacing[1]), float(spacing[2]))
