"""`radlabel segment`: ask an AI plugin for a proposal from the command line, accept it, and export it.

The run is a real case: the proposal and its acceptance go through `radlabel.app.review` and the session's
audit trail (model identity, weights hash, prompt), and the export carries the audit head. No Qt here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from radlabel.core.errors import InputError


def _ints(text: str, count: int, what: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts[:count]]
    except ValueError:
        raise InputError(f"--{what} needs {count} whole numbers separated by commas, got {text!r}") from None
    if len(values) != count:
        raise InputError(f"--{what} needs {count} whole numbers separated by commas, got {text!r}")
    return values


def parse_prompts(args: argparse.Namespace) -> list[Any]:
    """Prompts from ``--box i0,j0,k0,i1,j1,k1`` and/or ``--point i,j,k[,+|-]`` (repeatable)."""
    from radlabel.ai.sdk import BoxPrompt, PointPrompt

    prompts: list[Any] = []
    axis: int | None = 0
    if args.box:
        i0, j0, k0, i1, j1, k1 = _ints(args.box, 6, "box")
        low = (min(i0, i1), min(j0, j1), min(k0, k1))
        high = (max(i0, i1), max(j0, j1), max(k0, k1))
        # A box flat along one grid axis lies on a slice of that axis; otherwise it is a 3D box.
        flat = [n for n, (a, b) in enumerate(zip(low, high, strict=True)) if a == b]
        axis = {2: 0, 1: 1, 0: 2}[flat[-1]] if flat else None
        prompts.append(BoxPrompt(low, high, axis=axis))
    for text in args.point or []:
        parts = [p.strip() for p in text.split(",")]
        positive = not (len(parts) == 4 and parts[3] == "-")
        if len(parts) == 4 and parts[3] not in "+-":
            raise InputError(f"--point takes i,j,k or i,j,k,+ or i,j,k,-; got {text!r}")
        i, j, k = _ints(",".join(parts[:3]), 3, "point")
        prompts.append(PointPrompt((i, j, k), positive=positive, axis=axis if axis is not None else 0))
    if not prompts:
        raise InputError("give a prompt: --box i0,j0,k0,i1,j1,k1 or --point i,j,k[,+|-]")
    return prompts


def cmd_segment(args: argparse.Namespace) -> int:
    from radlabel.ai.sdk import InferenceRequest
    from radlabel.ai.worker import WorkerClient
    from radlabel.app.review import ProposalReview
    from radlabel.app.session import Session
    from radlabel.core.io.loader import load
    from radlabel.core.io.seg import export_segmentation
    from radlabel.core.settings import load_settings

    prompts = parse_prompts(args)
    loaded = load(args.input, args.series)
    volume = loaded.volume
    output = Path(args.output)
    case_dir = Path(args.case) if args.case else output.with_name(output.name.split(".")[0] + ".radlabel")
    settings = load_settings()
    user = args.user or settings.identity.resolved_user()
    request = InferenceRequest(
        image=volume.array,
        origin=(float(volume.origin[0]), float(volume.origin[1]), float(volume.origin[2])),
        spacing=(float(volume.spacing[0]), float(volume.spacing[1]), float(volume.spacing[2])),
        direction=tuple(tuple(float(v) for v in row) for row in volume.direction),  # type: ignore[arg-type]
        modality=str(volume.metadata.get("modality", "")),
        prompts=prompts,
        target_label=args.label,
        options={"propagate": bool(args.propagate)},
    )
    with WorkerClient(args.plugin, settings) as client:
        proposal = client.predict(request, _printer())
    if (case_dir / "case.json").exists():
        session = Session.open(case_dir, user=user)
    else:
        session = Session.create(case_dir, volume, args.input, series_uid=args.series, user=user)
    with session:
        review = ProposalReview(session)
        review.show(proposal, args.label)
        diff = review.accept()
        session.save()
        result = export_segmentation(volume, session.segmentation, output, user=user, case=case_dir)
    voxels = diff.voxels_changed.added if diff else 0
    model = proposal.model
    print(f"{model.name} {model.version} proposed {args.label}: {voxels} voxels accepted")
    print(f"wrote {getattr(result, 'path', output)}; case and audit trail in {case_dir}")
    return 0


def _printer() -> Any:
    if not sys.stderr.isatty():
        return None

    def show(fraction: float, message: str) -> bool:
        sys.stderr.write(f"\r{int(fraction * 100):3d}% {message[:70]:<70}")
        sys.stderr.flush()
        return True

    return show


def add_commands(commands: Any) -> None:
    segment = commands.add_parser("segment", help="propose a mask with an AI plugin, accept it and export it")
    segment.add_argument("input", help="the image: DICOM file/folder/zip, NIfTI, NRRD or MHA")
    segment.add_argument("--plugin", required=True, help="plugin name (see `radlabel plugins list`)")
    segment.add_argument("--box", metavar="i0,j0,k0,i1,j1,k1", help="box prompt in voxel indices (inclusive)")
    segment.add_argument("--point", action="append", metavar="i,j,k[,+|-]", help="point prompt (repeatable)")
    segment.add_argument("--propagate", action="store_true", help="propagate a slice proposal through slices")
    segment.add_argument("--label", required=True, help="segment name, e.g. 'Liver lesion' (terminology names)")
    segment.add_argument("--series", help="series UID (or a unique prefix) when the input holds several")
    segment.add_argument("-o", "--output", required=True, help="output: .nii.gz, .seg.nrrd, .nrrd or .dcm (SEG)")
    segment.add_argument("--case", help="case folder for the audit trail (default: beside the output)")
    segment.add_argument("--user", help="reader identity recorded in the audit trail")
    segment.set_defaults(func=cmd_segment)
