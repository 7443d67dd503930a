"""DICOM SEG write and read time: radlabel (highdicom writer, own reader) beside dcmqi in the same run.

    python benchmarks/export.py [--slices 300] [--segments 20] [--repeats 1] [--keep DIR]

Case: a 512x512xN CT series generated here (radlabel.core.demo phantom written by write_dicom_series) and a
label map of 20 non-overlapping segments on it: the phantom's organs and tissues (liver, kidneys, bone,
discs, spinal canal, lungs, lesion) plus spheres of 10-35 mm radius, so segments span from a few slices to
the whole series, as in a multi-organ segmentation.

Measured (wall time of the call, best of --repeats):
- write: radlabel ``export_segmentation`` (BINARY, empty frames omitted) vs dcmqi ``itkimage2segimage``
  (NRRD label map + JSON metadata -> SEG; a separate process, its start-up included);
- read: radlabel ``import_segmentation`` onto the loaded series vs dcmqi ``segimage2itkimage`` (SEG -> NRRD
  files), each on both SEGs. Each reader's voxel counts per segment are checked against the label map.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def dcmqi_tool(name: str) -> str:
    for candidate in (shutil.which(name), str(Path(sys.executable).parent / name)):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit(f"{name} not found: pip install dcmqi")


def make_case(folder: Path, slices: int, n_segments: int) -> tuple[Path, np.ndarray, list[str]]:
    from radlabel.core.demo import DemoTissue, demo_tissue_map, make_demo_ct
    from radlabel.core.io.dicom_export import write_dicom_series

    shape, spacing = (slices, 512, 512), (0.7, 0.7, 1.0)
    ct, _ = make_demo_ct(shape=shape, spacing=spacing)
    write_dicom_series(ct, folder / "ct", rescale_intercept=-1024)
    tissues = demo_tissue_map(shape=shape, spacing=spacing)
    organs = [DemoTissue.LIVER, DemoTissue.KIDNEY, DemoTissue.BONE, DemoTissue.DISC, DemoTissue.SPINAL_CANAL]
    organs += [DemoTissue.LUNG, DemoTissue.LESION]
    labels = np.zeros(shape, np.uint8)
    names = []
    for tissue in organs[:n_segments]:
        names.append(tissue.name.lower().replace("_", " "))
        labels[tissues == tissue] = len(names)
    rng = np.random.default_rng(1)
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    while len(names) < n_segments:
        radius = rng.uniform(10, 35)
        centre = [rng.uniform(0.1, 0.9) * n for n in shape]
        ball = ((k - centre[0]) * spacing[2]) ** 2 + ((j - centre[1]) * spacing[1]) ** 2 + (
            (i - centre[2]) * spacing[0]
        ) ** 2 <= radius**2
        names.append(f"sphere {len(names) + 1}")
        labels[ball] = len(names)
    return folder / "ct", labels, names


def counts(labels: np.ndarray, n: int) -> list[int]:
    return np.bincount(labels.ravel(), minlength=n + 1)[1 : n + 1].tolist()


def best(repeats: int, call) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), result


def dcmqi_counts(folder: Path, names: list[str]) -> list[int]:
    import SimpleITK as sitk

    meta = json.loads((folder / "meta.json").read_text())
    by_name = {}
    for group, attributes in enumerate(meta["segmentAttributes"], start=1):
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{group}.nrrd")))
        for attribute in attributes:
            by_name[attribute["SegmentLabel"]] = int(np.count_nonzero(array == int(attribute["labelID"])))
    return [by_name.get(name, -1) for name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    from radlabel.core.io.loader import load
    from radlabel.core.io.seg import export_segmentation, import_segmentation
    from radlabel.core.io.writers import save_volume
    from radlabel.core.segmentation.model import Segmentation
    from radlabel.core.volume import Volume

    work = args.keep or Path(tempfile.mkdtemp(prefix="radlabel_seg_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        series, labels, names = make_case(work, args.slices, args.segments)
        volume = load(series).volume
        expected = counts(labels, len(names))
        seg = Segmentation.empty(volume)
        for name in names:
            seg.add_segment(name)
        seg.layers[0][...] = labels

        ours = work / "radlabel_seg.dcm"
        write_ours, result = best(args.repeats, lambda: export_segmentation(volume, seg, ours))
        frames = result.frames  # type: ignore[attr-defined]

        nrrd = work / "labels.nrrd"
        save_volume(Volume(labels, volume.origin, volume.spacing, volume.direction), nrrd)
        metadata = {
            "ContentCreatorName": "bench",
            "SeriesDescription": "dcmqi SEG",
            "SeriesNumber": "301",
            "InstanceNumber": "1",
            "segmentAttributes": [
                [
                    {
                        "labelID": n,
                        "SegmentLabel": name,
                        "SegmentAlgorithmType": "MANUAL",
                        "SegmentedPropertyCategoryCodeSequence": {
                            "CodeValue": "85756007", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Tissue",
                        },
                        "SegmentedPropertyTypeCodeSequence": {
                            "CodeValue": "85756007", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Tissue",
                        },
                        "recommendedDisplayRGBValue": [128, 174, 128],
                    }
                    for n, name in enumerate(names, start=1)
                ]
            ],
        }  # fmt: skip
        (work / "meta.json").write_text(json.dumps(metadata))
        theirs = work / "dcmqi_seg.dcm"
        command = [
            dcmqi_tool("itkimage2segimage"), "--inputImageList", str(nrrd), "--inputDICOMDirectory", str(series),
            "--outputDICOM", str(theirs), "--inputMetadata", str(work / "meta.json"),
        ]  # fmt: skip
        write_theirs, done = best(args.repeats, lambda: subprocess.run(command, capture_output=True, text=True))
        if done.returncode != 0:  # type: ignore[attr-defined]
            raise SystemExit(f"itkimage2segimage failed: {done.stderr[-2000:]}")  # type: ignore[attr-defined]

        rows = []
        for label, path in (("radlabel SEG", ours), ("dcmqi SEG", theirs)):
            read_ours, imported = best(args.repeats, lambda path=path: import_segmentation(path, volume))
            segmentation = imported.segmentation  # type: ignore[attr-defined]
            by_name = {s.name: int(np.count_nonzero(segmentation.mask(s.id))) for s in segmentation.segments.values()}
            ok_ours = [by_name.get(name, -1) for name in names] == expected
            out = work / f"dcmqi_read_{path.stem}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            read_cmd = [dcmqi_tool("segimage2itkimage"), "--inputDICOM", str(path), "--outputDirectory", str(out)]
            read_cmd += ["-t", "nrrd"]
            read_theirs, done = best(args.repeats, lambda cmd=read_cmd: subprocess.run(cmd, capture_output=True))
            ok_theirs = done.returncode == 0 and dcmqi_counts(out, names) == expected  # type: ignore[attr-defined]
            rows.append((label, path.stat().st_size, read_ours, ok_ours, read_theirs, ok_theirs))

        voxels = int(np.count_nonzero(labels))
        print(f"DICOM SEG, {len(names)} segments on a 512x512x{args.slices} CT", end=" ")
        print(f"({voxels} labelled voxels, {frames} frames)")
        print(f"{'operation':<34} {'radlabel':>10} {'dcmqi':>10} {'ratio':>7}")
        print(f"{'write BINARY SEG':<34} {write_ours:>9.2f}s {write_theirs:>9.2f}s {write_ours / write_theirs:>6.2f}x")
        for label, size, r_ours, ok_ours, r_theirs, ok_theirs in rows:
            name = f"read {label} ({size / 1e6:.1f} MB)"
            flags = "" if ok_ours and ok_theirs else f"  voxel counts ok: radlabel {ok_ours}, dcmqi {ok_theirs}"
            print(f"{name:<34} {r_ours:>9.2f}s {r_theirs:>9.2f}s {r_ours / r_theirs:>6.2f}x{flags}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
