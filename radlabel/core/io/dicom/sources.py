"""Where DICOM bytes come from: a file, a folder (recursive), a zip, a DICOMDIR or a gzipped file."""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom

from radlabel.core.errors import EmptyInputError, InputError, UnreadablePathError


@dataclass(frozen=True)
class DicomSource:
    """One file's bytes. ``path`` is set when the bytes are a plain file on disk (fast pixel reads)."""

    name: str
    path: Path | None = None
    zip_path: Path | None = None
    member: str | None = None
    gzipped: bool = False

    def open(self) -> BinaryIO:
        if self.zip_path is not None and self.member is not None:
            with zipfile.ZipFile(self.zip_path) as archive:
                return io.BytesIO(archive.read(self.member))
        if self.path is None:
            raise UnreadablePathError("no file behind this source", self.name)
        if self.gzipped:
            with gzip.open(self.path, "rb") as stream:
                return io.BytesIO(stream.read())
        return open(self.path, "rb")

    @property
    def is_plain_file(self) -> bool:
        return self.path is not None and self.zip_path is None and not self.gzipped


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)


def _zip_sources(path: Path) -> Iterator[DicomSource]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"the zip archive cannot be read ({exc})", path) from exc
    for member in sorted(names):
        if member.startswith("__MACOSX/") or member.endswith("DICOMDIR"):
            continue
        yield DicomSource(name=f"{path}!{member}", zip_path=path, member=member)


def _dicomdir_sources(path: Path) -> Iterator[DicomSource]:
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise InputError(f"the DICOMDIR cannot be read ({exc})", path) from exc
    root = path.parent
    seen: set[Path] = set()
    for record in ds.get("DirectoryRecordSequence", []):
        file_id = record.get("ReferencedFileID")
        if file_id is None:
            continue
        parts = [file_id] if isinstance(file_id, str) else list(file_id)
        candidate = root.joinpath(*parts)
        if not candidate.exists():
            # Media written on other systems may change the case of file names.
            lowered = root.joinpath(*[p.lower() for p in parts])
            candidate = lowered if lowered.exists() else candidate
        if candidate not in seen:
            seen.add(candidate)
            yield DicomSource(name=str(candidate), path=candidate)


def is_dicomdir(path: Path) -> bool:
    return path.name.upper() == "DICOMDIR"


def iter_sources(path: str | Path) -> list[DicomSource]:
    """All candidate files under ``path``; raises for a missing path or an empty folder."""
    p = Path(path)
    if not p.exists():
        raise UnreadablePathError("no such file or folder", p)
    if not os.access(p, os.R_OK):
        raise UnreadablePathError("permission denied", p, "check the file permissions")
    if p.is_dir():
        dicomdir = next((c for c in p.iterdir() if is_dicomdir(c)), None)
        if dicomdir is not None:
            from_dir = list(_dicomdir_sources(dicomdir))
            if from_dir:
                return from_dir
        files = sorted(f for f in p.rglob("*") if f.is_file() and not is_dicomdir(f))
        if not files:
            raise EmptyInputError("the folder is empty", p)
        sources: list[DicomSource] = []
        for f in files:
            if f.suffix.lower() == ".zip" and _is_zip(f):
                sources.extend(_zip_sources(f))
            else:
                sources.append(_plain_source(f))
        return sources
    if not p.is_file():
        # FIFOs, sockets and devices would block or never end; only regular files are read.
        raise UnreadablePathError("not a regular file or folder", p)
    if is_dicomdir(p):
        return list(_dicomdir_sources(p))
    if p.suffix.lower() == ".zip" and _is_zip(p):
        found = list(_zip_sources(p))
        if not found:
            raise EmptyInputError("the zip archive holds no files", p)
        return found
    return [_plain_source(p)]


def _plain_source(path: Path) -> DicomSource:
    gz = path.suffix.lower() == ".gz" and not path.name.lower().endswith(".nii.gz")
    return DicomSource(name=str(path), path=path, gzipped=gz)
