"""OMOP CDM v5.4 CSV export of the analysis database, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from edge_node.pipeline import omop_export
from edge_node.pipeline.omop_export import (
    EXTENSION_TABLES,
    OMOP_TABLES,
    export_omop,
    write_export_manifest,
)
from shared_cdm.db import make_engine, session_factory, upgrade
from shared_cdm.errors import InvalidInput, NotFound
from shared_cdm.models import (
    Base,
    CdmSource,
    ConditionOccurrence,
    DrugExposure,
    LungCancerDataset,
    Measurement,
    Person,
    ValueProvenance,
    VisitOccurrence,
)

# From the OMOP CDM v5.4 DDL (OHDSI/CommonDataModel, inst/ddl/5.4), in its order.
OMOP_PERSON_COLUMNS = [
    "person_id",
    "gender_concept_id",
    "year_of_birth",
    "month_of_birth",
    "day_of_birth",
    "birth_datetime",
    "race_concept_id",
    "ethnicity_concept_id",
    "location_id",
    "provider_id",
    "care_site_id",
    "person_source_value",
    "gender_source_value",
    "gender_source_concept_id",
    "race_source_value",
    "race_source_concept_id",
    "ethnicity_source_value",
    "ethnicity_source_concept_id",
]
OMOP_MEASUREMENT_COLUMNS = [
    "measurement_id",
    "person_id",
    "measurement_concept_id",
    "measurement_date",
    "measurement_datetime",
    "measurement_time",
    "measurement_type_concept_id",
    "operator_concept_id",
    "value_as_number",
    "value_as_concept_id",
    "unit_concept_id",
    "range_low",
    "range_high",
    "provider_id",
    "visit_occurrence_id",
    "visit_detail_id",
    "measurement_source_value",
    "measurement_source_concept_id",
    "unit_source_value",
    "unit_source_concept_id",
    "value_source_value",
    "measurement_event_id",
    "meas_event_field_concept_id",
]
PROVENANCE_COLUMNS = ["src_system", "src_table", "src_row", "confidence"]

EHR = 32817
CEA = 3013444
PERSON_KEY = "9f2c" * 8
BIG_ID = 2**62 + 12345  # surrogate keys are HMAC-derived 63-bit integers


@pytest.fixture
def cdm_url(db_url: str) -> str:
    """A migrated CDM with two persons, a stay, two lab values, a diagnosis, a drug."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            session.add_all(
                [
                    Person(
                        person_id=BIG_ID,
                        gender_concept_id=8507,
                        year_of_birth=1958,
                        month_of_birth=6,
                        day_of_birth=9,
                        birth_datetime=datetime(1958, 6, 9),
                        race_concept_id=0,
                        ethnicity_concept_id=0,
                        person_source_value=PERSON_KEY,
                        gender_source_value="男",
                    ),
                    Person(
                        person_id=2,
                        gender_concept_id=8532,
                        year_of_birth=1970,
                        race_concept_id=0,
                        ethnicity_concept_id=0,
                    ),
                ]
            )
            session.flush()
            session.add(
                VisitOccurrence(
                    visit_occurrence_id=10,
                    person_id=BIG_ID,
                    visit_concept_id=9201,
                    visit_start_date=date(2023, 3, 1),
                    visit_end_date=date(2023, 3, 20),
                    visit_type_concept_id=EHR,
                )
            )
            session.flush()
            session.add_all(
                [
                    Measurement(
                        measurement_id=100,
                        person_id=BIG_ID,
                        measurement_concept_id=CEA,
                        measurement_date=date(2023, 3, 14),
                        measurement_datetime=datetime(2023, 3, 14, 8, 30, 15),
                        measurement_type_concept_id=EHR,
                        value_as_number=5.2,
                        range_low=0.0,
                        range_high=5.0,
                        visit_occurrence_id=10,
                        measurement_source_value="癌胚抗原, CEA",
                        unit_source_value="ng/mL",
                        value_source_value='5.2 "high"',
                        src_system="LIS",
                        src_table="lab_results",
                        src_row="ab" * 16,
                    ),
                    Measurement(
                        measurement_id=101,
                        person_id=2,
                        measurement_concept_id=CEA,
                        measurement_date=date(2024, 1, 2),
                        measurement_type_concept_id=EHR,
                        confidence=0.75,
                    ),
                    ConditionOccurrence(
                        condition_occurrence_id=200,
                        person_id=BIG_ID,
                        condition_concept_id=2_000_000_101,
                        condition_start_date=date(2023, 3, 14),
                        condition_type_concept_id=EHR,
                        condition_source_value="C34.1",
                        visit_occurrence_id=10,
                    ),
                    DrugExposure(
                        drug_exposure_id=300,
                        person_id=BIG_ID,
                        drug_concept_id=0,
                        drug_exposure_start_date=date(2023, 3, 15),
                        drug_exposure_end_date=date(2023, 3, 16),
                        drug_type_concept_id=EHR,
                        sig="每日一次\n口服",
                    ),
                    CdmSource(
                        cdm_source_name="Dongjiang First Hospital",
                        cdm_source_abbreviation="DJ1",
                        cdm_holder="OncoFed",
                        source_release_date=date(2024, 5, 1),
                        cdm_release_date=date(2024, 5, 2),
                        cdm_version="5.4",
                        cdm_version_concept_id=756265,
                        vocabulary_version="v5.0 2024-02-27",
                    ),
                ]
            )
            session.flush()
            session.add_all(
                [
                    LungCancerDataset(
                        lung_cancer_dataset_id=1,
                        person_id=BIG_ID,
                        condition_occurrence_id=200,
                        diagnosis_date=date(2023, 3, 14),
                        histology="腺癌",
                        egfr_status="L858R",
                    ),
                    ValueProvenance(
                        table_name="measurement",
                        row_id=100,
                        field_name="unit_source_value",
                        src_system="HIS",
                        src_table="检验",
                        src_row="cd" * 16,
                    ),
                ]
            )
            session.commit()
    finally:
        engine.dispose()
    return db_url


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def _as_dicts(path: Path) -> list[dict[str, str]]:
    header, *rows = _read(path)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_every_cdm_table_is_either_omop_or_an_extension() -> None:
    assert set(OMOP_TABLES) | set(EXTENSION_TABLES) == set(Base.metadata.tables)
    assert not set(OMOP_TABLES) & set(EXTENSION_TABLES)


def test_export_writes_omop_files_in_omop_column_order(cdm_url: str, tmp_path: Path) -> None:
    out = tmp_path / "export"

    counts = export_omop(cdm_url, out)

    assert list(counts) == list(OMOP_TABLES)
    assert {t: n for t, n in counts.items() if n} == {
        "person": 2,
        "visit_occurrence": 1,
        "condition_occurrence": 1,
        "drug_exposure": 1,
        "measurement": 2,
        "cdm_source": 1,
    }
    assert {p.name for p in out.iterdir()} == {f"{t}.csv" for t in OMOP_TABLES} | {"manifest.json"}
    assert _read(out / "person.csv")[0] == OMOP_PERSON_COLUMNS
    assert _read(out / "measurement.csv")[0] == OMOP_MEASUREMENT_COLUMNS
    death_columns = [
        "person_id",
        "death_date",
        "death_datetime",
        "death_type_concept_id",
        "cause_concept_id",
        "cause_source_value",
        "cause_source_concept_id",
    ]
    assert _read(out / "death.csv") == [death_columns]  # header only, no rows
    for table in OMOP_TABLES:
        header = _read(out / f"{table}.csv")[0]
        assert not set(header) & set(PROVENANCE_COLUMNS), table


def test_values_dates_nulls_and_text_round_trip(cdm_url: str, tmp_path: Path) -> None:
    export_omop(cdm_url, tmp_path / "out")
    out = tmp_path / "out"

    persons = _as_dicts(out / "person.csv")
    assert [p["person_id"] for p in persons] == ["2", str(BIG_ID)]  # ordered by key
    assert persons[1] == {
        **dict.fromkeys(OMOP_PERSON_COLUMNS, ""),
        "person_id": str(BIG_ID),
        "gender_concept_id": "8507",
        "year_of_birth": "1958",
        "month_of_birth": "6",
        "day_of_birth": "9",
        "birth_datetime": "1958-06-09 00:00:00",
        "race_concept_id": "0",
        "ethnicity_concept_id": "0",
        "person_source_value": PERSON_KEY,
        "gender_source_value": "男",
    }
    assert persons[0]["month_of_birth"] == persons[0]["birth_datetime"] == ""

    labs = _as_dicts(out / "measurement.csv")
    assert labs[0] == {
        **dict.fromkeys(OMOP_MEASUREMENT_COLUMNS, ""),
        "measurement_id": "100",
        "person_id": str(BIG_ID),
        "measurement_concept_id": str(CEA),
        "measurement_date": "2023-03-14",
        "measurement_datetime": "2023-03-14 08:30:15",
        "measurement_type_concept_id": str(EHR),
        "value_as_number": "5.2",
        "range_low": "0.0",
        "range_high": "5.0",
        "visit_occurrence_id": "10",
        "measurement_source_value": "癌胚抗原, CEA",
        "unit_source_value": "ng/mL",
        "value_source_value": '5.2 "high"',
    }
    assert labs[1]["value_as_number"] == labs[1]["measurement_datetime"] == ""
    assert _as_dicts(out / "drug_exposure.csv")[0]["sig"] == "每日一次\n口服"
    assert _as_dicts(out / "cdm_source.csv")[0]["source_release_date"] == "2024-05-01"


def test_files_are_utf8_rfc4180_without_bom(cdm_url: str, tmp_path: Path) -> None:
    export_omop(cdm_url, tmp_path / "out", tables=["measurement"])
    raw = (tmp_path / "out" / "measurement.csv").read_bytes()

    assert raw.startswith(b"measurement_id,person_id,")
    assert "癌胚抗原".encode() in raw
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    # Fields with a comma or a quote are quoted, quotes doubled; plain fields are not.
    assert '"癌胚抗原, CEA",,ng/mL,,"5.2 ""high""",'.encode() in raw
    assert b',"2023-03-14",' not in raw


def test_provenance_adds_extension_columns_and_tables(cdm_url: str, tmp_path: Path) -> None:
    counts = export_omop(cdm_url, tmp_path / "out", with_provenance=True)
    out = tmp_path / "out"

    assert list(counts) == list(OMOP_TABLES + EXTENSION_TABLES)
    assert (counts["lung_cancer_dataset"], counts["value_provenance"]) == (1, 1)
    labs = _as_dicts(out / "measurement.csv")
    assert list(labs[0]) == OMOP_MEASUREMENT_COLUMNS + PROVENANCE_COLUMNS
    assert [labs[0][c] for c in PROVENANCE_COLUMNS] == ["LIS", "lab_results", "ab" * 16, ""]
    assert labs[1]["confidence"] == "0.75"
    assert _read(out / "person.csv")[0] == OMOP_PERSON_COLUMNS  # person has no provenance
    assert _as_dicts(out / "value_provenance.csv") == [
        {
            "table_name": "measurement",
            "row_id": "100",
            "field_name": "unit_source_value",
            "src_system": "HIS",
            "src_table": "检验",
            "src_row": "cd" * 16,
        }
    ]
    lung = _as_dicts(out / "lung_cancer_dataset.csv")[0]
    assert (lung["histology"], lung["diagnosis_date"], lung["ecog"]) == ("腺癌", "2023-03-14", "")


def test_a_subset_of_tables(cdm_url: str, tmp_path: Path) -> None:
    counts = export_omop(cdm_url, tmp_path / "out", tables=["measurement", "person", "person"])

    assert counts == {"person": 2, "measurement": 2}
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "person.csv",
        "measurement.csv",
        "manifest.json",
    }


def test_bad_table_requests_are_refused(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no CDM table named visit_detail"):
        export_omop(sqlite_url, tmp_path / "a", tables=["visit_detail"])
    with pytest.raises(InvalidInput, match="lung_cancer_dataset is an OncoFed extension"):
        export_omop(sqlite_url, tmp_path / "b", tables=["person", "lung_cancer_dataset"])


def test_a_database_without_the_cdm_is_not_found(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no CDM tables"):
        export_omop(sqlite_url, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_directory_with_other_files_is_refused(cdm_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "person.csv").write_text("mine", encoding="utf-8")
    (out / "notes.txt").write_text("keep me", encoding="utf-8")

    with pytest.raises(InvalidInput, match=r"not an OMOP export's \(notes.txt\)"):
        export_omop(cdm_url, out)

    assert (out / "person.csv").read_text(encoding="utf-8") == "mine"  # nothing touched
    (out / "sub").mkdir()
    (out / "notes.txt").unlink()
    with pytest.raises(InvalidInput, match="sub"):
        export_omop(cdm_url, out)
    file_target = tmp_path / "file"
    file_target.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a directory"):
        export_omop(cdm_url, file_target)


def test_a_previous_export_is_replaced(cdm_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_omop(cdm_url, out, with_provenance=True)

    counts = export_omop(cdm_url, out)

    names = {p.name for p in out.iterdir()}
    assert names == {f"{t}.csv" for t in OMOP_TABLES} | {"manifest.json"}
    assert counts["person"] == 2
    assert "src_system" not in _read(out / "measurement.csv")[0]


def test_a_failed_export_leaves_no_partial_file_and_no_manifest(
    cdm_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    export_omop(cdm_url, out)
    original = omop_export._formatted

    def fail_on_measurement(batch, formatters):  # type: ignore[no-untyped-def]
        rows = list(batch)
        if rows and len(rows[0]) == len(OMOP_MEASUREMENT_COLUMNS):
            raise RuntimeError("disk full")
        return original(rows, formatters)

    monkeypatch.setattr(omop_export, "_formatted", fail_on_measurement)
    with pytest.raises(RuntimeError, match="disk full"):
        export_omop(cdm_url, out)

    names = {p.name for p in out.iterdir()}
    assert "manifest.json" not in names  # the export is visibly incomplete
    assert not [n for n in names if n.endswith(".tmp")]
    monkeypatch.undo()
    export_omop(cdm_url, out)  # and the directory can be exported into again
    assert (out / "manifest.json").exists()


def test_manifest_names_version_counts_and_checksums(cdm_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = datetime.now(UTC).replace(microsecond=0)

    counts = export_omop(cdm_url, out, with_provenance=True)

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["cdm_version"] == "5.4"
    assert manifest["with_provenance"] is True
    assert manifest["oncofed_schema_revision"] == "0002"
    exported = datetime.fromisoformat(manifest["exported_at"].replace("Z", "+00:00"))
    assert before <= exported <= datetime.now(UTC)
    assert {t: e["rows"] for t, e in manifest["tables"].items()} == counts
    for table, entry in manifest["tables"].items():
        data = (out / entry["file"]).read_bytes()
        assert entry["file"] == f"{table}.csv"
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_write_export_manifest_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "person.csv").write_bytes(b"person_id\r\n1\r\n")
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    path = write_export_manifest(tmp_path, {"person": 1}, exported_at=when)

    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["exported_at"] == "2024-05-01T12:00:00Z"
    assert manifest["tables"] == {
        "person": {
            "file": "person.csv",
            "rows": 1,
            "sha256": hashlib.sha256(b"person_id\r\n1\r\n").hexdigest(),
        }
    }


def test_large_tables_are_streamed_in_batches(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    n = 2_500
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Base.metadata.tables["person"]),
                [
                    {
                        "person_id": i,
                        "gender_concept_id": 0,
                        "year_of_birth": 1950 + i % 50,
                        "race_concept_id": 0,
                        "ethnicity_concept_id": 0,
                    }
                    for i in range(n, 0, -1)
                ],
            )
    finally:
        engine.dispose()
    batches: list[int] = []
    original = omop_export._formatted

    def counting(batch, formatters):  # type: ignore[no-untyped-def]
        batch = list(batch)
        batches.append(len(batch))
        return original(batch, formatters)

    monkeypatch.setattr(omop_export, "_BATCH_ROWS", 1_000)
    monkeypatch.setattr(omop_export, "_formatted", counting)

    counts = export_omop(db_url, tmp_path / "out", tables=["person"])

    assert counts == {"person": n}
    assert batches == [1_000, 1_000, 500]
    ids = [int(r["person_id"]) for r in _as_dicts(tmp_path / "out" / "person.csv")]
    assert ids == list(range(1, n + 1))
