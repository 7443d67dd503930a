"""The terminology list: every code checked against the DICOM code dictionary pydicom ships."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path

import pydicom.sr._concepts_dict as concepts_dict
import pytest
from pydicom.sr.codedict import codes

from radlabel.core.errors import InputError
from radlabel.core.segmentation.model import Segment, Segmentation
from radlabel.core.segmentation.terminology import (
    TerminologyEntry,
    find,
    load_terminology,
    normalized_name,
    parse_terminology,
)
from tests.core.synthetic import oblique_volume

ROOT = Path(__file__).resolve().parents[2]

# DICOM context groups (PS3.16): segmentation categories, the types for each category, laterality.
CID_CATEGORY = 7150
CID_TYPE_FOR_CATEGORY = {"85756007": 7191, "91723000": 7192, "49755003": 7194}  # Tissue, Anatomical, Abnormal
CID_LATERALITY = 244
CID_TYPE = 7151

# (scheme, value) -> [(meaning, context groups)] for every concept pydicom knows.
DICTIONARY: dict[tuple[str, str], list[tuple[str, set[int]]]] = {}
for _scheme, _keywords in concepts_dict.concepts.items():
    for _by_value in _keywords.values():
        for _value, (_meaning, _cids) in _by_value.items():
            DICTIONARY.setdefault((_scheme, _value), []).append((_meaning, set(_cids)))

#: Concepts pydicom does not list, allowed in the file (none today): each must be checked by hand.
NOT_IN_PYDICOM: set[tuple[str, str]] = set()

REQUIRED = [
    "Tumour",
    "Necrosis",
    "Oedema",
    "Enhancing tumour",
    "Non-enhancing tumour",
    "Metastasis",
    "Lung nodule",
    "Lymph node",
    "Cyst",
    "Liver",
    "Spleen",
    "Kidney",
    "Left kidney",
    "Right kidney",
    "Pancreas",
    "Lung",
    "Heart",
    "Aorta",
    "Urinary bladder",
    "Prostate",
    "Brain",
    "Bone",
    "Vertebra",
]


def entry_named(name: str) -> TerminologyEntry:
    entry = find(name)
    assert entry is not None, name
    return entry


def test_the_list_holds_the_common_oncology_and_organ_segments() -> None:
    names = {e.name for e in load_terminology()}
    assert set(REQUIRED) <= names
    assert len(names) == len(load_terminology()) >= 40


def check_concept(kind: str, scheme: str, value: str, meaning: str, group: int | None) -> str | None:
    """None when the concept is right; else what is wrong. ``group``: the context group it must be in."""
    known = DICTIONARY.get((scheme, value))
    if known is None:
        return None if (scheme, value) in NOT_IN_PYDICOM else f"{kind} {scheme}:{value} is not in pydicom's dictionary"
    in_group = [m for m, cids in known if group is not None and group in cids]
    expected = in_group or [m for m, _ in known]
    if group is not None and not in_group:
        return f"{kind} {scheme}:{value} '{meaning}' is not in DICOM CID {group}"
    if meaning not in expected:
        return f"{kind} {scheme}:{value} is '{meaning}', pydicom says {expected}"
    return None


def test_every_code_value_and_meaning_agrees_with_pydicom() -> None:
    problems = []
    for e in load_terminology():
        type_group = CID_TYPE_FOR_CATEGORY.get(e.category.value)
        checks = [
            ("category", e.category, CID_CATEGORY),
            ("type", e.type, type_group),
            ("type modifier", e.type_modifier, CID_LATERALITY),
            ("anatomic region", e.anatomic_region, CID_TYPE),
        ]
        for kind, concept, group in checks:
            if concept is not None:
                problem = check_concept(kind, concept.scheme, concept.value, concept.meaning, group)
                if problem:
                    problems.append(f"{e.name}: {problem}")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_wrong_meaning_and_a_type_in_the_wrong_category() -> None:
    assert check_concept("type", "SCT", "64033007", "Endo-renal", 7192) is not None
    assert check_concept("type", "SCT", "10200004", "Liver", 7194) is not None  # an organ is not a lesion type
    assert check_concept("type", "SCT", "10200004", "Liver", 7192) is None


def test_known_entries_carry_the_standard_codes() -> None:
    tumour = entry_named("Tumour")
    assert (tumour.category.value, tumour.category.scheme) == ("49755003", "SCT")
    assert tumour.type.value == codes.SCT.Neoplasm.value == "108369006"
    assert entry_named("Oedema").type.value == codes.SCT.Edema.value
    assert entry_named("Necrosis").type.value == codes.SCT.Necrosis.value
    assert entry_named("Liver").type.value == codes.SCT.Liver.value
    right = entry_named("Right kidney")
    assert right.type.value == codes.SCT.Kidney.value
    assert right.type_modifier is not None and right.type_modifier.value == codes.SCT.Right.value
    nodule = entry_named("Lung nodule")
    assert nodule.type.value == codes.SCT.Nodule.value
    assert nodule.anatomic_region is not None and nodule.anatomic_region.value == codes.SCT.Lung.value
    assert entry_named("Enhancing tumour").type.scheme == "NCIt"


def test_colours_are_rgb_and_names_are_unique() -> None:
    seen: set[tuple[str, ...]] = set()
    for e in load_terminology():
        assert len(e.color) == 3 and all(0 <= c <= 255 for c in e.color)
        for name in e.names:
            assert normalized_name(name) not in seen, name
            seen.add(normalized_name(name))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("kidney_right", "Right kidney"),
        ("Right-Kidney", "Right kidney"),
        ("tumor", "Tumour"),
        ("EDEMA", "Oedema"),
        ("urinary_bladder", "Urinary bladder"),
        ("108369006", "Tumour"),
        ("SCT:64033007", "Kidney"),
        ("SCT^10200004", "Liver"),
        ("NCIt:C113842", "Enhancing tumour"),
        ("pulmonary nodule", "Lung nodule"),
        ("27925004", "Nodule"),
    ],
)
def test_find_by_name_synonym_or_code(query: str, expected: str) -> None:
    assert entry_named(query).name == expected


@pytest.mark.parametrize("query", ["lung_upper_lobe_left", "", "999999999", "DCM:108369006", "kidney left right"])
def test_find_returns_none_for_unknown_names_and_codes(query: str) -> None:
    assert find(query) is None


def test_entry_fills_a_segment_and_survives_the_segment_table_round_trip() -> None:
    segmentation = Segmentation.empty(oblique_volume())
    entry = entry_named("Left kidney")
    segment = segmentation.add_segment(entry.name, **entry.to_segment_fields())
    assert segment.type == entry.type and segment.category == entry.category and segment.color == entry.color
    assert segment.type_modifier == entry.type_modifier
    again = Segment.from_json(json.loads(json.dumps(segment.to_json())))
    assert again == segment


def test_the_data_file_ships_inside_the_package() -> None:
    packaged = resources.files("radlabel") / "resources" / "terminology.json"
    assert json.loads(packaged.read_text(encoding="utf-8"))["format"] == "radlabel-terminology"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "resources/*.json" in pyproject["tool"]["setuptools"]["package-data"]["radlabel"]


def test_a_custom_file_loads_and_bad_files_are_refused(tmp_path: Path) -> None:
    good = {"format": "radlabel-terminology", "entries": [entry_named("Liver").to_json()]}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(good))
    (entry,) = load_terminology(path)
    assert entry == entry_named("Liver")
    duplicate = {"format": "radlabel-terminology", "entries": [entry.to_json(), {**entry.to_json(), "name": "LIVER"}]}
    with pytest.raises(InputError, match="already used"):
        parse_terminology(duplicate)
    with pytest.raises(InputError, match="color"):
        parse_terminology({"format": "radlabel-terminology", "entries": [{**entry.to_json(), "color": [0, 0, 300]}]})
    with pytest.raises(InputError, match="not a terminology file"):
        parse_terminology({"entries": []})
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_terminology(tmp_path / "broken.json")
