"""The CSV connector on real files: formats, encodings, broken records, watermarks."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest

from edge_node.pipeline.connectors import Connector, SourceMissing, open_connector
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow
from shared_cdm.errors import InvalidInput

HEADER = "sample_id,patient_id,item_name,value,unit\n"


def lab_lines(start: int, stop: int) -> str:
    return "".join(f"S{i},P{i % 3},CEA,{i}.5,ng/mL\n" for i in range(start, stop))


def connector(path: Path | str, base: Path, **spec: str) -> Connector:
    return open_connector("lis", {"kind": "csv", "path": str(path), **spec}, base)


def read_all(
    conn: Connector,
    table: str,
    *,
    key: str | None = None,
    watermark: str | None = None,
    batch_size: int = 5000,
) -> tuple[list[SourceRow], list[RawReject], list[SourceBatch]]:
    batches = list(conn.read(table, key=key, watermark=watermark, batch_size=batch_size))
    rows = [r for b in batches for r in b.rows]
    rejects = [r for b in batches for r in b.rejects]
    return rows, rejects, batches


def test_reads_rows_as_text_with_empty_as_none(tmp_path: Path) -> None:
    (tmp_path / "lab.csv").write_text(HEADER + "S1,P1,CEA,5.20,ng/mL\nS2,P1,AFP,,\n")
    conn = connector("lab.csv", tmp_path)
    assert conn.tables() == ["lab"]
    assert conn.columns("lab") == ["sample_id", "patient_id", "item_name", "value", "unit"]
    rows, rejects, _ = read_all(conn, "lab")
    assert rejects == []
    assert [r.key for r in rows] == ["1", "2"]
    assert rows[0].values == {
        "sample_id": "S1",
        "patient_id": "P1",
        "item_name": "CEA",
        "value": "5.20",
        "unit": "ng/mL",
    }
    assert rows[1].values["value"] is None and rows[1].values["unit"] is None
    keyed, _, _ = read_all(conn, "lab", key="sample_id")
    assert [r.key for r in keyed] == ["S1", "S2"]


def test_resume_after_two_batches_gives_exactly_the_rest(tmp_path: Path) -> None:
    (tmp_path / "lab.csv").write_text(HEADER + lab_lines(1, 11))
    conn = connector(tmp_path / "lab.csv", tmp_path)
    batches = conn.read("lab", key="sample_id", watermark=None, batch_size=3)
    first, second = next(batches), next(batches)
    assert [r.key for r in first.rows + second.rows] == ["S1", "S2", "S3", "S4", "S5", "S6"]
    rest, _, _ = read_all(conn, "lab", key="sample_id", watermark=second.watermark)
    assert [r.key for r in rest] == ["S7", "S8", "S9", "S10"]
    # record numbers go on from the watermark
    numbered, _, _ = read_all(conn, "lab", watermark=second.watermark)
    assert [r.key for r in numbered] == ["7", "8", "9", "10"]


def test_appended_rows_are_all_a_resume_gives(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    path.write_text(HEADER + lab_lines(1, 4))
    conn = connector(path, tmp_path)
    rows, _, batches = read_all(conn, "lab")
    assert len(rows) == 3
    mark = batches[-1].watermark
    assert read_all(conn, "lab", watermark=mark)[2] == []  # nothing new: no batch
    with path.open("a") as fh:
        fh.write(lab_lines(4, 6))
    new, _, _ = read_all(conn, "lab", watermark=mark)
    assert [(r.key, r.values["sample_id"]) for r in new] == [("4", "S4"), ("5", "S5")]


def test_changed_head_or_shorter_file_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    path.write_text(HEADER + lab_lines(1, 6))
    conn = connector(path, tmp_path)
    mark = read_all(conn, "lab")[2][-1].watermark
    path.write_text(HEADER + "S1,P9,CEA,9.9,ng/mL\n" + lab_lines(2, 7))  # first row edited
    again, _, _ = read_all(conn, "lab", key="sample_id", watermark=mark)
    assert [r.key for r in again] == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert again[0].values["patient_id"] == "P9"
    mark = read_all(conn, "lab")[2][-1].watermark
    path.write_text(HEADER + "S1,P9,CEA,9.9,ng/mL\n")  # same head, shorter than the offset
    assert [r.key for r in read_all(conn, "lab", key="sample_id", watermark=mark)[0]] == ["S1"]


def test_gbk_file_is_detected_and_decoded(tmp_path: Path) -> None:
    text = "标本号,病人ID,项目名称,结果,单位\n" + "".join(
        f"B{i},P{i},癌胚抗原,{i}.1,ng/mL\n" for i in range(20)
    )
    (tmp_path / "检验.csv").write_text(text, encoding="gbk")
    conn = connector(tmp_path, tmp_path, encoding="auto")
    assert conn.tables() == ["检验"]
    assert conn.columns("检验") == ["标本号", "病人ID", "项目名称", "结果", "单位"]
    rows, rejects, batches = read_all(conn, "检验", key="标本号")
    assert rejects == [] and len(rows) == 20
    assert rows[3].values == {
        "标本号": "B3",
        "病人ID": "P3",
        "项目名称": "癌胚抗原",
        "结果": "3.1",
        "单位": "ng/mL",
    }
    assert json.loads(batches[-1].watermark or "")["encoding"] == "gb18030"


def test_given_encoding_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "lab.csv").write_bytes("id,name\n1,Müller\n".encode("latin-1"))
    rows, _, _ = read_all(connector("lab.csv", tmp_path, encoding="latin-1"), "lab")
    assert rows[0].values["name"] == "Müller"


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    (tmp_path / "lab.csv").write_text(HEADER + lab_lines(1, 3), encoding="utf-8-sig")
    conn = connector("lab.csv", tmp_path)
    assert conn.columns("lab")[0] == "sample_id"
    rows, _, batches = read_all(conn, "lab", key="sample_id")
    assert [r.key for r in rows] == ["S1", "S2"]
    assert json.loads(batches[-1].watermark or "")["bom"] == 3


def test_utf16_bom_file_reads_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    path.write_text(HEADER + "S1,P1,癌胚抗原,1,u\nS2,P2,甲胎蛋白,2,u\n", encoding="utf-16")
    conn = connector(path, tmp_path)
    rows, _, batches = read_all(conn, "lab", key="sample_id", batch_size=1)
    assert [r.values["item_name"] for r in rows] == ["癌胚抗原", "甲胎蛋白"]
    rest, _, _ = read_all(conn, "lab", key="sample_id", watermark=batches[0].watermark)
    assert [r.key for r in rest] == ["S2"]


def test_invalid_byte_rejects_only_its_record(tmp_path: Path) -> None:
    good = "".join(f"S{i},P{i},癌胚抗原{i},1.{i},ng/mL\n" for i in range(12))
    data = (
        (HEADER + good).encode()
        + b"S99,P99,bad\xff\xfename,2,u\n"
        + "S100,P1,甲胎蛋白,3,u\n".encode()
    )
    (tmp_path / "lab.csv").write_bytes(data)
    rows, rejects, batches = read_all(connector("lab.csv", tmp_path), "lab", key="sample_id")
    assert len(rows) == 13 and rows[-1].values["item_name"] == "甲胎蛋白"
    assert rows[5].values["item_name"] == "癌胚抗原5"
    assert [(r.key, r.code) for r in rejects] == [("13", "invalid_encoding")]
    assert "lab.csv line 14" in rejects[0].reason
    assert rejects[0].raw == "S99,P99,bad\\xff\\xfename,2,u\n"
    assert json.loads(batches[-1].watermark or "")["encoding"] == "utf-8"


def test_quoted_fields_keep_newlines_and_delimiters(tmp_path: Path) -> None:
    text = (
        HEADER
        + 'S1,P1,"CEA, serum","5.2","ng/mL"\n'
        + 'S2,P1,"line one\nline two\r\nthree",1,u\n'
        + 'S3,P2,"say ""hi""",2,u\n'
    )
    (tmp_path / "lab.csv").write_bytes(text.encode())
    rows, rejects, _ = read_all(connector("lab.csv", tmp_path), "lab", key="sample_id")
    assert rejects == []
    assert [r.values["item_name"] for r in rows] == [
        "CEA, serum",
        "line one\nline two\r\nthree",
        'say "hi"',
    ]


def test_wrong_field_counts_are_rejected_with_file_and_line(tmp_path: Path) -> None:
    text = (
        HEADER + "S1,P1,CEA,1,u\nS2,P1,CEA\nS3,P1,CEA,1,u,extra\nS4,P1,CEA,1,u,\n\nS5,P1,CEA,1,u\n"
    )
    (tmp_path / "lab.csv").write_text(text)
    rows, rejects, _ = read_all(connector("lab.csv", tmp_path), "lab")
    # one trailing delimiter is tolerated; a blank line is no record
    assert [(r.key, r.values["sample_id"]) for r in rows] == [("1", "S1"), ("4", "S4"), ("5", "S5")]
    assert [(r.key, r.code) for r in rejects] == [("2", "truncated_row"), ("3", "extra_fields")]
    assert rejects[0].reason == "lab.csv line 3: 3 fields, the header has 5"
    assert rejects[0].raw == "S2,P1,CEA\n"
    assert rejects[1].reason.startswith("lab.csv line 4: 6 fields")


def test_truncated_last_line_is_rejected_then_read_once_finished(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    path.write_text(HEADER + lab_lines(1, 3) + "S3,P0,CE")
    conn = connector(path, tmp_path)
    rows, rejects, batches = read_all(conn, "lab", key="sample_id")
    assert [r.key for r in rows] == ["S1", "S2"]
    assert [(r.key, r.code, r.raw) for r in rejects] == [("3", "truncated_row", "S3,P0,CE")]
    mark = json.loads(batches[-1].watermark or "")
    assert mark["records"] == 2  # the watermark stops before the unfinished line
    with path.open("a") as fh:
        fh.write("A,1.5,ng/mL\nS4,P1,CEA,4,u\n")
    rest, rejects, _ = read_all(conn, "lab", watermark=batches[-1].watermark)
    assert [(r.key, r.values["item_name"]) for r in rest] == [("3", "CEA"), ("4", "CEA")]
    assert rejects == []


def test_file_ending_inside_quotes_rejects_the_last_record(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    path.write_text(HEADER + 'S1,P1,CEA,1,u\nS2,P1,"unfinished\nnote')
    rows, rejects, batches = read_all(connector(path, tmp_path), "lab")
    assert [r.values["sample_id"] for r in rows] == ["S1"]
    assert [(r.key, r.code) for r in rejects] == [("2", "truncated_row")]
    assert "ends inside a quoted field" in rejects[0].reason
    assert rejects[0].raw == 'S2,P1,"unfinished\nnote'
    assert json.loads(batches[-1].watermark or "")["records"] == 1


def test_malformed_quotes_reject_one_record(tmp_path: Path) -> None:
    text = HEADER + 'S1,P1,"CEA"x,1,u\nS2,P1,CEA,1,u\n'
    (tmp_path / "lab.csv").write_text(text)
    rows, rejects, _ = read_all(connector("lab.csv", tmp_path), "lab")
    assert [r.values["sample_id"] for r in rows] == ["S2"]
    assert [(r.key, r.code, r.raw) for r in rejects] == [
        ("1", "malformed_row", 'S1,P1,"CEA"x,1,u\n')
    ]


@pytest.mark.parametrize(
    ("name", "delimiter", "spec"),
    [
        ("lab.tsv", "\t", {}),
        ("lab.txt", "|", {}),
        ("lab.csv", ";", {"delimiter": "auto"}),
        ("lab.txt", "\t", {"delimiter": "\\t"}),
    ],
)
def test_delimiters_are_sniffed_or_given(
    tmp_path: Path, name: str, delimiter: str, spec: dict[str, str]
) -> None:
    lines = [["sample_id", "item_name", "value"], ["S1", "CEA, serum", "5.2"], ["S2", "AFP", "7"]]
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(lines)
    (tmp_path / name).write_text(buf.getvalue())
    rows, _, _ = read_all(connector(name, tmp_path, **spec), "lab", key="sample_id")
    assert [r.values for r in rows] == [
        {"sample_id": "S1", "item_name": "CEA, serum", "value": "5.2"},
        {"sample_id": "S2", "item_name": "AFP", "value": "7"},
    ]


def test_bare_cr_line_ends(tmp_path: Path) -> None:
    (tmp_path / "lab.csv").write_bytes(
        HEADER.replace("\n", "\r").encode() + b"S1,P1,CEA,1,u\rS2,P2,AFP,2,u\r"
    )
    rows, rejects, batches = read_all(
        connector("lab.csv", tmp_path), "lab", key="sample_id", batch_size=1
    )
    assert [r.key for r in rows] == ["S1", "S2"] and rejects == []
    rest, _, _ = read_all(connector("lab.csv", tmp_path), "lab", watermark=batches[0].watermark)
    assert [r.values["sample_id"] for r in rest] == ["S2"]


def test_folder_and_glob_give_one_table_per_file(tmp_path: Path) -> None:
    lis = tmp_path / "lis"
    lis.mkdir()
    (lis / "lab.csv").write_text(HEADER + lab_lines(1, 3))
    (lis / "micro.tsv").write_text("id\torganism\n1\tE. coli\n")
    (lis / "notes.md").write_text("not a table")
    assert connector("lis/", tmp_path).tables() == ["lab", "micro"]
    assert connector("lis/*.tsv", tmp_path).tables() == ["micro"]
    rows, _, _ = read_all(connector("lis", tmp_path), "micro")
    assert rows[0].values == {"id": "1", "organism": "E. coli"}


def test_missing_or_removed_file_is_source_missing(tmp_path: Path) -> None:
    lis = tmp_path / "lis"
    lis.mkdir()
    (lis / "lab.csv").write_text(HEADER + lab_lines(1, 3))
    conn = connector("lis", tmp_path)
    mark = read_all(conn, "lab")[2][-1].watermark
    (lis / "lab.csv").unlink()
    with pytest.raises(SourceMissing) as err:
        read_all(conn, "lab", watermark=mark)
    assert err.value.code == "source_missing"
    assert "'lis'" in str(err.value) and "'lab'" in str(err.value)
    with pytest.raises(SourceMissing, match=r"file or folder .*nowhere"):
        connector("nowhere/", tmp_path).tables()


def test_missing_key_column_and_empty_keys(tmp_path: Path) -> None:
    (tmp_path / "lab.csv").write_text(HEADER + "S1,P1,CEA,1,u\n,P1,AFP,2,u\n")
    conn = connector("lab.csv", tmp_path)
    with pytest.raises(SourceMissing, match="key column 'sample_no'"):
        read_all(conn, "lab", key="sample_no")
    rows, rejects, _ = read_all(conn, "lab", key="sample_id")
    assert [r.key for r in rows] == ["S1"]
    assert [(r.key, r.code) for r in rejects] == [("2", "missing_key")]


def test_read_where_and_sample(tmp_path: Path) -> None:
    (tmp_path / "lab.csv").write_text(HEADER + lab_lines(1, 10))
    conn = connector("lab.csv", tmp_path)
    batches = list(conn.read_where("lab", "patient_id", ["P1", "P9"], batch_size=2))
    assert [r.values["sample_id"] for b in batches for r in b.rows] == ["S1", "S4", "S7"]
    assert all(b.watermark is None for b in batches) and len(batches) == 2
    assert [r.key for r in conn.sample("lab", 4)] == ["1", "2", "3", "4"]


def test_large_file_across_blocks_matches_the_csv_module(tmp_path: Path) -> None:
    """Records spanning block boundaries, resumed from every watermark."""
    rnd = random.Random(7)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["id", "text", "value"])
    for i in range(60_000):
        text = "多行\n文本" * rnd.randint(0, 3) if i % 7 == 0 else "plain, text" * rnd.randint(1, 5)
        writer.writerow([f"R{i}", text, f"{rnd.random():.4f}"])
    path = tmp_path / "big.csv"
    path.write_bytes(out.getvalue().encode())
    assert path.stat().st_size > 2 * (1 << 20)
    expected = list(csv.reader(io.StringIO(out.getvalue(), newline="")))[1:]
    conn = connector(path, tmp_path)
    batches = list(conn.read("big", key="id", watermark=None, batch_size=7000))
    got = [[r.key, r.values["text"] or "", r.values["value"]] for b in batches for r in b.rows]
    assert got == expected
    for i, batch in enumerate(batches[:-1]):
        rest, _, _ = read_all(conn, "big", key="id", watermark=batch.watermark, batch_size=9000)
        assert [r.key for r in rest] == [row[0] for row in expected[(i + 1) * 7000 :]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "xls", "path": "a"}, "unknown kind 'xls'"),
        ({"kind": "csv"}, "missing path"),
        ({"kind": "csv", "path": "a", "encodng": "gbk"}, "unknown key(s) encodng"),
        ({"kind": "csv", "path": "a", "delimiter": ",,"}, "delimiter must be one character"),
        ({"kind": "csv", "path": "a", "encoding": "klingon"}, "unknown encoding 'klingon'"),
        ({"kind": "sql", "url": 5}, "url must be text"),
    ],
)
def test_bad_source_specs_are_invalid_input(
    tmp_path: Path, spec: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        open_connector("lis", spec, tmp_path)
    assert message in str(err.value) and "'lis'" in str(err.value)
