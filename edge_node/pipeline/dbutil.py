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
) -> None:
    """Insert rows; a row whose key exists replaces it (or is ignored with update=False)."""
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
        changing = {c: ins.excluded[c] for c in columns if c not in keys}
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
    out: list[sa.Row[Any]] = []
    for part in chunks(wanted):
        stmt = sa.select(table).where(table.c[column].in_(part), *extra)
        out.extend(conn.execute(stmt).all())
    return out
