"""Read the shipped vocabularies (CSV files in `data/`) and answer lookups on them.

Nothing is read at import time: `load_default()` reads the package data once per
process. A site holding the full OMOP vocabulary adds it with
`Vocabulary.extend_from_omop_concept`, which returns a new Vocabulary (the
default one is shared, so it is never changed in place).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shared_cdm.errors import InvalidInput
from shared_cdm.models import Concept as ConceptRow
from shared_cdm.vocab.codes import (
    ICD10_PATTERN,
    NLP_MEASURES,
    Analyte,
    Concept,
    Drug,
    Icd10Code,
    Icd10TextRule,
    Morphology,
    Procedure,
    TnmValue,
    alias_key,
    icd10_key,
    loinc_check_digit_ok,
    normalize_atc,
    normalize_icd9cm3,
    normalize_icd10,
    normalize_morphology,
    normalize_tnm,
)
from shared_cdm.vocab.omop import LocalConcept, merge_concepts, read_omop_concepts

__all__ = [
    "Analyte",
    "Concept",
    "Drug",
    "Icd10Code",
    "Icd10TextRule",
    "Morphology",
    "Procedure",
    "TnmValue",
    "Vocabulary",
    "load_concepts_into_db",
    "load_default",
    "load_vocabulary",
]

STAGE_GROUPS = (
    *("occult", "0", "IA1", "IA2", "IA3", "IB", "IIA", "IIB", "IIIA", "IIIB", "IIIC"),
    *("IVA", "IVB"),
)
StageRule = tuple[str, str, str, str]  # t, n, m ("*" = any), stage group
T = TypeVar("T")
_Named = TypeVar("_Named", Drug, Procedure)
TEXT_RULE_CONFIDENCE = 0.9  # a code read from diagnosis text, against 1.0 for a coded one
# form words dropped before a drug name is looked up: `注射用紫杉醇`, `顺铂注射液`
_DRUG_FORMS = re.compile(
    r"^注射用|注射液$|注射剂$|片$|胶囊$|肠溶片$|分散片$|缓释片$|口服液$|粉针$"
    r"|\b(?:injection|tablets?|capsules?|for infusion|infusion|oral solution)\b",
    re.IGNORECASE,
)
_PROCEDURE_PARTS = re.compile(r"\+|＋|及|并|联合|伴|\bwith\b|\band\b|;|；|,|，", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


class Vocabulary:
    """Lookups over ICD-10 neoplasms, ICD-O-3 morphologies, analytes and AJCC 8 lung TNM."""

    def __init__(
        self,
        *,
        icd10_codes: Iterable[Icd10Code],
        morphologies: Iterable[Morphology],
        analytes: Iterable[Analyte],
        tnm_values: Iterable[TnmValue],
        stage_rules: Iterable[StageRule],
        omop_concepts: Iterable[Concept] = (),
        drugs: Iterable[Drug] = (),
        procedures: Iterable[Procedure] = (),
        icd10_text_rules: Iterable[Icd10TextRule] = (),
    ) -> None:
        self._icd10 = {entry.code: entry for entry in icd10_codes}
        self._morphology = {entry.code: entry for entry in morphologies}
        self._analytes = {entry.code: entry for entry in analytes}
        self._alias = {
            alias_key(a): entry for entry in self._analytes.values() for a in entry.aliases
        }
        self._tnm = {(v.axis, v.value.upper()): v for v in tnm_values}
        self._stage_rules = tuple(stage_rules)
        self._omop = tuple(omop_concepts)
        self._drugs = tuple(drugs)
        self._drug_alias = _alias_index(self._drugs, "drug")
        self._procedures = tuple(procedures)
        self._procedure_alias = _alias_index(self._procedures, "procedure")
        # highest priority first; ties keep file order
        self._text_rules = tuple(sorted(icd10_text_rules, key=lambda r: -r.priority))
        self._text_cache: dict[str, tuple[str, float] | None] = {}

    def icd10(self, code: str) -> Icd10Code | None:
        """The entry for `code`, or for its 3-character category when the
        subcategory is not listed; None if the text is not an ICD-10 code."""
        try:
            canonical = normalize_icd10(code)
        except InvalidInput:
            return None
        return self._icd10.get(canonical) or self._icd10.get(canonical[:3])

    def icd10_in_ranges(self, code: str, ranges: Sequence[str] = ("C00-D48",)) -> bool:
        """Whether `code` lies in any of `ranges` ("C00-D48", "C34", "C34.1-C34.3").
        Text that is not an ICD-10 code is in no range; a bad range raises."""
        try:
            key = icd10_key(code)
        except InvalidInput:
            return False
        for spec in ranges:
            low, _, high = spec.partition("-")
            if icd10_key(low) <= key <= icd10_key(high or low, upper=True):
                return True
        return False

    def is_neoplasm(self, code: str) -> bool:
        """ICD-10 chapter II, C00-D48 (ICD-10-CM's D49 lies outside it)."""
        return self.icd10_in_ranges(code, ("C00-D48",))

    def morphology(self, code: str) -> Morphology | None:
        try:
            return self._morphology.get(normalize_morphology(code))
        except InvalidInput:
            return None

    @property
    def analytes(self) -> tuple[Analyte, ...]:
        return tuple(self._analytes.values())

    def analyte(self, code: str) -> Analyte | None:
        return self._analytes.get(code)

    def analyte_by_alias(self, name: str) -> Analyte | None:
        """By any alias, ignoring case, width, spaces and dashes. `癌胚抗原(CEA)`
        resolves only because both halves name the same analyte; a half that
        names nothing (a method, a second test) leaves it unresolved."""
        key = alias_key(name)
        if key in self._alias:
            return self._alias[key]
        parts = [part for part in re.split(r"[()\[\]]", key) if part]
        found = {self._alias.get(part) for part in parts}
        return found.pop() if len(parts) > 1 and len(found) == 1 else None

    @property
    def drugs(self) -> tuple[Drug, ...]:
        return self._drugs

    def drug_by_name(self, name: str) -> Drug | None:
        """By any alias (generic, brand, Chinese or English name), ignoring case,
        width and punctuation; form words (`注射液`, `tablets`) and a bracketed
        strength are dropped; failing that, the longest alias inside the name."""
        return _by_name(self._drug_alias, name, _DRUG_FORMS)

    @property
    def procedures(self) -> tuple[Procedure, ...]:
        return self._procedures

    def procedure_by_name(self, name: str) -> Procedure | None:
        """The procedure a free-text operation name describes. A combined name
        (`胸腔镜下肺叶切除术+淋巴结清扫术`, `... with lymph node dissection`) is
        coded by its first part, the principal procedure; within a part the
        longest (most specific) alias found wins."""
        parts = [p for p in _PROCEDURE_PARTS.split(name) if p and p.strip()]
        for part in (*parts[:1], name):
            found = _by_name(self._procedure_alias, part, None)
            if found is not None:
                return found
        return None

    def icd10_from_text(self, text: str) -> tuple[str, float] | None:
        """(ICD-10 code, confidence) from a written diagnosis, by the text rules:
        `右肺上叶腺癌` gives ("C34.1", 0.9), `Malignant neoplasm of stomach` gives
        ("C16", 0.9); uncertain, negated, benign and non-cancer texts give None."""
        if text in self._text_cache:
            return self._text_cache[text]
        result = self._match_text(text)
        if len(self._text_cache) > 100_000:  # bounded: texts are few but unbounded in theory
            self._text_cache.clear()
        self._text_cache[text] = result
        return result

    def _match_text(self, text: str) -> tuple[str, float] | None:
        folded = unicodedata.normalize("NFKC", text)
        has_zh, has_en = bool(_CJK.search(folded)), bool(_LATIN.search(folded))
        best: tuple[int, int, str | None] | None = None  # priority, -start, code
        for rule in self._text_rules:
            if best is not None and rule.priority < best[0]:
                break
            if (rule.language == "zh" and not has_zh) or (rule.language == "en" and not has_en):
                continue
            match = rule.pattern.search(folded)
            if match is None:
                continue
            # among equal priorities the site named first is the primary one
            candidate = (rule.priority, -match.start(), rule.icd10)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
        if best is None or best[2] is None:
            return None
        return best[2], TEXT_RULE_CONFIDENCE

    def tnm_value(self, axis: str, value: str) -> TnmValue | None:
        """`cT1a`, `pT1A`, `1a` (on axis T) all find T1a; None if not AJCC 8 lung."""
        return self._tnm.get(normalize_tnm(axis, value))

    def tnm_valid(self, axis: str, value: str) -> bool:
        return self.tnm_value(axis, value) is not None

    def lung_stage_group(self, t: str, n: str, m: str) -> str | None:
        """AJCC 8th lung stage group, or None when the TNM does not decide one
        (T2 N0 M0 without a/b, NX, M1 without a/b/c). Values that are not
        AJCC 8 lung values raise InvalidInput."""
        canonical = []
        for axis, value in (("T", t), ("N", n), ("M", m)):
            entry = self.tnm_value(axis, value)
            if entry is None:
                raise InvalidInput(f"not an AJCC 8 lung {axis}: {value!r}", code="invalid_tnm")
            canonical.append(entry.value)
        for *pattern, stage in self._stage_rules:
            if all(want in ("*", got) for want, got in zip(pattern, canonical, strict=True)):
                return stage
        return None

    def concepts(self) -> list[Concept]:
        """Rows for the `concept` table: OMOP's ids where an OMOP file gave them,
        deterministic ids from 2,000,000,000 up otherwise."""
        return merge_concepts(self._omop, self._local_concepts())

    def _local_concepts(self) -> Iterator[LocalConcept]:
        for code in self._icd10.values():
            yield "ICD10", code.code, code.name_en, "Condition", "ICD10 code", None
        for morph in self._morphology.values():
            yield "ICDO3", morph.code, morph.name_en, "Observation", "ICDO Histology", None
        for analyte in self._analytes.values():
            if analyte.loinc:
                yield "LOINC", analyte.loinc, analyte.name_en, "Measurement", "Lab Test", "S"
            else:  # no LOINC code known: a local concept keyed by our analyte code
                yield "OncoFed", analyte.code, analyte.name_en, "Measurement", "Lab Test", None
        for measure, name in NLP_MEASURES.items():
            yield "OncoFed", measure, name, "Measurement", "Clinical Observation", None

    def extend_from_omop_concept(self, path: str | Path) -> Vocabulary:
        """A new Vocabulary that also knows the ICD10, ICD10CM, ICDO3 and LOINC
        concepts of an OMOP (Athena) tab-separated CONCEPT.csv. Shipped entries
        keep their names; codes the file adds are looked up by their OMOP name."""
        concepts = [*self._omop, *read_omop_concepts(Path(path))]
        icd10 = dict(self._icd10)
        morphologies = dict(self._morphology)
        for c in concepts:
            if c.invalid_reason:
                continue
            code, name = c.concept_code, c.concept_name
            if c.vocabulary_id in ("ICD10", "ICD10CM") and ICD10_PATTERN.fullmatch(code):
                icd10.setdefault(code, Icd10Code(code, name, None, None))
            elif c.vocabulary_id == "ICDO3" and re.fullmatch(r"\d{4}/\d", code):
                morphologies.setdefault(code, Morphology(code, name, None, int(code[-1])))
        return Vocabulary(
            icd10_codes=icd10.values(),
            morphologies=morphologies.values(),
            analytes=self._analytes.values(),
            tnm_values=self._tnm.values(),
            stage_rules=self._stage_rules,
            omop_concepts=concepts,
            drugs=self._drugs,
            procedures=self._procedures,
            icd10_text_rules=self._text_rules,
        )


def _rows(
    source: Traversable,
    name: str,
    columns: str,
    build: Callable[[dict[str, str]], T],
    optional: Sequence[str] = (),
) -> list[T]:
    """Parse one shipped CSV; any problem names the file and line. `optional`
    trailing columns may be absent from the header or from a row (read as empty),
    so files written before they existed still load."""
    path = source / name
    try:
        text = path.read_text(encoding="utf-8").lstrip("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read vocabulary file ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    required = columns.split(",")
    allowed = [",".join([*required, *optional[:n]]) for n in range(len(optional) + 1)]
    if ",".join(header) not in allowed:
        raise InvalidInput(f"{path}, line 1: columns must be {allowed[-1]!r}, not {header}")
    full = [*required, *optional]
    result = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        try:
            if not len(required) <= len(row) <= len(header):
                raise ValueError(f"{len(row)} fields, expected {len(header)}")
            cells = [*row, *[""] * (len(full) - len(row))]
            result.append(build({k: v.strip() for k, v in zip(full, cells, strict=True)}))
        except (ValueError, InvalidInput) as exc:
            raise InvalidInput(f"{path}, line {reader.line_num}: {exc}") from exc
    return result


def _icd10_row(row: dict[str, str]) -> Icd10Code:
    if normalize_icd10(row["code"]) != row["code"] or not row["name_en"]:
        raise ValueError(f"bad ICD-10 row {row['code']!r}")
    zh, block = row["name_zh"] or None, row["chapter_block"] or None
    return Icd10Code(row["code"], row["name_en"], zh, block)


def _morphology_row(row: dict[str, str]) -> Morphology:
    code = row["code"]
    if normalize_morphology(code) != code or row["behaviour"] != code[-1] or not row["name_en"]:
        raise ValueError(f"bad morphology row {code!r}")
    return Morphology(code, row["name_en"], row["name_zh"] or None, int(row["behaviour"]))


def _analyte_builder() -> Callable[[dict[str, str]], Analyte]:
    owners: dict[str, str] = {}  # alias key -> analyte code, to refuse ambiguous aliases

    def build(row: dict[str, str]) -> Analyte:
        aliases = tuple(a.strip() for a in row["aliases"].split("|") if a.strip())
        if not (row["code"] and row["name_en"] and row["standard_unit"] and aliases):
            raise ValueError("code, name_en, aliases and standard_unit are required")
        if row["loinc"] and not loinc_check_digit_ok(row["loinc"]):
            raise ValueError(f"LOINC {row['loinc']!r} fails its check digit")
        mass = float(row["molar_mass_g_per_mol"]) if row["molar_mass_g_per_mol"] else None
        if mass is not None and mass <= 0:
            raise ValueError("molar mass must be positive")
        for alias in aliases:
            owner = owners.setdefault(alias_key(alias), row["code"])
            if owner != row["code"]:
                raise ValueError(f"alias {alias!r} already names {owner}")
        loinc = row["loinc"] or None
        low = float(row["plausible_low"]) if row["plausible_low"] else None
        high = float(row["plausible_high"]) if row["plausible_high"] else None
        if low is not None and high is not None and low >= high:
            raise ValueError("plausible_low must be below plausible_high")
        return Analyte(
            row["code"],
            row["name_en"],
            row["name_zh"],
            aliases,
            loinc,
            row["standard_unit"],
            mass,
            low,
            high,
        )

    return build


def _tnm_row(row: dict[str, str]) -> TnmValue:
    if row["axis"] not in ("T", "N", "M") or not row["value"].startswith(row["axis"]):
        raise ValueError(f"bad TNM row {row['axis']!r} {row['value']!r}")
    return TnmValue(row["axis"], row["value"], row["description"])


def _stage_builder(tnm: Iterable[TnmValue]) -> Callable[[dict[str, str]], StageRule]:
    known = {(v.axis, v.value) for v in tnm}

    def build(row: dict[str, str]) -> StageRule:
        for axis in ("t", "n", "m"):
            if row[axis] != "*" and (axis.upper(), row[axis]) not in known:
                raise ValueError(f"{axis}={row[axis]!r} is not in tnm_ajcc8_lung.csv")
        if row["stage"] not in STAGE_GROUPS:
            raise ValueError(f"unknown stage group {row['stage']!r}")
        return row["t"], row["n"], row["m"], row["stage"]

    return build


def _aliases(row: dict[str, str]) -> tuple[str, ...]:
    names = (row["name_en"], row["name_zh"], *row["aliases"].split("|"))
    return tuple(dict.fromkeys(a.strip() for a in names if a.strip()))


def _drug_row(row: dict[str, str]) -> Drug:
    if normalize_atc(row["atc"]) != row["atc"] or not row["name_en"]:
        raise ValueError(f"bad drug row {row['atc']!r}")
    return Drug(row["atc"], row["name_en"], row["name_zh"], _aliases(row))


def _procedure_row(row: dict[str, str]) -> Procedure:
    if normalize_icd9cm3(row["code"]) != row["code"] or not row["name_en"]:
        raise ValueError(f"bad ICD-9-CM-3 row {row['code']!r}")
    return Procedure(row["code"], row["name_en"], row["name_zh"], _aliases(row))


def _text_rule_row(row: dict[str, str]) -> Icd10TextRule:
    if row["language"] not in ("zh", "en", "any"):
        raise ValueError(f"language must be zh, en or any, not {row['language']!r}")
    code = row["icd10"] or None
    if code is not None and normalize_icd10(code) != code:
        raise ValueError(f"ICD-10 {code!r} is not canonical")
    try:
        pattern = re.compile(row["pattern"], re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"bad pattern {row['pattern']!r}: {exc}") from exc
    return Icd10TextRule(pattern, row["language"], code, int(row["priority"]))


def _optional_rows(
    source: Traversable, name: str, columns: str, build: Callable[[dict[str, str]], T]
) -> list[T]:
    """A vocabulary file added later: a data folder without it gives no rows."""
    return _rows(source, name, columns, build) if (source / name).is_file() else []


def load_vocabulary(source: Traversable | str | Path) -> Vocabulary:
    """Read the vocabulary CSV files from directory `source` (drugs, procedures
    and ICD-10 text rules may be absent)."""
    source = Path(source) if isinstance(source, str) else source
    tnm = _rows(source, "tnm_ajcc8_lung.csv", "axis,value,description", _tnm_row)
    return Vocabulary(
        icd10_codes=_rows(
            source, "icd10_neoplasms.csv", "code,name_en,name_zh,chapter_block", _icd10_row
        ),
        morphologies=_rows(
            source, "icdo3_morphology.csv", "code,name_en,name_zh,behaviour", _morphology_row
        ),
        analytes=_rows(
            source,
            "analytes.csv",
            "code,name_en,name_zh,aliases,loinc,standard_unit,molar_mass_g_per_mol",
            _analyte_builder(),
            optional=("plausible_low", "plausible_high"),
        ),
        tnm_values=tnm,
        stage_rules=_rows(source, "ajcc8_lung_stage.csv", "t,n,m,stage", _stage_builder(tnm)),
        drugs=_optional_rows(source, "drugs.csv", "atc,name_en,name_zh,aliases", _drug_row),
        procedures=_optional_rows(
            source, "procedures.csv", "code,name_en,name_zh,aliases", _procedure_row
        ),
        icd10_text_rules=_optional_rows(
            source, "icd10_text_rules.csv", "pattern,language,icd10,priority", _text_rule_row
        ),
    )


@lru_cache(maxsize=1)
def load_default() -> Vocabulary:
    """The vocabulary shipped with OncoFed, read once per process."""
    return load_vocabulary(files("shared_cdm.vocab") / "data")


def _alias_index(entries: Iterable[_Named], kind: str) -> dict[str, _Named]:
    """Alias key -> entry; an alias naming two entries is a data error."""
    index: dict[str, _Named] = {}
    for entry in entries:
        for alias in entry.aliases:
            key = alias_key(alias)
            owner = index.setdefault(key, entry)
            if owner is not entry:
                raise InvalidInput(f"{kind} alias {alias!r} names both {owner} and {entry}")
    return index


def _by_name(index: dict[str, _Named], name: str, forms: re.Pattern[str] | None) -> _Named | None:
    key = alias_key(name)
    if not key:
        return None
    if key in index:
        return index[key]
    stripped = re.sub(r"[(\[（【].*?[)\]）】]", "", unicodedata.normalize("NFKC", name))
    if forms is not None:
        stripped = forms.sub("", stripped.strip())
    key = alias_key(stripped)
    if key in index:
        return index[key]
    # the longest alias inside the name; short Latin aliases (`DDP`) only whole
    best: tuple[int, _Named] | None = None
    for alias, entry in index.items():
        usable = len(alias) >= 2 if _CJK.search(alias) else len(alias) >= 5
        if usable and alias in key and (best is None or len(alias) > best[0]):
            best = (len(alias), entry)
    return best[1] if best else None


def load_concepts_into_db(session: Session, vocabulary: Vocabulary, batch_size: int = 5000) -> int:
    """Insert the vocabulary's concepts that the `concept` table lacks (by
    concept_id); rows already there are left as they are. Returns how many were
    inserted; the caller commits."""
    existing = set(session.scalars(select(ConceptRow.concept_id)))
    rows = [asdict(c) for c in vocabulary.concepts() if c.concept_id not in existing]
    for start in range(0, len(rows), batch_size):
        session.execute(insert(ConceptRow), rows[start : start + batch_size])
    session.flush()
    return len(rows)
