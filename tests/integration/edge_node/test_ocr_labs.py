"""`oncofed-edge ocr-labs` end to end: the real PP-OCR models on generated sheets
(a scan as PDF, a phone photo, a forwarded JPEG; Chinese and English) plus a
corrupt file; output against contracts/lab-ocr.md and the generator's truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_node.cli import app
from edge_node.ocr.evaluate import load_truth, score
from ops.synth.ocr_sheets import write_lab_sheets

pytestmark = pytest.mark.slow

ITEM_KEYS = ["name", "code", "loinc", "value", "qualifier", "unit", "reference_range", "flag",
             "value_std", "unit_std"]  # fmt: skip


def test_ocr_labs_reads_generated_sheets(tmp_path: Path) -> None:
    sheets = tmp_path / "sheets"
    counts = write_lab_sheets(sheets, 4, seed=11)
    assert sum(counts.values()) == 4
    truth_path = sheets / "truth.jsonl"
    truth = load_truth(truth_path)
    truth_path.rename(tmp_path / "truth.jsonl")
    (sheets / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "labs.jsonl"

    result = CliRunner().invoke(app, ["ocr-labs", "--in", str(sheets), "--out", str(out)])

    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["file"] for r in records] == sorted([*truth, "zz_corrupt.png"])
    for record in records:
        assert list(record) == ["file", "items", "errors"]
        for item in record["items"]:
            assert list(item) == ITEM_KEYS
            assert item["qualifier"] in (None, "<", ">") and item["flag"] in (None, "H", "L")
    assert records[-1]["items"] == [] and "corrupt" in records[-1]["errors"][0]
    assert all(r["errors"] == [] for r in records[:-1])
    report = score(records, truth)
    assert report.overall.items >= 12
    assert report.overall.accuracy >= 0.95, report.misses
    assert report.extra_items == 0
    cea = [i for r in records for i in r["items"] if i["code"] == "CEA"]
    assert all(i["loinc"] == "2039-6" and i["unit_std"] == "ng/mL" for i in cea)
