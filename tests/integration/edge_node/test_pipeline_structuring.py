"""Structuring during `oncofed-edge sync`: a small synthetic hospital is synced four
times and the CDM's note_nlp and NLP measurements are read after each run.

1. first run: every pathology report and discharge summary is structured from its
   stored (scrubbed) text; rows point into that text, carry the note's source as
   provenance and link modifiers to the person's matching cancer diagnosis;
2. the same run again: nothing new, nothing written;
3. two new pathology reports in the source, one whose structuring fails: only they
   are structured, the failure is counted and the run finishes balanced;
4. a full re-read with one report's text changed: only that report is structured
   again and its facts replace the old ones.

The accuracy test reads the facts against the generator's ground truth.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from edge_node.pipeline import structuring
from edge_node.pipeline.deid import Pseudonymizer, SiteSecret
from edge_node.pipeline.notes import REPORT_TABLE_SUFFIX
from edge_node.pipeline.sync import SyncReport, run_sync
from edge_node.structure.core import Extraction
from edge_node.structure.pipeline import extract
from edge_node.structure.text import detect_lang
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.db import make_engine
from shared_cdm.models import CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID

PATIENTS, SEED = 10, 11
NOTE_TABLES = ("discharge_summary", "pathology_report")
KIND = {"discharge_summary": "discharge", "pathology_report": "pathology"}
_PT = re.compile(r"p(T[0-4X](?:mi|is|[a-c])?)\s?N")
_PDL1 = re.compile(r"PD-L1 ?\(22C3\) TPS ?约?\d+%[。.] ?")
LOBE_ICD10 = {"upper": "C34.1", "middle": "C34.2", "lower": "C34.3"}


@dataclass
class Cdm:
    notes: dict[int, dict[str, Any]]  # EMR documents
    nlp: list[dict[str, Any]]
    measurements: list[dict[str, Any]]  # type NLP only
    conditions: dict[int, dict[str, Any]]
    # imaging studies' reports (notes of table "<table>#report") and their facts
    reports: dict[int, dict[str, Any]]
    report_nlp: list[dict[str, Any]]
    report_measurements: list[dict[str, Any]]


@dataclass
class Runs:
    variant: str
    hospital: Path
    keys: Pseudonymizer
    sources: dict[int, dict[str, Any]]  # note_id -> source row (logical table, key, ...)
    reports: list[SyncReport]
    cdm: list[Cdm]  # after each run
    added: tuple[int, int]  # note ids of run 3: (structured, failing)
    failing_row: str  # src_row of the note whose structuring fails in run 3
    changed: int  # note id whose text run 4 changed
    changed_pt: str

    def src_row(self, note_id: int) -> str:
        source = self.sources[note_id]
        return self.keys.pseudonym("row", f"emr/{source['table']}/{source['key']}")


def _read(url: str) -> Cdm:
    engine = make_engine(url)
    with engine.connect() as conn:

        def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql))]

        notes = {r["note_id"]: r for r in rows("SELECT * FROM note")}
        nlp = rows("SELECT * FROM note_nlp")
        measurements = rows(
            f"SELECT * FROM measurement WHERE measurement_type_concept_id = {structuring.NLP}"
        )
        reports = {k: n for k, n in notes.items() if n["note_title"].endswith(REPORT_TABLE_SUFFIX)}
        cdm = Cdm(
            notes={k: n for k, n in notes.items() if k not in reports},
            nlp=[r for r in nlp if r["note_id"] not in reports],
            measurements=[
                m for m in measurements if not m["src_table"].endswith(REPORT_TABLE_SUFFIX)
            ],
            conditions={
                r["condition_occurrence_id"]: r for r in rows("SELECT * FROM condition_occurrence")
            },
            reports=reports,
            report_nlp=[r for r in nlp if r["note_id"] in reports],
            report_measurements=[
                m for m in measurements if m["src_table"].endswith(REPORT_TABLE_SUFFIX)
            ],
        )
    engine.dispose()
    return cdm


def _source_rows(hospital: Path) -> list[dict[str, Any]]:
    generation = json.loads((hospital / "truth" / "generation.json").read_text("utf-8"))
    out = []
    with sqlite3.connect(hospital / "emr.db") as db:
        for logical in NOTE_TABLES:
            spec = generation["emr_tables"][logical]
            cols = spec["columns"]
            key = cols.get("document_id") or cols.get("report_id")
            query = (
                f'SELECT "{key}", "{cols["text"]}", "{cols["admission_id"]}" FROM "{spec["table"]}"'
            )
            for rid, text, adm in db.execute(query):
                out.append(
                    {"logical": logical, "table": spec["table"], "key": str(rid), "text": text,
                     "adm": adm, "cols": cols}
                )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def pg_databases() -> Iterator[list[tuple[str, str]]]:
    """(server, name) of the PostgreSQL databases this module made (dropped after it)."""
    made: list[tuple[str, str]] = []
    yield made
    for server, name in made:
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _analysis_url(
    request: pytest.FixtureRequest, backend: str, home: Path, made: list[tuple[str, str]]
) -> str:
    if backend == "sqlite":
        return f"sqlite:///{home / 'analysis.db'}"
    server = str(request.getfixturevalue("pg_server_url"))
    name = f"oncofed_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    made.append((server, name))
    return sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(
    scope="module",
    params=[
        ("A", "sqlite"),
        pytest.param(("A", "postgresql"), marks=pytest.mark.postgres),
        ("B", "sqlite"),
    ],
    ids=["A-sqlite", "A-postgresql", "B-sqlite"],
)
def runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: list[tuple[str, str]],
) -> Iterator[Runs]:
    variant, backend = request.param
    hospital = tmp_path_factory.mktemp(f"structuring{variant}{backend}")
    write_hospital(hospital, patients=PATIENTS, seed=SEED, variant=get_variant(variant))
    (hospital / "mapping.yaml").write_text(mapping_text(variant), encoding="utf-8")
    home = hospital / "edge"
    home.mkdir()
    state, analysis = (
        f"sqlite:///{home / 'edge.db'}",
        _analysis_url(request, backend, home, pg_databases),
    )

    def sync(**kwargs: Any) -> SyncReport:
        report = run_sync(
            home=home,
            state_db_url=state,
            analysis_db_url=analysis,
            mapping_file=hospital / "mapping.yaml",
            **kwargs,
        )
        assert report.status == "finished"
        return report

    reports, cdm = [sync()], [_read(analysis)]
    keys = Pseudonymizer(SiteSecret.load_or_create(SiteSecret.path_in(home)))
    reports.append(sync())
    cdm.append(_read(analysis))

    # 3. two new pathology reports: copies of a loaded one under new keys
    sources = _source_rows(hospital)
    loaded = [
        r
        for r in sources
        if r["logical"] == "pathology_report"
        and keys.surrogate_id("row", f"emr/{r['table']}/{r['key']}") in cdm[0].notes
    ]
    staged = [r for r in loaded if _PT.search(r["text"])]  # lung reports carry a pTNM
    first, cols = staged[0], staged[0]["cols"]
    top = max(int(r["key"]) for r in sources if r["logical"] == "pathology_report")
    new_keys = (str(top + 1), str(top + 2))
    with sqlite3.connect(hospital / "emr.db") as db:
        for k in new_keys:
            db.execute(
                f'INSERT INTO "{first["table"]}" SELECT ?, "{cols["admission_id"]}", '
                f'"{cols["patient_id"]}", "{cols["report_date"]}", "{cols["text"]}" '
                f'FROM "{first["table"]}" WHERE "{cols["report_id"]}" = ?',
                (k, first["key"]),
            )
    failing_row = keys.pseudonym("row", f"emr/{first['table']}/{new_keys[1]}")
    real = structuring._extract

    def flaky(note: structuring.NoteIn) -> Extraction:
        if note.src_row == failing_row:
            raise RuntimeError("the extractor tripped")
        return real(note)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(structuring, "_extract", flaky)
        reports.append(sync())
    cdm.append(_read(analysis))
    good, bad = (keys.surrogate_id("row", f"emr/{first['table']}/{k}") for k in new_keys)

    # 4. one report's pT corrected and its PD-L1 result withdrawn, then everything read again
    target = staged[1]
    old = _PT.search(target["text"]).group(1)  # type: ignore[union-attr]
    new_pt = "T4" if old != "T4" else "T2a"
    with sqlite3.connect(hospital / "emr.db") as db:
        db.execute(
            f'UPDATE "{target["table"]}" SET "{cols["text"]}" = ? WHERE "{cols["report_id"]}" = ?',
            (_PDL1.sub("", target["text"].replace(f"p{old}", f"p{new_pt}", 1)), target["key"]),
        )
    reports.append(sync(full=True))
    cdm.append(_read(analysis))
    changed = keys.surrogate_id("row", f"emr/{target['table']}/{target['key']}")

    by_id = {keys.surrogate_id("row", f"emr/{r['table']}/{r['key']}"): r for r in sources}
    yield Runs(
        variant,
        hospital,
        keys,
        by_id,
        reports,
        cdm,
        (good, bad),
        failing_row,
        changed,
        new_pt,
    )


def _fields(row: dict[str, Any]) -> tuple[str, str]:
    parts = dict(p.split("=", 1) for p in row["term_modifiers"].split(";"))
    return parts["field"], parts["value"]


def _expected_rows(note: dict[str, Any], kind: str) -> int:
    ex = extract(kind, note["note_text"], detect_lang(note["note_text"]))
    n = 0
    for value in ex.fields.values():
        if isinstance(value, list):
            n += len(value)
        elif value is not None:
            n += 1
    return n


def test_every_row_points_into_its_stored_note_and_names_its_source(runs: Runs) -> None:
    cdm = runs.cdm[0]
    assert len(cdm.nlp) > 3 * PATIENTS
    for row in cdm.nlp:
        note = cdm.notes[row["note_id"]]
        start, end = (int(x) for x in row["offset"].split("-"))
        assert note["note_text"][start:end] == row["lexical_variant"], row
        assert row["lexical_variant"] in row["snippet"] and len(row["snippet"]) <= 250
        assert row["snippet"] in note["note_text"]  # scrubbed text only
        source = runs.sources[row["note_id"]]
        assert (row["src_system"], row["src_table"]) == ("emr", source["table"])
        assert row["src_row"] == runs.src_row(row["note_id"])
        assert row["nlp_system"].startswith(f"oncofed-structure {KIND[source['logical']]} ")
        assert 0 < row["confidence"] <= 1
        assert row["term_exists"] in ("Y", "N")
    assert len({r["note_nlp_id"] for r in cdm.nlp}) == len(cdm.nlp)


def test_one_row_per_value_of_every_loaded_report(runs: Runs) -> None:
    cdm, report = runs.cdm[0], runs.reports[0]
    per_note = Counter(r["note_id"] for r in cdm.nlp)
    kinds: Counter[str] = Counter()
    for note_id, note in cdm.notes.items():
        kind = KIND[runs.sources[note_id]["logical"]]
        kinds[kind] += 1
        assert per_note[note_id] == _expected_rows(note, kind), (kind, note["note_text"])
    assert {k: v for k, v in report.structuring["notes"].items() if k != "petct"} == dict(kinds)
    assert kinds["pathology"] >= 3 and kinds["discharge"] >= PATIENTS // 2
    assert report.structuring["note_nlp"] == len(cdm.nlp) + len(cdm.report_nlp)
    assert report.structuring["failed"] == 0


def test_modifiers_are_linked_to_the_persons_matching_cancer_diagnosis(runs: Runs) -> None:
    cdm, report = runs.cdm[0], runs.reports[0]
    assert cdm.measurements
    assert report.structuring["modifiers"] == len(cdm.measurements)
    note_of = {runs.src_row(n): note for n, note in cdm.notes.items()}
    lobes = {  # note -> the lobe its report names
        r["note_id"]: _fields(r)[1] for r in cdm.nlp if _fields(r)[0] == "lobe"
    }
    for m in cdm.measurements:
        assert m["meas_event_field_concept_id"] == CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID
        dx = cdm.conditions[m["measurement_event_id"]]
        assert dx["person_id"] == m["person_id"]
        note = note_of[m["src_row"]]
        assert note["person_id"] == m["person_id"]
        assert m["measurement_date"] == note["note_date"]
        if note["note_id"] in lobes:
            assert dx["condition_source_value"] == LOBE_ICD10[lobes[note["note_id"]]]
        assert 0 < m["confidence"] <= 1
    assert report.structuring["unlinked_modifiers"] == 0


def test_facts_match_the_ground_truth(runs: Runs) -> None:
    """ACCURACY (needs the pathology rules): the pT, pN, pM modifiers and the ICD-O-3
    morphology read from each lung pathology report are the generator's truth."""
    truth = {
        p["patient_id"]: p
        for p in map(
            json.loads, (runs.hospital / "truth" / "patients.jsonl").read_text("utf-8").splitlines()
        )
    }
    cdm = runs.cdm[0]
    generation = json.loads((runs.hospital / "truth" / "generation.json").read_text("utf-8"))
    spec = generation["emr_tables"]["pathology_report"]
    with sqlite3.connect(runs.hospital / "emr.db") as db:
        patient_of = {
            str(k): v
            for k, v in db.execute(
                f'SELECT "{spec["columns"]["report_id"]}", "{spec["columns"]["patient_id"]}" '
                f'FROM "{spec["table"]}"'
            )
        }
    checked = right = 0
    for note_id in cdm.notes:
        source = runs.sources[note_id]
        if source["logical"] != "pathology_report":
            continue
        p = truth[patient_of[source["key"]]]
        if p["site"] != "lung" or p["t"] is None:
            continue
        row = runs.src_row(note_id)
        got = {
            m["measurement_source_value"]: m["value_source_value"]
            for m in cdm.measurements
            if m["src_row"] == row
        }
        nlp = dict(_fields(r) for r in cdm.nlp if r["note_id"] == note_id)
        for name, want in (("pT", p["t"]), ("pN", p["n"]), ("pM", p["m"])):
            checked += 1
            right += got.get(name) == want
        checked += 1
        right += nlp.get("icdo3_morphology") == p["morphology"]
    assert checked >= 12
    assert right / checked >= 0.95, (right, checked)


def test_a_run_without_new_notes_writes_nothing(runs: Runs) -> None:
    first, second = runs.cdm[0], runs.cdm[1]
    assert runs.reports[1].structuring["notes"] == {}
    assert runs.reports[1].structuring["note_nlp"] == 0
    assert sorted(r["note_nlp_id"] for r in second.nlp) == sorted(
        r["note_nlp_id"] for r in first.nlp
    )
    assert sorted(m["measurement_id"] for m in second.measurements) == sorted(
        m["measurement_id"] for m in first.measurements
    )


def test_only_new_notes_are_structured_and_a_failure_does_not_stop_the_run(runs: Runs) -> None:
    before, after, report = runs.cdm[1], runs.cdm[2], runs.reports[2]
    good, bad = runs.added
    assert set(after.notes) - set(before.notes) == {good, bad}  # both loaded
    assert report.structuring["notes"] == {"pathology": 1}
    assert report.structuring["failed"] == 1
    (failure,) = report.structuring["failures"]
    assert failure["src_row"] == runs.failing_row
    assert failure["kind"] == "pathology" and "RuntimeError" in failure["error"]
    assert runs.failing_row not in {r["src_row"] for r in after.nlp}
    assert runs.failing_row not in {m["src_row"] for m in after.measurements}
    new_rows = [r for r in after.nlp if r["note_id"] not in before.notes]
    assert {r["note_id"] for r in new_rows} == {good}
    assert len(new_rows) == _expected_rows(after.notes[good], "pathology")
    assert len(after.nlp) == len(before.nlp) + len(new_rows)
    new_measures = len(after.measurements) - len(before.measurements)
    assert new_measures == report.structuring["modifiers"] > 0
    assert report.balanced
    pathology = [
        c for (s, t), c in report.counts.items() if t == runs.sources[runs.changed]["table"]
    ]
    assert pathology[0].loaded == 2 and pathology[0].read == 2


def test_a_changed_note_replaces_its_facts(runs: Runs) -> None:
    before, after, report = runs.cdm[2], runs.cdm[3], runs.reports[3]
    # read again in full: only the report whose stored text changed is structured
    assert report.structuring["notes"] == {"pathology": 1}
    assert report.structuring["failed"] == 0
    # the withdrawn PD-L1 value leaves no row behind; nothing is doubled
    assert len(after.nlp) == len(before.nlp) - 1
    assert len(after.measurements) == len(before.measurements) - 1
    row = runs.src_row(runs.changed)
    mine = {m["measurement_source_value"]: m for m in after.measurements if m["src_row"] == row}
    assert mine["pT"]["value_source_value"] == runs.changed_pt
    assert "PD-L1_TPS" not in mine
    assert "PD-L1_TPS" in {
        m["measurement_source_value"] for m in before.measurements if m["src_row"] == row
    }
    fields = [_fields(r)[0] for r in after.nlp if r["note_id"] == runs.changed]
    assert "pdl1_tps_percent" not in fields and len(fields) == len(set(fields))
    assert report.balanced


def test_imaging_reports_become_structured_notes(runs: Runs) -> None:
    """Each study's findings and impression enter as one scrubbed note of its own;
    PET-CT reports are structured into lesion facts of their site."""
    cdm, report = runs.cdm[0], runs.reports[0]
    (studies,) = [c for (s, _), c in report.counts.items() if s == "pacs"]
    assert len(cdm.reports) == studies.loaded > 0  # every loaded study has a report
    pet = [n for n in cdm.reports.values() if n["note_text"].startswith("PET-CT")]
    assert report.structuring["notes"].get("petct", 0) == len(pet)
    assert report.structuring["not_structured"].get("other_kind", 0) >= len(cdm.reports) - len(
        pet
    )  # CT reports: stored, not a kind the structurer reads
    for note in cdm.reports.values():
        text = note["note_text"]
        assert ("检查所见" in text or "FINDINGS:" in text) and note["person_id"]
    for row in cdm.report_nlp:
        text = cdm.reports[row["note_id"]]["note_text"]
        start, end = (int(x) for x in row["offset"].split("-"))
        assert text[start:end] == row["lexical_variant"]
        assert row["nlp_system"].startswith("oncofed-structure petct ")
    if pet:  # ACCURACY (needs the PET-CT rules): every PET-CT report yields lesion facts
        per_note = Counter(m["src_row"] for m in cdm.report_measurements)
        assert len(per_note) == len(pet)
        suv = [m for m in cdm.report_measurements if m["measurement_source_value"] == "SUVmax"]
        assert suv and all(m["value_as_number"] > 0 for m in suv)
    # the second run found the same reports stored and structured nothing again
    assert runs.reports[1].structuring["notes"] == {}
    assert set(runs.cdm[1].reports) == set(cdm.reports)
