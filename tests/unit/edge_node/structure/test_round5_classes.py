"""Classes of misses fixed after the fourth held-out set: node stations written side
by side, totals repeated after the stations, clinical and invasive sizes, features
that cannot be assessed, dash-labelled fields, gene tables, ICD-10 and surgery
vocabulary, dates, abbreviations that are not drugs, PET-CT bracket asides, values
compared with a reference, costal pleura, and the literal prefilters and prefix trees
that keep the rules fast (their output must equal the plain patterns')."""

from __future__ import annotations

import dataclasses
import re

import pytest

from edge_node.structure import lesions
from edge_node.structure.text import required_literal, required_literals
from tests.unit.edge_node.structure.round_helpers import dis_fields as _dis
from tests.unit.edge_node.structure.round_helpers import path_fields as _path
from tests.unit.edge_node.structure.round_helpers import pet_lesions as _pet

# --------------------------------------------------------------------------- pathology


def test_stations_side_by_side_keep_their_own_labels() -> None:
    f = _path(
        "Diagnosis: adenocarcinoma of the left upper lobe.\n"
        "Regional lymph nodes:\n"
        "  Station 4L: 0/3   Station 5: 1/2   Station 7: 0/4\n"
        "  Station 10L: 2/2  Station 11L: 0/1\n"
    )
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (12, 3)


def test_a_total_repeated_after_the_stations_is_not_added() -> None:
    f = _path(
        "Diagnosis: squamous cell carcinoma, right lower lobe.\n"
        "Lymph nodes: stn 4R 0/2, stn 7 1/3, stn 10R 1/4, stn 11R 0/1.\n"
        "Comment: metastatic carcinoma in hilar and mediastinal nodes (2/10)."
    )
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (10, 2)


def test_equal_counts_at_numbered_stations_are_still_stations() -> None:
    # 0/2 at the first station equals the two after it: a coincidence, not a total
    f = _path("诊断：（右肺上叶）腺癌。\n淋巴结：#2 0/2，#4 0/1，#10 0/1，均阴性。")
    assert f["lymph_nodes_examined"] == 4


@pytest.mark.parametrize(
    "nodes",
    [
        "B) LN 7: NEGATIVE (0/3).\nC) LN 10R: NEGATIVE (0/2).\nD) LN 11R: POSITIVE (1/2).",
        "Lymph nodes: Level 4R-0/3, 7-0/2, 10R-1/2.",
    ],
)
def test_ln_and_dash_written_stations(nodes: str) -> None:
    f = _path("DIAGNOSIS: adenocarcinoma, right upper lobe, 2.0 cm.\n" + nodes)
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (7, 1)


def test_clinical_note_size_is_not_the_tumour_size() -> None:
    biopsy = (
        "CLINICAL HX: RUL spiculated nodule 27 mm on CT.\n"
        "SPECIMEN: CT guided core biopsy, right upper lobe.\n"
        "DIAGNOSIS: adenocarcinoma."
    )
    assert _path(biopsy)["tumor_size_cm"] is None
    resected = (
        "Clinical details: LUL mass 3.0 cm on CT.\n"
        "Macro: LUL lobectomy 150 x 100 x 40 mm. Firm grey tumour 32 x 25 x 20 mm.\n"
        "Diagnosis: adenocarcinoma."
    )
    assert _path(resected)["tumor_size_cm"] == 3.2


def test_total_size_wins_over_the_invasive_size() -> None:
    f = _path(
        "Microscopy: lepidic adenocarcinoma with a focus of acinar invasion measuring 4 mm.\n"
        "Conclusion: minimally invasive adenocarcinoma (total size 16 mm, invasive size 4 mm)."
    )
    assert f["tumor_size_cm"] == 1.6
    zh = _path("病理诊断：（左肺上叶）微浸润性腺癌，浸润灶最大径0.3cm，病灶大小1.1×0.9cm。")
    assert zh["tumor_size_cm"] == 1.1


def test_features_that_cannot_be_assessed_are_null() -> None:
    f = _path(
        "病理诊断：（右肺下叶）穿刺组织：鳞状细胞癌。\n备注：小活检，脉管及胸膜侵犯情况无法评估。"
    )
    assert f["visceral_pleural_invasion"] is None
    assert f["lymphovascular_invasion"] is None


def test_dash_labelled_fields() -> None:
    f = _path(
        "Impression: Adenocarcinoma of lung, right lower lobe.\n"
        "Pleura - Free. Vascular emboli - Absent."
    )
    assert f["visceral_pleural_invasion"] is False
    assert f["lymphovascular_invasion"] is False
    g = _path("Impression: Adenocarcinoma of lung, right lower lobe.\nPleura - Involved.")
    assert g["visceral_pleural_invasion"] is True


def test_gene_table_row_reads_its_own_line() -> None:
    f = _path(
        "病理诊断：（左肺）腺癌。\nNGS：\n EGFR｜未检出突变\n ALK｜检出 EML4-ALK 融合（V1）\n"
    )
    assert (f["egfr"], f["alk"]) == ("wild_type", "positive")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("病理诊断：（右肺下叶）癌肉瘤。", "8980/3"),
        ("FINAL DIAGNOSIS: Pulmonary blastoma, left lower lobe.", "8972/3"),
        ("FINAL DIAGNOSIS: Alveolar adenoma, right upper lobe.", "8251/0"),
    ],
)
def test_broader_histology_vocabulary(text: str, code: str) -> None:
    assert _path(text)["icdo3_morphology"] == code


# --------------------------------------------------------------------------- discharge


def test_diagnosis_vocabulary_and_abbreviations() -> None:
    f = _dis(
        "Discharge Diagnoses:\n1. Right lower lobe SCC, stage IIIA\n2. CAP, RML\n"
        "3. Malignant left pleural effusion\n4. SIADH with hyponatraemia\n"
    )
    assert f["diagnosis_icd10"] == ["C34.3", "J18.9", "C78.2", "E22.2"]
    zh = _dis("出院诊断：1.左肺上叶 SCC（IV期）；2.抗利尿激素分泌失调综合征伴低钠血症。")
    assert zh["diagnosis_icd10"] == ["C34.1", "E22.2"]


def test_pancoast_tumour_is_an_upper_lobe_cancer() -> None:
    f = _dis(
        "Discharge Diagnoses:\n1. Superior sulcus (Pancoast) tumor, squamous cell carcinoma.\n"
    )
    assert f["diagnosis_icd10"] == ["C34.1"]


def test_spine_surgery_keeps_its_level_and_date() -> None:
    f = _dis('入院情况：骨转移。\n诊疗经过：于2026-09-02行"L3椎体后路减压内固定术"，术后恢复好。')
    assert f["procedures"] == [{"name": "L3椎体后路减压内固定术", "date": "2026-09-02"}]


def test_a_full_date_after_the_name_beats_a_partial_one_before() -> None:
    f = _dis("History: Admission #1 (June 2022): Left upper lobe lobectomy on June 7, 2022 (pT1c).")
    assert f["procedures"] == [{"name": "Left upper lobe lobectomy", "date": "2022-06-07"}]


def test_a_year_right_after_the_name_stays_with_it() -> None:
    f = _dis("Past surgical history: appendectomy 1990 left breast lumpectomy 03/14/2012.")
    assert f["procedures"] == [
        {"name": "appendectomy", "date": None},
        {"name": "left breast lumpectomy", "date": "2012-03-14"},
    ]


def test_listed_parts_of_one_operation_are_one_procedure() -> None:
    f = _dis(
        "Operations:\n- 05/02/2026: Right lower lobectomy with diaphragm resection (partial), "
        "patch repair and mediastinal lymph node dissection.\n"
    )
    assert f["procedures"] is not None and len(f["procedures"]) == 1
    assert f["procedures"][0]["name"].endswith("mediastinal lymph node dissection")


def test_abbreviation_that_is_a_blood_test_is_no_regimen() -> None:
    f = _dis("Treatment: cisplatin/pemetrexed x4 cycles.\nFollow-up: clinic 2/52 with CBP/LRFT.")
    assert f["chemotherapy_regimens"] == ["cisplatin+pemetrexed"]
    g = _dis("Treatment: GEM/DDP 方案化疗2周期。")
    assert g["chemotherapy_regimens"] == ["gemcitabine+cisplatin"]


def test_stopped_at_diagnosis_is_former() -> None:
    assert _dis("个人史：吸烟20年，确诊后戒烟至今约半年。")["smoking"] == "former"
    assert _dis("Social: quit smoking at diagnosis in 2025, 30 pack-years.")["smoking"] == "former"


# --------------------------------------------------------------------------- PET-CT


def test_a_bracket_aside_does_not_undo_the_judgement() -> None:
    found = _pet(
        "检查所见：右肺上叶见肿块，大小约4.0cm，SUVmax 12.0，远端见阻塞性炎症。\n"
        "诊断意见：右肺上叶中央型肺癌（阻塞性炎症代谢不高）。",
        "zh",
    )
    assert [(x["site"], x["tendency"], x["role"]) for x in found] == [
        ("right_upper_lobe", "malignant", "primary")
    ]


def test_value_compared_with_a_reference_is_the_lesions() -> None:
    found = _pet(
        "Findings:\nSubcarinal (7) node 11 mm, SUVmax 3.4 - mildly above blood pool (SUVmax 1.9).\n"
        "Impression:\nSubcarinal node indeterminate."
    )
    assert [(x["site"], x["suvmax"]) for x in found] == [("mediastinal_lymph_node", 3.4)]


def test_costal_pleura_is_pleura_not_a_rib() -> None:
    found = _pet(
        "检查所见：右侧胸膜多处结节状增厚，较大者约2.0cm，位于右侧后肋胸膜，SUVmax 5.2。\n"
        "诊断意见：右侧胸膜转移。",
        "zh",
    )
    assert [x["site"] for x in found] == ["pleura"]


def test_organ_without_focal_uptake_is_no_lesion() -> None:
    found = _pet(
        "FINDINGS:\nChest: RUL mass 3.1 cm, SUVmax 9.9.\n"
        "Abdomen: Liver without focal hypermetabolism.\nIMPRESSION:\nRUL primary malignancy."
    )
    assert [x["site"] for x in found] == ["right_upper_lobe"]


# --------------------------------------------------------------------------- speed helpers


def test_required_literal_is_in_every_match() -> None:
    cases = {
        r"右肺?上叶": "上叶",
        r"\bright\s+upper\s+lobe\b": "right",
        r"(?<![成溶])骨": "骨",
        r"\b(?:upper|lower)?\s*para-?tracheal\b": "tracheal",
        r"a|b": "",
    }
    for pattern, lit in cases.items():
        assert required_literal(re.compile(pattern)) == lit
    assert required_literal(re.compile("abc", re.IGNORECASE)) == ""
    assert required_literals(re.compile(r"(?:foo\d|ba+r|qux)")) == ("foo", "b", "qux")
    assert required_literals(re.compile(r"(?:foo|\d+)")) is None


def test_site_prefilter_and_word_tries_match_the_plain_patterns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "右肺上叶见结节, right upper lobe mass, rul, 左肺舌段, t9 vertebral body, liver s7"
    fast = lesions._site_hits(text)
    v = lesions.vocab()
    unfiltered = dataclasses.replace(v, site_literals=[""] * len(v.site_literals))
    monkeypatch.setattr(lesions, "vocab", lambda: unfiltered)
    assert lesions._site_hits(text) == fast
    assert {h.site for h in fast} >= {"right_upper_lobe", "left_upper_lobe", "bone", "liver"}
    words = ["no", "node", "nodes", "未见", "未见明显"]
    flat = "|".join(
        (r"\b" if w.isascii() else "") + re.escape(w) + (r"\b" if w.isascii() else "")
        for w in sorted(words, key=len, reverse=True)
    )
    tree = re.compile(lesions._mixed(words), re.ASCII)
    sample = "nodes and no node, 未见明显结节, 未见, nodal, snow"
    assert [m.span() for m in tree.finditer(sample)] == [
        m.span() for m in re.finditer(flat, sample, re.ASCII)
    ]


def test_operations_dated_apart_stay_apart() -> None:
    f = _dis("Past surgical history: right upper lobectomy (2019) and left wedge resection (2021).")
    assert f["procedures"] is not None and len(f["procedures"]) == 2


def test_cms_is_a_unit() -> None:
    f = _path("Gross: Tumor size: 3.5 cms, grey-white.\nImpression: adenocarcinoma of lung.")
    assert f["tumor_size_cm"] == 3.5
    found = _pet("Findings: RUL mass 2.5 cms, SUVmax 7.1.\nImpression: RUL primary malignancy.")
    assert [(x["size_cm"], x["suvmax"]) for x in found] == [(2.5, 7.1)]


def test_more_discharge_list_headings() -> None:
    f = _dis(
        "History: admitted with fever; chest X-ray suggested pneumonia, later excluded.\n"
        "Working diagnosis: pneumonia.\n"
        "Diagnoses on discharge:\n1. Adenocarcinoma of the right upper lobe\n2. Hypertension\n"
    )
    assert f["diagnosis_icd10"] == ["C34.1", "I10"]
