"""The builder of the hand-written de-identification sets (`devset/independent*`).

Each set's package holds marked-up notes in source/ and the built
``<name>.jsonl`` beside them; its build.py names the two and calls this module.

A source file holds notes, each opened by a header line
``### <id> | <lang> | <patient_id> | <kind>`` (lang ``zh``, ``en`` or ``null``).
Identifiers are marked ``⟦TYPE:text⟧`` with TYPE a contract type; clinical
content that must survive is marked ``⟦KEEP:text⟧``. The builder strips the
marks and records character offsets into the stripped text, so no offset is
ever written by hand. Text before the first header is a comment.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The PHI types of contracts/deid.md.
CONTRACT_TYPES = frozenset(
    {
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
)
KEEP = "KEEP"
MARK = re.compile(r"⟦([A-Z_]+):([^⟦⟧\n]+)⟧")
HEADER = re.compile(r"^### (\S+) \| (zh|en|null) \| (\S+) \| (.+)$")
LANGS = {"zh": "zh", "en": "en", "null": None}


class SourceError(ValueError):
    """A source note is malformed; the message names the file and the note."""


@dataclass(frozen=True)
class Note:
    id: str
    lang: str | None
    patient_id: str
    kind: str
    marked: str


def read_notes(path: Path) -> list[Note]:
    notes: list[Note] = []
    head: re.Match[str] | None = None
    body: list[str] = []

    def close() -> None:
        if head is not None:
            text = "\n".join(body).strip("\n") + "\n"
            if not text.strip():
                raise SourceError(f"{path.name}: note {head[1]} is empty")
            notes.append(Note(head[1], LANGS[head[2]], head[3], head[4].strip(), text))

    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("###"):
            close()
            head = HEADER.match(line)
            if head is None:
                raise SourceError(f"{path.name}:{lineno}: bad header {line!r}")
            body = []
        elif head is not None:
            body.append(line.rstrip())
    close()
    return notes


def strip_marks(note: Note) -> dict[str, Any]:
    """The evaluator's record for one note: plain text, `phi` and `keep` spans."""
    out: list[str] = []
    pos = 0
    phi: list[dict[str, Any]] = []
    keep: list[dict[str, Any]] = []
    cursor = 0
    for m in MARK.finditer(note.marked):
        out.append(note.marked[cursor : m.start()])
        pos += m.start() - cursor
        kind, span = m[1], m[2]
        if span != span.strip():
            raise SourceError(f"{note.id}: marked text {span!r} has outer spaces")
        if kind == KEEP:
            keep.append({"start": pos, "end": pos + len(span), "term": span})
        elif kind in CONTRACT_TYPES:
            phi.append({"start": pos, "end": pos + len(span), "type": kind})
        else:
            raise SourceError(f"{note.id}: unknown type {kind!r} in {m[0]!r}")
        out.append(span)
        pos += len(span)
        cursor = m.end()
    out.append(note.marked[cursor:])
    text = "".join(out)
    if "⟦" in text or "⟧" in text:
        raise SourceError(f"{note.id}: unbalanced mark near {text[text.find('⟦') :][:40]!r}")
    return {
        "id": note.id,
        "lang": note.lang,
        "patient_id": note.patient_id,
        "text": text,
        "phi": phi,
        "keep": keep,
    }


def build(source_dir: Path) -> list[dict[str, Any]]:
    records = [strip_marks(n) for p in sorted(source_dir.glob("*.txt")) for n in read_notes(p)]
    seen: set[str] = set()
    for rec in records:
        if rec["id"] in seen:
            raise SourceError(f"note id {rec['id']} is used twice")
        seen.add(rec["id"])
    return records


def render(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


@dataclass(frozen=True)
class HandwrittenSet:
    """One set's package: its notes in ``source/``, its built file beside them."""

    package_dir: Path
    output_name: str

    @property
    def source_dir(self) -> Path:
        return self.package_dir / "source"

    @property
    def output(self) -> Path:
        return self.package_dir / self.output_name

    def build(self, source_dir: Path | None = None) -> list[dict[str, Any]]:
        return build(self.source_dir if source_dir is None else source_dir)

    def main(self, argv: list[str]) -> int:
        """Rewrite the set's file; with ``--check``, exit 1 if it is stale instead."""
        output = self.output
        text = render(self.build())
        if "--check" in argv:
            current = output.read_text(encoding="utf-8") if output.is_file() else ""
            if current != text:
                print(f"{output.name} is stale; run without --check to rebuild", file=sys.stderr)
                return 1
            return 0
        output.write_text(text, encoding="utf-8")
        print(f"wrote {text.count(chr(10))} notes to {output}", file=sys.stderr)
        return 0
