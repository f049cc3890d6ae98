"""Dialect-aware bulk writes shared by the pipeline's stages (SQLite and PostgreSQL).

On PostgreSQL, large batches go through binary COPY (into the table, or into a
temporary table and one INSERT ... ON CONFLICT), and key lists travel as one
JSON text: psycopg's pure-Python array dumper costs a function call per element.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

# SQLite's default limit on bound parameters is 32766; stay well below it.
IN_CHUNK = 900
# From this many rows on, PostgreSQL upserts go through COPY and a staging table.
COPY_THRESHOLD = 200

_TIMESTAMP, _TIMESTAMPTZ = 1114, 1184  # PostgreSQL type OIDs
# table name -> column name -> type OID; the schema is fixed by migrations.
_PG_TYPES: dict[str, dict[str, int]] = {}


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _dbapi(conn: sa.Connection) -> Any:
    return conn.connection.driver_connection


def pg_column_types(conn: sa.Connection, table: str) -> dict[str, int]:
    """Column name -> type OID of a PostgreSQL table (looked up once per process)."""
    found = _PG_TYPES.get(table)
    if found is None:
        with _dbapi(conn).cursor() as cursor:
            cursor.execute(
                "SELECT attname, atttypid::int FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            found = _PG_TYPES[table] = {name: oid for name, oid in cursor.fetchall()}
    return found


def row_getter(columns: Sequence[str]) -> Any:
    """dict row -> tuple of `columns`, at C speed."""
    get = itemgetter(*columns)
    return (lambda row: (get(row),)) if len(columns) == 1 else get


def ident(name: str) -> str:
    """A column name quoted for PostgreSQL: OMOP has columns named like keywords
    (note_nlp.offset)."""
    return '"' + name.replace('"', '""') + '"'


def idents(names: Sequence[str]) -> str:
    return ", ".join(map(ident, names))


def copy_rows(
    conn: sa.Connection,
    target: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    types_of: str | None = None,
    oids: Mapping[str, int] | None = None,
) -> None:
    """Binary COPY of tuples (in `columns` order) into `target`, typed like the
    columns of `types_of` (default `target`) unless `oids` are given: no text
    formatting and escaping."""
    if oids is None:
        oids = pg_column_types(conn, types_of or target)
        if any(c not in oids for c in columns):  # a column added since: look again
            _PG_TYPES.pop(types_of or target, None)
            oids = pg_column_types(conn, types_of or target)
    with (
        _dbapi(conn).cursor() as cursor,
        cursor.copy(f"COPY {target} ({idents(columns)}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([oids[c] for c in columns])
        for row in rows:
            copy.write_row(row)


def _dedupe(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], update: bool, insert_only: Sequence[str]
) -> list[Mapping[str, Any]]:
    """One row per key, as row-by-row upserts would leave it: one INSERT ... SELECT
    cannot touch a key twice."""
    key_of = row_getter(keys)
    out: dict[Any, Mapping[str, Any]] = {}
    for row in rows:
        k = key_of(row)
        old = out.get(k)
        if old is None:
            out[k] = row
        elif update:  # a later row wins, but insert-only columns keep the first value
            out[k] = {**row, **{c: old[c] for c in insert_only if c in old}}
    return list(out.values())


def _callable_defaults(table: sa.Table) -> bool:
    return any(c.default is not None and not c.default.is_scalar for c in table.c)


def _pg_copy_upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: bool,
    insert_only: Sequence[str],
) -> bool:
    """False (and nothing written) if the rows need executemany instead."""
    given = list(rows[0].keys())
    # Python-side defaults of the columns not given, as SQLAlchemy's INSERT adds them.
    defaults = {
        c.name: c.default.arg  # type: ignore[attr-defined]
        for c in table.c
        if c.name not in given and c.default is not None
    }
    columns = given + list(defaults)
    oids = dict(pg_column_types(conn, table.name))
    staged: list[str] = []
    for c in columns:
        if oids[c] == _TIMESTAMP:
            aware = {v.tzinfo is not None for row in rows if (v := row.get(c)) is not None}
            if len(aware) > 1:
                return False  # naive and aware values: leave the mix to executemany
            if aware == {True}:
                # Staged as timestamptz: the INSERT converts it in the session's
                # time zone, as a timestamptz parameter of executemany is.
                oids[c] = _TIMESTAMPTZ
                staged.append(f"{ident(c)}::timestamptz AS {ident(c)}")
                continue
        staged.append(ident(c))
    names = idents(columns)
    stage = f"_oncofed_up_{table.name}"
    rows = _dedupe(rows, keys, update, insert_only)
    if defaults:
        rows = [{**row, **defaults} for row in rows]
    with _dbapi(conn).cursor() as cursor:
        # Only the written columns: no NOT NULL of columns left to their defaults.
        cursor.execute(
            f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
            f"SELECT {', '.join(staged)} FROM {table.name} WITH NO DATA"
        )
    copy_rows(conn, stage, columns, map(row_getter(columns), rows), oids=oids)
    changing = [c for c in given if c not in keys and c not in insert_only]
    action = (
        "DO UPDATE SET " + ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in changing)
        if update and changing
        else "DO NOTHING"
    )
    with _dbapi(conn).cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage} "
            f"ON CONFLICT ({idents(keys)}) {action}"
        )
        cursor.execute(f"DROP TABLE {stage}")
    return True


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
        if (
            len(rows) >= COPY_THRESHOLD
            and not _callable_defaults(table)
            and _pg_copy_upsert(conn, table, rows, keys, update, insert_only)
        ):
            return
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


def update_rows(
    conn: sa.Connection, table: sa.Table, key: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Set the other columns of `rows` on the row with the same `key` (a later
    row of a key wins). Large PostgreSQL batches: COPY and one UPDATE ... FROM."""
    if not rows:
        return
    columns = list(rows[0].keys())
    changing = [c for c in columns if c != key]
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        latest = list({row[key]: row for row in rows}.values())
        stage = f"_oncofed_set_{table.name}"
        with _dbapi(conn).cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                f"SELECT {idents(columns)} FROM {table.name} WITH NO DATA"
            )
        copy_rows(conn, stage, columns, map(row_getter(columns), latest), types_of=table.name)
        with _dbapi(conn).cursor() as cursor:
            sets = ", ".join(f"{ident(c)} = s.{ident(c)}" for c in changing)
            cursor.execute(
                f"UPDATE {table.name} AS t SET {sets} FROM {stage} AS s "
                f"WHERE t.{ident(key)} = s.{ident(key)}"
            )
            cursor.execute(f"DROP TABLE {stage}")
        return
    stmt = (
        sa.update(table)
        .where(table.c[key] == sa.bindparam("_key"))
        .values({c: sa.bindparam(c) for c in changing})
    )
    conn.execute(stmt, [{**{c: row[c] for c in changing}, "_key": row[key]} for row in rows])


def pg_any(column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """`column = ANY(values)` on PostgreSQL, the values sent as one JSON text
    (json.dumps runs in C) and unpacked server-side into an array of the column's type."""
    # Text, not the column's VARCHAR(n): a cast to it would truncate longer values.
    kind = sa.Text() if isinstance(column.type, sa.String) else column.type
    packed = sa.cast(sa.literal(json.dumps(list(values)), sa.Text()), postgresql.JSON())
    unpacked = sa.select(sa.cast(sa.func.json_array_elements_text(packed), kind)).scalar_subquery()
    return column == sa.func.any(sa.func.array(unpacked))


def select_in(
    conn: sa.Connection, table: sa.Table, column: str, values: Iterable[Any], *extra: Any
) -> list[sa.Row[Any]]:
    """Rows whose `column` is in `values`, in chunks that every dialect accepts."""
    wanted = sorted(set(values))
    if not wanted:
        return []
    col = table.c[column]
    if conn.dialect.name == "postgresql":
        return list(conn.execute(sa.select(table).where(pg_any(col, wanted), *extra)).all())
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
        yield pg_any(column, values)
        return
    for part in chunks(values):
        yield column.in_(part)
