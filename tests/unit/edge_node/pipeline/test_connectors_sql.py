"""The SQL connector on real SQLite and PostgreSQL databases (`db_url`)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edge_node.pipeline.connectors import Connector, SourceMissing, open_connector
from edge_node.pipeline.connectors.sql import as_text
from edge_node.pipeline.records import SourceBatch
from shared_cdm.errors import InvalidInput

LAB = "检验结果"  # a Chinese table name with Chinese and mixed-case columns


def make_lab(engine: sa.Engine, n: int) -> sa.Table:
    meta = sa.MetaData()
    lab = sa.Table(
        LAB,
        meta,
        sa.Column("标本号", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("PatientID", sa.String(20)),
        sa.Column("项目名称", sa.String(50)),
        sa.Column("结果", sa.Float),
        sa.Column("Amount", sa.Numeric(10, 2)),
        sa.Column("报告日期", sa.DateTime),
    )
    meta.create_all(engine)
    insert_lab(engine, lab, range(1, n + 1))
    return lab


def insert_lab(engine: sa.Engine, lab: sa.Table, ids: range) -> None:
    with engine.begin() as conn:
        conn.execute(
            lab.insert(),
            [
                {
                    "标本号": i,
                    "PatientID": f"P{i % 4}",
                    "项目名称": "癌胚抗原" if i % 2 else "",
                    "结果": 500.0 if i == 1 else i + 0.25,
                    "Amount": Decimal("5.20"),
                    "报告日期": dt.datetime(2024, 1, 2, 10, 30) if i % 3 else None,
                }
                for i in ids
            ],
        )


@pytest.fixture
def engine(db_url: str) -> Any:
    eng = sa.create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def conn(db_url: str, engine: sa.Engine, tmp_path: Path) -> Any:
    with engine.connect():  # creates the SQLite file
        pass
    c = open_connector("emr", {"kind": "sql", "url": db_url}, tmp_path)
    yield c
    c.close()


def keys(batches: list[SourceBatch]) -> list[str]:
    return [r.key for b in batches for r in b.rows]


def test_tables_columns_and_text_values(engine: sa.Engine, conn: Connector) -> None:
    make_lab(engine, 3)
    assert LAB in conn.tables()
    assert conn.columns(LAB) == ["标本号", "PatientID", "项目名称", "结果", "Amount", "报告日期"]
    rows = [r for b in conn.read(LAB, key=None, watermark=None) for r in b.rows]
    assert [r.key for r in rows] == ["1", "2", "3"]
    first, second = rows[0].values, rows[1].values
    assert first["结果"] == "500.0"  # a REAL keeps its digits
    assert first["PatientID"] == "P1" and first["项目名称"] == "癌胚抗原"
    assert first["报告日期"] == "2024-01-02T10:30:00"
    assert Decimal(str(first["Amount"])) == Decimal("5.20")
    assert second["项目名称"] is None  # '' is None, like NULL
    assert rows[2].values["报告日期"] is None


def test_text_rendering_keeps_digits() -> None:
    assert as_text(Decimal("5.20")) == "5.20"
    assert as_text(Decimal("1E+2")) == "100"
    assert as_text(0.1) == "0.1"
    assert as_text(12345678901234567890) == "12345678901234567890"
    assert as_text(dt.date(2024, 1, 2)) == "2024-01-02"
    assert as_text(True) == "true"
    assert as_text("") is None


def test_resume_after_two_batches_and_new_rows(engine: sa.Engine, conn: Connector) -> None:
    lab = make_lab(engine, 10)
    batches = conn.read(LAB, key=None, watermark=None, batch_size=3)
    first, second = next(batches), next(batches)
    assert keys([first, second]) == ["1", "2", "3", "4", "5", "6"]
    mark = json.loads(second.watermark or "")
    assert mark == {"key": "标本号", "type": "int", "last": 6, "order": "native"}
    rest = list(conn.read(LAB, key=None, watermark=second.watermark, batch_size=3))
    assert keys(rest) == ["7", "8", "9", "10"]  # 9 < 10 compared as integers
    insert_lab(engine, lab, range(11, 13))
    new = list(conn.read(LAB, key=None, watermark=rest[-1].watermark, batch_size=3))
    assert keys(new) == ["11", "12"]
    assert list(conn.read(LAB, key=None, watermark=new[-1].watermark)) == []


def test_queries_are_keyset_pages(engine: sa.Engine, conn: Connector) -> None:
    make_lab(engine, 7)
    seen: list[str] = []
    target = conn.engine  # type: ignore[attr-defined]

    def log(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(target, "before_cursor_execute", log)
    batches = list(conn.read(LAB, key=None, watermark=None, batch_size=3))
    sa.event.remove(target, "before_cursor_execute", log)
    selects = [s for s in seen if "FROM" in s and LAB in s and "ORDER BY" in s]
    assert [len(b.rows) for b in batches] == [3, 3, 1]
    assert len(selects) == 3 and all("LIMIT" in s for s in selects)
    assert sum(">" in s for s in selects) == 2


def test_named_key_with_ties_loses_no_row(engine: sa.Engine, conn: Connector) -> None:
    make_lab(engine, 9)  # PatientID: P1 P2 P3 P0 P1 P2 P3 P0 P1
    batches = list(conn.read(LAB, key="PatientID", watermark=None, batch_size=2))
    got = sorted((r.key, r.values["标本号"]) for b in batches for r in b.rows)
    assert len(got) == 9
    assert [k for k, _ in got] == ["P0", "P0", "P1", "P1", "P1", "P2", "P2", "P3", "P3"]
    # a batch never splits one key value
    for batch in batches:
        last = batch.rows[-1].key
        later = [r.key for b in batches[batches.index(batch) + 1 :] for r in b.rows]
        assert last not in later
    mark = json.loads(batches[0].watermark or "")
    assert mark["type"] == "str"


def test_text_keys_in_chinese_resume(engine: sa.Engine, conn: Connector) -> None:
    meta = sa.MetaData()
    t = sa.Table(
        "Diagnoses",
        meta,
        sa.Column("诊断ID", sa.String(20), primary_key=True),
        sa.Column("诊断名称", sa.String(50)),
    )
    meta.create_all(engine)
    names = ["肺癌", "胃癌", "肝癌", "乳腺癌"]
    with engine.begin() as c:
        c.execute(
            t.insert(), [{"诊断ID": f"ZD{i:03d}", "诊断名称": n} for i, n in enumerate(names)]
        )
    batches = conn.read("Diagnoses", key=None, watermark=None, batch_size=2)
    first = next(batches)
    assert keys([first]) == ["ZD000", "ZD001"]
    rest = list(conn.read("Diagnoses", key=None, watermark=first.watermark))
    assert [r.values["诊断名称"] for b in rest for r in b.rows] == ["肝癌", "乳腺癌"]


def test_table_without_primary_key_needs_a_key(engine: sa.Engine, conn: Connector) -> None:
    with engine.begin() as c:
        c.execute(sa.text('CREATE TABLE "LabNoPk" (sample_id VARCHAR(10), val VARCHAR(10))'))
        c.execute(sa.text("INSERT INTO \"LabNoPk\" VALUES ('A1', '1'), ('A2', '2'), (NULL, '3')"))
    with pytest.raises(InvalidInput, match="name its key column") as err:
        list(conn.read("LabNoPk", key=None, watermark=None))
    assert err.value.code == "missing_key"
    batches = list(conn.read("LabNoPk", key="sample_id", watermark=None))
    assert keys(batches) == ["A1", "A2"]
    # a row without a key cannot be paged: reported on a full read
    rejects = [r for b in batches for r in b.rejects]
    assert [(r.code, json.loads(r.raw)["val"]) for r in rejects] == [("missing_key", "3")]
    resumed = list(conn.read("LabNoPk", key="sample_id", watermark=batches[-1].watermark))
    assert resumed == []


def test_missing_table_or_column_is_source_missing(engine: sa.Engine, conn: Connector) -> None:
    make_lab(engine, 5)
    with pytest.raises(SourceMissing) as err:
        list(conn.read("no_such_table", key=None, watermark=None))
    assert err.value.code == "source_missing" and "no_such_table" in str(err.value)
    with pytest.raises(SourceMissing, match="column 'patient_no'"):
        list(conn.read(LAB, key="patient_no", watermark=None))


def test_table_dropped_between_batches_is_source_missing(
    engine: sa.Engine, conn: Connector
) -> None:
    lab = make_lab(engine, 5)
    batches = conn.read(LAB, key=None, watermark=None, batch_size=2)
    assert keys([next(batches)]) == ["1", "2"]
    lab.drop(engine)
    with pytest.raises(SourceMissing, match=LAB):
        next(batches)
    assert LAB not in conn.tables()


def test_read_where_converts_values_to_the_column_type(engine: sa.Engine, conn: Connector) -> None:
    make_lab(engine, 12)
    batches = list(conn.read_where(LAB, "PatientID", ["P1", "P9"], batch_size=2))
    assert keys(batches) == ["1", "5", "9"]
    assert all(b.watermark is None for b in batches)
    by_id = list(conn.read_where(LAB, "标本号", ["3", "11", "x"]))
    assert keys(by_id) == ["3", "11"]


def test_sample_gives_the_first_rows(engine: sa.Engine, conn: Connector) -> None:
    make_lab(engine, 6)
    assert [r.key for r in conn.sample(LAB, 4)] == ["1", "2", "3", "4"]


def test_relative_sqlite_path_resolves_against_the_mapping_folder(tmp_path: Path) -> None:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'emr.db'}")
    make_lab(eng, 2)
    eng.dispose()
    conn = open_connector("emr", {"kind": "sql", "url": "sqlite:///emr.db"}, tmp_path)
    try:
        assert keys(list(conn.read(LAB, key=None, watermark=None))) == ["1", "2"]
    finally:
        conn.close()
    with pytest.raises(SourceMissing, match=r"missing\.db"):
        open_connector("emr", {"kind": "sql", "url": "sqlite:///missing.db"}, tmp_path)
    assert not (tmp_path / "missing.db").exists()


def test_foreign_watermark_starts_again(engine: sa.Engine, conn: Connector) -> None:
    make_lab(engine, 3)
    other_key = json.dumps({"key": "PatientID", "type": "str", "last": "P9"})
    assert keys(list(conn.read(LAB, key=None, watermark=other_key))) == ["1", "2", "3"]
    assert keys(list(conn.read(LAB, key=None, watermark='{"offset": 3}'))) == ["1", "2", "3"]
