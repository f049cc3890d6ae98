"""Registering flat datasets from CSV: encodings, names as written, versions, bad files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from edge_node.datasets import add_dataset, decode_csv, load_table, remove_dataset
from shared_cdm.errors import InvalidInput, NotFound
from tests.unit.edge_node.conftest import EdgeDbs

CHINESE_CSV = "id,性别,ph.ecog,诊断\n1,男,1,肺腺癌\n2,女,,鳞状细胞癌\n3,男,0,肺腺癌\n"


def _rows(dbs: EdgeDbs, table: str) -> pd.DataFrame:
    with dbs.analysis.connect() as conn:
        return pd.read_sql(sa.text(f'SELECT * FROM "{table}" ORDER BY id'), conn)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_csv_in_utf8_or_gbk_keeps_names_and_chinese_values(
    edge_dbs: EdgeDbs, tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "lung.csv"
    path.write_bytes(CHINESE_CSV.encode(encoding))
    record = add_dataset(
        "lung", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry
    )
    assert record.columns == ("id", "性别", "ph.ecog", "诊断")
    assert record.row_count == 3
    assert record.table_name == "ds_lung"
    frame = _rows(edge_dbs, "ds_lung")
    assert list(frame["性别"]) == ["男", "女", "男"]
    assert list(frame["诊断"]) == ["肺腺癌", "鳞状细胞癌", "肺腺癌"]
    assert frame["ph.ecog"].isna().tolist() == [False, True, False]
    assert edge_dbs.registry.get("lung").info().columns == record.columns
    table = load_table(edge_dbs.analysis, record)
    # pandas inferred the types: numbers stay numbers in SQL.
    assert isinstance(table.c["id"].type, sa.Integer)
    assert isinstance(table.c["ph.ecog"].type, sa.Float)


def test_version_is_the_file_hash_and_changes_with_content(
    edge_dbs: EdgeDbs, tmp_path: Path
) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,age\n1,60\n2,70\n", encoding="utf-8")
    first = add_dataset("a", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    again = add_dataset("a", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    assert again.version == first.version
    path.write_text("id,age\n1,60\n2,71\n3,44\n", encoding="utf-8")
    changed = add_dataset("a", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    assert changed.version != first.version
    # Re-adding replaces the rows and the registration, it does not append.
    assert list(_rows(edge_dbs, "ds_a")["age"]) == [60, 71, 44]
    assert [r.version for r in edge_dbs.registry.all()] == [changed.version]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,age\n1,60\n2,70,extra\n", "line 3 has 3 fields, the header has 2"),
        (b"id,age\n1,60\n2\n", "line 3 has 1 fields, the header has 2"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        (bytes(range(256)) * 4, "binary"),
        (bytes(range(1, 256)) * 4, "binary"),
        (b"id,id\n1,2\n", "column 'id' appears twice"),
        (b"id,,age\n1,2,3\n", "column 2 has no name"),
        (b"", "no header"),
    ],
)
def test_malformed_csv_is_rejected_and_leaves_no_table(
    edge_dbs: EdgeDbs, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        add_dataset("bad", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    assert "ds_bad" not in sa.inspect(edge_dbs.analysis).get_table_names()
    assert edge_dbs.registry.find("bad") is None


def test_text_in_an_unknown_encoding_is_named_as_such() -> None:
    # Latin-1 "é" followed by a byte no GB18030 sequence accepts.
    with pytest.raises(InvalidInput, match="UTF-8 or GBK/GB18030"):
        decode_csv("id,name\n1,caf\xe9\xff\n".encode("latin-1"), "x.csv")


def test_bad_name_and_missing_file(edge_dbs: EdgeDbs, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="dataset name"):
        add_dataset(
            "Drop Table",
            tmp_path / "x.csv",
            analysis_engine=edge_dbs.analysis,
            registry=edge_dbs.registry,
        )
    with pytest.raises(NotFound, match="cannot read"):
        add_dataset(
            "x",
            tmp_path / "absent.csv",
            analysis_engine=edge_dbs.analysis,
            registry=edge_dbs.registry,
        )


def test_remove_drops_table_and_registration(edge_dbs: EdgeDbs, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,age\n1,60\n", encoding="utf-8")
    add_dataset("a", path, analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    remove_dataset("a", analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
    assert "ds_a" not in sa.inspect(edge_dbs.analysis).get_table_names()
    with pytest.raises(NotFound, match="no dataset 'a'"):
        edge_dbs.registry.get("a")
    with pytest.raises(NotFound):
        remove_dataset("a", analysis_engine=edge_dbs.analysis, registry=edge_dbs.registry)
