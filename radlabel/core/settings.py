"""The one typed settings object of radlabel, read from a site file and a user file.

Files (TOML; a missing file means defaults):

- site: ``$RADLABEL_SITE_SETTINGS``, else ``/etc/radlabel/settings.toml`` (written by hospital IT);
- user: ``$RADLABEL_SETTINGS``, else ``$XDG_CONFIG_HOME/radlabel/settings.toml``, else
  ``~/.config/radlabel/settings.toml``.

Example (every key; the values shown are the defaults unless a comment says otherwise)::

    [identity]
    source = "auto"                  # auto | os | setting | env (see below)
    user = "Dr A. Reader"            # for source "setting" (and "auto"): recorded in the audit trail
    env_var = "RADLABEL_READER"      # for source "env": the variable a login script sets

    [ai]
    device = "auto"                  # auto | cpu | cuda | cuda:1 | mps
    allow_gpu = true                 # site policy: false forces every plugin onto the CPU
    allowed_plugins = ["litemedsam", "example-threshold"]   # site policy (default: every installed plugin)
    extra_plugins = ["mymodel=my_package.plugin:create"]    # factories not installed as entry points
    load_timeout_s = 300             # loading a model in the worker
    predict_timeout_s = 900          # one proposal, in total
    stall_timeout_s = 300            # one proposal, without a progress report
    cancel_grace_s = 3               # a cancelled plugin that has not stopped by then is killed
    cache_entries = 64               # entries of the worker's per-plugin cache (embeddings)
    allow_network = false            # site policy

    [storage]
    cases_dir = "~/radlabel-cases"   # default: <user data folder>/cases
    case_location = "beside-image"   # site policy: beside-image | cases-dir (never write next to images)

    [models]
    folders = ["/opt/radlabel/models"]   # extra model-pack folders, searched first (site + user lists)
    install_dir = "~/models"         # where `radlabel models install` writes; default <user data folder>/models

    [export]
    formats = ["dicom-seg"]          # dicom-seg | rtstruct | nifti | nrrd | seg-nrrd | mha
    seg_type = "binary"              # binary | fractional | labelmap (DICOM SEG)

    [policy]                         # read from the site file only
    locked = ["storage.cases_dir", "identity.source"]   # more keys the user file cannot change

    [plugins.medsam]                 # free-form, read by that plugin (radlabel.ai.sdk.plugin_settings)
    checkpoint = "/opt/models/medsam_vit_b.pth"

Merging: the user file overrides the site file key by key (``[plugins.*]`` tables too), with three
exceptions. *Site policy keys* (``ai.allowed_plugins``, ``ai.allow_network``, ``ai.allow_gpu``,
``storage.case_location``) keep the value of the first file that sets them (the site file comes first).
Keys listed in the site's ``policy.locked`` keep the site's value, or the default when the site does not set
them. ``models.folders`` lists are concatenated, site first. A user value that policy overrides is a warning.

Paths may start with ``~``; a relative path is relative to the folder of the file that sets it. Unset paths
default to the user data folder (``$XDG_DATA_HOME/radlabel`` or ``~/.local/share/radlabel`` on Linux,
``%LOCALAPPDATA%\\radlabel`` on Windows, ``~/Library/Application Support/radlabel`` on macOS).
``$RADLABEL_CASES_DIR`` replaces ``storage.cases_dir`` (tests, scripted runs).

Identity (`IdentitySettings.resolved_user`): ``source = "os"`` records the OS login name; ``"setting"`` the
``user`` key; ``"env"`` the variable named by ``env_var`` (set by a login script); ``"auto"`` (the default)
the ``user`` key when set, else the OS login name. When ``"env"``'s variable is unset or empty, or
``"setting"`` has no ``user``, radlabel records the OS login name and warns (``Settings.warnings`` and the
log): a reader must never be blocked from working by a login-script problem, and the OS login is still a
real, attributable identity.

Model packs are searched in ``models.folders``, then ``models.install_dir``, then the site folder
``$RADLABEL_SITE_MODELS`` (default ``/var/lib/radlabel/models``), then the application bundle's folder
``$RADLABEL_BUNDLED_MODELS`` (`ModelsSettings.search_folders`).

A file that is not valid TOML, or a key with a wrong type or value, is an
:class:`~radlabel.core.errors.InputError` naming the file, the line and the key. Unknown keys are kept as
warnings (a site file may be written for a newer radlabel). `Settings.effective` lists every key with its
value and the file it came from ("default" when none set it).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radlabel.core.errors import InputError

USER_SETTINGS_ENV = "RADLABEL_SETTINGS"
SITE_SETTINGS_ENV = "RADLABEL_SITE_SETTINGS"
CASES_DIR_ENV = "RADLABEL_CASES_DIR"
SITE_MODELS_ENV = "RADLABEL_SITE_MODELS"
BUNDLED_MODELS_ENV = "RADLABEL_BUNDLED_MODELS"
DEFAULT_SITE_FILE = Path("/etc/radlabel/settings.toml")
DEFAULT_SITE_MODELS = Path("/var/lib/radlabel/models")
DEFAULT_READER_ENV = "RADLABEL_READER"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
IDENTITY_SOURCES = ("auto", "os", "setting", "env")
CASE_LOCATIONS = ("beside-image", "cases-dir")
SEG_TYPES = ("binary", "fractional", "labelmap")
# Export format name -> the output file suffix the exporter (radlabel.core.io.seg.export_segmentation) picks
# the format from; "rtstruct" is a .dcm written with rtstruct=True. tests/core/test_settings_site.py checks
# each against radlabel.core.io.seg.api.output_kind, so this table and the exporters stay in step.
EXPORT_FORMATS: dict[str, str] = {
    "dicom-seg": ".dcm",
    "rtstruct": ".dcm",
    "nifti": ".nii.gz",
    "nrrd": ".nrrd",
    "seg-nrrd": ".seg.nrrd",
    "mha": ".mha",
}
SITE_POLICY_KEYS = frozenset(
    {("ai", "allowed_plugins"), ("ai", "allow_network"), ("ai", "allow_gpu"), ("storage", "case_location")}
)
DEFAULT = "default"

_log = logging.getLogger(__name__)


def user_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """radlabel's folder in the platform's per-user data folder (cases, installed model packs)."""
    env = os.environ if environ is None else environ
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "radlabel"


def _default_cases_dir() -> Path:
    return user_data_dir() / "cases"


def _default_install_dir() -> Path:
    return user_data_dir() / "models"


def _default_site_models() -> Path:
    given = os.environ.get(SITE_MODELS_ENV)
    return Path(given).expanduser() if given else DEFAULT_SITE_MODELS


def _default_bundled_models() -> Path | None:
    given = os.environ.get(BUNDLED_MODELS_ENV)
    return Path(given).expanduser() if given else None


@dataclass(frozen=True)
class IdentitySettings:
    user: str | None = None  # the configured name (source "setting", or "auto" when set)
    source: str = "auto"  # auto | os | setting | env
    env_var: str = DEFAULT_READER_ENV  # for source "env"

    def resolve(self, environ: Mapping[str, str] | None = None) -> tuple[str, str, str]:
        """(name, where it came from, warning or "") following ``source`` (see the module docstring)."""
        from radlabel.core.audit import current_user

        env = os.environ if environ is None else environ
        if self.source == "env":
            value = env.get(self.env_var, "").strip()
            if value:
                return value, f"${self.env_var}", ""
            return (
                current_user(),
                "OS login",
                f'identity.source is "env" but ${self.env_var} is not set: recording the OS login name instead',
            )
        if self.source == "os":
            return current_user(), "OS login", ""
        if self.user:
            return self.user, "identity.user", ""
        if self.source == "setting":
            return (
                current_user(),
                "OS login",
                'identity.source is "setting" but identity.user is not set: recording the OS login name instead',
            )
        return current_user(), "OS login", ""

    def resolved_user(self) -> str:
        """The name the audit trail records (see the module docstring); a fallback is logged as a warning."""
        name, _, warning = self.resolve()
        if warning:
            _log.warning(warning)
        return name


@dataclass(frozen=True)
class AISettings:
    device: str = "auto"
    allowed_plugins: tuple[str, ...] | None = None  # None: every installed plugin
    extra_plugins: tuple[str, ...] = ()  # "name=module:function" or "module:function"
    load_timeout_s: float = 300.0
    predict_timeout_s: float = 900.0
    stall_timeout_s: float = 300.0
    cancel_grace_s: float = 3.0
    cache_entries: int = 64
    allow_network: bool = False
    allow_gpu: bool = True  # site policy: False forces the CPU (device becomes "cpu")

    def is_allowed(self, plugin_name: str) -> bool:
        return self.allowed_plugins is None or plugin_name in self.allowed_plugins


@dataclass(frozen=True)
class StorageSettings:
    cases_dir: Path = field(default_factory=_default_cases_dir)
    case_location: str = "beside-image"  # beside-image | cases-dir


@dataclass(frozen=True)
class ModelsSettings:
    folders: tuple[Path, ...] = ()  # searched first, in order (site's, then user's)
    install_dir: Path = field(default_factory=_default_install_dir)
    site_dir: Path = field(default_factory=_default_site_models)  # $RADLABEL_SITE_MODELS
    bundled_dir: Path | None = field(default_factory=_default_bundled_models)  # $RADLABEL_BUNDLED_MODELS

    def search_folders(self) -> list[tuple[Path, str]]:
        """(folder, origin) in search order: configured, user (install_dir), site, bundled; no repeats."""
        ordered = [(p, "configured") for p in self.folders]
        ordered += [(self.install_dir, "user"), (self.site_dir, "site")]
        if self.bundled_dir is not None:
            ordered.append((self.bundled_dir, "bundled"))
        seen: set[str] = set()
        result = []
        for folder, origin in ordered:
            key = os.path.normcase(os.path.abspath(folder))
            if key not in seen:
                seen.add(key)
                result.append((folder, origin))
        return result


@dataclass(frozen=True)
class ExportSettings:
    formats: tuple[str, ...] = ("dicom-seg",)
    seg_type: str = "binary"  # binary | fractional | labelmap

    def suffixes(self) -> list[str]:
        """The output suffix of each default format (``EXPORT_FORMATS``)."""
        return [EXPORT_FORMATS[name] for name in self.formats]


@dataclass(frozen=True)
class SettingsFile:
    """One file radlabel looked for."""

    role: str  # "site" or "user" ("mapping" for settings_from_mapping)
    path: str
    read: bool  # False: it does not exist (defaults apply)


@dataclass(frozen=True)
class Settings:
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    ai: AISettings = field(default_factory=AISettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    models: ModelsSettings = field(default_factory=ModelsSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # [plugins.<name>] tables
    sources: tuple[str, ...] = ()  # files that were read, site first
    policy_source: dict[str, str] = field(default_factory=dict)  # "ai.allowed_plugins" -> file that set it
    warnings: tuple[str, ...] = ()
    provenance: dict[str, str] = field(default_factory=dict)  # dotted key -> file (or "$VAR"); absent: default
    locked: dict[str, str] = field(default_factory=dict)  # dotted key locked by policy.locked -> site file
    files: tuple[SettingsFile, ...] = ()  # every file looked for, read or not

    def plugin_options(self, plugin_name: str) -> dict[str, Any]:
        """The ``[plugins.<plugin_name>]`` table (empty when the files have none)."""
        return dict(self.plugins.get(plugin_name, {}))

    def where(self, dotted_key: str) -> str:
        """The file that set a (policy) key, for messages ("the settings" when unknown)."""
        return self.policy_source.get(dotted_key) or self.provenance.get(dotted_key) or "the settings"

    def source_of(self, dotted_key: str) -> str:
        """Where a key's effective value came from: a file path, ``$VARIABLE``, or "default"."""
        return self.provenance.get(dotted_key, DEFAULT)

    def effective(self) -> list[tuple[str, Any, str]]:
        """(dotted key, value, source) for every key, defaults included, then the environment-derived model
        folders and the ``[plugins.*]`` entries. Values are plain (str, number, bool, None, list)."""
        rows: list[tuple[str, Any, str]] = []
        for spec in KEYS:
            if spec.dotted == "policy.locked":
                value: Any = sorted(self.locked)
            else:
                value = getattr(getattr(self, spec.section), spec.name)
            rows.append((spec.dotted, _plain(value), self.source_of(spec.dotted)))
        rows.append(("models.site_dir", _plain(self.models.site_dir), self.source_of("models.site_dir")))
        rows.append(("models.bundled_dir", _plain(self.models.bundled_dir), self.source_of("models.bundled_dir")))
        for name in sorted(self.plugins):
            for key in sorted(self.plugins[name]):
                dotted = f"plugins.{name}.{key}"
                rows.append((dotted, _plain(self.plugins[name][key]), self.source_of(dotted)))
        return rows


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# --- the keys ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    section: str
    name: str
    kind: str  # string choice device strings choices number integer boolean path paths env_name keys
    choices: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


KEYS: tuple[_Key, ...] = (
    _Key("identity", "source", "choice", IDENTITY_SOURCES),
    _Key("identity", "user", "string"),
    _Key("identity", "env_var", "env_name"),
    _Key("ai", "device", "device", DEVICE_CHOICES),
    _Key("ai", "allow_gpu", "boolean"),
    _Key("ai", "allowed_plugins", "strings"),
    _Key("ai", "extra_plugins", "strings"),
    _Key("ai", "load_timeout_s", "number"),
    _Key("ai", "predict_timeout_s", "number"),
    _Key("ai", "stall_timeout_s", "number"),
    _Key("ai", "cancel_grace_s", "number"),
    _Key("ai", "cache_entries", "integer"),
    _Key("ai", "allow_network", "boolean"),
    _Key("storage", "cases_dir", "path"),
    _Key("storage", "case_location", "choice", CASE_LOCATIONS),
    _Key("models", "folders", "paths"),
    _Key("models", "install_dir", "path"),
    _Key("export", "formats", "choices", tuple(EXPORT_FORMATS)),
    _Key("export", "seg_type", "choice", SEG_TYPES),
    _Key("policy", "locked", "keys"),
)
_BY_DOTTED = {k.dotted: k for k in KEYS}
SECTIONS = ("identity", "ai", "storage", "models", "export", "policy", "plugins")
POLICY_KEYS = frozenset(f"{s}.{k}" for s, k in SITE_POLICY_KEYS)
_CONCATENATED = frozenset({"models.folders"})


def user_settings_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(USER_SETTINGS_ENV):
        return Path(env[USER_SETTINGS_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "radlabel" / "settings.toml"


def site_settings_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(SITE_SETTINGS_ENV):
        return Path(env[SITE_SETTINGS_ENV]).expanduser()
    if sys.platform == "win32":  # where packaging/windows/radlabel.nsi installs it
        return Path(env.get("PROGRAMDATA", r"C:\ProgramData")) / "radlabel" / "settings.toml"
    return DEFAULT_SITE_FILE


def load_settings(
    user_path: str | Path | None = None,
    site_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the site file, then the user file over it (see the module docstring for the rules)."""
    site = Path(site_path) if site_path is not None else site_settings_path(environ)
    user = Path(user_path) if user_path is not None else user_settings_path(environ)
    layers = [("site", site, _read_toml(site)), ("user", user, _read_toml(user))]
    files = tuple(SettingsFile(role, str(path), read is not None) for role, path, read in layers)
    return _merge([(role, path, read) for role, path, read in layers if read is not None], environ, files)


def settings_from_mapping(
    data: Mapping[str, Any], source: str = "<settings>", environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from an already parsed TOML-like mapping (tests, embedding applications)."""
    return _merge([("site", Path(source), (dict(data), ""))], environ, (SettingsFile("mapping", source, True),))


# --- reading -----------------------------------------------------------------------------------------------


def _read_toml(path: Path) -> tuple[dict[str, Any], str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InputError("is a folder, not a settings file", path, "point the setting at a .toml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read settings file ({exc})", path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line L, column C)".
        raise InputError(f"not valid TOML: {exc}", path, "fix that line or remove the file") from None
    return data, text


def _line_of(text: str, section: str, key: str) -> int | None:
    """Best-effort line number of ``key`` inside ``[section]`` (or at top level when section is ""), also when
    it is written as a dotted key (``[ai]`` + ``plugins.x = ...``, or ``storage.cases_dir = ...`` at the top)."""
    target = f"{section}.{key}" if section else key
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\]]+?)\s*\]", stripped)
        if header:
            current = header.group(1).replace('"', "").replace(" ", "")
            continue
        assignment = re.match(r"^([^=#]+?)\s*=", stripped)
        if not assignment:
            continue
        left = assignment.group(1).replace('"', "").replace("'", "").replace(" ", "")
        full = f"{current}.{left}" if current else left
        if full == target or full.startswith(target + "."):
            return number
    return None


class _Reader:
    """Checks one file's values, raising InputError with the file, line and key of a bad one."""

    def __init__(self, path: Path, data: dict[str, Any], text: str) -> None:
        self.path = path
        self.text = text
        self.data = data
        self.warnings: list[str] = []

    def fail(self, section: str, key: str, expected: str, value: Any) -> InputError:
        line = _line_of(self.text, section, key)
        where = f"line {line}: " if line else ""
        dotted = f"{section}.{key}" if section else key
        return InputError(
            f"{where}{dotted} must be {expected}, not {value!r}",
            self.path,
            f"correct {dotted} in that file or remove it (the default then applies)",
        )

    def table(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail("", name, "a table ([" + name + "])", value)
        return value

    def string(self, section: str, key: str, value: Any, choices: tuple[str, ...] = ()) -> str:
        if not isinstance(value, str):
            raise self.fail(section, key, "a string", value)
        if choices and value.split(":")[0] not in choices:
            raise self.fail(section, key, "one of " + ", ".join(choices), value)
        return value

    def choice(self, section: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.fail(section, key, "one of " + ", ".join(f'"{c}"' for c in choices), value)
        return value

    def strings(self, section: str, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(section, key, "a list of strings", value)
        return tuple(value)

    def number(self, section: str, key: str, value: Any, integer: bool = False) -> float:
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value <= 0:
            raise self.fail(section, key, "a positive " + ("integer" if integer else "number"), value)
        return float(value)

    def boolean(self, section: str, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(section, key, "true or false", value)
        return value

    def _path_of(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.path.parent / path).absolute()

    def folder(self, section: str, key: str, value: Any) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(section, key, "a folder path (a non-empty string)", value)
        return self._path_of(value.strip())

    def folders(self, section: str, key: str, value: Any) -> tuple[Path, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(section, key, "a list of folder paths (non-empty strings)", value)
        return tuple(self._path_of(v.strip()) for v in value)

    def choices(self, section: str, key: str, value: Any, choices: tuple[str, ...]) -> tuple[str, ...]:
        names = ", ".join(f'"{c}"' for c in choices)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(section, key, f"a non-empty list of {names}", value)
        unknown = [v for v in value if v not in choices]
        if unknown:
            raise self.fail(section, key, f"a list of {names} ({unknown[0]!r} is not one)", value)
        return tuple(dict.fromkeys(value))

    def env_name(self, section: str, key: str, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise self.fail(section, key, "an environment variable name (letters, digits and _)", value)
        return value

    def keys(self, section: str, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(section, key, 'a list of setting names such as "storage.cases_dir"', value)
        for name in value:
            if name not in _BY_DOTTED and not re.fullmatch(r"plugins\.[^.]+(\.[^.]+)?", name):
                raise self.fail(section, key, f"a list of setting names ({name!r} is not a setting)", value)
            if name == "policy.locked":
                raise self.fail(section, key, "a list of setting names other than policy.locked", value)
        return tuple(value)

    def value(self, spec: _Key, value: Any) -> Any:
        section, key = spec.section, spec.name
        if spec.kind == "string":
            return self.string(section, key, value)
        if spec.kind == "device":
            return self.string(section, key, value, spec.choices)
        if spec.kind == "choice":
            return self.choice(section, key, value, spec.choices)
        if spec.kind == "strings":
            return self.strings(section, key, value)
        if spec.kind == "choices":
            return self.choices(section, key, value, spec.choices)
        if spec.kind == "number":
            return float(self.number(section, key, value))
        if spec.kind == "integer":
            return int(self.number(section, key, value, integer=True))
        if spec.kind == "boolean":
            return self.boolean(section, key, value)
        if spec.kind == "path":
            return self.folder(section, key, value)
        if spec.kind == "paths":
            return self.folders(section, key, value)
        if spec.kind == "env_name":
            return self.env_name(section, key, value)
        if spec.kind == "keys":
            return self.keys(section, key, value)
        raise AssertionError(spec.kind)


def _parse(path: Path, data: dict[str, Any], text: str, role: str) -> tuple[dict[str, Any], list[str]]:
    """One file -> {dotted key: checked value} (plugin entries as "plugins.<name>.<key>") and its warnings."""
    reader = _Reader(path, data, text)
    out: dict[str, Any] = {}
    for section in SECTIONS:
        if section == "plugins":
            continue
        table = reader.table(section)
        if section == "policy" and table and role == "user":
            reader.warnings.append(f"{path}: [policy] is read from the site file only (ignored)")
            continue
        for key, value in table.items():
            spec = _BY_DOTTED.get(f"{section}.{key}")
            if spec is None:
                reader.warnings.append(f"{path}: unknown key {section}.{key} (ignored)")
                continue
            out[spec.dotted] = reader.value(spec, value)
    for name, table in reader.table("plugins").items():
        if not isinstance(table, dict):
            raise reader.fail("plugins", name, f"a table ([plugins.{name}])", table)
        for key, value in table.items():
            out[f"plugins.{name}.{key}"] = value
    for key in reader.data:
        if key not in SECTIONS:
            reader.warnings.append(f"{path}: unknown section [{key}] (ignored)")
    return out, reader.warnings


def _is_locked(dotted: str, locked: Mapping[str, str]) -> str | None:
    if dotted in locked:
        return locked[dotted]
    if dotted.startswith("plugins."):
        table = ".".join(dotted.split(".")[:2])
        return locked.get(table)
    return None


def _merge(
    layers: list[tuple[str, Path, tuple[dict[str, Any], str]]],
    environ: Mapping[str, str] | None = None,
    files: tuple[SettingsFile, ...] = (),
) -> Settings:
    """Layers in order site, user: later ones override, except policy keys, which the first layer setting
    them keeps (the site file comes first), keys the site locked, and concatenated lists."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    policy_source: dict[str, str] = {}
    locked: dict[str, str] = {}
    warnings: list[str] = []
    for role, path, (data, text) in layers:
        parsed, file_warnings = _parse(path, data, text, role)
        warnings.extend(file_warnings)
        if role == "site":
            locked.update({name: str(path) for name in parsed.get("policy.locked", ())})
        for dotted, value in parsed.items():
            locker = _is_locked(dotted, locked)
            if locker is not None and locker != str(path):
                if values.get(dotted) != value:
                    warnings.append(f"{path}: {dotted} is locked by the site ({locker}); ignored")
                continue
            if dotted in POLICY_KEYS and dotted in policy_source:
                if values.get(dotted) != value:
                    warnings.append(f"{path}: {dotted} is set by the site ({policy_source[dotted]}); ignored")
                continue
            if dotted in _CONCATENATED and dotted in values:
                values[dotted] = values[dotted] + value
                provenance[dotted] = f"{provenance[dotted]} + {path}"
            else:
                values[dotted] = value
                provenance[dotted] = str(path)
            if dotted in POLICY_KEYS:
                policy_source[dotted] = str(path)
    section_values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    plugins: dict[str, dict[str, Any]] = {}
    for dotted, value in values.items():
        if dotted.startswith("plugins."):
            _, name, key = dotted.split(".", 2)
            plugins.setdefault(name, {})[key] = value
        else:
            section, key = dotted.split(".", 1)
            section_values[section][key] = value

    # Environment-derived values.
    if env.get(CASES_DIR_ENV):
        section_values["storage"]["cases_dir"] = Path(env[CASES_DIR_ENV]).expanduser()
        provenance["storage.cases_dir"] = f"${CASES_DIR_ENV}"
    elif "cases_dir" not in section_values["storage"]:
        section_values["storage"]["cases_dir"] = user_data_dir(env) / "cases"
    if "install_dir" not in section_values["models"]:
        section_values["models"]["install_dir"] = user_data_dir(env) / "models"
    site_models = env.get(SITE_MODELS_ENV)
    section_values["models"]["site_dir"] = Path(site_models).expanduser() if site_models else DEFAULT_SITE_MODELS
    if site_models:
        provenance["models.site_dir"] = f"${SITE_MODELS_ENV}"
    bundled = env.get(BUNDLED_MODELS_ENV)
    section_values["models"]["bundled_dir"] = Path(bundled).expanduser() if bundled else None
    if bundled:
        provenance["models.bundled_dir"] = f"${BUNDLED_MODELS_ENV}"

    # ai.allow_gpu = false forces the CPU, whatever ai.device says.
    ai_values = section_values["ai"]
    if ai_values.get("allow_gpu") is False and ai_values.get("device", "auto") != "cpu":
        device = ai_values.get("device", "auto")
        if device != "auto":
            warnings.append(
                f"{provenance['ai.device']}: ai.device = {device!r} ignored: GPUs are disabled by ai.allow_gpu = "
                f"false ({provenance['ai.allow_gpu']}); using the CPU"
            )
        ai_values["device"] = "cpu"
        provenance["ai.device"] = f"{provenance['ai.allow_gpu']} (ai.allow_gpu = false)"

    identity = IdentitySettings(**section_values["identity"])
    _, _, identity_warning = identity.resolve(env)
    if identity_warning:
        warnings.append(f"{provenance.get('identity.source', DEFAULT)}: {identity_warning}")
    section_values.pop("policy")  # its only key, locked, is in Settings.locked
    return Settings(
        identity=identity,
        ai=AISettings(**ai_values),
        storage=StorageSettings(**section_values["storage"]),
        models=ModelsSettings(**section_values["models"]),
        export=ExportSettings(**section_values["export"]),
        plugins=plugins,
        sources=tuple(str(p) for _, p, _ in layers),
        policy_source=policy_source,
        warnings=tuple(warnings),
        provenance=provenance,
        locked=locked,
        files=files,
    )
