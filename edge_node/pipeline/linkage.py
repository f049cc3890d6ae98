"""Extraction and linkage: the index of patients, stays, diagnoses and follow-up.

Index targets (patient, admission, diagnosis, follow_up) go to the state
database, not straight to the CDM: who is a cancer patient is only known once
every diagnosis has been read, and one person's rows come from several tables.
Each batch commits its index rows with its watermark, so the index is always
consistent with what has been read; the persons it touches are marked dirty and
rebuilt in the CDM afterwards (see `persons.py`).

The index holds no hospital ID in clear (see `sealed.py`): patient and admission
IDs are replaced by their link hashes as rows enter and as source rows are
looked up; the patient IDs go sealed to the re-identification map, the admission
IDs sealed beside their stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from edge_node.pipeline.context import RunContext
from edge_node.pipeline.dbutil import select_in, update_rows, upsert, where_in
from edge_node.pipeline.records import MappedRecord, Rejection
from edge_node.pipeline.sealed import REID_AAD, aad
from edge_node.pipeline.state import (
    AdmissionLink,
    DiagnosisLink,
    PatientLink,
    PipelinePerson,
    ReidEntry,
)

INDEX_TARGETS = ("patient", "admission", "diagnosis", "follow_up")
_PATIENT_FIELDS = ("name", "sex", "birth_date", "resident_id", "phone", "address")

patients_t: sa.Table = PatientLink.__table__  # type: ignore[assignment]
admissions_t: sa.Table = AdmissionLink.__table__  # type: ignore[assignment]
diagnoses_t: sa.Table = DiagnosisLink.__table__  # type: ignore[assignment]
persons_t: sa.Table = PipelinePerson.__table__  # type: ignore[assignment]
reid_t: sa.Table = ReidEntry.__table__  # type: ignore[assignment]


def canonical_patient_key(patient_id: str, resident_id: str | None) -> str:
    """Patient IDs that share a resident ID are one person (a duplicate master record)."""
    rid = "".join((resident_id or "").split()).upper()
    return f"rid:{rid}" if rid else f"pid:{patient_id}"


def _reject(r: MappedRecord, code: str, reason: str, field: str | None = None) -> Rejection:
    return Rejection(r.source, r.table, r.key, code, reason, field, _raw(r))


def _raw(r: MappedRecord) -> dict[str, str | None]:
    return {k: None if v is None else str(v) for k, v in r.fields.items()}


def mark_dirty(conn: sa.Connection, person_keys: Iterable[str]) -> None:
    """Create the persons if new (not cancer until a diagnosis says so) and mark them dirty."""
    keys = sorted(set(person_keys))
    upsert(conn, persons_t, [{"person_key": k, "dirty": True} for k in keys])


def person_keys_of(conn: sa.Connection, patient_hashes: Iterable[str]) -> dict[str, str]:
    """Link hash of a patient ID -> person key, for the patients in the index."""
    rows = select_in(conn, patients_t, "patient_id", patient_hashes)
    return {r.patient_id: r.person_key for r in rows}


def index_patients(
    ctx: RunContext, conn: sa.Connection, records: Sequence[MappedRecord]
) -> list[Rejection]:
    """Upsert patient master rows; a later row for the same ID in a batch wins."""
    latest: dict[str, MappedRecord] = {}
    rejected: list[Rejection] = []
    for r in records:
        pid = r.fields["patient_id"]
        if r.fields.get("birth_date") is None:
            rejected.append(
                _reject(
                    r,
                    "missing_required",
                    "no birth date: the CDM needs a year of birth",
                    "birth_date",
                )
            )
            continue
        if pid in latest:
            ctx.table_counts(r.source, r.table).merged += 1  # a repeated row of the same ID
        latest[pid] = r
    if not latest:
        return rejected
    hashes = {pid: ctx.ids.patient(pid) for pid in latest}
    before = person_keys_of(conn, hashes.values())
    rows = []
    reid = []
    for pid, r in latest.items():
        f = r.fields
        key = ctx.deid.person_key(canonical_patient_key(pid, f.get("resident_id")))
        h = hashes[pid]
        reid.append(
            {
                "patient_hash": h,
                "person_key": key,
                "sealed_id": ctx.ids.seal(pid, aad(REID_AAD, key, h)),
            }
        )
        rows.append(
            {
                "patient_id": h,
                "person_key": key,
                "completeness": sum(1 for n in _PATIENT_FIELDS if f.get(n) not in (None, "")),
                "sex": f.get("sex"),
                "birth_date": f.get("birth_date"),
                "source": r.source,
                "source_table": r.table,
                "row_key": ctx.row_pseudonym(r.source, r.table, r.key),
                "run_id": ctx.run_id,
                "first_run": ctx.run_id,
            }
        )
    upsert(conn, patients_t, rows, ["patient_id"], insert_only=["first_run"])
    upsert(conn, reid_t, reid, ["patient_hash"])
    mark_dirty(conn, [str(row["person_key"]) for row in rows] + list(before.values()))
    return rejected


def index_admissions(
    ctx: RunContext, conn: sa.Connection, records: Sequence[MappedRecord]
) -> list[Rejection]:
    rejected: list[Rejection] = []
    pids = {r.fields["patient_id"]: ctx.ids.patient(r.fields["patient_id"]) for r in records}
    known = person_keys_of(conn, pids.values())
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        f = r.fields
        if pids[f["patient_id"]] not in known:
            rejected.append(
                _reject(
                    r,
                    "unknown_patient",
                    f"patient {f['patient_id']!r} is not in the patient master",
                    "patient_id",
                )
            )
            continue
        valid = f.get("discharge_date") is None or f["discharge_date"] >= f["admit_date"]
        if not valid:
            rejected.append(
                _reject(
                    r,
                    "dates_out_of_order",
                    f"discharge {f['discharge_date']} is before admission {f['admit_date']}; "
                    "the stay's records stay linked to the patient, the stay is not loaded",
                    "discharge_date",
                )
            )
        if f["admission_id"] in latest:
            ctx.table_counts(r.source, r.table).merged += 1
        adm = ctx.ids.admission(f["admission_id"])
        latest[f["admission_id"]] = {
            "admission_id": adm,
            "sealed_id": ctx.sealed_admission(f["admission_id"], adm),
            "patient_id": pids[f["patient_id"]],
            "admit_date": f["admit_date"],
            "discharge_date": f.get("discharge_date"),
            "department": (f.get("department") or None) and str(f["department"])[:100],
            "valid": valid,
            "source": r.source,
            "source_table": r.table,
            "row_key": ctx.row_pseudonym(r.source, r.table, r.key),
            "run_id": ctx.run_id,
        }
    if latest:
        before = {
            row.admission_id: row.patient_id
            for row in select_in(
                conn, admissions_t, "admission_id", [v["admission_id"] for v in latest.values()]
            )
        }
        upsert(conn, admissions_t, list(latest.values()), ["admission_id"])
        touched = {row["patient_id"] for row in latest.values()} | set(before.values())
        mark_dirty(conn, person_keys_of(conn, touched).values())
    return rejected


def admissions_of(conn: sa.Connection, admission_hashes: Iterable[str]) -> dict[str, sa.Row[Any]]:
    """Link hash of an admission ID -> its stay in the index."""
    return {
        row.admission_id: row
        for row in select_in(conn, admissions_t, "admission_id", admission_hashes)
    }


def index_diagnoses(
    ctx: RunContext, conn: sa.Connection, records: Sequence[MappedRecord]
) -> list[Rejection]:
    rejected: list[Rejection] = []
    adms = {
        r.fields["admission_id"]: ctx.ids.admission(r.fields["admission_id"])
        for r in records
        if r.fields.get("admission_id")
    }
    stays = admissions_of(conn, adms.values())
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    named: dict[str, str] = {}  # link hash -> the patient ID a row named, for messages
    for r in records:
        f = r.fields
        adm = adms.get(f.get("admission_id") or "")
        stay = stays.get(adm) if adm is not None else None
        pid: str | None
        if f.get("patient_id"):
            pid = named_hash = ctx.ids.patient(f["patient_id"])
            named[named_hash] = f["patient_id"]
        else:
            pid = stay.patient_id if stay is not None else None
        if pid is None:
            rejected.append(
                _reject(
                    r,
                    "unknown_admission",
                    f"admission {f.get('admission_id')!r} is unknown and the row names no patient",
                    "admission_id",
                )
            )
            continue
        if stay is not None and stay.patient_id != pid:
            rejected.append(
                _reject(
                    r,
                    "admission_patient_mismatch",
                    f"admission {f.get('admission_id')!r} belongs to another patient",
                    "patient_id",
                )
            )
            continue
        if f.get("diagnosis_date") is None and stay is None:
            rejected.append(
                _reject(
                    r,
                    "missing_required",
                    "a diagnosis needs a date or a known admission",
                    "diagnosis_date",
                )
            )
            continue
        code = f.get("icd10")
        cancer = code is not None and ctx.vocab.icd10_in_ranges(code, ctx.icd10_ranges)
        confidence = f.get("confidence")
        rows[(r.source, r.table, r.key[:255])] = {
            "source": r.source,
            "source_table": r.table,
            "row_key": r.key[:255],
            "patient_id": pid,
            "admission_id": adm,
            "icd10": code,
            "diagnosis_date": f.get("diagnosis_date")
            or (stay.admit_date if stay is not None else None),
            "confidence": 1.0 if confidence is None else float(confidence),
            "is_cancer": cancer,
            "run_id": ctx.run_id,
        }
    if not rows:
        return rejected
    keys = person_keys_of(conn, {row["patient_id"] for row in rows.values()})
    for k, row in list(rows.items()):
        if row["patient_id"] not in keys:
            del rows[k]
            rejected.append(
                Rejection(
                    k[0],
                    k[1],
                    k[2],
                    "unknown_patient",
                    f"patient {named.get(row['patient_id'])!r} is not in the patient master",
                    "patient_id",
                )
            )
    upsert(conn, diagnoses_t, list(rows.values()), ["source", "source_table", "row_key"])
    refresh_cancer(ctx, conn, set(keys.values()))
    return rejected


def refresh_cancer(ctx: RunContext, conn: sa.Connection, person_keys: set[str]) -> None:
    """Recompute who is a cancer patient among `person_keys` and mark them dirty."""
    mark_dirty(conn, person_keys)
    has_cancer = (
        sa.select(sa.literal(1))
        .select_from(
            diagnoses_t.join(patients_t, diagnoses_t.c.patient_id == patients_t.c.patient_id)
        )
        .where(patients_t.c.person_key == persons_t.c.person_key, diagnoses_t.c.is_cancer)
        .exists()
    )
    for cond in where_in(conn, persons_t.c.person_key, sorted(person_keys)):
        conn.execute(sa.update(persons_t).where(cond).values(is_cancer=has_cancer))
        if ctx.events_started:
            # Only patients seen by an earlier run can have event rows already read.
            seen_before = (
                sa.select(sa.literal(1))
                .where(
                    patients_t.c.person_key == persons_t.c.person_key,
                    patients_t.c.first_run < ctx.run_id,
                )
                .exists()
            )
            conn.execute(
                sa.update(persons_t)
                .where(
                    cond,
                    persons_t.c.is_cancer,
                    sa.not_(persons_t.c.in_cdm),
                    seen_before,
                )
                .values(needs_backfill=True)
            )


def index_follow_up(
    ctx: RunContext, conn: sa.Connection, records: Sequence[MappedRecord]
) -> list[Rejection]:
    rejected: list[Rejection] = []
    pids = {r.fields["patient_id"]: ctx.ids.patient(r.fields["patient_id"]) for r in records}
    rows = select_in(conn, patients_t, "patient_id", pids.values())
    links = {row.patient_id: row for row in rows}
    cancer = {
        row.person_key
        for row in select_in(conn, persons_t, "person_key", {row.person_key for row in rows})
        if row.is_cancer
    }
    touched: set[str] = set()
    updates: list[dict[str, Any]] = []
    for r in records:
        f = r.fields
        link = links.get(pids[f["patient_id"]])
        counts = ctx.table_counts(r.source, r.table)
        if link is None:
            rejected.append(
                _reject(
                    r,
                    "unknown_patient",
                    f"patient {f['patient_id']!r} is not in the patient master",
                    "patient_id",
                )
            )
            continue
        death, last = f.get("death_date"), f.get("last_contact_date")
        if death is not None and link.birth_date is not None and death < link.birth_date:
            rejected.append(_reject(r, "dates_out_of_order", "death before birth", "death_date"))
            continue
        updates.append(
            {
                "patient_id": pids[f["patient_id"]],
                "last_contact_date": last,
                "vital_status": f.get("vital_status"),
                "death_date": death,
                "follow_up_row": ctx.row_pseudonym(r.source, r.table, r.key),
            }
        )
        touched.add(link.person_key)
        if link.person_key in cancer:
            counts.loaded += 1
        else:
            counts.skipped += 1
    update_rows(conn, patients_t, "patient_id", updates)
    mark_dirty(conn, touched)
    return rejected


def count_index_rows(ctx: RunContext, conn: sa.Connection) -> None:
    """Loaded, merged and skipped rows of this run's patient, admission and diagnosis rows.

    Counted once every diagnosis is in, because only then is it known who is a
    cancer patient. A person's base patient row is the most complete one.
    """
    rank = sa.func.row_number().over(
        partition_by=patients_t.c.person_key,
        order_by=(patients_t.c.completeness.desc(), patients_t.c.patient_id),
    )
    is_base = sa.case((rank == 1, 1), else_=0).label("is_base")
    ranked = sa.select(patients_t, is_base).subquery()
    joined = ranked.join(persons_t, persons_t.c.person_key == ranked.c.person_key)
    query = (
        sa.select(
            ranked.c.source,
            ranked.c.source_table,
            persons_t.c.is_cancer,
            ranked.c.is_base,
            sa.func.count(),
        )
        .select_from(joined)
        .where(ranked.c.run_id == ctx.run_id)
        .group_by(ranked.c.source, ranked.c.source_table, persons_t.c.is_cancer, ranked.c.is_base)
    )
    for source, table, is_cancer, is_base, n in conn.execute(query):
        c = ctx.table_counts(source, table)
        if not is_cancer:
            c.skipped += n
        elif is_base:
            c.loaded += n
        else:
            c.merged += n
    for t, extra in ((admissions_t, [admissions_t.c.valid]), (diagnoses_t, [])):
        j = t.join(patients_t, t.c.patient_id == patients_t.c.patient_id).join(
            persons_t, persons_t.c.person_key == patients_t.c.person_key
        )
        q = (
            sa.select(t.c.source, t.c.source_table, persons_t.c.is_cancer, sa.func.count())
            .select_from(j)
            .where(t.c.run_id == ctx.run_id, *extra)
            .group_by(t.c.source, t.c.source_table, persons_t.c.is_cancer)
        )
        for source, table, is_cancer, n in conn.execute(q):
            c = ctx.table_counts(source, table)
            if is_cancer:
                c.loaded += n
            else:
                c.skipped += n


INDEXERS = {
    "patient": index_patients,
    "admission": index_admissions,
    "diagnosis": index_diagnoses,
    "follow_up": index_follow_up,
}
