"""`radlabel export`, `radlabel import-seg` and `radlabel audit` as a user runs them: files, exit codes, messages.

One test runs the real process; the others call the same `main()` in-process (a process start costs ~2 s of
imports, and these tests check what the commands do, not how Python starts)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from radlabel.cli import main
from radlabel.core.audit import AuditLog
from radlabel.core.io.loader import load
from radlabel.core.io.seg import import_segmentation
from radlabel.core.io.seg.provenance import file_sha256, read_private_block
from radlabel.core.segmentation.labelmap_io import read_labelmap
from tests.core.seg_reference import assert_same_segments, dciodvfy_errors

DCMQI = ("dcmqi", "ct_3slice_with_seg")


def radlabel_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radlabel.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def radlabel(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``radlabel(*args)`` -> returncode, stdout, stderr of ``radlabel.cli.main`` run in this process."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(list(map(str, args)), code, captured.out, captured.err)

    return run


def make_case(tmp_path: Path, records: int = 4) -> Path:
    case = tmp_path / "case"
    case.mkdir()
    with AuditLog.for_case(case, user="Doe^Jane") as log:
        for n in range(records):
            log.append("edit", {"tool": "paint", "segment": "liver", "voxels": 10 * n})
    return case


def test_export_a_label_map_as_seg_for_a_case(shared_data: Path, tmp_path: Path) -> None:
    radlabel = radlabel_process
    image = shared_data.joinpath(*DCMQI, "image_dicom")
    case = make_case(tmp_path)
    with AuditLog.for_case(case) as log:
        count, head = log.head()
    out = tmp_path / "liver.dcm"
    result = radlabel(
        "export", image, shared_data.joinpath(*DCMQI, "labels_nrrd", "liver_seg.nrrd"), "-o", out,
        "--user", "Doe^Jane", "--case", case,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "DICOM SEG BINARY" in result.stdout and "audit record 6 appended" in result.stdout
    assert dciodvfy_errors(out) == []
    with AuditLog.for_case(case) as log:
        *_, imported, last = list(log.records())
    # the import is logged first; the file carries the head after it; the export record follows that head
    assert imported.action == "import" and imported.payload["format"] == "label map" and imported.prev_hash == head
    assert last.action == "export" and last.user == "Doe^Jane" and last.prev_hash == imported.hash
    ds = pydicom.dcmread(out)
    provenance = read_private_block(ds)
    assert provenance is not None and provenance.audit_head == imported.hash and provenance.audit_count == count + 1
    assert str(ds.ContentCreatorName) == "Doe^Jane" and imported.hash[:12] in ds.ContentDescription
    assert last.payload["sha256"] == file_sha256(out) and last.payload["format"] == "DICOM SEG BINARY"
    verified = radlabel("audit", "verify", case)  # a real process too
    assert verified.returncode == 0 and "ok, 6 record(s)" in verified.stdout
    volume = load(image).volume
    expected = read_labelmap(shared_data.joinpath(*DCMQI, "labels_nrrd", "liver_seg.nrrd"), volume).segmentation
    back = import_segmentation(out, volume).segmentation
    np.testing.assert_array_equal(back.label_map() > 0, expected.label_map() > 0)


@pytest.mark.parametrize("output", ["po.seg.nrrd", "po.nii.gz", "po.dcm", "po_rt.dcm"])
def test_import_seg_converts_without_a_gui(
    radlabel: Callable[..., subprocess.CompletedProcess[str]], shared_data: Path, tmp_path: Path, output: str
) -> None:
    image = shared_data.joinpath(*DCMQI, "image_dicom")
    source = shared_data.joinpath(*DCMQI, "seg_dicom", "partial_overlaps.dcm")
    out = tmp_path / output
    extra = ["--rtstruct"] if "_rt" in output else []
    result = radlabel("import-seg", image, source, "-o", out, *extra)
    assert result.returncode == 0, result.stderr
    volume = load(image).volume
    expected = import_segmentation(source, volume).segmentation
    back = import_segmentation(out, volume).segmentation
    assert_same_segments(back, {s.name: expected.mask(s.id) for s in expected.segments.values()}, output)
    if output.endswith(".dcm"):
        assert dciodvfy_errors(out) == []


def test_fractional_and_labelmap_exports(
    radlabel: Callable[..., subprocess.CompletedProcess[str]], shared_data: Path, tmp_path: Path
) -> None:
    case = shared_data / "highdicom" / "seg_ct_small_binary_fractional"
    image = case / "image_dicom_from_pydicom"
    source = case / "seg_dicom" / "seg_image_ct_true_fractional.dcm"
    out = tmp_path / "fractional.dcm"
    result = radlabel("export", image, source, "-o", out, "--fractional")
    assert result.returncode == 0, result.stderr
    assert dciodvfy_errors(out) == []
    volume = load(image).volume
    original = import_segmentation(source, volume).probabilities[1]
    written = import_segmentation(out, volume).probabilities[1]
    np.testing.assert_allclose(written, original, atol=0.5 / 255 + 1e-6)
    labelmap = tmp_path / "labelmap.dcm"
    result = radlabel("export", image, source, "-o", labelmap, "--labelmap")
    assert result.returncode == 0, result.stderr
    assert pydicom.dcmread(labelmap).SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7"
    assert dciodvfy_errors(labelmap) == []


def test_bad_input_is_one_line_and_exit_2(
    radlabel: Callable[..., subprocess.CompletedProcess[str]], shared_data: Path, tmp_path: Path
) -> None:
    image = shared_data.joinpath(*DCMQI, "image_dicom")
    overlaps = shared_data.joinpath(*DCMQI, "seg_dicom", "partial_overlaps.dcm")
    nifti = shared_data / "totalsegmentator" / "ct_nifti_with_multilabel_seg"
    cases = [
        (("export", image, tmp_path / "missing.nii.gz", "-o", tmp_path / "x.dcm"), "missing.nii.gz"),
        (("export", image, overlaps, "-o", tmp_path / "x.txt"), "cannot tell the output format"),
        (("export", image, overlaps, "-o", tmp_path / "x.dcm", "--labelmap"), "segments overlap"),
        (
            ("export", nifti / "example_ct_sm.nii.gz", nifti / "example_seg.nii.gz", "-o", tmp_path / "x.dcm"),
            "not loaded from DICOM",
        ),
        (("audit", "verify", tmp_path), "no audit.sqlite"),
    ]
    for args, message in cases:
        result = radlabel(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("radlabel: error:") and message in lines[0], lines
        assert not (tmp_path / "x.dcm").exists()


def _tamper(path: Path, *statements: str) -> None:
    db = sqlite3.connect(str(path))
    db.execute("DROP TRIGGER IF EXISTS audit_no_update")
    db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("statements", "first_bad"),
    [
        (['UPDATE audit SET payload = \'{"tool":"erase"}\' WHERE seq = 3'], 3),
        (["DELETE FROM audit WHERE seq = 2"], 2),
        (
            [
                "UPDATE audit SET seq = -1 WHERE seq = 2",
                "UPDATE audit SET seq = 2 WHERE seq = 3",
                "UPDATE audit SET seq = 3 WHERE seq = -1",
            ],
            2,
        ),
    ],
    ids=["changed", "removed", "swapped"],
)
def test_audit_verify_catches_a_tampered_database(
    radlabel: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, statements: list[str], first_bad: int
) -> None:
    case = make_case(tmp_path, records=5)
    shown = radlabel("audit", "show", case, "--json")
    assert shown.returncode == 0, shown.stderr
    listing = json.loads(shown.stdout)
    assert listing["verified"] and [r["seq"] for r in listing["records"]] == [1, 2, 3, 4, 5]
    assert listing["records"][0]["user"] == "Doe^Jane" and listing["head"] == listing["records"][-1]["hash"]
    _tamper(case / "audit.sqlite", *statements)
    result = radlabel("audit", "verify", case / "audit.sqlite")
    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and f"first bad record {first_bad}:" in line
    text = radlabel("audit", "show", case)
    assert text.returncode == 0 and "FAILS VERIFICATION" in text.stdout


def test_export_follows_the_site_settings(
    radlabel: Callable[..., subprocess.CompletedProcess[str]],
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No --user and no type flag: the reader and the SEG type come from the site configuration."""
    site = tmp_path / "site.toml"
    site.write_text('[identity]\nsource = "setting"\nuser = "Dr Site Reader"\n\n[export]\nseg_type = "fractional"\n')
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(site))
    monkeypatch.setenv("RADLABEL_SETTINGS", str(tmp_path / "no-user.toml"))
    image = shared_data.joinpath(*DCMQI, "image_dicom")
    source = shared_data.joinpath(*DCMQI, "seg_dicom", "partial_overlaps.dcm")
    out = tmp_path / "site.dcm"
    result = radlabel("export", image, source, "-o", out)
    assert result.returncode == 0, result.stderr
    written = pydicom.dcmread(out)
    assert written.SegmentationType == "FRACTIONAL"  # as the site asked
    assert str(written.ContentCreatorName) == "Dr Site Reader"
