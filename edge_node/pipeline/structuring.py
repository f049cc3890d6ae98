"""Structured facts from the notes a sync run loads (issue 6, "Into the CDM").

Every note that enters the CDM in this run (new, or its scrubbed text changed) and
is a pathology report, a PET-CT report or a discharge summary goes through
`edge_node.structure.pipeline.extract` AS STORED: the scrubbed `note.note_text`, so
evidence offsets index the stored text, snippets carry no identifiers and dates in
them are shifted like the rest of the CDM. What comes out stays in the analysis
database:

- `note_nlp`: one row per non-null field value (one per item of a list field, one
  per PET-CT lesion), with the evidence text, its offsets ("start-end" into
  note_text), a snippet around it, the extracting component and its version,
  `term_exists` N for findings the value says are absent, the field and value in
  `term_modifiers`, the note's own source document as provenance and a confidence.
- `measurement` (type concept NLP): pathology cancer modifiers (pT, pN, pM, tumour
  size, differentiation, EGFR, ALK, PD-L1 TPS) linked to the person's matching
  cancer diagnosis through `measurement_event_id` /
  `meas_event_field_concept_id`; PET-CT lesions as SUVmax and size measurements
  whose `value_source_value` names the lesion's site.

Keys derive from the note and the field, so a note structured twice is written
once; a note whose text changed has its earlier facts replaced. A note whose
structuring fails keeps its note row (it was scrubbed and loaded); the failure is
logged and counted in the run summary (`structuring`), and the batch goes on.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from edge_node.pipeline.dbutil import select_in, where_in
from edge_node.pipeline.loader import CdmWriter, cdm_table
from edge_node.pipeline.notes import note_lang
from edge_node.pipeline.workers import ExtractFailed, ExtractJob, TextWorkers
from shared_cdm.models import CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID

if TYPE_CHECKING:
    from edge_node.pipeline.context import RunContext
    from edge_node.pipeline.events import Linked
    from edge_node.structure.core import Extraction

log = logging.getLogger(__name__)

NLP = 32858  # OMOP type concept "NLP": a fact read from text by a program
# Used while `Extraction` carries no score of its own: a value the text states,
# and a value in a clause the text hedges ("考虑", "suspicious for").
DEFAULT_CONFIDENCE = 0.9
UNCERTAIN_CONFIDENCE = 0.6
SNIPPET_CHARS = 250
MAX_FAILURES_LISTED = 20

# Pathology fields that are cancer modifiers: field -> (measurement code, unit)
MODIFIERS: Mapping[str, tuple[str, str | None]] = {
    "pT": ("pT", None),
    "pN": ("pN", None),
    "pM": ("pM", None),
    "tumor_size_cm": ("tumor_size", "cm"),
    "differentiation": ("differentiation", None),
    "egfr": ("EGFR", None),
    "alk": ("ALK", None),
    "pdl1_tps_percent": ("PD-L1_TPS", "%"),
}
# Values that say the finding is absent: their note_nlp row has term_exists N.
ABSENT: Mapping[str, frozenset[Any]] = {
    "margin": frozenset({"negative"}),
    "visceral_pleural_invasion": frozenset({False}),
    "lymphovascular_invasion": frozenset({False}),
    "egfr": frozenset({"wild_type"}),
    "alk": frozenset({"negative"}),
}
LESION_MEASURES = (("suvmax", "SUVmax", None), ("size_cm", "lesion_size", "cm"))
_LOBE_ICD10 = {"upper": "C34.1", "middle": "C34.2", "lower": "C34.3"}
_SITE_ICD10 = {
    "right_upper_lobe": "C34.1",
    "left_upper_lobe": "C34.1",
    "right_middle_lobe": "C34.2",
    "right_lower_lobe": "C34.3",
    "left_lower_lobe": "C34.3",
}
_SECONDARY = re.compile(r"C7[789]")

# How a note's kind is told: words of its heading (the first lines), else the
# source table's name. The earliest heading word wins ("出院记录 ... PET-CT示").
KIND_WORDS: Mapping[str, tuple[str, ...]] = {
    "pathology": (
        "病理诊断报告",
        "病理报告",
        "病理诊断",
        "病理号",
        "pathology report",
        "surgical pathology",
        "histopathology",
    ),
    "petct": ("pet-ct", "pet/ct", "petct", "pet ct", "18f-fdg", "正电子"),
    "discharge": ("出院记录", "出院小结", "出院诊断", "discharge summary", "discharge diagnosis"),
}
TABLE_WORDS: Mapping[str, tuple[str, ...]] = {
    "pathology": ("pathology", "patho", "blbg", "病理"),
    "petct": ("petct", "pet_ct", "pet-ct", "pet"),
    "discharge": ("discharge", "cyxj", "出院"),
}
HEADING_CHARS = 400


@dataclass
class Tally:
    """What structuring did in one run (the `structuring` part of the run summary)."""

    notes: Counter[str] = field(default_factory=Counter)  # kind -> notes structured
    not_structured: Counter[str] = field(default_factory=Counter)  # reason -> notes
    note_nlp: int = 0
    modifiers: int = 0
    unlinked_modifiers: int = 0  # no matching cancer diagnosis for the note
    lesion_measurements: int = 0
    no_evidence: int = 0  # non-null values the extractor gave no evidence for
    extraction_errors: int = 0  # messages in Extraction.errors
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "notes": dict(self.notes),
            "not_structured": dict(self.not_structured),
            "failed": len(self.failed),
            "failures": self.failed[:MAX_FAILURES_LISTED],
            "note_nlp": self.note_nlp,
            "modifiers": self.modifiers,
            "unlinked_modifiers": self.unlinked_modifiers,
            "lesion_measurements": self.lesion_measurements,
            "no_evidence": self.no_evidence,
            "extraction_errors": self.extraction_errors,
        }


def tally(ctx: RunContext) -> Tally:
    """The run's tally (`take_tally` ends it)."""
    if ctx.structuring is None:
        ctx.structuring = Tally()
    found: Tally = ctx.structuring
    return found


def take_tally(ctx: RunContext) -> dict[str, Any]:
    found, ctx.structuring = ctx.structuring, None
    return (found or Tally()).as_dict()


@dataclass(frozen=True)
class NoteIn:
    """A note as stored, with what its facts need."""

    note_id: int
    person_id: int
    note_date: date
    visit_id: int | None
    text: str
    lang: str
    kind: str
    src_system: str
    src_table: str
    src_row: str


@dataclass(frozen=True)
class Diagnosis:
    condition_occurrence_id: int
    icd10: str
    start: date


@dataclass
class Facts:
    note_nlp: list[dict[str, Any]] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    unlinked: int = 0
    no_evidence: int = 0


# ------------------------------------------------------------------ choosing notes


def note_kind(title: str | None, text: str) -> str | None:
    """pathology, petct or discharge from the note's heading, else its source table."""
    head = text[:HEADING_CHARS].lower()
    best: tuple[int, str] | None = None
    for kind, words in KIND_WORDS.items():
        for word in words:
            at = head.find(word)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, kind)
    if best is not None:
        return best[1]
    name = (title or "").lower()
    for kind, words in TABLE_WORDS.items():
        if any(w in name for w in words):
            return kind
    return None


def notes_to_structure(writer: CdmWriter, rows: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """The batch's notes that are not in the CDM yet, or whose stored text will
    change: called before the batch is written. Notes already stored with the
    same text were structured when they were loaded."""
    note = cdm_table("note")
    stored: dict[int, str] = {}
    for cond in where_in(writer.conn, note.c.note_id, sorted(rows)):
        for nid, text in writer.conn.execute(
            sa.select(note.c.note_id, note.c.note_text).where(cond)
        ):
            stored[nid] = text
    return [nid for nid, row in rows.items() if stored.get(nid) != row.get("note_text")]


def structure_notes(
    ctx: RunContext,
    writer: CdmWriter,
    note_ids: Sequence[int],
    rows: Mapping[int, Mapping[str, Any]],
    linked: Iterable[Linked],
) -> None:
    """Structure the notes `note_ids` (rows just written) and write their facts."""
    if not note_ids:
        return
    run = tally(ctx)
    by_id = {ctx.row_id(i.record.source, i.record.table, i.record.key): i for i in linked}
    notes: list[NoteIn] = []
    for nid in note_ids:
        row, item = rows[nid], by_id.get(nid)
        text = row.get("note_text") or ""
        if item is None:
            continue
        if not text.strip():
            run.not_structured["empty"] += 1
            continue
        kind = note_kind(row.get("note_title"), text)
        if kind is None:
            run.not_structured["other_kind"] += 1
            continue
        r = item.record
        notes.append(
            NoteIn(
                note_id=nid,
                person_id=row["person_id"],
                note_date=row["note_date"],
                visit_id=row.get("visit_occurrence_id"),
                text=text,
                lang=note_lang(r.fields.get("lang")) or _detect(text),
                kind=kind,
                src_system=r.source,
                src_table=r.table,
                src_row=ctx.row_pseudonym(r.source, r.table, r.key),
            )
        )
    if not notes:
        return
    # Extracted in the run's worker processes while the database is asked below.
    pending = _start_extraction(ctx, notes)
    _forget(writer, notes)
    diagnoses = _diagnoses(ctx, writer, {n.person_id for n in notes})
    ids = ctx.deid.pseudonymizer.surrogate_id
    nlp_rows: list[dict[str, Any]] = []
    measurements: list[dict[str, Any]] = []
    today = datetime.now(UTC).date()
    for note, ex in zip(notes, pending(), strict=True):
        try:
            if isinstance(ex, ExtractFailed):
                raise _ExtractionError(ex.error, ex.message)
            facts = note_facts(
                note,
                ex,
                diagnoses.get(note.person_id, []),
                ids,
                concept=ctx.concept,
                canonical_tnm=lambda axis, v: _tnm(ctx, axis, v),
                nlp_date=today,
            )
        except Exception as exc:  # one note's failure must not stop the batch
            name, message = (
                (exc.error, exc.message)
                if isinstance(exc, _ExtractionError)
                else (type(exc).__name__, str(exc))
            )
            log.warning("structuring note %s failed: %s", note.src_row, name)
            run.failed.append(
                {
                    "src_system": note.src_system,
                    "src_table": note.src_table,
                    "src_row": note.src_row,
                    "kind": note.kind,
                    "error": f"{name}: {message}"[:200],
                }
            )
            continue
        run.notes[note.kind] += 1
        run.extraction_errors += len(ex.errors)
        run.note_nlp += len(facts.note_nlp)
        run.unlinked_modifiers += facts.unlinked
        run.no_evidence += facts.no_evidence
        for m in facts.measurements:
            if m["measurement_source_value"] in ("SUVmax", "lesion_size"):
                run.lesion_measurements += 1
            else:
                run.modifiers += 1
        nlp_rows += facts.note_nlp
        measurements += facts.measurements
    writer.upsert("note_nlp", nlp_rows)
    writer.upsert("measurement", measurements)


def _detect(text: str) -> str:
    from edge_node.structure.text import detect_lang

    return detect_lang(text)


class _ExtractionError(Exception):
    """An extraction that raised (maybe in a worker process): its type name and message."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def _start_extraction(
    ctx: RunContext, notes: Sequence[NoteIn]
) -> Callable[[], list[Extraction | ExtractFailed]]:
    """Starts extracting the notes' fields, in the run's worker processes when the
    batch is worth it; the returned function waits for them, in order."""
    workers = cast("TextWorkers | None", ctx.text_workers)
    if workers is not None and workers.pooled(len(notes)):
        return workers.extract([ExtractJob(n.kind, n.text, n.lang) for n in notes])
    return lambda: [_extract_here(n) for n in notes]


def _extract_here(note: NoteIn) -> Extraction | ExtractFailed:
    try:
        return _extract(note)
    except Exception as exc:  # recorded by the caller, as a worker's failure is
        return ExtractFailed(type(exc).__name__, str(exc))


def _extract(note: NoteIn) -> Extraction:
    from edge_node.structure.pipeline import extract

    return extract(note.kind, note.text, note.lang)


def _tnm(ctx: RunContext, axis: str, value: str) -> str:
    try:
        entry = ctx.vocab.tnm_value(axis, value)
    except Exception:  # a value the vocabulary cannot parse is kept as written
        return value
    return entry.value if entry is not None else value


def _forget(writer: CdmWriter, notes: Sequence[NoteIn]) -> None:
    """Earlier facts of notes whose text changed (a new note has none: cheap)."""
    nlp = cdm_table("note_nlp")
    stale = {n.note_id for n in notes}
    present = set()
    for cond in where_in(writer.conn, nlp.c.note_id, sorted(stale)):
        present |= {nid for (nid,) in writer.conn.execute(sa.select(nlp.c.note_id).where(cond))}
    if not present:
        return
    writer.delete_in("note_nlp", "note_id", present)
    m = cdm_table("measurement")
    for n in notes:
        if n.note_id in present:
            writer.conn.execute(
                sa.delete(m).where(
                    m.c.measurement_type_concept_id == NLP,
                    m.c.person_id == n.person_id,
                    m.c.src_system == n.src_system,
                    m.c.src_table == n.src_table,
                    m.c.src_row == n.src_row,
                )
            )


def _diagnoses(
    ctx: RunContext, writer: CdmWriter, person_ids: set[int]
) -> dict[int, list[Diagnosis]]:
    """Each person's cancer diagnoses in the CDM (the site's cancer ICD-10 ranges)."""
    t = cdm_table("condition_occurrence")
    out: dict[int, list[Diagnosis]] = {}
    for row in select_in(writer.conn, t, "person_id", person_ids):
        code = row.condition_source_value
        if code and ctx.vocab.icd10_in_ranges(code, ctx.icd10_ranges or ("C00-D48",)):
            start = row.condition_start_date
            if isinstance(start, datetime):
                start = start.date()
            out.setdefault(row.person_id, []).append(
                Diagnosis(row.condition_occurrence_id, code, start)
            )
    return out


# ------------------------------------------------------------------ facts of one note


def matching_diagnosis(
    diagnoses: Sequence[Diagnosis], expected: str | None, when: date
) -> Diagnosis | None:
    """The diagnosis a note's findings modify. `expected` is the ICD-10 code the
    findings imply (C34.1 for an upper-lobe tumour) or None: then any primary
    cancer. A code in another category than `expected` never matches; among the
    rest: same subcategory first, a primary before a secondary, nearest in time."""
    best: tuple[tuple[int, int, int, int], Diagnosis] | None = None
    for d in diagnoses:
        code = d.icd10.upper()
        if expected is not None and code[:3] != expected[:3]:
            continue
        exact = 0 if expected is not None and code.startswith(expected) else 1
        secondary = 1 if _SECONDARY.match(code) or not code.startswith("C") else 0
        key = (exact, secondary, abs((d.start - when).days), d.condition_occurrence_id)
        if best is None or key < best[0]:
            best = (key, d)
    return best[1] if best else None


def expected_icd10(kind: str, fields: Mapping[str, Any]) -> str | None:
    if kind == "pathology":
        lobe = fields.get("lobe")
        if lobe in _LOBE_ICD10:
            return _LOBE_ICD10[str(lobe)]
        return "C34" if fields.get("laterality") in ("left", "right") else None
    if kind == "petct":
        lesions = [x for x in fields.get("lesions") or [] if isinstance(x, dict)]
        primary = [x for x in lesions if x.get("role") == "primary"] or lesions
        for lesion in primary:
            if lesion.get("site") in _SITE_ICD10:
                return _SITE_ICD10[str(lesion["site"])]
    return None


def _spans(ex: Extraction, name: str) -> list[tuple[int, int]]:
    return sorted((int(e["start"]), int(e["end"])) for e in ex.evidence if e.get("field") == name)


def _item_span(spans: list[tuple[int, int]], index: int, count: int) -> tuple[int, int]:
    """The evidence of item `index` of a list field: the index-th span when there
    is one span per item; otherwise the list's whole extent."""
    if len(spans) == count:
        return spans[index]
    return spans[0][0], max(end for _, end in spans)


def snippet(text: str, start: int, end: int, width: int = SNIPPET_CHARS) -> str:
    """At most `width` characters of `text` around [start, end), the evidence first."""
    if end - start >= width:
        return text[start : start + width]
    room = width - (end - start)
    lo = max(0, start - room // 2)
    hi = min(len(text), end + (room - (start - lo)))
    lo = max(0, min(lo, hi - width))
    return text[lo:hi]


def _confidence(ex: Extraction, name: str, uncertain: bool) -> float:
    """The extractor's own score when it gives one, else the documented defaults."""
    given = getattr(ex, "confidence", None)
    if isinstance(given, Mapping):
        given = given.get(name)
    if isinstance(given, int | float) and not isinstance(given, bool) and 0 <= given <= 1:
        return float(given)
    return UNCERTAIN_CONFIDENCE if uncertain else DEFAULT_CONFIDENCE


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace(";", ",")


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def note_facts(
    note: NoteIn,
    ex: Extraction,
    diagnoses: Sequence[Diagnosis],
    ids: Callable[[str, str], int],
    *,
    concept: Callable[[str, str | None], int],
    canonical_tnm: Callable[[str, str], str],
    nlp_date: date,
) -> Facts:
    """The note_nlp and measurement rows of one structured note."""
    from edge_node.structure import context
    from edge_node.structure.pipeline import VERSION
    from edge_node.structure.text import normalize

    facts = Facts()
    text, norm = note.text, normalize(note.text)
    system = f"oncofed-structure {note.kind} {VERSION} onco_{note.kind}_fields"
    provenance = {
        "src_system": note.src_system,
        "src_table": note.src_table,
        "src_row": note.src_row,
    }
    target = matching_diagnosis(diagnoses, expected_icd10(note.kind, ex.fields), note.note_date)

    def nlp_row(
        name: str, index: int | None, value: Any, span: tuple[int, int], extra: str = ""
    ) -> dict[str, Any]:
        start, end = span
        a = context.assertion(norm, start, end, note.lang)
        absent = value in ABSENT.get(name, ())
        modifiers = f"field={name};value={_fmt(value)}"
        if index is not None:
            modifiers += f";index={index}"
        if a.uncertain:
            modifiers += ";uncertain=true"
        key = f"{note.note_id}/{name}" + ("" if index is None else f"/{index}")
        return {
            "note_nlp_id": ids("note_nlp", key),
            "note_id": note.note_id,
            "snippet": snippet(text, start, end),
            "offset": f"{start}-{end}",
            "lexical_variant": text[start:end][:250],
            "note_nlp_concept_id": _value_concept(concept, name, value),
            "nlp_system": system,
            "nlp_date": nlp_date,
            "term_exists": "N" if absent else "Y",
            "term_temporal": "historical" if a.historical else None,
            "term_modifiers": (modifiers + extra)[:2000],
            **provenance,
            "confidence": _confidence(ex, name, a.uncertain),
        }

    def measurement(
        key: str, code: str, unit: str | None, value: Any, conf: float, linked: bool
    ) -> dict[str, Any]:
        number = _number(value)
        written = None if number is not None else _fmt(value)
        return {
            "measurement_id": ids("nlp_measurement", f"{note.note_id}/{key}"),
            "person_id": note.person_id,
            "measurement_concept_id": concept("OncoFed", code),
            "measurement_date": note.note_date,
            "measurement_type_concept_id": NLP,
            "value_as_number": number,
            "value_source_value": written[:50] if written else None,
            "unit_concept_id": 0,
            "unit_source_value": unit,
            "visit_occurrence_id": note.visit_id,
            "measurement_source_value": code,
            "measurement_event_id": target.condition_occurrence_id if linked and target else None,
            "meas_event_field_concept_id": CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID
            if linked and target
            else None,
            **provenance,
            "confidence": conf,
        }

    for name, value in ex.fields.items():
        if value is None or value == []:
            continue
        spans = _spans(ex, name)
        if not spans:
            facts.no_evidence += 1
            continue
        if name == "lesions" and isinstance(value, list):
            _lesions(facts, text, value, spans, nlp_row, measurement, target)
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                shown = item.get("name") if isinstance(item, dict) else item
                extra = "".join(
                    f";{k}={_fmt(v)}"
                    for k, v in (item.items() if isinstance(item, dict) else ())
                    if k != "name" and v is not None
                )
                facts.note_nlp.append(
                    nlp_row(name, i, shown, _item_span(spans, i, len(value)), extra)
                )
            continue
        row = nlp_row(name, None, value, (spans[0][0], spans[0][1]))
        facts.note_nlp.append(row)
        if note.kind == "pathology" and name in MODIFIERS:
            code, unit = MODIFIERS[name]
            measured = value
            if name in ("pT", "pN", "pM") and isinstance(value, str):
                measured = canonical_tnm(name[1], value)
            facts.measurements.append(
                measurement(name, code, unit, measured, row["confidence"], True)
            )
            if target is None:
                facts.unlinked += 1
    return facts


def lesion_span(
    text: str, spans: list[tuple[int, int]], lesion: Mapping[str, Any], index: int, count: int
) -> tuple[int, int]:
    """The evidence of one PET-CT lesion. The extractor cites every mention of every
    lesion under one field, so the lesion's span is the first one that writes its
    SUVmax (else its size); failing that, `_item_span`."""
    for attr in ("suvmax", "size_cm"):
        number = _number(lesion.get(attr))
        if number is None:
            continue
        written = re.compile(rf"(?<![\d.]){re.escape(_fmt(number))}(?:\.0+)?(?![\d])")
        for start, end in spans:
            if written.search(text, start, end):
                return start, end
    return _item_span(spans, index, count)


def _lesions(
    facts: Facts,
    text: str,
    lesions: list[Any],
    spans: list[tuple[int, int]],
    nlp_row: Callable[..., dict[str, Any]],
    measurement: Callable[..., dict[str, Any]],
    target: Diagnosis | None,
) -> None:
    """One note_nlp row per lesion (its site as value; size, SUVmax, tendency and
    role as modifiers) and its SUVmax and size as measurements of its site. A
    lesion the report judges benign modifies no diagnosis."""
    for i, lesion in enumerate(lesions):
        if not isinstance(lesion, dict):
            continue
        site = lesion.get("site") or "other"
        extra = "".join(
            f";{k}={_fmt(lesion.get(k))}"
            for k in ("size_cm", "suvmax", "tendency", "role")
            if lesion.get(k) is not None
        )
        row = nlp_row("lesions", i, site, lesion_span(text, spans, lesion, i, len(lesions)), extra)
        facts.note_nlp.append(row)
        linked = lesion.get("tendency") != "benign"
        for attr, code, unit in LESION_MEASURES:
            number = _number(lesion.get(attr))
            if number is None:
                continue
            m = measurement(f"lesions/{i}/{attr}", code, unit, number, row["confidence"], linked)
            m["value_source_value"] = str(site)[:50]  # the site the value was measured at
            facts.measurements.append(m)
            if linked and target is None:
                facts.unlinked += 1


def _value_concept(concept: Callable[[str, str | None], int], name: str, value: Any) -> int:
    """The vocabulary's concept for a coded value (ICD-O-3 morphology, ICD-10), else 0."""
    if name == "icdo3_morphology" and isinstance(value, str):
        return concept("ICDO3", value)
    if name == "diagnosis_icd10" and isinstance(value, str):
        return concept("ICD10", value)
    return 0
