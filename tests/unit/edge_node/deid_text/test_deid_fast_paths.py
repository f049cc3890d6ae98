"""The speed-ups lose nothing: prefix trees, label dispatch, gates, the tokenizer."""

from __future__ import annotations

import re

import pytest
import spacy

from edge_node.deid_text import pipeline, rules
from edge_node.deid_text.evaluate import load, split_path
from edge_node.deid_text.lexicon import ascii_lower, trie_pattern


def test_trie_pattern_matches_exactly_the_terms_longest_first() -> None:
    terms = ["ca", "ca125", "ca19-9", "cea", "c.t", "x"]
    rx = re.compile(trie_pattern(terms))
    assert all(rx.fullmatch(t) for t in terms)
    assert not any(rx.fullmatch(t) for t in ["c", "ca1", "cex", "cat", ""])
    assert [m.group() for m in rx.finditer("ca125 ca19-9 cea cxt")] == [
        "ca125",
        "ca19-9",
        "cea",
        "x",
    ]


def test_ascii_lower_keeps_every_offset() -> None:
    text = "İstanbul MRN: Straße ΣΑΣ 住院号 ABC"
    low = ascii_lower(text)
    assert len(low) == len(text)
    assert low.endswith("住院号 abc") and low.startswith("İstanbul mrn")


def test_label_heads_are_the_literal_starts() -> None:
    heads = rules.label_heads(r"住院号|门诊号码|(?i:MRN|Acc(?:ession)?\.? ?(?:#|No\.?)|UR ?No\.?)")
    assert heads == ["住院号", "门诊号码", "mrn", "acc", "ur"]


def _sample() -> list[str]:
    recs = load(split_path("dev"))[:40] + load(split_path("heldout"))[:40]
    return [r["text"] for r in recs]


def _full_scan(text: str) -> list[tuple[int, int]]:
    """What one unguarded scan per pattern finds (the behaviour the gates must keep)."""
    spans: list[tuple[int, int]] = []
    for p in rules.DATE_PATTERNS:
        spans += (m.span() for m in p.finditer(text) if rules._date_ok(m.group()))
    for p in rules.PHONES:
        spans += (m.span() for m in p.finditer(text) if sum(c.isdigit() for c in m.group()) >= 7)
    for p in (rules.CN_ID, rules.CN_ID_LOOSE, rules.OTHER_IDS, rules.LONG_NUMBER, rules.IPV4):
        spans += (m.span() for m in p.finditer(text))
    spans += (
        m.span()
        for m in rules.RECORD_SHAPE.finditer(text)
        if sum(c.isdigit() for c in m.group()) >= 5 and not rules.TNM.fullmatch(m.group())
    )
    for p in rules.AGE_PATTERNS:
        spans += (m.span(m.lastindex or 0) for m in p.finditer(text))
    for p, kind in rules.LABELLED:
        for m in p.finditer(text):
            value = m.group(1).rstrip(".-/_ ")
            if kind == "OTHER" or re.search(r"\d", value):
                spans.append((m.start(1), m.start(1) + len(value)))
    spans += (m.span(1) for m in rules.PHONE_LABEL.finditer(text))
    return spans


def test_gated_scans_find_everything_a_full_scan_finds() -> None:
    for text in _sample():
        hits = rules.patterns(text)
        for s, e in _full_scan(text):
            assert any(h.start <= s and e <= h.end for h in hits) or all(
                any(h.start <= i < h.end for h in hits)
                for i in range(s, e)
                if not text[i].isspace()
            ), (text[s:e], text)


def test_label_dispatch_equals_a_case_insensitive_scan() -> None:
    text = (
        "mrn: 12345678 / Hospital No H123456 / NATIONAL ID 440106195406252442 / tel 0755-12345678"
    )
    got = {
        (m.start(1), m.end(1))
        for _, m in rules.label_matches(text, ascii_lower(text), rules.PATTERN_RULES)
    }
    want = {
        (m.start(1), m.end(1))
        for p in [rules.LABELLED[0][0], rules.LABELLED[1][0], rules.PHONE_LABEL]
        for m in p.finditer(text)
    }
    assert want and want <= got


def test_tokenizer_is_registered_and_keeps_the_text() -> None:
    assert "onco_deid_tokenizer.v1" in spacy.registry.tokenizers.get_all()
    nlp = pipeline.build("en")
    assert isinstance(nlp.tokenizer, pipeline.FastTokenizer)
    text = "Seen by  Dr. Smith\n\t on 3 Mar 2021 \r\n end "
    doc = nlp.make_doc(text)
    assert doc.text == text
    assert [t.text for t in doc][:5] == ["Seen", "by", "  ", "Dr.", "Smith"]


def test_chinese_tokens_carry_person_tags() -> None:
    run = pipeline.runner("zh")
    doc = run("患者欧阳秀英，家属王建国陪同。")
    assert doc.text == "患者欧阳秀英，家属王建国陪同。"
    assert "nr" in {t.tag_ for t in doc}
    assert ("欧阳秀英" in [t.text for t in doc]) or any(
        doc.text[s:e] == "欧阳秀英" for s, e, _ in doc._.phi
    )


def test_piecewise_chinese_address_scan_equals_the_whole_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = [t for t in _sample() if rules.has_han(t)]
    assert texts
    piecewise = [rules.addresses(t) for t in texts]
    monkeypatch.setattr(rules, "_zh_address_matches", rules.ZH_ADDRESS.finditer)
    assert [rules.addresses(t) for t in texts] == piecewise
