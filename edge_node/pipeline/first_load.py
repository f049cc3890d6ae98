"""First load into an empty CDM on PostgreSQL: the event tables' secondary
indexes and foreign keys are dropped while their rows stream in, and rebuilt
once at the end.

Inserting a row into `measurement` with its foreign keys checked (a trigger per
row) and four indexes kept up costs the server several times what the row
itself does; building the indexes and checking the keys once over the full
table costs a fraction of that. Only empty tables are deferred, so a table that
holds rows always has its indexes, and nothing but the first load pays.

Kill-safe: the definitions of what was dropped are kept in the table's own
comment, written in the transaction that drops them (PostgreSQL's DDL is
transactional). A table whose comment holds them is rebuilt at the start of the
next run, before anything reads it, and its comment is put back, in one
transaction. Primary keys and check constraints are never dropped: the upserts
rest on the keys, and the rows must be as valid as with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from psycopg import sql

from shared_cdm.errors import OncoFedError

# What a comment of a deferred table starts with; the rest is JSON.
MARK = "oncofed:deferred:"
# Tables that take most rows of a load and nothing reads while events load.
DEFERRABLE = ("measurement", "procedure_occurrence", "drug_exposure", "note")


class RebuildFailed(OncoFedError):
    """A deferred index or foreign key could not be rebuilt."""


def _dbapi(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection


def _comment(cursor: Any, table: str) -> str | None:
    cursor.execute("SELECT obj_description(%s::regclass, 'pg_class')", (table,))
    row = cursor.fetchone()
    return None if row is None else row[0]


def _set_comment(cursor: Any, table: str, text: str | None) -> None:
    # A utility statement takes no bound parameters: the text goes in as a literal.
    value = sql.SQL("NULL") if text is None else sql.Literal(text)
    cursor.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(table), value))


def _secondary(cursor: Any, table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(indexes, foreign keys) of `table` as (name, definition): indexes that back
    no constraint, and foreign keys."""
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND NOT i.indisunique "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY c.relname",
        (table,),
    )
    indexes = [(name, ddl) for name, ddl in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        (table,),
    )
    foreign = [(name, ddl) for name, ddl in cursor.fetchall()]
    return indexes, foreign


def _empty(cursor: Any, table: str) -> bool:
    cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table})")
    return bool(cursor.fetchone()[0])


def defer(engine: sa.Engine, tables: Iterable[str] = DEFERRABLE) -> list[str]:
    """Drop the secondary indexes and foreign keys of those `tables` that are
    empty (PostgreSQL only); the tables deferred."""
    if engine.dialect.name != "postgresql":
        return []
    done: list[str] = []
    with engine.begin() as conn, _dbapi(conn).cursor() as cursor:
        for table in tables:
            comment = _comment(cursor, table)
            if comment is not None and comment.startswith(MARK):
                done.append(table)  # deferred already (not rebuilt yet)
                continue
            if not _empty(cursor, table):
                continue
            indexes, foreign = _secondary(cursor, table)
            if not indexes and not foreign:
                continue
            saved = {"comment": comment, "indexes": indexes, "foreign_keys": foreign}
            _set_comment(cursor, table, MARK + json.dumps(saved))
            for name, _ in foreign:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            done.append(table)
    return done


def deferred(engine: sa.Engine, tables: Iterable[str] = DEFERRABLE) -> list[str]:
    """The tables whose indexes and foreign keys wait to be rebuilt."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn, _dbapi(conn).cursor() as cursor:
        return [t for t in tables if (_comment(cursor, t) or "").startswith(MARK)]


def rebuild(engine: sa.Engine, tables: Iterable[str] = DEFERRABLE) -> list[str]:
    """Rebuild whatever `defer` dropped (a no-op when nothing was); the tables rebuilt."""
    if engine.dialect.name != "postgresql":
        return []
    done: list[str] = []
    for table in deferred(engine, tables):
        with engine.begin() as conn, _dbapi(conn).cursor() as cursor:
            # Locked, then read again: a concurrent rebuild does not do the work twice.
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            comment = _comment(cursor, table)
            if comment is None or not comment.startswith(MARK):
                continue
            saved = json.loads(comment[len(MARK) :])
            present_idx, present_fk = (dict(x) for x in _secondary(cursor, table))
            try:
                for name, ddl in saved["indexes"]:
                    if name not in present_idx:
                        cursor.execute(ddl)
                for name, ddl in saved["foreign_keys"]:
                    if name not in present_fk:
                        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {ddl}')
            except Exception as exc:  # a database error: rows the keys would have refused
                raise RebuildFailed(
                    f"rebuilding the indexes and foreign keys of {table} after a first load "
                    f"failed: {exc}; the rows stay, the next sync tries again",
                    code="cdm_rebuild_failed",
                ) from exc
            _set_comment(cursor, table, saved["comment"])
            done.append(table)
    return done
