"""The bulk paths of `dbutil` (binary COPY, staging tables, JSON key lists) leave
exactly what the row-by-row statements they replace leave."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from edge_node.pipeline import dbutil


def _table() -> sa.Table:
    return sa.Table(
        "perf_probe",
        sa.MetaData(),
        sa.Column("k", sa.String(20), primary_key=True),
        sa.Column("n", sa.BigInteger),
        sa.Column("offset", sa.Float),  # SQL keywords, as OMOP has (note_nlp.offset)
        sa.Column("d", sa.Date),
        sa.Column("at", sa.DateTime),  # written with aware values, as the quarantine is
        sa.Column("doc", sa.JSON),
        sa.Column("order", sa.Integer),
        sa.Column("flag", sa.Boolean, default=True, nullable=False),
    )


def _rows(n: int, run: int) -> list[dict[str, Any]]:
    at = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    return [
        {
            "k": f"key'\"{i % (n - 3)}",  # a few repeated keys: the later row wins
            "n": i * 7,
            "offset": i / 3,
            "d": date(2020, 1, 1) + timedelta(days=i),
            "at": at + timedelta(minutes=i),
            "doc": {"raw": f"row {i}", "run": run},
            "order": run,
        }
        for i in range(n)
    ]


def _write(url: str, n: int, threshold: int, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setattr(dbutil, "COPY_THRESHOLD", threshold)
    table = _table()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            table.drop(conn, checkfirst=True)
            table.create(conn)
        for run in (1, 2):
            with engine.begin() as conn:
                dbutil.upsert(conn, table, _rows(n, run), insert_only=["order"])
        with engine.begin() as conn:
            dbutil.update_rows(
                conn, table, "k", [{"k": f"key'\"{i % 50}", "offset": -i} for i in range(n)]
            )
        with engine.connect() as conn:
            keys = [f"key'\"{i}" for i in range(0, n, 2)] + ["absent" * 5]
            found = {r.k for r in dbutil.select_in(conn, table, "k", keys)}
            assert found == {k for k in keys if k != "absent" * 5 and int(k[5:]) < n - 3}
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.k))]
    finally:
        with engine.begin() as conn:
            table.drop(conn, checkfirst=True)
        engine.dispose()


def test_bulk_paths_match_row_by_row(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bulk = _write(db_url, 300, 200, monkeypatch)  # COPY on PostgreSQL
    plain = _write(db_url, 300, 10**9, monkeypatch)  # executemany everywhere
    assert bulk == plain
    assert {row[6] for row in bulk} == {1}  # insert-only kept its first value


def test_dedupe_keeps_what_sequential_upserts_keep() -> None:
    rows = [{"k": 1, "v": "a", "f": 1}, {"k": 1, "v": "b", "f": 2}, {"k": 2, "v": "c", "f": 3}]
    assert dbutil._dedupe(rows, ["k"], True, ["f"]) == [
        {"k": 1, "v": "b", "f": 1},
        {"k": 2, "v": "c", "f": 3},
    ]
    assert dbutil._dedupe(rows, ["k"], False, []) == [rows[0], rows[2]]
