"""The shipped site mappings of the synthetic hospitals A, B and C against the
generator's ground truth: every table maps, lab values land on the true
standard value, injected problems are rejected with the right code, and cancer
diagnoses (coded or written) get the true ICD-10 code."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from edge_node.pipeline.mapping import RowMapper, SiteMapping, TableMapping, parse_mapping
from edge_node.pipeline.records import MappedRecord, Rejection, SourceRow
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.vocab import Vocabulary, load_default

PATIENTS = 200


class Hospital:
    """A generated hospital, its mapping and every mapped table's results."""

    def __init__(self, folder: Path, code: str, vocab: Vocabulary) -> None:
        self.folder, self.code = folder, code
        self.mapping: SiteMapping = parse_mapping(mapping_text(code), base_dir=folder)
        self.results: dict[str, list[tuple[SourceRow, MappedRecord | Rejection]]] = {}
        self.mappers: dict[str, RowMapper] = {}
        for tm in self.mapping.tables:
            columns, rows = self._read(tm)
            mapper = RowMapper(tm, columns, vocab)
            self.mappers[tm.table] = mapper
            self.results[tm.table] = [(row, mapper.map(row)) for row in rows]
        truth = (folder / "truth" / "patients.jsonl").read_text(encoding="utf-8").splitlines()
        self.patients = {p["patient_id"]: p for p in map(json.loads, truth)}
        with (folder / "truth" / "labs.csv").open(encoding="utf-8", newline="") as handle:
            self.labs = {row["lab_id"]: row for row in csv.DictReader(handle)}

    def _read(self, tm: TableMapping) -> tuple[list[str], list[SourceRow]]:
        """The table's columns and rows as a connector gives them: text, with
        empty strings and NULLs as None."""
        spec = self.mapping.sources[tm.source]
        if spec.kind == "sql":
            db = sqlite3.connect(self.folder / "emr.db")
            try:
                cursor = db.execute(f'SELECT * FROM "{tm.table}"')
                columns = [d[0] for d in cursor.description]
                records = [dict(zip(columns, r, strict=True)) for r in cursor]
            finally:
                db.close()
        else:
            assert spec.path is not None
            data = (self.folder / spec.path).read_bytes()
            try:  # `encoding: auto`, as simply as this data needs
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = data.decode("gbk")
            reader = csv.DictReader(io.StringIO(text, newline=""))
            records = list(reader)
            columns = list(reader.fieldnames or [])
        rows = [
            SourceRow(
                str(r[tm.key]),
                {k: (None if v is None or v == "" else str(v)) for k, v in r.items()},
            )
            for r in records
        ]
        return columns, rows

    def table(self, target: str, source: str = "emr") -> str:
        return next(
            tm.table for tm in self.mapping.tables if tm.target == target and tm.source == source
        )


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Hospital]:
    vocab = load_default()
    result = {}
    for code in "ABC":
        folder = tmp_path_factory.mktemp(f"hospital_{code}")
        write_hospital(folder, patients=PATIENTS, seed=11, variant=get_variant(code), vocab=vocab)
        result[code] = Hospital(folder, code, vocab)
    return result


def _tolerance(written: str, factor: float, standard: float) -> float:
    """Half a unit of the written value's last decimal, in the standard unit,
    plus 0.05% for vendor factors rounded differently (88.42 against 88.40)."""
    exponent = Decimal(written.lstrip("<>")).as_tuple().exponent
    assert isinstance(exponent, int)
    return 0.5 * 10.0**exponent * factor * 1.001 + 5e-4 * abs(standard) + 1e-9


@pytest.mark.parametrize("code", ["A", "B", "C"])
def test_every_mapped_table_compiles_and_maps(hospitals: dict[str, Hospital], code: str) -> None:
    hospital = hospitals[code]
    assert len(hospital.results) == 11
    for table, results in hospital.results.items():
        assert results, f"{code} {table} is empty"
        if table == "lab_results":
            continue  # the LIS carries injected problems, checked below
        rejected = Counter(r.code for _, r in results if isinstance(r, Rejection))
        assert not rejected, f"{code} {table}: {rejected}"


@pytest.mark.parametrize("code", ["A", "B", "C"])
def test_lis_values_reach_the_true_standard_value(
    hospitals: dict[str, Hospital], code: str
) -> None:
    hospital = hospitals[code]
    mapper = hospital.mappers["lab_results"]
    outcomes: Counter[str] = Counter()
    for row, result in hospital.results["lab_results"]:
        truth = hospital.labs.get(row.key)
        if truth is None:  # a second analyser's copy in another unit: no truth row
            assert isinstance(result, MappedRecord), result
            outcomes["copy"] += 1
            continue
        problem = truth["problem"]
        if problem == "missing_value":
            assert isinstance(result, Rejection) and result.code == "missing_value"
        elif problem == "impossible_value":
            assert isinstance(result, Rejection) and result.code == "implausible_value", result
        else:
            assert isinstance(result, MappedRecord), result
            fields = result.fields
            assert fields["analyte"] == truth["analyte"]
            standard, written = float(truth["standard_value"]), truth["written_value"]
            analyte = mapper.vocab.analyte(truth["analyte"])
            assert analyte is not None and fields["unit"] == analyte.standard_unit
            if written.startswith("<"):
                assert fields["operator"] == "<"
                assert fields["value"] == float(written[1:]) > standard
            else:
                factor = fields["value"] / float(written) if float(written) else 1.0
                assert abs(fields["value"] - standard) <= _tolerance(written, factor, standard), (
                    row,
                    fields,
                    standard,
                )
                assert fields["operator"] is None
            assert fields["range_low"] is not None and fields["range_high"] is not None
        outcomes[problem or "ok"] += 1
    assert outcomes["ok"] > 1000 and outcomes["missing_value"] > 0
    assert mapper.resolved["value"] in ("result", "Value", "结果")


@pytest.mark.parametrize("code", ["A", "B", "C"])
def test_ward_lab_entries_map_with_the_hospital_units(
    hospitals: dict[str, Hospital], code: str
) -> None:
    hospital = hospitals[code]
    results = hospital.results[hospital.table("lab")]
    without_unit = [
        r
        for row, r in results
        if not row.values[hospital.mappers[hospital.table("lab")].resolved["unit"]]
    ]
    assert without_unit, "the generator leaves about half the units empty"
    for record in without_unit:
        assert isinstance(record, MappedRecord) and record.fields["unit_as_written"] is None
        assert record.fields["analyte"] in ("CEA", "CYFRA21-1", "NSE", "SCC", "ProGRP")


@pytest.mark.parametrize("code", ["A", "B", "C"])
def test_diagnoses_get_the_true_icd10(hospitals: dict[str, Hospital], code: str) -> None:
    hospital = hospitals[code]
    table = hospital.table("diagnosis")
    counts: Counter[str] = Counter()
    for row, result in hospital.results[table]:
        assert isinstance(result, MappedRecord), result
        fields = result.fields
        truth = hospital.patients[fields["patient_id"]]
        code_found = fields["icd10"]
        if truth["has_cancer"]:
            if fields["icd10_from_text"]:
                assert fields["confidence"] == 0.9
                assert code_found[:3] == truth["icd10"][:3], (row, fields)
                counts["text_exact" if code_found == truth["icd10"] else "text_3char"] += 1
            else:
                assert fields["confidence"] == 1.0
                assert code_found == truth["icd10"], (row, fields)
                counts["coded"] += 1
        else:
            assert code_found is None or not hospital.mappers[table].vocab.is_neoplasm(
                code_found
            ), (row, fields)
            counts["non_cancer"] += 1
    assert counts["coded"] > 0 and counts["non_cancer"] > 0
    if code == "C":  # a quarter of C's diagnoses are text only
        assert counts["text_exact"] + counts["text_3char"] > 0
    else:
        assert counts["text_exact"] + counts["text_3char"] == 0


@pytest.mark.parametrize("code", ["A", "B", "C"])
def test_patients_follow_up_drugs_and_operations(hospitals: dict[str, Hospital], code: str) -> None:
    hospital = hospitals[code]
    for _, result in hospital.results[hospital.table("patient")]:
        assert isinstance(result, MappedRecord)
        fields = result.fields
        truth = hospital.patients.get(fields["patient_id"].removesuffix("D"))
        assert truth is not None
        assert fields["sex"] == ("male" if truth["male"] else "female")
        assert fields["birth_date"].isoformat() == truth["birth_date"]
    for _, result in hospital.results[hospital.table("follow_up")]:
        assert isinstance(result, MappedRecord)
        truth = hospital.patients[result.fields["patient_id"]]
        assert result.fields["vital_status"] == ("dead" if truth["event"] else "alive")
        assert result.fields["last_contact_date"].isoformat() == truth["last_contact"]
    for _, result in hospital.results[hospital.table("medication")]:
        assert isinstance(result, MappedRecord)
        assert result.fields["drug_code"] is not None, result.fields
        assert result.fields["dose_unit"] in ("mg/m2", "mg", "AUC")
        assert isinstance(result.fields["dose"], float)
    operations = hospital.results[hospital.table("operation")]
    assert operations
    for _, result in operations:
        assert isinstance(result, MappedRecord)
        assert result.fields["procedure_code"] in ("32.41", "85.43", "17.39", "50.22", "43.6")


def test_notes_and_imaging_keep_their_dates_and_text(hospitals: dict[str, Hospital]) -> None:
    for hospital in hospitals.values():
        for table in ("pathology_report", "PATHOLOGY", "tb_blbg", "studies"):
            if table not in hospital.results:
                continue
            for _, result in hospital.results[table]:
                assert isinstance(result, MappedRecord)
                fields = result.fields
                day = fields.get("note_date") or fields.get("study_date")
                assert day is not None and 2000 < day.year < 2030
                assert fields.get("text") or fields.get("findings")
