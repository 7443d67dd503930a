"""NIfTI / NRRD / MetaImage / 3D Slicer ``.seg.nrrd`` export with provenance.

The voxels, the layers (one 3D file when no segments overlap, else 4D / a multi-layer ``.seg.nrrd``) and the
segment table (JSON sidecar) come from :func:`radlabel.core.segmentation.labelmap_io.write_labelmap`. This
module adds where the export came from: a ``provenance`` object in the sidecar (reader, audit head and record
count, case, software, time) and, in a ``.seg.nrrd``, the same as ``radlabel_*`` header keys, which 3D
Slicer keeps as plain key/value pairs.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from radlabel.core.io.atomic import atomic_write
from radlabel.core.io.seg.common import ExportResult, ordered_segments
from radlabel.core.io.seg.errors import SegmentationExportError
from radlabel.core.io.seg.provenance import Provenance
from radlabel.core.progress import ProgressCallback
from radlabel.core.segmentation.labelmap_io import SEG_NRRD_SUFFIX, sidecar_path, write_labelmap
from radlabel.core.segmentation.model import Segmentation

PROVENANCE_KEY = "provenance"


def _nrrd_value(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def _add_nrrd_keys(path: Path, provenance: Provenance) -> None:
    data = path.read_bytes()
    end = data.find(b"\n\n")
    if end < 0:
        raise SegmentationExportError("the written NRRD header has no end", path)
    keys = {
        "radlabel_User": provenance.user,
        "radlabel_AuditHead": provenance.audit_head or "",
        "radlabel_AuditCount": str(provenance.audit_count if provenance.audit_count is not None else ""),
        "radlabel_Case": provenance.case or "",
        "radlabel_Software": provenance.software,
    }
    lines = "".join(f"\n{key}:={_nrrd_value(value)}" for key, value in keys.items() if value).encode("utf-8")
    atomic_write(path, lambda p: p.write_bytes(data[:end] + lines + data[end:]))


def export_labelmap(
    segmentation: Segmentation,
    path: str | Path,
    *,
    provenance: Provenance | None = None,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Write the label map + JSON sidecar (segment table and provenance); returns where and what."""
    provenance = provenance or Provenance.for_user()
    written = write_labelmap(segmentation, path, sidecar=True, progress=progress)
    side = sidecar_path(written)
    table = json.loads(side.read_text(encoding="utf-8"))
    table[PROVENANCE_KEY] = {
        **provenance.to_json(),
        "exported_utc": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    text = json.dumps(table, indent=2, ensure_ascii=False) + "\n"
    atomic_write(side, lambda p: p.write_text(text, encoding="utf-8"))
    if written.name.lower().endswith(SEG_NRRD_SUFFIX):
        _add_nrrd_keys(written, provenance)
    kind = "3D Slicer .seg.nrrd" if written.name.lower().endswith(SEG_NRRD_SUFFIX) else "label map"
    return ExportResult(written, kind, len(ordered_segments(segmentation)))


def read_sidecar_provenance(path: str | Path) -> dict[str, object] | None:
    """The provenance a radlabel export wrote into a label map's sidecar, or ``None``."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = data.get(PROVENANCE_KEY) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else None


__all__ = ["PROVENANCE_KEY", "export_labelmap", "read_sidecar_provenance"]
