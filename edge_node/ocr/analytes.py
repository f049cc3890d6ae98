"""Item names as printed -> the contract's analyte code -> LOINC, from the
project's analyte table (`shared_cdm/vocab/data/analytes.csv`)."""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from shared_cdm.vocab import Analyte, Vocabulary
from shared_cdm.vocab.codes import alias_key

# the vocabulary's code -> the contract's spelling, where they differ
_CONTRACT_CODES = {"FPSA": "fPSA"}
_NAME_SLIPS = str.maketrans({"O": "0", "o": "0"})  # `CA1O-9`, `HE4` stays


@dataclass(frozen=True)
class Match:
    analyte: Analyte
    code: str  # the contract's code

    @property
    def loinc(self) -> str | None:
        return self.analyte.loinc


class AnalyteNames:
    """Looks up printed item names; exact aliases first, then the name with
    its row number or a trailing method note stripped, then OCR digit slips,
    then a close alias (one or two characters off on a long name)."""

    def __init__(self, vocab: Vocabulary) -> None:
        self._vocab = vocab
        self._cache: dict[str, Match | None] = {}

    @cached_property
    def _keys(self) -> dict[str, Analyte]:
        return {alias_key(a): an for an in self._vocab.analytes for a in an.aliases}

    def match(self, name: str) -> Match | None:
        if name not in self._cache:
            self._cache[name] = self._match(name)
        return self._cache[name]

    def _match(self, name: str) -> Match | None:
        text = unicodedata.normalize("NFKC", name).strip()
        text = re.sub(r"^\d{1,2}[.、\s]+", "", text)  # a row number glued to the name
        for candidate in (text, re.sub(r"[（(].*$", "", text), _slips(text)):
            if candidate and (analyte := self._vocab.analyte_by_alias(candidate)) is not None:
                return Match(analyte, _contract_code(analyte, candidate))
        key = alias_key(text)
        if len(key) >= 5:
            close = difflib.get_close_matches(key, list(self._keys), n=1, cutoff=0.88)
            if close:
                analyte = self._keys[close[0]]
                return Match(analyte, _contract_code(analyte, close[0]))
        return None


def _slips(text: str) -> str:
    # only the letters-then-digits codes (CA19-9, HE4): O read for 0 after `CA`
    return re.sub(r"(?i)(?<=CA)[0-9Oo\-]+", lambda m: m.group().translate(_NAME_SLIPS), text)


def _contract_code(analyte: Analyte, printed: str) -> str:
    if analyte.code == "TPSA" and alias_key(printed) in {"psa", "前列腺特异性抗原"}:
        return "PSA"
    return _CONTRACT_CODES.get(analyte.code, analyte.code)
