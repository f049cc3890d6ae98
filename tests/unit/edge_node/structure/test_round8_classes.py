"""Classes of misses fixed after the seventh held-out set: PET-CT station abbreviations
("stn 7"), "SUVmax now X (previously Y)", a bracketed "(no uptake)" aside that negates
nothing after it, a sentence on physiological uptake after a lesion, a judgement written
before a list of sites ("metastases to the adrenal and liver"), a differential between
two readings, the iliac bone; discharge dates whose day/month order the summary shows
elsewhere, operations read by their word's head (-ectomy, -otomy, repair, 结扎术), a
conversion that stays one operation, a state after an operation that is none, numbered
Chinese section headings that end a diagnosis list, a past cancer its item calls gone
(Z85), chylothorax, quitting before surgery, drugs "并用" in one regimen; pathology
PD-L1 bands followed by the value, margin lists, a size after a bracket, a margin
clearance in brackets, a clinical note's stage, digits misread in scanned words, the
worst grade of a sentence, features judged "not assessable" together and a station's
complete count."""

from __future__ import annotations

from tests.unit.edge_node.structure.round_helpers import (
    dis_fields as _dis,
)
from tests.unit.edge_node.structure.round_helpers import (
    path_fields as _path,
)
from tests.unit.edge_node.structure.round_helpers import (
    pet_lesions as _pet,
)
from tests.unit.edge_node.structure.round_helpers import (
    sites as _sites,
)

# --------------------------------------------------------------------------- PET-CT


def test_a_station_abbreviation_is_a_node_of_its_own() -> None:
    out = _pet(
        "Findings:\nNodes : L hilar 1.3 cm SUVmax 5.0 ; stn 7 1.6 cm SUVmax 7.4 .\n"
        "Impression: Left hilar and subcarinal nodal metastases."
    )
    assert _sites(out) == ["hilar_lymph_node", "mediastinal_lymph_node"]
    assert [les["size_cm"] for les in out] == [1.3, 1.6]
    assert [les["suvmax"] for les in out] == [5.0, 7.4]


def test_suvmax_now_is_the_current_value_not_the_previous_one() -> None:
    out = _pet(
        "Findings: The LUL mass has decreased to 1.8 cm, SUVmax now 4.2 (previously 12.9).\n"
        "Impression: Partial metabolic response of the LUL primary tumour."
    )
    assert [(les["site"], les["suvmax"]) for les in out] == [("left_upper_lobe", 4.2)]


def test_a_bracketed_no_uptake_aside_negates_nothing_after_it() -> None:
    out = _pet(
        "Findings: Two small nodules: right lower lobe 5 mm solid nodule (no FDG uptake) "
        "and left upper lobe 7 mm ground-glass nodule (no uptake).\n"
        "Impression: Small RLL and LUL nodules, too small to characterize."
    )
    assert _sites(out) == ["right_lower_lobe", "left_upper_lobe"]
    assert [les["size_cm"] for les in out] == [0.5, 0.7]


def test_a_physiological_sentence_after_a_lesion_does_not_judge_it() -> None:
    out = _pet(
        "Findings: Hypodense lesion in hepatic segment 7, 2.2 cm, SUVmax 6.1. Physiologic bowel "
        "uptake.\nImpression:\n1. Solitary hepatic lesion."
    )
    # nothing judges the lesion: no tendency, not the "physiologic" of the next sentence
    assert [(les["site"], les["tendency"]) for les in out] == [("liver", None)]


def test_a_judgement_before_a_list_of_sites_covers_the_last_site_too() -> None:
    out = _pet(
        "Findings: Right adrenal nodule 1.9 cm, SUVmax 6.6. Liver lesion 2.4 cm, SUVmax 5.8. "
        "Brain lesion 0.8 cm, SUVmax 9.0, consistent with metastasis.\n"
        "Impression: Metastases to the right adrenal gland and liver."
    )
    by_site = {les["site"]: (les["tendency"], les["role"]) for les in out}
    assert by_site["liver"] == ("malignant", "metastasis")
    assert by_site["adrenal"] == ("malignant", "metastasis")


def test_a_judgement_past_a_comma_does_not_cover_the_list() -> None:
    out = _pet(
        "检查所见：右肺上叶肿块，大小约3.0cm，SUVmax 5.1。"
        "纵隔4R区淋巴结，短径约0.8cm，SUVmax 1.9。\n"
        "诊断意见：右肺癌治疗后，右肺上叶病灶及纵隔淋巴结较前缩小。",
        "zh",
    )
    nodes = [les for les in out if les["site"] == "mediastinal_lymph_node"]
    assert nodes and nodes[0]["tendency"] is None


def test_a_differential_between_primary_and_metastasis_is_indeterminate() -> None:
    out = _pet(
        "Findings: New 1.4 cm nodule in the right middle lobe, SUVmax 5.9.\n"
        "Impression: New RML nodule; differential includes a second primary versus a "
        "metastasis."
    )
    assert [(les["tendency"], les["role"]) for les in out] == [("indeterminate", None)]


def test_the_iliac_bone_is_bone_and_iliac_nodes_are_not() -> None:
    out = _pet(
        "Findings: Lytic L iliac lesion 3.1 cm, SUV 8. Common iliac node 0.9 cm, SUV 4.\n"
        "Impression: L iliac mets."
    )
    assert "bone" in _sites(out)
    bone = next(les for les in out if les["site"] == "bone")
    assert bone["tendency"] == "malignant" and bone["size_cm"] == 3.1
    assert _sites(out).count("bone") == 1


# ------------------------------------------------------------------------ discharge


def test_the_summary_shows_its_day_month_order_once_for_all_numeric_dates() -> None:
    f = _dis(
        "Admission: 02/03/2026   Discharge: 19/03/2026\n"
        "Diagnosis: Adenocarcinoma of the left lower lobe\n"
        "Procedure: VATS left lower lobectomy 05/03/2026."
    )
    assert f["procedures"] == [{"name": "VATS left lower lobectomy", "date": "2026-03-05"}]


def test_month_first_dates_stay_month_first() -> None:
    f = _dis(
        "Admission: 03/02/2026   Discharge: 03/19/2026\n"
        "Diagnosis: Adenocarcinoma of the left lower lobe\n"
        "Procedure: VATS left lower lobectomy 03/05/2026."
    )
    assert f["procedures"] == [{"name": "VATS left lower lobectomy", "date": "2026-03-05"}]


def test_operations_are_read_by_their_word_head() -> None:
    f = _dis(
        "Diagnosis: Squamous cell carcinoma, right upper lobe\n"
        "Past surgical history: left inguinal herniorrhaphy 2001; right shoulder labral "
        "repair on March 3, 2014; phlebotomy for polycythaemia."
    )
    names = [p["name"] for p in f["procedures"]]
    assert names == ["left inguinal herniorrhaphy", "right shoulder labral repair"]
    assert f["procedures"][1]["date"] == "2014-03-03"


def test_an_english_operation_inside_chinese_text_keeps_its_words() -> None:
    f = _dis("出院诊断：1.右肺上叶腺癌\n既往史：2015年行left knee arthroscopic meniscectomy。")
    assert f["procedures"] == [{"name": "left knee arthroscopic meniscectomy", "date": None}]


def test_a_conversion_to_open_surgery_is_one_operation() -> None:
    f = _dis(
        "Diagnosis: Adenocarcinoma of the right upper lobe\n"
        "Procedure: 12 March 2026 - VATS right upper lobectomy converted to thoracotomy "
        "(bleeding) with mediastinal lymph node dissection."
    )
    assert len(f["procedures"]) == 1
    assert f["procedures"][0]["name"].startswith("VATS right upper lobectomy converted to")
    assert f["procedures"][0]["date"] == "2026-03-12"


def test_a_state_after_an_operation_is_no_operation() -> None:
    f = _dis(
        "Diagnoses:\n- Adenocarcinoma, left upper lobe, pT1c N0 (post-resection)\n"
        "Operation: left upper lobectomy on 3 May 2026."
    )
    assert [p["name"] for p in f["procedures"]] == ["left upper lobectomy"]


def test_a_limb_named_after_the_operation_belongs_to_its_name() -> None:
    f = _dis(
        "Diagnosis: Lung adenocarcinoma\nOther history: internal fixation of the right ankle "
        "12/08/2011."
    )
    assert [p["name"] for p in f["procedures"]] == ["internal fixation of the right ankle"]


def test_a_ligation_is_an_operation() -> None:
    f = _dis(
        "出院诊断：1.右肺下叶腺癌 2.术后乳糜胸\n"
        "诊疗经过：2026年5月3日行胸腔镜右肺下叶切除术，2026年5月9日行胸导管结扎术。"
    )
    assert [p["name"] for p in f["procedures"]] == ["胸腔镜右肺下叶切除术", "胸导管结扎术"]
    assert f["procedures"][1]["date"] == "2026-05-09"
    assert "J94.0" in f["diagnosis_icd10"]


def test_a_numbered_chinese_heading_ends_the_diagnosis_list() -> None:
    f = _dis(
        "一、出院诊断：\n1. 右肺上叶腺癌\n2. 高血压\n"
        "二、病史摘要：2020年因左股骨颈骨折行髋关节置换术，有胃溃疡病史。"
    )
    assert f["diagnosis_icd10"] == ["C34.1", "I10"]


def test_a_past_cancer_its_item_calls_gone_is_personal_history() -> None:
    f = _dis(
        "Discharge diagnoses:\n1. Adenocarcinoma of the left upper lobe\n"
        "2. History of rectal cancer, s/p anterior resection 2015, no recurrence\n"
        "3. History of right breast cancer, s/p lumpectomy 2010\n"
    )
    codes = f["diagnosis_icd10"]
    assert "Z85.0" in codes and "C20" not in codes
    # no statement that it is gone: the named cancer keeps its code
    assert any(c.startswith("C50") for c in codes)


def test_quitting_before_the_operation_is_former_smoking() -> None:
    f = _dis("出院诊断：1.左肺上叶腺癌\n个人史：吸烟30年，20支/日，术前2月戒烟。")
    assert f["smoking"] == "former"


def test_drugs_given_together_with_bing_yong_are_one_regimen() -> None:
    f = _dis(
        "出院診斷：一、右上肺葉小細胞肺癌\n住院經過：開始化學治療：Etoposide＋Cisplatin "
        "併用 Durvalumab。"
    )
    assert f["chemotherapy_regimens"] == ["etoposide+cisplatin+durvalumab"]


# ------------------------------------------------------------------------ pathology


def test_a_pdl1_band_followed_by_its_value_gives_the_value() -> None:
    assert _path("诊断：腺癌。\nPD-L1（22C3）：TPS 1-49%之间，约35%。")["pdl1_tps_percent"] == 35
    f = _path("Diagnosis: Adenocarcinoma.\nPD-L1 22C3: TPS >=50% (approximately 70%).")
    assert f["pdl1_tps_percent"] == 70
    assert _path("Diagnosis: Adenocarcinoma.\nPD-L1 22C3: TPS 1-49%.")["pdl1_tps_percent"] is None


def test_margin_names_before_the_status_and_a_later_involved_margin() -> None:
    f = _path("Diagnosis: Adenocarcinoma.\nMargins: bronchial, arterial and parenchymal clear.")
    assert f["margin"] == "negative"
    f = _path(
        "Diagnosis: Adenocarcinoma.\n| Margins | Bronchial: negative; staple line: involved |"
    )
    assert f["margin"] == "positive"


def test_a_size_after_a_bracket_belongs_to_the_tumour_before_it() -> None:
    f = _path(
        "Diagnosis: Squamous cell carcinoma (p40 positive; TTF-1 and napsin negative), 3.7 cm."
    )
    assert f["tumor_size_cm"] == 3.7


def test_a_margin_clearance_in_brackets_is_no_tumour_size() -> None:
    f = _path(
        "Diagnosis: Adenocarcinoma, left lower lobe.\nBronchial margin: clear of tumour (22 mm)."
    )
    assert f["tumor_size_cm"] is None


def test_a_stage_in_the_clinical_note_is_an_earlier_operation() -> None:
    f = _path(
        "Clinical: History of renal cell carcinoma (nephrectomy 2021, pT2N0).\n"
        "Final diagnosis: Right upper lobe wedge: metastatic clear cell carcinoma, 1.1 cm."
    )
    assert (f["pT"], f["pN"]) == (None, None)


def test_digits_misread_in_a_scanned_report_are_read_as_letters() -> None:
    f = _path(
        "MICRO: Adenocarcin0ma, moderate1y differen-\ntiated, acinar pattern.\nSUMMARY: pT1a pN0"
    )
    assert f["histology"] == "adenocarcinoma"
    assert f["differentiation"] == "moderate"
    assert f["pT"] == "T1a"


def test_the_worst_grade_of_the_grading_sentence_counts() -> None:
    f = _path("病理诊断：（左肺上叶）浸润性腺癌，高分化为主，局灶中分化。")
    assert f["differentiation"] == "moderate"
    # a grade in another sentence does not change it
    f = _path("病理诊断：（左肺上叶）浸润性腺癌，高分化。\n注：会诊意见曾考虑低分化。")
    assert f["differentiation"] == "well"


def test_features_judged_not_assessable_together() -> None:
    f = _path("诊断：（右肺下叶穿刺）鳞状细胞癌。注：组织有限，脉管侵犯及胸膜侵犯无法评估。")
    assert f["lymphovascular_invasion"] is None
    assert f["visceral_pleural_invasion"] is None


def test_a_station_count_that_says_both_numbers_completes_it() -> None:
    f = _path(
        "FINAL DIAGNOSIS:\nA. Lung, left upper lobe, lobectomy: adenocarcinoma, 2.0 cm.\n"
        " - One of three hilar lymph nodes positive (1/3).\n"
        "B. Lymph nodes, station 5, excision: two lymph nodes, negative (0/2).\n"
        "C. Lymph nodes, station 7, excision: four lymph nodes, negative (0/4)."
    )
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (9, 1)


def test_a_sentence_pointing_back_at_the_site_is_another_lesion_there() -> None:
    out = _pet(
        "检查所见：\n右肺上叶尖段放疗区见片状实变影，SUVmax 2.5，符合放射野分布。\n"
        "其外侧缘新见一结节，大小约1.4×1.1cm，SUVmax 6.8。\n"
        "诊断意见：\n1. 右肺上叶放疗后改变；其外侧缘新发高代谢结节，考虑局部复发。",
        "zh",
    )
    assert [(les["site"], les["size_cm"], les["suvmax"], les["tendency"]) for les in out] == [
        ("right_upper_lobe", 1.4, 6.8, "malignant")
    ]


def test_the_rest_of_a_site_is_not_a_pointer_back() -> None:
    out = _pet(
        "检查所见：\n左肺下叶见一肿块，大小约3.2cm，SUVmax 9.4。\n其余肺野未见异常。\n"
        "诊断意见：左肺下叶肺癌。",
        "zh",
    )
    assert [(les["site"], les["size_cm"]) for les in out] == [("left_lower_lobe", 3.2)]


def test_a_carcinoid_grade_is_no_differentiation() -> None:
    f = _path("病理诊断：（右肺中叶）典型类癌（神经内分泌肿瘤，G1）。Ki-67约2%。")
    assert f["histology"] == "carcinoid"
    assert f["differentiation"] is None
    # the same code on a carcinoma still grades it
    assert _path("Diagnosis: Adenocarcinoma, G3.")["differentiation"] == "poor"


def test_a_gene_result_of_an_earlier_specimen_is_not_this_reports() -> None:
    f = _path("诊断：（右肺上叶）腺癌残留。\nEGFR、ALK：治疗前穿刺已检测（均阴性），本次未做。")
    assert (f["egfr"], f["alk"]) == (None, None)
    f = _path("诊断：（右肺上叶）腺癌。\nEGFR：未检测到突变。ALK：阴性。")
    assert (f["egfr"], f["alk"]) == ("wild_type", "negative")


def test_dotted_and_dashed_dates_are_day_first() -> None:
    f = _dis(
        "Diagnosis: Adenocarcinoma of the right upper lobe\n"
        "Procedure: VATS right upper lobectomy 04.11.2026; left wedge resection 28-10-2026."
    )
    assert [p["date"] for p in f["procedures"]] == ["2026-11-04", "2026-10-28"]


def test_a_judgement_after_a_semicolon_goes_on_with_the_impression_statement() -> None:
    out = _pet(
        "Findings: 1.9 cm LUL nodule, SUVmax 1.4.\n"
        "Impression: LUL nodule with low uptake; low-grade adenocarcinoma versus hamartoma. "
        "Calcified granuloma, benign."
    )
    assert [(les["site"], les["tendency"]) for les in out] == [("left_upper_lobe", "indeterminate")]


def test_operations_and_diagnoses_added_to_the_vocabulary() -> None:
    f = _dis(
        "Final diagnoses: 1) Adenocarcinoma of the left lower lobe; 2) Chronic kidney "
        "disease stage 3b.\nProcedures: pericardial window 12/09/2026; re-exploration for "
        "bleeding 14/09/2026."
    )
    assert f["diagnosis_icd10"] == ["C34.3", "N18.3"]
    assert f["procedures"] == [
        {"name": "pericardial window", "date": "2026-09-12"},
        {"name": "re-exploration", "date": "2026-09-14"},
    ]


def test_treatment_complications_added_to_the_vocabulary() -> None:
    f = _dis(
        "Discharge diagnoses:\n1. Small cell carcinoma of the left upper lobe\n"
        "2. Tumor lysis syndrome\n3. Oral mucositis\n4. Malignant pericardial effusion\n"
        "5. Chronic obstructive pulmonary disease with acute exacerbation\n"
    )
    assert f["diagnosis_icd10"] == ["C34.1", "E88.3", "K12.3", "C79.8", "J44.1"]
    g = _dis("出院诊断：1.右肺下叶鳞癌 2.免疫相关性结肠炎 3.心包积液")
    assert g["diagnosis_icd10"] == ["C34.3", "K52.1", "I31.3"]
