"""Errors of the editing tools: a parameter a user (or a script) gave cannot be used.

All are `radlabel.core.errors.InputError` subclasses, so the CLI prints their one-line message and exits 2 and
the GUI shows it in a message box. They are raised before any work is done; a tool never half-computes.
(Errors of the edit path itself, such as a locked segment, are `radlabel.core.errors.EditError`.)
"""

from __future__ import annotations

from radlabel.core.errors import InputError


class EditParameterError(InputError):
    """A tool parameter is out of range (base of the errors below)."""


class InvalidLengthError(EditParameterError):
    """A radius, kernel size, margin, sigma or thickness is not a positive finite length in mm."""


class OutsideGridError(EditParameterError):
    """A seed, brush centre, polygon slice or box lies outside the image grid."""


class InvalidAxisError(EditParameterError):
    """A slice axis is not 0 (k, axial for an axial scan), 1 (j) or 2 (i)."""


class InvalidRangeError(EditParameterError):
    """An intensity range or tolerance is empty, negative or not a number."""


class InvalidConnectivityError(EditParameterError):
    """A connectivity is not one of 6, 18 or 26 (face, edge or corner neighbours)."""


class UnknownSegmentError(EditParameterError):
    """A segment id is not in the segmentation."""


class UnknownPresetError(EditParameterError):
    """A threshold preset name is not one of the known presets."""


class NoSeedsError(EditParameterError):
    """Grow-from-seeds needs seeds of at least two segments."""


class InvalidPolygonError(EditParameterError):
    """A polygon has fewer than three points or points that are not numbers."""


__all__ = [
    "EditParameterError",
    "InvalidAxisError",
    "InvalidConnectivityError",
    "InvalidLengthError",
    "InvalidPolygonError",
    "InvalidRangeError",
    "NoSeedsError",
    "OutsideGridError",
    "UnknownPresetError",
    "UnknownSegmentError",
]
