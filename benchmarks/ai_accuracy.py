"""LiteMedSAM accuracy on the labelled tumours and organs of ../shared/data, with and without adaptive zoom.

    python benchmarks/ai_accuracy.py [--cases brain1,breast1,...] [--stride N] [--no-3d] [--json OUT]

Cases: pyradiomics brain1 (GBM, T1+Gd) and breast1 (lesion), BraTS 2013 pat0001 whole tumour and tumour core on
FLAIR, TotalSegmentator organs on the 3 mm CT NIfTI (liver, spleen, kidneys, stomach) and small structures on
the 512 x 512 CT DICOM (adrenal gland, inferior vena cava, portal/splenic vein, aorta).

Boxes come from the reference masks (bounding box + 2 px margin), slice by slice along k. For every case:

- largest slice: Dice on the slice where the reference is largest;
- all slices: mean Dice over the slices holding the object, and over those where it covers < 300 px;
- 3D: a box on the middle slice of the object (middle of its k extent), then propagation in both directions
  (box from the previous slice's mask); Dice over the whole volume, and the slices reached vs the reference.

Each figure is printed without zoom ("full": the whole slice is encoded, MedSAM's upstream preprocessing) and
with the plugin's adaptive zoom side by side. Targets (issue 6): median 2D Dice >= 0.85 on the largest slice,
3D propagation Dice >= 0.75, and a clear gain from zoom where the object is < 300 px. Reference figures
measured upstream (no zoom): brain1 0.870, BraTS whole tumour FLAIR 0.844, breast lesion 0.720.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SMALL_PX = 300
MARGIN_PX = 2
TARGET_2D, TARGET_3D = 0.85, 0.75


@dataclass
class Context:
    """A minimal PluginContext for running a plugin in this process."""

    device: str
    cache: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False

    def progress(self, fraction: float, message: str = "") -> None:
        pass


@dataclass
class Case:
    name: str
    image: np.ndarray
    spacing: tuple[float, float, float]
    mask: np.ndarray
    modality: str
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    volume_id: str = ""


def shared_data() -> Path:
    for candidate in (os.environ.get("RADLABEL_SHARED_DATA", ""), str(ROOT.parent / "shared" / "data")):
        if candidate and (Path(candidate) / "MANIFEST.md").is_file():
            return Path(candidate)
    sys.exit("../shared/data (or $RADLABEL_SHARED_DATA) not found")


def load_cases(data: Path, wanted: set[str] | None) -> list[Case]:
    from radlabel.core.io.loader import load

    def volume(relative: str) -> Any:
        return load(data / relative).volume

    def case(name: str, image_path: str, mask: np.ndarray, modality: str, image: Any = None) -> Case:
        image = image if image is not None else volume(image_path)
        return Case(
            name,
            image.array,
            tuple(float(s) for s in image.spacing),  # type: ignore[arg-type]
            mask,
            modality,
            tuple(float(v) for v in image.origin),  # type: ignore[arg-type]
            tuple(tuple(float(v) for v in row) for row in image.direction),
            volume_id=image_path,
        )

    cases: list[Case] = []

    def want(name: str) -> bool:
        return wanted is None or name in wanted or name.split(":")[0] in wanted

    if want("brain1"):
        base = "pyradiomics/brain1_gbm_t1gd_tumour_label/"
        cases.append(case("brain1", base + "brain1_image.nrrd", volume(base + "brain1_label.nrrd").array > 0, "MR"))
    if want("breast1"):
        base = "pyradiomics/breast1_mri_lesion_label/"
        cases.append(case("breast1", base + "breast1_image.nrrd", volume(base + "breast1_label.nrrd").array > 0, "MR"))
    if want("brats") or want("brats:wt") or want("brats:tc"):
        base = "deepmedic_brats2015/brats_2013_pat0001_1/"
        labels = volume(base + "OTMultiClass.nii.gz").array
        flair = volume(base + "Flair_subtrMeanDivStd.nii.gz")
        if want("brats:wt"):
            cases.append(case("brats:wt", base + "Flair_subtrMeanDivStd.nii.gz", labels > 0, "MR", flair))
        if want("brats:tc"):
            core = np.isin(labels, (1, 3, 4))
            cases.append(case("brats:tc", base + "Flair_subtrMeanDivStd.nii.gz", core, "MR", flair))
    base = "totalsegmentator/ct_nifti_with_multilabel_seg/"
    if any(want(f"ts:{organ}") for organ in ("liver", "spleen", "kidney_left", "kidney_right", "stomach")) or want(
        "ts"
    ):
        names = json.loads((data / base / "label_names_total.json").read_text())
        values = {v: int(k) for k, v in names.items()}
        seg = volume(base + "example_seg.nii.gz").array
        ct = volume(base + "example_ct_sm.nii.gz")
        for organ in ("liver", "spleen", "kidney_left", "kidney_right", "stomach"):
            if want(f"ts:{organ}") or want("ts"):
                cases.append(case(f"ts:{organ}", base + "example_ct_sm.nii.gz", seg == values[organ], "CT", ct))
    small_structures = ("adrenal_gland_right", "inferior_vena_cava", "portal_vein_and_splenic_vein", "aorta")
    if want("ts512") or any(want(f"ts512:{name}") for name in small_structures):
        base512 = data / "totalsegmentator" / "ct_dicom_with_multilabel_seg"
        names = json.loads((base512 / "seg_nifti" / "label_names_total.json").read_text())
        values = {v: int(k) for k, v in names.items()}
        ct512 = load(base512 / "image_dicom").volume
        seg512 = load(base512 / "seg_nifti" / "example_seg_dicom.nii.gz").volume
        # the label map's rows run the other way (MANIFEST): flip j so it lies on the CT's grid
        flipped = seg512.array[:, ::-1, :]
        top = seg512.origin + seg512.direction[:, 1] * seg512.spacing[1] * (seg512.array.shape[1] - 1)
        if not (
            np.allclose(top, ct512.origin, atol=1e-3) and np.allclose(-seg512.direction[:, 1], ct512.direction[:, 1])
        ):
            sys.exit("TotalSegmentator DICOM label map does not lie on the CT grid after flipping j")
        for name in small_structures:
            if want("ts512") or want(f"ts512:{name}"):
                cases.append(case(f"ts512:{name}", "ct512", flipped == values[name], "CT", ct512))
    return cases


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def box_prompt(mask2d: np.ndarray, k: int, margin: int = MARGIN_PX) -> Any:
    from radlabel.ai.sdk import BoxPrompt

    rows = np.flatnonzero(mask2d.any(axis=1))
    cols = np.flatnonzero(mask2d.any(axis=0))
    j0, j1 = max(0, rows[0] - margin), min(mask2d.shape[0] - 1, rows[-1] + margin)
    i0, i1 = max(0, cols[0] - margin), min(mask2d.shape[1] - 1, cols[-1] + margin)
    return BoxPrompt((int(i0), int(j0), k), (int(i1), int(j1), k), axis=0)


def request(case: Case, prompts: list[Any], **options: Any) -> Any:
    from radlabel.ai.sdk import InferenceRequest

    return InferenceRequest(
        image=case.image,
        origin=case.origin,
        spacing=case.spacing,
        direction=case.direction,
        modality=case.modality,
        prompts=prompts,
        options={"volume_id": case.volume_id, **options},
    )


def paste(proposal: Any, shape: tuple[int, ...]) -> np.ndarray:
    full = np.zeros(shape, dtype=bool)
    k, j, i = proposal.offset
    part = proposal.mask()
    full[k : k + part.shape[0], j : j + part.shape[1], i : i + part.shape[2]] = part
    return full


def evaluate(plugin: Any, context: Context, case: Case, stride: int, do_3d: bool) -> dict[str, Any]:
    areas = case.mask.sum(axis=(1, 2))
    slices = np.flatnonzero(areas)
    largest = int(np.argmax(areas))
    chosen = sorted(set(slices[::stride].tolist()) | {largest})
    out: dict[str, Any] = {"case": case.name, "largest_slice": largest, "largest_px": int(areas[largest])}
    for variant, zoom in (("full", False), ("zoom", True)):
        per_slice = {}
        for k in chosen:
            proposal = plugin.predict(request(case, [box_prompt(case.mask[k], k)], zoom=zoom), context)
            per_slice[k] = dice(paste(proposal, case.mask.shape)[k], case.mask[k])
        small = [d for k, d in per_slice.items() if areas[k] < SMALL_PX]
        out[f"{variant}_largest"] = per_slice[largest]
        out[f"{variant}_slices"] = float(np.mean(list(per_slice.values())))
        out[f"{variant}_small"] = float(np.mean(small)) if small else None
        out["n_slices"], out["n_small"] = len(per_slice), len(small)
        if do_3d:
            middle = int((slices[0] + slices[-1]) // 2)
            if not case.mask[middle].any():
                middle = int(slices[np.argmin(np.abs(slices - middle))])
            start = time.perf_counter()
            proposal = plugin.predict(
                request(case, [box_prompt(case.mask[middle], middle)], zoom=zoom, propagate=True), context
            )
            predicted = paste(proposal, case.mask.shape)
            reached = np.flatnonzero(predicted.any(axis=(1, 2)))
            out[f"{variant}_3d"] = dice(predicted, case.mask)
            out[f"{variant}_3d_range"] = [int(reached[0]), int(reached[-1])] if reached.size else None
            out[f"{variant}_3d_seconds"] = time.perf_counter() - start
            out["reference_range"] = [int(slices[0]), int(slices[-1])]
            out["middle_slice"] = middle
    if do_3d:  # the reader's usual start: the slice where the object is largest (zoom rule as shipped)
        proposal = plugin.predict(request(case, [box_prompt(case.mask[largest], largest)], propagate=True), context)
        predicted = paste(proposal, case.mask.shape)
        reached = np.flatnonzero(predicted.any(axis=(1, 2)))
        out["zoom_3d_largest"] = dice(predicted, case.mask)
        out["zoom_3d_largest_range"] = [int(reached[0]), int(reached[-1])] if reached.size else None
    return out


def fmt(value: Any) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cases", default="", help="comma-separated: brain1, breast1, brats, ts, ts:liver, ts512, ts512:aorta, ..."
    )
    parser.add_argument("--stride", type=int, default=1, help="evaluate every N-th slice for the all-slice mean")
    parser.add_argument("--no-3d", action="store_true", help="skip 3D propagation")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, help="write the per-case results here")
    args = parser.parse_args(argv)

    from radlabel_medsam.plugin import DEFAULT_ZOOM, LiteMedSAMPlugin

    from radlabel.ai.sdk import select_device

    wanted = {c.strip() for c in args.cases.split(",") if c.strip()} or None
    cases = load_cases(shared_data(), wanted)
    context = Context(device=select_device(args.device))
    plugin = LiteMedSAMPlugin()
    plugin.load(context)
    print(f"LiteMedSAM on {context.device}; weights SHA-256 {plugin.identity.weights_sha256}")
    print(f"zoom rule: {DEFAULT_ZOOM}; boxes from the reference + {MARGIN_PX} px; small = object < {SMALL_PX} px")
    start = time.perf_counter()
    rows = []
    for case in cases:
        rows.append(evaluate(plugin, context, case, args.stride, not args.no_3d))
        print(f"  {case.name} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    w = max([16] + [len(r["case"]) for r in rows])
    header = (
        f"{'case':{w}} {'largest px':>10} | {'largest slice':^15} | {'all slices':^15} | {'slices < 300 px':^21} |"
        f" {'3D from middle':^15} | {'3D largest':^10} | slices reached: middle full, zoom; largest (ref)"
    )
    print()
    print(header)
    print(
        f"{'':{w}} {'':>10} | {'full':>6}  {'zoom':>6} | {'full':>6}  {'zoom':>6} | {'n':>4} {'full':>6}  {'zoom':>6} |"
        f" {'full':>6}  {'zoom':>6} |"
    )
    print("-" * len(header))
    for r in rows:
        reach = ""
        if "zoom_3d_range" in r:
            reach = f"{r['full_3d_range']} {r['zoom_3d_range']}; {r['zoom_3d_largest_range']} ({r['reference_range']})"
        print(
            f"{r['case']:{w}} {r['largest_px']:>10} | {fmt(r['full_largest'])}  {fmt(r['zoom_largest'])} |"
            f" {fmt(r['full_slices'])}  {fmt(r['zoom_slices'])} | {r['n_small']:>4} {fmt(r['full_small'])} "
            f" {fmt(r['zoom_small'])} | {fmt(r.get('full_3d'))}  {fmt(r.get('zoom_3d'))} |"
            f" {fmt(r.get('zoom_3d_largest')):>10} | {reach}"
        )
    print("-" * len(header))
    med = {key: median(rows, key) for key in rows[0] if key.startswith(("full_", "zoom_")) and "range" not in key}
    print(
        f"{'median':{w}} {'':>10} | {fmt(med['full_largest'])}  {fmt(med['zoom_largest'])} |"
        f" {fmt(med['full_slices'])}  {fmt(med['zoom_slices'])} | {'':>4} {fmt(med['full_small'])} "
        f" {fmt(med['zoom_small'])} | {fmt(med.get('full_3d'))}  {fmt(med.get('zoom_3d'))} |"
        f" {fmt(med.get('zoom_3d_largest')):>10} |"
    )
    print()
    verdict = []
    largest = med["zoom_largest"]
    verdict.append(
        f"median largest-slice Dice (zoom) {largest:.3f} vs target {TARGET_2D}: "
        + ("met" if largest >= TARGET_2D else "MISSED")
    )
    for key, seed_name in (("zoom_3d", "the middle slice"), ("zoom_3d_largest", "the largest slice")):
        if med.get(key) is not None:
            verdict.append(
                f"median 3D propagation Dice from {seed_name} (zoom) {med[key]:.3f} vs target {TARGET_3D}: "
                + ("met" if med[key] >= TARGET_3D else "MISSED")
            )
    small_pairs = [(r["full_small"], r["zoom_small"]) for r in rows if r["full_small"] is not None]
    if small_pairs:
        full_small = float(np.mean([p[0] for p in small_pairs]))
        zoom_small = float(np.mean([p[1] for p in small_pairs]))
        verdict.append(
            f"slices < {SMALL_PX} px: mean Dice {full_small:.3f} without zoom, {zoom_small:.3f} with zoom "
            f"({zoom_small - full_small:+.3f})"
        )
    for line in verdict:
        print(line)
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
