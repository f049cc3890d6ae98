"""The speed-ups of the structuring rules give exactly what the plain forms give."""

from __future__ import annotations

import random
import re
import unicodedata

from edge_node.structure import discharge, lesions
from edge_node.structure.text import literal_first, word_alternation

WORDS = ["ca", "cancer", "lung cancer", "no", "none", "not seen", "2a", "x", "肺癌", "肺", "未见"]
TEXTS = [
    "no cancer; none. ca, lung cancer 2a x2 xa 肺癌未见 noca nocancer acancer",
    "Ca cancer_ NO no_no 1no 2a2 a2a x 肺no 未见ca 肺癌ca",
    "",
    "no",
    "lung  cancer\nlung cancer",
]


def _random_texts(n: int) -> list[str]:
    alphabet = "acnoelgrstu x2_1.肺癌未见\n"
    rng = random.Random(7)
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(n)
    ] + TEXTS


def _spans(rx: re.Pattern[str], text: str, a: int, b: int) -> list[tuple[int, int]]:
    return [m.span() for m in rx.finditer(text, a, b)]


def test_word_alternation_matches_the_plain_bounded_alternation() -> None:
    # the plain form: longest word first, start and end boundaries around each word
    plain = re.compile(
        "|".join(
            ("(?<![a-z0-9])" if w[0].isascii() and w[0].isalnum() else "")
            + re.escape(w)
            + ("(?![a-z0-9])" if w[-1].isascii() and w[-1].isalnum() else "")
            for w in sorted(WORDS, key=len, reverse=True)
        )
    )
    tree = re.compile(word_alternation(WORDS))
    for text in _random_texts(400):
        for a, b in ((0, len(text)), (len(text) // 3, len(text)), (1, max(1, len(text) - 2))):
            assert _spans(tree, text, a, b) == _spans(plain, text, a, b), (text, a, b)


def test_vocabulary_tree_matches_the_word_bounded_alternation() -> None:
    # English words bounded by \b (ASCII word characters), Chinese ones not
    plain = re.compile(
        "|".join(
            (r"\b" if w[0].isascii() and w[0].isalnum() else "")
            + re.escape(w)
            + (r"\b" if w[0].isascii() and w[-1].isalnum() else "")
            for w in sorted(WORDS, key=len, reverse=True)
        ),
        re.ASCII,
    )
    tree = re.compile(lesions._mixed(WORDS), re.ASCII)
    for text in _random_texts(400):
        for a, b in ((0, len(text)), (2, len(text)), (0, len(text) // 2)):
            assert _spans(tree, text, a, b) == _spans(plain, text, a, b), (text, a, b)


def test_discharge_fold_is_nfkc_per_character_where_one_for_one() -> None:
    text = "".join(chr(c) for c in range(0x20, 0x3400)) + "ＡＢＣ１２３（）ｆｉ㎝①"
    expected = "".join(
        (u if len(u := unicodedata.normalize("NFKC", ch)) == 1 else ch) if ord(ch) > 127 else ch
        for ch in text
    )
    assert discharge._fold(text) == expected
    assert len(discharge._fold(text)) == len(text)


def test_site_candidates_are_the_patterns_whose_literal_is_present() -> None:
    v = lesions.vocab()
    reports = ["右肺上叶见结节,纵隔淋巴结肿大,肝s7低密度灶", "right upper lobe nodule, liver"]
    for norm in [*TEXTS, *reports]:
        expected = [i for i, lit in enumerate(v.site_literals) if lit in norm]
        assert lesions._site_candidates(norm) == expected


def test_literal_first_moves_only_tests_it_can_move() -> None:
    assert literal_first(r"\bmet\b|(?<!腺)淋巴瘤") == r"m(?<!\wm)et\b|淋(?<!(?:腺)淋)巴瘤"
    # an optional first character, a class, or a non-word character after "\b": unchanged
    for kept in (r"(?<![a-z])c?n[1-3]", r"\b[a-z]+itis", r"\b-x", r"a|(?:\bb|c)"):
        assert literal_first(kept) == kept


def test_literal_first_finds_what_the_written_pattern_finds() -> None:
    written = [
        r"\bno\b|\bnone|(?<![a-z])ca(?![a-z])|(?<!未)见|\bx\d|(?<!a|b)2a|[|(]\bn",
        r"(?<!原发灶)(?<!原发)待定|\b(?<!not )seen\b|未见",
    ]
    texts = [*_random_texts(400), "原发灶待定 原发待定 待定 not seen seen, noseen bc2a a2a 2a"]
    for pattern in written:
        plain, moved = re.compile(pattern, re.ASCII), re.compile(literal_first(pattern), re.ASCII)
        assert moved.pattern != plain.pattern
        for text in texts:
            for a, b in ((0, len(text)), (3, len(text)), (0, len(text) // 2)):
                got = [(m.span(), m.groups()) for m in moved.finditer(text, a, b)]
                assert got == [(m.span(), m.groups()) for m in plain.finditer(text, a, b)]


def test_size_pattern_matches_its_look_behind_first_form() -> None:
    num, unit = r"(\d+(?:\.\d+)?)", r"(cm|mm|厘米|毫米|公分|公厘|㎝|㎜)"
    written = re.compile(
        rf"(?<![\d.a-z]){num}\s*{unit}?(?:\s*[x*]\s*{num}\s*{unit}?)?"
        rf"(?:\s*[x*]\s*{num}\s*{unit}?)?(?:(?<=cm)s)?(?![a-z0-9])"
    )
    rng = random.Random(11)
    texts = ["".join(rng.choice("0123456789.x* cmsa\n厘米") for _ in range(60)) for _ in range(600)]
    for text in [*texts, "1.2x3cm a2cm 3.4.5mm 12 mm, 2.5 cms 18毫米"]:
        for a, b in ((0, len(text)), (5, len(text)), (0, len(text) - 7)):
            got = [(m.span(), m.groups()) for m in lesions._SIZE.finditer(text, a, b)]
            assert got == [(m.span(), m.groups()) for m in written.finditer(text, a, b)]


def test_clause_matches_the_windowed_scan() -> None:
    def windowed(norm: str, start: int, end: int) -> tuple[int, int]:
        a = max(0, start - 400)
        for m in discharge._CLAUSE_END.finditer(norm, a, start):
            a = m.end()
        m2 = discharge._CLAUSE_END.search(norm, end)
        return a, (m2.start() if m2 else len(norm))

    rng = random.Random(5)
    texts = [
        "".join(rng.choice("ab .。;\n!?1") for _ in range(rng.randint(0, 900))) for _ in range(80)
    ]
    for norm in [*texts, "pt2.n0. 见肿物;考虑癌.\nno smoking. x"]:
        for start in range(len(norm) + 2):
            end = min(len(norm) + 1, start + rng.randint(0, 30))
            assert discharge._clause(norm, start, end) == windowed(norm, start, end)


def test_numeric_date_patterns_match_their_look_behind_first_forms() -> None:
    written = {
        "num": r"(?<![\d.])(\d{1,2})/(\d{1,2})/(\d{4})",
        "numdot": r"(?<![\d./-])(\d{1,2})([.-])(\d{1,2})\2(\d{4})(?![\d.]\d)",
        "num2": r"(?<![\d./])(\d{1,2})/(\d{1,2})/(\d{2})(?![\d/])",
    }
    fast = {form: pat for pat, form in discharge._date_res() if form in written}
    rng = random.Random(9)
    texts = ["".join(rng.choice("0123456789./-a ") for _ in range(50)) for _ in range(1000)]

    def date_like() -> str:
        seps = rng.choice(["//", "..", "--", ".-", "/."])
        year = rng.choice([rng.randint(0, 99), rng.randint(1990, 2030), rng.randint(100, 999)])
        before, after = (
            rng.choice(["", ".", "1", "/", "-", "a", " "]),
            rng.choice(["", ".", "5", "/"]),
        )
        return f"{before}{rng.randint(0, 40)}{seps[0]}{rng.randint(0, 40)}{seps[1]}{year}{after}"

    texts += [" ".join(date_like() for _ in range(4)) for _ in range(1000)]
    texts += ["05/03/2026 1.2/3/2026 14.10.2026 3-4-2026 12/5/26 1/2/267"]
    seen = 0
    for form, pattern in written.items():
        plain = re.compile(pattern)
        for text in texts:
            got = [(m.span(), m.groups()) for m in fast[form].finditer(text)]
            assert got == [(m.span(), m.groups()) for m in plain.finditer(text)]
            seen += len(got)
    assert seen > 100  # the texts do hold dates


def test_cased_terms_pattern_matches_the_bounded_alternation() -> None:
    cased, fast = discharge._cased_terms()
    words = [w for w in cased if w != "comment"]
    plain = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(words) + r")(?![A-Za-z0-9])")
    rng = random.Random(2)
    pieces = [*words, "a", "1", " ", ",", "x", "D", "H"]
    texts = ["".join(rng.choice(pieces) for _ in range(30)) for _ in range(1500)]
    seen = 0
    for text in texts:
        got = [m.span() for m in fast.finditer(text)]
        assert got == [m.span() for m in plain.finditer(text)]
        seen += len(got)
    assert seen > 100
