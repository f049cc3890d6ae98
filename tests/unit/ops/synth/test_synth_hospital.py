"""The synthetic hospital generator against its own ground truth."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from lifelines import CoxPHFitter
from typer.testing import CliRunner

from ops.cli import app
from ops.synth.hospital import write_hospital
from ops.synth.people import resident_id_check_char, resident_id_valid
from ops.synth.variants import VARIANTS, get_variant
from shared_cdm.vocab import normalize_icd10


def _generate(out: Path, variant: str, patients: int = 300, seed: int = 7) -> Path:
    write_hospital(out, patients=patients, seed=seed, variant=get_variant(variant))
    return out


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        "A": _generate(tmp_path_factory.mktemp("A"), "A", patients=2000, seed=1),
        "B": _generate(tmp_path_factory.mktemp("B"), "B"),
        "C": _generate(tmp_path_factory.mktemp("C"), "C"),
    }


def _truth(out: Path) -> list[dict]:
    lines = (out / "truth" / "patients.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _problems(out: Path) -> list[dict]:
    lines = (out / "truth" / "problems.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _emr(out: Path, variant: str, logical: str) -> list[dict]:
    table = VARIANTS[variant].emr[logical]
    back = {column: name for name, column in table.columns.items()}
    with sqlite3.connect(out / "emr.db") as db:
        cursor = db.execute(f'SELECT * FROM "{table.name}"')
        names = [back[d[0]] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def _lis(out: Path, variant: str) -> list[dict]:
    spec = VARIANTS[variant]
    text = (out / "lis" / "lab_results.csv").read_text(encoding=spec.lis_encoding)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == spec.lis_columns
    fields = (
        "lab_id",
        "patient_id",
        "admission_id",
        "item_code",
        "item_name",
        "result",
        "unit",
        "reference_range",
        "report_date",
    )
    return [dict(zip(fields, row, strict=True)) for row in rows[1:]]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _parse_date(text: str, variant: str) -> date:
    style = {"A": "%Y-%m-%d", "B": "%d/%m/%Y", "C": "%Y年%m月%d日"}[variant]
    return datetime.strptime(text, style).date()


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_same_seed_gives_identical_files_and_another_seed_does_not(
    tmp_path: Path, variant: str
) -> None:
    first = _files(_generate(tmp_path / "one", variant, patients=120, seed=5))
    second = _files(_generate(tmp_path / "two", variant, patients=120, seed=5))
    other = _files(_generate(tmp_path / "three", variant, patients=120, seed=6))
    assert first == second
    assert "emr.db" in first
    for name in (
        "emr.db",
        "lis/lab_results.csv",
        "truth/patients.jsonl",
        "truth/phi.jsonl",
        "truth/identities.jsonl",
        "lab_sheets/sheet_001.png",
    ):
        assert first[name] != other[name]


def test_variants_name_tables_and_columns_differently(hospitals: dict[str, Path]) -> None:
    tables = {}
    for variant, out in hospitals.items():
        with sqlite3.connect(out / "emr.db") as db:
            found = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            tables[variant] = {name for (name,) in found}
            master = VARIANTS[variant].emr["patient"].name
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{master}")')]
        assert columns[0] == {"A": "pat_id", "B": "PatientNo", "C": "brid"}[variant]
    assert {"patient_master", "admission", "diagnosis"} <= tables["A"]
    assert {"PATIENTS", "ENCOUNTERS", "DIAGNOSES"} <= tables["B"]
    assert {"tb_brxx", "tb_zyjl", "tb_zdxx"} <= tables["C"]
    assert not (tables["A"] & tables["B"]) and not (tables["B"] & tables["C"])
    headers = {
        v: (out / "pacs" / "studies.csv").read_text("utf-8").splitlines()[0]
        for v, out in hospitals.items()
    }
    assert len(set(headers.values())) == 3


@pytest.mark.parametrize(
    ("variant", "example"),
    [
        ("A", date(2023, 4, 1).isoformat()),
        ("B", "01/04/2023"),
        ("C", "2023年4月1日"),
    ],
)
def test_each_variant_writes_dates_its_own_way(
    hospitals: dict[str, Path], variant: str, example: str
) -> None:
    assert get_variant(variant).format_date(date(2023, 4, 1)) == example
    for row in _emr(hospitals[variant], variant, "admission")[:50]:
        _parse_date(row["admit_date"], variant)


def test_resident_id_numbers_carry_a_valid_check_character(hospitals: dict[str, Path]) -> None:
    assert resident_id_check_char("11010519491231002") == "X"  # GB 11643 example
    for variant, out in hospitals.items():
        numbers = [r["resident_id"] for r in _emr(out, variant, "patient")]
        assert numbers and all(len(n) == 18 and resident_id_valid(n) for n in numbers)
    wrong = numbers[0][:17] + ("0" if numbers[0][17] != "0" else "1")
    assert not resident_id_valid(wrong)


def test_about_thirty_percent_have_no_cancer_and_codes_match_truth(
    hospitals: dict[str, Path],
) -> None:
    truth = {t["patient_id"]: t for t in _truth(hospitals["A"])}
    share = sum(not t["has_cancer"] for t in truth.values()) / len(truth)
    assert 0.25 < share < 0.35
    for variant, out in hospitals.items():
        truth = {t["patient_id"]: t for t in _truth(out)}
        text_only = 0
        for row in _emr(out, variant, "diagnosis"):
            patient = truth[row["patient_id"]]
            if row["icd_code"] is None:
                text_only += 1
                assert row["diagnosis_text"]
                continue
            code = normalize_icd10(row["icd_code"])
            if patient["has_cancer"]:
                assert code == patient["icd10"]
            else:
                assert code == patient["non_cancer_icd10"] and code[0] not in "CD"
        assert (text_only > 0) == (variant == "C")
    first_code = _emr(hospitals["A"], "A", "diagnosis")[0]["icd_code"]
    assert "x" in first_code


def test_cox_fit_on_truth_recovers_the_stage_and_age_effects(
    hospitals: dict[str, Path],
) -> None:
    cancer = [t for t in _truth(hospitals["A"]) if t["has_cancer"]]
    frame = pd.DataFrame(
        {
            "time": [t["survival_days"] for t in cancer],
            "event": [t["event"] for t in cancer],
            "age10": [t["age_at_diagnosis"] / 10 for t in cancer],
            **{f"stage_{s}": [int(t["stage"] == s) for t in cancer] for s in ("II", "III", "IV")},
        }
    )
    fitted = CoxPHFitter().fit(frame, duration_col="time", event_col="event")
    coef = fitted.params_
    assert 0 < coef["stage_II"] < coef["stage_III"] < coef["stage_IV"]
    assert coef["age10"] > 0
    assert frame["event"].mean() > 0.2


def test_lung_stage_groups_follow_ajcc8(hospitals: dict[str, Path]) -> None:
    lung = [t for t in _truth(hospitals["A"]) if t["site"] == "lung"]
    assert len(lung) > 500
    for t in lung:
        if t["m"] != "M0":
            assert t["stage_group"].startswith("IV")
        if t["egfr"] == "positive":
            assert t["histology"] != "small cell carcinoma"


def test_gbk_export_decodes_as_gbk_and_not_as_utf8(hospitals: dict[str, Path]) -> None:
    raw = (hospitals["C"] / "lis" / "lab_results.csv").read_bytes()
    assert "项目名称" in raw.decode("gbk")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    (hospitals["A"] / "lis" / "lab_results.csv").read_bytes().decode("utf-8")


def test_injected_problems_exist_in_the_source_files(hospitals: dict[str, Path]) -> None:
    for variant, out in hospitals.items():
        problems = _problems(out)
        lis = {r["lab_id"]: r for r in _lis(out, variant)}
        patients = {r["patient_id"]: r for r in _emr(out, variant, "patient")}
        admissions = {r["admission_id"]: r for r in _emr(out, variant, "admission")}
        exams = {str(r["record_id"]): r for r in _emr(out, variant, "exam_result")}
        kinds = {p["kind"] for p in problems}
        assert {"missing_value", "duplicate_across_systems", "same_value_two_units"} <= kinds
        for problem in problems:
            ids = problem["record_ids"]
            kind = problem["kind"]
            if kind == "duplicate_patient":
                first, second = (patients[i] for i in ids)
                assert first["resident_id"] == second["resident_id"]
            elif kind == "dates_out_of_order":
                stay = admissions[ids[0]]
                admit = _parse_date(stay["admit_date"], variant)
                assert _parse_date(stay["discharge_date"], variant) < admit
            elif kind == "missing_value":
                assert lis[ids[0]]["result"] == ""
            elif kind == "impossible_value":
                assert float(lis[ids[0]]["result"]) in (9999.0, -5.0)
            elif kind == "same_value_two_units":
                first, second = lis[ids[0]], lis[ids[1]]
                assert first["item_code"] == second["item_code"]
                assert first["unit"] != second["unit"]
            elif kind == "duplicate_across_systems":
                assert exams[ids[0]]["result"] == lis[ids[1]]["result"]
            else:
                pytest.fail(f"unknown problem kind {kind}")


def test_cli_writes_a_hospital_and_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "synth-hospital",
        "--patients",
        "20",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "h"),
        "--variant",
        "B",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "20 patients" in result.output
    assert (tmp_path / "h" / "emr.db").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code != 0
    bad = runner.invoke(app, [*args[:-2], "--variant", "Z"])
    assert bad.exit_code != 0


def test_lab_sheet_images_match_their_truth_and_the_lis(hospitals: dict[str, Path]) -> None:
    import cv2

    for variant, out in hospitals.items():
        lines = (out / "truth" / "lab_sheets.jsonl").read_text("utf-8").splitlines()
        sheets = [json.loads(line) for line in lines]
        assert len(sheets) == 5
        results = {(r["admission_id"], r["result"], r["unit"]) for r in _lis(out, variant)}
        english = variant == "B"
        for sheet in sheets:
            image = cv2.imread(str(out / sheet["image"]), cv2.IMREAD_GRAYSCALE)
            assert image is not None and image.shape == ((620, 900) if english else (720, 1000))
            assert image.min() < 100  # there is ink on the page
            assert sheet["language"] == ("en" if english else "zh")
            assert sheet["lines"]
            for line in sheet["lines"]:
                if english:  # Hershey fonts draw ASCII only
                    assert line["unit"].isascii()
                    assert any((sheet["admission_id"], line["result"]) == r[:2] for r in results)
                else:  # the LIS's own unit, `μg/L`
                    assert (sheet["admission_id"], line["result"], line["unit"]) in results
