"""PET-CT structuring: lesion matching between findings and impression, negation,
order, sizes and SUVmax, evidence offsets, and accuracy on the development set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_node.structure import lesions
from edge_node.structure.evaluate import score
from edge_node.structure.jsonl import process_record
from edge_node.structure.pipeline import extract
from edge_node.structure.text import normalize

DEVSET = Path(__file__).resolve().parents[4] / "edge_node" / "structure" / "devset"


def run(text: str, lang: str = "zh") -> list[dict[str, Any]]:
    ex = extract("petct", text, lang)
    assert ex.fields["lesion_count"] == len(ex.fields["lesions"])
    out: list[dict[str, Any]] = ex.fields["lesions"]
    return out


def sites(found: list[dict[str, Any]]) -> list[str]:
    return [les["site"] for les in found]


# --------------------------------------------------------------------------- matching

ZH_REPORT = (
    "检查所见：\n"
    "胸部：右肺上叶尖段见一软组织密度结节，大小约2.3cm×1.8cm，邻近胸膜牵拉，SUVmax约8.5。"
    "纵隔4R区、7区见肿大淋巴结，较大者短径约1.2cm，SUVmax 5.6。"
    "右肺门淋巴结摄取增高，SUVmax 4.1，大小约0.9cm。\n"
    "腹部：肝脏大小形态正常，未见异常放射性浓聚。双侧肾上腺未见增粗。\n"
    "诊断意见：\n"
    "1. 右上肺结节，考虑周围型肺癌。\n"
    "2. 纵隔（4R、7区）及右肺门淋巴结转移。"
)


def test_findings_and_impression_named_differently_make_one_lesion() -> None:
    found = run(ZH_REPORT)
    assert found == [
        {"site": "right_upper_lobe", "size_cm": 2.3, "suvmax": 8.5,
         "tendency": "malignant", "role": "primary"},
        {"site": "mediastinal_lymph_node", "size_cm": 1.2, "suvmax": 5.6,
         "tendency": "malignant", "role": "lymph_node"},
        {"site": "hilar_lymph_node", "size_cm": 0.9, "suvmax": 4.1,
         "tendency": "malignant", "role": "lymph_node"},
    ]  # fmt: skip


def test_landmark_pleura_is_not_a_lesion() -> None:
    # "邻近胸膜牵拉" describes the lung nodule; it is no pleural lesion
    assert "pleura" not in sites(run(ZH_REPORT))


def test_english_station_names_match_mediastinal_impression() -> None:
    text = (
        "FINDINGS:\nA 2.8 cm mass in the right upper lobe demonstrates SUVmax 8.1. Right "
        "lower paratracheal node measures 1.4 cm (SUVmax 4.9). Subcarinal node measures 1.8 "
        "cm (SUVmax 6.2). Left hilar node measures 0.8 cm with mild uptake (SUVmax 2.3).\n"
        "IMPRESSION:\n1. Right upper lobe carcinoma.\n2. Metastatic mediastinal (4R, 7) nodes."
        "\n3. Mild left hilar nodal uptake, likely reactive."
    )
    found = run(text, "en")
    assert sites(found) == ["right_upper_lobe", "mediastinal_lymph_node", "hilar_lymph_node"]
    # two mediastinal nodes are one record: largest size, highest SUVmax
    assert (found[1]["size_cm"], found[1]["suvmax"]) == (1.8, 6.2)
    assert found[1]["tendency"] == "malignant"
    assert (found[2]["tendency"], found[2]["role"]) == ("benign", "lymph_node")


def test_lung_named_without_lobe_in_impression_joins_the_lobe_lesion() -> None:
    text = (
        "检查所见：\n右肺上叶前段见软组织肿块，大小约3.9cm×3.3cm，SUVmax 11.7。"
        "纵隔7区淋巴结肿大，约1.7cm，"
        "SUVmax 7.9。\n诊断意见：\n右肺中央型肺癌伴阻塞性肺炎，隆突下淋巴结转移。"
    )
    found = run(text)
    assert sites(found) == ["right_upper_lobe", "mediastinal_lymph_node"]
    # "伴阻塞性肺炎" is an accompanying finding, not a second opinion on the tumour
    assert (found[0]["tendency"], found[0]["role"]) == ("malignant", "primary")


def test_sites_listed_together_share_one_description() -> None:
    text = (
        "影像所见：\n左肺下叶背段见团块影，大小约45mm×38mm，SUVmax=12.3。左肺门及隆突下见多发肿大淋巴结，"
        "SUVmax=7.2，较大者约18mm。\n影像诊断：\n左肺下叶中央型肺癌伴左肺门、纵隔淋巴结转移。"
    )
    found = run(text)
    assert sites(found) == ["left_lower_lobe", "hilar_lymph_node", "mediastinal_lymph_node"]
    assert found[0]["size_cm"] == 4.5
    for node in found[1:]:
        assert (node["size_cm"], node["suvmax"], node["tendency"]) == (1.8, 7.2, "malignant")


def test_respectively_gives_each_site_its_own_value() -> None:
    text = (
        "3.1 cm LUL mass SUVmax 9.9. FDG-avid L hilar and AP window nodes, SUVmax 4.8 and "
        "5.5 respectively. Impression: LUL primary lung cancer with L hilar and AP window "
        "nodal mets."
    )
    found = run(text, "en")
    assert [(les["site"], les["suvmax"]) for les in found] == [
        ("left_upper_lobe", 9.9),
        ("hilar_lymph_node", 4.8),
        ("mediastinal_lymph_node", 5.5),
    ]


def test_two_bone_lesions_are_one_record_with_the_largest_values() -> None:
    text = (
        "检查所见：\n右肺下叶背段见一结节，大小约2.6×2.2cm，SUV最大值约7.4。胸骨柄见溶骨性骨质破坏，大小约2.0cm，"
        "SUV最大值约6.1；右侧髂骨见骨质破坏伴软组织肿块，大小约3.8cm×2.9cm，SUV最大值约8.3。\n"
        "诊断意见：\n1、右肺下叶肺癌；\n2、胸骨柄、右侧髂骨转移。"
    )
    found = run(text)
    assert found[1] == {
        "site": "bone", "size_cm": 3.8, "suvmax": 8.3, "tendency": "malignant",
        "role": "metastasis",
    }  # fmt: skip
    assert len(found) == 2


def test_table_rows_give_size_and_suvmax() -> None:
    text = (
        "FINDINGS:\nSite | Size | SUVmax\nRUL mass | 3.2 cm | 9.1\n4R node | 1.4 cm | 5.2\n"
        "IMPRESSION:\n1) RUL primary lung cancer.\n2) 4R nodal metastasis."
    )
    found = run(text, "en")
    assert [(les["site"], les["size_cm"], les["suvmax"]) for les in found] == [
        ("right_upper_lobe", 3.2, 9.1),
        ("mediastinal_lymph_node", 1.4, 5.2),
    ]


def test_station_list_names_each_station() -> None:
    text = (
        "Findings: Lingular mass 2.9 cm, SUVmax 8.8. Station 10L lymph node 1.2 cm, SUVmax 5.5. "
        "Station 5 lymph node 1.0 cm, SUVmax 4.1.\nImpression: Lingular primary with "
        "metastatic adenopathy at stations 10L and 5."
    )
    found = run(text, "en")
    assert sites(found) == ["left_upper_lobe", "hilar_lymph_node", "mediastinal_lymph_node"]
    assert [les["tendency"] for les in found] == ["malignant"] * 3


def test_two_lobes_in_one_phrase() -> None:
    text = (
        "检查所见：\n右肺中叶及右肺下叶多发斑片影，SUVmax 5.5。\n"
        "诊断意见：\n右肺中下叶感染性病变可能大。"
    )
    found = run(text)
    assert [(les["site"], les["tendency"]) for les in found] == [
        ("right_middle_lobe", "benign"),
        ("right_lower_lobe", "benign"),
    ]


@pytest.mark.parametrize(
    ("impression", "tendency"),
    [
        ("Right upper lobe carcinoma with nodal and hepatic metastases.", "malignant"),
        ("Right upper lobe carcinoma. Right hilar node, likely reactive.", "benign"),
        ("Right upper lobe carcinoma. Right hilar node, possibly reactive, nodal metastasis "
         "not excluded.", "indeterminate"),
    ],
)  # fmt: skip
def test_node_statement_without_station(impression: str, tendency: str) -> None:
    text = (
        "FINDINGS: A 3.6 cm mass in the right upper lobe (SUVmax 12). Right hilar node 1.7 cm "
        f"(SUVmax 8). Liver lesion 2.0 cm, SUVmax 7.\nIMPRESSION: {impression}"
    )
    hilar = [les for les in run(text, "en") if les["site"] == "hilar_lymph_node"]
    assert [les["tendency"] for les in hilar] == [tendency]


def test_hilar_mass_that_is_no_node_is_the_central_tumour() -> None:
    text = (
        "检查所见：左肺门区见软组织肿块影，与左肺上叶支气管关系密切，"
        "大小约4.6cm×3.9cm，SUVmax 13.2。"
        "纵隔5、6区淋巴结肿大，SUVmax 8.4，大者约1.7cm。\n"
        "诊断意见：左肺上叶中央型肺癌伴阻塞性肺不张，纵隔淋巴结转移。"
    )
    found = run(text)
    assert [(les["site"], les["size_cm"], les["role"]) for les in found] == [
        ("left_upper_lobe", 4.6, "primary"),
        ("mediastinal_lymph_node", 1.7, "lymph_node"),
    ]


def test_small_normal_nodes_are_not_lesions() -> None:
    text = (
        "检查所见：\n左肺上叶见磨玻璃结节，大小约1.5cm，SUVmax 1.4。"
        "纵隔内可见数枚小淋巴结，未见FDG摄取增高。\n"
        "诊断意见：\n1. 左肺上叶磨玻璃结节，考虑微浸润腺癌可能；\n2. 纵隔小淋巴结，未见异常代谢。"
    )
    assert sites(run(text)) == ["left_upper_lobe"]


# --------------------------------------------------------------------------- negation


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("检查所见：双侧肺门及纵隔未见肿大淋巴结。肝、脾、双肾上腺未见异常。\n"
         "诊断意见：未见明确转移征象。", "zh"),
        ("检查所见：纵隔淋巴结未见肿大。骨骼未见骨质破坏及异常放射性浓聚。", "zh"),
        ("FINDINGS: No mediastinal, hilar or supraclavicular lymphadenopathy. No focal hepatic, "
         "adrenal or osseous FDG-avid lesion.\nIMPRESSION: No evidence of malignancy.", "en"),
        ("FINDINGS: Physiologic uptake in the brain, myocardium and urinary bladder. The liver, "
         "spleen and adrenal glands are unremarkable.", "en"),
        ("检查所见：脑、心肌及泌尿系统生理性摄取。结肠可见条形生理性放射性摄取。", "zh"),
        ("FINDINGS: Previously FDG-avid 4R node has resolved.\nIMPRESSION: Complete metabolic "
         "response of the mediastinal nodal disease.", "en"),
    ],
)  # fmt: skip
def test_absent_and_physiological_findings_are_not_lesions(text: str, lang: str) -> None:
    ex = extract("petct", text, lang)
    assert ex.fields["lesions"] == []
    assert ex.fields["lesion_count"] == 0


def test_negated_node_next_to_a_real_lesion() -> None:
    text = (
        "右肺中叶见一结节，大小约1.6cm，SUVmax约5.2。纵隔及肺门未见肿大淋巴结。\n"
        "诊断意见：右肺中叶结节，考虑肺癌。"
    )
    assert sites(run(text)) == ["right_middle_lobe"]


def test_property_negation_keeps_the_lesion() -> None:
    # "未见FDG摄取" negates the uptake, not the nodule
    text = (
        "检查所见：甲状腺右叶见一低密度结节，大小约1.2x1.0cm，放射性摄取未见增高。\n"
        "检查结论：甲状腺右叶结节，考虑良性。"
    )
    assert run(text) == [
        {"site": "other", "size_cm": 1.2, "suvmax": None, "tendency": "benign", "role": None}
    ]


def test_reference_region_values_are_not_taken() -> None:
    text = (
        "检查所见：\n以纵隔血池（SUVmax 1.9）及肝脏（SUVmax 2.6）为本底。"
        "左肺下叶见一磨玻璃结节，大小约1.1cm×0.9cm，FDG摄取略高于纵隔血池，SUVmax 2.2。\n"
        "诊断意见：\n左肺下叶磨玻璃结节，良恶性待定，建议随访。"
    )
    assert run(text) == [
        {"site": "left_lower_lobe", "size_cm": 1.1, "suvmax": 2.2,
         "tendency": "indeterminate", "role": None}
    ]  # fmt: skip


# --------------------------------------------------------------------------- order


def test_order_is_first_mention() -> None:
    text = (
        "检查所见:\n头颅: 右侧额叶见一结节, 直径约1.8cm, SUVmax 9.8。\n"
        "胸部: 左肺下叶见一实性结节, 大小约1.9cmx1.6cm, "
        "SUVmax 7.1。\n诊断意见:\n1. 左肺下叶结节, 考虑肺癌。\n2. 右侧额叶结节, 考虑脑转移瘤。"
    )
    found = run(text)
    assert sites(found) == ["brain", "left_lower_lobe"]
    assert [les["role"] for les in found] == ["metastasis", "primary"]


def test_impression_written_first_counts_first() -> None:
    text = (
        "IMPRESSION:\n1. Hypermetabolic left pleural nodularity, consistent with pleural "
        "metastatic disease.\n2. Left upper lobe mass, compatible with primary lung cancer.\n\n"
        "FINDINGS:\nLeft upper lobe mass 3.4 x 2.9 cm, SUVmax 12.5. Nodular left pleural "
        "thickening up to 8 mm, SUVmax 5.9."
    )
    found = run(text, "en")
    assert sites(found) == ["pleura", "left_upper_lobe"]
    assert (found[0]["size_cm"], found[0]["suvmax"]) == (0.8, 5.9)


# --------------------------------------------------------------------------- tendency


@pytest.mark.parametrize(
    ("judgement", "tendency", "role"),
    [
        ("考虑骨转移", "malignant", "metastasis"),
        ("骨转移可能", "malignant", "metastasis"),
        ("骨转移不除外", "indeterminate", "metastasis"),
        ("性质待定，建议随访", "indeterminate", None),
        ("考虑退行性变", "benign", None),
        ("建议随访", "indeterminate", None),
        ("考虑骨转移，病理性骨折风险", "malignant", "metastasis"),
    ],
)
def test_tendency_words(judgement: str, tendency: str, role: str | None) -> None:
    text = f"检查所见：T7椎体见骨质密度增高影，SUVmax 3.4。\n诊断意见：T7椎体FDG摄取，{judgement}。"
    assert run(text) == [
        {"site": "bone", "size_cm": None, "suvmax": 3.4, "tendency": tendency, "role": role}
    ]


def test_tendency_falls_back_to_findings_without_impression() -> None:
    text = "右侧锁骨上区淋巴结肿大，约1.8cm，SUVmax约6.9，考虑转移。"
    assert run(text) == [
        {"site": "supraclavicular_lymph_node", "size_cm": 1.8, "suvmax": 6.9,
         "tendency": "malignant", "role": "lymph_node"}
    ]  # fmt: skip


def test_no_judgement_leaves_tendency_null() -> None:
    found = run("FINDINGS: Right lower lobe mass, 4.4 x 3.6 cm, SUV 10.3.", "en")
    assert found == [
        {"site": "right_lower_lobe", "size_cm": 4.4, "suvmax": 10.3,
         "tendency": None, "role": None}
    ]  # fmt: skip


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("2.3x1.8cm", [2.3]),
        ("2.3×1.8cm", [2.3]),
        ("18mm", [1.8]),
        ("大小约2.1cm×1.5cm", [2.1]),
        ("measuring 3.0 x 2.2 cm", [3.0]),
        ("45mm×38mm", [4.5]),
        ("范围约3.6×2.9×3.1cm", [3.6]),
        ("１．６ｃｍ×１．４ｃｍ", [1.6]),
        ("约３５毫米×２８毫米", [3.5]),
        ("blood glucose 5.6 mmol/L", []),
        ("SUVmax 8.5", []),
        ("CT值约35HU", []),
    ],
)
def test_sizes(raw: str, want: list[float]) -> None:
    assert [n.value for n in lesions.sizes(normalize(raw))] == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("SUVmax 8.5", 8.5),
        ("SUVmax=8.5", 8.5),
        ("SUV max: 8.5", 8.5),
        ("最大标准摄取值（SUVmax）约为8.5", 8.5),
        ("SUVmax值约6.3", 6.3),
        ("SUVmax 5.2-7.8", 7.8),
        ("SUV值4.5～6.2", 6.2),
        ("SUV最大值约7.4", 7.4),
        ("max SUV 9.4", 9.4),
        ("an SUVmax of 5.8", 5.8),
        ("SUV(max) = 5.4", 5.4),
        ("ＳＵＶｍａｘ约５．２", 5.2),
        ("SUVmax 9.1, delayed 10.4", 10.4),
        ("SUVmean 3.0", None),
    ],
)
def test_suvmax(raw: str, want: float | None) -> None:
    values = [n.value for n in lesions.suvs(normalize(raw))]
    assert (max(values) if values else None) == want


# --------------------------------------------------------------------------- evidence


def test_evidence_cites_every_mention_in_the_original_text() -> None:
    ex = extract("petct", ZH_REPORT, "zh")
    spans = [ZH_REPORT[e["start"] : e["end"]] for e in ex.evidence if e["field"] == "lesions"]
    assert spans and all(s.strip() == s and s for s in spans)
    cited = "\n".join(spans)
    # findings and impression mentions of each lesion, as the reader sees them
    for words in (
        "右肺上叶尖段",
        "右上肺结节",
        "纵隔4R区",
        "纵隔（4R、7区）",
        "右肺门淋巴结摄取增高",
        "SUVmax约8.5",
    ):
        assert words in cited, words
    impression = ZH_REPORT.index("诊断意见")
    assert any(e["start"] > impression for e in ex.evidence if e["field"] == "lesions")
    assert {e["field"] for e in ex.evidence} == {"lesions", "lesion_count"}
    # nothing cited from the negated abdomen line
    abdomen = (ZH_REPORT.index("腹部"), ZH_REPORT.index("诊断意见"))
    assert not [e for e in ex.evidence if abdomen[0] <= e["start"] < abdomen[1]]


def test_evidence_offsets_survive_full_width_text() -> None:
    text = (
        "检查所见：\n右肺中叶见一结节，大小约１．６ｃｍ×１．４ｃｍ，ＳＵＶｍａｘ约５．２。\n"
        "诊断意见：\n１．右肺中叶结节，考虑肺癌。"
    )
    ex = extract("petct", text, "zh")
    assert ex.fields["lesions"][0]["suvmax"] == 5.2
    cited = [text[e["start"] : e["end"]] for e in ex.evidence if e["field"] == "lesions"]
    assert any("ＳＵＶｍａｘ约５．２" in c for c in cited)
    assert any(c.startswith("右肺中叶结节") for c in cited)


def test_no_lesion_report_still_cites_its_judgement() -> None:
    text = "检查所见：\n双肺未见结节。\n诊断意见：\n全身PET/CT显像未见明确恶性肿瘤征象。"
    ex = extract("petct", text, "zh")
    assert ex.fields == {"lesions": [], "lesion_count": 0}
    ev = [e for e in ex.evidence if e["field"] == "lesion_count"]
    assert ev and text[ev[0]["start"] : ev[0]["end"]] == "全身PET/CT显像未见明确恶性肿瘤征象"


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "text",
    ["", "   ", "SUVmax", "右肺上叶", "检查所见：\n\n诊断意见：", "1.\n2.\n", "IMPRESSION:",
     "右肺上叶结节 SUVmax 99999999999999999999.5 大小 99999999cm", "肝" * 3000, "x" * 5000],
)  # fmt: skip
def test_odd_text_never_crashes(text: str) -> None:
    for lang in ("zh", "en"):
        ex = extract("petct", text, lang)
        assert ex.fields["lesion_count"] == len(ex.fields["lesions"])
        for les in ex.fields["lesions"]:
            assert les["size_cm"] is None or les["size_cm"] <= lesions.MAX_SIZE_CM
            assert les["suvmax"] is None or les["suvmax"] <= lesions.MAX_SUV


def test_jsonl_record_with_null_lang_is_detected_and_structured() -> None:
    raw = json.dumps(
        {"id": "r1", "kind": "petct", "lang": None,
         "text": "FINDINGS: Right adrenal nodule 22 mm, SUVmax 8.4.\nIMPRESSION: Right adrenal "
                 "metastasis."},
        ensure_ascii=False,
    ).encode()  # fmt: skip
    out = process_record(raw, 1)
    assert out["errors"] == []
    assert out["fields"]["lesions"] == [
        {"site": "adrenal", "size_cm": 2.2, "suvmax": 8.4, "tendency": "malignant",
         "role": "metastasis"}
    ]  # fmt: skip


# --------------------------------------------------------------------------- dev set


def _load(name: str) -> list[dict[str, Any]]:
    lines = (DEVSET / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_devset_is_balanced_and_annotated() -> None:
    reports, truth = _load("petct.jsonl"), _load("petct.truth.jsonl")
    assert len(reports) >= 40 and [r["id"] for r in reports] == [t["id"] for t in truth]
    langs = [r["lang"] for r in reports]
    assert langs.count("zh") >= 15 and langs.count("en") >= 15 and None in langs
    assert any(t["fields"]["lesion_count"] == 0 for t in truth)
    for t in truth:
        assert t["fields"]["lesion_count"] == len(t["fields"]["lesions"])


def test_devset_field_accuracy() -> None:
    reports, truth = _load("petct.jsonl"), _load("petct.truth.jsonl")
    predicted = {}
    for r in reports:
        out = process_record(json.dumps(r, ensure_ascii=False).encode(), 0)
        predicted[out["id"]] = out
    report = score(predicted, truth)
    lesions_acc = report.fields[("petct", "lesions")].accuracy
    count_acc = report.fields[("petct", "lesion_count")].accuracy
    assert lesions_acc >= 0.95, report.misses
    assert count_acc >= 0.95, report.misses
    assert report.evidence_missing == 0
