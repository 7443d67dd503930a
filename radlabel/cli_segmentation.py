"""The segmentation-file and audit subcommands of ``radlabel`` (registered by :func:`add_commands`).

- ``radlabel export IMAGE SEG -o OUT``: a label map or DICOM SEG / RTSTRUCT on IMAGE -> DICOM SEG
  (BINARY, ``--fractional``, ``--labelmap``), RTSTRUCT (``--rtstruct``), NIfTI or 3D Slicer .seg.nrrd.
- ``radlabel import-seg IMAGE SEGFILE -o OUT``: any segmentation file onto IMAGE's grid, written as OUT.
- ``radlabel audit show CASE [--json]`` / ``radlabel audit verify CASE`` (exit 1 naming the first bad record).

Heavy modules are imported inside the commands, so ``radlabel --help`` stays fast and Qt-free.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_AUDIT_FAILED = 1


def _load_image(path: str, series: str | None) -> Any:
    from radlabel.core.io.loader import choose_series, scan

    loaded = choose_series(scan(path), series).load(None)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return loaded.volume


def _write(args: argparse.Namespace, kind: str) -> int:
    from radlabel.core.io.seg import export_segmentation, import_segmentation
    from radlabel.core.settings import load_settings

    if not args.user:  # the reader the settings name (identity.source), as in the window and the audit log
        args.user = load_settings().identity.resolved_user()
    volume = _load_image(args.image, args.series)
    imported = import_segmentation(args.seg, volume, label_names=args.label_names)
    for warning in imported.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.case:
        from radlabel.core.io.seg.provenance import record_import

        segments = [{"id": s.id, "name": s.name} for s in imported.segmentation.segments.values()]
        details = {"format": imported.format, "match": imported.match, "segments": segments}
        record_import(args.case, args.user, args.seg, details)
    result = export_segmentation(
        volume,
        imported.segmentation,
        args.output,
        rtstruct=args.rtstruct,
        kind=kind,
        probabilities=imported.probabilities if kind == "FRACTIONAL" else None,
        user=args.user,
        case=args.case,
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    frames = f", {result.frames} frame(s)" if result.format.startswith("DICOM SEG") else ""
    contours = f", {result.frames} contour(s)" if result.format == "RTSTRUCT" else ""
    audit = f"; audit record {result.audit_record['seq']} appended" if result.audit_record else ""
    print(
        f"wrote {result.path} ({result.format}, {result.segments} segment(s){frames}{contours}; "
        f"read {imported.format}, {imported.match}){audit}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from radlabel.core.settings import load_settings

    # No flag: the site's default SEG type (export.seg_type), BINARY unless configured.
    configured = load_settings().export.seg_type.upper()
    kind = "FRACTIONAL" if args.fractional else "LABELMAP" if args.labelmap else configured
    return _write(args, kind)


def cmd_import_seg(args: argparse.Namespace) -> int:
    return _write(args, "BINARY")


def _open_log(case: str) -> Any:
    from radlabel.core.audit import AuditLog
    from radlabel.core.io.seg.provenance import audit_path

    return AuditLog(audit_path(case))


def _summary(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def cmd_audit_show(args: argparse.Namespace) -> int:
    with _open_log(args.case) as log:
        records = list(log.records())
        result = log.verify()
        count, head = log.head()
    if args.json:
        payload = {
            "path": str(log.path),
            "count": count,
            "head": head,
            "verified": result.ok,
            "problems": result.problems,
            "records": [r.to_json() for r in records],
        }
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    state = "verified" if result.ok else "FAILS VERIFICATION"
    print(f"{log.path}: {len(records)} record(s), head {head[:12]}, {state}")
    for record in records:
        print(
            f"{record.seq:>5}  {record.time_utc}  {record.user:<12}  {record.action:<12}  "
            f"{_summary(record.payload)}  {record.hash[:12]}"
        )
    for problem in result.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with _open_log(args.case) as log:
        result = log.verify()
    if result.ok:
        print(f"{log.path}: ok, {result.count} record(s), head {result.head_hash}")
        return 0
    print(f"radlabel: {log.path}: first bad record {result.first_bad_seq}: {result.problems[0]}", file=sys.stderr)
    return EXIT_AUDIT_FAILED


def _image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the image: DICOM file/folder/zip, NIfTI, NRRD or MHA")
    parser.add_argument("--series", help="series UID (or a unique prefix) when the image input holds several")
    parser.add_argument(
        "--label-names", metavar="JSON", help='label names for a label-map SEG: {"1": "liver"}, nnU-Net or dcmqi JSON'
    )
    parser.add_argument("--rtstruct", action="store_true", help="write OUT (.dcm) as an RTSTRUCT instead of a SEG")
    parser.add_argument(
        "--user",
        help="reader identity written into the export (default: the settings' reader)",
    )
    parser.add_argument(
        "--case",
        metavar="CASE_DIR",
        help="case folder with audit.sqlite: its head goes into the export, which is logged",
    )


def add_commands(commands: Any) -> None:
    """Register ``export``, ``import-seg`` and ``audit`` on the main parser's subcommands."""
    export = commands.add_parser(
        "export", help="export a segmentation of an image as DICOM SEG, RTSTRUCT, NIfTI or 3D Slicer .seg.nrrd"
    )
    _image_options(export)
    export.add_argument(
        "seg", help="the segmentation: label map (.nii.gz, .nrrd, .seg.nrrd, .mha) or DICOM SEG/RTSTRUCT"
    )
    export.add_argument("-o", "--output", required=True, help="output: .dcm, .nii.gz, .nii, .nrrd, .seg.nrrd, .mha")
    kinds = export.add_mutually_exclusive_group()
    kinds.add_argument("--fractional", action="store_true", help="FRACTIONAL SEG (probabilities of a FRACTIONAL input)")
    kinds.add_argument(
        "--labelmap", action="store_true", help="LABELMAP SEG (new SOP class; segments must not overlap)"
    )
    export.set_defaults(func=cmd_export)

    import_seg = commands.add_parser(
        "import-seg", help="read a DICOM SEG, RTSTRUCT or label map onto an image's grid and write it out"
    )
    _image_options(import_seg)
    import_seg.add_argument("seg", metavar="SEGFILE", help="DICOM SEG, RTSTRUCT, NIfTI/NRRD/.seg.nrrd label map")
    import_seg.add_argument("-o", "--output", required=True, help="output: .nii.gz, .seg.nrrd, .dcm (SEG/RTSTRUCT)")
    import_seg.set_defaults(func=cmd_import_seg)

    audit = commands.add_parser("audit", help="the hash-chained audit log of a case: show it, verify it")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    show = audit_commands.add_parser("show", help="list the records")
    show.add_argument("case", metavar="CASE", help="case folder holding audit.sqlite, or the .sqlite file")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_audit_show)
    verify = audit_commands.add_parser("verify", help="check the chain; exit 1 naming the first bad record")
    verify.add_argument("case", metavar="CASE", help="case folder holding audit.sqlite, or the .sqlite file")
    verify.set_defaults(func=cmd_audit_verify)
