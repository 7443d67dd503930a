"""`radlabel config show`, `radlabel models ...` and `radlabel doctor` as IT runs them: real processes, settings
files and model folders in a temporary directory named through environment variables."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from radlabel.core.audit import AuditLog

ENCODER = b"\x08\x01onnx encoder " * 1000


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RADLABEL_")}
    environ.update(
        RADLABEL_SETTINGS=str(tmp_path / "user.toml"),
        RADLABEL_SITE_SETTINGS=str(tmp_path / "site.toml"),
        RADLABEL_SITE_MODELS=str(tmp_path / "site-models"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    return environ


def radlabel(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "radlabel.cli", *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )


def make_pack_zip(path: Path, version: str = "0.1.1") -> Path:
    manifest = {
        "format": "radlabel-model-pack/1",
        "name": "litemedsam-onnx",
        "version": version,
        "kind": "onnx",
        "plugins": ["litemedsam"],
        "license": "Apache-2.0",
        "files": [
            {
                "path": "encoder.onnx",
                "role": "encoder",
                "sha256": hashlib.sha256(ENCODER).hexdigest(),
                "size": len(ENCODER),
            }
        ],
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("radlabel-pack.json", json.dumps(manifest))
        archive.writestr("encoder.onnx", ENCODER)
    return path


def test_config_show_values_sources_files_warnings(tmp_path: Path, env: dict[str, str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        '[storage]\ncase_location = "cases-dir"\ncases_dir = "/srv/radlabel/cases"\n'
        '[identity]\nsource = "env"\nenv_var = "RADLABEL_READER"\n[ai]\nallow_gpu = false\n'
    )
    user = tmp_path / "user.toml"
    user.write_text('[storage]\ncase_location = "beside-image"\n[ai]\ndevice = "cuda"\n[colours]\nx = 1\n')
    result = radlabel({**env, "RADLABEL_READER": "Dr R. Login"}, "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    table = {row["key"]: (row["value"], row["source"]) for row in data["settings"]}
    assert table["storage.case_location"] == ("cases-dir", str(site))
    assert table["storage.cases_dir"] == ("/srv/radlabel/cases", str(site))
    assert table["ai.device"][0] == "cpu" and "allow_gpu" in table["ai.device"][1]
    assert table["ai.cache_entries"] == (64, "default")
    assert table["models.site_dir"] == (str(tmp_path / "site-models"), "$RADLABEL_SITE_MODELS")
    assert data["reader"] == {"name": "Dr R. Login", "from": "$RADLABEL_READER"}
    assert data["files"] == [
        {"role": "site", "path": str(site), "read": True},
        {"role": "user", "path": str(user), "read": True},
    ]
    assert any("storage.case_location is set by the site" in w for w in data["warnings"])
    assert any("[colours]" in w for w in data["warnings"])

    text = radlabel(env, "config", "show")
    assert text.returncode == 0, text.stderr
    line = next(line for line in text.stdout.splitlines() if line.startswith("storage.case_location"))
    assert '"cases-dir"' in line and line.endswith(str(site))
    assert "RADLABEL_READER is not set" in text.stdout  # unset here: the OS login, with a warning
    assert f"user  {user}  read" in text.stdout


def test_config_show_invalid_file_is_one_line_and_exit_2(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "site.toml").write_text('[storage]\n\ncase_location = "next-to-the-image"\n')
    result = radlabel(env, "config", "show")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(tmp_path / "site.toml") in lines[0]
    assert "line 3: storage.case_location must be one of" in lines[0]
    (tmp_path / "site.toml").write_text("[storage\n")
    broken = radlabel(env, "config", "show", "--json")
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr and len(broken.stderr.splitlines()) == 1


def test_models_install_list_verify_remove_and_doctor(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "site.toml").write_text("[ai]\nallowed_plugins = []\n")  # no plugin code runs in this test
    archive = make_pack_zip(tmp_path / "litemedsam-onnx-0.1.1.zip")

    installed = radlabel(env, "models", "install", archive)
    assert installed.returncode == 0, installed.stderr
    target = tmp_path / "data" / "radlabel" / "models" / "litemedsam-onnx"
    assert f"installed litemedsam-onnx 0.1.1 (onnx, 1 file(s)) in {target}" in installed.stdout
    again = radlabel(env, "models", "install", archive)
    assert again.returncode == 2 and "already installed" in again.stderr and "--force" in again.stderr

    listing = radlabel(env, "models", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    packs = json.loads(listing.stdout)["packs"]
    assert [(p["name"], p["version"], p["origin"], p["path"]) for p in packs] == [
        ("litemedsam-onnx", "0.1.1", "user", str(target))
    ]
    assert radlabel(env, "models", "verify").returncode == 0

    doctor = radlabel(env, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["ok"] is True
    names = {c["name"] for c in report["checks"]}
    assert {"python", "cpu", "gpu", "settings", "identity", "storage", "audit", "qt"} <= names
    pack_check = next(c for c in report["checks"] if c["name"] == "model pack litemedsam-onnx")
    assert pack_check["status"] == "ok"

    # Tamper with the installed weights: verify and doctor fail and name the file.
    (target / "encoder.onnx").write_bytes(ENCODER[:-4] + b"evil")
    verify = radlabel(env, "models", "verify", "litemedsam-onnx")
    assert verify.returncode == 1
    assert str(target / "encoder.onnx") in verify.stderr and "SHA-256" in verify.stderr
    doctor = radlabel(env, "doctor")
    assert doctor.returncode == 1
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and str(target / "encoder.onnx") in failed[0], doctor.stdout

    removed = radlabel(env, "models", "remove", "litemedsam-onnx")
    assert removed.returncode == 0, removed.stderr
    assert not target.exists()
    assert "no model packs installed" in radlabel(env, "models", "list").stdout


def test_doctor_names_a_case_whose_audit_log_was_tampered_with(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "site.toml").write_text(f'[ai]\nallowed_plugins = []\n[storage]\ncases_dir = "{tmp_path / "cases"}"\n')
    good = tmp_path / "cases" / "ok-case"
    bad = tmp_path / "cases" / "ct.nii-0123456789" / "series-abcdef0123"
    for case in (good, bad):
        case.mkdir(parents=True)
        with AuditLog.for_case(case, user="reader") as log:
            log.append("edit", {"segment": 1, "voxels": 10})
            log.append("save", {})
    db = sqlite3.connect(bad / "audit.sqlite")
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET payload = ? WHERE seq = 1", (json.dumps({"segment": 1, "voxels": 99}),))
    db.commit()
    db.close()
    result = radlabel(env, "doctor", "--json")
    assert result.returncode == 1, result.stdout
    checks = json.loads(result.stdout)["checks"]
    failed = [c for c in checks if c["status"] == "fail"]
    assert len(failed) == 1 and failed[0]["name"] == "audit"
    assert str(bad / "audit.sqlite") in failed[0]["detail"] and "first bad record 1" in failed[0]["detail"]
    assert any(c["name"] == "audit" and c["status"] == "ok" and "1 case audit log(s)" in c["detail"] for c in checks)


def test_doctor_reports_an_invalid_settings_file_and_goes_on(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "user.toml").write_text("[ai]\ncache_entries = 0\n")
    result = radlabel(env, "doctor", "--json")
    assert result.returncode == 1
    checks = json.loads(result.stdout)["checks"]
    settings = next(c for c in checks if c["name"] == "settings")
    assert settings["status"] == "fail" and "ai.cache_entries" in settings["detail"]
    assert str(tmp_path / "user.toml") in settings["detail"]
    assert any(c["name"] == "storage" for c in checks)  # the other checks still ran
