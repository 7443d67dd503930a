"""Finding plugins: entry points of the group ``radlabel.plugins`` plus extra factories from the settings.

Discovery reads package metadata only; listing a plugin imports its module and calls its factory (which
must be cheap: models load in ``Plugin.load``, in the worker), so a plugin that keeps torch/MONAI imports
inside its functions is listed without importing them. A plugin that fails to import or to build is listed
with its error; it never breaks the listing. Plugins not in the site's ``ai.allowed_plugins`` are listed as
not allowed and their code is not run at all.

The site policy ``ai.allow_gpu = false`` makes every plugin's device the CPU (`choose_device`).

Extra factories (development, tests, site-local models that are not packaged) come from settings
``ai.extra_plugins`` and the environment variable ``RADLABEL_EXTRA_PLUGINS`` (comma- or whitespace-separated),
each ``name=module:function`` or ``module:function`` (then named by the plugin's ``name``). The worker
process resolves plugins with the same code, so it honours both.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radlabel.ai.sdk import ENTRY_POINT_GROUP, SDK_VERSION, Capabilities, Plugin, WeightsStatus
from radlabel.core.errors import PluginError
from radlabel.core.settings import Settings, load_settings

EXTRA_PLUGINS_ENV = "RADLABEL_EXTRA_PLUGINS"


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from, known without importing it."""

    name: str  # the entry-point name (the name users and settings use); "" for an unnamed extra factory
    target: str  # "module:function"
    origin: str  # "entry point", "settings" or "$RADLABEL_EXTRA_PLUGINS"
    package: str = ""  # distribution that declares the entry point
    package_version: str = ""


@dataclass(frozen=True)
class PluginInfo:
    """One line of ``radlabel plugins list``."""

    name: str
    source: PluginSource
    allowed: bool = True
    version: str = ""
    sdk_version: str = ""  # the SDK version the plugin declares it was written for ("" when it does not say)
    capabilities: Capabilities | None = None
    device: str = ""  # the device it would use here (estimated without importing torch)
    weights: WeightsStatus | None = None
    error: str = ""  # why it cannot be used ("" when it can)

    @property
    def usable(self) -> bool:
        return self.allowed and not self.error

    def to_json(self) -> dict[str, Any]:
        weights = self.weights
        return {
            "name": self.name,
            "version": self.version,
            "package": self.source.package,
            "package_version": self.source.package_version,
            "target": self.source.target,
            "origin": self.source.origin,
            "sdk_version": self.sdk_version,
            "allowed": self.allowed,
            "usable": self.usable,
            "capabilities": self.capabilities.to_json() if self.capabilities else None,
            "device": self.device,
            "weights": (
                {
                    "present": weights.present,
                    "location": weights.location,
                    "sha256": weights.sha256,
                    "message": weights.message,
                }
                if weights
                else None
            ),
            "error": self.error,
        }


# --- sources ------------------------------------------------------------------------------------------------


def _parse_extra(spec: str, origin: str) -> PluginSource:
    name, _, target = spec.rpartition("=")
    if not re.fullmatch(r"[\w.]+:[\w.]+", target):
        raise PluginError(
            f"extra plugin {spec!r} from {origin} is not 'name=module:function' or 'module:function'",
            fix="fix the entry in settings ai.extra_plugins or $" + EXTRA_PLUGINS_ENV,
        )
    return PluginSource(name=name.strip(), target=target, origin=origin)


def plugin_sources(settings: Settings) -> list[PluginSource]:
    """Every declared plugin: entry points first, then settings extras, then environment extras."""
    sources: list[PluginSource] = []
    for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = entry_point.dist
        sources.append(
            PluginSource(
                name=entry_point.name,
                target=entry_point.value,
                origin="entry point",
                package=dist.name if dist is not None else "",
                package_version=dist.version if dist is not None else "",
            )
        )
    for spec in settings.ai.extra_plugins:
        sources.append(_parse_extra(spec, "settings"))
    for spec in re.split(r"[,\s]+", os.environ.get(EXTRA_PLUGINS_ENV, "").strip()):
        if spec:
            sources.append(_parse_extra(spec, "$" + EXTRA_PLUGINS_ENV))
    return sources


def _without_name(exc: PluginError) -> str:
    """The message without its "plugin 'name': " prefix (a listing shows the name in its own column)."""
    return str(exc).removeprefix(f"plugin '{exc.plugin}': ")


def _not_allowed_message(name: str, settings: Settings) -> str:
    return f"not in ai.allowed_plugins of {settings.where('ai.allowed_plugins')}"


def _is_allowed(source: PluginSource, settings: Settings) -> bool:
    if settings.ai.allowed_plugins is None:
        return True
    # An unnamed extra factory cannot be checked without running it: under a site policy it must be named.
    return bool(source.name) and settings.ai.is_allowed(source.name)


# --- instantiation ----------------------------------------------------------------------------------------------


def _major(version: str) -> str:
    return version.split(".")[0]


def create_plugin(source: PluginSource) -> Plugin:
    """Import the factory, call it and check the result against the SDK. Raises PluginError."""
    label = source.name or source.target
    module_name, _, attr = source.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory: Any = module
        for part in attr.split("."):
            factory = getattr(factory, part)
        plugin = factory()
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"cannot create it from {source.target} ({type(exc).__name__}: {exc})",
            label,
            f"reinstall {source.package}" if source.package else None,
        ) from exc
    if not isinstance(plugin, Plugin) or not isinstance(getattr(plugin, "capabilities", None), Capabilities):
        raise PluginError(
            f"{source.target} returned {type(plugin).__name__}, which is not a radlabel plugin "
            "(it needs name, version, capabilities, weights_status, load and predict)",
            label,
        )
    declared = str(getattr(plugin, "sdk_version", "") or "")
    if declared and _major(declared) != _major(SDK_VERSION):
        raise PluginError(
            f"written for plugin SDK {declared}; this radlabel provides SDK {SDK_VERSION}",
            label,
            "install a version of the plugin made for this radlabel",
        )
    return plugin


def resolve(name: str, settings: Settings | None = None) -> tuple[PluginSource, Plugin]:
    """The plugin called ``name``, created (in the calling process). Raises PluginError."""
    settings = settings if settings is not None else load_settings()
    sources = plugin_sources(settings)
    for source in sources:
        if source.name == name:
            if not _is_allowed(source, settings):
                raise PluginError(_not_allowed_message(name, settings), name, "ask your site administrator")
            return source, create_plugin(source)
    for source in sources:  # unnamed extras are named by what they create
        if not source.name and settings.ai.allowed_plugins is None:
            try:
                plugin = create_plugin(source)
            except PluginError:
                continue
            if plugin.name == name:
                return source, plugin
    known = ", ".join(sorted({s.name for s in sources if s.name})) or "none"
    raise PluginError(
        f"no such plugin (installed: {known})",
        name,
        "install it (pip install <package>) or check the name with 'radlabel plugins list'",
    )


def check_available(name: str, settings: Settings) -> None:
    """Fail fast, without importing plugin code, for a name that is not allowed or not declared at all."""
    sources = plugin_sources(settings)
    named = [s for s in sources if s.name == name]
    if named:
        if not _is_allowed(named[0], settings):
            raise PluginError(_not_allowed_message(name, settings), name, "ask your site administrator")
        return
    if any(not s.name for s in sources) and settings.ai.allowed_plugins is None:
        return  # may be an unnamed extra factory; the worker finds out
    resolve(name, settings)  # raises the "no such plugin" error


# --- devices -------------------------------------------------------------------------------------------------


def probe_accelerator() -> str:
    """The accelerator torch would find here, guessed without importing torch (or touching the GPU)."""
    if importlib.util.find_spec("torch") is None:
        return "cpu"
    if sys.platform.startswith("linux"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip() in ("", "-1"):
            return "cpu"
        if Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*")):
            return "cuda"
        return "cpu"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mps"
    if sys.platform == "win32":
        system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return "cuda" if Path(system_root, "System32", "nvcuda.dll").exists() else "cpu"
    return "cpu"


def choose_device(capabilities: Capabilities, preference: str, available: str, *, allow_gpu: bool = True) -> str:
    """The device a plugin runs on: the settings' preference (or ``available`` for "auto"), limited to the
    devices the plugin declares (CPU when it declares others only). ``allow_gpu=False`` (site policy
    ``ai.allow_gpu = false``) means the CPU, always: a plugin that cannot run on it then fails to load rather
    than use a GPU the site forbids."""
    if not allow_gpu:
        return "cpu"
    wanted = available if preference in ("", "auto") else preference
    if capabilities.devices and wanted.split(":")[0] not in capabilities.devices:
        return "cpu" if "cpu" in capabilities.devices else sorted(capabilities.devices)[0]
    return wanted


# --- listing --------------------------------------------------------------------------------------------------


def describe(source: PluginSource, settings: Settings, accelerator: str | None = None) -> PluginInfo:
    """What ``plugins list`` shows for one source; never raises for a broken plugin."""
    name = source.name or source.target
    if not _is_allowed(source, settings):
        return PluginInfo(name=name, source=source, allowed=False, error=_not_allowed_message(name, settings))
    try:
        plugin = create_plugin(source)
    except PluginError as exc:
        return PluginInfo(name=name, source=source, error=_without_name(exc))
    name = source.name or str(plugin.name)
    try:
        weights = plugin.weights_status()
        if not isinstance(weights, WeightsStatus):
            raise TypeError(f"weights_status() returned {type(weights).__name__}, not WeightsStatus")
    except Exception as exc:
        weights = WeightsStatus(present=False, message=f"weights_status failed: {type(exc).__name__}: {exc}")
    device = choose_device(
        plugin.capabilities,
        settings.ai.device,
        accelerator if accelerator is not None else probe_accelerator(),
        allow_gpu=settings.ai.allow_gpu,
    )
    return PluginInfo(
        name=name,
        source=source,
        version=str(plugin.version),
        sdk_version=str(getattr(plugin, "sdk_version", "") or ""),
        capabilities=plugin.capabilities,
        device=device,
        weights=weights,
        error="" if weights.present else f"weights not available: {weights.message or 'missing'}",
    )


def discover(settings: Settings | None = None) -> list[PluginInfo]:
    """Every plugin with its capabilities, device and weights status, in name order; broken ones with their
    error. A name declared twice keeps the first declaration; the others are listed with an error."""
    settings = settings if settings is not None else load_settings()
    accelerator = probe_accelerator() if settings.ai.allow_gpu else "cpu"
    infos: list[PluginInfo] = []
    seen: dict[str, PluginInfo] = {}
    try:
        sources = plugin_sources(settings)
    except PluginError as exc:
        return [PluginInfo(name="(settings)", source=PluginSource("", "", "settings"), error=str(exc))]
    for source in sources:
        info = describe(source, settings, accelerator)
        first = seen.get(info.name)
        if first is not None:
            where = first.source.package or first.source.origin
            info = PluginInfo(name=info.name, source=source, error=f"name already used by {where}; ignored")
        else:
            seen[info.name] = info
        infos.append(info)
    return infos
