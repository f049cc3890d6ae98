"""OMOP concepts: reading an Athena CONCEPT.csv and giving local codes ids."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path

from shared_cdm.errors import InvalidInput
from shared_cdm.vocab.codes import Concept

LOCAL_CONCEPT_ID_START = 2_000_000_000  # OMOP reserves 2e9 and up for local concepts
LOCAL_CONCEPT_ID_END = 2_147_483_647  # concept_id is a 32-bit integer
OMOP_VOCABULARIES = frozenset({"ICD10", "ICD10CM", "ICDO3", "LOINC"})
CONCEPT_COLUMNS = (
    "concept_id",
    "concept_name",
    "domain_id",
    "vocabulary_id",
    "concept_class_id",
    "standard_concept",
    "concept_code",
    "valid_start_date",
    "valid_end_date",
    "invalid_reason",
)
VALID_START, VALID_END = date(1970, 1, 1), date(2099, 12, 31)

# (vocabulary_id, concept_code, concept_name, domain_id, concept_class_id, standard_concept)
LocalConcept = tuple[str, str, str, str, str, str | None]


def _omop_date(text: str) -> date:
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"bad date {text!r}")


def read_omop_concepts(path: Path) -> Iterator[Concept]:
    """The ICD10, ICD10CM, ICDO3 and LOINC rows of a tab-separated OMOP
    CONCEPT.csv (Athena export, dates as YYYYMMDD or YYYY-MM-DD)."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read OMOP concept file ({exc})") from exc
    with handle:
        # Athena files are unquoted; quote characters inside names are literal.
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [name.strip().lower().lstrip("\ufeff") for name in next(reader, [])]
        missing = sorted(set(CONCEPT_COLUMNS) - set(header))
        if missing:
            raise InvalidInput(f"{path}, line 1: missing columns {missing}")
        for row in reader:
            if not any(row):
                continue
            if len(row) != len(header):
                raise InvalidInput(
                    f"{path}, line {reader.line_num}: {len(row)} fields, expected {len(header)}"
                )
            record = dict(zip(header, row, strict=True))
            if record["vocabulary_id"] not in OMOP_VOCABULARIES:
                continue
            try:
                yield Concept(
                    concept_id=int(record["concept_id"]),
                    concept_name=record["concept_name"],
                    domain_id=record["domain_id"],
                    vocabulary_id=record["vocabulary_id"],
                    concept_class_id=record["concept_class_id"],
                    standard_concept=record["standard_concept"] or None,
                    concept_code=record["concept_code"],
                    valid_start_date=_omop_date(record["valid_start_date"]),
                    valid_end_date=_omop_date(record["valid_end_date"]),
                    invalid_reason=record["invalid_reason"] or None,
                )
            except ValueError as exc:
                raise InvalidInput(f"{path}, line {reader.line_num}: {exc}") from exc


def local_concept_id(vocabulary_id: str, code: str, taken: set[int]) -> int:
    """A concept id in OMOP's local range from a hash of the code, not a
    counter, so every site gives the same code the same id."""
    digest = hashlib.sha256(f"{vocabulary_id}|{code}".encode()).digest()
    span = LOCAL_CONCEPT_ID_END - LOCAL_CONCEPT_ID_START + 1
    concept_id = LOCAL_CONCEPT_ID_START + int.from_bytes(digest[:8], "big") % span
    while concept_id in taken:  # a rare collision: probe upwards, wrapping around
        at_end = concept_id == LOCAL_CONCEPT_ID_END
        concept_id = LOCAL_CONCEPT_ID_START if at_end else concept_id + 1
    taken.add(concept_id)
    return concept_id


def merge_concepts(omop: Iterable[Concept], local: Iterable[LocalConcept]) -> list[Concept]:
    """OMOP's concepts plus the local ones they lack, sorted by concept_id.
    Local codes that OMOP also has keep OMOP's id."""
    result = {(c.vocabulary_id, c.concept_code): c for c in omop}
    taken = {c.concept_id for c in result.values()}
    for vocabulary_id, code, name, domain, concept_class, standard in sorted(set(local)):
        if (vocabulary_id, code) in result:
            continue
        result[(vocabulary_id, code)] = Concept(
            concept_id=local_concept_id(vocabulary_id, code, taken),
            concept_name=name[:255],
            domain_id=domain,
            vocabulary_id=vocabulary_id,
            concept_class_id=concept_class,
            standard_concept=standard,
            concept_code=code,
            valid_start_date=VALID_START,
            valid_end_date=VALID_END,
            invalid_reason=None,
        )
    return sorted(result.values(), key=lambda c: c.concept_id)
