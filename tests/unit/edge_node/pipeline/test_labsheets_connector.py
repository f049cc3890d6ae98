"""The scanned-lab-sheet connector (`kind: lab_sheets`) with a stand-in reader:
rows from index + items, rejects for sheets that give nothing, a watermark that
skips unchanged sheets, a sample that never OCRs; and the scored reader's
confidence on a fake OCR engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_node.ocr.engine import TextBox
from edge_node.pipeline.connectors import open_connector
from edge_node.pipeline.connectors.labsheets import (
    OCR_COLUMNS,
    LabSheetConnector,
    scored_reader,
)
from edge_node.pipeline.mapping import parse_mapping
from edge_node.pipeline.records import SourceBatch
from shared_cdm.errors import InvalidInput
from shared_cdm.vocab import load_default

ITEM = {
    "name": "CEA",
    "code": "CEA",
    "loinc": "2039-6",
    "value": 12.5,
    "qualifier": None,
    "unit": "ng/mL",
    "reference_range": "0-5",
    "flag": "H",
    "confidence": 0.93,
}


class FakeReader:
    """Gives two items per sheet, or an error for files named bad*."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def read_file(self, path: Path) -> dict[str, Any]:
        self.calls.append(path.name)
        if path.name.startswith("bad"):
            return {"file": path.name, "items": [], "errors": ["not a readable PNG image"]}
        second = {**ITEM, "name": "NSE", "code": "NSE", "value": 3.0, "qualifier": "<"}
        return {"file": path.name, "items": [ITEM, second], "errors": []}


def _hospital(tmp_path: Path, rows: list[str]) -> Path:
    folder = tmp_path / "sheets"
    folder.mkdir()
    (folder / "index.csv").write_text(
        "FileName,MRN,VisitNo,ReportDate\n" + "".join(r + "\n" for r in rows), "utf-8"
    )
    return folder


def _read(connector: LabSheetConnector, watermark: str | None = None) -> SourceBatch:
    out = SourceBatch(watermark=watermark)  # no batch: the watermark stays
    for batch in connector.read("lab_sheets", key=None, watermark=watermark):
        out.rows += batch.rows
        out.rejects += batch.rejects
        out.watermark = batch.watermark
    return out


def test_rows_carry_index_columns_and_items_keyed_by_file_and_line(tmp_path: Path) -> None:
    folder = _hospital(tmp_path, ["s1.png,MRN1,V1,01/02/2020"])
    (folder / "s1.png").write_bytes(b"image")
    reader = FakeReader()
    connector = LabSheetConnector("scans", folder / "index.csv", folder, reader=reader)
    assert connector.columns("lab_sheets") == [
        "FileName",
        "MRN",
        "VisitNo",
        "ReportDate",
        *OCR_COLUMNS,
    ]
    batch = _read(connector)
    assert [r.key for r in batch.rows] == ["s1.png#1", "s1.png#2"]
    first, second = (r.values for r in batch.rows)
    assert first["MRN"] == "MRN1" and first["VisitNo"] == "V1"
    assert first["result"] == "12.5" and first["item_code"] == "CEA" and first["unit"] == "ng/mL"
    assert first["confidence"] == "0.9300" and first["reference_range"] == "0-5"
    assert second["result"] == "<3"
    assert not batch.rejects


def test_sheets_that_give_nothing_are_rejects_and_the_read_goes_on(tmp_path: Path) -> None:
    folder = _hospital(
        tmp_path,
        ["bad.png,MRN1,V1,01/02/2020", "gone.png,MRN2,V2,01/02/2020", "ok.png,MRN3,V3,01/02/2020"],
    )
    for name in ("bad.png", "ok.png", "stray.png"):
        (folder / name).write_bytes(name.encode())
    connector = LabSheetConnector("scans", folder / "index.csv", folder, reader=FakeReader())
    batch = _read(connector)
    assert {r.key: r.code for r in batch.rejects} == {
        "bad.png": "sheet_unreadable",
        "gone.png": "sheet_missing",
        "stray.png": "sheet_not_indexed",
    }
    assert [r.key for r in batch.rows] == ["ok.png#1", "ok.png#2"]


def test_a_rerun_reads_only_new_or_changed_sheets_and_index_rows(tmp_path: Path) -> None:
    folder = _hospital(tmp_path, ["a.png,MRN1,V1,01/02/2020", "bad.png,MRN2,V2,01/02/2020"])
    (folder / "a.png").write_bytes(b"one")
    (folder / "bad.png").write_bytes(b"broken")
    reader = FakeReader()
    connector = LabSheetConnector("scans", folder / "index.csv", folder, reader=reader)
    first = _read(connector)
    assert reader.calls == ["a.png", "bad.png"]
    again = _read(connector, first.watermark)
    assert reader.calls == ["a.png", "bad.png"]  # nothing OCR'd, the bad sheet not again
    assert not again.rows and not again.rejects
    (folder / "a.png").write_bytes(b"two, rescanned")
    _read(connector, again.watermark)
    assert reader.calls[2:] == ["a.png"]
    (folder / "index.csv").write_text(
        "FileName,MRN,VisitNo,ReportDate\na.png,MRN9,V1,01/02/2020\nbad.png,MRN2,V2,01/02/2020\n",
        "utf-8",
    )
    changed = _read(connector, first.watermark)
    assert reader.calls[3:] == ["a.png"]  # its index row changed: read for the new patient
    assert {r.values["MRN"] for r in changed.rows} == {"MRN9"}


def test_sample_and_columns_never_run_the_ocr(tmp_path: Path) -> None:
    folder = _hospital(tmp_path, ["a.png,MRN1,V1,01/02/2020"])
    (folder / "a.png").write_bytes(b"one")
    reader = FakeReader()
    connector = LabSheetConnector("scans", folder / "index.csv", folder, reader=reader)
    (row,) = connector.sample("lab_sheets")
    assert row.values["MRN"] == "MRN1" and row.values["result"] is None
    assert reader.calls == []


def test_read_where_reads_only_the_sheets_of_the_asked_patients(tmp_path: Path) -> None:
    folder = _hospital(tmp_path, ["a.png,MRN1,V1,01/02/2020", "b.png,MRN2,V2,01/02/2020"])
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(name.encode())
    reader = FakeReader()
    connector = LabSheetConnector("scans", folder / "index.csv", folder, reader=reader)
    rows = [r for b in connector.read_where("lab_sheets", "MRN", {"MRN2"}) for r in b.rows]
    assert reader.calls == ["b.png"] and {r.values["MRN"] for r in rows} == {"MRN2"}


def test_the_source_is_declared_and_validated_like_the_others(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="missing folder"):
        open_connector("scans", {"kind": "lab_sheets", "index": "i.csv"}, tmp_path)
    with pytest.raises(InvalidInput, match="unknown key"):
        open_connector(
            "scans", {"kind": "lab_sheets", "index": "i.csv", "folder": "f", "path": "x"}, tmp_path
        )
    text = (
        "site: s\nversion: 1\nsources:\n"
        "  scans: {kind: lab_sheets, index: sheets/index.csv, folder: sheets}\n"
        "tables:\n  - {source: scans, table: lab_sheets, target: lab, key: sheet_file}\n"
    )
    mapping = parse_mapping(text, base_dir=tmp_path)
    assert mapping.sources["scans"].resolved(tmp_path)["folder"] == str(tmp_path / "sheets")
    with pytest.raises(InvalidInput, match="needs an index and a folder"):
        parse_mapping(text.replace(", folder: sheets", ""), base_dir=tmp_path)


class FakeEngine:
    """A table of one item whose result box was read with less confidence."""

    def read(self, image: np.ndarray) -> list[TextBox]:
        def box(x: float, y: float, text: str, confidence: float) -> TextBox:
            w = 12.0 * len(text)
            return TextBox(((x, y), (x + w, y), (x + w, y + 20), (x, y + 20)), text, confidence)

        return [
            box(40, 100, "Item", 0.99),
            box(300, 100, "Result", 0.99),
            box(450, 100, "Unit", 0.99),
            box(40, 140, "CEA", 0.97),
            box(300, 140, "12.5", 0.81),
            box(450, 140, "ng/mL", 0.60),
        ]


def test_the_scored_reader_takes_the_lowest_score_of_name_and_value(tmp_path: Path) -> None:
    page = tmp_path / "page.png"
    cv2.imwrite(str(page), np.full((300, 700), 255, dtype=np.uint8))
    record = scored_reader(FakeEngine(), load_default()).read_file(page)
    assert not record["errors"], record
    (item,) = record["items"]
    assert item["code"] == "CEA" and item["value"] == 12.5
    assert item["confidence"] == 0.81  # the unit's 0.60 does not count: it is not the value
