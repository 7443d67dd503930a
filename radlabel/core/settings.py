"""The one typed settings object of radlabel, read from a user file and a site file.

Files (TOML; a missing file means defaults):

- user: ``$RADLABEL_SETTINGS``, else ``$XDG_CONFIG_HOME/radlabel/settings.toml``, else
  ``~/.config/radlabel/settings.toml``;
- site: ``$RADLABEL_SITE_SETTINGS``, else ``/etc/radlabel/settings.toml`` (written by hospital IT).

Example::

    [identity]
    user = "Dr A. Reader"            # recorded in the audit trail instead of the OS login name

    [ai]
    device = "auto"                  # auto | cpu | cuda | cuda:1 | mps
    allowed_plugins = ["litemedsam", "example-threshold"]   # site policy: the site file wins
    extra_plugins = ["mymodel=my_package.plugin:create"]    # factories not installed as entry points
    load_timeout_s = 300             # loading a model in the worker
    predict_timeout_s = 900          # one proposal, in total
    stall_timeout_s = 300            # one proposal, without a progress report
    cancel_grace_s = 3               # a cancelled plugin that has not stopped by then is killed
    cache_entries = 64               # entries of the worker's per-plugin cache (embeddings)
    allow_network = false            # site policy: the site file wins

    [plugins.medsam]                 # free-form, read by that plugin (radlabel.ai.sdk.plugin_settings)
    checkpoint = "/opt/models/medsam_vit_b.pth"

Merging: the user file overrides the site file key by key (``[plugins.*]`` tables too), except for site
policy (``ai.allowed_plugins``, ``ai.allow_network``), where a value in the site file wins. A file that is
not valid TOML, or a key with the wrong type, is an :class:`~radlabel.core.errors.InputError` naming the file
and the line. Unknown keys are kept as warnings (a site file may be written for a newer radlabel).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from radlabel.core.errors import InputError

USER_SETTINGS_ENV = "RADLABEL_SETTINGS"
SITE_SETTINGS_ENV = "RADLABEL_SITE_SETTINGS"
DEFAULT_SITE_FILE = Path("/etc/radlabel/settings.toml")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
SITE_POLICY_KEYS = frozenset({("ai", "allowed_plugins"), ("ai", "allow_network")})


@dataclass(frozen=True)
class IdentitySettings:
    user: str | None = None  # None: the OS login name

    def resolved_user(self) -> str:
        """The name the audit trail records: the configured one, else the OS login name."""
        if self.user:
            return self.user
        from radlabel.core.audit import current_user

        return current_user()


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

    def is_allowed(self, plugin_name: str) -> bool:
        return self.allowed_plugins is None or plugin_name in self.allowed_plugins


@dataclass(frozen=True)
class Settings:
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    ai: AISettings = field(default_factory=AISettings)
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # [plugins.<name>] tables
    sources: tuple[str, ...] = ()  # files that were read, site first
    policy_source: dict[str, str] = field(default_factory=dict)  # "ai.allowed_plugins" -> file that set it
    warnings: tuple[str, ...] = ()

    def plugin_options(self, plugin_name: str) -> dict[str, Any]:
        """The ``[plugins.<plugin_name>]`` table (empty when the files have none)."""
        return dict(self.plugins.get(plugin_name, {}))

    def where(self, dotted_key: str) -> str:
        """The file that set a policy key, for messages ("the site configuration" when unknown)."""
        return self.policy_source.get(dotted_key, "the settings")


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
    return DEFAULT_SITE_FILE


def load_settings(
    user_path: str | Path | None = None,
    site_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the site file, then the user file over it (see the module docstring for the rules)."""
    site = Path(site_path) if site_path is not None else site_settings_path(environ)
    user = Path(user_path) if user_path is not None else user_settings_path(environ)
    layers = [(p, _read_toml(p)) for p in (site, user)]
    return _merge([(p, read) for p, read in layers if read is not None])


def settings_from_mapping(data: Mapping[str, Any], source: str = "<settings>") -> Settings:
    """Settings from an already parsed TOML-like mapping (tests, embedding applications)."""
    return _merge([(Path(source), (dict(data), ""))])


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
    """Best-effort line number of ``key`` inside ``[section]`` (or at top level when section is "")."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\]]+?)\s*\]", stripped)
        if header:
            current = header.group(1).replace('"', "").replace(" ", "")
            continue
        if current == section and re.match(rf"^\"?{re.escape(key)}\"?\s*=", stripped):
            return number
        if section.startswith(current + ".") and re.match(rf"^{re.escape(section[len(current) + 1 :])}\.", stripped):
            return number  # dotted keys
    return None


class _Reader:
    """Checks one file's values, raising InputError with the file and line of a bad one."""

    def __init__(self, path: Path, data: dict[str, Any], text: str) -> None:
        self.path = path
        self.text = text
        self.data = data
        self.warnings: list[str] = []

    def fail(self, section: str, key: str, expected: str, value: Any) -> InputError:
        line = _line_of(self.text, section, key)
        where = f"line {line}: " if line else ""
        dotted = f"{section}.{key}" if section else key
        return InputError(f"{where}{dotted} must be {expected}, not {value!r}", self.path)

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


_NUMBER_KEYS = {"load_timeout_s", "predict_timeout_s", "stall_timeout_s", "cancel_grace_s"}


def _parse(path: Path, data: dict[str, Any], text: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """One file -> {"identity": {...}, "ai": {...}, "plugins": {...}} of checked values."""
    reader = _Reader(path, data, text)
    out: dict[str, dict[str, Any]] = {"identity": {}, "ai": {}, "plugins": {}}
    for key, value in reader.table("identity").items():
        if key == "user":
            out["identity"]["user"] = reader.string("identity", key, value)
        else:
            reader.warnings.append(f"{path}: unknown key identity.{key} (ignored)")
    for key, value in reader.table("ai").items():
        if key == "device":
            out["ai"][key] = reader.string("ai", key, value, DEVICE_CHOICES)
        elif key in ("allowed_plugins", "extra_plugins"):
            out["ai"][key] = reader.strings("ai", key, value)
        elif key in _NUMBER_KEYS:
            out["ai"][key] = float(reader.number("ai", key, value))
        elif key == "cache_entries":
            out["ai"][key] = int(reader.number("ai", key, value, integer=True))
        elif key == "allow_network":
            out["ai"][key] = reader.boolean("ai", key, value)
        else:
            reader.warnings.append(f"{path}: unknown key ai.{key} (ignored)")
    for name, table in reader.table("plugins").items():
        if not isinstance(table, dict):
            raise reader.fail("plugins", name, f"a table ([plugins.{name}])", table)
        out["plugins"][name] = dict(table)
    for key in reader.data:
        if key not in ("identity", "ai", "plugins"):
            reader.warnings.append(f"{path}: unknown section [{key}] (ignored)")
    return out, reader.warnings


def _merge(layers: list[tuple[Path, tuple[dict[str, Any], str]]]) -> Settings:
    """Layers in order site, user: later ones override, except policy keys, which the first layer setting
    them keeps (the site file comes first)."""
    identity: dict[str, Any] = {}
    ai: dict[str, Any] = {}
    plugins: dict[str, dict[str, Any]] = {}
    policy_source: dict[str, str] = {}
    warnings: list[str] = []
    for path, (data, text) in layers:
        parsed, file_warnings = _parse(path, data, text)
        warnings.extend(file_warnings)
        identity.update(parsed["identity"])
        for key, value in parsed["ai"].items():
            if ("ai", key) in SITE_POLICY_KEYS and f"ai.{key}" in policy_source:
                if ai.get(key) != value:
                    warnings.append(f"{path}: ai.{key} is set by the site ({policy_source[f'ai.{key}']}); ignored")
                continue
            ai[key] = value
            if ("ai", key) in SITE_POLICY_KEYS:
                policy_source[f"ai.{key}"] = str(path)
        for name, table in parsed["plugins"].items():
            plugins.setdefault(name, {}).update(table)
    defaults = AISettings()
    ai_settings = replace(defaults, **{f.name: ai[f.name] for f in fields(AISettings) if f.name in ai})
    return Settings(
        identity=IdentitySettings(**identity),
        ai=ai_settings,
        plugins=plugins,
        sources=tuple(str(p) for p, _ in layers),
        policy_source=policy_source,
        warnings=tuple(warnings),
    )
