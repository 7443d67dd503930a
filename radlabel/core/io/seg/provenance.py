"""Who exported a segmentation and which audit history it belongs to, written into the exported files.

An export carries the reader's identity and the **audit head** (hash of the last record of the case's
hash-chained log, :mod:`radlabel.core.audit`) at the moment of export. The export itself is then appended to
the log as an ``export`` record whose ``prev_hash`` is that same head, so a file found later can be tied to
exactly one point in one history, and the log says which files were made from it.

Where it goes:

- DICOM SEG / RTSTRUCT: ``ContentCreatorName`` (SEG) or ``StructureSetLabel``/operators (RTSTRUCT) carry the
  identity; ``ContentDescription`` carries a short form (``radlabel audit 1a2b3c4d5e6f, 12 records``) because
  it is only 64 characters; the full hash, record count, identity, software and case name are in a private
  block, private creator ``RADLABEL AUDIT`` in group 0011 (:data:`PRIVATE_GROUP`).
- NIfTI / NRRD / .seg.nrrd: the JSON sidecar's ``provenance`` object (and, for ``.seg.nrrd``, header keys
  ``radlabel_AuditHead`` etc., which 3D Slicer keeps as plain key/value pairs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from radlabel import __version__
from radlabel.core.audit import AUDIT_FILE_NAME, AuditLog, AuditRecord, current_user
from radlabel.core.errors import CaseError, InputError

PRIVATE_GROUP = 0x0011
PRIVATE_CREATOR = "RADLABEL AUDIT"
#: Element offsets inside the private block (tag = (0011, xx00 + offset)).
_HEAD, _COUNT, _USER, _SOFTWARE, _CASE = 0x01, 0x02, 0x03, 0x04, 0x05
SHORT_HASH_LENGTH = 12


@dataclass(frozen=True)
class Provenance:
    """Identity and audit position written into an export."""

    user: str
    audit_head: str | None = None
    audit_count: int | None = None
    case: str | None = None
    software: str = f"radlabel {__version__}"

    @classmethod
    def for_user(cls, user: str | None = None) -> Provenance:
        """No case log: identity only (the configured name, else the OS login name)."""
        return cls(user=user or current_user())

    @classmethod
    def from_case(cls, case: str | Path, user: str | None = None) -> Provenance:
        """Identity plus the head of the case's audit log; refuses a log that fails verification."""
        path = audit_path(case)
        with AuditLog(path, user) as log:
            result = log.verify()
            if not result.ok:
                raise CaseError(
                    f"the audit log fails verification ({result.problems[0]})",
                    path,
                    "run `radlabel audit verify` and resolve it before exporting",
                )
            count, head = log.head()
            name = path.parent.name if path.name == AUDIT_FILE_NAME else path.stem
            return cls(user=user or log.user, audit_head=head, audit_count=count, case=name)

    @property
    def short_hash(self) -> str:
        return (self.audit_head or "")[:SHORT_HASH_LENGTH]

    def description(self, prefix: str = "radlabel") -> str:
        """A short text for 64-character fields such as ContentDescription."""
        if self.audit_head is None:
            return f"{prefix}; reader {self.user}"[:64]
        return f"{prefix} audit {self.short_hash}, {self.audit_count} records"[:64]

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "audit_head": self.audit_head,
            "audit_count": self.audit_count,
            "case": self.case,
            "software": self.software,
        }


def audit_path(case: str | Path) -> Path:
    """The audit database of a case: ``CASE/audit.sqlite``, or ``case`` itself when it is the database file."""
    p = Path(case).expanduser()
    path = p / AUDIT_FILE_NAME if p.is_dir() else p
    if not path.is_file():
        where = f"no {AUDIT_FILE_NAME} in this folder" if p.is_dir() else "no such audit database"
        raise InputError(where, p, "give a case folder that holds audit.sqlite, or the .sqlite file itself")
    return path


def write_private_block(ds: Dataset, provenance: Provenance) -> None:
    """Add the ``RADLABEL AUDIT`` private block to ``ds``."""
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    if provenance.audit_head is not None:
        block.add_new(_HEAD, "LO", provenance.audit_head)
        block.add_new(_COUNT, "UL", int(provenance.audit_count or 0))
    block.add_new(_USER, "LO", provenance.user[:64])
    block.add_new(_SOFTWARE, "LO", provenance.software[:64])
    if provenance.case:
        block.add_new(_CASE, "LO", provenance.case[:64])


def read_private_block(ds: Dataset) -> Provenance | None:
    """The provenance a radlabel export wrote into ``ds``, or ``None``."""
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    except KeyError:
        return None

    def value(offset: int) -> Any:
        return block[offset].value if offset in block else None

    head, count = value(_HEAD), value(_COUNT)
    return Provenance(
        user=str(value(_USER) or ""),
        audit_head=str(head) if head else None,
        audit_count=int(count) if count is not None else None,
        case=str(value(_CASE)) if value(_CASE) else None,
        software=str(value(_SOFTWARE) or ""),
    )


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_export(case: str | Path, provenance: Provenance, output: str | Path, details: dict[str, Any]) -> AuditRecord:
    """Append an ``export`` record to the case's log (its ``prev_hash`` is the head written into the file)."""
    path = audit_path(case)
    with AuditLog(path, provenance.user) as log:
        _, head = log.head()
        if provenance.audit_head is not None and head != provenance.audit_head:
            details = {**details, "note": "the log changed between reading its head and recording the export"}
        payload = {
            "output": str(Path(output).resolve()),
            "sha256": file_sha256(output),
            "audit_head_in_file": provenance.audit_head,
            **details,
        }
        return log.append("export", payload)


def record_import(case: str | Path, user: str | None, source: str | Path, details: dict[str, Any]) -> AuditRecord:
    """Append an ``import`` record (file, its SHA-256, what was read) to the case's log."""
    path = audit_path(case)
    with AuditLog(path, user) as log:
        payload = {"source": str(Path(source).resolve()), "sha256": file_sha256(source), **details}
        return log.append("import", payload)


__all__ = [
    "PRIVATE_CREATOR",
    "PRIVATE_GROUP",
    "Provenance",
    "audit_path",
    "file_sha256",
    "read_private_block",
    "record_export",
    "record_import",
    "write_private_block",
]
