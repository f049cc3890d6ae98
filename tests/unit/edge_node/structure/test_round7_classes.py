"""Classes of misses fixed after the sixth held-out set: PET-CT comparison lines that
list the prior study's values, report titles, lesions the impression calls resolved or
treated without viable tumour, radiation-field changes, an earlier size in "decreased
from X to Y", uptake explained as physiological in the next clause, counts after a site
in a list, organs not evaluable, pseudoprogression of the known primary; pathology
lymphatic/venous codes (L0 V0, ly0 v1), the R code closing a staging line and the
Japanese bronchial margin code; discharge codes for fistula with empyema, drug-induced
thrombocytopenia, postoperative haemorrhage, checkpoint-inhibitor hepatitis and cancer
pain, operations dated "the same day", approach prefixes (经尿道), further "+…术" steps
and drug names in traditional characters."""

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


def test_prior_values_in_a_comparison_bracket_are_no_lesions() -> None:
    out = _pet(
        "Comparison: 02/14/2026 (LUL mass 4.2 cm, SUVmax 11.0; left hilar node SUVmax 6.1).\n"
        "Findings: The LUL mass is no longer identifiable. A 9 mm right adrenal nodule, "
        "SUVmax 5.5.\nImpression: New right adrenal metastasis."
    )
    assert _sites(out) == ["adrenal"]


def test_the_report_title_names_no_lesion() -> None:
    out = _pet(
        "PET/CT - pulmonary nodule workup (dictated)\nLakeside Clinic (synthetic)\n"
        "there is a 1.4 cm nodule in the left lower lobe, SUVmax 3.9.\n"
        "IMPRESSION: 1. LLL nodule, indeterminate."
    )
    assert _sites(out) == ["left_lower_lobe"]


def test_a_lesion_the_impression_calls_gone_is_no_lesion() -> None:
    out = _pet(
        "检查所见：左肺上叶原肿块处现为条索状纤维化，SUVmax 1.5。右肺下叶新见结节，大小约0.9cm，"
        "SUVmax 6.3。\n诊断意见：1. 左肺上叶肿瘤治疗后纤维化，无残存活性肿瘤。2. 右肺下叶结节，"
        "考虑转移。",
        "zh",
    )
    assert _sites(out) == ["right_lower_lobe"]


def test_complete_response_of_named_nodes_removes_only_those() -> None:
    out = _pet(
        "Findings: The RUL mass measures 2.2 cm, SUVmax 6.0. The previously enlarged 4L "
        "node now measures 0.7 cm, SUVmax 1.9 (blood pool 2.0).\nConclusion:\n"
        "1. Residual viable RUL primary tumor.\n2. Complete metabolic response of the 4L "
        "nodal disease."
    )
    assert _sites(out) == ["right_upper_lobe"]


def test_radiation_pneumonitis_in_the_port_is_no_lesion() -> None:
    out = _pet(
        "Findings: Consolidation in the left upper lobe conforming to the radiation port, "
        "SUVmax 3.1, consistent with radiation pneumonitis. Liver lesion 1.9 cm, SUVmax 7.0.\n"
        "Impression: 1. Radiation pneumonitis. 2. Hepatic metastasis."
    )
    assert _sites(out) == ["liver"]


def test_the_size_before_decreased_from_is_the_earlier_study() -> None:
    out = _pet(
        "Findings: The LLL mass has decreased from 4.4 cm to 3.0 cm, SUVmax 7.1.\n"
        "Impression: Partial response of the LLL primary carcinoma."
    )
    assert [(les["site"], les["size_cm"]) for les in out] == [("left_lower_lobe", 3.0)]


def test_uptake_explained_as_physiological_in_the_next_clause() -> None:
    out = _pet(
        "所见：左肺下叶肿块，大小约2.9cm，SUVmax 9.9。甲状腺弥漫性轻度摄取增高，"
        "考虑甲状腺炎引起的生理性改变。\n印象：\n1. 左肺下叶肺癌。",
        "zh",
    )
    assert _sites(out) == ["left_lower_lobe"]


def test_a_count_after_a_site_keeps_the_list_together() -> None:
    out = _pet(
        "FINDINGS:\nLungs: RUL mass 4.0 cm, SUVmax 12.2.\nAbdomen: Hepatic segment 6 "
        "lesion 2.0 cm, SUVmax 6.6; segment 3 lesion 1.2 cm, SUVmax 4.1. Right adrenal "
        "nodule 2.5 cm, SUVmax 8.0.\nBones: Lytic lesion L2 vertebral body, SUVmax 6.4.\n"
        "IMPRESSION:\n1. RUL mass consistent with primary lung carcinoma.\n"
        "2. Hepatic (x2), right adrenal and osseous (L2) metastases."
    )
    assert [(les["site"], les["tendency"]) for les in out] == [
        ("right_upper_lobe", "malignant"),
        ("liver", "malignant"),
        ("liver", "malignant"),
        ("adrenal", "malignant"),
        ("bone", "malignant"),
    ]


def test_an_organ_not_evaluated_is_no_lesion() -> None:
    out = _pet(
        "FINDINGS:\nLungs: LUL mass 3.3 cm, SUVmax 12.0.\n"
        "Brain: not adequately evaluated on PET; MRI recommended.\n"
        "IMPRESSION:\n1. LUL primary carcinoma."
    )
    assert _sites(out) == ["left_upper_lobe"]


def test_pseudoprogression_keeps_the_primary_role() -> None:
    out = _pet(
        "所见：右肺上叶肿块较前增大，约3.6cm，SUVmax 9.0。\n"
        "意见：右肺上叶肿块增大，肿瘤进展与假性进展鉴别，建议复查。",
        "zh",
    )
    assert [(les["tendency"], les["role"]) for les in out] == [("indeterminate", "primary")]


# --------------------------------------------------------------------------- pathology


def test_uicc_lymphatic_and_venous_codes_and_residual_code() -> None:
    out = _path(
        "Diagnosis: adenocarcinoma of the left upper lobe, 2.1 cm. "
        "Staging: pT1c pN0 (0/9) L0 V0 Pn0 R0 (UICC)."
    )
    assert out["lymphovascular_invasion"] is False
    assert out["margin"] == "negative"


def test_a_positive_venous_code_is_lymphovascular_invasion() -> None:
    out = _path(
        "Diagnosis: squamous cell carcinoma of the right lower lobe, 3.0 cm. "
        "pl0, ly0, v1, br(+). pT2a pN0."
    )
    assert out["lymphovascular_invasion"] is True
    assert out["margin"] == "positive"


# --------------------------------------------------------------------------- discharge


def test_new_diagnosis_codes() -> None:
    out = _dis(
        "出院诊断：\n1. 脓胸伴支气管胸膜瘘\n2. 化疗后血小板减少\n3. 术后胸腔出血\n"
        "4. 免疫相关性肝炎\n5. 左肺上叶腺癌\n"
    )
    assert out["diagnosis_icd10"] == ["J86.0", "D69.5", "T81.0", "K71.6", "C34.1"]


def test_cancer_related_pain_and_plain_thrombocytopenia_after_the_induced_one() -> None:
    out = _dis(
        "DISCHARGE DIAGNOSES:\n1. Adenocarcinoma of the right upper lobe\n"
        "2. Tumor-related pain\n3. Chemotherapy-induced thrombocytopenia\n"
        "HOSPITAL COURSE: thrombocytopenia improved after transfusion."
    )
    assert out["diagnosis_icd10"] == ["C34.1", "R52.9", "D69.5"]


def test_a_same_day_reoperation_takes_the_first_date() -> None:
    out = _dis(
        "出院诊断：右肺下叶腺癌。\n诊疗经过：于2026-03-02在全麻下行胸腔镜右肺下叶切除术。"
        "术后胸腔引流量多，当日急诊行开胸探查止血术，术后恢复顺利。"
    )
    assert out["procedures"] == [
        {"name": "胸腔镜右肺下叶切除术", "date": "2026-03-02"},
        {"name": "开胸探查止血术", "date": "2026-03-02"},
    ]


def test_approach_prefix_year_and_further_step_stay_in_the_name() -> None:
    out = _dis(
        "出院诊断：左肺上叶腺癌。\n既往史：2015年阑尾切除术；曾接受经尿道膀胱肿瘤切除术。\n"
        "诊疗经过：2026年4月8日行开胸支气管残端修补术+带蒂肌瓣覆盖术。"
    )
    names = [p["name"] for p in out["procedures"]]
    assert names == ["阑尾切除术", "经尿道膀胱肿瘤切除术", "开胸支气管残端修补术+带蒂肌瓣覆盖术"]


def test_drug_names_in_traditional_characters() -> None:
    out = _dis("診斷：左上葉肺腺癌。\n病史：術後輔助化療順鉑＋長春瑞濱四個療程。從不吸煙。")
    assert out["chemotherapy_regimens"] == ["cisplatin+vinorelbine"]


def test_recurrence_prefix_and_degree_words_of_differentiation() -> None:
    out = _path(
        "诊断：（右肺上叶）复发性腺癌，中度分化，肿瘤大小2.4×2.0×1.8cm。\n支气管切缘阴性。\n"
        "rpT1c N0"
    )
    assert (out["pT"], out["pN"], out["differentiation"]) == ("T1c", "N0", "moderate")


def test_lvi_not_assessable_in_traditional_characters() -> None:
    out = _path("病理診斷：右肺上葉，切片：腺癌。\n備註：組織量少，無法評估淋巴管血管侵犯。")
    assert out["lymphovascular_invasion"] is None
