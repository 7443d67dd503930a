"""The `radlabel` command line. Works over `radlabel.core` / `radlabel.app` only: no Qt is imported unless
the user asks for the window.

Exit codes: 0 success, 2 bad input or a user error (one line on stderr, no traceback), 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radlabel import __version__
from radlabel.core.errors import Cancelled, RadlabelError

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


def _progress_printer(enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return None
    last = [-1]

    def show(fraction: float, message: str) -> bool:
        percent = int(fraction * 100)
        if percent != last[0]:
            last[0] = percent
            sys.stderr.write(f"\r{percent:3d}% {message[:70]:<70}")
            sys.stderr.flush()
            if percent >= 100:
                sys.stderr.write("\n")
        return True

    return show


def cmd_info(args: argparse.Namespace) -> int:
    from radlabel.core.io.loader import scan

    result = scan(args.path, _progress_printer(not args.json))
    if args.json:
        payload = {
            "path": result.path,
            "series": [entry.info.to_json() for entry in result.series],
            "bad_files": [{"path": b.path, "reason": b.reason} for b in result.bad_files],
            "other_objects": [{"path": b.path, "what": b.reason} for b in result.other_objects],
        }
        print(json.dumps(payload, indent=2))
        return 0
    print(f"{result.path}: {len(result.series)} series")
    for entry in result.series:
        info = entry.info
        size = "x".join(str(n) for n in info.size)
        spacing = "x".join(f"{s:.4g}" for s in info.spacing)
        volumes = f", {info.n_volumes} volumes" if info.n_volumes > 1 else ""
        print(f"  {info.uid}")
        print(
            f"    {info.modality or '?':<3} {info.description or '(no description)'} | {size} voxels, "
            f"{spacing} mm, {info.orientation}{volumes}, {len(info.files)} file(s), {info.format}"
        )
        for warning in info.warnings:
            print(f"    warning: {warning}")
    for bad in result.bad_files:
        print(f"  skipped {bad.path}: {bad.reason}")
    for other in result.other_objects:
        print(f"  not an image: {other.path}: {other.reason}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from radlabel.core.io.loader import choose_series, scan
    from radlabel.core.io.writers import save_volume, save_volumes

    result = scan(args.path)
    entry = choose_series(result, args.series)
    loaded = entry.load(_progress_printer(True))
    output = Path(args.output)
    if len(loaded.volumes) > 1:
        written = save_volumes(loaded.volumes, output)
    else:
        written = save_volume(loaded.volume, output)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    size = "x".join(str(n) for n in loaded.volume.size)
    print(f"wrote {written} ({size}, {len(loaded.volumes)} volume(s), {loaded.volume.array.dtype})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from radlabel.core.demo import make_demo_ct

    volume, lesion = make_demo_ct()
    size = "x".join(str(n) for n in volume.size)
    spacing = "x".join(f"{s:g}" for s in volume.spacing)
    voxel_ml = float(volume.spacing.prod()) / 1000.0
    print(f"radlabel demo: {volume.metadata.get('description', 'demo phantom')}")
    print(f"  CT {size} voxels, {spacing} mm, {volume.orientation}, {volume.array.dtype}")
    print(f"  HU range {int(volume.array.min())} .. {int(volume.array.max())}")
    print(f"  lesion: {int(lesion.sum())} voxels, {lesion.sum() * voxel_ml:.1f} mL")
    if args.output:
        from radlabel.core.io.writers import save_volume

        print(f"  wrote {save_volume(volume, Path(args.output))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlabel", description="Annotation workstation for radiologists.")
    parser.add_argument("--version", action="version", version=f"radlabel {__version__}")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo case (synthetic CT phantom)")
    commands = parser.add_subparsers(dest="command")

    info = commands.add_parser("info", help="list the series in a file, folder, zip or DICOMDIR")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=cmd_info)

    convert = commands.add_parser("convert", help="convert one series to NIfTI, NRRD or MHA")
    convert.add_argument("path")
    convert.add_argument("--series", help="series UID (or a unique prefix) when the input holds several")
    convert.add_argument("-o", "--output", required=True, help="output file: .nii, .nii.gz, .nrrd, .mha")
    convert.set_defaults(func=cmd_convert)

    demo = commands.add_parser("demo", help="open the built-in demo case")
    demo.add_argument("-o", "--output", help="also save the demo volume to this file")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if args.demo:
            args = parser.parse_args(["demo"])
        else:
            parser.print_help()
            return 0
    warnings.simplefilter("ignore")  # library warnings are not for the reader; our own go in the results
    try:
        return int(args.func(args))
    except Cancelled as exc:
        print(f"radlabel: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("radlabel: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except RadlabelError as exc:
        print(f"radlabel: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
