"""Model packs on real files: install from a folder, zip and tar; refusals (hash, size, format, kind, name,
extra/missing files, links, zip-slip); all-or-nothing replacement; listing, search order, verify, remove; the
SDK's view (find_model_pack, model_packs, plugin_settings_or_empty)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radlabel.ai import sdk
from radlabel.app.model_packs import (
    MANIFEST_NAME,
    ModelPackError,
    find_pack,
    install_pack,
    installed_packs,
    leftovers,
    make_manifest,
    remove_pack,
    scan_packs,
)
from radlabel.core.errors import Cancelled, PluginError
from radlabel.core.settings import ModelsSettings, Settings, load_settings

ENCODER = b"encoder weights " * 4096  # 64 KiB
DECODER = b"decoder weights " * 100


def manifest_for(
    files: dict[str, bytes], name: str = "demo-onnx", version: str = "1.0.0", kind: str = "onnx", **extra: Any
) -> dict[str, Any]:
    roles = {"encoder.onnx": "encoder", "sub/decoder.onnx": "decoder"}
    entries = []
    for path, content in files.items():
        entry: dict[str, Any] = {"path": path, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
        if path in roles:
            entry["role"] = roles[path]
        entries.append(entry)
    return {
        "format": "radlabel-model-pack/1",
        "name": name,
        "version": version,
        "kind": kind,
        "plugins": ["litemedsam"],
        "description": "a test pack",
        "license": "Apache-2.0",
        "files": entries,
        **extra,
    }


def default_files() -> dict[str, bytes]:
    return {"encoder.onnx": ENCODER, "sub/decoder.onnx": DECODER}


def pack_folder(root: Path, manifest: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> Path:
    files = default_files() if files is None else files
    manifest = manifest_for(files) if manifest is None else manifest
    root.mkdir(parents=True)
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    return root


def pack_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def zip_members(manifest: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> dict[str, bytes]:
    files = default_files() if files is None else files
    manifest = manifest_for(files) if manifest is None else manifest
    return {MANIFEST_NAME: json.dumps(manifest).encode(), **files}


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings files in tmp_path: user install folder, site folder and bundled folder all under tmp_path; the
    same settings are what the SDK finds through the environment."""
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("RADLABEL_SETTINGS", str(tmp_path / "user.toml"))
    monkeypatch.setenv("RADLABEL_SITE_SETTINGS", str(tmp_path / "site.toml"))
    monkeypatch.setenv("RADLABEL_SITE_MODELS", str(tmp_path / "site-models"))
    monkeypatch.setenv("RADLABEL_BUNDLED_MODELS", str(tmp_path / "bundled"))
    monkeypatch.setattr(sdk, "_settings_object", None)
    yield load_settings()


def models_dir(settings: Settings) -> Path:
    return settings.models.install_dir


def assert_nothing_installed(settings: Settings, name: str = "demo-onnx") -> None:
    root = models_dir(settings)
    assert not (root / name).exists()
    assert not leftovers(settings)
    assert not root.exists() or [p.name for p in root.iterdir()] == []


# --- installing ---------------------------------------------------------------------------------------------


def test_install_from_a_folder(tmp_path: Path, settings: Settings) -> None:
    source = pack_folder(tmp_path / "src")
    result = install_pack(source, settings)
    target = models_dir(settings) / "demo-onnx"
    assert result.pack.path == target and result.replaced_version is None
    assert tree(target) == tree(source)  # exactly the listed files and the manifest
    assert result.pack.verify() == []
    assert result.pack.file("encoder") == target / "encoder.onnx"
    assert result.pack.file("decoder").read_bytes() == DECODER
    with pytest.raises(ModelPackError, match=r"model pack 'demo-onnx': has no file with role 'mask'.*encoder"):
        result.pack.file("mask")
    assert list(models_dir(settings).iterdir()) == [target]  # no staging folder left


def test_install_from_zip_and_tar(tmp_path: Path, settings: Settings) -> None:
    archive = pack_zip(tmp_path / "pack.zip", zip_members())
    pack = install_pack(archive, settings).pack
    assert pack.verify() == [] and pack.version == "1.0.0"
    remove_pack("demo-onnx", settings)

    # A tar.gz made like `tar -C src -czf pack.tar.gz .` (members start with "./", folders included).
    source = pack_folder(tmp_path / "src")
    with tarfile.open(tmp_path / "pack.tar.gz", "w:gz") as tar:
        tar.add(source, arcname=".")
    pack = install_pack(tmp_path / "pack.tar.gz", settings).pack
    assert tree(pack.path) == tree(source)

    # A zip whose files sit in one top-level folder, as release archives often do.
    remove_pack("demo-onnx", settings)
    wrapped = {f"demo-onnx-1.0.0/{name}": content for name, content in zip_members().items()}
    pack = install_pack(pack_zip(tmp_path / "wrapped.zip", wrapped), settings).pack
    assert tree(pack.path) == tree(source)


def test_site_install_goes_to_the_site_folder(tmp_path: Path, settings: Settings) -> None:
    pack = install_pack(pack_folder(tmp_path / "src"), settings, site=True).pack
    assert pack.path == tmp_path / "site-models" / "demo-onnx"
    assert find_pack("demo-onnx", settings) is not None
    assert find_pack("demo-onnx", settings).origin == "site"  # type: ignore[union-attr]


def test_wrong_hash_is_refused_and_nothing_is_installed(tmp_path: Path, settings: Settings) -> None:
    manifest = manifest_for(default_files())
    manifest["files"][1]["sha256"] = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ModelPackError) as caught:
        install_pack(pack_folder(tmp_path / "src", manifest), settings)
    message = str(caught.value)
    assert "model pack 'demo-onnx'" in message and "file sub/decoder.onnx: SHA-256" in message
    assert "nothing installed" in message and ".staging" not in message  # named as in the pack
    assert_nothing_installed(settings)


def test_wrong_size_is_refused_before_copying(tmp_path: Path, settings: Settings) -> None:
    manifest = manifest_for(default_files())
    manifest["files"][0]["size"] = 10
    with pytest.raises(ModelPackError, match=r"file encoder\.onnx has 65536 bytes, the manifest says 10"):
        install_pack(pack_folder(tmp_path / "src", manifest), settings)
    assert_nothing_installed(settings)
    # In a zip, the sizes in the directory may lie too: the copy stops at the manifest's size.
    members = zip_members(manifest)
    with pytest.raises(ModelPackError, match=r"encoder\.onnx"):
        install_pack(pack_zip(tmp_path / "p.zip", members), settings)
    assert_nothing_installed(settings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "radlabel-model-pack/2"}, r"'demo-onnx': unknown format 'radlabel-model-pack/2'"),
        ({"kind": "tensorflow"}, r"'demo-onnx': unknown kind 'tensorflow'"),
        ({"name": "Demo ONNX"}, r"field 'name' must match"),
        ({"name": "../escape"}, r"field 'name' must match"),
        ({"version": ""}, r"field 'version'"),
        ({"files": []}, r"field 'files' must be a non-empty list"),
    ],
)
def test_bad_manifest_fields_are_refused(
    tmp_path: Path, settings: Settings, change: dict[str, Any], message: str
) -> None:
    manifest = {**manifest_for(default_files()), **change}
    with pytest.raises(ModelPackError, match=message) as caught:
        install_pack(pack_folder(tmp_path / "src", manifest), settings)
    assert MANIFEST_NAME in str(caught.value)  # names the manifest file
    assert not models_dir(settings).exists()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "is an absolute path"),
        ("../evil.onnx", r"contains '\.\.'"),
        ("sub/../../evil.onnx", r"contains '\.\.'"),
        ("C:/evil.onnx", "is an absolute path"),
        ("sub\\evil.onnx", "backslash"),
        ("./encoder.onnx", "'.' parts"),
    ],
)
def test_unsafe_paths_in_the_manifest_are_refused(tmp_path: Path, settings: Settings, path: str, message: str) -> None:
    manifest = manifest_for(default_files())
    manifest["files"][0]["path"] = path
    with pytest.raises(ModelPackError, match=message):
        install_pack(pack_zip(tmp_path / "p.zip", zip_members(manifest)), settings)
    assert not models_dir(settings).exists()


def test_zip_slip_is_refused_and_nothing_is_written(tmp_path: Path, settings: Settings) -> None:
    members = {**zip_members(), "../../evil.txt": b"owned"}
    (tmp_path / "deep" / "er").mkdir(parents=True)
    with pytest.raises(ModelPackError, match=r"member '\.\./\.\./evil\.txt' contains '\.\.'"):
        install_pack(pack_zip(tmp_path / "deep" / "er" / "slip.zip", members), settings)
    assert not list(tmp_path.rglob("evil.txt"))
    assert_nothing_installed(settings)
    absolute = {**zip_members(), "/tmp/evil.txt": b"owned"}
    with pytest.raises(ModelPackError, match="is an absolute path"):
        install_pack(pack_zip(tmp_path / "abs.zip", absolute), settings)


def test_tar_with_parent_path_or_link_is_refused(tmp_path: Path, settings: Settings) -> None:
    def tar_with(extra: tarfile.TarInfo, content: bytes = b"") -> Path:
        path = tmp_path / f"{extra.name.replace('/', '_')}.tar"
        with tarfile.open(path, "w") as tar:
            for name, data in zip_members().items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            tar.addfile(extra, io.BytesIO(content) if content else None)
        return path

    escape = tarfile.TarInfo("../escape.txt")
    escape.size = 3
    with pytest.raises(ModelPackError, match=r"contains '\.\.'"):
        install_pack(tar_with(escape, b"bad"), settings)
    link = tarfile.TarInfo("link.onnx")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(ModelPackError, match=r"link\.onnx is a link"):
        install_pack(tar_with(link), settings)
    hard = tarfile.TarInfo("hard.onnx")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "encoder.onnx"
    with pytest.raises(ModelPackError, match=r"hard\.onnx is a link"):
        install_pack(tar_with(hard), settings)
    assert_nothing_installed(settings)


def test_symlinks_are_refused(tmp_path: Path, settings: Settings) -> None:
    source = pack_folder(tmp_path / "src")
    (source / "sub" / "decoder.onnx").unlink()
    (tmp_path / "elsewhere.onnx").write_bytes(DECODER)
    (source / "sub" / "decoder.onnx").symlink_to(tmp_path / "elsewhere.onnx")
    with pytest.raises(ModelPackError, match=r"sub/decoder\.onnx is a link"):
        install_pack(source, settings)
    # A symlink member in a zip (Unix mode S_IFLNK in the external attributes).
    info = zipfile.ZipInfo("sub/decoder.onnx")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr(MANIFEST_NAME, json.dumps(manifest_for(default_files())))
        archive.writestr("encoder.onnx", ENCODER)
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ModelPackError, match="is a link"):
        install_pack(tmp_path / "link.zip", settings)
    assert_nothing_installed(settings)


def test_extra_and_missing_files_are_refused(tmp_path: Path, settings: Settings) -> None:
    source = pack_folder(tmp_path / "src")
    (source / "run_me.py").write_text("import os")
    with pytest.raises(ModelPackError, match=r"file run_me\.py is not listed in radlabel-pack\.json"):
        install_pack(source, settings)
    (source / "run_me.py").unlink()
    (source / "empty").mkdir()
    with pytest.raises(ModelPackError, match="folder empty holds no listed file"):
        install_pack(source, settings)
    (source / "empty").rmdir()
    (source / "sub" / "decoder.onnx").unlink()
    with pytest.raises(ModelPackError, match=r"file sub/decoder\.onnx is listed but missing"):
        install_pack(source, settings)
    assert_nothing_installed(settings)


def test_not_a_pack(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelPackError, match=r"no radlabel-pack\.json at the root"):
        install_pack(tmp_path / "folder", settings)
    (tmp_path / "x.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelPackError, match=r"not a folder, a \.zip or a \.tar"):
        install_pack(tmp_path / "x.bin", settings)
    with pytest.raises(ModelPackError, match="does not exist"):
        install_pack(tmp_path / "missing.zip", settings)
    (tmp_path / "bad-json").mkdir()
    (tmp_path / "bad-json" / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ModelPackError, match="is not valid JSON"):
        install_pack(tmp_path / "bad-json", settings)


# --- replacing -----------------------------------------------------------------------------------------------


def test_replace_needs_force_or_a_new_version(tmp_path: Path, settings: Settings) -> None:
    install_pack(pack_folder(tmp_path / "v1"), settings)
    target = models_dir(settings) / "demo-onnx"
    before = tree(target)
    changed = {"encoder.onnx": b"new encoder", "sub/decoder.onnx": DECODER}
    same_version = pack_folder(tmp_path / "v1b", manifest_for(changed), changed)
    with pytest.raises(ModelPackError, match=r"version 1\.0\.0 is already installed.*Add --force"):
        install_pack(same_version, settings)
    assert tree(target) == before
    result = install_pack(same_version, settings, force=True)
    assert result.replaced_version == "1.0.0"
    assert (target / "encoder.onnx").read_bytes() == b"new encoder"
    assert result.pack.verify() == []
    newer = pack_folder(tmp_path / "v2", manifest_for(default_files(), version="2.0.0"))
    assert install_pack(newer, settings).replaced_version == "1.0.0"
    assert tree(target) == tree(newer)
    assert sorted(p.name for p in models_dir(settings).iterdir()) == ["demo-onnx"]  # nothing set aside is left


def test_failed_replacement_keeps_the_old_pack(tmp_path: Path, settings: Settings) -> None:
    install_pack(pack_folder(tmp_path / "v1"), settings)
    target = models_dir(settings) / "demo-onnx"
    before = tree(target)
    # Verification fails for the new version: the old one stays.
    bad = manifest_for(default_files(), version="2.0.0")
    bad["files"][0]["sha256"] = "0" * 64
    with pytest.raises(ModelPackError, match="verification failed"):
        install_pack(pack_folder(tmp_path / "v2-bad", bad), settings, force=True)
    assert tree(target) == before and not leftovers(settings)

    # A damaged archive: the second member's compressed data are corrupt, so extraction fails mid-copy.
    v2 = manifest_for(default_files(), version="2.0.0")
    archive = pack_zip(tmp_path / "v2.zip", zip_members(v2))
    with zipfile.ZipFile(archive) as readable:
        info = readable.getinfo("sub/decoder.onnx")
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 2, start + info.compress_size - 2):
        data[i] ^= 0x5A
    archive.write_bytes(bytes(data))
    with pytest.raises(ModelPackError, match="installation failed, nothing installed"):
        install_pack(archive, settings)
    assert tree(target) == before and not leftovers(settings)
    assert find_pack("demo-onnx", settings).version == "1.0.0"  # type: ignore[union-attr]

    # Cancelled part-way through the copy (the progress callback says stop after the first file).
    calls: list[str] = []

    def stop_after_encoder(fraction: float, message: str) -> bool:
        calls.append(message)
        return "decoder" not in message

    with pytest.raises(Cancelled):
        install_pack(pack_folder(tmp_path / "v2", v2), settings, progress=stop_after_encoder)
    assert any("encoder" in c for c in calls)
    assert tree(target) == before and not leftovers(settings)


# --- listing, search order, verify, remove -----------------------------------------------------------------------


def test_search_order_first_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    configured = tmp_path / "configured"
    (tmp_path / "site.toml").write_text(f'[models]\nfolders = ["{configured}"]\n')
    settings = load_settings()
    for folder, version in [
        (tmp_path / "bundled", "4.0.0"),
        (tmp_path / "site-models", "3.0.0"),
        (settings.models.install_dir, "2.0.0"),
        (configured, "1.0.0"),
    ]:
        pack_folder(folder / "demo-onnx", manifest_for(default_files(), version=version))
    pack_folder(tmp_path / "bundled" / "only-bundled", manifest_for(default_files(), name="only-bundled"))
    packs = installed_packs(settings)
    demo = [p for p in packs if p.name == "demo-onnx"]
    assert [(p.version, p.origin) for p in demo] == [
        ("1.0.0", "configured"),
        ("2.0.0", "user"),
        ("3.0.0", "site"),
        ("4.0.0", "bundled"),
    ]
    assert demo[0].shadowed_by is None
    assert all(p.shadowed_by == configured / "demo-onnx" for p in demo[1:])
    assert find_pack("demo-onnx", settings).version == "1.0.0"  # type: ignore[union-attr]
    assert find_pack("only-bundled", settings).origin == "bundled"  # type: ignore[union-attr]
    assert find_pack("absent", settings) is None

    # A configured folder may be a pack itself; a folder not named after its pack is reported, not used.
    shutil.rmtree(configured)
    pack_folder(configured, manifest_for(default_files(), version="1.5.0"))
    pack_folder(tmp_path / "site-models" / "wrong-name", manifest_for(default_files(), name="other"))
    scan = scan_packs(settings)
    assert find_pack("demo-onnx", settings).version == "1.5.0"  # type: ignore[union-attr]
    assert [b.path.name for b in scan.broken] == ["wrong-name"]
    assert "rename the folder to other" in scan.broken[0].problem.lower()


def test_verify_names_tampered_and_extra_files(tmp_path: Path, settings: Settings) -> None:
    pack = install_pack(pack_folder(tmp_path / "src"), settings).pack
    assert pack.verify() == []
    (pack.path / "encoder.onnx").write_bytes(ENCODER[:-1] + b"X")
    (pack.path / "notes.txt").write_text("hello")
    problems = pack.verify()
    assert any(str(pack.path / "encoder.onnx") in p and "SHA-256" in p for p in problems)
    assert any(str(pack.path / "notes.txt") in p and "not listed" in p for p in problems)
    (pack.path / "sub" / "decoder.onnx").unlink()
    assert any("decoder.onnx: missing" in p for p in pack.verify())


def test_remove(tmp_path: Path, settings: Settings) -> None:
    install_pack(pack_folder(tmp_path / "src"), settings)
    assert remove_pack("demo-onnx", settings) == models_dir(settings) / "demo-onnx"
    assert find_pack("demo-onnx", settings) is None
    assert list(models_dir(settings).iterdir()) == []
    with pytest.raises(ModelPackError, match="'demo-onnx': is not installed"):
        remove_pack("demo-onnx", settings)
    install_pack(pack_folder(tmp_path / "src2"), settings, site=True)
    with pytest.raises(ModelPackError, match="add --site"):
        remove_pack("demo-onnx", settings)
    remove_pack("demo-onnx", settings, site=True)
    assert find_pack("demo-onnx", settings) is None
    with pytest.raises(ModelPackError):
        remove_pack("../data", settings)


def test_make_manifest_matches_an_independent_computation(tmp_path: Path) -> None:
    source = pack_folder(tmp_path / "src")
    made = make_manifest(
        source, "demo-onnx", "1.0.0", "onnx", {"encoder.onnx": "encoder", "sub/decoder.onnx": "decoder"}
    )
    expected = manifest_for(default_files())
    assert sorted(made["files"], key=lambda f: f["path"]) == sorted(expected["files"], key=lambda f: f["path"])


# --- the SDK's view -----------------------------------------------------------------------------------------------


def test_sdk_find_model_pack(tmp_path: Path, settings: Settings) -> None:
    assert sdk.find_model_pack("demo-onnx") is None
    install_pack(pack_folder(tmp_path / "src"), settings)
    install_pack(
        pack_folder(
            tmp_path / "bundle",
            manifest_for({"configs/inference.json": b"{}"}, name="spleen", kind="monai-bundle"),
            {"configs/inference.json": b"{}"},
        ),
        settings,
    )
    pack = sdk.find_model_pack("demo-onnx")
    assert pack is not None
    assert pack.path == models_dir(settings) / "demo-onnx"
    assert pack.kind == "onnx" and pack.version == "1.0.0"
    assert pack.files == {"encoder": pack.path / "encoder.onnx", "decoder": pack.path / "sub" / "decoder.onnx"}
    assert pack.sha256["encoder"] == hashlib.sha256(ENCODER).hexdigest()
    assert sdk.verify_weights(pack.file("encoder"), pack.sha256["encoder"], "litemedsam") == pack.sha256["encoder"]
    assert pack.manifest["license"] == "Apache-2.0"
    assert pack.verify() == []
    with pytest.raises(PluginError, match="no file with role 'mask'"):
        pack.file("mask")
    assert [p.name for p in sdk.model_packs(kind="monai-bundle")] == ["spleen"]
    assert [p.name for p in sdk.model_packs(plugin="litemedsam")] == ["demo-onnx", "spleen"]
    assert [p.name for p in sdk.model_packs(kind="onnx", plugin="monai_bundle")] == []


def test_sdk_uses_the_settings_the_worker_hands_it(tmp_path: Path, settings: Settings) -> None:
    elsewhere = tmp_path / "worker-models"
    pack_folder(elsewhere / "demo-onnx")
    worker_settings = Settings(models=ModelsSettings(folders=(elsewhere,)))
    sdk._settings_object = worker_settings  # what the worker does (radlabel.ai.worker)
    found = sdk.find_model_pack("demo-onnx")
    assert found is not None and found.path == elsewhere / "demo-onnx"


def test_plugin_settings_or_empty(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "user.toml").write_text('[plugins.litemedsam]\nmodel_pack = "demo-onnx"\n')
    assert sdk.plugin_settings_or_empty("litemedsam") == {"model_pack": "demo-onnx"}
    assert sdk.plugin_settings_or_empty("other") == {}
    (tmp_path / "user.toml").write_text("[plugins.litemedsam\n")  # broken TOML
    assert sdk.plugin_settings_or_empty("litemedsam") == {}
    with pytest.raises(Exception, match="not valid TOML"):
        sdk.plugin_settings("litemedsam")
    # A broken settings file does not hide the packs in the default folders.
    install_pack(pack_folder(tmp_path / "src"), Settings(models=settings.models))
    assert sdk.find_model_pack("demo-onnx") is not None
    assert os.environ["RADLABEL_SETTINGS"] == str(tmp_path / "user.toml")
