"""Files in, one record per file out; a bad file gets an error and the batch goes on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from edge_node.ocr.engine import TextBox
from edge_node.ocr.labs import ITEM_KEYS, load_pages, read_files, write_jsonl
from tests.unit.edge_node.ocr.conftest import table_boxes

HEADER = [("item", "Item"), ("result", "Result"), ("unit", "Unit"), ("reference", "Reference")]
ROWS = [{"item": "CEA", "result": "7.2", "unit": "ng/mL", "reference": "0-5"}]


class TableEngine:
    """Returns one CEA table for any image, and records the images it saw."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def read(self, image: np.ndarray) -> list[TextBox]:
        self.shapes.append(image.shape)
        return table_boxes(HEADER, ROWS)


def _png(path: Path) -> None:
    ok, data = cv2.imencode(".png", np.full((60, 80), 240, dtype=np.uint8))
    assert ok
    path.write_bytes(data.tobytes())


def _pdf(pages: int) -> bytes:
    buffer = io.BytesIO()
    if pages == 0:
        document = pdfium.PdfDocument.new()
        document.save(buffer)
        document.close()
    else:
        images = [Image.new("L", (200, 280), 250) for _ in range(pages)]
        images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_bad_files_get_errors_and_the_batch_goes_on(tmp_path: Path) -> None:
    _png(tmp_path / "a_good.png")
    (tmp_path / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "c_empty.png").write_bytes(b"")
    (tmp_path / "d_notes.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "e_no_pages.pdf").write_bytes(_pdf(0))
    (tmp_path / "f_broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (tmp_path / "g_two_pages.pdf").write_bytes(_pdf(2))
    _png(tmp_path / "h_good.png")
    engine = TableEngine()
    paths = sorted(tmp_path.iterdir())
    records = list(read_files(paths, engine=engine))
    assert [r["file"] for r in records] == [p.name for p in paths]
    by_file = {r["file"]: r for r in records}
    for name in ("a_good.png", "h_good.png"):
        assert by_file[name]["errors"] == []
        assert [(i["code"], i["value"]) for i in by_file[name]["items"]] == [("CEA", 7.2)]
    assert [(i["code"], i["value"]) for i in by_file["g_two_pages.pdf"]["items"]] == [
        ("CEA", 7.2),
        ("CEA", 7.2),
    ]
    for name, reason in (
        ("b_corrupt.jpg", "corrupt"),
        ("c_empty.png", "empty"),
        ("d_notes.txt", "unsupported"),
        ("e_no_pages.pdf", "without pages"),  # PDFium refuses a PDF with no pages
        ("f_broken.pdf", "not a readable PDF"),
    ):
        assert by_file[name]["items"] == []
        assert len(by_file[name]["errors"]) == 1 and reason in by_file[name]["errors"][0], name
    assert len(engine.shapes) == 4  # two PNGs and two PDF pages reached the engine


def test_pdf_pages_render_at_150_dpi(tmp_path: Path) -> None:
    path = tmp_path / "sheet.pdf"
    buffer = io.BytesIO()
    Image.new("L", (595, 842), 250).save(buffer, format="PDF", resolution=72.0)  # A4 in points
    path.write_bytes(buffer.getvalue())
    (page,) = load_pages(path)
    assert abs(page.shape[0] - 1754) <= 2 and abs(page.shape[1] - 1240) <= 2


def test_output_lines_have_the_contract_keys(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"junk")
    out = tmp_path / "out" / "labs.jsonl"
    files, items, failed = write_jsonl(
        read_files(sorted(tmp_path.glob("*.*")), engine=TableEngine()), out
    )
    assert (files, items, failed) == (2, 1, 1)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [list(line) for line in lines] == [["file", "items", "errors"]] * 2
    assert list(lines[0]["items"][0]) == list(ITEM_KEYS)
    assert ITEM_KEYS == ("name", "code", "loinc", "value", "qualifier", "unit", "reference_range",
                         "flag", "value_std", "unit_std")  # fmt: skip


def test_an_engine_failure_is_an_error_for_that_file_only(tmp_path: Path) -> None:
    class Flaky(TableEngine):
        def read(self, image: np.ndarray) -> list[TextBox]:
            if len(self.shapes) == 0:
                self.shapes.append(image.shape)
                raise RuntimeError("onnxruntime: bad input")
            return super().read(image)

    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    records = list(read_files(sorted(tmp_path.iterdir()), engine=Flaky()))
    assert records[0]["items"] == [] and "bad input" in records[0]["errors"][0]
    assert [i["code"] for i in records[1]["items"]] == ["CEA"] and records[1]["errors"] == []
