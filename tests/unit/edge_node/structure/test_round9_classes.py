"""Classes of misses fixed after the eighth held-out set: discharge smoking stopped at a
month/year or "when diagnosed", an operation put off ("lobectomy deferred"),
mediastinoscopy, surgical acronyms (TAHBSO), evacuation of a haemothorax, spinal
decompression and fusion, an English operation followed by its Chinese translation,
"R middle lobe", a pathological fracture where bone metastases are coded; pathology
specimen sizes ("右肺上叶一叶"), a tumour bed beside the residual tumour, an imaging size
in a traditional-character clinical line, one negation before a list of genes, a capital
I read as l in a faxed upper-case word, a digit in "lymphovascu1ar", a voided original
report printed above the amended one, a benign first specimen of two, a node total over
more nodes than the stations it names; PET-CT reference values in a technique line,
"較不似轉移", county shorthand "LN转" and "骨转"."""

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

# --------------------------------------------------------------------------- discharge


def test_quitting_at_a_month_and_year_is_former_smoking() -> None:
    out = _dis("Discharge Diagnoses:\n1) COPD\nSocial: 30 pack-years; quit 06/2015. No alcohol.")
    assert out["smoking"] == "former"


def test_stopping_when_a_disease_was_diagnosed_is_former_smoking() -> None:
    for social in (
        "Smoked 15/day for 30 years; stopped when emphysema was diagnosed in 2022.",
        "2 ppd x 20 yrs, quit when diagnosed in March.",
        "Ex-heavy user, 35 pack-years, gave up in August 2021.",
    ):
        out = _dis("Diagnoses:\n1. Asthma\nSocial: " + social)
        assert out["smoking"] == "former", social


def test_a_smoking_amount_without_a_stop_is_still_current() -> None:
    out = _dis("Diagnoses:\n1. Asthma\nSocial: 25 pack-years, smokes 10 a day.")
    assert out["smoking"] == "current"


def test_an_operation_put_off_is_not_listed_before_the_one_done() -> None:
    out = _dis(
        "Diagnoses:\n1. Carcinoma of the left lower lobe\n"
        "Course: Wedge resection of the LLL nodule on 03/02/2026 (lobectomy deferred "
        "because of poor lung function). Mediastinoscopy on 03/09/2026 was negative. "
        "He underwent left lower lobectomy on 04/20/2026."
    )
    assert [p["name"] for p in out["procedures"]] == [
        "Wedge resection of the LLL nodule",
        "Mediastinoscopy",
        "left lower lobectomy",
    ]
    assert [p["date"] for p in out["procedures"]] == ["2026-03-02", "2026-03-09", "2026-04-20"]


def test_surgical_acronyms_evacuation_and_spinal_fusion_are_operations() -> None:
    out = _dis(
        "Diagnoses:\n1. Adenocarcinoma of the RUL\nPSH: TAH-BSO (2009).\n"
        "Procedures:\n 04/05/2026  Re-exploration and evacuation of hemothorax\n"
        " 12/05/2026  L2-L4 posterior decompression and instrumented fusion\n"
    )
    names = [p["name"] for p in out["procedures"]]
    assert names[0] == "TAH-BSO"
    assert "Re-exploration and evacuation of hemothorax" in names
    assert "L2-L4 posterior decompression and instrumented fusion" in names


def test_a_chinese_translation_in_brackets_is_not_part_of_the_name() -> None:
    out = _dis("Dx：1. NSCLC\nHx：2010年 cholecystectomy（胆囊切除术）。")
    assert [p["name"] for p in out["procedures"]] == ["cholecystectomy"]


def test_an_english_name_with_its_approach_in_brackets_keeps_the_bracket() -> None:
    out = _dis(
        "Diagnoses:\n1. Lung cancer\nProcedures:\n 03/03/2026  Left upper lobectomy (VATS)\n"
    )
    assert [p["name"] for p in out["procedures"]] == ["Left upper lobectomy (VATS)"]


def test_an_abbreviated_side_before_the_lobe_names_the_lobe() -> None:
    out = _dis("Diagnoses:\n - Squamous cell carcinoma L lower lobe, pT2a pN0\n - Hypertension")
    assert out["diagnosis_icd10"] == ["C34.3", "I10"]


def test_a_pathological_fracture_of_a_bone_metastasis_is_not_coded_again() -> None:
    out = _dis(
        "Discharge diagnoses:\n1. Adenocarcinoma of the right lower lobe\n"
        "2. Bone metastases with pathological fracture of the left femur\n"
    )
    assert out["diagnosis_icd10"] == ["C34.3", "C79.5"]
    alone = _dis(
        "Discharge diagnoses:\n1. Pathological fracture of the left femur\n2. Osteoporosis"
    )
    assert "M84.4" in alone["diagnosis_icd10"]


# --------------------------------------------------------------------------- pathology


def test_the_whole_lobes_size_in_chinese_gross_text_is_the_specimens() -> None:
    out = _path(
        "大体所见：左肺下叶一叶，大小15×10×3cm，切面见一灰白肿物，大小3.1×2.0×1.8cm。\n"
        "病理诊断：（左肺下叶）浸润性腺癌。"
    )
    assert out["tumor_size_cm"] == 3.1


def test_the_tumour_bed_is_not_the_size_after_neoadjuvant_therapy() -> None:
    out = _path(
        "Diagnosis: Residual adenocarcinoma, right lower lobe, post neoadjuvant therapy.\n"
        " - Tumour bed 3.4 cm; largest focus of residual viable tumour 1.1 cm.\n"
    )
    assert out["tumor_size_cm"] == 1.1


def test_an_imaging_size_in_a_traditional_clinical_line_is_not_the_tumours() -> None:
    out = _path(
        "臨床診斷：左上肺葉結節，電腦斷層約2.3公分。\n"
        "肉眼所見：楔形肺組織 5.0×3.0×2.0 公分，內含結節，大小 1.9×1.5×1.2 公分。\n"
        "病理診斷：肺，左上葉，楔形切除：腺癌。"
    )
    assert out["tumor_size_cm"] == 1.9


def test_one_negation_before_a_gene_list_covers_egfr_and_alk() -> None:
    out = _path(
        "Diagnosis: Adenocarcinoma, right upper lobe.\n"
        "Molecular (NGS): No mutations were identified in KRAS, EGFR, ALK or BRAF; "
        "a TP53 variant was found."
    )
    assert (out["egfr"], out["alk"]) == ("wild_type", "negative")


def test_a_gene_list_that_is_detected_is_not_negated() -> None:
    out = _path(
        "Diagnosis: Adenocarcinoma, right upper lobe.\nMolecular: EGFR exon 19 deletion detected."
    )
    assert out["egfr"] == "mutant"


def test_a_faxed_capital_i_read_as_l_in_an_upper_case_word() -> None:
    out = _path(
        "DlAGNOSIS: Left upper lobe, needle core: ADENOCARClNOMA, moderately differentiated."
    )
    assert out["histology"] == "adenocarcinoma"
    assert out["differentiation"] == "moderate"


def test_a_digit_inside_lymphovascular_in_a_fax() -> None:
    out = _path(
        "Diagnosis: Squamous cell carcinoma, left lower lobe, 2.0 cm.\n"
        " - Lymphovascu1ar invasion: not identified.\n"
    )
    assert out["lymphovascular_invasion"] is False


def test_a_voided_original_report_feeds_nothing() -> None:
    out = _path(
        "病理诊断报告（修正报告）\n"
        "——以下为原报告，已作废——\n"
        "（左肺上叶）腺癌，肿瘤大小2.0cm。淋巴结0/8。pT1b N0。\n"
        "——以上为原报告——\n"
        "【修正后病理诊断】\n"
        "1.（左肺上叶）腺癌，肿瘤大小2.0cm。\n"
        "2. 淋巴结：第5组1/2，第7组0/3，第10组0/3。\n"
        "3. pT1b N2。\n"
    )
    assert (out["pN"], out["lymph_nodes_positive"], out["lymph_nodes_examined"]) == ("N2", 1, 8)


def test_a_benign_first_specimen_does_not_give_the_tumours_site_or_size() -> None:
    out = _path(
        "A. Lung, right lower lobe, wedge resection:\n   - Sclerosing pneumocytoma, 1.6 cm.\n"
        "B. Lung, left upper lobe, wedge resection:\n"
        "   - Invasive adenocarcinoma, acinar predominant, 1.2 cm.\n"
    )
    assert (out["laterality"], out["lobe"], out["tumor_size_cm"]) == ("left", "upper", 1.2)


def test_a_single_specimen_keeps_its_first_site() -> None:
    out = _path(
        "A. Lung, right upper lobe, lobectomy: adenocarcinoma, 2.4 cm.\n"
        "B. Lymph node, station 7: 0/3.\n"
    )
    assert (out["laterality"], out["lobe"], out["tumor_size_cm"]) == ("right", "upper", 2.4)


def test_a_node_total_over_more_nodes_than_its_named_stations_is_the_count() -> None:
    out = _path(
        "Diagnosis: Adenocarcinoma, left upper lobe, 25 mm.\n"
        "Lymph nodes 2/11 (level 5 1/2, level 7 1/3). pT2a pN2."
    )
    assert (out["lymph_nodes_examined"], out["lymph_nodes_positive"]) == (11, 2)


def test_stations_that_add_up_to_the_total_stay_counted() -> None:
    out = _path(
        "Diagnosis: Adenocarcinoma, left upper lobe, 25 mm.\n"
        "Lymph nodes: 1/5 (level 5 1/2, level 7 0/3). pT2a pN2."
    )
    assert (out["lymph_nodes_examined"], out["lymph_nodes_positive"]) == (5, 1)


# --------------------------------------------------------------------------- PET-CT


def test_reference_values_in_a_technique_line_are_no_lesion() -> None:
    out = _pet(
        "Technique: 10 mCi FDG, uptake 60 min. Blood pool SUVmax 1.9; liver SUVmax 2.6.\n"
        "FINDINGS:\nRight lower lobe mass 3.0 cm, SUVmax 9.9.\n"
        "IMPRESSION:\n1. Right lower lobe primary malignancy."
    )
    assert [(les["site"], les["suvmax"]) for les in out] == [("right_lower_lobe", 9.9)]


def test_a_finding_less_like_a_metastasis_is_benign() -> None:
    out = _pet(
        "所见：右肺上叶肿块，大小3.0cm，SUVmax 8.1。左侧第6肋骨见骨痂形成，SUVmax 3.2。\n"
        "诊断意见：1. 右肺上叶肺癌。2. 左侧第6肋骨摄取，考虑骨折愈合，较不似转移。",
        "zh",
    )
    assert [(les["site"], les["tendency"]) for les in out] == [
        ("right_upper_lobe", "malignant"),
        ("bone", "benign"),
    ]


def test_county_shorthand_for_node_and_bone_metastases() -> None:
    out = _pet(
        "所见：左下肺肿块3.2cm，SUV max 9.4。左锁骨上LN 1.5cm，SUV max 6.0。"
        "骨盆多处骨质破坏，SUV max 7.7。\n意见：左下肺Ca；左锁骨上LN转；多发骨转。",
        "zh",
    )
    assert _sites(out) == ["left_lower_lobe", "supraclavicular_lymph_node", "bone"]
    assert [(les["tendency"], les["role"]) for les in out[1:]] == [
        ("malignant", "lymph_node"),
        ("malignant", "metastasis"),
    ]


def test_a_size_dictated_in_words_is_a_value() -> None:
    out = _pet(
        "Report (dictated): There is a left lower lobe nodule measuring two point three "
        "centimetres, SUVmax 6.4. A new seven millimetre nodule in the right upper lobe, "
        "SUVmax 1.1.\nConclusion:\n1. Left lower lobe primary tumour.\n"
        "2. Indeterminate right upper lobe nodule."
    )
    assert [(les["site"], les["size_cm"]) for les in out] == [
        ("left_lower_lobe", 2.3),
        ("right_upper_lobe", 0.7),
    ]


def test_the_earlier_finding_compared_with_is_not_the_lesions_value() -> None:
    out = _pet(
        "Findings: The right upper lobe mass now measures 2.0 cm, SUVmax 4.0, compared with "
        "a 3.9 cm mass at SUVmax 12.5 on the baseline study.\n"
        "Impression: Partial metabolic response of the right upper lobe primary."
    )
    assert [(les["size_cm"], les["suvmax"]) for les in out] == [(2.0, 4.0)]
