"""The word lists the detectors use, read once from the CSV files in `data/`.

Every list is a plain one-column (or term,kind) CSV so a site can read and review
it; nothing here is downloaded or learned.
"""

from __future__ import annotations

import csv
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")
# ASCII-only lower-casing keeps every offset (str.lower() can change the length).
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(text: str) -> str:
    return text.translate(ASCII_LOWER)


_Trie = dict[str, "_Trie"]


def trie_pattern(terms: Iterable[str]) -> str:
    """One regex alternation shaped as a prefix tree.

    Python's `re` tries the branches of a flat alternation one by one at every
    position; a tree tries only the branch of the character in front of it, which
    makes a list of hundreds of terms about fifty times faster to scan for.
    """
    root: _Trie = {}
    for term in terms:
        if not term:
            continue
        node = root
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: _Trie) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        ends = "" in node
        body = alts[0] if len(alts) == 1 and not ends else "(?:" + "|".join(alts) + ")"
        if ends:
            body = (body if body.startswith("(?:") else "(?:" + body + ")") + "?"
        return body

    return emit(root)


@lru_cache(maxsize=1)
def quiet_jieba() -> None:
    """jieba logs "Building prefix dict..." at DEBUG to stderr on every first use;
    keep its warnings and errors only (ours go through our own messages)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]


@dataclass(frozen=True)
class Lexicon:
    surnames_zh: frozenset[str]
    compound_surnames_zh: frozenset[str]
    titles_zh: dict[str, str]
    surnames_en: frozenset[str]
    pinyin_surnames: frozenset[str]
    given_en: frozenset[str]
    surnames_all_en: frozenset[str]  # surnames_en | pinyin_surnames
    names_en: frozenset[str]  # every English-script name: surnames, pinyin, given
    names_en_upper: frozenset[str]  # the same in capitals ("SMITH")
    english_common: frozenset[str]
    places_zh: frozenset[str]
    places_en: frozenset[str]
    places_zh_re: re.Pattern[str]
    places_en_re: re.Pattern[str]
    address_words: dict[str, str]
    clinical: dict[str, str]  # term -> kind (eponym, drug, marker, staging, anatomy, clinical)
    clinical_re: re.Pattern[str]
    # The same terms for a scan of `ascii_lower(text)` (see `clinical_terms`).
    clinical_ascii_re: re.Pattern[str]
    # The same after the character before a term, which is no letter or digit (see
    # `clinical_terms`).
    clinical_word_re: re.Pattern[str]
    clinical_cjk_re: re.Pattern[str]
    clinical_lower: dict[str, str]
    eponyms_lower: frozenset[str]


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    zh = [r["surname"] for r in _rows("surnames_zh.csv")]
    names = _rows("names_en.csv")
    clinical = {r["term"]: r["kind"] for r in _rows("clinical_allow.csv")}
    ascii_terms = [t for t in clinical if t.isascii()]
    cjk_terms = [t for t in clinical if not t.isascii()]
    # ASCII terms match as whole words, case-insensitively; Chinese terms anywhere.
    pattern = (
        rf"(?<![A-Za-z0-9])(?i:{trie_pattern(ascii_terms)})(?![A-Za-z0-9])"
        rf"|{trie_pattern(cjk_terms)}"
    )
    lower = {t.lower(): k for t, k in clinical.items() if t.isascii()} | {
        t: k for t, k in clinical.items() if not t.isascii()
    }
    surnames_en = frozenset(r["name"] for r in names if r["kind"] == "surname")
    pinyin = frozenset(r["name"] for r in names if r["kind"] == "pinyin_surname")
    given_en = frozenset(r["name"] for r in names if r["kind"] == "given")
    places_zh = [r["place"] for r in _rows("places_zh.csv")]
    places_en = [r["place"] for r in _rows("places_en.csv")]
    return Lexicon(
        surnames_zh=frozenset(s for s in zh if len(s) == 1),
        compound_surnames_zh=frozenset(s for s in zh if len(s) > 1),
        titles_zh={r["title"]: r["kind"] for r in _rows("titles_zh.csv")},
        surnames_en=surnames_en,
        pinyin_surnames=pinyin,
        given_en=given_en,
        surnames_all_en=surnames_en | pinyin,
        names_en=surnames_en | pinyin | given_en,
        names_en_upper=frozenset(n.upper() for n in surnames_en | pinyin | given_en),
        english_common=frozenset(r["word"] for r in _rows("english_common.csv")),
        places_zh=frozenset(places_zh),
        places_en=frozenset(places_en),
        places_zh_re=re.compile(trie_pattern(places_zh)),
        places_en_re=re.compile(rf"(?<![A-Za-z]){trie_pattern(places_en)}(?![A-Za-z])"),
        address_words={r["word"]: r["level"] for r in _rows("address_words.csv")},
        clinical=clinical,
        clinical_re=re.compile(pattern),
        clinical_ascii_re=re.compile(
            rf"(?:{trie_pattern(t.lower() for t in ascii_terms)})(?![a-z0-9])"
        ),
        clinical_word_re=re.compile(
            rf"[^A-Za-z0-9]({trie_pattern(t.lower() for t in ascii_terms)})(?![a-z0-9])"
        ),
        clinical_cjk_re=re.compile(trie_pattern(cjk_terms)),
        clinical_lower=lower,
        eponyms_lower=frozenset(t.lower() for t, k in clinical.items() if k == "eponym"),
    )


def clinical_terms(low: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every clinical term in `low` (an `ascii_lower`ed text).

    ASCII terms match as whole words, Chinese terms anywhere. Two plain scans: a
    case-insensitive one, a leading look-behind or a mixed tree is several times slower.
    """
    lex = lexicon()
    kinds = lex.clinical_lower
    out: list[tuple[int, int, str]] = []
    # A term starts the text or follows a character that is no (ASCII) letter or digit.
    # Scanning from that character lets the engine skip the letters of every word
    # (a scan for the terms themselves tries each letter); the search after a term
    # starts one back, on its last character, which may be the next one's "before".
    end = 0
    first = lex.clinical_ascii_re.match(low)
    if first is not None:
        end = first.end()
        out.append((0, end, kinds.get(first.group(), "clinical")))
    search = lex.clinical_word_re.search
    m = search(low, end - 1 if end else 0)
    while m is not None:
        s, end = m.span(1)
        out.append((s, end, kinds.get(m.group(1), "clinical")))
        m = search(low, end - 1)
    if not low.isascii():
        out += (
            (m.start(), m.end(), lex.clinical_lower.get(m.group(), "clinical"))
            for m in lex.clinical_cjk_re.finditer(low)
        )
    return out
