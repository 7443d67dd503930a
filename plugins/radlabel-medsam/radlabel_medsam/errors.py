"""Typed errors of the MedSAM plugins: one-line messages a reader can act on (see radlabel.core.errors).

They are radlabel's plugin errors, so the worker and the GUI report them like any other plugin failure.
"""

from __future__ import annotations

from pathlib import Path

from radlabel.core.errors import PluginError, PluginWeightsError


class MedSAMError(PluginError):
    """Base of the errors the MedSAM plugins report."""


class _WeightsError(PluginWeightsError):
    def __init__(self, message: str, plugin: str = "", fix: str | None = None, path: str | Path | None = None) -> None:
        super().__init__(message, plugin, fix)
        self.path = str(path) if path is not None else None


class WeightsMissingError(_WeightsError):
    """No weights file where the plugin looks for one (package not installed, no checkpoint configured)."""


class WeightsHashError(_WeightsError):
    """The weights file's SHA-256 is not the one expected: it is refused, never loaded."""


class ModelPackError(_WeightsError):
    """A model pack whose manifest this plugin cannot use (unknown format, another model, malformed entries).

    A weights error, so the plugin is listed as unusable and the worker refuses to start it, like a bad hash.
    """


class PromptError(MedSAMError):
    """The prompts of a request cannot be used (no box or point, several slices, outside the image, ...)."""
