"""The HL7 v2 connector on ORU^R01 (and ADT) message files written here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_node.pipeline.connectors import Connector, SourceMissing, open_connector
from edge_node.pipeline.connectors.hl7v2 import hl7_datetime
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow


def oru(control: str, mrn: str = "MRN0001", cea: str = "5.20") -> list[str]:
    """A lab report as an LIS sends it: patient, visit, one order, three results."""
    pv1 = "PV1|1|I|胸外科^301^02" + "|" * 16 + "ZY2024001"
    return [
        "MSH|^~\\&|LIS|XH_HOSP|EMR|XH_HOSP|20240303101500+0800||ORU^R01^ORU_R01"
        f"|{control}|P|2.5.1|||||CHN|UNICODE UTF-8",
        f"PID|1||{mrn}^^^XH_HOSP^MR~110101196001011234^^^CHN^NNCHN||王^建国||19600101|M|||"
        "东长安街1号^^北京市^北京市^100005^CHN||^PRN^CP^^^^^^^^^13900000001",
        pv1,
        "ORC|RE|ORD001|LAB001",
        "OBR|1|ORD001|LAB001|TUMOR^肿瘤标志物^L|||20240303083000",
        f"OBX|1|NM|2039-6^癌胚抗原^LN||{cea}|ng/mL|0-5|H|||F|||20240303093000",
        "OBX|2|SN|1834-1^甲胎蛋白^LN||<^0.5|ng/mL|0-7|N|||F",
        "OBX|3|CE|HBSAG^乙肝表面抗原^L||NEG^阴性^L||阴性|N|||F|||202403030945",
    ]


def write(path: Path, *messages: list[str], sep: str = "\r") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sep.join(sep.join(m) for m in messages).encode() + sep.encode())
    return path


def hl7v2(path: Path, base: Path) -> Connector:
    return open_connector("lis", {"kind": "hl7v2", "path": str(path)}, base)


def read_all(
    conn: Connector, table: str, watermark: str | None = None, batch_size: int = 5000
) -> tuple[list[SourceRow], list[RawReject], list[SourceBatch]]:
    batches = list(conn.read(table, key=None, watermark=watermark, batch_size=batch_size))
    return (
        [r for b in batches for r in b.rows],
        [r for b in batches for r in b.rejects],
        batches,
    )


def test_obx_rows_of_an_oru_message(tmp_path: Path) -> None:
    write(tmp_path / "hl7" / "lab.hl7", oru("MSG0001"))
    conn = hl7v2(tmp_path / "hl7", tmp_path)
    assert conn.tables() == ["OBX", "PID"]
    rows, rejects, _ = read_all(conn, "OBX")
    assert rejects == []
    assert [r.key for r in rows] == ["MSG0001/1", "MSG0001/2", "MSG0001/3"]
    assert rows[0].values == {
        "lab_id": "MSG0001/1",
        "patient_id": "MRN0001",
        "admission_id": "ZY2024001",
        "item_code": "2039-6",
        "item_name": "癌胚抗原",
        "value": "5.20",
        "unit": "ng/mL",
        "reference_range": "0-5",
        "result_date": "2024-03-03T09:30:00",
        "abnormal_flag": "H",
        "result_status": "F",
        "value_type": "NM",
        "message_id": "MSG0001",
    }
    assert rows[1].values["value"] == "<0.5"  # structured numeric
    assert rows[1].values["result_date"] == "2024-03-03T08:30:00"  # from OBR-7
    assert rows[2].values["value"] == "阴性"
    assert rows[2].values["result_date"] == "2024-03-03T09:45"


def test_pid_rows(tmp_path: Path) -> None:
    write(tmp_path / "lab.hl7", oru("MSG0001"), oru("MSG0002", mrn="MRN0002"))
    rows, _, _ = read_all(hl7v2(tmp_path / "lab.hl7", tmp_path), "PID")
    assert [r.key for r in rows] == ["MSG0001/PID", "MSG0002/PID"]
    assert rows[0].values == {
        "patient_id": "MRN0001",
        "name": "王建国",
        "sex": "M",
        "birth_date": "1960-01-01",
        "resident_id": "110101196001011234",
        "phone": "13900000001",
        "address": "北京市东长安街1号",
        "admission_id": "ZY2024001",
        "message_id": "MSG0001",
    }
    assert rows[1].values["patient_id"] == "MRN0002"


def test_garbage_message_between_two_good_ones(tmp_path: Path) -> None:
    garbage = [
        "MSH|^~\\&|LIS",
        "OBX|1|NM|X^Y||1",
        "@@@ corrupted transmission @@@",
        "OBX|2|NM|X^Y||2",
    ]
    write(tmp_path / "lab.hl7", oru("MSG0001"), garbage, oru("MSG0003", cea="6.10"), sep="\r\n")
    conn = hl7v2(tmp_path / "lab.hl7", tmp_path)
    rows, rejects, _ = read_all(conn, "OBX")
    assert [r.key for r in rows] == [f"MSG000{m}/{i}" for m in (1, 3) for i in (1, 2, 3)]
    assert rows[3].values["value"] == "6.10"
    assert [(r.key, r.code) for r in rejects] == [("lab.hl7 message 2", "invalid_hl7")]
    assert "corrupted transmission" in rejects[0].raw
    assert "lab.hl7 message 2" in rejects[0].reason
    # the broken message had no PID: not the PID table's
    pids, pid_rejects, _ = read_all(conn, "PID")
    assert len(pids) == 2 and pid_rejects == []


def test_text_between_messages_is_rejected_alone(tmp_path: Path) -> None:
    path = tmp_path / "lab.hl7"
    data = "\n".join(oru("MSG0001")) + "\nthis line is not HL7\n" + "\n".join(oru("MSG0002")) + "\n"
    path.write_text(data)
    conn = hl7v2(path, tmp_path)
    rows, rejects, _ = read_all(conn, "OBX")
    assert len(rows) == 6  # both messages whole
    assert [(r.key, r.code, r.raw) for r in rejects] == [
        ("lab.hl7 text after message 1", "invalid_hl7", "this line is not HL7")
    ]
    # text that cannot be tied to a table is reported to each
    assert [r.code for r in read_all(conn, "PID")[1]] == ["invalid_hl7"]


def test_bad_msh_and_mllp_framing(tmp_path: Path) -> None:
    framed = "\x0b" + "\r".join(oru("MSG0001")) + "\x1c\r"
    broken = "MSH\rPID|1||X^^^H^MR\rOBX|1|NM|A^B||1\r"
    (tmp_path / "lab.hl7").write_text(framed + broken)
    rows, rejects, _ = read_all(hl7v2(tmp_path / "lab.hl7", tmp_path), "PID")
    assert [r.values["patient_id"] for r in rows] == ["MRN0001"]
    assert [r.code for r in rejects] == ["invalid_hl7"]
    assert "field separator" in rejects[0].reason


def test_adt_message_gives_a_patient_but_no_results(tmp_path: Path) -> None:
    adt = oru("ADT0001")
    adt[0] = adt[0].replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01")
    write(tmp_path / "adt.hl7", adt)
    conn = hl7v2(tmp_path / "adt.hl7", tmp_path)
    assert read_all(conn, "OBX")[0] == []
    assert [r.key for r in read_all(conn, "PID")[0]] == ["ADT0001/PID"]


def test_watermark_resumes_in_a_file_and_picks_up_new_files(tmp_path: Path) -> None:
    folder = tmp_path / "hl7"
    write(folder / "a.hl7", oru("M1"), oru("M2"), oru("M3"))
    conn = hl7v2(folder, tmp_path)
    batches = conn.read("OBX", key=None, watermark=None, batch_size=3)
    first, second = next(batches), next(batches)
    assert [r.key for r in first.rows + second.rows] == [
        f"M{m}/{i}" for m in (1, 2) for i in (1, 2, 3)
    ]
    rest, _, done = read_all(conn, "OBX", watermark=second.watermark)
    assert [r.key for r in rest] == ["M3/1", "M3/2", "M3/3"]
    mark = done[-1].watermark
    assert read_all(conn, "OBX", watermark=mark)[0] == []

    write(folder / "b.txt", oru("M4"))
    new, _, after = read_all(conn, "OBX", watermark=mark)
    assert [r.key for r in new] == ["M4/1", "M4/2", "M4/3"]
    # a touched but unchanged file is not read again
    os.utime(folder / "a.hl7", ns=(10**18, 10**18))
    assert read_all(conn, "OBX", watermark=after[-1].watermark)[0] == []


@pytest.mark.parametrize("encoding", ["gb18030", "utf-16", "utf-8-sig"])
def test_file_encodings(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "lab.hl7"
    path.write_bytes("\r".join(oru("MSG0001")).encode(encoding))
    rows, rejects, _ = read_all(hl7v2(path, tmp_path), "OBX")
    assert rejects == [] and rows[0].values["item_name"] == "癌胚抗原"


def test_missing_table_or_path_is_source_missing(tmp_path: Path) -> None:
    write(tmp_path / "lab.hl7", oru("MSG0001"))
    conn = hl7v2(tmp_path / "lab.hl7", tmp_path)
    with pytest.raises(SourceMissing, match="OBR"):
        list(conn.read("OBR", key=None, watermark=None))
    (tmp_path / "lab.hl7").unlink()
    with pytest.raises(SourceMissing) as err:
        list(conn.read("OBX", key=None, watermark=None))
    assert err.value.code == "source_missing"


def test_read_where(tmp_path: Path) -> None:
    write(tmp_path / "lab.hl7", oru("M1"), oru("M2", mrn="MRN0002"), oru("M3"))
    conn = hl7v2(tmp_path / "lab.hl7", tmp_path)
    found = [r.key for b in conn.read_where("OBX", "patient_id", ["MRN0002"]) for r in b.rows]
    assert found == ["M2/1", "M2/2", "M2/3"]


@pytest.mark.parametrize(
    ("ts", "iso"),
    [
        ("20240303", "2024-03-03"),
        ("202403031015", "2024-03-03T10:15"),
        ("20240303101530", "2024-03-03T10:15:30"),
        ("20240303101530.25+0800", "2024-03-03T10:15:30.25+08:00"),
        ("2024030310", "2024-03-03T10:00"),
        ("20241303", "20241303"),  # not a date: as written
        ("yesterday", "yesterday"),
        ("", None),
    ],
)
def test_hl7_timestamps(ts: str, iso: str | None) -> None:
    assert hl7_datetime(ts) == iso
