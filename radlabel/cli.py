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
    if not args.headless:
        if args.output:
            _save_demo(args.output)
        return _run_window(args, demo=True)
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


def _save_demo(output: str) -> None:
    from radlabel.core.demo import make_demo_ct
    from radlabel.core.io.writers import save_volume

    volume, _ = make_demo_ct()
    print(f"wrote {save_volume(volume, Path(output))}")


def cmd_open(args: argparse.Namespace) -> int:
    return _run_window(args, demo=False)


def _run_window(args: argparse.Namespace, demo: bool) -> int:
    """Open the window (or render it to --screenshot). Qt and VTK are imported here, never at start-up."""
    try:
        from radlabel.ui.app import run
    except ImportError as exc:
        raise RadlabelError(
            f"the window needs PySide6 and VTK ({exc.name or exc} is missing)",
            fix="install them with: pip install 'radlabel[gui]'",
        ) from exc
    paths = [args.path] if getattr(args, "path", None) else []
    return run(
        paths,
        demo=demo,
        screenshot=args.screenshot,
        layout=args.layout,
        segment=args.segment,
        series=getattr(args, "series", None),
    )


def _add_window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--screenshot", metavar="OUT.png", help="render the window offscreen to OUT.png and exit")
    parser.add_argument("--layout", choices=["2x2", "1x3", "1x1"], default="2x2", help="view layout (default 2x2)")
    parser.add_argument("--segment", metavar="FILE", help="label map to show (NIfTI, NRRD, .seg.nrrd, MHA)")


def cmd_stats(args: argparse.Namespace) -> int:
    from radlabel.core.stats import format_table, measure_files

    report = measure_files(args.image, args.seg, args.series, args.label_names, _progress_printer(not args.json))
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(format_table(report))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_plugins_list(args: argparse.Namespace) -> int:
    from radlabel.ai.registry import discover
    from radlabel.core.settings import load_settings

    settings = load_settings()
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    infos = discover(settings)
    if args.json:
        print(json.dumps([info.to_json() for info in infos], indent=2))
        return 0
    if not infos:
        print("no plugins installed (pip install a radlabel plugin package, e.g. plugins/radlabel-example-threshold)")
        return 0
    for info in infos:
        package = f" ({info.source.package} {info.source.package_version})" if info.source.package else ""
        print(f"{info.name} {info.version}{package}".rstrip())
        if not info.allowed:
            print(f"    not allowed: {info.error}")
            continue
        if info.capabilities is not None:
            caps = info.capabilities
            prompts = ", ".join(sorted(k.value for k in caps.prompt_kinds)) or "none"
            dims = ", ".join(sorted(d.value for d in caps.dimensions))
            modalities = ", ".join(sorted(caps.modalities)) or "any"
            weights = "?"
            if info.weights is not None:
                digest = f" (sha256 {info.weights.sha256[:12]}...)" if info.weights.sha256 else ""
                weights = f"present{digest}" if info.weights.present else "MISSING"
            print(f"    prompts {prompts} | {dims} | modalities {modalities} | device {info.device}", end="")
            print(f" | weights {weights}")
        if info.error:
            print(f"    error: {info.error}")
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

    open_ = commands.add_parser("open", help="open a DICOM file/folder/zip or a NIfTI/NRRD/MHA volume in the window")
    open_.add_argument("path")
    open_.add_argument("--series", help="series UID (or a unique prefix) when the input holds several")
    _add_window_options(open_)
    open_.set_defaults(func=cmd_open)

    demo = commands.add_parser("demo", help="open the built-in demo case (synthetic CT phantom with a liver lesion)")
    demo.add_argument("-o", "--output", help="also save the demo volume to this file")
    demo.add_argument("--headless", action="store_true", help="no window: print what the demo case holds")
    _add_window_options(demo)
    demo.set_defaults(func=cmd_demo)

    stats = commands.add_parser(
        "stats", help="per-segment measurements (volume, intensity, RECIST diameters, surface) of a label map"
    )
    stats.add_argument("image", help="the image: DICOM file/folder/zip, NIfTI, NRRD or MHA")
    stats.add_argument(
        "seg", nargs="+", help="label map(s) on that image: .nii(.gz), .nrrd, .seg.nrrd, .mha (several are combined)"
    )
    stats.add_argument("--series", help="series UID (or a unique prefix) when the image input holds several")
    stats.add_argument(
        "--label-names", metavar="JSON", help='label names: {"1": "liver"}, nnU-Net dataset.json or dcmqi metadata'
    )
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=cmd_stats)

    plugins = commands.add_parser("plugins", help="AI plugins: list the installed ones")
    plugins_commands = plugins.add_subparsers(dest="plugins_command", required=True)
    plugins_list = plugins_commands.add_parser(
        "list", help="each plugin with its capabilities, device and whether its weights are present"
    )
    plugins_list.add_argument("--json", action="store_true", help="machine-readable output")
    plugins_list.set_defaults(func=cmd_plugins_list)

    from radlabel.cli_segmentation import add_commands as add_segmentation_commands

    add_segmentation_commands(commands)  # export, import-seg, audit
    from radlabel.cli_ai import add_commands as add_ai_commands

    add_ai_commands(commands)  # segment
    from radlabel.cli_admin import add_commands as add_admin_commands

    add_admin_commands(commands)  # config, models, doctor
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
