"""Segmentations: label-map layers on a reference volume's grid plus a segment table."""

from radlabel.core.segmentation.model import (
    AlgorithmInfo,
    AlgorithmType,
    CodedConcept,
    Grid,
    Segment,
    Segmentation,
)

__all__ = ["AlgorithmInfo", "AlgorithmType", "CodedConcept", "Grid", "Segment", "Segmentation"]
