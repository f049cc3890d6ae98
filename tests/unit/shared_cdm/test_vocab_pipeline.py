"""Vocabulary additions for the edge pipeline: plausible lab ranges, drugs
(ATC), procedures (ICD-9-CM-3) and ICD-10 codes from diagnosis text."""

from __future__ import annotations

import shutil
from importlib.resources import as_file, files
from pathlib import Path

import pytest

from ops.synth.cohort import LOBES, LUNG_HISTOLOGY
from ops.synth.regimens import NON_CANCER_DIAGNOSES, OPERATIONS, REGIMENS
from shared_cdm.errors import InvalidInput
from shared_cdm.vocab import (
    Vocabulary,
    load_default,
    load_vocabulary,
    normalize_atc,
    normalize_icd9cm3,
)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_default()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    with as_file(files("shared_cdm.vocab") / "data") as source:
        return Path(shutil.copytree(source, tmp_path / "data"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# --- plausible ranges -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "plausible"),
    [
        ("HGB", 143.0, True),
        ("HGB", 20.0, True),
        ("HGB", 19.9, False),
        ("HGB", 999.9, False),
        ("CEA", 0.0, True),
        ("CEA", -5.0, False),
        ("CEA", 25000.0, True),  # metastatic disease can be very high
        ("ALT", 9800.0, True),  # acute liver necrosis
        ("CREA", 9999.0, False),
        ("GLU", 0.0, False),
        ("WBC", float("nan"), False),
        ("PLT", float("inf"), False),
    ],
)
def test_plausible_ranges(vocab: Vocabulary, code: str, value: float, plausible: bool) -> None:
    analyte = vocab.analyte(code)
    assert analyte is not None and analyte.plausible(value) is plausible


def test_every_analyte_has_a_physiological_range(vocab: Vocabulary) -> None:
    markers = {"CEA", "CA125", "CA15-3", "CA19-9", "CA72-4", "CYFRA21-1", "NSE", "SCC"}
    markers |= {"ProGRP", "AFP", "TPSA", "FPSA", "HE4"}
    for analyte in vocab.analytes:
        assert analyte.plausible_low is not None and analyte.plausible_high is not None
        assert analyte.plausible_low < analyte.plausible_high
        if analyte.code in markers:
            assert analyte.plausible_low == 0
    hgb = vocab.analyte("HGB")
    assert hgb is not None and (hgb.plausible_low, hgb.plausible_high) == (20, 250)


def test_every_analyte_name_resolves(vocab: Vocabulary) -> None:
    for analyte in vocab.analytes:
        for name in (analyte.name_en, analyte.name_zh):
            found = vocab.analyte_by_alias(name)
            assert found is not None and found.code == analyte.code, name


def test_analytes_without_plausible_columns_still_load(data_copy: Path) -> None:
    path = data_copy / "analytes.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    old = [line.rsplit(",", 2)[0] for line in lines]  # drop the two new columns
    path.write_text("\n".join(old) + "\n", encoding="utf-8")
    analyte = load_vocabulary(data_copy).analyte("HGB")
    assert analyte is not None and analyte.plausible_low is None and analyte.plausible(1e9)


def test_a_backwards_plausible_range_names_file_and_line(data_copy: Path) -> None:
    _edit(data_copy / "analytes.csv", "718-7,g/L,,20,250", "718-7,g/L,,250,20")
    with pytest.raises(InvalidInput, match=r"analytes\.csv, line \d+: plausible_low"):
        load_vocabulary(data_copy)


# --- drugs ------------------------------------------------------------------


def test_every_synthetic_regimen_drug_is_known(vocab: Vocabulary) -> None:
    for regimen in REGIMENS.values():
        for drug in regimen.drugs:
            by_zh, by_en = vocab.drug_by_name(drug.name_zh), vocab.drug_by_name(drug.name_en)
            assert by_zh is not None and by_zh == by_en, drug


@pytest.mark.parametrize(
    ("name", "atc"),
    [
        ("顺铂", "L01XA01"),
        ("Cisplatin", "L01XA01"),
        ("DDP", "L01XA01"),
        ("顺铂注射液", "L01XA01"),
        ("注射用紫杉醇(白蛋白结合型)", "L01CD01"),
        ("Pembrolizumab injection 100mg", "L01FF02"),
        ("可瑞达", "L01FF02"),
        ("Tagrisso", "L01EB04"),
        ("甲磺酸奥希替尼片", "L01EB04"),
        ("tegafur-gimeracil-oteracil", "L01BC53"),
        ("卡铂", "L01XA02"),
        ("奥沙利铂", "L01XA03"),
        ("ＧＥＭＣＩＴＡＢＩＮＥ", "L01BC05"),
    ],
)
def test_drugs_by_name(vocab: Vocabulary, name: str, atc: str) -> None:
    drug = vocab.drug_by_name(name)
    assert drug is not None and drug.atc == atc


@pytest.mark.parametrize("name", ["阿司匹林", "", "生理盐水", "ADMISSION", "EPIDURAL"])
def test_unknown_drugs_stay_unknown(vocab: Vocabulary, name: str) -> None:
    assert vocab.drug_by_name(name) is None


def test_a_drug_alias_naming_two_drugs_is_refused(data_copy: Path) -> None:
    _edit(data_copy / "drugs.csv", "卡铂|伯尔定", "卡铂|顺铂")
    with pytest.raises(InvalidInput, match="drug alias '顺铂' names both"):
        load_vocabulary(data_copy)


def test_a_bad_atc_names_file_and_line(data_copy: Path) -> None:
    _edit(data_copy / "drugs.csv", "L01XA02,carboplatin", "L1XA02,carboplatin")
    with pytest.raises(InvalidInput, match=r"drugs\.csv, line 3"):
        load_vocabulary(data_copy)


# --- procedures -------------------------------------------------------------


def test_every_synthetic_operation_is_coded(vocab: Vocabulary) -> None:
    expected = {
        "lung": "32.41",
        "breast": "85.43",
        "colorectal": "17.39",
        "liver": "50.22",
        "stomach": "43.6",
    }
    for site, (zh, en) in OPERATIONS.items():
        for name in (zh, en):
            procedure = vocab.procedure_by_name(name)
            assert procedure is not None and procedure.code == expected[site], name


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("VATS lobectomy", "32.41"),
        ("肺叶切除术", "32.49"),
        ("lobectomy of lung", "32.49"),
        ("右肺上叶切除术", None),  # no alias says so: not guessed
        ("thyroid lobectomy", "06.2"),
        ("胸腔镜下肺楔形切除术", "32.20"),
        ("腹腔镜下右半结肠切除术", "17.33"),
        ("全胃切除术", "43.99"),
        ("清创缝合术", None),
    ],
)
def test_procedures_by_name(vocab: Vocabulary, name: str, code: str | None) -> None:
    procedure = vocab.procedure_by_name(name)
    assert (procedure.code if procedure else None) == code


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("32.41", "32.41"),
        ("3241", "32.41"),
        ("32.4100x001", "32.41"),
        ("43.6", "43.6"),
        ("０６．４", "06.4"),
        ("50", "50"),
    ],
)
def test_icd9cm3_normalisation(written: str, canonical: str) -> None:
    assert normalize_icd9cm3(written) == canonical


@pytest.mark.parametrize(
    ("written", "canonical"),
    [("l01xa01", "L01XA01"), ("L01 XA 01", "L01XA01"), ("Ｌ０１", "L01"), ("L01X", "L01X")],
)
def test_atc_normalisation(written: str, canonical: str) -> None:
    assert normalize_atc(written) == canonical


@pytest.mark.parametrize("bad", ["", "C34.1", "L1XA01", "L01XA0"])
def test_bad_atc_codes(bad: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_atc(bad)


# --- ICD-10 from diagnosis text ---------------------------------------------


def test_synthetic_lung_diagnoses_get_the_lobe(vocab: Vocabulary) -> None:
    for code, lobe_zh, lobe_en in LOBES:
        for side_zh, side_en in (("右", "right"), ("左", "left")):
            for _, _, histology_zh, histology_en in LUNG_HISTOLOGY:
                zh = f"{side_zh}肺{lobe_zh}{histology_zh}"
                en = f"{histology_en.capitalize()} of {side_en} {lobe_en}"
                assert vocab.icd10_from_text(zh) == (code, 0.9), zh
                assert vocab.icd10_from_text(en) == (code, 0.9), en


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("肺恶性肿瘤", "C34"),
        ("小细胞肺癌", "C34"),
        ("NSCLC", "C34"),
        ("右上肺腺癌", "C34.1"),
        ("腺癌（右肺上叶）", "C34.1"),
        ("乳腺恶性肿瘤", "C50"),
        ("左乳外上象限浸润性导管癌", "C50.4"),
        ("结肠恶性肿瘤", "C18"),
        ("乙状结肠癌", "C18.7"),
        ("直肠癌", "C20"),
        ("胃恶性肿瘤", "C16"),
        ("胃窦癌", "C16.3"),
        ("肝恶性肿瘤", "C22"),
        ("原发性肝细胞癌", "C22.0"),
        ("食管癌", "C15"),
        ("胰头癌", "C25.0"),
        ("甲状腺乳头状癌", "C73"),
        ("鼻咽癌", "C11"),
        ("宫颈鳞癌", "C53"),
        ("弥漫大B细胞淋巴瘤", "C83.3"),
        ("肺原位腺癌", "D02.2"),
        ("肺转移癌", "C78.0"),
        ("肝癌肺转移", "C22"),
        ("肺癌伴脑转移", "C34"),
        ("肺气肿伴胃癌", "C16"),
        ("Malignant neoplasm of lung", "C34"),
        ("Malignant neoplasm of breast", "C50"),
        ("Malignant neoplasm of colon", "C18"),
        ("Malignant neoplasm of stomach", "C16"),
        ("Malignant neoplasm of liver", "C22"),
        ("Hepatocellular carcinoma", "C22.0"),
        ("Adenocarcinoma of sigmoid colon", "C18.7"),
        ("Rectal cancer", "C20"),
        ("Carcinoma of colon with metastasis to lung", "C18"),
        ("Lung metastases", "C78.0"),
    ],
)
def test_cancer_texts(vocab: Vocabulary, text: str, code: str) -> None:
    assert vocab.icd10_from_text(text) == (code, 0.9)


@pytest.mark.parametrize(
    "text",
    [
        *(zh for _, zh, _ in NON_CANCER_DIAGNOSES),
        *(en for _, _, en in NON_CANCER_DIAGNOSES),
        "肺炎",
        "肺结节",
        "COPD",
        "慢性阻塞性肺疾病急性加重",
        "肺良性肿瘤",
        "肺癌？",
        "肺癌待排",
        "疑似肺癌",
        "排除肺癌",
        "右肺上叶结节，考虑肺癌",
        "Suspected lung cancer",
        "Pulmonary nodule, likely benign",
        "History of breast cancer",
        "癌胚抗原升高",
        "",
    ],
)
def test_non_cancer_uncertain_and_negated_texts_get_no_code(vocab: Vocabulary, text: str) -> None:
    assert vocab.icd10_from_text(text) is None


def test_every_rule_gives_a_code_the_vocabulary_knows(vocab: Vocabulary) -> None:
    rules = vocab._text_rules
    assert len(rules) > 100
    for rule in rules:
        assert rule.language in ("zh", "en", "any")
        if rule.icd10 is not None:
            assert vocab.icd10(rule.icd10) is not None, rule
            assert vocab.is_neoplasm(rule.icd10), rule


def test_a_bad_rule_pattern_names_file_and_line(data_copy: Path) -> None:
    path = data_copy / "icd10_text_rules.csv"
    path.write_text(path.read_text(encoding="utf-8") + "肺(癌,zh,C34,80\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"icd10_text_rules\.csv, line \d+: bad pattern"):
        load_vocabulary(data_copy)


def test_new_files_are_optional_for_older_data_folders(data_copy: Path) -> None:
    for name in ("drugs.csv", "procedures.csv", "icd10_text_rules.csv"):
        (data_copy / name).unlink()
    older = load_vocabulary(data_copy)
    assert older.drugs == () and older.procedures == ()
    assert older.drug_by_name("顺铂") is None and older.icd10_from_text("肺癌") is None
    assert older.lung_stage_group("T1b", "N0", "M0") == "IA2"


def test_omop_extension_keeps_the_pipeline_tables(vocab: Vocabulary, tmp_path: Path) -> None:
    header = "\t".join(
        [
            *("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id"),
            *("standard_concept", "concept_code", "valid_start_date", "valid_end_date"),
            "invalid_reason",
        ]
    )
    path = tmp_path / "CONCEPT.csv"
    path.write_text(header + "\n", encoding="utf-8")
    extended = vocab.extend_from_omop_concept(path)
    assert extended.drug_by_name("顺铂") is not None
    assert extended.procedure_by_name("肝部分切除术") is not None
    assert extended.icd10_from_text("右肺上叶腺癌") == ("C34.1", 0.9)
