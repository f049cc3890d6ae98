"""The word lists the detectors use, read once from the CSV files in `data/`.

Every list is a plain one-column (or term,kind) CSV so a site can read and review
it; nothing here is downloaded or learned.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")


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
    english_common: frozenset[str]
    places_zh: frozenset[str]
    places_en: frozenset[str]
    address_words: dict[str, str]
    clinical: dict[str, str]  # term -> kind (eponym, drug, marker, staging, anatomy, clinical)
    clinical_re: re.Pattern[str]
    eponyms_lower: frozenset[str]


def _alternation(terms: list[str]) -> str:
    return "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    zh = [r["surname"] for r in _rows("surnames_zh.csv")]
    names = _rows("names_en.csv")
    clinical = {r["term"]: r["kind"] for r in _rows("clinical_allow.csv")}
    ascii_terms = [t for t in clinical if t.isascii()]
    cjk_terms = [t for t in clinical if not t.isascii()]
    # ASCII terms match as whole words, case-insensitively; Chinese terms anywhere.
    pattern = (
        rf"(?<![A-Za-z0-9])(?i:{_alternation(ascii_terms)})(?![A-Za-z0-9])"
        rf"|{_alternation(cjk_terms)}"
    )
    return Lexicon(
        surnames_zh=frozenset(s for s in zh if len(s) == 1),
        compound_surnames_zh=frozenset(s for s in zh if len(s) > 1),
        titles_zh={r["title"]: r["kind"] for r in _rows("titles_zh.csv")},
        surnames_en=frozenset(r["name"] for r in names if r["kind"] == "surname"),
        pinyin_surnames=frozenset(r["name"] for r in names if r["kind"] == "pinyin_surname"),
        given_en=frozenset(r["name"] for r in names if r["kind"] == "given"),
        english_common=frozenset(r["word"] for r in _rows("english_common.csv")),
        places_zh=frozenset(r["place"] for r in _rows("places_zh.csv")),
        places_en=frozenset(r["place"] for r in _rows("places_en.csv")),
        address_words={r["word"]: r["level"] for r in _rows("address_words.csv")},
        clinical=clinical,
        clinical_re=re.compile(pattern),
        eponyms_lower=frozenset(t.lower() for t, k in clinical.items() if k == "eponym"),
    )
