"""Linking event records to persons and stays (`events.link_events`): its batch
lookups (every stay, patient and person of the batch in a few queries) must place
every record exactly as the plain record-by-record rule does: the same persons,
visits, dates, rejections (code, reason, field) and skipped rows, in the same
order, on SQLite and PostgreSQL. Also: a stay sealed in this run is not decrypted
again by the persons stage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from edge_node.pipeline.context import RunContext
from edge_node.pipeline.deid import Deidentifier, DeidPolicy, Pseudonymizer
from edge_node.pipeline.events import link_events
from edge_node.pipeline.linkage import admissions_t, patients_t, persons_t
from edge_node.pipeline.records import MappedRecord
from edge_node.pipeline.sealed import IdentifierGuard
from edge_node.security.vault import Vault
from edge_node.store.database import upgrade_state_db
from shared_cdm.db import make_engine

SECRET = bytes(range(32))
VAULT_KEY = bytes(range(100, 132))

# patient ID -> person key (None: not in the patient master); persons: key -> cancer
PATIENTS = {"A": "rid:1", "B": "rid:1", "C": "pid:C", "X": None}
PERSONS = {"rid:1": True, "pid:C": False}
# admission ID -> (patient ID, admit, discharge); discharge before admit: not valid
STAYS = {
    "S1": ("A", date(2021, 1, 1), date(2021, 1, 10)),
    "S2": ("A", date(2021, 2, 1), None),  # still in: its day is its admission day
    "S3": ("A", date(2021, 3, 10), date(2021, 3, 1)),
    "S4": ("C", date(2021, 1, 1), date(2021, 1, 5)),
    "S5": ("B", date(2021, 1, 5), date(2021, 1, 20)),
    "S6": ("X", date(2021, 1, 1), date(2021, 1, 2)),
}


def _ctx(url: str) -> Iterator[RunContext]:
    upgrade_state_db(url)
    engine = make_engine(url)
    ctx = RunContext(
        state=engine,
        analysis=engine,  # not written by the linkage
        deid=Deidentifier(Pseudonymizer(SECRET), DeidPolicy()),
        vocab=None,  # type: ignore[arg-type]  # not read by the linkage
        run_id=1,
        icd10_ranges=("C00-D48",),
        concepts={},
        ids=IdentifierGuard(SECRET, Vault(VAULT_KEY)),
    )
    with engine.begin() as conn:
        conn.execute(
            sa.insert(persons_t),
            [{"person_key": k, "is_cancer": v, "dirty": False} for k, v in PERSONS.items()],
        )
        conn.execute(
            sa.insert(patients_t),
            [
                {
                    "patient_id": ctx.ids.patient(pid),
                    "person_key": key,
                    "completeness": 1,
                    "source": "emr",
                    "source_table": "patient_master",
                    "row_key": pid,
                    "run_id": 1,
                    "first_run": 1,
                }
                for pid, key in PATIENTS.items()
                if key is not None
            ],
        )
        conn.execute(
            sa.insert(admissions_t),
            [
                {
                    "admission_id": ctx.ids.admission(adm),
                    "patient_id": ctx.ids.patient(pid),
                    "admit_date": admit,
                    "discharge_date": discharge,
                    "valid": discharge is None or discharge >= admit,
                    "source": "emr",
                    "source_table": "admission",
                    "row_key": adm,
                    "run_id": 1,
                    "sealed_id": ctx.sealed_admission(adm, ctx.ids.admission(adm)),
                }
                for adm, (pid, admit, discharge) in STAYS.items()
            ],
        )
    try:
        yield ctx
    finally:
        engine.dispose()


@pytest.fixture
def ctx(db_url: str) -> Iterator[RunContext]:
    yield from _ctx(db_url)


def _records() -> list[MappedRecord]:
    """Every way a record can be placed or refused, most pairs given several times
    (with other dates) as a batch gives them."""
    rows: list[tuple[str | None, str | None, date | datetime | None]] = [
        ("S1", "A", date(2021, 1, 3)),  # its stay and patient
        ("S1", None, date(2021, 1, 4)),  # the stay names the patient
        ("S1", "A", None),  # dated by its stay: the discharge day
        ("S2", None, None),  # dated by its stay: still in, the admission day
        ("S1", "C", date(2021, 1, 3)),  # the stay is another patient's
        ("S9", None, date(2021, 1, 3)),  # unknown stay, no patient
        ("S9", "A", date(2021, 1, 6)),  # unknown stay: placed by date in S1
        ("S9", "A", datetime(2021, 2, 1, 8, 30)),  # by date, a time of day: in S2
        ("S9", "A", date(2021, 2, 3)),  # S2 is open: it holds its admission day only
        (None, "A", date(2021, 3, 5)),  # no stay holds the day (S3 is not valid)
        (None, "A", date(2021, 1, 2)),
        (None, "A", None),  # no date and no stay to date it by
        ("S3", "A", None),  # an invalid stay dates its record but gives no visit
        ("S3", None, date(2021, 3, 4)),
        (None, "B", date(2021, 1, 7)),  # a duplicate master record: the same person, S5
        (None, "B", date(2021, 1, 4)),  # B's own stays only: S1 is A's
        ("S6", None, date(2021, 1, 1)),  # the stay's patient is not in the master
        (None, "D", date(2021, 1, 1)),  # a patient not in the master
        ("S4", "C", date(2021, 1, 2)),  # not a cancer patient: skipped
        (None, "C", None),
        (None, None, date(2021, 1, 1)),  # neither: an unknown admission
    ]
    out: list[MappedRecord] = []
    for repeat in range(3):
        for n, (adm, pid, when) in enumerate(rows):
            fields = {"admission_id": adm, "patient_id": pid, "result_date": when, "n": n}
            out.append(MappedRecord("lab", "lis", "lab_results", f"{repeat}-{n}", fields))
    return out


def _reference(
    ctx: RunContext, conn: sa.Connection, records: list[MappedRecord]
) -> tuple[list[Any], list[Any], list[Any]]:
    """The rule applied record by record, one query per lookup."""
    linked: list[Any] = []
    rejected: list[Any] = []
    skipped: list[Any] = []

    def one(table: sa.Table, column: str, value: str) -> Any:
        return conn.execute(sa.select(table).where(table.c[column] == value)).first()

    for r in records:
        f = r.fields
        adm, named, when = f["admission_id"], f["patient_id"], f["result_date"]
        stay = one(admissions_t, "admission_id", ctx.ids.admission(adm)) if adm else None
        pid = ctx.ids.patient(named) if named else None

        def refuse(code: str, reason: str, field: str, r: MappedRecord = r) -> None:
            raw = {k: None if v is None else str(v) for k, v in r.fields.items()}
            rejected.append((r.key, code, reason, field, raw))

        if stay is not None and pid is not None and stay.patient_id != pid:
            refuse(
                "admission_patient_mismatch",
                f"admission {adm!r} belongs to another patient",
                "patient_id",
            )
            continue
        pid = pid or (stay.patient_id if stay is not None else None)
        if pid is None:
            refuse(
                "unknown_admission",
                f"admission {adm!r} is unknown and the row names no patient",
                "admission_id",
            )
            continue
        patient = one(patients_t, "patient_id", pid)
        if patient is None:
            refuse(
                "unknown_patient",
                f"patient {named!r} is not in the patient master"
                if named
                else f"the patient of admission {adm!r} is not in the patient master",
                "patient_id",
            )
            continue
        if not one(persons_t, "person_key", patient.person_key).is_cancer:
            skipped.append(r.key)
            continue
        if stay is None and when is not None:
            day = when.date() if isinstance(when, datetime) else when
            candidates = conn.execute(
                sa.select(admissions_t)
                .where(admissions_t.c.patient_id == pid)
                .order_by(admissions_t.c.admit_date)
            ).all()
            stay = next(
                (
                    s
                    for s in candidates
                    if s.valid and s.admit_date <= day <= (s.discharge_date or s.admit_date)
                ),
                None,
            )
        if when is None and stay is not None:
            when = stay.discharge_date or stay.admit_date
        if when is None:
            refuse("missing_required", "no result_date and no stay to date it by", "result_date")
            continue
        visit = ctx.stay_visit_id(stay) if stay is not None and stay.valid else None
        linked.append((r.key, patient.person_key, ctx.person_id(patient.person_key), visit, when))
    return linked, rejected, skipped


def test_batch_lookups_place_every_record_as_the_row_by_row_rule(
    ctx: RunContext,
) -> None:
    records = _records()
    with ctx.state.connect() as conn:
        linked, rejected, skipped = link_events(ctx, conn, "lab", records)
        expected = _reference(ctx, conn, records)
    got = (
        [(i.record.key, i.person_key, i.person_id, i.visit_id, i.when) for i in linked],
        [(r.key, r.code, r.reason, r.field, r.raw) for r in rejected],
        [r.key for r in skipped],
    )
    assert got == expected
    # and what the rule says, spelled out for a few of them
    by_key = {i.record.key: i for i in linked}
    visit = {adm: ctx.visit_id(adm) for adm in STAYS}
    assert by_key["0-0"].visit_id == by_key["0-6"].visit_id == visit["S1"]
    assert by_key["1-7"].visit_id == visit["S2"] and by_key["1-8"].visit_id is None
    assert by_key["0-10"].visit_id == visit["S1"] and by_key["0-9"].visit_id is None
    assert by_key["2-14"].visit_id == visit["S5"] and by_key["2-15"].visit_id is None
    assert by_key["0-2"].when == date(2021, 1, 10) and by_key["0-3"].when == date(2021, 2, 1)
    assert by_key["0-12"].when == date(2021, 3, 1) and by_key["0-12"].visit_id is None
    assert by_key["0-14"].person_id == by_key["0-0"].person_id  # one person, two IDs
    codes: dict[str, list[str]] = defaultdict(list)
    for r in rejected:
        codes[r.code].append(r.key.split("-")[1])
    assert codes == {
        "admission_patient_mismatch": ["4"] * 3,
        "unknown_admission": ["5", "20"] * 3,
        "missing_required": ["11"] * 3,
        "unknown_patient": ["16", "17"] * 3,
    }
    assert [k.split("-")[1] for k in got[2]] == ["18", "19"] * 3


def test_a_stay_sealed_in_this_run_is_not_decrypted_again(
    ctx: RunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ctx.state.connect() as conn:
        stays = {s.admission_id: s for s in conn.execute(sa.select(admissions_t))}
    s1 = stays[ctx.ids.admission("S1")]
    opened: list[str] = []
    real_open = IdentifierGuard.open

    def counting_open(self: IdentifierGuard, sealed: str, associated: bytes, *, what: str) -> str:
        opened.append(what)
        return real_open(self, sealed, associated, what=what)

    monkeypatch.setattr(IdentifierGuard, "open", counting_open)
    assert ctx.admission_id_of(s1) == "S1" and opened == []
    # a later run (a fresh context) has only the sealed ID, and opens it
    fresh = RunContext(**{**ctx.__dict__, "_sealed_here": {}, "_stay_visits": {}, "_ids": {}})
    assert fresh.admission_id_of(s1) == "S1" and len(opened) == 1
