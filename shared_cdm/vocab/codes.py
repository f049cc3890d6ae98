"""Vocabulary value types and the pure functions that normalise codes.

Hospital systems spell the same code many ways (`C34.100x001`, `c34.1`,
`Ｃ３４．１`); everything here turns a spelling into the one canonical form.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from shared_cdm.errors import InvalidInput


@dataclass(frozen=True)
class Icd10Code:
    code: str  # canonical: "C34" or "C34.1"
    name_en: str
    name_zh: str | None
    chapter_block: str | None  # e.g. "C30-C39"


@dataclass(frozen=True)
class Morphology:
    code: str  # "8140/3"
    name_en: str
    name_zh: str | None
    behaviour: int  # 0 benign, 1 uncertain, 2 in situ, 3 malignant, 6 metastatic


@dataclass(frozen=True)
class Analyte:
    code: str
    name_en: str
    name_zh: str
    aliases: tuple[str, ...]
    loinc: str | None
    standard_unit: str  # UCUM
    molar_mass_g_per_mol: float | None
    # physiologically possible values in the standard unit (not a reference range)
    plausible_low: float | None = None
    plausible_high: float | None = None

    def plausible(self, value: float) -> bool:
        """Whether `value` (in the standard unit) can be a real result; an
        analyte without bounds accepts any finite value."""
        if not math.isfinite(value):
            return False
        if self.plausible_low is not None and value < self.plausible_low:
            return False
        return self.plausible_high is None or value <= self.plausible_high


@dataclass(frozen=True)
class Drug:
    atc: str  # WHO ATC code, e.g. "L01XA01"
    name_en: str
    name_zh: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Procedure:
    code: str  # ICD-9-CM-3, canonical "32.41"
    name_en: str
    name_zh: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Icd10TextRule:
    """A diagnosis-text pattern; the highest-priority match decides. An empty
    `icd10` means "no code" (uncertain, negated or benign wording)."""

    pattern: re.Pattern[str]
    language: str  # "zh", "en" or "any"
    icd10: str | None
    priority: int


@dataclass(frozen=True)
class TnmValue:
    axis: str  # "T", "N" or "M"
    value: str  # canonical spelling: "T1a", "Tis", "M1c"
    description: str


@dataclass(frozen=True)
class Concept:
    """A row for the OMOP `concept` table."""

    concept_id: int
    concept_name: str
    domain_id: str
    vocabulary_id: str
    concept_class_id: str
    standard_concept: str | None
    concept_code: str
    valid_start_date: date
    valid_end_date: date
    invalid_reason: str | None


ICD10_PATTERN = re.compile(r"([A-Z])\s*(\d{2})(?:\s*\.?\s*(\d))?")
# Local concepts for what the text structurer measures (`measurement_source_value`
# of NLP measurements; OMOP has no standard code for most of them).
NLP_MEASURES: dict[str, str] = {
    "pT": "Pathological primary tumour category (AJCC 8), from a report",
    "pN": "Pathological regional lymph node category (AJCC 8), from a report",
    "pM": "Pathological distant metastasis category (AJCC 8), from a report",
    "tumor_size": "Greatest tumour dimension in the resection specimen",
    "differentiation": "Histological grade of differentiation",
    "EGFR": "EGFR mutation status in tumour tissue",
    "ALK": "ALK rearrangement status in tumour tissue",
    "PD-L1_TPS": "PD-L1 tumour proportion score",
    "SUVmax": "Maximum standardised uptake value of a PET-CT lesion",
    "lesion_size": "Size of a PET-CT lesion",
}

_MORPHOLOGY = re.compile(r"M?-?(\d{4})\s*/?\s*(\d)")
_LOINC = re.compile(r"(\d{1,7})-(\d)")
_TNM_PREFIX = re.compile(r"^(?:YP|YC|RP|RC|C|P|Y|R|A)(?=[TNM])")
_ALIAS_NOISE = re.compile(r"[\s\-_.·,:：]+")


def fold(text: str) -> str:
    """Upper-case ASCII where possible: NFKC maps full-width `Ｃ３４．１` to
    `C34.1`; the ideographic full stop is not covered by NFKC."""
    return unicodedata.normalize("NFKC", text).replace("。", ".").strip().upper()


def normalize_icd10(code: str) -> str:
    """Canonical ICD-10 code from a hospital spelling: `C34.100x001`, `c34.1`,
    `C341` and `Ｃ３４．１` all give `C34.1`. Extensions beyond 4 characters drop."""
    match = ICD10_PATTERN.match(fold(code))
    if match is None:
        raise InvalidInput(f"not an ICD-10 code: {code!r}", code="invalid_icd10")
    letter, category, sub = match.groups()
    return f"{letter}{category}.{sub}" if sub else f"{letter}{category}"


def icd10_key(code: str, *, upper: bool = False) -> tuple[str, int, int]:
    """A sortable key; a bare category sorts before (or, as an upper bound,
    after) all its subcategories, so "C34" as a range covers C34.0-C34.9."""
    canonical = normalize_icd10(code)
    sub = int(canonical[4]) if len(canonical) > 3 else (10 if upper else -1)
    return canonical[0], int(canonical[1:3]), sub


_ATC = re.compile(r"[A-Z]\d{2}(?:[A-Z](?:[A-Z](?:\d{2})?)?)?")
_ICD9CM3 = re.compile(r"(\d{2})(?:\s*\.?\s*(\d{1,2}))?")


def normalize_atc(code: str) -> str:
    """`l01xa01`, `Ｌ０１ＸＡ０１` give `L01XA01`; any ATC level is accepted."""
    folded = fold(code).replace(" ", "")
    if _ATC.fullmatch(folded) is None:
        raise InvalidInput(f"not an ATC code: {code!r}", code="invalid_atc")
    return folded


def normalize_icd9cm3(code: str) -> str:
    """ICD-9-CM volume 3 procedure code: `32.4100x001`, `3241`, `32.41` give
    `32.41`; the Chinese clinical extensions beyond 4 digits drop."""
    match = _ICD9CM3.match(fold(code))
    if match is None:
        raise InvalidInput(f"not an ICD-9-CM-3 code: {code!r}", code="invalid_icd9cm3")
    category, sub = match.groups()
    return f"{category}.{sub}" if sub else category


def normalize_morphology(code: str) -> str:
    """`M8140/3`, `81403`, `８１４０／３` all give `8140/3`."""
    match = _MORPHOLOGY.fullmatch(fold(code))
    if match is None:
        raise InvalidInput(f"not an ICD-O-3 morphology code: {code!r}", code="invalid_morphology")
    return f"{match.group(1)}/{match.group(2)}"


def normalize_tnm(axis: str, value: str) -> tuple[str, str]:
    """(axis, upper-cased value) with c/p/yp/r prefixes and "(AIS)"-style
    qualifiers removed; a bare `1a` on axis T becomes `T1A`."""
    axis = fold(axis)
    if axis not in ("T", "N", "M"):
        raise InvalidInput(f"TNM axis must be T, N or M, not {axis!r}", code="invalid_tnm")
    folded = _TNM_PREFIX.sub("", re.sub(r"\(.*?\)", "", fold(value)).strip())
    return axis, folded if folded.startswith(axis) else axis + folded


def loinc_check_digit_ok(code: str) -> bool:
    """LOINC's mod-10 check digit, so a mistyped code is caught on load."""
    match = _LOINC.fullmatch(code)
    if match is None:
        return False
    total = 0
    for position, char in enumerate(reversed(match.group(1))):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10 == int(match.group(2))


def alias_key(name: str) -> str:
    """How analyte names are compared: width- and case-folded, without spaces,
    dashes, dots or colons (`CA 19-9`, `ca199` and `ＣＡ１９－９` are equal)."""
    return _ALIAS_NOISE.sub("", unicodedata.normalize("NFKC", name).casefold())
