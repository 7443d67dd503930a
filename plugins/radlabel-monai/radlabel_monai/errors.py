"""Typed errors of the MONAI plugin: one-line messages a reader can act on (see radlabel.core.errors).

They are radlabel's plugin errors, so the worker and the GUI report them like any other plugin failure.
"""

from __future__ import annotations

from pathlib import Path

from radlabel.core.errors import PluginError, PluginWeightsError

PLUGIN = "monai_bundle"


class MonaiPluginError(PluginError):
    """Base of the errors the MONAI plugin reports."""

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None) -> None:
        where = f"{path}: " if path is not None else ""
        super().__init__(where + message, PLUGIN, fix)
        self.path = str(path) if path is not None else None


class ModelNotConfiguredError(MonaiPluginError, PluginWeightsError):
    """No bundle or TorchScript model is configured, or the configured path does not exist."""


class BundleError(MonaiPluginError):
    """The bundle or model configuration cannot be used (missing file, unparsable config, wrong shapes)."""
