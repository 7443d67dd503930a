"""Load-time and peak-memory benchmark: radlabel's DICOM reader side by side with SimpleITK.

    python benchmarks/load.py [--slices 300] [--repeats 3] [--keep DIR]

Cases: a 512x512xN CT series generated here (int16 HU stored unsigned with intercept -1024, as scanners do)
and the largest real series under ../shared/data (or $RADLABEL_SHARED_DATA) that SimpleITK reads as one
regular series. Each measurement runs in a fresh process with warm file cache; time is the load call only,
peak memory is the process's high-water mark above its size after imports.

Reference: SimpleITK ImageSeriesReader (GDCM) in the same run. Targets (issue "Foundation"): radlabel time
<= 1.0x SimpleITK, radlabel peak memory <= 1.5x the volume's bytes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
def rss_kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1])
    return 0
reader, folder = sys.argv[1], sys.argv[2]
import numpy as np
if reader == 'radlabel':
    from radlabel.core.io.loader import load
    import radlabel.core.io.dicom.reader  # noqa: import cost is not load cost
else:
    import SimpleITK as sitk
base = rss_kb('VmRSS')
start = time.perf_counter()
if reader == 'radlabel':
    volume = load(folder).volume
    shape, nbytes, dtype = volume.array.shape, volume.array.nbytes, str(volume.array.dtype)
else:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(folder))
    image = r.Execute()
    array = sitk.GetArrayViewFromImage(image)
    shape, nbytes, dtype = array.shape, array.nbytes, str(array.dtype)
elapsed = time.perf_counter() - start
peak = rss_kb('VmHWM') - base
result = {'seconds': elapsed, 'peak_bytes': peak * 1024, 'shape': list(shape), 'nbytes': nbytes, 'dtype': dtype}
print(json.dumps(result))
"""


def shared_data() -> Path | None:
    import os

    for candidate in (
        os.environ.get("RADLABEL_SHARED_DATA", ""),
        str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    ):
        if candidate and (Path(candidate) / "MANIFEST.md").is_file():
            return Path(candidate)
    return None


def generate_ct(folder: Path, slices: int) -> Path:
    import numpy as np

    from radlabel.core.demo import make_demo_ct
    from radlabel.core.io.dicom_export import write_dicom_series

    phantom, _ = make_demo_ct(shape=(slices, 512, 512), spacing=(0.7, 0.7, 1.0))
    write_dicom_series(phantom, folder, rescale_intercept=-1024, shuffle=True)
    assert phantom.array.dtype == np.int16
    return folder


def largest_real_series(root: Path) -> Path | None:
    """The dcm_qa input folder with the most pixel bytes that is one regular (untilted) series."""
    candidates = []
    for folder in sorted((root / "dcm_qa").glob("*/In")):
        if "tilt" in folder.parent.name or "transfer" in folder.parent.name:
            continue
        files = [f for f in folder.iterdir() if f.is_file()]
        candidates.append((sum(f.stat().st_size for f in files), folder))
    return max(candidates)[1] if candidates else None


def measure(reader: str, folder: Path, repeats: int) -> dict[str, float | str]:
    for path in folder.iterdir():  # warm the page cache so both readers see the same disk state
        path.read_bytes()
    runs = []
    for _ in range(repeats):
        output = subprocess.run(
            [sys.executable, "-c", CHILD, reader, str(folder)], check=True, capture_output=True, text=True
        ).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_bytes": statistics.median(r["peak_bytes"] for r in runs),
        "nbytes": runs[0]["nbytes"],
        "shape": "x".join(str(n) for n in runs[0]["shape"]),
        "dtype": runs[0]["dtype"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate the CT series here and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        ct = args.keep or Path(scratch) / "ct"
        if not (ct.exists() and any(ct.iterdir())):
            print(f"generating 512x512x{args.slices} CT series in {ct} ...", flush=True)
            generate_ct(ct, args.slices)
        cases = [(f"synthetic CT 512x512x{args.slices}", ct)]
        root = shared_data()
        real = largest_real_series(root) if root else None
        if real is not None:
            cases.append((f"real: {real.parent.name}", real))
        else:
            print("(../shared/data not found: real-series case skipped)")

        print()
        header = (
            f"{'case':<40} {'reader':<10} {'shape':<14} {'dtype':<7} {'time s':>8} {'peak MB':>9} {'vol MB':>8} "
            f"{'peak/vol':>9}"
        )
        print(header)
        print("-" * len(header))
        verdicts = []
        for name, folder in cases:
            ours = measure("radlabel", folder, args.repeats)
            theirs = measure("sitk", folder, args.repeats)
            for label, row in (("radlabel", ours), ("SimpleITK", theirs)):
                ratio = float(row["peak_bytes"]) / float(row["nbytes"])
                print(
                    f"{name:<40} {label:<10} {row['shape']:<14} {row['dtype']:<7} {float(row['seconds']):8.3f} "
                    f"{float(row['peak_bytes']) / 2**20:9.1f} {float(row['nbytes']) / 2**20:8.1f} {ratio:9.2f}"
                )
            time_ratio = float(ours["seconds"]) / float(theirs["seconds"])
            memory_ratio = float(ours["peak_bytes"]) / float(ours["nbytes"])
            time_verdict = "met" if time_ratio <= 1.0 else "MISSED"
            memory_verdict = "met" if memory_ratio <= 1.5 else "MISSED"
            verdicts.append(
                f"{name}: time {time_ratio:.2f}x SimpleITK (target <= 1.0x: {time_verdict}), "
                f"peak memory {memory_ratio:.2f}x volume (target <= 1.5x: {memory_verdict})"
            )
        print()
        for line in verdicts:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
