"""Identifiers planted in the synthetic hospital's free text, against truth/phi.jsonl
and truth/identities.jsonl; and the clinical text they surround, unchanged."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import sqlite3
from collections import Counter
from datetime import date
from itertools import pairwise
from pathlib import Path

import pytest

from ops.synth import people, phi, texts
from ops.synth.hospital import write_hospital
from ops.synth.people import resident_id_valid
from ops.synth.variants import VARIANTS, get_variant

TextKey = tuple[str, str, str, str]  # system, table, record id, field


@pytest.fixture(scope="module")
def hospitals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    made = {}
    for variant in "ABC":
        out = tmp_path_factory.mktemp(f"phi{variant}")
        write_hospital(out, patients=400, seed=11, variant=get_variant(variant))
        made[variant] = out
    return made


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _texts(out: Path, variant: str) -> dict[TextKey, str]:
    """Every free-text field of the hospital, by (system, table, record id, field)."""
    spec = VARIANTS[variant]
    found: dict[TextKey, str] = {}
    with sqlite3.connect(out / "emr.db") as db:
        for logical, key in (
            ("discharge_summary", "document_id"),
            ("pathology_report", "report_id"),
        ):
            table = spec.emr[logical]
            query = f'SELECT "{table.columns[key]}", "{table.columns["text"]}" FROM "{table.name}"'
            for record_id, text in db.execute(query):
                found[("emr", logical, str(record_id), "text")] = text
    rows = list(csv.reader(io.StringIO((out / "pacs" / "studies.csv").read_text("utf-8"))))
    for row in rows[1:]:
        found[("pacs", "studies", row[0], "findings")] = row[6]
        found[("pacs", "studies", row[0], "conclusion")] = row[7]
    return found


def _emr_patients(out: Path, variant: str) -> dict[str, dict]:
    table = VARIANTS[variant].emr["patient"]
    back = {column: name for name, column in table.columns.items()}
    with sqlite3.connect(out / "emr.db") as db:
        cursor = db.execute(f'SELECT * FROM "{table.name}"')
        names = [back[d[0]] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
    return {r["patient_id"]: r for r in rows}


def _digits(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_phi_offsets_point_exactly_at_the_text(hospitals: dict[str, Path], variant: str) -> None:
    out = hospitals[variant]
    found = _texts(out, variant)
    spans = _jsonl(out / "truth" / "phi.jsonl")
    assert len(spans) > 20 * 400 // 2
    keys = {
        "system",
        "table",
        "record_id",
        "field",
        "patient_id",
        "type",
        "subtype",
        "text",
        "start",
        "end",
    }
    for span in spans:
        assert set(span) == keys
        text = found[(span["system"], span["table"], span["record_id"], span["field"])]
        assert 0 <= span["start"] < span["end"] <= len(text)
        assert text[span["start"] : span["end"]] == span["text"]
        assert span["type"] in phi.PHI_TYPES
    # spans of one field never overlap
    by_field: dict[TextKey, list[tuple[int, int]]] = {}
    for span in spans:
        key = (span["system"], span["table"], span["record_id"], span["field"])
        by_field.setdefault(key, []).append((span["start"], span["end"]))
    for ranges in by_field.values():
        ranges.sort()
        assert all(a[1] <= b[0] for a, b in pairwise(ranges))
    # every document carries identifiers: discharge summaries, pathology, imaging
    tables = Counter(key[1] for key in by_field)
    assert {"discharge_summary", "pathology_report", "studies"} <= set(tables)
    documents = [k for k in found if k[1] != "studies" or k[3] == "conclusion"]
    assert all(k in by_field for k in documents)


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_every_identifier_type_is_planted(hospitals: dict[str, Path], variant: str) -> None:
    spans = _jsonl(hospitals[variant] / "truth" / "phi.jsonl")
    kinds = {(s["type"], s["subtype"]) for s in spans}
    for expected in (
        ("NAME", "patient"),
        ("NAME", "relative"),
        ("NAME", "clinician"),
        ("ID_NUMBER", "resident_id"),
        ("PHONE", "patient"),
        ("PHONE", "relative"),
        ("ADDRESS", "patient"),
        ("RECORD_NUMBER", "patient_id"),
        ("RECORD_NUMBER", "admission_id"),
        ("RECORD_NUMBER", "pathology_no"),
        ("RECORD_NUMBER", "accession_no"),
        ("DATE", "birth"),
        ("DATE", "admission"),
        ("DATE", "discharge"),
        ("DATE", "report"),
    ):
        assert expected in kinds, expected
    if variant != "B":
        assert ("RECORD_NUMBER", "outpatient_no") in kinds
    systems = {(s["system"], s["table"]) for s in spans}
    assert systems == {
        ("emr", "discharge_summary"),
        ("emr", "pathology_report"),
        ("pacs", "studies"),
    }


def test_ages_over_89_are_marked_in_headers_and_in_the_clinical_text(
    hospitals: dict[str, Path],
) -> None:
    ages = [
        s
        for v in "ABC"
        for s in _jsonl(hospitals[v] / "truth" / "phi.jsonl")
        if s["type"] == "AGE_OVER_89"
    ]
    assert ages and all(int(s["text"]) > 89 for s in ages)
    who = _identity(male=True, birth=date(1925, 5, 1), language="en")
    visit = texts.Visit(
        "H", "B", "en", "B000000001", "Oncology", 3, date(2017, 1, 2), date(2017, 1, 9)
    )
    body = "A 91-year-old male admitted with fatigue for 2 months. Discharge diagnosis: X."
    doc = texts.discharge_document(random.Random(1), who, visit, body, 91)
    text = doc.text()
    marked = [(s, e) for kind, _, s, e in doc.spans if kind == phi.AGE_OVER_89]
    assert len(marked) == 2  # the header's `Age: 91` and the text's `91-year-old`
    assert all(text[s:e] == "91" for s, e in marked)
    assert body in text


def _identity(*, male: bool, birth: date, language: str) -> phi.Identity:
    staff = phi.Staff.for_hospital(1, "B", language)
    return phi.make_identity(
        random.Random(2),
        patient_id="MRN0000001",
        index=0,
        variant="B",
        language=language,
        male=male,
        birth=birth,
        resident_id="11010519491231002X",
        phone="13812345678",
        street_address="No. 1 Renmin Rd, Dongcheng District, Beijing",
        staff=staff,
    )


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_planted_identifiers_are_the_patients_own(hospitals: dict[str, Path], variant: str) -> None:
    out = hospitals[variant]
    identities = {i["patient_id"]: i for i in _jsonl(out / "truth" / "identities.jsonl")}
    staff = {s["name"]: s for s in _jsonl(out / "truth" / "staff.jsonl")}
    staff_spellings = {form for s in staff.values() for form in s["name_forms"]}
    staff_surnames = {  # `Dr. Murphy`, from the form `R. Murphy`
        f.split(". ", 1)[1] for s in staff.values() for f in s["name_forms"] if ". " in f
    }
    for span in _jsonl(out / "truth" / "phi.jsonl"):
        who = identities[span["patient_id"]]
        kind, sub, text = span["type"], span["subtype"], span["text"]
        if (kind, sub) == ("NAME", "patient"):
            assert text in who["name_forms"] or text in who["name"].split()  # `Mr Smith`
        elif (kind, sub) == ("NAME", "relative"):
            assert text in {r["name"] for r in who["relatives"]}
        elif (kind, sub) == ("NAME", "clinician"):
            assert text in staff_spellings or text in staff_surnames
        elif kind == "ID_NUMBER":
            assert text == who["resident_id"] and resident_id_valid(text)
        elif (kind, sub) == ("PHONE", "patient"):
            assert _digits(text) == who["phone"]
        elif (kind, sub) == ("PHONE", "relative"):
            assert _digits(text) in {r["phone"] for r in who["relatives"]}
        elif kind == "ADDRESS":
            assert text in who["address"]  # whole, or without the province
        elif kind == "RECORD_NUMBER":
            expected = {
                "patient_id": [who["patient_id"]],
                "admission_id": who["admission_ids"],
                "pathology_no": who["pathology_nos"],
                "accession_no": who["accession_nos"],
                "outpatient_no": [who["outpatient_no"]],
            }[sub]
            assert text in expected
        elif (kind, sub) == ("DATE", "birth"):
            assert _parse_any_date(text) == date.fromisoformat(who["birth_date"])
        elif kind == "DATE":
            assert 2014 <= _parse_any_date(text).year <= 2026


def _parse_any_date(text: str) -> date:
    months = {m: i for i, m in enumerate(phi._MONTHS, start=1)}
    if m := re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", text):
        return date(int(m[1]), int(m[2]), int(m[3]))
    if m := re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", text):
        return date(int(m[3]), int(m[2]), int(m[1]))
    if m := re.fullmatch(r"(\d{1,2})[ -]([A-Z][a-z]{2})[ -](\d{4})", text):
        return date(int(m[3]), months[m[2]], int(m[1]))
    raise AssertionError(f"not a date as written: {text!r}")


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_identities_hold_every_patients_structured_identifiers(
    hospitals: dict[str, Path], variant: str
) -> None:
    out = hospitals[variant]
    identities = _jsonl(out / "truth" / "identities.jsonl")
    truth = {t["patient_id"]: t for t in _jsonl(out / "truth" / "patients.jsonl")}
    emr = _emr_patients(out, variant)
    assert len(identities) == 400
    assert set(emr) == {i["patient_id"] for i in identities} | {
        d for i in identities for d in i["duplicate_patient_ids"]
    }
    for who in identities:
        row = emr[who["patient_id"]]
        assert (row["name"], row["resident_id"], row["phone"], row["address"]) == (
            who["name"],
            who["resident_id"],
            who["phone"],
            who["address"],
        )
        assert who["admission_ids"] == truth[who["patient_id"]]["admission_ids"]
        assert who["name"] in who["name_forms"]
        assert len(who["relatives"]) >= 2
        assert all(len(r["phone"]) == 11 for r in who["relatives"])
    # a canary search finds every patient's name in that patient's own documents
    found = _texts(out, variant)
    spans = _jsonl(out / "truth" / "phi.jsonl")
    named = {s["patient_id"] for s in spans if (s["type"], s["subtype"]) == ("NAME", "patient")}
    assert named == {who["patient_id"] for who in identities}
    everything = "\n".join(found.values())
    for who in identities[:50]:
        assert any(form in everything for form in who["name_forms"])


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_names_are_realistic_and_varied(hospitals: dict[str, Path], variant: str) -> None:
    identities = _jsonl(hospitals[variant] / "truth" / "identities.jsonl")
    names = [i["name"] for i in identities]
    assert len(set(names)) > 0.9 * len(names)
    if variant == "B":
        assert all(" " in n for n in names)
        surnames = Counter(n.split()[-1] for n in names if " bin" not in n)
    else:
        assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,4}", n) for n in names)
        surnames = Counter(n[0] for n in names)
        assert surnames.most_common(1)[0][0] in "王李张刘陈"
    assert len(surnames) > 40
    sexes = {i["male"] for i in identities}
    assert sexes == {True, False}


def test_names_follow_the_patients_sex_and_family() -> None:
    rng = random.Random(3)
    for _ in range(200):
        male = rng.random() < 0.5
        name = people.chinese_name(rng, male)
        members = people.family(rng, name)
        relations = [relation for relation, _ in members]
        assert relations[0] == "spouse" and members[0][1].male != male
        father = name if male else members[0][1]
        for relation, member in members[1:]:
            assert relation in ("son", "daughter")
            assert member.family == father.family
            assert member.male == (relation == "son")
    english = {people.english_name(rng, rng.random() < 0.5).style for _ in range(300)}
    assert english == {"western", "pinyin", "indian", "malay"}


def test_identifiers_do_not_change_the_clinical_content_of_a_seed(tmp_path: Path) -> None:
    """The clinical text is written whole and as before: these are what the
    generator wrote for seed 11 before any identifier was planted."""
    expected = {
        "A": {
            ("emr", "pathology_report", "1", "text"): (
                "（左肺上叶）腺癌，肿瘤大小3.9×3.1cm，支气管切缘未见癌。淋巴结转移情况：(5/19)。"
                "免疫组化：TTF-1(+)，NapsinA(+)，CK7(+)。基因检测：EGFR 19外显子缺失突变（阳性）；"
                "ALK(D5F3)（-）。PD-L1(22C3) TPS约5%。pTNM：pT2aN3M0。"
            ),
            ("emr", "discharge_summary", "1", "text"): (
                "患者男，65岁，因“咳嗽咳痰5月”入院。出院诊断：左肺上叶腺癌 cT2aN3M0 IIIB期"
            ),
            ("pacs", "studies", "1.2.840.65.2", "findings"): (
                "左肺上叶见一软组织结节，大小约3.9cm×3.1cm，FDG摄取增高，SUVmax 9.1；"
                "纵隔淋巴结肿大，SUVmax 5.5。"
            ),
            ("pacs", "studies", "1.2.840.65.2", "conclusion"): "左肺上叶结节，考虑肺癌。",
        },
        "B": {
            ("emr", "pathology_report", "4", "text"): (
                "Specimen: left lower lobe. Diagnosis: adenocarcinoma, 7.3 cm in greatest "
                "dimension; bronchial margin free. Lymph nodes: 6/18 positive. EGFR: exon 19 "
                "deletion detected. ALK (D5F3): negative. PD-L1 (22C3) TPS 10%. pTNM: pT4 N3 M0."
            ),
            ("emr", "discharge_summary", "6", "text"): (
                "A 65-year-old female admitted with abdominal pain for 1 months. Discharge "
                "diagnosis: Adenocarcinoma of left lower lobe (cT2aN2M0 IIIA)."
            ),
            ("pacs", "studies", "1.2.840.66.2", "findings"): (
                "A soft-tissue nodule in the left lower lobe, about 3.9 cm, FDG-avid with "
                "SUVmax 14.4; enlarged mediastinal nodes, SUVmax 8.6."
            ),
        },
        "C": {
            ("emr", "pathology_report", "12", "text"): (
                "（左肺下叶）腺癌，肿瘤大小7.0×5.6cm，支气管切缘未见癌。淋巴结转移情况：(2/10)。"
                "免疫组化：TTF-1(+)，NapsinA(+)，CK7(+)。基因检测：EGFR 19外显子缺失突变（阳性）；"
                "ALK(D5F3)（-）。PD-L1(22C3) TPS约0%。pTNM：pT3N2M0。"
            ),
            ("emr", "discharge_summary", "1", "text"): (
                "患者男，51岁，因“痰中带血3月”入院。出院诊断：右肺下叶腺癌 cT2bN2M1a IVA期"
            ),
            ("pacs", "studies", "1.2.840.67.7", "conclusion"): "右肺下叶结节，考虑肺癌。",
        },
    }
    for variant, clinical in expected.items():
        out = tmp_path / variant
        write_hospital(out, patients=20, seed=11, variant=get_variant(variant))
        found = _texts(out, variant)
        for key, sentence in clinical.items():
            assert sentence in found[key], key
        # ... and no identifier is planted inside it
        for span in _jsonl(out / "truth" / "phi.jsonl"):
            key = (span["system"], span["table"], span["record_id"], span["field"])
            if key in clinical and span["type"] != "AGE_OVER_89":
                start = found[key].index(clinical[key])
                end = start + len(clinical[key])
                assert span["end"] <= start or span["start"] >= end


@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_clinical_phrases_match_the_truth_for_every_patient(
    hospitals: dict[str, Path], variant: str
) -> None:
    out = hospitals[variant]
    truth = {t["patient_id"]: t for t in _jsonl(out / "truth" / "patients.jsonl")}
    spec = VARIANTS[variant]
    table = spec.emr["pathology_report"]
    with sqlite3.connect(out / "emr.db") as db:
        query = (
            f'SELECT "{table.columns["patient_id"]}", "{table.columns["text"]}" FROM "{table.name}"'
        )
        reports = db.execute(query).fetchall()
    lung = 0
    for patient_id, text in reports:
        t = truth[patient_id]
        if t["site"] != "lung":
            continue
        lung += 1
        if spec.language == "zh":
            assert f"pTNM：p{t['t']}{t['n']}{t['m']}。" in text
            if t["egfr"] == "positive":
                assert "EGFR 19外显子缺失突变（阳性）" in text
            elif t["egfr"] == "negative":
                assert "EGFR 未检测到突变（阴性）" in text
        else:
            assert f"pTNM: p{t['t']} {t['n']} {t['m']}." in text
            assert f"Diagnosis: {t['histology']}," in text
            if t["egfr"] is not None:
                assert ("exon 19 deletion detected" in text) == (t["egfr"] == "positive")
        assert f"TPS{'约' if spec.language == 'zh' else ' '}{t['pdl1_tps']}%" in text
    assert lung > 50
