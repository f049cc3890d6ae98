"""Score the detector on an annotated JSONL set.

Each record: {"id", "lang", "patient_id", "text", "phi": [{start, end, type}],
"keep": [{start, end, term}]}. Reported:

- entity recall: gold identifier spans whose every non-space character is covered
  by a predicted span (of any type); a span not fully covered is a *leak*;
- character precision: predicted characters that lie inside gold spans;
- clinical terms lost: annotated `keep` terms, and clinical allow-list terms found
  in the text outside gold spans, that a predicted span overlaps.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_node.deid_text.lexicon import lexicon
from edge_node.deid_text.settings import SPLITS

__all__ = ["SPLITS", "Report", "evaluate", "load", "split_path"]

DEVSET_DIR = Path(__file__).with_name("devset")


@dataclass
class Report:
    notes: int = 0
    gold_spans: int = 0
    found_spans: int = 0
    predicted_chars: int = 0
    correct_chars: int = 0
    leaks: list[dict[str, Any]] = field(default_factory=list)
    clinical_terms: int = 0
    clinical_lost: list[dict[str, Any]] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)
    missed_by_type: Counter[str] = field(default_factory=Counter)

    @property
    def recall(self) -> float:
        return self.found_spans / self.gold_spans if self.gold_spans else 1.0

    @property
    def precision(self) -> float:
        return self.correct_chars / self.predicted_chars if self.predicted_chars else 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "notes": self.notes,
            "gold_spans": self.gold_spans,
            "entity_recall": round(self.recall, 4),
            "char_precision": round(self.precision, 4),
            "leaks": len(self.leaks),
            "clinical_terms": self.clinical_terms,
            "clinical_terms_lost": len(self.clinical_lost),
            "recall_by_type": {
                t: round(1 - self.missed_by_type[t] / n, 4) for t, n in sorted(self.by_type.items())
            },
        }


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def split_path(split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if split.startswith("independent"):  # hand-written sets, each built from its sources
        return DEVSET_DIR / split / f"{split}.jsonl"
    return DEVSET_DIR / f"{split}.jsonl"


def evaluate(records: list[dict[str, Any]]) -> Report:
    from edge_node.deid_text.core import detect  # spaCy and jieba: loaded only to score

    rep = Report()
    clinical_re = lexicon().clinical_re
    for rec in records:
        text: str = rec["text"]
        pred = detect(text, rec.get("lang"))
        covered = bytearray(len(text) + 1)
        for s, e, _ in pred:
            covered[s:e] = b"\x01" * (e - s)
        gold = bytearray(len(text) + 1)
        rep.notes += 1
        for g in rec["phi"]:
            s, e = g["start"], g["end"]
            gold[s:e] = b"\x01" * (e - s)
            rep.gold_spans += 1
            rep.by_type[g["type"]] += 1
            if all(covered[i] or text[i].isspace() for i in range(s, e)):
                rep.found_spans += 1
            else:
                rep.missed_by_type[g["type"]] += 1
                rep.leaks.append(
                    {
                        "id": rec["id"],
                        "type": g["type"],
                        "text": text[s:e],
                        "context": text[max(0, s - 30) : e + 30],
                    }
                )
        for s, e, _ in pred:
            rep.predicted_chars += e - s
            rep.correct_chars += sum(gold[s:e])
        terms = {(k["start"], k["end"]) for k in rec.get("keep", [])}
        for m in clinical_re.finditer(text):
            if not any(gold[m.start() : m.end()]):
                terms.add(m.span())
        for s, e in sorted(terms):
            rep.clinical_terms += 1
            if any(covered[s:e]):
                rep.clinical_lost.append({"id": rec["id"], "text": text[s:e]})
    return rep
