"""Dialect-aware bulk writes shared by the pipeline's stages (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

# SQLite's default limit on bound parameters is 32766; stay well below it.
IN_CHUNK = 900


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str] | None = None,
    *,
    update: bool = True,
    insert_only: Sequence[str] = (),
) -> None:
    """Insert rows; a row whose key exists replaces it (or is ignored with update=False).
    Columns in `insert_only` keep their first value."""
    if not rows:
        return
    keys = list(keys or [c.name for c in table.primary_key.columns])
    dialect = conn.dialect.name
    ins: Any
    if dialect == "postgresql":
        ins = postgresql.insert(table)
    elif dialect == "sqlite":
        ins = sqlite.insert(table)
    else:  # pragma: no cover - the edge runs on SQLite or PostgreSQL
        raise NotImplementedError(dialect)
    columns = list(rows[0].keys())
    if update:
        changing = {c: ins.excluded[c] for c in columns if c not in keys and c not in insert_only}
        stmt = (
            ins.on_conflict_do_update(index_elements=keys, set_=changing)
            if changing
            else ins.on_conflict_do_nothing(index_elements=keys)
        )
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, list(rows))


def select_in(
    conn: sa.Connection, table: sa.Table, column: str, values: Iterable[Any], *extra: Any
) -> list[sa.Row[Any]]:
    """Rows whose `column` is in `values`, in chunks that every dialect accepts."""
    wanted = sorted(set(values))
    if not wanted:
        return []
    col = table.c[column]
    if conn.dialect.name == "postgresql":
        # One array parameter: no per-value placeholders to render and parse.
        array = sa.bindparam("values", wanted, type_=postgresql.ARRAY(col.type))
        return list(conn.execute(sa.select(table).where(col == sa.any_(array), *extra)).all())
    out: list[sa.Row[Any]] = []
    for part in chunks(wanted):
        stmt = sa.select(table).where(col.in_(part), *extra)
        out.extend(conn.execute(stmt).all())
    return out


def where_in(
    conn: sa.Connection, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> Iterable[Any]:
    """Conditions `column IN values`, one per chunk SQLite can take (one on PostgreSQL)."""
    if not values:
        return
    if conn.dialect.name == "postgresql":
        yield column == sa.any_(
            sa.bindparam("values", list(values), type_=postgresql.ARRAY(column.type))
        )
        return
    for part in chunks(values):
        yield column.in_(part)
