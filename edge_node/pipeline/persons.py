"""Person-level CDM rows rebuilt from the link index: person, visits,
conditions, death and the observation period of every dirty person.

A person's rows are replaced as a whole in one analysis-database transaction,
then the person is marked clean in the state database; a run killed in between
rebuilds the same rows next time. A person who is no longer a cancer patient
(a corrected diagnosis) leaves the CDM entirely.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa

from edge_node.pipeline.context import EHR, FEMALE, INPATIENT_VISIT, MALE, RunContext
from edge_node.pipeline.dbutil import chunks, select_in, upsert
from edge_node.pipeline.linkage import admissions_t, diagnoses_t, patients_t, persons_t, reid_t
from edge_node.pipeline.loader import CdmWriter
from edge_node.pipeline.merge import Contribution, Origin, merge
from edge_node.pipeline.sealed import REID_AAD, aad
from edge_node.pipeline.state import MergeConflict

PERSON_BATCH = 2000
_GENDER = {"male": MALE, "female": FEMALE}
conflicts_t: sa.Table = MergeConflict.__table__  # type: ignore[assignment]


def build_dirty_persons(ctx: RunContext) -> int:
    """Rebuild every dirty person; returns how many were written or removed."""
    done = 0
    while True:
        with ctx.state.connect() as conn:
            keys = [
                k
                for (k,) in conn.execute(
                    sa.select(persons_t.c.person_key)
                    .where(persons_t.c.dirty)
                    .order_by(persons_t.c.person_key)
                    .limit(PERSON_BATCH)
                )
            ]
            if not keys:
                return done
            batch = _load(ctx, conn, keys)
        rows, conflicts = _build(ctx, batch)
        gone = [ctx.person_id(k) for k, p in batch.persons.items() if not p.is_cancer and p.in_cdm]
        with ctx.analysis.begin() as aconn:
            writer = CdmWriter(aconn)
            if gone:
                writer.delete_persons(gone)
            built = [ctx.person_id(k) for k, p in batch.persons.items() if p.is_cancer]
            # Only persons already in the CDM can have stale rows (a first load has
            # none). Asked of the CDM itself, not `in_cdm`: a run killed between
            # the two commits leaves rows of persons not yet marked.
            present = set(writer.existing_keys("person", built))
            writer.upsert("person", rows["person"], present=present)
            for name in ("visit_occurrence", "condition_occurrence", "death", "observation_period"):
                writer.replace_for_persons(name, sorted(present), rows[name])
        with ctx.state.begin() as conn:
            upsert(conn, conflicts_t, conflicts, ["cdm_table", "row_id", "field", "other_source"])
            for part in chunks(keys):
                conn.execute(
                    sa.update(persons_t)
                    .where(persons_t.c.person_key.in_(part))
                    .values(dirty=False, in_cdm=persons_t.c.is_cancer)
                )
        done += len(keys)
        if ctx.progress is not None:
            ctx.progress("persons", len(keys))


class _Batch:
    def __init__(self) -> None:
        self.persons: dict[str, Any] = {}
        self.links: dict[str, list[Any]] = defaultdict(list)
        self.stays: dict[str, list[Any]] = defaultdict(list)  # patient_id -> admissions
        self.diagnoses: dict[str, list[Any]] = defaultdict(list)  # patient_id -> rows
        self.patient_ids: dict[str, str] = {}  # link hash -> hospital patient ID


def _load(ctx: RunContext, conn: sa.Connection, keys: list[str]) -> _Batch:
    batch = _Batch()
    batch.persons = {p.person_key: p for p in select_in(conn, persons_t, "person_key", keys)}
    cancer = [k for k, p in batch.persons.items() if p.is_cancer]
    for link in select_in(conn, patients_t, "person_key", cancer):
        batch.links[link.person_key].append(link)
    pids = [link.patient_id for links in batch.links.values() for link in links]
    for stay in select_in(conn, admissions_t, "patient_id", pids):
        batch.stays[stay.patient_id].append(stay)
    for dx in select_in(conn, diagnoses_t, "patient_id", pids):
        batch.diagnoses[dx.patient_id].append(dx)
    # Duplicates are ranked by their hospital IDs, as before the index was hashed,
    # so the CDM does not depend on the link hashes.
    for entry in select_in(
        conn, reid_t, "person_key", [k for k, v in batch.links.items() if len(v) > 1]
    ):
        batch.patient_ids[entry.patient_hash] = ctx.ids.open(
            entry.sealed_id,
            aad(REID_AAD, entry.person_key, entry.patient_hash),
            what=f"the re-identification entry of {entry.person_key}",
        )
    return batch


def _ordered_links(batch: _Batch, links: list[Any]) -> list[Any]:
    if len(links) < 2:
        return links
    return sorted(
        links,
        key=lambda link: (-link.completeness, batch.patient_ids.get(link.patient_id, "")),
    )


def _build(
    ctx: RunContext, batch: _Batch
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    conflicts: list[dict[str, Any]] = []
    for key, person in batch.persons.items():
        links = _ordered_links(batch, batch.links.get(key, []))
        if not person.is_cancer or not links:
            continue
        pid = ctx.person_id(key)
        fact = merge(
            [
                Contribution(
                    {"sex": link.sex, "birth_date": link.birth_date},
                    Origin(
                        link.source,
                        link.source_table,
                        link.row_key,  # stored as the row's pseudonym
                        rank,
                    ),
                )
                for rank, link in enumerate(links)
            ],
            ("sex", "birth_date"),
        )
        for c in fact.conflicts:
            conflicts.append(_conflict(ctx, "person", pid, c))
        birth = fact.values["birth_date"]
        if birth is None:
            continue  # patient rows without a birth date are quarantined at mapping
        year, month, day, when = ctx.deid.birth_fields(birth, key)
        sex = fact.values["sex"]
        rows["person"].append(
            {
                "person_id": pid,
                "gender_concept_id": _GENDER.get(sex or "", 0),
                "year_of_birth": year,
                "month_of_birth": month,
                "day_of_birth": day,
                "birth_datetime": when,
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
                "person_source_value": key,
                "gender_source_value": sex,
            }
        )
        starts: list[date] = []
        ends: list[date] = []
        stays = [s for link in links for s in batch.stays.get(link.patient_id, [])]
        valid_stays: dict[str, str] = {}  # link hash -> admission ID
        for stay in stays:
            if not stay.valid:
                continue
            admission_id = valid_stays[stay.admission_id] = ctx.admission_id_of(stay)
            start = ctx.deid.shift(stay.admit_date, key)
            end = ctx.deid.shift(stay.discharge_date or stay.admit_date, key)
            starts.append(start)
            ends.append(end)
            rows["visit_occurrence"].append(
                {
                    "visit_occurrence_id": ctx.stay_visit_id(stay, admission_id),
                    "person_id": pid,
                    "visit_concept_id": INPATIENT_VISIT,
                    "visit_start_date": start,
                    "visit_end_date": end,
                    "visit_type_concept_id": EHR,
                    "visit_source_value": ctx.visit_pseudonym(admission_id),
                }
            )
        for link in links:
            for dx in batch.diagnoses.get(link.patient_id, []):
                start = ctx.deid.shift(dx.diagnosis_date, key)
                starts.append(start)
                rows["condition_occurrence"].append(
                    {
                        "condition_occurrence_id": ctx.row_id(
                            dx.source, dx.source_table, dx.row_key
                        ),
                        "person_id": pid,
                        "condition_concept_id": ctx.concept("ICD10", dx.icd10),
                        "condition_start_date": start,
                        "condition_type_concept_id": EHR,
                        "visit_occurrence_id": ctx.visit_id(valid_stays[dx.admission_id])
                        if dx.admission_id in valid_stays
                        else None,
                        "condition_source_value": dx.icd10,
                        "src_system": dx.source,
                        "src_table": dx.source_table,
                        "src_row": ctx.row_pseudonym(dx.source, dx.source_table, dx.row_key),
                        "confidence": None if dx.confidence >= 1.0 else dx.confidence,
                    }
                )
        follow = next((link for link in links if link.follow_up_row), None)
        if follow is not None and follow.last_contact_date is not None:
            ends.append(ctx.deid.shift(follow.last_contact_date, key))
        if follow is not None and follow.vital_status == "dead":
            died = follow.death_date or follow.last_contact_date
            if died is not None:
                shifted = ctx.deid.shift(died, key)
                ends.append(shifted)
                rows["death"].append(
                    {"person_id": pid, "death_date": shifted, "death_type_concept_id": EHR}
                )
        if starts:
            rows["observation_period"].append(
                {
                    "observation_period_id": pid,
                    "person_id": pid,
                    "observation_period_start_date": min(starts),
                    "observation_period_end_date": max([*ends, *starts]),
                    "period_type_concept_id": EHR,
                }
            )
    return rows, conflicts


def _conflict(ctx: RunContext, table: str, row_id: int, c: Any) -> dict[str, Any]:
    return {
        "cdm_table": table,
        "row_id": row_id,
        "field": c.field,
        "kept_value": None if c.kept is None else str(c.kept),
        "kept_source": f"{c.kept_origin.label}/{c.kept_origin.row}"[:255],
        "other_value": None if c.other is None else str(c.other),
        "other_source": f"{c.other_origin.label}/{c.other_origin.row}"[:255],
        "run_id": ctx.run_id,
    }
