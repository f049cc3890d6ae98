"""Classes of misses fixed after the fifth held-out set: PET-CT mentions that are no
lesion (effusions, the modality's limits, uptake back to background), sites listed
after a landmark verb, Taiwanese 肋膜 as pleura, an organ's lower pole, tendency words
("met", Warthin/腺淋巴瘤, residual activity); pathology clinical notes and tumour nouns,
margin names in brackets, listed stations, biomarkers quoted
in the clinical note; discharge procedure objects, biopsies taken within an
operation, the same operation named in two languages, dosage-form prefixes inside a
combination regimen, Taiwanese hepatitis names, quitting after treatment began."""

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


def test_a_pleural_effusion_alone_is_no_lesion() -> None:
    out = _pet(
        "FINDINGS: Right upper lobe mass 3.1 cm, SUVmax 8.2. Moderate right pleural "
        "effusion, no nodularity.\nIMPRESSION: Right upper lobe primary carcinoma."
    )
    assert _sites(out) == ["right_upper_lobe"]


def test_w_slash_o_negates_like_without() -> None:
    out = _pet(
        "Findings: RML mass 2.2 cm, SUV 7. L pleural effusion w/o nodularity.\n"
        "Impression: RML mass c/w primary lung CA."
    )
    assert _sites(out) == ["right_middle_lobe"]


def test_the_modalitys_limits_name_no_lesion() -> None:
    out = _pet(
        "FINDINGS:\nHEAD: PET is insensitive for cerebral metastases.\n"
        "CHEST: Left upper lobe nodule 1.9 cm, SUVmax 6.1.\n"
        "IMPRESSION: Left upper lobe primary malignancy."
    )
    assert _sites(out) == ["left_upper_lobe"]


def test_uptake_back_to_background_is_resolved() -> None:
    out = _pet(
        "所见：右肺下叶结节约1.5cm，SUVmax 5.0。L2椎体成骨性改变，FDG代谢已恢复至本底水平。\n"
        "意见：右肺下叶肺癌治疗后残留。",
        "zh",
    )
    assert _sites(out) == ["right_lower_lobe"]


def test_a_site_listed_after_a_landmark_verb_is_a_landmark_too() -> None:
    out = _pet(
        "所见：左肺下叶中央型肿块，包绕左下叶支气管及左肺门，大小约5.1cm，SUVmax 11.2。\n"
        "意见：左肺下叶中央型肺癌。",
        "zh",
    )
    assert out == [
        {
            "site": "left_lower_lobe",
            "size_cm": 5.1,
            "suvmax": 11.2,
            "tendency": "malignant",
            "role": "primary",
        }
    ]


def test_taiwanese_costal_membrane_is_the_pleura_not_a_rib() -> None:
    out = _pet(
        "檢查發現：\n一、左側肋膜多發結節，最大約 0.9 公分，SUVmax 4.1。\n"
        "印象：\n一、左側肋膜轉移。",
        "zh",
    )
    assert [(les["site"], les["size_cm"], les["tendency"]) for les in out] == [
        ("pleura", 0.9, "malignant")
    ]


def test_a_rib_is_still_bone() -> None:
    out = _pet("所见：右侧第5肋骨骨质破坏，SUVmax 6.0。\n意见：右侧第5肋骨转移。", "zh")
    assert _sites(out) == ["bone"]


def test_an_organs_lower_pole_is_not_a_subpleural_landmark() -> None:
    out = _pet(
        "所见：右侧腮腺下极见一结节，大小约1.2cm，SUVmax 7.5。\n意见：右侧腮腺结节，考虑良性。",
        "zh",
    )
    assert [(les["site"], les["size_cm"], les["suvmax"]) for les in out] == [("other", 1.2, 7.5)]


def test_adenolymphoma_and_warthin_are_benign() -> None:
    for word in ("腺淋巴瘤", "Warthin瘤"):
        out = _pet(
            f"所见：左侧腮腺结节约1.0cm，SUVmax 6.2。\n意见：左侧腮腺结节，考虑{word}可能大。", "zh"
        )
        assert [les["tendency"] for les in out] == ["benign"], word
    out = _pet("所见：左侧腋窝淋巴结约2.0cm，SUVmax 9.0。\n意见：左侧腋窝淋巴瘤可能。", "zh")
    assert [les["tendency"] for les in out] == ["malignant"]


def test_a_single_met_is_malignant() -> None:
    out = _pet(
        "Findings: Lytic lesion L3 body, SUV 7.\nImpression: L3 lytic lesion c/w osseous met."
    )
    assert [(les["site"], les["tendency"], les["role"]) for les in out] == [
        ("bone", "malignant", "metastasis")
    ]


def test_residual_activity_after_treatment_is_malignant() -> None:
    out = _pet(
        "所见：右锁骨上淋巴结较前缩小，短径约0.8cm，SUVmax 2.4。\n"
        "意见：右锁骨上淋巴结缩小，考虑治疗有效，残留少许活性可能。",
        "zh",
    )
    assert [(les["site"], les["tendency"]) for les in out] == [
        ("supraclavicular_lymph_node", "malignant")
    ]


# --------------------------------------------------------------------------- pathology


def test_a_bare_clinical_heading_holds_the_imaging_size() -> None:
    f = _path(
        "临床：CT示左肺上叶结节约2.6cm。\n大体：楔形肺组织，见一结节，直径1.9cm。\n"
        "病理诊断：（左肺上叶）浸润性腺癌。"
    )
    assert f["tumor_size_cm"] == 1.9
    f = _path("Clinical: left lower lobe mass 4.0 cm.\nDx: core biopsy, adenocarcinoma.")
    assert f["tumor_size_cm"] is None


def test_a_growth_is_the_tumour() -> None:
    f = _path(
        "Gross: Lobectomy specimen measuring 15 x 9 x 4 cms. Cut surface shows a grey "
        "white growth measuring 3.5 x 3 x 2 cms.\nImpression: Squamous cell carcinoma."
    )
    assert f["tumor_size_cm"] == 3.5


def test_a_biomarker_quoted_in_the_clinical_note_is_not_this_reports() -> None:
    f = _path(
        "临床信息：左肺下叶腺癌（外院穿刺，PD-L1 TPS 50%），新辅助治疗后手术。\n"
        "病理诊断：（左肺下叶）残余腺癌，最大径0.9cm。"
    )
    assert f["pdl1_tps_percent"] is None
    f = _path(
        "临床信息：左肺下叶腺癌（外院穿刺，PD-L1 TPS 50%）。\n"
        "病理诊断：（左肺下叶）腺癌。\n免疫组化：PD-L1（22C3）TPS 10%。"
    )
    assert f["pdl1_tps_percent"] == 10


def test_margin_names_in_brackets_before_the_status() -> None:
    f = _path(
        "Diagnosis: adenocarcinoma, right upper lobe. Margins (bronchial, vascular, "
        "parenchymal): negative. pT2a pN0."
    )
    assert f["margin"] == "negative"
    f = _path("Diagnosis: adenocarcinoma. Margins (bronchial, vascular): involved by tumour.")
    assert f["margin"] == "positive"


def test_the_last_of_listed_stations_is_no_node_count() -> None:
    f = _path(
        "Specimen: left lower lobe segmentectomy; level 8 and 9 lymph nodes.\n"
        "Diagnosis: adenocarcinoma, 1.2 cm.\nLymph nodes: level 8 (0/1), level 9 (0/3)."
    )
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (4, 0)
    f = _path("Diagnosis: adenocarcinoma, left upper lobe. 6 lymph nodes examined, all negative.")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (6, 0)


# --------------------------------------------------------------------------- discharge


def test_excision_of_a_space_occupying_lesion_keeps_its_object() -> None:
    f = _dis(
        "Diagnosis: carcinoma left lung with brain metastasis.\n"
        "Procedure: Right parietal craniotomy and excision of SOL done on 2026-03-02."
    )
    assert f["procedures"] == [
        {"name": "Right parietal craniotomy and excision of SOL", "date": "2026-03-02"}
    ]


def test_a_biopsy_taken_within_an_operation_keeps_the_operation() -> None:
    f = _dis(
        "Diagnoses: adenocarcinoma of the RUL.\n"
        "Past history: VATS wedge resection of RUL nodule with pleural biopsy on 2026-01-10."
    )
    assert f["procedures"] == [
        {"name": "VATS wedge resection of RUL nodule with pleural biopsy", "date": "2026-01-10"}
    ]
    f = _dis("Diagnoses: adenocarcinoma of the RUL.\nCT-guided lung biopsy on 2026-01-10.")
    assert f["procedures"] is None


def test_an_operation_named_again_in_the_other_language_is_one() -> None:
    f = _dis(
        "出院诊断：右肺腺癌，恶性胸腔积液。\n"
        "住院经过：于2026年3月4日接受胸腔镜胸膜固定术（VATS talc pleurodesis），术后顺利。"
    )
    assert f["procedures"] == [{"name": "胸腔镜胸膜固定术", "date": "2026-03-04"}]


def test_dosage_form_prefixes_inside_a_combination() -> None:
    f = _dis(
        "Diagnosis: adenocarcinoma of the left lung.\n"
        "History: received Inj. Paclitaxel + Inj. Cisplatin x 4 cycles. Tab. Gefitinib since."
    )
    assert f["chemotherapy_regimens"] == ["paclitaxel+cisplatin"]


def test_taiwanese_hepatitis_names() -> None:
    f = _dis("出院診斷：\n一、右上葉肺腺癌\n二、慢性B型肝炎\n三、C型肝炎")
    assert f["diagnosis_icd10"] == ["C34.1", "B18.1", "B19.2"]


def test_quitting_once_treatment_began_is_former() -> None:
    f = _dis("诊断：左肺鳞癌。个人史：吸烟30年，每日20支，化疗开始后戒烟。")
    assert f["smoking"] == "former"
    f = _dis("诊断：左肺鳞癌。个人史：吸烟30年，每日20支，至今未戒。")
    assert f["smoking"] == "current"
