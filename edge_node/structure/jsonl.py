"""`oncofed-edge structure` over a JSONL file: one record in, one record out.

Every input line gives one output line whatever is wrong with it (bad JSON, an
unknown kind, no text, an internal error): the problem goes into that record's
`errors` and the batch goes on. A record whose kind is known always carries every
field of its kind, null where nothing was extracted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_node.jsonl_io import decode_line, jsonl_lines
from edge_node.structure.core import KINDS
from edge_node.structure.text import detect_lang

MAX_REPORT_CHARS = 1_000_000


@dataclass
class RunStats:
    records: int = 0
    with_errors: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def _fields_of(kind: str | None) -> dict[str, Any]:
    if kind not in KINDS:
        return {}
    from edge_node.structure.pipeline import kind_module

    return dict.fromkeys(kind_module(kind).FIELDS)


def process_record(raw: bytes, lineno: int) -> dict[str, Any]:
    """The output record for one input line."""
    errors: list[str] = []
    out: dict[str, Any] = {
        "id": f"line:{lineno}",
        "kind": None,
        "fields": {},
        "evidence": [],
        "confidence": {},  # extends the contract: a calibrated 0..1 per non-null field
    }
    line, note = decode_line(raw)
    if note:
        errors.append(note)
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        return out | {"errors": [*errors, f"invalid JSON: {msg}"]}
    if not isinstance(obj, dict):
        return out | {"errors": [*errors, "record is not a JSON object"]}
    rid = obj.get("id")
    if isinstance(rid, str | int) and not isinstance(rid, bool):
        out["id"] = str(rid)
    else:
        errors.append("missing or invalid 'id'; using the line number")
    kind = obj.get("kind")
    if kind not in KINDS:
        return out | {"errors": [*errors, f"unknown kind {kind!r}; expected one of {list(KINDS)}"]}
    out["kind"] = kind
    out["fields"] = _fields_of(kind)
    text = obj.get("text")
    if not isinstance(text, str):
        return out | {"errors": [*errors, "missing or non-string 'text'"]}
    if not text.strip():
        return out | {"errors": [*errors, "empty report"]}
    if len(text) > MAX_REPORT_CHARS:
        return out | {
            "errors": [
                *errors,
                f"report too large ({len(text)} characters, limit {MAX_REPORT_CHARS})",
            ]
        }
    lang = obj.get("lang")
    if lang not in ("zh", "en", None):
        errors.append(f"unknown lang {lang!r}; detected from the text")
        lang = None
    if lang is None:
        lang = detect_lang(text)
    try:
        from edge_node.structure.pipeline import extract

        ex = extract(kind, text, lang)
    except Exception as exc:  # one report's failure must not stop the batch
        return out | {"errors": [*errors, f"internal error: {type(exc).__name__}: {exc}"[:300]]}
    out["fields"] = out["fields"] | ex.fields
    out["evidence"] = ex.evidence
    return out | {"errors": [*errors, *ex.errors], "confidence": ex.confidence}


def run(in_path: Path, out_path: Path) -> RunStats:
    stats = RunStats()
    with in_path.open("rb") as fin, out_path.open("w", encoding="utf-8") as fout:
        for lineno, raw in jsonl_lines(fin):
            rec = process_record(raw, lineno)
            fout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            stats.records += 1
            stats.with_errors += bool(rec["errors"])
            if rec["kind"]:
                stats.by_kind[rec["kind"]] = stats.by_kind.get(rec["kind"], 0) + 1
    return stats
