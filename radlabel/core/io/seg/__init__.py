"""Segmentation files: DICOM SEG (BINARY / FRACTIONAL / LABELMAP), RTSTRUCT and NIfTI / NRRD / 3D Slicer
``.seg.nrrd`` label maps, exported from and imported onto a loaded volume.

- :func:`export_segmentation` / :func:`import_segmentation` (``api``): the entry points, format by file name
  (export) or content (import).
- ``seg_writer`` / ``seg_reader``: DICOM SEG through highdicom (write) and pydicom (read, every encoding).
- ``rtstruct_writer`` / ``rtstruct_reader`` + ``contours``: RT Structure Sets, exact voxel-edge contours.
- ``labelmap_export``: label maps via :mod:`radlabel.core.segmentation.labelmap_io` plus provenance.
- ``placement``: frames in world space -> pieces of the reference grid (exact or nearest neighbour).
- ``provenance``: reader identity and audit head written into exports; ``export`` audit records.
"""

from radlabel.core.io.seg.api import export_segmentation, import_segmentation, output_kind
from radlabel.core.io.seg.common import ExportResult, SegmentationImport
from radlabel.core.io.seg.errors import (
    ContourOutsideImageError,
    MalformedSegmentationError,
    MissingSourceImagesError,
    NoOverlapError,
    OverlappingSegmentsError,
    ReferenceMismatchError,
    SegmentationExportError,
    SegmentationImportError,
)
from radlabel.core.io.seg.provenance import Provenance
from radlabel.core.io.seg.seg_writer import SegKind

__all__ = [
    "ContourOutsideImageError",
    "ExportResult",
    "MalformedSegmentationError",
    "MissingSourceImagesError",
    "NoOverlapError",
    "OverlappingSegmentsError",
    "Provenance",
    "ReferenceMismatchError",
    "SegKind",
    "SegmentationExportError",
    "SegmentationImport",
    "SegmentationImportError",
    "export_segmentation",
    "import_segmentation",
    "output_kind",
]
