"""LiteMedSAM speed and memory: encoder per slice, cached prompt, answer to a box, propagation over 20 slices.

    python benchmarks/ai_speed.py [--device cpu|cuda] [--repeats 5]

Data: the 512 x 512 abdominal CT of ../shared/data/totalsegmentator (boxes on the spleen and, for the zoomed
path, the right adrenal gland) and the BraTS FLAIR volume for propagation; a synthetic volume where the data
are missing. Every figure is the median of ``--repeats`` runs after one warm-up run, in this process.

- encoder: one TinyViT forward pass on a prepared 256 x 256 input;
- answer to a box: ``predict`` for a box on a slice not seen before (preparation, encoder, decoder, proposal);
- cached prompt: ``predict`` for another box on the same slice (embedding from the cache, decoder only);
- propagation: ``predict`` with ``propagate`` from the middle slice of the BraTS tumour, 10 slices each way;
- peak memory: the process's resident high-water mark (and CUDA's peak allocation on a GPU).

Targets (issue 6, CPU): encoder <= 1.5 s, cached prompt -> mask <= 100 ms, answer to a box <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"encoder": 1.5, "cached prompt": 0.100, "answer to a box": 2.0}


@dataclass
class Context:
    device: str
    cache: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False

    def progress(self, fraction: float, message: str = "") -> None:
        pass


def shared_data() -> Path | None:
    for candidate in (os.environ.get("RADLABEL_SHARED_DATA", ""), str(ROOT.parent / "shared" / "data")):
        if candidate and (Path(candidate) / "MANIFEST.md").is_file():
            return Path(candidate)
    return None


def load_data() -> tuple[dict[str, Any], dict[str, Any], str]:
    """(CT case, propagation case, description): image, spacing, modality and masks."""
    data = shared_data()
    if data is None:
        rng = np.random.default_rng(0)
        ct = rng.normal(40, 20, (20, 512, 512)).astype(np.int16)
        big = np.zeros(ct.shape, bool)
        big[:, 200:330, 180:300] = True
        small = np.zeros(ct.shape, bool)
        small[:, 100:112, 400:412] = True
        ct[big] += 80
        ct[small] += 120
        mr = rng.normal(0, 1, (60, 240, 240)).astype(np.float32)
        tumour = np.zeros(mr.shape, bool)
        tumour[5:55, 90:150, 100:160] = True
        mr[tumour] += 3
        return (
            {"image": ct, "spacing": (0.98, 0.98, 2.0), "modality": "CT", "large": big, "small": small},
            {"image": mr, "spacing": (1.0, 1.0, 1.0), "modality": "MR", "mask": tumour},
            "synthetic volumes (../shared/data not found)",
        )
    from radlabel.core.io.loader import load

    base = data / "totalsegmentator" / "ct_dicom_with_multilabel_seg"
    ct = load(base / "image_dicom").volume
    seg = load(base / "seg_nifti" / "example_seg_dicom.nii.gz").volume.array[:, ::-1, :]  # j flipped (MANIFEST)
    names = {v: int(k) for k, v in json.loads((base / "seg_nifti" / "label_names_total.json").read_text()).items()}
    brats = data / "deepmedic_brats2015" / "brats_2013_pat0001_1"
    flair = load(brats / "Flair_subtrMeanDivStd.nii.gz").volume
    labels = load(brats / "OTMultiClass.nii.gz").volume.array
    return (
        {
            "image": ct.array,
            "spacing": tuple(float(s) for s in ct.spacing),
            "modality": "CT",
            "large": seg == names["spleen"],
            "small": seg == names["adrenal_gland_right"],
        },
        {"image": flair.array, "spacing": tuple(float(s) for s in flair.spacing), "modality": "MR", "mask": labels > 0},
        f"CT {ct.array.shape} (TotalSegmentator DICOM), BraTS FLAIR {flair.array.shape}",
    )


def box_on(mask2d: np.ndarray, k: int, grow: int = 2) -> Any:
    from radlabel.ai.sdk import BoxPrompt

    rows = np.flatnonzero(mask2d.any(axis=1))
    cols = np.flatnonzero(mask2d.any(axis=0))
    return BoxPrompt(
        (int(cols[0]) - grow, int(rows[0]) - grow, k), (int(cols[-1]) + grow, int(rows[-1]) + grow, k), axis=0
    )


def make_request(case: dict[str, Any], prompts: list[Any], **options: Any) -> Any:
    from radlabel.ai.sdk import InferenceRequest

    return InferenceRequest(
        image=case["image"],
        origin=(0.0, 0.0, 0.0),
        spacing=case["spacing"],
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        modality=case["modality"],
        prompts=prompts,
        options=options,
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    before_torch = peak_rss_mib()
    import torch
    from radlabel_medsam.plugin import LiteMedSAMPlugin

    from radlabel.ai.sdk import select_device

    device = select_device(args.device)
    ct, mr, description = load_data()
    context = Context(device=device)
    plugin = LiteMedSAMPlugin()
    start = time.perf_counter()
    plugin.load(context)
    load_s = time.perf_counter() - start
    model = plugin.model
    results: dict[str, float] = {"load (hash check + build)": load_s}

    # encoder alone
    prepared = np.random.default_rng(1).random((256, 256), dtype=np.float32)
    times = []
    for n in range(args.repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.encode(prepared)
        if device == "cuda":
            torch.cuda.synchronize()
        if n:
            times.append(time.perf_counter() - t0)
    results["encoder"] = statistics.median(times)

    # answer to a box on a new slice, then a second (cached) prompt on the same slice
    large, small = ct["large"], ct["small"]
    slices = [int(k) for k in np.flatnonzero(large.any(axis=(1, 2)))]
    answer, cached = [], []
    for n, k in enumerate(slices[: args.repeats + 1]):
        t0 = time.perf_counter()
        plugin.predict(make_request(ct, [box_on(large[k], k)]), context)
        t1 = time.perf_counter()
        proposal = plugin.predict(make_request(ct, [box_on(large[k], k, grow=4)]), context)
        t2 = time.perf_counter()
        assert proposal.extra["cache_hits"] == 1, "the second prompt on a slice must hit the cache"
        if n:
            answer.append(t1 - t0)
            cached.append(t2 - t1)
    results["answer to a box"] = statistics.median(answer)
    results["cached prompt"] = statistics.median(cached)

    small_slices = [int(k) for k in np.flatnonzero(small.any(axis=(1, 2)))]
    zoomed = []
    for k in small_slices[: args.repeats]:
        t0 = time.perf_counter()
        proposal = plugin.predict(make_request(ct, [box_on(small[k], k)]), context)
        zoomed.append(time.perf_counter() - t0)
        assert proposal.extra["zoomed_slices"] == 1
    if zoomed:
        results["answer to a small box (zoomed)"] = statistics.median(zoomed)

    # propagation over 20 slices (10 each way) from the middle of the BraTS tumour
    mask = mr["mask"]
    tumour_slices = np.flatnonzero(mask.any(axis=(1, 2)))
    middle = int((tumour_slices[0] + tumour_slices[-1]) // 2)
    context.cache.clear()
    t0 = time.perf_counter()
    proposal = plugin.predict(
        make_request(mr, [box_on(mask[middle], middle)], propagate=True, propagation={"max_slices": 10}), context
    )
    propagation_s = time.perf_counter() - t0
    visited = proposal.probabilities.shape[0] if proposal.probabilities is not None else 0
    results["propagation (20 slices + seed)"] = propagation_s

    print(f"LiteMedSAM speed on {device} ({torch.get_num_threads()} threads); data: {description}")
    print(f"{'measure':34} {'seconds':>9}  target")
    for name, value in results.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"<= {target:g} s  " + ("met" if value <= target else "MISSED"))
        print(f"{name:34} {value:9.3f}  {verdict}")
    print(f"{'propagation per slice':34} {propagation_s / max(1, visited):9.3f}  ({visited} slices in the proposal)")
    print(f"peak resident memory: {peak_rss_mib():.0f} MiB (before torch import: {before_torch:.0f} MiB)")
    if device == "cuda":
        print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
