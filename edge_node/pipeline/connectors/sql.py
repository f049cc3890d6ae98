"""Any database SQLAlchemy can reach, read by keyset pagination on a key column.

Each batch is one short query (`WHERE key > :last ORDER BY key LIMIT n`), so no
transaction stays open while the pipeline works on a batch and memory holds one
batch. The watermark keeps the last key with its type, so it is compared in the
column's own type when resumed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Collection, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from edge_node.pipeline.connectors.base import SourceMissing
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow
from shared_cdm.errors import InvalidInput

_IN_CHUNK = 500  # values per IN (...) list


def as_text(value: Any) -> str | None:
    """A database value as text, without losing digits; '' and NULL are None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8") or None
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    return str(value)


_KEY_TYPES: dict[str, Any] = {
    "int": int,
    "str": str,
    "float": float,
    "decimal": Decimal,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "bytes": bytes.fromhex,
}


def _dump_key(value: Any) -> tuple[str, Any]:
    """(type name, JSON value) of a key, so it comes back in its own type."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"cannot use {value!r} as a row key", code="invalid_key")
    if isinstance(value, int):
        return "int", value
    if isinstance(value, str):
        return "str", value
    if isinstance(value, float):
        return "float", repr(value)
    if isinstance(value, Decimal):
        return "decimal", str(value)
    if isinstance(value, dt.datetime):
        return "datetime", value.isoformat()
    if isinstance(value, dt.date):
        return "date", value.isoformat()
    if isinstance(value, dt.time):
        return "time", value.isoformat()
    if isinstance(value, uuid.UUID):
        return "uuid", str(value)
    if isinstance(value, bytes | memoryview):
        return "bytes", bytes(value).hex()
    raise InvalidInput(
        f"cannot use a {type(value).__name__} column as a row key", code="invalid_key"
    )


def _load_key(kind: str, value: Any) -> Any:
    convert = _KEY_TYPES[kind]
    return convert(value)


class SqlConnector:
    """Tables and views of one database (optionally one schema)."""

    def __init__(self, name: str, url: str, base_dir: Path, *, schema: str | None = None) -> None:
        self.name = name
        self.schema = schema
        try:
            parsed = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise InvalidInput(
                f"source {name!r}: bad database URL: {exc}", code="invalid_source"
            ) from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            db = Path(parsed.database)
            if not parsed.database.startswith("file:"):
                if not db.is_absolute():
                    db = base_dir / db
                if not db.is_file():  # SQLite would create an empty one
                    raise SourceMissing(name, None, f"SQLite database file {db}")
                parsed = parsed.set(database=str(db))
        try:
            self.engine = sa.create_engine(parsed)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise InvalidInput(
                f"source {name!r}: cannot use database URL: {exc}", code="invalid_source"
            ) from None

    # -- reflection ------------------------------------------------------

    def tables(self) -> list[str]:
        insp = sa.inspect(self.engine)
        names = insp.get_table_names(schema=self.schema) + insp.get_view_names(schema=self.schema)
        return sorted(set(names))

    def _table(self, table: str) -> sa.Table:
        try:
            return sa.Table(table, sa.MetaData(), autoload_with=self.engine, schema=self.schema)
        except NoSuchTableError:
            raise SourceMissing(self.name, table, f"table {table!r} in {self._where()}") from None

    def _where(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"{url}" + (f" schema {self.schema}" if self.schema else "")

    def _column(self, t: sa.Table, column: str) -> sa.Column[Any]:
        if column not in t.c:
            raise SourceMissing(
                self.name, t.name, f"column {column!r} (the table has {', '.join(t.c.keys())})"
            )
        return t.c[column]

    def _key(self, t: sa.Table, key: str | None) -> tuple[sa.Column[Any], bool]:
        """The key column, and whether its values are unique (primary key)."""
        pk = list(t.primary_key.columns)
        if key is None:
            if len(pk) != 1:
                what = "no primary key" if not pk else "a composite primary key"
                raise InvalidInput(
                    f"source {self.name!r}, table {t.name!r} has {what}: name its key "
                    "column in the mapping (key: <column>)",
                    code="missing_key",
                )
            return pk[0], True
        col = self._column(t, key)
        return col, len(pk) == 1 and pk[0].name == col.name

    def columns(self, table: str) -> list[str]:
        return [c.name for c in self._table(table).columns]

    # -- reading ---------------------------------------------------------

    def _fetch(self, table: str, stmt: sa.Select[Any]) -> list[sa.Row[Any]]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(stmt).all())
        except SQLAlchemyError:
            self._check_exists(table)  # dropped since reflected?
            raise

    @staticmethod
    def _row(names: list[str], row: sa.Row[Any], key: str) -> SourceRow:
        return SourceRow(key, {n: as_text(v) for n, v in zip(names, row, strict=True)})

    def read(
        self,
        table: str,
        *,
        key: str | None,
        watermark: str | None,
        batch_size: int = 5000,
    ) -> Iterator[SourceBatch]:
        t = self._table(table)
        col, unique = self._key(t, key)
        names = [c.name for c in t.columns]
        at = names.index(col.name)
        last: Any = None
        wm_order: str | None = None
        if watermark:
            try:
                wm = json.loads(watermark)
                if wm["key"] == col.name:
                    last = _load_key(wm["type"], wm["last"])
                    wm_order = wm.get("order")
            except (ValueError, KeyError, TypeError, AttributeError):
                last = None  # not ours: read everything again
        if watermark is None:
            yield from self._null_keys(table, t, col, names, batch_size)
        # Text keys that hold only digits are ordered as the numbers they spell
        # (length first: "1247" after "999"); other text keys as text. The choice is
        # made on the first read and kept in the watermark.
        order_kind = "native"
        if isinstance(col.type, sa.String):
            order_kind = str(wm_order) if wm_order else self._text_order(table, t, col)
        textual = order_kind == "digits"
        width = sa.func.length(col)
        order = (width, col) if textual else (col,)
        base = sa.select(t).where(col.is_not(None)).order_by(*order)
        while True:
            stmt = base.limit(batch_size)
            if last is not None and textual:
                size = len(str(last))
                stmt = stmt.where(sa.or_(width > size, sa.and_(width == size, col > str(last))))
            elif last is not None:
                stmt = stmt.where(col > last)
            rows = self._fetch(table, stmt)
            full = len(rows) == batch_size
            if full and not unique:
                # rows sharing the last key all go in this batch: the next
                # one starts after that key
                tie = rows[-1][at]
                rows = [r for r in rows if r[at] != tie]
                rows += self._fetch(table, sa.select(t).where(col == tie))
            if not rows:
                break
            last = rows[-1][at]
            kind, value = _dump_key(last)
            mark = json.dumps(
                {"key": col.name, "type": kind, "last": value, "order": order_kind},
                ensure_ascii=False,
                sort_keys=True,
            )
            out = [self._row(names, r, as_text(r[at]) or "") for r in rows]
            yield SourceBatch(rows=out, watermark=mark)
            if not full:
                break

    def _text_order(self, table: str, t: sa.Table, col: sa.Column[Any]) -> str:
        """ "digits" when every key is a digit string (compared as numbers), else "text"."""
        if self.engine.dialect.name == "postgresql":
            other = col.op("~")("[^0-9]")
        else:
            other = col.op("GLOB")("*[^0-9]*")
        stmt = sa.select(sa.literal(1)).select_from(t).where(col.is_not(None), other).limit(1)
        return "text" if self._fetch(table, stmt) else "digits"

    def _null_keys(
        self, table: str, t: sa.Table, col: sa.Column[Any], names: list[str], batch_size: int
    ) -> Iterator[SourceBatch]:
        """Rows without a key cannot be paged nor resumed: reported on a full
        read (no watermark), once."""
        stmt = sa.select(t).where(col.is_(None))
        batch = SourceBatch()
        try:
            with self.engine.connect() as conn:
                result = conn.execution_options(yield_per=batch_size).execute(stmt)
                for n, r in enumerate(result, start=1):
                    values = {k: as_text(v) for k, v in zip(names, r, strict=True)}
                    batch.rejects.append(
                        RawReject(
                            f"null:{n}",
                            "missing_key",
                            f"table {table}: key column {col.name!r} is empty",
                            json.dumps(values, ensure_ascii=False),
                        )
                    )
                    if len(batch.rejects) >= batch_size:
                        yield batch
                        batch = SourceBatch()
        except SQLAlchemyError:
            self._check_exists(table)
            raise
        if batch.rejects:
            yield batch

    def _check_exists(self, table: str) -> None:
        """SourceMissing if `table` has gone (after a query failed)."""
        if table not in self.tables():
            raise SourceMissing(self.name, table, f"table {table!r} in {self._where()}")

    def read_where(
        self,
        table: str,
        column: str,
        values: Collection[str],
        *,
        batch_size: int = 5000,
        key: str | None = None,
    ) -> Iterator[SourceBatch]:
        t = self._table(table)
        col = self._column(t, column)
        pk = list(t.primary_key.columns)
        kcol = self._column(t, key) if key is not None else pk[0] if len(pk) == 1 else None
        names = [c.name for c in t.columns]
        at = names.index(kcol.name) if kcol is not None else -1
        wanted = sorted({v for v in (_as_type(col, x) for x in values) if v is not None}, key=str)
        batch = SourceBatch()
        for i in range(0, len(wanted), _IN_CHUNK):
            stmt = sa.select(t).where(col.in_(wanted[i : i + _IN_CHUNK]))
            if kcol is not None:
                stmt = stmt.order_by(kcol)
            try:
                with self.engine.connect() as conn:
                    result = conn.execution_options(yield_per=batch_size).execute(stmt)
                    for n, r in enumerate(result, start=1):
                        k = as_text(r[at]) if at >= 0 else None
                        batch.rows.append(self._row(names, r, k or f"{i}:{n}"))
                        if len(batch.rows) >= batch_size:
                            yield batch
                            batch = SourceBatch()
            except SQLAlchemyError:
                self._check_exists(table)
                raise
        if batch.rows:
            yield batch

    def sample(self, table: str, n: int = 1000) -> list[SourceRow]:
        t = self._table(table)
        pk = list(t.primary_key.columns)
        names = [c.name for c in t.columns]
        stmt = sa.select(t).limit(n)
        at = names.index(pk[0].name) if len(pk) == 1 else -1
        if at >= 0:
            stmt = stmt.order_by(pk[0])
        rows = self._fetch(table, stmt)
        return [
            self._row(names, r, (as_text(r[at]) if at >= 0 else None) or str(i))
            for i, r in enumerate(rows, start=1)
        ]

    def close(self) -> None:
        self.engine.dispose()


def _as_type(col: sa.Column[Any], text: str) -> Any:
    """`text` in the column's Python type for comparing (None: cannot match)."""
    try:
        kind = col.type.python_type
    except NotImplementedError:
        return text
    try:
        if kind is int:
            return int(text)
        if kind in (float, Decimal):
            return kind(text)
        if kind is dt.datetime:
            return dt.datetime.fromisoformat(text)
        if kind is dt.date:
            return dt.date.fromisoformat(text)
    except ValueError:
        return None
    return text
