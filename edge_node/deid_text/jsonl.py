"""Run de-identification over a JSONL file, one record in, one record out.

Every input line gives one output line, whatever is wrong with it: bad JSON,
undecodable bytes, a missing or empty text, binary content or an internal error
each become a message in that record's `errors`. A record that could not be
processed safely is written with an empty `text` (never the input text), so a
failure can lose a note but never leak one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_node.deid_text.core import Settings, deidentify
from edge_node.jsonl_io import decode_line, jsonl_lines
from edge_node.pipeline.deid import Pseudonymizer

MAX_NOTE_CHARS = 20_000_000
BINARY_SHARE = 0.10


@dataclass
class RunStats:
    records: int = 0
    with_errors: int = 0
    spans: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def _binary_share(text: str) -> float:
    sample = text[:100_000]
    bad = sum(1 for c in sample if (ord(c) < 32 and c not in "\t\n\r\f") or c == "\ufffd")
    return bad / max(1, len(sample))


def _clean_surrogates(text: str) -> tuple[str, bool]:
    """Lone UTF-16 surrogates (from JSON escapes) become U+FFFD: same length, offsets kept."""
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text, False
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text), True


def process_record(
    raw: bytes, lineno: int, pseudonymizer: Pseudonymizer, settings: Settings
) -> dict[str, Any]:
    """The output record for one input line."""
    errors: list[str] = []
    rid = f"line:{lineno}"
    line, note = decode_line(raw)
    if note:
        errors.append(note)
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        return {"id": rid, "text": "", "phi": [], "errors": [*errors, f"invalid JSON: {msg}"]}
    if not isinstance(obj, dict):
        return {
            "id": rid,
            "text": "",
            "phi": [],
            "errors": [*errors, "record is not a JSON object"],
        }
    if isinstance(obj.get("id"), str | int) and not isinstance(obj.get("id"), bool):
        rid = str(obj["id"])
    else:
        errors.append("missing or invalid 'id'; using the line number")
    text = obj.get("text")
    if not isinstance(text, str):
        return {
            "id": rid,
            "text": "",
            "phi": [],
            "errors": [*errors, "missing or non-string 'text'"],
        }
    if not text.strip():
        return {"id": rid, "text": text, "phi": [], "errors": [*errors, "empty note"]}
    if len(text) > MAX_NOTE_CHARS:
        return {
            "id": rid,
            "text": "",
            "phi": [],
            "errors": [
                *errors,
                f"note too large ({len(text)} characters, limit {MAX_NOTE_CHARS}); not processed",
            ],
        }
    text, had_surrogates = _clean_surrogates(text)
    if had_surrogates:
        errors.append("lone UTF-16 surrogates replaced by U+FFFD")
    share = _binary_share(text)
    if share > BINARY_SHARE:
        return {
            "id": rid,
            "text": "",
            "phi": [],
            "errors": [
                *errors,
                f"note looks binary ({share:.0%} control or undecodable characters); not processed",
            ],
        }
    lang = obj.get("lang")
    if lang not in ("zh", "en", None):
        errors.append(f"unknown lang {lang!r}; detected from the text")
        lang = None
    patient = obj.get("patient_id")
    patient_key = (
        f"patient:{patient}" if isinstance(patient, str | int) and str(patient) else f"note:{rid}"
    )
    try:
        result = deidentify(
            text, lang=lang, patient_key=patient_key, pseudonymizer=pseudonymizer, settings=settings
        )
    except Exception as exc:
        return {
            "id": rid,
            "text": "",
            "phi": [],
            "errors": [*errors, f"internal error: {type(exc).__name__}"],
        }
    return {
        "id": rid,
        "text": result.text,
        "phi": [{"start": s, "end": e, "type": t} for s, e, t in result.phi],
        "errors": errors,
    }


def run(in_path: Path, out_path: Path, secret: bytes, settings: Settings) -> RunStats:
    pseudonymizer = Pseudonymizer(secret)
    stats = RunStats()
    with in_path.open("rb") as fin, out_path.open("w", encoding="utf-8") as fout:
        for lineno, raw in jsonl_lines(fin):
            rec = process_record(raw, lineno, pseudonymizer, settings)
            fout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            stats.records += 1
            stats.with_errors += bool(rec["errors"])
            stats.spans += len(rec["phi"])
            for p in rec["phi"]:
                stats.by_type[p["type"]] = stats.by_type.get(p["type"], 0) + 1
    return stats
