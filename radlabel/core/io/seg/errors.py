"""Typed errors of segmentation import and export (one-line messages naming the file, as everywhere)."""

from __future__ import annotations

from radlabel.core.errors import InputError, OutputError


class SegmentationImportError(InputError):
    """A DICOM SEG, RTSTRUCT or label-map file cannot be placed on the image."""


class MalformedSegmentationError(SegmentationImportError):
    """The file breaks its own format: frames missing, attributes inconsistent, pixel data cut short."""


class ReferenceMismatchError(SegmentationImportError):
    """The file references another frame of reference, series or image instances than the image's."""


class NoOverlapError(SegmentationImportError):
    """The segmentation lies entirely outside the image."""


class ContourOutsideImageError(MalformedSegmentationError):
    """RTSTRUCT contour points lie outside the image they claim to be drawn on."""


class SegmentationExportError(OutputError):
    """A segmentation cannot be written in the requested format."""


class OverlappingSegmentsError(SegmentationExportError):
    """The format (LABELMAP SEG) holds one segment per voxel, but segments overlap."""


class MissingSourceImagesError(SegmentationExportError):
    """A DICOM export needs the image's source DICOM files (headers), and they are not there."""


__all__ = [
    "ContourOutsideImageError",
    "MalformedSegmentationError",
    "MissingSourceImagesError",
    "NoOverlapError",
    "OverlappingSegmentsError",
    "ReferenceMismatchError",
    "SegmentationExportError",
    "SegmentationImportError",
]
