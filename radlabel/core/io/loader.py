"""One entry point for every input a reader can open: DICOM (file, folder, zip, DICOMDIR), NIfTI, NRRD, MHA.

``scan(path)`` finds the series without reading pixels (fast, for `radlabel info` and a series browser);
``load(path, series_uid)`` reads one series. Both report progress and can be cancelled.
"""

from __future__ import annotations

from pathlib import Path

from radlabel.core.errors import (
    EmptyInputError,
    NotDicomError,
    RadlabelError,
    SeriesNotFoundError,
    UnsupportedFormatError,
)
from radlabel.core.io.dicom.reader import scan_sources
from radlabel.core.io.dicom.sources import DicomSource, iter_sources
from radlabel.core.io.series import BadFile, LoadedSeries, ScanResult, SeriesEntry
from radlabel.core.progress import Progress, ProgressCallback

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def volume_format(path: Path) -> str | None:
    """``"nifti"`` or ``"itk"`` by file name; ``None`` for anything else (tried as DICOM)."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(ITK_SUFFIXES):
        return "itk"
    return None


def _scan_volume_file(path: Path, kind: str) -> list[SeriesEntry]:
    if kind == "nifti":
        from radlabel.core.io.nifti import scan_nifti

        return scan_nifti(path)
    from radlabel.core.io.itk_image import scan_itk_image

    return scan_itk_image(path)


def scan(path: str | Path, progress: ProgressCallback | None = None) -> ScanResult:
    """Every series under ``path``. Bad files in a folder are listed in ``bad_files``, not raised."""
    p = Path(path)
    kind = volume_format(p)
    if kind is not None and p.is_file():
        return ScanResult(path=str(p), series=_scan_volume_file(p, kind))
    sources = iter_sources(p)
    volume_files = [s for s in sources if s.path is not None and volume_format(s.path) is not None]
    dicom_sources = [s for s in sources if s not in volume_files]
    result = ScanResult(path=str(p))
    for source in volume_files:
        assert source.path is not None
        try:
            result.series.extend(_scan_volume_file(source.path, volume_format(source.path) or ""))
        except RadlabelError as exc:
            result.bad_files.append(BadFile(source.name, exc.problem))
    if dicom_sources:
        entries, bad, other = scan_sources(dicom_sources, str(p), Progress(progress, what="scanning"))
        result.series.extend(entries)
        result.bad_files.extend(bad)
        result.other_objects.extend(other)
    if not result.series:
        _raise_nothing_found(p, sources, result)
    return result


def _raise_nothing_found(path: Path, sources: list[DicomSource], result: ScanResult) -> None:
    if path.is_file() and len(sources) == 1 and sources[0].path is not None and sources[0].zip_path is None:
        _raise_single_file_problem(sources[0])
    problems = result.bad_files + result.other_objects
    first = problems[0] if problems else None
    detail = f"; first problem: {Path(first.path).name}: {first.reason}" if first else ""
    raise EmptyInputError(f"no image series found in {len(sources)} file(s){detail}", path)


def _raise_single_file_problem(source: DicomSource) -> None:
    """Re-read the one file to raise its own typed error (the scan only kept the message)."""
    from radlabel.core.io.dicom.frames import read_header, records_from_dataset

    try:
        ds, offset, length = read_header(source)
        records_from_dataset(ds, source, offset, length)
    except NotDicomError as exc:
        raise UnsupportedFormatError(
            "not a DICOM, NIfTI, NRRD or MetaImage file (no DICOM header; NIfTI/NRRD/MHA files are recognised by "
            "their .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd extension)",
            source.name,
        ) from exc


def choose_series(result: ScanResult, series_uid: str | None) -> SeriesEntry:
    """The series ``series_uid`` names (a unique prefix is enough), or the only one when none is named."""
    if series_uid is None:
        if len(result.series) == 1:
            return result.series[0]
        listed = ", ".join(f"{s.info.uid} ({s.info.description or s.info.modality})" for s in result.series[:6])
        raise SeriesNotFoundError(
            f"holds {len(result.series)} series ({listed}{', ...' if len(result.series) > 6 else ''})",
            result.path,
            "choose one with --series UID (see `radlabel info`)",
        )
    exact = [s for s in result.series if s.info.uid == series_uid]
    matches = exact or [s for s in result.series if s.info.uid.startswith(series_uid)]
    if len(matches) != 1:
        what = "no series" if not matches else f"{len(matches)} series"
        raise SeriesNotFoundError(
            f"{what} with UID {series_uid}", result.path, "list the series with `radlabel info PATH`"
        )
    return matches[0]


def load(path: str | Path, series_uid: str | None = None, progress: ProgressCallback | None = None) -> LoadedSeries:
    """Read one series (the only one, or the one ``series_uid`` names) with its pixels."""
    overall = Progress(progress)
    result = scan(path, overall.sub(0.0, 0.2).report_callback())
    return choose_series(result, series_uid).load(overall.sub(0.2, 1.0).report_callback())
