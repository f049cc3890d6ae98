"""Event targets (operations, imaging, medications, notes, labs) into the CDM.

Each record is linked to its person (through its patient ID, or its admission's)
and its stay (the admission ID, or the stay whose dates contain the record's
date), then written with a key derived from its source row; lab results are
keyed by the fact itself (person, stay, analyte, time) and merged across
sources (see `merge.py`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from edge_node.pipeline.context import EHR, LAB, OPERATORS, UTF8_ENCODING, RunContext
from edge_node.pipeline.dbutil import select_in, where_in
from edge_node.pipeline.linkage import admissions_t, patients_t, persons_t
from edge_node.pipeline.loader import CdmWriter, cdm_table
from edge_node.pipeline.merge import WORST_RANK, Contribution, Origin, merge
from edge_node.pipeline.notes import SCRUBBED, imaging_reports, scrub_notes
from edge_node.pipeline.persons import _conflict
from edge_node.pipeline.records import MappedRecord, Rejection
from edge_node.pipeline.structuring import notes_to_structure, structure_notes, tally

EVENT_TABLES = {
    "operation": "procedure_occurrence",
    "imaging": "procedure_occurrence",
    "medication": "drug_exposure",
    "note": "note",
    "lab": "measurement",
}
EVENT_DATES = {
    "operation": "operation_date",
    "imaging": "study_date",
    "medication": "start_date",
    "note": "note_date",
    "lab": "result_date",
}
LAB_MERGE_FIELDS = (
    "value_as_number",
    "operator_concept_id",
    "range_low",
    "range_high",
    "value_source_value",
    "unit_source_value",
    "measurement_datetime",
)
# Values written in two units agree only to the precision they were written with.
LAB_TOLERANCE = {"value_as_number": 0.02, "range_low": 0.05, "range_high": 0.05}
LAB_QUIET = ("value_source_value", "measurement_datetime")


@dataclass(slots=True)
class Linked:
    record: MappedRecord
    person_key: str
    person_id: int
    visit_id: int | None
    when: date | datetime


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def link_events(
    ctx: RunContext, conn: sa.Connection, target: str, records: list[MappedRecord]
) -> tuple[list[Linked], list[Rejection], list[MappedRecord]]:
    """(linked records of cancer patients, rejections, skipped records)."""
    date_field = EVENT_DATES[target]
    fields = [r.fields for r in records]
    # The index knows IDs by their link hashes only.
    adm_hash = {a: ctx.ids.admission(a) for a in {f.get("admission_id") for f in fields} if a}
    pid_hash = {p: ctx.ids.patient(p) for p in {f.get("patient_id") for f in fields} if p}
    stays = {
        s.admission_id: s for s in select_in(conn, admissions_t, "admission_id", adm_hash.values())
    }
    pids = set(pid_hash.values()) | {s.patient_id for s in stays.values()}
    # Patients and their persons in one query (a patient without a person is not cancer).
    links: dict[str, str] = {}
    cancer: set[str] = set()
    joined = patients_t.outerjoin(persons_t, persons_t.c.person_key == patients_t.c.person_key)
    query = sa.select(patients_t.c.patient_id, patients_t.c.person_key, persons_t.c.is_cancer)
    for cond in where_in(conn, patients_t.c.patient_id, sorted(pids)):
        for pid, person_key, is_cancer in conn.execute(query.select_from(joined).where(cond)):
            links[pid] = person_key
            if is_cancer:
                cancer.add(person_key)
    unplaced = {
        pid_hash[f["patient_id"]]
        for f in fields
        if f.get("patient_id") and adm_hash.get(f.get("admission_id") or "") not in stays
    }
    by_patient: dict[str, list[Any]] = defaultdict(list)
    for s in select_in(conn, admissions_t, "patient_id", unplaced):
        by_patient[s.patient_id].append(s)
    for found in by_patient.values():  # sorted once, not per record
        found.sort(key=lambda s: s.admit_date)

    # Surrogate keys of this batch's persons and stays, without the shared cache's bookkeeping.
    person_ids: dict[str, int] = {}
    visit_ids: dict[str, int] = {}
    linked: list[Linked] = []
    rejected: list[Rejection] = []
    skipped: list[MappedRecord] = []
    for r, f in zip(records, fields, strict=True):
        adm, named = f.get("admission_id"), f.get("patient_id")
        stay = stays.get(adm_hash[adm]) if adm else None
        pid = pid_hash[named] if named else None
        if stay is not None and pid is not None and stay.patient_id != pid:
            rejected.append(
                _reject(
                    r,
                    "admission_patient_mismatch",
                    f"admission {adm!r} belongs to another patient",
                    "patient_id",
                )
            )
            continue
        pid = pid or (stay.patient_id if stay is not None else None)
        if pid is None:
            code, why = (
                "unknown_admission",
                f"admission {adm!r} is unknown and the row names no patient",
            )
            rejected.append(_reject(r, code, why, "admission_id"))
            continue
        person_key = links.get(pid)
        if person_key is None:
            rejected.append(
                _reject(
                    r,
                    "unknown_patient",
                    f"patient {named!r} is not in the patient master"
                    if named
                    else f"the patient of admission {adm!r} is not in the patient master",
                    "patient_id",
                )
            )
            continue
        if person_key not in cancer:
            skipped.append(r)
            continue
        when = f.get(date_field)
        if stay is None and when is not None:
            day = _day(when)
            stay = next(
                (
                    s
                    for s in by_patient.get(pid, ())
                    if s.valid and s.admit_date <= day <= (s.discharge_date or s.admit_date)
                ),
                None,
            )
        if when is None and stay is not None:
            when = stay.discharge_date or stay.admit_date
        if when is None:
            rejected.append(
                _reject(
                    r, "missing_required", f"no {date_field} and no stay to date it by", date_field
                )
            )
            continue
        visit = None
        if stay is not None and stay.valid:
            visit = visit_ids.get(stay.admission_id)
            if visit is None:
                visit = visit_ids[stay.admission_id] = ctx.stay_visit_id(stay)
        person = person_ids.get(person_key)
        if person is None:
            person = person_ids[person_key] = ctx.person_id(person_key)
        linked.append(Linked(r, person_key, person, visit, when))
    return linked, rejected, skipped


def _reject(r: MappedRecord, code: str, reason: str, field: str | None) -> Rejection:
    raw = {k: None if v is None else str(v) for k, v in r.fields.items()}
    return Rejection(r.source, r.table, r.key, code, reason, field, raw)


def _provenance(ctx: RunContext, r: MappedRecord) -> dict[str, Any]:
    return {
        "src_system": r.source,
        "src_table": r.table,
        "src_row": ctx.row_pseudonym(r.source, r.table, r.key),
    }


def _shift(ctx: RunContext, value: Any, person_key: str) -> Any:
    return ctx.deid.shift(value, person_key)


def build_row(ctx: RunContext, target: str, item: Linked) -> dict[str, Any]:
    r, f, key = item.record, item.record.fields, item.person_key
    day = _shift(ctx, _day(item.when), key)
    rid = ctx.row_id(r.source, r.table, r.key)
    if target in ("operation", "imaging"):
        source_value = f.get("procedure_code") if target == "operation" else f.get("modality")
        return {
            "procedure_occurrence_id": rid,
            "person_id": item.person_id,
            "procedure_concept_id": 0,
            "procedure_date": day,
            "procedure_type_concept_id": EHR,
            "visit_occurrence_id": item.visit_id,
            "procedure_source_value": None if source_value is None else str(source_value)[:50],
            **_provenance(ctx, r),
        }
    if target == "medication":
        end = f.get("end_date")
        return {
            "drug_exposure_id": rid,
            "person_id": item.person_id,
            "drug_concept_id": 0,
            "drug_exposure_start_date": day,
            "drug_exposure_end_date": _shift(ctx, _day(end), key) if end else day,
            "drug_type_concept_id": EHR,
            "quantity": f.get("dose"),
            "visit_occurrence_id": item.visit_id,
            "drug_source_value": f.get("drug_code"),
            "dose_unit_source_value": None
            if f.get("dose_unit") is None
            else str(f["dose_unit"])[:50],
            **_provenance(ctx, r),
        }
    if target == "note":
        # Only the de-identified text (notes.py); empty when the policy omits notes.
        return {
            "note_id": rid,
            "person_id": item.person_id,
            "note_date": day,
            "note_type_concept_id": EHR,
            "note_class_concept_id": 0,
            "note_title": r.table[:250],
            "note_text": f.get(SCRUBBED, ""),
            "encoding_concept_id": UTF8_ENCODING,
            "language_concept_id": 0,
            "visit_occurrence_id": item.visit_id,
        }
    raise ValueError(target)


def load_events(
    ctx: RunContext, target: str, records: list[MappedRecord]
) -> tuple[list[Rejection], list[dict[str, Any]]]:
    """Link, build and write one batch; returns (rejections, conflict rows)."""
    with ctx.state.connect() as conn:
        linked, rejected, skipped = link_events(ctx, conn, target, records)
    if target == "note":  # the text scrubbed, or the note quarantined (notes.py)
        linked, unscrubbable = scrub_notes(ctx, linked)
        rejected += unscrubbable
    for r in skipped:
        ctx.table_counts(r.source, r.table).skipped += 1
    conflicts: list[dict[str, Any]] = []
    # The reports are scrubbed (in the worker processes) while the studies are written.
    reports = imaging_reports(ctx, linked) if target == "imaging" else None
    with ctx.analysis.begin() as aconn:
        writer = CdmWriter(aconn)
        if target == "lab":
            conflicts = _load_labs(ctx, writer, linked)
        else:
            rows: dict[int, dict[str, Any]] = {}
            for item in linked:
                row = build_row(ctx, target, item)
                rows[next(iter(row.values()))] = row
                ctx.table_counts(item.record.source, item.record.table).loaded += 1
            fresh = notes_to_structure(writer, rows) if target == "note" else []
            writer.upsert(EVENT_TABLES[target], list(rows.values()))
            structure_notes(ctx, writer, fresh, rows, linked)  # facts of new notes
            if reports is not None:
                _load_imaging_reports(ctx, writer, reports)
    return rejected, conflicts


def _load_imaging_reports(
    ctx: RunContext, writer: CdmWriter, pending: Callable[[], tuple[list[Linked], int]]
) -> None:
    """Each study's report (findings + impression) as a scrubbed note, structured like
    any other (PET-CT lesions become measurements of their site)."""
    reports, refused = pending()
    if refused:
        tally(ctx).not_structured["report_not_scrubbable"] += refused
    rows: dict[int, dict[str, Any]] = {}
    for item in reports:
        row = build_row(ctx, "note", item)
        row["note_title"] = item.record.table[:250]
        rows[row["note_id"]] = row
    if rows:
        fresh = notes_to_structure(writer, rows)
        writer.upsert("note", list(rows.values()))
        structure_notes(ctx, writer, fresh, rows, reports)


def _lab_values(ctx: RunContext, item: Linked) -> dict[str, Any]:
    f = item.record.fields
    when = item.when
    return {
        "value_as_number": f.get("value"),
        "operator_concept_id": OPERATORS.get(f.get("operator") or "")
        if f.get("operator") not in (None, "=")
        else None,
        "range_low": f.get("range_low"),
        "range_high": f.get("range_high"),
        "value_source_value": None
        if f.get("value_as_written") is None
        else str(f["value_as_written"])[:50],
        "unit_source_value": f.get("unit"),
        "measurement_datetime": _shift(ctx, when, item.person_key)
        if isinstance(when, datetime)
        else None,
    }


def _confidence(f: dict[str, Any]) -> float | None:
    c = f.get("confidence")
    return float(c) if isinstance(c, float | int) and 0 <= c <= 1 else None


def _base_confidence(
    items: list[Linked], new: list[Contribution], base: Origin, old: Any
) -> float | None:
    """The confidence of the merged row's base (an OCR'd sheet's), else the CDM's."""
    for item, contribution in zip(items, new, strict=True):
        if contribution.origin == base:
            return _confidence(item.record.fields)
    return None if old is None else old.confidence


def _origin(ctx: RunContext, system: str, table: str, row: str) -> Origin:
    return Origin(system, table, row, ctx.ranks.get((system, table), WORST_RANK))


def _load_labs(ctx: RunContext, writer: CdmWriter, linked: list[Linked]) -> list[dict[str, Any]]:
    groups: dict[int, list[Linked]] = defaultdict(list)
    for item in linked:
        f = item.record.fields
        identity = f"{item.person_key}/{item.visit_id or ''}/{f['analyte']}/{item.when.isoformat()}"
        groups[ctx.deid.pseudonymizer.surrogate_id("lab", identity)].append(item)
    existing = writer.existing("measurement", groups)
    provenance = _existing_provenance(writer, list(existing))
    known: list[dict[str, Any]] = []  # rows of facts already in the CDM
    filled: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    fresh = _FreshLabs(ctx)

    def new_rows() -> Iterator[dict[str, Any]]:
        """Rows of facts not in the CDM yet, built as the writer takes them."""
        for mid, items in groups.items():
            if mid not in existing and len(items) == 1:
                # the common case: a fact seen once, nothing to merge
                yield fresh.row(mid, items[0])
                continue
            row = _merged_lab_row(ctx, mid, items, existing, provenance, filled, conflicts)
            if mid in existing:
                known.append(row)
            else:
                yield row

    writer.insert_new("measurement", new_rows())
    fresh.count()
    writer.upsert("measurement", known, present=set(existing))
    if existing:  # facts seen before may carry provenance that this merge replaces
        writer.delete_provenance("measurement", list(existing))
    writer.upsert("value_provenance", filled)
    return conflicts


def _merged_lab_row(
    ctx: RunContext,
    mid: int,
    items: list[Linked],
    existing: dict[int, Any],
    provenance: dict[int, dict[str, tuple[str, str, str]]],
    filled: list[dict[str, Any]],
    conflicts: list[dict[str, Any]],
) -> dict[str, Any]:
    """A fact given by several rows, or seen before: merged with what the CDM has;
    adds the provenance of filled fields to `filled`, differences to `conflicts`."""
    new = [
        Contribution(
            _lab_values(ctx, i),
            _origin(
                ctx,
                i.record.source,
                i.record.table,
                ctx.row_pseudonym(i.record.source, i.record.table, i.record.key),
            ),
        )
        for i in items
    ]
    new_rows = {(c.origin.system, c.origin.table, c.origin.row) for c in new}
    old = [
        c
        for c in _contributions(ctx, existing.get(mid), provenance.get(mid, {}))
        if (c.origin.system, c.origin.table, c.origin.row) not in new_rows
    ]
    fact = merge([*old, *new], LAB_MERGE_FIELDS, rel_tol=LAB_TOLERANCE, ignore_conflicts=LAB_QUIET)
    first = items[0]
    f = first.record.fields
    row = {
        "measurement_id": mid,
        "person_id": first.person_id,
        "measurement_concept_id": ctx.concept("LOINC", f.get("loinc"))
        or ctx.concept("OncoFed", f.get("analyte")),
        "measurement_date": _shift(ctx, _day(first.when), first.person_key),
        "measurement_type_concept_id": LAB,
        "unit_concept_id": 0,
        "visit_occurrence_id": first.visit_id,
        "measurement_source_value": f.get("analyte"),
        **fact.values,
        "confidence": _base_confidence(items, new, fact.base, existing.get(mid)),
        "src_system": fact.base.system,
        "src_table": fact.base.table,
        "src_row": fact.base.row,
    }
    filled.extend(
        [
            {
                "table_name": "measurement",
                "row_id": mid,
                "field_name": name,
                "src_system": origin.system,
                "src_table": origin.table,
                "src_row": origin.row,
            }
            for name, origin in fact.filled().items()
        ]
    )
    conflicts.extend(_conflict(ctx, "measurement", mid, c) for c in fact.conflicts)
    for n, item in enumerate(items):
        counts = ctx.table_counts(item.record.source, item.record.table)
        if n == 0 and not old:
            counts.loaded += 1
        else:
            counts.merged += 1
    return row


class _FreshLabs:
    """Rows of lab facts seen once (most of them): the same row as `_lab_values`
    and the merged path build, with the per-row lookups (concept, date offset,
    counters) memoised for the batch."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.concepts: dict[tuple[Any, Any], int] = {}
        self.offsets: dict[str, timedelta] = {}
        self.loaded: Counter[tuple[str, str]] = Counter()

    def row(self, mid: int, item: Linked) -> dict[str, Any]:
        ctx, r = self.ctx, item.record
        f = r.fields
        loinc, analyte = f.get("loinc"), f.get("analyte")
        concept = self.concepts.get((loinc, analyte))
        if concept is None:
            concept = self.concepts[(loinc, analyte)] = ctx.concept("LOINC", loinc) or ctx.concept(
                "OncoFed", analyte
            )
        offset = self.offsets.get(item.person_key)
        if offset is None:
            # what `Deidentifier.shift` adds (0 days when dates are kept)
            days = ctx.deid.shift_days(item.person_key)
            offset = self.offsets[item.person_key] = timedelta(days=days)
        when = item.when
        operator = f.get("operator")
        written = f.get("value_as_written")
        self.loaded[(r.source, r.table)] += 1
        return {
            "measurement_id": mid,
            "person_id": item.person_id,
            "measurement_concept_id": concept,
            "measurement_date": (when.date() if isinstance(when, datetime) else when) + offset,
            "measurement_type_concept_id": LAB,
            "unit_concept_id": 0,
            "visit_occurrence_id": item.visit_id,
            "measurement_source_value": analyte,
            "value_as_number": f.get("value"),
            "operator_concept_id": OPERATORS.get(operator or "")
            if operator not in (None, "=")
            else None,
            "range_low": f.get("range_low"),
            "range_high": f.get("range_high"),
            "value_source_value": None if written is None else str(written)[:50],
            "unit_source_value": f.get("unit"),
            "measurement_datetime": when + offset if isinstance(when, datetime) else None,
            "confidence": _confidence(f),
            "src_system": r.source,
            "src_table": r.table,
            "src_row": ctx.row_pseudonym(r.source, r.table, r.key),
        }

    def count(self) -> None:
        for (source, table), n in self.loaded.items():
            self.ctx.table_counts(source, table).loaded += n


def _existing_provenance(
    writer: CdmWriter, ids: list[int]
) -> dict[int, dict[str, tuple[str, str, str]]]:
    vp = cdm_table("value_provenance")
    out: dict[int, dict[str, tuple[str, str, str]]] = defaultdict(dict)
    for row in select_in(writer.conn, vp, "row_id", ids, vp.c.table_name == "measurement"):
        out[row.row_id][row.field_name] = (row.src_system, row.src_table, row.src_row)
    return out


def _contributions(
    ctx: RunContext, row: Any, overrides: dict[str, tuple[str, str, str]]
) -> list[Contribution]:
    """An existing merged row split back into its contributors' values."""
    if row is None:
        return []
    m = row._mapping
    base = (m["src_system"], m["src_table"], m["src_row"])
    by_origin: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    by_origin[base] = {}
    for name in LAB_MERGE_FIELDS:
        by_origin[overrides.get(name, base)][name] = m[name]
    return [Contribution(values, _origin(ctx, *origin)) for origin, values in by_origin.items()]
