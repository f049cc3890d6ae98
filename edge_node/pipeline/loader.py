"""Writing CDM rows: upserts by deterministic keys, so a batch written twice is
written once. PostgreSQL takes large batches through COPY into a temporary
table and one INSERT ... ON CONFLICT; SQLite takes executemany upserts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import sqlalchemy as sa

from edge_node.pipeline.dbutil import (
    COPY_THRESHOLD,
    chunks,
    copy_rows,
    ident,
    idents,
    row_getter,
    upsert,
    where_in,
)
from shared_cdm.models import Base

# Person-level and event tables that carry person_id, children before parents.
PERSON_TABLES = (
    "note_nlp",
    "lung_cancer_dataset",
    "episode_event",
    "episode",
    "specimen",
    "measurement",
    "procedure_occurrence",
    "drug_exposure",
    "note",
    "condition_occurrence",
    "death",
    "observation_period",
    "visit_occurrence",
    "person",
)


def cdm_table(name: str) -> sa.Table:
    return Base.metadata.tables[name]


class CdmWriter:
    """Writes into the analysis database inside the caller's transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self._staged: set[str] = set()

    def upsert(
        self, name: str, rows: Sequence[Mapping[str, Any]], *, present: set[Any] | None = None
    ) -> None:
        """Insert or replace `rows`; `present` (the keys that already exist, if the
        caller knows them) saves a lookup."""
        if not rows:
            return
        table = cdm_table(name)
        if self.postgres and len(rows) >= COPY_THRESHOLD:
            key = next(iter(table.primary_key.columns))
            if len(table.primary_key.columns) == 1:
                if present is None:
                    present = set(self.existing_keys(name, [row[key.name] for row in rows]))
                fresh = [row for row in rows if row[key.name] not in present]
                # New keys go straight in by COPY; only known keys need an upsert.
                self._copy_into(table.name, fresh)
                rows = [row for row in rows if row[key.name] in present]
                if len(rows) < COPY_THRESHOLD:
                    upsert(self.conn, table, rows)
                    return
            self._copy_upsert(table, rows)
        else:
            upsert(self.conn, table, rows)

    def insert_new(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write rows whose keys are not in the table. On PostgreSQL they stream
        into COPY as the caller builds them: the server inserts them (indexes,
        foreign keys) while the next ones are made."""
        if not self.postgres:
            self.upsert(name, list(rows))
            return
        it = iter(rows)
        first = next(it, None)
        if first is None:
            return
        columns = list(first.keys())
        copy_rows(self.conn, name, columns, map(row_getter(columns), chain([first], it)))

    def existing_keys(self, name: str, ids: Iterable[Any]) -> list[Any]:
        table = cdm_table(name)
        key = next(iter(table.primary_key.columns))
        out: list[Any] = []
        for cond in where_in(self.conn, key, sorted(set(ids))):
            out += [k for (k,) in self.conn.execute(sa.select(key).where(cond))]
        return out

    def _copy_into(
        self, target: str, rows: Sequence[Mapping[str, Any]], types_of: str | None = None
    ) -> None:
        if not rows:
            return
        columns = list(rows[0].keys())
        copy_rows(self.conn, target, columns, map(row_getter(columns), rows), types_of=types_of)

    def _copy_upsert(self, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
        stage = f"_oncofed_stage_{table.name}"
        if stage not in self._staged:
            self.conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name}) ON COMMIT DELETE ROWS"
            )
            self._staged.add(stage)
        columns = list(rows[0].keys())
        names = idents(columns)
        keys = [c.name for c in table.primary_key.columns]
        dbapi: Any = self.conn.connection.driver_connection
        with dbapi.cursor() as cursor:
            cursor.execute(f"TRUNCATE {stage}")
        self._copy_into(stage, rows, types_of=table.name)
        with dbapi.cursor() as cursor:
            updates = ", ".join(
                f"{ident(c)} = EXCLUDED.{ident(c)}" for c in columns if c not in keys
            )
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            # DISTINCT ON keeps one row per key: ON CONFLICT cannot touch a row twice.
            cursor.execute(
                f"INSERT INTO {table.name} ({names}) "
                f"SELECT DISTINCT ON ({idents(keys)}) {names} FROM {stage} "
                f"ON CONFLICT ({idents(keys)}) {action}"
            )

    def existing(self, name: str, ids: Iterable[int]) -> dict[int, sa.Row[Any]]:
        table = cdm_table(name)
        key = next(iter(table.primary_key.columns))
        out: dict[int, sa.Row[Any]] = {}
        for cond in where_in(self.conn, key, sorted(set(ids))):
            for row in self.conn.execute(sa.select(table).where(cond)):
                out[row._mapping[key.name]] = row
        return out

    def delete_in(self, name: str, column: str, values: Iterable[Any]) -> None:
        table = cdm_table(name)
        for cond in where_in(self.conn, table.c[column], sorted(set(values))):
            self.conn.execute(sa.delete(table).where(cond))

    def replace_for_persons(
        self, name: str, person_ids: Sequence[int], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """These persons' rows of `name` become exactly `rows`; `person_ids` are the
        persons who may have rows already (whose rows not in `rows` are deleted)."""
        table = cdm_table(name)
        key = next(iter(table.primary_key.columns))
        keep = {row[key.name] for row in rows}
        stale: list[Any] = []
        for cond in where_in(self.conn, table.c.person_id, sorted(set(person_ids))):
            stmt = sa.select(key).where(cond)
            stale += [k for (k,) in self.conn.execute(stmt) if k not in keep]
        if stale and name == "visit_occurrence":
            self._unlink_visits(stale)
        if stale:
            self.delete_in(name, key.name, stale)
            self.delete_provenance(name, stale)
        self.upsert(name, rows)

    def _unlink_visits(self, visit_ids: Sequence[int]) -> None:
        for child in (
            "measurement",
            "procedure_occurrence",
            "drug_exposure",
            "note",
            "condition_occurrence",
        ):
            t = cdm_table(child)
            for part in chunks(sorted(visit_ids)):
                self.conn.execute(
                    sa.update(t)
                    .where(t.c.visit_occurrence_id.in_(part))
                    .values(visit_occurrence_id=None)
                )

    def delete_provenance(self, name: str, row_ids: Sequence[int]) -> None:
        vp = cdm_table("value_provenance")
        for cond in where_in(self.conn, vp.c.row_id, sorted(set(row_ids))):
            self.conn.execute(sa.delete(vp).where(vp.c.table_name == name, cond))

    def delete_persons(self, person_ids: Sequence[int]) -> None:
        """Every row of these persons, in every table (they left the extraction)."""
        for child, parent, link in (
            ("note_nlp", "note", "note_id"),
            ("episode_event", "episode", "episode_id"),
        ):
            c, p = cdm_table(child), cdm_table(parent)
            for part in chunks(sorted(set(person_ids))):
                owned = sa.select(p.c[link]).where(p.c.person_id.in_(part))
                self.conn.execute(sa.delete(c).where(c.c[link].in_(owned)))
        for name in PERSON_TABLES:
            table = cdm_table(name)
            column = "person_id"
            if column not in table.c:
                continue
            key = next(iter(table.primary_key.columns))
            if name not in ("person", "death") and "value_provenance" in Base.metadata.tables:
                for part in chunks(sorted(set(person_ids))):
                    ids = [
                        k
                        for (k,) in self.conn.execute(
                            sa.select(key).where(table.c.person_id.in_(part))
                        )
                    ]
                    self.delete_provenance(name, ids)
            self.delete_in(name, column, person_ids)
