"""The CDM rows one structured note gives (`structuring.note_facts`): a note_nlp row
per value with offsets into the stored text, cancer modifiers linked to the
matching diagnosis, PET-CT lesions as measurements of their site, and how a
note's kind and its diagnosis are chosen."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from edge_node.pipeline import structuring as s
from edge_node.pipeline.deid import Pseudonymizer
from edge_node.structure.core import Extraction
from edge_node.structure.pipeline import VERSION
from shared_cdm.models import CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID

KEYS = Pseudonymizer(bytes(range(32)))
WHEN = date(2021, 5, 4)
PATHOLOGY = (
    "病理诊断报告单\n病理号：[MRN]  姓名：[NAME]\n"
    "病理诊断：（右肺上叶）浸润性腺癌，中分化，肿瘤大小2.5×2.0cm，脏层胸膜未见侵犯。"
    "EGFR 19外显子缺失突变（阳性）。PD-L1 TPS约30%。pTNM：pT1cN0M0。"
)
PETCT = (
    "PET-CT检查所见：右肺上叶见一软组织结节，大小约2.5cm×2.0cm，SUVmax 9.8；"
    "纵隔淋巴结肿大，SUVmax 5.9；肝内见一低密度灶，SUVmax 1.2。\n"
    "诊断意见：右肺上叶结节，考虑肺癌；纵隔淋巴结转移；肝囊肿可能。"
)
CONCEPTS = {("ICDO3", "8140/3"): 2_000_000_777, ("ICD10", "C34.1"): 2_000_000_555}


def _concept(vocabulary: str, code: str | None) -> int:
    return CONCEPTS.get((vocabulary, code or ""), 0)


def _note(kind: str, text: str) -> s.NoteIn:
    return s.NoteIn(
        note_id=41,
        person_id=7,
        note_date=WHEN,
        visit_id=99,
        text=text,
        lang="zh",
        kind=kind,
        src_system="emr",
        src_table="pathology_report",
        src_row="ab" * 16,
    )


def _at(text: str, piece: str, nth: int = 0) -> tuple[int, int]:
    start = -1
    for _ in range(nth + 1):
        start = text.index(piece, start + 1)
    return start, start + len(piece)


def _pathology_extraction(confidence: dict[str, float] | None = None) -> Extraction:
    ex = Extraction.empty(("histology", "icdo3_morphology", "differentiation", "tumor_size_cm"))
    ex.fields |= {"laterality": None, "lobe": None, "pT": None, "pN": None, "pM": None}
    ex.fields |= {"visceral_pleural_invasion": None, "egfr": None, "pdl1_tps_percent": None}
    t = PATHOLOGY
    ex.put("histology", "adenocarcinoma", *_at(t, "浸润性腺癌"))
    ex.put("icdo3_morphology", "8140/3", *_at(t, "浸润性腺癌"))
    ex.put("differentiation", "moderate", *_at(t, "中分化"))
    ex.put("tumor_size_cm", 2.5, *_at(t, "2.5×2.0cm"))
    ex.put("laterality", "right", *_at(t, "右肺上叶"))
    ex.put("lobe", "upper", *_at(t, "右肺上叶"))
    ex.put("pT", "T1c", *_at(t, "T1c"))
    ex.put("pN", "N0", *_at(t, "N0"))
    ex.put("pM", "M0", *_at(t, "M0"))
    ex.put("visceral_pleural_invasion", False, *_at(t, "脏层胸膜未见侵犯"))
    ex.put("egfr", "mutant", *_at(t, "EGFR 19外显子缺失突变（阳性）"))
    ex.put("pdl1_tps_percent", 30.0, *_at(t, "PD-L1 TPS约30%"))
    if confidence is not None:
        ex.confidence = confidence
    return ex


DIAGNOSES = [
    s.Diagnosis(1001, "C34.3", date(2021, 4, 1)),  # other lobe
    s.Diagnosis(1002, "C34.1", date(2019, 1, 1)),  # right lobe, long ago
    s.Diagnosis(1003, "C34.1", date(2021, 4, 20)),  # right lobe, nearest
    s.Diagnosis(1004, "C50.9", date(2021, 5, 1)),  # another cancer
]


def _facts(kind: str, text: str, ex: Extraction, diagnoses: list[s.Diagnosis]) -> s.Facts:
    return s.note_facts(
        _note(kind, text),
        ex,
        diagnoses,
        KEYS.surrogate_id,
        concept=_concept,
        canonical_tnm=lambda axis, v: v,
        nlp_date=date(2026, 11, 29),
    )


def _modifiers(rows: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for row in rows:
        parts = dict(p.split("=", 1) for p in row["term_modifiers"].split(";"))
        out[parts["field"]] = parts["value"]
    return out


def test_one_note_nlp_row_per_value_whose_offsets_slice_the_stored_text() -> None:
    ex = _pathology_extraction()
    facts = _facts("pathology", PATHOLOGY, ex, DIAGNOSES)
    given = {k for k, v in ex.fields.items() if v is not None}
    assert len(facts.note_nlp) == len(given) == 12
    assert _modifiers(facts.note_nlp) == {
        "histology": "adenocarcinoma",
        "icdo3_morphology": "8140/3",
        "differentiation": "moderate",
        "tumor_size_cm": "2.5",
        "laterality": "right",
        "lobe": "upper",
        "pT": "T1c",
        "pN": "N0",
        "pM": "M0",
        "visceral_pleural_invasion": "false",
        "egfr": "mutant",
        "pdl1_tps_percent": "30",
    }
    for row in facts.note_nlp:
        start, end = (int(x) for x in row["offset"].split("-"))
        assert PATHOLOGY[start:end] == row["lexical_variant"]
        assert row["lexical_variant"] in row["snippet"]
        assert len(row["snippet"]) <= 250
        assert row["nlp_system"] == f"oncofed-structure pathology {VERSION} onco_pathology_fields"
        assert (row["src_system"], row["src_table"], row["src_row"]) == (
            "emr",
            "pathology_report",
            "ab" * 16,
        )
        assert row["note_id"] == 41
    assert len({row["note_nlp_id"] for row in facts.note_nlp}) == 12


def test_absent_findings_say_so_and_codes_carry_their_concept() -> None:
    facts = _facts("pathology", PATHOLOGY, _pathology_extraction(), DIAGNOSES)
    by_field = {_modifiers([r]).popitem()[0]: r for r in facts.note_nlp}
    assert by_field["visceral_pleural_invasion"]["term_exists"] == "N"
    assert by_field["egfr"]["term_exists"] == "Y"  # mutant: the finding is there
    assert by_field["histology"]["term_exists"] == "Y"
    assert by_field["icdo3_morphology"]["note_nlp_concept_id"] == 2_000_000_777
    assert by_field["histology"]["note_nlp_concept_id"] == 0


def test_modifiers_are_measurements_of_the_matching_diagnosis() -> None:
    facts = _facts("pathology", PATHOLOGY, _pathology_extraction(), DIAGNOSES)
    got = {m["measurement_source_value"]: m for m in facts.measurements}
    assert set(got) == {"pT", "pN", "pM", "tumor_size", "differentiation", "EGFR", "PD-L1_TPS"}
    for m in got.values():
        # right upper lobe: C34.1, and of the two C34.1 diagnoses the nearer one
        assert m["measurement_event_id"] == 1003
        assert m["meas_event_field_concept_id"] == CONDITION_OCCURRENCE_ID_FIELD_CONCEPT_ID
        assert m["measurement_type_concept_id"] == s.NLP
        assert (m["person_id"], m["measurement_date"], m["visit_occurrence_id"]) == (7, WHEN, 99)
        assert m["src_row"] == "ab" * 16
    assert got["pT"]["value_source_value"] == "T1c" and got["pT"]["value_as_number"] is None
    assert got["tumor_size"]["value_as_number"] == 2.5
    assert got["tumor_size"]["unit_source_value"] == "cm"
    assert got["PD-L1_TPS"]["value_as_number"] == 30.0
    assert got["EGFR"]["value_source_value"] == "mutant"
    assert facts.unlinked == 0


def test_no_matching_diagnosis_leaves_modifiers_unlinked_and_counted() -> None:
    other = [s.Diagnosis(1004, "C50.9", date(2021, 5, 1))]  # breast: not this lung tumour
    facts = _facts("pathology", PATHOLOGY, _pathology_extraction(), other)
    assert facts.measurements
    assert all(m["measurement_event_id"] is None for m in facts.measurements)
    assert facts.unlinked == len(facts.measurements)


def test_confidence_is_the_extractors_when_given_else_the_default() -> None:
    given = _facts("pathology", PATHOLOGY, _pathology_extraction({"pT": 0.97}), DIAGNOSES)
    by_field = {_modifiers([r]).popitem()[0]: r["confidence"] for r in given.note_nlp}
    assert by_field["pT"] == 0.97
    assert by_field["pN"] == s.DEFAULT_CONFIDENCE
    pt = next(m for m in given.measurements if m["measurement_source_value"] == "pT")
    assert pt["confidence"] == 0.97


def test_uncertain_wording_lowers_the_default_confidence() -> None:
    text = "病理诊断：（右肺上叶）考虑腺癌。"
    ex = Extraction.empty(("histology",))
    ex.put("histology", "adenocarcinoma", *_at(text, "腺癌"))
    facts = _facts("pathology", text, ex, DIAGNOSES)
    (row,) = facts.note_nlp
    assert row["confidence"] == s.UNCERTAIN_CONFIDENCE
    assert "uncertain=true" in row["term_modifiers"]


def test_keys_are_stable_so_a_note_written_twice_is_written_once() -> None:
    a = _facts("pathology", PATHOLOGY, _pathology_extraction(), DIAGNOSES)
    b = _facts("pathology", PATHOLOGY, _pathology_extraction(), DIAGNOSES)
    assert [r["note_nlp_id"] for r in a.note_nlp] == [r["note_nlp_id"] for r in b.note_nlp]
    assert [m["measurement_id"] for m in a.measurements] == [
        m["measurement_id"] for m in b.measurements
    ]
    other = s.note_facts(
        s.NoteIn(**{**_note("pathology", PATHOLOGY).__dict__, "note_id": 42}),
        _pathology_extraction(),
        DIAGNOSES,
        KEYS.surrogate_id,
        concept=_concept,
        canonical_tnm=lambda axis, v: v,
        nlp_date=WHEN,
    )
    assert not {r["note_nlp_id"] for r in other.note_nlp} & {r["note_nlp_id"] for r in a.note_nlp}


def _petct_extraction() -> Extraction:
    t = PETCT
    ex = Extraction.empty(("lesions", "lesion_count"))
    ex.fields["lesions"] = [
        {"site": "right_upper_lobe", "size_cm": 2.5, "suvmax": 9.8, "tendency": "malignant",
         "role": "primary"},
        {"site": "mediastinal_lymph_node", "size_cm": None, "suvmax": 5.9,
         "tendency": "malignant", "role": "lymph_node"},
        {"site": "liver", "size_cm": None, "suvmax": 1.2, "tendency": "benign", "role": None},
    ]  # fmt: skip
    ex.fields["lesion_count"] = 3
    # every mention of every lesion, findings and impression, as the extractor cites them
    for piece in (
        "右肺上叶见一软组织结节，大小约2.5cm×2.0cm，SUVmax 9.8",
        "纵隔淋巴结肿大，SUVmax 5.9",
        "肝内见一低密度灶，SUVmax 1.2",
        "右肺上叶结节，考虑肺癌",
        "纵隔淋巴结转移",
    ):
        ex.cite("lesions", *_at(t, piece))
        ex.cite("lesion_count", *_at(t, piece))
    return ex


def test_petct_lesions_are_measurements_of_their_site() -> None:
    facts = _facts("petct", PETCT, _petct_extraction(), DIAGNOSES)
    lesions = [r for r in facts.note_nlp if "field=lesions" in r["term_modifiers"]]
    assert [r["term_modifiers"].split(";")[1] for r in lesions] == [
        "value=right_upper_lobe",
        "value=mediastinal_lymph_node",
        "value=liver",
    ]
    # each lesion's evidence is its own mention, found by its SUVmax
    assert [r["lexical_variant"][-3:] for r in lesions] == ["9.8", "5.9", "1.2"]
    assert "role=primary" in lesions[0]["term_modifiers"]
    assert "tendency=benign" in lesions[2]["term_modifiers"]
    got = [
        (m["measurement_source_value"], m["value_source_value"], m["value_as_number"])
        for m in facts.measurements
    ]
    assert got == [
        ("SUVmax", "right_upper_lobe", 9.8),
        ("lesion_size", "right_upper_lobe", 2.5),
        ("SUVmax", "mediastinal_lymph_node", 5.9),
        ("SUVmax", "liver", 1.2),
    ]
    links = [m["measurement_event_id"] for m in facts.measurements]
    # the primary is in the right upper lobe: C34.1; a benign lesion modifies nothing
    assert links == [1003, 1003, 1003, None]
    assert len({m["measurement_id"] for m in facts.measurements}) == 4


def test_discharge_lists_give_one_row_per_item() -> None:
    text = (
        "出院诊断：右肺上叶腺癌；骨继发恶性肿瘤。予培美曲塞+顺铂方案化疗。"
        "于2021-03-02行胸腔镜下肺叶切除术。"
    )
    ex = Extraction.empty(("diagnosis_icd10", "procedures", "chemotherapy_regimens", "smoking"))
    ex.fields["diagnosis_icd10"] = ["C34.1", "C79.5"]
    ex.cite("diagnosis_icd10", *_at(text, "右肺上叶腺癌"))
    ex.cite("diagnosis_icd10", *_at(text, "骨继发恶性肿瘤"))
    ex.fields["procedures"] = [{"name": "胸腔镜下肺叶切除术", "date": "2021-03-02"}]
    ex.cite("procedures", *_at(text, "胸腔镜下肺叶切除术"))
    ex.put("chemotherapy_regimens", ["pemetrexed+cisplatin"], *_at(text, "培美曲塞+顺铂"))
    facts = _facts("discharge", text, ex, DIAGNOSES)
    rows = {(r["term_modifiers"], r["lexical_variant"]) for r in facts.note_nlp}
    assert rows == {
        ("field=diagnosis_icd10;value=C34.1;index=0", "右肺上叶腺癌"),
        ("field=diagnosis_icd10;value=C79.5;index=1", "骨继发恶性肿瘤"),
        ("field=procedures;value=胸腔镜下肺叶切除术;index=0;date=2021-03-02", "胸腔镜下肺叶切除术"),
        ("field=chemotherapy_regimens;value=pemetrexed+cisplatin;index=0", "培美曲塞+顺铂"),
    }
    c34 = next(r for r in facts.note_nlp if "C34.1" in r["term_modifiers"])
    assert c34["note_nlp_concept_id"] == 2_000_000_555
    assert facts.measurements == []  # a discharge summary modifies no diagnosis here


def test_a_value_without_evidence_gives_no_row_and_is_counted() -> None:
    ex = Extraction.empty(("histology", "pT"))
    ex.fields["histology"] = "adenocarcinoma"  # no evidence: nothing to point at
    ex.put("pT", "T2a", *_at("pT2a", "T2a"))
    facts = _facts("pathology", "pT2a", ex, [])
    assert [r["lexical_variant"] for r in facts.note_nlp] == ["T2a"]
    assert facts.no_evidence == 1


@pytest.mark.parametrize(
    ("title", "text", "kind"),
    [
        ("pathology_report", "东江市第一人民医院病理诊断报告单\n病理号：[MRN]", "pathology"),
        ("tb_blbg", "（左肺下叶）腺癌", "pathology"),
        ("DISCHARGE_NOTES", "CITY HOSPITAL\nDISCHARGE SUMMARY\nName: [NAME]", "discharge"),
        ("tb_cyxj", "东江市人民医院出院小结\n...术后病理诊断：腺癌", "discharge"),
        ("reports", "PET/CT report. Findings: FDG-avid nodule, SUVmax 9.8", "petct"),
        ("documents", "门诊病历：咳嗽两周", None),
    ],
)
def test_note_kind(title: str, text: str, kind: str | None) -> None:
    assert s.note_kind(title, text) == kind


def test_snippet_keeps_the_evidence_inside_250_characters() -> None:
    text = "x" * 600 + "腺癌" + "y" * 600
    cut = s.snippet(text, 600, 602)
    assert len(cut) == 250 and "腺癌" in cut
    assert s.snippet("腺癌", 0, 2) == "腺癌"
    assert s.snippet(text, 0, 2) == text[:250]
    assert s.snippet(text, 1100, 1202) == text[952:1202]


def test_matching_diagnosis_prefers_site_then_primary_then_time() -> None:
    assert s.matching_diagnosis(DIAGNOSES, "C34.1", WHEN).condition_occurrence_id == 1003  # type: ignore[union-attr]
    assert s.matching_diagnosis(DIAGNOSES, "C34", WHEN).condition_occurrence_id == 1003  # type: ignore[union-attr]
    assert s.matching_diagnosis(DIAGNOSES, None, WHEN).condition_occurrence_id == 1004  # type: ignore[union-attr]
    assert s.matching_diagnosis(DIAGNOSES, "C16", WHEN) is None
    secondary = [s.Diagnosis(1, "C79.5", WHEN), s.Diagnosis(2, "C34.9", date(2015, 1, 1))]
    assert s.matching_diagnosis(secondary, None, WHEN).condition_occurrence_id == 2  # type: ignore[union-attr]


def test_every_measured_code_has_a_concept_in_the_shipped_vocabulary() -> None:
    from shared_cdm.vocab import load_default

    concepts = {(c.vocabulary_id, c.concept_code): c for c in load_default().concepts()}
    codes = [code for code, _ in s.MODIFIERS.values()]
    codes += [code for _, code, _ in s.LESION_MEASURES]
    for code in codes:
        concept = concepts.get(("OncoFed", code))
        assert concept is not None, code
        assert concept.concept_id >= 2_000_000_000
        assert concept.domain_id == "Measurement"
    ids = [concepts[("OncoFed", code)].concept_id for code in codes]
    assert len(set(ids)) == len(ids)
