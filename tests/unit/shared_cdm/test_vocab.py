"""The shipped vocabularies and their lookups."""

from __future__ import annotations

import shutil
from importlib.resources import as_file, files
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared_cdm.db import make_engine, session_factory, upgrade
from shared_cdm.errors import InvalidInput
from shared_cdm.models import Concept as ConceptRow
from shared_cdm.vocab import (
    LOCAL_CONCEPT_ID_START,
    Vocabulary,
    load_concepts_into_db,
    load_default,
    load_vocabulary,
    loinc_check_digit_ok,
    normalize_icd10,
)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_default()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped data directory, to break on purpose."""
    with as_file(files("shared_cdm.vocab") / "data") as source:
        return Path(shutil.copytree(source, tmp_path / "data"))


# --- ICD-10 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["C34.1", "C34.100x001", "c34.1", "C341", "Ｃ３４．１", " C34.1 ", "C34。1", "C34.1001"],
)
def test_hospital_spellings_normalise_to_the_who_code(spelling: str) -> None:
    assert normalize_icd10(spelling) == "C34.1"


@pytest.mark.parametrize(("spelling", "code"), [("c34", "C34"), ("D48.9", "D48.9"), ("j18", "J18")])
def test_normalisation_keeps_the_level_given(spelling: str, code: str) -> None:
    assert normalize_icd10(spelling) == code


@pytest.mark.parametrize("text", ["", "34.1", "CX4", "肺癌"])
def test_text_that_is_no_icd10_code_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_icd10(text)


def test_icd10_lookup_gives_the_standard_chinese_names(vocab: Vocabulary) -> None:
    upper_lobe = vocab.icd10("C34.100x001")
    assert upper_lobe is not None
    assert upper_lobe.code == "C34.1"
    assert upper_lobe.name_en == "Upper lobe, bronchus or lung"
    assert upper_lobe.name_zh == "上叶，支气管或肺的恶性肿瘤"
    assert upper_lobe.chapter_block == "C30-C39"
    lung = vocab.icd10("C34")
    assert lung is not None and lung.name_zh == "支气管和肺恶性肿瘤"


def test_unlisted_subcategory_falls_back_to_its_category(vocab: Vocabulary) -> None:
    entry = vocab.icd10("D48.9")
    assert entry is not None and entry.code == "D48"
    assert vocab.icd10("J18.9") is None
    assert vocab.icd10("not a code") is None


def test_every_who_neoplasm_category_is_shipped(vocab: Vocabulary) -> None:
    absent_in_who = {"C27", "C28", "C29", "C35", "C36", "C42", "C59", "C87", "C89", "D08"}
    expected = {f"C{i:02d}" for i in range(98)} | {f"D{i:02d}" for i in range(49)}
    for code in sorted(expected - absent_in_who):
        entry = vocab.icd10(code)
        assert entry is not None and entry.code == code, code
    for code in ["C34.0", "C34.2", "C34.3", "C34.8", "C34.9", "C50.4", "C18.7", "C22.0"]:
        entry = vocab.icd10(code)
        assert entry is not None and entry.code == code and entry.name_zh, code
    for code in ["C15.5", "C16.0", "C16.9"]:
        entry = vocab.icd10(code)
        assert entry is not None and entry.code == code and entry.name_zh, code


@pytest.mark.parametrize(
    ("code", "neoplasm"),
    [
        *[("C34.1", True), ("c34.100x001", True), ("D48.9", True), ("C00", True), ("C97", True)],
        *[("D49", False), ("D49.9", False), ("J18", False), ("B99", False), ("", False)],
    ],
)
def test_neoplasm_chapter(vocab: Vocabulary, code: str, neoplasm: bool) -> None:
    assert vocab.is_neoplasm(code) is neoplasm


def test_custom_ranges(vocab: Vocabulary) -> None:
    upper_to_lower_lobe = ["C34.1-C34.3"]
    assert vocab.icd10_in_ranges("C34.2", upper_to_lower_lobe)
    assert not vocab.icd10_in_ranges("C34.8", upper_to_lower_lobe)
    assert not vocab.icd10_in_ranges("C34", upper_to_lower_lobe)  # the category is wider
    assert vocab.icd10_in_ranges("C34.9", ["C34"])
    assert vocab.icd10_in_ranges("C19", ["C50", "C18-C20"])
    assert not vocab.icd10_in_ranges("C21", ["C18-C20"])
    with pytest.raises(InvalidInput):
        vocab.icd10_in_ranges("C34.1", ["lung"])


# --- ICD-O-3, TNM, stage ----------------------------------------------------


def test_morphologies(vocab: Vocabulary) -> None:
    adeno = vocab.morphology("M-8140/3")
    assert adeno is not None and adeno.code == "8140/3" and adeno.behaviour == 3
    small_cell = vocab.morphology("８０４１／３")
    assert small_cell is not None and small_cell.name_zh == "小细胞癌，NOS"
    assert vocab.morphology("9999/3") is None
    assert vocab.morphology("adenocarcinoma") is None
    required = "8000 8010 8012 8013 8041 8046 8070 8071 8072 8140 8160 8170 8240 8249 8250"
    required += " 8260 8480 8490 8500 8520 8550 8551 8560"
    for code in required.split():
        assert vocab.morphology(f"{code}/3") is not None, code


@pytest.mark.parametrize(
    ("axis", "value", "valid"),
    [
        *[("T", "T1mi", True), ("T", "cT1a", True), ("t", "pt1A", True), ("T", "Tis", True)],
        *[("T", "1c", True), ("N", "ypN2", True), ("M", "M1c", True), ("M", "cM1b", True)],
        *[("T", "T5", False), ("N", "N4", False), ("M", "MX", False), ("T", "N1", False)],
    ],
)
def test_tnm_values(vocab: Vocabulary, axis: str, value: str, valid: bool) -> None:
    assert vocab.tnm_valid(axis, value) is valid


def test_tnm_axis_must_be_t_n_or_m(vocab: Vocabulary) -> None:
    with pytest.raises(InvalidInput):
        vocab.tnm_valid("G", "G2")


@pytest.mark.parametrize(
    ("t", "n", "m", "stage"),
    [
        ("T1a", "N0", "M0", "IA1"),
        ("T1mi", "N0", "M0", "IA1"),
        ("T1c", "N0", "M0", "IA3"),
        ("T2a", "N0", "M0", "IB"),
        ("T2b", "N0", "M0", "IIA"),
        ("T1a", "N1", "M0", "IIB"),
        ("T3", "N0", "M0", "IIB"),
        ("T4", "N1", "M0", "IIIA"),
        ("T3", "N2", "M0", "IIIB"),
        ("T4", "N3", "M0", "IIIC"),
        ("TX", "N0", "M0", "occult"),
        ("Tis", "N0", "M0", "0"),
        ("T1b", "N0", "M1a", "IVA"),
        ("T1a", "N0", "M1c", "IVB"),
        ("T4", "NX", "M1c", "IVB"),
        ("cT2a", "pN2", "cM0", "IIIA"),
        ("T2", "N0", "M0", None),  # IB or IIA: needs T2a or T2b
        ("T1a", "NX", "M0", None),
        ("T1a", "N0", "M1", None),
    ],
)
def test_lung_stage_groups(vocab: Vocabulary, t: str, n: str, m: str, stage: str | None) -> None:
    assert vocab.lung_stage_group(t, n, m) == stage


def test_stage_of_an_impossible_value_is_an_error(vocab: Vocabulary) -> None:
    with pytest.raises(InvalidInput, match="T9"):
        vocab.lung_stage_group("T9", "N0", "M0")


# --- analytes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("癌胚抗原", "CEA"),
        ("CEA", "CEA"),
        ("carcinoembryonic antigen", "CEA"),
        ("ＣＥＡ", "CEA"),
        ("癌胚抗原(CEA)", "CEA"),
        ("癌胚抗原（CEA）", "CEA"),
        ("糖类抗原19-9", "CA19-9"),
        ("ca 19-9", "CA19-9"),
        ("CA199", "CA19-9"),
        ("细胞角蛋白19片段", "CYFRA21-1"),
        ("cyfra 21-1", "CYFRA21-1"),
        ("神经元特异性烯醇化酶", "NSE"),
        ("谷丙转氨酶", "ALT"),
        ("Hb", "HGB"),
        ("血小板计数", "PLT"),
        ("PSA", "TPSA"),
        ("游离前列腺特异性抗原", "FPSA"),
    ],
)
def test_analytes_by_alias(vocab: Vocabulary, name: str, code: str) -> None:
    analyte = vocab.analyte_by_alias(name)
    assert analyte is not None and analyte.code == code


@pytest.mark.parametrize("name", ["CEA(AFP)", "CEA(化学发光法)", "白介素6", ""])
def test_ambiguous_or_unknown_names_stay_unresolved(vocab: Vocabulary, name: str) -> None:
    assert vocab.analyte_by_alias(name) is None


def test_analyte_codes_and_units(vocab: Vocabulary) -> None:
    expected = {
        "CEA": ("2039-6", "ng/mL"),
        "CA125": ("10334-1", "U/mL"),
        "CA15-3": ("6875-9", "U/mL"),
        "CA19-9": ("24108-3", "U/mL"),
        "CA72-4": ("17843-4", "U/mL"),  # 17842-6 is CA 27-29
        "NSE": ("15060-7", "ng/mL"),  # 15060-4 fails the check digit
        "AFP": ("1834-1", "ng/mL"),
        "HGB": ("718-7", "g/L"),
        "CREA": ("14682-9", "umol/L"),
        "GLU": ("14749-6", "mmol/L"),
    }
    for code, (loinc, unit) in expected.items():
        analyte = vocab.analyte(code)
        assert analyte is not None and (analyte.loinc, analyte.standard_unit) == (loinc, unit)
    creatinine = vocab.analyte("CREA")
    assert creatinine is not None and creatinine.molar_mass_g_per_mol == pytest.approx(113.12)
    for analyte in vocab.analytes:
        assert analyte.loinc is None or loinc_check_digit_ok(analyte.loinc), analyte.code


def test_loinc_check_digit() -> None:
    assert loinc_check_digit_ok("2039-6")
    assert loinc_check_digit_ok("718-7")
    assert not loinc_check_digit_ok("15060-4")
    assert not loinc_check_digit_ok("2039")


# --- malformed files --------------------------------------------------------


def _replace_line(path: Path, line_number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_copy_of_the_shipped_data_loads(data_copy: Path) -> None:
    assert load_vocabulary(data_copy).lung_stage_group("T1b", "N0", "M0") == "IA2"


def test_mistyped_loinc_names_file_and_line(data_copy: Path) -> None:
    _replace_line(
        data_copy / "analytes.csv", 3, "CA125,Cancer antigen 125,糖类抗原125,CA125,10334-2,U/mL,"
    )
    with pytest.raises(InvalidInput, match=r"analytes\.csv, line 3: .*10334-2"):
        load_vocabulary(data_copy)


def test_missing_field_names_file_and_line(data_copy: Path) -> None:
    _replace_line(data_copy / "icd10_neoplasms.csv", 5, "C03,Malignant neoplasm of gum")
    with pytest.raises(InvalidInput, match=r"icd10_neoplasms\.csv, line 5"):
        load_vocabulary(data_copy)


def test_alias_shared_by_two_analytes_is_refused(data_copy: Path) -> None:
    _replace_line(
        data_copy / "analytes.csv", 3, "CA125,Cancer antigen 125,糖类抗原125,C.E.A,10334-1,U/mL,"
    )
    with pytest.raises(
        InvalidInput, match=r"analytes\.csv, line 3: alias 'C\.E\.A' already names CEA"
    ):
        load_vocabulary(data_copy)


def test_stage_rule_with_unknown_tnm_is_refused(data_copy: Path) -> None:
    _replace_line(data_copy / "ajcc8_lung_stage.csv", 2, "T5,N0,M0,occult")
    with pytest.raises(InvalidInput, match=r"ajcc8_lung_stage\.csv, line 2"):
        load_vocabulary(data_copy)


def test_wrong_header_is_refused(data_copy: Path) -> None:
    _replace_line(data_copy / "icdo3_morphology.csv", 1, "code,name,name_zh,behaviour")
    with pytest.raises(InvalidInput, match=r"icdo3_morphology\.csv, line 1"):
        load_vocabulary(data_copy)


# --- OMOP concepts ----------------------------------------------------------

OMOP_HEADER = "\t".join(
    [
        *("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id"),
        *("standard_concept", "concept_code", "valid_start_date", "valid_end_date"),
        "invalid_reason",
    ]
)


def _omop_row(
    concept_id: str,
    name: str,
    domain: str,
    vocabulary: str,
    concept_class: str,
    code: str,
    *,
    standard: str = "",
    start: str = "19700101",
) -> str:
    return "\t".join(
        [concept_id, name, domain, vocabulary, concept_class, standard, code, start, "20991231", ""]
    )


NEOPLASM_RESP = "Neoplasm of unspecified behavior of respiratory system"
# A tiny CONCEPT.csv; the concept ids are made up for the test.
OMOP_ROWS = [
    _omop_row("45566", "Upper lobe, bronchus or lung", "Condition", "ICD10", "ICD10 code", "C34.1"),
    _omop_row("35206191", NEOPLASM_RESP, "Condition", "ICD10CM", "ICD10 code", "D49.1"),
    _omop_row(
        "44499685", "Adenocarcinoma, NOS", "Observation", "ICDO3", "ICDO Histology", "8140/3"
    ),
    # Athena files are not quoted, and dates may be ISO.
    _omop_row(
        "4000001",
        'Solid pseudo"papillary" tumor',
        "Observation",
        "ICDO3",
        "ICDO Histology",
        "8452/3",
        start="1970-01-01",
    ),
    _omop_row(
        "3013444",
        "Carcinoembryonic Ag [Mass/volume] in Serum or Plasma",
        "Measurement",
        "LOINC",
        "Lab Test",
        "2039-6",
        standard="S",
    ),
    _omop_row(
        "4112853",
        "Malignant tumor of breast",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "254837009",
        standard="S",
    ),
]


def _write_omop(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([OMOP_HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_omop_concept_file_extends_a_new_vocabulary(vocab: Vocabulary, tmp_path: Path) -> None:
    extended = vocab.extend_from_omop_concept(_write_omop(tmp_path / "CONCEPT.csv", OMOP_ROWS))

    added = extended.icd10("D49.1")
    assert added is not None and added.name_en.startswith("Neoplasm of unspecified behavior")
    assert not extended.is_neoplasm("D49.1")  # known now, but still outside WHO's C00-D48
    quoted = extended.morphology("8452/3")
    assert quoted is not None and quoted.name_en == 'Solid pseudo"papillary" tumor'
    shipped = extended.icd10("C34.1")
    assert shipped is not None and shipped.name_zh == "上叶，支气管或肺的恶性肿瘤"
    assert vocab.icd10("D49.1") is None  # the shared default is unchanged

    by_code = {(c.vocabulary_id, c.concept_code): c for c in extended.concepts()}
    assert by_code[("ICD10", "C34.1")].concept_id == 45566
    assert by_code[("ICDO3", "8140/3")].concept_id == 44499685
    assert by_code[("LOINC", "2039-6")].concept_id == 3013444
    assert ("SNOMED", "254837009") not in by_code
    assert by_code[("ICD10", "C34.2")].concept_id >= LOCAL_CONCEPT_ID_START
    assert by_code[("OncoFed", "ProGRP")].concept_id >= LOCAL_CONCEPT_ID_START


def test_local_concept_ids_are_unique_and_the_same_every_time(vocab: Vocabulary) -> None:
    first = vocab.concepts()
    ids = [c.concept_id for c in first]
    assert len(ids) == len(set(ids))
    assert all(LOCAL_CONCEPT_ID_START <= i <= 2_147_483_647 for i in ids)
    with as_file(files("shared_cdm.vocab") / "data") as source:
        again = load_vocabulary(source).concepts()
    assert [(c.concept_code, c.concept_id) for c in again] == [
        (c.concept_code, c.concept_id) for c in first
    ]


def test_malformed_omop_row_names_file_and_line(vocab: Vocabulary, tmp_path: Path) -> None:
    bad = OMOP_ROWS[0].replace("45566", "forty-five", 1)
    path = _write_omop(tmp_path / "CONCEPT.csv", [OMOP_ROWS[2], bad])
    with pytest.raises(InvalidInput, match=r"CONCEPT\.csv, line 3"):
        vocab.extend_from_omop_concept(path)


def test_omop_file_without_omop_columns_is_refused(vocab: Vocabulary, tmp_path: Path) -> None:
    path = tmp_path / "CONCEPT.csv"
    path.write_text("code,name\nC34.1,lung\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="missing columns"):
        vocab.extend_from_omop_concept(path)


def test_concepts_load_into_the_concept_table_once(db_url: str, vocab: Vocabulary) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            inserted = load_concepts_into_db(session, vocab)
            session.commit()
            assert inserted == len(vocab.concepts()) > 250
            assert load_concepts_into_db(session, vocab) == 0
            row = session.scalars(
                sa.select(ConceptRow).where(
                    ConceptRow.vocabulary_id == "ICD10", ConceptRow.concept_code == "C34.1"
                )
            ).one()
            assert row.concept_name == "Upper lobe, bronchus or lung"
            assert row.concept_id >= LOCAL_CONCEPT_ID_START
    finally:
        engine.dispose()


def test_default_vocabulary_is_read_once() -> None:
    assert load_default() is load_default()
