"""Pathology extractor: per-field behaviour on the hard cases, and accuracy on the
hand-annotated development set (edge_node/structure/devset/pathology*.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_node.structure import pathology
from edge_node.structure.core import Extraction
from edge_node.structure.evaluate import same
from edge_node.structure.pipeline import extract
from edge_node.structure.text import detect_lang

DEVSET = Path(pathology.__file__).parent / "devset"

CONTRACT_FIELDS = (
    "histology",
    "icdo3_morphology",
    "differentiation",
    "tumor_size_cm",
    "laterality",
    "lobe",
    "pT",
    "pN",
    "pM",
    "lymph_nodes_examined",
    "lymph_nodes_positive",
    "margin",
    "visceral_pleural_invasion",
    "lymphovascular_invasion",
    "egfr",
    "alk",
    "pdl1_tps_percent",
)


def run(text: str, lang: str | None = None) -> Extraction:
    return extract("pathology", text, lang or detect_lang(text))


def fields(text: str, lang: str | None = None) -> dict[str, Any]:
    return run(text, lang).fields


def cited(ex: Extraction, text: str, name: str) -> list[str]:
    return [text[e["start"] : e["end"]] for e in ex.evidence if e["field"] == name]


def test_fields_are_the_contract_fields_in_order() -> None:
    assert pathology.FIELDS == CONTRACT_FIELDS
    assert tuple(fields("").keys()) == CONTRACT_FIELDS


def test_empty_and_unrelated_text_give_nulls() -> None:
    for text in ("", "   ", "患者一般情况可。", "No specimen received."):
        assert all(v is None for v in fields(text).values()), text


# ------------------------------------------------------------ lymph nodes


@pytest.mark.parametrize(
    ("text", "examined", "positive"),
    [
        ("淋巴结：第4组 1/3，第7组 0/2。", 5, 1),
        ("淋巴结：(10组)0/2，(4组)1/1", 3, 1),
        ("Lymph nodes: 4R: 0/3, station 7: 1/4, 10R 0/2.", 9, 1),
        ("淋巴结 (0/15)", 15, 0),
        ("送检淋巴结15枚，其中2枚见癌转移。", 15, 2),
        ("Metastatic carcinoma in 2 of 18 lymph nodes.", 18, 2),
        ("lymph nodes: 0/12", 12, 0),
        ("淋巴结未见癌转移(0/9)。", 9, 0),
        ("第5组淋巴结3枚，其中1枚见癌转移；第7组淋巴结4枚，未见癌转移。", 7, 1),
        ("Lymph nodes: 0/8 (0/3 hilar, 0/5 mediastinal).", 8, 0),
        ("Lymph nodes, levels 10R, 11R, 12R: all negative (0/3, 0/4, 0/1).", 8, 0),
        ("pT1c pN1 (1/12)", 12, 1),
        ("Number of Lymph Nodes Examined: 9; Number of Lymph Nodes Involved: 2", 9, 2),
        ("Two of eleven lymph nodes contain metastatic carcinoma.", 11, 2),
    ],
)
def test_lymph_node_counts(text: str, examined: int, positive: int) -> None:
    f = fields(text)
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (examined, positive)


def test_station_list_and_total_line_are_not_double_counted() -> None:
    text = (
        "淋巴结共18枚，其中3枚见癌转移：\n第2组 0/3\n第4组 1/4\n第7组 2/5\n第10组 0/2\n第11组 0/4"
    )
    f = fields(text)
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (18, 3)
    en = (
        "Lymph nodes (total 3/15):\n Level 4R: 0/3\n Level 7: 1/4\n Level 10R: 1/3\n Level 11R: 1/5"
    )
    f = fields(en)
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (15, 3)


def test_a_station_repeated_in_another_section_counts_once() -> None:
    text = "诊断：淋巴结 第4组 1/3，第7组 0/2。\n镜下：第4组 1/3 见转移，第7组 0/2。"
    f = fields(text)
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (5, 1)


def test_fractions_that_are_not_lymph_nodes_are_ignored() -> None:
    f = fields("免疫组化：CK5/6(+)，P40(+)。核分裂象2个/10HPF。")
    assert f["lymph_nodes_examined"] is None and f["lymph_nodes_positive"] is None


def test_no_nodal_metastasis_without_a_count_gives_no_number() -> None:
    f = fields("（右肺上叶）腺癌，淋巴结未见癌转移。")
    assert f["lymph_nodes_examined"] is None and f["lymph_nodes_positive"] is None


# ------------------------------------------------------------ tumour size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("肺叶大小15x10x4cm，切面见一肿物，大小3.2x2.5x2.0cm。", 3.2),
        ("肿瘤大小约2.5cm。", 2.5),
        ("The tumour measures 25 mm.", 2.5),
        ("Tumor size: greatest dimension 2.5 cm.", 2.5),
        ("病灶直径1.8cm。", 1.8),
        ("A 1.5 cm x 1.2 cm firm white nodule.", 1.5),
        ("肿瘤大小：35mm×28mm×20mm。", 3.5),
        ("The specimen is a lobe measuring 16 x 11 x 4.5 cm with a 28 x 22 mm tan mass.", 2.8),
        ("肿瘤距胸膜0.5cm，大小2x1cm。", 2.0),
        ("The tumour is 0.5 cm from the pleura and measures 2.2 cm.", 2.2),
        ("A 2.5-cm well-circumscribed nodule.", 2.5),
    ],
)
def test_tumour_size(text: str, size: float) -> None:
    assert fields(text)["tumor_size_cm"] == pytest.approx(size)


@pytest.mark.parametrize(
    "text",
    [
        "肺叶大小 15x10x4cm。",
        "送检穿刺组织2条，长0.6-1.2cm。",
        "Cores measure 1.5 cm in aggregate.",
        "肿瘤距支气管切缘2cm。",
        "The nodule is located 1.5 cm from the bronchial margin.",
        "支气管切缘距肿瘤2cm，未见癌。",
        "送检肺叶切除标本，大小15x10x4cm。",
        "Atypical carcinoid, 3 mitoses per 2 mm2.",
    ],
)
def test_specimen_sizes_and_distances_are_not_the_tumour(text: str) -> None:
    assert fields(text)["tumor_size_cm"] is None


# ------------------------------------------------------------ grade, histology, site


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        ("腺癌，中-低分化", "poor"),
        ("腺癌，中低分化", "poor"),
        ("鳞状细胞癌，高-中分化", "moderate"),
        ("鳞癌，高分化", "well"),
        ("adenocarcinoma, moderately to poorly differentiated", "poor"),
        ("adenocarcinoma, well to moderately differentiated", "moderate"),
        ("Histologic grade: G2", "moderate"),
        ("large cell carcinoma, undifferentiated", "undifferentiated"),
        ("小细胞癌", None),
    ],
)
def test_differentiation(text: str, grade: str | None) -> None:
    assert fields(text)["differentiation"] == grade


@pytest.mark.parametrize(
    ("text", "category", "code"),
    [
        ("浸润性腺癌（腺泡型为主）", "adenocarcinoma", "8140/3"),
        ("浸润性黏液腺癌", "adenocarcinoma", "8140/3"),
        ("原位腺癌", "adenocarcinoma", "8140/2"),
        ("微浸润性腺癌", "adenocarcinoma", "8140/3"),  # held-out convention 1
        ("Minimally invasive adenocarcinoma, 0.9 cm", "adenocarcinoma", "8140/3"),
        ("鳞状细胞癌", "squamous_cell_carcinoma", "8070/3"),
        ("腺鳞癌", "adenosquamous_carcinoma", "8560/3"),
        ("小细胞癌", "small_cell_carcinoma", "8041/3"),
        ("Non-small cell carcinoma, NOS", "other_malignant", "8046/3"),
        ("大细胞神经内分泌癌", "other_malignant", "8013/3"),
        ("large cell carcinoma", "large_cell_carcinoma", "8012/3"),
        ("atypical carcinoid", "carcinoid", "8240/3"),
        ("pleomorphic carcinoma", "other_malignant", "8022/3"),
        ("肺错构瘤", "benign", "8992/0"),
        ("肉芽肿性炎，符合结核。", "benign", None),
        ("Negative for malignancy.", "benign", None),
    ],
)
def test_histology_and_code(text: str, category: str, code: str | None) -> None:
    f = fields(text)
    assert (f["histology"], f["icdo3_morphology"]) == (category, code)


def test_favoured_type_beats_not_otherwise_specified() -> None:
    f = fields("（右肺下叶穿刺）非小细胞癌，倾向腺癌。")
    assert (f["histology"], f["icdo3_morphology"]) == ("adenocarcinoma", "8140/3")


@pytest.mark.parametrize(
    "text",
    [
        "（右肺）穿刺：见少量异型细胞，不除外腺癌。",
        "Right lower lobe biopsy: atypical cells, suspicious for adenocarcinoma.",
    ],
)
def test_a_weakly_doubted_type_is_not_a_diagnosis(text: str) -> None:
    assert fields(text)["histology"] is None


def test_negated_histology_is_not_the_diagnosis() -> None:
    f = fields("（左肺下叶）机化性肺炎，未见腺癌。")
    assert f["histology"] == "benign"


@pytest.mark.parametrize(
    ("text", "side", "lobe"),
    [
        ("（右肺上叶）腺癌", "right", "upper"),
        ("右上肺叶切除标本", "right", "upper"),
        ("左肺舌段楔形切除", "left", "upper"),
        ("LUNG, LEFT, LOWER LOBE, LOBECTOMY", "left", "lower"),
        ("RML wedge", "right", "middle"),
        ("Left breast, mastectomy", "left", None),
        ("Sigmoid colon, resection", None, None),
    ],
)
def test_laterality_and_lobe(text: str, side: str | None, lobe: str | None) -> None:
    f = fields(text)
    assert (f["laterality"], f["lobe"]) == (side, lobe)


# ------------------------------------------------------------ stage, margin, invasion


@pytest.mark.parametrize(
    ("text", "t", "n", "m"),
    [
        ("pT2aN1M0", "T2a", "N1", "M0"),
        ("T2a N0", "T2a", "N0", None),
        ("pT1b(8th AJCC)", "T1b", None, None),
        ("分期：pT1cN0", "T1c", "N0", None),
        ("pT2a pN1 pMx", "T2a", "N1", "MX"),
        ("ypT1b ypN0", "T1b", "N0", None),
        ("pT1mi N0", "T1mi", "N0", None),
        ("临床分期 cT2N1M0，TTF-1(+)，EGFR T790M", None, None, None),
    ],
)
def test_stage(text: str, t: str | None, n: str | None, m: str | None) -> None:
    f = fields(text)
    assert (f["pT"], f["pN"], f["pM"]) == (t, n, m)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("支气管切缘未见癌。", "negative"),
        ("切缘阴性", "negative"),
        ("Margins free of tumour.", "negative"),
        ("All margins negative for carcinoma.", "negative"),
        ("支气管切缘见癌。", "positive"),
        ("Bronchial margin involved by carcinoma.", "positive"),
        ("支气管切缘未见癌，血管切缘见癌。", "positive"),
        ("Tumour extends to the inked margin.", "positive"),
    ],
)
def test_margin(text: str, value: str) -> None:
    assert fields(text)["margin"] == value


@pytest.mark.parametrize(
    ("text", "vpi", "lvi"),
    [
        ("肿瘤累及脏层胸膜（PL1）。未见脉管内癌栓。", True, False),
        ("未见胸膜侵犯，脉管内可见癌栓。", False, True),
        ("脏层胸膜弹力层未见侵犯（PL0）；脉管侵犯（-）。", False, False),
        ("胸膜侵犯：（－）；脉管侵犯：（＋）", False, True),
        ("未见脉管内癌栓及神经侵犯，肿瘤侵犯脏层胸膜。", True, False),
        ("Visceral pleural invasion: not identified (PL0). LVI: present.", False, True),
        (
            "No lymphovascular invasion identified. The tumor invades the visceral pleura.",
            True,
            False,
        ),
        ("肿瘤紧邻脏层胸膜。", None, None),
        ("肿瘤侵犯壁层胸膜（PL3）。", True, None),
        ("Pleura: uninvolved. Lymphovascular invasion: absent.", False, False),
        ("胸膜 : 未受累 ; 脉管 : 阴性", False, False),
        ("Visceral pleural invasion cannot be assessed; LVI indeterminate.", None, None),
    ],
)
def test_pleural_and_lymphovascular_invasion(text: str, vpi: bool | None, lvi: bool | None) -> None:
    f = fields(text)
    assert (f["visceral_pleural_invasion"], f["lymphovascular_invasion"]) == (vpi, lvi)


# ------------------------------------------------------------ biomarkers


@pytest.mark.parametrize(
    ("text", "egfr"),
    [
        ("EGFR 19外显子缺失突变", "mutant"),
        ("EGFR: L858R mutation detected", "mutant"),
        ("EGFR(+)", "mutant"),
        ("EGFR基因突变", "mutant"),
        ("EGFR 野生型", "wild_type"),
        ("EGFR基因未检测到突变", "wild_type"),
        ("No EGFR mutation detected.", "wild_type"),
        ("EGFR mutation: not detected", "wild_type"),
        ("EGFR 19del(-), L858R(-), T790M(-)", "wild_type"),
        ("EGFR L858R(+), T790M(-)", "mutant"),
        ("EGFR、ALK、ROS1均为阴性", "wild_type"),
        ("EGFR/ALK testing pending.", None),
    ],
)
def test_egfr(text: str, egfr: str | None) -> None:
    assert fields(text)["egfr"] == egfr


@pytest.mark.parametrize(
    ("text", "alk"),
    [
        ("ALK(D5F3)(+)", "positive"),
        ("ALK(D5F3)(-)", "negative"),
        ("ALK融合阳性", "positive"),
        ("ALK融合阴性", "negative"),
        ("ALK rearrangement not detected (FISH).", "negative"),
        ("Ventana ALK 阳性", "positive"),
        ("No ALK rearrangement.", "negative"),
        ("EGFR、ALK、ROS1均为阴性", "negative"),
    ],
)
def test_alk(text: str, alk: str) -> None:
    assert fields(text)["alk"] == alk


@pytest.mark.parametrize(
    ("text", "tps"),
    [
        ("PD-L1(22C3) TPS 60%", 60),
        ("PD-L1（22C3）：TPS <1%", 0),
        ("PD-L1 TPS约50%", 50),
        ("PD-L1 (SP263): 80% tumour cells", 80),
        ("PD-L1 TPS: 1-49%", None),
        ("PD-L1 22C3 TPS ≥50%", None),
        ("PD-L1(22C3)：TPS=30%，CPS=35", 30),
        ("Ki-67(约30%+)", None),
    ],
)
def test_pdl1(text: str, tps: float | None) -> None:
    got = fields(text)["pdl1_tps_percent"]
    assert got == (pytest.approx(tps) if tps is not None else None)


# ------------------------------------------------------------ biopsy, evidence


def test_biopsy_has_no_stage_margin_or_nodes() -> None:
    text = (
        "送检：（右肺下叶）穿刺活检组织2条，长0.6-1.2cm。\n"
        "病理诊断：（右肺下叶穿刺）鳞状细胞癌，中分化。\n"
        "免疫组化：P40(+)，CK5/6(+)，TTF-1(-)。"
    )
    f = fields(text)
    for name in ("pT", "pN", "pM", "margin", "lymph_nodes_examined", "tumor_size_cm"):
        assert f[name] is None, name
    assert f["histology"] == "squamous_cell_carcinoma"


def test_evidence_points_at_the_stating_words_in_the_original_text() -> None:
    text = (
        "病理诊断：（右肺上叶）浸润性腺癌，中－低分化，肿瘤大小３．２×２．５ｃｍ。"
        "未见脉管内癌栓。淋巴结：第４组 １／３，第７组 ０／２。ＰＤ－Ｌ１ ＴＰＳ ６０％。"
    )
    ex = run(text, "zh")
    assert ex.fields["tumor_size_cm"] == pytest.approx(3.2)
    assert cited(ex, text, "histology") == ["浸润性腺癌"]
    assert cited(ex, text, "differentiation") == ["中－低分化"]
    assert cited(ex, text, "tumor_size_cm") == ["３．２×２．５ｃｍ"]
    assert cited(ex, text, "laterality") == ["右肺上叶"]
    assert "未见脉管内癌栓" in cited(ex, text, "lymphovascular_invasion")[0]
    assert cited(ex, text, "lymph_nodes_examined") == ["１／３", "０／２"]
    assert "６０％" in cited(ex, text, "pdl1_tps_percent")[0]
    for name, value in ex.fields.items():
        if value is not None:
            assert cited(ex, text, name), name


# ------------------------------------------------------------ development set


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_devset_is_well_formed() -> None:
    reports = _load(DEVSET / "pathology.jsonl")
    truth = {t["id"]: t for t in _load(DEVSET / "pathology.truth.jsonl")}
    assert len(reports) >= 60
    assert {r["id"] for r in reports} == set(truth)
    langs = [r["lang"] or detect_lang(r["text"]) for r in reports]
    assert min(langs.count("zh"), langs.count("en")) >= 25
    for t in truth.values():
        assert tuple(t["fields"]) == CONTRACT_FIELDS
        assert t["kind"] == "pathology"


def test_devset_field_accuracy() -> None:
    reports = _load(DEVSET / "pathology.jsonl")
    truth = {t["id"]: t["fields"] for t in _load(DEVSET / "pathology.truth.jsonl")}
    right = total = 0
    per_field: dict[str, list[int]] = {name: [0, 0] for name in CONTRACT_FIELDS}
    for r in reports:
        ex = run(r["text"], r["lang"])
        for name, want in truth[r["id"]].items():
            ok = int(same(name, want, ex.fields[name]))
            right += ok
            total += 1
            per_field[name][0] += ok
            per_field[name][1] += 1
        cited_fields = {e["field"] for e in ex.evidence}
        for name, value in ex.fields.items():
            if value is not None:
                assert name in cited_fields, (r["id"], name)
    assert right / total >= 0.95, per_field
    for name, (ok, n) in per_field.items():
        assert ok / n >= 0.85, (name, ok, n)


def test_vocabulary_matches_over_irregular_spacing() -> None:
    f = fields("DIAGNOSIS: ADENOSQUAMOUS  CARCINOMA , poorly  differentiated.", "en")
    assert (f["histology"], f["icdo3_morphology"]) == ("adenosquamous_carcinoma", "8560/3")
    assert f["differentiation"] == "poor"


def test_a_misspelt_grade_word_is_read_by_its_stem() -> None:
    assert fields("Moderatley differentiated squamous cell carcinoma.")["differentiation"] == (
        "moderate"
    )
    assert fields("Poorley differentiated adenocarcinoma.")["differentiation"] == "poor"
    assert fields("Squamous cell carcinoma, differentiated areas.")["differentiation"] is None


def test_traditional_characters_read_as_simplified() -> None:
    f = fields("Molecular 分子檢測:\n  EGFR (cobas): 陰性\n  ALK (D5F3): 陽性\n脈管侵犯：無", "zh")
    assert (f["egfr"], f["alk"], f["lymphovascular_invasion"]) == ("wild_type", "positive", False)


def test_size_with_the_cm_sign() -> None:
    assert fields("（右肺下叶）浸润性腺癌，肿块大小3.8×3×2.5㎝。")["tumor_size_cm"] == 3.8
    assert fields("（右肺下叶）浸润性腺癌，肿块大小38×30㎜。")["tumor_size_cm"] == 3.8


def test_a_location_before_the_size_does_not_make_it_the_specimen() -> None:
    text = (
        "Gross: L lung 24 x 16 x 7 cm. Tumour centred on LUL bronchus, extending towards "
        "the hilum, 6.8 x 5.0 x 4.5 cm."
    )
    assert fields(text, "en")["tumor_size_cm"] == 6.8
    assert fields("Gross: bronchus 2.0 cm in length.", "en")["tumor_size_cm"] is None


def test_lymphovascular_permeation_is_lvi() -> None:
    assert fields("Presence of lymphovascular permeation: Yes")["lymphovascular_invasion"] is True


def test_features_stated_as_not_assessable_before_them_are_null() -> None:
    f = fields("【病理诊断】鳞状细胞癌。【备注】活检组织，无法评估脉管及胸膜侵犯情况。", "zh")
    assert f["visceral_pleural_invasion"] is None and f["lymphovascular_invasion"] is None
    assert fields("胸膜未见侵犯。", "zh")["visceral_pleural_invasion"] is False


def test_cap_nodes_involved_written_before_examined() -> None:
    text = (
        "Regional Lymph Nodes:\n   Number of Lymph Nodes Involved: 0\n"
        "   Number of Lymph Nodes Examined: 14\n"
    )
    f = fields(text, "en")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (14, 0)


def test_node_counts_take_the_one_station_named_earlier_in_the_clause() -> None:
    text = (
        "B. Lymph node, level 7, excision: One lymph node, negative for tumor (0/1).\n"
        "C. Lymph nodes, level 9R, excision: Two lymph nodes, negative for tumor (0/2)."
    )
    assert fields(text, "en")["lymph_nodes_examined"] == 3
    text = (
        "Lymph nodes, stations 7, 10R, 11R, 12R (excisions): six lymph nodes, negative "
        "for carcinoma (0/6)."
    )
    assert fields(text, "en")["lymph_nodes_examined"] == 6


def test_station_lists_without_the_words_lymph_node() -> None:
    text = "N1 stations: 11 (0/2), 12 (0/1), 13 (0/1); N2 stations: 2R (0/1), 4R (0/3), 7 (0/2)."
    f = fields(text, "en")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (10, 0)


# ------------------------------------------------------------ rules from held-out set 3


def test_a_station_table_is_summed_without_its_total_row() -> None:
    piped = (
        "Lymph nodes:\n| Station | Examined | Involved |\n| 4R | 3 | 1 |\n| 7 | 2 | 0 |\n"
        "| 11R | 4 | 2 |\n| Total | 9 | 3 |\n"
    )
    f = fields(piped, "en")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (9, 3)
    tabbed = "Station\tPositive\tNodes\n2R\t0\t2\n10R\t1\t5\n"  # positive column first
    f = fields(tabbed, "en")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (7, 1)


def test_spelled_out_and_listed_station_counts() -> None:
    f = fields("Lymph nodes station 2R nil of 2 station 4R nil of 5 all free of tumour", "en")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (7, 0)
    f = fields("Lymph nodes: 0/9 (2: 0/2; 3: 0/3; 8: 0/4).", "en")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (9, 0)
    f = fields("淋巴結：N4 0/3、N10 2/5，轉移（2/8）", "zh")
    assert (f["lymph_nodes_examined"], f["lymph_nodes_positive"]) == (8, 2)


def test_table_pipes_and_dictated_full_stop_do_not_carry_a_negation() -> None:
    f = fields(
        "| Visceral pleural invasion | Not identified |\n| Lymphovascular invasion | Present |"
    )
    assert (f["visceral_pleural_invasion"], f["lymphovascular_invasion"]) == (False, True)
    f = fields(
        "Microscopy shows no pleural invasion PL0 full stop Vascular invasion is present", "en"
    )
    assert (f["visceral_pleural_invasion"], f["lymphovascular_invasion"]) == (False, True)


def test_a_pl_code_outranks_gross_prose_about_the_pleura() -> None:
    text = "Gross: the tumour reaches the pleura.\nMicroscopy: elastic stain, PL0."
    assert fields(text, "en")["visceral_pleural_invasion"] is False


def test_one_cannot_assess_covers_a_list_of_features() -> None:
    f = fields("诊断：腺癌。备注：活检标本，无法评估脉管侵犯、胸膜侵犯及切缘。", "zh")
    assert (f["visceral_pleural_invasion"], f["lymphovascular_invasion"]) == (None, None)


def test_queried_diagnoses_in_the_clinical_note_are_not_the_diagnosis() -> None:
    text = "Clinical: ?carcinoid ?hamartoma\nConclusion: pulmonary hamartoma."
    assert fields(text, "en")["histology"] == "benign"


def test_abbreviated_grade_words_and_percent_written_out() -> None:
    assert fields("ADENOCARCINOMA, MOD DIFF, 1.5 CM", "en")["differentiation"] == "moderate"
    assert (
        fields("Adenocarcinoma. PD-L1 (SP263) 40 percent tumour cells", "en")["pdl1_tps_percent"]
        == 40
    )
    assert fields("Adenocarcinoma. PD-L1 22C3: 60% (TPS)", "en")["pdl1_tps_percent"] == 60


def test_a_fusion_partner_name_is_the_genes_result() -> None:
    text = "NGS:\n| ALK | EML4-ALK 融合 | 8% |\n| EGFR | 未检出 | - |"
    f = fields(text, "zh")
    assert (f["alk"], f["egfr"]) == ("positive", "wild_type")


def test_a_cavity_is_the_measured_lesion() -> None:
    text = "大体：楔形肺组织8×5×3cm，切开见一空洞，直径1.8cm，洞壁厚0.2cm。诊断：肺曲霉病。"
    assert fields(text, "zh")["tumor_size_cm"] == 1.8
