"""Offline model packs: install, list, verify and remove the model files AI plugins use. Qt-free.

A **pack** is a folder, a ``.zip`` or a ``.tar`` / ``.tar.gz`` / ``.tgz`` / ``.tar.bz2`` / ``.tar.xz``
holding ``radlabel-pack.json`` at its root (an archive may instead hold one top-level folder with the
manifest in it)::

    {"format": "radlabel-model-pack/1", "name": "litemedsam-onnx", "version": "0.1.1", "kind": "onnx",
     "plugins": ["litemedsam"], "description": "...", "license": "Apache-2.0",
     "source": {"package": "...", "file": "...", "sha256": "..."},
     "files": [{"path": "encoder.onnx", "role": "encoder", "sha256": "<64 hex>", "size": 123}]}

Rules (a pack breaking one is refused with a `ModelPackError` naming the pack and the file or field):

- ``format`` is ``radlabel-model-pack/1``; ``kind`` one of `PACK_KINDS`; ``name`` matches
  ``[a-z0-9][a-z0-9._-]*`` (it is the folder name); ``version`` a non-empty string of ``[A-Za-z0-9.+_-]``.
- ``files``: relative POSIX paths without ``..``, ``.`` or empty parts, backslashes or drive letters; each
  with a SHA-256 and a size in bytes; ``role`` optional but unique (`InstalledPack.file` looks it up).
- The pack holds exactly the listed files plus the manifest. **Extra files are refused**, not ignored: a
  pack is a reviewed, hashed unit, and an unlisted file (a second model, a script, a ``.pth`` that unpickles
  code) could be picked up by a plugin without ever being verified. Folders are allowed only as the parents
  of listed files. Symbolic links, hard links and device files are refused, and so is any archive member
  whose name would land outside the pack folder (zip-slip).

Install (`install_pack`): read and check the manifest, check the member listing, copy or extract every file
into a staging folder ``<models dir>/.<name>.staging-*`` (same file system), verify every size and SHA-256
there, fsync, then ``os.replace`` it to ``<models dir>/<name>/``. A pack already installed under that name
is replaced only with ``force`` or when the version differs: it is first renamed aside
(``.<name>.old-*``), the staging folder renamed into place, then the old one deleted; if the second rename
fails the old pack is renamed back. So at every moment ``<name>/`` is the old pack, the new one, or (only
if the process dies between the two renames) absent, never half a pack. Failed or cancelled installs remove
their staging folder. Folders whose name starts with ``.`` are never listed as packs.

Search (`installed_packs`, `find_pack`): the folders of `radlabel.core.settings.ModelsSettings.search_folders`
in order (``models.folders``, the user install folder, the site folder, the bundled folder). Each folder's
sub-folders holding a manifest are packs (a configured folder may also be a pack itself). The first pack of
a name wins; later ones are listed as shadowed. A pack folder must be named after its pack.

`InstalledPack.verify` rehashes the files through `radlabel.ai.sdk.sha256_of`, which remembers the digests
of unchanged files within a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from radlabel.core.errors import InputError
from radlabel.core.io.atomic import fsync_folder
from radlabel.core.progress import Progress, ProgressCallback
from radlabel.core.settings import Settings, load_settings

MANIFEST_NAME = "radlabel-pack.json"
PACK_FORMAT = "radlabel-model-pack/1"
PACK_KINDS = ("onnx", "torch-weights", "monai-bundle")
MAX_MANIFEST_BYTES = 1 << 20
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class ModelPackError(InputError):
    """A model pack is malformed, cannot be installed or removed, or fails verification."""

    def __init__(self, message: str, pack: str = "", path: str | Path | None = None, fix: str | None = None) -> None:
        self.pack = pack
        super().__init__(f"model pack '{pack}': {message}" if pack else f"model pack: {message}", path, fix)


# --- manifest ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackFile:
    path: str  # relative POSIX path inside the pack
    sha256: str  # lowercase hex
    size: int
    role: str = ""


@dataclass(frozen=True)
class PackManifest:
    name: str
    version: str
    kind: str
    files: tuple[PackFile, ...]
    plugins: tuple[str, ...] = ()
    description: str = ""
    license: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the whole manifest as read

    def by_role(self) -> dict[str, PackFile]:
        return {f.role: f for f in self.files if f.role}

    @classmethod
    def parse(cls, data: Any, where: str | Path) -> PackManifest:
        """Check a decoded manifest; ``where`` (the manifest's path) goes into every error."""
        if not isinstance(data, dict):
            raise ModelPackError(f"{MANIFEST_NAME} must hold a JSON object", path=where)
        raw_name = data.get("name")
        label = raw_name if isinstance(raw_name, str) else ""

        def bad(message: str, fix: str | None = None) -> ModelPackError:
            return ModelPackError(message, label, where, fix)

        fmt = data.get("format")
        if fmt != PACK_FORMAT:
            raise bad(
                f"unknown format {fmt!r} (this radlabel reads {PACK_FORMAT!r})",
                "use a pack made for this radlabel, or update radlabel" if isinstance(fmt, str) else None,
            )
        if not isinstance(raw_name, str) or not _NAME.fullmatch(raw_name) or len(raw_name) > 100:
            raise bad(f"field 'name' must match [a-z0-9][a-z0-9._-]* (at most 100 characters), not {raw_name!r}")
        version = data.get("version")
        if not isinstance(version, str) or not _VERSION.fullmatch(version) or len(version) > 64:
            raise bad(f"field 'version' must be a version string such as '0.1.1', not {version!r}")
        kind = data.get("kind")
        if kind not in PACK_KINDS:
            raise bad(f"unknown kind {kind!r} (field 'kind' must be one of {', '.join(PACK_KINDS)})")
        plugins = data.get("plugins", [])
        if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
            raise bad("field 'plugins' must be a list of plugin names")
        for key in ("description", "license"):
            if not isinstance(data.get(key, ""), str):
                raise bad(f"field {key!r} must be a string")
        source = data.get("source", {})
        if not isinstance(source, dict):
            raise bad("field 'source' must be an object")
        entries = data.get("files")
        if not isinstance(entries, list) or not entries:
            raise bad("field 'files' must be a non-empty list of {path, role, sha256, size}")
        files: list[PackFile] = []
        seen_paths: set[str] = set()
        seen_roles: set[str] = set()
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict):
                raise bad(f"files[{number}] must be an object with path, role, sha256 and size")
            path = entry.get("path")
            problem = unsafe_member(path) if isinstance(path, str) else "is not a string"
            if problem:
                raise bad(f"files[{number}] path {path!r} {problem}", "list files by their relative path")
            assert isinstance(path, str)
            if path == MANIFEST_NAME:
                raise bad(f"files[{number}] lists the manifest itself")
            if path.casefold() in seen_paths:
                raise bad(f"file {path} is listed twice")
            seen_paths.add(path.casefold())
            role = entry.get("role", "")
            if not isinstance(role, str):
                raise bad(f"file {path}: field 'role' must be a string")
            if role and role in seen_roles:
                raise bad(f"file {path}: role {role!r} is used twice (roles must be unique)")
            seen_roles.add(role)
            digest = entry.get("sha256")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
                raise bad(f"file {path}: field 'sha256' must be 64 hexadecimal digits, not {digest!r}")
            size = entry.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise bad(f"file {path}: field 'size' must be a whole number of bytes, not {size!r}")
            files.append(PackFile(path, digest.lower(), size, role))
        return cls(
            name=raw_name,
            version=version,
            kind=str(kind),
            files=tuple(files),
            plugins=tuple(plugins),
            description=str(data.get("description", "")),
            license=str(data.get("license", "")),
            source=dict(source),
            raw=dict(data),
        )

    @classmethod
    def from_bytes(cls, content: bytes, where: str | Path) -> PackManifest:
        if len(content) > MAX_MANIFEST_BYTES:
            raise ModelPackError(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes", path=where)
        try:
            data = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelPackError(f"{MANIFEST_NAME} is not valid JSON ({exc})", path=where) from None
        return cls.parse(data, where)


def unsafe_member(name: str) -> str:
    """Why a member name could escape the pack folder or is not portable ("" when it is fine)."""
    if not name or "\x00" in name:
        return "is empty"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "contains '..' (it would escape the pack folder)"
    if any(p in ("", ".") for p in parts):
        return "has empty or '.' parts"
    if len(name) > 1024:
        return "is too long"
    return ""


# --- installed packs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledPack:
    """A pack folder found in one of the search folders."""

    manifest: PackManifest
    path: Path  # the pack folder
    origin: str = ""  # "configured", "user", "site", "bundled" (or "" when opened directly)
    shadowed_by: Path | None = None  # the folder of the pack of the same name found earlier

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def kind(self) -> str:
        return self.manifest.kind

    def file(self, role: str) -> Path:
        """The file with that role; a `ModelPackError` naming the roles the pack has otherwise."""
        entry = self.manifest.by_role().get(role)
        if entry is None:
            roles = ", ".join(sorted(self.manifest.by_role())) or "none"
            raise ModelPackError(f"has no file with role {role!r} (roles: {roles})", self.name, self.path)
        return self.path / entry.path

    def files_by_role(self) -> dict[str, Path]:
        return {role: self.path / entry.path for role, entry in self.manifest.by_role().items()}

    def verify(self) -> list[str]:
        """Problems of the installed files (empty when every size and SHA-256 matches and nothing extra is
        there). Each names the file."""
        return _verify_folder(self.path, self.manifest)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "plugins": list(self.manifest.plugins),
            "description": self.manifest.description,
            "license": self.manifest.license,
            "path": str(self.path),
            "origin": self.origin,
            "shadowed_by": str(self.shadowed_by) if self.shadowed_by else None,
            "files": [
                {"path": f.path, "role": f.role, "sha256": f.sha256, "size": f.size} for f in self.manifest.files
            ],
        }


@dataclass(frozen=True)
class BrokenPack:
    """A folder in a search folder that looks like a pack but cannot be read as one."""

    path: Path
    origin: str
    problem: str


@dataclass(frozen=True)
class PackScan:
    packs: list[InstalledPack]  # in search order; shadowed ones carry shadowed_by
    broken: list[BrokenPack]
    folders: list[tuple[Path, str]]  # the search folders, (folder, origin)

    @property
    def active(self) -> list[InstalledPack]:
        return [p for p in self.packs if p.shadowed_by is None]


def read_installed(folder: str | Path, origin: str = "", check_name: bool = True) -> InstalledPack:
    """The pack in ``folder`` (its manifest checked, its files not hashed)."""
    path = Path(folder)
    manifest_path = path / MANIFEST_NAME
    try:
        if manifest_path.is_symlink():
            raise ModelPackError(f"{MANIFEST_NAME} is a symbolic link", path=manifest_path)
        content = manifest_path.read_bytes()
    except OSError as exc:
        raise ModelPackError(f"cannot read {MANIFEST_NAME} ({exc.strerror or exc})", path=manifest_path) from None
    manifest = PackManifest.from_bytes(content, manifest_path)
    if check_name and path.name != manifest.name:
        raise ModelPackError(
            f"is in a folder named {path.name!r}", manifest.name, path, f"rename the folder to {manifest.name}"
        )
    return InstalledPack(manifest, path, origin)


def scan_packs(settings: Settings | None = None) -> PackScan:
    """Every pack in the search folders (see the module docstring)."""
    settings = settings if settings is not None else load_settings()
    folders = settings.models.search_folders()
    packs: list[InstalledPack] = []
    broken: list[BrokenPack] = []
    first: dict[str, Path] = {}
    for folder, origin in folders:
        candidates: list[tuple[Path, bool]] = []
        if origin == "configured" and (folder / MANIFEST_NAME).exists():
            candidates.append((folder, False))  # a configured folder may be a pack itself
        else:
            try:
                children = sorted(folder.iterdir()) if folder.is_dir() else []
            except OSError as exc:
                broken.append(BrokenPack(folder, origin, f"cannot list the folder ({exc.strerror or exc})"))
                continue
            for child in children:
                if child.name.startswith(".") or not child.is_dir():
                    continue
                if (child / MANIFEST_NAME).exists() or (child / MANIFEST_NAME).is_symlink():
                    candidates.append((child, True))
        for path, check_name in candidates:
            try:
                pack = read_installed(path, origin, check_name)
            except ModelPackError as exc:
                broken.append(BrokenPack(path, origin, str(exc)))
                continue
            if pack.name in first:
                pack = InstalledPack(pack.manifest, pack.path, origin, shadowed_by=first[pack.name])
            else:
                first[pack.name] = pack.path
            packs.append(pack)
    return PackScan(packs, broken, folders)


def installed_packs(settings: Settings | None = None) -> list[InstalledPack]:
    """Every readable pack in search order; a pack whose name was found earlier has ``shadowed_by`` set."""
    return scan_packs(settings).packs


def find_pack(name: str, settings: Settings | None = None) -> InstalledPack | None:
    """The pack called ``name`` that wins the search order, or None. Files are not hashed (`verify` does)."""
    for pack in scan_packs(settings).active:
        if pack.name == name:
            return pack
    return None


# --- reading a pack to install --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    name: str  # relative to the pack root, no trailing "/"
    kind: str  # "file", "dir", "link", "other"
    size: int = 0


class _PackSource:
    """A pack being installed: a folder, zip or tar, seen as members relative to its root."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = ""  # archives: "" or "top/" when the pack sits in one top-level folder
        self.manifest_bytes = b""

    def raw_members(self) -> list[_Member]:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def where(self, name: str) -> str:
        return f"{self.path}!{self.root}{name}" if self.root or not self.path.is_dir() else str(self.path / name)

    def members(self) -> list[_Member]:
        """Members relative to the root; members outside it keep their full name prefixed with '../'."""
        result = []
        for member in self.raw_members():
            if not self.root:
                result.append(member)
            elif member.name + "/" == self.root:
                continue
            elif member.name.startswith(self.root):
                result.append(_Member(member.name[len(self.root) :], member.kind, member.size))
            else:
                result.append(_Member("../" + member.name, member.kind, member.size))
        return result

    def find_root(self) -> None:
        names = {m.name for m in self.raw_members()}
        if MANIFEST_NAME in names:
            return
        tops = {m.name.split("/")[0] for m in self.raw_members()}
        if len(tops) == 1:
            top = tops.pop()
            if f"{top}/{MANIFEST_NAME}" in names:
                self.root = top + "/"
                return
        raise ModelPackError(
            f"no {MANIFEST_NAME} at the root of the pack",
            path=self.path,
            fix="a pack is a folder, .zip or .tar(.gz) holding radlabel-pack.json and the files it lists",
        )

    def manifest(self) -> PackManifest:
        members = {m.name: m for m in self.members()}
        entry = members.get(MANIFEST_NAME)
        if entry is None or entry.kind != "file":
            what = "a symbolic link" if entry is not None and entry.kind == "link" else "missing"
            raise ModelPackError(f"{MANIFEST_NAME} is {what}", path=self.where(MANIFEST_NAME))
        with self.open(MANIFEST_NAME) as handle:
            content = handle.read(MAX_MANIFEST_BYTES + 1)
        self.manifest_bytes = content  # installed as read, so the installed manifest is the one checked
        return PackManifest.from_bytes(content, self.where(MANIFEST_NAME))


class _FolderSource(_PackSource):
    def raw_members(self) -> list[_Member]:
        members: list[_Member] = []
        for directory, dirnames, filenames in os.walk(self.path, followlinks=False):
            for entry in sorted(dirnames) + sorted(filenames):
                full = Path(directory, entry)
                name = full.relative_to(self.path).as_posix()
                info = full.lstat()
                if stat.S_ISLNK(info.st_mode):
                    members.append(_Member(name, "link"))
                elif stat.S_ISDIR(info.st_mode):
                    members.append(_Member(name, "dir"))
                elif stat.S_ISREG(info.st_mode):
                    members.append(_Member(name, "file", info.st_size))
                else:
                    members.append(_Member(name, "other"))
        return members

    def open(self, name: str) -> IO[bytes]:
        return open(self.path / name, "rb")  # the caller closes it


class _ZipSource(_PackSource):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._zip = zipfile.ZipFile(path)
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._members: list[_Member] = []
        for info in self._zip.infolist():
            name = info.filename
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver recorded no Unix mode
            kind = "dir" if info.is_dir() else "file"
            if file_type == stat.S_IFLNK:
                kind = "link"
            elif file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
                kind = "other"
            name = name.rstrip("/") if kind == "dir" else name
            self._infos.setdefault(name, info)
            self._members.append(_Member(name, kind, info.file_size))

    def raw_members(self) -> list[_Member]:
        return self._members

    def open(self, name: str) -> IO[bytes]:
        return self._zip.open(self._infos[self.root + name])

    def close(self) -> None:
        self._zip.close()


class _TarSource(_PackSource):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
        self._infos: dict[str, tarfile.TarInfo] = {}
        self._members: list[_Member] = []
        for info in self._tar.getmembers():
            name = info.name
            while name.startswith("./"):
                name = name[2:]
            name = name.rstrip("/")
            if name in ("", "."):
                continue
            if info.issym() or info.islnk():
                kind = "link"
            elif info.isdir():
                kind = "dir"
            elif info.isreg():
                kind = "file"
            else:
                kind = "other"
            self._infos.setdefault(name, info)
            self._members.append(_Member(name, kind, info.size))

    def raw_members(self) -> list[_Member]:
        return self._members

    def open(self, name: str) -> IO[bytes]:
        handle = self._tar.extractfile(self._infos[self.root + name])
        if handle is None:
            raise ModelPackError("is not a regular file", path=self.where(name))
        return handle

    def close(self) -> None:
        self._tar.close()


@contextlib.contextmanager
def _open_source(path: Path) -> Iterator[_PackSource]:
    if not path.exists():
        raise ModelPackError("does not exist", path=path, fix="give a pack folder, .zip or .tar(.gz)")
    source: _PackSource
    try:
        if path.is_dir():
            source = _FolderSource(path)
        elif zipfile.is_zipfile(path):
            source = _ZipSource(path)
        elif tarfile.is_tarfile(path):
            source = _TarSource(path)
        else:
            raise ModelPackError("is not a folder, a .zip or a .tar(.gz) archive", path=path)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise ModelPackError(f"cannot read the pack ({exc})", path=path) from None
    try:
        source.find_root()
        yield source
    finally:
        source.close()


def _check_members(source: _PackSource, manifest: PackManifest) -> None:
    """Refuse links, special files, names escaping the root, unlisted files and missing files; before any
    byte is written."""
    listed = {f.path: f for f in manifest.files}
    parents = {str(parent) for f in manifest.files for parent in PurePosixPath(f.path).parents if str(parent) != "."}
    present: set[str] = set()
    for member in source.members():
        where = source.where(member.name)
        problem = unsafe_member(member.name)
        if problem:
            raise ModelPackError(f"member {member.name!r} {problem}; refusing the pack", manifest.name, source.path)
        if member.kind == "link":
            raise ModelPackError(f"{member.name} is a link; packs may not hold links", manifest.name, where)
        if member.kind == "other":
            raise ModelPackError(f"{member.name} is not a regular file", manifest.name, where)
        if member.name == MANIFEST_NAME:
            continue
        if member.kind == "dir":
            if member.name not in parents:
                raise ModelPackError(
                    f"folder {member.name} holds no listed file", manifest.name, where, "remove it from the pack"
                )
            continue
        if member.name not in listed:
            raise ModelPackError(
                f"file {member.name} is not listed in {MANIFEST_NAME}",
                manifest.name,
                where,
                "list it (with its sha256 and size) or remove it from the pack",
            )
        if member.name in present:
            raise ModelPackError(f"file {member.name} is in the archive twice", manifest.name, where)
        present.add(member.name)
        if member.size != listed[member.name].size:
            raise ModelPackError(
                f"file {member.name} has {member.size} bytes, the manifest says {listed[member.name].size}",
                manifest.name,
                where,
            )
    for path in listed:
        if path not in present:
            raise ModelPackError(f"file {path} is listed but missing", manifest.name, source.where(path))


def _verify_folder(folder: Path, manifest: PackManifest) -> list[str]:
    from radlabel.ai.sdk import sha256_of

    problems: list[str] = []
    listed = {f.path for f in manifest.files}
    parents = {str(parent) for f in manifest.files for parent in PurePosixPath(f.path).parents if str(parent) != "."}
    for entry in manifest.files:
        path = folder / entry.path
        try:
            info = path.lstat()
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{path}: not a regular file")
            continue
        if info.st_size != entry.size:
            problems.append(f"{path}: {info.st_size} bytes, the manifest says {entry.size}")
            continue
        try:
            digest = sha256_of(path)
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
            continue
        if digest != entry.sha256:
            problems.append(f"{path}: SHA-256 {digest}, the manifest says {entry.sha256}")
    try:
        for directory, dirnames, filenames in os.walk(folder, followlinks=False):
            for item in dirnames + filenames:
                full = Path(directory, item)
                name = full.relative_to(folder).as_posix()
                if name == MANIFEST_NAME or name in listed:
                    continue
                if full.is_symlink():
                    problems.append(f"{full}: a symbolic link, not listed in the manifest")
                elif full.is_dir() and name in parents:
                    continue
                else:
                    problems.append(f"{full}: not listed in the manifest")
    except OSError as exc:
        problems.append(f"{folder}: cannot be listed ({exc.strerror or exc})")
    return problems


# --- install / remove ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallResult:
    pack: InstalledPack
    replaced_version: str | None  # the version that was there before (None: a new install)


def install_target(settings: Settings | None = None, *, site: bool = False) -> Path:
    """Where ``install`` writes: ``models.install_dir``, or the site folder with ``site``."""
    settings = settings if settings is not None else load_settings()
    return settings.models.site_dir if site else settings.models.install_dir


def _copy_member(handle: IO[bytes], target: Path, limit: int, label: str, where: str, report: Progress) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "xb") as out:
        while True:
            block = handle.read(_CHUNK)
            if not block:
                break
            written += len(block)
            if written > limit:
                raise ModelPackError(f"{target.name} is larger than the manifest says ({limit} bytes)", label, where)
            out.write(block)
            report.report(written / max(limit, 1), target.name)
        out.flush()
        os.fsync(out.fileno())


def install_pack(
    pack: str | Path,
    settings: Settings | None = None,
    *,
    site: bool = False,
    force: bool = False,
    target_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> InstallResult:
    """Install a pack folder or archive into ``target_dir`` (default `install_target`); see the module
    docstring for the checks and the all-or-nothing replacement. Raises `ModelPackError` (or `Cancelled`)."""
    source_path = Path(pack).expanduser()
    target_root = Path(target_dir) if target_dir is not None else install_target(settings, site=site)
    report = Progress(progress, what="model pack installation")
    with _open_source(source_path) as source:
        manifest = source.manifest()
        _check_members(source, manifest)
        final = target_root / manifest.name
        previous: InstalledPack | None = None
        if final.exists() or final.is_symlink():
            try:
                previous = read_installed(final)
            except ModelPackError:
                previous = None  # a damaged install: replace it only when asked
            if not force and (previous is None or previous.version == manifest.version):
                what = f"version {previous.version}" if previous else "a damaged copy"
                raise ModelPackError(
                    f"{what} is already installed in {final}",
                    manifest.name,
                    source_path,
                    "add --force to replace it",
                )
        try:
            target_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{manifest.name}.staging-", dir=target_root))
        except OSError as exc:
            raise ModelPackError(
                f"cannot write to {target_root} ({exc.strerror or exc})",
                manifest.name,
                target_root,
                "choose a writable models.install_dir, or run as the administrator for --site",
            ) from None
        try:
            total = sum(f.size for f in manifest.files) or 1
            done = 0
            for entry in manifest.files:
                step = report.sub(0.9 * done / total, 0.9 * (done + entry.size) / total)
                step.report(0.0, entry.path)
                with source.open(entry.path) as handle:
                    _copy_member(
                        handle, staging / entry.path, entry.size, manifest.name, source.where(entry.path), step
                    )
                done += entry.size
            manifest_copy = staging / MANIFEST_NAME
            with open(manifest_copy, "xb") as out:
                out.write(source.manifest_bytes)
                out.flush()
                os.fsync(out.fileno())
            report.report(0.9, "verifying")
            # Named as in the pack (the staging folder means nothing to the reader of the message).
            problems = [p.replace(str(staging) + os.sep, "file ", 1) for p in _verify_folder(staging, manifest)]
            if problems:
                raise ModelPackError(
                    f"verification failed, nothing installed: {problems[0]}"
                    + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                    manifest.name,
                    source_path,
                    "get an intact copy of the pack (it may be damaged, truncated or altered)",
                )
            for directory, _, _ in os.walk(staging):
                fsync_folder(Path(directory))
            report.report(1.0, "verified")
            _swap_in(staging, final, manifest.name)
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelPackError(
                f"installation failed, nothing installed ({type(exc).__name__}: {exc})", manifest.name, source_path
            ) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return InstallResult(read_installed(final), previous.version if previous else None)


def _swap_in(staging: Path, final: Path, name: str) -> None:
    """Rename ``staging`` to ``final``; an existing ``final`` is renamed aside first and deleted after."""
    aside: Path | None = None
    if final.exists() or final.is_symlink():
        aside = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=final.parent))
        aside.rmdir()
        os.replace(final, aside)
    try:
        os.replace(staging, final)
    except OSError:
        if aside is not None:
            os.replace(aside, final)
        raise
    # Installed: from here on nothing may fail the installation.
    with contextlib.suppress(OSError):
        fsync_folder(final.parent)
    if aside is not None:
        _remove_tree(aside)


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def remove_pack(name: str, settings: Settings | None = None, *, site: bool = False) -> Path:
    """Remove the pack ``name`` from the user install folder (or the site folder with ``site``); other
    search folders are managed by whoever configured them. Renamed aside first, so a crash never leaves half
    a pack under its name. Returns the removed folder."""
    settings = settings if settings is not None else load_settings()
    root = install_target(settings, site=site)
    folder = root / name
    if not _NAME.fullmatch(name) or not (folder / MANIFEST_NAME).exists():
        elsewhere = [p for p in installed_packs(settings) if p.name == name]
        hint = f"it is in {elsewhere[0].path}, which radlabel does not manage" if elsewhere else "check the name"
        if elsewhere and not site and elsewhere[0].origin == "site":
            hint = "it is in the site folder: add --site"
        raise ModelPackError(f"is not installed in {root}", name, fix=hint + " ('radlabel models list')")
    aside = Path(tempfile.mkdtemp(prefix=f".{name}.removing-", dir=root))
    aside.rmdir()
    try:
        os.replace(folder, aside)
    except OSError as exc:
        raise ModelPackError(f"cannot remove {folder} ({exc.strerror or exc})", name, folder) from None
    _remove_tree(aside)
    return folder


def leftovers(settings: Settings | None = None) -> list[Path]:
    """Staging or set-aside folders left in the writable model folders by an interrupted install or remove."""
    settings = settings if settings is not None else load_settings()
    found: list[Path] = []
    for root in (settings.models.install_dir, settings.models.site_dir):
        with contextlib.suppress(OSError):
            found += [
                p for p in sorted(root.iterdir()) if re.match(r"^\..+\.(staging|old|removing)-", p.name) and p.is_dir()
            ]
    return found


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` as the folder's radlabel-pack.json (pack authors, tests)."""
    path = Path(folder) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def make_manifest(
    folder: str | Path,
    name: str,
    version: str,
    kind: str,
    roles: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A manifest dict for every file under ``folder`` (sizes and SHA-256 computed); ``roles`` maps a
    relative path to its role. Pack authors run this once, review the result, and ship it."""
    from radlabel.ai.sdk import sha256_of

    root = Path(folder)
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        relative = path.relative_to(root).as_posix()
        entry: dict[str, Any] = {"path": relative, "sha256": sha256_of(path), "size": path.stat().st_size}
        if roles and relative in roles:
            entry["role"] = roles[relative]
        files.append(entry)
    return {"format": PACK_FORMAT, "name": name, "version": version, "kind": kind, **fields, "files": files}
