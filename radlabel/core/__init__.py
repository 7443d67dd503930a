"""Volumes, geometry, segmentations, edit operations, I/O and the audit log. No Qt, no VTK."""
