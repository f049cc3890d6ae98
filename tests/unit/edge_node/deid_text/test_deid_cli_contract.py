"""`deid-text` against /work/shared/contracts/deid.md: fields, offsets, types, bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from edge_node.deid_text.cli import register

TYPES = {
    "NAME", "ID_NUMBER", "MRN", "PHONE", "EMAIL", "ADDRESS", "DATE", "AGE", "URL", "IP",
    "DEVICE_ID", "ORGANIZATION", "OTHER",
}  # fmt: skip


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _run(tmp_path: Path, lines: list[bytes], *extra: str) -> list[dict[str, object]]:
    src = tmp_path / "notes.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    secret = tmp_path / "pipeline.key"
    if not secret.exists():
        secret.write_bytes(bytes(range(32)))
        secret.chmod(0o600)
    out = tmp_path / "deid.jsonl"
    res = CliRunner().invoke(
        _app(),
        [
            "deid-text",
            "--in",
            str(src),
            "--out",
            str(out),
            "--site-secret-file",
            str(secret),
            *extra,
        ],
    )
    assert res.exit_code == 0, res.output
    return [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]


def _line(**rec: object) -> bytes:
    return json.dumps(rec, ensure_ascii=False).encode()


ZH = (
    "姓名：张三  住院号：A000000001  电话 138-1234-5678\n"
    "2021年3月4日入院，右肺上叶腺癌 cT3N2M0，予奥希替尼。"
)
EN = (
    "Name: SMITH, John   MRN: MRN0000001\n"
    "Admitted 4 Mar 2021. Pancoast tumour, cisplatin. Dr. Jones."
)


def test_output_fields_offsets_and_types(tmp_path: Path) -> None:
    recs = _run(
        tmp_path,
        [_line(id="a", lang="zh", text=ZH, patient_id="P1"), _line(id="b", lang="en", text=EN)],
    )
    assert [r["id"] for r in recs] == ["a", "b"]
    for rec, src in zip(recs, (ZH, EN), strict=True):
        assert set(rec) == {"id", "text", "phi", "errors"}
        assert rec["errors"] == []
        spans = rec["phi"]
        assert isinstance(spans, list) and spans
        for p in spans:
            assert set(p) == {"start", "end", "type"} and p["type"] in TYPES
            assert 0 <= p["start"] < p["end"] <= len(src)  # offsets into the INPUT text
        found = {src[p["start"] : p["end"]] for p in spans}
        assert ("张三" in found) if src is ZH else ("SMITH, John" in found)
    zh_out = recs[0]["text"]
    assert "[NAME]" in zh_out and "[MRN]" in zh_out and "[PHONE]" in zh_out
    assert "张三" not in zh_out and "138-1234-5678" not in zh_out and "2021年3月4日" not in zh_out
    assert "奥希替尼" in zh_out and "cT3N2M0" in zh_out
    assert "Pancoast" in recs[1]["text"] and "cisplatin" in recs[1]["text"]


def test_surrogates_setting(tmp_path: Path) -> None:
    (rec,) = _run(tmp_path, [_line(id="a", lang="en", text=EN, patient_id="P1")], "--surrogates")
    assert "[NAME]" not in rec["text"] and "SMITH" not in rec["text"] and "Jones" not in rec["text"]
    assert "MRN0000001" not in rec["text"]


def test_bad_lines_get_errors_and_the_run_goes_on(tmp_path: Path) -> None:
    filler = "No evidence of recurrence; lymph nodes are negative and the margins are clear. "
    huge = ("Patient John Smith seen on 4 Mar 2021. " + filler * 130_000)[:10_000_000]
    lines = [
        b"{not json",
        _line(id="empty", lang="en", text=""),
        _line(id="bin", text="\x00\x01\x02\x03garbage\x04\x05\x06\x07\x08" * 20),
        '{"id": "gbk", "lang": "zh", "text": "姓名：王五"}'.encode("gb18030"),
        b"\xff\xfe\x00garbage\x80\x81",
        _line(id="notext", lang="en"),
        _line(id=7, lang="xx", text="Dr. Smith"),
        b"[1, 2, 3]",
        _line(id="huge", lang="en", text=huge, patient_id="P9"),
        _line(id="ok", lang="en", text="Seen by Dr. Smith."),
    ]
    recs = _run(tmp_path, lines)
    assert len(recs) == len(lines)
    by_id = {r["id"]: r for r in recs}
    assert (
        recs[0]["id"] == "line:1"
        and "invalid JSON" in recs[0]["errors"][0]
        and recs[0]["text"] == ""
    )
    assert by_id["empty"]["errors"] == ["empty note"]
    assert "binary" in by_id["bin"]["errors"][0] and by_id["bin"]["text"] == ""
    assert any("gb18030" in e for e in by_id["gbk"]["errors"])
    assert by_id["gbk"]["text"] == "姓名：[NAME]"
    assert recs[4]["errors"] and recs[4]["text"] == ""
    assert "missing or non-string 'text'" in by_id["notext"]["errors"]
    assert by_id["7"]["text"] == "Dr. [NAME]" and any(
        "unknown lang" in e for e in by_id["7"]["errors"]
    )
    assert "not a JSON object" in recs[7]["errors"][0]
    assert by_id["huge"]["errors"] == [] and "John Smith" not in by_id["huge"]["text"]
    assert by_id["ok"]["text"] == "Seen by Dr. [NAME]."


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        _app(), ["deid-text", "--in", str(tmp_path / "no"), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
