"""The structuring framework: text folding, sections, ConText, the JSONL contract, scoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edge_node.cli import app
from edge_node.structure import context
from edge_node.structure.evaluate import same, score
from edge_node.structure.jsonl import process_record
from edge_node.structure.pipeline import kind_module
from edge_node.structure.text import clauses, detect_lang, normalize, sections


def test_normalize_folds_one_for_one() -> None:
    raw = "ＳＵＶｍａｘ：８．５，大小２．１×１．８ｃｍ（右肺）"
    norm = normalize(raw)
    assert len(norm) == len(raw)
    assert norm == "suvmax:8.5,大小2.1x1.8cm(右肺)"


def test_detect_lang() -> None:
    assert detect_lang("右肺上叶腺癌，pT1bN0M0") == "zh"
    assert detect_lang("Adenocarcinoma of the right upper lobe, pT1b N0.") == "en"
    assert detect_lang("病理诊断：（右肺上叶）浸润性腺癌，腺泡为主型（acinar predominant）") == "zh"
    mixed = "Pathology 病理: Invasive adenocarcinoma, acinar predominant, 2.1 cm"
    assert detect_lang(mixed) == "en"


def test_sections_by_heading() -> None:
    text = normalize("PET-CT 报告\n检查所见：右肺上叶结节。\n诊断意见：1. 右肺上叶结节，考虑肺癌。")
    names = [(s.name, text[s.start : s.end].strip()) for s in sections(text)]
    assert names[0][0] == "body"
    assert names[1] == ("findings", "右肺上叶结节。")
    assert names[2][0] == "impression" and names[2][1].startswith("1. 右肺上叶结节")
    en = normalize("FINDINGS: A mass.\nIMPRESSION: Malignancy.")
    assert [s.name for s in sections(en)] == ["findings", "impression"]


def test_clauses_keep_decimals_together() -> None:
    text = normalize("Size 2.5 cm. No nodes.\n纵隔未见肿大淋巴结；肝未见异常")
    parts = [text[a:b] for a, b in clauses(text)]
    assert parts == ["size 2.5 cm", "no nodes", "纵隔未见肿大淋巴结", "肝未见异常"]


def _assert(text: str, word: str, lang: str) -> context.Assertion:
    norm = normalize(text)
    i = norm.index(normalize(word))
    return context.assertion(norm, i, i + len(word), lang)


def test_context_negation_zh_en() -> None:
    assert _assert("纵隔未见肿大淋巴结。", "淋巴结", "zh").negated
    assert not _assert("纵隔见肿大淋巴结。", "淋巴结", "zh").negated
    assert _assert("There is no evidence of hilar adenopathy.", "hilar", "en").negated
    assert _assert("EGFR突变阴性", "EGFR", "zh").negated
    # a terminator ends the scope: the mass after "but" is affirmed
    assert not _assert("No effusion, but a 3 cm mass in the RUL.", "mass", "en").negated


def test_context_uncertain_and_historical() -> None:
    assert _assert("右肺上叶结节，考虑肺癌。", "肺癌", "zh").uncertain
    assert _assert("Findings suspicious for malignancy.", "malignancy", "en").uncertain
    assert _assert("History of colon cancer.", "colon cancer", "en").historical
    assert not _assert("Colon cancer.", "colon cancer", "en").historical


def _rec(obj: object, lineno: int = 1) -> dict[str, Any]:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()
    return process_record(raw, lineno)


def test_bad_records_are_reported_not_fatal() -> None:
    assert _rec(b"{not json", 4)["errors"] == [
        "invalid JSON: Expecting property name enclosed in double quotes"
    ]
    assert _rec(b"{not json", 4)["id"] == "line:4"
    unknown = _rec({"id": "x", "kind": "xray", "text": "t"})
    assert unknown["kind"] is None and "unknown kind" in str(unknown["errors"])
    empty = _rec({"id": "e", "kind": "petct", "text": "  "})
    assert empty["errors"] == ["empty report"]
    assert set(empty["fields"]) == set(kind_module("petct").FIELDS)
    assert all(v is None for v in empty["fields"].values())
    odd_lang = _rec({"id": 7, "kind": "discharge", "lang": "fr", "text": "Lung cancer."})
    assert odd_lang["id"] == "7" and "unknown lang" in str(odd_lang["errors"])
    gbk = process_record(
        json.dumps({"id": "g", "kind": "pathology", "text": "右肺腺癌"}, ensure_ascii=False).encode(
            "gb18030"
        ),
        1,
    )
    assert gbk["id"] == "g" and "decoded as gb18030" in str(gbk["errors"])


def test_cli_one_line_out_per_line_in(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": "p", "kind": "pathology", "lang": None, "text": "右肺上叶浸润性腺癌"}),
        "garbage",
        "",
        json.dumps({"id": "d", "kind": "discharge", "text": "Discharge diagnosis: none."}),
    ]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["structure", "--in", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in recs] == ["p", "line:2", "d"]
    for r in recs:
        assert set(r) == {"id", "kind", "fields", "evidence", "errors", "confidence"}
    missing = CliRunner().invoke(
        app, ["structure", "--in", str(tmp_path / "no"), "--out", str(out)]
    )
    assert missing.exit_code == 2


def test_scoring_rules() -> None:
    assert same("tumor_size_cm", 2.3, 2.3000001)
    assert not same("tumor_size_cm", 2.3, 2.4)
    assert not same("visceral_pleural_invasion", False, None)
    assert same("diagnosis_icd10", ["C34.1", "I10"], ["I10", "C34.1"])
    assert not same("diagnosis_icd10", ["C34.1"], ["C34.1", "I10"])
    assert same(
        "procedures",
        [{"name": "VATS  lobectomy", "date": None}],
        [{"name": "vats lobectomy", "date": None}],
    )
    les = {
        "site": "liver",
        "size_cm": 1.2,
        "suvmax": 5.0,
        "tendency": "malignant",
        "role": "metastasis",
    }
    assert same("lesions", [les], [dict(les, suvmax=5.04)])
    assert not same("lesions", [les], [dict(les, role="primary")])
    assert not same("lesions", [les], [])
    report = score(
        {"a": {"fields": {"lesions": [les], "lesion_count": 1}, "evidence": []}},
        [
            {"id": "a", "kind": "petct", "fields": {"lesions": [les], "lesion_count": 1}},
            {"id": "b", "kind": "petct", "fields": {"lesions": [], "lesion_count": 0}},
        ],
    )
    assert report.missing == 1 and report.overall.total == 4 and report.overall.right == 3
    assert report.evidence_missing == 2
    assert report.fields[("petct", "lesions.site")].right == 1


def test_confidence_is_calibrated_and_never_above_a_rules_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_node.structure import calibration
    from edge_node.structure.core import Extraction

    content = calibration.build(
        {("pathology", "histology"): (58, 58), ("pathology", "pT"): (7, 10)}, source="dev"
    )
    assert content["fields"]["pathology"]["histology"]["confidence"] == round(59 / 60, 3)
    assert content["fields"]["pathology"]["pT"]["confidence"] == round(8 / 12, 3)
    out = tmp_path / "cal.json"
    calibration.write(out, content)
    assert json.loads(out.read_text(encoding="utf-8"))["fields"] == content["fields"]
    monkeypatch.setattr(
        calibration, "table", lambda: {"pathology": {"histology": 0.98, "pT": 0.667}}
    )
    ex = Extraction.empty(("histology", "pT", "pN", "margin"))
    ex.put("histology", "adenocarcinoma", 0, 3)
    ex.put("pT", "T2a", 5, 8, confidence=0.6)  # the rule saw "可能"
    ex.put("margin", "negative", 9, 12)
    calibration.apply("pathology", ex)
    assert ex.confidence == {"histology": 0.98, "pT": 0.6, "margin": calibration.DEFAULT}


def test_finish_drops_evidence_and_confidence_of_null_fields() -> None:
    from edge_node.structure.core import Extraction

    ex = Extraction.empty(("a", "b"))
    ex.put("a", 1, 4, 6, confidence=0.7)
    ex.cite("b", 0, 2)
    ex.confidence["b"] = 0.9
    ex.finish(text_length=5)  # a's span runs past the text
    assert ex.evidence == [] and ex.confidence == {"a": 0.7}
    with pytest.raises(KeyError):
        ex.put("zzz", 1, 0, 1)


def test_a_value_ending_a_sentence_is_not_an_item_number() -> None:
    text = normalize("FINDINGS: RUL mass, SUV 8.8.\nIMPRESSION: Malignancy.")
    secs = sections(text)
    assert [s.name for s in secs] == ["findings", "impression"]
    assert text[secs[0].start : secs[0].end].strip() == "rul mass, suv 8.8."
    numbered = normalize("检查所见：结节。\n2. 诊断意见：肺癌")
    assert [s.name for s in sections(numbered)] == ["findings", "impression"]


def test_context_scope_stops_at_a_new_statement() -> None:
    text = "无明显诱因出现咳嗽，外院CT诊断为肺癌。"
    assert not _assert(text, "肺癌", "zh").negated
    assert not _assert("低分化，部分未分化癌", "分化癌", "zh").negated
    assert _assert("右肺上叶结节，肺癌？", "肺癌", "zh").uncertain
    assert not _assert("Cough due to lung cancer, no fever.", "lung cancer", "en").negated


def test_cite_keeps_each_span_once() -> None:
    from edge_node.structure.core import Extraction

    ex = Extraction.empty(("a",))
    for _ in range(3):
        ex.put("a", 1, 0, 2)
    ex.replace("a", 2, 3, 4)
    ex.put("a", 9, 3, 4)
    assert ex.fields == {"a": 2} and ex.evidence == [{"field": "a", "start": 3, "end": 4}]


def test_word_alternation_prefers_the_longest_word_and_keeps_boundaries() -> None:
    import re

    from edge_node.structure.text import word_alternation

    words = ["ca", "cancer", "lung cancer", "肺癌", "肺", "adeno ca"]
    rx = re.compile(word_alternation(words))
    assert [m.group() for m in rx.finditer("lung cancer; ca; carboplatin; 肺癌")] == [
        "lung cancer",
        "ca",
        "肺癌",
    ]  # "ca" inside "carboplatin" fails its end boundary and nothing shorter fits
    flat = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    text = "adeno ca, lung cancer 肺 肺癌 cancerous"
    bounded = re.compile(word_alternation(words, bound=False))
    assert [m.span() for m in bounded.finditer(text)] == [m.span() for m in re.finditer(flat, text)]
    spaced = re.compile(word_alternation(["adenosquamous carcinoma"], flexible_space=True))
    assert spaced.search("adenosquamous  \ncarcinoma") is not None
