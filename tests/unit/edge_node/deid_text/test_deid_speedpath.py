"""The rewritten scans find exactly what their plain forms find.

Each fast form (a look-behind moved after the first character, an alternation
split per branch, a scan from the character before a word, an "@"-anchored e-mail
search) is compared with the plain pattern it replaced, on the dev notes, on
hand-picked edge cases and on random strings built from the characters that
matter (full-width and other Unicode digits, "ſ", accented capitals).
"""

from __future__ import annotations

import random
import re

import pytest

from edge_node.deid_text import context, generic, pipeline, rules, unknown
from edge_node.deid_text.evaluate import load, split_path
from edge_node.deid_text.lexicon import ascii_lower, clinical_terms, lexicon

UP, LO = rules.UP, rules.LO
_MONTH = r"(?:0?[1-9]|1[0-2])"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_PLAIN_MON = r"(?:" + "|".join(rules._MON_FORMS) + r")\.?"

# (fast pattern, the plain pattern it replaced)
PLAIN = [
    (rules.LONG_NUMBER, r"(?<![\d.,])\d{7,}(?!\d|[.,]\d|\s?(?:mg|ml|mL|g|IU|U|copies|拷贝))"),
    (rules.DICOM_UID, r"(?<![\d.])\d+(?:\.\d+){4,}(?![\d.])"),
    (rules.CN_ID_LOOSE, r"(?<![0-9A-Za-z])\d{6}[ \t-]?\d{8}[ \t-]?\d{3}[0-9Xx](?![0-9A-Za-z])"),
    (
        rules.RECORD_SHAPE,
        r"(?<![0-9A-Za-z])(?:[A-Z]{1,4}(?:-[A-Z]{1,4}){0,2}-?\d{2,}(?:-?\d+|[A-Z]{1,3}\d+|-[A-Z]{1,3}\d*)*"
        r"|\d{2,}[A-Z]{1,3}\d+|\d{4}-[A-Z]{1,3}-\d{3,})(?![0-9A-Za-z])",
    ),
    (rules.URL, r"(?i:https?://|ftp://|www\.)[^\s<>\"'，。；）)\]]+"),
    (
        rules.EN_TITLE_NAME,
        rf"(?<![A-Za-z]){rules.TITLE_EN}[ \t]+((?:{rules._PART}[ \t]+){{0,2}}{rules.FULL})",
    ),
    (
        rules.SUFFIX_ANCHOR,
        r"(?:MD|MBBS|MBChB|FRC|PhD|RN|DO|NP|PA-C|MRCP|DPhil|BMS|HCA|CNS|RGN|FY[12])(?![A-Za-z])|"
        + rules.SUFFIX_ANCHOR.pattern.split("(?![A-Za-z])|", 16)[-1],
    ),
    (
        rules.EN_COMMA_NAME,
        r"(?<![A-Za-z])([A-Z]{2,}(?:[-'][A-Z]+)*),[ \t]*([A-Z][a-z]+)(?![A-Za-z])",
    ),
    (rules.UK_POSTCODE, r"(?<![A-Za-z0-9])[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}(?![A-Za-z0-9])"),
    (rules.US_STATE_ZIP, r"(?<=[ ,])[A-Z]{2}[ ]\d{5}(?:-\d{4})?(?!\d)"),
    (
        rules.EN_AREA,
        r"(?<![A-Za-z])(?:[A-Z][a-z']+[ \t]+){1,2}"
        r"(?:District|County|Township|Borough|Village)(?![A-Za-z])",
    ),
    (
        rules.EN_ORG,
        r"(?<![A-Za-z])(?:[A-Z][\w&'\-]*[ \t]+){1,5}" + rules.EN_ORG.pattern.split("{0,4}", 1)[1],
    ),
    (
        rules.MONTH_DATES,
        "|".join(f"(?:{p.pattern})" for p in rules.DATE_PATTERNS[:5]).replace(
            rules.MON, _PLAIN_MON
        ),
    ),
    (
        context._WEEKDAY_DAY,
        r"(?i:day),?[ \t]+(?:the[ \t]+)?(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)\b",
    ),
    (context._YY_M_D, rf"(?<![\d/.])[12]\d/{_MONTH}/{_DAY}(?![\d/])"),
    (context._EN_INITIAL_NAME, rf"(?:[A-Z]\.[ \t]?){{1,3}}([{UP}][{LO}]+(?:-[{UP}][{LO}]+)?)"),
    (
        context._AGE_GATE,
        r"(?:,[ \t]*|\|[ \t]*|\()\d{1,3}(?:[ \t]*(?:y|yo|y/o|M|F|years?)(?![A-Za-z])|[ \t]*[,)|])"
        r"|-(?:year|yr)-old",
    ),
    (
        generic._GROUPED,
        r"(?<![\w.,/:+\-])\d+(?:(?:[ ](?:[-/][ ]?)?|[-/][ ]?)\d+)+(?![\w]|[.,:]\d)",
    ),
    (generic._POSTCODES, generic._POSTCODES.pattern.replace(r"\d\d{3}(?:", r"\d{4}(?:", 1)),
]
EDGE_CASES = [
    "MRN: ４５６７８９０１２３  身份证：３２０１０２１９５７０７０３２４R４５６７８",
    "٣٤٥٦٧٨٩٠١ and 12345678 and 1.2.840.10008.5.1.4 and 1234567.8 mg",
    "httpſ://x.org HTTPS://A.B www.x.org FtP://h ftp:/no wWw.example",
    "Dr van der Berg, Mrs O'Neil, Prof. Ibáñez-Moreno; DrSmith; xMr Roe",
    "Jane Roe, MD; Ann Lee, Specialist Dietitian; Liang Li (husband); ROE, Ann",
    "SW1A 1AA, aSW1A 1AA, NY 10001-1234, ,CA 90210, Lower Slaughter Village",
    "Acme Widgets Ltd, the Big Bank, NHS Trust, Foo Bar Baz Qux Quux Corge Ltd",
    "14 Mar 2023, March 3rd, 2021, Sept '23, 3 SEPT 2020 at 10:30 pm, may 5",
    "Monday, the 3rd; 23/4/5; 123/4/5; 23/13/5; 1/2/3/4",
    "J. R. R. Tolkien, A.B.C.D. Roe, Roe (94), Lee, 91 y",
    "12 3456 7890, 0471-6698 120, 1 2 / 0 4 / 1 9 5 5, 2019-2023, 3.4 5",
    "1015 CJ Amsterdam, 69003 Lyon, 10435 Berlin",
    "RCC-LUNG-0931 AB1234X L858R ab-12-34-56 x1y2z3",
    "A000000001 MRN0000001 P2016-00001 S21-00001 BX000000001 2021-AB-123 12AB3",
]


def _texts() -> list[str]:
    notes = [r["text"] for r in load(split_path("dev"))]
    rng = random.Random(11)
    alphabet = [
        *"aAzZ019 \t\n,./-:'#()@+|éÉäÜſ４٣",
        "Dr",
        "Mar",
        "Sept",
        "day",
        "Street",
        "County",
        "Ltd",
        "MRN",
        "http",
        "www.",
        "MD",
        "2023",
        "12",
        "Hospital",
        "Care-Team",
        "-Oncology",
        "Radiologic",
    ]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30))) for _ in range(3000)]
    for _ in range(1500):
        note = rng.choice(notes)
        start = rng.randrange(len(note))
        fuzz.append(note[start : start + rng.randrange(1, 100)])
    return notes + EDGE_CASES + fuzz


TEXTS = _texts()


def _same(fast: re.Pattern[str], plain: re.Pattern[str]) -> None:
    for text in TEXTS:
        assert [(m.span(), m.groups()) for m in fast.finditer(text)] == [
            (m.span(), m.groups()) for m in plain.finditer(text)
        ], text
        for pos in (0, 1):
            a, b = fast.match(text, pos), plain.match(text, pos)
            assert (a and (a.span(), a.groups())) == (b and (b.span(), b.groups())), text


@pytest.mark.parametrize(("fast", "plain"), PLAIN, ids=[p.pattern[:30] for p, _ in PLAIN])
def test_fast_pattern_matches_like_its_plain_form(fast: re.Pattern[str], plain: str) -> None:
    assert fast.pattern != plain  # the test compares two different spellings
    _same(fast, re.compile(plain))


def test_codes_from_the_character_before_equal_the_plain_scan() -> None:
    plain = re.compile(
        r"(?<![\w\-./])(?=(?:[\w\-]*?\d){3})(?=[\w\-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9\-_]{3,}(?![\w])",
        re.ASCII,
    )
    extra = ["AB1234X", "AB1234X-CD5678Y x1y2z3", "é123abc", "a/123abc 123abc_ 123abc.x12y34"]
    for text in [*TEXTS, *extra]:
        assert unknown.code_spans(text) == [m.span() for m in plain.finditer(text)], text


def test_fast_patterns_start_with_something_to_skip_to() -> None:
    from re import _compiler, _parser  # type: ignore[attr-defined]

    for fast, _ in PLAIN:
        if fast is rules.MONTH_DATES:
            continue  # only tried where a month starts (`matches_at`), never scanned
        tree = _parser.parse(fast.pattern, fast.flags)
        assert _compiler._get_literal_prefix(tree, fast.flags)[0] or _compiler._get_charset_prefix(
            tree, fast.flags
        ), fast.pattern


def test_institution_gate_in_two_scans_equals_the_alternation() -> None:
    for text in [*TEXTS, "x-Hospital Care-Team e-É Oncologic-Radiology a-b-C-d Ologolog"]:
        plain = [m.span() for m in pipeline._INSTITUTION_GATE.finditer(text)]
        assert pipeline.institution_gate_spans(text) == plain, text


def test_emails_from_their_at_sign_equal_the_scan() -> None:
    extra = ["a@b.com.x1@c.org", "x@y@z.com", "@@a.bc", "a.b-c%d+e@f.gh.ij.k", "é@a.com a@b"]
    for text in TEXTS + extra:
        assert [m.span() for m in rules.emails(text)] == [
            m.span() for m in rules.EMAIL.finditer(text)
        ], text


def test_ocr_gate_finds_a_match_exactly_where_the_plain_gate_does() -> None:
    plain = re.compile(r"[A-Za-z][ \t]+:|[A-Za-z] [a-z]{1,4} ?:")
    cases = ["Pat ient:", "Name :", "date:", "x date:", " :", "a\t\t:", "Study Date:", "a b:"]
    for text in TEXTS + cases:
        assert (generic._OCR_GATE.search(text) is None) == (plain.search(text) is None), text


def _plain_clinical_terms(low: str) -> list[tuple[int, int, str]]:
    lex = lexicon()
    out = []
    m = lex.clinical_ascii_re.search(low)
    while m is not None:
        s = m.start()
        if s and low[s - 1].isascii() and low[s - 1].isalnum():
            m = lex.clinical_ascii_re.search(low, s + 1)
            continue
        out.append((s, m.end(), lex.clinical_lower.get(m.group(), "clinical")))
        m = lex.clinical_ascii_re.search(low, m.end())
    if not low.isascii():
        out += (
            (m.start(), m.end(), lex.clinical_lower.get(m.group(), "clinical"))
            for m in lex.clinical_cjk_re.finditer(low)
        )
    return out


def test_clinical_terms_from_the_character_before_equal_the_plain_scan() -> None:
    extra = ["ca125ca19-9 cea", "xcea cea", "her2+cea", "cea", "5-fu,5-fu", "Cea CEA cea"]
    for text in TEXTS + extra:
        for low in (ascii_lower(text), text):
            assert clinical_terms(low) == _plain_clinical_terms(low), text


def _plain_head_positions(low: str) -> dict[int, list[int]]:
    heads = {h for r in rules.ALL_LABEL_RULES for h in r.heads}
    english = re.compile(rules.trie_pattern(h for h in heads if h.isascii()))
    chinese = re.compile(rules.trie_pattern(h for h in heads if not h.isascii()))
    rules_of = rules._finders()[-1]
    found: dict[int, frozenset[int]] = {}
    for finder, ascii_heads in ((english, True), (chinese, False)):
        if not ascii_heads and low.isascii():
            continue
        m = finder.search(low)
        while m is not None:
            pos, head = m.start(), m.group()
            m = finder.search(low, pos + 1)
            if not (ascii_heads and pos and low[pos - 1].isalpha()):
                found[pos] = rules_of[head]
    out: dict[int, list[int]] = {}
    for pos in sorted(found):
        for i in found[pos]:
            out.setdefault(i, []).append(pos)
    return out


def test_label_heads_from_the_character_before_equal_the_plain_scan() -> None:
    extra = ["patient id: 1", "xpatient name", "épatient", "mrn: 1 id号 2", "name"]
    for text in TEXTS + extra:
        low = ascii_lower(text)
        rules._LAST_HEADS = ("", {})  # no answer kept from another text
        assert rules._all_head_positions(low) == _plain_head_positions(low), text
