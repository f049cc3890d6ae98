"""What every stage of one sync run needs: databases, keys, vocabulary, counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edge_node.pipeline import state
from edge_node.pipeline.deid import Deidentifier
from edge_node.pipeline.records import Rejection
from edge_node.pipeline.sealed import ADMISSION_AAD, IdentifierGuard, aad, seal_quarantine
from shared_cdm.errors import InvalidInput
from shared_cdm.vocab import Vocabulary

# OMOP concept ids the loader writes
EHR = 32817
LAB = 32856
INPATIENT_VISIT = 9201
MALE, FEMALE = 8507, 8532
OPERATORS = {"<": 4171756, ">": 4172704, "=": 4172703, "<=": 4171754, ">=": 4171755}
UTF8_ENCODING = 32678

ID_CACHE_SIZE = 200_000
COUNT_FIELDS = ("read", "backfilled", "skipped", "loaded", "merged", "quarantined")


@dataclass
class TableCounts:
    """Per source table: read + backfilled = skipped + in; in = loaded + merged + quarantined.

    `backfilled` rows were read again for patients who became cancer patients
    after those rows had first been read (and skipped)."""

    read: int = 0
    backfilled: int = 0
    skipped: int = 0  # rows of patients outside the extraction (no cancer diagnosis)
    loaded: int = 0
    merged: int = 0
    quarantined: int = 0
    error: str | None = None  # a problem with the whole table (e.g. it disappeared)

    @property
    def entered(self) -> int:
        return self.loaded + self.merged + self.quarantined

    @property
    def balanced(self) -> bool:
        return self.read + self.backfilled == self.skipped + self.entered

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in COUNT_FIELDS}
        out["in"] = self.entered
        if self.error:
            out["error"] = self.error
        return out


def utcnow() -> datetime:
    return datetime.now(UTC)


ProgressHook = Callable[[str, int], None]  # (label, rows just done)


@dataclass
class RunContext:
    state: sa.Engine
    analysis: sa.Engine
    deid: Deidentifier
    vocab: Vocabulary
    run_id: int
    icd10_ranges: tuple[str, ...]
    concepts: dict[tuple[str, str], int]
    ids: IdentifierGuard  # link hashes and seals: no identifier enters the state DB in clear
    ranks: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, table) -> rank
    counts: dict[tuple[str, str], TableCounts] = field(default_factory=dict)
    conflicts: Counter[str] = field(default_factory=Counter)
    events_started: bool = False  # some event table had been read by an earlier run
    batch_size: int = 5000
    progress: ProgressHook | None = None
    structuring: Any = None  # structuring.Tally of this run, made on first use
    text_workers: Any = None  # workers.TextWorkers: scrubbing and structuring processes
    _ids: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    _stay_visits: dict[str, int] = field(default_factory=dict, repr=False)  # link hash -> id
    # link hash -> admission ID, of the stays this run sealed (never stored)
    _sealed_here: dict[str, str] = field(default_factory=dict, repr=False)

    def table_counts(self, source: str, table: str) -> TableCounts:
        return self.counts.setdefault((source, table), TableCounts())

    def row_pseudonym(self, source: str, table: str, key: str) -> str:
        return self.deid.pseudonymizer.pseudonym("row", f"{source}/{table}/{key}")

    def row_id(self, source: str, table: str, key: str) -> int:
        return self.deid.pseudonymizer.surrogate_id("row", f"{source}/{table}/{key}")

    def person_id(self, person_key: str) -> int:
        return self._cached("person", person_key)

    def visit_id(self, admission_id: str) -> int:
        return self._cached("admission", admission_id)

    def _cached(self, kind: str, value: str) -> int:
        # Rows of one patient and stay come together: a small cache saves most HMACs.
        found = self._ids.get((kind, value))
        if found is None:
            if len(self._ids) >= ID_CACHE_SIZE:
                self._ids.clear()
            found = self._ids[(kind, value)] = self.deid.pseudonymizer.surrogate_id(kind, value)
        return found

    def stay_visit_id(self, stay: Any, admission_id: str | None = None) -> int:
        """The visit key of an indexed stay (whose admission ID the caller may have
        opened already), remembered by its link hash: every event table meets the
        same stays, and opening a sealed admission ID costs an AES-GCM decryption."""
        found = self._stay_visits.get(stay.admission_id)
        if found is None:
            if len(self._stay_visits) >= ID_CACHE_SIZE:
                self._stay_visits.clear()
            if admission_id is None:
                admission_id = self.admission_id_of(stay)
            found = self._stay_visits[stay.admission_id] = self.visit_id(admission_id)
        return found

    def sealed_admission(self, admission_id: str, link_hash: str) -> str:
        """`admission_id` sealed for the link index; this run remembers it, so the
        persons stage need not decrypt what it has just encrypted."""
        if len(self._sealed_here) >= ID_CACHE_SIZE:
            self._sealed_here.clear()
        self._sealed_here[link_hash] = admission_id
        return self.ids.seal(admission_id, aad(ADMISSION_AAD, link_hash))

    def admission_id_of(self, stay: Any) -> str:
        """The hospital admission ID of an indexed stay (a `pipeline_admissions` row)."""
        known = self._sealed_here.get(stay.admission_id)
        if known is not None:
            return known
        if stay.sealed_id is None:
            raise InvalidInput(
                "a stay in the link index has no sealed admission ID (indexed before "
                "migration 0005?): run the sync with --full",
                code="unsealed_stay",
            )
        return self.ids.open(
            stay.sealed_id,
            aad(ADMISSION_AAD, stay.admission_id),
            what=f"the sealed admission ID of stay {stay.admission_id[:12]}",
        )

    def visit_pseudonym(self, admission_id: str) -> str:
        return self.deid.pseudonymizer.pseudonym("admission", admission_id)

    def concept(self, vocabulary: str, code: str | None) -> int:
        return self.concepts.get((vocabulary, code), 0) if code else 0

    def quarantine(self, conn: sa.Connection, rejections: list[Rejection]) -> None:
        """Keep rejected rows with their reasons (the latest verdict per row).

        The row is keyed by its source key's link hash; the reason (it may quote
        IDs) and the row are sealed."""
        if not rejections:
            return
        from edge_node.pipeline.dbutil import upsert

        now = utcnow()
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in rejections:
            row_hash = self.ids.row(r.source, r.table, r.key)
            reason, record = seal_quarantine(self.ids, row_hash, r.key, r.reason, r.raw)
            rows[(r.source, r.table, row_hash)] = {
                "source": r.source,
                "source_table": r.table,
                "row_key": row_hash,
                "code": r.code,
                "reason": reason,
                "field": r.field,
                "record": record,
                "run_id": self.run_id,
                "quarantined_at": now,
            }
        upsert(
            conn,
            state.QuarantinedRecord.__table__,  # type: ignore[arg-type]
            list(rows.values()),
            ["source", "source_table", "row_key"],
        )
