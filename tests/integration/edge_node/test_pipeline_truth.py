"""The whole edge sync against the synthetic hospitals' ground truth.

Hospitals A, B and C (`ops.synth`) are generated once each, with the problems
the generator injects (duplicate master records, stays with dates out of order,
missing and impossible lab values, one value in two units, one test in the EMR
and the LIS) and the truth about them (`truth/`). Each is synced once per
backend (analysis and state databases both on SQLite, both on PostgreSQL) with
dates kept, then once more (which must change nothing), and once more into new
databases of the same backend with dates shifted (the default policy); every
test measures one of those runs against the truth.

CDM keys are recomputed from the site secret the sync created in its home
(`pipeline.key`), the way the edge derives them: a patient's person is
`surrogate_id("person", pseudonym("person", canonical_patient_key(pid, rid)))`,
a stay's visit is `surrogate_id("admission", admission_id)`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pytest
import sqlalchemy as sa

from edge_node.pipeline.context import OPERATORS
from edge_node.pipeline.deid import DeidPolicy, Pseudonymizer, SiteSecret
from edge_node.pipeline.linkage import canonical_patient_key
from edge_node.pipeline.sealed import open_quarantine
from edge_node.pipeline.state import MergeConflict, QuarantinedRecord
from edge_node.pipeline.structuring import NLP
from edge_node.pipeline.sync import SyncReport, run_sync
from edge_node.security.broker import reidentify
from edge_node.security.users import Role, add_user
from edge_node.security.vault import Vault, require_vault
from edge_node.store.database import open_state_db
from ops.synth.hospital import write_hospital
from ops.synth.labs import LAB_SPECS, UNIT_FACTORS, item_code
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.db import make_engine
from shared_cdm.errors import Unauthenticated
from shared_cdm.models import Base
from shared_cdm.vocab import load_default

pytestmark = pytest.mark.slow

VARIANTS = ("A", "B", "C")
BACKENDS = ("sqlite", "postgresql")
PATIENTS = 300
SEED = 3
LAB_REL_TOL = 0.02  # values written in another unit agree to the precision they were written with
MAX_SHIFT_DAYS = 180  # DeidPolicy's default
LIS, LIS_TABLE = "lis", "lab_results"
PACS, PACS_TABLE = "pacs", "studies"
CDM_TABLES = (
    "person",
    "visit_occurrence",
    "condition_occurrence",
    "measurement",
    "drug_exposure",
    "procedure_occurrence",
    "note",
    "death",
    "observation_period",
    "value_provenance",
)
DATE_COLUMNS = {
    "visit_occurrence": ("visit_start_date", "visit_end_date"),
    "condition_occurrence": ("condition_start_date",),
    "measurement": ("measurement_date", "measurement_datetime"),
    "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date"),
    "procedure_occurrence": ("procedure_date",),
    "note": ("note_date",),
    "death": ("death_date",),
    "observation_period": ("observation_period_start_date", "observation_period_end_date"),
}
PERSON_TABLES = tuple(t for t in CDM_TABLES if t != "value_provenance")
VISIT_TABLES = (
    "visit_occurrence",
    "condition_occurrence",
    "measurement",
    "drug_exposure",
    "procedure_occurrence",
    "note",
)
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")
_RESIDENT_ID = re.compile(rb"(?=([0-9]{17}[0-9Xx]))")  # every 18-character window
# column types that cannot hold text; every other column of the analysis database is read
_NOT_TEXT = (sa.Integer, sa.Numeric, sa.Date, sa.DateTime, sa.Boolean)
_ZH_DATE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")

Key = tuple[int, int | None, str, date]  # a lab fact: person, visit, analyte, day


# -- the generated hospital and its truth ----------------------------------------------


def _parse_day(text: str, style: str) -> date:
    if style == "iso":
        return date.fromisoformat(text)
    if style == "dmy":
        return datetime.strptime(text, "%d/%m/%Y").date()
    match = _ZH_DATE.fullmatch(text)
    assert match is not None, text
    year, month, day = (int(g) for g in match.groups())
    return date(year, month, day)


@dataclass
class Hospital:
    variant: str
    root: Path
    generation: dict[str, Any]
    truth: dict[str, dict[str, Any]]  # patient id -> truth/patients.jsonl row
    problems: list[dict[str, Any]]
    labs: list[dict[str, str]]  # truth/labs.csv
    emr: dict[str, list[dict[str, Any]]]  # logical table -> rows under logical field names
    emr_counts: dict[str, int]  # physical table -> rows
    lis: list[dict[str, str]]  # logical field names
    pacs_rows: int

    @classmethod
    def load(cls, root: Path, variant: str) -> Hospital:
        generation = json.loads((root / "truth" / "generation.json").read_text(encoding="utf-8"))
        truth = {
            row["patient_id"]: row
            for row in map(json.loads, _lines(root / "truth" / "patients.jsonl"))
        }
        problems = [json.loads(line) for line in _lines(root / "truth" / "problems.jsonl")]
        with (root / "truth" / "labs.csv").open(encoding="utf-8", newline="") as f:
            labs = list(csv.DictReader(f))
        emr: dict[str, list[dict[str, Any]]] = {}
        counts: dict[str, int] = {}
        with sqlite3.connect(root / "emr.db") as db:
            for logical, spec in generation["emr_tables"].items():
                table, columns = spec["table"], spec["columns"]
                counts[table] = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                if logical in ("patient", "admission", "exam_result", "follow_up"):
                    names = list(columns)
                    cols = ", ".join(f'"{columns[n]}"' for n in names)
                    emr[logical] = [
                        dict(zip(names, row, strict=True))
                        for row in db.execute(f'SELECT {cols} FROM "{table}"')
                    ]
        lis_spec = generation["lis"]
        text = (root / lis_spec["file"]).read_text(encoding=lis_spec["encoding"])
        back = {column: name for name, column in lis_spec["columns"].items()}
        lis = [{back[k]: v for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]
        pacs_text = (root / generation["pacs"]["file"]).read_text(encoding="utf-8")
        pacs_rows = sum(1 for _ in csv.reader(io.StringIO(pacs_text))) - 1
        return cls(variant, root, generation, truth, problems, labs, emr, counts, lis, pacs_rows)

    @property
    def mapping_file(self) -> Path:
        return self.root / "mapping.yaml"

    def day(self, text: str) -> date:
        return _parse_day(text, self.generation["date_style"])

    def problem_ids(self, kind: str) -> list[list[str]]:
        return [p["record_ids"] for p in self.problems if p["kind"] == kind]

    @cached_property
    def cancer(self) -> set[str]:
        return {pid for pid, t in self.truth.items() if t["has_cancer"]}

    @cached_property
    def bad_admissions(self) -> set[str]:
        return {ids[0] for ids in self.problem_ids("dates_out_of_order")}

    @cached_property
    def resident_ids(self) -> dict[str, str | None]:
        return {row["patient_id"]: row["resident_id"] for row in self.emr["patient"]}

    @cached_property
    def admissions(self) -> dict[str, dict[str, Any]]:
        return {row["admission_id"]: row for row in self.emr["admission"]}

    @cached_property
    def lis_by_id(self) -> dict[str, dict[str, str]]:
        return {row["lab_id"]: row for row in self.lis}

    @cached_property
    def analyte_of_item(self) -> dict[str, str]:
        return {item_code(self.variant, code): code for code in LAB_SPECS}

    @property
    def exam_table(self) -> str:
        return str(self.generation["emr_tables"]["exam_result"]["table"])

    def admission_ids_of(self, pid: str) -> list[str]:
        return [str(a) for a in self.truth[pid]["admission_ids"]]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# -- one sync of a hospital, and what it left ------------------------------------------


@dataclass
class Run:
    hospital: Hospital
    backend: str
    home: Path
    state_url: str
    analysis_url: str
    report: SyncReport
    rerun: SyncReport
    dumps: dict[str, list[dict[str, Any]]]  # CDM tables after the first run
    redumps: dict[str, list[dict[str, Any]]]  # ... and after the second
    quarantine: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]

    @cached_property
    def pseudonymizer(self) -> Pseudonymizer:
        return Pseudonymizer(SiteSecret.load_or_create(SiteSecret.path_in(self.home)))

    def person_key(self, pid: str) -> str:
        rid = self.hospital.resident_ids[pid]
        return self.pseudonymizer.pseudonym("person", canonical_patient_key(pid, rid))

    def person_id(self, pid: str) -> int:
        return self.pseudonymizer.surrogate_id("person", self.person_key(pid))

    def visit_id(self, admission_id: str) -> int:
        return self.pseudonymizer.surrogate_id("admission", admission_id)

    def stay_visit(self, admission_id: str) -> int | None:
        """The visit a record of this stay belongs to (none for a stay that is not loaded)."""
        return None if admission_id in self.hospital.bad_admissions else self.visit_id(admission_id)

    def row_pseudonym(self, source: str, table: str, key: str) -> str:
        return self.pseudonymizer.pseudonym("row", f"{source}/{table}/{key}")

    def lis_key(self, lab_id: str) -> Key:
        row = self.hospital.lis_by_id[lab_id]
        return (
            self.person_id(row["patient_id"]),
            self.stay_visit(row["admission_id"]),
            self.hospital.analyte_of_item[row["item_code"]],
            self.hospital.day(row["report_date"]),
        )

    @cached_property
    def lab_measurements(self) -> list[dict[str, Any]]:
        """Measurements from the lab systems, not the facts structuring read from notes."""
        return [m for m in self.dumps["measurement"] if m["measurement_type_concept_id"] != NLP]

    @cached_property
    def measurements(self) -> dict[Key, list[dict[str, Any]]]:
        out: dict[Key, list[dict[str, Any]]] = defaultdict(list)
        for m in self.lab_measurements:
            key = (
                m["person_id"],
                m["visit_occurrence_id"],
                m["measurement_source_value"],
                m["measurement_date"],
            )
            out[key].append(m)
        return out

    def quarantined(self, source: str, table: str) -> dict[str, str]:
        return {
            q["row_key"]: q["code"]
            for q in self.quarantine
            if q["source"] == source and q["source_table"] == table
        }


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(url)
    try:
        out: dict[str, list[dict[str, Any]]] = {}
        with engine.connect() as conn:
            for name in CDM_TABLES:
                table = Base.metadata.tables[name]
                keys = [c.name for c in table.primary_key.columns]
                rows = [dict(r._mapping) for r in conn.execute(sa.select(table))]
                out[name] = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
        return out
    finally:
        engine.dispose()


def _state_rows(url: str, table: Any) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(table.__table__))]
    finally:
        engine.dispose()


def _sync(
    hospital: Hospital, home: Path, state: str, analysis: str, dates: Literal["shift", "keep"]
) -> SyncReport:
    return run_sync(
        home=home,
        state_db_url=state,
        analysis_db_url=analysis,
        mapping_file=hospital.mapping_file,
        deid_policy=DeidPolicy(dates=dates),
    )


@contextmanager
def _databases(
    backend: str, request: pytest.FixtureRequest, folder: Path
) -> Iterator[tuple[str, str]]:
    """(state URL, analysis URL): two fresh databases of `backend`, as conftest makes them."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'edge.db'}", f"sqlite:///{folder / 'analysis.db'}"
        return
    server = str(request.getfixturevalue("pg_server_url"))
    names = [f"oncofed_t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    base = sa.engine.make_url(server)
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        state, analysis = (
            base.set(database=n).render_as_string(hide_password=False) for n in names
        )
        yield state, analysis
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Hospitals:
    """The generated hospitals of this module, each generated on first use."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.made: dict[str, Hospital] = {}

    def get(self, variant: str) -> Hospital:
        if variant not in self.made:
            root = self.tmp_path_factory.mktemp(f"hospital{variant}")
            write_hospital(root, patients=PATIENTS, seed=SEED, variant=get_variant(variant))
            (root / "mapping.yaml").write_text(mapping_text(variant), encoding="utf-8")
            self.made[variant] = Hospital.load(root, variant)
        return self.made[variant]


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> Hospitals:
    return Hospitals(tmp_path_factory)


# One parameter for both, in this order: each hospital is generated once and each
# (hospital, backend) synced once, however pytest groups module-scoped parameters.
@pytest.fixture(
    scope="module",
    params=[(v, b) for v in VARIANTS for b in BACKENDS],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def run(
    request: pytest.FixtureRequest,
    hospitals: Hospitals,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """A hospital synced with dates kept (analysis and state databases on one backend),
    then synced again."""
    variant, backend = request.param
    hospital = hospitals.get(variant)
    folder = tmp_path_factory.mktemp(f"edge{variant}{backend}")
    home = folder / "home"
    with _databases(backend, request, folder) as (state, analysis):
        report = _sync(hospital, home, state, analysis, "keep")
        dumps = _dump(analysis)
        # reasons and rows are sealed: opened with the vault key (conftest's)
        vault = require_vault(home)
        quarantine = [open_quarantine(vault, q) for q in _state_rows(state, QuarantinedRecord)]
        conflicts = _state_rows(state, MergeConflict)
        rerun = _sync(hospital, home, state, analysis, "keep")
        redumps = _dump(analysis)
        yield Run(
            hospital,
            backend,
            home,
            state,
            analysis,
            report,
            rerun,
            dumps,
            redumps,
            quarantine,
            conflicts,
        )


@pytest.fixture(scope="module")
def shifted(
    run: Run, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """The CDM of the same hospital synced with the default policy (dates shifted), from
    the same edge home as `run` (same secret, so the same keys) into new databases of
    the same backend."""
    folder = tmp_path_factory.mktemp(f"shifted{run.hospital.variant}{run.backend}")
    with _databases(run.backend, request, folder) as (state, analysis):
        run_sync(
            home=run.home,
            state_db_url=state,
            analysis_db_url=analysis,
            mapping_file=run.hospital.mapping_file,
        )
        return _dump(analysis)


def _ids(run: Run, table: str) -> set[int]:
    return {int(r["person_id"]) for r in run.dumps[table]}


def _figures(run: Run) -> str:
    q = Counter(q["code"] for q in run.quarantine)
    merged = sum(c.merged for c in run.report.counts.values())
    return (
        f"{run.hospital.variant}/{run.backend}: persons={len(run.dumps['person'])} "
        f"visits={len(run.dumps['visit_occurrence'])} "
        f"measurements={len(run.dumps['measurement'])} merged={merged} "
        f"quarantined={dict(sorted(q.items()))} conflicts={len(run.conflicts)}"
    )


# -- persons ----------------------------------------------------------------------------


def test_person_table_holds_exactly_the_cancer_patients(run: Run) -> None:
    h = run.hospital
    print(_figures(run))
    expected = {run.person_id(pid): pid for pid in h.cancer}
    assert len(expected) == len(h.cancer)  # no two patients share a person
    persons = {int(p["person_id"]): p for p in run.dumps["person"]}
    assert set(persons) == set(expected)
    assert len(run.dumps["person"]) == len(h.cancer)
    for person_id, pid in expected.items():
        person, truth = persons[person_id], h.truth[pid]
        assert person["person_source_value"] == run.person_key(pid)
        assert person["year_of_birth"] == date.fromisoformat(truth["birth_date"]).year
        assert person["gender_concept_id"] == (8507 if truth["male"] else 8532)


def test_duplicate_master_records_are_one_person(run: Run) -> None:
    h = run.hospital
    pairs = [(pid, dup) for pid, t in h.truth.items() for dup in t["duplicate_patient_ids"]]
    assert [ids for ids in h.problem_ids("duplicate_patient")] == [[p, d] for p, d in pairs]
    assert {row["patient_id"] for row in h.emr["patient"]} == set(h.truth) | {d for _, d in pairs}
    persons = {int(p["person_id"]) for p in run.dumps["person"]}
    for pid, dup in pairs:
        assert h.resident_ids[dup] == h.resident_ids[pid]
        assert run.person_id(dup) == run.person_id(pid)
        assert (run.person_id(pid) in persons) == (pid in h.cancer)


def test_no_row_of_a_non_cancer_patient_reaches_the_cdm(run: Run) -> None:
    h = run.hospital
    others = {run.person_id(pid) for pid in set(h.truth) - h.cancer}
    assert others, "every hospital has patients without cancer"
    for table in PERSON_TABLES:
        assert not _ids(run, table) & others, table
    their_stays = {
        run.visit_id(a) for pid in set(h.truth) - h.cancer for a in h.admission_ids_of(pid)
    }
    for table in VISIT_TABLES:
        column = "visit_occurrence_id"
        assert not {r[column] for r in run.dumps[table]} & their_stays, table


# -- visits -----------------------------------------------------------------------------


def test_admissions_of_cancer_patients_are_their_visits(run: Run) -> None:
    h = run.hospital
    for pid, truth in h.truth.items():
        assert sorted(truth["admission_ids"]) == sorted(
            a for a, row in h.admissions.items() if row["patient_id"] == pid
        )
    expected = {
        run.visit_id(a): (
            run.person_id(pid),
            h.day(row["admit_date"]),
            h.day(row["discharge_date"]),
        )
        for pid in h.cancer
        for a in h.admission_ids_of(pid)
        if a not in h.bad_admissions
        for row in [h.admissions[a]]
    }
    actual = {
        v["visit_occurrence_id"]: (v["person_id"], v["visit_start_date"], v["visit_end_date"])
        for v in run.dumps["visit_occurrence"]
    }
    assert len(actual) == len(run.dumps["visit_occurrence"])
    assert actual == expected


def test_admissions_with_dates_out_of_order_are_quarantined_not_visits(run: Run) -> None:
    h = run.hospital
    assert h.bad_admissions, "the generator injects stays with dates out of order"
    admission_table = h.generation["emr_tables"]["admission"]["table"]
    assert run.quarantined("emr", admission_table) == dict.fromkeys(
        h.bad_admissions, "dates_out_of_order"
    )
    bad_visits = {run.visit_id(a) for a in h.bad_admissions}
    for table in VISIT_TABLES:
        assert not {r["visit_occurrence_id"] for r in run.dumps[table]} & bad_visits, table


# -- labs -------------------------------------------------------------------------------


def test_every_lab_value_is_in_the_standard_unit_on_its_visit(run: Run) -> None:
    h = run.hospital
    vocab = load_default()
    wrong: list[str] = []
    checked = 0
    for lab in h.labs:
        if lab["patient_id"] not in h.cancer or lab["problem"]:
            continue
        checked += 1
        key = run.lis_key(lab["lab_id"])
        assert key[:3] == (
            run.person_id(lab["patient_id"]),
            run.stay_visit(lab["admission_id"]),
            lab["analyte"],
        )
        found = run.measurements.get(key, [])
        if len(found) != 1:
            wrong.append(f"{lab['lab_id']}: {len(found)} measurements")
            continue
        m, standard = found[0], float(lab["standard_value"])
        analyte = vocab.analyte(lab["analyte"])
        assert analyte is not None
        if m["unit_source_value"] != analyte.standard_unit:
            wrong.append(f"{lab['lab_id']}: unit {m['unit_source_value']!r}")
        value = m["value_as_number"]
        written = lab["written_value"]
        if written.startswith("<"):  # below the detection limit: the limit, with "<"
            limit = float(written[1:]) / UNIT_FACTORS.get((lab["analyte"], lab["written_unit"]), 1)
            ok = (
                m["operator_concept_id"] == OPERATORS["<"]
                and value is not None
                and abs(value - limit) <= LAB_REL_TOL * limit
                and standard < limit
            )
        else:
            ok = (
                m["operator_concept_id"] is None
                and value is not None
                and abs(value - standard) <= LAB_REL_TOL * standard
            )
        if not ok:
            wrong.append(
                f"{lab['lab_id']} {lab['analyte']} {written} {lab['written_unit']}: "
                f"{m['operator_concept_id']} {value} (truth {standard})"
            )
    assert checked > 1000
    assert not wrong, f"{len(wrong)} of {checked} labs wrong, e.g. {wrong[:10]}"


def test_missing_and_impossible_values_are_quarantined(run: Run) -> None:
    h = run.hospital
    missing = [ids[0] for ids in h.problem_ids("missing_value")]
    impossible = [ids[0] for ids in h.problem_ids("impossible_value")]
    assert missing and impossible
    expected = dict.fromkeys(missing, "missing_value") | dict.fromkeys(
        impossible, "implausible_value"
    )
    assert run.quarantined(LIS, LIS_TABLE) == expected
    for lab_id in missing + impossible:
        pid = h.lis_by_id[lab_id]["patient_id"]
        if pid in h.cancer:
            assert run.lis_key(lab_id) not in run.measurements, lab_id


def test_sources_are_ranked_by_missing_rate_lis_first(run: Run) -> None:
    ranks = run.report.ranks
    assert set(ranks) == {f"{LIS}/{LIS_TABLE}", f"emr/{run.hospital.exam_table}"}
    assert ranks[f"{LIS}/{LIS_TABLE}"] == 0
    assert ranks[f"emr/{run.hospital.exam_table}"] > 0


def test_a_test_in_the_emr_and_the_lis_is_one_measurement_based_on_the_lis(run: Run) -> None:
    h = run.hospital
    exams = {str(row["record_id"]): row for row in h.emr["exam_result"]}
    pairs = h.problem_ids("duplicate_across_systems")
    assert pairs and len(pairs) == len(exams)  # every ward entry repeats a LIS result
    for exam_id, lab_id in pairs:
        exam, key = exams[exam_id], run.lis_key(lab_id)
        # the EMR copy is the same fact: same stay, analyte and day
        assert exam["admission_id"] == h.lis_by_id[lab_id]["admission_id"]
        assert h.day(exam["report_date"]) == key[3]
        found = run.measurements.get(key, [])
        assert len(found) == 1, (exam_id, lab_id, len(found))
        m = found[0]
        assert (m["src_system"], m["src_table"]) == (LIS, LIS_TABLE), (exam_id, lab_id)
        assert m["src_row"] == run.row_pseudonym(LIS, LIS_TABLE, lab_id)


def test_one_value_in_two_units_is_one_measurement(run: Run) -> None:
    h = run.hospital
    truth = {lab["lab_id"]: lab for lab in h.labs}
    pairs = [ids for ids in h.problem_ids("same_value_two_units")]
    assert pairs
    for lab_id, twin_id in pairs:
        key = run.lis_key(lab_id)
        assert run.lis_key(twin_id) == key
        if h.lis_by_id[lab_id]["patient_id"] not in h.cancer:
            assert key not in run.measurements
            continue
        found = run.measurements.get(key, [])
        assert len(found) == 1, (lab_id, twin_id, len(found))
        m, standard = found[0], float(truth[lab_id]["standard_value"])
        assert m["src_system"] == LIS
        assert m["src_row"] in {run.row_pseudonym(LIS, LIS_TABLE, i) for i in (lab_id, twin_id)}
        assert abs(m["value_as_number"] - standard) <= LAB_REL_TOL * standard


def test_measurements_are_the_distinct_lab_facts_without_conflicts(run: Run) -> None:
    h = run.hospital
    quarantined = set(run.quarantined(LIS, LIS_TABLE))
    facts = {
        run.lis_key(row["lab_id"])
        for row in h.lis
        if row["patient_id"] in h.cancer and row["lab_id"] not in quarantined
    }
    partner = {exam_id: lab_id for exam_id, lab_id in h.problem_ids("duplicate_across_systems")}
    for row in h.emr["exam_result"]:
        stay = h.admissions[row["admission_id"]]
        lab_key = run.lis_key(partner[str(row["record_id"])])
        facts.add(
            (
                run.person_id(stay["patient_id"]),
                run.stay_visit(row["admission_id"]),
                lab_key[2],
                h.day(row["report_date"]),
            )
        )
    assert len(run.lab_measurements) == len(facts)
    assert set(run.measurements) == facts
    assert run.conflicts == []
    assert run.report.conflicts == 0


# -- counts -----------------------------------------------------------------------------


def test_counts_add_up_for_every_source_table(run: Run) -> None:
    h = run.hospital
    counts = run.report.counts
    expected_reads = {("emr", table): n for table, n in h.emr_counts.items()}
    expected_reads[(LIS, LIS_TABLE)] = len(h.lis)
    expected_reads[(PACS, PACS_TABLE)] = h.pacs_rows
    mapped = set(run.report.targets)
    assert set(counts) == mapped
    assert {k: c.read for k, c in counts.items()} == {k: expected_reads[k] for k in mapped}
    for key, c in counts.items():
        assert c.error is None, (key, c.error)
        assert c.read == c.skipped + c.loaded + c.merged + c.quarantined, (key, c.as_dict())
    assert run.report.balanced
    assert run.report.status == "finished"
    # the LIS: quarantined rows are the problem rows, skipped the other patients' good rows
    lis = counts[(LIS, LIS_TABLE)]
    bad = set(run.quarantined(LIS, LIS_TABLE))
    assert lis.quarantined == len(bad)
    assert lis.skipped == sum(
        1 for r in h.lis if r["patient_id"] not in h.cancer and r["lab_id"] not in bad
    )
    exam = counts[("emr", h.exam_table)]
    assert lis.loaded + lis.merged + exam.loaded + exam.merged == (
        len(h.lis) - lis.skipped - lis.quarantined + len(h.emr["exam_result"])
    )
    # the patient master: one base row per person, duplicates of cancer patients merged
    patient = counts[("emr", h.generation["emr_tables"]["patient"]["table"])]
    assert patient.loaded == len(h.cancer)
    assert patient.merged == sum(len(h.truth[p]["duplicate_patient_ids"]) for p in h.cancer)
    admission = counts[("emr", h.generation["emr_tables"]["admission"]["table"])]
    assert admission.quarantined == len(h.bad_admissions)
    assert admission.loaded == len(run.dumps["visit_occurrence"])


def test_a_second_sync_reads_nothing_and_changes_nothing(run: Run) -> None:
    again = run.rerun
    assert again.status == "finished"
    assert set(again.counts) == set(run.report.counts)
    for key, c in again.counts.items():
        assert c.error is None, key
        assert (c.read, c.skipped, c.loaded, c.merged, c.quarantined) == (0, 0, 0, 0, 0), key
    assert again.persons == 0
    assert again.conflicts == 0
    for table in CDM_TABLES:
        before = sorted(repr(tuple(r.values())) for r in run.dumps[table])
        after = sorted(repr(tuple(r.values())) for r in run.redumps[table])
        assert after == before, table


# -- dates shifted ----------------------------------------------------------------------


def _primary_key(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in Base.metadata.tables[table].primary_key.columns)


def test_shifted_dates_move_each_person_by_one_offset_and_keep_intervals(
    run: Run, shifted: dict[str, list[dict[str, Any]]]
) -> None:
    h = run.hospital
    kept = run.dumps
    keys = {int(p["person_id"]): str(p["person_source_value"]) for p in shifted["person"]}
    assert set(keys) == {int(p["person_id"]) for p in kept["person"]}
    offsets = {
        pid: run.pseudonymizer.date_shift_days(key, MAX_SHIFT_DAYS) for pid, key in keys.items()
    }
    assert all(0 < abs(d) <= MAX_SHIFT_DAYS for d in offsets.values())
    assert len(set(offsets.values())) > len(offsets) // 2  # per person, not one for the site
    seen: dict[int, set[int]] = defaultdict(set)
    dates = unchanged = 0
    for table, columns in DATE_COLUMNS.items():
        before = {_primary_key(table, r): r for r in kept[table]}
        after = {_primary_key(table, r): r for r in shifted[table]}
        assert set(after) == set(before), table
        for pk, row in after.items():
            for column in columns:
                new, old = row[column], before[pk][column]
                assert (new is None) == (old is None), (table, column)
                if new is None:
                    continue
                delta = new - old
                assert delta == timedelta(days=delta.days), (table, column, new, old)
                seen[int(row["person_id"])].add(delta.days)
                dates += 1
                unchanged += delta.days == 0
    assert dates > 10_000
    assert unchanged == 0  # the shift is never 0, so no date is the true one
    assert {pid: s for pid, s in seen.items()} == {pid: {offsets[pid]} for pid in seen}
    patient_of = {run.person_id(pid): pid for pid in h.cancer}
    for p in shifted["person"]:
        birth = date.fromisoformat(h.truth[patient_of[p["person_id"]]]["birth_date"])
        assert p["year_of_birth"] == (birth + timedelta(days=offsets[p["person_id"]])).year
    # death - first visit is the truth's
    first_visit: dict[int, date] = {}
    for v in shifted["visit_occurrence"]:
        pid = v["person_id"]
        first_visit[pid] = min(first_visit.get(pid, v["visit_start_date"]), v["visit_start_date"])
    deaths = {d["person_id"]: d["death_date"] for d in shifted["death"]}
    checked = 0
    for pid in h.cancer:
        truth = h.truth[pid]
        valid = [
            h.day(h.admissions[a]["admit_date"])
            for a in h.admission_ids_of(pid)
            if a not in h.bad_admissions
        ]
        person = run.person_id(pid)
        assert (person in deaths) == bool(truth["event"]), pid
        if not truth["event"] or not valid:
            continue
        true_interval = date.fromisoformat(truth["last_contact"]) - min(valid)
        if min(valid) == date.fromisoformat(truth["first_visit"]):
            assert true_interval.days == truth["survival_days"]
        assert deaths[person] - first_visit[person] == true_interval, pid
        checked += 1
    assert checked > 50


# -- no direct identifier ---------------------------------------------------------------


def test_no_direct_identifier_reaches_the_analysis_database(run: Run) -> None:
    h = run.hospital
    identifiers: set[str] = set()
    for row in h.emr["patient"]:
        for name in ("name", "resident_id", "phone", "address", "patient_id"):
            if row[name]:
                identifiers.add(str(row[name]))
    identifiers |= set(h.admissions)
    assert len(identifiers) > 4 * len(h.truth)
    # every distinct text value of every column of every table
    texts: set[str] = set()
    engine = make_engine(run.analysis_url)
    try:
        tables = sa.inspect(engine).get_table_names()
        assert set(CDM_TABLES) <= set(tables)
        scanned = 0
        with engine.connect() as conn:
            for name in tables:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                columns = [c for c in table.c if not isinstance(c.type, _NOT_TEXT)]
                scanned += len(columns)
                for column in columns:
                    for (value,) in conn.execute(sa.select(column).distinct()):
                        if isinstance(value, str):
                            texts.add(value)
                        elif isinstance(value, bytes):
                            texts.add(value.decode("utf-8", "replace"))
                        elif value is not None:  # JSON
                            texts.add(json.dumps(value, ensure_ascii=False))
        assert scanned > 50
    finally:
        engine.dispose()
    # Keyed pseudonyms are HMAC output: a digit-only ID found inside one is chance.
    haystack = "\n".join(t for t in texts if not _PSEUDONYM.fullmatch(t))
    assert LIS_TABLE in haystack and PACS_TABLE in haystack  # the columns were read
    leaked = sorted(i for i in identifiers if i in haystack)
    assert not leaked, f"{len(leaked)} identifiers in the analysis database, e.g. {leaked[:10]}"
    if run.backend == "sqlite":
        path = Path(sa.engine.make_url(run.analysis_url).database or "")
        raw = path.read_bytes()
        residents = {row["resident_id"].encode() for row in h.emr["patient"] if row["resident_id"]}
        assert not set(_RESIDENT_ID.findall(raw)) & residents


# -- the state database: the link index and the sealed re-identification map --------------


def _hospital_identifiers(h: Hospital) -> set[str]:
    ids = {str(row["patient_id"]) for row in h.emr["patient"]}
    ids |= {str(row["resident_id"]) for row in h.emr["patient"] if row["resident_id"]}
    ids |= set(h.admissions)
    return ids


# An ID counts where it stands alone: a run of digits inside a hash, a base64 seal or a
# float (a run's duration in its summary) is not that ID.
_NOT_AN_EDGE = "0-9A-Za-z.+/="


def _standalone(identifiers: set[str]) -> re.Pattern[str]:
    ids = "|".join(map(re.escape, sorted(identifiers, key=len, reverse=True)))
    return re.compile(rf"(?<![{_NOT_AN_EDGE}])(?:{ids})(?![{_NOT_AN_EDGE}])")


def test_the_state_database_holds_no_hospital_identifier_in_clear(run: Run) -> None:
    h = run.hospital
    identifiers = _hospital_identifiers(h)
    assert len(identifiers) > 3 * len(h.truth)
    texts: list[str] = []
    engine = make_engine(run.state_url)
    try:
        tables = sa.inspect(engine).get_table_names()
        assert {"pipeline_patients", "pipeline_admissions", "pipeline_reid_map"} <= set(tables)
        with engine.connect() as conn:
            for name in tables:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                for row in conn.execute(sa.select(table)):
                    texts += [
                        json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else str(v)
                        for v in row
                    ]
            linked = conn.execute(sa.text("SELECT count(*) FROM pipeline_patients")).scalar()
            quarantined = conn.execute(sa.text("SELECT count(*) FROM pipeline_quarantine")).scalar()
    finally:
        engine.dispose()
    assert linked == len(h.emr["patient"]) and quarantined  # the index was scanned
    pattern = _standalone(identifiers)
    planted = f"x {sorted(identifiers)[0]} y 12.{sorted(identifiers)[0]}"
    assert len(pattern.findall(planted)) == 1  # the scan finds a bare ID, not a float's digits
    leaked = sorted(set(pattern.findall("\n".join(texts))))
    assert not leaked, f"{len(leaked)} identifiers in the state database, e.g. {leaked[:10]}"
    if run.backend == "sqlite":  # the file itself, free pages included
        raw = Path(sa.engine.make_url(run.state_url).database or "").read_bytes()
        found = sorted(set(pattern.findall(raw.decode("utf-8", errors="replace"))))
        assert not found, f"{len(found)} identifiers in the state database file: {found[:10]}"


def test_the_honest_broker_gets_every_persons_patient_ids_back(run: Run) -> None:
    h = run.hospital
    engine = open_state_db(run.state_url)
    try:
        _, operator = add_user(engine, "olga", [Role.SITE_OPERATOR], token=None)
        _, broker = add_user(engine, "hana", [Role.HONEST_BROKER], token=operator)
        vault = require_vault(run.home)
        for pid, truth in h.truth.items():
            expected = sorted([pid, *truth["duplicate_patient_ids"]])
            assert reidentify(engine, broker, run.person_key(pid), vault=vault) == expected
        with pytest.raises(Unauthenticated, match="another vault key"):
            reidentify(engine, broker, run.person_key(next(iter(h.cancer))), vault=Vault(b"k" * 32))
    finally:
        engine.dispose()


def test_cdm_pseudonyms_are_derived_from_the_hospital_ids_as_before(run: Run) -> None:
    """The link index is hashed, the CDM is not: its pseudonyms and keys come from the
    hospital's own IDs exactly as before (visit keys from sealed admission IDs)."""
    h = run.hospital
    expected = {
        run.visit_id(a): run.pseudonymizer.pseudonym("admission", a)
        for pid in h.cancer
        for a in h.admission_ids_of(pid)
        if a not in h.bad_admissions
    }
    actual = {
        v["visit_occurrence_id"]: v["visit_source_value"] for v in run.dumps["visit_occurrence"]
    }
    assert actual == expected
    persons = {p["person_source_value"] for p in run.dumps["person"]}
    assert persons == {run.person_key(pid) for pid in h.cancer}
