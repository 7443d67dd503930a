"""The terminology list: common oncology and organ segments as DICOM coded concepts, with display colours.

The list is data (``radlabel/resources/terminology.json``, shipped inside the package so that it is found
in an installed radlabel as well as in a source checkout), not code. Each entry gives the DICOM
segmentation category (CID 7150) and type (CID 7151) as SNOMED CT concepts, optionally a type modifier
(laterality, CID 244) and an anatomic region, and a recommended display colour. Code values and meanings
are the DICOM ones as shipped in pydicom's code dictionary (the tests check every entry against it). Two
notes for readers who know older lists:

- the category 49755003 is called "Morphologically Abnormal Structure" in current DICOM; older 3D Slicer
  and dcmqi files say "Morphologically Altered Structure" (same code);
- DICOM codes "enhancing" and "non-enhancing" tumour (CID 7168/7169, the BraTS classes) with NCI Thesaurus
  concepts (NCIt C113842, C81175); the list uses those.

``find("kidney_right")`` matches names and synonyms ignoring case, punctuation and word order, so label
names as tools write them (TotalSegmentator's ``kidney_right``, nnU-Net's ``Right-Kidney``) find their entry.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from radlabel.core.errors import InputError
from radlabel.core.segmentation.model import CodedConcept

PACKAGE_RESOURCE = "terminology.json"
"""File name inside the ``radlabel/resources`` folder of the installed package."""

FORMAT = "radlabel-terminology"


@dataclass(frozen=True)
class TerminologyEntry:
    """One segment kind a reader can pick: name, DICOM codes and a display colour."""

    name: str
    category: CodedConcept
    type: CodedConcept
    color: tuple[int, int, int]
    group: str = ""
    """``lesion``, ``anatomy`` or ``tissue`` (for grouping in a picker)."""
    type_modifier: CodedConcept | None = None
    anatomic_region: CodedConcept | None = None
    synonyms: tuple[str, ...] = ()

    def to_segment_fields(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`Segmentation.add_segment` / ``update_segment`` (name excluded)."""
        return {
            "category": self.category,
            "type": self.type,
            "color": self.color,
            "type_modifier": self.type_modifier,
            "anatomic_region": self.anatomic_region,
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "group": self.group,
            "category": self.category.to_json(),
            "type": self.type.to_json(),
        }
        if self.type_modifier is not None:
            data["type_modifier"] = self.type_modifier.to_json()
        if self.anatomic_region is not None:
            data["anatomic_region"] = self.anatomic_region.to_json()
        data["color"] = list(self.color)
        if self.synonyms:
            data["synonyms"] = list(self.synonyms)
        return data

    @property
    def names(self) -> tuple[str, ...]:
        """The name and its synonyms."""
        return (self.name, *self.synonyms)


def normalized_name(text: str) -> tuple[str, ...]:
    """Words of a segment name, lower case, sorted: ``"kidney_right"`` and ``"Right kidney"`` give the same."""
    words = re.sub(r"[^0-9a-z]+", " ", text.lower()).split()
    return tuple(sorted(words))


def _concept(data: Any, where: str, path: str) -> CodedConcept:
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in ("value", "scheme")):
        raise InputError(f"{where}: a coded concept needs string 'value', 'scheme' and 'meaning'", path)
    if not isinstance(data.get("meaning"), str) or not data["meaning"]:
        raise InputError(f"{where}: a coded concept needs a 'meaning'", path)
    return CodedConcept(data["value"], data["scheme"], data["meaning"])


def _color(data: Any, where: str, path: str) -> tuple[int, int, int]:
    if (
        not isinstance(data, list)
        or len(data) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in data)
    ):
        raise InputError(f"{where}: 'color' must be three integers 0-255", path)
    return (data[0], data[1], data[2])


def parse_terminology(data: Any, path: str = PACKAGE_RESOURCE) -> list[TerminologyEntry]:
    """Entries of a terminology document (the JSON structure of ``terminology.json``), validated."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), list):
        raise InputError(f"not a terminology file (expected a JSON object with format '{FORMAT}' and 'entries')", path)
    entries: list[TerminologyEntry] = []
    seen: dict[tuple[str, ...], str] = {}
    for n, item in enumerate(data["entries"]):
        where = f"entry {n}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise InputError(f"{where} has no name", path)
        where = f"entry {n} ({item['name']})"
        synonyms = item.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(s, str) and s.strip() for s in synonyms):
            raise InputError(f"{where}: 'synonyms' must be a list of names", path)
        entry = TerminologyEntry(
            name=item["name"],
            category=_concept(item.get("category"), where, path),
            type=_concept(item.get("type"), where, path),
            color=_color(item.get("color"), where, path),
            group=str(item.get("group", "")),
            type_modifier=_concept(item["type_modifier"], where, path) if item.get("type_modifier") else None,
            anatomic_region=_concept(item["anatomic_region"], where, path) if item.get("anatomic_region") else None,
            synonyms=tuple(synonyms),
        )
        for name in entry.names:
            key = normalized_name(name)
            if key in seen:
                raise InputError(f"{where}: the name '{name}' is already used by '{seen[key]}'", path)
            seen[key] = entry.name
        entries.append(entry)
    return entries


@functools.lru_cache(maxsize=8)
def _load(path: str | None) -> tuple[TerminologyEntry, ...]:
    if path is None:
        resource = resources.files("radlabel") / "resources" / PACKAGE_RESOURCE
        where = str(resource)
        try:
            text = resource.read_text(encoding="utf-8")
        except OSError as exc:  # a broken installation, not a user error; still say where it looked
            raise InputError(f"the built-in terminology list is missing ({exc})", where) from None
    else:
        where = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the terminology file ({exc.strerror or exc})", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"the terminology file is not valid JSON ({exc})", where) from None
    return tuple(parse_terminology(data, where))


def load_terminology(path: str | Path | None = None) -> list[TerminologyEntry]:
    """The built-in terminology list, or the one in ``path`` (same JSON format), in file order."""
    return list(_load(str(path) if path is not None else None))


def _code_key(text: str) -> tuple[str | None, str] | None:
    """``"SCT:10200004"``, ``"SCT^10200004"`` or ``"10200004"`` -> (scheme or None, value); else None."""
    match = re.fullmatch(r"\s*(?:([A-Za-z][A-Za-z0-9_.-]*)\s*[:^]\s*)?([A-Za-z]?[0-9]+)\s*", text)
    if match is None or (match.group(1) is None and not match.group(2).isdigit()):
        return None
    return (match.group(1).upper() if match.group(1) else None, match.group(2))


def find(name_or_code: str, entries: list[TerminologyEntry] | None = None) -> TerminologyEntry | None:
    """The entry a name, synonym or type code names; ``None`` when there is none.

    Names match ignoring case, punctuation and word order (``"kidney_right"`` finds "Right kidney").
    A code (``"10200004"``, ``"SCT:10200004"``, ``"NCIt:C113842"``) finds the entry with that *type* code,
    preferring the plain one (no laterality, no region) when several share it.
    """
    pool = entries if entries is not None else load_terminology()
    key = normalized_name(name_or_code)
    if key:
        for entry in pool:
            if any(normalized_name(name) == key for name in entry.names):
                return entry
    code = _code_key(name_or_code)
    if code is None:
        return None
    scheme, value = code
    matches = [
        e
        for e in pool
        if e.type.value.upper() == value.upper() and (scheme is None or e.type.scheme.upper() == scheme.upper())
    ]
    matches.sort(key=lambda e: (e.type_modifier is not None) + (e.anatomic_region is not None))
    return matches[0] if matches else None


__all__ = ["TerminologyEntry", "find", "load_terminology", "normalized_name", "parse_terminology"]
