"""Shared checks of the hand-written de-identification sets (`devset/independent*`).

Spans are re-derived from the marked-up sources with a parser of the tests' own,
so a fault in the builder's offset arithmetic shows up as a mismatch.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

# The PHI types of contracts/deid.md, written out again on purpose.
CONTRACT_TYPES = {
    "NAME",
    "ID_NUMBER",
    "MRN",
    "PHONE",
    "EMAIL",
    "ADDRESS",
    "DATE",
    "AGE",
    "URL",
    "IP",
    "DEVICE_ID",
    "ORGANIZATION",
    "OTHER",
}
MARK = re.compile(r"⟦([A-Z_]+):([^⟦⟧\n]+)⟧")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def marked_notes(source_dir: Path) -> dict[str, str]:
    """Note id -> marked text, split on the header lines."""
    notes: dict[str, str] = {}
    for path in sorted(source_dir.glob("*.txt")):
        current: str | None = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("### "):
                current = line[4:].split(" | ")[0]
                notes[current] = ""
            elif current is not None:
                notes[current] += line.rstrip() + "\n"
    return {k: v.strip("\n") + "\n" for k, v in notes.items()}


def id_check_ok(number: str) -> bool:
    total = sum(int(d) * w for d, w in zip(number[:17], ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17]


def assert_spans_are_the_marked_text(records: list[dict[str, Any]], source_dir: Path) -> None:
    sources = marked_notes(source_dir)
    assert set(sources) == {r["id"] for r in records}
    for rec in records:
        marked = sources[rec["id"]]
        text = rec["text"]
        assert "⟦" not in text and "⟧" not in text, rec["id"]
        assert text == MARK.sub(lambda m: m[2], marked), rec["id"]
        expected = [(m[1], m[2]) for m in MARK.finditer(marked)]
        spans = [(p["start"], p["end"], p["type"]) for p in rec["phi"]]
        spans += [(k["start"], k["end"], "KEEP") for k in rec["keep"]]
        found = [(kind, text[s:e]) for s, e, kind in sorted(spans)]
        assert found == expected, rec["id"]
        assert all(k["term"] == text[k["start"] : k["end"]] for k in rec["keep"])


def assert_spans_in_bounds_and_disjoint(records: list[dict[str, Any]]) -> None:
    for rec in records:
        spans = sorted((p["start"], p["end"]) for p in rec["phi"] + rec["keep"])
        for (s1, e1), (s2, _) in itertools.pairwise(spans):
            assert e1 <= s2, (rec["id"], s1, e1)
        for s, e in spans:
            assert 0 <= s < e <= len(rec["text"])
            assert rec["text"][s:e] == rec["text"][s:e].strip()
