"""Segment table rows <-> DICOM SEG segment descriptions (codes, colour, algorithm identification).

Export: name -> SegmentLabel, coded category / type (+ type modifier, anatomic region), SegmentAlgorithmType,
and for non-manual segments the SegmentationAlgorithmIdentificationSequence: model name, version, family
and the weights' SHA-256 as the algorithm parameter ``weights_sha256``. Colours go in as CIELab, the SEG
colour space. Import reads the same fields back, tolerating what other tools write (missing colour,
SegmentAlgorithmName without an identification sequence, LongCodeValue / URNCodeValue codes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from highdicom import AlgorithmIdentificationSequence
from highdicom.color import CIELabColor
from highdicom.seg import SegmentDescription
from highdicom.sr import CodedConcept as HdCodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from radlabel import __version__
from radlabel.core.segmentation.model import (
    DEFAULT_COLORS,
    TISSUE,
    AlgorithmInfo,
    AlgorithmType,
    CodedConcept,
    Segment,
)

WEIGHTS_PARAMETER = "weights_sha256"
_FAMILIES = {
    "artificial intelligence": codes.cid7162.ArtificialIntelligence,
    "manual processing": codes.cid7162.ManualProcessing,
    "morphological operations": codes.cid7162.MorphologicalOperations,
    "edge detection": codes.cid7162.EdgeDetection,
    "histogram analysis": codes.cid7162.HistogramAnalysis,
    "deformable models": codes.cid7162.DeformableModels,
}


def _hd_code(concept: CodedConcept) -> HdCodedConcept:
    return HdCodedConcept(concept.value, concept.scheme, concept.meaning[:64] or concept.value)


def _algorithm_sequence(segment: Segment) -> AlgorithmIdentificationSequence | None:
    if segment.algorithm_type == AlgorithmType.MANUAL and segment.algorithm is None:
        return None
    algorithm = segment.algorithm
    if algorithm is None:
        # SEMIAUTOMATIC / AUTOMATIC need an identification; without a model it was radlabel's own tools.
        algorithm = AlgorithmInfo("radlabel editing tools", __version__, family="Manual Processing")
    family = _FAMILIES.get(algorithm.family.strip().lower(), codes.cid7162.ArtificialIntelligence)
    parameters = {WEIGHTS_PARAMETER: algorithm.weights_sha256} if algorithm.weights_sha256 else None
    return AlgorithmIdentificationSequence(
        name=algorithm.name[:64] or "unnamed",
        family=family,
        version=algorithm.version[:64] or "unknown",
        source="radlabel",
        parameters=parameters,
    )


def segment_description(segment: Segment, number: int) -> SegmentDescription:
    """The SEG description of ``segment`` as segment number ``number``."""
    description = SegmentDescription(
        segment_number=number,
        segment_label=segment.name[:64] or f"Segment {segment.id}",
        segmented_property_category=_hd_code(segment.category),
        segmented_property_type=_hd_code(segment.type),
        algorithm_type=segment.algorithm_type.value,
        algorithm_identification=_algorithm_sequence(segment),
        anatomic_regions=[_hd_code(segment.anatomic_region)] if segment.anatomic_region else None,
        display_color=CIELabColor.from_rgb(*segment.color),
    )
    if segment.type_modifier is not None:
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _hd_code(segment.type_modifier)
        ]
    if segment.notes.strip():
        description.SegmentDescription = re.sub(r"[\r\n\\]+", " ", segment.notes.strip())[:64]
    return description


# ----------------------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------------------


def _code(sequence: Sequence[Dataset] | None) -> CodedConcept | None:
    if not sequence:
        return None
    item = sequence[0]
    value = item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue")
    scheme = item.get("CodingSchemeDesignator") or ("URN" if item.get("URNCodeValue") else "")
    if not value:
        return None
    return CodedConcept(str(value), str(scheme), str(item.get("CodeMeaning", "")))


def _color(item: Dataset, segment_id: int) -> tuple[int, int, int]:
    lab = item.get("RecommendedDisplayCIELabValue")
    if lab is not None and len(lab) == 3:
        try:
            r, g, b = CIELabColor.from_dicom_value([int(v) for v in lab]).to_rgb()
            return (int(r), int(g), int(b))
        except (ValueError, TypeError):
            pass
    return DEFAULT_COLORS[(segment_id - 1) % len(DEFAULT_COLORS)]


def _parameters(text: str) -> dict[str, str]:
    result = {}
    for part in re.split(r"[,;\n]", text):
        if "=" in part:
            key, value = part.split("=", 1)
            result[key.strip()] = value.strip()
    return result


def _algorithm(item: Dataset) -> AlgorithmInfo | None:
    sequence = item.get("SegmentationAlgorithmIdentificationSequence")
    if sequence:
        ident = sequence[0]
        family = _code(ident.get("AlgorithmFamilyCodeSequence"))
        parameters = _parameters(str(ident.get("AlgorithmParameters", "")))
        return AlgorithmInfo(
            name=str(ident.get("AlgorithmName", "")),
            version=str(ident.get("AlgorithmVersion", "")),
            weights_sha256=parameters.get(WEIGHTS_PARAMETER, ""),
            family=family.meaning if family else "Artificial Intelligence",
        )
    name = item.get("SegmentAlgorithmName")
    return AlgorithmInfo(str(name), "") if name else None


def segment_from_description(item: Dataset, segment_id: int, layer: int, label_value: int) -> Segment:
    """A segment-table row from one SegmentSequence item."""
    type_sequence = item.get("SegmentedPropertyTypeCodeSequence")
    modifier = None
    if type_sequence:
        modifier = _code(type_sequence[0].get("SegmentedPropertyTypeModifierCodeSequence"))
    algorithm_type = str(item.get("SegmentAlgorithmType", "MANUAL")).upper()
    name = str(item.get("SegmentLabel") or item.get("SegmentDescription") or f"Segment {segment_id}")
    return Segment(
        id=segment_id,
        name=name,
        color=_color(item, segment_id),
        category=_code(item.get("SegmentedPropertyCategoryCodeSequence")) or TISSUE,
        type=_code(type_sequence) or TISSUE,
        algorithm_type=AlgorithmType(algorithm_type)
        if algorithm_type in AlgorithmType.__members__
        else AlgorithmType.MANUAL,
        algorithm=_algorithm(item),
        notes=str(item.get("SegmentDescription", "")) if item.get("SegmentLabel") else "",
        layer=layer,
        label_value=label_value,
        type_modifier=modifier,
        anatomic_region=_code(item.get("AnatomicRegionSequence")),
    )


__all__ = ["WEIGHTS_PARAMETER", "segment_description", "segment_from_description"]
