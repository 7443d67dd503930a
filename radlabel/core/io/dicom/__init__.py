"""DICOM reading: sources (file/folder/zip/DICOMDIR) -> frame records -> series -> regular-grid volumes."""

from radlabel.core.io.dicom.reader import scan_dicom

__all__ = ["scan_dicom"]
