"""radlabel plugin SDK (public, versioned): what an AI plugin declares, receives and returns.

A plugin is an object with ``name``, ``version``, ``capabilities``, ``weights_status()``, ``load(context)``
and ``predict(request, context)``. It is found through the entry-point group ``radlabel.plugins``, whose
value names a zero-argument factory returning the plugin, e.g. in the plugin's ``pyproject.toml``::

    [project.entry-points."radlabel.plugins"]
    litemedsam = "radlabel_medsam.plugin:create"

radlabel runs plugins in a worker process: ``load`` once, then ``predict`` for each request. A plugin
reports progress and checks for cancellation through the ``PluginContext``; it returns a `Proposal`, which
the reader sees as a proposal until they accept it. Plugins never download anything: weights come from an
installed package, an installed model pack (``find_model_pack``) or a path given by the user or site
configuration, and their SHA-256 is recorded.

Only the standard library, numpy and radlabel's error types are imported here (the settings and model-pack
modules only inside the functions that need them); plugins import torch/MONAI themselves, lazily. The errors
a plugin raises are re-exported here: ``InputError`` for a prompt it cannot use, ``PluginError`` /
``PluginWeightsError`` for its own failures, and ``Cancelled`` (raised for it by ``context.progress``).

SDK history (a plugin may set ``sdk_version = "1.1"``; radlabel refuses a plugin whose major version differs):

- 1.0: capabilities, prompts, request, proposal, context, weights status.
- 1.1 (compatible): ``Capabilities.devices``; helpers ``verify_weights``, ``plugin_settings``, ``cache_key``;
  ``sha256_of`` remembers digests of unchanged files; ``select_device("auto")``.
- 1.2 (compatible): model packs (``find_model_pack``, ``model_packs``, ``ModelPack``), installed offline with
  ``radlabel models install``; ``plugin_settings_or_empty``.

The full guide, with a complete example plugin, is ``docs/plugin-sdk.md``.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from radlabel.core.errors import Cancelled, InputError, PluginError, PluginWeightsError

if TYPE_CHECKING:
    from radlabel.core.settings import Settings

__all__ = [
    "ENTRY_POINT_GROUP",
    "SDK_VERSION",
    "BoxPrompt",
    "Cancelled",
    "Capabilities",
    "Dimension",
    "InferenceRequest",
    "InputError",
    "MaskPrompt",
    "ModelIdentity",
    "ModelPack",
    "Plugin",
    "PluginContext",
    "PluginError",
    "PluginFactory",
    "PluginWeightsError",
    "PointPrompt",
    "Prompt",
    "PromptKind",
    "Proposal",
    "WeightsStatus",
    "cache_key",
    "find_model_pack",
    "model_packs",
    "plugin_settings",
    "plugin_settings_or_empty",
    "select_device",
    "sha256_of",
    "verify_weights",
]

SDK_VERSION = "1.2"
ENTRY_POINT_GROUP = "radlabel.plugins"


class PromptKind(enum.StrEnum):
    BOX = "box"
    POINT = "point"
    SCRIBBLE = "scribble"
    MASK = "mask"
    NONE = "none"


class Dimension(enum.StrEnum):
    SLICE_2D = "2d"  # works on one slice of any of the three grid axes
    VOLUME_3D = "3d"


@dataclass(frozen=True)
class Capabilities:
    """What a plugin can do, so a UI enables only the tools it supports."""

    prompt_kinds: frozenset[PromptKind]
    dimensions: frozenset[Dimension]
    modalities: frozenset[str] = frozenset()  # empty: any modality
    labels: tuple[str, ...] = ()  # names of what it can produce (empty: whatever the prompt targets)
    propagation: bool = False  # can propose neighbouring slices from an accepted slice mask
    devices: frozenset[str] = frozenset()  # devices it runs on ("cpu", "cuda", "mps"); empty: any torch device

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_kinds": sorted(k.value for k in self.prompt_kinds),
            "dimensions": sorted(d.value for d in self.dimensions),
            "modalities": sorted(self.modalities),
            "labels": list(self.labels),
            "propagation": self.propagation,
            "devices": sorted(self.devices),
        }


@dataclass(frozen=True)
class BoxPrompt:
    """A box on slice ``slice_index`` along grid axis ``axis`` (0 = k, 1 = j, 2 = i), or a 3D box when
    ``axis`` is None. Corners are voxel indices in (i, j, k) order, inclusive; world corners in LPS mm."""

    ijk_min: tuple[int, int, int]
    ijk_max: tuple[int, int, int]
    axis: int | None = 0
    world_min: tuple[float, float, float] | None = None
    world_max: tuple[float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "box", "ijk_min": list(self.ijk_min), "ijk_max": list(self.ijk_max), "axis": self.axis}


@dataclass(frozen=True)
class PointPrompt:
    """A click at voxel ``ijk`` (i, j, k); ``positive`` False marks background."""

    ijk: tuple[int, int, int]
    positive: bool = True
    axis: int | None = 0
    world: tuple[float, float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "point", "ijk": list(self.ijk), "positive": self.positive, "axis": self.axis}


@dataclass(frozen=True)
class MaskPrompt:
    """A mask (``[k, j, i]`` on the reference grid): a scribble or a previous mask to refine."""

    mask: NDArray[np.bool_]
    kind: PromptKind = PromptKind.MASK
    positive: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "voxels": int(self.mask.sum()), "positive": self.positive}


Prompt = BoxPrompt | PointPrompt | MaskPrompt


@dataclass
class InferenceRequest:
    """Everything a plugin gets for one proposal. ``image`` is ``[k, j, i]`` in real units (HU for CT)."""

    image: NDArray[Any]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]  # (i, j, k) mm
    direction: tuple[tuple[float, float, float], ...]  # columns = i, j, k axes, LPS
    modality: str = ""
    prompts: list[Prompt] = field(default_factory=list)
    target_label: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # plugin-specific (e.g. window preset)

    def prompt_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.prompts]


@dataclass(frozen=True)
class ModelIdentity:
    """Recorded with every proposal and in the audit trail (DICOM SEG Algorithm Identification)."""

    name: str
    version: str
    weights_sha256: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "weights_sha256": self.weights_sha256}


@dataclass
class Proposal:
    """A plugin's answer on the reference grid: probabilities and/or labels inside a box at ``offset``.

    ``probabilities`` (float32 in [0, 1]) is kept for review and active learning; ``labels`` (uint8, 0 =
    background, values named in ``label_names``) is what "accept" adds. Either may be None, not both.
    """

    offset: tuple[int, int, int]  # (k, j, i) of element [0, 0, 0]
    model: ModelIdentity
    probabilities: NDArray[np.float32] | None = None
    labels: NDArray[np.uint8] | None = None
    label_names: dict[int, str] = field(default_factory=dict)
    device: str = "cpu"
    timing: dict[str, float] = field(default_factory=dict)  # seconds per stage
    prompt: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def mask(self, threshold: float = 0.5) -> NDArray[np.bool_]:
        """The binary proposal (labels > 0, else probabilities >= threshold), in the box."""
        if self.labels is not None:
            result: NDArray[np.bool_] = self.labels > 0
            return result
        if self.probabilities is None:
            raise ValueError("a Proposal needs probabilities or labels")
        thresholded: NDArray[np.bool_] = self.probabilities >= threshold
        return thresholded


@dataclass(frozen=True)
class WeightsStatus:
    present: bool
    location: str = ""
    sha256: str = ""
    message: str = ""


class PluginContext(Protocol):
    """Given to ``load`` and ``predict`` by the worker."""

    device: str  # "cuda", "mps" or "cpu"

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress; raises radlabel.core.errors.Cancelled when the user cancelled."""

    @property
    def cancelled(self) -> bool: ...

    @property
    def cache(self) -> dict[str, Any]:
        """Kept between requests in the worker (image embeddings, loaded models)."""


@runtime_checkable
class Plugin(Protocol):
    name: str
    version: str
    capabilities: Capabilities

    def weights_status(self) -> WeightsStatus: ...

    def load(self, context: PluginContext) -> None: ...

    def predict(self, request: InferenceRequest, context: PluginContext) -> Proposal: ...


PluginFactory = Callable[[], Plugin]


_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a weights file, streamed. Remembered per process while the file's inode, size and
    modification time stay the same, so listing plugins does not hash a 400 MB checkpoint twice."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    result = digest.hexdigest()
    with _DIGESTS_LOCK:
        _DIGESTS[key] = result
    return result


def verify_weights(path: str | Path, expected_sha256: str, plugin_name: str) -> str:
    """Check a weights file before loading it; return its SHA-256 (record it in `ModelIdentity`).

    Raises `radlabel.core.errors.PluginWeightsError` when the file is missing or unreadable, or when its
    SHA-256 is not ``expected_sha256`` (case-insensitive hex): a plugin never loads weights it cannot vouch
    for. Load the checked file with ``torch.load(path, map_location="cpu", weights_only=True)``.
    """
    where = Path(path)
    if not where.is_file():
        raise PluginWeightsError(
            f"weights file {where} not found",
            plugin_name,
            f"install the package that ships it or set its path under [plugins.{plugin_name}] in settings.toml",
        )
    try:
        actual = sha256_of(where)
    except OSError as exc:
        raise PluginWeightsError(f"cannot read weights file {where} ({exc})", plugin_name) from None
    expected = expected_sha256.strip().lower()
    if actual != expected:
        raise PluginWeightsError(
            f"weights file {where} has SHA-256 {actual}, expected {expected}; refusing to load it",
            plugin_name,
            "replace the file with the published weights (it may be damaged, truncated or a different model)",
        )
    return actual


def plugin_settings(plugin_name: str) -> dict[str, Any]:
    """The ``[plugins.<plugin_name>]`` table of the user and site settings (weights paths, presets).

    In the worker process this is the configuration of the radlabel process that started it.
    """
    if _settings_object is None:
        from radlabel.core.settings import load_settings

        return load_settings().plugin_options(plugin_name)
    return _settings_object.plugin_options(plugin_name)


_settings_object: Settings | None = None  # the worker sets the settings of the process that started it
_log = logging.getLogger(__name__)


def plugin_settings_or_empty(plugin_name: str) -> dict[str, Any]:
    """`plugin_settings`, or ``{}`` when the settings cannot be read (a broken settings file, no permission).

    Use it where a failure must not break anything, such as ``weights_status()`` during a plugin listing;
    ``load`` should call `plugin_settings` so that the reader sees the settings error.
    """
    try:
        return plugin_settings(plugin_name)
    except Exception as exc:
        _log.warning("settings for plugin %s cannot be read: %s", plugin_name, exc)
        return {}


def _current_settings() -> Settings:
    """The settings model packs are searched with: in the worker those of the radlabel process that started
    it (the worker hands them to the SDK), elsewhere the user and site files; defaults when those are broken."""
    from radlabel.core.settings import Settings, load_settings

    if _settings_object is not None:
        return _settings_object
    try:
        return load_settings()
    except Exception as exc:
        _log.warning("settings cannot be read, searching the default model folders: %s", exc)
        return Settings()


@dataclass(frozen=True)
class ModelPack:
    """An installed model pack (``radlabel models install``), as a plugin sees it.

    ``files`` maps each role of the pack's manifest to its file and ``sha256`` to the digest the manifest
    pins; pass both to `verify_weights` before loading (``verify()`` checks every file of the pack).
    """

    name: str
    version: str
    kind: str  # "onnx", "torch-weights", "monai-bundle"
    path: Path  # the pack folder
    files: Mapping[str, Path]  # role -> file
    manifest: Mapping[str, Any]  # radlabel-pack.json as read
    sha256: Mapping[str, str] = field(default_factory=dict)  # role -> pinned SHA-256 (hex)

    def file(self, role: str) -> Path:
        """The file with that role; `PluginWeightsError` naming the pack and its roles when there is none."""
        if role not in self.files:
            raise PluginWeightsError(
                f"model pack {self.name} ({self.path}) has no file with role {role!r} "
                f"(roles: {', '.join(sorted(self.files)) or 'none'})",
                fix="install the pack version made for this plugin",
            )
        return self.files[role]

    def verify(self) -> list[str]:
        """Problems with the pack's files (sizes, SHA-256, unlisted files); empty when it is intact."""
        from radlabel.app.model_packs import read_installed

        return read_installed(self.path, check_name=False).verify()


def _as_model_pack(pack: Any) -> ModelPack:
    by_role = pack.manifest.by_role()
    return ModelPack(
        name=pack.name,
        version=pack.version,
        kind=pack.kind,
        path=pack.path,
        files={role: pack.path / entry.path for role, entry in by_role.items()},
        manifest=dict(pack.manifest.raw),
        sha256={role: entry.sha256 for role, entry in by_role.items()},
    )


def find_model_pack(name: str) -> ModelPack | None:
    """The installed model pack called ``name`` (first in the search order of the settings' model folders),
    or None when none is installed. Cheap: reads manifests, hashes nothing; call `verify_weights` on the
    files you load (``pack.file(role)``, ``pack.sha256[role]``)."""
    from radlabel.app.model_packs import find_pack

    pack = find_pack(name, _current_settings())
    return _as_model_pack(pack) if pack is not None else None


def model_packs(kind: str | None = None, plugin: str | None = None) -> list[ModelPack]:
    """Every installed (not shadowed) model pack, optionally only of one ``kind`` and/or listing ``plugin``
    in its manifest's ``plugins`` (e.g. ``model_packs("monai-bundle", "monai_bundle")``)."""
    from radlabel.app.model_packs import scan_packs

    return [
        _as_model_pack(pack)
        for pack in scan_packs(_current_settings()).active
        if (kind is None or pack.kind == kind) and (plugin is None or plugin in pack.manifest.plugins)
    ]


def cache_key(*parts: Any) -> str:
    """A short key for ``context.cache`` from strings, numbers and arrays (array content, shape and dtype).

    Key image embeddings on the pixels that were encoded, e.g. ``cache_key("embedding", crop)``: then a new
    prompt on the same slice or crop reuses the embedding, and a different image can never hit it.
    """
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"array{array.shape}{array.dtype.str}".encode())
            digest.update(array.data)
        else:
            digest.update(f"{type(part).__name__}:{part!r}".encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def select_device(preferred: str | None = None) -> str:
    """CUDA when present, else Apple MPS, else CPU; the same code path on all (imports torch lazily).

    ``preferred`` (e.g. from settings ``ai.device``) is returned as is, except ``"auto"``, which means None.
    """
    if preferred and preferred != "auto":
        return preferred
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
