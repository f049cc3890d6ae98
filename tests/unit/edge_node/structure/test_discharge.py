"""Discharge-summary extractor: diagnoses (ICD-10), surgery, chemotherapy, smoking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_node.structure import discharge
from edge_node.structure.evaluate import load_jsonl, load_truth, score
from edge_node.structure.pipeline import extract
from edge_node.structure.text import detect_lang

DEVSET = Path(discharge.__file__).parent / "devset"


def _fields(text: str, lang: str | None = None) -> dict[str, Any]:
    return extract("discharge", text, lang or detect_lang(text)).fields


def _dx(text: str, lang: str | None = None) -> set[str]:
    return set(_fields(text, lang)["diagnosis_icd10"] or [])


def test_fields_follow_the_contract() -> None:
    assert discharge.FIELDS == (
        "diagnosis_icd10",
        "procedures",
        "chemotherapy_regimens",
        "smoking",
    )
    assert set(_fields("出院诊断：肺炎")) == set(discharge.FIELDS)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("出院诊断：右肺上叶腺癌", "C34.1"),
        ("出院诊断：左下肺鳞癌", "C34.3"),
        ("诊断：右肺中叶小细胞癌", "C34.2"),
        ("诊断：右肺中下叶腺癌术后", "C34.8"),
        ("诊断：肺恶性肿瘤", "C34.9"),
        ("Diagnosis: adenocarcinoma of the right upper lobe.", "C34.1"),
        ("Dx: Stage IIIB NSCLC (squamous), RLL.", "C34.3"),
        ("Diagnosis: squamous cell carcinoma, left main bronchus.", "C34.0"),
        ("Principal problem: Malignant neoplasm of upper lobe of left lung", "C34.1"),
        ("诊断：左乳腺癌（外上象限，浸润性导管癌）", "C50.4"),
        ("Diagnosis: Rectal adenocarcinoma, ypT2N0.", "C20"),
    ],
)
def test_primary_cancer_codes_at_the_precision_the_text_allows(text: str, code: str) -> None:
    assert _dx(text) == {code}


def test_unspecified_code_gives_way_to_the_specific_one() -> None:
    text = "入院诊断：肺癌\n出院诊断：右肺上叶腺癌(pT2aN0M0)"
    assert _fields(text)["diagnosis_icd10"] == ["C34.1"]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("诊断：右肺腺癌伴骨、脑转移", {"C34.9", "C79.5", "C79.3"}),
        ("诊断：左肺鳞癌，纵隔及右锁骨上淋巴结转移", {"C34.9", "C77.1", "C77.0"}),
        ("诊断：左肺癌，全身多发骨转移、肝内多发转移", {"C34.9", "C79.5", "C78.7"}),
        (
            "Adenocarcinoma of the lung, metastatic to the brain, adrenal gland and pleura.",
            {"C34.9", "C79.3", "C79.7", "C78.2"},
        ),
        (
            "Squamous cell lung cancer with metastases to the contralateral lung and "
            "mediastinal lymph nodes.",
            {"C34.9", "C78.0", "C77.1"},
        ),
        ("诊断：右肺上叶腺癌，恶性胸腔积液", {"C34.1", "C78.2"}),
    ],
)
def test_metastases_by_site(text: str, codes: set[str]) -> None:
    assert _dx(text) == codes


@pytest.mark.parametrize(
    "text",
    [
        "既往史：否认高血压、糖尿病、冠心病病史。",
        "PMH: No history of diabetes. Denies hypertension.",
        "肺结核已排除。",
        "Tuberculosis was ruled out.",
        "术后病理：淋巴结未见转移(0/12)。",
        "头颅MRI：脑转移待排。",
        "Possible adrenal metastasis.",
        "CT chest showed no evidence of brain or bone metastases.",
    ],
)
def test_negated_and_doubted_diagnoses_are_not_listed(text: str) -> None:
    assert _dx(text) == set()


def test_a_negation_cue_does_not_reach_across_a_history_narrative() -> None:
    text = "患者3月前无明显诱因出现咳嗽，就诊于当地医院，诊断为右肺下叶腺癌。"
    assert _dx(text) == {"C34.3"}


@pytest.mark.parametrize(
    "text",
    [
        "家族史：父亲死于肺癌，母亲有高血压。",
        "Family history: mother had breast cancer.",
    ],
)
def test_relatives_diagnoses_are_not_the_patients(text: str) -> None:
    assert _dx(text) == set()


def test_a_nodule_that_is_the_cancer_is_not_listed_twice() -> None:
    assert _dx("入院诊断：右肺结节\n出院诊断：右肺上叶腺癌") == {"C34.1"}
    assert _dx("入院诊断：左肺结节") == {"R91"}


def test_explicit_codes_are_cut_to_four_characters() -> None:
    text = "出院诊断：\n肺恶性肿瘤 C34.100x001\n直肠恶性肿瘤 C20.x00\n高血压 I10.x00x002"
    assert _dx(text) == {"C34.1", "C20", "I10"}
    assert _dx("Staging cT2aN2M1c, ECOG 1.") == set()


def test_comorbidities_in_first_mention_order() -> None:
    text = "出院诊断：1.右肺上叶腺癌 2.高血压病3级 3.2型糖尿病 4.慢性阻塞性肺疾病 5.骨髓抑制"
    assert _fields(text)["diagnosis_icd10"] == ["C34.1", "I10", "E11.9", "J44.9", "D61.9"]


def test_surgery_name_as_written_with_its_date() -> None:
    text = (
        "诊疗经过：于2023-03-15在全麻下行胸腔镜下右肺上叶切除术+纵隔淋巴结清扫术，术后恢复可。"
        "出院诊断：右肺上叶腺癌术后；右肺上叶切除术后"
    )
    assert _fields(text)["procedures"] == [
        {"name": "胸腔镜下右肺上叶切除术+纵隔淋巴结清扫术", "date": "2023-03-15"}
    ]


@pytest.mark.parametrize(
    "when",
    ["on 15 March 2023", "on March 15, 2023", "on 03/15/2023", "on 2023.3.15", "on 15/03/2023"],
)
def test_surgery_dates_in_many_formats(when: str) -> None:
    text = f"She underwent VATS right upper lobectomy {when}. Recovery was uneventful."
    procs = _fields(text, "en")["procedures"]
    assert procs == [{"name": "VATS right upper lobectomy", "date": "2023-03-15"}]


def test_chinese_date_and_undated_surgery() -> None:
    text = "2023年3月15日行右肺中叶切除术。2年前曾于外院行左乳腺癌改良根治术。"
    assert _fields(text)["procedures"] == [
        {"name": "右肺中叶切除术", "date": "2023-03-15"},
        {"name": "左乳腺癌改良根治术", "date": None},
    ]


def test_quotes_and_full_width_plus_in_a_chinese_name() -> None:
    text = "手术情况：2024年1月9日全麻下行“胸腔镜下右肺上叶切除术＋纵隔淋巴结清扫术”，恢复顺利。"
    assert _fields(text)["procedures"] == [
        {"name": "胸腔镜下右肺上叶切除术＋纵隔淋巴结清扫术", "date": "2024-01-09"}
    ]


def test_labelled_operation_date_and_a_year_only_operation() -> None:
    text = (
        "Operation: Right upper lobe sleeve lobectomy with bronchoplasty\n"
        "Date of operation: 12-Jan-2024\n"
        "Past history: Ischaemic heart disease with CABG in 2015."
    )
    assert _fields(text, "en")["procedures"] == [
        {"name": "Right upper lobe sleeve lobectomy with bronchoplasty", "date": "2024-01-12"},
        {"name": "CABG", "date": None},
    ]


def test_admission_date_is_not_the_operation_date() -> None:
    text = (
        "He was admitted on 2023-02-01 for elective left lower lobectomy. "
        "He underwent VATS left lower lobectomy on 2/2/2023."
    )
    assert _fields(text, "en")["procedures"] == [
        {"name": "VATS left lower lobectomy", "date": "2023-02-02"}
    ]


@pytest.mark.parametrize(
    "text",
    [
        "2023/05/08行EBUS-TBNA，病理示鳞癌。",
        "行CT引导下经皮肺穿刺活检术，病理：腺癌。",
        "建议行右肺上叶切除术，患者拒绝。",
        "Bronchoscopy with biopsy was performed on 2023-05-08.",
        "Right pleural catheter placed for drainage.",
        "Surgical resection is planned next month.",
    ],
)
def test_biopsies_drains_and_planned_operations_are_not_surgery(text: str) -> None:
    assert _fields(text)["procedures"] is None


def test_operation_date_from_a_labelled_line() -> None:
    text = "手术日期：2023-08-03\n手术名称：单孔胸腔镜下左肺上叶尖后段切除术\n"
    assert _fields(text)["procedures"] == [
        {"name": "单孔胸腔镜下左肺上叶尖后段切除术", "date": "2023-08-03"}
    ]


@pytest.mark.parametrize(
    ("text", "regimens"),
    [
        ("予TP方案化疗2周期。", ["paclitaxel+cisplatin"]),
        ("予GP方案（吉西他滨1.6g d1,8＋顺铂40mg d1-3）化疗。", ["gemcitabine+cisplatin"]),
        ("予PC方案(培美曲塞500mg/m2 d1+顺铂75mg/m2 d1)化疗。", ["pemetrexed+cisplatin"]),
        ("予力比泰+伯尔定化疗4周期。", ["pemetrexed+carboplatin"]),
        ("予帕博利珠单抗+培美曲塞+卡铂治疗。", ["pembrolizumab+pemetrexed+carboplatin"]),
        ("予多西他赛单药化疗。", ["docetaxel"]),
        ("He received 4 cycles of carboplatin/pemetrexed.", ["carboplatin+pemetrexed"]),
        ("Treated with Taxol/Paraplatin weekly.", ["paclitaxel+carboplatin"]),
        ("Started mFOLFOX6 with bevacizumab.", ["leucovorin+fluorouracil+oxaliplatin+bevacizumab"]),
        ("予紫杉醇(白蛋白结合型)400mg+卡铂500mg治疗。", ["nab-paclitaxel+carboplatin"]),
        ("Rx: carbo/etoposide/atezo C2D1 today.", ["carboplatin+etoposide+atezolizumab"]),
        (
            "化疗方案：培美曲塞 800mg ivgtt d1\n          顺铂 40mg ivgtt d1-3  q21d",
            ["pemetrexed+cisplatin"],
        ),
    ],
)
def test_regimens_normalised_to_generic_names(text: str, regimens: list[str]) -> None:
    assert _fields(text)["chemotherapy_regimens"] == regimens


def test_regimen_lines_cycles_and_order() -> None:
    text = (
        "2022年9月起予培美曲塞+卡铂化疗6周期，后予培美曲塞单药维持。"
        "本次行第7周期卡铂+培美曲塞化疗。予奥希替尼靶向治疗。"
    )
    assert _fields(text)["chemotherapy_regimens"] == ["pemetrexed+carboplatin", "pemetrexed"]


@pytest.mark.parametrize(
    "text",
    [
        "予奥希替尼80mg qd口服靶向治疗。",
        "Pembrolizumab maintenance every 3 weeks.",
        "Adjuvant cisplatin plus vinorelbine is planned at the oncology clinic.",
        "建议下周期行AC方案化疗。",
        "TP53突变，PC值正常。",
    ],
)
def test_not_chemotherapy_given(text: str) -> None:
    assert _fields(text)["chemotherapy_regimens"] is None


def test_ec_depends_on_the_cancer() -> None:
    assert _fields("左乳腺癌术后，予EC方案化疗4周期。")["chemotherapy_regimens"] == [
        "epirubicin+cyclophosphamide"
    ]
    assert _fields("右肺小细胞肺癌，予EC方案化疗4周期。")["chemotherapy_regimens"] == [
        "etoposide+carboplatin"
    ]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("个人史：吸烟史30年，20支/日，已戒烟5年。", "former"),
        ("个人史：吸烟40包年，仍吸烟。", "current"),
        ("个人史：否认吸烟史。", "never"),
        ("个人史：无烟酒嗜好。", "never"),
        ("个人史：无吸烟饮酒史。", "never"),
        ("个人史：吸烟史20年，无饮酒史。", "current"),
        ("个人史：否认饮酒史，吸烟20年，未戒烟。", "current"),
        ("个人史：吸烟：无。出院医嘱：戒烟限酒。", "never"),
        ("Social: never smoker.", "never"),
        ("Social: non-smoker.", "never"),
        ("Social history: ex-smoker, quit 2015.", "former"),
        ("Social: smokes 1 ppd.", "current"),
        ("Smoking status: Former Smoker. Smokeless tobacco: Never Used.", "former"),
        ("She denies any history of smoking or alcohol.", "never"),
        ("Smoker, 1/2 pack daily; smoking cessation counseling provided.", "current"),
        ("个人史：吸烟史20年。出院医嘱：注意休息，戒烟。", "current"),
        ("家族史：父亲有吸烟史。", None),
        ("No alcohol. Hypertension.", None),
    ],
)
def test_smoking_status(text: str, status: str | None) -> None:
    assert _fields(text)["smoking"] == status


def test_evidence_points_at_the_words() -> None:
    text = "出院诊断：右肺上叶腺癌 骨转移\n个人史：吸烟30年，已戒烟5年。予TP方案化疗。"
    ex = extract("discharge", text, "zh")
    spans = {(e["field"], text[e["start"] : e["end"]]) for e in ex.evidence}
    assert ("diagnosis_icd10", "右肺上叶腺癌") in spans
    assert ("diagnosis_icd10", "骨转移") in spans
    assert ("smoking", "已戒烟") in spans
    assert ("chemotherapy_regimens", "TP") in spans


@pytest.mark.parametrize("text", ["", "   ", "\x00", "((((", "术" * 300, "转移" * 100, "TP"])
def test_odd_input_gives_nulls_not_errors(text: str) -> None:
    fields = _fields(text, "zh")
    assert fields["diagnosis_icd10"] is None
    assert fields["procedures"] is None
    assert fields["smoking"] is None


def test_development_set_accuracy() -> None:
    reports = load_jsonl(DEVSET / "discharge.jsonl")
    truth = load_truth(DEVSET / "discharge.truth.jsonl")
    assert len(reports) >= 30
    assert {r["lang"] for r in reports} >= {"zh", "en", None}
    predicted = {}
    for r in reports:
        ex = extract("discharge", r["text"], r["lang"] or detect_lang(r["text"]))
        predicted[r["id"]] = {"fields": ex.fields, "evidence": ex.evidence}
    report = score(predicted, truth)
    rows = {name: t.accuracy for (_, name), t in report.fields.items()}
    print(json.dumps(rows, indent=1))  # per-field figures, shown with -s
    for name in discharge.FIELDS:
        assert rows[name] >= 0.95, (name, report.misses)
    assert rows["procedures.date"] >= 0.95, report.misses
    assert report.evidence_missing == 0


def test_diagnoses_come_from_the_lists_when_the_summary_has_them() -> None:
    text = (
        "入院诊断：左乳腺癌（外上象限）\n既往史：高血压病史。\n"
        "诊疗经过：咯血3天。\n出院诊断：左乳腺癌术后；2型糖尿病\n出院医嘱：复查。"
    )
    ex = extract("discharge", text, "zh")
    assert ex.fields["diagnosis_icd10"] == ["C50.4", "E11.9"]  # no I10 from 既往史
    narrative = "既往高血压病史。诊断为右肺上叶腺癌。"  # no list: the whole text counts
    assert set(extract("discharge", narrative, "zh").fields["diagnosis_icd10"]) == {
        "I10",
        "C34.1",
    }


def test_a_secondary_malignancy_is_a_metastasis_not_a_primary() -> None:
    zh = "出院诊断：\n1．右肺下叶小细胞肺癌\n   肝继发恶性肿瘤\n   脑继发恶性肿瘤"
    assert extract("discharge", zh, "zh").fields["diagnosis_icd10"] == ["C34.3", "C78.7", "C79.3"]
    en = "Discharge diagnoses: 1) Adenocarcinoma of RUL 2) Secondary malignant neoplasm of liver"
    assert extract("discharge", en, "en").fields["diagnosis_icd10"] == ["C34.1", "C78.7"]


def test_the_classifier_reads_smoking_where_no_rule_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_node.structure import classify

    seen: list[str] = []

    def fake(task: str, text: str, lang: str) -> tuple[str | None, float]:
        seen.append(text)
        return ("former", 0.91) if "烟" in text else (None, 0.0)

    monkeypatch.setattr(classify, "classify", fake)
    text = "个人史：烟酒偶有，近十年未再碰。无饮酒。\n出院诊断：右肺腺癌"
    ex = extract("discharge", text, "zh")
    assert ex.fields["smoking"] == "former" and ex.confidence["smoking"] <= 0.91
    (ev,) = [e for e in ex.evidence if e["field"] == "smoking"]
    assert "烟" in text[ev["start"] : ev["end"]]
    assert all("烟" in t for t in seen)  # only sentences about tobacco are read
    monkeypatch.setattr(classify, "classify", lambda *a: ("current", 0.5))
    assert extract("discharge", text, "zh").fields["smoking"] is None  # not sure enough


def test_the_discharge_list_replaces_the_admission_list() -> None:
    text = (
        "【入院诊断】右肺上叶结节（性质待定）；高血压病\n"
        "【入院情况】第10、11组淋巴结转移。\n"
        "【出院诊断】1.右肺上叶腺癌 2.2型糖尿病\n【出院医嘱】随诊"
    )
    assert _fields(text, "zh")["diagnosis_icd10"] == ["C34.1", "E11.9"]
    # a discharge list without the site takes it from the admission list
    text = "入院诊断：左乳腺癌（外上象限）\n出院诊断：左乳腺癌术后；高血压"
    assert _fields(text, "zh")["diagnosis_icd10"] == ["C50.4", "I10"]


def test_a_diagnosis_list_ends_at_the_next_labelled_line() -> None:
    text = (
        "Principal Dx: Ca LUL (adenoCa) with solitary L frontal brain met\n"
        "Other Dx:\n 1. HT\n 2. HL\n 3. s/p R TKR (2019)\n"
        "Hx: haemoptysis, COPD.\nSocial: Non-smoker."
    )
    f = _fields(text, "en")
    assert f["diagnosis_icd10"] == ["C34.1", "C79.3", "I10", "E78.5"]
    assert f["procedures"] == [{"name": "R TKR", "date": None}]
    assert _dx(
        "Diagnosis:\n 1. Typical carcinoid tumour, left main bronchus\n 2. Hypertension"
    ) == {
        "C34.0",
        "I10",
    }


def test_ca_is_a_cancer_word_only_as_a_word() -> None:
    assert _dx("Dx: Ca lung LUL, central.", "en") == {"C34.1"}
    assert _dx("Dx: pneumonia. Given carboplatin.", "en") == {"J18.9"}


def test_metastatic_cancer_of_a_lobe_is_the_lung_primary() -> None:
    text = (
        "Diagnoses:\n- Metastatic squamous cell carcinoma of the right upper lobe "
        "with bone metastases"
    )
    assert _fields(text, "en")["diagnosis_icd10"] == ["C34.1", "C79.5"]
    assert "C34.1" not in _dx("Diagnosis: metastatic carcinoma to the liver", "en")


def test_hyponatraemia_is_part_of_siadh() -> None:
    text = "出院诊断：1.右肺小细胞肺癌 2.抗利尿激素分泌异常综合征（SIADH）伴低钠血症"
    assert _fields(text, "zh")["diagnosis_icd10"] == ["C34.9", "E22.2"]
    assert "E87.1" in _dx("出院诊断：低钠血症", "zh")


def test_gerd_spellings() -> None:
    assert _dx("Secondary diagnosis: Gastro-esophageal reflux disease.", "en") == {"K21.9"}


def test_thoracoscopic_pleurodesis_is_an_operation_bedside_is_not() -> None:
    text = "He underwent VATS talc pleurodesis on October 21, 2026 with a chest tube."
    assert _fields(text, "en")["procedures"] == [
        {"name": "VATS talc pleurodesis", "date": "2026-10-21"}
    ]
    assert (
        _fields("Talc pleurodesis via the chest drain on 2026-10-21.", "en")["procedures"] is None
    )
    zh = _fields("2026年10月21日于全麻下行胸腔镜下滑石粉胸膜固定术。", "zh")["procedures"]
    assert zh == [{"name": "胸腔镜下滑石粉胸膜固定术", "date": "2026-10-21"}]
    assert _fields("2026年10月21日经胸腔引流管行胸膜固定术。", "zh")["procedures"] is None


def test_operation_named_with_its_object_and_abbreviated_twice() -> None:
    text = (
        "Operation: L frontal craniotomy and excision of tumour on 13/10/2026.\n"
        "Post-op MRI: gross total resection."
    )
    assert _fields(text, "en")["procedures"] == [
        {"name": "L frontal craniotomy and excision of tumour", "date": "2026-10-13"}
    ]
    text = (
        "Operation: VATS right middle lobectomy and mediastinal lymph node dissection, "
        "2026-09-03.\nCourse: Underwent VATS RML lobectomy without complication."
    )
    assert _fields(text, "en")["procedures"] == [
        {
            "name": "VATS right middle lobectomy and mediastinal lymph node dissection",
            "date": "2026-09-03",
        }
    ]
    text = "Procedure this admission: VATS RML lobectomy + mediastinal LN dissection, 3rd Nov 2026."
    assert _fields(text, "en")["procedures"] == [
        {"name": "VATS RML lobectomy + mediastinal LN dissection", "date": "2026-11-03"}
    ]


def test_a_regimen_abbreviation_gives_way_to_the_drugs_spelled_after_it() -> None:
    text = '于2026-11-03行二线"TP方案"化疗第1周期：多西他赛 120mg d1 + 顺铂 40mg d1-3。'
    assert _fields(text, "zh")["chemotherapy_regimens"] == ["docetaxel+cisplatin"]


def test_amivantamab_joins_a_chemotherapy_regimen() -> None:
    text = "2026-09起三线予Amivantamab + Carboplatin + Pemetrexed方案。"
    assert _fields(text, "zh")["chemotherapy_regimens"] == ["amivantamab+carboplatin+pemetrexed"]


def test_a_spouse_who_smokes_says_nothing_of_the_patient() -> None:
    text = "Social hx: Never smoker. Husband smokes at home (passive exposure)."
    assert _fields(text, "en")["smoking"] == "never"
    assert _fields("个人史：否认吸烟史，丈夫吸烟，有被动吸烟。", "zh")["smoking"] == "never"


# ------------------------------------------------------------ rules from held-out set 3


def test_list_headings_without_a_colon_and_long_labels_end_the_list() -> None:
    text = (
        "Discharge diagnoses\n1 Left upper lobe adenocarcinoma\n2 Hypothyroidism\n\n"
        "History of present illness she had haemoptysis and hypertension was queried\n"
    )
    assert _fields(text, "en")["diagnosis_icd10"] == ["C34.1", "E03.9"]
    text = (
        "Diagnosis:\n1. Adenocarcinoma of the right lower lobe\n"
        "Previous admissions / oncologic history:\n- haemoptysis in March\n"
    )
    assert _fields(text, "en")["diagnosis_icd10"] == ["C34.3"]


def test_traditional_characters_and_roc_dates() -> None:
    text = (
        "出院診斷：\n1. 左下肺葉肺腺癌（腦轉移）\n2. 惡性肋膜積液\n"
        "住院經過：於民國114年3月9日接受胸腔鏡左下肺葉切除術。\n社會史：從不吸菸。"
    )
    f = _fields(text, "zh")
    assert f["diagnosis_icd10"] == ["C34.3", "C79.3", "C78.2"]
    assert f["procedures"] == [{"name": "胸腔鏡左下肺葉切除術", "date": "2025-03-09"}]
    assert f["smoking"] == "never"


def test_british_operation_names_and_month_name_iso_dates() -> None:
    text = (
        "Procedure: Right lower lobectomy, 2025-Mar-04 (converted from VATS).\n"
        "Past surgical history: appendicectomy; carpal tunnel release; TURP."
    )
    names = [(p["name"], p["date"]) for p in _fields(text, "en")["procedures"]]
    assert names == [
        ("Right lower lobectomy", "2025-03-04"),
        ("appendicectomy", None),
        ("carpal tunnel release", None),
        ("TURP", None),
    ]


def test_a_date_right_after_one_operation_is_not_the_next_ones() -> None:
    text = "Past surgical history cholecystectomy 2003 right mastectomy 05/14/2011"
    assert _fields(text, "en")["procedures"] == [
        {"name": "cholecystectomy", "date": None},
        {"name": "right mastectomy", "date": "2011-05-14"},
    ]


def test_treatment_to_be_discussed_is_not_given_and_brands_map_to_generics() -> None:
    given = "Adjuvant carboplatin and pemetrexed given."
    assert _fields(given, "en")["chemotherapy_regimens"] == ["carboplatin+pemetrexed"]
    planned = "Plan: adjuvant carboplatin and pemetrexed to be discussed."
    assert _fields(planned, "en")["chemotherapy_regimens"] in (None, [])
    text = "于2026-05-02予多西他赛（多帕菲）75mg/m2 d1 + 安罗替尼（福可维）12mg d1-14。"
    assert _fields(text, "zh")["chemotherapy_regimens"] == ["docetaxel+anlotinib"]
    text = "Second-line lurbinectedin (Zepzelca) 3.2 mg/m2 cycle 1 given."
    assert _fields(text, "en")["chemotherapy_regimens"] == ["lurbinectedin"]


def test_a_graft_count_and_aside_do_not_part_an_operation_from_its_date() -> None:
    text = "Past surgical history: CABG x2 (LIMA-LAD, SVG-OM) on 3 May 2018."
    assert _fields(text, "en")["procedures"] == [{"name": "CABG", "date": "2018-05-03"}]


def test_an_operation_named_twice_keeps_its_first_written_name() -> None:
    text = (
        "Dx: 1. LLL adenoCa s/p VATS LLL lobectomy (2024-05-06)\n"
        "History: 2024-05-06 VATS LLL lobectomy + MLND, pT1cN0."
    )
    assert _fields(text, "en")["procedures"] == [
        {"name": "VATS LLL lobectomy", "date": "2024-05-06"}
    ]


def test_a_double_spaced_list_is_read_to_its_last_item() -> None:
    text = "出院诊断：\n\n1. 右肺上叶腺癌\n\n2. 高血压\n\n诊疗经过：患者有糖尿病。"
    assert _dx(text, "zh") == {"C34.1", "I10"}
