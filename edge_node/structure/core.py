"""What every kind's extractor returns: contract fields plus evidence offsets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("pathology", "petct", "discharge")


@dataclass
class Extraction:
    """Fields for one report. `fields` holds every contract field of the kind (null
    where the text does not state it); `evidence` holds character offsets into the
    input text for each non-null field (several spans per field are allowed)."""

    fields: dict[str, Any]
    evidence: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # 0..1 per non-null field: set by a rule that knows better (an uncertain mention),
    # otherwise filled from the calibration table (`calibration.py`)
    confidence: dict[str, float] = field(default_factory=dict)
    _cited: set[tuple[str, int, int]] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def empty(cls, names: tuple[str, ...]) -> Extraction:
        return cls(fields=dict.fromkeys(names))

    def put(
        self, name: str, value: Any, start: int, end: int, confidence: float | None = None
    ) -> None:
        """Set a field (first statement wins: call `replace` to overrule) and record
        where the text says it."""
        if name not in self.fields:
            raise KeyError(f"unknown field {name!r}")
        if self.fields[name] is None:
            self.fields[name] = value
            if confidence is not None:
                self.confidence[name] = confidence
        self.cite(name, start, end)

    def replace(
        self, name: str, value: Any, start: int, end: int, confidence: float | None = None
    ) -> None:
        self.fields[name] = value
        self.confidence.pop(name, None)
        if confidence is not None:
            self.confidence[name] = confidence
        self.evidence = [e for e in self.evidence if e["field"] != name]
        self._cited = {k for k in self._cited if k[0] != name}
        self.cite(name, start, end)

    def cite(self, name: str, start: int, end: int) -> None:
        if not 0 <= start < end:
            raise ValueError(f"bad evidence span {start}:{end} for {name}")
        key = (name, start, end)
        if key not in self._cited:  # a set: long reports cite thousands of spans
            self._cited.add(key)
            self.evidence.append({"field": name, "start": start, "end": end})

    def finish(self, text_length: int) -> None:
        """Drop evidence for fields left null and check every offset is inside the text."""
        self.evidence = [
            e
            for e in self.evidence
            if self.fields.get(e["field"]) not in (None, []) and e["end"] <= text_length
        ]
        self.evidence.sort(key=lambda e: (e["start"], e["end"], e["field"]))
        self.confidence = {
            k: v for k, v in self.confidence.items() if self.fields.get(k) not in (None, [])
        }


@dataclass
class Mention:
    """One thing an entity rule found: `label` ("histology", "suv", "lesion_site"...),
    character offsets into the text, a normalised `value`, and (after `onco_context`)
    whether the text negates, doubts or dates it."""

    label: str
    start: int
    end: int
    value: Any = None
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    context: bool = True  # False: the rule already read its own negation ("EGFR 野生型")
    section: str = "body"
